"""Shipped measurements of a GPU server decoding a small language model, with their provenance.

Lab 06 compares its CPU's joules per token with these; they are not measured by the lab.
"""

from __future__ import annotations

PROVENANCE = ("measured once on a cloud VM with one NVIDIA H200 (SXM, 700 W limit), 2026-11-29: "
              "NVML board energy only (not host CPU, memory or cooling); one run each")
# Hugging Face generate of a random GPT-2 small (124 M), bf16, greedy: (batch, tokens/s, J per token).
GENERATE = ((1, 15.5, 8.4), (16, 275.0, 0.47), (256, 3127.0, 0.045))
# The same model's decode step as a chain of matrix-vector products replayed as a CUDA graph:
# (dtype, batch, tokens/s, J per token).
GRAPH = (("bf16", 1, 3695.0, 0.077), ("bf16", 64, 174731.0, 0.0019),
         ("fp32", 1, 2746.0, 0.14), ("fp32", 64, 78743.0, 0.0063))
