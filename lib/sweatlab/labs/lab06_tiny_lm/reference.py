"""The course's answers to lab 06's exercises: the checks compare the learner's functions with these, and
they stand in (labelled) while the learner's are unwritten (``standins.py``).

Plain arrays in, plain arrays out. Scalars are Python floats (math.sqrt, not np.sqrt: under NumPy 2 a
float64 numpy scalar silently turns float32 activations into float64).
"""

from __future__ import annotations

import math

import numpy as np


def sample_next(logits, temperature: float = 1.0, seed: int = 0) -> int:
    """Exercise 1. Next token from one position's logits: argmax when temperature == 0, else a draw from
    softmax(logits / temperature) by inverse CDF with one uniform u = default_rng(seed).random():
    the first index whose cumulative probability exceeds u."""
    z = np.asarray(logits, dtype=np.float64).ravel()
    if temperature == 0:
        return int(np.argmax(z))
    z = z / float(temperature)
    p = np.exp(z - z.max())
    c = np.cumsum(p / p.sum())
    u = np.random.default_rng(seed).random()
    return int(min(np.searchsorted(c, u, side="right"), len(c) - 1))


def attend_one(q, k_cache, v_cache) -> np.ndarray:
    """Exercise 2. Attention of one new position over a KV cache, every head at once.
    q (H, hd); k_cache, v_cache (H, T, hd), the new position's own key and value included.
    Returns (H, hd) float32: softmax(q . k / sqrt(hd)) @ v per head."""
    q = np.asarray(q, dtype=np.float32)
    k = np.asarray(k_cache, dtype=np.float32)
    v = np.asarray(v_cache, dtype=np.float32)
    s = np.einsum("hd,htd->ht", q, k) * np.float32(1.0 / math.sqrt(q.shape[-1]))
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("ht,htd->hd", p, v).astype(np.float32)


def quantize_int8_rows(w):
    """Exercise 3. Symmetric per-output-channel int8: scale = max|row| / 127 (1.0 for an all-zero row),
    codes = round(w / scale) in [-127, 127]. Returns (int8 codes (N, K), float32 scales (N,))."""
    w = np.asarray(w, dtype=np.float32)
    scale = np.abs(w).max(axis=1) / np.float32(127)
    scale = np.where(scale > 0, scale, np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def dequantize_int8_rows(q, scale) -> np.ndarray:
    """Exercise 3. float32 weights back from int8 codes and per-row scales."""
    return (np.asarray(q).astype(np.float32) * np.asarray(scale, dtype=np.float32)[:, None]).astype(np.float32)


def quantize_int4_groups(w, group: int = 32):
    """Exercise 4. Asymmetric int4 in groups of `group` along each row: per group low = min,
    scale = (max - min) / 15 (1.0 when max == min), codes = round((w - low) / scale) in [0, 15], two codes
    per byte: even column in the low nibble, odd column in the high nibble. Returns (uint8 (N, K/2),
    float32 scales (N, K/group), float32 lows (N, K/group))."""
    w = np.asarray(w, dtype=np.float32)
    n, k = w.shape
    g = w.reshape(n, k // group, group)
    low = g.min(axis=-1)
    scale = (g.max(axis=-1) - low) / np.float32(15)
    scale = np.where(scale > 0, scale, np.float32(1)).astype(np.float32)
    q = np.clip(np.rint((g - low[..., None]) / scale[..., None]), 0, 15).astype(np.uint8).reshape(n, k)
    return (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8), scale, low.astype(np.float32)


def dequantize_int4_groups(packed, scale, low, group: int = 32) -> np.ndarray:
    """Exercise 4. float32 weights back from packed int4 codes, group scales and lows."""
    packed = np.asarray(packed, dtype=np.uint8)
    n = packed.shape[0]
    q = np.stack([packed & 0xF, packed >> 4], axis=-1).reshape(n, -1).astype(np.float32)
    g = q.reshape(n, -1, group) * np.asarray(scale, np.float32)[..., None] + np.asarray(low, np.float32)[..., None]
    return g.reshape(n, -1).astype(np.float32)


def perplexity(logits, targets) -> float:
    """Exercise 5. exp(mean negative log-likelihood) of `targets` (T,) under `logits` (T, V), computed stably."""
    z = np.asarray(logits, dtype=np.float64)
    t = np.asarray(targets).astype(np.int64)
    m = z.max(axis=-1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))
    return float(math.exp(-logp[np.arange(len(t)), t].mean()))


def tp_seconds_per_token(compute_s: float, nodes: int, allreduces: int, message_bytes: float,
                         latency_s: float, bandwidth_bytes_s: float) -> float:
    """Exercise 6. Tensor-parallel cost model of one decode step: the single-node compute split evenly over
    `nodes`, plus `allreduces` ring all-reduces, each latency + 2 (n - 1) / n * bytes / bandwidth.
    One node communicates nothing."""
    n = int(nodes)
    comm = 0.0 if n <= 1 else allreduces * (latency_s + 2.0 * (n - 1) / n * message_bytes / bandwidth_bytes_s)
    return compute_s / n + comm
