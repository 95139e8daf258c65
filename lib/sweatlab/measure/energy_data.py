"""Energy figures that ship with the course, each with where it comes from.

Two kinds, never mixed with what a learner's machine measures:

- ``HOROWITZ_45NM``: energy per operation on a 45 nm chip at 0.9 V, from M. Horowitz,
  "Computing's energy problem (and what we can do about it)", ISSCC 2014, as tabulated in
  secondary sources (e.g. PMC8934428, Table 3); the order of magnitude is the point: reading a
  word from DRAM costs hundreds of times a floating-point operation.
- ``SHIPPED`` and ``SHIPPED_H200``: measurements made once on a machine with an energy counter, for
  learners whose machine has none (a VM, a Mac without sudo): an NVIDIA H200 SXM board measured with
  NVML's total-energy counter on 2026-11-29, one run each, board only (not the host CPU, memory,
  fans): kernels (``SHIPPED``), and a small language model's decode and an MLP (``SHIPPED_H200``, labs
  05 and 06). One figure, one place: the labs read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

HOROWITZ_SOURCE = ("M. Horowitz, \"Computing's energy problem (and what we can do about it)\", ISSCC 2014: "
                   "45 nm, 0.9 V (values as tabulated in secondary sources, e.g. PMC8934428 Table 3)")

# picojoules per operation (a memory access: one 64-bit word)
HOROWITZ_45NM: dict[str, float] = {
    "int8 add": 0.03,
    "int32 add": 0.1,
    "int8 multiply": 0.2,
    "int32 multiply": 3.1,
    "fp16 add": 0.4,
    "fp32 add": 0.9,
    "fp16 multiply": 1.1,
    "fp32 multiply": 3.7,
    "8 KiB cache read (64 bit)": 10.0,
    "32 KiB cache read (64 bit)": 20.0,
    "1 MiB cache read (64 bit)": 100.0,
    "DRAM read (64 bit), low end": 1300.0,
    "DRAM read (64 bit), high end": 2600.0,
}

SHIPPED_PROVENANCE = ("NVIDIA H200 SXM (700 W limit), PyTorch 2.11 with CUDA 13, cloud VM, 2026-11-29: board energy from NVML's total-energy "
                      "counter over about 2 s after a warm-up, one run each; board only (not host CPU, memory, "
                      "fans or cooling)")


@dataclass(frozen=True)
class ShippedMeasurement:
    """One measured figure shipped as data: what ran, how fast, at what power, and its provenance."""

    device: str
    work: str
    bound: str  # "compute" or "memory"
    gflops: float
    watts: float
    provenance: str = SHIPPED_PROVENANCE
    kind: str = "shipped measurement"

    @property
    def gflop_per_joule(self) -> float:
        return self.gflops / self.watts


SHIPPED: tuple[ShippedMeasurement, ...] = (
    ShippedMeasurement("H200 GPU", "fp32 matmul, n = 8192 (TF32 off)", "compute", 51_000.0, 709.0),
    ShippedMeasurement("H200 GPU", "fp32 matrix-vector product, n = 8192", "memory", 1_920.0, 715.0),
    ShippedMeasurement("H200 GPU", "bf16 matmul, n = 8192", "compute", 651_000.0, 713.0),
    ShippedMeasurement("H200 GPU", "bf16 matrix-vector product, n = 8192", "memory", 3_490.0, 560.0),
    ShippedMeasurement("H200 GPU", "int8 matmul (torch._int_mm), n = 8192", "compute", 128_000.0, 386.0),
)


def horowitz_ratio(memory: str = "DRAM read (64 bit), low end", op: str = "fp32 add") -> float:
    """How many ``op`` one ``memory`` access costs, in Horowitz's table."""
    return HOROWITZ_45NM[memory] / HOROWITZ_45NM[op]


GPU_SERVER_PROVENANCE = (
    "measured once for this course on a cloud VM, 2026-11-29: one NVIDIA H200 SXM (700 W limit) with NVML's "
    "total-energy counter (board only: not host CPU, memory, fans or cooling), host 16 vCPUs of an Intel Xeon with "
    "AMX; one run each")
MLP_PARAMS = 4 * 4096 * 4096  # 4 x Linear(4096, 4096), as measured on the H200 server (67 M weights)


# ---------------------------------------------------------------------------------------------
# The same H200 server decoding a small language model and running an MLP (labs 05 and 06)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShippedRun:
    what: str
    batch: int
    per_second: float  # tokens or inferences per second
    joules_per_input: float | None
    watts: float | None
    kind: str = "shipped measurement"
    provenance: str = GPU_SERVER_PROVENANCE


SHIPPED_H200: dict[str, tuple[ShippedRun, ...]] = {
    # GPT-2 small (124 M) decode, bf16: a framework's generate, and the same weights as a CUDA graph
    "decode, framework generate": (
        ShippedRun("generate, bf16", 1, 15.5, 8.4, 130.0),
        ShippedRun("generate, bf16", 16, 275.0, 0.47, None),
        ShippedRun("generate, bf16", 256, 3_127.0, 0.045, None),
    ),
    "decode, CUDA graph": (
        ShippedRun("matrix-vector chain as a CUDA graph, bf16", 1, 3_695.0, 0.077, 283.0),
        ShippedRun("matrix-vector chain as a CUDA graph, bf16", 64, 174_731.0, 0.0019, 340.0),
    ),
    "decode, CUDA graph, fp32": (
        ShippedRun("matrix-vector chain as a CUDA graph, fp32", 1, 2_746.0, 0.14, 385.0),
        ShippedRun("matrix-vector chain as a CUDA graph, fp32", 64, 78_743.0, 0.0063, None),
    ),
    # 4 x Linear(4096, 4096), bf16, CUDA graph: inferences per second from TFLOP/s / (2 x 67.1 M)
    "MLP, CUDA graph": tuple(
        ShippedRun("MLP 4x4096 bf16, CUDA graph", b, tf * 1e12 / (2 * MLP_PARAMS), mj / 1e3, w)
        for b, tf, w, mj in ((1, 2.31, 423, 24.6), (4, 8.64, 407, 6.32), (16, 33.6, 436, 1.75),
                             (64, 145, 569, 0.527), (256, 415, 719, 0.233), (1024, 620, 724, 0.157),
                             (4096, 632, 726, 0.154))),
}
H200_IDLE_W = (81.0, 83.0)  # idle board power, same provenance
