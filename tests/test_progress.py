"""`sweatlab progress`: a learner's own notebooks judged by the public checks, in the terminal and in a widget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from sweatlab.tools import progress as P
from sweatlab.kit.checks import load_lab_tests

from conftest import FIXTURES, REPO

sys.path.insert(0, str(FIXTURES / "grading"))
import checks_gradefix  # noqa: E402,F401  registers the fixture lab's public tests (one of them a speed check)

LAB = "04_less"  # the cheapest real lab: its public checks run in about 3 s
WRONG_EXIT_COSTS = "def exit_costs(block_flops, head_flops):\n    return np.cumsum(block_flops)\n"
BROKEN_EXIT_RULE = "threshold_table = build_thresholds(0.5)  # a helper never defined\n"


def _solved(lab: str = LAB, changes: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """The executed solution of ``lab`` as a learner saves it (outputs cleared), with some answer cells replaced:
    by new code, or by the blank lab's stub (``changes[id] = "stub"``)."""
    nb = nbformat.read(REPO / "solutions" / f"{lab}.ipynb", as_version=4)
    blank = {c.id: c.source for c in nbformat.read(REPO / "labs" / f"{lab}.ipynb", as_version=4).cells}
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if changes and cell.id in changes:
            cell.source = blank[cell.id] if changes[cell.id] == "stub" else changes[cell.id]
    return nb


def _labs_folder(tmp: Path, notebooks: dict[str, nbformat.NotebookNode]) -> Path:
    folder = tmp / "labs"
    folder.mkdir(parents=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, folder / f"{name}.ipynb")
    return folder


def _by_exercise(lab: P.LabProgress) -> dict[str, P.ExerciseProgress]:
    return {e.exercise: e for e in lab.exercises}


MIXED = {"ex-entropy": "stub", "ex-exit-costs": WRONG_EXIT_COSTS, "ex-exit-rule": BROKEN_EXIT_RULE}


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory) -> Path:
    """Lab 04 half done: early_stop and cascade solved, entropy still the stub, exit_costs wrong, exit_rule's
    cell raising NameError; lab 00 never opened (its blank notebook)."""
    folder = _labs_folder(tmp_path_factory.mktemp("mixed"), {LAB: _solved(LAB, MIXED)})
    (folder / "00_measure.ipynb").write_bytes((REPO / "labs" / "00_measure.ipynb").read_bytes())
    return folder


@pytest.fixture(scope="module")
def mixed(mixed_folder) -> P.Progress:
    return P.check_progress(mixed_folder, root=REPO, timeout_s=120)


def test_a_blank_lab_is_not_started_and_nothing_runs(tmp_path):
    folder = _labs_folder(tmp_path, {LAB: nbformat.read(REPO / "labs" / f"{LAB}.ipynb", as_version=4)})
    started = time.monotonic()
    lab = P.check_lab(LAB, folder / f"{LAB}.ipynb", P.pristine_lab(LAB, REPO))
    assert time.monotonic() - started < 5  # no child process, no check
    assert not lab.ran and lab.status == P.NOT_STARTED
    assert [e.exercise for e in lab.exercises] == list(dict.fromkeys(t.exercise for t in load_lab_tests(LAB)))
    assert {e.status for e in lab.exercises} == {P.NOT_STARTED} and lab.points == 0
    assert lab.max_points == sum(t.points for t in load_lab_tests(LAB)) and lab.done == 0
    missing = P.check_lab(LAB, folder / "nowhere.ipynb", P.pristine_lab(LAB, REPO))
    assert missing.status == P.NOT_STARTED and "open the lab in JupyterLab" in missing.notes[0]


def test_a_solved_lab_shows_every_exercise_done(tmp_path):
    folder = _labs_folder(tmp_path, {LAB: _solved()})
    lab = P.check_lab(LAB, folder / f"{LAB}.ipynb", P.pristine_lab(LAB, REPO))
    assert lab.ran and lab.status == P.DONE, [(e.exercise, e.status, e.message) for e in lab.exercises]
    assert lab.done == len(lab.exercises) == 5
    assert lab.points == lab.max_points == sum(t.points for t in load_lab_tests(LAB))
    assert all(e.passed == e.tests and not e.skipped for e in lab.exercises)


def test_a_half_solved_lab_shows_the_right_split(mixed):
    lab = next(lab for lab in mixed.labs if lab.lab == LAB)
    ex = _by_exercise(lab)
    assert {k: e.status for k, e in ex.items()} == {
        "early_stop": P.DONE, "entropy": P.NOT_STARTED, "exit_costs": P.FAILING, "exit_rule": P.ERROR,
        "cascade": P.DONE}
    assert lab.done == 2 and lab.points == ex["early_stop"].max_points + ex["cascade"].max_points
    assert ex["entropy"].message == P.STUB_MESSAGE and ex["entropy"].passed == 0
    assert "exit_costs" in ex["exit_costs"].message and "\n" not in ex["exit_costs"].message
    assert ex["exit_costs"].points < ex["exit_costs"].max_points
    assert lab.status == "2 done, 1 failing, 1 not started, 1 error"


def test_a_cell_that_raises_is_an_error_and_the_other_exercises_still_count(mixed):
    lab = next(lab for lab in mixed.labs if lab.lab == LAB)
    rule = _by_exercise(lab)["exit_rule"]
    assert rule.status == P.ERROR and rule.points == 0
    assert rule.message.startswith("cell 'ex-exit-rule' raised NameError") and "build_thresholds" in rule.message
    assert _by_exercise(lab)["cascade"].status == P.DONE  # checked after the broken cell, and still passes
    blank = next(lab for lab in mixed.labs if lab.lab == "00_measure")
    assert blank.status == P.NOT_STARTED and not blank.ran


def test_an_unreadable_notebook_is_an_error_for_every_exercise(tmp_path):
    folder = tmp_path / "labs"
    folder.mkdir()
    (folder / f"{LAB}.ipynb").write_text('{"cells": [', encoding="utf-8")
    lab = P.check_lab(LAB, folder / f"{LAB}.ipynb", P.pristine_lab(LAB, REPO))
    assert {e.status for e in lab.exercises} == {P.ERROR}
    assert "not valid notebook JSON" in lab.exercises[0].message


def test_quick_skips_the_timed_speed_check_and_says_so(grading_course, tmp_path):
    solution = nbformat.read(grading_course / "solution.ipynb", as_version=4)
    folder = _labs_folder(tmp_path, {"98_gradefix": solution})
    pristine = P.pristine_lab("98_gradefix", grading_course)
    quick = P.check_lab("98_gradefix", folder / "98_gradefix.ipynb", pristine, quick=True)
    fast = _by_exercise(quick)["fast"]
    assert fast.status == P.DONE and fast.skipped == ["fast is faster"]
    assert fast.passed == 1 and fast.max_points == 1  # the skipped check is not counted
    assert quick.status == P.DONE and quick.skipped == ["fast: fast is faster"]
    table = P.format_table(P.Progress(str(folder), True, [quick]))
    assert "1 timed check(s) skipped" in table and "98_gradefix/fast: fast is faster" in table
    full = P.check_lab("98_gradefix", folder / "98_gradefix.ipynb", pristine, quick=False)
    assert _by_exercise(full)["fast"].passed == 2 and not full.skipped and full.points == 7


def test_a_cell_past_its_time_limit_is_an_error_and_the_lab_goes_on(grading_course, tmp_path):
    from sweatlab.grading.sandbox import Limits

    solution = nbformat.read(grading_course / "solution.ipynb", as_version=4)
    [cell] = [c for c in solution.cells if c.id == "ex-mean"]
    cell.source = "import time\ntime.sleep(60)\n" + cell.source
    folder = _labs_folder(tmp_path, {"98_gradefix": solution})
    limits = Limits(cell_timeout_s=2, call_timeout_s=2, submission_timeout_s=30, grace_s=1)
    lab = P.check_lab("98_gradefix", folder / "98_gradefix.ipynb", P.pristine_lab("98_gradefix", grading_course),
                      limits, quick=True)
    ex = _by_exercise(lab)
    assert ex["mean"].status == P.ERROR and "did not finish within 2 s" in ex["mean"].message
    assert ex["add"].status == P.DONE and ex["fast"].status == P.DONE


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "lib")}
    return subprocess.run([sys.executable, "-m", "sweatlab", "--root", str(REPO), "progress", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_cli_prints_an_aligned_table_and_json(mixed_folder, mixed):
    table = _cli(str(mixed_folder), "--quick")
    assert table.returncode == 0, table.stdout + table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["lab", "/", "exercise", "done", "points", "status"]
    column = lines[0].index("done")
    rows = {line.split()[0]: line for line in lines[2:] if line.strip() and not line.startswith(("note", "--"))
            and len(line.split()) >= 4 and "/" in line.split()[1]}
    assert all(row[column - 2:column] == "  " and row[column] != " " for row in rows.values())  # one column
    points = next(lab.points for lab in mixed.labs if lab.lab == LAB)
    assert rows[LAB].split()[1:3] == ["2/5", f"{points:g}/37"]
    assert "not started (nothing written yet: not run)" in rows["00_measure"]
    assert rows["exit_rule"].split()[3] == "error:" and "failing: " in rows["exit_costs"]
    assert "\x1b[" not in table.stdout  # no colour codes
    assert "--quick: timed speed checks are skipped" in table.stdout
    assert "checked 04_less: ran its public checks" in table.stderr

    as_json = _cli(str(mixed_folder), "--lab", "00", "--json")  # a lab never opened: nothing runs
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["quick"] is False and data["skipped"] == [] and [lab["lab"] for lab in data["labs"]] == ["00_measure"]
    [lab] = data["labs"]
    assert lab["status"] == "not started" and lab["done"] == 0 and lab["total"] == 7 and lab["ran"] is False
    assert P.Progress.from_json(data).labs[0].exercises[0].status == P.NOT_STARTED

    # what --json prints for a lab that ran, read back as the widget's Refresh reads it
    again = P.Progress.from_json(json.loads(json.dumps(mixed.to_json())))
    lab = next(lab for lab in again.labs if lab.lab == LAB)
    assert {e.exercise: e.status for e in lab.exercises}["exit_costs"] == P.FAILING
    assert lab.done == 2 and len(lab.exercises) == 5 and lab.max_points == 37 and lab.ran
    assert next(x for x in mixed.to_json()["labs"] if x["lab"] == LAB)["status"] == lab.status


def test_cli_names_the_labs_when_none_matches(tmp_path):
    result = _cli(str(tmp_path), "--lab", "77")
    assert result.returncode == 2 and "no lab matches '77'" in result.stderr and "04_less" in result.stderr
    result = _cli(str(tmp_path / "missing"))
    assert result.returncode == 2 and "no folder" in result.stderr


def test_the_widget_builds_with_bars_and_exercise_lists(mixed):
    view = P.show_progress(progress=mixed)
    assert isinstance(view, P.ProgressView)
    assert list(view.bars) == [lab.lab for lab in mixed.labs] == P.lab_names(REPO / "labs", REPO)
    bar = view.bars[LAB]
    assert (bar.value, bar.max, bar.min) == (2, 5, 0) and view.bars["00_measure"].value == 0
    assert len(view.rows.children) == len(mixed.labs) and view.bars["01_matmul"].value == 0
    row = view.rows.children[[lab.lab for lab in mixed.labs].index(LAB)]
    top, details = row.children
    assert top.children[0] is bar and "2/5 exercises" in top.children[1].value
    assert details.selected_index is None  # collapsed until opened
    listing = details.children[0].value
    assert "exit_rule" in listing and "error" in listing and "build_thresholds" in listing
    assert view.refresh_button.description == "Refresh" and view.widget.children[0] is view.header


def test_refresh_reruns_in_a_child_and_never_hangs(mixed_folder, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO / "lib"))
    view = P.ProgressView(None, P.refresh_command(mixed_folder, "00", True, 60, REPO), timeout_s=60)
    thread = view.refresh()
    assert view.refresh_button.disabled and "checking" in view.status.value
    assert view.refresh() is None  # one refresh at a time
    thread.join(60)
    assert not thread.is_alive() and not view.refresh_button.disabled, view.status.value
    assert list(view.bars) == ["00_measure"] and view.progress.labs[0].status == P.NOT_STARTED

    slow = P.ProgressView(None, [sys.executable, "-c", "import time; time.sleep(60)"], timeout_s=1)
    started = time.monotonic()
    slow.refresh().join(30)
    assert time.monotonic() - started < 20
    assert "longer than 1 s" in slow.status.value and not slow.refresh_button.disabled


def test_without_ipywidgets_an_html_table(mixed, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    shown = P.show_progress(progress=mixed)
    assert type(shown).__name__ == "HTML"
    assert "<table>" in shown.data and LAB in shown.data and "2/5" in shown.data and "exit_costs" in shown.data


def test_grade_and_progress_run_the_one_pipeline(grading_course, tmp_path, monkeypatch):
    """Both judge a notebook by what pipeline.run_lab_tests returns: grade with the timed checks, progress
    (--quick) without; neither runs tests of its own beside it."""
    from sweatlab.grading import grader, pipeline
    from sweatlab.kit.checks import TestResult

    calls = []

    def fake(pristine, submission, lab, tests, limits, *, timed=True, exercises=None, layout=None, cpus=None):
        tests = [t for t in tests if exercises is None or t.exercise in exercises]
        calls.append((lab, timed, sorted({t.exercise for t in tests})))
        run = pipeline.LabRun(notes=["a note from the pipeline"])
        for t in tests:
            if not timed and t.name == "fast is faster":
                run.skipped.append(t)
            else:
                ok = t.exercise != "mean"
                run.results.append(TestResult(lab, t.exercise, t.name, t.points if ok else 0.0, t.points, ok,
                                              "" if ok else "mean([1, 2, 3, 4]): expected 2.5, got 7"))
        return run

    monkeypatch.setattr(pipeline, "run_lab_tests", fake)
    path = tmp_path / "labs" / "98_gradefix.ipynb"
    path.parent.mkdir()
    path.write_bytes((grading_course / "solution.ipynb").read_bytes())
    grade = grader.grade_submission(path, grading_course / "labs", "98_gradefix", hidden=False)
    assert grade.score == 5 and grade.max_score == 7 and "a note from the pipeline" in grade.notes
    lab = P.check_lab("98_gradefix", path, P.pristine_lab("98_gradefix", grading_course), quick=True)
    assert calls == [("98_gradefix", True, ["add", "fast", "mean"]), ("98_gradefix", False, ["add", "fast", "mean"])]
    ex = _by_exercise(lab)
    assert ex["add"].status == P.DONE and ex["mean"].status == P.FAILING and "got 7" in ex["mean"].message
    assert ex["fast"].skipped == ["fast is faster"] and ex["fast"].status == P.DONE
    assert "a note from the pipeline" in lab.notes
