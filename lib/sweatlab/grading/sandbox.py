"""A child process for a learner's code, with limits, that the grader talks to over pipes.

Limits applied to the child (and everything it starts):
- isolation (Linux, where ``unshare`` works): its own PID namespace, so it can neither see nor
  signal the grader, and every process it starts dies with it; its own network namespace, with
  no interface up, so it reaches no network, loopback included; where the grader runs as root,
  an unprivileged user (``nobody``) when that user can run this Python, else root stripped of
  every capability;
- wall time: per cell and per call, by an alarm inside the child (stops Python loops) and a
  hard kill from here after a grace period (stops native code that ignores signals);
- memory: ``RLIMIT_AS`` in the child, plus a watchdog here on the memory of the child and its
  descendants;
- processes: a ``pids`` cgroup (Linux, when writable; also the way every process of the child
  is found and killed at the end), else ``RLIMIT_NPROC`` (counts per user, ignored for root);
- CPU: a ``cpu`` cgroup quota of as many cores as the lab's threads (when writable), and the
  child pinned to the cores of its grading slot;
- disk: ``RLIMIT_FSIZE`` per file, and a watchdog on the whole sandbox folder that kills the
  child at its budget;
- output: the child's printing goes to a capped buffer; its file descriptors 1 and 2 go to a
  file capped by ``RLIMIT_FSIZE``;
- files: a fresh temporary folder holding the working directory, HOME and TMPDIR, removed
  after; with Landlock (Linux 5.13+) the child cannot write anywhere else, root or not;
- threads: one per library (OMP, MKL, OpenBLAS, numba, torch) unless the lab says otherwise.

:attr:`Child.limit_notes` says which of these this machine could enforce.
"""

from __future__ import annotations

import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

try:
    import resource
except ImportError:  # Windows: limits other than time are not available
    resource = None  # type: ignore[assignment]

import psutil

from sweatlab.grading import landlock

CGROUP_ROOT = Path("/sys/fs/cgroup")
NOBODY = 65534
# Every process and folder of this grading run carries this tag, so tests (and an instructor)
# can tell this run's processes from those of another grading on the same machine.
RUN_TAG = f"sweatlab-run-{os.getpid()}"
SANDBOX_PREFIX = f"sweatlab-grade-{os.getpid()}-"


@dataclass(frozen=True)
class Limits:
    """What one submission may use."""

    cell_timeout_s: float = 60.0
    call_timeout_s: float = 30.0
    submission_timeout_s: float = 600.0
    memory_mb: int = 2048
    max_processes: int = 64
    max_output_file_mb: int = 32
    disk_mb: int = 512
    threads: int = 1
    cpus: tuple[int, ...] | None = None  # the cores this submission runs on (its grading slot); None: any
    grace_s: float = 3.0


class ChildDied(Exception):
    """The child exited or was killed; ``reason`` says why in words a learner understands."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


# ---------------------------------------------------------------------------------------------
# What this machine allows: namespaces, an unprivileged user, cgroups (probed once per process)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Isolation:
    """The command prefix that isolates a child, what it runs as, and notes on what it could not do."""

    prefix: tuple[str, ...] = ()
    namespaces: bool = False
    user: int | None = None  # the uid the child runs as, when it differs from the grader's
    notes: tuple[str, ...] = ()


def _works(prefix: list[str]) -> str:
    """'' when ``prefix + python -c 'import the child'`` runs, else the reason it does not."""
    try:
        done = subprocess.run([*prefix, sys.executable, "-c", "import sweatlab.grading.child"],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return ""
    return (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1][:200]


@functools.lru_cache(maxsize=1)
def isolation() -> Isolation:
    """Probe, once, how far this machine lets the grader isolate a child (Linux only)."""
    if not sys.platform.startswith("linux") or os.environ.get("SWEAT_GRADER_NO_ISOLATION") == "1":
        why = "not Linux" if not sys.platform.startswith("linux") else "switched off by SWEAT_GRADER_NO_ISOLATION"
        return Isolation(notes=(f"signals: NOT isolated ({why}): the learner's code could signal the grader",
                                f"network: NOT blocked ({why})"))
    root = os.geteuid() == 0
    prefix: list[str] = []
    notes: list[str] = []
    namespaces = False
    if shutil.which("unshare"):
        flags = ["--pid", "--fork", "--net", "--kill-child"]
        candidate = ["unshare", *([] if root else ["--user", "--map-root-user"]), *flags, "--"]
        why = _works(candidate)
        if not why:
            prefix, namespaces = candidate, True
            notes += ["signals: the learner's code runs in its own PID namespace (it cannot see or signal "
                      "the grader; everything it starts dies with it)",
                      "network: none (its own network namespace, no interface up, loopback included)"]
        else:
            notes += [f"signals: NOT isolated (unshare failed: {why}): a hostile submission could signal the "
                      "grader; graded submissions are on disk, so --resume continues the batch",
                      "network: NOT blocked (no network namespace here)"]
    else:
        notes += ["signals: NOT isolated (no unshare command): a hostile submission could signal the grader",
                  "network: NOT blocked (no unshare command for a network namespace)"]
    user = None
    if root and shutil.which("setpriv"):
        nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--no-new-privs"]
        why = _works(prefix + nobody)
        if not why:
            prefix, user = prefix + nobody, NOBODY
            notes.append(f"user: nobody (uid {NOBODY}), not the grader's root")
        else:
            capless = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs"]
            if not _works(prefix + capless):
                prefix = prefix + capless
                notes.append("user: root without any capability (the unprivileged user cannot run this Python: "
                             f"{why})")
            else:
                notes.append("user: root with its capabilities (setpriv failed)")
    elif root:
        notes.append("user: root (no setpriv command to drop privileges)")
    else:
        notes.append("user: the grader's own unprivileged user")
    return Isolation(tuple(prefix), namespaces, user, tuple(notes))


def _cgroup_dirs() -> dict[str, Path] | None:
    """Where to make groups: {"pids": dir, "cpu": dir}; v2 gives one dir for both. None: not Linux."""
    if not sys.platform.startswith("linux"):
        return None
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # v2 (unified)
        try:
            enabled = (CGROUP_ROOT / "cgroup.subtree_control").read_text().split()
        except OSError:
            enabled = []
        return {c: CGROUP_ROOT for c in ("pids", "cpu") if c in enabled}
    found = {}
    for controller, names in (("pids", ("pids",)), ("cpu", ("cpu", "cpu,cpuacct", "cpuacct,cpu"))):
        for name in names:
            if (CGROUP_ROOT / name / "cgroup.procs").exists():
                found[controller] = CGROUP_ROOT / name
                break
    return found


def _make_cgroups(limits: Limits, cores: float) -> dict[str, Path]:
    """Fresh cgroups limiting processes and CPU; {controller: group}, only those this machine allows."""
    made: dict[str, Path] = {}
    dirs = _cgroup_dirs() or {}
    v2 = (CGROUP_ROOT / "cgroup.controllers").exists()
    name = f"{SANDBOX_PREFIX}{uuid.uuid4().hex[:10]}"
    for controller, base in dirs.items():
        if not os.access(base, os.W_OK):
            continue
        group = base / name
        try:
            group.mkdir(exist_ok=v2)
            if controller == "pids":
                (group / "pids.max").write_text(str(limits.max_processes))
            elif v2:
                (group / "cpu.max").write_text(f"{int(cores * 100_000)} 100000")
            else:
                (group / "cpu.cfs_period_us").write_text("100000")
                (group / "cpu.cfs_quota_us").write_text(str(int(cores * 100_000)))
            made[controller] = group
        except OSError:
            _remove_cgroup(group)
    return made


def _remove_cgroup(group: Path) -> None:
    for _ in range(50):
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)


# The child joins its cgroups before anything else runs (a shell that writes its own pid, then
# execs the isolating command): processes started afterwards are born inside, so nothing escapes.
_JOIN = ('IFS=:; for g in $SWEAT_CGROUP_JOIN; do echo $$ > "$g/cgroup.procs" 2>/dev/null; done; '
         'unset IFS SWEAT_CGROUP_JOIN; exec "$@"')


def _tree_bytes(folder: Path, cap: int) -> int:
    """Bytes of disk the files under ``folder`` take (allocated blocks); stops counting past ``cap``."""
    total, stack = 0, [str(folder)]
    while stack and total <= cap:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            st = entry.stat(follow_symlinks=False)
                            total += getattr(st, "st_blocks", 0) * 512 or st.st_size
                    except OSError:
                        pass
        except OSError:
            pass
    return total


class Child:
    """One sandboxed Python process holding a learner's namespace."""

    def __init__(self, limits: Limits, env_extra: dict[str, str] | None = None):
        self.limits = limits
        self.env_extra = env_extra or {}
        self.proc: subprocess.Popen | None = None
        self.workdir: Path | None = None
        self.cgroups: dict[str, Path] = {}
        self.limit_notes: list[str] = []
        self.last_seconds = 0.0  # the wall time of the last request, write to answer, measured here
        self._to_child = self._from_child = None
        self._buffer = b""
        self._memory_exceeded = False
        self._disk_exceeded = False
        self._watchdog: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        iso = isolation()
        limits = self.limits
        self.workdir = Path(tempfile.mkdtemp(prefix=SANDBOX_PREFIX))
        for sub in ("home", "work", "tmp"):  # cwd one level down: "../x" still lands in the sandbox
            (self.workdir / sub).mkdir()
        if iso.user is not None:  # the unprivileged child owns its sandbox and nothing else
            for folder in (self.workdir, *self.workdir.iterdir()):
                os.chown(folder, iso.user, iso.user)
        cores = max(1, limits.threads)
        self.cgroups = _make_cgroups(limits, cores)
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        threads = str(limits.threads)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.workdir / "home"),
            "TMPDIR": str(self.workdir / "tmp"), "SWEAT_SANDBOX_DIR": str(self.workdir), "MPLBACKEND": "Agg",
            "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
            "NUMBA_NUM_THREADS": threads, "NUMBA_CACHE_DIR": str(self.workdir / "numba"),
            "SWEAT_QUICK": "1", "SWEAT_GRADING": "1", "SWEAT_RESULTS_DIR": str(self.workdir / "results"),
            "MPLCONFIGDIR": str(self.workdir / "mpl"), "IPYTHONDIR": str(self.workdir / "ipython"),
            "SWEAT_GRADER_RUN": RUN_TAG, "SWEAT_CGROUP_JOIN": ":".join(str(g) for g in self.cgroups.values()),
            **self.env_extra,
        }
        if "VIRTUAL_ENV" in os.environ:
            env["VIRTUAL_ENV"] = os.environ["VIRTUAL_ENV"]
        use_nproc = "pids" not in self.cgroups and resource is not None and hasattr(os, "geteuid") \
            and os.geteuid() != 0 and iso.user is None
        user_procs = len([p for p in psutil.process_iter(["uids"]) if p.info["uids"] and
                          p.info["uids"].real == os.getuid()]) if use_nproc else 0
        cpus = [c for c in (limits.cpus or ()) if c in _allowed_cpus()]

        # The child applies these to itself before it runs any learner code (no preexec_fn: the
        # grader has threads, and preexec_fn can deadlock then).
        env["SWEAT_CHILD_LIMITS"] = json.dumps({
            "memory_bytes": limits.memory_mb * 2**20, "file_bytes": limits.max_output_file_mb * 2**20,
            "nproc": user_procs + limits.max_processes if use_nproc else None, "cpus": cpus or None})

        notes = [
            f"time: {limits.cell_timeout_s:g} s per cell, {limits.call_timeout_s:g} s per test call, "
            f"{limits.submission_timeout_s:g} s per submission",
            f"memory: {limits.memory_mb} MB" + (" (address-space limit and watchdog)" if resource else " (watchdog only)"),
            f"processes: {limits.max_processes} via a pids cgroup" if "pids" in self.cgroups else
            (f"processes: {limits.max_processes} via RLIMIT_NPROC" if use_nproc else
             "processes: not limited (no writable cgroup here, and RLIMIT_NPROC does not bind root)"),
            (f"CPU: {cores} core(s) via a cpu cgroup quota" if "cpu" in self.cgroups else
             "CPU: no cgroup quota (none writable here)") +
            (f", pinned to core(s) {','.join(map(str, cpus))}" if cpus else ""),
            f"disk: {limits.disk_mb} MB for the whole sandbox folder (watchdog), "
            f"{limits.max_output_file_mb} MB per file" + (" (RLIMIT_FSIZE)" if resource else ""),
            f"files: writes only inside the sandbox folder (Landlock ABI {abi})" if (abi := landlock.abi_version())
            else "files: a fresh working folder, but writes elsewhere are not blocked (no Landlock here)",
            *iso.notes,
        ]
        self.limit_notes = notes
        # -P (Python 3.11+): the working folder, which the learner's code writes, is not on sys.path,
        # so a planted "sweatlab/" or "numpy.py" there cannot replace what the child imports
        safe_path = ["-P"] if sys.version_info >= (3, 11) else []
        command = [*iso.prefix, sys.executable, *safe_path, "-m", "sweatlab.grading.child", str(in_r), str(out_w),
                   RUN_TAG]
        if self.cgroups and os.path.exists("/bin/sh"):
            command = ["/bin/sh", "-c", _JOIN, "sweatlab-join", *command]
        log = open(self.workdir / "fd-output.log", "wb")
        if iso.user is not None:
            os.chown(log.name, iso.user, iso.user)
        self.proc = subprocess.Popen(
            command, cwd=self.workdir / "work", env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            pass_fds=(in_r, out_w), start_new_session=True, close_fds=True)
        log.close()
        os.close(in_r)
        os.close(out_w)
        self._to_child = os.fdopen(in_w, "wb", buffering=0)
        self._from_child = os.fdopen(out_r, "rb", buffering=0)
        self._buffer = b""
        self._memory_exceeded = self._disk_exceeded = False
        self._check_cgroups_joined()
        self._watchdog = threading.Thread(target=self._watch, daemon=True)
        self._watchdog.start()

    def _check_cgroups_joined(self) -> None:
        """The shell joins the groups within milliseconds; a group it could not join is reported."""
        topic = {"pids": "processes", "cpu": "cpu"}
        for controller, group in list(self.cgroups.items()):
            for _ in range(100):
                try:
                    if (group / "cgroup.procs").read_text().split():
                        break
                except OSError:
                    break
                if self.proc.poll() is not None:
                    break
                time.sleep(0.01)
            else:
                self.limit_notes = [n if not n.lower().startswith(topic[controller]) else
                                    f"{n.split(':')[0]}: not limited (the {controller} cgroup refused the child)"
                                    for n in self.limit_notes]

    def _main_pids(self) -> set[int]:
        """The child's own process: the isolating command and the Python it forks (not the learner's)."""
        if self.proc is None:
            return set()
        pids = {self.proc.pid}
        if isolation().namespaces:
            try:
                pids |= {p.pid for p in psutil.Process(self.proc.pid).children()}
            except psutil.Error:
                pass
        return pids

    def _processes(self) -> list[psutil.Process]:
        procs: dict[int, psutil.Process] = {}
        group = self.cgroups.get("pids") or self.cgroups.get("cpu")
        if group is not None:
            try:
                for pid in (group / "cgroup.procs").read_text().split():
                    try:
                        procs[int(pid)] = psutil.Process(int(pid))
                    except psutil.Error:
                        pass
            except OSError:
                pass
        if self.proc is not None:
            try:
                root = psutil.Process(self.proc.pid)
                procs[root.pid] = root
                for p in root.children(recursive=True):
                    procs[p.pid] = p
            except psutil.Error:
                pass
        return list(procs.values())

    def _watch(self) -> None:
        """Memory every 0.1 s and the sandbox folder's size every 0.3 s; kill the child past either limit."""
        limit = self.limits.memory_mb * 2**20
        disk = self.limits.disk_mb * 2**20
        proc, workdir, tick = self.proc, self.workdir, 0
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
            if tick % 3 == 0 and workdir is not None and _tree_bytes(workdir, disk) > disk:
                self._disk_exceeded = True
                self.kill()
                return
            tick += 1
            time.sleep(0.1)

    def kill(self) -> None:
        """Kill the child and every process it started (its namespace, cgroup members, session, descendants)."""
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
        """Kill every process the learner's code left running (forks, subprocesses, daemons); returns how many."""
        if self.proc is None:
            return 0
        main = self._main_pids()
        strays = [p for p in self._processes() if p.pid not in main]
        for p in strays:
            try:
                p.kill()
            except psutil.Error:
                pass
        _wait_gone(strays, 5.0)
        return len(strays)

    def stop(self) -> None:
        """Kill everything and remove the working directory and the cgroups."""
        self.kill()
        for stream in (self._to_child, self._from_child):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self._to_child = self._from_child = None
        for group in self.cgroups.values():
            _remove_cgroup(group)
        self.cgroups = {}
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- requests -------------------------------------------------------------------------------
    def request(self, body: dict, timeout_s: float) -> dict:
        """Send one request and wait for its answer; raises ChildDied when the child dies or hangs.

        :attr:`last_seconds` is then the wall time from sending the request to reading the answer,
        measured in this process: the only time a speed test believes.
        """
        if not self.alive:
            raise ChildDied("the learner's process is no longer running")
        nonce = uuid.uuid4().hex
        line = (json.dumps({"nonce": nonce, "timeout": timeout_s, **body}) + "\n").encode("utf-8")
        fd = self._from_child.fileno()
        started = time.perf_counter()
        try:
            os.write(self._to_child.fileno(), line) if len(line) < 65536 else self._write_all(line)
        except (BrokenPipeError, OSError):
            raise ChildDied(self._death_reason()) from None
        deadline = started + timeout_s + self.limits.grace_s
        answer: dict = {}
        closed = False  # the answer pipe closed: the child is gone (or going), not hanging
        while not answer:
            newline = self._buffer.find(b"\n")
            if newline >= 0:  # a whole line: is it the answer to this request?
                text, self._buffer = self._buffer[:newline], self._buffer[newline + 1:]
                try:
                    message = json.loads(text)
                except ValueError:
                    continue
                if isinstance(message, dict) and message.get("nonce") == nonce:
                    answer = message
                    self.last_seconds = time.perf_counter() - started
                continue
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            ready, _, _ = select.select([fd], [], [], min(left, 0.05))
            if not ready:
                if not self.alive:  # dead: a daemon may hold the pipe open, so do not wait on it
                    closed = True
                    break
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:  # every writer closed the pipe
                closed = True
                break
            self._buffer += chunk
        if not answer:
            if self.alive and not closed:  # native code that ignored the alarm: stop it the hard way
                self.kill()
                raise ChildDied(f"did not finish within {timeout_s:g} s (and ignored the interrupt), so it was killed")
            raise ChildDied(self._death_reason())
        self.reap_strays()
        return answer

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        fd = self._to_child.fileno()
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def _death_reason(self) -> str:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._memory_exceeded:
            return f"used more than the {self.limits.memory_mb} MB memory limit, so it was stopped"
        if self._disk_exceeded:
            return f"wrote more than the {self.limits.disk_mb} MB of files its sandbox may hold, so it was stopped"
        code = self.proc.returncode if self.proc is not None else None
        if code is None:
            return "the learner's process stopped answering"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            return f"the learner's process was killed by signal {name}"
        return f"the learner's process exited (exit code {code}), e.g. through os._exit or a crash"


def _wait_gone(procs: list[psutil.Process], timeout: float) -> None:
    """Wait until killed processes are gone or zombies (their parent, the learner's code, reaps them)."""
    deadline = time.monotonic() + timeout
    left = list(procs)
    while left and time.monotonic() < deadline:
        still = []
        for p in left:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    still.append(p)
            except psutil.Error:
                pass
        left = still
        if left:
            time.sleep(0.01)


def _allowed_cpus() -> set[int]:
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))
