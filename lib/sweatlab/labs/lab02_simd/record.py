"""Lab 02's record as the class report reads it: which numbers, how they are grouped and plotted."""

from __future__ import annotations

from typing import Any

from sweatlab.kit.report import LabReport, is_num, numbers

RUNGS_02 = ["numba_naive", "numba_fastmath", "numba_microkernel", "numba_microkernel_parallel", "blas_fp32",
            "torch_fp32", "torch_bf16"]


def extract(v: dict[str, Any]) -> dict[tuple[str, str], float]:
    out = {("GFLOP/s", k): x for k, x in numbers(v, "gflops", required=True, order=RUNGS_02).items()}
    # the lab records {"fp32_1_core", "fp32_all_cores", "bf16_all_cores"}; the ladder's ceiling is fp32 on all cores
    hw = v.get("hardware_peak_gflops")
    hw = hw.get("fp32_all_cores") if isinstance(hw, dict) else hw
    if is_num(hw) and hw > 0:
        out["GFLOP/s", "hardware peak"] = float(hw)
    # {switch: {operation: speed-up}}: one entry per switch and operation
    for switch, ops in (v.get("isa_speedups") or {}).items() if isinstance(v.get("isa_speedups"), dict) else ():
        pairs = ops.items() if isinstance(ops, dict) else [("", ops)]
        for op, x in pairs:
            if is_num(x) and x > 0:
                out["ISA speed-up", f"{switch}: {op}" if op else str(switch)] = float(x)
    return out


REPORT = LabReport("Lab 02: SIMD and threads", extract, ("GFLOP/s",), ladder=True)
