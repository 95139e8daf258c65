"""Honest timings: warm-up, repeats until a time budget, GC off, medians with spread.

    bench(fn, *args, budget_s=0.2, min_runs=5, warmup=1, loops=None, **kwargs) -> BenchResult
    compare(a, b, *args, ...) -> CompareResult     A B B A ... interleaved, ratio per pair
    thread_settings() -> dict                      the thread knobs of numpy/BLAS, torch, numba
    timer_resolution_ns() -> int                   the clock's useful resolution

Every time reported is *per call* of `fn`: a fast function is called `loops` times in a
row inside one timed sample (so the sample is well above the clock's resolution) and the
sample is divided by `loops`. The headline number is the median over samples; the spread
is the interquartile range (IQR); the fastest sample (min) is kept too.

Keyword-only options of bench() and compare() (`budget_s`, `min_runs`, `max_runs`,
`warmup`, `loops`, `disable_gc`, `name`; compare(): `names`, `min_pairs`, `max_pairs`)
are taken by the harness and never passed to `fn`. If `fn` itself needs a keyword with
one of these names, wrap it: `bench(lambda: fn(x, warmup=3))` or `functools.partial`.
"""

from __future__ import annotations

import gc
import itertools
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

__all__ = [
    "runnable_elsewhere",
    "BenchResult",
    "CompareResult",
    "bench",
    "compare",
    "thread_settings",
    "timer_resolution_ns",
    "format_seconds",
]

# One timed sample should last at least this long: 1 ms is pyperf's threshold below which
# timer error and clock granularity start to show (research notes, section 1.2).
MIN_SAMPLE_S = 1e-3
# A sample shorter than this many clock ticks is flagged as quantised.
_MIN_TICKS_PER_SAMPLE = 100
# IQR / median above this is flagged (torch.utils.benchmark uses the same 10%).
SPREAD_WARN = 0.10
_THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMBA_NUM_THREADS",
)


# ## Clock


def timer_resolution_ns(tries: int = 1000) -> int:
    """Smallest positive step between two back-to-back `time.perf_counter_ns()` reads, in ns.

    This is the clock's *useful* resolution (tick plus the cost of reading it), which is
    what limits a single timed sample; `time.get_clock_info` reports only the nominal tick.
    """
    clock = time.perf_counter_ns
    best = math.inf
    for _ in range(max(1, tries)):
        t0 = clock()
        t1 = clock()
        while t1 == t0:
            t1 = clock()
        best = min(best, t1 - t0)
    return int(best)


@lru_cache(maxsize=1)
def _resolution_ns() -> int:
    return timer_resolution_ns()


def format_seconds(seconds: float | None) -> str:
    """A time in the unit that keeps 3 significant digits readable: '12.3 us', '4.56 ms'."""
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    a = abs(seconds)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if a >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


# ## Thread settings


def _numpy_blas_pool(pools: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The threadpoolctl entry of the BLAS that numpy itself loaded (None when not seen)."""
    blas = [p for p in pools if p.get("user_api") == "blas"]
    for p in blas:
        path = str(p.get("filepath", "")).replace("\\", "/").lower()
        if "/numpy" in path:  # numpy.libs/, numpy/.dylibs/, numpy/_core
            return p
    return blas[0] if len(blas) == 1 else None


def thread_settings(import_libs: bool = False) -> dict[str, Any]:
    """The thread settings that shape a timing: BLAS pools, torch, numba, env vars, cores.

    torch and numba are only asked when already imported (importing torch takes ~1 s);
    pass `import_libs=True` to import them. Unknown values are None with a reason in
    `reasons`. The dict is JSON-able. Keys: logical_cores, usable_cores, blas,
    blas_threads, threadpools, torch_threads, torch_interop_threads, numba_threads, env,
    reasons.
    """
    reasons: dict[str, str] = {}
    out: dict[str, Any] = {"logical_cores": os.cpu_count()}
    try:
        out["usable_cores"] = len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        out["usable_cores"] = out["logical_cores"]

    # numpy / BLAS through threadpoolctl (it sees only libraries already loaded).
    import numpy  # noqa: F401  (loads numpy's BLAS so threadpoolctl can see it)

    pools: list[dict[str, Any]] = []
    try:
        from threadpoolctl import threadpool_info

        pools = threadpool_info()
    except Exception as err:  # pragma: no cover - threadpoolctl is a pinned dependency
        reasons["threadpools"] = f"threadpoolctl failed: {err}"
    out["threadpools"] = [
        {
            "library": p.get("prefix"),
            "api": p.get("user_api"),
            "internal_api": p.get("internal_api"),
            "version": p.get("version"),
            "threading_layer": p.get("threading_layer"),
            "architecture": p.get("architecture"),
            "num_threads": p.get("num_threads"),
        }
        for p in pools
    ]
    blas = _numpy_blas_pool(pools)
    if blas is None:
        out["blas"] = None
        out["blas_threads"] = None
        reasons["blas_threads"] = (
            "threadpoolctl cannot see numpy's BLAS (Apple Accelerate and some builds hide it)"
        )
    else:
        arch = f", {blas['architecture']} kernels" if blas.get("architecture") else ""
        layer = f", {blas['threading_layer']}" if blas.get("threading_layer") else ""
        out["blas"] = f"{blas.get('internal_api')} {blas.get('version')}{arch}{layer}"
        out["blas_threads"] = blas.get("num_threads")

    # torch: ask only if imported (or asked to import).
    torch = sys.modules.get("torch")
    if torch is None and import_libs:
        try:
            import torch  # type: ignore[no-redef]
        except ImportError:
            torch = None
    if torch is not None and hasattr(torch, "get_num_threads"):
        out["torch_threads"] = torch.get_num_threads()
        out["torch_interop_threads"] = torch.get_num_interop_threads()
    else:
        out["torch_threads"] = out["torch_interop_threads"] = None
        reasons["torch_threads"] = (
            "torch not imported (thread_settings(import_libs=True) imports it)"
            if "torch" not in sys.modules and not import_libs
            else "torch is not installed"
        )

    # numba: get_num_threads() would start numba's thread pool, so read the config
    # value until the pool exists (that is the count it will start with).
    numba = sys.modules.get("numba")
    if numba is None and import_libs:
        try:
            import numba  # type: ignore[no-redef]
        except ImportError:
            numba = None
    if numba is not None and hasattr(numba, "config"):
        try:
            from numba.np.ufunc import parallel as _par

            started = bool(getattr(_par, "_is_initialized", False))
        except Exception:
            started = False
        out["numba_threads"] = numba.get_num_threads() if started else numba.config.NUMBA_NUM_THREADS
        if not started:
            reasons["numba_threads"] = "numba's thread pool not started yet: this is the count it will use"
    else:
        out["numba_threads"] = None
        reasons["numba_threads"] = (
            "numba not imported (thread_settings(import_libs=True) imports it)"
            if not import_libs
            else "numba is not installed"
        )

    out["env"] = {k: os.environ.get(k) for k in _THREAD_ENV_VARS}
    out["reasons"] = reasons
    return out


def _threads_short(threads: dict[str, Any]) -> str:
    parts = [f"blas={threads.get('blas_threads')}"]
    if threads.get("torch_threads") is not None:
        parts.append(f"torch={threads['torch_threads']}")
    if threads.get("numba_threads") is not None:
        parts.append(f"numba={threads['numba_threads']}")
    return " ".join(parts)


# ## Results


@dataclass(frozen=True, repr=False)
class BenchResult:
    """Per-call times of one function: median (headline), IQR (spread), min, raw samples."""

    name: str
    median_s: float
    iqr_s: float
    min_s: float
    runs: int  # number of timed samples
    loops: int  # calls per sample
    samples_s: tuple[float, ...]  # per-call time of each sample
    first_call_s: float | None  # the first (warm-up) call, often slower
    warnings: tuple[str, ...]
    threads: dict[str, Any] = field(compare=False)

    @property
    def rel_iqr(self) -> float:
        """IQR / median: the relative spread."""
        return self.iqr_s / self.median_s if self.median_s > 0 else math.inf

    def gflops(self, flops: float) -> float:
        """GFLOP/s at the median time: flops / median_s / 1e9."""
        if self.median_s <= 0:
            raise ValueError("median time is 0: the function is too fast to time; give it more work")
        return flops / self.median_s / 1e9

    def __repr__(self) -> str:
        spread = f"{self.rel_iqr:.1%}" if math.isfinite(self.rel_iqr) else "n/a"
        head = (
            f"BenchResult({self.name}: median {format_seconds(self.median_s)}"
            f" ± IQR {format_seconds(self.iqr_s)} ({spread}), min {format_seconds(self.min_s)},"
            f" {self.runs} runs x {self.loops} loops, threads {_threads_short(self.threads)})"
        )
        if self.warnings:
            head += "".join(f"\n  warning: {w}" for w in self.warnings)
        return head


@dataclass(frozen=True, repr=False)
class CompareResult:
    """Two callables timed in interleaved pairs; `ratio` = time(a) / time(b), median over pairs."""

    name_a: str
    name_b: str
    ratio: float  # median of t_a / t_b over pairs (>1: b is faster)
    ratio_iqr: float
    ratios: tuple[float, ...]
    median_a_s: float
    median_b_s: float
    pairs: int
    loops_a: int
    loops_b: int
    warnings: tuple[str, ...]
    threads: dict[str, Any] = field(compare=False)

    @property
    def ratio_q1_q3(self) -> tuple[float, float]:
        """The 25th and 75th percentile of the per-pair ratios."""
        return _quartiles(list(self.ratios))

    @property
    def faster(self) -> str | None:
        """Name of the faster callable, or None when the ratio's IQR contains 1 (no clear winner)."""
        q1, q3 = self.ratio_q1_q3
        if q1 > 1.0:
            return self.name_b
        if q3 < 1.0:
            return self.name_a
        return None

    @property
    def speedup(self) -> float:
        """How many times faster the faster one is: max(ratio, 1/ratio)."""
        return max(self.ratio, 1.0 / self.ratio) if self.ratio > 0 else math.inf

    def __repr__(self) -> str:
        if self.faster is None:
            verdict = f"no clear winner between {self.name_a} and {self.name_b} (ratio IQR includes 1)"
        else:
            slower = self.name_a if self.faster == self.name_b else self.name_b
            verdict = f"{self.faster} is {self.speedup:.2f}x faster than {slower}"
        head = (
            f"CompareResult({verdict}: time ratio {self.name_a}/{self.name_b} median {self.ratio:.3f}"
            f" ± IQR {self.ratio_iqr:.3f} over {self.pairs} pairs;"
            f" {self.name_a} {format_seconds(self.median_a_s)}, {self.name_b} {format_seconds(self.median_b_s)})"
        )
        if self.warnings:
            head += "".join(f"\n  warning: {w}" for w in self.warnings)
        return head


# ## Harness


def _quartiles(xs: list[float]) -> tuple[float, float]:
    if len(xs) < 2:
        return (xs[0], xs[0]) if xs else (math.nan, math.nan)
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def _timed(fn: Callable[..., Any], args: tuple, kwargs: dict, loops: int) -> int:
    """Wall time in ns of `loops` back-to-back calls."""
    clock = time.perf_counter_ns
    it = itertools.repeat(None, loops)
    if args or kwargs:
        t0 = clock()
        for _ in it:
            fn(*args, **kwargs)
        t1 = clock()
    else:  # the cheapest loop, so a no-op costs tens of ns per call
        t0 = clock()
        for _ in it:
            fn()
        t1 = clock()
    return t1 - t0


def _calibrate(fn: Callable[..., Any], args: tuple, kwargs: dict, min_sample_ns: float) -> int:
    """Smallest loop count whose sample lasts at least min_sample_ns (like timeit.autorange)."""
    loops = 1
    while True:
        t = _timed(fn, args, kwargs, loops)
        if t >= min_sample_ns or loops >= 10**9:
            return loops
        # Aim 20% past the target; grow at most 100x per step in case t was a fluke.
        loops = min(loops * 100, max(loops + 1, math.ceil(loops * 1.2 * min_sample_ns / max(t, 1))))


def _check_options(
    budget_s: float, min_runs: int, max_runs: int, warmup: int, loops: int | None, unit: str = "runs"
) -> None:
    if not (isinstance(budget_s, (int, float)) and budget_s >= 0):
        raise ValueError(f"budget_s must be a number of seconds >= 0, got {budget_s!r}")
    if not (isinstance(min_runs, int) and min_runs >= 1):
        raise ValueError(f"min_{unit} must be an int >= 1, got {min_runs!r}")
    if not (isinstance(max_runs, int) and max_runs >= min_runs):
        raise ValueError(f"max_{unit} must be an int >= min_{unit} ({min_runs}), got {max_runs!r}")
    if not (isinstance(warmup, int) and warmup >= 0):
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
    if loops is not None and not (isinstance(loops, int) and loops >= 1):
        raise ValueError(f"loops must be None (automatic) or an int >= 1, got {loops!r}")


def _name_of(fn: Callable[..., Any], default: str) -> str:
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return default if name == "<lambda>" else name


LOADAVG = "/proc/loadavg"


def _own_running_threads() -> int:
    """Threads of this process running or runnable now (this one included): a BLAS pool that still
    spins after its last call counts in /proc/loadavg, but it is not another program."""
    running = 0
    try:
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/stat") as f:
                    running += f.read().rsplit(")", 1)[1].split()[0] == "R"
            except (OSError, IndexError):
                continue
    except OSError:
        return 1
    return max(running, 1)


def runnable_elsewhere() -> int | None:
    """Threads of other processes running or ready to run right now (Linux: /proc/loadavg's 4th
    field counts every runnable thread; this process's own are taken off)."""
    try:
        with open(LOADAVG) as f:
            total = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0, total - _own_running_threads())


def _busy_warning() -> str | None:
    """Other programs competing for the cores while timing. Linux counts the processes runnable at this
    instant; the load average (used elsewhere) is a one-minute moving average, so it still blames the
    machine for work that ended seconds ago, such as a neighbour experiment just stopped."""
    cores = os.cpu_count() or 1
    now = runnable_elsewhere()
    if now is not None:
        if now >= cores:
            return (f"the machine is busy: {now} thread(s) of other programs are running right now on its {cores} cores;"
                    " numbers will be slower and noisier")
        return None
    try:
        load1 = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    if load1 > cores + 0.5:
        return f"the machine is busy: load average {load1:.1f} is above its {cores} cores; numbers will be slower and noisier"
    return None


def _sample_warnings(samples: list[float], loops: int, median: float, iqr: float, first_call: float | None) -> list[str]:
    warns: list[str] = []
    res_ns = _resolution_ns()
    if median > 0 and iqr / median > SPREAD_WARN:
        warns.append(
            f"spread is high: IQR is {iqr / median:.0%} of the median (over {SPREAD_WARN:.0%});"
            " close other programs and rerun, or use compare() for A/B decisions"
        )
    if len(samples) < 3:
        warns.append(f"only {len(samples)} run(s): no spread to report; raise budget_s or min_runs")
    sample_ns = median * loops * 1e9
    if sample_ns < _MIN_TICKS_PER_SAMPLE * res_ns:
        warns.append(
            f"each timed sample ({sample_ns:.0f} ns) is under {_MIN_TICKS_PER_SAMPLE}x the clock's useful"
            f" resolution ({res_ns} ns): times are quantised; leave loops=None so bench batches calls"
        )
    if samples and median > 0 and min(samples) < 0.75 * median:
        warns.append(
            f"the fastest run took {format_seconds(min(samples))}, {1 - min(samples) / median:.0%} less"
            f" time than the median run ({format_seconds(median)}): a frequency boost or a quiet"
            " moment; the median is the number to report"
        )
    if first_call is not None and median > 0 and first_call > 10 * median and first_call > 1e-3:
        warns.append(
            f"the first call took {first_call / median:.0f}x the median ({format_seconds(first_call)}):"
            " one-off start-up work (lazy initialisation, caches, compilation); warm-up matters here"
        )
    busy = _busy_warning()
    if busy:
        warns.append(busy)
    return warns


def bench(
    fn: Callable[..., Any],
    *args: Any,
    budget_s: float = 0.2,
    min_runs: int = 5,
    max_runs: int = 10_000,
    warmup: int = 1,
    loops: int | None = None,
    disable_gc: bool = True,
    name: str | None = None,
    **kwargs: Any,
) -> BenchResult:
    """Time fn(*args, **kwargs): warm up, then sample until `budget_s` has passed and `min_runs` are done.

    Per-call time of a sample = (time of `loops` calls) / loops; `loops` is chosen so one
    sample lasts >= 1 ms unless given. GC is off while timing (as in timeit). The thread
    settings at the time are recorded. Slow functions run at least `min_runs` times, even
    past the budget.
    """
    _check_options(budget_s, min_runs, max_runs, warmup, loops)
    label = name or _name_of(fn, "fn")
    gc_was_on = gc.isenabled()
    first_call: float | None = None
    samples: list[float] = []
    try:
        for i in range(warmup):
            t = _timed(fn, args, kwargs, 1)
            if i == 0:
                first_call = t / 1e9
        if disable_gc:
            gc.disable()
        n_loops = loops or _calibrate(fn, args, kwargs, MIN_SAMPLE_S * 1e9)
        deadline = time.perf_counter_ns() + budget_s * 1e9
        while True:
            samples.append(_timed(fn, args, kwargs, n_loops) / n_loops / 1e9)
            if len(samples) >= max_runs:
                break
            if len(samples) >= min_runs and time.perf_counter_ns() >= deadline:
                break
    finally:
        if gc_was_on:
            gc.enable()
    median = statistics.median(samples)
    q1, q3 = _quartiles(samples)
    iqr = q3 - q1
    warns = _sample_warnings(samples, n_loops, median, iqr, first_call)
    return BenchResult(
        name=label,
        median_s=median,
        iqr_s=iqr,
        min_s=min(samples),
        runs=len(samples),
        loops=n_loops,
        samples_s=tuple(samples),
        first_call_s=first_call,
        warnings=tuple(warns),
        threads=thread_settings(),
    )


def compare(
    a: Callable[..., Any],
    b: Callable[..., Any],
    *args: Any,
    budget_s: float = 0.5,
    min_pairs: int = 7,
    max_pairs: int = 10_000,
    warmup: int = 1,
    disable_gc: bool = True,
    names: tuple[str, str] | None = None,
    **kwargs: Any,
) -> CompareResult:
    """Time a and b (same args) in interleaved pairs, A B, B A, ...; ratio per pair = t_a / t_b.

    Interleaving means a slow spell of the machine hits both sides of a pair, so the
    median ratio is far steadier than the ratio of two separate medians. The order
    alternates within pairs to cancel any first-runs-faster bias.
    """
    _check_options(budget_s, min_pairs, max_pairs, warmup, None, unit="pairs")
    name_a, name_b = names or (_name_of(a, "a"), _name_of(b, "b"))
    if name_a == name_b:
        name_a, name_b = f"{name_a} (a)", f"{name_b} (b)"
    gc_was_on = gc.isenabled()
    ta: list[float] = []
    tb: list[float] = []
    try:
        for _ in range(warmup):
            _timed(a, args, kwargs, 1)
            _timed(b, args, kwargs, 1)
        if disable_gc:
            gc.disable()
        loops_a = _calibrate(a, args, kwargs, MIN_SAMPLE_S * 1e9)
        loops_b = _calibrate(b, args, kwargs, MIN_SAMPLE_S * 1e9)
        deadline = time.perf_counter_ns() + budget_s * 1e9
        while True:
            if len(ta) % 2 == 0:
                ta.append(_timed(a, args, kwargs, loops_a) / loops_a / 1e9)
                tb.append(_timed(b, args, kwargs, loops_b) / loops_b / 1e9)
            else:
                tb.append(_timed(b, args, kwargs, loops_b) / loops_b / 1e9)
                ta.append(_timed(a, args, kwargs, loops_a) / loops_a / 1e9)
            if len(ta) >= max_pairs:
                break
            if len(ta) >= min_pairs and time.perf_counter_ns() >= deadline:
                break
    finally:
        if gc_was_on:
            gc.enable()
    ratios = [x / y if y > 0 else math.inf for x, y in zip(ta, tb)]
    ratio = statistics.median(ratios)
    q1, q3 = _quartiles(ratios)
    warns: list[str] = []
    if ratio > 0 and (q3 - q1) / ratio > SPREAD_WARN:
        warns.append(
            f"the per-pair ratio varies: IQR is {(q3 - q1) / ratio:.0%} of the median ratio;"
            " raise budget_s for a steadier answer"
        )
    busy = _busy_warning()
    if busy:
        warns.append(busy)
    return CompareResult(
        name_a=name_a,
        name_b=name_b,
        ratio=ratio,
        ratio_iqr=q3 - q1,
        ratios=tuple(ratios),
        median_a_s=statistics.median(ta),
        median_b_s=statistics.median(tb),
        pairs=len(ratios),
        loops_a=loops_a,
        loops_b=loops_b,
        warnings=tuple(warns),
        threads=thread_settings(),
    )
