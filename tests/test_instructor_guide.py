"""The instructor guide (slides/INSTRUCTOR.md) stays true to the course: a section per lab with its plan
and the mistakes its checks catch, the times the README states, commands that exist, links that land."""

from __future__ import annotations

import re
import unicodedata

import pytest

from sweatlab import course as C
from sweatlab.tools.cli import build_parser

from conftest import REPO

GUIDE = REPO / "slides" / "INSTRUCTOR.md"
LABS = [s.stem for s in C.Course(REPO).sources()]


def _text() -> str:
    return GUIDE.read_text(encoding="utf-8")


def _readme_times() -> dict[str, str]:
    section = (REPO / "README.md").read_text(encoding="utf-8").split("## Course map", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]
    return {r[0]: r[3] for r in rows if re.fullmatch(r"\d\d", r[0])}


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = unicodedata.normalize("NFKC", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@pytest.mark.parametrize("lab", LABS)
def test_each_lab_has_a_plan_and_the_mistakes_its_checks_catch(lab):
    text = _text()
    found = re.search(rf"^## Lab {lab[:2]} · (.+)$", text, re.M)
    assert found, f"the guide has no section '## Lab {lab[:2]} · ...'"
    section = text[found.end():].split("\n## ", 1)[0]
    assert "### Plan" in section and "### What the checks catch" in section, f"lab {lab[:2]}: plan or checks missing"
    assert "in preparation" not in found.group(1), f"lab {lab[:2]} exists now: its section says 'in preparation'"


@pytest.mark.parametrize("lab", LABS)
def test_times_are_the_readmes(lab):
    readme = _readme_times()[lab[:2]]
    row = re.search(rf"^\| {lab[:2]} \| [^|]+ \| ([^|]+) \|", _text(), re.M)
    assert row and row.group(1).strip() == readme, (
        f"lab {lab[:2]}: the guide's table says {row.group(1).strip() if row else None!r}, the README {readme!r}")
    section = _text().split(f"## Lab {lab[:2]} ·", 1)[1].split("\n## ", 1)[0]
    assert f"README: {readme}" in " ".join(section.split()), f"lab {lab[:2]}: its Times line should quote the README"


def test_every_command_it_names_exists():
    text = _text()
    verbs = set(build_parser()._subparsers._group_actions[0].choices)  # noqa: SLF001 - argparse keeps them there
    named = set(re.findall(r"`(?:\.venv/bin/)?sweatlab ([a-z][a-z-]*)", text))
    assert named and named <= verbs, f"sweatlab verbs the CLI lacks: {named - verbs}"
    targets = set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), re.M))
    made = set(re.findall(r"`(?:[A-Z_]+=\S+ )*make ([a-z][a-z-]*)", text))
    assert made and made <= targets, f"make targets the Makefile lacks: {made - targets}"


def test_its_links_land():
    text = _text()
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
    for target in re.findall(r"\]\(#([^)]+)\)", text):
        assert target in anchors, f"link #{target} has no heading"
    for target in re.findall(r"\]\((?!#|https?:)([^)#]+)", text):
        assert (GUIDE.parent / target).exists(), f"link {target} points nowhere"
