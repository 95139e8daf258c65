"""nbval on solution notebooks: passes when outputs hold, and cannot pass vacuously."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import nbformat
from nbval.plugin import get_sanitize_patterns

from sweatlab.tools.cli import nbval_command

from conftest import REPO

SANITIZE = REPO / "tests" / "nbval_sanitize.cfg"


def _run_nbval(notebook: Path) -> subprocess.CompletedProcess:
    cmd = nbval_command([str(notebook)], SANITIZE, workers=1)
    return subprocess.run(cmd, cwd=notebook.parent, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "SWEAT_QUICK": "1"})


def test_every_sanitize_pair_is_parsed_by_nbval():
    text = SANITIZE.read_text(encoding="utf-8")
    pairs = get_sanitize_patterns(text)
    assert len(pairs) == text.count("\nregex: "), "a regex:/replace: pair is malformed and nbval drops it silently"
    for regex, _ in pairs:
        re.compile(regex)


def test_sanitize_masks_machine_dependent_text_and_keeps_results():
    pairs = get_sanitize_patterns(SANITIZE.read_text(encoding="utf-8"))

    def clean(text: str) -> str:
        for regex, replace in pairs:
            text = re.sub(regex, replace, text)
        return text

    assert clean("[timing] matmul: 0.0123 s") == clean("[timing] matmul: 1.5 s")
    assert clean("peak 123.4 GFLOP/s, 10.2 GB/s") == clean("peak 98.0 GFLOP/s, 31.0 GB/s")
    assert clean("CPU: Intel(R) Xeon(R) Processor") == clean("CPU: AMD EPYC 7B13")
    assert clean("<Foo at 0x7f3a2b1c0d90>") == clean("<Foo at 0x7f00deadbeef>")
    # deterministic results must survive sanitizing, or a wrong answer would compare equal
    for kept in ("square([1, 2, 3]) = [1, 4, 9]", "accuracy: 0.973 (3 classes)", "2x2 tiles", "n = 256"):
        assert clean(kept) == kept


def test_nbval_passes_on_the_executed_fixture(course_copy):
    result = _run_nbval(course_copy / "solutions" / "00_fixture.ipynb")
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"\b\d+ passed\b", result.stdout)


def test_nbval_fails_on_a_wrong_deterministic_output(course_copy):
    path = course_copy / "solutions" / "00_fixture.ipynb"
    nb = nbformat.read(path, as_version=4)
    [check] = [c for c in nb.cells if c.id == "check-square"]
    assert check.outputs[0]["text"] == "square([1, 2, 3]) = [1, 4, 9]\n"
    check.outputs[0]["text"] = "square([1, 2, 3]) = [1, 4, 10]\n"
    nbformat.write(nb, path)
    result = _run_nbval(path)
    assert result.returncode != 0
    assert "1 failed" in result.stdout and "[1, 4, 10]" in result.stdout
