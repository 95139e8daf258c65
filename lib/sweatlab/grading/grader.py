"""Grading: rebuild each submission, run it in a sandboxed child, run the tests here on plain data.

The tests (a lab's public checks plus an instructor's hidden tests) run in this, the trusted,
process. They reach the learner's functions only through :class:`RemoteRunner`, which sends a
call to the child and gets JSON back. Whatever the learner's code prints, writes or
monkeypatches inside the child, a score is computed only here.
"""

from __future__ import annotations

import dataclasses
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import nbformat

from sweatlab.kit.checks import LearnerError, TestResult, TestSpec, REGISTRY, load_lab_tests, run_test
from sweatlab.grading.notebook import RunCell, SubmissionError, cell_key, read_submission, reconstruct
from sweatlab.grading.sandbox import Child, ChildDied, Limits

_LAB_RE = re.compile(r"(\d\d_[a-z0-9]+(?:_[a-z0-9]+)*)")


@dataclass
class SubmissionGrade:
    """Everything about one graded submission (plain data: it feeds the CSV, feedback and JSON)."""

    name: str  # as the learner wrote it (UTF-8), or as Gradescope's export names the learner
    path: str
    lab: str | None
    key: str = ""  # a safe, stable file name for this submission's files in the output folder
    sha256: str = ""  # of the submitted file: --resume skips an unchanged submission
    tests_id: str = ""  # which tests graded it: new hidden tests mean grading again
    results: list[TestResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cell_errors: list[str] = field(default_factory=list)
    limit_notes: list[str] = field(default_factory=list)
    exercise_titles: dict[str, str] = field(default_factory=dict)
    reflections: dict[str, dict[str, str]] = field(default_factory=dict)  # cell id -> {"question", "answer"}
    seconds: float = 0.0
    readable: bool = True

    @property
    def score(self) -> float:
        return sum(r.points for r in self.results)

    @property
    def max_score(self) -> float:
        return sum(r.max_points for r in self.results)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "SubmissionGrade":
        data = dict(data)
        data["results"] = [TestResult(**r) for r in data.get("results", [])]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


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
# The lab as its notebook describes it: exercise titles, answer cells, reflection questions
# ---------------------------------------------------------------------------------------------

_CHECK_CALL = re.compile(r"""check\(\s*["']([A-Za-z0-9_]+)["']""")
_EXERCISE_HEADING = re.compile(r"^\s*#+\s*(Exercise\s+\d+\s*[:.].*?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class LabLayout:
    """Per exercise: its title as the lab names it and its answer cells; the lab's reflection questions."""

    titles: dict[str, str]
    answer_cells: dict[str, list[str]]
    reflections: dict[str, str]  # cell id -> the question (the prompt in the pristine cell)


def lab_layout(pristine: nbformat.NotebookNode) -> LabLayout:
    """Read the lab's contract from its cells: an "Exercise N: title" heading, answer cells, then check("key")."""
    titles: dict[str, str] = {}
    answers: dict[str, list[str]] = {}
    reflections: dict[str, str] = {}
    title, pending = None, []
    for cell in pristine.cells:
        source = "".join(cell.get("source", ""))
        meta = cell.get("metadata", {}).get("sweat", {})
        role = meta.get("role") if isinstance(meta, dict) else None
        if cell.get("cell_type") == "markdown":
            found = _EXERCISE_HEADING.search(source)
            if found:
                title = found.group(1).rstrip(".")
            if role == "reflection":
                reflections[cell_key(cell)] = meta.get("question") or source.strip().splitlines()[0] if source.strip() \
                    else cell_key(cell)
        if role == "answer":
            pending.append(cell_key(cell))
        elif role == "check":
            for exercise in _CHECK_CALL.findall(source):
                answers[exercise] = list(pending)
                if title:
                    titles[exercise] = title
            pending, title = [], None
    return LabLayout(titles, answers, reflections)


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
                self.errors.append(f"cell '{cell.cell_id}': {exc.reason}; the notebook went on without it")
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
# Which lab, and grading one submission
# ---------------------------------------------------------------------------------------------

def resolve_lab(wanted: str, labs_dir: Path) -> str:
    """A lab's full name from its number or any unique prefix ("01", "01_mat", "01_matmul");
    a ValueError that lists the labs when none or several match."""
    from sweatlab.grading.gradescope import resolve_lab as resolve

    return resolve(Path(labs_dir), wanted)


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
    cells, notes = reconstruct(pristine, nb)
    reference_cells, _ = reconstruct(pristine, pristine)
    grade.notes += notes
    threads = lab_threads(pristine)
    taken = cores.acquire(threads) if cores is not None else None
    if taken is not None and cores.pinnable:
        limits = dataclasses.replace(limits, cpus=taken)
    limits = dataclasses.replace(limits, threads=threads)
    session = Session(cells, limits, time.monotonic() + limits.submission_timeout_s,
                      [c for c in reference_cells if c.origin != "added"])
    try:
        session.run_all()
        runner = RemoteRunner(session)
        for spec in tests:
            try:
                grade.results.append(run_test(spec, runner))
            except Exception as exc:  # a bug in a test must not stop the batch; its source stays private
                grade.results.append(TestResult(spec.lab, spec.exercise, spec.name, 0.0, spec.points, False,
                                                f"internal error in this test ({type(exc).__name__}); "
                                                "tell your instructor", hidden=spec.hidden))
    finally:
        grade.limit_notes = session.close()
        if taken is not None:
            cores.release(taken)
    grade.results = advise_missing_cells(grade.results, layout, cells, grade.lab)
    grade.cell_errors = session.errors
    grade.notes += session.notes
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
    from sweatlab.grading import store

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
