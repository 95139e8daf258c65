"""The single-source tooling: solutions/*.py -> solutions/*.ipynb -> labs/*.ipynb, and make check."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import nbformat
import pytest

from sweatlab import course as C

SRC_NAME = "00_fixture"


def _src(root: Path) -> Path:
    return root / "solutions" / f"{SRC_NAME}.py"


def _cells_by_id(nb) -> dict:
    return {cell.id: cell for cell in nb.cells}


def test_lab_gets_a_stub_that_raises_and_keeps_the_signature(fixture_course):
    lab = C.make_lab(C.load_source(_src(fixture_course)))
    answer = _cells_by_id(lab)["ex-square-answer"]
    assert "def square(x):" in answer.source
    assert "return np.asarray(x) ** 2" not in answer.source
    assert C.BEGIN not in answer.source and C.END not in answer.source
    namespace = {}
    exec(answer.source, namespace)
    with pytest.raises(NotImplementedError, match="ex-square-answer"):
        namespace["square"]([1, 2])


def test_stub_keeps_the_indentation_of_the_marker():
    source = "def f():\n    x = 1\n        ### BEGIN SOLUTION\n        y = 2\n        ### END SOLUTION\n    return x"
    stub = C.stub_source(source, "ex-f")
    assert "\n        # YOUR CODE HERE\n        raise NotImplementedError(" in stub
    assert stub.endswith("    return x") and "y = 2" not in stub


def test_stub_replaces_every_region_and_keeps_code_between():
    source = "a = 1\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION\nc = 3\n### BEGIN SOLUTION\nd = 4\n### END SOLUTION"
    stub = C.stub_source(source, "ex")
    assert stub.count("raise NotImplementedError") == 2
    assert "a = 1" in stub and "c = 3" in stub and "b = 2" not in stub and "d = 4" not in stub


def test_solution_only_cells_are_dropped_and_outputs_cleared(course_copy):
    solution = nbformat.read(course_copy / "solutions" / f"{SRC_NAME}.ipynb", as_version=4)
    lab = nbformat.read(course_copy / "labs" / f"{SRC_NAME}.ipynb", as_version=4)
    assert any("only in the solution" in c.source for c in solution.cells)
    assert not any("only in the solution" in c.source for c in lab.cells)
    assert len(lab.cells) == len(solution.cells) - 1
    for cell in lab.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert "jupytext" not in lab.metadata, "a lab must not pair itself to a .py file in the learner's folder"


def test_cell_ids_come_from_author_ids_and_never_churn(fixture_course):
    first = C.dumps(C.make_lab(C.load_source(_src(fixture_course))))
    second = C.dumps(C.make_lab(C.load_source(_src(fixture_course))))
    assert first == second
    ids = [cell.id for cell in C.load_source(_src(fixture_course)).cells]
    assert ids[:3] == ["intro", "setup", "ex-square"]
    # the solution-only cell has no author id: it is numbered after the last author id
    assert "check-square__1" in ids


def test_build_labs_writes_only_when_something_changed(fixture_course):
    course = C.Course(fixture_course)
    assert C.build_labs(course) == [course.labs / f"{SRC_NAME}.ipynb"]
    assert C.build_labs(course) == []


def test_check_cells_are_compared_by_nbval(fixture_course):
    nb = C.load_source(_src(fixture_course))
    assert C.CHECK_OUTPUT_TAG in _cells_by_id(nb)["check-square"].metadata["tags"]


def test_check_passes_on_a_course_in_sync(course_copy):
    assert C.check_course(C.Course(course_copy)) == []


def test_solution_is_executed_top_to_bottom_with_outputs(course_copy):
    nb = nbformat.read(course_copy / "solutions" / f"{SRC_NAME}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    check = _cells_by_id(nb)["check-square"]
    assert check.outputs[0]["text"] == "square([1, 2, 3]) = [1, 4, 9]\n"
    assert nb.metadata["kernelspec"]["name"] == C.KERNEL_NAME


def _problems(root: Path) -> list[str]:
    return [str(p) for p in C.check_course(C.Course(root))]


def test_hand_edited_lab_is_reported_with_file_cell_and_fix(course_copy):
    lab_path = course_copy / "labs" / f"{SRC_NAME}.ipynb"
    nb = json.loads(lab_path.read_text())
    nb["cells"][3]["source"] = ["def square(x):\n", "    return x * x  # my answer"]
    lab_path.write_text(json.dumps(nb, indent=1))
    [problem] = _problems(course_copy)
    assert f"labs/{SRC_NAME}.ipynb" in problem
    assert "cell 4 (id 'ex-square-answer')" in problem
    assert "edited by hand" in problem and "make labs" in problem


def test_lab_with_outputs_is_reported(course_copy):
    lab_path = course_copy / "labs" / f"{SRC_NAME}.ipynb"
    nb = nbformat.read(lab_path, as_version=4)
    nb.cells[1].execution_count = 1
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="hi\n")]
    nbformat.write(nb, lab_path)
    problems = _problems(course_copy)
    assert any("carries outputs" in p and "cell 2" in p for p in problems)


def test_lab_with_a_solution_marker_is_reported(course_copy):
    lab_path = course_copy / "labs" / f"{SRC_NAME}.ipynb"
    nb = nbformat.read(lab_path, as_version=4)
    nb.cells[3].source += f"\n{C.BEGIN}\n"
    nbformat.write(nb, lab_path)
    assert any("solution marker" in p for p in _problems(course_copy))


def test_source_and_executed_notebook_disagreeing_is_reported(course_copy):
    src = _src(course_copy)
    src.write_text(src.read_text().replace("[1, 2, 3]", "[1, 2, 4]"))
    C.build_labs(C.Course(course_copy))
    [problem] = _problems(course_copy)
    assert f"solutions/{SRC_NAME}.ipynb" in problem and "differs from 00_fixture.py in source" in problem
    assert "make solutions" in problem


def test_out_of_order_execution_counts_are_reported(course_copy):
    path = course_copy / "solutions" / f"{SRC_NAME}.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    code[1].execution_count = 7
    nbformat.write(nb, path)
    [problem] = _problems(course_copy)
    assert "execution counts are not 1.." in problem and "code cell 2 has 7" in problem


def test_compared_cell_without_output_is_reported(course_copy):
    path = course_copy / "solutions" / f"{SRC_NAME}.ipynb"
    nb = nbformat.read(path, as_version=4)
    _cells_by_id(nb)["check-square"].outputs = []
    nbformat.write(nb, path)
    [problem] = _problems(course_copy)
    assert "no recorded output" in problem and "check-square" in problem


def test_missing_lab_and_orphan_notebook_are_reported(course_copy):
    (course_copy / "labs" / f"{SRC_NAME}.ipynb").rename(course_copy / "labs" / "07_orphan.ipynb")
    problems = _problems(course_copy)
    assert any("student notebook is missing" in p and "make labs" in p for p in problems)
    assert any("07_orphan.ipynb" in p and "no source" in p for p in problems)


BAD_SOURCES = {
    "unbalanced_begin": ('# %% sweat={"id": "ex", "role": "answer"}\nx = 1\n### BEGIN SOLUTION\ny = 2\n',
                         "never closed", "add '### END SOLUTION'"),
    "end_without_begin": ('# %% sweat={"id": "ex", "role": "answer"}\nx = 1\n### END SOLUTION\n',
                          "has no '### BEGIN SOLUTION' before it", "add '### BEGIN SOLUTION'"),
    "nested": ('# %% sweat={"id": "ex", "role": "answer"}\n### BEGIN SOLUTION\n### BEGIN SOLUTION\n'
               'y = 2\n### END SOLUTION\n### END SOLUTION\n', "nested", "cannot nest"),
    "marker_in_markdown": ('# %% [markdown] sweat={"id": "text"}\n# ### BEGIN SOLUTION\n# hello\n',
                           "solution marker in a markdown cell", "markers belong in code cells"),
    "duplicate_id": ('# %% sweat={"id": "a"}\nx = 1\n\n# %% sweat={"id": "a"}\ny = 2\n',
                     "duplicate cell id 'a' (also cell 2)", "give each cell its own sweat id"),
    "misspelt_marker": ('# %% sweat={"id": "ex", "role": "answer"}\n## BEGIN SOLUTION\ny = 2\n### END SOLUTION\n',
                        "looks like a solution marker", "write the marker exactly"),
    "marker_outside_answer": ('# %% sweat={"id": "demo"}\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION\n',
                              "role is not 'answer'", '"role": "answer"'),
    "answer_without_id": ('# %% sweat={"role": "answer"}\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION\n',
                          "needs an author-chosen id", 'sweat={"id": "ex-...", "role": "answer"}'),
    "unknown_role": ('# %% sweat={"id": "x", "role": "anwser"}\ny = 2\n', "unknown role 'anwser'", "use one of"),
}


@pytest.mark.parametrize("name", sorted(BAD_SOURCES))
def test_bad_markup_is_a_clear_error_naming_file_cell_and_fix(tmp_path, name):
    text, problem, fix = BAD_SOURCES[name]
    path = tmp_path / "solutions" / "03_bad.py"
    path.parent.mkdir()
    path.write_text('# %% [markdown] sweat={"id": "intro"}\n# # A lab\n\n' + text)
    with pytest.raises(C.CourseError) as info:
        C.load_source(path)
    message = str(info.value)
    assert message.startswith(f"{path}:"), message
    assert problem in message and fix in message
    assert ", cell 2" in message or ", cell 3" in message


def test_error_points_at_the_line_of_the_cell(tmp_path):
    path = tmp_path / "03_bad.py"
    path.write_text(textwrap.dedent('''\
        # %% [markdown] sweat={"id": "intro"}
        # # A lab

        # %% sweat={"id": "ex", "role": "answer"}
        ### BEGIN SOLUTION
        '''))
    with pytest.raises(C.CourseError) as info:
        C.load_source(path)
    assert info.value.line == 4 and info.value.cell == 2 and info.value.cell_id == "ex"


def test_check_reports_a_broken_source_instead_of_crashing(fixture_course):
    src = _src(fixture_course)
    src.write_text(src.read_text().replace("### END SOLUTION", ""))
    [problem] = _problems(fixture_course)
    assert "never closed" in problem and "ex-square-answer" in problem


def test_an_output_showing_the_authors_path_is_reported(course_copy):
    path = course_copy / "solutions" / f"{SRC_NAME}.ipynb"
    nb = nbformat.read(path, as_version=4)
    _cells_by_id(nb)["timing"].outputs[0]["text"] += f"saved to {course_copy.resolve()}/results/x.json\n"
    nbformat.write(nb, path)
    [problem] = _problems(course_copy)
    assert "shows this machine's path" in problem and "cell_id" not in problem and "'timing'" in problem


def test_marker_errors_carry_problem_fix_and_line_as_fields():
    with pytest.raises(C.MarkerError) as info:
        C.solution_regions("x = 1\n### END SOLUTION\n")
    assert info.value.line == 2 and "has no '### BEGIN SOLUTION' before it" in info.value.problem
    assert info.value.fix.startswith("add '### BEGIN SOLUTION'") and "|" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_selftest_fails_for_a_lab_without_a_checks_module(fixture_course, capsys):
    from sweatlab.tools.cli import main

    C.build_labs(C.Course(fixture_course))
    assert main(["--root", str(fixture_course), "grade", "--selftest"]) == 1
    out = capsys.readouterr().out
    assert any(line.startswith("FAIL 00_fixture") and "no checks module" in line
               and "lib/sweatlab/labs/lab00_fixture/checks.py" in line
               for line in out.splitlines()), out
    assert "skipped" not in out and "1 failed" in out


# ---------------------------------------------------------------------------------------------
# Which cells answer and check which exercise: the metadata the grader and progress read
# ---------------------------------------------------------------------------------------------

INTRO = '# %% [markdown] sweat={"id": "intro"}\n# # A lab\n\n'


def _answer(cell_id: str, exercise=None) -> str:
    meta = {"id": cell_id, "role": "answer"} | ({"exercise": exercise} if exercise is not None else {})
    return f"# %% sweat={json.dumps(meta)}\ndef f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n\n"


def _check(cell_id: str, exercise=None, title=None, call=None) -> str:
    meta = {"id": cell_id, "role": "check"} | ({"exercise": exercise} if exercise is not None else {}) \
        | ({"title": title} if title is not None else {})
    call = exercise if call is None else call
    return f'# %% sweat={json.dumps(meta)}\nfrom sweatlab.kit import check\ncheck("{call}")\n\n'


def _exercise_problems(tmp_path: Path, body: str) -> list[str]:
    from sweatlab.course.check import check_exercises

    path = tmp_path / "solutions" / "05_lab.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(INTRO + body)
    return [str(p) for p in check_exercises(path, C.load_source(path))]


GOOD_EXERCISES = (_answer("ex-a", "a") + _check("check-a", "a", "Exercise 1: the first")
                  + _answer("ex-b", ["b", "c"]) + _check("check-b", "b", "Exercise 2: the second")
                  + _answer("ex-c2", "c") + _check("check-c", "c", "Exercise 3: the third"))


def test_exercise_metadata_in_order_is_accepted(tmp_path):
    assert _exercise_problems(tmp_path, GOOD_EXERCISES) == []


BAD_EXERCISES = {
    "answer_names_none": (_answer("ex-a") + _check("check-a", "a", "Exercise 1: x"),
                          ["cell 2 (id 'ex-a'): this answer cell does not say which exercise it answers",
                           'add "exercise": "<the name its check cell passes to check()>"',
                           "exercise 'a' has a check cell but no answer cell above it"]),
    "check_names_none": (_answer("ex-a", "a") + _check("check-a", title="Exercise 1: x", call="a"),
                         ["(id 'check-a'): this check cell does not say which exercise it checks",
                          "the answer cell names exercise 'a', which no check cell checks",
                          'sweat={"exercise": "a", "title": "Exercise N: ..."}']),
    "no_title": (_answer("ex-a", "a") + _check("check-a", "a"),
                 ["the check cell of exercise 'a' has no title \"Exercise 1: ...\"",
                  'add "title": "Exercise 1: ']),
    "title_out_of_order": (_answer("ex-a", "a") + _check("check-a", "a", "Exercise 1: x")
                           + _answer("ex-b", "b") + _check("check-b", "b", "Exercise 3: y"),
                           ["(id 'check-b'): the check cell of exercise 'b' is titled 'Exercise 3: y', but it is "
                            "exercise 2", 'title it "Exercise 2: ..."']),
    "title_without_number": (_answer("ex-a", "a") + _check("check-a", "a", "the first"),
                             ["has no title \"Exercise 1: ...\""]),
    "call_names_another": (_answer("ex-a", "a") + _check("check-a", "a", "Exercise 1: x", call="b"),
                           ["the check cell of exercise 'a' calls check('b')", 'call check("a") here']),
    "check_above_its_answer": (_check("check-a", "a", "Exercise 1: x") + _answer("ex-a", "a"),
                               ["(id 'check-a'): exercise 'a' has a check cell but no answer cell above it"]),
    "answer_never_checked": (_answer("ex-a", "a") + _check("check-a", "a", "Exercise 1: x")
                             + _answer("ex-z", ["a", "z"]),
                             ["(id 'ex-z'): the answer cell names exercise 'z', which no check cell checks"]),
    "two_check_cells": (_answer("ex-a", "a") + _check("check-a", "a", "Exercise 1: x")
                        + _check("check-a2", "a", "Exercise 2: x"),
                        ["(id 'check-a2'): a second check cell for exercise 'a' (the first is cell 3)"]),
    "check_of_two": (_answer("ex-a", ["a", "b"]) + _check("check-a", ["a", "b"], "Exercise 1: x", call="a"),
                     ["a check cell checks one exercise"]),
}


@pytest.mark.parametrize("name", sorted(BAD_EXERCISES))
def test_exercise_metadata_errors_say_what_to_add(tmp_path, name):
    body, phrases = BAD_EXERCISES[name]
    problems = _exercise_problems(tmp_path, body)
    text = "\n".join(problems)
    assert problems and all(p.startswith(str(tmp_path / "solutions" / "05_lab.py")) for p in problems), text
    for phrase in phrases:
        assert phrase in text, text


def test_make_check_reports_an_answer_cell_without_its_exercise(course_copy):
    src = _src(course_copy)
    src.write_text(src.read_text().replace('"role": "answer", "exercise": "square"}', '"role": "answer"}'))
    problems = _problems(course_copy)
    assert any("ex-square-answer" in p and "does not say which exercise it answers" in p for p in problems)
    assert any("check-square" in p and "no answer cell above it" in p for p in problems)


def test_an_answer_cell_that_also_holds_given_code_is_refused(tmp_path):
    """A learner who replaces an answer cell must not delete code the lab gives (lab 02's driver did)."""
    from sweatlab.course.check import check_answer_cells

    src = tmp_path / "07_given.py"
    src.write_text('''# %% sweat={"id": "ex", "role": "answer", "exercise": "kernel"}
import numpy as np


def kernel(x):
    ### BEGIN SOLUTION
    return x
    ### END SOLUTION


def driver(x):
    return kernel(np.asarray(x))
''')
    problems = check_answer_cells(src, C.load_source(src))
    assert len(problems) == 1 and "`driver`" in str(problems[0]) and "setup cell" in str(problems[0])
    src.write_text(src.read_text().split("\n\ndef driver")[0] + "\n")
    assert check_answer_cells(src, C.load_source(src)) == []
