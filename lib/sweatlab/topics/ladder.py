"""The matmul ladder (lab 01): the float32 tolerance, the check-then-time harness, reference kernels.

Every rung of the ladder goes through the same loop, like the reference-first harness of llm.c's
``dev/cuda/common.h``: compute it once, check it against float64 ``A @ B`` within the float32 bound
gamma_k, then time it with :func:`sweatlab.measure.timing.bench` and keep its GFLOP/s.

    UNIT_ROUNDOFF, gamma(k)                  float32's u = 2**-24; the bound gamma_k = k u / (1 - k u)
    error_vs_bound(C, A, B, rtol) -> float   worst |C - A@B| / (rtol * (|A| @ |B|)), in float64: <= 1 is correct
    random_matrices(n, seed=0) -> (A, B)     two n x n float32 matrices with entries in [0, 1)
    traffic(rung, n, tile=None) -> Cost      the rung's FLOPs and its bytes beyond the caches, by a model
    Ladder(hw_gflops, blas_gflops, ...)      one session's ladder:
        .measure(rung, fn, n, ...)           check, time, store GFLOP/s -> Measurement
        .by_stand_in(rung), .label(text, rung), .gflops

A measurement never waits on an unrelated exercise: given the lab's kit (``Ladder(..., lab=lab)``),
a rung whose function raises ``NotImplementedError`` (the blank lab's stub) is measured with the
lab's stand-in for it (``lab.stand_in``: one note the first time), and every rung measured that
way is marked " (stand-in)" so it is never taken for the learner's.

The references, each the plain version of one exercise (named ``reference_*`` so they are
never mistaken for the learner's code):

    reference_matmul_ijk(A, B)          exercise 2: pure Python on lists, loops i, j, k
    reference_matmul_ikj(A, B)          exercise 4: pure Python on lists, loops i, k, j
    reference_matmul_rows(A, B)         exercise 5: NumPy row operations, C[i] += A[i, k] * B[k]
    reference_matmul_numba_ijk(A, B)    the lab's given kernel: numba, loops i, j, k
    reference_matmul_numba_ikj(A, B)    exercise 6: numba, loops i, k, j
    reference_matmul_tiled(A, B, tile)  exercise 7: numba, tiles of B packed and reused, ikj inside
    reference_inner_strides(order, n)   exercise 3: the strides of A, B and C along the innermost loop

Two demos of the lab live here too, so that the blank lab's demo cells hold no answer to an exercise:

    loop_order_source(order), loop_order_kernel(order)   the six loop orders from one template (section 6)
    demo_matmul_tiled_absolute(A, B, tile)                the tiled kernel with absolute indices, the trap
                                                          of section 7: correct, but not vectorized

The numba kernels are compiled on first use (and numba imported only then), so importing
this module stays cheap for the checks that only need ``gamma``.

Nothing here prints: the timing lines go to ``say`` when the caller passes one (a notebook passes
``print``), the stand-in notes to the lab kit's; the timings are kept in ``Ladder.gflops`` and
``Ladder.measurements``.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from sweatlab.measure import flops
from sweatlab.measure.timing import BenchResult, bench, format_seconds

__all__ = [
    "UNIT_ROUNDOFF",
    "gamma",
    "error_vs_bound",
    "random_matrices",
    "reference_matmul_ijk",
    "reference_matmul_ikj",
    "reference_matmul_rows",
    "reference_matmul_numba_ijk",
    "reference_matmul_numba_ikj",
    "reference_matmul_tiled",
    "reference_inner_strides",
    "LOOP_ORDERS",
    "loop_order_source",
    "loop_order_kernel",
    "demo_matmul_tiled_absolute",
    "RUNG_FUNCTIONS",
    "WrongResult",
    "Measurement",
    "traffic",
    "Ladder",
]

UNIT_ROUNDOFF = 2.0 ** -24  # float32: 24-bit significand, round to nearest


# ## The tolerance


def gamma(k: int) -> float:
    """Worst-case relative error bound of a length-k float32 dot product: k u / (1 - k u); inf once k u >= 1.

    Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., 2002, section 3.1, eq. 3.5.
    """
    ku = k * UNIT_ROUNDOFF
    return math.inf if ku >= 1 else ku / (1 - ku)


def error_vs_bound(C: Any, A: np.ndarray, B: np.ndarray, rtol: float) -> float:
    """max over entries of |C - A@B| / (rtol * (|A| @ |B|)), in float64: <= 1 means within the bound.

    ``C`` may be an array or a list of lists. An entry whose bound is 0 (a zero row or column)
    must be exact: it counts 0 when it is, inf when it is not. NaN in C gives NaN (never <= 1).
    """
    A64, B64 = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    C64 = np.asarray(C, dtype=np.float64)
    expected_shape = (A64.shape[0], B64.shape[1])
    if C64.shape != expected_shape:
        raise ValueError(f"C has shape {C64.shape}, A @ B has {expected_shape}")
    diff = np.abs(C64 - A64 @ B64)
    bound = rtol * (np.abs(A64) @ np.abs(B64))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bound > 0, diff / np.where(bound > 0, bound, 1.0), np.where(diff > 0, np.inf, 0.0))
    ratio = np.where(np.isnan(C64), np.nan, ratio)
    return float(np.max(ratio)) if ratio.size else 0.0



# ## Where each rung sits on the roofline: a model of its traffic beyond the caches

UNTILED_RUNGS = ("python_ijk", "python_ikj", "numpy_rows", "numba_ijk", "numba_ikj")


def traffic(rung: str, n: int, tile: int | None = None, itemsize: int = 4) -> flops.Cost:
    """An n x n product's FLOPs (2n^3) and the bytes a rung moves to and from beyond the caches, by a
    model that assumes a cache holds a row of each matrix, or a tile, but never all of B:

    - untiled loops (``UNTILED_RUNGS``): every row of A sweeps all of B, so B is read n times;
      A and C once: ``n^3 + 3n^2`` elements, about 0.5 FLOP/byte in float32 at any n;
    - ``numba_tiled``: each tile x tile block of B is read once and used by every row of A, while
      A and C are read (and C written) once per block column: ``n^2 + 3 n^3 / tile`` elements,
      about tile / 6 FLOP/byte;
    - ``blas``: every matrix once, ``3n^2`` elements: the compulsory traffic, so its intensity is
      an upper bound (BLAS blocks for every cache level and comes close to it).
    """
    work = 2 * n**3
    if rung in UNTILED_RUNGS:
        elements, model = n**3 + 3 * n * n, "B read once per row of A"
    elif rung == "numba_tiled":
        if not tile or tile < 1:
            raise ValueError("the tiled rung's traffic needs its tile size (tile >= 1)")
        elements, model = n * n + 3 * n**3 / min(tile, n), f"tile {tile}: B once, A and C once per block column"
    elif rung == "blas":
        elements, model = 3 * n * n, "compulsory: every matrix once"
    else:
        raise ValueError(f"no traffic model for rung {rung!r}: use one of {UNTILED_RUNGS + ('numba_tiled', 'blas')}")
    return flops.Cost(work, int(elements * itemsize), f"{rung}, n = {n}: {model}")


def random_matrices(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two n x n float32 matrices with entries in [0, 1) (positive: the bound is then a plain rtol)."""
    g = np.random.default_rng(seed)
    return g.random((n, n), dtype=np.float32), g.random((n, n), dtype=np.float32)


# ## Reference kernels: one per rung that the learner writes


def reference_matmul_ijk(A: list, B: list) -> list:
    """Reference for exercise 2: C = A @ B on lists of lists, pure Python, loops in i, j, k order."""
    M, K, N = len(A), len(B), len(B[0])
    C = [[0.0] * N for _ in range(M)]
    for i in range(M):
        a_row, c_row = A[i], C[i]
        for j in range(N):
            s = 0.0
            for k in range(K):
                s += a_row[k] * B[k][j]
            c_row[j] = s
    return C


def reference_matmul_ikj(A: list, B: list) -> list:
    """Reference for exercise 4: C = A @ B on lists of lists, pure Python, loops in i, k, j order."""
    M, K, N = len(A), len(B), len(B[0])
    C = [[0.0] * N for _ in range(M)]
    for i in range(M):
        a_row, c_row = A[i], C[i]
        for k in range(K):
            a, b_row = a_row[k], B[k]
            for j in range(N):
                c_row[j] += a * b_row[j]
    return C


def reference_matmul_rows(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Reference for exercise 5: C = A @ B with one NumPy row operation per (i, k), in A's dtype."""
    M, K = A.shape
    C = np.zeros((M, B.shape[1]), dtype=A.dtype)
    for i in range(M):
        c_row, a_row = C[i], A[i]
        for k in range(K):
            c_row += a_row[k] * B[k]
    return C


# The numba references, written as plain Python here and compiled by numba on first use (see
# __getattr__ at the end): importing numba takes a third of a second that the checks do not need.

def _numba_ijk(A, B):
    """Reference compiled kernel, loops in i, j, k order: one dot product per C[i, j] (the lab's given ijk)."""
    M, K = A.shape
    N = B.shape[1]
    C = np.zeros((M, N), dtype=A.dtype)
    for i in range(M):
        for j in range(N):
            acc = C[i, j]  # 0, in C's dtype
            for k in range(K):
                acc += A[i, k] * B[k, j]
            C[i, j] = acc
    return C


def _numba_ikj(A, B):
    """Reference for exercise 6: loops in i, k, j order, j innermost (stride 1, vectorized by LLVM)."""
    M, K = A.shape
    N = B.shape[1]
    C = np.zeros((M, N), dtype=A.dtype)
    for i in range(M):
        for k in range(K):
            a = A[i, k]
            for j in range(N):
                C[i, j] += a * B[k, j]
    return C


def _numba_tiled(A, B, tile):
    """Reference for exercise 7: tile x tile blocks of B packed into Bt, reused by every row of A (ikj inside)."""
    M, K = A.shape
    N = B.shape[1]
    C = np.zeros((M, N), dtype=A.dtype)
    Bt = np.empty((tile, tile), dtype=B.dtype)
    for j0 in range(0, N, tile):
        j1 = min(j0 + tile, N)
        for k0 in range(0, K, tile):
            k1 = min(k0 + tile, K)
            for kk in range(k1 - k0):
                src, dst = B[k0 + kk, j0:j1], Bt[kk]
                for jj in range(j1 - j0):
                    dst[jj] = src[jj]
            for i in range(M):
                c_row, a_row = C[i, j0:j1], A[i, k0:k1]
                for kk in range(k1 - k0):
                    a, b_row = a_row[kk], Bt[kk]
                    for jj in range(j1 - j0):
                        c_row[jj] += a * b_row[jj]
    return C


def _numba_tiled_absolute(A, B, tile):
    """The tiled kernel with absolute indices in the inner loops (no row views): correct, but numba keeps
    Python's negative-index test in the loop (it cannot prove j >= 0), so LLVM does not vectorize it."""
    M, K = A.shape
    N = B.shape[1]
    C = np.zeros((M, N), dtype=A.dtype)
    Bt = np.empty((tile, tile), dtype=B.dtype)
    for j0 in range(0, N, tile):
        j1 = min(j0 + tile, N)
        for k0 in range(0, K, tile):
            k1 = min(k0 + tile, K)
            for k in range(k0, k1):
                for j in range(j0, j1):
                    Bt[k - k0, j - j0] = B[k, j]
            for i in range(M):
                for k in range(k0, k1):
                    a = A[i, k]
                    for j in range(j0, j1):
                        C[i, j] += a * Bt[k - k0, j - j0]
    return C


_NUMBA_REFERENCES = {
    "reference_matmul_numba_ijk": _numba_ijk,
    "reference_matmul_numba_ikj": _numba_ikj,
    "reference_matmul_tiled": _numba_tiled,
    "demo_matmul_tiled_absolute": _numba_tiled_absolute,
}


def reference_inner_strides(order: str, n: int) -> tuple[int, int, int]:
    """Reference for exercise 3: by how many elements A[i, k], B[k, j] and C[i, j] move when the innermost
    loop of ``order`` (outer to inner, e.g. "ijk") steps by one, on n x n row-major matrices."""
    inner = order[-1]

    def stride(row: str, col: str) -> int:
        return n if inner == row else 1 if inner == col else 0

    return stride("i", "k"), stride("k", "j"), stride("i", "j")


# ## The six loop orders, from one template (section 6 of the lab)

LOOP_ORDERS = ("ijk", "ikj", "jik", "jki", "kij", "kji")
_LOOP_ORDER_TEMPLATE = '''def matmul_{order}(A, B):
    M, K = A.shape
    N = B.shape[1]
    C = np.zeros((M, N), dtype=A.dtype)
    for {0} in range({n0}):
        for {1} in range({n1}):
            for {2} in range({n2}):
                C[i, j] += A[i, k] * B[k, j]
    return C
'''
_SIZE_OF = {"i": "M", "k": "K", "j": "N"}


def loop_order_source(order: str) -> str:
    """The Python source of the matmul with its loops in ``order`` (outer to inner), the body always
    ``C[i, j] += A[i, k] * B[k, j]``."""
    if sorted(order) != ["i", "j", "k"]:
        raise ValueError(f"a loop order is i, j and k once each, e.g. 'ikj'; got {order!r}")
    return _LOOP_ORDER_TEMPLATE.format(*order, order=order, **{f"n{d}": _SIZE_OF[c] for d, c in enumerate(order)})


@functools.lru_cache(maxsize=None)
def loop_order_kernel(order: str) -> Callable[..., np.ndarray]:
    """The matmul of :func:`loop_order_source`, compiled by numba (on its first call)."""
    from numba import njit

    namespace: dict[str, Any] = {"np": np}
    exec(loop_order_source(order), namespace)
    return njit(namespace[f"matmul_{order}"])


@functools.lru_cache(maxsize=None)
def _compiled(name: str) -> Callable[..., np.ndarray]:
    from numba import njit

    return njit(_NUMBA_REFERENCES[name])


# The rungs of lab 01's ladder, bottom to top, and the lab function each one measures (None: a library call).
RUNG_FUNCTIONS: dict[str, str | None] = {
    "python_ijk": "matmul_ijk",
    "python_ikj": "matmul_ikj",
    "numpy_rows": "matmul_rows",
    "numba_ijk": "matmul_numba_ijk",
    "numba_ikj": "matmul_numba_ikj",
    "numba_tiled": "matmul_tiled",
    "blas": None,
}


# ## The harness


class WrongResult(AssertionError):
    """A kernel's result is outside the float32 bound: it is wrong, so it is not timed."""


@dataclass(frozen=True)
class Measurement:
    """One rung at one size: checked against float64, then timed."""

    rung: str
    n: int
    bench: BenchResult  # the timing: median, IQR, runs, thread settings
    gflops: float  # 2 n^3 / median seconds / 1e9
    error: float  # the largest error as a fraction of the float32 bound (<= 1)
    first_call_s: float  # the untimed first call (numba compiles then)
    kernel: str  # the function that was measured: the learner's, or "<name> (stand-in)"
    reference: bool  # True when the lab's stand-in was measured for the learner's function
    energy: Any = None  # the EnergyReading over the timed runs, when the ladder has an energy meter

    @property
    def energy_kind(self) -> str:
        """"measured", "estimated" or "unavailable" (also when the ladder measures no energy)."""
        return getattr(self.energy, "kind", "unavailable")

    @property
    def gflop_per_joule(self) -> float | None:
        """Work per joule of one call: its FLOPs over (average power x median time); None when unknown.

        Average power over the whole timed window, times the median call: the window also holds
        bench's calibration calls, which a per-call figure must not be charged for.
        """
        watts = getattr(self.energy, "average_w", None)
        if not watts:
            return None
        return self.gflops / watts

    @property
    def iqr_gflops(self) -> tuple[float, float]:
        """GFLOP/s at the slower and the faster quartile of the timed runs (the IQR, as a rate)."""
        q1, q3 = np.percentile(self.bench.samples_s, [25, 75])
        work = self.gflops * self.bench.median_s
        return work / q3, work / q1

    def __repr__(self) -> str:
        by = f" ({self.kernel})" if self.reference else ""
        return (f"Measurement({self.rung}{by}, n={self.n}: {self.gflops:.4g} GFLOP/s, median "
                f"{format_seconds(self.bench.median_s)}, error {self.error:.2g} of the bound)")


class Ladder:
    """The ladder of one session: every rung checked against float64, then timed, its GFLOP/s kept.

    ``hw_gflops`` and ``blas_gflops`` are the two ceilings the timing lines compare with;
    ``budget_s`` the seconds of timed runs per measurement; ``say`` receives each line to show
    (the stand-in notes and the timing lines; a notebook passes ``print``; None keeps quiet).
    """

    def __init__(self, hw_gflops: float, blas_gflops: float, *, budget_s: float = 0.2,
                 say: Callable[[str], Any] | None = None, energy_meter: Callable[[], Any] | None = None,
                 lab: Any = None):
        self.hw_gflops = hw_gflops
        self.energy_meter = energy_meter  # makes a fresh sweatlab.measure.energy.EnergyMeter per rung
        self.blas_gflops = blas_gflops
        self.budget_s = budget_s
        self.say = say
        self.gflops: dict[str, dict[int, float]] = {}  # rung -> {n: GFLOP/s}
        self.measurements: dict[str, dict[int, Measurement]] = {}  # rung -> {n: the latest Measurement}
        self.lab = lab  # the lab's kit (sweatlab.kit.Lab): its stand-in runs where a rung's function is unwritten

    def __repr__(self) -> str:
        rungs = ", ".join(self.label(f"{r} {sorted(by_n)}", r) for r, by_n in self.gflops.items()) or "none yet"
        return f"Ladder(measured: {rungs})"

    def _show(self, line: str) -> None:
        if self.say is not None:
            self.say(line)

    def by_stand_in(self, rung: str) -> bool:
        """Whether the lab's stand-in was measured for ``rung`` (in any of its stored measurements)."""
        return any(m.reference for m in self.measurements.get(rung, {}).values())

    def label(self, text: str, rung: str) -> str:
        """``text``, marked " (stand-in)" when the lab's stand-in was measured for ``rung``."""
        return f"{text} (stand-in)" if self.by_stand_in(rung) else text

    def measure(self, rung: str, fn: Callable[..., Any], n: int, *extra: Any,
                rtol: Callable[[int], float] = gamma, lists: bool = False, min_runs: int = 3,
                seed: int = 0) -> Measurement:
        """Check fn(A, B, *extra) on n x n inputs against float64 within rtol(n), then time it; store its GFLOP/s.

        The first call (numba compiles then) is not timed. While fn raises NotImplementedError,
        the lab's stand-in for the rung's function (RUNG_FUNCTIONS) is measured instead, with a
        note, and the rung is marked as measured by the stand-in. ``lists=True`` passes the
        inputs as lists of lists (the pure-Python rungs). A result outside the bound raises
        WrongResult: a wrong kernel is never timed.
        """
        A, B = random_matrices(n, seed)
        args = (A.tolist(), B.tolist()) if lists else (A, B)
        name = RUNG_FUNCTIONS.get(rung)
        kernel, kernel_name, reference = fn, getattr(fn, "__name__", rung), False
        started = time.perf_counter()
        try:
            C = fn(*args, *extra)
        except NotImplementedError:
            if name is None or self.lab is None:
                raise
            kernel, reference = self.lab.stand_in(name), True
            kernel_name = f"{name} (stand-in)"
            started = time.perf_counter()
            C = kernel(*args, *extra)
        first_s = time.perf_counter() - started
        error = error_vs_bound(C, A, B, rtol(A.shape[1]))
        if not error <= 1:
            raise WrongResult(f"{rung} at n={n}: the error is {error:.3g} times the float32 bound, so the result "
                              "is wrong; run its check cell to see where")
        meter = self.energy_meter().begin() if self.energy_meter is not None else None
        result = bench(kernel, *args, *extra, budget_s=self.budget_s, min_runs=min_runs, warmup=0, name=rung)
        reading = meter.end() if meter is not None else None
        gf = result.gflops(flops.matmul(n, n, n).flops)
        m = Measurement(rung, n, result, gf, error, first_s, kernel_name, reference, reading)
        self.gflops.setdefault(rung, {})[n] = gf
        self.measurements.setdefault(rung, {})[n] = m
        self._show(self.timing_line(m))
        for warning in result.warnings:
            self._show(f"    note: {warning}")
        return m

    def timing_line(self, m: Measurement) -> str:
        """The one line shown per measurement: time, spread, GFLOP/s against both ceilings, error, first call."""
        rung = f"{m.rung} (stand-in)" if m.reference else m.rung
        b = m.bench
        return (f"[timing] {rung:<12} n={m.n:<5} median {format_seconds(b.median_s):>9} (IQR {b.rel_iqr:4.0%},"
                f" {b.runs} runs) {m.gflops:10.4f} GFLOP/s = {100 * m.gflops / self.hw_gflops:7.3f}% of the hardware"
                f" peak, {100 * m.gflops / self.blas_gflops:7.3f}% of BLAS; error {100 * m.error:.2g}% of the bound;"
                f" first call {format_seconds(m.first_call_s)}"
                + (f"; {m.gflop_per_joule:.3g} GFLOP per joule ({m.energy_kind})" if m.gflop_per_joule is not None
                   else "; GFLOP per joule unknown" if m.energy is not None else ""))


def __getattr__(name: str) -> Any:
    """The numba references (PEP 562): compiled, and numba imported, the first time one is asked for."""
    if name in _NUMBA_REFERENCES:
        return _compiled(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NUMBA_REFERENCES))
