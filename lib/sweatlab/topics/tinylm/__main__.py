"""The command line of the tiny LM: ``python -m sweatlab.topics.tinylm train | tp | eval``.

    train   train the quality model (see sweatlab.topics.tinylm.train)
    tp      one rank of the tensor-parallel run: start one per machine (or let run_tensor_parallel start them)
    eval    held-out perplexity per byte of the shipped model
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from sweatlab.topics.tinylm.corpus import encode, split
from sweatlab.topics.tinylm.weights import WEIGHTS


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
        from sweatlab.topics.tinylm.train import train
        train(seconds=a.seconds, seed=a.seed, out=a.out, threads=a.threads, checkpoint_every=a.checkpoint_every,
              init=a.init, lr=a.lr)
    elif a.cmd == "tp":
        import torch

        from sweatlab.topics.tinylm.tensor_parallel import tp_worker
        spec = (json.loads(Path(a.spec).read_text()) if a.spec else
                {"path": str(WEIGHTS), "prompt": encode("The "), "n_new": a.tokens})
        tp_worker(a.rank, a.world, a.addr, a.port, spec, a.out, a.threads)
        if a.rank == 0 and a.out:
            r = torch.load(a.out, weights_only=False)
            print(f"{a.world} ranks: {r['n_new'] / r['seconds']:.1f} tokens/s, communication {r['comm_s'] / r['seconds']:.0%}")
    else:
        from sweatlab.topics.tinylm.train import heldout_loss
        from sweatlab.topics.tinylm.weights import load_quality_model
        m = load_quality_model(a.path)
        loss = heldout_loss(m, split()[1])
        print(f"held-out {loss:.4f} nats/byte, perplexity {math.exp(loss):.4f} per byte")


if __name__ == "__main__":
    main()
