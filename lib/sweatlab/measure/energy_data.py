"""Energy figures that ship with the course, each with where it comes from.

Two kinds, never mixed with what a learner's machine measures:

- ``HOROWITZ_45NM``: energy per operation on a 45 nm chip at 0.9 V, from M. Horowitz,
  "Computing's energy problem (and what we can do about it)", ISSCC 2014, as tabulated in
  secondary sources (e.g. PMC8934428, Table 3); the order of magnitude is the point: reading a
  word from DRAM costs hundreds of times a floating-point operation.
- ``SHIPPED``: measurements made once on a machine with an energy counter, for learners whose
  machine has none (a VM, a Mac without sudo): an NVIDIA H200 SXM board measured with NVML's
  total-energy counter on 2026-11-29, one run each, board only (not the host CPU, memory, fans).
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

SHIPPED_PROVENANCE = ("NVIDIA H200 SXM (700 W limit), cloud VM, 2026-11-29: board energy from NVML's total-energy "
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
)


def horowitz_ratio(memory: str = "DRAM read (64 bit), low end", op: str = "fp32 add") -> float:
    """How many ``op`` one ``memory`` access costs, in Horowitz's table."""
    return HOROWITZ_45NM[memory] / HOROWITZ_45NM[op]
