"""Public checks of lab 00_measure: "How fast is this machine, honestly?"

Exercises (the name the notebook's `check(...)` cell uses, and the learner's function):

    time_it            time_it(fn, repeats, warmup, clock) -> median seconds of the timed calls
    matmul_flops       matmul_flops(m, n, k) -> 2*m*n*k
    gflops             gflops(flops, seconds) -> flops / seconds / 1e9
    kernel_cost        kernel_cost(kernel, n, itemsize) -> {"flops", "bytes", "intensity"}
    attainable_gflops  attainable_gflops(intensity, peak_gflops, bandwidth_gbs) -> min(peak, bw * I)
    bound_by           bound_by(intensity, peak_gflops, bandwidth_gbs) -> "memory" or "compute"
    predict_seconds    predict_seconds(kernel, n, peak_gflops, bandwidth_gbs) -> the roofline's time
                       (checked on made-up machines, then against this machine's measurement)

`time_it` takes a function, which cannot cross the plain-data boundary of the checks. So the
notebook's setup cell defines ``time_it_on_fake = time_it_probe(globals())``: a plain-data
function that builds a fake workload (and a fake clock) from a scenario dict, runs the
learner's `time_it` on it *in the learner's process*, and returns numbers. The checks call
that probe; what comes back is a median and a call count, never an object.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable

from sweatlab.kit.checks import LearnerError, Tester, public_test
from sweatlab.labs.lab00_measure.standins import reference_cost, reference_seconds

LAB = "00_measure"

__all__ = ["time_it_probe", "run_fake_timing"]


# ---------------------------------------------------------------------------------------------
# The time_it probe: runs in the learner's process, plain data in and out
# ---------------------------------------------------------------------------------------------

# A call beyond the scripted ones "takes" this long, so an extra call shows in the result.
_UNSCRIPTED_CALL_S = 1000.0


def run_fake_timing(time_it: Callable[..., Any], scenario: dict) -> dict:
    """Run ``time_it`` on the workload ``scenario`` describes; return what it measured, as plain data.

    scenario keys:
        durations   list of seconds: call i of the workload "takes" durations[i] on the fake clock
        warmup, repeats  passed to time_it as keywords
        real_sleep_s     instead of a fake clock: the workload sleeps this long and time_it's own
                         default clock is used (time_it is called without `clock`)
    Returns {"result": what time_it returned, "calls": how many times it called the workload}.
    """
    calls = 0
    if "real_sleep_s" in scenario:
        pause = float(scenario["real_sleep_s"])

        def workload() -> None:
            nonlocal calls
            calls += 1
            time.sleep(pause)

        result = time_it(workload, repeats=int(scenario["repeats"]), warmup=int(scenario["warmup"]))
        return {"result": result, "calls": calls}

    durations = [float(d) for d in scenario["durations"]]
    now = 0.0

    def clock() -> float:
        return now

    def workload() -> None:
        nonlocal calls, now
        now += durations[calls] if calls < len(durations) else _UNSCRIPTED_CALL_S
        calls += 1

    result = time_it(workload, repeats=int(scenario["repeats"]), warmup=int(scenario["warmup"]), clock=clock)
    return {"result": result, "calls": calls}


def time_it_probe(namespace: dict) -> Callable[[dict], dict]:
    """The plain-data probe the `time_it` checks call: ``time_it_on_fake = time_it_probe(globals())``.

    It looks up ``time_it`` in ``namespace`` at call time, so it sees the learner's latest version.
    """

    def time_it_on_fake(scenario: dict) -> dict:
        """Drive your time_it with a scripted workload (and a fake clock); used by check("time_it")."""
        fn = namespace.get("time_it")
        if fn is None:
            raise NameError("no function named 'time_it' is defined; run the cell that defines it (keep its name)")
        return run_fake_timing(fn, scenario)

    return time_it_on_fake


# ---------------------------------------------------------------------------------------------
# time_it
# ---------------------------------------------------------------------------------------------

def _probe(t: Tester, scenario: dict) -> Any:
    """Call the probe; a failure inside it is reported as the learner's time_it failing."""
    try:
        return t.call("time_it_on_fake", scenario)
    except LearnerError as exc:
        raise LearnerError("time_it", exc.error_type, exc.message, exc.traceback) from None


def _fake(t: Tester, durations: list[float], warmup: int, repeats: int) -> dict:
    out = _probe(t, {"durations": durations, "warmup": warmup, "repeats": repeats})
    t.expect(isinstance(out, dict) and "result" in out and "calls" in out,
             what="the time_it probe returned something unexpected",
             hint="run the notebook's setup cell again (it defines time_it_on_fake)")
    return out


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _expect_median(t: Tester, got: Any, samples: list[float], warm: list[float], what: str) -> None:
    want = statistics.median(samples)
    hint = "return the median of the timed samples, in seconds, measured with the clock argument"
    if not _is_number(got):
        hint = "return one number: the median time in seconds"
    elif abs(got) < 1e-3 and want > 1e-2:
        hint = ("the result is tiny: time each call with the `clock` argument (t0 = clock(); fn(); "
                "t1 = clock()), not with time.perf_counter directly; the check passes in a fake clock")
    elif warm and math.isclose(got, statistics.median(warm + samples)):
        hint = "the warm-up calls are in your samples: run them first, untimed, then time `repeats` calls"
    elif math.isclose(got, statistics.fmean(samples)):
        hint = "that is the mean; the median ignores the rare slow sample (statistics.median)"
    elif math.isclose(got, min(samples)):
        hint = "that is the fastest sample (min); this exercise asks for the median"
    elif math.isclose(got, sum(samples)):
        hint = "that is the total of all timed calls; return the median of the per-call times"
    elif len(samples) % 2 == 0 and math.isclose(got, sorted(samples)[len(samples) // 2]):
        hint = ("with an even number of samples the median is the mean of the two middle ones "
                "(statistics.median and np.median do this)")
    t.expect_close(got, want, rtol=1e-9, what=what, hint=hint)


@public_test(LAB, "time_it", points=2)
def median_ignores_a_slow_first_call(t: Tester):
    # fake durations in seconds (exact binary fractions): a 4 s first call, then five timed calls
    warm, samples = [4.0], [0.375, 0.125, 0.25, 1.5, 0.25]
    out = _fake(t, warm + samples, warmup=1, repeats=5)
    _expect_median(t, out["result"], samples, warm,
                   what="time_it(fn, repeats=5, warmup=1, clock=fake) where the calls take "
                        "4, 0.375, 0.125, 0.25, 1.5, 0.25 s")


@public_test(LAB, "time_it", points=1)
def calls_warmup_plus_repeats_times(t: Tester):
    warm, samples = [8.0, 2.0, 1.0], [0.5, 0.75, 0.25, 0.25]
    out = _fake(t, warm + samples, warmup=3, repeats=4)
    t.expect_equal(out["calls"], 7, what="number of calls of fn by time_it(fn, repeats=4, warmup=3)",
                   hint="call fn `warmup` times untimed, then `repeats` times timed: no more, no fewer")
    _expect_median(t, out["result"], samples, warm,
                   what="time_it(fn, repeats=4, warmup=3, clock=fake) where the timed calls take 0.5, 0.75, 0.25, 0.25 s")


@public_test(LAB, "time_it", points=1)
def no_warmup_when_warmup_is_zero(t: Tester):
    samples = [0.5, 0.125, 0.375]
    out = _fake(t, samples, warmup=0, repeats=3)
    t.expect_equal(out["calls"], 3, what="number of calls of fn by time_it(fn, repeats=3, warmup=0)",
                   hint="with warmup=0 there is no untimed call")
    _expect_median(t, out["result"], samples, [],
                   what="time_it(fn, repeats=3, warmup=0, clock=fake) where the calls take 0.5, 0.125, 0.375 s")


@public_test(LAB, "time_it", points=1)
def even_repeats_average_the_middle_two(t: Tester):
    warm, samples = [3.0, 2.0], [0.125, 0.5, 0.25, 0.75]
    out = _fake(t, warm + samples, warmup=2, repeats=4)
    _expect_median(t, out["result"], samples, warm,
                   what="time_it(fn, repeats=4, warmup=2, clock=fake) where the timed calls take 0.125, 0.5, 0.25, 0.75 s")


@public_test(LAB, "time_it", points=1)
def real_clock_measures_a_20_ms_sleep_in_seconds(t: Tester):
    out = _probe(t, {"real_sleep_s": 0.02, "warmup": 1, "repeats": 3})
    got = out.get("result") if isinstance(out, dict) else None
    hint = "with the default clock (time.perf_counter) a 20 ms sleep should measure about 0.02 (seconds)"
    if _is_number(got) and 10 < got < 1e3:
        hint = "that looks like milliseconds: return seconds (time.perf_counter differences are seconds)"
    elif _is_number(got) and got > 1e6:
        hint = "that looks like nanoseconds: use time.perf_counter (seconds) as the default clock"
    t.expect(_is_number(got) and 0.015 <= got <= 1.0,
             what=f"time_it(sleep 20 ms, repeats=3, warmup=1) with the default clock returned {got!r}; "
                  "expected about 0.02 (between 0.015 and 1.0)", hint=hint)


# ---------------------------------------------------------------------------------------------
# matmul_flops
# ---------------------------------------------------------------------------------------------

_FLOPS_HINT = ("an (m, k) @ (k, n) product has m*n outputs, each a sum of k products: k multiplies and k adds, "
               "and the course counts a multiply-add as 2 FLOPs, so 2*m*n*k")


def _expect_flops(t: Tester, m: int, n: int, k: int) -> None:
    got = t.call("matmul_flops", m, n, k)
    want = 2 * m * n * k
    hint = _FLOPS_HINT
    if isinstance(got, (int, float)) and not isinstance(got, bool):
        if got == m * n * k:
            hint = "you counted m*n*k: that is the number of multiply-adds; each is 2 FLOPs (one multiply, one add)"
        elif got == m * n * (2 * k - 1):
            hint = ("you counted exactly k-1 adds per output; the course's convention (and everyone's GFLOP/s) "
                    "counts k adds, i.e. 2*m*n*k")
    t.expect_close(got, want, rtol=0, what=f"matmul_flops({m}, {n}, {k})", hint=hint)


@public_test(LAB, "matmul_flops", points=1)
def small_rectangular_product(t: Tester):
    _expect_flops(t, 2, 3, 4)


@public_test(LAB, "matmul_flops", points=1)
def random_shapes(t: Tester):
    rng = t.rng()
    for _ in range(5):
        m, n, k = (int(v) for v in rng.integers(1, 5000, size=3))
        _expect_flops(t, m, n, k)


@public_test(LAB, "matmul_flops", points=1)
def vector_shapes_and_one_by_one(t: Tester):
    _expect_flops(t, 1, 1, 1)        # one multiply-add
    _expect_flops(t, 1, 4096, 4096)  # a vector times a matrix (one token through a layer)
    _expect_flops(t, 4096, 1, 4096)  # a matrix times a vector


# ---------------------------------------------------------------------------------------------
# gflops
# ---------------------------------------------------------------------------------------------

def _expect_gflops(t: Tester, flops: float, seconds: float) -> None:
    got = t.call("gflops", flops, seconds)
    want = flops / seconds / 1e9
    hint = "GFLOP/s = flops / seconds / 1e9 (giga is 10**9 here, not 2**30)"
    if _is_number(got):
        if math.isclose(got, flops / seconds / 2**30, rel_tol=1e-9):
            hint = "you divided by 2**30; rates use decimal prefixes: giga = 1e9"
        elif math.isclose(got, flops / seconds, rel_tol=1e-9):
            hint = "that is FLOP/s; divide by 1e9 for GFLOP/s"
        elif seconds != 1 and math.isclose(got, flops * seconds / 1e9, rel_tol=1e-9):
            hint = "a rate is work divided by time: flops / seconds"
    t.expect_close(got, want, rtol=1e-9, what=f"gflops({flops!r}, {seconds!r})", hint=hint)


@public_test(LAB, "gflops", points=1)
def one_matmul_in_ten_milliseconds(t: Tester):
    _expect_gflops(t, 2 * 1024**3, 0.01)  # a 1024^3 matmul in 10 ms: about 215 GFLOP/s


@public_test(LAB, "gflops", points=1)
def random_work_and_times(t: Tester):
    rng = t.rng()
    for _ in range(5):
        _expect_gflops(t, float(rng.integers(10**6, 10**13)), float(rng.uniform(1e-5, 20.0)))


# ---------------------------------------------------------------------------------------------
# kernel_cost
# ---------------------------------------------------------------------------------------------

KERNELS = ("add", "dot", "matvec", "matmul")


def _expect_cost(t: Tester, kernel: str, n: int, itemsize: int) -> None:
    got = t.call("kernel_cost", kernel, n, itemsize)
    want = reference_cost(kernel, n, itemsize)
    call = f"kernel_cost({kernel!r}, {n}, {itemsize})"
    t.expect(isinstance(got, dict) and all(k in got for k in want),
             what=f"{call} returned {got!r}",
             hint='return a dict with the keys "flops", "bytes" and "intensity"')
    flop_hints = {
        "add": "z = x + y does one add per element: n FLOPs",
        "dot": "x . y does n multiply-adds: 2n FLOPs",
        "matvec": "A x with A (n, n) does n*n multiply-adds: 2*n*n FLOPs",
        "matmul": "A B with both (n, n) does n**3 multiply-adds: 2*n**3 FLOPs",
    }
    byte_hints = {
        "add": "read x and y, write z: 3*n elements of itemsize bytes",
        "dot": "read x and y (2n elements) and write the one result: (2n + 1) * itemsize bytes",
        "matvec": "read A (n*n) and x (n), write y (n): (n*n + 2n) * itemsize bytes",
        "matmul": "read A and B, write C, each n*n once: 3*n*n * itemsize bytes",
    }
    byte_hint = byte_hints[kernel]
    if _is_number(got.get("bytes")) and got["bytes"] * itemsize == want["bytes"] and itemsize != 1:
        byte_hint = "you counted elements: multiply by itemsize to get bytes"
    elif kernel == "dot" and got.get("bytes") == 2 * n * itemsize:
        byte_hint = "almost: the result (one element) is written too: (2n + 1) * itemsize"
    t.expect_close(got["flops"], want["flops"], rtol=0, what=f'{call}["flops"]', hint=flop_hints[kernel])
    t.expect_close(got["bytes"], want["bytes"], rtol=0, what=f'{call}["bytes"]', hint=byte_hint)
    t.expect_close(got["intensity"], want["intensity"], rtol=1e-9, what=f'{call}["intensity"]',
                   hint="arithmetic intensity is FLOPs per byte moved: flops / bytes")


@public_test(LAB, "kernel_cost", points=1)
def vector_add_fp32(t: Tester):
    _expect_cost(t, "add", 1000, 4)


@public_test(LAB, "kernel_cost", points=1)
def dot_product_fp32(t: Tester):
    _expect_cost(t, "dot", 1000, 4)


@public_test(LAB, "kernel_cost", points=1)
def matrix_vector_fp32(t: Tester):
    _expect_cost(t, "matvec", 4096, 4)


@public_test(LAB, "kernel_cost", points=1)
def matmul_fp32(t: Tester):
    _expect_cost(t, "matmul", 1024, 4)


@public_test(LAB, "kernel_cost", points=1)
def every_kernel_at_other_sizes_and_dtypes(t: Tester):
    rng = t.rng()
    for kernel in KERNELS:
        for itemsize in (2, 8):  # bf16/fp16 and fp64
            _expect_cost(t, kernel, int(rng.integers(2, 3000)), itemsize)


# ---------------------------------------------------------------------------------------------
# attainable_gflops
# ---------------------------------------------------------------------------------------------

def _expect_attainable(t: Tester, intensity: float, peak: float, bw: float) -> None:
    got = t.call("attainable_gflops", intensity, peak, bw)
    want = min(peak, bw * intensity)
    hint = "the roofline: min(peak_gflops, bandwidth_gbs * intensity)"
    if _is_number(got):
        if math.isclose(got, bw * intensity, rel_tol=1e-9):
            hint = "no kernel runs faster than the compute peak: cap the result at peak_gflops (take the min)"
        elif math.isclose(got, max(peak, bw * intensity), rel_tol=1e-9):
            hint = "that is the max; the slower of the two limits wins: min(peak, bandwidth * intensity)"
        elif math.isclose(got, min(peak, bw / intensity), rel_tol=1e-9):
            hint = "GB/s x FLOP/byte = GFLOP/s: multiply bandwidth by intensity"
        elif math.isclose(got, peak, rel_tol=1e-9):
            hint = "a kernel with low intensity is held back by memory: bandwidth * intensity"
    t.expect_close(got, want, rtol=1e-9,
                   what=f"attainable_gflops({intensity!r}, peak_gflops={peak!r}, bandwidth_gbs={bw!r})", hint=hint)


@public_test(LAB, "attainable_gflops", points=1)
def memory_bound_kernel(t: Tester):
    _expect_attainable(t, 0.25, 100.0, 20.0)  # a dot product on a 100 GFLOP/s, 20 GB/s machine: 5


@public_test(LAB, "attainable_gflops", points=1)
def compute_bound_kernel(t: Tester):
    _expect_attainable(t, 170.0, 100.0, 20.0)


@public_test(LAB, "attainable_gflops", points=1)
def random_machines_and_kernels(t: Tester):
    rng = t.rng()
    for _ in range(8):
        _expect_attainable(t, float(10 ** rng.uniform(-2, 3)), float(rng.uniform(5, 5000)), float(rng.uniform(2, 500)))


# ---------------------------------------------------------------------------------------------
# bound_by
# ---------------------------------------------------------------------------------------------

def _expect_bound(t: Tester, intensity: float, peak: float, bw: float) -> None:
    got = t.call("bound_by", intensity, peak, bw)
    ridge = peak / bw
    want = "memory" if intensity < ridge else "compute"
    hint = (f"the ridge point is peak / bandwidth = {ridge:.3g} FLOP/byte: below it memory limits the kernel "
            "('memory'), above it compute does ('compute')")
    if got in ("memory-bound", "compute-bound"):
        hint = 'return exactly "memory" or "compute"'
    t.expect_equal(got, want, what=f"bound_by({intensity!r}, peak_gflops={peak!r}, bandwidth_gbs={bw!r})", hint=hint)


@public_test(LAB, "bound_by", points=1)
def vector_add_is_memory_bound(t: Tester):
    _expect_bound(t, 1 / 12, 50.0, 15.0)


@public_test(LAB, "bound_by", points=1)
def big_matmul_is_compute_bound(t: Tester):
    _expect_bound(t, 170.0, 50.0, 15.0)


@public_test(LAB, "bound_by", points=1)
def either_side_of_the_ridge(t: Tester):
    # ridges: 50 / 15 = 3.33 and 64 / 20 = 3.2 FLOP/byte
    for intensity, peak, bw in ((3.0, 50.0, 15.0), (3.5, 50.0, 15.0), (2.88, 64.0, 20.0), (3.52, 64.0, 20.0)):
        _expect_bound(t, intensity, peak, bw)


# ---------------------------------------------------------------------------------------------
# predict_seconds: the roofline as a prediction, then graded against a measurement
# ---------------------------------------------------------------------------------------------

PREDICTION_FACTOR = 2.0  # the measured time must lie within this factor of the prediction, either way


def _expect_prediction(t: Tester, kernel: str, n: int, peak: float, bw: float) -> None:
    got = t.call("predict_seconds", kernel, n, peak, bw)
    want = reference_seconds(kernel, n, peak, bw)
    cost = reference_cost(kernel, n)
    compute_s, memory_s = cost["flops"] / (peak * 1e9), cost["bytes"] / (bw * 1e9)
    hint = ("the time on the roofline: the FLOPs at peak take flops / (peak_gflops * 1e9) seconds, the bytes at "
            "full bandwidth take bytes / (bandwidth_gbs * 1e9); the kernel needs both, so the longer one wins")
    if _is_number(got):
        shorter = "FLOPs" if compute_s < memory_s else "bytes"
        for value, why in ((min(compute_s, memory_s), f"that is the time of the {shorter} alone, the shorter of the "
                                                      "two: a call cannot finish before both its arithmetic and its "
                                                      "traffic are done, so take the max of both times"),
                           (want * 1e9, "GFLOP/s and GB/s are 10^9 per second: multiply them by 1e9 first"),
                           (want * 1e3, "that looks like milliseconds: return seconds"),
                           (compute_s + memory_s, "the sum assumes no overlap; the roofline assumes perfect "
                                                  "overlap: take the max")):
            if math.isclose(got, value, rel_tol=1e-9) and not math.isclose(value, want, rel_tol=1e-9):
                hint = why
                break
    t.expect_close(got, want, rtol=1e-9,
                   what=f"predict_seconds({kernel!r}, {n}, peak_gflops={peak!r}, bandwidth_gbs={bw!r})", hint=hint)


@public_test(LAB, "predict_seconds", points=1)
def memory_bound_add_on_a_made_up_machine(t: Tester):
    _expect_prediction(t, "add", 2**24, 100.0, 20.0)  # 192 MiB of traffic at 20 GB/s: 10.1 ms


@public_test(LAB, "predict_seconds", points=1)
def compute_bound_matmul_on_a_made_up_machine(t: Tester):
    _expect_prediction(t, "matmul", 1024, 100.0, 20.0)  # 2.1 GFLOP at 100 GFLOP/s: 21.5 ms


@public_test(LAB, "predict_seconds", points=2)
def within_2x_of_the_time_measured_here(t: Tester):
    """The learner's prediction from this machine's one-core roof, against the time the kernels took.

    The roof and the times come from the lab's own ``prediction_cases`` (in the grader: the
    pristine lab's process, measured while the test runs); the add writes z, which on most x86
    CPUs also reads it first (write-allocate), so add runs somewhat slower than predicted."""
    cases = t.reference("prediction_cases")
    peak, bw, n = cases["peak_gflops"], cases["bandwidth_gbs"], cases["n"]
    for kernel in ("add", "dot"):
        predicted = t.call("predict_seconds", kernel, n, peak, bw)
        measured = cases["seconds"][kernel]
        t.expect(_is_number(predicted) and predicted > 0,
                 what=f"predict_seconds({kernel!r}, {n}, {peak:.1f}, {bw:.1f}) returned {predicted!r}",
                 hint="return the predicted time in seconds, a positive number")
        ratio = measured / predicted
        t.metrics[f"{kernel}: measured / predicted"] = round(ratio, 3)
        t.expect(1 / PREDICTION_FACTOR <= ratio <= PREDICTION_FACTOR,
                 what=f"{kernel} of {n:,} float32 elements on this machine's one-core roof (peak {peak:.1f} "
                      f"GFLOP/s, bandwidth {bw:.1f} GB/s): you predicted {predicted * 1e3:.3g} ms, it took "
                      f"{measured * 1e3:.3g} ms (median); a prediction within {PREDICTION_FACTOR:g}x is asked for",
                 hint="a memory-bound kernel's time is its bytes over the bandwidth; count the bytes as "
                      "kernel_cost does (each input read once, each output written once)")
