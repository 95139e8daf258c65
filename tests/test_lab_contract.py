"""The lab contract, declared once: what every lab `solutions/NN_topic.py` must have, checked for each.

- its solution passes every public check, and its blank lab fails every one as "not written";
- a `check("x")` cell for each registered exercise, in the order the checks module registers them;
- a deck `slides/NN_topic.md` that builds;
- one `lab.record(...)` call carrying exactly the keys the lab declares;
- an opening cell stating the measured compute time (quick and full mode) and the estimated work time.

What is particular to one lab (the wrong answers each check must reject) stays in `tests/test_labNN.py`.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest

from sweatlab import course as C
from sweatlab.course import slides
from sweatlab.kit.checks import LabChecks

from conftest import REPO, cells_with_role, lab_namespace

SOURCES = C.Course(REPO).sources()


@pytest.fixture(scope="module", params=SOURCES, ids=[s.stem for s in SOURCES])
def lab(request):
    """(name, solution notebook) of one lab."""
    return request.param.stem, C.load_source(request.param)


@pytest.fixture(scope="module")
def solved(lab):
    return lab_namespace(lab[1])


@pytest.fixture(scope="module")
def blank(lab):
    return lab_namespace(C.make_lab(lab[1]))


def _exercises(name: str) -> list[str]:
    try:
        return LabChecks(name).exercises
    except KeyError:
        pytest.fail(f"{name} has no checks module: write lib/sweatlab/labs/lab{name}/checks.py")


def test_the_course_has_labs():
    assert [s.stem for s in SOURCES][:2] == ["00_measure", "01_matmul"]


# ---------------------------------------------------------------------------------------------
# Checks: the solution passes them all, the blank lab fails them all, one check cell each
# ---------------------------------------------------------------------------------------------

def test_the_solution_passes_every_public_check(lab, solved):
    name, _ = lab
    failures = {}
    for exercise in _exercises(name):
        results = LabChecks(name).results(exercise, solved)
        if not results or not all(r.passed for r in results):
            failures[exercise] = [f"{r.name}: {r.message}" for r in results if not r.passed] or ["no tests"]
    assert not failures, failures


def test_the_blank_lab_fails_every_check_as_not_written(lab, blank):
    name, _ = lab
    wrong = {}
    for exercise in _exercises(name):
        results = LabChecks(name).results(exercise, blank)
        bad = [r for r in results if r.passed or not r.not_written or "not written" not in r.message]
        if bad or not results:
            wrong[exercise] = [f"{r.name}: {'passed' if r.passed else r.message}" for r in bad] or ["no tests"]
    assert not wrong, wrong


def test_each_exercise_has_one_check_cell_in_the_registered_order(lab):
    name, nb = lab
    cells = cells_with_role(nb, "check")
    calls = [re.fullmatch(r"""from sweatlab\.kit import check\n+check\(\s*["'](\w+)["']\s*\)""", c.source.strip())
             for c in cells]
    odd = [c.id for c, m in zip(cells, calls) if not m]
    assert not odd, f"check cells must hold only `from sweatlab.kit import check` and check(\"exercise\"): {odd}"
    assert [m.group(1) for m in calls] == _exercises(name), (
        "the check cells and the exercises registered in the checks module differ (names or order)")


# ---------------------------------------------------------------------------------------------
# The deck
# ---------------------------------------------------------------------------------------------

def test_the_deck_exists_and_builds(lab, tmp_path):
    name, _ = lab
    deck = REPO / "slides" / f"{name}.md"
    assert deck.is_file(), f"no deck for {name}: write slides/{name}.md (see slides/README.md)"
    page = slides.build_deck(deck, tmp_path / "x.html").read_text()
    assert page.count('<section class="slide') >= 2


# ---------------------------------------------------------------------------------------------
# The record: one records.record(...) call carrying exactly the declared keys
# ---------------------------------------------------------------------------------------------

def _parse(source: str) -> ast.Module | None:
    """A code cell's syntax tree; IPython lines (%magic, !shell) are left out."""
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        return ast.parse(code)
    except SyntaxError:
        return None


def _record_calls(tree: ast.Module | None) -> list[ast.Call]:
    def is_record(func) -> bool:
        return (isinstance(func, ast.Attribute) and func.attr == "record" and isinstance(func.value, ast.Name)
                and func.value.id in ("lab", "records")) or (isinstance(func, ast.Name) and func.id == "record")

    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and is_record(n.func)] if tree else []


def _module_literals(nb) -> dict:
    """Names the solution binds once, at the top level of a code cell, to a literal (``RUNGS = [...]``)."""
    found: dict = {}
    for cell in nb.cells:
        tree = _parse(cell.source) if cell.cell_type == "code" else None
        for stmt in tree.body if tree else []:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                try:
                    value = ast.literal_eval(stmt.value)
                except ValueError:
                    value = None
                name = stmt.targets[0].id
                found[name] = value if name not in found or found[name] == value else None
    return found


def _static_keys(node: ast.expr, literals: dict) -> set[str] | None:
    """The keys of a dict literal, or of ``{k: ... for k in LITERAL}``; None when they depend on a run."""
    if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) for k in node.keys):
        return {k.value for k in node.keys}
    if isinstance(node, ast.DictComp) and len(node.generators) == 1:
        gen = node.generators[0]
        if gen.ifs or not (isinstance(gen.target, ast.Name) and isinstance(node.key, ast.Name)
                           and node.key.id == gen.target.id):
            return None
        try:
            keys = ast.literal_eval(gen.iter)
        except ValueError:
            keys = literals.get(gen.iter.id) if isinstance(gen.iter, ast.Name) else None
        return {str(k) for k in keys} if isinstance(keys, (list, tuple)) else None
    return None


def _declared_keys(name: str, cell) -> list[str] | None:
    """The keys the lab declares: ``record_keys`` in its record cell's sweat metadata."""
    return C.sweat_of(cell).get("record_keys")


def test_the_record_carries_the_keys_the_lab_declares(lab):
    name, nb = lab
    found = [(cell, call) for cell in nb.cells if cell.cell_type == "code"
             for call in _record_calls(_parse(cell.source))]
    assert len(found) == 1, f"{name} must call lab.record(...) once, in its record cell; found {len(found)}"
    [(cell, call)] = found
    where = f"{name}, cell '{cell.id}'"
    through_kit = isinstance(call.func, ast.Attribute) and call.func.value.id == "lab"
    assert through_kit and not call.args, f"{where}: record through the kit, lab.record(key=value, ...)"
    assert all(kw.arg for kw in call.keywords), f"{where}: name every recorded value (no **values)"
    recorded = [kw.arg for kw in call.keywords]
    declared = _declared_keys(name, cell)
    suggestion = json.dumps({**C.sweat_of(cell), "record_keys": recorded})
    assert declared is not None, f"{where}: declare the record's keys on its header: # %% sweat={suggestion}"
    assert sorted({k.split(".")[0] for k in declared}) == sorted(recorded), (
        f"{where}: records {recorded}, declares {declared}; update one of them")
    literals = _module_literals(nb)
    values = {kw.arg: kw.value for kw in call.keywords}
    for parent in sorted({k.split(".")[0] for k in declared if "." in k}):
        nested = {k.split(".", 1)[1] for k in declared if k.startswith(parent + ".")}
        keys = _static_keys(values[parent], literals)
        assert keys is not None, (f"{where}: cannot tell which keys {parent}= holds without running the lab: "
                                  "write it as a dict literal or a comprehension over a literal list")
        assert keys == nested, f"{where}: {parent}= holds {sorted(keys)}, declares {sorted(nested)}"


# ---------------------------------------------------------------------------------------------
# The opening cell: time, measured and estimated
# ---------------------------------------------------------------------------------------------

_SPAN = r"\d+(?:\.\d+)?(?:\s*(?:-|–|to)\s*\d+(?:\.\d+)?)?"
_SECONDS_OR_MINUTES = _SPAN + r"\s*(?:s|sec|seconds?|min|minutes?)\b"
_MINUTES_OR_HOURS = _SPAN + r"\s*(?:min|minutes?|h|hours?)\b"


def test_the_opening_cell_states_compute_time_measured_and_work_time_estimated(lab):
    name, nb = lab
    first = nb.cells[0]
    assert first.cell_type == "markdown", f"{name}: the lab opens with a markdown cell (title, objectives, time)"
    text = " ".join(first.source.split())
    assert re.search(r"\bcompute\b", text, re.IGNORECASE) and re.search(r"\bmeasured\b", text, re.IGNORECASE), (
        f"{name}: the opening cell says how long the notebook computes, measured (e.g. 'Compute, measured ...')")
    for mode in ("quick", "full"):
        assert re.search(_SECONDS_OR_MINUTES + rf"[^.;]{{0,40}}?\b{mode}\b", text, re.IGNORECASE), (
            f"{name}: the opening cell gives the compute time in {mode} mode (e.g. '20-35 s in {mode} mode')")
    work = [m for m in re.finditer(_MINUTES_OR_HOURS, text, re.IGNORECASE)
            if re.search(r"\bestimated\b", text[max(m.start() - 120, 0):m.end() + 120], re.IGNORECASE)]
    assert work, f"{name}: the opening cell gives the work time, estimated (e.g. 'about 80 minutes, estimated')"


# ---------------------------------------------------------------------------------------------
# The README's course map: one row per lab, with a real thumbnail from the solution's run
# ---------------------------------------------------------------------------------------------

def _course_map_rows() -> dict[str, list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Course map", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.fullmatch(r"\d\d", cells[0]):
            rows[cells[0]] = cells
    return rows


def test_the_course_map_has_a_row_with_a_thumbnail(lab):
    name, _ = lab
    row = _course_map_rows().get(name[:2])
    assert row, f"README's course map has no row for lab {name[:2]}: add one (see the other rows)"
    assert len(row) == 6, f"the course map's row {name[:2]} has {len(row)} columns, not 6: {row}"
    _, title, builds, time, needs, plot = row
    assert title and builds and needs, row
    assert "(est.)" in time and "compute" in time, f"row {name[:2]}: estimated work time and measured compute time"
    found = re.fullmatch(r'<img src="(slides/img/(\d\d)_[a-z0-9_]+\.png)" width="\d+" alt="([^"]+)">', plot)
    assert found, f"row {name[:2]}: the key plot should be <img src=\"slides/img/{name[:2]}_....png\" width=... alt=...>"
    path, number, alt = found.groups()
    assert number == name[:2], f"row {name[:2]} shows another lab's plot: {path}"
    assert (REPO / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    solution = (REPO / "solutions" / f"{name}.py").read_text(encoding="utf-8")
    key = path.rsplit("/", 1)[1][3:-4]  # slides/img/NN_key.png -> key
    assert f'"{key}"' in solution and "SWEAT_SLIDES_IMG" in solution, (
        f"{path} should be saved by the solution's own run (its SWEAT_SLIDES_IMG cell names {key!r})")
    assert alt.startswith(f"Lab {name[:2]}:"), alt


def test_the_quick_start_stays_at_two_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert [c.split()[:2] for c in commands] == [["make", "lab"], ["make", "test"]], commands


# ---------------------------------------------------------------------------------------------
# A new lab needs no edit to the library's core: a throwaway lab, made of only the files a new
# lab adds (its source, its package under sweatlab/labs/), is picked up by make check, the
# grader, progress and the class report
# ---------------------------------------------------------------------------------------------

THROWAWAY = "07_throwaway"
THROWAWAY_SOURCE = '''# %% [markdown] sweat={"id": "intro"}
# # Lab 07: a throwaway lab
# Compute, measured: 1 s in quick mode, 1 s in full mode. Work: about 5 minutes, estimated.

# %% sweat={"id": "setup", "role": "setup"}
from sweatlab.kit import open_lab
lab = open_lab("07_throwaway")

# %% [markdown] sweat={"id": "ex-double"}
# ## Exercise 1: double it

# %% sweat={"id": "ex-double-answer", "role": "answer", "exercise": "double"}
def double(x):
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION

# %% sweat={"id": "check-double", "role": "check", "exercise": "double", "title": "Exercise 1: double it"}
from sweatlab.kit import check
check("double")

# %% sweat={"id": "use", "role": "demo"}
twice = lab.mine("double")
print(lab.label("double", "doubled"), twice(21), lab.quote("doubled", twice(21), "{:d}"))

# %% [markdown] sweat={"id": "found"}
# Doubling 21 gave {{doubled}}.

# %% sweat={"id": "record", "role": "demo", "record_keys": ["doubled"]}
lab.record(doubled=twice(21))
'''
THROWAWAY_PACKAGE = {
    "__init__.py": '"""Lab 07, a throwaway lab made by tests/test_lab_contract.py."""\n',
    "checks.py": '''from sweatlab.kit.checks import public_test


@public_test("07_throwaway", "double", points=2)
def doubles(t):
    t.expect_equal(t.call("double", 21), 42, what="double(21)")
''',
    "standins.py": '''from sweatlab.kit.standins import StandIn

STAND_INS = [StandIn("double", 1, lambda: (lambda x: x + x), "doubler")]
''',
}


@pytest.fixture(scope="module")
def throwaway(tmp_path_factory):
    """A course folder holding only the throwaway lab; its package lies outside the library, in a folder
    that SWEAT_LABS_PATH adds to sweatlab.labs (as lib/sweatlab/labs/ would hold it)."""
    import os

    import sweatlab.labs

    root = tmp_path_factory.mktemp("course")
    (root / "pyproject.toml").write_text("")
    (root / "solutions").mkdir()
    (root / "slides").mkdir()
    (root / "solutions" / f"{THROWAWAY}.py").write_text(THROWAWAY_SOURCE)
    extra = tmp_path_factory.mktemp("labs_extra")
    package = extra / f"lab{THROWAWAY}"
    package.mkdir(parents=True)
    for name, text in THROWAWAY_PACKAGE.items():
        (package / name).write_text(text)
    sweatlab.labs.__path__.append(str(package.parent))  # this process; children read PYTHONPATH
    before = os.environ.get("SWEAT_LABS_PATH")
    os.environ["SWEAT_LABS_PATH"] = str(extra)
    try:
        course = C.Course(root)
        out = C.execute_solution(course, root / "solutions" / f"{THROWAWAY}.py", quick=True, timeout_s=300)
        C.build_labs(course)
        yield course, out
    finally:
        sweatlab.labs.__path__.remove(str(package.parent))
        if before is None:
            os.environ.pop("SWEAT_LABS_PATH", None)
        else:
            os.environ["SWEAT_LABS_PATH"] = before
        for mod in [m for m in sys.modules if m.startswith(f"sweatlab.labs.lab{THROWAWAY}")]:
            del sys.modules[mod]


def test_a_new_lab_is_checked_built_and_its_figures_filled_with_no_core_edit(throwaway):
    course, solution = throwaway
    assert C.check_course(course) == []
    import nbformat

    solved = nbformat.read(solution, as_version=4)
    assert "Doubling 21 gave 42." in solved.cells[-2].source
    blank = (course.labs / f"{THROWAWAY}.ipynb").read_text()
    assert "raise NotImplementedError" in blank and "shipped run" in blank


def _notebook_with(course, answer: str | None) -> Path:
    import nbformat

    nb = nbformat.read(course.labs / f"{THROWAWAY}.ipynb", as_version=4)
    if answer is not None:
        [cell] = [c for c in nb.cells if c.get("id") == "ex-double-answer"]
        cell.source = answer
    path = course.root / "submissions" / f"{'solved' if answer else 'blank'}.ipynb"
    path.parent.mkdir(exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_the_grader_and_progress_take_a_new_lab_with_no_core_edit(throwaway):
    from sweatlab.grading import grader
    from sweatlab.tools import progress

    course, _ = throwaway
    solved = _notebook_with(course, "def double(x):\n    return x * 2\n")
    blank = _notebook_with(course, None)
    full = grader.grade_submission(solved, course.labs, lab=THROWAWAY, hidden=False)
    zero = grader.grade_submission(blank, course.labs, lab=THROWAWAY, hidden=False)
    assert (full.score, full.max_score) == (2.0, 2.0), full
    assert zero.score == 0.0 and zero.max_score == 2.0
    mine = progress.check_lab(THROWAWAY, solved, progress.pristine_lab(THROWAWAY, course.root))
    assert [(e.exercise, e.status) for e in mine.exercises] == [("double", "done")]
    untouched = progress.check_lab(THROWAWAY, blank, progress.pristine_lab(THROWAWAY, course.root))
    assert [e.status for e in untouched.exercises] == ["not started"]


def test_the_class_report_takes_a_new_lab_with_no_core_edit(throwaway, tmp_path):
    from sweatlab.tools import class_report as CR

    course, solution = throwaway
    record = {"lab": THROWAWAY, "values": {"doubled": 42}, "utc": "2026-12-01T10:00:00+00:00",
              "machine": {"cpu_model": "Some CPU", "arch": "x86_64", "isa": {"avx2": True}}}
    (tmp_path / "ann.jsonl").write_text(json.dumps(record) + "\n")
    pool = CR.load_folder(tmp_path)
    assert not pool.skipped and pool.entries[0].metrics == {("numbers", "doubled"): 42.0}
    assert "Lab 07: throwaway" in CR.render(pool)
