"""Lab 00's stand-ins: the course's version of each function the lab asks for, run while yours is unwritten.

The notebook reaches them through ``lab.mine("fn")`` / ``lab.pick("fn", ...)``, which note the stand-in
once and let ``lab.label`` mark its numbers " (stand-in)" in text and plots. The lab's checks compute
their expected values with the same functions (``reference_cost``, ``reference_seconds``).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

from sweatlab.kit.standins import StandIn
from sweatlab.measure import flops, roofline


def reference_time_it(fn: Callable[[], Any], repeats: int = 7, warmup: int = 1,
                      clock: Callable[[], float] = time.perf_counter) -> float:
    """Median seconds of ``repeats`` calls of fn(), each timed with ``clock``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = clock()
        fn()
        samples.append(clock() - start)
    return statistics.median(samples)


def reference_matmul_flops(m: int, n: int, k: int) -> int:
    """FLOPs of an (m, k) @ (k, n) product, a multiply-add counted as 2 (sweatlab.measure.flops)."""
    return flops.matmul(m, n, k).flops


def reference_gflops(work: float, seconds: float) -> float:
    """GFLOP/s of ``work`` FLOPs done in ``seconds`` (decimal giga)."""
    return work / seconds / 1e9


def reference_cost(kernel: str, n: int, itemsize: int = 4) -> dict:
    """The course's counts: a multiply-add is 2 FLOPs; bytes = every input read once + every output written once."""
    work, elements = {
        "add": (n, 3 * n),                        # z = x + y: n adds; read x, y, write z
        "dot": (2 * n, 2 * n + 1),                # s = x . y: n multiply-adds; read x, y, write s
        "matvec": (2 * n * n, n * n + 2 * n),     # y = A x: n*n multiply-adds; read A, x, write y
        "matmul": (2 * n**3, 3 * n * n),          # C = A B: n^3 multiply-adds; read A, B, write C
    }[kernel]
    nbytes = elements * itemsize
    return {"flops": work, "bytes": nbytes, "intensity": work / nbytes}


def reference_bound_by(intensity: float, peak_gflops: float, bandwidth_gbs: float) -> str:
    """"memory" left of the ridge point (peak / bandwidth), "compute" from it on."""
    return "memory" if intensity < roofline.ridge_intensity(peak_gflops, bandwidth_gbs) else "compute"


def reference_seconds(kernel: str, n: int, peak: float, bw: float, itemsize: int = 4) -> float:
    """The roofline's time of one call: its FLOPs at the peak or its bytes at the bandwidth, whichever is longer."""
    cost = reference_cost(kernel, n, itemsize)
    return max(cost["flops"] / (peak * 1e9), cost["bytes"] / (bw * 1e9))


STAND_INS = [
    StandIn("time_it", 1, lambda: reference_time_it, "timing function (median of timed calls after a warm-up)"),
    StandIn("matmul_flops", 2, lambda: reference_matmul_flops, "FLOP count of a matrix product"),
    StandIn("gflops", 3, lambda: reference_gflops, "GFLOP/s function"),
    StandIn("kernel_cost", 4, lambda: reference_cost, "count of FLOPs, bytes and intensity"),
    StandIn("attainable_gflops", 5, lambda: roofline.attainable_gflops, "roofline bound"),
    StandIn("bound_by", 6, lambda: reference_bound_by, "memory-or-compute verdict"),
    StandIn("predict_seconds", 7, lambda: reference_seconds, "roofline time prediction"),
]
