"""The grader as an instructor runs it and as a hostile class tries it: names, batches that are
never lost (Ctrl-C, resume, one file again), the trusted side's timing, and the limits a
submission meets (network, disk, CPU). Each CLI case runs in a fresh process, as the CLI does."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from sweatlab.course import layout as L
from sweatlab.grading import grader, report, store
from sweatlab.grading.sandbox import RUN_TAG, Child, Limits, isolation

from conftest import FIXTURES, REPO, skip_or_fail
from conftest import grading_solution as _solution, solution_with_answer as _with_answer

sys.path.insert(0, str(FIXTURES / "grading"))
import checks_gradefix  # noqa: E402,F401  registers the fixture lab's public tests

LAB = "98_gradefix"
FULL = 7.0
LIMITS = Limits(cell_timeout_s=6, call_timeout_s=6, submission_timeout_s=90, memory_mb=1024, grace_s=2)
CLI = [sys.executable, "-c", "import sys, checks_gradefix; from sweatlab.tools.cli import main; sys.exit(main(sys.argv[1:]))"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(FIXTURES / "grading")}


def _ours() -> list[psutil.Process]:
    """Learner processes of any grading started by this test process or its CLI children."""
    mine = {RUN_TAG} | {f"sweatlab-run-{p.pid}" for p in psutil.Process().children(recursive=True)}
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.environ().get("SWEAT_GRADER_RUN") in mine:
                found.append(p)
        except psutil.Error:
            pass
    return found


# ---------------------------------------------------------------------------------------------
# Names as written; Gradescope's export layout
# ---------------------------------------------------------------------------------------------

def test_names_are_kept_as_written_and_files_are_safe(grading_course, tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    names = ["José Núñez", "李雷", "王芳", "Zoë O'Brien"]
    for n in names:
        shutil.copy(grading_course / "solution.ipynb", folder / f"{n}.ipynb")
    subs = grader.discover([folder])
    assert sorted(s.name for s in subs) == sorted(names)
    keys = [s.key for s in subs]
    assert len(set(keys)) == len(keys) and all(k.isascii() and "/" not in k for k in keys)
    assert all(grader.safe_key(s.name) == s.key for s in subs), "keys must be stable across runs"

    out = tmp_path / "out"
    result = subprocess.run([*CLI, "--root", str(grading_course), "grade", str(folder), "--lab", "98",
                             "-j", "2", "--out", str(out)], capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = list(csv.DictReader(open(out / "grades.csv", encoding="utf-8")))
    assert sorted(r["submission"] for r in rows) == sorted(names)
    assert all(r["total"] == "7" for r in rows), [(out / r["feedback"]).read_text(encoding="utf-8")
                                                  for r in rows if r["total"] != "7"]
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))["submissions"]
    assert sorted(results) == sorted(names)
    for row in rows:
        feedback = (out / row["feedback"]).read_text(encoding="utf-8")
        assert feedback.startswith(f"# Feedback: {row['submission']}\n")


def test_gradescope_export_layout_names_each_learner(grading_course, tmp_path):
    export = tmp_path / "export"
    for sid, extra in (("submission_101", []), ("submission_202", ["notes.pdf"]), ("submission_303", [])):
        (export / sid).mkdir(parents=True)
        shutil.copy(grading_course / "solution.ipynb", export / sid / f"{LAB}.ipynb")
        for name in extra:
            (export / sid / name).write_bytes(b"%PDF-1.4 not graded")
    (export / "submission_metadata.yml").write_text(
        "submission_101:\n  :submitters:\n  - :name: Ada Lovelace\n    :sid: '1815'\n"
        "submission_202:\n  :submitters:\n  - :name: José Núñez\n  - :name: 李雷\n", encoding="utf-8")
    subs = grader.discover([export])
    assert sorted(s.name for s in subs) == ["Ada Lovelace (submission_101)", "José Núñez, 李雷 (submission_202)",
                                            "submission_303"]
    assert all(s.path.suffix == ".ipynb" for s in subs), "a PDF beside the notebook is not a submission"


def test_lab_is_found_by_number_or_unique_prefix(grading_course, tmp_path):
    labs = L.lab_names(grading_course / "labs")
    assert L.resolve_lab("98", labs) == LAB and L.resolve_lab("98_grade", labs) == LAB
    with pytest.raises(ValueError, match="no lab matches"):
        L.resolve_lab("42", labs)
    result = subprocess.run([*CLI, "--root", str(grading_course), "grade", str(grading_course / "solution.ipynb"),
                             "--lab", "42", "--out", str(tmp_path / "o")], capture_output=True, text=True,
                            env=_env(), timeout=60)
    assert result.returncode == 2 and "no lab matches '42'" in result.stderr and "Traceback" not in result.stderr


def test_selftest_fails_a_lab_whose_check_cells_name_other_exercises(grading_course, tmp_path, capsys):
    """The check cells' metadata must name the exercises the lab's checks register, in order (the grader
    and progress take the answer cells of each exercise from it)."""
    from sweatlab.tools.cli import main

    root = tmp_path / "course"
    shutil.copytree(grading_course, root)
    path = root / "labs" / f"{LAB}.ipynb"
    nb = nbformat.read(path, as_version=4)
    [cell] = [c for c in nb.cells if c.id == "check-mean"]
    cell.metadata["sweat"]["exercise"] = "average"
    nbformat.write(nb, path)
    assert main(["--root", str(root), "grade", "--selftest"]) == 1
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if line.startswith(f"FAIL {LAB}")]
    assert "name the exercises add, average, fast" in line and "registers add, mean, fast" in line
    assert "1 failed" in out


# ---------------------------------------------------------------------------------------------
# A batch is never lost
# ---------------------------------------------------------------------------------------------

def _slow_class(root: Path, folder: Path, n: int) -> None:
    """n correct submissions, each taking a second or so (an answer cell that sleeps)."""
    folder.mkdir()
    for i in range(n):
        nb = _with_answer(root, "ex-mean", f"import time\ntime.sleep(1.0)\n# learner {i}\n"
                                           "def mean(x):\n    return sum(x) / len(x)\n")
        nbformat.write(nb, folder / f"learner-{i:02d}.ipynb")


@pytest.mark.slow
def test_ctrl_c_keeps_what_was_graded_and_resume_grades_the_rest(grading_course, tmp_path):
    folder, out = tmp_path / "class", tmp_path / "out"
    _slow_class(grading_course, folder, 6)
    cmd = [*CLI, "--root", str(grading_course), "grade", str(folder), "--lab", LAB, "-j", "1", "--out", str(out)]
    started = time.monotonic()
    # a terminal's Ctrl-C reaches a process whose SIGINT is at its default; a shell that starts the test
    # suite in the background ignores SIGINT, and the grader would inherit that
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    while time.monotonic() - started < 120 and len(list((out / "graded").glob("*.json"))) < 2:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
    text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, text
    assert "--resume" in text
    saved = list((out / "graded").glob("*.json"))
    rows = list(csv.DictReader(open(out / "grades.csv", encoding="utf-8")))
    assert 2 <= len(saved) < 6 and len(rows) == len(saved), text
    assert all(r["total"] == "7" for r in rows), "nothing half-graded may be saved"
    assert _ours() == [], "a learner's process outlived the interrupted grader"

    again = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=_env(), timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("unchanged since last graded: kept") == len(saved)
    rows = list(csv.DictReader(open(out / "grades.csv", encoding="utf-8")))
    assert sorted(r["submission"] for r in rows) == [f"learner-{i:02d}" for i in range(6)]

    # one learner resubmits a wrong answer: grading that file alone updates its row only
    wrong = _with_answer(grading_course, "ex-mean", "def mean(x):\n    return 0\n")
    nbformat.write(wrong, folder / "learner-03.ipynb")
    one = subprocess.run([*CLI, "--root", str(grading_course), "grade", str(folder / "learner-03.ipynb"),
                          "--lab", LAB, "--out", str(out)], capture_output=True, text=True, env=_env(), timeout=120)
    assert one.returncode == 0, one.stdout + one.stderr
    rows = {r["submission"]: r for r in csv.DictReader(open(out / "grades.csv", encoding="utf-8"))}
    assert len(rows) == 6 and rows["learner-03"]["total"] == "5" and rows["learner-02"]["total"] == "7"
    assert len(json.loads((out / "results.json").read_text())["submissions"]) == 6


def test_each_result_is_saved_atomically_and_read_back(grading_course, tmp_path):
    grade = grader.grade_submission(grading_course / "solution.ipynb", grading_course / "labs", LAB, LIMITS,
                                    name="Łukasz")
    path = store.save(tmp_path, grade)
    assert path.name == f"{grade.key}.json" and not list(path.parent.glob(".tmp-*"))
    back = store.load(tmp_path, grade.key)
    assert back is not None and back.name == "Łukasz" and back.score == FULL and back.results == grade.results
    (path.parent / "broken.json").write_text("{")
    grades, paths = report.rebuild(tmp_path)
    assert [g.name for g in grades] == ["Łukasz"] and any("broken.json" in p for p in paths["problems"])


# ---------------------------------------------------------------------------------------------
# Hidden tests next to the public ones, in a fresh process as the CLI runs them
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_hidden_tests_add_to_the_public_tests_of_a_real_lab(tmp_path):
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "extra.py").write_text(
        "from sweatlab.kit.checks import hidden_test\n\n"
        "@hidden_test('01_matmul', 'ijk', points=2, name='a tall, thin product')\n"
        "def tall_thin(t):\n"
        "    a, b = t.rng().random((7, 2)), t.rng(1).random((2, 9))\n"
        "    t.expect_close(t.call('matmul_ijk', a.tolist(), b.tolist()), a @ b, rtol=1e-6, what='7x2 @ 2x9')\n")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "sweatlab", "--root", str(REPO), "grade",
                             str(REPO / "solutions" / "01_matmul.ipynb"), "--lab", "01", "--hidden", str(hidden),
                             "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    [row] = list(csv.DictReader(open(out / "grades.csv", encoding="utf-8")))
    from sweatlab.kit.checks import load_lab_tests

    public = sum(t.points for t in load_lab_tests("01_matmul"))
    assert public > 30 and row["max"] == f"{public + 2:g}" and row["total"] == row["max"], result.stdout


# ---------------------------------------------------------------------------------------------
# Limits: network, disk, CPU, and processes that try to stay behind
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def secret_server():
    """A TCP server on loopback that hands out a secret to whoever connects (bounded: 30 s at most)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve():
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"SECRET-42")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    server.close()


@pytest.mark.slow
def test_learner_code_reaches_no_network_not_even_loopback(grading_course, tmp_path, secret_server):
    with socket.create_connection(("127.0.0.1", secret_server), timeout=2) as probe:
        assert probe.recv(64) == b"SECRET-42"  # the server works for this process
    if not isolation().namespaces:
        skip_or_fail("no network namespace here: the grader cannot cut a submission off the network")
    nb = _with_answer(grading_course, "ex-add", (
        "import socket\ntry:\n"
        f"    stolen = socket.create_connection(('127.0.0.1', {secret_server}), timeout=2).recv(64).decode()\n"
        "except OSError as exc:\n    stolen = ''\n"
        "def add(a, b):\n    return stolen if stolen else np.add(a, b)\n"))
    path = tmp_path / "thief.ipynb"
    nbformat.write(nb, path)
    grade = grader.grade_submission(path, grading_course / "labs", LAB, LIMITS)
    assert grade.score == FULL, report.feedback_markdown(grade)
    assert any(n.startswith("network: none") for n in grade.limit_notes)


@pytest.mark.slow
def test_a_submission_that_fills_the_disk_is_stopped_at_its_budget(grading_course, tmp_path):
    limits = Limits(cell_timeout_s=20, call_timeout_s=6, submission_timeout_s=90, memory_mb=1024, disk_mb=64,
                    max_output_file_mb=16, grace_s=2)
    nb = _with_answer(grading_course, "ex-mean", (
        "import os\nblock = os.urandom(1 << 20)\nfor i in range(10_000):\n"
        "    with open(f'fill-{i}.bin', 'wb') as f:\n        for _ in range(15):\n            f.write(block)\n"))
    path = tmp_path / "filler.ipynb"
    nbformat.write(nb, path)
    started = time.monotonic()
    grade = grader.grade_submission(path, grading_course / "labs", LAB, limits)
    assert time.monotonic() - started < 60
    text = report.feedback_markdown(grade)
    assert grade.score == FULL - 2 and "wrote more than the 64 MB" in text, text


@pytest.mark.slow
def test_a_submission_gets_the_cpu_of_its_threads_not_every_core(tmp_path):
    """Two busy processes for 2 s of wall time: with a one-core quota they get about 2 s of CPU, not 4."""
    child = Child(Limits(threads=1))
    child.start()
    try:
        if not any(n.startswith("CPU: 1 core(s) via a cpu cgroup quota") for n in child.limit_notes):
            skip_or_fail("no writable cpu cgroup here: the CPU a submission uses is not limited")
        if (os.cpu_count() or 1) < 2:
            pytest.skip("one core: nothing to limit")
        answer = child.request({"op": "cell", "source": (
            "import os, time\npids = []\nfor _ in range(2):\n    pid = os.fork()\n    if pid == 0:\n"
            "        end = time.monotonic() + 2.0\n        while time.monotonic() < end:\n            pass\n"
            "        os._exit(0)\n    pids.append(pid)\nfor pid in pids:\n    os.waitpid(pid, 0)\n"
            "cpu = os.times().children_user + os.times().children_system\n"
            "def used():\n    return cpu\n")}, 30)
        assert answer["ok"], answer
        used = child.request({"op": "call", "func": "used", "args": [], "kwargs": {}}, 10)["value"]
        assert used < 2.7, f"two busy processes used {used:.2f} s of CPU in 2 s: more than one core"
    finally:
        child.stop()


@pytest.mark.slow
def test_processes_the_learner_leaves_behind_end_with_the_cell(grading_course, tmp_path):
    """A setsid daemon and a plain background child are gone when the cell's answer arrives."""
    child = Child(LIMITS)
    child.start()
    try:
        assert child.request({"op": "cell", "source": "1"}, 60)["ok"]  # the child is up
        started = time.monotonic()
        answer = child.request({"op": "cell", "source": (
            "import os, subprocess\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            "        import time\n        time.sleep(300)\n    os._exit(0)\n"
            "subprocess.Popen(['sleep', '300'])\n")}, 10)
        assert answer["ok"] and time.monotonic() - started < 5, answer
        left = [p for p in child._processes() if p.pid not in child._main_pids()]
        assert [p for p in left if p.status() != psutil.STATUS_ZOMBIE] == [], "still running"
        assert child.request({"op": "cell", "source": "2"}, 10)["ok"]
        assert [p for p in child._processes() if p.pid not in child._main_pids()] == [], "zombies collected"
    finally:
        child.stop()
    assert _ours() == []


# ---------------------------------------------------------------------------------------------
# Feedback: one line per unwritten exercise, advice that fits, reflections, marks by hand
# ---------------------------------------------------------------------------------------------

def test_feedback_names_exercises_and_gives_advice_that_fits(grading_course, tmp_path):
    blank = grading_course / "labs" / f"{LAB}.ipynb"
    grade = grader.grade_submission(blank, grading_course / "labs", LAB, LIMITS, name="blank")
    text = report.feedback_markdown(grade)
    assert text.count("is not written yet") == 3, text  # one per exercise (add has 2 tests, fast has 2)
    assert "### Exercise 1: adding numbers and arrays" in text

    nb = _solution(grading_course)
    nb.cells = [c for c in nb.cells if c.id != "ex-mean"]
    path = tmp_path / "deleted.ipynb"
    nbformat.write(nb, path)
    grade = grader.grade_submission(path, grading_course / "labs", LAB, LIMITS)
    text = report.feedback_markdown(grade)
    assert "copy cell 'ex-mean' from a fresh copy of the lab" in text
    assert "replace the `raise NotImplementedError" not in text, "a deleted cell cannot be edited"


def test_reflections_are_collected_and_manual_marks_merged(grading_course, tmp_path):
    labs = grading_course / "labs"
    answered = _solution(grading_course)
    [cell] = [c for c in answered.cells if c.id == "reflect-speed"]
    cell.source = "The loop runs in the interpreter; np.sum runs compiled SIMD code."
    nbformat.write(answered, tmp_path / "Ada.ipynb")
    shutil.copy(grading_course / "solution.ipynb", tmp_path / "Bob.ipynb")
    out = tmp_path / "out"
    grader.grade_batch([tmp_path / "Ada.ipynb", tmp_path / "Bob.ipynb"], labs, LAB, LIMITS, out_dir=out)
    manual = tmp_path / "marks.csv"
    manual.write_text("submission,reflection 1 (max 2),not a column\nAda,2,x\nBob,0\nCarol,1\n", encoding="utf-8")
    grades, paths = report.rebuild(out, manual)
    text = (out / "reflections.md").read_text(encoding="utf-8")
    assert "Why is np.sum faster than the loop?" in text
    assert "compiled SIMD code" in text and "*(not answered)*" in text
    rows = {r["submission"]: r for r in csv.DictReader(open(out / "grades.csv", encoding="utf-8"))}
    assert rows["Ada"]["total"] == "9" and rows["Ada"]["max"] == "9" and rows["Bob"]["total"] == "7"
    assert rows["Ada"]["manual: reflection 1"] == "2"
    assert any("Carol" in p for p in paths["problems"]) and any("not a column" in p for p in paths["problems"])


# ---------------------------------------------------------------------------------------------
# Cores lent to grading jobs
# ---------------------------------------------------------------------------------------------

def test_a_two_thread_lab_holds_two_cores_and_nobody_shares_them():
    """On two cores, a one-thread job and a two-thread job never run at once; two one-thread jobs do."""
    pool = grader.CorePool([0, 1])
    held: list[tuple[str, tuple[int, ...]]] = []
    overlaps: list[str] = []
    lock = threading.Lock()

    def job(name: str, threads: int, seconds: float) -> None:
        taken = pool.acquire(threads)
        with lock:
            for other, cores in held:
                if set(cores) & set(taken):
                    overlaps.append(f"{name} and {other} share {set(cores) & set(taken)}")
            held.append((name, taken))
        time.sleep(seconds)
        with lock:
            held.remove((name, taken))
        pool.release(taken)

    runs = [threading.Thread(target=job, args=(f"job{i}", threads, 0.05))
            for i, threads in enumerate([1, 2, 1, 1, 2, 1])]
    for r in runs:
        r.start()
        time.sleep(0.005)  # in turn: first come, first served
    for r in runs:
        r.join(10)
    assert not overlaps, overlaps
    assert sorted(pool._free) == [0, 1]
    assert pool.acquire(8) == (0, 1), "a lab asking for more threads than cores gets every core"


def test_a_job_waiting_for_two_cores_is_not_overtaken_forever():
    """First come, first served: one-thread jobs arriving later wait behind a two-thread job."""
    pool = grader.CorePool([0, 1])
    first = pool.acquire(1)
    order: list[str] = []
    big = threading.Thread(target=lambda: (order.append("two") if pool.acquire(2) else None))
    big.start()
    time.sleep(0.05)
    small = threading.Thread(target=lambda: (order.append("one") if pool.acquire(1) else None))
    small.start()
    time.sleep(0.05)
    assert order == [], "the free core went to a later one-thread job while a two-thread job waited"
    pool.release(first)
    big.join(5)
    assert order == ["two"]
    pool.release((0, 1))
    small.join(5)
    assert order == ["two", "one"]
