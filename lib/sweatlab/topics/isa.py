"""Instruction sets: the families, the peak each gives on this CPU, and dispatch switched off in a fresh process.

Libraries pick their kernels for the CPU when they load (numpy's dispatch targets, OpenBLAS's core
type, torch's ATen capability, oneDNN's ISA), so a switch only takes effect in a **new process**
started with it in its environment. This module runs measurement jobs that way and reads back
what each library says it used, so a speed-up is always paired with its evidence.

    families(machine, clock) -> list[Family]          x86 or Arm ISA families, present or not, and the peak each gives
    numpy_dispatch() -> dict                          numpy's baseline, dispatch targets (build order) and those found
    dispatch_report(env) -> dict                      the same, from a fresh process started with a switch
    numpy_disable(dispatch, baseline, keep) -> str    the NPY_DISABLE_CPU_FEATURES value that keeps targets up to `keep`
    plan(machine, numpy_info, ...) -> (switches, skipped)   the switches worth measuring on this machine, and why not others
    run_job(job, env) -> JobResult                    a measurement job in a fresh Python process (python -m sweatlab.topics.isa)
    run_snippet(code, env) -> JobResult               any code in a fresh process; it reports with report(value)
    onednn_kernels(log), onednn_isa_line(log)         what oneDNN's verbose log says ran
    speedups(default, switched, ops) -> dict          time switched / time default, per operation

Measurement jobs (each returns plain JSON): ``numpy_ops`` (exp, tanh, add, sum on float32 vectors;
np.matmul), ``torch_ops`` (add, sum, exp; fp32 and bf16 matmul; an int8 Linear through oneDNN, with
the oneDNN kernel each used), ``numba_micro`` (lab 02's micro-kernel matmul and the vector
registers its code uses) and ``oversubscription`` (thread pools stacked on thread pools, and the fix,
with or without another program busy on one core).

Nothing here prints, except the job runner in the child process, which prints one result line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = [
    "Family", "families", "numpy_dispatch", "dispatch_report", "numpy_disable", "avx2_level_target", "Switch", "Skipped", "plan",
    "ONEDNN_LEVELS", "onednn_top_level", "JobResult", "run_job", "run_snippet", "report", "onednn_kernels",
    "onednn_isa_line", "speedups", "numba_width_env", "RESULT_MARK",
]

RESULT_MARK = "@@sweat-result@@ "


# ---------------------------------------------------------------------------------------------
# ISA families and the peak each gives
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Family:
    """One instruction-set family: whether this CPU has it, and the peak it gives here (None: absent or unknown)."""

    name: str
    dtype: str  # the number format the peak is for
    present: bool | None  # None: the OS does not say
    vector_bits: int | None  # register width of the family
    what: str  # what it adds, in words
    peak_gflops: float | None = None
    formula: str = ""


_SSE = ("sse2",)
_AVX2 = _SSE + ("avx", "avx2", "fma")
_AVX512 = _AVX2 + ("avx512f", "avx512bw", "avx512vl")
# (name, dtype of its peak, flags it needs, the ISA its peak is computed with, register bits, what it adds)
_X86_FAMILIES = (
    ("scalar (no SIMD)", "float32", (), (), 32, "one number per instruction: what a loop that does not vectorise gets"),
    ("SSE2", "float32", ("sse2",), _SSE, 128, "4 float32 lanes; separate multiply and add"),
    ("AVX2 + FMA", "float32", ("avx2", "fma"), _AVX2, 256, "8 float32 lanes; fused multiply-add (2 FLOP per lane)"),
    ("AVX-512", "float32", ("avx512f",), _AVX512, 512, "16 float32 lanes, 32 registers, masks"),
    ("AVX-512 BF16", "bf16", ("avx512_bf16",), _AVX512 + ("avx512_bf16",), 512,
     "vdpbf16ps: two bf16 products per float32 lane"),
    ("AVX-512 VNNI", "int8", ("avx512_vnni",), _AVX512 + ("avx512_vnni",), 512,
     "vpdpbusd: four int8 products per 32-bit lane"),
    ("AMX", "bf16", ("amx_tile", "amx_bf16"), _AVX512 + ("amx_tile", "amx_bf16", "amx_int8"), 8192,
     "tile registers (16 rows x 64 bytes) and a matrix unit: 1024 bf16 FLOP per cycle per core (Intel)"),
)
_ARM_FAMILIES = (
    ("scalar (no SIMD)", "float32", (), (), 32, "one number per instruction"),
    ("NEON (ASIMD)", "float32", ("neon",), ("neon",), 128, "4 float32 lanes, FMA"),
    ("dot product (SDOT)", "int8", ("dotprod",), None, 128, "four int8 products per 32-bit lane"),
    ("BF16 (BFDOT/BFMMLA)", "bf16", ("bf16",), None, 128, "bf16 dot products into float32"),
    ("SVE / SVE2", "float32", ("sve",), None, None, "vector length chosen by the chip (128-2048 bits), same code for all"),
    ("SME", "float32", ("sme",), None, None, "streaming matrix tiles (outer products)"),
)


def _is_arm(arch: str) -> bool:
    return arch.lower().startswith(("arm", "aarch"))


def _restricted(machine: Any, keep: tuple[str, ...]) -> Any:
    """The machine as if its ISA held only ``keep`` (for the peak of one family)."""
    return dataclasses.replace(machine, isa={k: (k in keep) for k in machine.isa})


def families(machine: Any = None, clock: Any = None, cores: int = 1,
             vendor_family: tuple[str | None, int | None, int | None] | None = None) -> list[Family]:
    """The ISA families of this CPU's architecture, each present or not, with the peak it gives on ``cores``.

    Peaks come from :func:`sweatlab.measure.peak.hardware_peak` with the CPU's ISA cut down to each family (the
    same core type, clock and FMA units): cores x clock x lanes x FMA units x 2. The scalar row is
    cores x clock x 1 lane x FMA units x 2. A family whose peak the library does not model (Arm's int8,
    bf16, SVE, SME) has none.
    """
    from sweatlab.measure import peak as _peak

    if machine is None:
        from sweatlab.measure.hardware import describe

        machine = describe()
    c = clock or _peak.clock()
    rows = []
    for name, dtype, flags, keep, bits, what in (_ARM_FAMILIES if _is_arm(machine.arch) else _X86_FAMILIES):
        known = [machine.isa.get(f) for f in flags]
        present: bool | None = True
        if any(v is False for v in known):
            present = False
        elif any(v is None for v in known):
            present = None
        gflops, formula = None, ""
        if present and keep is not None:
            if not flags:
                base = _peak.hardware_peak("float32", machine, c, cores=cores, vendor_family=vendor_family)
                if base is not None and c.ghz:
                    gflops = cores * c.ghz * base.units * 2
                    formula = (f"{cores} cores x {c.ghz:.2f} GHz x 1 lane x {base.units} unit(s) x 2 FLOP = "
                               f"{gflops:,.0f} GFLOP/s (float32, scalar)")
            else:
                p = _peak.hardware_peak(dtype, _restricted(machine, keep), c, cores=cores, vendor_family=vendor_family)
                if p is not None and p.gflops:
                    gflops, formula = p.gflops, p.formula()
        rows.append(Family(name, dtype, present, bits, what, gflops, formula))
    return rows


# ---------------------------------------------------------------------------------------------
# numpy's dispatch targets, and the switch that turns some off
# ---------------------------------------------------------------------------------------------

def numpy_dispatch() -> dict[str, list[str]]:
    """numpy's own report: ``baseline`` (always on), ``dispatch`` (every target built, in numpy's order), ``found``."""
    try:
        from numpy._core._multiarray_umath import __cpu_baseline__, __cpu_dispatch__, __cpu_features__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import (  # type: ignore[no-redef]
            __cpu_baseline__, __cpu_dispatch__, __cpu_features__)
    return {"baseline": list(__cpu_baseline__), "dispatch": list(__cpu_dispatch__),
            "found": [t for t in __cpu_dispatch__ if __cpu_features__.get(t)]}


def dispatch_report(env: dict[str, str] | None = None, timeout: float = 60) -> dict[str, list[str]]:
    """numpy's :func:`numpy_dispatch` report from a fresh process started with ``env`` (e.g. a
    NPY_DISABLE_CPU_FEATURES value): which targets numpy really has on under that switch."""
    result = run_snippet("from sweatlab.topics.isa import numpy_dispatch\nreport(numpy_dispatch())", env, timeout)
    if not result.ok:
        raise RuntimeError(f"numpy's report could not be had: {result.error}")
    return result.value


def numpy_disable(dispatch: list[str], baseline: list[str], keep: str | None) -> str:
    """The value of NPY_DISABLE_CPU_FEATURES that leaves numpy's dispatch targets up to ``keep`` on.

    Every target numpy lists after ``keep`` (all of them when ``keep`` is None or a baseline name),
    space-separated, in numpy's order. Names come from numpy's own lists because numpy ignores an
    unknown name without a word; a baseline name cannot be disabled (numpy refuses to start).
    """
    if keep is None or keep in baseline:
        start = 0
    elif keep in dispatch:
        start = dispatch.index(keep) + 1
    else:
        raise ValueError(f"{keep!r} is not one of numpy's targets (baseline {baseline}, dispatch {dispatch}); numpy "
                         "would ignore it silently")
    return " ".join(t for t in dispatch[start:] if t not in baseline)


_AVX512_NAME = re.compile(r"^(X86_V4|AVX512)")


def avx2_level_target(dispatch: list[str]) -> str | None:
    """The last dispatch target before the first AVX-512 one (numpy 2: ``X86_V3``; numpy 1.x: ``AVX2``), or None."""
    first = next((i for i, t in enumerate(dispatch) if _AVX512_NAME.match(t)), None)
    if not first:
        return None
    return dispatch[first - 1]


# ---------------------------------------------------------------------------------------------
# Which switches to measure here
# ---------------------------------------------------------------------------------------------

# oneDNN's ISA levels (the names ONEDNN_MAX_CPU_ISA takes), highest first, and the flags each needs.
ONEDNN_LEVELS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("AVX512_CORE_AMX", ("amx_tile", "amx_bf16", "amx_int8"), "AMX tiles for bf16 and int8"),
    ("AVX512_CORE_BF16", ("avx512_bf16", "avx512_vnni", "avx512f"), "AVX-512 with bf16 dot products (vdpbf16ps)"),
    ("AVX512_CORE_VNNI", ("avx512_vnni", "avx512f"), "AVX-512 with int8 dot products (vpdpbusd), no bf16 ones"),
    ("AVX512_CORE", ("avx512f", "avx512bw", "avx512vl"), "AVX-512 without bf16 or int8 dot products"),
    ("AVX2", ("avx2", "fma"), "AVX2: no bf16 arithmetic, int8 by widening to 16 bits"),
)


def onednn_top_level(isa: dict[str, bool | None]) -> str | None:
    """The highest oneDNN ISA level this CPU's flags allow (None: below AVX2, or not x86)."""
    for name, flags, _ in ONEDNN_LEVELS:
        if all(isa.get(f) for f in flags):
            return name
    return None


@dataclass(frozen=True)
class Switch:
    """One dispatch switch: the environment of the process that runs with it, and what should change."""

    library: str
    label: str
    env: dict[str, str]
    job: str  # "numpy_ops" or "torch_ops"
    changes: str  # what it takes away, in words


@dataclass(frozen=True)
class Skipped:
    """A switch not measured on this machine, and why."""

    library: str
    label: str
    reason: str


_OPENBLAS_AVX512_CORES = ("skylakex", "cooperlake", "sapphirerapids")
_OPENBLAS_AVX2_CORES = ("haswell", "zen")


def plan(machine: Any, numpy_info: dict[str, list[str]] | None = None, torch_capability: str | None = None,
         blas: str | None = None, onednn: bool = True) -> tuple[list[Switch], list[Skipped]]:
    """The switches worth measuring on this machine, each turning off something it has; and the rest, with why.

    ``numpy_info`` is :func:`numpy_dispatch`'s report, ``torch_capability`` what torch reports
    (``torch.backends.cpu.get_cpu_capability()``: "AVX512", "AVX2", "DEFAULT", "SVE256"; None when
    torch is missing), ``blas`` the BLAS line of :func:`sweatlab.measure.timing.thread_settings`.
    """
    arm = _is_arm(machine.arch)
    isa = machine.isa
    switches: list[Switch] = []
    skipped: list[Skipped] = []
    info = numpy_info or numpy_dispatch()
    dispatch, baseline, found = info["dispatch"], info["baseline"], info["found"]

    # numpy
    keep = avx2_level_target(dispatch)
    if arm:
        skipped.append(Skipped("numpy", "AVX-512 targets off", "an Arm CPU: no AVX-512 (the baseline-only switch "
                                                               "below turns off its extra NEON/SVE targets)"))
    elif keep is None or not any(_AVX512_NAME.match(t) for t in found):
        skipped.append(Skipped("numpy", "AVX-512 targets off", "numpy found no AVX-512 target on this CPU: there is "
                                                               "nothing to switch off"))
    else:
        off = numpy_disable(dispatch, baseline, keep)
        switches.append(Switch("numpy", f"AVX-512 targets off (up to {keep})", {"NPY_DISABLE_CPU_FEATURES": off},
                               "numpy_ops", f"numpy's AVX-512 loops ({off})"))
    if found:
        off = numpy_disable(dispatch, baseline, None)
        switches.append(Switch("numpy", f"baseline only ({' '.join(baseline) or 'none'})",
                               {"NPY_DISABLE_CPU_FEATURES": off}, "numpy_ops", f"every dispatch target ({off})"))
    else:
        skipped.append(Skipped("numpy", "baseline only", "numpy found no dispatch target above its baseline here"))

    # OpenBLAS, behind np.matmul (numpy's switch does not reach it)
    core = None
    if blas and "openblas" in blas.lower():
        m = re.search(r",\s*(\w+) kernels", blas)
        core = m.group(1).lower() if m else None
    if core in _OPENBLAS_AVX512_CORES:
        switches.append(Switch("OpenBLAS", "core type Haswell (AVX2)", {"OPENBLAS_CORETYPE": "Haswell"}, "numpy_ops",
                               f"OpenBLAS's AVX-512 sgemm kernel ({core})"))
    elif core in _OPENBLAS_AVX2_CORES:
        switches.append(Switch("OpenBLAS", "core type Sandybridge (AVX, no FMA)", {"OPENBLAS_CORETYPE": "Sandybridge"},
                               "numpy_ops", f"OpenBLAS's AVX2+FMA sgemm kernel ({core})"))
    else:
        skipped.append(Skipped("OpenBLAS", "core type", f"numpy's BLAS here is {blas or 'not visible'}: "
                                                        "OPENBLAS_CORETYPE applies to OpenBLAS on x86 only"))

    # torch's ATen kernels
    cap = (torch_capability or "").upper()
    if torch_capability is None:
        skipped.append(Skipped("torch (ATen)", "ATEN_CPU_CAPABILITY", "torch is not installed"))
    elif cap.startswith("AVX512"):
        switches.append(Switch("torch (ATen)", "capability avx2", {"ATEN_CPU_CAPABILITY": "avx2"}, "torch_ops",
                               "ATen's AVX-512 loops"))
        switches.append(Switch("torch (ATen)", "capability default", {"ATEN_CPU_CAPABILITY": "default"}, "torch_ops",
                               "ATen's vectorised loops (its scalar-friendly default build)"))
    elif cap.startswith("AVX2") or cap.startswith("SVE"):
        switches.append(Switch("torch (ATen)", "capability default", {"ATEN_CPU_CAPABILITY": "default"}, "torch_ops",
                               f"ATen's {cap} loops"))
    else:
        skipped.append(Skipped("torch (ATen)", "ATEN_CPU_CAPABILITY", f"torch runs its {cap or 'default'} kernels "
                                                                      "already: nothing lower to switch to"))

    # oneDNN (bf16 and int8 matmul inside torch)
    top = onednn_top_level(isa) if not arm else None
    if torch_capability is None or not onednn:
        skipped.append(Skipped("oneDNN", "ONEDNN_MAX_CPU_ISA", "torch is not installed" if torch_capability is None
                               else "not asked for"))
    elif arm:
        skipped.append(Skipped("oneDNN", "ONEDNN_MAX_CPU_ISA", "an Arm CPU: torch's bf16 and int8 paths there are "
                                                               "not oneDNN's x86 ISA levels"))
    elif top is None:
        skipped.append(Skipped("oneDNN", "ONEDNN_MAX_CPU_ISA", "this CPU has no AVX2: oneDNN runs its SSE4.1 kernels"))
    else:
        names = [n for n, _, _ in ONEDNN_LEVELS]
        for name, _, what in ONEDNN_LEVELS[names.index(top) + 1:]:
            switches.append(Switch("oneDNN", f"max ISA {name}", {"ONEDNN_MAX_CPU_ISA": name}, "torch_ops",
                                   f"everything above {name} (it keeps: {what})"))
        if top == "AVX2":
            switches.append(Switch("oneDNN", "max ISA SSE41", {"ONEDNN_MAX_CPU_ISA": "SSE41"}, "torch_ops",
                                   "AVX2 (it keeps SSE4.1)"))
        missing = [n for n, _, _ in ONEDNN_LEVELS[:names.index(top)]]
        if missing:
            skipped.append(Skipped("oneDNN", f"levels above {top}", f"this CPU lacks {', '.join(missing)}: "
                                                                    "not measurable here"))
    return switches, skipped


# ---------------------------------------------------------------------------------------------
# Running a job or a snippet in a fresh process
# ---------------------------------------------------------------------------------------------

@dataclass
class JobResult:
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
        return f"JobResult({env}: {state}, {self.seconds:.1f} s, {len(self.log.splitlines())} log lines)"


def _child_env(env: dict[str, str] | None) -> dict[str, str]:
    full = dict(os.environ)
    for key in ("NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                "DNNL_MAX_CPU_ISA", "ONEDNN_VERBOSE", "DNNL_VERBOSE", "NUMBA_CPU_FEATURES"):
        full.pop(key, None)  # a switch of this notebook's own process must not leak into the child
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # lib/, so the child imports this sweatlab
    full["PYTHONPATH"] = here + (os.pathsep + full["PYTHONPATH"] if full.get("PYTHONPATH") else "")
    full.update(env or {})
    return full


def _run(argv: list[str], env: dict[str, str] | None, timeout: float, stdin: str | None = None) -> JobResult:
    started = time.perf_counter()
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=_child_env(env))
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return JobResult(False, None, out, "", time.perf_counter() - started, dict(env or {}),
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
    return JobResult(ok, value, "\n".join(log_lines), proc.stderr, seconds, dict(env or {}), error)


def run_job(job: dict[str, Any], env: dict[str, str] | None = None, timeout: float = 300) -> JobResult:
    """Run a measurement job (``{"job": "numpy_ops", ...}``) in a fresh Python process with ``env`` added."""
    return _run([sys.executable, "-m", "sweatlab.topics.isa", json.dumps(job)], env, timeout)


def run_snippet(code: str, env: dict[str, str] | None = None, timeout: float = 120) -> JobResult:
    """Run Python ``code`` in a fresh process with ``env`` added; it hands back a value with ``report(value)``
    (defined for it; any JSON-able value). Its other output is the result's ``log`` and ``stderr``."""
    prelude = "from sweatlab.topics.isa import report\n"
    return _run([sys.executable, "-"], env, timeout, stdin=prelude + code)


def report(value: Any) -> None:
    """In a job or snippet process: hand ``value`` (plain JSON) back to the parent."""
    sys.stdout.flush()
    print(RESULT_MARK + json.dumps(value), flush=True)


# ---------------------------------------------------------------------------------------------
# Reading oneDNN's verbose log
# ---------------------------------------------------------------------------------------------

def onednn_kernels(log: str) -> list[str]:
    """The primitives oneDNN ran, as ``kind:implementation`` (``matmul:brg_matmul:avx512_core_bf16``), in order."""
    out = []
    for line in log.splitlines():
        if not line.startswith(("onednn_verbose", "dnnl_verbose")):
            continue
        parts = line.split(",")
        if "exec" not in parts:
            continue
        i = parts.index("exec")
        if len(parts) > i + 3 and parts[i + 1] == "cpu":
            impl = parts[i + 3] or "(no name)"
            out.append(f"{parts[i + 2]}:{impl}")
    return out


def onednn_isa_line(log: str) -> str | None:
    """The ISA oneDNN says it found, from its verbose log (``Intel AVX-512 with ... bfloat16 support``)."""
    m = re.search(r"(?:onednn|dnnl)_verbose,(?:v\d+,)?info,cpu,isa:([^\n,]+)", log)
    return m.group(1).strip() if m else None


def speedups(default: dict[str, dict[str, float]], switched: dict[str, dict[str, float]],
             ops: list[str] | None = None) -> dict[str, float]:
    """time with the switch / time without, per operation (best times): > 1 means the switch cost speed."""
    out = {}
    for op in ops or list(default):
        a, b = default.get(op), switched.get(op)
        if a and b and a.get("best_s") and b.get("best_s"):
            out[op] = b["best_s"] / a["best_s"]
    return out


def numba_width_env(width: int) -> dict[str, str]:
    """The environment that makes numba's LLVM prefer ``width``-bit vectors (256 or 512) on an AVX-512 CPU."""
    import llvmlite.binding as ll

    if width not in (256, 512):
        raise ValueError("width must be 256 or 512")
    flag = "+prefer-256-bit" if width == 256 else "-prefer-256-bit"
    return {"NUMBA_CPU_FEATURES": ll.get_host_cpu_features().flatten() + "," + flag}


# ---------------------------------------------------------------------------------------------
# The child side: measurement jobs
# ---------------------------------------------------------------------------------------------

def _measure(ops: dict[str, Callable[[], Any]], rounds: int, sample_s: float, energy: dict | None,
             threads: int) -> dict[str, dict[str, Any]]:
    """Best and median seconds per call of each op (rounds interleaved), then its energy per call."""
    loops = {}
    for name, fn in ops.items():
        fn()  # warm-up (lazy initialisation, JIT)
        n, took = 1, 0.0
        while True:
            start = time.perf_counter()
            for _ in range(n):
                fn()
            took = time.perf_counter() - start
            if took >= sample_s or n >= 1 << 20:
                break
            n = max(n + 1, min(n * 10, int(n * 1.3 * sample_s / max(took, 1e-9))))
        loops[name] = n
    samples: dict[str, list[float]] = {name: [] for name in ops}
    names = list(ops)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            fn, n = ops[name], loops[name]
            start = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - start) / n)
    out = {}
    for name in names:
        xs = sorted(samples[name])
        out[name] = {"best_s": xs[0], "median_s": xs[len(xs) // 2], "loops": loops[name]}
        if energy:
            from sweatlab.measure.energy import EnergyMeter

            meter = EnergyMeter(estimate=True, tdp_w=energy["tdp_w"], host_cores=energy["host_cores"],
                                cores_used=threads, tdp_source=energy.get("source"), poll_s=None).begin()
            calls, start = 0, time.perf_counter()
            while time.perf_counter() - start < energy.get("window_s", 0.1) or calls == 0:
                ops[name]()
                calls += 1
            reading = meter.end()
            out[name]["joules_per_call"] = reading.joules / calls if reading.joules is not None else None
            out[name]["energy_kind"] = reading.kind
    return out


def _job_numpy_ops(spec: dict) -> dict:
    import numpy as np

    from sweatlab.measure.timing import thread_settings

    n, m = int(spec.get("n_vec", 65536)), int(spec.get("n_mat", 512))
    g = np.random.default_rng(0)
    x = g.random(n, dtype=np.float32) - np.float32(0.5)
    y = g.random(n, dtype=np.float32)
    out = np.empty_like(x)
    A, B = g.random((m, m), dtype=np.float32), g.random((m, m), dtype=np.float32)
    C = np.empty((m, m), dtype=np.float32)
    every = {
        "np.exp": lambda: np.exp(x, out=out),
        "np.tanh": lambda: np.tanh(x, out=out),
        "np.add": lambda: np.add(x, y, out=out),
        "np.sum": lambda: np.sum(x),
        "np.matmul": lambda: np.matmul(A, B, out=C),
    }
    ops = {k: every[k] for k in spec.get("ops", list(every))}
    from threadpoolctl import threadpool_limits

    threads = int(spec.get("threads", 1))
    with threadpool_limits(limits=threads, user_api="blas"):
        timings = _measure(ops, int(spec.get("rounds", 5)), float(spec.get("sample_s", 0.01)), spec.get("energy"),
                           threads)
        blas = thread_settings().get("blas")
    return {"ops": timings, "numpy_enabled": numpy_dispatch()["found"], "blas": blas,
            "sizes": {"vector": n, "matrix": m}}


def _job_torch_ops(spec: dict) -> dict:
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    threads = int(spec.get("threads", 1))
    torch.set_num_threads(threads)
    n, m = int(spec.get("n_vec", 65536)), int(spec.get("n_mat", 512))
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, generator=gen) - 0.5, torch.rand(n, generator=gen)
    out = torch.empty_like(x)
    A, B = torch.rand(m, m, generator=gen), torch.rand(m, m, generator=gen)
    C = torch.empty(m, m)
    Ab, Bb = A.to(torch.bfloat16), B.to(torch.bfloat16)
    Cb = torch.empty(m, m, dtype=torch.bfloat16)
    every: dict[str, Callable[[], Any]] = {
        "torch.add": lambda: torch.add(x, y, out=out),
        "torch.sum": lambda: torch.sum(x),
        "torch.exp": lambda: torch.exp(x, out=out),
        "matmul fp32": lambda: torch.matmul(A, B, out=C),
        "matmul bf16": lambda: torch.matmul(Ab, Bb, out=Cb),
    }
    wanted = spec.get("ops", list(every) + ["linear int8"])
    notes = []
    if "linear int8" in wanted:
        try:
            torch.backends.quantized.engine = "onednn"
            lin = torch.nn.Sequential(torch.nn.Linear(m, m, bias=False))
            q = torch.ao.quantization.quantize_dynamic(lin, {torch.nn.Linear}, dtype=torch.qint8)
            every["linear int8"] = lambda: q(A)
        except Exception as exc:  # an engine this torch build lacks
            notes.append(f"linear int8 not measured: {type(exc).__name__}: {exc}"[:200])
    ops = {k: every[k] for k in wanted if k in every}
    from sweatlab.measure.hardware import capture_fd1

    kernels: dict[str, list[str]] = {}
    isa_line = None
    mk = getattr(torch.backends, "mkldnn", None)
    with torch.inference_mode():
        if mk is not None and mk.is_available():
            for name in ("matmul fp32", "matmul bf16", "linear int8"):
                if name in ops:
                    def once(fn=ops[name]):
                        with mk.verbose(mk.VERBOSE_ON):
                            fn()
                    log = capture_fd1(once)
                    isa_line = isa_line or onednn_isa_line(log)
                    kernels[name] = sorted(set(onednn_kernels(log)))
        timings = _measure(ops, int(spec.get("rounds", 5)), float(spec.get("sample_s", 0.01)), spec.get("energy"),
                           threads)
    try:
        bf16_ok = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        bf16_ok = None
    return {"ops": timings, "capability": torch.backends.cpu.get_cpu_capability(), "onednn_isa": isa_line,
            "kernels": kernels, "onednn_bf16_supported": bf16_ok, "threads": torch.get_num_threads(),
            "torch": str(torch.__version__), "notes": notes, "sizes": {"vector": n, "matrix": m}}


def _job_numba_micro(spec: dict) -> dict:
    import numpy as np

    from sweatlab.measure import asm
    from sweatlab.topics import gemm
    from sweatlab.topics.ladder import error_vs_bound, gamma

    n = int(spec.get("n", 512))
    g = np.random.default_rng(0)
    A, B = g.random((n, n), dtype=np.float32), g.random((n, n), dtype=np.float32)
    kernel = gemm.reference_matmul_micro
    C = kernel(A, B)
    error = error_vs_bound(C, A, B, gamma(n))
    ops = {"micro-kernel matmul": lambda: kernel(A, B)}
    timings = _measure(ops, int(spec.get("rounds", 5)), float(spec.get("sample_s", 0.05)), spec.get("energy"), 1)
    counts = asm.float_ops(asm.numba_asm(gemm.reference_micro_6x4))
    features = gemm.codegen_features() or ""
    return {"ops": timings, "gflops": 2 * n ** 3 / timings["micro-kernel matmul"]["best_s"] / 1e9,
            "median_gflops": 2 * n ** 3 / timings["micro-kernel matmul"]["median_s"] / 1e9, "error": error,
            "asm": counts, "prefer_256": "+prefer-256-bit" in features,
            "told_512": "-prefer-256-bit" in features, "n": n}


def _oversubscription_case(case: str, fixed: bool, rounds: int, size: int, batch: int,
                           energy: dict | None = None) -> dict:
    """One case of thread pools stacked on thread pools: ``batch`` float32 products of ``size``, as it comes or
    fixed (one library's threads limited so that the threads add up to the cores)."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from sweatlab.measure.timing import thread_settings

    g = np.random.default_rng(0)
    As = g.random((batch, size, size), dtype=np.float32)
    Bs = g.random((batch, size, size), dtype=np.float32)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit: int | None = 1 if fixed else None
    if case == "numba x BLAS":
        import numba
        from numba import njit, prange

        @njit(parallel=True)
        def batched(As, Bs):
            out = np.empty_like(As)
            for b in prange(As.shape[0]):
                out[b] = np.dot(As[b], Bs[b])
            return out

        work: Callable[[], Any] = lambda: batched(As, Bs)  # noqa: E731
        what = f"numba prange over {batch} products, each np.dot (BLAS) inside"

        def note() -> str:
            return f"numba {numba.get_num_threads()} x BLAS {thread_settings().get('blas_threads')}"
    elif case == "threads x BLAS":
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(cores)
        work = lambda: list(pool.map(lambda b: As[b] @ Bs[b], range(batch)))  # noqa: E731
        what = f"a pool of {cores} Python threads, each np.matmul (BLAS)"

        def note() -> str:
            return f"{cores} Python threads x BLAS {thread_settings().get('blas_threads')}"
    elif case == "torch + BLAS":
        import threading
        import warnings

        warnings.filterwarnings("ignore")
        import torch

        tA, tB = torch.from_numpy(As.copy()), torch.from_numpy(Bs.copy())
        share = max(1, cores // 2)
        torch.set_num_threads(share if fixed else cores)
        limit = share if fixed else None

        def torch_part() -> None:
            for b in range(batch):
                tA[b] @ tB[b]

        def work() -> None:
            t = threading.Thread(target=torch_part)
            t.start()
            for b in range(batch):
                As[b] @ Bs[b]
            t.join()

        what = f"{batch} torch matmuls in one thread while {batch} numpy matmuls run in another"

        def note() -> str:
            return f"torch {torch.get_num_threads()} + BLAS {thread_settings().get('blas_threads')}"
    else:
        raise ValueError(f"unknown case {case!r}")
    work()  # first call outside the limits: numba compiles, and loads the BLAS its np.dot calls (scipy's)
    with threadpool_limits(limits=limit, user_api="blas"):
        work()
        meter = None
        if energy:
            from sweatlab.measure.energy import EnergyMeter

            meter = EnergyMeter(estimate=True, tdp_w=energy["tdp_w"], host_cores=energy["host_cores"],
                                cores_used=cores, tdp_source=energy.get("source"), poll_s=None).begin()
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        reading = meter.end() if meter is not None else None
        threads_note = note()
    times.sort()
    out = {"case": case, "fixed": fixed, "what": what, "best_s": times[0], "median_s": times[len(times) // 2],
           "flops": 2 * 2 * batch * size ** 3 if case == "torch + BLAS" else 2 * batch * size ** 3,
           "threads_note": threads_note, "cores": cores}
    if reading is not None:
        out["joules"] = reading.joules / rounds if reading.joules is not None else None
        out["energy_kind"] = reading.kind
    return out


def _job_oversubscription(spec: dict) -> dict:
    """One case; with ``busy``, a second program (a busy loop in its own process) holds one core meanwhile."""
    rounds, size, batch = int(spec.get("rounds", 5)), int(spec.get("size", 384)), int(spec.get("batch", 16))
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if spec.get("busy") else None
    try:
        out = _oversubscription_case(spec["case"], bool(spec.get("fixed")), rounds, size, batch, spec.get("energy"))
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    out["busy"] = bool(spec.get("busy"))
    return out


JOBS: dict[str, Callable[[dict], dict]] = {
    "numpy_ops": _job_numpy_ops,
    "torch_ops": _job_torch_ops,
    "numba_micro": _job_numba_micro,
    "oversubscription": _job_oversubscription,
}


def main(argv: list[str] | None = None) -> int:
    """Child entry point: ``python -m sweatlab.topics.isa '{"job": ...}'`` prints one result line."""
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    report(JOBS[spec["job"]](spec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
