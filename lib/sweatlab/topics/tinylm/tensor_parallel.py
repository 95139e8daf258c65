"""The model split across processes (Megatron-style tensor parallelism) with ``torch.distributed`` (gloo).

One process per rank runs :func:`tp_worker`; :func:`run_tensor_parallel` starts them on this machine
(``python -m sweatlab.topics.tinylm tp --rank R ...``, gloo over loopback) and returns rank 0's results.
Across machines, run that same command on each machine with ``--addr`` set to rank 0's address.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from sweatlab.topics.tinylm.model import Config, TinyLM, random_model
from sweatlab.topics.tinylm.weights import load_model

# The command line the workers are started with, and the folder that must be on their PYTHONPATH so
# that it imports this copy of the package (the one holding sweatlab/).
CLI_MODULE = __package__  # sweatlab.topics.tinylm: its __main__ runs one rank
PACKAGE_ROOT = Path(__file__).resolve().parents[__name__.count(".")]


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
        return load_model(spec["path"])
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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_command(rank: int, world: int, addr: str, port: int, spec_path: str, threads: int = 1,
                 out: str | None = None) -> list[str]:
    """The command line of one rank: ``python -m sweatlab.topics.tinylm tp --rank R ...``."""
    return ([sys.executable, "-m", CLI_MODULE, "tp", "--rank", str(rank), "--world", str(world),
             "--addr", addr, "--port", str(port), "--spec", str(spec_path), "--threads", str(threads)]
            + (["--out", out] if out else []))


def run_tensor_parallel(spec: dict, world: int = 2, addr: str = "127.0.0.1", port: int | None = None,
                        threads: int = 1, timeout_s: float = 600.0) -> dict:
    """Start `world` processes on this machine, `python -m sweatlab.topics.tinylm tp --rank R ...` (gloo over
    loopback), and return rank 0's results. Across machines, run that same command on each machine with
    --addr set to rank 0's address (see the lab)."""
    port = port or free_port()
    with tempfile.TemporaryDirectory() as d:
        out, spec_path = str(Path(d) / "tp.pt"), Path(d) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT)] +
                                            ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        procs = [subprocess.Popen(rank_command(r, world, addr, port, str(spec_path), threads, out if r == 0 else None),
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
