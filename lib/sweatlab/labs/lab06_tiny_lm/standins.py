"""Lab 06's stand-ins: the course's answer to each exercise (``reference.py``), run while yours is unwritten."""

from __future__ import annotations

from sweatlab.kit.standins import StandIn
from sweatlab.labs.lab06_tiny_lm import reference


def _ref(name):
    return lambda: getattr(reference, name)


STAND_INS = [
    StandIn("sample_next", 1, _ref("sample_next"), "temperature sampling"),
    StandIn("attend_one", 2, _ref("attend_one"), "attention over a KV cache"),
    StandIn("quantize_int8_rows", 3, _ref("quantize_int8_rows"), "per-channel int8 quantizer"),
    StandIn("dequantize_int8_rows", 3, _ref("dequantize_int8_rows"), "int8 dequantizer"),
    StandIn("quantize_int4_groups", 4, _ref("quantize_int4_groups"), "group-wise int4 quantizer"),
    StandIn("dequantize_int4_groups", 4, _ref("dequantize_int4_groups"), "int4 dequantizer"),
    StandIn("perplexity", 5, _ref("perplexity"), "perplexity"),
    StandIn("tp_seconds_per_token", 6, _ref("tp_seconds_per_token"), "tensor-parallel cost model"),
]
