"""Lab 03's record as the class report reads it: which numbers, how they are grouped and plotted."""

from __future__ import annotations

from typing import Any

from sweatlab.kit.report import LabReport, RecordError, number

def extract(v: dict[str, Any]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    rows = v.get("rows")
    if rows is not None:
        if not isinstance(rows, dict):
            raise RecordError(f"values['rows'] is a {type(rows).__name__}, not a dict of variants")
        lat = {}
        for name, row in rows.items():
            if not isinstance(row, dict):
                raise RecordError(f"values['rows'][{name!r}] is not a dict")
            x = number(row, "latency_ms_big", required=False, where=f"values['rows'][{name!r}]['latency_ms_big']")
            if x:
                lat[name] = x
        base = next((b for b in ("ORT fp32", "torch fp32") if b in lat), None)
        if base:
            for name, x in lat.items():
                if name != base:
                    out["speed-up over " + base, name] = lat[base] / x
    for key, label in (("ort_int8_speedup_big", "ORT int8 dynamic"), ("ort_int8_static_speedup_big", "ORT int8 static")):
        x = number(v, key, required=False)
        if x:
            out["int8 speed-up (paired timing)", label] = x
    if not out:
        raise RecordError("no speed-up in it: values['ort_int8_speedup_big'] and values['rows'] latencies are missing")
    return out


REPORT = LabReport("Lab 03: quantization speed-ups", extract,
                           ("speed-up over ORT fp32", "speed-up over torch fp32", "int8 speed-up (paired timing)"))
