"""Grading: rebuild each submission, run it in a sandboxed child, run the tests here on plain data.

The tests (a lab's public checks plus an instructor's hidden tests) run in this, the trusted,
process, through the one pipeline :func:`sweatlab.grading.pipeline.run_lab_tests`: they reach the
learner's functions only through its ``RemoteRunner``, which sends a call to the child and gets
JSON back. Whatever the learner's code prints, writes or monkeypatches inside the child, a score
is computed only here. This module adds what a class needs: which lab a file is, hidden tests,
cores lent per job, names as written, batches saved as they go.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
import threading
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import nbformat

from sweatlab.course.layout import lab_names
from sweatlab.grading import store
from sweatlab.grading.notebook import SubmissionError, cell_key, read_submission
from sweatlab.grading import pipeline
from sweatlab.grading.pipeline import STOP, LabLayout, lab_layout, lab_threads, stop_all
from sweatlab.grading.sandbox import Limits
from sweatlab.grading.submission import SubmissionGrade
from sweatlab.kit.checks import REGISTRY, TestResult, TestSpec, load_lab_tests

__all__ = ["SubmissionGrade", "Submission", "CorePool", "grade_submission", "grade_batch", "discover", "safe_key",
           "detect_lab", "load_hidden_tests", "tests_for", "tests_id", "collect_reflections", "stop_all",
           "lab_layout", "lab_threads"]

_LAB_RE = re.compile(r"(\d\d_[a-z0-9]+(?:_[a-z0-9]+)*)")


def load_hidden_tests(folder: Path) -> int:
    """Import every ``*.py`` in ``folder``; their ``@hidden_test`` functions register themselves. Returns how many."""
    before = sum(len(v) for v in REGISTRY.values())
    files = sorted(Path(folder).glob("*.py"))
    if not files:
        raise FileNotFoundError(f"no hidden tests (*.py) in {folder}")
    for path in files:
        name = f"sweatlab_hidden_{path.stem}"
        if name in sys.modules:  # loaded already (a second batch in one process): do not register twice
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sum(len(v) for v in REGISTRY.values()) - before


def tests_for(lab: str, hidden: bool = True) -> list[TestSpec]:
    public = load_lab_tests(lab)
    return public + ([t for t in REGISTRY.get(lab, []) if t.hidden] if hidden else [])


def tests_id(lab: str, tests: list[TestSpec], pristine_path: Path | None) -> str:
    """A fingerprint of the tests and the pristine lab: a submission graded under others is graded again."""
    h = hashlib.sha256(json.dumps([[t.exercise, t.name, t.points, t.hidden] for t in tests]).encode())
    if pristine_path is not None and pristine_path.exists():
        h.update(pristine_path.read_bytes())
    for t in tests:
        code = getattr(t.func, "__code__", None)
        if code is not None:
            h.update(code.co_code)
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# The learner's free-text answers
# ---------------------------------------------------------------------------------------------

def _source_text(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def collect_reflections(layout: LabLayout, pristine: nbformat.NotebookNode,
                        submission: nbformat.NotebookNode) -> dict[str, dict[str, str]]:
    """The learner's free-text answers, per reflection cell (by id): for an instructor to mark by hand."""
    blank = {cell_key(c): _source_text(c).strip() for c in pristine.cells}
    found: dict[str, dict[str, str]] = {}
    for cell in submission.cells:
        key = cell_key(cell)
        if key in layout.reflections:
            text = _source_text(cell).strip()
            found[key] = {"question": layout.reflections[key],
                          "answer": "" if text == blank.get(key, "") else text}
    for key, question in layout.reflections.items():
        found.setdefault(key, {"question": question, "answer": ""})
    return found


# ---------------------------------------------------------------------------------------------
# Which lab, and grading one submission
# ---------------------------------------------------------------------------------------------

def detect_lab(path: Path, nb: nbformat.NotebookNode | None, labs_dir: Path) -> str | None:
    """The lab a submission belongs to: from its file name, else from the answer ids it holds."""
    available = lab_names(labs_dir)
    for match in _LAB_RE.findall(path.name):
        if match in available:
            return match
    for lab in available:
        if path.name.startswith(lab[:3]):
            return lab
    if nb is not None:
        ids = {cell_key(c) for c in nb.cells}
        best = max(available, key=lambda lab: len(ids & {cell_key(c) for c in
                                                          nbformat.read(labs_dir / f"{lab}.ipynb", 4).cells}),
                   default=None)
        return best
    return None


class CorePool:
    """The machine's cores, lent to grading jobs: a job that asks for N threads holds N cores of its own.

    A lab that measures how a kernel scales over two threads needs two cores nobody else uses: with
    ``-j 2`` on a two-core machine, two such submissions graded side by side would each find one
    busy core and a "2 threads" speed-up below 1. So a job waits until the cores its lab asks for
    (``sweat={"threads": N}``, capped at the machine's count) are free, first come first served,
    and its child is pinned to them. One-thread labs still grade ``-j`` at a time, a core each.
    """

    def __init__(self, cores: Iterable[int] | None = None) -> None:
        if cores is None:
            cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
        self.cores = tuple(sorted(cores))
        self.pinnable = hasattr(os, "sched_setaffinity")
        self._free = list(self.cores)
        self._queue: list[object] = []
        self._cond = threading.Condition()

    def acquire(self, n: int) -> tuple[int, ...]:
        """``n`` free cores (at most all of them), waiting for them in turn."""
        n = max(1, min(int(n), len(self.cores)))
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            self._cond.wait_for(lambda: self._queue[0] is ticket and len(self._free) >= n)
            self._queue.pop(0)
            taken, self._free = tuple(self._free[:n]), self._free[n:]
            self._cond.notify_all()
            return taken

    def release(self, taken: tuple[int, ...]) -> None:
        with self._cond:
            self._free = sorted(set(self._free) | set(taken))
            self._cond.notify_all()


def _failed_all(tests: Iterable[TestSpec], message: str) -> list[TestResult]:
    return [TestResult(t.lab, t.exercise, t.name, 0.0, t.points, False, message, hidden=t.hidden) for t in tests]


def grade_submission(path: Path, labs_dir: Path, lab: str | None = None, limits: Limits = Limits(),
                     hidden: bool = True, name: str | None = None, cores: CorePool | None = None) -> SubmissionGrade:
    """Grade one file. Never raises for anything the submission does: every problem becomes a message.

    With ``cores``, the learner's child runs on cores of its own, as many as the lab asks threads for
    (waiting for them first; the wait does not count against the submission's time limit)."""
    started = time.monotonic()
    path = Path(path)
    grade = SubmissionGrade(name=name or path.stem, path=str(path), lab=lab, key=safe_key(name or path.stem))
    nb = None
    try:
        grade.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        pass
    try:
        nb = read_submission(path)
    except SubmissionError as exc:
        grade.readable = False
        grade.notes.append(f"{path.name}: {exc}")
    grade.lab = lab or detect_lab(path, nb, labs_dir)
    if grade.lab is None:
        grade.notes.append("could not tell which lab this is: pass --lab NN_topic")
        grade.seconds = time.monotonic() - started
        return grade
    tests = tests_for(grade.lab, hidden)
    pristine_path = labs_dir / f"{grade.lab}.ipynb"
    grade.tests_id = tests_id(grade.lab, tests, pristine_path)
    pristine = nbformat.read(pristine_path, as_version=4)
    layout = lab_layout(pristine)
    grade.exercise_titles = dict(layout.titles)
    if nb is None:
        grade.results = _failed_all(tests, "the submission could not be read (see the note above)")
        grade.seconds = time.monotonic() - started
        return grade
    grade.reflections = collect_reflections(layout, pristine, nb)
    taken = cores.acquire(lab_threads(pristine)) if cores is not None else None
    try:
        run = pipeline.run_lab_tests(pristine, nb, grade.lab, tests, limits, layout=layout,
                                     cpus=taken if taken is not None and cores.pinnable else None)
    finally:
        if taken is not None:
            cores.release(taken)
    grade.results, grade.cell_errors, grade.limit_notes = run.results, run.cell_errors, run.limit_notes
    grade.notes += run.notes
    grade.seconds = time.monotonic() - started
    return grade


# ---------------------------------------------------------------------------------------------
# Submissions: files, names as written, Gradescope's export layout
# ---------------------------------------------------------------------------------------------

_GRADESCOPE_FOLDER = re.compile(r"^submission_\d+$")


@dataclass(frozen=True)
class Submission:
    """One file to grade and the learner it belongs to."""

    path: Path
    name: str  # as written (UTF-8): "José Núñez", "李雷", "Ada Lovelace (submission_123)"

    @property
    def key(self) -> str:
        return safe_key(self.name)


def safe_key(name: str) -> str:
    """A file name for ``name`` that any file system takes, unique per name and stable across runs."""
    ascii_ = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_).strip("._-")[:48] or "submission"
    return f"{slug}-{hashlib.sha1(name.encode('utf-8')).hexdigest()[:8]}"


def _gradescope_names(export_root: Path) -> dict[str, str]:
    """``submission_<id>`` -> the submitters' names, from Gradescope's ``submission_metadata.yml`` (if any)."""
    meta = export_root / "submission_metadata.yml"
    if not meta.exists():
        return {}
    try:
        import yaml

        data = yaml.safe_load(meta.read_text(encoding="utf-8")) or {}
    except Exception:  # an unreadable metadata file: the folder names still identify the learners
        return {}
    names = {}
    for folder, info in (data.items() if isinstance(data, dict) else []):
        if not isinstance(info, dict):
            continue
        people = info.get(":submitters") or info.get("submitters") or []
        found = [str(p.get(":name") or p.get("name")) for p in people if isinstance(p, dict)
                 and (p.get(":name") or p.get("name"))]
        if found:
            names[str(folder)] = ", ".join(found)
    return names




def discover(paths: Iterable[Path]) -> list[Submission]:
    """Every submission under ``paths``, each with the name that identifies its learner.

    A file's name is its stem as written. Inside a folder of Gradescope's export
    (``submission_<id>/...``) the learner is the folder, named from the export's
    ``submission_metadata.yml`` where present, and only its notebooks are graded when it has any.
    Other nested files are named by their path below the folder given.
    """
    found: list[Submission] = []
    for p in map(Path, paths):
        if not p.is_dir():
            found.append(Submission(p, p.stem))
            continue
        files = sorted(f for f in p.rglob("*") if f.is_file() and not any(
            part.startswith(".") for part in f.relative_to(p).parts))
        gs_names = _gradescope_names(p)
        by_folder: dict[Path, list[Path]] = {}
        for f in files:
            by_folder.setdefault(f.parent, []).append(f)
        for f in files:
            rel = f.relative_to(p)
            gs = next((part for part in rel.parts[:-1] if _GRADESCOPE_FOLDER.match(part)), None)
            if f.name == "submission_metadata.yml" and f.parent == p:
                continue
            if gs is not None:
                siblings = by_folder[f.parent]
                notebooks = [s for s in siblings if s.suffix == ".ipynb"]
                if notebooks and f.suffix != ".ipynb":
                    continue
                who = f"{gs_names[gs]} ({gs})" if gs in gs_names else gs
                name = who if len(notebooks or siblings) == 1 else f"{who}/{f.stem}"
            elif len(rel.parts) == 1:
                name = f.stem
            else:
                name = str(rel.with_suffix("")).replace(os.sep, "/")
            found.append(Submission(f, name))
    seen: dict[str, int] = {}
    unique = []
    for s in found:
        seen[s.name] = seen.get(s.name, 0) + 1
        unique.append(s if seen[s.name] == 1 else Submission(s.path, f"{s.name} ({seen[s.name]})"))
    return unique




# ---------------------------------------------------------------------------------------------
# Batches: every result on disk the moment it is graded; resume; Ctrl-C
# ---------------------------------------------------------------------------------------------

def grade_batch(files: list[Path] | list[Submission], labs_dir: Path, lab: str | None = None,
                limits: Limits = Limits(), jobs: int = 1, hidden: bool = True, out_dir: Path | None = None,
                resume: bool = False, progress: Callable[[SubmissionGrade, bool], None] | None = None
                ) -> list[SubmissionGrade]:
    """Grade many submissions, ``jobs`` at a time; the order of the result follows ``files``.

    With ``out_dir``, each submission's result is written to ``out_dir/graded/<key>.json``
    (atomically) as soon as it is graded; with ``resume`` too, a submission whose file and tests are
    unchanged since its saved result is not graded again. ``progress(grade, reused)`` is called
    as each one finishes. On Ctrl-C every learner process is killed, nothing half-graded is saved,
    and KeyboardInterrupt goes on up with the finished results on disk.
    """
    subs = [f if isinstance(f, Submission) else None for f in files]
    if any(s is None for s in subs):
        subs = discover([Path(f) for f in files])  # type: ignore[arg-type]
    STOP.clear()
    cores = CorePool()

    def one(sub: Submission) -> SubmissionGrade | None:
        if STOP.is_set():
            return None
        if resume and out_dir is not None:
            old = store.load(out_dir, sub.key)
            if old is not None and _unchanged(old, sub, labs_dir, lab, hidden):
                if progress:
                    progress(old, True)
                return old
        grade = grade_submission(sub.path, labs_dir, lab, limits, hidden, sub.name, cores)
        if STOP.is_set():
            return None  # interrupted half-way: graded again next time, never saved half done
        if out_dir is not None:
            store.save(out_dir, grade)
        if progress:
            progress(grade, False)
        return grade

    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    futures = [pool.submit(one, s) for s in subs]
    try:
        results = [f.result() for f in futures]
    except KeyboardInterrupt:
        stop_all()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [g for g in results if g is not None]


def _unchanged(old: SubmissionGrade, sub: Submission, labs_dir: Path, lab: str | None, hidden: bool) -> bool:
    try:
        digest = hashlib.sha256(sub.path.read_bytes()).hexdigest()
    except OSError:
        return False
    if digest != old.sha256 or not old.lab or (lab and old.lab != lab):
        return False
    try:
        tests = tests_for(old.lab, hidden)
    except KeyError:
        return False
    return old.tests_id == tests_id(old.lab, tests, labs_dir / f"{old.lab}.ipynb")
