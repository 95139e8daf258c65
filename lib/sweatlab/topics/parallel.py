"""Threads: Amdahl's law fitted to a measured scaling curve, and the scaling sweep that feeds it.

    amdahl_time(p, t1, f) -> seconds          T(p) = t1 * (f + (1 - f) / p)
    amdahl_speedup(p, f) -> float             S(p) = 1 / (f + (1 - f) / p); at most 1 / f however many cores
    fit_amdahl(threads, seconds) -> AmdahlFit the t1 and serial fraction f that fit measured times best
    scaling(fn, *args, threads=[1, 2, ...]) -> list[ScalingPoint]   numba.set_num_threads(p), then bench

Amdahl's law (G. Amdahl, "Validity of the single processor approach to achieving large scale
computing capabilities", AFIPS 1967): if a fraction f of one thread's time cannot be shared out,
p threads take t1 (f + (1 - f)/p). Written as T(p) = a + b / p with a = t1 f and b = t1 (1 - f), it is
linear in a and b, so the fit is a least-squares line in 1/p. The fit weighs *relative* errors
(each time divided by itself), so the fast many-thread points count as much as the slow one-thread
point; a and b are kept >= 0 (a negative serial time is noise, not a finding).

With two thread counts (a 2-core machine) the two parameters are determined exactly by the two
points: the "fit" then has no residual to judge it by, and the lab says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

__all__ = ["amdahl_time", "amdahl_speedup", "AmdahlFit", "fit_amdahl", "ScalingPoint", "scaling"]


def amdahl_time(p: float, t1: float, f: float) -> float:
    """Seconds on p threads of a job that takes t1 on one, a fraction f of which stays serial."""
    if p <= 0:
        raise ValueError(f"p must be > 0 threads, got {p!r}")
    return t1 * (f + (1 - f) / p)


def amdahl_speedup(p: float, f: float) -> float:
    """How many times faster p threads run a job whose serial fraction is f: 1 / (f + (1 - f) / p)."""
    return 1.0 / (f + (1 - f) / p)


@dataclass(frozen=True)
class AmdahlFit:
    """t1 (seconds on one thread) and the serial fraction that fit the measured times, with the fit's error."""

    t1_s: float
    serial_fraction: float
    threads: tuple[float, ...]
    seconds: tuple[float, ...]
    rms_relative_error: float  # of the fitted times against the measured ones; 0 when exactly determined
    exact: bool  # True when there were only two thread counts: no freedom left to test the law

    @property
    def max_speedup(self) -> float:
        """The limit of the speed-up as the threads grow without bound: 1 / f (inf when f = 0)."""
        return math.inf if self.serial_fraction <= 0 else 1.0 / self.serial_fraction

    def predict_s(self, p: float) -> float:
        return amdahl_time(p, self.t1_s, self.serial_fraction)

    def speedup(self, p: float) -> float:
        return amdahl_speedup(p, self.serial_fraction)

    def __repr__(self) -> str:
        judged = "exactly determined by 2 thread counts" if self.exact else \
            f"rms error {self.rms_relative_error:.1%} over {len(set(self.threads))} thread counts"
        return (f"AmdahlFit(t1 = {self.t1_s:.4g} s, serial fraction {self.serial_fraction:.3f}, at most "
                f"{self.max_speedup:.3g}x with any number of threads; {judged})")


def fit_amdahl(threads: Sequence[float], seconds: Sequence[float]) -> AmdahlFit:
    """Fit T(p) = a + b/p (a, b >= 0) to measured seconds on ``threads``, minimising relative errors.

    Repeated thread counts are allowed (several runs each). Needs at least two different thread
    counts and positive times; raises ValueError otherwise.
    """
    ps = [float(p) for p in threads]
    ts = [float(t) for t in seconds]
    if len(ps) != len(ts):
        raise ValueError(f"{len(ps)} thread counts but {len(ts)} times")
    if len(set(ps)) < 2:
        raise ValueError("Amdahl's law has two unknowns: measure at least two different thread counts")
    if any(p <= 0 for p in ps) or any(not t > 0 for t in ts):
        raise ValueError("thread counts and times must be positive")
    # weighted least squares: minimise sum ((a + b x - t) / t)^2 with x = 1/p
    rows = [(1.0 / t, (1.0 / p) / t) for p, t in zip(ps, ts)]  # the model's two columns, each divided by t
    s11 = sum(u * u for u, _ in rows)
    s12 = sum(u * v for u, v in rows)
    s22 = sum(v * v for _, v in rows)
    r1 = sum(u for u, _ in rows)  # the target, t / t = 1, times each column
    r2 = sum(v for _, v in rows)
    det = s11 * s22 - s12 * s12
    a, b = ((s22 * r1 - s12 * r2) / det, (s11 * r2 - s12 * r1) / det) if det > 0 else (-1.0, -1.0)
    if a < 0 or b < 0 or det <= 0:  # the best fit on the boundary: one term only
        a_only = r1 / s11  # b = 0: no speed-up at all
        b_only = r2 / s22  # a = 0: perfect scaling
        err_a = sum((a_only * u - 1) ** 2 for u, _ in rows)
        err_b = sum((b_only * v - 1) ** 2 for _, v in rows)
        a, b = (a_only, 0.0) if err_a < err_b else (0.0, b_only)
    t1 = a + b
    f = a / t1
    rms = math.sqrt(sum(((a + b / p) / t - 1) ** 2 for p, t in zip(ps, ts)) / len(ts))
    return AmdahlFit(t1, f, tuple(ps), tuple(ts), rms, len(set(ps)) == 2)


@dataclass(frozen=True)
class ScalingPoint:
    """One thread count: the timing (a sweatlab.measure.timing.BenchResult) and the threads numba really used."""

    threads: int
    bench: Any
    numba_threads: int

    @property
    def median_s(self) -> float:
        return self.bench.median_s


def scaling(fn: Callable[..., Any], *args: Any, threads: Sequence[int], budget_s: float = 0.3,
            min_runs: int = 3, rounds: int = 2) -> list[ScalingPoint]:
    """Time fn(*args) with numba's pool set to each thread count in turn (``rounds`` passes, interleaved so
    a slow spell of the machine hits every count; the faster median of the passes is kept).

    The pool size is restored afterwards. A count above numba's maximum (its NUMBA_NUM_THREADS, the
    cores by default) raises ValueError: numba cannot start more threads once its pool exists.
    """
    import numba

    from sweatlab.measure.timing import bench

    most = numba.config.NUMBA_NUM_THREADS
    bad = [p for p in threads if not 1 <= p <= most]
    if bad:
        raise ValueError(f"thread counts {bad} are outside 1..{most} (numba's pool size, NUMBA_NUM_THREADS)")
    before = numba.get_num_threads()
    best: dict[int, ScalingPoint] = {}
    try:
        for r in range(rounds):
            for p in (threads if r % 2 == 0 else list(threads)[::-1]):
                numba.set_num_threads(p)
                res = bench(fn, *args, budget_s=budget_s, min_runs=min_runs, warmup=1, name=f"{p} thread(s)")
                point = ScalingPoint(p, res, numba.get_num_threads())
                if p not in best or res.median_s < best[p].median_s:
                    best[p] = point
    finally:
        numba.set_num_threads(before)
    return [best[p] for p in threads]
