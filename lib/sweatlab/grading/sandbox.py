"""A child process for a learner's code, with limits, that the grader talks to over pipes.

Limits applied to the child (and everything it starts):
- wall time: per cell and per call, by an alarm inside the child (stops Python loops) and a
  hard kill from here after a grace period (stops native code that ignores signals);
- memory: ``RLIMIT_AS`` in the child, plus a watchdog here on the resident memory of the
  child and its descendants;
- processes: a ``pids`` cgroup (Linux, when writable; also the way every process of the child
  is found and killed at the end), else ``RLIMIT_NPROC`` (counts per user, ignored for root);
- output: the child's printing goes to a capped buffer; its file descriptors 1 and 2 go to a
  file capped by ``RLIMIT_FSIZE``;
- files: a fresh temporary folder holding the working directory, HOME and TMPDIR, removed
  after; with Landlock (Linux 5.13+) the child cannot write anywhere else, root or not;
- threads: one per library (OMP, MKL, OpenBLAS, numba, torch) unless the lab says otherwise.

:attr:`Child.limit_notes` says which of these this machine could enforce.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

try:
    import resource
except ImportError:  # Windows: limits other than time are not available
    resource = None  # type: ignore[assignment]

import psutil

from . import landlock

CGROUP_PIDS_ROOTS = ("/sys/fs/cgroup/pids", "/sys/fs/cgroup")


@dataclass(frozen=True)
class Limits:
    """What one submission may use."""

    cell_timeout_s: float = 60.0
    call_timeout_s: float = 30.0
    submission_timeout_s: float = 600.0
    memory_mb: int = 2048
    max_processes: int = 64
    max_output_file_mb: int = 32
    threads: int = 1
    grace_s: float = 3.0


class ChildDied(Exception):
    """The child exited or was killed; ``reason`` says why in words a learner understands."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def _make_pids_cgroup(max_processes: int) -> Path | None:
    """A fresh pids cgroup (v1 or v2) limited to ``max_processes``; None where none can be made."""
    if not sys.platform.startswith("linux"):
        return None
    for root in CGROUP_PIDS_ROOTS:
        base = Path(root)
        if not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
            continue
        group = base / f"sweatlab-grade-{uuid.uuid4().hex[:12]}"
        try:
            group.mkdir()
            (group / "pids.max").write_text(str(max_processes))
            return group
        except OSError:
            try:
                group.rmdir()
            except OSError:
                pass
    return None


class Child:
    """One sandboxed Python process holding a learner's namespace."""

    def __init__(self, limits: Limits, env_extra: dict[str, str] | None = None):
        self.limits = limits
        self.env_extra = env_extra or {}
        self.proc: subprocess.Popen | None = None
        self.workdir: Path | None = None
        self.cgroup: Path | None = None
        self.limit_notes: list[str] = []
        self._to_child = self._from_child = None
        self._lines: list[str] = []
        self._memory_exceeded = False
        self._watchdog: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="sweatlab-grade-"))
        for sub in ("home", "work", "tmp"):  # cwd one level down: "../x" still lands in the sandbox
            (self.workdir / sub).mkdir()
        self.cgroup = _make_pids_cgroup(self.limits.max_processes)
        limits = self.limits
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        threads = str(limits.threads)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.workdir / "home"),
            "TMPDIR": str(self.workdir / "tmp"), "SWEAT_SANDBOX_DIR": str(self.workdir), "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
            "NUMBA_NUM_THREADS": threads, "NUMBA_CACHE_DIR": str(self.workdir / "numba"),
            "SWEAT_QUICK": "1", "SWEAT_GRADING": "1", "SWEAT_RESULTS_DIR": str(self.workdir / "results"),
            "MPLCONFIGDIR": str(self.workdir / "mpl"), "IPYTHONDIR": str(self.workdir / "ipython"),
            **self.env_extra,
        }
        cgroup = self.cgroup
        use_nproc = cgroup is None and resource is not None and os.geteuid() != 0 if hasattr(os, "geteuid") else False
        user_procs = len([p for p in psutil.process_iter(["uids"]) if p.info["uids"] and
                          p.info["uids"].real == os.getuid()]) if use_nproc else 0

        # The child applies these to itself before it runs any learner code (no preexec_fn: the
        # grader has threads, and preexec_fn can deadlock then).
        env["SWEAT_CHILD_LIMITS"] = json.dumps({
            "memory_bytes": limits.memory_mb * 2**20, "file_bytes": limits.max_output_file_mb * 2**20,
            "nproc": user_procs + limits.max_processes if use_nproc else None})

        self.limit_notes = [
            f"time: {limits.cell_timeout_s:g} s per cell, {limits.call_timeout_s:g} s per test call, "
            f"{limits.submission_timeout_s:g} s per submission",
            f"memory: {limits.memory_mb} MB" + (" (address-space limit and watchdog)" if resource else " (watchdog only)"),
            f"processes: {limits.max_processes} via a pids cgroup" if cgroup else
            (f"processes: {limits.max_processes} via RLIMIT_NPROC" if use_nproc else
             "processes: not limited (no writable cgroup here, and RLIMIT_NPROC does not bind root)"),
            f"files: writes only inside the sandbox folder (Landlock ABI {abi})" if (abi := landlock.abi_version())
            else "files: a fresh working folder, but writes elsewhere are not blocked (no Landlock here)",
        ]
        log = open(self.workdir / "fd-output.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sweatlab.grading.child", str(in_r), str(out_w)],
            cwd=self.workdir / "work", env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            pass_fds=(in_r, out_w), start_new_session=True, close_fds=True)
        log.close()
        if cgroup is not None:  # before the first request, so before any learner code runs
            try:
                (cgroup / "cgroup.procs").write_text(str(self.proc.pid))
            except OSError:
                self.limit_notes[-1] = "processes: not limited (the cgroup refused the child)"
        os.close(in_r)
        os.close(out_w)
        self._to_child = os.fdopen(in_w, "w", encoding="utf-8")
        self._from_child = os.fdopen(out_r, "r", encoding="utf-8")
        self._memory_exceeded = False
        self._watchdog = threading.Thread(target=self._watch_memory, daemon=True)
        self._watchdog.start()

    def _processes(self) -> list[psutil.Process]:
        procs: dict[int, psutil.Process] = {}
        if self.cgroup is not None:
            try:
                for pid in (self.cgroup / "cgroup.procs").read_text().split():
                    try:
                        procs[int(pid)] = psutil.Process(int(pid))
                    except psutil.NoSuchProcess:
                        pass
            except OSError:
                pass
        if self.proc is not None:
            try:
                root = psutil.Process(self.proc.pid)
                procs[root.pid] = root
                for p in root.children(recursive=True):
                    procs[p.pid] = p
            except psutil.NoSuchProcess:
                pass
        return list(procs.values())

    def _watch_memory(self) -> None:
        limit = self.limits.memory_mb * 2**20
        proc = self.proc
        while proc is not None and proc.poll() is None:
            total = 0
            for p in self._processes():
                try:
                    # PSS splits pages that forks share among them, so a fork bomb is not counted
                    # 64 times over; RSS where PSS is not available
                    total += getattr(p.memory_full_info(), "pss", None) or p.memory_info().rss
                except psutil.Error:
                    pass
            if total > limit:
                self._memory_exceeded = True
                self.kill()
                return
            time.sleep(0.1)

    def kill(self) -> None:
        """Kill the child and every process it started (cgroup members, its session, its descendants)."""
        for _ in range(3):
            procs = self._processes()
            if self.proc is not None and hasattr(os, "killpg"):
                try:  # the whole session: also forks whose parent (the child) has already exited
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            for p in procs:
                try:
                    p.kill()
                except psutil.Error:
                    pass
            if self.proc is not None:
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            if not self._processes():
                break
            time.sleep(0.1)

    def reap_strays(self) -> int:
        """Kill every process the learner's code left running (forks, subprocesses); returns how many."""
        if self.proc is None:
            return 0
        strays = [p for p in self._processes() if p.pid != self.proc.pid]
        for p in strays:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(strays, timeout=5)
        return len(strays)

    def stop(self) -> None:
        """Kill everything and remove the working directory and the cgroup."""
        self.kill()
        for stream in (self._to_child, self._from_child):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self._to_child = self._from_child = None
        if self.cgroup is not None:
            for _ in range(50):
                try:
                    self.cgroup.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)
            self.cgroup = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- requests -------------------------------------------------------------------------------
    def request(self, body: dict, timeout_s: float) -> dict:
        """Send one request and wait for its answer; raises ChildDied when the child dies or hangs."""
        if not self.alive:
            raise ChildDied("the learner's process is no longer running")
        nonce = uuid.uuid4().hex
        try:
            self._to_child.write(json.dumps({"nonce": nonce, "timeout": timeout_s, **body}) + "\n")
            self._to_child.flush()
        except (BrokenPipeError, OSError):
            raise ChildDied(self._death_reason()) from None
        answer: dict = {}

        def read() -> None:
            while True:
                line = self._from_child.readline()
                if not line:
                    return
                try:
                    message = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if message.get("nonce") == nonce:
                    answer.update(message)
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout_s + self.limits.grace_s)
        if reader.is_alive():  # native code that ignored the alarm: stop it the hard way
            self.kill()
            reader.join(5)
            raise ChildDied(f"did not finish within {timeout_s:g} s (and ignored the interrupt), so it was killed")
        if not answer:
            raise ChildDied(self._death_reason())
        self.reap_strays()
        return answer

    def _death_reason(self) -> str:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._memory_exceeded:
            return f"used more than the {self.limits.memory_mb} MB memory limit, so it was stopped"
        code = self.proc.returncode if self.proc is not None else None
        if code is None:
            return "the learner's process stopped answering"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            return f"the learner's process was killed by signal {name}"
        return f"the learner's process exited (exit code {code}), e.g. through os._exit or a crash"
