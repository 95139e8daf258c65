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
    run_job(job, env) -> fresh.Result                 a measurement job (sweatlab.topics.isa_jobs) in a fresh Python process
    run_snippet(code, env) -> fresh.Result            any code in a fresh process; it reports with report(value)
    onednn_kernels(log)                               what oneDNN's verbose log says ran, as kind:implementation
    speedups(default, switched, ops) -> dict          time switched / time default, per operation

The measurement jobs themselves live in :mod:`sweatlab.topics.isa_jobs`; the fresh-process runner is
:mod:`sweatlab.measure.fresh` and the oneDNN log reader :mod:`sweatlab.measure.onednn`.

Nothing here prints, except the job runner in the child process, which prints one result line.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from dataclasses import dataclass
from typing import Any

from sweatlab.measure import fresh, onednn

__all__ = [
    "Family", "families", "numpy_dispatch", "dispatch_report", "numpy_disable", "avx2_level_target", "Switch", "Skipped", "plan",
    "ONEDNN_LEVELS", "onednn_top_level", "run_job", "run_snippet", "onednn_kernels", "speedups", "numba_width_env",
]



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

def run_job(job: dict[str, Any], env: dict[str, str] | None = None, timeout: float = 300) -> fresh.Result:
    """Run a measurement job (``{"job": "numpy_ops", ...}``, see :mod:`sweatlab.topics.isa_jobs`) in a fresh
    Python process with ``env`` added."""
    return fresh.run([sys.executable, "-m", "sweatlab.topics.isa_jobs", json.dumps(job)], env, timeout)


def run_snippet(code: str, env: dict[str, str] | None = None, timeout: float = 120) -> fresh.Result:
    """Run Python ``code`` in a fresh process with ``env`` added; it hands back a value with ``report(value)``
    (defined for it; any JSON-able value). Its other output is the result's ``log`` and ``stderr``."""
    prelude = "from sweatlab.measure.fresh import report\n"
    return fresh.run([sys.executable, "-"], env, timeout, stdin=prelude + code)


# ---------------------------------------------------------------------------------------------
# Reading oneDNN's verbose log
# ---------------------------------------------------------------------------------------------

def onednn_kernels(log: str) -> list[str]:
    """The primitives oneDNN ran, as ``kind:implementation`` (``matmul:brg_matmul:avx512_core_bf16``), in order."""
    return [f"{p.kind}:{p.impl}" for p in onednn.executed(log)]


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
