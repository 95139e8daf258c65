"""`sweatlab progress`: which labs and exercises a self-learner has done, judged from their own notebooks.

Each lab's notebook (``labs/NN_topic.ipynb``, where the learner works) is run the way the grader
runs a submission: its answer cells, rebuilt into the pristine lab, in a child process with a time
limit (:mod:`sweatlab.grading`); then the lab's *public* checks (the ones its ``check`` cells run)
call into that child. Hidden tests never run here. Per exercise the verdict is one of:

    done         every check passed
    failing      a check failed: the first line of its message says which
    not started  the answer cells are still the lab's stubs, or they still raise NotImplementedError
    error        an answer cell raised, ran out of time, or the notebook could not be read

A lab whose answer cells are all still the stubs (or whose notebook does not exist) is "not
started" without running anything. ``quick`` skips the timed speed checks (those that time the
learner's function against the lab's reference with :meth:`Tester.speed_ratio`) and says which.

In JupyterLab, ``from sweatlab.tools.progress import show_progress; show_progress()`` shows the same as
a widget with a Refresh button (an HTML table where ipywidgets is missing).
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sweatlab.course import layout as L
from sweatlab.measure.config import course_root

DONE, FAILING, NOT_STARTED, ERROR, SKIPPED = "done", "failing", "not started", "error", "skipped"
STATUSES = (DONE, FAILING, NOT_STARTED, ERROR, SKIPPED)
DEFAULT_LAB_TIMEOUT_S = 300.0
DEFAULT_CELL_TIMEOUT_S = 60.0
STUB_MESSAGE = "its answer cells are still the lab's stubs"


class ProgressError(Exception):
    """Progress cannot be checked as asked (no such lab, no labs folder); the message says what to do."""


@dataclass
class ExerciseProgress:
    """One exercise of a lab: its verdict, its points, and why (the first line of a failure)."""

    exercise: str
    title: str
    status: str
    points: float = 0.0
    max_points: float = 0.0
    passed: int = 0
    tests: int = 0
    message: str = ""
    skipped: list[str] = field(default_factory=list)  # timed checks not run (quick), by name


@dataclass
class LabProgress:
    """One lab: where its notebook is, each exercise, and notes (cells that failed, limits hit)."""

    lab: str
    notebook: str
    exercises: list[ExerciseProgress] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ran: bool = False  # False: judged without running anything (never opened, or nothing written yet)
    seconds: float = 0.0

    @property
    def done(self) -> int:
        return sum(e.status == DONE for e in self.exercises)

    @property
    def points(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def max_points(self) -> float:
        return sum(e.max_points for e in self.exercises)

    @property
    def skipped(self) -> list[str]:
        return [f"{e.exercise}: {name}" for e in self.exercises for name in e.skipped]

    @property
    def status(self) -> str:
        """The lab in a few words: "not started", "done", or how many exercises are in each state."""
        if not self.exercises:
            return ERROR
        counts = {s: sum(e.status == s for e in self.exercises) for s in STATUSES}
        if counts[NOT_STARTED] == len(self.exercises):
            return NOT_STARTED
        if counts[DONE] == len(self.exercises):
            return DONE
        return ", ".join(f"{n} {s}" for s, n in counts.items() if n)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data.update(status=self.status, done=self.done, total=len(self.exercises), points=self.points,
                    max_points=self.max_points, skipped=self.skipped)
        return data


@dataclass
class Progress:
    """Every lab checked in one run."""

    labs_dir: str
    quick: bool
    labs: list[LabProgress] = field(default_factory=list)

    @property
    def skipped(self) -> list[str]:
        return [f"{lab.lab}/{s}" for lab in self.labs for s in lab.skipped]

    def to_json(self) -> dict:
        return {"labs_dir": self.labs_dir, "quick": self.quick, "labs": [lab.to_json() for lab in self.labs],
                "skipped": self.skipped}

    @classmethod
    def from_json(cls, data: dict) -> "Progress":
        known = {f.name for f in dataclasses.fields(LabProgress)}
        labs = []
        for item in data.get("labs", []):
            lab = LabProgress(**{k: v for k, v in item.items() if k in known and k != "exercises"})
            lab.exercises = [ExerciseProgress(**e) for e in item.get("exercises", [])]
            labs.append(lab)
        return cls(str(data.get("labs_dir", "")), bool(data.get("quick", False)), labs)


# ---------------------------------------------------------------------------------------------
# Which labs, and the pristine lab each notebook is compared with
# ---------------------------------------------------------------------------------------------

def lab_names(labs_dir: Path, root: Path | None) -> list[str]:
    """The course's labs: from its sources (``solutions/NN_topic.py``), else the notebooks in ``labs_dir``."""
    names = L.lab_names(root / "solutions", ".py") if root is not None else []
    return names or L.lab_names(Path(labs_dir))


def pristine_lab(lab: str, root: Path | None):
    """The blank lab as the course generates it from ``solutions/NN_topic.py``; None without a source."""
    if root is None or not (root / "solutions" / f"{lab}.py").is_file():
        return None
    from sweatlab.course.build import make_lab
    from sweatlab.course.source import load_source

    return make_lab(load_source(root / "solutions" / f"{lab}.py"))


def _code(cell) -> str:
    source = cell.get("source", "")
    return ("".join(source) if isinstance(source, list) else str(source)).strip()


def _written(submission, pristine, answer_cells: list[str]) -> bool:
    """Whether any of these answer cells differs from the lab's stub (a cell missing from the notebook counts
    as unchanged: the grader runs the stub in its place)."""
    from sweatlab.grading.notebook import cell_key

    blank = {cell_key(c): _code(c) for c in pristine.cells}
    mine: dict[str, str] = {}
    for cell in submission.cells:
        key = cell_key(cell)
        if key in answer_cells and cell.get("cell_type") == "code":
            mine[key] = _code(cell)  # the last copy, as the grader takes it
    return any(key in mine and mine[key] != blank.get(key) for key in answer_cells)


# ---------------------------------------------------------------------------------------------
# Running one lab: the grading pipeline, public tests only
# ---------------------------------------------------------------------------------------------

def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def check_lab(lab: str, notebook: Path, pristine=None, limits=None, quick: bool = False) -> LabProgress:
    """The progress of one lab from the learner's ``notebook``; never raises for anything the notebook does.

    ``pristine`` is the blank lab (:func:`pristine_lab`); without it the notebook is its own
    pristine copy (a stub is then recognised only by the NotImplementedError it raises).
    ``limits`` (:class:`sweatlab.grading.sandbox.Limits`) bound the child; ``submission_timeout_s``
    is the time for the whole lab.
    """
    import nbformat

    from sweatlab.grading import pipeline
    from sweatlab.grading.notebook import SubmissionError, read_submission
    from sweatlab.grading.sandbox import Limits
    from sweatlab.kit.checks import load_lab_tests

    started = time.monotonic()
    limits = limits or Limits(cell_timeout_s=DEFAULT_CELL_TIMEOUT_S, submission_timeout_s=DEFAULT_LAB_TIMEOUT_S)
    progress = LabProgress(lab, str(notebook))
    try:
        tests = load_lab_tests(lab)
    except KeyError:
        progress.notes.append(f"lab {lab} has no public checks (lib/sweatlab/labs/lab{lab}/checks.py): "
                              "nothing to judge")
        return progress
    exercises = list(dict.fromkeys(t.exercise for t in tests))

    def each(status: str, message: str = "") -> list[ExerciseProgress]:
        return [ExerciseProgress(ex, "", status, max_points=sum(t.points for t in tests if t.exercise == ex),
                                 tests=sum(t.exercise == ex for t in tests), message=message) for ex in exercises]

    notebook = Path(notebook)
    if not notebook.is_file():
        progress.exercises = each(NOT_STARTED)
        progress.notes.append(f"no notebook at {notebook}: open the lab in JupyterLab to start it")
        return progress
    try:
        submission = read_submission(notebook)
    except SubmissionError as exc:
        progress.exercises = each(ERROR, f"{notebook.name}: {exc}")
        return progress
    if pristine is None:
        pristine = nbformat.read(notebook, as_version=4)
        progress.notes.append(f"no source solutions/{lab}.py to compare with: stubs are recognised only when they "
                              "raise NotImplementedError")
        known_pristine = False
    else:
        known_pristine = True
    layout = pipeline.lab_layout(pristine)
    titles = dict(layout.titles)
    written = {ex for ex in exercises
               if not known_pristine or not layout.answer_cells.get(ex) or
               _written(submission, pristine, layout.answer_cells[ex])}
    if not written:
        progress.exercises = each(NOT_STARTED)
        for e in progress.exercises:
            e.title = titles.get(e.exercise, "")
        progress.seconds = time.monotonic() - started
        return progress

    pipeline.STOP.clear()
    run = pipeline.run_lab_tests(pristine, submission, lab, tests, limits, timed=not quick, exercises=written,
                                 layout=layout)
    progress.ran = True
    results = {ex: [r for r in run.results if r.exercise == ex] for ex in exercises}
    skipped = {ex: [t.name for t in run.skipped if t.exercise == ex] for ex in exercises}
    progress.notes += [n for n in run.notes if "were run too" not in n]
    cell_errors = run.cell_errors_by_id
    answer_ids = {cid for ids in layout.answer_cells.values() for cid in ids}
    progress.notes += [_first_line(text) for cid, text in cell_errors.items() if cid not in answer_ids]

    for ex in exercises:
        max_points = sum(t.points for t in tests if t.exercise == ex and t.name not in skipped[ex])
        item = ExerciseProgress(ex, titles.get(ex, ""), NOT_STARTED, max_points=max_points,
                                tests=sum(t.exercise == ex for t in tests), skipped=skipped[ex])
        progress.exercises.append(item)
        if ex not in written:
            item.message = STUB_MESSAGE
            continue
        rs = results[ex]
        item.passed = sum(r.passed for r in rs)
        item.points = sum(r.points for r in rs)
        own_errors = [cell_errors[cid] for cid in layout.answer_cells.get(ex, []) if cid in cell_errors
                      and "still raises NotImplementedError" not in cell_errors[cid]]
        failed = [r for r in rs if not r.passed]
        if own_errors:
            item.status, item.message = ERROR, _first_line(own_errors[0])
        elif not rs:
            item.status = SKIPPED
            item.message = "only timed speed checks, skipped (run without --quick to include them)"
        elif not failed:
            item.status = DONE
        elif all(r.not_written for r in failed) and not item.passed:
            item.status, item.message = NOT_STARTED, _first_line(failed[0].message)
        elif any("used all of its" in r.message for r in failed):
            item.status = ERROR
            item.message = f"not checked: the lab ran out of its {limits.submission_timeout_s:g} s " \
                           "(a slow or endless cell above?)"
        else:
            item.status, item.message = FAILING, f"{failed[0].name}: {_first_line(failed[0].message)}"
    progress.seconds = time.monotonic() - started
    return progress


def check_progress(labs_dir: Path | None = None, lab: str | None = None, quick: bool = False,
                   timeout_s: float = DEFAULT_LAB_TIMEOUT_S, cell_timeout_s: float = DEFAULT_CELL_TIMEOUT_S,
                   root: Path | None = None, on_lab: Callable[[LabProgress], None] | None = None) -> Progress:
    """Every lab's progress (or only ``lab``'s), from the notebooks in ``labs_dir`` (default: the course's ``labs/``).

    ``timeout_s`` bounds each lab; ``on_lab(progress)`` is called as each lab is done.
    """
    from sweatlab.grading.sandbox import Limits

    root = Path(root) if root else course_root(labs_dir) or course_root()
    if labs_dir is None:
        if root is None:
            raise ProgressError("not inside the course folder, and no labs folder given: run this in the course "
                                "folder, or name the folder that holds your lab notebooks")
        labs_dir = root / "labs"
    labs_dir = Path(labs_dir)
    if not labs_dir.is_dir():
        raise ProgressError(f"no folder {labs_dir}: name the folder that holds your lab notebooks (labs/)")
    names = lab_names(labs_dir, root)
    if lab:
        try:
            names = [L.resolve_lab(lab, names)]
        except L.LabNameError as exc:
            raise ProgressError(str(exc)) from None
    if not names:
        raise ProgressError(f"no labs found in {labs_dir} (NN_topic.ipynb): name the course's labs/ folder")
    limits = Limits(cell_timeout_s=cell_timeout_s, call_timeout_s=min(30.0, timeout_s),
                    submission_timeout_s=timeout_s)
    result = Progress(str(labs_dir), quick)
    for name in names:
        one = check_lab(name, labs_dir / f"{name}.ipynb", pristine_lab(name, root), limits, quick)
        result.labs.append(one)
        if on_lab:
            on_lab(one)
    return result


# ---------------------------------------------------------------------------------------------
# The terminal table
# ---------------------------------------------------------------------------------------------

def _pts(x: float) -> str:
    return f"{x:g}"


def _columns(rows: list[list[str]], widths: list[int]) -> list[str]:
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def format_table(progress: Progress) -> str:
    """Plain, aligned text (no colour): one row per lab, then one per exercise of each lab that was started.

    A failure's message is its first line, in full (the terminal wraps it); ``--json`` has the same data.
    """
    rows: list[list[str]] = [["lab / exercise", "done", "points", "status"]]
    kinds: list[str] = ["head"]
    for lab in progress.labs:
        total = len(lab.exercises)
        status = lab.status
        if not lab.ran and lab.status == NOT_STARTED:
            status += " (no notebook yet)" if not Path(lab.notebook).is_file() else " (nothing written yet: not run)"
        rows.append([lab.lab, f"{lab.done}/{total}", f"{_pts(lab.points)}/{_pts(lab.max_points)}",
                     status + (f"  [{lab.seconds:.1f} s]" if lab.ran else "")])
        kinds.append("lab")
        if lab.status == NOT_STARTED and not lab.ran:
            continue
        for e in lab.exercises:
            rows.append([f"  {e.exercise}", f"{e.passed}/{e.tests - len(e.skipped)}",
                         f"{_pts(e.points)}/{_pts(e.max_points)}",
                         e.status + (f": {e.message}" if e.message and e.status != DONE else "")
                         + (f" ({len(e.skipped)} timed check(s) skipped)" if e.skipped and e.status != SKIPPED
                            else "")])
            kinds.append("exercise")
    widths = [max(len(r[i]) for r in rows) for i in range(3)] + [0]
    rule = "-" * (sum(widths) + 2 * 3 + max(len(r[3]) for r in rows[:1] + [r for r, k in zip(rows, kinds)
                                                                          if k == "lab"]))
    lines = []
    previous = "head"
    for line, kind in zip(_columns(rows, widths), kinds):
        if kind == "lab" and previous == "exercise":
            lines.append("")
        previous = kind
        lines.append(line)
        if kind == "head":
            lines.append(rule)
    for lab in progress.labs:
        for note in lab.notes if lab.ran or lab.status != NOT_STARTED else ():
            lines.append(f"note ({lab.lab}): {note}")
    done = sum(lab.done for lab in progress.labs)
    total = sum(len(lab.exercises) for lab in progress.labs)
    lines.append("")
    lines.append("done: exercises done (a lab's row), checks passed (an exercise's row)")
    lines.append(f"{done} of {total} exercises done in {len(progress.labs)} lab(s); "
                 f"{_pts(sum(lab.points for lab in progress.labs))} of "
                 f"{_pts(sum(lab.max_points for lab in progress.labs))} points (public checks only)")
    if progress.skipped:
        lines.append(f"--quick: {len(progress.skipped)} timed speed check(s) skipped and not counted: "
                     + "; ".join(progress.skipped) + ". Run without --quick to include them.")
    elif progress.quick and any(lab.ran for lab in progress.labs):
        lines.append("--quick: timed speed checks are skipped; none was among the exercises checked")
    return "\n".join(lines)


def main(args) -> int:
    """The ``sweatlab progress`` verb (see :func:`sweatlab.tools.cli.cmd_progress`)."""
    try:
        progress = check_progress(Path(args.labs_dir) if args.labs_dir else None, args.lab, args.quick,
                                  args.timeout, args.cell_timeout, Path(args.root) if args.root else None,
                                  on_lab=None if args.json else _say_checked)
    except ProgressError as exc:
        print(f"progress: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(progress.to_json(), indent=1, ensure_ascii=False))
    else:
        print(format_table(progress))
    return 0


def _say_checked(lab: LabProgress) -> None:
    if lab.ran:
        how = f"ran its public checks in {lab.seconds:.1f} s"
    else:
        how = "no notebook yet" if not Path(lab.notebook).is_file() else "nothing written yet, not run"
    print(f"checked {lab.lab}: {how}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# JupyterLab: a widget (or an HTML table), refreshed by a child process
# ---------------------------------------------------------------------------------------------

_MARK = {DONE: "✓", FAILING: "✗", NOT_STARTED: "·", ERROR: "!", SKIPPED: "–"}


def _exercise_html(lab: LabProgress) -> str:
    items = []
    for e in lab.exercises:
        text = f"<b>{html.escape(e.exercise)}</b>"
        if e.title:
            text += f" ({html.escape(e.title)})"
        text += f": {html.escape(e.status)}, {_pts(e.points)}/{_pts(e.max_points)} points"
        if e.message and e.status != DONE:
            text += f"<br><code>{html.escape(e.message)}</code>"
        if e.skipped:
            text += f"<br><i>timed check(s) skipped: {html.escape(', '.join(e.skipped))}</i>"
        items.append(f"<li>{_MARK.get(e.status, '')} {text}</li>")
    notes = "".join(f"<li><i>{html.escape(n)}</i></li>" for n in lab.notes)
    return f"<ul>{''.join(items)}{notes}</ul>"


def progress_html(progress: Progress) -> str:
    """The progress as one HTML table (the view where ipywidgets is missing)."""
    rows = []
    for lab in progress.labs:
        rows.append(f"<tr><td>{html.escape(lab.lab)}</td><td>{lab.done}/{len(lab.exercises)}</td>"
                    f"<td>{_pts(lab.points)}/{_pts(lab.max_points)}</td><td>{html.escape(lab.status)}</td>"
                    f"<td>{_exercise_html(lab) if lab.ran else ''}</td></tr>")
    foot = ""
    if progress.skipped:
        foot = f"<p>Timed speed checks skipped: {html.escape('; '.join(progress.skipped))}.</p>"
    return ("<table><tr><th>lab</th><th>done</th><th>points</th><th>status</th><th>exercises</th></tr>"
            + "".join(rows) + "</table>" + foot)


def refresh_command(labs_dir: Path | None, lab: str | None, quick: bool, timeout_s: float,
                    root: Path | None) -> list[str]:
    """The command that checks progress in a child process and prints it as JSON."""
    cmd = [sys.executable, "-m", "sweatlab"] + (["--root", str(root)] if root else []) + ["progress", "--json"]
    cmd += ([str(labs_dir)] if labs_dir else []) + (["--lab", lab] if lab else []) + (["--quick"] if quick else [])
    return cmd + ["--timeout", f"{timeout_s:g}"]


def run_refresh(command: list[str], timeout_s: float) -> Progress:
    """Run ``command`` (a child process printing progress JSON); stop it after ``timeout_s``.

    On time out the child gets Ctrl-C (it stops its notebook processes) and, if it lingers, is killed.
    """
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        if os.name == "posix":
            proc.send_signal(signal.SIGINT)  # it stops its notebook processes, then exits
        else:
            proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        raise ProgressError(f"checking took longer than {timeout_s:g} s and was stopped; check one lab at a time "
                            "(lab=\"04\") or skip the speed checks (quick=True)") from None
    if proc.returncode != 0:
        raise ProgressError(f"checking failed (exit code {proc.returncode}): "
                            f"{_first_line(err.strip().splitlines()[-1] if err.strip() else '') or 'no message'}")
    try:
        return Progress.from_json(json.loads(out))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ProgressError(f"checking printed something that is not progress JSON ({exc})") from None


class ProgressView:
    """The widget: per lab a row with a progress bar (exercises done) and an expandable list of its
    exercises; a Refresh button reruns the checks in a child process, in the background."""

    def __init__(self, progress: Progress | None = None, command: list[str] | None = None,
                 timeout_s: float = DEFAULT_LAB_TIMEOUT_S * 7 + 60):
        import ipywidgets as w

        self.w = w
        self.command, self.timeout_s = command, timeout_s
        self.header = w.HTML()
        self.status = w.HTML()
        self.refresh_button = w.Button(description="Refresh", icon="refresh",
                                       tooltip="run the public checks again on your saved notebooks")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.rows = w.VBox()
        self.bars: dict[str, Any] = {}
        self.widget = w.VBox([self.header, w.HBox([self.refresh_button, self.status]), self.rows])
        self.thread: threading.Thread | None = None
        self.progress = progress
        if progress is not None:
            self.update(progress)

    def update(self, progress: Progress) -> None:
        w = self.w
        self.progress = progress
        self.header.value = (f"<b>Your progress</b> in <code>{html.escape(progress.labs_dir)}</code> "
                             "(public checks, run on your saved notebooks)")
        rows, self.bars = [], {}
        for lab in progress.labs:
            total = len(lab.exercises)
            bar = w.IntProgress(value=lab.done, min=0, max=max(total, 1), description=lab.lab,
                                bar_style="success" if total and lab.done == total else "",
                                style={"description_width": "10em"}, layout=w.Layout(width="50%"))
            self.bars[lab.lab] = bar
            summary = w.HTML(f"{lab.done}/{total} exercises, {_pts(lab.points)}/{_pts(lab.max_points)} points: "
                             f"{html.escape(lab.status)}")
            details = w.Accordion(children=[w.HTML(_exercise_html(lab))], titles=("exercises",),
                                  selected_index=None)
            rows.append(w.VBox([w.HBox([bar, summary]), details]))
        self.rows.children = rows
        self.status.value = ("timed speed checks skipped: " + html.escape("; ".join(progress.skipped))
                             if progress.skipped else "")

    def refresh(self) -> threading.Thread | None:
        """Check again in a child process (the kernel stays free); the button is off until it returns."""
        if self.command is None or (self.thread is not None and self.thread.is_alive()):
            return None
        self.refresh_button.disabled = True
        self.status.value = "checking your notebooks (save them first: the checks read the saved files)..."

        def work() -> None:
            try:
                self.update(run_refresh(self.command, self.timeout_s))
            except (ProgressError, OSError) as exc:
                self.status.value = f"<b>could not check</b>: {html.escape(str(exc))}"
            finally:
                self.refresh_button.disabled = False

        self.thread = threading.Thread(target=work, name="sweatlab-progress", daemon=True)
        self.thread.start()
        return self.thread

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def show_progress(labs_dir: str | Path | None = None, lab: str | None = None, quick: bool = True,
                  timeout_s: float = DEFAULT_LAB_TIMEOUT_S, progress: Progress | None = None):
    """Show your progress in JupyterLab: a widget with a Refresh button, or an HTML table without ipywidgets.

    The checks run in a child process (the kernel stays free) on your *saved* notebooks;
    ``quick`` (the default here) skips the timed speed checks. ``timeout_s`` bounds each lab.
    """
    root = course_root(labs_dir) or course_root()
    command = refresh_command(Path(labs_dir).resolve() if labs_dir else None, lab, quick, timeout_s, root)
    n_labs = 1 if lab else max(len(lab_names(Path(labs_dir) if labs_dir else (root or Path.cwd()) / "labs", root)), 1)
    budget = timeout_s * n_labs + 60  # every lab may use its time, plus starting Python
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        from IPython.display import HTML

        return HTML(progress_html(progress or run_refresh(command, budget)))
    view = ProgressView(progress, command, budget)
    if progress is None:
        view.refresh()
    return view
