"""Reading oneDNN's verbose log (``ONEDNN_VERBOSE=1``): the ISA it found and the primitives it ran.

    isa_line(log) -> str | None       "Intel AVX-512 with Intel DL Boost ..." (what oneDNN may use on this CPU)
    executed(log) -> list[Primitive]  each primitive executed, in order: kind ("matmul"), implementation, line

oneDNN writes one line per event; the ISA line reads
``onednn_verbose,v1,info,cpu,isa:<words>`` (older releases: ``dnnl_verbose,info,cpu,isa:...``, some
with a timestamp field before ``info``), and an executed primitive
``onednn_verbose,v1,primitive,exec,cpu,<kind>,<implementation>,<propagation>,<memory descriptors>,...``.
The ISA words may hold commas ("with AVX512BW, AVX512VL, and AVX512DQ extensions"), so the ISA is
the rest of its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Primitive", "isa_line", "executed"]

_ISA = re.compile(r"^(?:onednn|dnnl)_verbose,[^\n]*?\bcpu,isa:([^\n]+)$", re.M)
_PREFIXES = ("onednn_verbose", "dnnl_verbose")


@dataclass(frozen=True)
class Primitive:
    """One primitive oneDNN executed: its kind (matmul, inner_product, reorder...), implementation, whole line."""

    kind: str
    impl: str
    line: str

    @property
    def int8_source(self) -> bool:
        """Its source memory is 8-bit integers (``src:s8`` or ``src:u8``): an int8 kernel."""
        return bool(re.search(r"\bsrc:[su]8\b", self.line))


def isa_line(log: str) -> str | None:
    """The ISA oneDNN reports it may use, or None when the log has no ISA line."""
    m = _ISA.search(log)
    return m.group(1).strip() if m else None


def executed(log: str) -> list[Primitive]:
    """Every ``exec`` event on the CPU, in the order of the log."""
    out = []
    for line in log.splitlines():
        if not line.startswith(_PREFIXES):
            continue
        parts = line.split(",")
        if "exec" not in parts:
            continue
        i = parts.index("exec")
        if len(parts) > i + 3 and parts[i + 1] == "cpu":
            out.append(Primitive(parts[i + 2], parts[i + 3] or "(no name)", line))
    return out
