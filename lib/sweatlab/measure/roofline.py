"""This machine's roofline: measured peak compute and memory bandwidth; the plot.

    peak_fp32(quick=False) -> PeakCompute        BLAS sgemm through numpy
    peak_bf16(quick=False) -> PeakCompute        torch bf16 matmul, only with native bf16 (else skipped, with why)
    stream_triad(quick=False) -> Bandwidth       a = b + s*c over arrays far larger than the last-level cache
    cache_bandwidth("L2") -> Bandwidth | None    one core's bandwidth from a cache level (compiled triad)
    measure(quick=False) -> Roofline             all three
    prediction_cases() -> dict                   one-core roof and the times of add and dot (lab 00's check)
    attainable_gflops(intensity, peak_gflops, bandwidth_gbs) = min(peak, bandwidth * intensity)
    plot_roofline(roofline, kernels, cache_gbs=None) -> Figure   log-log GFLOP/s vs FLOP/byte, ridges marked
    legend_below(ax)                             the plot's legend under the axes, never over a point

Roofline model (Williams, Waterman, Patterson 2009): a kernel doing I FLOPs per byte of
memory traffic cannot run faster than min(peak FLOP/s, bandwidth x I). The ridge point
I* = peak / bandwidth separates memory-bound (I < I*) from compute-bound kernels.
Peaks are the *fastest* run (as STREAM and HPL report); the median is kept alongside.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sweatlab.measure import flops as _flops
from sweatlab.measure.timing import BenchResult, bench

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "PeakCompute",
    "Bandwidth",
    "Roofline",
    "KernelPoint",
    "kernel_point",
    "peak_fp32",
    "peak_bf16",
    "bf16_support",
    "stream_triad",
    "cache_bandwidth",
    "measure",
    "prediction_cases",
    "attainable_gflops",
    "ridge_intensity",
    "plot_roofline",
    "legend_below",
]

MIB = 2**20
# Triad arrays: 4x the last-level cache (Hager's STREAM rule), within these bounds. A VM
# may report a huge virtual L3 (480 MiB on one course VM); the cap keeps the run short
# and the memory use sensible, and the result then carries a warning.
_TRIAD_MIN_BYTES = {True: 64 * MIB, False: 256 * MIB}
_TRIAD_MAX_BYTES = {True: 128 * MIB, False: 512 * MIB}


def _gf(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


@dataclass(frozen=True, repr=False)
class PeakCompute:
    """Measured matmul throughput for one dtype; `gflops` is None when skipped (see skipped_reason)."""

    dtype: str
    backend: str
    n: int | None  # square matmul size
    gflops: float | None  # best run: 2*n^3 / min time / 1e9
    median_gflops: float | None
    threads: int | None
    skipped_reason: str | None = None
    warnings: tuple[str, ...] = ()
    timing: BenchResult | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        if self.gflops is None:
            return f"PeakCompute({self.dtype}: skipped: {self.skipped_reason})"
        return (
            f"PeakCompute({self.dtype}: {self.gflops:.1f} GFLOP/s best, {_gf(self.median_gflops)} median;"
            f" {self.backend}, n={self.n}, {self.threads} threads)"
        )


@dataclass(frozen=True, repr=False)
class Bandwidth:
    """Memory bandwidth from a numpy triad a = b + s*c; see `accounting` for what bytes were counted."""

    gbs: float  # counted bytes / best time / 1e9
    median_gbs: float
    stream_gbs: float  # STREAM's credit: 24 B per float64 element, same best time
    array_bytes: int  # size of each of the 3 arrays
    bytes_per_triad: int  # counted traffic of one triad over the arrays
    threads: int
    accounting: str
    warnings: tuple[str, ...] = ()
    timing: BenchResult | None = field(default=None, compare=False)
    level: str = "memory"  # where the arrays live: "memory" (DRAM), or a cache level such as "L2"

    def __repr__(self) -> str:
        if self.level != "memory":
            return (f"Bandwidth({self.gbs:.1f} GB/s best, {self.median_gbs:.1f} median, from {self.level}: "
                    f"3 x {self.array_bytes // 1024} KiB arrays, {self.threads} thread)")
        return (
            f"Bandwidth({self.gbs:.1f} GB/s best, {self.median_gbs:.1f} median (5 arrays of traffic per triad;"
            f" STREAM's 3-array credit would say {self.stream_gbs:.1f}); 3 x {self.array_bytes // MIB} MiB arrays,"
            f" {self.threads} threads)"
        )


@dataclass(frozen=True)
class KernelPoint:
    """A measured kernel on the roofline: its arithmetic intensity (FLOP/byte) and GFLOP/s."""

    name: str
    intensity: float
    gflops: float
    hollow: bool = False  # drawn as an open marker: e.g. the same kernel placed by its traffic to a cache


def kernel_point(name: str, cost: _flops.Cost, seconds: float | BenchResult) -> KernelPoint:
    """Place a kernel: intensity = cost.flops / cost.bytes; GFLOP/s = cost.flops / seconds (median if a BenchResult)."""
    s = seconds.median_s if isinstance(seconds, BenchResult) else float(seconds)
    if not s > 0:
        raise ValueError(f"seconds must be > 0, got {s!r}")
    return KernelPoint(name, cost.intensity, cost.flops / s / 1e9)


def attainable_gflops(intensity: Any, peak_gflops: float, bandwidth_gbs: float) -> Any:
    """Roofline bound in GFLOP/s: min(peak_gflops, bandwidth_gbs * intensity). Works on arrays."""
    import numpy as np

    if not (peak_gflops > 0 and bandwidth_gbs > 0):
        raise ValueError(f"peak_gflops and bandwidth_gbs must be > 0, got {peak_gflops!r} and {bandwidth_gbs!r}")
    result = np.minimum(peak_gflops, bandwidth_gbs * np.asarray(intensity, dtype=float))
    return float(result) if np.ndim(result) == 0 else result


def ridge_intensity(peak_gflops: float, bandwidth_gbs: float) -> float:
    """Ridge point in FLOP/byte: peak_gflops / bandwidth_gbs (GFLOP/s over GB/s)."""
    if not (peak_gflops > 0 and bandwidth_gbs > 0):
        raise ValueError(f"peak_gflops and bandwidth_gbs must be > 0, got {peak_gflops!r} and {bandwidth_gbs!r}")
    return peak_gflops / bandwidth_gbs


@dataclass(frozen=True, repr=False)
class Roofline:
    """A measured roofline: compute peaks per dtype and one memory bandwidth."""

    peaks: tuple[PeakCompute, ...]
    memory: Bandwidth
    machine: str | None = None

    def peak_gflops(self, dtype: str = "float32") -> float | None:
        """Best measured GFLOP/s for `dtype` (None if skipped or not measured)."""
        for p in self.peaks:
            if p.dtype == dtype:
                return p.gflops
        return None

    def ridge_intensity(self, dtype: str = "float32") -> float | None:
        """FLOP/byte where the bandwidth slope meets the `dtype` roof."""
        peak = self.peak_gflops(dtype)
        return None if peak is None else ridge_intensity(peak, self.memory.gbs)

    def attainable_gflops(self, intensity: Any, dtype: str = "float32") -> Any:
        """min(peak, bandwidth * intensity) for `dtype`."""
        peak = self.peak_gflops(dtype)
        if peak is None:
            raise ValueError(f"no measured {dtype} peak on this roofline (skipped or not measured)")
        return attainable_gflops(intensity, peak, self.memory.gbs)

    def plot(self, kernels: Iterable[KernelPoint] | Mapping[str, tuple[float, float]] = (), **kw: Any) -> Figure:
        """plot_roofline(self, kernels, **kw)."""
        return plot_roofline(self, kernels, **kw)

    def __repr__(self) -> str:
        lines = [f"Roofline({self.machine or 'this machine'}"]
        for p in self.peaks:
            ridge = self.ridge_intensity(p.dtype)
            extra = f", ridge at {ridge:.1f} FLOP/byte" if ridge else ""
            lines.append(f"  {p!r}{extra}")
        lines.append(f"  {self.memory!r})")
        return "\n".join(lines)


# ## Compute peaks


def _blas_threads_now() -> int | None:
    from sweatlab.measure.timing import thread_settings

    return thread_settings().get("blas_threads")


def peak_fp32(n: int | None = None, *, quick: bool = False, threads: int | None = None, budget_s: float | None = None) -> PeakCompute:
    """fp32 matmul GFLOP/s through numpy's BLAS: 2*n^3 FLOPs per (n x n) @ (n x n).

    threads=None keeps the current BLAS thread setting (what your own numpy code gets).
    """
    import numpy as np
    from threadpoolctl import threadpool_limits

    n = n or (1024 if quick else 2048)
    budget = budget_s if budget_s is not None else (0.3 if quick else 1.5)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    work = _flops.matmul(n, n, n).flops
    with threadpool_limits(limits=threads, user_api="blas"):
        used = _blas_threads_now()
        t = bench(np.matmul, a, b, out=c, budget_s=budget, min_runs=3, warmup=1, name=f"sgemm n={n}")
    from sweatlab.measure.timing import thread_settings

    blas = thread_settings().get("blas") or "unknown BLAS"
    return PeakCompute(
        dtype="float32",
        backend=f"numpy matmul ({blas})",
        n=n,
        gflops=work / t.min_s / 1e9,
        median_gflops=t.gflops(work),
        threads=used,
        warnings=t.warnings,
        timing=t,
    )


def bf16_support() -> tuple[bool, str]:
    """Whether this CPU has native bf16 math that torch can use, and why (or why not)."""
    from sweatlab.measure.hardware import describe

    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    info = describe(import_torch=True)
    isa = info.isa
    if isa.get("amx_bf16"):
        native, how = True, "AMX-BF16 tiles"
    elif isa.get("avx512_bf16"):
        native, how = True, "AVX512-BF16 instructions"
    elif isa.get("bf16"):
        native, how = True, "ARM BF16 instructions"
    else:
        native, how = False, ""
    if not native:
        names = "AMX-BF16 or AVX512-BF16" if not info.arch.lower().startswith(("arm", "aarch")) else "the ARM BF16 extension"
        return False, (
            f"this CPU has no native bf16 ({names} not present): torch would convert to fp32 and back,"
            " slower than plain fp32, so the bf16 roof is skipped"
        )
    check = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    if check is not None and not info.arch.lower().startswith(("arm", "aarch")):
        try:
            if not check():
                return False, f"the CPU has {how}, but this torch's oneDNN will not use bf16 here; skipped"
        except Exception:
            pass
    return True, f"native bf16 through {how}"


def peak_bf16(
    n: int | None = None, *, quick: bool = False, threads: int | None = None, force: bool = False, budget_s: float | None = None
) -> PeakCompute:
    """bf16 matmul GFLOP/s through torch (oneDNN); skipped, with the reason, without native bf16 unless `force`."""
    ok, why = bf16_support()
    if not ok and not (force and why != "torch is not installed"):
        return PeakCompute("bfloat16", "torch matmul", None, None, None, None, skipped_reason=why)
    import torch

    n = n or (1024 if quick else 2048)
    budget = budget_s if budget_s is not None else (0.3 if quick else 1.5)
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(n, n, generator=gen).to(torch.bfloat16)
        b = torch.randn(n, n, generator=gen).to(torch.bfloat16)
        c = torch.empty(n, n, dtype=torch.bfloat16)
        work = _flops.matmul(n, n, n).flops
        with torch.inference_mode():
            t = bench(torch.matmul, a, b, out=c, budget_s=budget, min_runs=3, warmup=2, name=f"bf16 matmul n={n}")
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(old)
    warns = t.warnings if ok else (f"forced on a CPU without native bf16: {why}",) + t.warnings
    return PeakCompute(
        dtype="bfloat16",
        backend=f"torch {torch.__version__} matmul ({why if ok else 'no native bf16: emulated'})",
        n=n,
        gflops=work / t.min_s / 1e9,
        median_gflops=t.gflops(work),
        threads=used,
        warnings=warns,
        timing=t,
    )


# ## Memory bandwidth

_TRIAD_ACCOUNTING = (
    "triad a = b + s*c as two in-place numpy passes, np.multiply(c, s, out=a) then np.add(a, b, out=a),"
    " so no temporaries: pass 1 reads c and writes a, pass 2 reads a and b and writes a, i.e. 5 arrays of"
    " traffic per triad, which is what is counted. Write-allocate reads of a (one more array on most x86"
    " CPUs) are not counted, as in STREAM, so the true traffic is a little higher. STREAM's own triad is"
    " one fused pass credited with 3 arrays (24 B per float64 element); stream_gbs reports that credit"
    " for the same time, which understates this machine's bandwidth by 3/5. Each thread runs the two"
    " passes on its own slice (numpy releases the GIL)."
)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _triad_array_bytes(quick: bool) -> tuple[int, list[str]]:
    from sweatlab.measure.hardware import describe

    warns: list[str] = []
    caches = describe().cache_bytes
    llc = caches.get("L3") or caches.get("L2")
    target = 4 * llc if llc else _TRIAD_MIN_BYTES[quick]
    size = min(max(target, _TRIAD_MIN_BYTES[quick]), _TRIAD_MAX_BYTES[quick])
    try:
        import psutil

        size = min(size, psutil.virtual_memory().available // 8)  # 3 arrays, with headroom
    except Exception:
        pass
    if llc is None:
        warns.append("the last-level cache size is unknown, so the arrays may not be far larger than it")
    elif size < 4 * llc:
        warns.append(
            f"arrays of {size // MIB} MiB are less than 4x the reported last-level cache ({llc // MIB} MiB;"
            " VMs may report a whole host's L3): capped to keep memory use and run time sensible, so some"
            " traffic may be served by cache and the figure may be high"
        )
    return max(size, 8 * MIB), warns


def stream_triad(
    array_bytes: int | None = None, *, quick: bool = False, threads: int | None = None, budget_s: float | None = None
) -> Bandwidth:
    """Memory bandwidth in GB/s from a = b + s*c on float64 arrays: counted bytes / best time.

    Arrays default to 4x the last-level cache, at least 256 MiB (64 MiB quick) and at most
    512 MiB (128 MiB quick) each. threads=None uses every core this process may run on.
    """
    import numpy as np

    warns: list[str] = []
    if array_bytes is None:
        array_bytes, warns = _triad_array_bytes(quick)
    elif array_bytes < 8 * MIB:
        raise ValueError(f"array_bytes must be at least 8 MiB to measure memory, got {array_bytes}")
    threads = threads or _usable_cores()
    budget = budget_s if budget_s is not None else (0.3 if quick else 1.5)
    n = array_bytes // 8
    a = np.full(n, 0.0)  # full() writes every page now, outside the timing (zeros() would not)
    b = np.full(n, 1.0)
    c = np.full(n, 2.0)
    s = 3.0
    bounds = [n * i // threads for i in range(threads + 1)]
    slices = [slice(bounds[i], bounds[i + 1]) for i in range(threads)]

    def triad_slice(sl: slice) -> None:
        np.multiply(c[sl], s, out=a[sl])
        np.add(a[sl], b[sl], out=a[sl])

    if threads == 1:

        def triad() -> None:
            triad_slice(slices[0])

        t = bench(triad, budget_s=budget, min_runs=3, warmup=1, name="triad")
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=threads) as pool:

            def triad() -> None:
                for _ in pool.map(triad_slice, slices):
                    pass

            t = bench(triad, budget_s=budget, min_runs=3, warmup=1, name="triad")
    if not np.allclose(a[:: max(1, n // 1000)], 1.0 + s * 2.0):
        raise RuntimeError("triad produced wrong values; the bandwidth figure would be meaningless")
    counted = 5 * n * 8
    return Bandwidth(
        gbs=counted / t.min_s / 1e9,
        median_gbs=counted / t.median_s / 1e9,
        stream_gbs=3 * n * 8 / t.min_s / 1e9,
        array_bytes=n * 8,
        bytes_per_triad=counted,
        threads=threads,
        accounting=_TRIAD_ACCOUNTING,
        warnings=tuple(warns) + t.warnings,
        timing=t,
    )



def _triad_repeat(a, b, c, s, reps):  # compiled by numba on first use (see cache_bandwidth)
    for _ in range(reps):
        for i in range(a.shape[0]):
            a[i] = b[i] + s * c[i]
        s = -s  # the next pass depends on nothing this one wrote, but the compiler cannot drop a pass


def cache_bandwidth(level: str = "L2", *, budget_s: float = 0.2) -> Bandwidth | None:
    """One core's bandwidth from a cache level: a compiled triad ``a = b + s*c`` on three float64
    arrays that together fill half of ``level``, repeated inside one call so that no per-call
    overhead is timed. Counted traffic: 3 arrays a pass (no write-allocate: the arrays stay in
    the cache). None where the size of ``level`` is not reported or numba is missing.
    """
    import numpy as np

    from sweatlab.measure.hardware import describe

    size = describe().cache_bytes.get(level)
    try:
        from numba import njit
    except ImportError:
        return None
    if not size:
        return None
    n = max(size // 2 // 3 // 8, 512)
    a, b, c = np.zeros(n), np.full(n, 1.0), np.full(n, 2.0)
    kernel = _compiled_triad(njit)
    kernel(a, b, c, 3.0, 1)  # compile and warm the cache
    reps = max(1, int(2e8 // (24 * n)))  # about 200 MB of traffic a call: tens of milliseconds
    t = bench(kernel, a, b, c, 3.0, reps, budget_s=budget_s, min_runs=3, warmup=1, name=f"{level} triad")
    counted = 3 * n * 8 * reps
    return Bandwidth(gbs=counted / t.min_s / 1e9, median_gbs=counted / t.median_s / 1e9,
                     stream_gbs=counted / t.min_s / 1e9, array_bytes=n * 8, bytes_per_triad=3 * n * 8, threads=1,
                     accounting=f"compiled triad on 3 x {n * 8 // 1024} KiB float64 arrays (half of {level}), "
                                f"{reps} passes a call, 24 bytes counted per element and pass",
                     warnings=t.warnings, timing=t, level=level)


_TRIAD_KERNEL: list = []


def _compiled_triad(njit: Any) -> Any:
    if not _TRIAD_KERNEL:
        _TRIAD_KERNEL.append(njit(_triad_repeat))
    return _TRIAD_KERNEL[0]


def triad_cost(array_bytes: int) -> _flops.Cost:
    """Cost of one two-pass numpy triad over float64 arrays: 2 FLOPs and 40 counted bytes per element."""
    n = array_bytes // 8
    return _flops.Cost(2 * n, 5 * n * 8, "numpy triad (2 passes)")


def measure(*, quick: bool = False, threads: int | None = None, bf16: bool = True) -> Roofline:
    """Measure fp32 and (where native) bf16 peaks and the triad bandwidth: a Roofline."""
    from sweatlab.measure.hardware import describe

    peaks = [peak_fp32(quick=quick, threads=threads)]
    if bf16:
        peaks.append(peak_bf16(quick=quick, threads=threads))
    mem = stream_triad(quick=quick, threads=threads)
    return Roofline(tuple(peaks), mem, describe().cpu_model)


def prediction_cases(n: int = 2**24, *, rounds: int = 5, budget_s: float = 0.3) -> dict:
    """One thread: this machine's one-core roof and two memory-bound kernels, measured in turns.

    Returns ``{"peak_gflops", "bandwidth_gbs", "n", "seconds": {"add": s, "dot": s}}``: the roof
    from :func:`peak_fp32` (n = 512) and :func:`stream_triad` (64 MiB arrays), and the time per call
    of ``z = x + y`` (into a preallocated z) and ``x . y`` on n float32 elements. The triad, add
    and dot are measured in ``rounds`` turns and each keeps its fastest run, so that another
    program busy for part of the time slows all three alike rather than one of them: a prediction
    from the roof is then compared with times taken under the same conditions. Lab 00's check of
    ``predict_seconds`` uses it; in the grader it runs in the pristine lab's process.
    """
    import numpy as np
    from threadpoolctl import threadpool_limits

    peak = peak_fp32(512, threads=1, budget_s=budget_s / 4)
    rng = np.random.default_rng(1)
    x, y = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    z = np.empty(n, np.float32)
    share = budget_s / rounds / 3
    bandwidth, best = 0.0, {"add": math.inf, "dot": math.inf}
    with threadpool_limits(1, user_api="blas"):
        for _ in range(rounds):
            bandwidth = max(bandwidth, stream_triad(64 * MIB, threads=1, budget_s=share).gbs)
            best["add"] = min(best["add"], bench(np.add, x, y, out=z, budget_s=share, min_runs=3, warmup=1,
                                                 name="add").min_s)
            best["dot"] = min(best["dot"], bench(np.dot, x, y, budget_s=share, min_runs=3, warmup=1,
                                                 name="dot").min_s)
    return {"peak_gflops": peak.gflops, "bandwidth_gbs": bandwidth, "n": n, "seconds": best}


# ## Plot


def _as_points(kernels: Iterable[KernelPoint] | Mapping[str, tuple[float, float]]) -> list[KernelPoint]:
    if isinstance(kernels, Mapping):
        return [KernelPoint(str(k), float(v[0]), float(v[1])) for k, v in kernels.items()]
    points = []
    for k in kernels:
        if not isinstance(k, KernelPoint):
            raise TypeError(f"kernels must be KernelPoint objects or a dict name -> (FLOP/byte, GFLOP/s), got {k!r}")
        points.append(k)
    return points


def plot_roofline(
    roofline: Roofline | None = None,
    kernels: Iterable[KernelPoint] | Mapping[str, tuple[float, float]] = (),
    *,
    peak_gflops: Mapping[str, float] | float | None = None,
    bandwidth_gbs: float | None = None,
    title: str | None = None,
    ax: Any = None,
    cache_gbs: Mapping[str, float] | None = None,
) -> Figure:
    """Log-log roofline (GFLOP/s vs FLOP/byte) with ridge point(s) and named kernels; returns the Figure.

    Give a measured `roofline`, or datasheet numbers as peak_gflops ({'fp32': ...}) and
    bandwidth_gbs. `kernels` are KernelPoints or a dict name -> (FLOP/byte, GFLOP/s).
    `cache_gbs` ({'L2': 114.0}) adds a dashed roof for each cache level's bandwidth.
    """
    import numpy as np

    if roofline is not None:
        peaks = {p.dtype: p.gflops for p in roofline.peaks if p.gflops}
        bw = roofline.memory.gbs
        default_title = f"Roofline of {roofline.machine or 'this machine'} (measured)"
    else:
        if peak_gflops is None or bandwidth_gbs is None:
            raise ValueError("give a measured roofline, or both peak_gflops and bandwidth_gbs")
        peaks = dict(peak_gflops) if isinstance(peak_gflops, Mapping) else {"peak": float(peak_gflops)}
        bw = float(bandwidth_gbs)
        default_title = "Roofline"
    if not peaks or not bw > 0:
        raise ValueError("the roofline needs at least one compute peak and a bandwidth > 0")
    points = _as_points(kernels)

    if ax is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 5.5), layout="constrained")
    else:
        fig = ax.figure
    ridges = {k: v / bw for k, v in peaks.items()}
    xs_k = [p.intensity for p in points if p.intensity > 0]
    ys_k = [p.gflops for p in points if p.gflops > 0]
    x_lo = min([1 / 32] + [x / 3 for x in xs_k])
    x_hi = max([64.0] + [r * 8 for r in ridges.values()] + [x * 3 for x in xs_k])
    x = np.logspace(math.log10(x_lo), math.log10(x_hi), 400)
    colours = ["tab:blue", "tab:purple", "tab:green", "tab:brown"]
    for i, (dtype, peak) in enumerate(sorted(peaks.items(), key=lambda kv: kv[1])):
        colour = colours[i % len(colours)]
        r = ridges[dtype]
        # the ridge is a diamond on the plot and a number in the legend: two close ridges never share a label spot
        ax.plot(x, np.minimum(peak, bw * x), color=colour, lw=2,
                label=f"{dtype} roof: {peak:,.0f} GFLOP/s, ridge ◆ at {r:.3g} FLOP/byte")
        ax.plot([r], [peak], marker="D", color=colour, ms=7, zorder=4)
    ax.plot([], [], " ", label=f"memory: {bw:.1f} GB/s (slope)")
    top = max(peaks.values())
    for (level, gbs), style in zip(sorted((cache_gbs or {}).items(), key=lambda kv: kv[1]), ("--", "-.", ":")):
        ax.plot(x, np.minimum(top, gbs * x), color="grey", ls=style, lw=1.5, label=f"{level}: {gbs:.0f} GB/s (slope)")
    box = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75}
    log_span = math.log10(x_hi / x_lo)
    placed: list[tuple[KernelPoint, bool]] = []
    for p in sorted(points, key=lambda q: (q.intensity, q.gflops)):
        ax.plot([p.intensity], [p.gflops], marker="o", ms=7, color="tab:red", zorder=5,
                mfc="white" if p.hollow else "tab:red", mew=1.5)
        near_roof = p.gflops > 0.6 * min(top, bw * p.intensity)  # label below, off the roof line
        right_edge = math.log10(p.intensity / x_lo) > 0.8 * log_span  # label to the left
        # a neighbour just below at the same intensity: this label goes on the other side
        crowded = any(abs(math.log10(q.intensity / p.intensity)) < 0.05 and p.gflops / q.gflops < 2.5 and
                      q.gflops <= p.gflops and not q_left for q, q_left in placed)
        left = right_edge != crowded
        ax.annotate(
            p.name, (p.intensity, p.gflops), textcoords="offset points",
            xytext=(-7 if left else 7, -13 if near_roof else 6), ha="right" if left else "left",
            fontsize=9, color="black", bbox=box, zorder=6,
        )
        placed.append((p, left))
    y_lo = min([bw * x_lo] + [y / 3 for y in ys_k])
    y_hi = max(list(peaks.values()) + ys_k) * 3
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_xlabel("Arithmetic intensity [FLOP/byte]")
    ax.set_ylabel("Performance [GFLOP/s]")
    ax.set_title(title or default_title)
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", alpha=0.12)
    legend_below(ax)
    return fig


def legend_below(ax: Any) -> None:
    """The legend under the axes, in two columns: it never hides a point (call again after adding lines)."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=2, fontsize=9, frameon=False)
