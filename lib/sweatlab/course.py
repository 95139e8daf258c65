"""Single-source notebooks: solutions/NN_topic.py -> solutions/NN_topic.ipynb -> labs/NN_topic.ipynb.

The source of each lab is ``solutions/NN_topic.py`` in jupytext percent format. Cells carry
course metadata on their ``# %%`` line::

    # %% sweat={"id": "ex-flops", "role": "answer"}
    def matmul_flops(m, n, k):
        ### BEGIN SOLUTION
        return 2 * m * n * k
        ### END SOLUTION

    # %% sweat={"id": "check-flops", "role": "check"}
    check_matmul_flops(matmul_flops)

Roles: ``answer`` (the learner's code: must hold solution markers), ``check`` (public checks:
their output is compared by nbval), ``setup``, ``prose``, ``demo``. A cell tagged ``solution``
(``tags=["solution"]``) is dropped from the lab. Cell ids are derived from the author's ids,
so regenerating never churns: a cell with ``sweat.id`` gets that id; the cells after it get
``<id>__1``, ``<id>__2``... up to the next author id (``top__N`` before the first).

Everything here is pure file work except :func:`execute_solution`, which runs a kernel.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import nbformat

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
SOLUTION_TAG = "solution"
CHECK_OUTPUT_TAG = "nbval-check-output"
ROLES = ("answer", "check", "setup", "prose", "demo", "reflection")
KERNEL_NAME = "systems-that-sweat"
KERNEL_SPEC = {
    "display_name": "Python 3 (Systems That Sweat)",
    "language": "python",
    "name": KERNEL_NAME,
}
# Only these metadata keys survive from the source into the notebooks; everything else
# jupytext might add (lines_to_next_cell, ...) would churn the generated files.
KEPT_CELL_METADATA = ("sweat", "tags", "slideshow", "jupyter")
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NEAR_MARKER_RE = re.compile(r"#+\s*(BEGIN|END)\s+SOLUTION", re.IGNORECASE)
_LAB_NAME_RE = re.compile(r"^\d\d_[a-z0-9_]+$")


class CourseError(Exception):
    """A problem in a course notebook, with where it is and how to fix it."""

    def __init__(self, path: Path | str, problem: str, fix: str, cell: int | None = None,
                 cell_id: str | None = None, line: int | None = None):
        self.path, self.problem, self.fix = Path(path), problem, fix
        self.cell, self.cell_id, self.line = cell, cell_id, line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = str(self.path) + (f":{self.line}" if self.line else "")
        if self.cell is not None:
            where += f", cell {self.cell}" + (f" (id '{self.cell_id}')" if self.cell_id else "")
        return f"{where}: {self.problem}\n    fix: {self.fix}"


@dataclass(frozen=True)
class Course:
    """Where a course's folders are: ``root/solutions``, ``root/labs``, ``root/slides``."""

    root: Path

    @property
    def solutions(self) -> Path:
        return self.root / "solutions"

    @property
    def labs(self) -> Path:
        return self.root / "labs"

    @property
    def slides(self) -> Path:
        return self.root / "slides"

    def sources(self) -> list[Path]:
        """The lab sources, ``solutions/NN_topic.py``, in order."""
        return sorted(p for p in self.solutions.glob("*.py") if _LAB_NAME_RE.match(p.stem))

    def solution_ipynb(self, src: Path) -> Path:
        return src.with_suffix(".ipynb")

    def lab_ipynb(self, src: Path) -> Path:
        return self.labs / (src.stem + ".ipynb")


def find_root(start: Path | None = None) -> Path:
    """The course root: the nearest folder at or above ``start`` holding ``solutions/`` and ``pyproject.toml``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "solutions").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    raise CourseError(here, "not inside the course folder (no solutions/ and pyproject.toml above it)",
                      "cd into the cloned course repository, or pass --root PATH")


# ---------------------------------------------------------------------------------------------
# Reading a source
# ---------------------------------------------------------------------------------------------

def _cell_lines(text: str, n_cells: int) -> list[int | None]:
    """1-based line of each cell's ``# %%`` header in a percent-format file (None when unknown)."""
    starts = [i + 1 for i, line in enumerate(text.splitlines()) if line.startswith("# %%")]
    if len(starts) == n_cells:
        return starts
    if len(starts) == n_cells - 1:  # code before the first marker forms a cell of its own
        return [None, *starts]
    return [None] * n_cells


def _sweat(cell) -> dict:
    meta = cell.get("metadata", {}).get("sweat", {})
    return meta if isinstance(meta, dict) else {}


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def solution_regions(source: str) -> list[tuple[int, int]]:
    """(begin, end) line indices of each marker pair; raises ValueError on bad nesting."""
    regions, begin = [], None
    for i, line in enumerate(source.splitlines()):
        text = line.strip()
        if text == BEGIN:
            if begin is not None:
                raise ValueError(f"nested '{BEGIN}' on line {i + 1} of the cell (the one on line "
                                 f"{begin + 1} is still open)|close the first region with '{END}' "
                                 "before opening another; regions cannot nest")
            begin = i
        elif text == END:
            if begin is None:
                raise ValueError(f"'{END}' on line {i + 1} of the cell has no '{BEGIN}' before it"
                                 f"|add '{BEGIN}' above the solution code, or delete this line")
            regions.append((begin, i))
            begin = None
        elif _NEAR_MARKER_RE.search(text):
            raise ValueError(f"line {i + 1} of the cell looks like a solution marker but is not "
                             f"exactly '{BEGIN}' or '{END}': {text!r}|write the marker exactly, "
                             "alone on its line")
    if begin is not None:
        raise ValueError(f"'{BEGIN}' on line {begin + 1} of the cell is never closed"
                         f"|add '{END}' after the solution code")
    return regions


def load_source(path: Path | str) -> nbformat.NotebookNode:
    """Read ``solutions/NN_topic.py``, validate its markup, and return the normalised notebook.

    Normalised means: stable cell ids, only the kept metadata keys, the course kernelspec,
    ``nbval-check-output`` on every check cell. Raises :class:`CourseError` on bad markup.
    """
    import jupytext  # imported here: jupytext is slow to import and only the tooling needs it

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        nb = jupytext.reads(text, fmt="py:percent")
    except Exception as exc:  # jupytext raises many types on malformed headers
        raise CourseError(path, f"jupytext cannot read this file: {exc}",
                          "fix the '# %%' cell headers (metadata must be key=JSON)") from exc
    lines = _cell_lines(text, len(nb.cells))
    current, offset, seen = "top", 0, {}
    for index, cell in enumerate(nb.cells):
        pos = dict(path=path, cell=index + 1, line=lines[index])
        meta = cell.get("metadata", {})
        if "sweat" in meta and not isinstance(meta["sweat"], dict):
            raise CourseError(problem="'sweat' metadata must be a JSON object",
                              fix='write it as sweat={"id": "...", "role": "..."}', **pos)
        sweat = _sweat(cell)
        role = sweat.get("role")
        if role is not None and role not in ROLES:
            raise CourseError(problem=f"unknown role {role!r}",
                              fix=f"use one of: {', '.join(ROLES)}", **pos)
        if "id" in sweat:
            cid = sweat["id"]
            if not isinstance(cid, str) or not _ID_RE.match(cid) or "__" in cid:
                raise CourseError(problem=f"cell id {cid!r} is not a valid id",
                                  fix="use 1-64 letters, digits, '-' or '_' (no '__'), e.g. 'ex-flops'",
                                  **pos)
            current, offset = cid, 0
        else:
            offset += 1
            cid = f"{current}__{offset}"
            if role in ("answer", "check", "reflection"):
                raise CourseError(problem=f"a {role} cell needs an author-chosen id (the grader finds "
                                          "learners' answers by it)",
                                  fix=f'add sweat={{"id": "ex-...", "role": "{role}"}} to its # %% line',
                                  **pos)
        if cid in seen:
            raise CourseError(problem=f"duplicate cell id '{cid}' (also cell {seen[cid]})",
                              fix="give each cell its own sweat id", cell_id=cid,
                              **{k: v for k, v in pos.items()})
        seen[cid] = index + 1
        pos["cell_id"] = cid
        source = cell.source
        has_marker = any(m in source for m in (BEGIN, END)) or bool(_NEAR_MARKER_RE.search(source))
        if role == "reflection" and cell.cell_type != "markdown":
            raise CourseError(problem="a reflection cell must be a markdown cell (the learner writes prose in it)",
                              fix="start it with '# %% [markdown]'", **pos)
        if cell.cell_type != "code":
            if has_marker:
                raise CourseError(problem=f"solution marker in a {cell.cell_type} cell",
                                  fix="markers belong in code cells; move the solution into the "
                                      "answer code cell below the exercise text", **pos)
        else:
            try:
                regions = solution_regions(source)
            except ValueError as exc:
                problem, fix = str(exc).split("|", 1)
                raise CourseError(problem=problem, fix=fix, **pos) from None
            if regions and role != "answer":
                raise CourseError(problem="solution markers in a cell whose role is not 'answer'",
                                  fix=f'mark the cell sweat={{"id": "{cid}", "role": "answer"}} '
                                      "(the grader takes only answer cells from a submission)", **pos)
            if role == "answer" and not regions:
                raise CourseError(problem="an answer cell without solution markers",
                                  fix=f"wrap the solution code in '{BEGIN}' / '{END}'", **pos)
        kept = {k: copy.deepcopy(meta[k]) for k in KEPT_CELL_METADATA if k in meta}
        if role == "check" and CHECK_OUTPUT_TAG not in kept.get("tags", []):
            kept["tags"] = [*kept.get("tags", []), CHECK_OUTPUT_TAG]
        cell.metadata = nbformat.from_dict(kept)
        cell.id = cid
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata = nbformat.from_dict({
        "jupytext": {"formats": "ipynb,py:percent"},
        "kernelspec": dict(KERNEL_SPEC),
        "language_info": {"name": "python"},
    })
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


# ---------------------------------------------------------------------------------------------
# Generating the lab
# ---------------------------------------------------------------------------------------------

def stub_source(source: str, cell_id: str) -> str:
    """Replace every marker region by a stub that raises ``NotImplementedError``."""
    lines = source.splitlines()
    out, last = [], 0
    for begin, end in solution_regions(source):
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        out += lines[last:begin]
        out += [f"{indent}# YOUR CODE HERE",
                f'{indent}raise NotImplementedError("{cell_id}: replace this line with your code")']
        last = end + 1
    out += lines[last:]
    return "\n".join(out)


def make_lab(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student notebook: stubs for solutions, solution-only cells dropped, no outputs."""
    lab = copy.deepcopy(solution)
    cells = []
    for cell in lab.cells:
        if SOLUTION_TAG in _tags(cell):
            continue
        if cell.cell_type == "code":
            if _sweat(cell).get("role") == "answer":
                cell.source = stub_source(cell.source, cell.id)
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
        cells.append(cell)
    lab.cells = cells
    lab.metadata = nbformat.from_dict({"kernelspec": dict(KERNEL_SPEC),
                                       "language_info": {"name": "python"}})
    return lab


def dumps(nb: nbformat.NotebookNode) -> str:
    """Deterministic JSON text of a notebook (sorted keys, one-space indent, final newline)."""
    return nbformat.writes(nb, version=4).rstrip("\n") + "\n"


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless the file already holds it; True when written."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def build_labs(course: Course, only: Iterable[str] = ()) -> list[Path]:
    """Regenerate ``labs/*.ipynb`` from the sources; returns the files that changed."""
    changed = []
    for src in select_sources(course, only):
        lab_path = course.lab_ipynb(src)
        if write_if_changed(lab_path, dumps(make_lab(load_source(src)))):
            changed.append(lab_path)
    return changed


def select_sources(course: Course, only: Iterable[str]) -> list[Path]:
    """The sources named in ``only`` (``"01"``, ``"01_matmul"``, a path), or all when it is empty."""
    only = [o.removesuffix(".py").removesuffix(".ipynb").split("/")[-1] for o in only]
    sources = course.sources()
    if not only:
        return sources
    picked = [s for s in sources if any(s.stem == o or s.stem.startswith(o + "_") for o in only)]
    if len(picked) < len(only):
        names = ", ".join(s.stem for s in sources) or "none"
        raise CourseError(course.solutions, f"no lab matches {' '.join(only)!r}",
                          f"name a lab by number or name; the labs are: {names}")
    return picked


# ---------------------------------------------------------------------------------------------
# Executing a solution
# ---------------------------------------------------------------------------------------------

def execute_solution(course: Course, src: Path, quick: bool = True, timeout_s: int = 900) -> Path:
    """Execute ``src`` top to bottom in a fresh kernel and write the paired ``.ipynb`` with outputs.

    ``quick`` sets ``SWEAT_QUICK=1`` for the kernel (the mode nbval and CI use).
    A cell may set its own limit with ``sweat={"timeout": seconds}``.
    """
    from nbclient import NotebookClient

    nb = load_source(src)
    env_before = os.environ.get("SWEAT_QUICK")
    os.environ["SWEAT_QUICK"] = "1" if quick else "0"
    try:
        client = NotebookClient(
            nb, timeout=timeout_s, kernel_name="python3", allow_errors=False,
            resources={"metadata": {"path": str(src.parent)}},
            timeout_func=lambda cell: _sweat(cell).get("timeout", timeout_s),
        )
        client.execute()
    finally:
        if env_before is None:
            os.environ.pop("SWEAT_QUICK", None)
        else:
            os.environ["SWEAT_QUICK"] = env_before
    # nbclient records the kernel it ran; the file keeps the course kernelspec for learners.
    nb.metadata["kernelspec"] = dict(KERNEL_SPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    out = course.solution_ipynb(src)
    write_if_changed(out, dumps(nb))
    return out


# ---------------------------------------------------------------------------------------------
# Checking that everything is in sync
# ---------------------------------------------------------------------------------------------

def _compared(cell) -> bool:
    return CHECK_OUTPUT_TAG in _tags(cell)


def _cell_key(cell) -> dict:
    return {"cell_type": cell.cell_type, "id": cell.get("id"), "source": cell.source,
            "sweat": _sweat(cell), "tags": _tags(cell)}


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
        if SOLUTION_TAG in _tags(cell):
            problems.append(CourseError(path, "a solution-only cell is in the lab",
                                        "run: make labs", **pos))
    return problems


def check_course(course: Course) -> list[CourseError]:
    """Every check of ``make check``; returns the problems found (empty means in sync)."""
    problems: list[CourseError] = []
    sources = course.sources()
    for src in sources:
        try:
            expected = load_source(src)
        except CourseError as exc:
            problems.append(exc)
            continue
        problems += check_solution_pair(course, src, expected)
        problems += check_lab(course, src, make_lab(expected))
    known = {s.stem for s in sources}
    for folder, kind in ((course.labs, "lab"), (course.solutions, "solution notebook")):
        for nb_path in sorted(folder.glob("*.ipynb")):
            if nb_path.stem not in known:
                problems.append(CourseError(nb_path, f"a {kind} with no source solutions/{nb_path.stem}.py",
                                            f"add solutions/{nb_path.stem}.py, or delete {nb_path}"))
    for src in sorted(course.solutions.glob("*.py")):
        if not _LAB_NAME_RE.match(src.stem):
            problems.append(CourseError(src, "a lab source must be named NN_topic.py (e.g. 01_matmul.py)",
                                        "rename the file"))
    return problems
