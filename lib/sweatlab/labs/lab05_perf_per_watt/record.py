"""Lab 05's record as the class report reads it: which numbers, how they are grouped and plotted."""

from __future__ import annotations

from typing import Any

from sweatlab.kit.report import LabReport, RecordError, number

def extract(v: dict[str, Any]) -> dict[tuple[str, str], float]:
    measured = v.get("measured")
    if not isinstance(measured, list) or not measured:
        raise RecordError("values['measured'] is missing or empty: it should list the workloads measured")
    out: dict[tuple[str, str], float] = {}
    for i, row in enumerate(measured):
        if not isinstance(row, dict) or not isinstance(row.get("workload"), str):
            raise RecordError(f"values['measured'][{i}] has no 'workload' name")
        name = row["workload"] + ("" if row.get("device") in (None, "this CPU") else f" ({row['device']})")
        out["inferences per second", name] = number(row, "throughput", required=True,
                                                     where=f"values['measured'][{i}]['throughput']")  # type: ignore[assignment]
        j = number(row, "joules", required=False, where=f"values['measured'][{i}]['joules']")
        if j:
            out["inferences per joule", name] = 1.0 / j
    return out


REPORT = LabReport("Lab 05: performance per watt", extract,
                                ("inferences per joule", "inferences per second"))
