"""Doing less work (lab 04): bundled data, small models, their FLOPs, and the reference rules.

Data and models (torch is imported on first use, so the checks that only need the rules stay cheap):

    digits(val=300, test=500, seed=0) -> Digits     scikit-learn's bundled 8x8 digits, split, float32 in [0, 1]
    mlp(widths, dropout=0.0) -> nn.Sequential       Linear, ReLU (, Dropout) ... Linear
    exit_cnn() -> ExitNet                           a small CNN with a classifier head after each of its 4 blocks
    plain_cnn() -> nn.Sequential                    the same trunk with only the last head: the "big" model
    forward_flops(model, example) -> int            FLOPs of one sample's forward pass (Linear and Conv2d layers)
    train_epoch(model, opt, X, y, ...) -> float     one pass over the training set in shuffled mini-batches
    evaluate(model, X, y) -> (loss, accuracy)       on a whole split, dropout off
    softmax_probs(model, X) -> (N, C)               class probabilities, dropout off
    mc_dropout_probs(model, X, samples) -> (T, N, C)  the same with dropout left on, T times
    run_cascade(small, big, X, threshold)           batched cascade: the big model runs only on what it is sent
    cascade_one(small, big, x, threshold)           the same for one input (latency)
    per_input_seconds(fn, inputs, repeats=3)        each input's own latency: the median of `repeats` calls

``ExitNet`` (made by :func:`exit_cnn`): ``net(x)`` gives the logits of every exit (training, and the
offline threshold sweep); ``net.plain(x)`` runs every block and the last head only (the network without
early exit); ``net.early_exit(x, threshold)`` is batched early exit, each block run only on the inputs
still in; ``net.early_exit_one(x, threshold)`` does it for one input; ``net.block_flops()`` and
``net.head_flops()`` count each piece.

Reference rules, numpy in and numpy out, the plain version of each exercise of the lab (named
``reference_*`` so they are never mistaken for a learner's code; the lab lists them as its stand-ins
in ``sweatlab.labs.lab04_less.standins``, used and labelled while an exercise is not written, and its
checks compare answers with them):

    reference_early_stop(val_losses, patience) -> {"stop": int | None, "best": int}
    reference_predictive_entropy(probs) -> (N,) entropy in nats of the mean over axis 0
    reference_exit_costs(block_flops, head_flops) -> (K,) FLOPs per sample of leaving at each exit
    reference_exit_rule(exit_probs, threshold) -> {"exit": (N,), "pred": (N,)}
    reference_cascade(small_probs, big_probs, threshold) -> {"pred": (N,), "to_big": (N,)}

A confident prediction is one whose top probability is **strictly greater** than the threshold, for
early exit and for the cascade alike; threshold 1.0 therefore never lets anything out early.

FLOPs follow :mod:`sweatlab.measure.flops` (a multiply-add is 2; biases count; activations, pooling and the
softmax are left out). Training costs ``TRAIN_FLOPS_PER_FORWARD`` = 3 forward passes per sample
(the backward pass is about twice the forward: Kaplan et al. 2020, arXiv:2001.08361, section 2.1,
count 2N FLOPs per token forward and 6N for training); the optimizer's update is left out.
"""

from __future__ import annotations

import functools
import gc
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from sweatlab.measure import flops as _flops

__all__ = [
    "TRAIN_FLOPS_PER_FORWARD",
    "Digits",
    "digits",
    "mlp",
    "exit_cnn",
    "plain_cnn",
    "forward_flops",
    "train_epoch",
    "evaluate",
    "softmax_probs",
    "mc_dropout_probs",
    "run_cascade",
    "cascade_one",
    "per_input_seconds",
    "reference_early_stop",
    "reference_predictive_entropy",
    "reference_exit_costs",
    "reference_exit_rule",
    "reference_cascade",
]

TRAIN_FLOPS_PER_FORWARD = 3  # forward 1 + backward about 2 (Kaplan et al. 2020: 2N forward, 6N training)


# ## The reference rules (numpy only)


def reference_early_stop(val_losses: Sequence[float], patience: int) -> dict:
    """Early stopping on validation losses (epoch e's loss at index e; lower is better).

    An epoch improves when its loss is strictly lower than the best so far. Training stops after
    the epoch that makes ``patience`` epochs in a row without improvement: "stop" is that epoch (the
    last one trained), None when the losses given never trigger it. "best" is the epoch whose
    checkpoint to restore, the lowest loss up to the stop (the first of equal ones).
    """
    if int(patience) < 1:
        raise ValueError(f"patience must be >= 1, got {patience!r}")
    best, stop = 0, None
    for epoch, loss in enumerate(val_losses):
        if loss < val_losses[best]:
            best = epoch
        elif epoch - best >= patience:
            stop = epoch
            break
    return {"stop": stop, "best": best}


def reference_predictive_entropy(probs: Any) -> np.ndarray:
    """Entropy in nats of the mean prediction: probs (T, N, C) of T stochastic passes -> (N,).

    H[p] = -sum_c p_c ln p_c with p the mean of the T passes; a class of probability 0 adds 0.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 3:
        raise ValueError(f"probs must have shape (samples, inputs, classes), got {p.shape}")
    mean = p.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(mean > 0, mean * np.log(np.where(mean > 0, mean, 1.0)), 0.0)
    return -terms.sum(axis=-1)


def reference_exit_costs(block_flops: Sequence[float], head_flops: Sequence[float]) -> np.ndarray:
    """FLOPs per sample of leaving at exit k: every block up to k and every head up to k (each head
    before k ran too, to decide that the input goes on)."""
    blocks, heads = np.asarray(block_flops, dtype=np.int64), np.asarray(head_flops, dtype=np.int64)
    if blocks.shape != heads.shape or blocks.ndim != 1:
        raise ValueError("one head per block: block_flops and head_flops need the same length")
    return np.cumsum(blocks) + np.cumsum(heads)


def reference_exit_rule(exit_probs: Any, threshold: float) -> dict:
    """Where each input leaves, and its prediction there: exit_probs (K, N, C) -> {"exit", "pred"}.

    Input n leaves at the first exit whose top probability is strictly greater than ``threshold``;
    one that is confident nowhere leaves at the last exit. "pred" is the class it was given there.
    """
    p = np.asarray(exit_probs)
    if p.ndim != 3:
        raise ValueError(f"exit_probs must have shape (exits, inputs, classes), got {p.shape}")
    confident = p.max(axis=2) > threshold
    confident[-1] = True
    exit_ = confident.argmax(axis=0)
    pred = p.argmax(axis=2)[exit_, np.arange(p.shape[1])]
    return {"exit": exit_.astype(np.int64), "pred": pred.astype(np.int64)}


def reference_cascade(small_probs: Any, big_probs: Any, threshold: float) -> dict:
    """A two-model cascade: the small model answers where its top probability is strictly greater than
    ``threshold``; every other input goes to the big model, which answers it. (N, C) each -> {"pred", "to_big"}.

    ``big_probs`` rows of inputs that stay with the small model are never read for the answer (the
    deployed cascade never computes them)."""
    small, big = np.asarray(small_probs), np.asarray(big_probs)
    to_big = ~(small.max(axis=1) > threshold)
    pred = small.argmax(axis=1)
    if to_big.any():
        pred[to_big] = big[to_big].argmax(axis=1)
    return {"pred": pred.astype(np.int64), "to_big": to_big}


# ## Data


@dataclass(frozen=True, repr=False)
class Digits:
    """scikit-learn's digits (8x8 images, 10 classes), pixels scaled to [0, 1], in three stratified splits."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def __repr__(self) -> str:
        return (f"Digits(train {len(self.y_train)}, validation {len(self.y_val)}, test {len(self.y_test)}; "
                f"{self.X_train.shape[1]} pixels, {len(np.unique(self.y_train))} classes)")


def digits(val: int = 300, test: int = 500, seed: int = 0) -> Digits:
    """The 1,797 digits bundled with scikit-learn (nothing is downloaded), split into train, validation
    and test sets stratified by class; X is float32 (N, 64) in [0, 1] (the raw pixels are 0..16)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    y = y.astype(np.int64)
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=test, random_state=seed, stratify=y)
    X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=val, random_state=seed,
                                                      stratify=y_rest)
    return Digits(X_train, y_train, X_val, y_val, X_test, y_test)


# ## Models


def mlp(widths: Sequence[int], dropout: float = 0.0):
    """Linear(w0, w1), ReLU, [Dropout(p)], ..., Linear(w_-2, w_-1): dropout after every hidden layer."""
    import torch.nn as nn

    if len(widths) < 2:
        raise ValueError("widths needs an input and an output size, e.g. (64, 256, 10)")
    layers: list = []
    for a, b in zip(widths[:-2], widths[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return nn.Sequential(*layers)


def _cnn_trunk():
    """The 4 blocks shared by the exit network and the big model; shapes per sample in the comments."""
    import torch.nn as nn

    return [
        nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 16, 3, padding=1), nn.ReLU()),  # 16 x 8 x 8
        nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),          # 32 x 4 x 4
        nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.ReLU()),                           # 64 x 4 x 4
        nn.Sequential(nn.Flatten(), nn.Linear(1024, 128), nn.ReLU()),                        # 128
    ]


def exit_cnn(n_classes: int = 10):
    """A CNN for 8x8 digits with 4 blocks and a linear classifier (an exit) after each."""
    import torch.nn as nn

    heads = [nn.Sequential(nn.Flatten(), nn.Linear(1024, n_classes)),
             nn.Sequential(nn.Flatten(), nn.Linear(512, n_classes)),
             nn.Sequential(nn.Flatten(), nn.Linear(1024, n_classes)),
             nn.Linear(128, n_classes)]
    return _classes()["ExitNet"](_cnn_trunk(), heads, in_features=64)


def plain_cnn(n_classes: int = 10):
    """The exit network's trunk with only its last head: one exit, every input pays for every block."""
    import torch.nn as nn

    return nn.Sequential(*_cnn_trunk(), nn.Linear(128, n_classes))


def forward_flops(model, example) -> int:
    """FLOPs of one sample's forward pass through ``model``: its Linear and Conv2d layers, counted with
    :mod:`sweatlab.measure.flops` at batch 1 from the shapes seen on ``example`` (one sample is run)."""
    import torch
    import torch.nn as nn

    total = 0

    def count(module, inputs, output):
        nonlocal total
        x = inputs[0]
        if isinstance(module, nn.Linear):
            total += _flops.linear(1, module.in_features, module.out_features, bias=module.bias is not None).flops
        elif isinstance(module, nn.Conv2d):
            if module.padding_mode != "zeros" or isinstance(module.padding, str):
                raise ValueError("forward_flops counts Conv2d with numeric zero padding only")
            total += _flops.conv2d(1, module.in_channels, module.out_channels, x.shape[-2], x.shape[-1],
                                   module.kernel_size, stride=module.stride, padding=module.padding,
                                   dilation=module.dilation, groups=module.groups,
                                   bias=module.bias is not None).flops

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.as_tensor(example)[:1])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return int(total)


@functools.lru_cache(maxsize=1)
def _classes() -> dict:
    """The torch classes of this module, defined on first use (so importing it does not import torch)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class ExitNet(nn.Module):
        """A trunk of blocks with a classifier head (an exit) after each block."""

        def __init__(self, blocks, heads, in_features: int):
            super().__init__()
            if len(blocks) != len(heads) or len(blocks) < 2:
                raise ValueError("an exit network needs one head per block, and at least 2 blocks")
            self.blocks, self.heads = nn.ModuleList(blocks), nn.ModuleList(heads)
            self.in_features = in_features

        def forward(self, x):
            """The logits of every exit, a list of K tensors (N, classes)."""
            outs = []
            for block, head in zip(self.blocks, self.heads):
                x = block(x)
                outs.append(head(x))
            return outs

        def plain(self, x):
            """The network without early exit: every block, then the last head only."""
            for block in self.blocks:
                x = block(x)
            return self.heads[-1](x)

        def loss(self, x, y):
            """Training loss: the mean of every exit's cross-entropy, so every head learns."""
            outs = self(x)
            return sum(F.cross_entropy(o, y) for o in outs) / len(outs)

        @torch.inference_mode()
        def early_exit(self, x, threshold: float):
            """Batched early exit: (pred, exit) per input. After each block its head decides; the inputs
            whose top probability is > threshold leave, and the next block runs on the rest only."""
            n = x.shape[0]
            pred = torch.empty(n, dtype=torch.long)
            exit_ = torch.empty(n, dtype=torch.long)
            alive = torch.arange(n)
            last = len(self.blocks) - 1
            for k, (block, head) in enumerate(zip(self.blocks, self.heads)):
                x = block(x)
                conf, cls = torch.softmax(head(x), dim=1).max(dim=1)
                if k == last:
                    pred[alive], exit_[alive] = cls, k
                    break
                leave = conf > threshold
                if bool(leave.any()):
                    gone = alive[leave]
                    pred[gone], exit_[gone] = cls[leave], k
                    stay = ~leave
                    alive, x = alive[stay], x[stay]  # gather the survivors: a copy of their activations
                    if alive.numel() == 0:
                        break
            return pred, exit_

        @torch.inference_mode()
        def early_exit_one(self, x, threshold: float) -> tuple[int, int]:
            """Early exit for one input x (1, features): (class, exit)."""
            last = len(self.blocks) - 1
            for k, (block, head) in enumerate(zip(self.blocks, self.heads)):
                x = block(x)
                conf, cls = torch.softmax(head(x), dim=1).max(dim=1)
                if k == last or float(conf) > threshold:
                    return int(cls), k
            raise AssertionError("unreachable")

        def _piece_flops(self) -> tuple[list[int], list[int]]:
            x = torch.zeros(1, self.in_features)
            blocks, heads = [], []
            with torch.no_grad():
                for block, head in zip(self.blocks, self.heads):
                    blocks.append(forward_flops(block, x))
                    x = block(x)
                    heads.append(forward_flops(head, x))
            return blocks, heads

        def block_flops(self) -> list[int]:
            """FLOPs per sample of each block."""
            return self._piece_flops()[0]

        def head_flops(self) -> list[int]:
            """FLOPs per sample of each head."""
            return self._piece_flops()[1]

    return {"ExitNet": ExitNet}


def __getattr__(name: str):  # PEP 562: the torch classes, made on first use
    if name in ("ExitNet",):
        return _classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ## Training and evaluation


def _loss(model, xb, yb):
    import torch.nn.functional as F

    if hasattr(model, "loss"):
        return model.loss(xb, yb)
    return F.cross_entropy(model(xb), yb)


def _logits(model, X):
    return model.plain(X) if hasattr(model, "plain") else model(X)


def train_epoch(model, opt, X, y, batch_size: int = 32, generator=None) -> float:
    """One pass over (X, y) in mini-batches shuffled by ``generator`` (a torch.Generator: the same
    seed gives the same order); returns the mean training loss. Dropout is on (model.train())."""
    import torch

    X, y = torch.as_tensor(X), torch.as_tensor(y)
    model.train()
    order = torch.randperm(len(y), generator=generator)
    total, seen = 0.0, 0
    for start in range(0, len(y), batch_size):
        idx = order[start:start + batch_size]
        opt.zero_grad(set_to_none=True)
        loss = _loss(model, X[idx], y[idx])
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
        seen += len(idx)
    return total / seen


def evaluate(model, X, y) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) on (X, y), dropout off (an ExitNet: its plain network)."""
    import torch
    import torch.nn.functional as F

    X, y = torch.as_tensor(X), torch.as_tensor(y)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        logits = _logits(model, X)
        loss = float(F.cross_entropy(logits, y))
        acc = float((logits.argmax(dim=1) == y).float().mean())
    model.train(was_training)
    return loss, acc


def softmax_probs(model, X) -> np.ndarray:
    """Class probabilities (N, C), float64, dropout off. An ExitNet gives every exit's: (K, N, C)."""
    import torch

    was_training = model.training
    model.eval()
    with torch.inference_mode():
        out = model(torch.as_tensor(X))
        if isinstance(out, (list, tuple)):
            probs = np.stack([torch.softmax(o, dim=1).double().numpy() for o in out])
        else:
            probs = torch.softmax(out, dim=1).double().numpy()
    model.train(was_training)
    return probs


def mc_dropout_probs(model, X, samples: int, seed: int = 0) -> np.ndarray:
    """MC dropout: ``samples`` forward passes with dropout left on -> probabilities (T, N, C), float64.

    Only the Dropout layers are switched to training mode; the global random state is left as it was.
    """
    import torch
    import torch.nn as nn

    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    if not drops:
        raise ValueError("the model has no Dropout layer: MC dropout needs one")
    was_training = model.training
    X = torch.as_tensor(X)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.eval()
        for m in drops:
            m.train()
        with torch.inference_mode():
            passes = [torch.softmax(model(X), dim=1).double().numpy() for _ in range(samples)]
        out = np.stack(passes)
    model.train(was_training)
    return out


def run_cascade(small, big, X, threshold: float):
    """The deployed cascade on a batch: the small model on every input, the big one only on the inputs
    whose small top probability is not > threshold. Returns (pred, to_big) as torch tensors."""
    import torch

    with torch.inference_mode():
        X = torch.as_tensor(X)
        conf, pred = torch.softmax(small(X), dim=1).max(dim=1)
        to_big = ~(conf > threshold)
        if bool(to_big.any()):
            pred[to_big] = big(X[to_big]).argmax(dim=1)
    return pred, to_big


def cascade_one(small, big, x, threshold: float) -> tuple[int, bool]:
    """The cascade for one input x (1, features): (class, whether the big model was called)."""
    import torch

    with torch.inference_mode():
        conf, cls = torch.softmax(small(x), dim=1).max(dim=1)
        if float(conf) > threshold:
            return int(cls), False
        return int(big(x).argmax(dim=1)), True


def per_input_seconds(fn, inputs: Sequence, repeats: int = 3) -> np.ndarray:
    """Seconds of ``fn(x)`` for each x in ``inputs``: the median of ``repeats`` timed calls each, the
    rounds interleaved (all inputs once, then again) so that a slow spell of the machine is spread
    over every input. A warm-up round runs first, untimed; the garbage collector is off while timing.
    The spread across inputs is the point: a cascade or an early exit is fast for some and slow for others."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats!r}")
    for x in inputs:  # warm-up: first calls allocate and pick kernels
        fn(x)
    times = np.empty((repeats, len(inputs)))
    clock = time.perf_counter
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeats):
            for i, x in enumerate(inputs):
                t0 = clock()
                fn(x)
                times[r, i] = clock() - t0
    finally:
        if gc_was_on:
            gc.enable()
    return np.median(times, axis=0)
