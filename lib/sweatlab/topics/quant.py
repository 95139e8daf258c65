"""Quantization by hand: the course's reference quantizers, SQNR, int4 packing, integer matmul, number formats.

    qrange(bits, signed) -> (qmin, qmax)                 the integers a b-bit code can hold
    affine_params(lo, hi, bits=8, signed=False) -> (scale, zero_point)
    quantize(x, scale, zero_point, bits=8, signed=False) -> int8 / uint8 array
    dequantize(q, scale, zero_point) -> float32 array
    quantize_blocks(w, bits, block) -> (q, scales)       symmetric, one scale per block of a 2-D matrix
    dequantize_blocks(q, scales, block) -> float32 array
    sqnr_db(x, x_hat) -> float                           signal-to-quantization-noise ratio in dB
    calibration_range(x, percentile=100.0) -> (lo, hi)   min/max (100) or a percentile range, 0 included
    pack_int4(q) -> uint8 array; unpack_int4(packed, n)  two signed 4-bit codes per byte, first in the low nibble
    int8_matmul(a, b) -> int32 array                     exact: every product summed in int32
    max_safe_k(a_max, b_max, acc_bits=32) -> int         longest dot product an accumulator holds without overflow
    number_formats() -> list[NumberFormat]               fp32, bf16, fp16, int8, int4: range, step, bytes
    NumberFormat.step_at(value)                          a float format's gap between neighbours at value
    int8_support(machine) -> Int8Support                 what this CPU computes natively in int8 (VNNI, AMX, dot product)
    GPU_SHIPPED                                          int8/bf16 figures measured once on a GPU server (with provenance)

These are the references of lab 03's exercises: the checks compare a learner's function with them,
and the lab's stand-ins (``sweatlab.labs.lab03_quantize.standins``) are these functions, run and
labelled " (stand-in)" while an exercise is not written yet.

Conventions (the ones torch and ONNX document):
    affine:     q = clip(round(x / scale) + zero_point, qmin, qmax),  x ~ (q - zero_point) * scale
    symmetric:  zero_point = 0 and the range is [-qmax, qmax], so that +a and -a stay opposites
    round:      to nearest, ties to even (numpy's rint), on x * (1 / scale) computed in float32, as
                torch's ``quantize_val`` and ONNX's QuantizeLinear specify.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sweatlab.measure import energy_data

__all__ = [
    "qrange",
    "affine_params",
    "quantize",
    "dequantize",
    "quantize_blocks",
    "dequantize_blocks",
    "sqnr_db",
    "calibration_range",
    "pack_int4",
    "unpack_int4",
    "int8_matmul",
    "max_safe_k",
    "NumberFormat",
    "number_formats",
    "Int8Support",
    "int8_support",
    "ShippedFigure",
    "GPU_SHIPPED",
    "GPU_PROVENANCE",
    "weight_bytes",
]


# ---------------------------------------------------------------------------------------------
# Affine (asymmetric) quantization of a tensor
# ---------------------------------------------------------------------------------------------

def qrange(bits: int, signed: bool) -> tuple[int, int]:
    """The smallest and largest code of a ``bits``-bit integer: (-2**(b-1), 2**(b-1) - 1) or (0, 2**b - 1)."""
    if not (isinstance(bits, (int, np.integer)) and 1 < bits <= 16):
        raise ValueError(f"bits must be an integer from 2 to 16, got {bits!r}")
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)


def affine_params(lo: float, hi: float, bits: int = 8, signed: bool = False) -> tuple[float, int]:
    """Scale and zero point that map the range [lo, hi], widened to include 0, onto the codes of ``bits``.

    scale = (hi - lo) / (qmax - qmin); zero_point = qmin - round(lo / scale), an integer in [qmin, qmax],
    so that the real value 0.0 has an exact code (padding and ReLU zeros stay exact). An empty range
    (lo = hi = 0) gets scale 1.0.
    """
    qmin, qmax = qrange(bits, signed)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi == lo:
        return 1.0, qmin
    scale = (hi - lo) / (qmax - qmin)
    zero_point = int(np.clip(qmin - round(lo / scale), qmin, qmax))
    return float(scale), zero_point


def _container(bits: int, signed: bool) -> np.dtype:
    if bits <= 8:
        return np.dtype(np.int8 if signed else np.uint8)
    return np.dtype(np.int16 if signed else np.uint16)


def quantize(x: Any, scale: float, zero_point: int, bits: int = 8, signed: bool = False) -> np.ndarray:
    """q = clip(round(x * (1/scale)) + zero_point, qmin, qmax) as int8 (signed) or uint8 (unsigned).

    The reciprocal and the product are float32, the rounding is to nearest with ties to even: the
    arithmetic of torch's ``quantize_val`` and of ONNX's QuantizeLinear.
    """
    qmin, qmax = qrange(bits, signed)
    x32 = np.asarray(x, dtype=np.float32)
    inv = np.float32(1.0) / np.float32(scale)
    q = np.rint(x32 * inv).astype(np.int64) + int(zero_point)
    return np.clip(q, qmin, qmax).astype(_container(bits, signed))


def dequantize(q: Any, scale: float, zero_point: int) -> np.ndarray:
    """x_hat = (q - zero_point) * scale, in float32 (the subtraction in a wide integer, never in uint8)."""
    return ((np.asarray(q).astype(np.int32) - int(zero_point)) * np.float32(scale)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Symmetric quantization of a weight matrix, one scale per block
# ---------------------------------------------------------------------------------------------

def _block_view(w: np.ndarray, block: tuple[int, int]) -> tuple[np.ndarray, int, int]:
    if w.ndim != 2:
        raise ValueError(f"quantize_blocks works on a 2-D weight matrix, got shape {w.shape}")
    br, bc = (int(b) for b in block)
    rows, cols = w.shape
    if br < 1 or bc < 1 or rows % br or cols % bc:
        raise ValueError(f"block {block} must divide the matrix shape {w.shape}")
    return w.reshape(rows // br, br, cols // bc, bc), br, bc


def quantize_blocks(w: Any, bits: int, block: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric codes of ``w`` (rows x cols) with one float32 scale per ``block`` = (block rows, block cols).

    block = w.shape: one scale for the tensor; (1, cols): one per row (output channel); (1, g): groups of
    g inputs. scale = max|w| in the block / qmax with qmax = 2**(bits-1) - 1; codes in [-qmax, qmax]
    (int8); a block of zeros gets scale 1.0. Returns (codes, scales of shape (rows/br, cols/bc)).
    """
    w32 = np.asarray(w, dtype=np.float32)
    view, br, bc = _block_view(w32, block)
    qmax = 2 ** (bits - 1) - 1
    amax = np.abs(view).max(axis=(1, 3))
    scales = np.where(amax > 0, amax / np.float32(qmax), np.float32(1.0)).astype(np.float32)
    inv = (np.float32(1.0) / scales)[:, None, :, None]
    q = np.clip(np.rint(view * inv), -qmax, qmax).astype(np.int8)
    return q.reshape(w32.shape), scales


def dequantize_blocks(q: Any, scales: Any, block: tuple[int, int]) -> np.ndarray:
    """w_hat = codes x the scale of their block, float32."""
    q = np.asarray(q)
    scales = np.asarray(scales, dtype=np.float32)
    view, br, bc = _block_view(q.astype(np.float32), block)
    return (view * scales[:, None, :, None]).reshape(q.shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Error, calibration
# ---------------------------------------------------------------------------------------------

def sqnr_db(x: Any, x_hat: Any) -> float:
    """10 log10(sum x^2 / sum (x - x_hat)^2): signal power over noise power, in decibels (inf when exact)."""
    x64 = np.asarray(x, dtype=np.float64)
    noise = float(np.sum((x64 - np.asarray(x_hat, dtype=np.float64)) ** 2))
    signal = float(np.sum(x64 ** 2))
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(signal / noise)


def calibration_range(x: Any, percentile: float = 100.0) -> tuple[float, float]:
    """(lo, hi) = the (100 - p)th and pth percentiles of x (p = 100: min and max), widened to include 0."""
    x = np.asarray(x, dtype=np.float64).ravel()
    lo, hi = np.percentile(x, [100.0 - percentile, percentile])
    return min(float(lo), 0.0), max(float(hi), 0.0)


# ---------------------------------------------------------------------------------------------
# int4: two codes per byte
# ---------------------------------------------------------------------------------------------

def pack_int4(q: Any) -> np.ndarray:
    """Signed 4-bit codes (-8..7) packed two per byte: element 2i in the low nibble, 2i+1 in the high one.

    This is ONNX's INT4 layout ("the first element is stored in the 4 least significant bits"). An odd
    count is padded with a 0 in the last high nibble. Input: any shape (flattened); output: uint8.
    """
    flat = np.asarray(q).astype(np.int16).ravel()
    if flat.size and (flat.min() < -8 or flat.max() > 7):
        raise ValueError("int4 codes must lie in [-8, 7]")
    if flat.size % 2:
        flat = np.append(flat, 0)
    nibbles = (flat & 0xF).astype(np.uint8)
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8)


def unpack_int4(packed: Any, n: int) -> np.ndarray:
    """The first ``n`` signed 4-bit codes of ``packed`` (low nibble first), sign-extended to int8."""
    p = np.asarray(packed, dtype=np.uint8).ravel()
    out = np.empty(2 * p.size, dtype=np.int8)
    out[0::2] = (p & 0xF).astype(np.int8)
    out[1::2] = (p >> 4).astype(np.int8)
    out[out > 7] -= 16
    return out[: int(n)]


# ---------------------------------------------------------------------------------------------
# Integer matrix product
# ---------------------------------------------------------------------------------------------

def int8_matmul(a: Any, b: Any) -> np.ndarray:
    """A @ B for 8-bit integer matrices (int8 or uint8), every product and sum exact in int32."""
    return np.asarray(a).astype(np.int32) @ np.asarray(b).astype(np.int32)


def max_safe_k(a_max: int, b_max: int, acc_bits: int = 32) -> int:
    """Longest dot product of terms |a| <= a_max, |b| <= b_max that a signed acc_bits-bit sum cannot overflow."""
    return (2 ** (acc_bits - 1) - 1) // (int(a_max) * int(b_max))


# ---------------------------------------------------------------------------------------------
# Number formats
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NumberFormat:
    """One number format: how many bits, the largest value, the step next to 1.0 (floats) and the bytes."""

    name: str
    bits: int
    kind: str  # "float" or "integer"
    largest: float
    smallest_normal: float | None  # floats: the smallest normal number; integers: None
    step_at_one: float  # floats: eps, the gap after 1.0; integers: 1 (one code)
    levels: int | None  # integers: how many codes; floats: None
    note: str = ""

    @property
    def bytes(self) -> float:
        return self.bits / 8

    @property
    def decimal_digits(self) -> float | None:
        """About how many significant decimal digits a float keeps: -log10(eps / 2)."""
        return -math.log10(self.step_at_one / 2) if self.kind == "float" else None

    def step_at(self, value: float) -> float:
        """The gap between neighbouring numbers of this format at ``value`` (a normal number of a float
        format): eps x 2**floor(log2 |value|), e.g. bf16 at 1000 -> 4; an integer code's step is 1."""
        if self.kind != "float":
            return 1.0
        value = abs(float(value))
        if not (self.smallest_normal <= value <= self.largest):
            raise ValueError(f"{value!r} is not a normal {self.name} number (from {self.smallest_normal:g} "
                             f"to {self.largest:g})")
        return self.step_at_one * 2.0 ** math.floor(math.log2(value))


def number_formats() -> list[NumberFormat]:
    """fp32, bf16, fp16 (from torch.finfo) and int8, int4 (from their code ranges)."""
    import torch

    out = []
    for name, dtype, note in (("fp32", torch.float32, "IEEE 754 single: 8 exponent bits, 23 fraction bits"),
                              ("bf16", torch.bfloat16, "fp32's 8 exponent bits, 7 fraction bits: fp32's range"),
                              ("fp16", torch.float16, "IEEE 754 half: 5 exponent bits, 10 fraction bits")):
        fi = torch.finfo(dtype)
        out.append(NumberFormat(name, fi.bits, "float", float(fi.max), float(fi.tiny), float(fi.eps), None, note))
    for bits in (8, 4):
        lo, hi = qrange(bits, signed=True)
        out.append(NumberFormat(f"int{bits}", bits, "integer", float(hi), None, 1.0, hi - lo + 1,
                                f"codes {lo}..{hi}, times a scale the format does not store"))
    return out


# ---------------------------------------------------------------------------------------------
# What this CPU computes natively
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Int8Support:
    """What a CPU offers for int8 (and bf16/fp16) arithmetic, from its ISA flags; every claim from a flag."""

    arch: str
    vnni: bool  # x86 VNNI: AVX512-VNNI or AVX-VNNI (VPDPBUSD)
    amx_int8: bool
    arm_dotprod: bool  # Arm SDOT/UDOT
    arm_i8mm: bool  # Arm SMMLA/UMMLA
    avx2: bool
    avx512: bool  # AVX-512 foundation (oneDNN can then run int8 on AVX-512 without VNNI)
    bf16: bool  # native bf16 arithmetic (AVX512-BF16, AMX-BF16 or Arm BF16)
    fp16: bool  # native fp16 arithmetic (AVX512-FP16 or Arm FP16)
    lines: tuple[str, ...] = field(default_factory=tuple)  # what the CPU does with int8, in words

    @property
    def x86(self) -> bool:
        return self.arch.lower() in ("x86_64", "amd64", "i686", "x86")

    @property
    def int8_dot(self) -> bool:
        """An instruction that multiplies 8-bit integers and adds groups of four into int32 in one step."""
        return self.vnni or self.amx_int8 or self.arm_dotprod or self.arm_i8mm

    @property
    def kernel(self) -> str:
        """The best int8 instruction this CPU has, in a few words."""
        if self.amx_int8:
            return "AMX-INT8 tiles (and VNNI)"
        if self.vnni:
            return "VNNI (VPDPBUSD: u8 x s8, 4 products into int32 per lane)"
        if self.arm_i8mm:
            return "Arm I8MM (SMMLA) and dot product (SDOT)"
        if self.arm_dotprod:
            return "Arm dot product (SDOT/UDOT)"
        if self.x86 and self.avx2:
            return "AVX2 only (VPMADDUBSW to int16 with saturation, then VPMADDWD to int32)"
        return "no int8 dot-product instruction known"

    @property
    def speed_aim(self) -> float:
        """The lab's aim for ONNX Runtime int8 over fp32 at a large batch: 3x with VNNI, 1.5x elsewhere."""
        return 3.0 if (self.vnni or self.amx_int8) else 1.5


def int8_support(machine: Any) -> Int8Support:
    """Read a :class:`sweatlab.measure.hardware.MachineInfo` (or anything with ``.isa`` and ``.arch``)."""
    isa = dict(getattr(machine, "isa", {}) or {})
    arch = str(getattr(machine, "arch", "") or "unknown")
    on = lambda *names: any(bool(isa.get(n)) for n in names)  # noqa: E731
    arm = arch.lower().startswith(("arm", "aarch"))
    s = dict(arch=arch, vnni=not arm and on("avx512_vnni", "avx_vnni"), amx_int8=not arm and on("amx_int8"),
             arm_dotprod=arm and on("dotprod"), arm_i8mm=arm and on("i8mm"), avx2=not arm and on("avx2"),
             avx512=not arm and on("avx512f"),
             bf16=on("avx512_bf16", "amx_bf16") if not arm else on("bf16"),
             fp16=on("avx512_fp16") if not arm else on("fp16"))
    lines = []
    if s["amx_int8"]:
        lines.append("AMX-INT8: tile instructions (TDPBUSD) multiply 16x64 u8/s8 tiles into int32 accumulators; "
                     "oneDNN uses them for int8 matmuls")
    if s["vnni"]:
        lines.append("VNNI: one instruction (VPDPBUSD) multiplies unsigned 8-bit by signed 8-bit values and adds "
                     "each group of four products into an int32 accumulator")
    elif not arm and s["avx2"]:
        lines.append("no VNNI: an int8 dot product takes three instructions (VPMADDUBSW multiplies u8 by s8 and adds "
                     "pairs into int16, saturating; VPMADDWD widens to int32; VPADDD accumulates), so int8 gains less, "
                     "and libraries may use 7-bit weights (reduce_range) to keep the int16 pairs from saturating")
    if s["arm_i8mm"]:
        lines.append("Arm I8MM: SMMLA multiplies 2x8 by 8x2 int8 blocks into int32")
    if s["arm_dotprod"]:
        lines.append("Arm dot product: SDOT/UDOT add each group of four int8 products into an int32 lane")
    elif arm:
        lines.append("no Arm dot-product extension: int8 is multiplied and widened step by step")
    if not (s["vnni"] or s["amx_int8"] or s["arm_dotprod"] or s["arm_i8mm"] or s["avx2"]):
        lines.append("no int8 dot-product instruction this course knows of: int8 speed-ups will be small or absent")
    lines.append("bf16: native (" + ("AMX-BF16/AVX512-BF16" if not arm else "Arm BF16") + ")" if s["bf16"] else
                 "bf16: no native arithmetic here; libraries convert to fp32 and back")
    lines.append("fp16: native arithmetic" if s["fp16"] else
                 "fp16: storage and conversion only (F16C on x86); arithmetic runs in fp32")
    lines.append("int4: no CPU multiplies 4-bit numbers directly; kernels unpack them to int8 (or float) in registers")
    return Int8Support(lines=tuple(lines), **s)


# ---------------------------------------------------------------------------------------------
# Bytes of a set of weights
# ---------------------------------------------------------------------------------------------

def weight_bytes(*arrays: Any) -> int:
    """Total bytes of the arrays as stored (numpy nbytes; torch tensors via numel x element size)."""
    total = 0
    for a in arrays:
        if hasattr(a, "nbytes") and not hasattr(a, "element_size"):
            total += int(a.nbytes)
        elif hasattr(a, "element_size"):
            total += int(a.numel() * a.element_size())
        else:
            total += int(np.asarray(a).nbytes)
    return total


# ---------------------------------------------------------------------------------------------
# Measured once on a GPU server (shipped, with provenance)
# ---------------------------------------------------------------------------------------------

GPU_PROVENANCE = energy_data.SHIPPED_PROVENANCE


@dataclass(frozen=True)
class ShippedFigure:
    """One figure measured on the GPU server, shipped as data; never mistaken for the learner's machine."""

    work: str
    rate: float
    unit: str
    watts: float
    note: str = ""
    provenance: str = GPU_PROVENANCE
    kind: str = "shipped measurement"

    @property
    def per_joule(self) -> float:
        return self.rate / self.watts


def _gpu_shipped() -> tuple[ShippedFigure, ...]:
    """Lab 03's view of the H200 figures that ship in :mod:`sweatlab.measure.energy_data` (one place for each)."""
    kernel = {m.work: m for m in energy_data.SHIPPED}
    bf16_mm, int8_mm = kernel["bf16 matmul, n = 8192"], kernel["int8 matmul (torch._int_mm), n = 8192"]
    gemv32, gemv16 = kernel["fp32 matrix-vector product, n = 8192"], kernel["bf16 matrix-vector product, n = 8192"]
    dec32 = energy_data.SHIPPED_H200["decode, CUDA graph, fp32"][0]
    dec16 = energy_data.SHIPPED_H200["decode, CUDA graph"][0]
    return (
        ShippedFigure("bf16 matmul, n = 8192", bf16_mm.gflops / 1e3, "TFLOP/s", bf16_mm.watts,
                      "tensor cores, the tuned kernel"),
        ShippedFigure("int8 matmul (torch._int_mm), n = 8192", int8_mm.gflops / 1e3, "TOPS", int8_mm.watts,
                      "a generic int8 path, far below the datasheet's int8 rate"),
        ShippedFigure("fp32 matrix-vector product, n = 8192", gemv32.gflops / 1e3, "TFLOP/s", gemv32.watts,
                      "streams about 3.8 TB/s of fp32 weights: memory-bound at full board power"),
        ShippedFigure("bf16 matrix-vector product, n = 8192", gemv16.gflops / 1e3, "TFLOP/s", gemv16.watts,
                      "half the bytes per weight"),
        ShippedFigure("decode, GPT-2-small-sized chain of matrix-vector products, fp32, batch 1", dec32.per_second,
                      "tokens/s", dec32.watts, f"{dec32.joules_per_input:g} J per token"),
        ShippedFigure("decode, same chain, bf16, batch 1", dec16.per_second, "tokens/s", dec16.watts,
                      f"{dec16.joules_per_input:g} J per token"),
    )


GPU_SHIPPED: tuple[ShippedFigure, ...] = _gpu_shipped()
