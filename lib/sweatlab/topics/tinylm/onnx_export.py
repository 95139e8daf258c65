"""ONNX Runtime with a KV cache: one decode step exported as a graph, and greedy decoding with it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from sweatlab.topics.tinylm.model import Config, TinyLM


class DecodeGraph(nn.Module):
    """One decode step as a graph for export: (idx (1, 1), past_k, past_v (L, 1, H, P, hd)) ->
    (logits (1, V), k, v (L, 1, H, P + 1, hd)). The position is P, read from the cache's shape."""

    def __init__(self, model: TinyLM):
        super().__init__()
        self.m = model

    def forward(self, idx, past_k, past_v):
        m = self.m
        P = past_k.shape[3]
        x = m.tok(idx) + m.pos(torch.arange(1, dtype=torch.long) + P)
        ks, vs = [], []
        for i, blk in enumerate(m.blocks):
            cache = [past_k[i], past_v[i]]
            x = blk(x, cache)
            ks.append(cache[0])
            vs.append(cache[1])
        return m.head(m.ln_f(x))[:, -1], torch.stack(ks), torch.stack(vs)


def empty_kv(cfg: Config, batch: int = 1):
    shape = (cfg.n_layer, batch, cfg.n_head, 0, cfg.d_model // cfg.n_head)
    return np.zeros(shape, np.float32), np.zeros(shape, np.float32)


def export_decode_onnx(model: TinyLM, path) -> Path:
    """Export DecodeGraph(model) with the TorchScript-based exporter (fast; P is a dynamic axis)."""
    cfg = model.cfg
    k0 = torch.zeros(cfg.n_layer, 1, cfg.n_head, 3, cfg.d_model // cfg.n_head)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(DecodeGraph(model).eval(), (torch.tensor([[1]]), k0, k0.clone()), str(path),
                          input_names=["idx", "past_k", "past_v"], output_names=["logits", "k", "v"],
                          dynamic_axes={"past_k": {3: "P"}, "past_v": {3: "P"}, "k": {3: "P1"}, "v": {3: "P1"}},
                          opset_version=17, dynamo=False)
    return Path(path)


def ort_generate(session, cfg: Config, prompt: list[int], n_new: int) -> list[int]:
    """Greedy generation with an ONNX Runtime session of DecodeGraph: the prompt is fed one token per
    step (building the cache), then each new token."""
    pk, pv = empty_kv(cfg)
    ids = list(prompt)
    for i in range(len(prompt) + n_new - 1):
        logits, pk, pv = session.run(None, {"idx": np.array([[ids[i]]], np.int64), "past_k": pk, "past_v": pv})
        if i >= len(prompt) - 1:
            ids.append(int(np.argmax(logits[0])))
    return ids
