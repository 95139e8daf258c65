"""Public checks of lab 03_quantize: "How few bits does intelligence need?"

Exercises (the name the notebook's `check(...)` cell uses, and the learner's functions):

    affine_params      affine_params(lo, hi, bits, signed) -> (scale, zero_point)
    quantize           quantize(x, scale, zero_point, bits, signed) -> int8/uint8 codes, and
                       dequantize(q, scale, zero_point) -> float32; the codes are compared with
                       torch.quantize_per_tensor bit for bit
    quantize_blocks    quantize_blocks(w, bits, block) -> (int8 codes, float32 scales), symmetric
    sqnr_db            sqnr_db(x, x_hat) -> 10 log10(signal power / noise power)
    calibration_range  calibration_range(x, percentile) -> (lo, hi), 0 included
    int4               pack_int4(q) -> uint8 bytes (first code in the low nibble), unpack_int4(packed, n) -> int8
    int8_matmul        int8_matmul(a, b) -> the exact int32 product
    max_safe_k         max_safe_k(a_max, b_max, acc_bits) -> longest dot product without overflow

The references are in :mod:`sweatlab.topics.quant`. Every input is small (the grader calls these in a child
process with limits); none of the exercises is a speed exercise (the lab measures speed with the
libraries' kernels, not with the learner's numpy).

Bit-for-bit agreement with torch: the inputs of the torch tests keep x / scale away from the
rounding boundaries (k + 0.5), except exact ties with an *even* zero point. torch's x86 code
(fbgemm) adds the zero point before rounding while the formula it documents (and its portable
code, and ONNX) rounds first; the two agree everywhere except at an exact tie with an odd zero
point, so a correct answer passes on every platform.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from sweatlab.topics import quant
from sweatlab.kit.checks import Tester, public_test

LAB = "03_quantize"


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _pair(t: Tester, got, what: str) -> tuple:
    t.expect(isinstance(got, list) and len(got) == 2, what=f"{what} returned {got!r}",
             hint="return a tuple of two values, e.g. `return scale, zero_point`")
    return tuple(got)


# ---------------------------------------------------------------------------------------------
# affine_params
# ---------------------------------------------------------------------------------------------

def _affine_hint(got: tuple, lo: float, hi: float, bits: int, signed: bool) -> str:
    qmin, qmax = quant.qrange(bits, signed)
    lo0, hi0 = min(lo, 0.0), max(hi, 0.0)
    scale, zp = got
    hint = ("scale = (hi - lo) / (qmax - qmin) after widening [lo, hi] to include 0; zero_point = qmin - round(lo / scale), "
            "clipped to [qmin, qmax]: the code that lo maps to is qmin")
    if not _is_number(scale) or not _is_number(zp):
        return "return two numbers: the scale (a float) and the zero point (an int)"
    if hi0 > lo0 and math.isclose(scale, (hi0 - lo0) / 2 ** bits, rel_tol=1e-9):
        return f"there are 2**bits codes but 2**bits - 1 steps between qmin and qmax: divide by qmax - qmin = {qmax - qmin}"
    if hi > lo and math.isclose(scale, (hi - lo) / (qmax - qmin), rel_tol=1e-9) and (lo > 0 or hi < 0):
        return "widen the range to include 0 first (lo = min(lo, 0), hi = max(hi, 0)): 0.0 must have an exact code"
    want_scale = (hi0 - lo0) / (qmax - qmin) if hi0 > lo0 else 1.0
    want_zp = quant.affine_params(lo, hi, bits, signed)[1]
    if math.isclose(scale, want_scale, rel_tol=1e-6) and _is_number(zp) and zp != want_zp:
        if zp in (qmin + round(lo0 / want_scale), int(np.clip(qmin + round(lo0 / want_scale), qmin, qmax))):
            return "the zero point has the wrong sign: lo must map to qmin, so qmin = lo / scale + zero_point"
        if not float(zp).is_integer():
            return "round the zero point to a whole code (an int): 0.0 is exact only if it maps to an integer"
        if signed and zp == round(-lo0 / want_scale):
            return "for signed codes the lowest code is qmin = -2**(bits-1), not 0: zero_point = qmin - round(lo / scale)"
    return hint


def _expect_affine(t: Tester, lo: float, hi: float, bits: int, signed: bool) -> None:
    call = f"affine_params({lo!r}, {hi!r}, bits={bits}, signed={signed})"
    got = _pair(t, t.call("affine_params", lo, hi, bits=bits, signed=signed), call)
    want = quant.affine_params(lo, hi, bits, signed)
    hint = _affine_hint(got, lo, hi, bits, signed)
    t.expect_close(got[0], want[0], rtol=1e-6, what=f"{call}: the scale", hint=hint)
    t.expect(_is_number(got[1]) and float(got[1]).is_integer() and got[1] == want[1],
             what=f"{call}: the zero point should be the integer {want[1]}, got {got[1]!r}", hint=hint)


@public_test(LAB, "affine_params", points=2)
def unsigned_8_bit_range_around_zero(t: Tester):
    _expect_affine(t, -1.0, 3.0, 8, False)
    _expect_affine(t, -0.37, 5.2, 8, False)


@public_test(LAB, "affine_params", points=1)
def signed_8_bit(t: Tester):
    _expect_affine(t, -2.0, 6.0, 8, True)
    _expect_affine(t, -5.5, 1.25, 8, True)


@public_test(LAB, "affine_params", points=1)
def a_range_without_zero_is_widened_to_include_it(t: Tester):
    _expect_affine(t, 0.5, 2.0, 8, False)   # ReLU outputs: lo becomes 0, zero point 0
    _expect_affine(t, -3.0, -1.0, 8, False)  # all negative: hi becomes 0, zero point 255


@public_test(LAB, "affine_params", points=1)
def four_bits_and_random_ranges(t: Tester):
    rng = t.rng()
    for _ in range(6):
        lo, hi = sorted(float(v) for v in rng.uniform(-10, 10, size=2))
        for bits, signed in ((4, False), (4, True), (8, False)):
            _expect_affine(t, round(lo, 3), round(hi, 3), bits, signed)


@public_test(LAB, "affine_params", points=1)
def an_empty_range_gets_scale_one(t: Tester):
    for signed in (False, True):
        call = f"affine_params(0.0, 0.0, bits=8, signed={signed})"
        got = _pair(t, t.call("affine_params", 0.0, 0.0, bits=8, signed=signed), call)
        want = quant.affine_params(0.0, 0.0, 8, signed)
        t.expect(_is_number(got[0]) and got[0] == want[0] and got[1] == want[1],
                 what=f"{call} should be {want}, got {got!r}",
                 hint="all values are 0: there is no range to divide, so return scale 1.0 and zero point qmin "
                      "(dividing by a zero range gives nan or a ZeroDivisionError)")


# ---------------------------------------------------------------------------------------------
# quantize / dequantize, and torch
# ---------------------------------------------------------------------------------------------

def _away_from_ties(t: Tester, n: int, scale: float, salt: int, span: int = 300) -> np.ndarray:
    """float32 values whose x / scale stays at least 0.05 away from k + 0.5 and from k (every method agrees)."""
    rng = t.rng(salt)
    k = rng.integers(-span, span, size=n)
    frac = rng.uniform(0.05, 0.45, size=n) + rng.integers(0, 2, size=n) * 0.5
    return ((k + frac) * scale).astype(np.float32)


def _torch_codes(x: np.ndarray, scale: float, zero_point: int, signed: bool) -> np.ndarray:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the pinned torch deprecates its quantized tensors (the lab says so)
        q = torch.quantize_per_tensor(torch.from_numpy(np.ascontiguousarray(x)), float(scale), int(zero_point),
                                      torch.qint8 if signed else torch.quint8)
        return q.int_repr().numpy()


def _quantize_hint(got, x: np.ndarray, scale: float, zp: int, bits: int, signed: bool) -> str:
    qmin, qmax = quant.qrange(bits, signed)
    v = x.astype(np.float32) * (np.float32(1) / np.float32(scale))
    hint = ("q = clip(round(x / scale) + zero_point, qmin, qmax), rounded to nearest with ties to even (np.rint), "
            "returned as int8 (signed) or uint8 (unsigned)")
    g = np.asarray(got)
    if g.shape != x.shape or not np.issubdtype(g.dtype, np.number):
        return hint
    g = g.astype(np.int64)
    if np.array_equal(g, np.clip(np.trunc(v).astype(np.int64) + zp, qmin, qmax)):
        return "that is truncation (astype(int) cuts toward zero): round to the nearest code with np.rint first"
    if np.array_equal(g, np.clip(np.floor(v + 0.5).astype(np.int64) + zp, qmin, qmax)):
        return ("ties go to the even code (np.rint, np.round), as torch and ONNX round; floor(v + 0.5) sends every "
                "tie upward")
    if np.array_equal(g, np.clip(np.rint(v).astype(np.int64) - zp, qmin, qmax)):
        return "the zero point is added to round(x / scale), not subtracted (dequantize subtracts it)"
    wrapped = (np.rint(v).astype(np.int64) + zp).astype(np.int8 if signed else np.uint8).astype(np.int64)
    if np.array_equal(g, wrapped):
        return "clip to [qmin, qmax] before converting to int8/uint8: the conversion wraps 130 around to -126"
    lo2, hi2 = (-128, 255)
    if signed and np.array_equal(g, np.clip(np.rint(v).astype(np.int64) + zp, lo2, hi2).astype(np.int8).astype(np.int64)):
        return "signed 8-bit codes stop at 127: clipping to 255 lets 128..255 wrap around to negative codes"
    return hint


def _expect_codes(t: Tester, x: np.ndarray, scale: float, zp: int, bits: int, signed: bool, want: np.ndarray,
                  what: str) -> None:
    got = t.call("quantize", x, scale, zp, bits=bits, signed=signed)
    hint = _quantize_hint(got, x, scale, zp, bits, signed)
    t.expect(isinstance(got, np.ndarray) and got.shape == x.shape,
             what=f"{what}: expected an array of shape {x.shape}, got {type(got).__name__} "
                  f"{getattr(got, 'shape', '')}", hint="return a numpy array with one code per input value")
    t.expect_equal(got.astype(np.int64), want.astype(np.int64), what=what, hint=hint)


@public_test(LAB, "quantize", points=2)
def matches_torch_quantize_per_tensor_bit_for_bit_quint8(t: Tester):
    scale, zp = 0.0173, 3
    x = np.concatenate([_away_from_ties(t, 300, scale, 0, span=140), np.float32([-9.0, 9.0, 0.0])])
    _expect_codes(t, x, scale, zp, 8, False, _torch_codes(x, scale, zp, False),
                  what=f"quantize(x, {scale}, {zp}) (unsigned 8-bit) against torch.quantize_per_tensor(..., torch.quint8)")


@public_test(LAB, "quantize", points=2)
def matches_torch_quantize_per_tensor_bit_for_bit_qint8(t: Tester):
    scale, zp = 0.05, -5
    x = _away_from_ties(t, 300, scale, 1, span=200)  # beyond [-128, 127] on both sides: saturation
    _expect_codes(t, x, scale, zp, 8, True, _torch_codes(x, scale, zp, True),
                  what=f"quantize(x, {scale}, {zp}, signed=True) against torch.quantize_per_tensor(..., torch.qint8)")


@public_test(LAB, "quantize", points=1)
def ties_round_to_even_as_torch_does(t: Tester):
    scale = 0.25
    x = (np.arange(-12, 12) * scale + scale / 2).astype(np.float32)  # x / scale = k + 0.5 exactly
    for zp, signed in ((0, True), (4, False)):
        _expect_codes(t, x, scale, zp, 8, signed, _torch_codes(x, scale, zp, signed),
                      what=f"quantize(x, {scale}, {zp}, signed={signed}) where x / scale is exactly k + 0.5")


@public_test(LAB, "quantize", points=1)
def int8_codes_for_signed_and_uint8_for_unsigned(t: Tester):
    x = np.float32([-1.0, 0.0, 0.5, 2.0])
    for signed, want in ((True, "int8"), (False, "uint8")):
        got = t.call("quantize", x, 0.1, 0 if signed else 10, bits=8, signed=signed)
        t.expect_equal(str(getattr(got, "dtype", type(got).__name__)), want,
                       what=f"the dtype of quantize(..., signed={signed})",
                       hint="codes are bytes: .astype(np.int8) for signed, .astype(np.uint8) for unsigned, after clipping")


@public_test(LAB, "quantize", points=1)
def four_bit_codes(t: Tester):
    scale = 0.1
    x = _away_from_ties(t, 60, scale, 2, span=12)
    for zp, signed in ((0, True), (7, False)):
        _expect_codes(t, x, scale, zp, 4, signed, quant.quantize(x, scale, zp, 4, signed),
                      what=f"quantize(x, {scale}, {zp}, bits=4, signed={signed})")


@public_test(LAB, "quantize", points=2)
def dequantize_subtracts_the_zero_point_without_wrapping(t: Tester):
    q = np.array([0, 1, 2, 3, 200, 255], dtype=np.uint8)
    got = t.call("dequantize", q, 0.1, 3)
    want = (q.astype(np.float64) - 3) * np.float64(np.float32(0.1))
    hint = "x_hat = (q - zero_point) * scale"
    if isinstance(got, np.ndarray) and got.shape == q.shape and got.max() > 25:
        hint = ("q is uint8, so q - 3 wraps around for q < 3 (0 - 3 = 253): convert q to a wider signed type "
                "(q.astype(np.int32)) before subtracting")
    t.expect_close(got, want, rtol=1e-6, atol=1e-7, what="dequantize(uint8 [0, 1, 2, 3, 200, 255], 0.1, 3)", hint=hint)
    t.expect_equal(str(getattr(got, "dtype", "")), "float32", what="the dtype dequantize returns",
                   hint="return float32 values: .astype(np.float32)")


@public_test(LAB, "quantize", points=1)
def round_trip_error_is_at_most_half_a_step(t: Tester):
    x = t.rng(3).uniform(-2, 6, size=200).astype(np.float32)
    scale, zp = quant.affine_params(-2.0, 6.0, 8, False)
    q = t.call("quantize", x, scale, zp, bits=8, signed=False)
    back = t.call("dequantize", q, scale, zp)
    err = float(np.max(np.abs(np.asarray(back, dtype=np.float64) - x))) if isinstance(back, np.ndarray) else math.inf
    t.expect(err <= scale / 2 * (1 + 1e-4), what=f"dequantize(quantize(x)) for x in [-2, 6): largest error {err:.4g}, "
             f"expected at most half a step, {scale / 2:.4g}", hint="round to the nearest code, then (q - z) * s")


# ---------------------------------------------------------------------------------------------
# quantize_blocks
# ---------------------------------------------------------------------------------------------

BLOCK_HINT = ("reshape w (rows, cols) to (rows // br, br, cols // bc, bc): axes 1 and 3 then run inside one block, so "
              "np.abs(view).max(axis=(1, 3)) is one maximum per block; scale = max / qmax with qmax = 2**(bits-1) - 1")


def _blocks_hint(got, w: np.ndarray, bits: int, block: tuple) -> str:
    if not (isinstance(got, list) and len(got) == 2):
        return "return a tuple (codes, scales)"
    q, s = (np.asarray(v) for v in got)
    rows, cols = w.shape
    br, bc = block
    amax = np.abs(w.reshape(rows // br, br, cols // bc, bc)).max(axis=(1, 3))
    for wrong, text in ((2 ** bits - 1, "2**bits - 1 is the unsigned range: symmetric codes stop at qmax = 2**(bits-1) - 1"),
                        (2 ** (bits - 1), "qmax = 2**(bits-1) - 1 (127 for 8 bits): with 128 the largest weight becomes "
                                           "+128, which int8 cannot hold")):
        if s.shape == amax.shape and np.allclose(s, amax / wrong, rtol=1e-5):
            return text
    if s.shape != amax.shape:
        return f"one scale per block: shape (rows // br, cols // bc) = {amax.shape}; " + BLOCK_HINT
    wrong_view = np.abs(w.reshape(rows // br, cols // bc, br, bc)).max(axis=(2, 3))
    if np.allclose(s, wrong_view / (2 ** (bits - 1) - 1), rtol=1e-5):
        return "reshape(rows // br, cols // bc, br, bc) mixes rows into the blocks: " + BLOCK_HINT
    return BLOCK_HINT


def _expect_blocks(t: Tester, w: np.ndarray, bits: int, block: tuple, what: str) -> None:
    got = t.call("quantize_blocks", w, bits, block)
    want_q, want_s = quant.quantize_blocks(w, bits, block)
    hint = _blocks_hint(got, w, bits, block)
    t.expect(isinstance(got, list) and len(got) == 2, what=f"{what} returned {type(got).__name__}",
             hint="return a tuple (codes, scales)")
    q, s = got
    t.expect_close(s, want_s, rtol=1e-6, what=f"{what}: the scales", hint=hint)
    q = np.asarray(q)
    if q.shape == want_q.shape and np.issubdtype(q.dtype, np.integer):
        # w / scale computed in float64, float32, or as w * (1 / scale) can land on either side of a tie k + 0.5:
        # a code one away from the reference is accepted there, and only there
        rows, cols = w.shape
        br, bc = block
        v = (w.astype(np.float64).reshape(rows // br, br, cols // bc, bc)
             / want_s.astype(np.float64)[:, None, :, None]).reshape(w.shape)
        near_tie = np.abs(np.abs(v - np.floor(v)) - 0.5) < 1e-4
        off = q.astype(np.int64) - want_q.astype(np.int64)
        if np.all((off == 0) | (near_tie & (np.abs(off) == 1))):
            q = want_q
    t.expect_equal(q.astype(np.int64), want_q.astype(np.int64), what=f"{what}: the codes", hint=hint)


def _weights(t: Tester, shape: tuple, salt: int) -> np.ndarray:
    rng = t.rng(salt)
    return (rng.standard_normal(shape) * np.exp(rng.normal(0, 1, (shape[0], 1)))).astype(np.float32)


@public_test(LAB, "quantize_blocks", points=1)
def per_tensor(t: Tester):
    w = _weights(t, (6, 8), 0)
    _expect_blocks(t, w, 8, (6, 8), "quantize_blocks(w 6x8, 8, block=(6, 8)), one scale")


@public_test(LAB, "quantize_blocks", points=1)
def per_row(t: Tester):
    w = _weights(t, (6, 8), 1)
    _expect_blocks(t, w, 8, (1, 8), "quantize_blocks(w 6x8, 8, block=(1, 8)), one scale per row")


@public_test(LAB, "quantize_blocks", points=2)
def groups_along_each_row(t: Tester):
    w = _weights(t, (4, 12), 2)
    _expect_blocks(t, w, 8, (1, 4), "quantize_blocks(w 4x12, 8, block=(1, 4)), 3 groups per row")
    w = _weights(t, (3, 64), 3)
    _expect_blocks(t, w, 4, (1, 32), "quantize_blocks(w 3x64, 4, block=(1, 32))")


@public_test(LAB, "quantize_blocks", points=1)
def two_dimensional_blocks(t: Tester):
    w = _weights(t, (4, 8), 4)
    _expect_blocks(t, w, 8, (2, 4), "quantize_blocks(w 4x8, 8, block=(2, 4))")


@public_test(LAB, "quantize_blocks", points=1)
def the_largest_weight_maps_to_plus_qmax(t: Tester):
    for bits in (8, 4):
        w = np.float32([[0.5, -0.25, 1.0, 0.125], [-2.0, 0.5, 1.5, -0.75]])
        got = t.call("quantize_blocks", w, bits, (1, 4))
        t.expect(isinstance(got, list) and len(got) == 2 and isinstance(got[0], np.ndarray),
                 what=f"quantize_blocks(w, {bits}, (1, 4)) returned {type(got).__name__}",
                 hint="return a tuple (codes as a numpy array, scales)")
        qmax = 2 ** (bits - 1) - 1
        q = got[0].astype(np.int64)
        t.expect(q is not None and q.shape == w.shape and q[0, 2] == qmax and q[1, 0] == -qmax,
                 what=f"quantize_blocks(w, {bits}, (1, 4)): the largest |w| of each row should get the code +-{qmax}; "
                      f"got {None if q is None else q.tolist()}",
                 hint=_blocks_hint(got, w, bits, (1, 4)))
        t.expect_equal(str(getattr(got[0], "dtype", "")), "int8", what=f"the dtype of the codes ({bits} bits)",
                       hint="return the codes as np.int8 (int4 codes too: numpy has no 4-bit type; exercise 6 packs them)")


@public_test(LAB, "quantize_blocks", points=1)
def a_block_of_zeros_gets_scale_one(t: Tester):
    w = np.float32([[0, 0, 0, 0, 1, -2, 3, 0.5]])
    got = t.call("quantize_blocks", w, 8, (1, 4))
    t.expect(isinstance(got, list) and len(got) == 2, what="quantize_blocks returned something else than (codes, scales)")
    q, s = got
    t.expect_close(s, np.float32([[1.0, 3.0 / 127]]), rtol=1e-6, what="the scales of a row [0, 0, 0, 0 | 1, -2, 3, 0.5]",
                   hint="max|w| is 0 in the first block: dividing by a zero scale gives nan; use scale 1.0 there "
                        "(np.where(amax > 0, amax / qmax, 1.0))")
    t.expect_equal(np.asarray(q).astype(np.int64)[0, :4], np.zeros(4, dtype=np.int64),
                   what="the codes of the block of zeros", hint="zeros stay code 0")


# ---------------------------------------------------------------------------------------------
# sqnr_db
# ---------------------------------------------------------------------------------------------

def _sqnr_hint(got, x: np.ndarray, x_hat: np.ndarray) -> str:
    want = quant.sqnr_db(x, x_hat)
    if _is_number(got) and math.isfinite(want):
        if math.isclose(got, 2 * want, rel_tol=1e-6):
            return "20 log10 is for amplitude ratios; Σx² / Σ(x - x̂)² is already a power ratio: 10 log10"
        if math.isclose(got, -want, rel_tol=1e-6):
            return "signal over noise: Σx² in the numerator"
        if math.isclose(got, want / 2, rel_tol=1e-6):
            return "use the powers (sums of squares), not their square roots, with 10 log10"
    return "SQNR = 10 * log10(sum(x**2) / sum((x - x_hat)**2))"


@public_test(LAB, "sqnr_db", points=1)
def a_known_ratio(t: Tester):
    x, x_hat = np.float32([3.0, 4.0]), np.float32([3.0, 3.0])  # signal 25, noise 1
    got = t.call("sqnr_db", x, x_hat)
    t.expect_close(got, 10 * math.log10(25), rtol=1e-6, what="sqnr_db([3, 4], [3, 3]): signal power 25, noise 1",
                   hint=_sqnr_hint(got, x, x_hat))


@public_test(LAB, "sqnr_db", points=2)
def random_signals_and_noise(t: Tester):
    rng = t.rng()
    for noise in (0.1, 0.01, 0.3):
        x = rng.standard_normal(500).astype(np.float32)
        x_hat = (x + rng.standard_normal(500) * noise).astype(np.float32)
        got = t.call("sqnr_db", x, x_hat)
        t.expect_close(got, quant.sqnr_db(x, x_hat), rtol=1e-5, what=f"sqnr_db(x, x + noise of size {noise})",
                       hint=_sqnr_hint(got, x, x_hat))


@public_test(LAB, "sqnr_db", points=1)
def an_exact_copy_is_infinite(t: Tester):
    x = np.float32([1.0, -2.0, 0.5])
    got = t.call("sqnr_db", x, x.copy())
    t.expect(isinstance(got, float) and math.isinf(got) and got > 0,
             what=f"sqnr_db(x, x) should be math.inf (no noise at all), got {got!r}",
             hint="check for zero noise power before dividing and return math.inf")


# ---------------------------------------------------------------------------------------------
# calibration_range
# ---------------------------------------------------------------------------------------------

def _expect_range(t: Tester, x: np.ndarray, pct: float, what: str) -> None:
    got = _pair(t, t.call("calibration_range", x, pct), what)
    want = quant.calibration_range(x, pct)
    hint = "lo = the (100 - p)th percentile, hi = the pth (np.percentile), then lo = min(lo, 0) and hi = max(hi, 0)"
    if all(_is_number(v) for v in got):
        flat = np.asarray(x, dtype=np.float64).ravel()
        top = float(np.percentile(flat, pct))
        if math.isclose(got[0], min(top, 0.0), rel_tol=1e-9, abs_tol=1e-12) and not math.isclose(
                want[0], min(top, 0.0), rel_tol=1e-9, abs_tol=1e-12):
            hint = "the low end is the (100 - p)th percentile, not the pth"
        elif got[0] > 0 or got[1] < 0:
            hint = "widen the range to include 0 (min(lo, 0), max(hi, 0)): the zero point needs 0 inside it"
        elif math.isclose(abs(got[0]), abs(got[1])) and not math.isclose(abs(want[0]), abs(want[1])):
            hint = "this is an asymmetric range: lo and hi separately, not +-max|x|"
    t.expect_close(list(got), list(want), rtol=1e-6, atol=1e-9, what=what, hint=hint)


@public_test(LAB, "calibration_range", points=1)
def min_and_max_at_100(t: Tester):
    x = t.rng().standard_normal(1000).astype(np.float32) * 2 + 0.5
    _expect_range(t, x, 100.0, "calibration_range(x, 100.0)")


@public_test(LAB, "calibration_range", points=2)
def percentiles_clip_both_ends(t: Tester):
    x = t.rng(1).standard_normal(2000).astype(np.float32)
    x[:3] = [40.0, -25.0, 31.0]  # outliers
    for pct in (99.0, 99.9):
        _expect_range(t, x, pct, f"calibration_range(x with outliers, {pct})")


@public_test(LAB, "calibration_range", points=1)
def relu_outputs_start_at_zero(t: Tester):
    x = np.abs(t.rng(2).standard_normal((16, 50))).astype(np.float32) + 0.2  # all positive, 2-D
    _expect_range(t, x, 99.5, "calibration_range(positive 16x50 activations, 99.5)")


# ---------------------------------------------------------------------------------------------
# int4 packing
# ---------------------------------------------------------------------------------------------

def _expect_packed(t: Tester, q: list[int], what: str) -> None:
    arr = np.array(q, dtype=np.int8)
    got = t.call("pack_int4", arr)
    want = quant.pack_int4(arr)
    hint = "byte i = (q[2i] & 0xF) | ((q[2i+1] & 0xF) << 4): the first code in the low nibble"
    if isinstance(got, np.ndarray) and got.shape == want.shape:
        swapped = ((want >> 4) | (want << 4)).astype(np.uint8)
        if np.array_equal(got.astype(np.int64), swapped.astype(np.int64)):
            hint = "the nibbles are swapped: ONNX stores the FIRST code in the LOW 4 bits, the second in the high 4"
    elif isinstance(got, np.ndarray) and got.size == want.size - 1:
        hint = "an odd number of codes still needs its last byte: pad with a 0 code"
    t.expect_equal(got.astype(np.int64) if isinstance(got, np.ndarray) else got, want.astype(np.int64), what=what,
                   hint=hint)


@public_test(LAB, "int4", points=2)
def pack_puts_the_first_code_in_the_low_nibble(t: Tester):
    _expect_packed(t, [1, 2], "pack_int4([1, 2]) should be the byte 0x21 = 33")
    _expect_packed(t, [7, 0, 0, 5], "pack_int4([7, 0, 0, 5]) = [0x07, 0x50]")


@public_test(LAB, "int4", points=1)
def negative_codes_are_4_bit_twos_complement(t: Tester):
    _expect_packed(t, [-1, -8], "pack_int4([-1, -8]) should be 0x8F = 143 (-1 is 0xF, -8 is 0x8)")
    _expect_packed(t, [-3, 3, -7, 6], "pack_int4([-3, 3, -7, 6])")


@public_test(LAB, "int4", points=1)
def an_odd_count_is_padded(t: Tester):
    _expect_packed(t, [3, -2, 5], "pack_int4([3, -2, 5]) = [0xE3, 0x05]")


@public_test(LAB, "int4", points=1)
def packs_into_uint8_bytes(t: Tester):
    got = t.call("pack_int4", np.array([1, 2, 3, 4], dtype=np.int8))
    t.expect_equal(str(getattr(got, "dtype", type(got).__name__)), "uint8", what="the dtype pack_int4 returns",
                   hint="bytes: .astype(np.uint8)")


@public_test(LAB, "int4", points=2)
def unpack_restores_the_signs(t: Tester):
    got = t.call("unpack_int4", np.array([0x8F, 0x21], dtype=np.uint8), 4)
    hint = "the low nibble is byte & 0xF, the high one byte >> 4; a nibble of 8..15 stands for the code nibble - 16"
    if isinstance(got, np.ndarray) and got.size == 4 and got.max() > 7:
        hint = "sign-extend: a nibble of 8..15 is the negative code nibble - 16 (0xF is -1, 0x8 is -8)"
    elif isinstance(got, np.ndarray) and np.array_equal(got.astype(np.int64), [-8, -1, 2, 1]):
        hint = "the first code is in the LOW nibble of each byte"
    t.expect_equal(got.astype(np.int64) if isinstance(got, np.ndarray) else got, np.array([-1, -8, 1, 2]),
                   what="unpack_int4(bytes [0x8F, 0x21], 4)", hint=hint)


@public_test(LAB, "int4", points=1)
def round_trip_of_random_codes(t: Tester):
    for n in (101, 64):
        q = t.rng(n).integers(-8, 8, size=n).astype(np.int8)
        packed = t.call("pack_int4", q)
        t.expect(isinstance(packed, np.ndarray) and packed.size == (n + 1) // 2,
                 what=f"pack_int4 of {n} codes should give {(n + 1) // 2} bytes, got "
                      f"{getattr(packed, 'size', type(packed).__name__)}")
        back = t.call("unpack_int4", packed, n)
        t.expect_equal(back.astype(np.int64) if isinstance(back, np.ndarray) else back, q.astype(np.int64),
                       what=f"unpack_int4(pack_int4(q), {n}) for {n} random codes in [-8, 7]",
                       hint="unpack must return exactly n codes, in order, with their signs")


# ---------------------------------------------------------------------------------------------
# int8_matmul
# ---------------------------------------------------------------------------------------------

MATMUL_HINT = ("convert both operands to np.int32 before multiplying: numpy keeps the 8-bit (or 16-bit) type of its "
               "inputs and wraps around on overflow, silently")


def _expect_int_matmul(t: Tester, a: np.ndarray, b: np.ndarray, what: str, hint: str = MATMUL_HINT) -> None:
    got = t.call("int8_matmul", a, b)
    want = a.astype(np.int64) @ b.astype(np.int64)
    if isinstance(got, np.ndarray) and got.dtype.kind == "f":
        hint = ("float32 holds every integer only up to 2**24 = 16,777,216; larger sums round. Accumulate in int32 "
                "(.astype(np.int32))")
    t.expect(isinstance(got, np.ndarray) and got.shape == want.shape,
             what=f"{what}: expected an array of shape {want.shape}, got {getattr(got, 'shape', type(got).__name__)}",
             hint="C = A @ B has the rows of A and the columns of B")
    t.expect_equal(got.astype(np.int64), want, what=what, hint=hint)


@public_test(LAB, "int8_matmul", points=1)
def small_signed_matrices(t: Tester):
    rng = t.rng()
    a, b = rng.integers(-128, 128, (3, 5)).astype(np.int8), rng.integers(-128, 128, (5, 4)).astype(np.int8)
    _expect_int_matmul(t, a, b, "int8_matmul(int8 3x5, int8 5x4)")


@public_test(LAB, "int8_matmul", points=2)
def extreme_values_overflow_8_and_16_bits(t: Tester):
    a = np.full((2, 512), -128, dtype=np.int8)
    b = np.full((512, 3), -128, dtype=np.int8)
    _expect_int_matmul(t, a, b, "int8_matmul(all -128 2x512, all -128 512x3): each entry 512 x 16384 = 8,388,608")


@public_test(LAB, "int8_matmul", points=2)
def unsigned_activations_times_signed_weights(t: Tester):
    rng = t.rng(1)
    a = rng.integers(0, 256, (4, 300)).astype(np.uint8)
    b = rng.integers(-128, 128, (300, 5)).astype(np.int8)
    _expect_int_matmul(t, a, b, "int8_matmul(uint8 4x300, int8 300x5)",
                       hint="uint8 times int8 makes int16 in numpy, which overflows; and a uint8 value above 127 is "
                            "not an int8: convert each operand to np.int32 as it is, never to int8")


@public_test(LAB, "int8_matmul", points=1)
def sums_beyond_float32s_exact_integers(t: Tester):
    k = 2047
    a = np.full((1, k), 127, dtype=np.int8)
    b = np.full((k, 2), 127, dtype=np.int8)
    b[::2, 1] = 1
    _expect_int_matmul(t, a, b, f"int8_matmul(127s 1x{k}, mostly 127s {k}x2): sums of about 33 million, odd")


@public_test(LAB, "int8_matmul", points=1)
def returns_int32(t: Tester):
    got = t.call("int8_matmul", np.ones((2, 3), dtype=np.int8), np.ones((3, 2), dtype=np.int8))
    t.expect_equal(str(getattr(got, "dtype", type(got).__name__)), "int32", what="the dtype int8_matmul returns",
                   hint="accumulate in int32, as VNNI, SDOT and AMX do (int64 is exact too, but twice the bytes; "
                        "float is not exact)")


# ---------------------------------------------------------------------------------------------
# max_safe_k
# ---------------------------------------------------------------------------------------------

def _expect_k(t: Tester, a_max: int, b_max: int, acc_bits: int, story: str) -> None:
    got = t.call("max_safe_k", a_max, b_max, acc_bits)
    want = quant.max_safe_k(a_max, b_max, acc_bits)
    hint = "k * a_max * b_max must stay <= 2**(acc_bits - 1) - 1: k = (2**(acc_bits - 1) - 1) // (a_max * b_max)"
    if _is_number(got):
        if got == (2 ** acc_bits - 1) // (a_max * b_max):
            hint = "a signed accumulator of acc_bits bits reaches only 2**(acc_bits - 1) - 1: one bit is the sign"
        elif not float(got).is_integer():
            hint = "k counts terms: a whole number (integer division //)"
        elif got == want + 1:
            hint = "one term too many: k * a_max * b_max must not exceed the largest value"
    t.expect(isinstance(got, int) and not isinstance(got, bool) and got == want,
             what=f"max_safe_k({a_max}, {b_max}, {acc_bits}) ({story}) should be {want:,}, got {got!r}", hint=hint)


@public_test(LAB, "max_safe_k", points=2)
def int8_products_in_int32(t: Tester):
    _expect_k(t, 128, 128, 32, "int8 x int8 summed in int32")
    _expect_k(t, 127, 127, 32, "symmetric int8 codes in int32")


@public_test(LAB, "max_safe_k", points=1)
def vpmaddubsw_pairs_in_int16(t: Tester):
    _expect_k(t, 255, 128, 16, "u8 x s8 in a 16-bit lane: AVX2's VPMADDUBSW adds pairs of them")


@public_test(LAB, "max_safe_k", points=1)
def int4_and_wide_accumulators(t: Tester):
    _expect_k(t, 8, 8, 16, "int4 x int4 in int16")
    _expect_k(t, 255, 255, 32, "u8 x u8 in int32")
