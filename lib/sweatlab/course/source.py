"""Reading a lab source: ``solutions/NN_topic.py`` -> a validated, normalised notebook.

Every problem in the markup is a :class:`CourseError` naming the file, line, cell and fix.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

from sweatlab.course.layout import (BEGIN, CHECK_OUTPUT_TAG, END, KEPT_CELL_METADATA, KERNEL_SPEC, ROLES, CourseError,
                            MarkerError, sweat_of)

_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NEAR_MARKER_RE = re.compile(r"#+\s*(BEGIN|END)\s+SOLUTION", re.IGNORECASE)


def solution_regions(source: str) -> list[tuple[int, int]]:
    """(begin, end) line indices of each marker pair in one cell; raises :class:`MarkerError` on bad markup."""
    regions, begin = [], None
    for i, line in enumerate(source.splitlines()):
        text = line.strip()
        if text == BEGIN:
            if begin is not None:
                raise MarkerError(f"nested '{BEGIN}' on line {i + 1} of the cell (the one on line "
                                  f"{begin + 1} is still open)",
                                  f"close the first region with '{END}' before opening another; regions "
                                  "cannot nest", line=i + 1)
            begin = i
        elif text == END:
            if begin is None:
                raise MarkerError(f"'{END}' on line {i + 1} of the cell has no '{BEGIN}' before it",
                                  f"add '{BEGIN}' above the solution code, or delete this line", line=i + 1)
            regions.append((begin, i))
            begin = None
        elif _NEAR_MARKER_RE.search(text):
            raise MarkerError(f"line {i + 1} of the cell looks like a solution marker but is not "
                              f"exactly '{BEGIN}' or '{END}': {text!r}",
                              "write the marker exactly, alone on its line", line=i + 1)
    if begin is not None:
        raise MarkerError(f"'{BEGIN}' on line {begin + 1} of the cell is never closed",
                          f"add '{END}' after the solution code", line=begin + 1)
    return regions


def _cell_lines(text: str, n_cells: int) -> list[int | None]:
    """1-based line of each cell's ``# %%`` header in a percent-format file (None when unknown)."""
    starts = [i + 1 for i, line in enumerate(text.splitlines()) if line.startswith("# %%")]
    if len(starts) == n_cells:
        return starts
    if len(starts) == n_cells - 1:  # code before the first marker forms a cell of its own
        return [None, *starts]
    return [None] * n_cells


def load_source(path: Path | str) -> nbformat.NotebookNode:
    """Read ``solutions/NN_topic.py``, validate its markup, and return the normalised notebook.

    Normalised means: stable cell ids, only the kept metadata keys, the course kernelspec,
    ``nbval-check-output`` on every check cell. Raises :class:`CourseError` on bad markup.
    """
    import jupytext  # imported here: jupytext is slow to import and only the tooling needs it

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CourseError(path, f"cannot read the lab source: {exc}",
                          "name an existing solutions/NN_topic.py saved as UTF-8") from None
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
        sweat = sweat_of(cell)
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
                              fix="give each cell its own sweat id", cell_id=cid, **pos)
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
            except MarkerError as exc:
                raise CourseError(problem=exc.problem, fix=exc.fix, **pos) from None
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
