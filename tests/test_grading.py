"""The grader: reconstruction, isolation, outputs, and hostile or broken submissions survived."""

from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
import psutil
import pytest

from sweatlab import course as C
from sweatlab.grading import grader, report
from sweatlab.grading.notebook import SubmissionError, read_submission, reconstruct
from sweatlab.grading.sandbox import RUN_TAG, SANDBOX_PREFIX, Limits, isolation

from conftest import FIXTURES, REPO, skip_or_fail
from conftest import grading_solution as _solution, solution_with_answer as _with_answer

sys.path.insert(0, str(FIXTURES / "grading"))
import checks_gradefix  # noqa: E402  registers the fixture lab's public tests

LAB = "98_gradefix"
FULL = 7.0
LIMITS = Limits(cell_timeout_s=4, call_timeout_s=4, submission_timeout_s=90, memory_mb=1024, grace_s=2)


GOOD_ADD = "def add(a, b):\n    return np.add(a, b)\n"

HOSTILE = {
    # name: (how to make it, expected score, a phrase the feedback must contain)
    "good": (lambda r: _solution(r), FULL, "7 / 7"),
    "not_a_notebook": (lambda r: "print('this is a script, not a notebook')\n", 0, "not valid notebook JSON"),
    "empty": (lambda r: "", 0, "the file is empty"),
    "truncated_json": (lambda r: nbformat.writes(_solution(r))[:500], 0, "not valid notebook JSON"),
    "old_nbformat_v3": (lambda r: nbformat.writes(nbformat.convert(_solution(r), 3), version=3), FULL, "7 / 7"),
    "infinite_loop_cell": (lambda r: _with_answer(r, "ex-mean", "while True:\n    pass\n"), 5,
                           "did not finish within 4 s"),
    "infinite_loop_in_function": (lambda r: _with_answer(r, "ex-mean", "def mean(x):\n    while True:\n        pass\n"),
                                  5, "did not return within 4 s"),
    "native_hang": (lambda r: _with_answer(r, "ex-add", (
        "import numba\n\n@numba.njit\ndef spin(n):\n    i = 0\n    while i >= 0:\n        i = (i + n) % 7\n"
        "    return i\n\nspin(3)\n" + GOOD_ADD)), 4, "ignored the interrupt"),
    "sys_exit": (lambda r: _with_answer(r, "ex-add", "import sys\nsys.exit(1)\n" + GOOD_ADD), 4, "SystemExit"),
    "os_exit": (lambda r: _with_answer(r, "ex-mean", "import os\nos._exit(0)\n"), 5, "exit code 0"),
    "memory_hog": (lambda r: _with_answer(r, "ex-fast", "hog = []\nwhile True:\n    hog.append(bytearray(10**8))\n"),
                   5, "MemoryError"),
    "fork_bomb": (lambda r: _with_answer(r, "ex-add", (
        "import os, time\nfor _ in range(300):\n    if os.fork() == 0:\n        time.sleep(120)\n        os._exit(0)\n"
        + GOOD_ADD)), 4, "cell 'ex-add' raised"),
    "stdout_flood": (lambda r: _with_answer(r, "ex-add", GOOD_ADD + (
        "import os, sys, warnings\nwarnings.warn('noisy')\nprint('warning!', file=sys.stderr)\n"
        "for _ in range(100000):\n    print('x' * 1000)\nfor _ in range(600):\n    os.write(1, b'y' * 100000)\n")),
        FULL, "7 / 7"),
    "fake_results": (lambda r: _with_answer(r, "ex-add", (
        "import json\nfor name in ('results.json', 'grades.csv', '../results.json'):\n"
        "    try:\n        open(name, 'w').write(json.dumps({'score': 100, 'max_score': 7}))\n"
        "    except OSError:\n        pass\nprint(json.dumps({'score': 7, 'max_score': 7, 'tests': []}))\n"
        "print('TOTAL: 7 / 7 points')\ndef add(a, b):\n    return 0\n")), 4, "add(2, 3): expected 5, got 0"),
    "monkeypatch_checks": (lambda r: _with_answer(r, "ex-add", (
        "import sweatlab.kit.checks as core\ncore.run_test = lambda *a, **k: None\n"
        "core.Tester.expect_equal = staticmethod(lambda *a, **k: None)\n"
        "core.Tester.expect_close = staticmethod(lambda *a, **k: None)\ndef add(a, b):\n    return 0\n")),
        4, "expected 5, got 0"),
    "always_equal": (lambda r: _with_answer(r, "ex-add", (
        "class Anything(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n\n"
        "def add(a, b):\n    return Anything(0)\n")), 4, "cannot read"),
    # the child cannot see the grader (its own PID namespace): getppid() is 0 there, and the kill
    # reaches only the learner's own processes; the grader and the batch go on
    "kill_parent": (lambda r: _with_answer(r, "ex-mean", (
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + "def mean(x):\n    return sum(x) / len(x)\n")),
        FULL, "7 / 7"),
    "kill_everything": (lambda r: _with_answer(r, "ex-mean", (
        "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n"
        "def mean(x):\n    return sum(x) / len(x)\n")), FULL, "7 / 7"),
    # speed forged from inside: a slow "reference" in the notebook, a patched timer, a patched ratio
    "forged_slow_reference": (lambda r: _with_answer(r, "ex-fast", (
        "import time\ndef total_loop(x):\n    time.sleep(0.05)\n    return float(sum(x))\n\n"
        "def total_fast(x):\n    s = 0.0\n    for v in x:\n        s += v\n    return s\n")), FULL - 1,
        "at least 2x faster"),
    "forged_patched_timing": (lambda r: _with_answer(r, "ex-fast", (
        "import sweatlab.measure.timing, sweatlab.kit.checks as core\n"
        "sweatlab.measure.timing.compare = lambda *a, **k: type('R', (), {'ratio': 42.0})()\n"
        "core.Tester.speed_ratio = lambda self, *a, **k: 42.0\n"
        "def total_fast(x):\n    s = 0.0\n    for v in x:\n        s += v\n    return s\n")), FULL - 1,
        "at least 2x faster"),
    # fast only because it is wrong on the large, timed inputs
    "forged_fast_but_wrong": (lambda r: _with_answer(r, "ex-fast", (
        "def total_fast(x):\n    return 0.0 if len(x) > 5000 else float(np.sum(np.asarray(x)))\n")), FULL - 1,
        "total_fast (warm-up): the sum of 100000 numbers: expected"),
    # a setsid daemon that holds the answer pipe and burns the CPU must not hold up the batch
    "setsid_daemon": (lambda r: _with_answer(r, "ex-add", (
        "import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        while True:\n            pass\n"
        "    os._exit(0)\n" + GOOD_ADD)), FULL, "7 / 7"),
}


def _deleted(root):
    nb = _solution(root)
    nb.cells = [c for c in nb.cells if c.id not in ("ex-mean", "check-mean")]
    return nb


def _duplicated(root):
    nb = _solution(root)
    i = next(i for i, c in enumerate(nb.cells) if c.id == "ex-add")
    wrong = copy.deepcopy(nb.cells[i])
    wrong.source = "def add(a, b):\n    return a - b\n"
    nb.cells.insert(i, wrong)
    return nb


def _reordered_with_added_cell(root):
    nb = _solution(root)
    cells = {c.id: c for c in nb.cells}
    helper = nbformat.v4.new_code_cell("def _plus(a, b):\n    return np.add(a, b)\n")
    cells["ex-add"].source = "def add(a, b):\n    return _plus(a, b)\n"
    order = [c for c in nb.cells if c.id not in ("ex-mean", "ex-add")]
    at = next(i for i, c in enumerate(order) if c.id == "setup") + 1
    nb.cells = order[:at] + [cells["ex-mean"], helper, cells["ex-add"]] + order[at:]
    return nb


def _retyped(root):
    nb = _solution(root)
    i = next(i for i, c in enumerate(nb.cells) if c.id == "ex-mean")
    md = nbformat.v4.new_markdown_cell(nb.cells[i].source)
    md.metadata = nb.cells[i].metadata
    md.id = nb.cells[i].id
    nb.cells[i] = md
    return nb


HOSTILE.update({
    "deleted_cells": (_deleted, 5, "'ex-mean' is missing from the submission"),
    "duplicated_cells": (_duplicated, FULL, "appears 2 times"),
    "reordered_and_added": (_reordered_with_added_cell, FULL, "you added were run too"),
    "retyped_cell": (_retyped, 5, "changed into a markdown cell"),
})


def _child_processes(tag: str = RUN_TAG) -> list[psutil.Process]:
    """Processes of this test run's grading only (another grading on the machine is none of ours)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if tag in " ".join(p.info["cmdline"] or []) or p.environ().get("SWEAT_GRADER_RUN") == tag:
                found.append(p)
        except psutil.Error:
            pass
    return found


def _sandbox_leftovers(prefix: str = SANDBOX_PREFIX) -> list[str]:
    import tempfile

    left = [str(p) for p in Path(tempfile.gettempdir()).glob(f"{prefix}*")]
    for root in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup"):
        left += [str(p) for p in Path(root).glob(f"{prefix}*")] if Path(root).is_dir() else []
    return left


NEEDS_ISOLATION = {"kill_parent", "kill_everything"}


@pytest.fixture(scope="module")
def hostile_batch(grading_course, tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    for name, (make, _, _) in HOSTILE.items():
        if name in NEEDS_ISOLATION and not isolation().namespaces:
            continue  # without a PID namespace it would kill this test process
        made = make(grading_course)
        with warnings.catch_warnings():  # duplicated cells carry duplicate ids on purpose
            warnings.simplefilter("ignore")
            text = made if isinstance(made, str) else nbformat.writes(made)
        (folder / f"{name}.ipynb").write_text(text)
    before = set(_sandbox_leftovers())
    out = tmp_path_factory.mktemp("out")
    grades = grader.grade_batch([folder], grading_course / "labs", LAB, LIMITS, jobs=2, out_dir=out)
    report.rebuild(out)
    return {g.name: g for g in grades}, out, before


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_each_hostile_submission_gets_its_score_and_a_clear_message(hostile_batch, name):
    grades, out, _ = hostile_batch
    if name in NEEDS_ISOLATION and not isolation().namespaces:
        skip_or_fail("no PID namespace here: the grader cannot keep a submission from signalling it")
    _, expected, phrase = HOSTILE[name]
    grade = grades[name]
    feedback = (out / "feedback" / f"{grade.key}.md").read_text()
    assert grade.score == expected, feedback
    assert phrase in feedback, feedback
    assert grade.max_score == FULL


@pytest.mark.slow
def test_the_machine_is_left_as_it_was(hostile_batch):
    grades, out, before = hostile_batch
    assert _child_processes() == [], "a learner's process outlived the grader"
    assert set(_sandbox_leftovers()) <= before, "a sandbox folder or cgroup was left behind"
    assert sorted(p.name for p in out.iterdir()) == ["feedback", "graded", "grades.csv", "reflections.md",
                                                     "results.json"]
    assert not (REPO / "results.json").exists()


@pytest.mark.slow
def test_learner_code_cannot_write_outside_its_sandbox(grading_course, tmp_path):
    from sweatlab.grading import landlock

    if not landlock.abi_version():
        skip_or_fail("this kernel has no Landlock, so writes outside the sandbox are not blocked")
    target = tmp_path / "planted.txt"
    nb = _with_answer(grading_course, "ex-add", (
        f"try:\n    open({str(target)!r}, 'w').write('x')\n    wrote = True\nexcept OSError:\n    wrote = False\n"
        "open('inside.txt', 'w').write('fine')\n"
        "def add(a, b):\n    return 5 if wrote else np.add(a, b)\n"))
    path = tmp_path / "writer.ipynb"
    nbformat.write(nb, path)
    grade = grader.grade_submission(path, grading_course / "labs", LAB, LIMITS)
    assert not target.exists(), "learner code wrote outside its sandbox"
    assert grade.score == FULL and grade.cell_errors == []


@pytest.mark.slow
def test_outputs_csv_feedback_and_gradescope_json(hostile_batch):
    grades, out, _ = hostile_batch
    rows = list(csv.DictReader(open(out / "grades.csv", encoding="utf-8")))
    assert len(rows) == len(grades)
    by_name = {r["submission"]: r for r in rows}
    assert by_name["good"]["total"] == "7" and by_name["empty"]["total"] == "0"
    assert by_name["good"]["add: adds two integers"] == "1"
    results = json.loads((out / "results.json").read_text())["submissions"]
    good = results["good"]
    assert good["score"] == 7 and sum(t["max_score"] for t in good["tests"]) == 7
    names = " | ".join(t["name"] for t in good["tests"])
    assert "Exercise 1: adding numbers and arrays" in names and "fast is faster" in names
    assert all(set(t) >= {"name", "score", "max_score", "output"} for t in good["tests"])
    fake = results["fake_results"]
    assert fake["score"] == 4, "printed or written fake scores must earn nothing"


def test_limits_are_reported(grading_course):
    grade = grader.grade_submission(grading_course / "solution.ipynb", grading_course / "labs", LAB, LIMITS)
    assert grade.score == FULL and grade.cell_errors == []
    assert any(n.startswith("processes:") for n in grade.limit_notes)


@pytest.fixture
def hidden_loaded():
    """The fixture's hidden tests, registered for one test only (the registry is per process)."""
    from sweatlab.kit.checks import REGISTRY

    grader.load_hidden_tests(FIXTURES / "grading" / "hidden")
    yield
    REGISTRY[LAB] = [t for t in REGISTRY[LAB] if not t.hidden]
    sys.modules.pop("sweatlab_hidden_hidden_gradefix", None)


def test_hidden_tests_count_and_never_show_their_source(grading_course, tmp_path, hidden_loaded):
    wrong = _with_answer(grading_course, "ex-mean", "def mean(x):\n    return sum(x) / 2\n")
    path = tmp_path / "98_gradefix_student.ipynb"
    nbformat.write(wrong, path)
    grade = grader.grade_submission(path, grading_course / "labs", None, LIMITS)
    assert grade.lab == LAB
    hidden = [r for r in grade.results if r.name == "mean of negative and fractional values"]
    assert hidden and not hidden[0].passed and grade.max_score == FULL + 1
    report.write_outputs([grade], tmp_path / "out")
    text = (tmp_path / "out" / "feedback" / f"{grade.key}.md").read_text()
    assert "mean of negative and fractional values" in text and "divide by the number of values" in text
    assert "SECRET_CASE_MARKER" not in text and "-3.5" not in text


def test_reconstruction_takes_only_answer_cells_from_the_submission(grading_course):
    pristine = nbformat.read(grading_course / "labs" / f"{LAB}.ipynb", as_version=4)
    sub = _solution(grading_course)
    for cell in sub.cells:
        if cell.id == "setup":
            cell.source = "raise RuntimeError('a learner edited the setup cell')"
    cells, notes = reconstruct(pristine, sub)
    by_id = {c.cell_id: c for c in cells}
    assert "a learner edited" not in by_id["setup"].source
    assert by_id["ex-add"].origin == "answer" and "np.add" in by_id["ex-add"].source
    assert "check-add" not in by_id and "demo-timing" not in by_id, "check and demo cells are not run"
    assert notes == []


def test_the_lab_layout_comes_from_the_cells_metadata_not_the_headings(grading_course):
    from sweatlab.grading.pipeline import lab_layout

    pristine = nbformat.read(grading_course / "labs" / f"{LAB}.ipynb", as_version=4)
    layout = lab_layout(pristine)
    assert layout.exercises == ("add", "mean", "fast")
    assert layout.titles == {"add": "Exercise 1: adding numbers and arrays", "mean": "Exercise 2: the mean of a list",
                             "fast": "Exercise 3: a faster sum"}
    assert layout.answer_cells == {"add": ["ex-add"], "mean": ["ex-mean"], "fast": ["ex-fast"]}, \
        "the setup cell with the given total_loop answers nothing"
    assert layout.reflections == {"reflect-speed": "Why is np.sum faster than the loop?"}

    renamed = copy.deepcopy(pristine)  # headings and check() calls say other things: the metadata decides
    for cell in renamed.cells:
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace("Exercise 1: adding numbers and arrays", "Exercise 9: something else")
        if cell.id == "check-mean":
            cell.source = 'check("add")'
        if cell.id == "ex-add":
            cell.metadata["sweat"]["exercise"] = ["add", "mean"]  # one answer cell serving two exercises
    again = lab_layout(renamed)
    assert again.titles == layout.titles and again.exercises == layout.exercises
    assert again.answer_cells == {"add": ["ex-add"], "mean": ["ex-add", "ex-mean"], "fast": ["ex-fast"]}

    bare = copy.deepcopy(pristine)  # the headings and check("x") calls alone name nothing
    for cell in bare.cells:
        for key in ("exercise", "title"):
            cell.metadata.get("sweat", {}).pop(key, None)
    assert lab_layout(bare).titles == {} and lab_layout(bare).answer_cells == {} and lab_layout(bare).exercises == ()


@pytest.mark.parametrize("text, phrase", [("", "empty"), ("{", "not valid notebook JSON"),
                                          ('{"a": 1}', "not a Jupyter notebook"), ("\x00\xff", "not a notebook")])
def test_unreadable_files_say_what_to_do(tmp_path, text, phrase):
    path = tmp_path / "x.ipynb"
    path.write_text(text, encoding="latin-1")
    with pytest.raises(SubmissionError, match=phrase):
        read_submission(path)


@pytest.mark.slow
def test_grade_cli_writes_outputs_and_runs_selftest(grading_course, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(FIXTURES / "grading")}
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "import sys, checks_gradefix; from sweatlab.tools.cli import main; sys.exit(main(sys.argv[1:]))",
           "--root", str(grading_course), "grade", str(grading_course / "solution.ipynb"),
           "--lab", LAB, "--out", str(out), "--timeout", "60"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 / 7" in result.stdout and (out / "grades.csv").exists()
