"""One grading pipeline: a lab's tests run on a submission, in a sandboxed child, judged here.

:func:`run_lab_tests` is what ``sweatlab grade`` (:mod:`.grader`), ``sweatlab progress``
(:mod:`sweatlab.tools.progress`) and the Gradescope runner (which calls ``sweatlab grade``) share:
the submission rebuilt into the pristine lab (:func:`~sweatlab.grading.notebook.reconstruct`), its
cells run in a child with limits (:class:`Session`), every test called through
:class:`RemoteRunner` (plain JSON across, timed from here), and a deleted answer cell explained.

Which cells answer which exercise comes from the cells' metadata (:func:`lab_layout`): an answer
cell says ``"exercise": "<name>"`` (or a list), the exercise's check cell ``"exercise"`` and
``"title"``. ``make check`` validates it (:mod:`sweatlab.course.check`).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import nbformat

from sweatlab.course.layout import exercises_of, sweat_of
from sweatlab.grading.notebook import RunCell, cell_key, reconstruct
from sweatlab.grading.sandbox import Child, ChildDied, Limits
from sweatlab.kit.checks import LearnerError, TestResult, TestSpec, run_test


# ---------------------------------------------------------------------------------------------
# The lab as its cells' metadata describe it: exercises, titles, answer cells, reflection questions
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LabLayout:
    """Per exercise: its title as the lab names it and its answer cells; the lab's reflection questions."""

    titles: dict[str, str]
    answer_cells: dict[str, list[str]]
    reflections: dict[str, str]  # cell id -> the question (the prompt in the pristine cell)
    exercises: tuple[str, ...] = ()  # in the order of their check cells


def _text(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def lab_layout(pristine: nbformat.NotebookNode) -> LabLayout:
    """Read the lab's contract from its cells' ``sweat`` metadata: answer cells name their ``exercise``;
    the check cell of each exercise names it and its ``title``; reflection cells ask a ``question``."""
    titles: dict[str, str] = {}
    answers: dict[str, list[str]] = {}
    reflections: dict[str, str] = {}
    order: list[str] = []
    for cell in pristine.cells:
        meta = sweat_of(cell)
        role = meta.get("role")
        if role == "answer":
            for exercise in exercises_of(cell):
                answers.setdefault(exercise, []).append(cell_key(cell))
        elif role == "check":
            for exercise in exercises_of(cell):
                if exercise not in order:
                    order.append(exercise)
                if isinstance(meta.get("title"), str) and meta["title"].strip():
                    titles[exercise] = meta["title"].strip()
        elif role == "reflection" and cell.get("cell_type") == "markdown":
            source = _text(cell).strip()
            reflections[cell_key(cell)] = meta.get("question") or (source.splitlines()[0] if source else cell_key(cell))
    return LabLayout(titles, answers, reflections, tuple(order))


def lab_threads(pristine: nbformat.NotebookNode) -> int:
    """Threads per library for a lab: 1, unless a cell of the lab says ``sweat={"threads": N}``."""
    wanted = [sweat_of(c).get("threads") for c in pristine.cells]
    return max([int(w) for w in wanted if isinstance(w, int) and w > 0] or [1])


# ---------------------------------------------------------------------------------------------
# The learner's child (and the pristine lab's, for speed tests), and calls into it
# ---------------------------------------------------------------------------------------------

class Session:
    """A child holding the learner's namespace, rebuilt (cells replayed) whenever it dies; and, for
    speed tests, a second child running only the pristine lab, where the reference kernels live."""

    def __init__(self, cells: list[RunCell], limits: Limits, deadline: float,
                 reference_cells: list[RunCell] | None = None):
        self.cells, self.limits, self.deadline = cells, limits, deadline
        self.reference_cells = reference_cells or []
        self.child: Child | None = None
        self.reference: Child | None = None
        self.ok_cells: list[RunCell] = []
        self.errors: list[str] = []
        self.errors_by_cell: dict[str, str] = {}  # cell id -> its first error
        self.notes: list[str] = []
        self.restarts = 0

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def _start(self) -> None:
        if self.child is not None:
            self.child.stop()
        if STOP.is_set():
            raise ChildDied("grading was interrupted")
        self.child = Child(self.limits)
        _live_add(self.child)
        self.child.start()

    def _error(self, cell: RunCell, text: str) -> None:
        self.errors.append(text)
        self.errors_by_cell.setdefault(cell.cell_id, text)

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
            self._error(cell, text)
        return False

    def run_all(self) -> None:
        try:
            self._start()
        except ChildDied:
            return
        for cell in self.cells:
            if STOP.is_set():
                break
            if self.time_left() <= 0:
                self.notes.append(f"the submission ran out of its {self.limits.submission_timeout_s:g} s before "
                                  f"cell '{cell.cell_id}'; the remaining cells were not run")
                break
            try:
                if self._run_cell(cell, record=True):
                    self.ok_cells.append(cell)
            except ChildDied as exc:
                self._error(cell, f"cell '{cell.cell_id}': {exc.reason}; the notebook went on without it")
                self.revive()

    def revive(self) -> bool:
        """A fresh child with every cell that worked replayed (after a crash, kill or hang)."""
        while self.restarts < 5 and self.time_left() > 0 and not STOP.is_set():
            self.restarts += 1
            try:
                self._start()
            except ChildDied:
                return False
            for cell in list(self.ok_cells):
                try:
                    self._run_cell(cell, record=False)
                except ChildDied:  # it worked once but not now: leave it out and replay again from the top
                    self.ok_cells.remove(cell)
                    break
            else:
                return True
        return False

    def reference_child(self) -> Child:
        """The pristine lab in a child of its own (started on first use): the reference kernels a speed test
        times come from here, never from the submission's namespace, which the learner's code controls."""
        if self.reference is None or not self.reference.alive:
            if self.reference is not None:
                self.reference.stop()
            self.reference = Child(self.limits)
            _live_add(self.reference)
            self.reference.start()
            for cell in self.reference_cells:
                timeout = min(cell.timeout_s or self.limits.cell_timeout_s, max(self.time_left(), 1.0))
                self.reference.request({"op": "cell", "source": cell.source}, timeout)  # a stub's error is fine
        return self.reference

    def close(self) -> list[str]:
        notes = self.child.limit_notes if self.child else []
        for child in (self.child, self.reference):
            if child is not None:
                child.stop()
                _live_discard(child)
        self.child = self.reference = None
        return notes


class RemoteRunner:
    """The Runner the tests use in the grader: every call crosses into a child as JSON, timed from here."""

    def __init__(self, session: Session):
        self.session = session

    def _request(self, func: str, body: dict, timeout: float) -> tuple[Any, float]:
        s = self.session
        if STOP.is_set():
            raise LearnerError(func, "Stopped", "grading was interrupted")
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
            return answer.get("value"), s.child.last_seconds
        err = answer.get("error", {})
        kind = err.get("type", "Error")
        if kind == "TimeLimit":
            raise LearnerError(func, kind, f"did not return within {timeout:g} s")
        raise LearnerError(func, kind, err.get("message", ""), err.get("traceback", ""))

    def call(self, func: str, args: list, kwargs: dict) -> Any:
        return self.timed_call(func, args, kwargs)[0]

    def timed_call(self, func: str, args: list, kwargs: dict, reference: bool = False,
                   digest: int | None = None) -> tuple[Any, float]:
        body = {"op": "call", "func": func, "args": args, "kwargs": kwargs}
        if digest is not None:
            body["digest"] = int(digest)
        if not reference:
            return self._request(func, body, self.session.limits.call_timeout_s)
        return self._reference_request(func, body)

    def timed_decode(self, args: list, digest_shape: tuple[int, ...] | None = None) -> float:
        """A request to the pristine child that only decodes ``args`` (and digests an array of
        ``digest_shape``, as a timed call does with its result), timed from here."""
        body = {"op": "decode", "args": args}
        if digest_shape is not None:
            body["digest_shape"] = [int(d) for d in digest_shape]
        return self._reference_request("input decoding", body)[1]

    def _reference_request(self, what: str, body: dict) -> tuple[Any, float]:
        s = self.session
        if STOP.is_set():
            raise LearnerError(what, "Stopped", "grading was interrupted")
        try:  # the lab's own kernel, in the pristine child: its failure is the lab's, not the learner's
            child = s.reference_child()
            answer = child.request(body, min(s.limits.call_timeout_s, max(s.time_left(), 1.0)))
        except ChildDied as exc:
            raise RuntimeError(f"the lab's reference {what} {exc.reason}") from None
        if not answer.get("ok"):
            raise RuntimeError(f"the lab's reference {what} failed: {answer.get('error', {}).get('message', '')}")
        return answer.get("value"), child.last_seconds


class TimedCheckSkipped(Exception):
    """Raised instead of a timed call when timed speed checks are skipped (not a test failure)."""


class UntimedRunner:
    """A runner that passes plain calls on and refuses the timed rounds of a speed check.

    :meth:`Tester.speed_ratio` asks for every call it times as a digest; nothing else does. So a
    test that raises :class:`TimedCheckSkipped` here is a timed speed check, stopped before its
    first round.
    """

    def __init__(self, runner):
        self.runner = runner

    def call(self, func: str, args: list, kwargs: dict) -> Any:
        return self.runner.call(func, args, kwargs)

    def timed_call(self, func: str, args: list, kwargs: dict, reference: bool = False,
                   digest: int | None = None) -> tuple[Any, float]:
        if digest is not None:
            raise TimedCheckSkipped(func)
        return self.runner.timed_call(func, args, kwargs, reference, digest)

    def timed_decode(self, args: list, digest_shape: tuple[int, ...] | None = None) -> float:
        raise TimedCheckSkipped("input decoding")


# ---------------------------------------------------------------------------------------------
# Stopping cleanly (Ctrl-C) and the children alive right now
# ---------------------------------------------------------------------------------------------

STOP = threading.Event()
_LIVE: set[Child] = set()
_LIVE_LOCK = threading.Lock()


def _live_add(child: Child) -> None:
    with _LIVE_LOCK:
        _LIVE.add(child)


def _live_discard(child: Child) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(child)


def stop_all() -> None:
    """Stop grading now: no new cell or call starts, and every learner process is killed."""
    STOP.set()
    with _LIVE_LOCK:
        children = list(_LIVE)
    for child in children:
        child.kill()


# ---------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------

def advise_missing_cells(results: list[TestResult], layout: LabLayout, cells: list[RunCell],
                          lab: str) -> list[TestResult]:
    """An exercise whose answer cell was deleted or turned into text cannot be fixed by editing that cell: say so."""
    stubs = {c.cell_id for c in cells if c.origin == "stub"}
    out = []
    for r in results:
        missing = [cid for cid in layout.answer_cells.get(r.exercise, []) if cid in stubs]
        if missing and not r.passed and r.not_written:
            cell = missing[0]
            r = dataclasses.replace(r, message=(
                f"the answer cell '{cell}' is not in your notebook (deleted, or changed into a text cell), so "
                f"this exercise could not be graded\n      hint: copy cell '{cell}' from a fresh copy of the lab "
                f"(labs/{lab}.ipynb) into your notebook, write your answer in it, run its check, and submit again"))
        out.append(r)
    return out



@dataclass
class LabRun:
    """What running a lab's tests on one submission gave: plain data for a grade or a progress table."""

    results: list[TestResult] = field(default_factory=list)
    skipped: list[TestSpec] = field(default_factory=list)  # timed speed checks not run (timed=False)
    notes: list[str] = field(default_factory=list)  # on the notebook: cells missing, duplicated, added; time out
    cell_errors: list[str] = field(default_factory=list)  # cells that raised or hung, in words, with tracebacks
    cell_errors_by_id: dict[str, str] = field(default_factory=dict)  # cell id -> its first error
    limit_notes: list[str] = field(default_factory=list)  # the limits the child ran under
    cells: list[RunCell] = field(default_factory=list)  # the cells run, each with its origin


def run_lab_tests(pristine: nbformat.NotebookNode, submission: nbformat.NotebookNode, lab: str,
                  tests: Iterable[TestSpec], limits: Limits = Limits(), *, timed: bool = True,
                  exercises: Iterable[str] | None = None, layout: LabLayout | None = None,
                  cpus: tuple[int, ...] | None = None) -> LabRun:
    """Run ``tests`` of ``lab`` on ``submission``: its answer cells rebuilt into ``pristine`` and run in a
    sandboxed child under ``limits`` (``submission_timeout_s`` for the whole notebook, from now), each test
    here in turn. Never raises for anything the submission does: every problem is a result or a note.

    ``timed=False`` skips the timed speed checks (listed in ``skipped``, not failed); ``exercises`` limits the
    tests run to those exercises; ``cpus`` pins the child to these cores. The child gets as many threads per
    library as the lab asks (:func:`lab_threads`).
    """
    layout = layout or lab_layout(pristine)
    wanted = None if exercises is None else set(exercises)
    cells, notes = reconstruct(pristine, submission)
    reference_cells, _ = reconstruct(pristine, pristine)
    limits = dataclasses.replace(limits, threads=lab_threads(pristine), **({"cpus": tuple(cpus)} if cpus else {}))
    session = Session(cells, limits, time.monotonic() + limits.submission_timeout_s,
                      [c for c in reference_cells if c.origin != "added"])
    run = LabRun(notes=list(notes), cells=cells)
    try:
        session.run_all()
        remote = RemoteRunner(session)
        runner = remote if timed else UntimedRunner(remote)
        for spec in tests:
            if wanted is not None and spec.exercise not in wanted:
                continue
            try:
                run.results.append(run_test(spec, runner))
            except TimedCheckSkipped:
                run.skipped.append(spec)
            except Exception as exc:  # a bug in a test must not stop the others; a hidden test's stays private
                detail = type(exc).__name__ if spec.hidden else f"{type(exc).__name__}: {exc}"
                run.results.append(TestResult(spec.lab, spec.exercise, spec.name, 0.0, spec.points, False,
                                              f"internal error in this test ({detail}); tell your instructor",
                                              hidden=spec.hidden))
    except KeyboardInterrupt:
        stop_all()
        raise
    finally:
        run.limit_notes = session.close()
    run.results = advise_missing_cells(run.results, layout, cells, lab)
    run.cell_errors = list(session.errors)
    run.cell_errors_by_id = dict(session.errors_by_cell)
    run.notes += session.notes
    return run
