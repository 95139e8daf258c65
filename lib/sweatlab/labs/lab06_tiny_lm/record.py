"""Lab 06's record as the class report reads it: which numbers, how they are grouped and plotted."""

from __future__ import annotations

from typing import Any

from sweatlab.kit.report import LabReport, number, numbers

def extract(v: dict[str, Any]) -> dict[tuple[str, str], float]:
    out = {("tokens per second", k): x for k, x in numbers(
        v, "tokens_per_s", required=True, order=["fp32", "int8_dequant", "int8_kernel", "int4_dequant"]).items()}
    out.update({("tokens per joule", k): x for k, x in numbers(v, "tokens_per_joule", required=False).items()})
    kv = number(v, "kv_cache_speedup", required=False)
    if kv:
        out["KV-cache speed-up", "decode"] = kv
    return out


REPORT = LabReport("Lab 06: a tiny LM on a CPU", extract, ("tokens per second", "tokens per joule"))
