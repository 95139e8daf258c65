"""One decode step of the model written in numpy, with the attention over the KV cache passed in.

Lab 06 plugs the learner's ``attend_one`` into it and compares the logits with torch. Scalars are
Python floats (math.sqrt, not np.sqrt: under NumPy 2 a float64 numpy scalar silently turns float32
activations into float64).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from sweatlab.topics.tinylm.model import Config

# attend(q (H, hd), k_cache (H, T, hd), v_cache (H, T, hd)) -> (H, hd): one position's attention, every head
Attend = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _ln(x, w, b, eps=1e-5):
    mu = x.mean()
    var = ((x - mu) ** 2).mean()
    return ((x - mu) / math.sqrt(float(var) + eps) * w + b).astype(np.float32)


def _gelu(x):
    return (0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))).astype(np.float32)


def numpy_step(w: dict, token: int, pos: int, cache: list, attend: Attend) -> np.ndarray:
    """One decode step of the model in numpy: the logits (V,) of the next token. `w` is ``model.to_numpy``'s
    dict; `cache` is a list of [k, v] per layer ((H, T, hd) arrays, or None at the start), extended in
    place; `attend` computes the attention of the new position over the cache (its own key and value
    included)."""
    cfg = Config(**w["config"])
    H, C = cfg.n_head, cfg.d_model
    x = (w["tok.weight"][token] + w["pos.weight"][pos]).astype(np.float32)
    for i in range(cfg.n_layer):
        p = f"blocks.{i}."
        h = _ln(x, w[p + "ln1.weight"], w[p + "ln1.bias"])
        q, k, v = (w[p + "attn.qkv.weight"] @ h + w[p + "attn.qkv.bias"]).reshape(3, H, C // H)
        if cache[i][0] is None:
            cache[i][0], cache[i][1] = k[:, None], v[:, None]
        else:
            cache[i][0] = np.concatenate([cache[i][0], k[:, None]], 1)
            cache[i][1] = np.concatenate([cache[i][1], v[:, None]], 1)
        y = np.asarray(attend(q, cache[i][0], cache[i][1]), dtype=np.float32).reshape(C)
        x = x + w[p + "attn.proj.weight"] @ y + w[p + "attn.proj.bias"]
        h = _ln(x, w[p + "ln2.weight"], w[p + "ln2.bias"])
        x = x + w[p + "mlp.proj.weight"] @ _gelu(w[p + "mlp.fc.weight"] @ h + w[p + "mlp.fc.bias"]) + w[p + "mlp.proj.bias"]
    return (w["head.weight"] @ _ln(x, w["ln_f.weight"], w["ln_f.bias"]) + w["head.bias"]).astype(np.float32)
