"""The corpus: the help topics that ship with Python (never downloaded), its train / held-out split, and
bytes <-> text (the model's vocabulary is the 256 byte values)."""

from __future__ import annotations


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
