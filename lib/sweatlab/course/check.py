"""``make check``: the executed solutions and the generated labs are in sync with their sources, and
each source says in its cells' metadata which cells answer and check which exercise."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat

from sweatlab.course import figures as F
from sweatlab.course.build import dumps, expected_solution, make_lab, shipped_figures
from sweatlab.course.layout import (BEGIN, CHECK_OUTPUT_TAG, END, LAB_NAME_RE, SOLUTION_TAG, Course, CourseError,
                                    exercises_of, sweat_of, tags_of)
from sweatlab.course.source import load_source


def _compared(cell) -> bool:
    return CHECK_OUTPUT_TAG in tags_of(cell)


def _cell_key(cell) -> dict:
    return {"cell_type": cell.cell_type, "id": cell.get("id"), "source": cell.source,
            "sweat": sweat_of(cell), "tags": tags_of(cell)}


def check_solution_pair(course: Course, src: Path, expected: nbformat.NotebookNode) -> list[CourseError]:
    """The executed ``.ipynb`` matches its ``.py``, ran 1..N, and has every compared output."""
    path = course.solution_ipynb(src)
    if not path.exists():
        return [CourseError(path, "the executed solution notebook is missing",
                            f"run: make solutions  (or sweatlab execute {src.stem})")]
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:
        return [CourseError(path, f"not a readable notebook: {exc}", "run: make solutions")]
    problems = []
    if len(nb.cells) != len(expected.cells):
        problems.append(CourseError(path, f"has {len(nb.cells)} cells, {src.name} has {len(expected.cells)}",
                                    f"edit {src.name} only, then run: make solutions"))
    else:
        for i, (have, want) in enumerate(zip(nb.cells, expected.cells)):
            if _cell_key(have) != _cell_key(want):
                diff = [k for k in _cell_key(want) if _cell_key(have)[k] != _cell_key(want)[k]]
                problems.append(CourseError(
                    path, f"differs from {src.name} in {', '.join(diff)}",
                    f"edit {src.name} (the source of truth), then run: make solutions",
                    cell=i + 1, cell_id=want.get("id")))
                break
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.get("execution_count") for c in code]
    if counts != list(range(1, len(code) + 1)):
        first = next(i for i, (c, n) in enumerate(zip(counts, range(1, len(code) + 1))) if c != n)
        problems.append(CourseError(
            path, f"execution counts are not 1..{len(code)} in order (code cell {first + 1} has "
                  f"{counts[first]}): it was not run top to bottom in one fresh kernel",
            "run: make solutions"))
    root = str(course.root.resolve())
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and root in json.dumps(cell.get("outputs", [])):
            problems.append(CourseError(
                path, f"an output shows this machine's path ({root}), which means nothing on a learner's "
                      "machine and leaks the author's", "print paths relative to the course folder, then run: "
                      "make solutions", cell=i + 1, cell_id=cell.get("id")))
        if cell.cell_type == "code" and _compared(cell) and not cell.get("outputs"):
            problems.append(CourseError(
                path, "a cell whose output nbval compares has no recorded output, so nbval "
                      "would pass it without checking anything",
                "make the cell print its result, then run: make solutions",
                cell=i + 1, cell_id=cell.get("id")))
    return problems


def check_lab(course: Course, src: Path, expected_lab: nbformat.NotebookNode) -> list[CourseError]:
    """``labs/NN.ipynb`` is exactly what the generator makes from ``src``."""
    path = course.lab_ipynb(src)
    if not path.exists():
        return [CourseError(path, "the student notebook is missing", "run: make labs")]
    text = path.read_text(encoding="utf-8")
    problems = _lab_hygiene(path, text)
    if text == dumps(expected_lab):
        return problems
    try:
        have = nbformat.reads(text, as_version=4)
    except Exception as exc:
        return [*problems, CourseError(path, f"not a readable notebook: {exc}", "run: make labs")]
    where = {}
    for i, (h, w) in enumerate(zip(have.cells, expected_lab.cells)):
        if h != w:
            where = dict(cell=i + 1, cell_id=w.get("id"))
            break
    else:
        if len(have.cells) != len(expected_lab.cells):
            where = dict(cell=min(len(have.cells), len(expected_lab.cells)) + 1)
    problems.append(CourseError(
        path, "differs from what the generator makes (was it edited by hand?)",
        f"labs/ are generated: put the change in solutions/{src.name}, then run: make labs",
        **where))
    return problems


def _lab_hygiene(path: Path, text: str) -> list[CourseError]:
    problems = []
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception:
        return problems
    for i, cell in enumerate(nb.cells):
        pos = dict(cell=i + 1, cell_id=cell.get("id"))
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(CourseError(path, "a lab cell carries outputs or an execution count",
                                        "run: make labs", **pos))
        if BEGIN in cell.source or END in cell.source:
            problems.append(CourseError(path, "a lab cell still holds a solution marker",
                                        "run: make labs", **pos))
        if SOLUTION_TAG in tags_of(cell):
            problems.append(CourseError(path, "a solution-only cell is in the lab",
                                        "run: make labs", **pos))
    return problems


_CHECK_CALL = re.compile(r"""\bcheck\(\s*["']([^"']*)["']""")
_TITLE = re.compile(r"^Exercise (\d+): \S")


def check_answer_cells(src: Path, source: nbformat.NotebookNode) -> list[CourseError]:
    """An answer cell holds only what the learner writes: functions (or classes) whose bodies hold the
    solution markers, and imports. Code the lab gives lives in a setup cell of its own: a learner who
    replaces an answer cell must not delete it with theirs."""
    import ast

    problems = []
    for i, cell in enumerate(source.cells):
        if cell.cell_type != "code" or sweat_of(cell).get("role") != "answer":
            continue
        try:
            tree = ast.parse("\n".join(line for line in cell.source.splitlines()
                                       if not line.lstrip().startswith(("%", "!"))))
        except SyntaxError:
            continue  # the source loader reports syntax
        lines = cell.source.splitlines()
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            body = "\n".join(lines[node.lineno - 1:node.end_lineno])
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and BEGIN in body:
                continue
            what = getattr(node, "name", None) or type(node).__name__.lower()
            problems.append(CourseError(
                src, f"the answer cell holds `{what}` (line {node.lineno}), which the learner does not write",
                "move code the lab gives into a setup cell of its own, above or below the answer cell",
                cell=i + 1, cell_id=cell.get("id")))
    return problems


def check_exercises(src: Path, source: nbformat.NotebookNode) -> list[CourseError]:
    """Which cells answer and check which exercise, as the grader and ``progress`` read it from the metadata.

    Every answer cell names its ``"exercise"`` (or a list of them) and every check cell its one ``"exercise"``
    and ``"title"`` ("Exercise N: ...", N = 1, 2, ... in order); a check cell's ``check("...")`` names its
    exercise; each checked exercise has an answer cell above its check cell; each answered exercise a check cell.
    """
    problems: list[CourseError] = []
    checked: dict[str, int] = {}  # exercise -> the index of its check cell
    answered: dict[str, int] = {}  # exercise -> the index of its first answer cell
    number = 0
    for i, cell in enumerate(source.cells):
        meta, pos = sweat_of(cell), dict(cell=i + 1, cell_id=cell.get("id"))
        role = meta.get("role")
        if role not in ("answer", "check"):
            if "exercise" in meta:
                problems.append(CourseError(src, f"a cell of role {role!r} names an exercise; only answer and check "
                                                 "cells do", 'remove its "exercise", or give it the role it has', **pos))
            continue
        names = exercises_of(cell)
        value = meta.get("exercise")
        if not names or (isinstance(value, list) and len(names) != len(value)):
            what = "answers" if role == "answer" else "checks"
            problems.append(CourseError(
                src, f"this {role} cell does not say which exercise it {what} (no \"exercise\" in its metadata)",
                'add "exercise": "<the name its check cell passes to check()>" to its sweat={...}', **pos))
            continue
        if role == "answer":
            for name in names:
                answered.setdefault(name, i)
            continue
        if len(names) != 1 or not isinstance(value, str):
            problems.append(CourseError(src, f"a check cell checks one exercise; this one names {names}",
                                        "split it into one check cell per exercise", **pos))
            continue
        name = names[0]
        if name in checked:
            problems.append(CourseError(src, f"a second check cell for exercise {name!r} (the first is cell "
                                             f"{checked[name] + 1})", "keep one check cell per exercise", **pos))
            continue
        checked[name] = i
        number += 1
        title = meta.get("title")
        found = _TITLE.match(title) if isinstance(title, str) else None
        if found is None:
            problems.append(CourseError(
                src, f"the check cell of exercise {name!r} has no title \"Exercise {number}: ...\" in its metadata",
                f'add "title": "Exercise {number}: <the exercise\'s title, as its heading gives it>"', **pos))
        elif int(found.group(1)) != number:
            problems.append(CourseError(
                src, f"the check cell of exercise {name!r} is titled {title!r}, but it is exercise {number} of "
                     "this lab (exercises are numbered 1, 2, ... in the order of their check cells)",
                f'title it "Exercise {number}: ..." (and its heading too)', **pos))
        calls = _CHECK_CALL.findall(cell.source)
        wrong = [c for c in calls if c != name]
        if wrong:
            problems.append(CourseError(
                src, f"the check cell of exercise {name!r} calls check({wrong[0]!r})",
                f'call check("{name}") here, or set its "exercise" to "{wrong[0]}"', **pos))
        if name not in answered:
            problems.append(CourseError(
                src, f"exercise {name!r} has a check cell but no answer cell above it",
                f'add "exercise": "{name}" to the metadata of the answer cell(s) it checks', **pos))
    for name, i in answered.items():
        if name not in checked:
            cell = source.cells[i]
            problems.append(CourseError(
                src, f"the answer cell names exercise {name!r}, which no check cell checks",
                f'add a check cell below it, sweat={{"exercise": "{name}", "title": "Exercise N: ..."}} running '
                f'check("{name}"), or name the exercise its check cell checks', cell=i + 1, cell_id=cell.get("id")))
    return problems


def check_figures(course: Course, src: Path, source: nbformat.NotebookNode, figures: dict) -> list[CourseError]:
    """Every ``{{figure}}`` the prose quotes was made by the shipped run."""
    values = figures.get("values", {})
    problems = []
    for i, cell in enumerate(source.cells):
        if cell.cell_type != "markdown":
            continue
        for name in F.placeholders(cell.source):
            if name not in values:
                problems.append(CourseError(
                    src, f"the placeholder {{{{{name}}}}} has no figure in the executed solution",
                    f"make it with lab.quote(\"{name}\", value, fmt) in a code cell above, then run: "
                    f"sweatlab execute {src.stem} --full", cell=i + 1, cell_id=cell.get("id")))
    return problems


def check_quotes(course: Course) -> list[CourseError]:
    """The decks and the guide quote each run figure as the solution's run made it."""
    figures = F.solution_figures(course.root)
    problems = []
    for path in F.quoting_files(course.root):
        text = path.read_text(encoding="utf-8")
        fresh, unknown = F.refresh_quotes(text, figures)
        for name in unknown:
            problems.append(CourseError(path, f"quotes the figure {name}, which that lab's run does not make",
                                        "quote a figure the solution makes (lab.quote), or fix the name"))
        if fresh != text and not unknown:
            problems.append(CourseError(path, "a quoted run figure differs from the solution's run",
                                        "run: sweatlab figures  (it sets every quote from the solutions)"))
    return problems


def check_course(course: Course) -> list[CourseError]:
    """Every check of ``make check``; returns the problems found (empty means in sync)."""
    problems: list[CourseError] = []
    sources = course.sources()
    for src in sources:
        try:
            source = load_source(src)
        except CourseError as exc:
            problems.append(exc)
            continue
        figures = shipped_figures(course, src)
        problems += check_exercises(src, source)
        problems += check_answer_cells(src, source)
        problems += check_figures(course, src, source, figures)
        problems += check_solution_pair(course, src, expected_solution(course, src, figures))
        problems += check_lab(course, src, make_lab(source, figures))
    problems += check_quotes(course)
    known = {s.stem for s in sources}
    for folder, kind in ((course.labs, "lab"), (course.solutions, "solution notebook")):
        for nb_path in sorted(folder.glob("*.ipynb")):
            if nb_path.stem not in known:
                problems.append(CourseError(nb_path, f"a {kind} with no source solutions/{nb_path.stem}.py",
                                            f"add solutions/{nb_path.stem}.py, or delete {nb_path}"))
    for src in sorted(course.solutions.glob("*.py")):
        if not LAB_NAME_RE.match(src.stem):
            problems.append(CourseError(src, "a lab source must be named NN_topic.py (e.g. 01_matmul.py)",
                                        "rename the file"))
    return problems
