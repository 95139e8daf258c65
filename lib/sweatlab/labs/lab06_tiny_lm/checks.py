"""Public checks of lab 06_tiny_lm: "A tiny language model served on a CPU, then on many modest nodes".

Exercises (the name the notebook's `check(...)` cell uses, and the learner's functions):

    sample_next    sample_next(logits, temperature, seed) -> int: argmax at temperature 0, else one
                   inverse-CDF draw with u = np.random.default_rng(seed).random()
    attend_one     attend_one(q, k_cache, v_cache) -> (H, hd): one position's attention over a KV cache
    quantize_int8  quantize_int8_rows(w) -> (int8 codes, float32 scale per row), and
                   dequantize_int8_rows(q, scale) -> float32
    quantize_int4  quantize_int4_groups(w, group) -> (uint8 packed two per byte, scales, lows), and
                   dequantize_int4_groups(packed, scale, low, group) -> float32
    perplexity     perplexity(logits, targets) -> exp(mean negative log-likelihood)
    cost_model     tp_seconds_per_token(compute_s, nodes, allreduces, message_bytes, latency_s,
                   bandwidth_bytes_s) -> seconds per token of a tensor-parallel decode step

The references are the course's answers, :mod:`sweatlab.labs.lab06_tiny_lm.reference` (also the lab's
stand-ins). Every input is small; none is a speed exercise (the lab measures speed with torch's kernels
on the speed model).
"""

from __future__ import annotations

import math

import numpy as np

from sweatlab.kit.checks import Tester, public_test
from sweatlab.labs.lab06_tiny_lm import reference as R

LAB = "06_tiny_lm"


def _tuple(t: Tester, got, n: int, what: str) -> tuple:
    t.expect(isinstance(got, list) and len(got) == n, what=f"{what} returned {type(got).__name__}",
             hint=f"return a tuple of {n} values")
    return tuple(got)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


# ---------------------------------------------------------------------------------------------
# sample_next
# ---------------------------------------------------------------------------------------------

@public_test(LAB, "sample_next", points=1)
def temperature_zero_is_greedy(t: Tester):
    rng = t.rng()
    for _ in range(5):
        z = rng.normal(size=256).astype(np.float32) * 3
        got = t.call("sample_next", z, 0.0, 1)
        t.expect(_is_int(got) and got == int(np.argmax(z)),
                 what=f"sample_next(logits, temperature=0.0) should be the argmax {int(np.argmax(z))}, got {got!r}",
                 hint="temperature 0 means greedy: return int(np.argmax(logits)) (a Python int), no division by 0")


@public_test(LAB, "sample_next", points=2)
def the_same_draw_as_the_reference(t: Tester):
    rng = t.rng()
    for i in range(12):
        z = rng.normal(size=64) * 2
        temp = float([0.5, 1.0, 1.7][i % 3])
        want = R.sample_next(z, temp, 100 + i)
        got = t.call("sample_next", z, temp, 100 + i)
        t.expect(_is_int(got) and got == want,
                 what=f"sample_next(logits, temperature={temp}, seed={100 + i}) should be {want}, got {got!r}",
                 hint="p = softmax(logits / temperature); u = np.random.default_rng(seed).random(); return the first "
                      "index i with cumsum(p)[i] > u (np.searchsorted(c, u, side='right')). Divide by the temperature "
                      "before the softmax, and draw exactly one number from a fresh generator")


@public_test(LAB, "sample_next", points=1)
def large_logits_do_not_overflow(t: Tester):
    z = np.array([1000.0, 1001.0, 999.0, 0.0])
    for seed in range(6):
        want = R.sample_next(z, 1.0, seed)
        got = t.call("sample_next", z, 1.0, seed)
        t.expect(_is_int(got) and got == want, what=f"sample_next([1000, 1001, 999, 0], 1.0, seed={seed}) should be "
                 f"{want}, got {got!r}", hint="subtract the largest logit before np.exp: exp(1000) is inf")


# ---------------------------------------------------------------------------------------------
# attend_one
# ---------------------------------------------------------------------------------------------

def _qkv(rng, H, T, hd, scale=1.0):
    return (rng.normal(size=(H, hd)).astype(np.float32) * scale, rng.normal(size=(H, T, hd)).astype(np.float32) * scale,
            rng.normal(size=(H, T, hd)).astype(np.float32))


_ATTN_HINT = ("per head: scores = k_cache @ q / sqrt(hd) (T numbers), softmax over the T positions "
              "(subtract the max first), then the weighted sum of the T value rows")


@public_test(LAB, "attend_one", points=2)
def matches_softmax_attention(t: Tester):
    rng = t.rng()
    for H, T, hd in ((1, 1, 4), (2, 5, 8), (4, 17, 16)):
        q, k, v = _qkv(rng, H, T, hd)
        t.expect_close(t.call("attend_one", q, k, v), R.attend_one(q, k, v), rtol=1e-4, atol=1e-5,
                       what=f"attend_one with H={H}, T={T}, hd={hd}", hint=_ATTN_HINT)


@public_test(LAB, "attend_one", points=1)
def one_cached_position_returns_its_value(t: Tester):
    q, k, v = _qkv(t.rng(), 3, 1, 8)
    t.expect_close(t.call("attend_one", q, k, v), v[:, 0], rtol=1e-5, atol=1e-6,
                   what="attend_one over a cache of one position", hint="softmax of one score is 1: the output is v")


@public_test(LAB, "attend_one", points=1)
def large_scores_stay_finite(t: Tester):
    q, k, v = _qkv(t.rng(), 2, 9, 16, scale=40.0)
    got = t.call("attend_one", q, k, v)
    t.expect(np.all(np.isfinite(np.asarray(got, dtype=np.float64))), what="attend_one with scores in the thousands "
             "returned inf or nan", hint="subtract each head's largest score before np.exp")
    t.expect_close(got, R.attend_one(q, k, v), rtol=1e-3, atol=1e-4, what="attend_one with large scores",
                   hint=_ATTN_HINT)


# ---------------------------------------------------------------------------------------------
# int8 per channel
# ---------------------------------------------------------------------------------------------

def _weights(rng, n, k):
    w = rng.normal(size=(n, k)).astype(np.float32) * rng.uniform(0.01, 1.0, size=(n, 1)).astype(np.float32)
    return w


def _codes_match(got, want) -> bool:
    got, want = np.asarray(got).astype(np.int64), np.asarray(want).astype(np.int64)
    if got.shape != want.shape:
        return False
    diff = np.abs(got - want)
    return bool(diff.max() <= 1 and (diff > 0).mean() <= 1e-3)  # a rounding tie may fall either way


@public_test(LAB, "quantize_int8", points=2)
def per_row_scales_and_codes(t: Tester):
    w = _weights(t.rng(), 16, 64)
    q, s = _tuple(t, t.call("quantize_int8_rows", w), 2, "quantize_int8_rows(w)")
    wq, ws = R.quantize_int8_rows(w)
    hint = "one scale per output channel (row): max |w| over the row / 127; codes round(w / scale) clipped to [-127, 127]"
    t.expect_close(s, ws, rtol=1e-5, what="the 16 scales of a 16 x 64 weight", hint=hint)
    t.expect(str(getattr(q, "dtype", "")) == "int8", what=f"the codes should be int8, got {getattr(q, 'dtype', type(q))}",
             hint="return q.astype(np.int8)")
    t.expect(_codes_match(q, wq), what="the int8 codes differ from round(w / scale)", hint=hint)


@public_test(LAB, "quantize_int8", points=1)
def round_trip_error_is_at_most_half_a_step(t: Tester):
    w = _weights(t.rng(1), 8, 32)
    q, s = _tuple(t, t.call("quantize_int8_rows", w), 2, "quantize_int8_rows(w)")
    back = np.asarray(t.call("dequantize_int8_rows", q, s), dtype=np.float64)
    step = R.quantize_int8_rows(w)[1][:, None]
    t.expect(back.shape == w.shape and bool(np.all(np.abs(back - w) <= 0.5 * step * 1.001 + 1e-7)),
             what="dequantize_int8_rows(*quantize_int8_rows(w)) is more than half a step away from w",
             hint="dequantize: q as float32 times the row's scale (broadcast scale[:, None])")


@public_test(LAB, "quantize_int8", points=1)
def an_all_zero_row_gets_scale_one(t: Tester):
    w = _weights(t.rng(2), 4, 16)
    w[2] = 0
    q, s = _tuple(t, t.call("quantize_int8_rows", w), 2, "quantize_int8_rows(w) with a zero row")
    s = np.asarray(s, dtype=np.float64)
    t.expect(s.shape == (4,) and np.all(np.isfinite(s)) and s[2] == 1.0 and not np.any(np.asarray(q)[2]),
             what="a row of zeros should get scale 1.0 and codes 0", hint="0 / 0 is nan: use np.where(scale > 0, scale, 1)")


# ---------------------------------------------------------------------------------------------
# int4 group-wise, two per byte
# ---------------------------------------------------------------------------------------------

_INT4_HINT = ("per group of `group` consecutive weights in a row: low = min, scale = (max - min) / 15, codes "
              "round((w - low) / scale) in 0..15; byte j of a row holds column 2j in its low nibble and 2j+1 in "
              "its high nibble")


@public_test(LAB, "quantize_int4", points=2)
def packed_codes_scales_and_lows(t: Tester):
    w = _weights(t.rng(), 6, 64)
    for group in (16, 32):
        p, s, lo = _tuple(t, t.call("quantize_int4_groups", w, group), 3, f"quantize_int4_groups(w, {group})")
        wp, ws, wl = R.quantize_int4_groups(w, group)
        t.expect(str(getattr(p, "dtype", "")) == "uint8" and np.shape(p) == wp.shape,
                 what=f"the packed codes should be uint8 of shape {wp.shape}, got {getattr(p, 'dtype', type(p))} "
                      f"{np.shape(p)}", hint="two codes per byte: a 6 x 64 weight packs into 6 x 32 bytes")
        t.expect_close(s, ws, rtol=1e-5, what=f"the scales for group={group}", hint=_INT4_HINT)
        t.expect_close(lo, wl, rtol=1e-6, what=f"the lows (group minima) for group={group}", hint=_INT4_HINT)
        lo_n = [np.asarray(x) & 0xF for x in (p, wp)]
        hi_n = [np.asarray(x) >> 4 for x in (p, wp)]
        if _codes_match(hi_n[0], lo_n[1]) and _codes_match(lo_n[0], hi_n[1]) and not _codes_match(p, wp):
            t.expect(False, what="the nibbles are swapped", hint="column 2j goes in the LOW nibble: q[:, 0::2] | (q[:, 1::2] << 4)")
        t.expect(_codes_match(lo_n[0], lo_n[1]) and _codes_match(hi_n[0], hi_n[1]),
                 what=f"the packed int4 codes for group={group} differ", hint=_INT4_HINT)


@public_test(LAB, "quantize_int4", points=1)
def round_trip_within_half_a_group_step(t: Tester):
    w = _weights(t.rng(3), 4, 96)
    group = 32
    p, s, lo = _tuple(t, t.call("quantize_int4_groups", w, group), 3, "quantize_int4_groups(w, 32)")
    back = np.asarray(t.call("dequantize_int4_groups", p, s, lo, group), dtype=np.float64)
    step = np.repeat(R.quantize_int4_groups(w, group)[1], group, axis=1)
    t.expect(back.shape == w.shape and bool(np.all(np.abs(back - w) <= 0.5 * step * 1.001 + 1e-6)),
             what="dequantize_int4_groups(*quantize_int4_groups(w, 32), 32) is more than half a step from w",
             hint="unpack both nibbles in column order, then code * scale + low per group")


@public_test(LAB, "quantize_int4", points=1)
def a_constant_group_is_exact(t: Tester):
    w = _weights(t.rng(4), 2, 32)
    w[1, :16] = 0.25
    p, s, lo = _tuple(t, t.call("quantize_int4_groups", w, 16), 3, "quantize_int4_groups(w, 16) with a constant group")
    s = np.asarray(s, dtype=np.float64)
    t.expect(np.all(np.isfinite(s)) and s[1, 0] == 1.0, what="a group whose values are all equal should get scale 1.0",
             hint="max - min is 0 there: np.where(scale > 0, scale, 1), and the low is the value itself")
    back = np.asarray(t.call("dequantize_int4_groups", p, s, lo, 16), dtype=np.float64)
    t.expect_close(back[1, :16], np.full(16, 0.25), rtol=1e-6, what="the constant group after the round trip")


# ---------------------------------------------------------------------------------------------
# perplexity
# ---------------------------------------------------------------------------------------------

@public_test(LAB, "perplexity", points=2)
def matches_exp_mean_nll(t: Tester):
    rng = t.rng()
    z = rng.normal(size=(50, 256)) * 2
    y = rng.integers(0, 256, size=50)
    t.expect_close(t.call("perplexity", z, y), R.perplexity(z, y), rtol=1e-6,
                   what="perplexity of 50 random positions",
                   hint="log_softmax(logits)[i, targets[i]], averaged over the positions, negated, then exp; "
                        "the mean, not the sum; natural logs")


@public_test(LAB, "perplexity", points=1)
def uniform_logits_give_the_vocabulary_size(t: Tester):
    got = t.call("perplexity", np.zeros((7, 256)), np.arange(7))
    t.expect_close(got, 256.0, rtol=1e-6, what="perplexity with all logits equal",
                   hint="a uniform guess over 256 bytes has perplexity 256")


@public_test(LAB, "perplexity", points=1)
def large_logits_stay_finite(t: Tester):
    z = np.array([[800.0, 0.0, -800.0], [0.0, 900.0, 1.0]])
    y = np.array([0, 2])
    t.expect_close(t.call("perplexity", z, y), R.perplexity(z, y), rtol=1e-6,
                   what="perplexity with logits in the hundreds", hint="log-sum-exp: subtract each row's max first")


# ---------------------------------------------------------------------------------------------
# cost_model
# ---------------------------------------------------------------------------------------------

def _cost(t, *args):
    return t.call("tp_seconds_per_token", *args)


@public_test(LAB, "cost_model", points=1)
def one_node_communicates_nothing(t: Tester):
    got = _cost(t, 2e-3, 1, 10, 512.0, 3e-4, 1e9)
    t.expect_close(got, 2e-3, rtol=1e-9, what="tp_seconds_per_token(2 ms, nodes=1, ...)",
                   hint="a single node does all the compute and sends nothing")


@public_test(LAB, "cost_model", points=2)
def compute_splits_and_ring_all_reduce_costs(t: Tester):
    rng = t.rng()
    for n in (2, 4, 8):
        args = (float(rng.uniform(1e-3, 1e-1)), n, int(rng.integers(2, 50)), float(rng.uniform(1e3, 1e7)),
                float(rng.uniform(1e-6, 1e-3)), float(rng.uniform(1e8, 1e10)))
        t.expect_close(_cost(t, *args), R.tp_seconds_per_token(*args), rtol=1e-9,
                       what=f"tp_seconds_per_token{args}",
                       hint="compute_s / nodes + allreduces * (latency_s + 2 (n - 1) / n * message_bytes / bandwidth); "
                            "each all-reduce pays the latency once")
