"""Reading a submission, whatever state it is in, and rebuilding the notebook to run.

Only the learner's *answer* cells (found by their stable id) and cells the learner added are
taken from the submission; every other cell comes from the pristine lab. Check cells are not
run at all (the grader runs the tests itself), and neither are ``demo`` cells (measurements
that show an idea but define nothing an answer needs).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat

from sweatlab.course.layout import sweat_of

SKIPPED_ROLES = ("check", "demo")


@dataclass(frozen=True)
class RunCell:
    """A code cell to run in the child: where it came from and what it is."""

    cell_id: str
    source: str
    origin: str  # "lab" (pristine), "answer" (the learner's answer), "stub" (answer missing), "added"
    timeout_s: float | None = None


class SubmissionError(Exception):
    """The submission cannot be read as a notebook; the message says what to do."""


def read_submission(path: Path) -> nbformat.NotebookNode:
    """The submission as an nbformat-4 notebook, or a SubmissionError that says what is wrong."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SubmissionError(f"cannot read the file: {exc.strerror or exc}") from None
    if not raw.strip():
        raise SubmissionError("the file is empty: save the notebook in JupyterLab (Ctrl-S) and submit it again")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SubmissionError("not a notebook (the file is not text): submit the .ipynb file of the lab") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SubmissionError(f"not valid notebook JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                              "the file may be cut off: download it again from JupyterLab (File > Download)") from None
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise SubmissionError("this JSON is not a Jupyter notebook (no cells): submit the lab's .ipynb file")
    try:
        with warnings.catch_warnings():  # duplicate cell ids are reported by reconstruct(), in words
            warnings.simplefilter("ignore")
            return nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises many kinds on odd old files
        raise SubmissionError(f"a notebook that nbformat cannot read or convert ({type(exc).__name__}: {exc}); "
                              "open it in JupyterLab, save it, and submit it again") from None


def cell_key(cell) -> str | None:
    """A cell's stable course id: ``metadata.sweat.id``, else the nbformat cell id."""
    key = sweat_of(cell).get("id") or cell.get("id")
    return key if isinstance(key, str) else None


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def reconstruct(pristine: nbformat.NotebookNode, submission: nbformat.NotebookNode) -> tuple[list[RunCell], list[str]]:
    """The cells to run, and notes (in the learner's words) on what was missing, duplicated or added."""
    notes: list[str] = []
    pristine_ids = [cell_key(c) for c in pristine.cells]
    known = set(pristine_ids)
    answers = {cell_key(c) for c in pristine.cells if sweat_of(c).get("role") == "answer"}

    taken: dict[str, list] = {}
    added_after: dict[str | None, list] = {}
    anchor: str | None = None
    for cell in submission.cells:
        key = cell_key(cell)
        if key in known:
            anchor = key
            if key in answers:
                taken.setdefault(key, []).append(cell)
        elif cell.get("cell_type") == "code" and _source(cell).strip():
            added_after.setdefault(anchor, []).append(cell)

    run: list[RunCell] = []

    def add_learner_cells(after: str | None) -> None:
        for i, cell in enumerate(added_after.get(after, [])):
            run.append(RunCell(f"added-after-{after or 'start'}-{i + 1}", _source(cell), "added"))

    add_learner_cells(None)
    for cell, key in zip(pristine.cells, pristine_ids):
        role = sweat_of(cell).get("role")
        timeout = sweat_of(cell).get("timeout")
        if cell.cell_type == "code" and role not in SKIPPED_ROLES:
            if key in answers:
                copies = taken.get(key, [])
                code_copies = [c for c in copies if c.get("cell_type") == "code"]
                if not copies:
                    notes.append(f"answer cell '{key}' is missing from the submission (deleted?): its tests fail")
                    run.append(RunCell(key, _source(cell), "stub", timeout))
                elif not code_copies:
                    notes.append(f"answer cell '{key}' was changed into a {copies[-1].get('cell_type')} cell, so "
                                 "it holds no code: its tests fail")
                    run.append(RunCell(key, _source(cell), "stub", timeout))
                else:
                    if len(copies) > 1:
                        notes.append(f"answer cell '{key}' appears {len(copies)} times; the last copy was graded")
                    run.append(RunCell(key, _source(code_copies[-1]), "answer", timeout))
            else:
                run.append(RunCell(key, _source(cell), "lab", timeout))
        add_learner_cells(key)
    n_added = sum(len(v) for v in added_after.values())
    if n_added:
        notes.append(f"{n_added} code cell(s) you added were run too, in the place you put them")
    return run, notes
