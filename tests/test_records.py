"""sweatlab.measure.records: one JSON line per record, JSON-able values only, the results folder rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sweatlab.measure import records
from sweatlab.measure.config import course_root
from sweatlab.measure.records import load_records, record, results_dir


@pytest.fixture
def results(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "results"
    monkeypatch.setenv("SWEAT_RESULTS_DIR", str(folder))
    return folder


def test_record_appends_one_line_with_lab_values_machine_versions_and_utc(results):
    rec = record("00_measure", gflops=123.5, threads=1)
    record("00_measure", gflops=130.0, threads=2)
    lines = (results / records.RECORDS_FILE).read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first == rec
    assert first["lab"] == "00_measure" and first["values"] == {"gflops": 123.5, "threads": 1}
    assert first["machine"]["logical_cores"] >= 1
    assert first["versions"]["numpy"] == np.__version__ and first["versions"]["python"]
    assert first["utc"].endswith("+00:00")


def test_numpy_scalars_become_plain_json_numbers(results):
    rec = record("lab", f=np.float32(1.5), i=np.int64(3), b=np.bool_(True), nested={"xs": [np.float64(0.25)]})
    assert rec["values"] == {"f": 1.5, "i": 3, "b": True, "nested": {"xs": [0.25]}}
    assert type(rec["values"]["i"]) is int and type(rec["values"]["b"]) is bool


def test_non_json_value_is_a_type_error_naming_the_key(results):
    with pytest.raises(TypeError, match=r"values\['timings'\] is a numpy array"):
        record("lab", timings=np.zeros(3))
    with pytest.raises(TypeError, match=r"values\['thing'\] is a object"):
        record("lab", thing=object())
    with pytest.raises(TypeError, match=r"values\['xs'\]\[1\]"):
        record("lab", xs=[1.0, {1, 2}])
    assert not (results / records.RECORDS_FILE).exists()  # nothing half-written


def test_nan_is_refused_naming_the_key(results):
    with pytest.raises(ValueError, match=r"values\['bw'\].*None"):
        record("lab", bw=float("nan"))


def test_a_value_may_be_called_lab(results):
    rec = record("profile", lab="not the lab name")
    assert rec["lab"] == "profile" and rec["values"]["lab"] == "not the lab name"


def test_empty_lab_name_is_refused(results):
    with pytest.raises(ValueError, match="lab"):
        record("", x=1)


def test_load_records_filters_by_lab_and_skips_broken_lines(results):
    record("a", x=1)
    record("b", x=2)
    with open(results / records.RECORDS_FILE, "a") as f:
        f.write('{"lab": "a", "values": {"x": 3}, "cut sh')  # an interrupted write
    record("a", x=4)
    assert [r["values"]["x"] for r in load_records("a")] == [1, 4]
    assert len(load_records()) == 3


def test_load_records_with_no_file_is_empty(results):
    assert load_records() == []


def test_results_default_to_the_course_root(tmp_path, monkeypatch):
    monkeypatch.delenv("SWEAT_RESULTS_DIR", raising=False)
    course = tmp_path / "course"
    (course / "labs").mkdir(parents=True)
    (course / "pyproject.toml").write_text("[project]\nname='x'\n")
    monkeypatch.chdir(course / "labs")
    assert results_dir() == (course / "results").resolve()


def test_solutions_folder_also_marks_the_course_root(tmp_path, monkeypatch):
    monkeypatch.delenv("SWEAT_RESULTS_DIR", raising=False)
    (tmp_path / "c" / "solutions").mkdir(parents=True)
    (tmp_path / "c" / "pyproject.toml").write_text("")
    (tmp_path / "c" / "deep" / "er").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "c" / "deep" / "er")
    assert results_dir() == (tmp_path / "c" / "results").resolve()


def _outside_any_course(folder: Path) -> bool:
    return course_root(folder) is None  # no folder at or above it is a course


def test_without_a_course_root_results_go_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("SWEAT_RESULTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    if not _outside_any_course(tmp_path):
        pytest.skip("a parent of the temp folder looks like a course root")
    assert results_dir() == tmp_path.resolve() / "results"


def test_one_rule_finds_the_course_folder_everywhere(tmp_path, monkeypatch):
    """pyproject.toml beside solutions/ or labs/ marks the course; either alone is some other folder. The CLI's
    default --root and progress use the same finder as the results folder."""
    from sweatlab.course.layout import CourseError, find_root

    if not _outside_any_course(tmp_path):
        pytest.skip("a parent of the temp folder looks like a course root")
    other = tmp_path / "other-project"
    (other / "solutions").mkdir(parents=True)  # solutions/ without pyproject.toml: not a course
    (other / "pkg").mkdir()
    (other / "pkg" / "pyproject.toml").write_text("")  # pyproject.toml without solutions/ or labs/: not a course
    assert course_root(other / "pkg") is None and course_root(other / "solutions") is None
    with pytest.raises(CourseError, match="not inside the course folder"):
        find_root(other / "pkg")
    monkeypatch.delenv("SWEAT_RESULTS_DIR", raising=False)
    monkeypatch.chdir(other / "pkg")
    assert results_dir() == (other / "pkg" / "results").resolve()

    grader_copy = tmp_path / "autograder" / "course"  # Gradescope's: no solutions/, the blank labs/
    (grader_copy / "labs").mkdir(parents=True)
    (grader_copy / "pyproject.toml").write_text("")
    assert course_root(grader_copy / "labs") == find_root(grader_copy / "labs") == grader_copy.resolve()
    monkeypatch.chdir(grader_copy / "labs")
    assert results_dir() == (grader_copy / "results").resolve()


def test_record_prints_nothing(results, capfd):
    record("lab", x=1.0)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_display_path_is_relative_inside_the_course(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "labs").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SWEAT_RESULTS_DIR", raising=False)
    assert records.records_path_for_display() == "results/records.jsonl"
    monkeypatch.setenv("SWEAT_RESULTS_DIR", "/elsewhere/res")
    assert records.records_path_for_display() == "/elsewhere/res/records.jsonl"
