"""Grading a class: 12 submissions of lab 01 with -j 2, through the CLI, and every output checked."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time

import nbformat
import pytest

from conftest import REPO

pytestmark = pytest.mark.slow
LAB = "01_matmul"
TRANSPOSED_IJK = (
    "def matmul_ijk(A, B):\n"
    "    # a classic slip: C is built column by column, so it comes out transposed\n"
    "    return [[sum(A[i][k] * B[k][j] for k in range(len(B))) for i in range(len(A))]\n"
    "            for j in range(len(B[0]))]\n")
LOOPING_IKJ = "while True:\n    pass\n"


def _variant(kind: str) -> str:
    if kind == "blank":
        return (REPO / "labs" / f"{LAB}.ipynb").read_text()
    if kind == "corrupt":
        return (REPO / "solutions" / f"{LAB}.ipynb").read_text()[:2000]
    nb = nbformat.read(REPO / "solutions" / f"{LAB}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None  # as a learner might submit it: outputs cleared
        if kind == "wrong_ijk" and cell.id == "ex-ijk":
            cell.source = TRANSPOSED_IJK
        if kind == "loop_ikj" and cell.id == "ex-ikj":
            cell.source = LOOPING_IKJ
    return nbformat.writes(nb)


KINDS = ["solution"] * 5 + ["blank"] * 2 + ["wrong_ijk"] * 2 + ["loop_ikj"] * 2 + ["corrupt"]
N = len(KINDS)


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    for i, kind in enumerate(KINDS):
        (folder / f"student{i:02d}_{kind}.ipynb").write_text(_variant(kind))
    out = tmp_path_factory.mktemp("out")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "sweatlab.tools.cli", "--root", str(REPO), "grade", str(folder), "--lab", LAB,
         "-j", "2", "--cell-timeout", "10", "--out", str(out)],
        capture_output=True, text=True, timeout=900)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "grades.csv", encoding="utf-8")))
    return {"out": out, "rows": {r["submission"]: r for r in rows}, "stdout": result.stdout, "seconds": took,
            "results": json.loads((out / "results.json").read_text())["submissions"]}


def _kind(name: str) -> str:
    return name.split("_", 1)[1]


def test_one_row_per_submission_with_a_column_per_test(graded_class):
    rows = graded_class["rows"]
    assert len(rows) == N
    columns = list(next(iter(rows.values())).keys())
    assert columns[:5] == ["submission", "file", "lab", "total", "max"]
    assert columns[-3:] == ["seconds", "feedback", "notes"]
    exercises = {c.split(":")[0] for c in columns[5:-3]}
    assert exercises == {"rtol", "ijk", "strides", "ikj", "rows", "numba_ikj", "tiled"}


def test_scores_match_what_each_submission_did(graded_class):
    """Full marks, zero, or zero only on the exercise a submission got wrong."""
    for name, entry in graded_class["results"].items():
        kind, tests = _kind(name), graded_class["results"][name]["tests"]
        full = sum(t["max_score"] for t in tests)
        if kind == "solution":
            assert entry["score"] == full, (name, entry)
        elif kind in ("blank", "corrupt"):
            assert entry["score"] == 0, (name, entry)
        else:
            broken = {"wrong_ijk": "ijk", "loop_ikj": "ikj"}[kind]
            mine = [t for t in tests if t["tags"][0] == broken]
            others = [t for t in tests if t["tags"][0] != broken]
            assert all(t["score"] == t["max_score"] for t in others), (name, others)
            assert any(t["score"] == 0 for t in mine), (name, mine)
            if kind == "loop_ikj":  # the cell never finished, so matmul_ikj does not exist: every ikj test fails
                assert all(t["score"] == 0 for t in mine)


def test_feedback_explains_each_failure(graded_class):
    out, rows = graded_class["out"], graded_class["rows"]
    assert len(list((out / "feedback").glob("*.md"))) == N

    def feedback(kind: str) -> str:
        row = next(r for n, r in rows.items() if _kind(n) == kind)
        return (out / row["feedback"]).read_text(encoding="utf-8")

    text = feedback("wrong_ijk")
    assert "Exercise 2: the ijk loop in pure Python" in text and "shape" in text and "expected" in text
    assert "did not finish within 10 s" in feedback("loop_ikj")
    assert "not valid notebook JSON" in feedback("corrupt")
    blank = feedback("blank")
    assert blank.count("is not written yet") == 7, "one line per exercise, not one per test"


def test_results_json_agrees_with_the_csv(graded_class):
    for name, row in graded_class["rows"].items():
        entry = graded_class["results"][name]
        assert entry["score"] == float(row["total"]) and sum(t["max_score"] for t in entry["tests"]) == float(row["max"])
        for test in entry["tests"]:
            column = f"{test['tags'][0]}: {test['name'].split(' — ', 1)[1]}"
            assert float(row[column]) == test["score"] and test["score"] <= test["max_score"]


def test_seconds_per_submission_is_reported(graded_class):
    per_submission = graded_class["seconds"] / N
    print(f"\n[timing] {N} submissions of lab {LAB} with -j 2: {graded_class['seconds']:.0f} s "
          f"({per_submission:.1f} s per submission, wall)")
    assert f"graded {N} submission(s)" in graded_class["stdout"]
