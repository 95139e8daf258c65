"""Lab 00's record as the class report reads it: which numbers, how they are grouped and plotted."""

from __future__ import annotations

from typing import Any

from sweatlab.kit.report import LabReport, number

def extract(v: dict[str, Any]) -> dict[tuple[str, str], float]:
    out = {("GFLOP/s fp32", "peak, all cores"): number(v, "peak_gflops_fp32", required=True),
           ("GB/s", "bandwidth, all cores"): number(v, "bandwidth_gbs", required=True)}
    one = number(v, "peak_gflops_fp32_1core", required=False)
    if one:
        out["GFLOP/s fp32", "peak, 1 core"] = one
    bw1 = number(v, "bandwidth_gbs_1core", required=False)
    if bw1:
        out["GB/s", "bandwidth, 1 core"] = bw1
    return out  # type: ignore[return-value]


REPORT = LabReport("Lab 00: peak compute and bandwidth (roofline)", extract, roofline=True)
