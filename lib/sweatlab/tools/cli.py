"""The ``sweatlab`` command. Each verb is also a Makefile target (``make lab``, ``make check``...)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from sweatlab.course import layout as C  # standard library only: `sweatlab doctor` works without nbformat


def _tools():
    """The course tooling (nbformat, jupytext), imported by the verbs that need it."""
    from sweatlab import course

    return course


def _course(args) -> C.Course:
    return C.Course(Path(args.root).resolve() if args.root else C.find_root())


def _lab_course(args) -> C.Course:
    """The course for a verb that works on lab sources: ``--root`` must name a course folder."""
    course = _course(args)
    if not course.solutions.is_dir():
        raise C.CourseError(course.root, "not a course folder (no solutions/ in it)",
                            "pass --root the course folder (the one holding solutions/ and pyproject.toml), "
                            "or leave --root out and run inside it")
    return course


def cmd_check(args) -> int:
    """labs/ and solutions/ are in sync; exits 1 with every problem listed."""
    started = time.perf_counter()
    course = _lab_course(args)
    problems = _tools().check_course(course)
    n = len(course.sources())
    for problem in problems:
        print(f"ERROR {problem}")
    took = time.perf_counter() - started
    if problems:
        print(f"make check: {len(problems)} problem(s) in {n} lab(s) ({took:.1f} s)")
        return 1
    print(f"make check: {n} lab(s) in sync, solutions executed 1..N, compared outputs recorded ({took:.1f} s)")
    return 0


def cmd_build_labs(args) -> int:
    course = _lab_course(args)
    total = len(_tools().select_sources(course, args.labs))
    changed = _tools().build_labs(course, args.labs)
    for path in changed:
        print(f"wrote {path.relative_to(course.root)}")
    print(f"labs: {len(changed)} written, {total - len(changed)} already up to date")
    return 0


def cmd_execute(args) -> int:
    course = _lab_course(args)
    for src in _tools().select_sources(course, args.labs):
        started = time.perf_counter()
        out = _tools().execute_solution(course, src, quick=not args.full, timeout_s=args.timeout)
        print(f"executed {out.relative_to(course.root)} ({'full' if args.full else 'quick'} mode, "
              f"{time.perf_counter() - started:.0f} s)")
    _tools().build_labs(course, args.labs)
    return cmd_figures(args)


def cmd_figures(args) -> int:
    """Set every run figure the decks and the instructor guide quote from the executed solutions."""
    course = _lab_course(args)
    changed, unknown = _tools().refresh_quotes(course)
    for path in changed:
        print(f"figures: updated the quotes in {path.relative_to(course.root)}")
    for name in unknown:
        print(f"ERROR figures: {name} names no figure of that lab's run (lab.quote makes one)")
    return 1 if unknown else 0


def nbval_command(paths: list[str], sanitize: Path, workers: int = 2) -> list[str]:
    """The one nbval command line for solution notebooks (lax: only tagged cells are compared)."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax",
           "--nbval-current-env", f"--nbval-sanitize-with={sanitize}",
           "--nbval-cell-timeout=300", "--nbval-kernel-startup-timeout=120",
           "--durations=10", "-o", "addopts="]
    if workers > 1 and len(paths) > 1:
        cmd += ["-n", str(workers), "--dist", "loadscope"]
    return cmd + paths


def _nbval_paths(course: C.Course, names: list[str]) -> list[str]:
    """Each name as a notebook path: an existing file, or a lab (``01``, ``01_matmul``) whose solution was executed."""
    paths = []
    for name in names:
        if Path(name).is_file():
            paths.append(name)
            continue
        if "/" in name or Path(name).suffix:
            raise C.CourseError(name, "no such notebook",
                                "name an executed solution notebook (e.g. solutions/00_measure.ipynb) or a lab "
                                "number (e.g. 00)")
        for src in _tools().select_sources(course, [name]):
            notebook = course.solution_ipynb(src)
            if not notebook.is_file():
                raise C.CourseError(notebook, "the executed solution notebook is missing",
                                    f"run: sweatlab execute {src.stem}")
            paths.append(str(notebook))
    return paths


def cmd_nbval(args) -> int:
    course = _lab_course(args)
    paths = _nbval_paths(course, args.notebooks) or [str(p) for p in sorted(course.solutions.glob("*.ipynb"))]
    if not paths:
        print("nbval: no solution notebooks yet (solutions/*.ipynb); nothing to run")
        return 0
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sweatlab-nbval-") as scratch:
        # the labs' record() calls go to a scratch folder: a test run adds nothing to a learner's results/
        env = dict(os.environ, SWEAT_QUICK="0" if args.full else "1", SWEAT_RESULTS_DIR=scratch)
        # A lab that measures thread scaling gets the machine to itself: run beside another notebook,
        # its two threads would share a core with it. The others run `workers` at a time first.
        alone = [p for p in paths if _notebook_threads(Path(p)) > 1]
        shared = [p for p in paths if p not in alone]
        sanitize = course.root / "tests" / "nbval_sanitize.cfg"
        rc = subprocess.call(nbval_command(shared, sanitize, args.workers), cwd=course.root, env=env) if shared else 0
        if alone:
            print(f"nbval: now alone, as they measure thread scaling: {', '.join(Path(p).name for p in alone)}",
                  flush=True)
            rc = subprocess.call(nbval_command(alone, sanitize, 1), cwd=course.root, env=env) or rc
        return rc


def _notebook_threads(path: Path) -> int:
    """The threads a notebook's lab asks for (``sweat={"threads": N}`` on a cell); 1 if unreadable."""
    import nbformat

    from sweatlab.grading.pipeline import lab_threads

    try:
        return lab_threads(nbformat.read(path, as_version=4))
    except Exception:  # nbval itself reports a broken notebook
        return 1


def cmd_slides(args) -> int:
    from sweatlab.course import slides

    course = _lab_course(args)
    out_dir = course.slides / "build"
    try:
        sources = slides.deck_sources(course.slides, args.decks)
        if not sources:
            print("slides: no decks yet (slides/NN_topic.md)")
            return 0
        for src in sources:
            out = slides.build_deck(src, out_dir / (src.stem + ".html"))
            print(f"wrote {out.relative_to(course.root)} ({out.stat().st_size // 1024} KiB, self-contained)")
    except slides.SlideError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 1
    return 0


def lab_command(root: Path, extra: list[str]) -> list[str]:
    """The JupyterLab command line: no browser when there is no display or when run as root."""
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}"]
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    headless = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if is_root:
        cmd.append("--allow-root")
    if is_root or headless:
        cmd.append("--no-browser")
    return cmd + extra


def cmd_lab(args) -> int:
    course = _course(args)
    cmd = lab_command(course.root, args.jupyter_args)
    if "--no-browser" in cmd:
        print("No display (or running as root): open the http://127.0.0.1:... URL printed below in your browser.",
              flush=True)
    os.execv(cmd[0], cmd)  # replaces this process, so Ctrl-C reaches JupyterLab directly
    return 0


def cmd_doctor(args) -> int:
    from sweatlab.tools import doctor

    return doctor.main(args)


def cmd_profile(args) -> int:
    from sweatlab.tools import profile

    return profile.main(args.profile_args)


def cmd_grade(args) -> int:
    from sweatlab.grading import grader, report
    from sweatlab.grading.sandbox import Limits

    course = _course(args)
    limits = Limits(cell_timeout_s=args.cell_timeout, submission_timeout_s=args.timeout, memory_mb=args.memory,
                    disk_mb=args.disk)
    lab = None
    if args.lab:
        try:
            lab = C.resolve_lab(args.lab, C.lab_names(course.labs))
        except C.LabNameError as exc:
            print(f"grade: {exc}", file=sys.stderr)
            return 2
    if args.hidden:
        try:
            n = grader.load_hidden_tests(Path(args.hidden))
        except (FileNotFoundError, SyntaxError, ImportError) as exc:
            print(f"grade: cannot load the hidden tests in {args.hidden}: {exc}", file=sys.stderr)
            return 2
        print(f"hidden tests: {n} loaded from {args.hidden}")
    if args.selftest:
        return _selftest(course, limits, args.jobs)
    if args.manual and not Path(args.manual).is_file():
        print(f"grade: no manual-scores file {args.manual}", file=sys.stderr)
        return 2
    subs = grader.discover(args.submissions)
    if args.gradescope_json:
        subs = [s for s in subs if s.path.suffix == ".ipynb"] or subs
    if not subs:
        if args.gradescope_json:
            _write_gradescope(Path(args.gradescope_json), None, [])
            print(f"grade: no notebook in the submission; wrote {args.gradescope_json} with a score of 0")
            return 0
        print("grade: no submissions given (name files or folders), or use --selftest")
        return 2
    out = Path(args.out)
    started = time.perf_counter()
    shown = []

    def progress(g, reused: bool) -> None:
        if not reused and g.limit_notes and not shown:
            shown.append(True)
            print("limits enforced on each submission (this machine):")
            for note in g.limit_notes:
                print(f"  - {note}")
        print(f"{g.name:<32} {g.lab or '?':<14} {g.score:6g} / {g.max_score:<6g} {g.seconds:6.1f} s"
              + ("  (unchanged since last graded: kept)" if reused else
                 (f"  ({g.notes[0].splitlines()[0]})" if g.notes else "")), flush=True)

    interrupted = False
    try:
        graded = grader.grade_batch(subs, course.labs, lab, limits, args.jobs, out_dir=out, resume=args.resume,
                                    progress=progress)
    except KeyboardInterrupt:
        interrupted, graded = True, []
    all_grades, paths = report.rebuild(out, Path(args.manual) if args.manual else None)
    for problem in paths.get("problems", []):
        print(f"note: {problem}")
    took = time.perf_counter() - started
    if interrupted:
        print(f"interrupted: every learner process was stopped; {len(all_grades)} graded submission(s) kept in "
              f"{out}/graded and the class files rebuilt from them. Run the same command with --resume to grade "
              "the rest.")
        return 130
    if args.gradescope_json:
        _write_gradescope(Path(args.gradescope_json), max(graded, key=lambda g: g.score, default=None), graded)
    print(f"graded {len(graded)} submission(s) in {took:.1f} s with -j {args.jobs}; the class files hold "
          f"{len(all_grades)}: wrote {paths['csv']}, {paths['feedback']}/, {paths['results']}"
          + (f", {paths['reflections']}" if "reflections" in paths else ""))
    return 0


def _write_gradescope(path: Path, grade, graded: list) -> None:
    """Gradescope's results.json for one learner: the best of the notebooks they uploaded."""
    import json

    from sweatlab.grading import report

    if grade is None:
        data = {"score": 0.0, "output": "No notebook (.ipynb) was found in your submission: upload the lab's "
                                        ".ipynb file (File > Download in JupyterLab) and submit again.",
                "output_format": "md", "tests": []}
    else:
        data = report.gradescope(grade)
        others = [g.name for g in graded if g is not grade]
        if others:
            data["output"] = (data.get("output", "") + "\n\nYou uploaded several files; the best one was graded"
                              f" ({grade.name}), not: {', '.join(others)}.").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")


def _selftest(course: C.Course, limits, jobs: int) -> int:
    """Every lab: its check cells name the exercises its checks module registers, in order; its solution
    scores full marks, its blank student version zero, and neither crashes."""
    import nbformat

    from sweatlab.grading import grader
    from sweatlab.grading.pipeline import lab_layout
    from sweatlab.kit.checks import load_lab_tests

    labs, failed_labs = [], []
    for name in C.lab_names(course.labs):
        try:
            tests = load_lab_tests(name)
        except KeyError:
            failed_labs.append(name)
            print(f"FAIL {name:<14} has no checks module: write lib/sweatlab/labs/lab{name}/checks.py "
                  "(every lab's exercises need public checks; see the README's 'Adding a lab')")
            continue
        registered = list(dict.fromkeys(t.exercise for t in tests))
        in_cells = list(lab_layout(nbformat.read(course.labs / f"{name}.ipynb", as_version=4)).exercises)
        if in_cells != registered:
            failed_labs.append(name)
            print(f"FAIL {name:<14} its check cells name the exercises {', '.join(in_cells) or 'none'}, its checks "
                  f"module registers {', '.join(registered) or 'none'}: give each registered exercise one check "
                  'cell, in the same order, with sweat={"exercise": ..., "title": ...}')
            continue
        labs.append(name)
    if not labs and not failed_labs:
        print("selftest: no labs yet")
        return 0
    files = [p for lab in labs for p in (course.solutions / f"{lab}.ipynb", course.labs / f"{lab}.ipynb")]
    grades = grader.grade_batch(files, course.labs, None, limits, jobs, hidden=False) if files else []
    failures = 0
    for g in grades:
        kind = "solution" if "solutions" in Path(g.path).parts else "blank lab"
        want = g.max_score if kind == "solution" else 0.0
        ok = g.results and g.score == want and (kind != "solution" or not g.cell_errors)
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {g.lab:<14} {kind:<9} {g.score:g} / {g.max_score:g} "
              f"(expected {want:g}) {g.seconds:.1f} s")
        if not ok:
            for r in g.results:
                if r.passed != (kind == "solution"):
                    print(f"       {r.exercise}: {r.name}: {r.message.splitlines()[0] if r.message else 'passed'}")
            for e in g.cell_errors + g.notes:
                print(f"       {e.splitlines()[0]}")
    print(f"selftest: {len(grades) - failures} passed, {failures + len(failed_labs)} failed"
          + (f" ({len(failed_labs)} lab(s) not graded: no checks module, or check cells that do not match it)"
             if failed_labs else ""))
    return 1 if failures or failed_labs else 0


def cmd_gradescope(args) -> int:
    """Write Gradescope's autograder zip for one lab: setup.sh, run_autograder, the library, the lab."""
    from sweatlab.grading import gradescope

    course = _course(args)
    try:
        lab = C.resolve_lab(args.lab, C.lab_names(course.labs))
        out = gradescope.build_autograder(course.root, lab, Path(args.hidden) if args.hidden else None,
                                          Path(args.out), args.pip_args)
    except (C.LabNameError, gradescope.AutograderError) as exc:
        print(f"gradescope: {exc}", file=sys.stderr)
        return 2
    size = out.stat().st_size
    shown = f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{max(size // 1024, 1)} KiB"
    hidden = f", hidden tests from {args.hidden}" if args.hidden else ", no hidden tests"
    print(f"wrote {out} ({shown}): lab {lab}{hidden}")
    print("upload it on Gradescope: the assignment's Configure Autograder page, Ubuntu base image")
    return 0


def cmd_class_report(args) -> int:
    """Pool the learners' record files under a folder into one self-contained HTML page."""
    from sweatlab.tools import class_report

    return class_report.main(args.folder, args.output)


def cmd_progress(args) -> int:
    """Which labs and exercises are done, judged by each lab's public checks run on your own notebooks."""
    from sweatlab.tools import progress

    return progress.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sweatlab", description="Systems That Sweat: course tools and measurements")
    parser.add_argument("--root", help="course folder (default: found from the current directory)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("doctor", help="pre-flight: Python, packages, kernel, threads, CPU, energy sensors, GPU")
    p.add_argument("--json", action="store_true", help="print the checks as JSON (for collecting a class's setups)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("lab", help="start JupyterLab on the course (other arguments go to jupyter lab)")
    p.set_defaults(func=cmd_lab, passthrough="jupyter_args")

    p = sub.add_parser("check", help="labs/ and solutions/ in sync (make check)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("build-labs", help="generate labs/NN_topic.ipynb from solutions/NN_topic.py")
    p.add_argument("labs", nargs="*", help="lab numbers or names (default: all)")
    p.set_defaults(func=cmd_build_labs)

    p = sub.add_parser("figures", help="set the run figures quoted in slides/*.md and the instructor guide from "
                                       "the executed solutions")
    p.set_defaults(func=cmd_figures)
    p = sub.add_parser("execute", help="execute solutions/NN_topic.py into its .ipynb, then rebuild the lab")
    p.add_argument("labs", nargs="*", help="lab numbers or names (default: all)")
    p.add_argument("--full", action="store_true", help="full mode (default: quick mode, as CI runs it)")
    p.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    p.set_defaults(func=cmd_execute)

    p = sub.add_parser("nbval", help="run nbval on solutions/*.ipynb in quick mode")
    p.add_argument("notebooks", nargs="*", help="notebooks or lab numbers (default: solutions/*.ipynb)")
    p.add_argument("--full", action="store_true", help="full mode instead of SWEAT_QUICK=1")
    p.add_argument("-n", "--workers", type=int, default=2, help="parallel kernels (default 2)")
    p.set_defaults(func=cmd_nbval)

    p = sub.add_parser("slides", help="build slides/NN_topic.md into offline HTML decks in slides/build/")
    p.add_argument("decks", nargs="*", help="deck numbers or names (default: all)")
    p.set_defaults(func=cmd_slides)

    p = sub.add_parser("grade", help="grade submitted notebooks: grades.csv, feedback/, results.json")
    p.add_argument("submissions", nargs="*", help="notebook files, or folders of them")
    p.add_argument("--lab", help="the lab: its number (01), a unique prefix, or its name 01_matmul "
                                 "(default: from each file's name or content)")
    p.add_argument("--hidden", help="folder of the instructor's hidden tests (*.py)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per submission (default 600)")
    p.add_argument("--cell-timeout", type=float, default=60, help="seconds per cell (default 60)")
    p.add_argument("--memory", type=int, default=2048, help="MB of memory per submission (default 2048)")
    p.add_argument("-j", "--jobs", type=int, default=1,
                   help="submissions graded at once, each on cores of its own (as many as its lab asks threads for; default 1)")
    p.add_argument("--disk", type=int, default=512, help="MB of files a submission may write (default 512)")
    p.add_argument("--out", default="grading-out", help="output folder (default grading-out); each result is "
                                                       "saved in OUT/graded/ as soon as it is graded")
    p.add_argument("--resume", action="store_true",
                   help="skip submissions already graded in OUT with the same file and tests")
    p.add_argument("--manual", help="CSV of scores marked by hand: a 'submission' column, then 'item (max N)' "
                                    "columns; merged into the totals")
    p.add_argument("--gradescope-json", help="also write Gradescope's results.json for this one learner here")
    p.add_argument("--selftest", action="store_true",
                   help="check every lab: the solution scores full marks and the blank lab zero")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("gradescope", help="write a Gradescope autograder zip for one lab (see README)")
    p.add_argument("lab", help="the lab: its number (01), its name (01_matmul) or a unique prefix")
    p.add_argument("--hidden", help="folder of the instructor's hidden tests (*.py) to grade with")
    p.add_argument("--out", default="autograder.zip", help="the zip to write (default autograder.zip)")
    p.add_argument("--pip-args", default="", help="extra pip arguments for setup.sh, e.g. an extra index "
                                                  "of CPU-only torch wheels")
    p.set_defaults(func=cmd_gradescope)

    p = sub.add_parser("progress", help="which labs and exercises you have done: your notebooks' public checks")
    p.add_argument("labs_dir", nargs="?", help="the folder of your lab notebooks (default: the course's labs/)")
    p.add_argument("--lab", help="only this lab: its number (04), a unique prefix, or its name 04_less")
    p.add_argument("--quick", action="store_true", help="skip the timed speed checks (the output lists them)")
    p.add_argument("--timeout", type=float, default=300, help="seconds per lab (default 300)")
    p.add_argument("--cell-timeout", type=float, default=60, help="seconds per cell (default 60)")
    p.add_argument("--json", action="store_true", help="print the progress as JSON")
    p.set_defaults(func=cmd_progress)

    p = sub.add_parser("profile", help="measure this machine: peaks, bandwidth, timer, SIMD, sensors "
                                       "(options: --out DIR, --quick)")
    p.set_defaults(func=cmd_profile, passthrough="profile_args")

    p = sub.add_parser("class-report", help="pool the class's results/records.jsonl files into one HTML page")
    p.add_argument("folder", help="folder holding each learner's records.jsonl (or *.json records), searched recursively")
    p.add_argument("-o", "--output", default="class-report.html", help="the page to write (default class-report.html)")
    p.set_defaults(func=cmd_class_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    passthrough = getattr(args, "passthrough", None)
    if passthrough:
        setattr(args, passthrough, extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except C.CourseError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
