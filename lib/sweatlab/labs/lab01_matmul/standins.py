"""Lab 01's stand-ins: the course's version of each function the lab asks for, run while yours is unwritten.

One per exercise (its number as the lab's heading gives it), and one for the kernel the setup cell
gives (``matmul_numba_ijk``, exercise None). The kernels are in :mod:`sweatlab.topics.ladder`, which
compiles the numba ones only when one is first loaded.
"""

from __future__ import annotations

from sweatlab.kit.standins import StandIn
from sweatlab.topics import ladder


def _ref(name):
    return lambda: getattr(ladder, name)


STAND_INS = [
    StandIn("matmul_rtol", 1, _ref("gamma"), "float32 bound gamma_k"),
    StandIn("matmul_ijk", 2, _ref("reference_matmul_ijk"), "pure-Python ijk matmul"),
    StandIn("inner_strides", 3, _ref("reference_inner_strides"), "stride table"),
    StandIn("matmul_ikj", 4, _ref("reference_matmul_ikj"), "pure-Python ikj matmul"),
    StandIn("matmul_rows", 5, _ref("reference_matmul_rows"), "NumPy row-vectorised matmul"),
    StandIn("matmul_numba_ijk", None, _ref("reference_matmul_numba_ijk"), "numba ijk matmul (given by the lab)"),
    StandIn("matmul_numba_ikj", 6, _ref("reference_matmul_numba_ikj"), "numba ikj matmul"),
    StandIn("matmul_tiled", 7, _ref("reference_matmul_tiled"), "cache-tiled numba matmul"),
]
