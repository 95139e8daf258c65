"""The model: GPT-2 shaped (learned positions, pre-LayerNorm blocks, ``nn.Linear`` with bias, a 4x MLP
with tanh-GELU, an untied output layer), with a KV cache; random speed models; greedy generation."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class Config:
    n_layer: int = 5
    d_model: int = 128
    n_head: int = 2
    block: int = 256
    vocab: int = 256


QUALITY = Config()
SPEED = Config(n_layer=8, d_model=512, n_head=8)


class Attention(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.nh, self.d = cfg.n_head, cfg.d_model
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x, cache=None):
        """cache: a two-item list [k, v] (or [None, None]) updated in place."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.nh, C // self.nh).permute(2, 0, 3, 1, 4)
        causal = cache is None or cache[0] is None
        mask = None
        if cache is not None:
            if cache[0] is not None:
                P = cache[0].shape[2]
                k = torch.cat([cache[0], k], 2)
                v = torch.cat([cache[1], v], 2)
                if T > 1:   # new queries see the whole past and their own prefix
                    mask = torch.ones(T, P + T, dtype=torch.bool, device=x.device).tril(P)
            cache[0], cache[1] = k, v
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and T > 1)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model)
        self.proj = nn.Linear(4 * cfg.d_model, cfg.d_model)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(cfg.d_model), Attention(cfg)
        self.ln2, self.mlp = nn.LayerNorm(cfg.d_model), MLP(cfg)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))


class TinyLM(nn.Module):
    def __init__(self, cfg: Config = QUALITY):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab, cfg.d_model)
        self.pos = nn.Embedding(cfg.block, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, caches=None, pos: int = 0):
        """idx (B, T) int64 -> logits (B, T, vocab). With `caches` (one [k, v] list per
        block), keys and values are kept and the next call passes only new tokens."""
        T = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(pos, pos + T, device=idx.device))
        for i, blk in enumerate(self.blocks):
            x = blk(x, None if caches is None else caches[i])
        return self.head(self.ln_f(x))

    def new_caches(self):
        return [[None, None] for _ in self.blocks]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer, as stored."""
    return sum(b.numel() * b.element_size() for b in list(model.parameters()) + list(model.buffers()))


def random_model(cfg: Config = SPEED, seed: int = 0) -> TinyLM:
    """A model with random (untrained) weights: fine for speed, meaningless text."""
    torch.manual_seed(seed)
    return TinyLM(cfg).eval()


def to_numpy(model: TinyLM) -> dict:
    """Weights as a dict of float32 numpy arrays (names as in the state dict) plus config."""
    out = {k: v.detach().float().numpy().copy() for k, v in model.state_dict().items()}
    out["config"] = asdict(model.cfg)
    return out


@torch.inference_mode()
def generate(model: TinyLM, prompt: list[int], n_new: int, cache: bool = True, pick=None) -> list[int]:
    """Generate n_new tokens after `prompt`; `pick(logits_row_numpy, step) -> int` chooses each token
    (greedy when None). Without `cache` every step recomputes the whole (window of the) sequence."""
    pick = pick or (lambda z, i: int(np.argmax(z)))
    ids = list(prompt)
    block = model.cfg.block
    if cache:
        caches = model.new_caches()
        logits = model(torch.tensor([ids]), caches, 0)[0, -1]
        for i in range(n_new):
            nxt = pick(logits.numpy(), i)
            ids.append(nxt)
            if i == n_new - 1 or len(ids) >= block:
                break
            logits = model(torch.tensor([[nxt]]), caches, len(ids) - 1)[0, -1]
        return ids
    for i in range(n_new):
        logits = model(torch.tensor([ids[-block:]]))[0, -1]
        ids.append(pick(logits.numpy(), i))
    return ids
