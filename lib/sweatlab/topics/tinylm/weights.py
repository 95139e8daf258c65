"""The shipped weights of the quality model: where they are, their SHA-256, and loading them.

The file is package data (``sweatlab/assets/tinylm_1m.pt``). How it was trained is stored with it
(``meta``) and told in :mod:`sweatlab.topics.tinylm.train`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from sweatlab.topics.tinylm.model import Config, TinyLM

ASSETS = Path(__file__).resolve().parents[2] / "assets"
WEIGHTS = ASSETS / "tinylm_1m.pt"
# SHA-256 of the shipped weights, checked by load_quality_model().
WEIGHTS_SHA256 = "19e33c0fcbd2d75254d002e307bcb743bb20938c6a946819722e272406413e0b"


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_model(path) -> TinyLM:
    """A model from a weights file the course wrote (``train`` or a checkpoint), its checksum unchecked."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = TinyLM(Config(**blob["config"]))
    model.load_state_dict({k: v.float() for k, v in blob["state"].items()})
    model.eval()
    model.meta = dict(blob.get("meta", {}))
    return model


def load_quality_model(path=WEIGHTS, sha256: str | None = None) -> TinyLM:
    """Load the shipped, trained quality model; refuse it if its checksum differs."""
    path = Path(path)
    expect = WEIGHTS_SHA256 if sha256 is None else sha256
    got = sha256_file(path)
    if expect and got != expect:
        raise ValueError(f"{path.name}: SHA-256 {got} does not match the expected {expect}")
    return load_model(path)
