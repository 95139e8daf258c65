"""Gradescope: one submission's ``results.json``, and the autograder zip that writes it.

``sweatlab gradescope 01 --hidden my-hidden/ --out autograder.zip`` builds the zip that
Gradescope's *Configure Autograder* page takes (the format is Gradescope's "Autograder
Specifications")::

    setup.sh            run once, as root, when Gradescope builds its image: a venv with the pinned stack
    run_autograder      run for every submission: grades it, always leaves results/results.json
    course/             what grading needs: pyproject.toml, README.md, lib/sweatlab/,
                        labs/NN_topic.ipynb (the pristine lab) and hidden/*.py (hidden tests)

On Gradescope the zip lands in ``/autograder/source``, the learner's files in
``/autograder/submission``, and ``run_autograder`` runs ``sweatlab grade ... --gradescope-json
/autograder/results/results.json``, which writes :func:`results_object` of the graded notebook.

Only the standard library (and :mod:`sweatlab.course.layout`, which is too) is imported here, so ``run_autograder`` can still report a broken
install in words.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from sweatlab.course.layout import LAB_NAME_RE  # standard library only

if TYPE_CHECKING:
    from sweatlab.grading.submission import SubmissionGrade

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
_EXERCISE_NUMBER_RE = re.compile(r"^\s*exercise\s+(\d+)\b", re.IGNORECASE)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # every entry gets this date: the same inputs make the same zip


class AutograderError(ValueError):
    """The autograder cannot be built as asked; the message says why and what to do."""


# ---------------------------------------------------------------------------------------------
# results.json
# ---------------------------------------------------------------------------------------------

def _fenced(text: str, info: str = "text") -> str:
    """``text`` as a markdown code block whose fence no backtick run inside it can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text.rstrip()}\n{fence}"


def _md_text(text: str) -> str:
    """Plain text that markdown shows as written (a cell id like ``ex_add`` is not italics)."""
    return re.sub(r"([\\`*_\[\]<>#|~])", r"\\\1", text)


def _points(value: float) -> float:
    """A finite number of points, rounded (JSON has no NaN, and 0.1 + 0.2 should read 0.3)."""
    value = float(value)
    return round(value, 4) if math.isfinite(value) else 0.0


def _exercise_numbers(keys: list[str], titles: dict[str, str]) -> dict[str, int]:
    """The number of each exercise: the one its title names ("Exercise 3: ..."), else the next free one."""
    numbers: dict[str, int] = {}
    for key in keys:
        match = _EXERCISE_NUMBER_RE.match(titles.get(key, ""))
        if match:
            numbers[key] = int(match.group(1))
    used = set(numbers.values())
    for position, key in enumerate(keys, start=1):
        if key not in numbers:
            number = position if position not in used else max(used, default=0) + 1
            numbers[key] = number
            used.add(number)
    return numbers


def _test_output(result: Any, hidden: bool) -> str:
    """What a learner reads under one test: the failure in words; for a public test, their traceback too."""
    if result.passed:
        return "Passed."
    message = (getattr(result, "text", None) or result.message or "failed").rstrip()
    parts = [_fenced(message)]
    traceback = getattr(result, "traceback", "") or ""
    if traceback and not hidden:  # the learner's own frames only (see checks.core.learner_traceback)
        parts += ["Traceback of your code:", _fenced(traceback)]
    return "\n\n".join(parts)


def _leaderboard(results: Iterable[Any]) -> list[dict[str, Any]]:
    """One entry per metric a test measured (e.g. ``{"speed-up of matmul_ikj": 12.3}``), larger is better."""
    board: dict[str, dict[str, Any]] = {}
    for result in results:
        for name, value in (getattr(result, "metrics", None) or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            board.setdefault(str(name), {"name": str(name), "value": round(float(value), 4), "order": "desc"})
    return list(board.values())


_WHEN_SHOWN = {"after_published": "they are graded now and shown when your instructor publishes the grades",
               "after_due_date": "they are graded now and shown after the due date",
               "hidden": "they are graded now and not shown", "visible": "they are listed below"}


def _summary(grade: SubmissionGrade, public: list[Any], hidden: list[Any], hidden_visibility: str) -> str:
    """The markdown above the tests: what was graded and what went wrong with the notebook as a whole.

    It never states the total: with hidden tests not yet published, the total is not the learner's to see.
    """
    lines = [f"Graded `{Path(grade.path).name.replace('`', chr(39))}` as lab **{grade.lab or 'unknown'}**."]
    if public:
        passed = sum(1 for r in public if r.passed)
        lines.append(f"Public tests: {passed} of {len(public)} passed "
                     f"({sum(r.points for r in public):g} / {sum(r.max_points for r in public):g} points).")
    if hidden:
        lines.append(f"Hidden tests: {len(hidden)}, worth {sum(r.max_points for r in hidden):g} point(s); "
                     f"{_WHEN_SHOWN[hidden_visibility]}.")
    text = "\n\n".join(lines)
    if grade.notes:
        text += "\n\n### About your submission\n\n" + "\n".join(
            "- " + _md_text(note.rstrip()).replace("\n", "\n  ") for note in grade.notes)
    if grade.cell_errors:
        text += "\n\n### Cells that raised an error\n\n" + "\n\n".join(_fenced(e) for e in grade.cell_errors)
    return text


def results_object(grade: SubmissionGrade, hidden_visibility: str = "after_published") -> dict[str, Any]:
    """One graded submission as Gradescope's ``results.json`` (a dict ready for :func:`json.dumps`).

    Each test is named and numbered by its exercise as the lab names it ("Exercise 3: ..." gives
    "3.1", "3.2", ...), with its output in markdown. A hidden test gets ``hidden_visibility``
    (by default shown only once the grades are published) and, as output, only its failure
    message. Metrics the tests measured (speed-ups) become leaderboard entries.
    """
    if hidden_visibility not in VISIBILITIES:
        raise ValueError(f"hidden_visibility must be one of {', '.join(VISIBILITIES)}, not {hidden_visibility!r}")
    titles: dict[str, str] = dict(getattr(grade, "exercise_titles", None) or {})
    results = list(grade.results)
    keys = list(dict.fromkeys(r.exercise for r in results))
    numbers = _exercise_numbers(keys, titles)
    counters: dict[str, int] = {}
    tests = []
    for r in results:  # public tests first, then hidden ones; listed below in the order of their numbers
        hidden = bool(getattr(r, "hidden", False))
        counters[r.exercise] = counters.get(r.exercise, 0) + 1
        title = titles.get(r.exercise) or r.exercise
        tests.append({
            "score": _points(r.points),
            "max_score": _points(r.max_points),
            "status": "passed" if r.passed else "failed",
            "name": f"{title} — {r.name}" + (" (hidden test)" if hidden else ""),
            "number": f"{numbers[r.exercise]}.{counters[r.exercise]}",
            "output": _test_output(r, hidden),
            "output_format": "md",
            "tags": [r.exercise, "hidden"] if hidden else [r.exercise],
            "visibility": hidden_visibility if hidden else "visible",
        })
    tests.sort(key=lambda t: tuple(int(n) for n in t["number"].split(".")))
    public = [r for r in results if not getattr(r, "hidden", False)]
    hidden_results = [r for r in results if getattr(r, "hidden", False)]
    obj: dict[str, Any] = {
        "score": _points(sum(r.points for r in results)),
        "execution_time": int(round(max(float(grade.seconds or 0.0), 0.0))),
        "output": _summary(grade, public, hidden_results, hidden_visibility),
        "output_format": "md",
        "visibility": "visible",
        "stdout_visibility": "hidden",  # the grading log is for the instructor
        "extra_data": {"lab": grade.lab, "submission": grade.name,
                       "max_score": _points(sum(r.max_points for r in results)),
                       "limits": list(getattr(grade, "limit_notes", []) or [])},
        "tests": tests,
    }
    board = _leaderboard(results)
    if board:
        obj["leaderboard"] = board
    return obj


def write_results(grade: SubmissionGrade, path: Path, hidden_visibility: str = "after_published") -> Path:
    """Write :func:`results_object` of ``grade`` to ``path`` (strict JSON: no NaN); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results_object(grade, hidden_visibility), indent=1, ensure_ascii=False, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# The autograder zip
# ---------------------------------------------------------------------------------------------

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (an Ubuntu base image
# with Python 3.10 to 3.13). It installs the course's pinned stack into $ROOT/venv.
# Written by `sweatlab gradescope`.
set -euo pipefail

# Extra arguments for pip, e.g. an index of CPU-only torch wheels: the default torch wheel for
# Linux carries CUDA and is several GB, which Gradescope's machines never use.
PIP_ARGS=__PIP_ARGS__

ROOT="${AUTOGRADER_ROOT:-/autograder}"

apt_python() {
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv
}
command -v python3 >/dev/null 2>&1 || apt_python
python3 -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v < (3, 14) else
    "setup.sh: the course needs Python 3.10 to 3.13, this image has %d.%d: pick another Ubuntu base image" % v)'
# Ubuntu's python3 makes a venv only with python3-venv installed
if ! python3 -m venv "$ROOT/venv"; then
    apt_python
    rm -rf "$ROOT/venv"
    python3 -m venv "$ROOT/venv"
fi
"$ROOT/venv/bin/python" -m pip install --disable-pip-version-check --upgrade pip
# PIP_ARGS is split into words on purpose (it may hold several options)
# shellcheck disable=SC2086
"$ROOT/venv/bin/python" -m pip install --disable-pip-version-check $PIP_ARGS "$ROOT/source/course"
"$ROOT/venv/bin/python" -c 'import nbformat, numba, numpy, torch, sweatlab.grading.grader'
echo "setup.sh: the course's Python stack is installed in $ROOT/venv"
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this for every submission. It grades the learner's notebook of lab __LAB__
# and always leaves $ROOT/results/results.json, even when grading itself fails.
# Written by `sweatlab gradescope`. Try it locally: AUTOGRADER_ROOT=<a folder holding source/
# (this zip unpacked), submission/ and results/> SWEAT_AUTOGRADER_PYTHON=<a python with the
# course installed> bash run_autograder
set -uo pipefail

LAB=__LAB__
HIDDEN=__HIDDEN__                # 1 when the zip holds hidden tests
SUBMISSION_TIMEOUT_S=480         # in all; keep it under the autograder timeout set on Gradescope

ROOT=$(cd "${AUTOGRADER_ROOT:-/autograder}" && pwd) || exit 1
PY="${SWEAT_AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}"
case "$PY" in /*) ;; */*) PY="$PWD/$PY" ;; esac  # a relative path still works after the cd below
COURSE="$ROOT/source/course"
RESULTS="$ROOT/results/results.json"
OUT="$ROOT/grading-out"
LOG="$OUT/grade.log"

mkdir -p "$ROOT/results" "$OUT"
rm -f "$RESULTS"
# The library shipped in this zip is the one that grades, whatever else the interpreter has.
export PYTHONPATH="$COURSE/lib${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT" || exit 1

# results.json with score 0 and $1 (markdown) as its output; a fixed text if no Python runs at all.
fallback() {
    local script='import json, sys
with open(sys.argv[1], "w", encoding="utf-8") as f:
    json.dump({"score": 0, "execution_time": 0, "output": sys.argv[2], "output_format": "md",
               "visibility": "visible", "stdout_visibility": "hidden", "tests": []}, f, indent=1)'
    "$PY" -c "$script" "$RESULTS" "$1" 2>/dev/null || python3 -c "$script" "$RESULTS" "$1" 2>/dev/null || \
        printf '%s\n' '{"score": 0, "output": "The autograder could not run Python, so nothing was graded. Your instructor can see why in the autograder output.", "output_format": "md", "visibility": "visible", "stdout_visibility": "hidden", "tests": []}' > "$RESULTS"
    echo "run_autograder: wrote a results.json with score 0: $1"
}

# The learner's notebooks (Gradescope keeps their folders); a checkpoint copy is never one.
notebooks=0
while IFS= read -r -d '' _; do
    notebooks=$((notebooks + 1))
done < <(cd "$ROOT/submission" 2>/dev/null && find . -type f -name '*.ipynb' -not -path '*/.*' -print0)
if [ "$notebooks" -eq 0 ]; then
    fallback "No notebook (\`.ipynb\` file) was found in your submission. Upload the lab's notebook, \`$LAB.ipynb\`, as it is saved by JupyterLab (File > Save, then File > Download)."
    exit 0
fi
# Every notebook uploaded is graded and the best one counts; they share the time.
timeout_s=$((SUBMISSION_TIMEOUT_S / notebooks))
[ "$timeout_s" -ge 1 ] || timeout_s=1

args=(-m sweatlab --root "$COURSE" grade "$ROOT/submission" --lab "$LAB" --timeout "$timeout_s"
      --out "$OUT" --gradescope-json "$RESULTS")
if [ "$HIDDEN" = 1 ]; then
    args+=(--hidden "$COURSE/hidden")
fi
echo "run_autograder: grading $notebooks notebook(s) in $ROOT/submission as lab $LAB"
"$PY" "${args[@]}" 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}

# A results.json must exist and be one JSON object with a score or tests; otherwise say what failed.
if ! "$PY" -c 'import json, sys
with open(sys.argv[1], encoding="utf-8") as f:
    r = json.load(f)
sys.exit(0 if isinstance(r, dict) and ("score" in r or "tests" in r) else 1)' "$RESULTS" 2>/dev/null; then
    last=$(grep -v '^[[:space:]]*$' "$LOG" 2>/dev/null | tail -n 1 | cut -c 1-500)
    fallback "The autograder failed while grading your notebook (exit status $status), so no test ran. Your instructor can see the details in the autograder output.

\`\`\`text
${last:-no output}
\`\`\`"
    exit 0
fi
exit 0
"""


def setup_script(pip_args: str = "") -> str:
    """The text of ``setup.sh``, with ``pip_args`` as its ``PIP_ARGS``."""
    return SETUP_SH.replace("__PIP_ARGS__", shlex.quote(pip_args.strip()))


def run_script(lab: str, hidden: bool) -> str:
    """The text of ``run_autograder`` for ``lab``."""
    if not LAB_NAME_RE.match(lab):
        raise AutograderError(f"{lab!r} is not a lab name (NN_topic)")
    return RUN_AUTOGRADER.replace("__LAB__", lab).replace("__HIDDEN__", "1" if hidden else "0")


def _library_files(lib: Path) -> list[Path]:
    """The package's sources and data: every file under ``lib``, without caches and compiled files."""
    return sorted(p for p in lib.rglob("*") if p.is_file() and "__pycache__" not in p.relative_to(lib).parts
                  and p.suffix not in (".pyc", ".pyo") and not p.name.startswith("."))


def _entry(name: str, executable: bool = False) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.create_system = 3  # Unix, so that the permission bits below are honoured
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def build_autograder(course_root: Path, lab: str, hidden: Path | None, out_zip: Path, pip_args: str = "") -> Path:
    """Write Gradescope's autograder zip for ``lab`` to ``out_zip``; returns its path.

    It holds ``setup.sh``, ``run_autograder`` (executable) and ``course/`` with
    ``pyproject.toml``, ``README.md`` (the package metadata names it), ``lib/sweatlab/``, the
    pristine ``labs/<lab>.ipynb`` and, when ``hidden`` is given, ``hidden/*.py``. Solutions are
    never included. Raises :class:`AutograderError` when something it needs is missing.
    """
    root = Path(course_root)
    needed = {"pyproject.toml": root / "pyproject.toml", "README.md": root / "README.md",
              "the library": root / "lib" / "sweatlab" / "__init__.py", "the lab": root / "labs" / f"{lab}.ipynb"}
    for what, path in needed.items():
        if not path.is_file():
            raise AutograderError(f"{what} is missing: no {path}")
    hidden_files: list[Path] = []
    if hidden is not None:
        hidden = Path(hidden)
        if not hidden.is_dir():
            raise AutograderError(f"the hidden tests folder {hidden} does not exist")
        hidden_files = sorted(p for p in hidden.glob("*.py") if p.is_file())
        if not hidden_files:
            raise AutograderError(f"no hidden tests (*.py) in {hidden}")
    if not (root / "lib" / "sweatlab" / "labs" / f"lab{lab}" / "checks.py").is_file() and not hidden_files:
        raise AutograderError(f"lab {lab} has no public checks (lib/sweatlab/labs/lab{lab}/checks.py) and no hidden "
                              "tests were given: there would be nothing to grade")

    files: list[tuple[str, Path]] = [("course/pyproject.toml", needed["pyproject.toml"]),
                                     ("course/README.md", needed["README.md"])]
    lib = root / "lib"
    files += [(f"course/lib/{p.relative_to(lib).as_posix()}", p) for p in _library_files(lib / "sweatlab")]
    files.append((f"course/labs/{lab}.ipynb", needed["the lab"]))
    files += [(f"course/hidden/{p.name}", p) for p in hidden_files]

    out_zip = Path(out_zip)
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    partial = out_zip.with_name(out_zip.name + ".partial")
    try:
        with zipfile.ZipFile(partial, "w") as zf:
            zf.writestr(_entry("setup.sh", executable=True), setup_script(pip_args))
            zf.writestr(_entry("run_autograder", executable=True), run_script(lab, bool(hidden_files)))
            for name, path in files:
                zf.writestr(_entry(name), path.read_bytes())
        partial.replace(out_zip)
    finally:
        partial.unlink(missing_ok=True)
    return out_zip
