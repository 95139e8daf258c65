"""Grading: rebuild each submission, run it in a sandboxed child, run the tests here on plain data.

The tests (a lab's public checks plus an instructor's hidden tests) run in this, the trusted,
process. They reach the learner's functions only through :class:`RemoteRunner`, which sends a
call to the child and gets JSON back. Whatever the learner's code prints, writes or
monkeypatches inside the child, a score is computed only here.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import nbformat

from ..checks.core import LearnerError, TestResult, TestSpec, REGISTRY, load_lab_tests, run_test
from .notebook import RunCell, SubmissionError, cell_key, read_submission, reconstruct
from .sandbox import Child, ChildDied, Limits

_LAB_RE = re.compile(r"(\d\d_[a-z0-9]+(?:_[a-z0-9]+)*)")


@dataclass
class SubmissionGrade:
    """Everything about one graded submission (plain data: it feeds the CSV, feedback and JSON)."""

    name: str
    path: str
    lab: str | None
    results: list[TestResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cell_errors: list[str] = field(default_factory=list)
    limit_notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    readable: bool = True

    @property
    def score(self) -> float:
        return sum(r.points for r in self.results)

    @property
    def max_score(self) -> float:
        return sum(r.max_points for r in self.results)


def load_hidden_tests(folder: Path) -> int:
    """Import every ``*.py`` in ``folder``; their ``@hidden_test`` functions register themselves. Returns how many."""
    before = sum(len(v) for v in REGISTRY.values())
    files = sorted(Path(folder).glob("*.py"))
    if not files:
        raise FileNotFoundError(f"no hidden tests (*.py) in {folder}")
    for path in files:
        spec = importlib.util.spec_from_file_location(f"sweatlab_hidden_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sum(len(v) for v in REGISTRY.values()) - before


def tests_for(lab: str, hidden: bool = True) -> list[TestSpec]:
    public = load_lab_tests(lab)
    return public + ([t for t in REGISTRY.get(lab, []) if t.hidden] if hidden else [])


class Session:
    """A child holding the learner's namespace, rebuilt (cells replayed) whenever it dies."""

    def __init__(self, cells: list[RunCell], limits: Limits, deadline: float):
        self.cells, self.limits, self.deadline = cells, limits, deadline
        self.child: Child | None = None
        self.ok_cells: list[RunCell] = []
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.restarts = 0

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def _start(self) -> None:
        if self.child is not None:
            self.child.stop()
        self.child = Child(self.limits)
        self.child.start()

    def _run_cell(self, cell: RunCell, record: bool) -> bool:
        timeout = min(cell.timeout_s or self.limits.cell_timeout_s, max(self.time_left(), 1.0))
        answer = self.child.request({"op": "cell", "source": cell.source}, timeout)
        if answer.get("ok"):
            return True
        if record:
            err = answer.get("error", {})
            kind = err.get("type", "Error")
            if kind == "TimeLimit":
                text = f"cell '{cell.cell_id}' did not finish within {timeout:g} s and was interrupted"
            elif kind == "NotImplementedError" and cell.origin in ("answer", "stub"):
                text = f"cell '{cell.cell_id}' still raises NotImplementedError (not written yet)"
            else:
                text = f"cell '{cell.cell_id}' raised {kind}: {err.get('message', '')}"
            if err.get("traceback") and kind != "NotImplementedError":
                text += "\n" + err["traceback"].rstrip()
            self.errors.append(text)
        return False

    def run_all(self) -> None:
        self._start()
        for cell in self.cells:
            if self.time_left() <= 0:
                self.notes.append(f"the submission ran out of its {self.limits.submission_timeout_s:g} s before "
                                  f"cell '{cell.cell_id}'; the remaining cells were not run")
                break
            try:
                if self._run_cell(cell, record=True):
                    self.ok_cells.append(cell)
            except ChildDied as exc:
                self.errors.append(f"cell '{cell.cell_id}': {exc.reason}; the notebook went on without it")
                self.revive()

    def revive(self) -> bool:
        """A fresh child with every cell that worked replayed (after a crash, kill or hang)."""
        while self.restarts < 5 and self.time_left() > 0:
            self.restarts += 1
            self._start()
            for cell in list(self.ok_cells):
                try:
                    self._run_cell(cell, record=False)
                except ChildDied:  # it worked once but not now: leave it out and replay again from the top
                    self.ok_cells.remove(cell)
                    break
            else:
                return True
        return False

    def close(self) -> list[str]:
        notes = self.child.limit_notes if self.child else []
        if self.child is not None:
            self.child.stop()
            self.child = None
        return notes


class RemoteRunner:
    """The Runner the tests use in the grader: every call crosses into the child as JSON."""

    def __init__(self, session: Session):
        self.session = session

    def _request(self, func: str, body: dict, timeout: float) -> Any:
        s = self.session
        if s.time_left() <= 0:
            raise LearnerError(func, "TimeLimit", f"not run: the submission used all of its "
                                                  f"{s.limits.submission_timeout_s:g} s")
        if s.child is None or not s.child.alive:
            if not s.revive():
                raise LearnerError(func, "Stopped", "the learner's process could not be restarted")
        try:
            answer = s.child.request(body, min(timeout, max(s.time_left(), 1.0)))
        except ChildDied as exc:
            s.revive()
            raise LearnerError(func, "Stopped", f"{func} {exc.reason}") from None
        if answer.get("ok"):
            return answer.get("value")
        err = answer.get("error", {})
        kind = err.get("type", "Error")
        if kind == "TimeLimit":
            raise LearnerError(func, kind, f"did not return within {timeout:g} s")
        raise LearnerError(func, kind, err.get("message", ""), err.get("traceback", ""))

    def call(self, func: str, args: list, kwargs: dict) -> Any:
        return self._request(func, {"op": "call", "func": func, "args": args, "kwargs": kwargs},
                             self.session.limits.call_timeout_s)

    def speed_ratio(self, fast: str, slow: str, args: list, kwargs: dict, rounds: int = 7) -> float:
        return float(self._request(fast, {"op": "ratio", "fast": fast, "slow": slow, "args": args,
                                          "kwargs": kwargs, "rounds": rounds},
                                   self.session.limits.call_timeout_s * 2))


def detect_lab(path: Path, nb: nbformat.NotebookNode | None, labs_dir: Path) -> str | None:
    """The lab a submission belongs to: from its file name, else from the answer ids it holds."""
    available = sorted(p.stem for p in labs_dir.glob("*.ipynb"))
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


def lab_threads(pristine: nbformat.NotebookNode) -> int:
    """Threads per library for a lab: 1, unless a cell of the lab says ``sweat={"threads": N}``."""
    wanted = [c.get("metadata", {}).get("sweat", {}).get("threads") for c in pristine.cells]
    return max([int(w) for w in wanted if isinstance(w, int) and w > 0] or [1])


def _failed_all(tests: Iterable[TestSpec], message: str) -> list[TestResult]:
    return [TestResult(t.lab, t.exercise, t.name, 0.0, t.points, False, message) for t in tests]


def grade_submission(path: Path, labs_dir: Path, lab: str | None = None, limits: Limits = Limits(),
                     hidden: bool = True, name: str | None = None) -> SubmissionGrade:
    """Grade one file. Never raises for anything the submission does: every problem becomes a message."""
    started = time.monotonic()
    path = Path(path)
    grade = SubmissionGrade(name=name or path.stem, path=str(path), lab=lab)
    nb = None
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
    if nb is None:
        grade.results = _failed_all(tests, "the submission could not be read (see the note above)")
        grade.seconds = time.monotonic() - started
        return grade
    pristine = nbformat.read(labs_dir / f"{grade.lab}.ipynb", as_version=4)
    cells, notes = reconstruct(pristine, nb)
    grade.notes += notes
    threads = lab_threads(pristine)
    if threads != limits.threads:
        limits = dataclasses.replace(limits, threads=threads)
    session = Session(cells, limits, started + limits.submission_timeout_s)
    try:
        session.run_all()
        runner = RemoteRunner(session)
        for spec in tests:
            try:
                grade.results.append(run_test(spec, runner))
            except Exception as exc:  # a bug in a test must not stop the batch; its source stays private
                grade.results.append(TestResult(spec.lab, spec.exercise, spec.name, 0.0, spec.points, False,
                                                f"internal error in this test ({type(exc).__name__}); "
                                                "tell your instructor"))
    finally:
        grade.limit_notes = session.close()
    grade.cell_errors = session.errors
    grade.notes += session.notes
    grade.seconds = time.monotonic() - started
    return grade


def submission_files(paths: Iterable[Path]) -> list[Path]:
    """Files to grade: the files named, and every visible file inside the folders named."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and not any(
                part.startswith(".") for part in f.relative_to(p).parts))
        else:
            files.append(p)
    return files


def unique_names(files: list[Path]) -> list[str]:
    names, seen = [], {}
    for f in files:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", f.stem) or "submission"
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names


def grade_batch(files: list[Path], labs_dir: Path, lab: str | None = None, limits: Limits = Limits(),
                jobs: int = 1, hidden: bool = True) -> list[SubmissionGrade]:
    """Grade many submissions, ``jobs`` at a time; the order of the result follows ``files``."""
    names = unique_names(files)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(grade_submission, f, labs_dir, lab, limits, hidden, n) for f, n in zip(files, names)]
        return [f.result() for f in futures]
