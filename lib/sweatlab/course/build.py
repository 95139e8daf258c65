"""What a source makes: the student lab (``make labs``) and the executed solution (``make solutions``)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Iterable

import nbformat

from sweatlab.course import figures as F
from sweatlab.course.layout import KERNEL_SPEC, SOLUTION_TAG, Course, CourseError, resolve_lab, sweat_of, tags_of
from sweatlab.course.source import load_source, solution_regions


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


def make_lab(solution: nbformat.NotebookNode, figures: dict | None = None) -> nbformat.NotebookNode:
    """The student notebook: stubs for solutions, solution-only cells dropped, no outputs; the prose's
    ``{{figure}}`` placeholders filled from ``figures`` (the shipped run's), each such cell noting so."""
    lab = copy.deepcopy(solution)
    if figures is not None:
        F.fill_notebook(lab, figures, note=True)
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
    """The sources named in ``only`` (each as :func:`~sweatlab.course.layout.resolve_lab` takes it: ``"01"``,
    ``"01_matmul"``, a unique prefix, a path), in course order; all of them when ``only`` is empty."""
    sources = course.sources()
    if not only:
        return sources
    names = [s.stem for s in sources]
    picked = {resolve_lab(o, names) for o in only}
    return [s for s in sources if s.stem in picked]


def shipped_figures(course: Course, src: Path) -> dict:
    """The figures of the shipped run: the executed solution's ``sweat.figures`` (empty when none)."""
    path = course.solution_ipynb(src)
    if not path.exists():
        return {}
    try:
        return F.figures_of(nbformat.read(path, as_version=4))
    except Exception:  # an unreadable solution is make check's to report
        return {}


def expected_solution(course: Course, src: Path, figures: dict) -> nbformat.NotebookNode:
    """The source as its executed solution must show it: placeholders filled from the run's figures."""
    nb = load_source(src)
    F.fill_notebook(nb, figures, note=False)
    return nb


def build_labs(course: Course, only: Iterable[str] = ()) -> list[Path]:
    """Regenerate ``labs/*.ipynb`` from the sources; returns the files that changed."""
    changed = []
    for src in select_sources(course, only):
        lab_path = course.lab_ipynb(src)
        if write_if_changed(lab_path, dumps(make_lab(load_source(src), shipped_figures(course, src)))):
            changed.append(lab_path)
    return changed


def refresh_quotes(course: Course) -> tuple[list[Path], list[str]]:
    """Set every inline quote in the decks and the guide from the solutions' figures.
    Returns (the files changed, the quotes that name no figure)."""
    figures = F.solution_figures(course.root)
    changed, unknown = [], []
    for path in F.quoting_files(course.root):
        text, gaps = F.refresh_quotes(path.read_text(encoding="utf-8"), figures)
        unknown += [f"{path.name}: {g}" for g in gaps]
        if write_if_changed(path, text):
            changed.append(path)
    return changed, unknown


def _machine_words() -> str:
    from sweatlab.measure.hardware import describe

    m = describe()
    cores = m.usable_cores or os.cpu_count() or 1
    widest = next((w for key, w in (("amx_tile", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"), ("neon", "NEON"))
                   if m.isa.get(key)), None)
    return (f"{m.cpu_model or m.arch}" + (f" with {widest}" if widest else "")
            + f", {cores} core{'s' if cores != 1 else ''}")


def execute_solution(course: Course, src: Path, quick: bool = True, timeout_s: int = 900) -> Path:
    """Execute ``src`` top to bottom in a fresh kernel and write the paired ``.ipynb`` with outputs.

    ``quick`` sets ``SWEAT_QUICK=1`` for the kernel (the mode nbval and CI use).
    A cell may set its own limit with ``sweat={"timeout": seconds}``.
    """
    from nbclient import NotebookClient

    import tempfile

    nb = load_source(src)
    env_before = os.environ.get("SWEAT_QUICK")
    os.environ["SWEAT_QUICK"] = "1" if quick else "0"
    fd, figures_path = tempfile.mkstemp(prefix="sweat-figures-", suffix=".jsonl")
    os.close(fd)
    os.environ[F.FIGURES_ENV] = figures_path
    try:
        client = NotebookClient(
            nb, timeout=timeout_s, kernel_name="python3", allow_errors=False,
            resources={"metadata": {"path": str(src.parent)}},
            timeout_func=lambda cell: sweat_of(cell).get("timeout", timeout_s),
        )
        client.execute()
        data: list[str] = []
        values = F.read_run_figures(Path(figures_path), data)
    finally:
        os.environ.pop(F.FIGURES_ENV, None)
        Path(figures_path).unlink(missing_ok=True)
        if env_before is None:
            os.environ.pop("SWEAT_QUICK", None)
        else:
            os.environ["SWEAT_QUICK"] = env_before
    # nbclient records the kernel it ran; the file keeps the course kernelspec for learners.
    nb.metadata["kernelspec"] = dict(KERNEL_SPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    figures = {"machine": _machine_words(), "mode": "quick" if quick else "full", "values": values, "data": data}
    nb.metadata["sweat"] = {"figures": figures}
    missing = F.fill_notebook(nb, figures, note=False)
    out = course.solution_ipynb(src)
    write_if_changed(out, dumps(nb))
    if missing:
        raise CourseError(out, f"the prose quotes figures this run did not make: {', '.join(sorted(set(missing)))}",
                          "make each with lab.quote(\"name\", value, fmt) in a code cell above its {{name}}")
    return out
