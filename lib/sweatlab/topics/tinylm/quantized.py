"""Quantized forms of the model: linear layers that keep int8 or packed int4 weights.

The quantizer is passed in (lab 06's Exercises 3 and 4):

    bits 8: quantize(w (N, K) float32) -> (int8 codes (N, K), float32 scales (N,)), one scale per row;
    bits 4: quantize(w, group) -> (uint8 (N, K/2) two codes per byte, even column in the low nibble,
            float32 scales (N, K/group), float32 lows (N, K/group)), code * scale + low per group.
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from sweatlab.topics.tinylm.model import TinyLM


class DequantLinear(nn.Module):
    """A linear layer that keeps its weight quantized (int8 rows or packed int4 groups) and turns it
    back into fp32 on every call, then runs the fp32 product: memory saved, time not."""

    def __init__(self, lin: nn.Linear, bits: int, quantize: Callable, group: int = 32):
        super().__init__()
        if bits not in (8, 4):
            raise ValueError(f"bits must be 8 or 4, not {bits!r}")
        w = lin.weight.detach().float().numpy()
        self.bits, self.group = bits, group
        self.bias = None if lin.bias is None else lin.bias.detach().clone()
        if bits == 8:
            q, s = quantize(w)
            self.q, self.scale = torch.from_numpy(np.asarray(q, np.int8)), torch.from_numpy(np.asarray(s, np.float32))
        else:
            p, s, lo = quantize(w, group)
            self.q = torch.from_numpy(np.asarray(p, np.uint8))
            self.scale = torch.from_numpy(np.asarray(s, np.float32))
            self.low = torch.from_numpy(np.asarray(lo, np.float32))

    def weight_fp32(self):
        if self.bits == 8:
            return self.q.float() * self.scale[:, None]
        n = self.q.shape[0]
        q = torch.stack([self.q & 0xF, self.q >> 4], -1).view(n, -1, self.group).float()
        return (q * self.scale[..., None] + self.low[..., None]).view(n, -1)

    def forward(self, x):
        return F.linear(x, self.weight_fp32(), self.bias)

    def nbytes(self):
        extra = self.scale.numel() * 4 + (self.low.numel() * 4 if self.bits == 4 else 0)
        return self.q.numel() * self.q.element_size() + extra


def _linears(model):
    for name, mod in model.named_modules():
        for cname, child in mod.named_children():
            if isinstance(child, nn.Linear):
                yield mod, cname, child


def dequant_model(model: TinyLM, bits: int, quantize: Callable, group: int = 32) -> TinyLM:
    """A copy of `model` whose every nn.Linear (the output layer included) is a DequantLinear."""
    m = copy.deepcopy(model)
    for parent, cname, lin in list(_linears(m)):
        setattr(parent, cname, DequantLinear(lin, bits, quantize, group))
    return m.eval()


def fake_quant_model(model: TinyLM, bits: int, quantize: Callable, group: int = 32) -> TinyLM:
    """A copy whose nn.Linear weights are replaced by their quantize-dequantize round trip (fp32
    storage): the same numbers the quantized model computes with, at fp32 speed (for perplexity)."""
    m = copy.deepcopy(model)
    for _, _, lin in _linears(m):
        lin.weight.data = DequantLinear(lin, bits, quantize, group).weight_fp32()
    return m.eval()


def quantized_bytes(model: nn.Module) -> int:
    """Bytes of the quantized weights of ``model``'s DequantLinear layers (codes, scales, lows)."""
    return sum(m.nbytes() for m in model.modules() if isinstance(m, DequantLinear))
