"""Gradescope: results.json as the autograder specification defines it, the autograder zip, and a run of it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from sweatlab import course as C
from sweatlab.course import layout as L
from sweatlab.kit.checks import TestResult
from sweatlab.tools.cli import main
from sweatlab.grading import gradescope
from sweatlab.grading.submission import SubmissionGrade

from conftest import FIXTURES, REPO

LAB = "98_gradefix"
FULL = 7.0  # the public tests of the fixture lab
HIDDEN_POINTS = 1.0  # its one hidden test
HIDDEN_DIR = FIXTURES / "grading" / "hidden"

# Gradescope's autograder specification ("Output format"): the keys it reads, and their values.
TOP_KEYS = {"score", "execution_time", "output", "output_format", "test_output_format", "test_name_format",
            "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard"}
TEST_KEYS = {"score", "max_score", "status", "name", "name_format", "number", "output", "output_format", "tags",
             "visibility", "extra_data"}
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}
FORMATS = {"text", "html", "simple_format", "md", "ansi"}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def spec_problems(obj) -> list[str]:
    """What in ``obj`` breaks Gradescope's results.json format, or this course's use of it (empty: none)."""
    if not isinstance(obj, dict):
        return ["results.json must hold one JSON object"]
    problems = [f"unknown top-level key {k!r}" for k in sorted(set(obj) - TOP_KEYS)]
    try:
        json.dumps(obj, allow_nan=False)
    except ValueError as exc:
        problems.append(f"not strict JSON: {exc}")
    if not _number(obj.get("score")):
        problems.append("top-level score must be a number")
    if not isinstance(obj.get("execution_time", 0), int) or isinstance(obj.get("execution_time"), bool):
        problems.append("execution_time must be whole seconds")
    if not isinstance(obj.get("output"), str):
        problems.append("output must be a string")
    if obj.get("output_format") != "md":
        problems.append("output_format must be md")
    for key in ("visibility", "stdout_visibility"):
        if key in obj and obj[key] not in VISIBILITY:
            problems.append(f"{key} {obj[key]!r} is not one of {sorted(VISIBILITY)}")
    tests = obj.get("tests")
    if not isinstance(tests, list):
        return problems + ["tests must be a list"]
    numbers = []
    for i, t in enumerate(tests):
        where = f"tests[{i}]"
        if not isinstance(t, dict):
            problems.append(f"{where} is not an object")
            continue
        problems += [f"{where}: unknown key {k!r}" for k in sorted(set(t) - TEST_KEYS)]
        missing = {"score", "max_score", "status", "name", "number", "output", "output_format", "tags",
                   "visibility"} - set(t)
        problems += [f"{where}: no {k}" for k in sorted(missing)]
        if not (_number(t.get("score")) and _number(t.get("max_score")) and 0 <= t["score"] <= t["max_score"]):
            problems.append(f"{where}: score and max_score must be numbers, 0 <= score <= max_score")
        if t.get("status") not in ("passed", "failed"):
            problems.append(f"{where}: status {t.get('status')!r} is not passed or failed")
        elif (t["status"] == "passed") != (t.get("score") == t.get("max_score")):
            problems.append(f"{where}: status {t['status']} but {t.get('score')} / {t.get('max_score')} points")
        if not (isinstance(t.get("name"), str) and t["name"]):
            problems.append(f"{where}: name must be a non-empty string")
        if not (isinstance(t.get("number"), str) and re.fullmatch(r"\d+\.\d+", t["number"])):
            problems.append(f"{where}: number {t.get('number')!r} is not like '3.1'")
        numbers.append(t.get("number"))
        if not isinstance(t.get("output"), str):
            problems.append(f"{where}: output must be a string")
        if t.get("output_format") != "md":
            problems.append(f"{where}: output_format must be md")
        if not (isinstance(t.get("tags"), list) and all(isinstance(x, str) for x in t["tags"])):
            problems.append(f"{where}: tags must be a list of strings")
        if t.get("visibility") not in VISIBILITY:
            problems.append(f"{where}: visibility {t.get('visibility')!r} is not one of {sorted(VISIBILITY)}")
        hidden = "hidden" in (t.get("tags") or [])
        if hidden and t.get("visibility") != "after_published":
            problems.append(f"{where}: a hidden test must be after_published, not {t.get('visibility')!r}")
        if not hidden and t.get("visibility") != "visible":
            problems.append(f"{where}: a public test must be visible")
    if len(set(numbers)) != len(numbers):
        problems.append(f"test numbers repeat: {numbers}")
    if _number(obj.get("score")) and all(isinstance(t, dict) and _number(t.get("score")) for t in tests):
        if abs(obj["score"] - sum(t["score"] for t in tests)) > 1e-6:
            problems.append("the top-level score is not the sum of the tests' scores")
    for i, entry in enumerate(obj.get("leaderboard", [])):
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str)
                and (_number(entry.get("value")) or isinstance(entry.get("value"), str))
                and entry.get("order", "desc") in ("asc", "desc") and set(entry) <= {"name", "value", "order"}):
            problems.append(f"leaderboard[{i}] is not {{name, value, order}}: {entry!r}")
    return problems


# ---------------------------------------------------------------------------------------------
# results_object
# ---------------------------------------------------------------------------------------------

def _result(exercise, name, points, max_points, passed, message="", traceback="", hidden=False, metrics=None):
    return SimpleNamespace(lab=LAB, exercise=exercise, name=name, points=points, max_points=max_points,
                           passed=passed, message=message, traceback=traceback, not_written=False,
                           hidden=hidden, metrics=metrics or {})


def _synthetic_grade():
    return SimpleNamespace(
        name="Ada Lovelace", path="/somewhere/98_gradefix.ipynb", lab=LAB, seconds=12.6,
        notes=["cell 'ex-mean' is missing from the submission\nthe lab's stub ran instead",
               "cell 'ex_add' appears 2 times; the last one was run"],
        cell_errors=["cell 'ex-add' raised ValueError: bad ```fence``` inside"],
        limit_notes=["time: 60 s per cell"],
        exercise_titles={"strides": "Exercise 3: strides of the innermost loop", "fast": "Exercise 2: Fast sums"},
        results=[
            _result("add", "adds two integers", 1, 1, True),
            _result("strides", "ikj is right", 2, 2, True),
            _result("strides", "ikj is faster", 0, 1, False, "ikj should be 2x faster; it was 1.1x",
                    traceback="File <cell ex-strides>, line 3\nZeroDivisionError",
                    metrics={"speed-up of matmul_numba_ikj": 1.1}),
            _result("strides", "a tall, thin product", 0, 2, False, "matmul(a, b) for 7x2 @ 2x9: wrong",
                    traceback="SECRET_HIDDEN_FRAME", hidden=True),
            _result("fast", "fast is faster", 1, 1, True, metrics={"speed-up of total_fast": 12.3456789,
                                                                  "not a number": float("nan")}),
        ])


def test_results_object_follows_the_spec():
    obj = gradescope.results_object(_synthetic_grade())
    assert spec_problems(obj) == []
    assert obj["score"] == 4 and obj["execution_time"] == 13
    tests = {t["number"]: t for t in obj["tests"]}
    assert list(tests) == ["1.1", "2.1", "3.1", "3.2", "3.3"], "numbered by exercise as the lab names them, in order"
    assert tests["3.1"]["name"].startswith("Exercise 3: strides of the innermost loop")
    assert tests["1.1"]["name"].startswith("add"), "no title: the exercise key"
    assert tests["3.2"]["status"] == "failed" and "it was 1.1x" in tests["3.2"]["output"]
    assert "ZeroDivisionError" in tests["3.2"]["output"], "a public test shows the learner's traceback"
    assert tests["3.3"]["tags"] == ["strides", "hidden"] and tests["3.3"]["visibility"] == "after_published"
    assert "7x2 @ 2x9: wrong" in tests["3.3"]["output"] and "SECRET" not in tests["3.3"]["output"]
    assert tests["2.1"]["tags"] == ["fast"] and tests["2.1"]["visibility"] == "visible"
    assert obj["leaderboard"] == [{"name": "speed-up of matmul_numba_ikj", "value": 1.1, "order": "desc"},
                                  {"name": "speed-up of total_fast", "value": 12.3457, "order": "desc"}]
    out = obj["output"]
    assert "- cell 'ex-mean' is missing from the submission\n  the lab's stub ran instead" in out
    assert "cell 'ex\\_add' appears 2 times" in out, "notes are text, not markdown"
    assert "````text\ncell 'ex-add' raised ValueError: bad ```fence``` inside\n````" in out
    assert "Public tests: 3 of 4 passed (4 / 5 points)" in out and "Hidden tests: 1, worth 2 point(s)" in out
    assert "/ 7" not in out, "the maximum with hidden tests is not shown before publication"


def test_results_object_from_the_grader_dataclasses():
    """The real TestResult and SubmissionGrade, built only from the fields every version has."""
    results = [TestResult(LAB, "add", "adds two integers", 1.0, 1.0, True),
               TestResult(LAB, "mean", "mean of a list", 0.0, 2.0, False, "mean([1, 2, 3, 4]): expected 2.5, got 5")]
    grade = SubmissionGrade(name="s", path="s.ipynb", lab=LAB, results=results, seconds=0.4)
    obj = gradescope.results_object(grade)
    assert spec_problems(obj) == []
    assert [t["number"] for t in obj["tests"]] == ["1.1", "2.1"] and obj["score"] == 1
    assert "leaderboard" not in obj and obj["execution_time"] == 0


def test_results_object_other_visibility_and_bad_values():
    obj = gradescope.results_object(_synthetic_grade(), hidden_visibility="after_due_date")
    assert [t["visibility"] for t in obj["tests"] if "hidden" in t["tags"]] == ["after_due_date"]
    assert "shown after the due date" in obj["output"]
    with pytest.raises(ValueError, match="hidden_visibility"):
        gradescope.results_object(_synthetic_grade(), hidden_visibility="later")


def test_write_results_is_strict_json(tmp_path):
    path = gradescope.write_results(_synthetic_grade(), tmp_path / "results" / "results.json")
    assert spec_problems(json.loads(path.read_text(encoding="utf-8"))) == []


# ---------------------------------------------------------------------------------------------
# The zip
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gs_course(tmp_path_factory) -> Path:
    """A course folder: the real pyproject, README and library, plus the fixture lab with its checks."""
    root = tmp_path_factory.mktemp("gradescope") / "course"
    shutil.copytree(FIXTURES / "grading", root, ignore=shutil.ignore_patterns("hidden", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, root / name)
    lib = root / "lib" / "sweatlab"
    shutil.copytree(REPO / "lib" / "sweatlab", lib, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (lib / "labs" / f"lab{LAB}").mkdir()
    (lib / "labs" / f"lab{LAB}" / "__init__.py").write_text("")
    shutil.copy(FIXTURES / "grading" / "checks_gradefix.py", lib / "labs" / f"lab{LAB}" / "checks.py")
    (lib / "__pycache__").mkdir()
    (lib / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"stale")
    (root / "labs").mkdir()
    course = C.Course(root)
    C.build_labs(course)
    nbformat.write(C.load_source(course.sources()[0]), root / "solution.ipynb")
    return root


@pytest.fixture(scope="module")
def autograder_zip(gs_course, tmp_path_factory) -> Path:
    return gradescope.build_autograder(gs_course, LAB, HIDDEN_DIR, tmp_path_factory.mktemp("zip") / "autograder.zip",
                                       pip_args="--no-cache-dir --prefer-binary")


def _mode(info: zipfile.ZipInfo) -> int:
    return (info.external_attr >> 16) & 0o777


def test_the_zip_holds_what_grading_needs(autograder_zip, gs_course):
    with zipfile.ZipFile(autograder_zip) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        names = set(infos)
        assert {"setup.sh", "run_autograder", "course/pyproject.toml", "course/README.md",
                "course/lib/sweatlab/__init__.py", "course/lib/sweatlab/__main__.py",
                "course/lib/sweatlab/grading/gradescope.py", f"course/lib/sweatlab/labs/lab{LAB}/checks.py",
                f"course/labs/{LAB}.ipynb", "course/hidden/hidden_gradefix.py"} <= names
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        assert not [n for n in names if "solution" in n], "solutions never go into the zip"
        assert {n.split("/")[0] for n in names} == {"setup.sh", "run_autograder", "course"}
        assert _mode(infos["run_autograder"]) == 0o755 and _mode(infos["setup.sh"]) == 0o755
        assert _mode(infos["course/pyproject.toml"]) == 0o644
        assert zf.read(f"course/labs/{LAB}.ipynb") == (gs_course / "labs" / f"{LAB}.ipynb").read_bytes()
        setup, run = zf.read("setup.sh").decode(), zf.read("run_autograder").decode()
    assert "PIP_ARGS='--no-cache-dir --prefer-binary'" in setup
    assert "python3 -m venv" in setup and 'install --disable-pip-version-check $PIP_ARGS "$ROOT/source/course"' in setup
    assert "http" not in setup + run and "\r" not in setup + run
    assert f"LAB={LAB}" in run and "HIDDEN=1" in run and "--gradescope-json" in run
    for text in (setup, run):
        check = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr


def test_the_zip_is_reproducible_and_hidden_is_optional(gs_course, autograder_zip, tmp_path):
    again = gradescope.build_autograder(gs_course, LAB, HIDDEN_DIR, tmp_path / "again.zip",
                                        pip_args="--no-cache-dir --prefer-binary")
    assert again.read_bytes() == autograder_zip.read_bytes()
    public_only = gradescope.build_autograder(gs_course, LAB, None, tmp_path / "public.zip")
    with zipfile.ZipFile(public_only) as zf:
        assert not [n for n in zf.namelist() if n.startswith("course/hidden")]
        assert "HIDDEN=0" in zf.read("run_autograder").decode()
        assert "PIP_ARGS=''" in zf.read("setup.sh").decode()


def test_building_says_what_is_missing(gs_course, tmp_path):
    with pytest.raises(gradescope.AutograderError, match="does not exist"):
        gradescope.build_autograder(gs_course, LAB, tmp_path / "nowhere", tmp_path / "a.zip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(gradescope.AutograderError, match=r"no hidden tests \(\*\.py\)"):
        gradescope.build_autograder(gs_course, LAB, tmp_path / "empty", tmp_path / "a.zip")
    with pytest.raises(gradescope.AutograderError, match="the lab is missing"):
        gradescope.build_autograder(gs_course, "97_nolab", None, tmp_path / "a.zip")
    assert not (tmp_path / "a.zip").exists() and not list(tmp_path.glob("*.partial"))


def test_resolve_lab_by_number_name_or_prefix(tmp_path):
    """The gradescope verb names its lab as every verb does: the course's one resolver over labs/."""
    for name in ("01_matmul", "01_matmul_numba", "02_cache", "README"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    labs = L.lab_names(tmp_path)
    assert labs == ["01_matmul", "01_matmul_numba", "02_cache"], "README is not a lab"
    assert L.resolve_lab("02", labs) == "02_cache"
    assert L.resolve_lab("01_matmul", labs) == "01_matmul", "an exact name wins over a prefix"
    assert L.resolve_lab("01_matmul_n", labs) == "01_matmul_numba"
    assert L.resolve_lab("labs/02_cache.ipynb", labs) == L.resolve_lab("02_cache.py", labs) == "02_cache"
    with pytest.raises(L.LabNameError, match=r"'01' matches 2 labs \(01_matmul, 01_matmul_numba\)"):
        L.resolve_lab("01", labs)
    with pytest.raises(L.LabNameError, match="no lab matches '07'; the labs are: 01_matmul, 01_matmul_numba, 02_cache"):
        L.resolve_lab("07", labs)
    with pytest.raises(L.LabNameError, match="no lab matches ''"):
        L.resolve_lab("", labs)
    error = pytest.raises(L.LabNameError, L.resolve_lab, "07", labs).value
    assert isinstance(error, ValueError) and isinstance(error, L.CourseError) and "\n" not in str(error)


def test_cli_writes_the_zip_and_fails_cleanly(gs_course, tmp_path, capsys):
    out = tmp_path / "gs" / "autograder.zip"
    assert main(["--root", str(gs_course), "gradescope", "98", "--hidden", str(HIDDEN_DIR), "--out", str(out),
                 "--pip-args", "--no-cache-dir --prefer-binary"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and ("KiB" in printed or "MiB" in printed) and zipfile.is_zipfile(out)

    two = tmp_path / "two"
    (two / "labs").mkdir(parents=True)
    for name in ("98_gradefix", "99_other"):
        shutil.copy(gs_course / "labs" / f"{LAB}.ipynb", two / "labs" / f"{name}.ipynb")
    for root, lab, phrase in ((gs_course, "42", "no lab matches '42'"), (two, "9", "matches 2 labs")):
        assert main(["--root", str(root), "gradescope", lab, "--out", str(tmp_path / "x.zip")]) == 2
        err = capsys.readouterr().err
        assert phrase in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "x.zip").exists()


def test_python_dash_m_sweatlab_runs():
    result = subprocess.run([sys.executable, "-m", "sweatlab", "gradescope", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "--hidden" in result.stdout, result.stderr


# ---------------------------------------------------------------------------------------------
# run_autograder in a fake /autograder
# ---------------------------------------------------------------------------------------------

def _fake_autograder(zip_path: Path, where: Path) -> Path:
    """A folder laid out as Gradescope's /autograder: source/ (the zip unpacked), submission/, results/."""
    root = where / "autograder"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(root / "source")
    (root / "submission").mkdir()
    (root / "results").mkdir()
    return root


def _run_autograder(root: Path, python: str = sys.executable, relative: bool = False) -> subprocess.CompletedProcess:
    """``bash run_autograder`` on ``root``; with ``relative``, from its parent with ``AUTOGRADER_ROOT=autograder``."""
    env = {**os.environ, "AUTOGRADER_ROOT": root.name if relative else str(root), "SWEAT_AUTOGRADER_PYTHON": python}
    env.pop("PYTHONPATH", None)
    return subprocess.run(["bash", str(root / "source" / "run_autograder")], capture_output=True, text=True,
                          env=env, timeout=300, cwd=root.parent if relative else root)


def _results(root: Path) -> dict:
    obj = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    assert spec_problems(obj) == [], spec_problems(obj)
    return obj


@pytest.mark.slow
def test_run_autograder_grades_the_solution_with_hidden_tests(autograder_zip, gs_course, tmp_path):
    root = _fake_autograder(autograder_zip, tmp_path)
    folder = root / "submission" / "my work"  # Gradescope keeps the learner's folders, spaces and all
    folder.mkdir()
    shutil.copy(gs_course / "solution.ipynb", folder / f"{LAB}.ipynb")
    (folder / "scratch.ipynb").write_text("{}")  # every notebook is graded; the best one counts
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "scratch-checkpoint.ipynb").write_text("{}")
    (root / "submission" / "notes.txt").write_text("not a notebook")
    run = _run_autograder(root)
    assert run.returncode == 0, run.stdout + run.stderr
    obj = _results(root)
    # Full marks, the speed test included: it is timed from the trusted side, far above its 2x bar
    failed = [t for t in obj["tests"] if t["status"] != "passed"]
    assert failed == [], obj["output"] + "\n" + json.dumps(failed, indent=1) + "\n" + run.stdout[-3000:]
    assert obj["score"] == FULL + HIDDEN_POINTS
    assert obj.get("leaderboard"), "the speed test's metric is on the leaderboard"
    hidden = [t for t in obj["tests"] if "hidden" in t["tags"]]
    assert len(hidden) == 1 and hidden[0]["visibility"] == "after_published"
    assert "mean of negative and fractional values" in hidden[0]["name"]
    assert "SECRET_CASE_MARKER" not in json.dumps(obj)
    assert "scratch" in obj["output"], "the output says which of the notebooks counted"
    assert (root / "grading-out" / "grade.log").exists()


def test_run_autograder_without_a_notebook_still_writes_results(autograder_zip, tmp_path):
    root = _fake_autograder(autograder_zip, tmp_path)
    (root / "submission" / "answers.py").write_text("print('hi')\n")
    run = _run_autograder(root, relative=True)
    assert run.returncode == 0, run.stdout + run.stderr
    obj = _results(root)
    assert obj["score"] == 0 and obj["tests"] == []
    assert ".ipynb" in obj["output"] and f"{LAB}.ipynb" in obj["output"]


def test_run_autograder_reports_a_crashed_grader(autograder_zip, gs_course, tmp_path):
    root = _fake_autograder(autograder_zip, tmp_path)
    shutil.copy(gs_course / "solution.ipynb", root / "submission" / f"{LAB}.ipynb")
    broken = tmp_path / "broken-python"  # a Python whose `-m sweatlab ... grade` crashes
    broken.write_text('#!/bin/sh\nif [ "$1" = -m ]; then echo "RuntimeError: the grader fell over" >&2; exit 3; fi\n'
                      f'exec "{sys.executable}" "$@"\n')
    broken.chmod(0o755)
    run = _run_autograder(root, python=str(broken))
    assert run.returncode == 0, run.stdout + run.stderr
    obj = _results(root)
    assert obj["score"] == 0 and "exit status 3" in obj["output"]
    assert "RuntimeError: the grader fell over" in obj["output"]
