"""A tiny byte-level decoder-only transformer for lab 06.

Two uses:

* the *quality model*: about 1M parameters, context 256, trained on the help texts that
  ship with Python (``pydoc_data.topics``); the trained weights ship in
  ``sweatlab/assets`` and their SHA-256 is checked when they are loaded;
* the *speed model*: the same architecture with d_model >= 512 and random weights.

Train (seeded, wall-clock budget, 2 threads)::

    python -m sweatlab.topics.tinylm train --seconds 900

The shipped weights came from two phases on a 2-vCPU VM shared with another job (the ``meta`` stored
with the weights lists them): ``train --seconds 720 --checkpoint-every 100``, stopped by hand at its
step-200 checkpoint (521 s of training, slowed by the other job), then
``train --init <step-200 checkpoint> --lr 2e-3 --seed 1 --seconds 1028``. With a budget in seconds, the
number of steps (and so the exact weights) depends on the machine's speed and load; one undisturbed
``train --seconds 900`` is the simple way to reproduce a model of this quality or better.

The model is GPT-2 shaped: learned positions, pre-LayerNorm blocks, ``nn.Linear`` with
bias, a 4x MLP with tanh-GELU, an untied output layer.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ASSETS = Path(__file__).resolve().parents[1] / "assets"
WEIGHTS = ASSETS / "tinylm_1m.pt"
# SHA-256 of the shipped weights, checked by load_quality_model().
WEIGHTS_SHA256 = "19e33c0fcbd2d75254d002e307bcb743bb20938c6a946819722e272406413e0b"


@dataclass(frozen=True)
class Config:
    n_layer: int = 5
    d_model: int = 128
    n_head: int = 2
    block: int = 256
    vocab: int = 256


QUALITY = Config()
SPEED = Config(n_layer=8, d_model=512, n_head=8)


# ---------------------------------------------------------------- corpus
def corpus() -> bytes:
    """The help topics that ship with Python, joined in sorted order, as UTF-8 bytes."""
    from pydoc_data.topics import topics
    return "\n\n".join(topics[k] for k in sorted(topics)).encode("utf-8")


def split(data: bytes | None = None, chunks: int = 100, every: int = 10):
    """Cut the corpus into `chunks` contiguous pieces; every `every`-th is held out."""
    data = corpus() if data is None else data
    n = len(data)
    edges = [n * i // chunks for i in range(chunks + 1)]
    train, val = bytearray(), bytearray()
    for i in range(chunks):
        (val if i % every == every - 1 else train).extend(data[edges[i]:edges[i + 1]])
    return bytes(train), bytes(val)


def encode(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def decode(ids) -> str:
    return bytes(int(i) for i in ids).decode("utf-8", errors="replace")


# ---------------------------------------------------------------- model
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


def random_model(cfg: Config = SPEED, seed: int = 0) -> TinyLM:
    """A model with random (untrained) weights: fine for speed, meaningless text."""
    torch.manual_seed(seed)
    return TinyLM(cfg).eval()


def to_numpy(model: TinyLM) -> dict:
    """Weights as a dict of float32 numpy arrays (names as in the state dict) plus config."""
    out = {k: v.detach().float().numpy().copy() for k, v in model.state_dict().items()}
    out["config"] = asdict(model.cfg)
    return out


# ---------------------------------------------------------------- load / eval
def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_quality_model(path=WEIGHTS, sha256: str | None = None):
    """Load the shipped, trained quality model; refuse it if its checksum differs."""
    path = Path(path)
    expect = WEIGHTS_SHA256 if sha256 is None else sha256
    got = sha256_file(path)
    if expect and got != expect:
        raise ValueError(f"{path.name}: SHA-256 {got} does not match the expected {expect}")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = TinyLM(Config(**blob["config"]))
    model.load_state_dict({k: v.float() for k, v in blob["state"].items()})
    model.eval()
    model.meta = dict(blob.get("meta", {}))
    return model


@torch.inference_mode()
def heldout_loss(model: TinyLM, data: bytes, block: int | None = None, batch: int = 16) -> float:
    """Mean next-byte cross-entropy (nats per byte) over non-overlapping windows."""
    block = block or model.cfg.block
    ids = torch.tensor(list(data), dtype=torch.long)
    n = (len(ids) - 1) // block
    x = ids[: n * block].view(n, block)
    y = ids[1: n * block + 1].view(n, block)
    tot, cnt = 0.0, 0
    for i in range(0, n, batch):
        logits = model(x[i:i + batch])
        tot += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[i:i + batch].reshape(-1),
                               reduction="sum").item()
        cnt += y[i:i + batch].numel()
    return tot / cnt


# ---------------------------------------------------------------- training
def train(seconds: float = 480.0, seed: int = 0, out=WEIGHTS, cfg: Config = QUALITY,
          lr: float = 2e-3, batch: int = 32, threads: int = 2, log_every: int = 50,
          max_steps: int = 100_000, checkpoint_every: int = 0,
          init=None, warm: float = 0.04):
    """Train on the training split for a wall-clock budget (cosine schedule on elapsed
    training time, evaluations excluded). Seeded; exact weights depend on machine speed."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    tr, va = split()
    data = torch.tensor(list(tr), dtype=torch.long)
    model = TinyLM(cfg)
    before = {}
    if init:   # continue from saved weights (a fresh optimizer and schedule): the phases add up in meta
        blob = torch.load(init, map_location="cpu", weights_only=True)
        model.load_state_dict(blob["state"])
        before = blob.get("meta", {})
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": other, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))
    elapsed, step, t_log = 0.0, 0, time.perf_counter()
    print(f"params {n_params(model):,}  train {len(tr):,} B  held-out {len(va):,} B", flush=True)
    while elapsed < seconds and step < max_steps:
        t0 = time.perf_counter()
        frac = elapsed / seconds
        mult = frac / warm if frac < warm else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (frac - warm) / (1 - warm)))
        for g in opt.param_groups:
            g["lr"] = lr * mult
        ix = torch.randint(0, len(data) - cfg.block - 1, (batch,), generator=gen)
        x = torch.stack([data[i:i + cfg.block] for i in ix])
        y = torch.stack([data[i + 1:i + cfg.block + 1] for i in ix])
        model.train()
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, cfg.vocab), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        elapsed += time.perf_counter() - t0
        if step % log_every == 0:
            print(f"step {step:5d}  {elapsed:6.1f} s  loss {loss.item():.3f}  "
                  f"({(time.perf_counter() - t_log) / log_every * 1e3:.0f} ms/step)", flush=True)
            t_log = time.perf_counter()
        if checkpoint_every and step % checkpoint_every == 0:   # a usable file while training goes on
            torch.save({"config": asdict(cfg), "state": {k: v.clone() for k, v in model.state_dict().items()},
                        "meta": {"steps": step, "partial": True}}, Path(tempfile.gettempdir()) / "tinylm_partial.pt")
    model.eval()
    val = heldout_loss(model, va)
    phase = {"steps": step, "seconds": round(elapsed, 1), "lr": lr, "seed": seed, "from": "scratch" if not init else "previous phase"}
    earlier = before.get("phases") or ([{"steps": before["steps"], "seconds": before["train_seconds"],
                                          "lr": before.get("lr", lr), "seed": before.get("seed", seed), "from": "scratch"}]
                                        if "steps" in before else [])
    phases = list(earlier) + [phase]
    return _save(model, out, cfg, val, {"steps": sum(p["steps"] for p in phases),
                                       "train_seconds": round(sum(p["seconds"] for p in phases), 1), "seed": seed,
                                       "batch": batch, "threads": threads, "phases": phases})


def _save(model, out, cfg, val, meta):
    meta = {**meta, "heldout_loss_nats_per_byte": round(val, 4),
            "heldout_ppl_per_byte": round(math.exp(val), 4), "params": n_params(model),
            "torch": str(torch.__version__)}
    blob = {"config": asdict(cfg), "state": {k: v.clone() for k, v in model.state_dict().items()},
            "meta": meta}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, out)
    print(meta, flush=True)
    print(f"sha256 {sha256_file(out)}  {out.stat().st_size:,} bytes", flush=True)
    return model, meta


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m sweatlab.topics.tinylm")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the quality model")
    t.add_argument("--seconds", type=float, default=480.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=str(WEIGHTS))
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--checkpoint-every", type=int, default=0)
    t.add_argument("--init", default=None, help="continue from these weights (a second phase)")
    t.add_argument("--lr", type=float, default=2e-3)
    d = sub.add_parser("tp", help="one rank of the tensor-parallel run (start one per machine)")
    d.add_argument("--rank", type=int, required=True)
    d.add_argument("--world", type=int, default=2)
    d.add_argument("--addr", default="127.0.0.1", help="rank 0's address, reachable from every rank")
    d.add_argument("--port", type=int, default=29517)
    d.add_argument("--tokens", type=int, default=32)
    d.add_argument("--out", default=None)
    d.add_argument("--spec", default=None, help="a JSON file: {'path' or 'config', 'prompt', 'n_new', 'reps'}")
    d.add_argument("--threads", type=int, default=1)
    e = sub.add_parser("eval", help="held-out perplexity per byte of the shipped model")
    e.add_argument("--path", default=str(WEIGHTS))
    a = ap.parse_args(argv)
    if a.cmd == "train":
        train(seconds=a.seconds, seed=a.seed, out=a.out, threads=a.threads, checkpoint_every=a.checkpoint_every,
              init=a.init, lr=a.lr)
    elif a.cmd == "tp":
        import json
        spec = (json.loads(Path(a.spec).read_text()) if a.spec else
                {"path": str(WEIGHTS), "prompt": encode("The "), "n_new": a.tokens})
        tp_worker(a.rank, a.world, a.addr, a.port, spec, a.out, a.threads)
        if a.rank == 0 and a.out:
            r = torch.load(a.out, weights_only=False)
            print(f"{a.world} ranks: {r['n_new'] / r['seconds']:.1f} tokens/s, communication {r['comm_s'] / r['seconds']:.0%}")
    else:
        m = load_quality_model(a.path)
        loss = heldout_loss(m, split()[1])
        print(f"held-out {loss:.4f} nats/byte, perplexity {math.exp(loss):.4f} per byte")



# ================================================================ reference inference path (numpy)
# The lab's exercises, written once here: the checks compare the learner's answers with these.
# Plain arrays in, plain arrays out. Scalars are Python floats (math.sqrt, not np.sqrt: under
# NumPy 2 a float64 numpy scalar silently turns float32 activations into float64).

def sample_next(logits, temperature: float = 1.0, seed: int = 0) -> int:
    """Next token from one position's logits: argmax when temperature == 0, else a draw from
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
    """Attention of one new position over a KV cache, every head at once.
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
    """Symmetric per-output-channel int8: scale = max|row| / 127 (1.0 for an all-zero row),
    codes = round(w / scale) in [-127, 127]. Returns (int8 codes (N, K), float32 scales (N,))."""
    w = np.asarray(w, dtype=np.float32)
    scale = np.abs(w).max(axis=1) / np.float32(127)
    scale = np.where(scale > 0, scale, np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def dequantize_int8_rows(q, scale) -> np.ndarray:
    return (np.asarray(q).astype(np.float32) * np.asarray(scale, dtype=np.float32)[:, None]).astype(np.float32)


def quantize_int4_groups(w, group: int = 32):
    """Asymmetric int4 in groups of `group` along each row: per group low = min, scale = (max - min) / 15
    (1.0 when max == min), codes = round((w - low) / scale) in [0, 15], two codes per byte: even column in
    the low nibble, odd column in the high nibble. Returns (uint8 (N, K/2), float32 scales (N, K/group),
    float32 lows (N, K/group))."""
    w = np.asarray(w, dtype=np.float32)
    n, k = w.shape
    g = w.reshape(n, k // group, group)
    low = g.min(axis=-1)
    scale = (g.max(axis=-1) - low) / np.float32(15)
    scale = np.where(scale > 0, scale, np.float32(1)).astype(np.float32)
    q = np.clip(np.rint((g - low[..., None]) / scale[..., None]), 0, 15).astype(np.uint8).reshape(n, k)
    return (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8), scale, low.astype(np.float32)


def dequantize_int4_groups(packed, scale, low, group: int = 32) -> np.ndarray:
    packed = np.asarray(packed, dtype=np.uint8)
    n = packed.shape[0]
    q = np.stack([packed & 0xF, packed >> 4], axis=-1).reshape(n, -1).astype(np.float32)
    g = q.reshape(n, -1, group) * np.asarray(scale, np.float32)[..., None] + np.asarray(low, np.float32)[..., None]
    return g.reshape(n, -1).astype(np.float32)


def perplexity(logits, targets) -> float:
    """exp(mean negative log-likelihood) of `targets` (T,) under `logits` (T, V), computed stably."""
    z = np.asarray(logits, dtype=np.float64)
    t = np.asarray(targets).astype(np.int64)
    m = z.max(axis=-1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))
    return float(math.exp(-logp[np.arange(len(t)), t].mean()))


def tp_seconds_per_token(compute_s: float, nodes: int, allreduces: int, message_bytes: float,
                         latency_s: float, bandwidth_bytes_s: float) -> float:
    """Tensor-parallel cost model of one decode step: the single-node compute split evenly over
    `nodes`, plus `allreduces` ring all-reduces, each latency + 2 (n - 1) / n * bytes / bandwidth.
    One node communicates nothing."""
    n = int(nodes)
    comm = 0.0 if n <= 1 else allreduces * (latency_s + 2.0 * (n - 1) / n * message_bytes / bandwidth_bytes_s)
    return compute_s / n + comm


# ---------------------------------------------------------------- numpy decoder using those
def _ln(x, w, b, eps=1e-5):
    mu = x.mean()
    var = ((x - mu) ** 2).mean()
    return ((x - mu) / math.sqrt(float(var) + eps) * w + b).astype(np.float32)


def _gelu(x):
    return (0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))).astype(np.float32)


def numpy_step(w: dict, token: int, pos: int, cache: list, attend=attend_one) -> np.ndarray:
    """One decode step of the model in numpy: the logits (V,) of the next token. `cache` is a list
    of [k, v] per layer ((H, T, hd) arrays, or None at the start), extended in place."""
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


# ================================================================ torch generation and quantized layers
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


class DequantLinear(nn.Module):
    """A linear layer that keeps its weight quantized (int8 rows or packed int4 groups) and turns it
    back into fp32 on every call, then runs the fp32 product: memory saved, time not."""

    def __init__(self, lin: nn.Linear, bits: int, group: int = 32, quantize8=None, quantize4=None):
        super().__init__()
        w = lin.weight.detach().float().numpy()
        self.bits, self.group = bits, group
        self.bias = None if lin.bias is None else lin.bias.detach().clone()
        if bits == 8:
            q, s = (quantize8 or quantize_int8_rows)(w)
            self.q, self.scale = torch.from_numpy(np.asarray(q, np.int8)), torch.from_numpy(np.asarray(s, np.float32))
        else:
            p, s, lo = (quantize4 or quantize_int4_groups)(w, group)
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


def dequant_model(model: TinyLM, bits: int, group: int = 32, quantize8=None, quantize4=None) -> TinyLM:
    """A copy of `model` whose every nn.Linear (the output layer included) is a DequantLinear."""
    import copy
    m = copy.deepcopy(model)
    for parent, cname, lin in list(_linears(m)):
        setattr(parent, cname, DequantLinear(lin, bits, group, quantize8, quantize4))
    return m.eval()


def fake_quant_model(model: TinyLM, bits: int, group: int = 32, quantize8=None, quantize4=None) -> TinyLM:
    """A copy whose nn.Linear weights are replaced by their quantize-dequantize round trip (fp32
    storage): the same numbers the quantized model computes with, at fp32 speed (for perplexity)."""
    import copy
    m = copy.deepcopy(model)
    for _, _, lin in _linears(m):
        lin.weight.data = DequantLinear(lin, bits, group, quantize8, quantize4).weight_fp32()
    return m.eval()


def weight_bytes(model: nn.Module) -> int:
    return sum(b.numel() * b.element_size() for b in list(model.parameters()) + list(model.buffers()))


# ================================================================ GPU server figures (shipped data)
GPU_SERVER_PROVENANCE = ("measured once on a cloud VM with one NVIDIA H200 (SXM, 700 W limit), 2026-11-29: "
                         "NVML board energy only (not host CPU, memory or cooling); one run each")
# Hugging Face generate of a random GPT-2 small (124 M), bf16, greedy: (batch, tokens/s, J per token).
GPU_SERVER_GENERATE = ((1, 15.5, 8.4), (16, 275.0, 0.47), (256, 3127.0, 0.045))
# The same model's decode step as a chain of matrix-vector products replayed as a CUDA graph:
# (dtype, batch, tokens/s, J per token).
GPU_SERVER_GRAPH = (("bf16", 1, 3695.0, 0.077), ("bf16", 64, 174731.0, 0.0019),
                    ("fp32", 1, 2746.0, 0.14), ("fp32", 64, 78743.0, 0.0063))


# ================================================================ ONNX Runtime with a KV cache
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
    import warnings
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


# ================================================================ tensor parallel over processes
class TPModel(nn.Module):
    """The rank-th of `world` shards of a TinyLM (Megatron-style): q/k/v split by heads and the MLP's
    first layer by columns (column-parallel); the attention output and the MLP's second layer by rows
    (row-parallel), each followed by one all-reduce (sum). Embeddings, LayerNorms and the output layer
    are replicated. Each rank keeps the KV cache of its own heads. Two all-reduces per layer per token."""

    def __init__(self, model: TinyLM, rank: int, world: int, all_reduce=None):
        super().__init__()
        cfg = self.cfg = model.cfg
        C, H = cfg.d_model, cfg.n_head
        self.hd = C // H
        heads = np.array_split(np.arange(H), world)[rank]
        self.nh = len(heads)
        cols = torch.cat([torch.arange(h * self.hd, (h + 1) * self.hd) for h in heads]) if len(heads) else torch.arange(0)
        rows = torch.cat([cols + j * C for j in range(3)])
        f = np.array_split(np.arange(4 * C), world)[rank]
        f = torch.from_numpy(f)
        self.tok, self.pos, self.ln_f, self.head = model.tok, model.pos, model.ln_f, model.head
        self.layers = []
        for b in model.blocks:
            self.layers.append(dict(
                ln1=b.ln1, ln2=b.ln2,
                qkv_w=b.attn.qkv.weight.data[rows].clone(), qkv_b=b.attn.qkv.bias.data[rows].clone(),
                proj_w=b.attn.proj.weight.data[:, cols].clone(), proj_b=b.attn.proj.bias.data,
                fc_w=b.mlp.fc.weight.data[f].clone(), fc_b=b.mlp.fc.bias.data[f].clone(),
                mp_w=b.mlp.proj.weight.data[:, f].clone(), mp_b=b.mlp.proj.bias.data))
        self.comm_s, self.n_comm = 0.0, 0
        self.trace: list[tuple[float, float]] | None = None  # (entry, exit) of each all-reduce, when a list
        self._all_reduce = all_reduce

    def reduce(self, y):
        t0 = time.perf_counter()
        if self._all_reduce is not None:
            self._all_reduce(y)
        else:
            import torch.distributed as dist
            dist.all_reduce(y)
        t1 = time.perf_counter()
        self.comm_s += t1 - t0
        self.n_comm += 1
        if self.trace is not None:
            self.trace.append((t0, t1))
        return y

    def new_caches(self):
        return [[None, None] for _ in self.layers]

    @torch.inference_mode()
    def forward(self, idx, caches=None, pos: int = 0):
        B, T = idx.shape
        x = self.tok(idx) + self.pos(torch.arange(pos, pos + T))
        for i, L in enumerate(self.layers):
            h = L["ln1"](x)
            q, k, v = F.linear(h, L["qkv_w"], L["qkv_b"]).view(B, T, 3, self.nh, self.hd).permute(2, 0, 3, 1, 4)
            fresh = caches is None or caches[i][0] is None
            if not fresh:
                k = torch.cat([caches[i][0], k], 2)
                v = torch.cat([caches[i][1], v], 2)
            if caches is not None:
                caches[i][0], caches[i][1] = k, v
            if not fresh and T > 1:
                raise ValueError("TPModel: several new tokens after a cache are not supported")
            y = F.scaled_dot_product_attention(q, k, v, is_causal=fresh and T > 1)
            y = F.linear(y.transpose(1, 2).reshape(B, T, self.nh * self.hd), L["proj_w"])
            x = x + self.reduce(y) + L["proj_b"]
            y = F.linear(F.gelu(F.linear(L["ln2"](x), L["fc_w"], L["fc_b"]), approximate="tanh"), L["mp_w"])
            x = x + self.reduce(y) + L["mp_b"]
        return self.head(self.ln_f(x))


def _load_for_tp(spec):
    if spec.get("path"):
        blob = torch.load(spec["path"], map_location="cpu", weights_only=True)
        m = TinyLM(Config(**blob["config"]))
        m.load_state_dict(blob["state"])
        return m.eval()
    return random_model(Config(**spec["config"]), spec.get("seed", 0))


def tp_worker(rank: int, world: int, addr: str, port: int, spec: dict, out_path: str | None = None,
              threads: int = 1):
    """One process of the tensor-parallel run. Rank 0 writes the results to `out_path`.
    spec: {"path": weights file} or {"config": {...}, "seed": 0}, plus "prompt" (list of bytes),
    "n_new" (tokens to decode), "reps" (all-reduce timings per size)."""
    import torch.distributed as dist
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=f"tcp://{addr}:{port}", rank=rank, world_size=world)
    try:
        model = _load_for_tp(spec)
        tp = TPModel(model, rank, world)
        C = model.cfg.d_model
        # 1. the network's constants: all-reduce time against message size, back to back (a barrier
        #    first, so both ranks enter together): the median is a typical call, the mean includes the tail
        sizes = [C, spec.get("big_floats", 1 << 16)]
        ar, ar_mean = {}, {}
        for n in sizes:
            buf = torch.ones(n)
            for _ in range(5):
                dist.all_reduce(buf)
            ts = []
            for _ in range(spec.get("reps", 200)):
                dist.barrier()
                t0 = time.perf_counter()
                dist.all_reduce(buf)
                ts.append(time.perf_counter() - t0)
            ar[n], ar_mean[n] = float(np.median(ts)), float(np.mean(ts))
        # 1b. the same small all-reduce with each rank computing between calls, as decoding does: the gap is
        #     this rank's own compute per all-reduce (its shard of a decode step with the all-reduce left out)
        local = TPModel(model, rank, world, all_reduce=lambda y: None)
        prompt = torch.tensor([spec["prompt"]])
        steps = 8
        with torch.inference_mode():
            caches = local.new_caches()
            local(prompt, caches, 0)
            t0 = time.perf_counter()
            for i in range(steps):
                local(torch.tensor([[65]]), caches, prompt.shape[1] + i)
            gap = (time.perf_counter() - t0) / steps / (2 * len(model.blocks))
        buf, ts = torch.ones(C), []
        dist.barrier()
        for _ in range(spec.get("reps", 200)):
            end = time.perf_counter() + gap
            while time.perf_counter() < end:  # compute stand-in: the core stays busy, as in a decode step
                pass
            t0 = time.perf_counter()
            dist.all_reduce(buf)
            ts.append(time.perf_counter() - t0)
        gapped = float(np.mean(ts))
        # 2. logits of the prompt (prefill) for the comparison with one process
        logits = tp(prompt)[0].numpy()
        # 3. greedy decode with a KV cache, timed; the time inside all_reduce is the communication
        caches = tp.new_caches()
        z = tp(prompt, caches, 0)[0, -1]
        ids, n_new = list(spec["prompt"]), spec["n_new"]
        dist.barrier()
        tp.comm_s, tp.n_comm, tp.trace = 0.0, 0, []
        t0 = time.perf_counter()
        for i in range(n_new):
            nxt = int(z.argmax())
            ids.append(nxt)
            z = tp(torch.tensor([[nxt]]), caches, len(ids) - 1)[0, -1]
        wall = time.perf_counter() - t0
        # Split each all-reduce into waiting for the last rank to arrive and the exchange after it. The ranks'
        # clocks are one clock only on one machine (perf_counter is the system's monotonic clock there).
        trace = torch.tensor(tp.trace, dtype=torch.float64)
        every = [torch.zeros_like(trace) for _ in range(world)]
        dist.all_gather(every, trace)
        last_in = torch.stack([t[:, 0] for t in every]).max(0).values
        wait = float((last_in - trace[:, 0]).clamp(min=0).sum())
        exchange = float((trace[:, 1] - last_in).clamp(min=0).sum())
        stats = torch.tensor([wall, tp.comm_s, float(tp.n_comm), wait, exchange], dtype=torch.float64)
        dist.all_reduce(stats)
        stats /= world
        out = {"world": world, "rank0_logits": logits, "ids": ids, "n_new": n_new,
               "seconds": float(stats[0]), "comm_s": float(stats[1]), "allreduces": int(round(float(stats[2]))),
               "comm_wait_s": float(stats[3]), "comm_exchange_s": float(stats[4]),
               "allreduce_s": {int(k): v for k, v in ar.items()},
               "allreduce_mean_s": {int(k): v for k, v in ar_mean.items()},
               "allreduce_gapped_s": gapped, "gap_s": gap, "threads": threads}
        if rank == 0 and out_path:
            torch.save(out, out_path)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_tensor_parallel(spec: dict, world: int = 2, addr: str = "127.0.0.1", port: int | None = None,
                        threads: int = 1, timeout_s: float = 600.0) -> dict:
    """Start `world` processes on this machine, `python -m sweatlab.topics.tinylm tp --rank R ...` (gloo over
    loopback), and return rank 0's results. Across machines, run that same command on each machine with
    --addr set to rank 0's address (see the lab)."""
    import json
    import os
    import subprocess
    import sys
    port = port or free_port()
    with tempfile.TemporaryDirectory() as d:
        out, spec_path = str(Path(d) / "tp.pt"), Path(d) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2])] +
                                            ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        procs = [subprocess.Popen([sys.executable, "-m", "sweatlab.topics.tinylm", "tp", "--rank", str(r), "--world", str(world),
                                   "--addr", addr, "--port", str(port), "--spec", str(spec_path),
                                   "--threads", str(threads)] + (["--out", out] if r == 0 else []),
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for r in range(world)]
        logs = []
        try:
            for p in procs:
                logs.append(p.communicate(timeout=timeout_s)[0])
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        if any(p.returncode for p in procs):
            raise RuntimeError("tensor-parallel run failed:\n" + "\n".join(l[-2000:] for l in logs))
        return torch.load(out, weights_only=False)


if __name__ == "__main__":
    main()
