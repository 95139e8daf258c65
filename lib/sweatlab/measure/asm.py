"""Reading the machine code a compiler made: which floating-point instructions, on which registers.

Evidence, not faith: a loop "vectorised" when its arithmetic runs on packed registers (x86: xmm
with ``ps``/``pd`` forms, ymm = 256 bits, zmm = 512 bits; Arm: NEON ``v0.4s``), and "fused" when
it uses FMA (x86 ``vfmadd...``, Arm ``fmla``/``fmadd``). numba shows its code with
``fn.inspect_asm()``; :func:`numba_asm` takes the first compiled version of a function.

    float_ops(asm_text) -> dict[str, int]   counts per kind: scalar, packed xmm/ymm/zmm (or neon), fma
    numba_asm(dispatcher) -> str            the assembly numba generated (compile it by calling it first)
"""

from __future__ import annotations

import re
from typing import Any

_X86_FP = re.compile(r"^\s*(v?(?:add|sub|mul|div|fn?m(?:add|sub)\d*)(ss|sd|ps|pd))\s+([^\n#;]*)", re.MULTILINE)
_ARM_FP = re.compile(r"^\s*(fadd|fsub|fmul|fdiv|fmla|fmls|fmadd|fmsub|fnmadd|fnmsub)\s+([^\n/;]*)", re.MULTILINE)

KINDS = ("scalar", "packed xmm (128 bit)", "packed ymm (256 bit)", "packed zmm (512 bit)", "packed neon (128 bit)",
         "of which fma")


def float_ops(asm: str) -> dict[str, int]:
    """How many floating-point arithmetic instructions of each kind the text holds (x86 or Arm)."""
    counts = dict.fromkeys(KINDS, 0)
    for mnemonic, form, operands in _X86_FP.findall(asm):
        if form in ("ss", "sd"):
            kind = "scalar"
        elif "zmm" in operands:
            kind = "packed zmm (512 bit)"
        elif "ymm" in operands:
            kind = "packed ymm (256 bit)"
        else:
            kind = "packed xmm (128 bit)"
        counts[kind] += 1
        if "fmadd" in mnemonic or "fmsub" in mnemonic:
            counts["of which fma"] += 1
    for mnemonic, operands in _ARM_FP.findall(asm):
        vector = re.search(r"\bv\d+\.\d+[sdh]\b", operands) is not None
        counts["packed neon (128 bit)" if vector else "scalar"] += 1
        if mnemonic in ("fmla", "fmls", "fmadd", "fmsub", "fnmadd", "fnmsub"):
            counts["of which fma"] += 1
    return counts


def numba_asm(dispatcher: Any) -> str:
    """The assembly of the first compiled signature of a numba function (call it once first)."""
    listings = dispatcher.inspect_asm()
    if not listings:
        raise ValueError(f"{getattr(dispatcher, '__name__', dispatcher)} has not been compiled yet: call it once first")
    return next(iter(listings.values()))
