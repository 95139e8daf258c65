"""Lab 03's stand-ins: the course's version of each function the lab asks for, run while yours is unwritten."""

from __future__ import annotations

from sweatlab.kit.standins import StandIn
from sweatlab.topics import quant


def _ref(name):
    return lambda: getattr(quant, name)


STAND_INS = [
    StandIn("affine_params", 1, _ref("affine_params"), "scale and zero point"),
    StandIn("quantize", 2, _ref("quantize"), "affine quantizer"),
    StandIn("dequantize", 2, _ref("dequantize"), "dequantizer"),
    StandIn("quantize_blocks", 3, _ref("quantize_blocks"), "symmetric block quantizer"),
    StandIn("sqnr_db", 4, _ref("sqnr_db"), "SQNR in dB"),
    StandIn("calibration_range", 5, _ref("calibration_range"), "calibration range"),
    StandIn("pack_int4", 6, _ref("pack_int4"), "int4 packing"),
    StandIn("unpack_int4", 6, _ref("unpack_int4"), "int4 unpacking"),
    StandIn("int8_matmul", 7, _ref("int8_matmul"), "exact int8 matrix product"),
    StandIn("max_safe_k", 8, _ref("max_safe_k"), "overflow bound"),
]
