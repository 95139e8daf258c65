"""Lab 04's record as the class report reads it: which numbers, how they are grouped and plotted."""

from __future__ import annotations

from typing import Any

from sweatlab.kit.report import LabReport, RecordError, number

def extract(v: dict[str, Any]) -> dict[tuple[str, str], float]:
    ee = v.get("early_exit")
    if not isinstance(ee, dict):
        raise RecordError("values['early_exit'] is missing or not a dict")
    out = {("early exit", "FLOPs saved (%)"): number(ee, "flops_saved_pct", required=True, positive=False,
                                                      where="values['early_exit']['flops_saved_pct']")}
    acc = number(ee, "accuracy_change_pts", required=False, positive=False,
                  where="values['early_exit']['accuracy_change_pts']")
    if acc is not None:
        out["early exit", "accuracy change (points)"] = acc
    return out  # type: ignore[return-value]


REPORT = LabReport("Lab 04: doing less work", extract, log=False)
