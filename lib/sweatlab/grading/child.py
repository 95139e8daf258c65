"""The grading child: runs a learner's cells and answers calls, talking JSON over two pipes.

Started by :class:`sweatlab.grading.sandbox.Child` as ``python -m sweatlab.grading.child IN_FD OUT_FD
RUN_TAG`` (the tag names the grading run it belongs to). It applies its limits to itself before
any learner code runs. Requests (one JSON object per line on IN_FD)::

    {"nonce": ..., "op": "cell", "source": "...", "timeout": 60}
    {"nonce": ..., "op": "call", "func": "matmul_ijk", "args": [...], "kwargs": {...}, "timeout": 20}
    {"nonce": ..., "op": "decode", "args": [...]}   (makes the inputs, calls nothing: the grader times it)

Nothing here measures time for a grade: the grader times each call from its own process.

Each answer is one JSON line on OUT_FD carrying the same nonce. Nothing but plain data leaves
this process: results go through :func:`sweatlab.kit.checks.encode`. The learner's printing
goes to a capped buffer, never to the answer pipe.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

OUTPUT_CAP = 20_000  # characters of a cell's printed output kept (the tail is what matters)


_LIKE: dict = {}  # an array per result shape, made once: the "decode" op times the digest, not the allocation


class TimeLimit(BaseException):
    """Raised by the alarm inside learner code that runs past its limit (BaseException: `except Exception` cannot swallow it)."""


class CappedStream:
    """A text stream that keeps at most OUTPUT_CAP characters and counts the rest."""

    def __init__(self):
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0

    def write(self, text: str) -> int:
        text = str(text)
        room = OUTPUT_CAP - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def take(self) -> tuple[str, int]:
        text, dropped = "".join(self.parts), self.dropped
        self.parts, self.kept, self.dropped = [], 0, 0
        return text, dropped


def _alarm(_signum, _frame):
    raise TimeLimit("time limit reached")


def _learner_frames(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<ipython-input")]
    for f in frames:  # "<ipython-input-3-9a8b...>" reads better as "cell In[3]"
        f.filename = "cell In[" + f.filename.split("-")[2] + "]"
    return "".join(traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc))


def _error(exc: BaseException) -> dict:
    kind = "TimeLimit" if isinstance(exc, TimeLimit) else type(exc).__name__
    return {"type": kind, "message": str(exc)[:2000], "traceback": _learner_frames(exc)[-4000:]}


def reap_leftovers() -> None:
    """As the init of its own PID namespace, collect processes the grader killed after the last request.

    Every process the learner's code started is killed when a request ends, and orphans are
    re-parented to this process, so their exit status would otherwise stay behind as zombies and
    use up the process limit. Only done as PID 1: elsewhere the learner's own children are theirs.
    """
    if os.getpid() != 1 or not hasattr(os, "waitpid"):
        return
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def apply_limits() -> None:
    """Limits the grader asked for (SWEAT_CHILD_LIMITS), applied before any learner code runs."""
    spec = json.loads(os.environ.get("SWEAT_CHILD_LIMITS", "{}"))
    try:
        import resource
    except ImportError:
        return
    wanted = [("RLIMIT_AS", spec.get("memory_bytes")), ("RLIMIT_FSIZE", spec.get("file_bytes")),
              ("RLIMIT_NPROC", spec.get("nproc")), ("RLIMIT_CORE", 0)]
    for name, value in wanted:
        if value is None or not hasattr(resource, name):
            continue
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
        except (ValueError, OSError):  # e.g. macOS refuses some limits; the parent's watchdog still applies
            pass
    if spec.get("cpus") and hasattr(os, "sched_setaffinity"):
        try:  # the cores of this grading slot (a cpu cgroup quota, where there is one, is what binds)
            os.sched_setaffinity(0, spec["cpus"])
        except OSError:
            pass
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the file cap fails instead of killing


def main(in_fd: int, out_fd: int) -> None:
    try:  # a session and process group of its own: a kill(0) by the learner's code reaches only itself
        os.setsid()
    except OSError:  # already a session leader (started without a namespace wrapper)
        pass
    apply_limits()
    sandbox = os.environ.get("SWEAT_SANDBOX_DIR")
    if sandbox:  # from here on, learner code can write only inside its sandbox folder (where Landlock exists)
        from sweatlab.grading.landlock import restrict_writes

        restrict_writes([sandbox])
    from IPython.core.interactiveshell import InteractiveShell

    from sweatlab.kit.checks import Digest, EncodeError, decode, encode

    reader = os.fdopen(in_fd, "r", encoding="utf-8")
    writer = os.fdopen(out_fd, "w", encoding="utf-8")
    capture = CappedStream()
    sys.stdout = sys.stderr = capture
    signal.signal(signal.SIGALRM, _alarm)
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # no history thread, no sqlite file
    shell = InteractiveShell.instance(config=config, colors="nocolor")
    namespace = shell.user_ns

    def answer(nonce: str, body: dict) -> None:
        writer.write(json.dumps({"nonce": nonce, **body}) + "\n")
        writer.flush()

    def lookup(name: str):
        fn = namespace.get(name)
        if fn is None:
            raise NameError(f"no function named {name!r} is defined; run the cell that defines it (and keep its name)")
        if not callable(fn):
            raise TypeError(f"{name!r} is a {type(fn).__name__}, not a function")
        return fn

    for line in reader:
        request = json.loads(line)
        nonce, op = request["nonce"], request["op"]
        reap_leftovers()
        signal.setitimer(signal.ITIMER_REAL, float(request.get("timeout", 60)))
        try:
            if op == "cell":
                result = shell.run_cell(request["source"], store_history=True, silent=False)
                signal.setitimer(signal.ITIMER_REAL, 0)
                out, dropped = capture.take()
                exc = result.error_in_exec or result.error_before_exec
                body = {"ok": exc is None, "output": out[-4000:], "dropped_chars": dropped}
                if exc is not None:
                    body["error"] = _error(exc)
                answer(nonce, body)
            elif op == "call":
                value = lookup(request["func"])(*decode(request["args"]), **decode(request["kwargs"]))
                if request.get("digest") is not None:  # a timed call: one number back, not the whole array
                    value = Digest.of(value, int(request["digest"]))
                signal.setitimer(signal.ITIMER_REAL, 0)
                answer(nonce, {"ok": True, "value": encode(value)})
            elif op == "decode":  # what a request costs apart from the kernel: timed by the grader
                decode(request["args"])
                shape = request.get("digest_shape")
                if shape is not None:  # and reducing a result of that shape to its digest, as a timed call does
                    like = _LIKE.get(tuple(shape))
                    if like is None:
                        import numpy as np

                        like = _LIKE.setdefault(tuple(shape), np.ones(tuple(int(d) for d in shape), np.float32))
                    Digest.of(like, 1)
                signal.setitimer(signal.ITIMER_REAL, 0)
                answer(nonce, {"ok": True, "value": None})
            else:
                answer(nonce, {"ok": False, "error": {"type": "ProtocolError", "message": f"unknown op {op!r}",
                                                      "traceback": ""}})
        except EncodeError as exc:
            signal.setitimer(signal.ITIMER_REAL, 0)
            answer(nonce, {"ok": False, "error": {"type": "a result that cannot be checked", "message": str(exc),
                                                  "traceback": ""}})
        except BaseException as exc:  # the learner's error, SystemExit included, becomes an answer
            signal.setitimer(signal.ITIMER_REAL, 0)
            capture.take()
            answer(nonce, {"ok": False, "error": _error(exc)})


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))  # sys.argv[3], when given, is the grading run's tag
