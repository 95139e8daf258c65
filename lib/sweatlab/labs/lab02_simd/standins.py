"""Lab 02's stand-ins: the course's version of each function the lab asks for, run while yours is unwritten.

The notebook reaches them through ``lab.mine("fn")`` / ``lab.pick("fn", ...)``, which note the stand-in
once and let ``lab.label`` mark its numbers " (stand-in)" in text and plots. The kernels are
:mod:`sweatlab.topics.gemm`'s (compiled on first use), the numpy switch :mod:`sweatlab.topics.isa`'s and
the Amdahl fit :mod:`sweatlab.topics.parallel`'s; the lab's checks compute the peak with the same formula.
"""

from __future__ import annotations

from sweatlab.kit.standins import StandIn
from sweatlab.topics import gemm, isa, parallel


def reference_peak(cores, ghz, vector_bits, fma_units, bits=32):
    """Peak GFLOP/s: cores x GHz x lanes (vector_bits // bits) x FMA units x 2 FLOPs per fused multiply-add."""
    return cores * ghz * (vector_bits // bits) * fma_units * 2


def reference_amdahl(threads, seconds):
    """(t1, f) of Amdahl's law fitted to measured times (parallel.fit_amdahl), as exercise 6 returns them."""
    fit = parallel.fit_amdahl(threads, seconds)
    return fit.t1_s, fit.serial_fraction


STAND_INS = [
    StandIn("peak_gflops", 1, lambda: reference_peak, "peak formula"),
    StandIn("scores_fast", 2, lambda: gemm.reference_scores_fast, "fastmath dot-form kernel (S = Q @ K.T)"),
    StandIn("npy_disable", 3, lambda: isa.numpy_disable, "NPY_DISABLE_CPU_FEATURES from numpy's own names"),
    StandIn("micro_6x4", 4, lambda: gemm.reference_micro_6x4, "6 x 4 micro-kernel"),
    StandIn("matmul_micro_parallel", 5, lambda: gemm.reference_matmul_micro_parallel,
            "micro-kernel matmul with prange over row blocks"),
    StandIn("amdahl_fit", 6, lambda: reference_amdahl, "least-squares Amdahl fit"),
]
