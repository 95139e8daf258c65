"""The `sweatlab` command: each verb reports a bad argument as one clean ERROR line, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from sweatlab.tools.cli import main

from conftest import FIXTURES, REPO, copy_fixture_course


@pytest.fixture
def root(tmp_path):
    course = copy_fixture_course(tmp_path / "course")
    shutil.copytree(FIXTURES / "slides", course / "slides")
    return course


@pytest.mark.parametrize("argv, phrase", [
    (["slides", "99"], "no lab matches '99'"),
    (["build-labs", "99"], "no lab matches '99'"),
    (["execute", "99"], "no lab matches '99'"),
    (["nbval", "99"], "no lab matches '99'"),
    (["nbval", "solutions/99_missing.ipynb"], "no such notebook"),
    (["nbval", "00"], "the executed solution notebook is missing"),
])
def test_an_unknown_lab_or_missing_file_is_one_error_line(root, capsys, argv, phrase):
    assert main(["--root", str(root), *argv]) != 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert err.startswith("ERROR ") and err.count("ERROR") == 1 and phrase in err.splitlines()[0], err


def test_a_deck_with_a_missing_image_is_one_error_line(root, capsys):
    (root / "slides" / "02_broken.md").write_text("# Title\n\n---\n\n![plot](img/missing.png)\n")
    assert main(["--root", str(root), "slides", "02"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR ") and "missing.png" in err and "Traceback" not in err, err


@pytest.mark.parametrize("verb", ["check", "build-labs", "execute", "nbval", "slides"])
def test_a_root_that_is_not_a_course_is_one_error_line(tmp_path, capsys, verb):
    assert main(["--root", str(tmp_path / "nowhere"), verb]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("ERROR ") and "not a course folder" in err and err.count("ERROR") == 1, err
    assert out == ""


def test_python_dash_m_sweatlab_help():
    result = subprocess.run([sys.executable, "-m", "sweatlab", "--help"], capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: sweatlab")
    for verb in ("doctor", "check", "build-labs", "execute", "nbval", "slides", "grade"):
        assert verb in result.stdout
