"""A measurement in a fresh Python process, with switches in its environment, handing back one value.

Libraries choose their kernels when they load (numpy's dispatch, OpenBLAS's core type, torch's ATen
capability, oneDNN's ISA), so a switch only takes effect in a new process started with it. This is
the one runner the course uses for that:

    run(argv, env) -> Result          run a command whose Python reports with report(value)
    run_code(code, env, args) -> Result   run Python source (``python -c``) the same way
    report(value)                     in the child: hand ``value`` (plain JSON) back, one marked line

The child gets this ``sweatlab`` on its PYTHONPATH and none of the switches of the parent's own
environment (``SWITCHES``), so only the ``env`` given reaches it. Its other stdout is the result's
``log`` (oneDNN's verbose lines, for instance), its stderr kept apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

__all__ = ["Result", "RESULT_MARK", "SWITCHES", "child_env", "run", "run_code", "report"]

RESULT_MARK = "@@sweat-result@@ "
# the dispatch switches and verbose logs of the libraries: a child gets only those it is given
SWITCHES = ("NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
            "DNNL_MAX_CPU_ISA", "ONEDNN_VERBOSE", "DNNL_VERBOSE", "NUMBA_CPU_FEATURES")
_LIB = str(Path(__file__).resolve().parents[2])  # the folder holding sweatlab/, so the child imports this copy


@dataclass
class Result:
    """What a fresh process returned: its value (plain JSON), its log (stdout without the result), stderr, status."""

    ok: bool
    value: Any
    log: str
    stderr: str
    seconds: float
    env: dict[str, str] = field(default_factory=dict)
    error: str = ""

    def __repr__(self) -> str:
        env = " ".join(f"{k}={v}" for k, v in self.env.items()) or "no switch"
        state = "ok" if self.ok else f"FAILED: {self.error}"
        return f"Result({env}: {state}, {self.seconds:.1f} s, {len(self.log.splitlines())} log lines)"


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without its switches, with this sweatlab importable, and ``env`` added."""
    full = dict(os.environ)
    for key in SWITCHES:
        full.pop(key, None)
    full["PYTHONPATH"] = _LIB + (os.pathsep + full["PYTHONPATH"] if full.get("PYTHONPATH") else "")
    full.update(env or {})
    return full


def run(argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 300,
        stdin: str | None = None) -> Result:
    """Run ``argv`` with ``env`` added; its value is the last line it marked with report()."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=timeout,
                              env=child_env(env))
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return Result(False, None, out, "", time.perf_counter() - started, dict(env or {}),
                      f"did not finish within {timeout:g} s")
    seconds = time.perf_counter() - started
    value, reported, log_lines = None, False, []
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            value, reported = json.loads(line[len(RESULT_MARK):]), True
        else:
            log_lines.append(line)
    ok = proc.returncode == 0 and reported
    error = ""
    if not ok:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        error = f"exit status {proc.returncode}: {tail}" if proc.returncode else "it reported no result"
    return Result(ok, value, "\n".join(log_lines), proc.stderr, seconds, dict(env or {}), error)


def run_code(code: str, env: dict[str, str] | None = None, args: Sequence[str] = (), timeout: float = 300) -> Result:
    """Run Python ``code`` (``python -c code args...``) in a fresh process; it reports with
    ``from sweatlab.measure.fresh import report; report(value)``."""
    return run([sys.executable, "-c", code, *args], env, timeout)


def report(value: Any) -> None:
    """In the child: hand ``value`` (plain JSON) back to the parent, on one marked line of stdout."""
    sys.stdout.flush()
    print(RESULT_MARK + json.dumps(value), flush=True)
