"""Lab 06_tiny_lm: what is particular to it, above all the plausible wrong answers each check must reject.

What every lab must do (the solution passes every check, the blank lab fails them, one check cell per
exercise in order, the deck, the record, the time estimates) is in tests/test_lab_contract.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sweatlab.topics import tinylm
from sweatlab.kit.checks import LabChecks

from conftest import REPO

LAB = "06_tiny_lm"
SOURCE = REPO / "solutions" / f"{LAB}.py"


def _failures(exercise: str, namespace: dict) -> list[str]:
    return [r.text for r in LabChecks(LAB).results(exercise, namespace) if not r.passed]


def _rejected(exercise: str, namespace: dict, hint: str = "") -> None:
    failures = _failures(exercise, namespace)
    assert failures, f"{exercise}: a wrong answer passed every test"
    if hint:
        assert any(hint in f for f in failures), failures


def test_the_solution_passes(solved):
    for ex in ("sample_next", "attend_one", "quantize_int8", "quantize_int4", "perplexity", "cost_model"):
        assert not _failures(ex, solved), ex


# ---- sample_next -----------------------------------------------------------------------------

def _softmax(z):
    z = np.asarray(z, dtype=np.float64)
    p = np.exp(z - z.max())
    return p / p.sum()


def sample_temperature_after_softmax(logits, temperature=1.0, seed=0):
    if temperature == 0:
        return int(np.argmax(logits))
    p = _softmax(logits) ** (1 / temperature)  # not the same as softmax(z / T) without renormalising
    c = np.cumsum(p)
    return int(np.searchsorted(c, np.random.default_rng(seed).random(), side="right"))


def sample_multiplies_by_temperature(logits, temperature=1.0, seed=0):
    if temperature == 0:
        return int(np.argmax(logits))
    c = np.cumsum(_softmax(np.asarray(logits) * temperature))
    return int(min(np.searchsorted(c, np.random.default_rng(seed).random(), side="right"), len(c) - 1))


def sample_two_draws(logits, temperature=1.0, seed=0):
    if temperature == 0:
        return int(np.argmax(logits))
    rng = np.random.default_rng(seed)
    rng.random()  # a draw spent elsewhere: not the reference's u
    c = np.cumsum(_softmax(np.asarray(logits) / temperature))
    return int(min(np.searchsorted(c, rng.random(), side="right"), len(c) - 1))


def sample_without_max(logits, temperature=1.0, seed=0):
    if temperature == 0:
        return int(np.argmax(logits))
    with np.errstate(all="ignore"):
        p = np.exp(np.asarray(logits, dtype=np.float64) / temperature)
        c = np.cumsum(p / p.sum())
    return int(min(np.searchsorted(c, np.random.default_rng(seed).random(), side="right"), len(c) - 1))


@pytest.mark.parametrize("wrong", [sample_temperature_after_softmax, sample_multiplies_by_temperature,
                                   sample_two_draws, sample_without_max])
def test_sample_next_rejects(solved, wrong):
    _rejected("sample_next", {**solved, "sample_next": wrong})


# ---- attend_one ------------------------------------------------------------------------------

def attend_without_scale(q, k, v):
    s = np.einsum("hd,htd->ht", q, k)
    p = np.exp(s - s.max(-1, keepdims=True))
    return np.einsum("ht,htd->hd", p / p.sum(-1, keepdims=True), v).astype(np.float32)


def attend_softmax_over_heads(q, k, v):
    s = np.einsum("hd,htd->ht", q, k) / math.sqrt(q.shape[-1])
    p = np.exp(s - s.max(0, keepdims=True))
    return np.einsum("ht,htd->hd", p / p.sum(0, keepdims=True), v).astype(np.float32)


def attend_without_max(q, k, v):
    s = np.einsum("hd,htd->ht", np.asarray(q, np.float32), np.asarray(k, np.float32)) / np.float32(math.sqrt(q.shape[-1]))
    with np.errstate(all="ignore"):
        p = np.exp(s)
        return np.einsum("ht,htd->hd", p / p.sum(-1, keepdims=True), v).astype(np.float32)


def attend_last_position_only(q, k, v):
    return np.asarray(v)[:, -1].astype(np.float32)


@pytest.mark.parametrize("wrong", [attend_without_scale, attend_softmax_over_heads, attend_without_max,
                                   attend_last_position_only])
def test_attend_one_rejects(solved, wrong):
    _rejected("attend_one", {**solved, "attend_one": wrong})


# ---- int8 ------------------------------------------------------------------------------------

def int8_per_tensor(w):
    w = np.asarray(w, np.float32)
    s = max(float(np.abs(w).max()) / 127, 1e-12)
    return np.clip(np.rint(w / s), -127, 127).astype(np.int8), np.full(w.shape[0], s, np.float32)


def int8_per_column(w):
    w = np.asarray(w, np.float32)
    s = np.abs(w).max(0) / 127
    return np.clip(np.rint(w / s), -127, 127).astype(np.int8), s[: w.shape[0]].astype(np.float32)


def int8_divides_by_128(w):
    w = np.asarray(w, np.float32)
    s = np.abs(w).max(1) / 128
    s = np.where(s > 0, s, 1).astype(np.float32)
    return np.clip(np.rint(w / s[:, None]), -127, 127).astype(np.int8), s


def int8_truncates(w):
    q, s = tinylm.quantize_int8_rows(w)
    return np.trunc(np.asarray(w, np.float32) / s[:, None]).astype(np.int8), s


def int8_zero_row_nan(w):
    w = np.asarray(w, np.float32)
    with np.errstate(all="ignore"):
        s = (np.abs(w).max(1) / 127).astype(np.float32)
        return np.nan_to_num(np.clip(np.rint(w / s[:, None]), -127, 127)).astype(np.int8), s


def int8_returns_int32(w):
    q, s = tinylm.quantize_int8_rows(w)
    return q.astype(np.int32), s


@pytest.mark.parametrize("wrong", [int8_per_tensor, int8_per_column, int8_divides_by_128, int8_truncates,
                                   int8_zero_row_nan, int8_returns_int32])
def test_quantize_int8_rejects(solved, wrong):
    _rejected("quantize_int8", {**solved, "quantize_int8_rows": wrong})


def test_quantize_int8_rejects_a_dequantize_without_the_scale(solved):
    _rejected("quantize_int8", {**solved, "dequantize_int8_rows": lambda q, s: np.asarray(q, np.float32)})


# ---- int4 ------------------------------------------------------------------------------------

def int4_swapped_nibbles(w, group=32):
    p, s, lo = tinylm.quantize_int4_groups(w, group)
    return ((p >> 4) | ((p & 0xF) << 4)).astype(np.uint8), s, lo


def int4_unpacked(w, group=32):
    w = np.asarray(w, np.float32)
    n, k = w.shape
    p, s, lo = tinylm.quantize_int4_groups(w, group)
    q = np.stack([p & 0xF, p >> 4], -1).reshape(n, k)
    return q.astype(np.uint8), s, lo


def int4_divides_by_16(w, group=32):
    w = np.asarray(w, np.float32)
    n, k = w.shape
    g = w.reshape(n, k // group, group)
    low = g.min(-1)
    s = (g.max(-1) - low) / 16
    s = np.where(s > 0, s, 1).astype(np.float32)
    q = np.clip(np.rint((g - low[..., None]) / s[..., None]), 0, 15).astype(np.uint8).reshape(n, k)
    return (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8), s, low.astype(np.float32)


def int4_groups_down_columns(w, group=32):
    p, s, lo = tinylm.quantize_int4_groups(np.asarray(w, np.float32).T.copy().T * 1.0, group)
    return p, s * 1.01, lo


def int4_constant_group_nan(w, group=32):
    w = np.asarray(w, np.float32)
    n, k = w.shape
    g = w.reshape(n, k // group, group)
    low = g.min(-1)
    s = ((g.max(-1) - low) / 15).astype(np.float32)
    with np.errstate(all="ignore"):
        q = np.nan_to_num(np.clip(np.rint((g - low[..., None]) / s[..., None]), 0, 15)).astype(np.uint8).reshape(n, k)
    return (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8), s, low.astype(np.float32)


@pytest.mark.parametrize("wrong", [int4_swapped_nibbles, int4_unpacked, int4_divides_by_16, int4_groups_down_columns,
                                   int4_constant_group_nan])
def test_quantize_int4_rejects(solved, wrong):
    _rejected("quantize_int4", {**solved, "quantize_int4_groups": wrong})


def test_quantize_int4_rejects_swapped_nibbles_with_its_hint(solved):
    _rejected("quantize_int4", {**solved, "quantize_int4_groups": int4_swapped_nibbles}, "LOW nibble")


def test_quantize_int4_rejects_a_dequantize_that_forgets_the_low(solved):
    def wrong(packed, scale, low, group=32):
        return tinylm.dequantize_int4_groups(packed, scale, np.zeros_like(np.asarray(low)), group)
    _rejected("quantize_int4", {**solved, "dequantize_int4_groups": wrong})


# ---- perplexity ------------------------------------------------------------------------------

def ppl_sum_not_mean(logits, targets):
    z = np.asarray(logits, np.float64)
    lp = z - z.max(-1, keepdims=True)
    lp -= np.log(np.exp(lp).sum(-1, keepdims=True))
    return float(np.exp(-lp[np.arange(len(targets)), targets].sum() / 10))


def ppl_no_softmax(logits, targets):
    z = np.asarray(logits, np.float64)
    return float(np.exp(-z[np.arange(len(targets)), targets].mean()))


def ppl_base_2(logits, targets):
    return 2 ** math.log(tinylm.perplexity(logits, targets))


def ppl_unstable(logits, targets):
    z = np.asarray(logits, np.float64)
    with np.errstate(all="ignore"):
        lp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(np.exp(-lp[np.arange(len(targets)), np.asarray(targets)].mean()))


def ppl_returns_loss(logits, targets):
    return math.log(tinylm.perplexity(logits, targets))


@pytest.mark.parametrize("wrong", [ppl_sum_not_mean, ppl_no_softmax, ppl_base_2, ppl_unstable, ppl_returns_loss])
def test_perplexity_rejects(solved, wrong):
    _rejected("perplexity", {**solved, "perplexity": wrong})


# ---- cost model ------------------------------------------------------------------------------

def cost_no_split(c, n, a, m, lat, bw):
    return c + (0 if n <= 1 else a * (lat + 2 * (n - 1) / n * m / bw))


def cost_no_ring_factor(c, n, a, m, lat, bw):
    return c / n + (0 if n <= 1 else a * (lat + m / bw))


def cost_latency_once(c, n, a, m, lat, bw):
    return c / n + (0 if n <= 1 else lat + a * 2 * (n - 1) / n * m / bw)


def cost_one_node_pays(c, n, a, m, lat, bw):
    return c / n + a * (lat + 2 * max(n - 1, 1) / n * m / bw)


@pytest.mark.parametrize("wrong", [cost_no_split, cost_no_ring_factor, cost_latency_once, cost_one_node_pays])
def test_cost_model_rejects(solved, wrong):
    _rejected("cost_model", {**solved, "tp_seconds_per_token": wrong})
