"""Shared fixtures: a scratch copy of the fixture course, and the CI switch."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# Modules whose tests time code (speed ratios, a prediction against a measurement, thread and core
# counts) or hold the grader's cores: `make test` runs them alone, after the others have run on two
# workers, so no other test shares the machine while they measure.
TIMED_MODULES = {
    "test_checks_core", "test_grade_lab01", "test_grading_batch", "test_hardware", "test_lab00", "test_lab01",
    "test_lab02", "test_lab_contract", "test_progress", "test_timing",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.stem in TIMED_MODULES:
            item.add_marker(pytest.mark.timed)


def skip_or_fail(reason: str) -> None:
    """Skip with a reason on a learner's machine; fail under CI=true, where nothing may skip silently."""
    if ON_CI:
        pytest.fail(f"{reason} (CI=true: this check may not be skipped)")
    pytest.skip(reason)


def copy_fixture_course(dest: Path) -> Path:
    """A course folder in ``dest`` with the fixture lab source, ready for generation."""
    shutil.copytree(FIXTURES / "course", dest, dirs_exist_ok=True)
    (dest / "pyproject.toml").write_text("# fixture course root\n")
    (dest / "labs").mkdir(exist_ok=True)
    (dest / "tests").mkdir(exist_ok=True)
    shutil.copy(REPO / "tests" / "nbval_sanitize.cfg", dest / "tests" / "nbval_sanitize.cfg")
    return dest


@pytest.fixture
def fixture_course(tmp_path) -> Path:
    return copy_fixture_course(tmp_path / "course")


@pytest.fixture(scope="session")
def executed_course(tmp_path_factory) -> Path:
    """The fixture course with its solution executed and its lab generated (once per session).

    Tests that modify files must copy it first (see ``course_copy``).
    """
    from sweatlab import course as C

    root = copy_fixture_course(tmp_path_factory.mktemp("executed") / "course")
    c = C.Course(root)
    for src in c.sources():
        C.execute_solution(c, src)
    C.build_labs(c)
    return root


@pytest.fixture
def course_copy(executed_course, tmp_path) -> Path:
    dest = tmp_path / "course"
    shutil.copytree(executed_course, dest)
    return dest


@pytest.fixture(scope="session")
def grading_course(tmp_path_factory) -> Path:
    """A course with the grading fixture lab (98_gradefix): its blank lab and ``solution.ipynb``."""
    import nbformat

    from sweatlab import course as C

    root = tmp_path_factory.mktemp("grading") / "course"
    shutil.copytree(FIXTURES / "grading", root, ignore=shutil.ignore_patterns("hidden", "__pycache__"))
    (root / "pyproject.toml").write_text("")
    (root / "labs").mkdir()
    course = C.Course(root)
    C.build_labs(course)
    nbformat.write(C.load_source(course.sources()[0]), root / "solution.ipynb")
    return root


def grading_solution(root: Path):
    """The grading fixture lab's solution notebook (a fresh copy to change)."""
    import nbformat

    return nbformat.read(root / "solution.ipynb", as_version=4)


def solution_with_answer(root: Path, cell_id: str, source: str):
    """The fixture solution with one answer cell's code replaced: a submission to grade."""
    nb = grading_solution(root)
    [cell] = [c for c in nb.cells if c.id == cell_id]
    cell.source = source
    return nb


def cells_with_role(nb, role: str) -> list:
    """The code cells of a course notebook with this ``sweat`` role, in order."""
    return [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("sweat", {}).get("role") == role]


def lab_namespace(nb, name: str = "__main__") -> dict:
    """Run a lab's setup and answer cells (not its measurements) in a fresh namespace, in quick mode."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEAT_QUICK", "1")
        mp.setenv("MPLBACKEND", "Agg")
        namespace: dict = {"__name__": name}
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.metadata.get("sweat", {}).get("role") in ("setup", "answer"):
                exec(compile(cell.source, f"<cell {cell.id}>", "exec"), namespace)
        return namespace


# ---------------------------------------------------------------------------------------------
# One lab's solution, run once per test module: tests/test_labNN.py sets SOURCE (its
# solutions/NN_topic.py) and, where the lab's code needs a module name of its own, NAMESPACE.
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def solution(request):
    """The lab's solution notebook, read from the test module's ``SOURCE``."""
    from sweatlab import course as C

    return C.load_source(request.module.SOURCE)


@pytest.fixture(scope="module")
def solved(solution, request) -> dict:
    """The solution's setup and answer cells run: the namespace the checks call into."""
    return lab_namespace(solution, getattr(request.module, "NAMESPACE", "__main__"))


@pytest.fixture(scope="module")
def blank(solution, request) -> dict:
    """The blank lab's setup and answer cells run: every exercise still a stub."""
    from sweatlab import course as C

    return lab_namespace(C.make_lab(solution), getattr(request.module, "NAMESPACE", "__main__"))
