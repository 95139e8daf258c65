"""What a source makes: the student lab (``make labs``) and the executed solution (``make solutions``)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Iterable

import nbformat

from .course_layout import KERNEL_SPEC, SOLUTION_TAG, Course, CourseError, sweat_of, tags_of
from .course_source import load_source, solution_regions


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
        if SOLUTION_TAG in tags_of(cell):
            continue
        if cell.cell_type == "code":
            if sweat_of(cell).get("role") == "answer":
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


def build_labs(course: Course, only: Iterable[str] = ()) -> list[Path]:
    """Regenerate ``labs/*.ipynb`` from the sources; returns the files that changed."""
    changed = []
    for src in select_sources(course, only):
        lab_path = course.lab_ipynb(src)
        if write_if_changed(lab_path, dumps(make_lab(load_source(src)))):
            changed.append(lab_path)
    return changed


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
            timeout_func=lambda cell: sweat_of(cell).get("timeout", timeout_s),
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
