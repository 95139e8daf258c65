"""Figures the prose quotes from a lab's own run: written once, filled from the run, checked in sync.

In a lab's source (``solutions/NN_topic.py``) a markdown cell quotes a figure of the run as the
placeholder ``{{name}}``; a code cell above it makes the figure with ``lab.quote("name", value,
"{:.1f}x")``. Executing the solution (``sweatlab execute``) collects the run's figures into the
solution notebook's metadata (``sweat.figures``: the values, the machine, the mode) and fills the
placeholders there; the student lab is filled from the same metadata, each such cell closing with a
note that the figures are the shipped run's, on the reference machine.

A deck (``slides/NN_topic.md``) and the instructor guide quote a figure inline, so they read well
as plain markdown: ``<!--fig 01_matmul.speedup_ikj-->62x<!--/fig-->``. ``sweatlab figures``
rewrites the value between the markers from the solution; ``make check`` fails on a placeholder or
a quote that names a figure the run did not make, and on a quote whose value is stale.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat

FIGURES_ENV = "SWEAT_FIGURES_OUT"  # set while a solution executes: the file lab.quote appends figures to
PLACEHOLDER = re.compile(r"\{\{\s*([a-z][a-z0-9_]*)\s*\}\}")
QUOTE = re.compile(r"<!--fig ([0-9]{2}_[a-z0-9_]+)\.([a-z][a-z0-9_]*)-->(.*?)<!--/fig-->", re.S)
LAB_NOTE = ("<small><i>Figures in this cell come from the course's shipped run of the solution on the reference "
            "machine ({machine}, {mode} mode); your run prints your own.</i></small>")
DATA_NOTE = ("<small><i>Figures in this cell are computed from data the course ships with its sources; they are the "
             "same on every machine.</i></small>")


def placeholders(text: str) -> list[str]:
    return PLACEHOLDER.findall(text)


def fill(text: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """``text`` with every ``{{name}}`` replaced by its figure; and the names that have none."""
    missing: list[str] = []

    def rep(m: re.Match) -> str:
        if m.group(1) in values:
            return values[m.group(1)]
        missing.append(m.group(1))
        return m.group(0)

    return PLACEHOLDER.sub(rep, text), missing


def read_run_figures(path: Path, data: list[str] | None = None) -> dict[str, str]:
    """The figures a run wrote (one JSON line each; a later value of the same name wins). The names of
    figures quoted from shipped data (``lab.quote(..., data=True)``) are appended to ``data``."""
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                values[entry["name"]] = entry["text"]
                if data is not None and entry.get("data") and entry["name"] not in data:
                    data.append(entry["name"])
    return values


def figures_of(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """A solution notebook's ``sweat.figures`` metadata: {"values": {...}, "machine": ..., "mode": ...}."""
    figs = nb.get("metadata", {}).get("sweat", {}).get("figures", {})
    return figs if isinstance(figs, dict) else {}


def fill_notebook(nb: nbformat.NotebookNode, figures: dict[str, Any], note: bool) -> list[str]:
    """Fill every markdown cell's placeholders in place; ``note`` closes each such cell with LAB_NOTE.
    Returns the placeholder names that have no figure (left as they are)."""
    values, data = figures.get("values", {}), set(figures.get("data", ()))
    missing: list[str] = []
    for cell in nb.cells:
        names = placeholders(cell.source) if cell.cell_type == "markdown" else []
        if not names:
            continue
        cell.source, gaps = fill(cell.source, values)
        missing += gaps
        if note:
            text = DATA_NOTE if all(n in data for n in names) else LAB_NOTE.format(
                machine=figures.get("machine", "unknown machine"), mode=figures.get("mode", "unknown"))
            cell.source = cell.source.rstrip("\n") + "\n\n" + text
    return missing


def solution_figures(root: Path) -> dict[str, dict[str, str]]:
    """Every lab's figures, from its executed solution: {"01_matmul": {"speedup_ikj": "62x", ...}}."""
    out: dict[str, dict[str, str]] = {}
    for path in sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # an unreadable solution is make check's to report
            continue
        out[path.stem] = dict(figures_of(nb).get("values", {}))
    return out


def refresh_quotes(text: str, figures: dict[str, dict[str, str]]) -> tuple[str, list[str]]:
    """``text`` with every inline quote's value set from ``figures``; and the quotes naming no figure."""
    unknown: list[str] = []

    def rep(m: re.Match) -> str:
        lab, name = m.group(1), m.group(2)
        if name not in figures.get(lab, {}):
            unknown.append(f"{lab}.{name}")
            return m.group(0)
        return f"<!--fig {lab}.{name}-->{figures[lab][name]}<!--/fig-->"

    return QUOTE.sub(rep, text), unknown


def strip_quote_markers(text: str) -> str:
    """The text a reader sees: each inline quote's value without its markers."""
    return QUOTE.sub(lambda m: m.group(3), text)


def quoting_files(root: Path) -> list[Path]:
    """The files that quote run figures inline: the decks and the instructor guide."""
    slides = root / "slides"
    return sorted(slides.glob("[0-9][0-9]_*.md")) + [p for p in [slides / "INSTRUCTOR.md"] if p.exists()]
