"""Training the quality model on the corpus, and its held-out loss.

Train (seeded, wall-clock budget, 2 threads)::

    python -m sweatlab.topics.tinylm train --seconds 900

The shipped weights came from two phases on a 2-vCPU VM shared with another job (the ``meta`` stored
with the weights lists them): ``train --seconds 720 --checkpoint-every 100``, stopped by hand at its
step-200 checkpoint (521 s of training, slowed by the other job), then
``train --init <step-200 checkpoint> --lr 2e-3 --seed 1 --seconds 1028``. With a budget in seconds, the
number of steps (and so the exact weights) depends on the machine's speed and load; one undisturbed
``train --seconds 900`` is the simple way to reproduce a model of this quality or better.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from sweatlab.topics.tinylm.corpus import split
from sweatlab.topics.tinylm.model import QUALITY, Config, TinyLM, n_params
from sweatlab.topics.tinylm.weights import WEIGHTS, sha256_file


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
