"""sweatlab.measure.timing: bench(), compare(), thread_settings(), timer_resolution_ns().

Timings are noisy: these tests never pin an absolute duration of real work; they compare
ratios measured in one process, with generous bounds. The one absolute bound (a no-op
under 1 µs per call) is the harness's overhead, which is the thing under test.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
import timeit

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from sweatlab.measure import timing
from sweatlab.measure.timing import BenchResult, bench, compare, thread_settings, timer_resolution_ns


def test_noop_median_under_one_microsecond_per_call():
    r = bench(lambda: None, budget_s=0.05)
    assert r.median_s < 1e-6, r


def test_fast_calls_are_batched_so_each_sample_is_long():
    r = bench(lambda: None, budget_s=0.02)
    assert r.loops > 100
    # one sample = loops calls, and lasts at least about MIN_SAMPLE_S
    assert r.median_s * r.loops > 0.5 * timing.MIN_SAMPLE_S


def test_times_are_per_call_and_warmup_is_not_a_sample():
    calls = []
    r = bench(lambda: calls.append(1), budget_s=0.0, min_runs=4, warmup=2, loops=10)
    assert r.runs == 4 and r.loops == 10
    assert len(calls) == 2 + 4 * 10  # warm-up calls, then loops x runs; none other
    assert len(r.samples_s) == r.runs


def test_median_iqr_and_min_come_from_the_samples():
    r = bench(sum, range(200), budget_s=0.02)
    xs = list(r.samples_s)
    q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    assert r.median_s == statistics.median(xs)
    assert r.min_s == min(xs)
    assert r.iqr_s == pytest.approx(q3 - q1)


def test_gflops_divides_flops_by_median_time():
    r = BenchResult("x", median_s=0.5, iqr_s=0.0, min_s=0.25, runs=3, loops=1, samples_s=(0.25, 0.5, 0.6),
                    first_call_s=None, warnings=(), threads={})
    assert r.gflops(2e9) == pytest.approx(4.0)  # not 8 (min) and not 2e9/0.45 (mean)


def test_min_runs_are_done_even_past_the_budget():
    r = bench(time.sleep, 0.002, budget_s=0.0, min_runs=4)
    assert r.runs == 4


def test_fn_kwargs_pass_through_and_harness_options_do_not():
    seen = []

    def fn(x, *, scale):
        seen.append((x, scale))

    bench(fn, 2, scale=3, budget_s=0.0, min_runs=1, warmup=1, loops=1)
    assert set(seen) == {(2, 3)}


def test_gc_is_off_while_timing_and_restored_after():
    states = []
    assert gc.isenabled()
    bench(lambda: states.append(gc.isenabled()), budget_s=0.0, min_runs=2, warmup=0, loops=1)
    assert states and not any(states)
    assert gc.isenabled()


def test_first_slow_call_is_recorded_and_warned():
    state = {"first": True}

    def lazy():
        if state["first"]:
            state["first"] = False
            time.sleep(0.05)

    r = bench(lazy, budget_s=0.02)
    assert r.first_call_s is not None and r.first_call_s >= 0.04
    assert r.median_s < 0.01  # the slow call is not among the samples
    assert any("first call" in w for w in r.warnings)


def test_high_spread_is_warned():
    pattern = iter([0.001, 0.004] * 50)
    r = bench(lambda: time.sleep(next(pattern)), budget_s=0.0, min_runs=8, warmup=0, loops=1)
    assert any("spread" in w for w in r.warnings), r


def test_sample_below_clock_resolution_is_warned_when_loops_forced_to_one():
    r = bench(lambda: None, budget_s=0.005, loops=1)
    assert any("resolution" in w for w in r.warnings), r


def test_invalid_options_say_which_one():
    with pytest.raises(ValueError, match="budget_s"):
        bench(lambda: None, budget_s=-1)
    with pytest.raises(ValueError, match="min_runs"):
        bench(lambda: None, min_runs=0)
    with pytest.raises(ValueError, match="min_pairs"):
        compare(lambda: None, lambda: None, min_pairs=0)


def test_repr_is_readable_with_units():
    text = repr(bench(sum, range(100), budget_s=0.01))
    assert text.startswith("BenchResult(sum: median ")
    assert "IQR" in text and "runs x" in text and ("us" in text or "ns" in text)


def test_bench_median_agrees_with_timeit_within_15_percent():
    """Like with like: per-call times, GC off, same loop count, samples interleaved in rounds.

    timeit.repeat(number=loops) gives total times of `loops` calls; divided by loops they are
    per-call samples exactly like bench's. We compare bench's median with the median of the
    timeit repeats, and bench's min with timeit's best-of-repeats (the timeit CLI's figure),
    each as the median over 5 interleaved rounds.
    """
    x = np.random.default_rng(0).random(50_000)
    y = np.empty_like(x)

    def work():
        np.multiply(x, 1.5, out=y)

    med_ratios, min_ratios = [], []
    for _ in range(5):
        r = bench(work, budget_s=0.08)
        per_call = [t / r.loops for t in timeit.repeat(work, number=r.loops, repeat=40)]
        med_ratios.append(r.median_s / statistics.median(per_call))
        min_ratios.append(r.min_s / min(per_call))
    assert 0.85 < statistics.median(med_ratios) < 1.15, med_ratios
    assert 0.85 < statistics.median(min_ratios) < 1.15, min_ratios


# ## compare()


def test_compare_finds_the_faster_callable_and_its_ratio():
    def slow():
        return sum(range(3000))

    def fast():
        return sum(range(300))

    c = compare(slow, fast, budget_s=0.1)
    assert c.ratio > 3  # time(slow) / time(fast)
    assert c.faster == "fast" and c.speedup == pytest.approx(c.ratio)
    assert len(c.ratios) == c.pairs >= 7
    swapped = compare(fast, slow, budget_s=0.1)
    assert swapped.ratio < 1 / 3 and swapped.faster == "fast"
    assert "fast is" in repr(c) and "faster than slow" in repr(c)


def test_compare_interleaves_a_and_b_in_pairs():
    log = []

    def a():
        log.append("a")
        time.sleep(0.0011)

    def b():
        log.append("b")
        time.sleep(0.0011)

    c = compare(a, b, budget_s=0.0, min_pairs=8, warmup=1)
    sampling = "".join(log[4:])  # after 1 warm-up call each and 1 calibration call each
    assert len(sampling) == 2 * c.pairs
    pairs = [sampling[i:i + 2] for i in range(0, len(sampling), 2)]
    # every pair holds one a and one b (not all-A-then-all-B), and the order alternates
    assert pairs == ["ab" if i % 2 == 0 else "ba" for i in range(c.pairs)]


def test_compare_of_a_function_with_itself_is_near_one():
    c = compare(sum, sum, range(500), budget_s=0.1)
    assert 0.8 < c.ratio < 1.25
    assert c.name_a != c.name_b


# ## thread settings and clock


def test_thread_settings_has_the_doctor_keys_and_is_json_able():
    ts = thread_settings()
    for key in ("logical_cores", "usable_cores", "blas", "blas_threads", "threadpools", "torch_threads",
                "torch_interop_threads", "numba_threads", "env", "reasons"):
        assert key in ts
    assert {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"} <= set(ts["env"])
    json.dumps(ts)
    for key in ("blas_threads", "torch_threads", "numba_threads"):
        if ts[key] is None:
            assert ts["reasons"].get(key), f"{key} is None without a reason"


def test_bench_records_the_blas_threads_in_force_at_the_time():
    if thread_settings()["blas"] is None:
        pytest.skip("threadpoolctl cannot see numpy's BLAS here")
    with threadpool_limits(limits=1, user_api="blas"):
        r = bench(lambda: None, budget_s=0.0, min_runs=1)
    assert r.threads["blas_threads"] == 1


def test_timer_resolution_is_positive_and_below_a_millisecond():
    res = timer_resolution_ns()
    assert isinstance(res, int) and 0 < res < 1_000_000


def test_busy_means_busy_now_not_a_minute_ago(tmp_path, monkeypatch):
    """A high one-minute load average left by a finished experiment is no reason to blame the machine."""
    from sweatlab.measure import timing

    loadavg = tmp_path / "loadavg"
    monkeypatch.setattr(timing, "LOADAVG", str(loadavg))
    monkeypatch.setattr(timing.os, "cpu_count", lambda: 2)
    loadavg.write_text("4.10 2.00 1.00 1/230 12345\n")  # only this process runs now
    assert timing._busy_warning() is None
    monkeypatch.setattr(timing, "_own_running_threads", lambda: 1)
    loadavg.write_text("0.50 0.40 0.30 4/230 12345\n")  # three others run right now
    assert "3 thread(s) of other programs are running right now on its 2 cores" in timing._busy_warning()
    monkeypatch.setattr(timing, "_own_running_threads", lambda: 3)  # our own BLAS pool, still spinning
    assert timing._busy_warning() is None


def test_own_running_threads_counts_at_least_this_one():
    from sweatlab.measure import timing

    assert timing._own_running_threads() >= 1
