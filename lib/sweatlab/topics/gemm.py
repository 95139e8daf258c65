"""Lab 02's matmul kernels in numba: the dot form, and a packed, register-blocked micro-kernel.

The route from lab 01's tiled loop (10-25% of BLAS) to near BLAS, as plain numba loops:

    MR, NR, KC, NC                          the register block (MR x NR entries of C) and the cache blocks
    reference_scores_strict(Q, K)           Q @ K.T, one running sum per entry added in order (no fastmath)
    reference_scores_fast(Q, K)             the same with fastmath: the reduction may be reassociated
    pack_a(A, k0, kc, Ap)                   rows of A, columns k0:k0+kc, copied contiguous; padding rows zero
    pack_bt(B, k0, kc, j0, nc, Bp)          B[k0:k0+kc, j0:j0+nc] transposed into rows of Bp; padding rows zero
    reference_micro_6x4(Ap, Bp, i, j, kc, Cblk)    the micro-kernel: 24 dot products in 24 accumulators
    reference_matmul_micro(A, B)            the packed GEMM around it, one thread
    reference_matmul_micro_parallel(A, B)   the same with prange over row blocks of C (packing stays serial)
    matmul_driver(micro, parallel=False)    that packed GEMM around any compiled micro-kernel
    match_vector_width(machine)             ask numba for vectors as wide as the FMA units (before its first compile)
    codegen_features()                      the CPU features numba's code generator uses in this process

Why the **dot form** (lanes along k, one accumulator per entry of C): numba has no SIMD vector type,
so LLVM keeps a vector in a register only as the loop-carried reduction of a loop it vectorises.
The BLAS micro-kernel's outer-product form (broadcast A, vector of B, k loop outside) cannot be
written that way; the dot form can: 6 x 4 = 24 accumulators, each a vector register once LLVM
vectorises the k loop (fastmath lets it reassociate the sums), 10 loads per 24 FMAs. After the k
loop each accumulator is reduced across its lanes once per KC block.

Why **row views** (``a0 = Ap[i]`` then ``a0[k]`` for ``k in range(kc)``): numba supports Python's
negative indices, so an index LLVM cannot prove non-negative gets a wrap-around select, and the
loop stays scalar. ``range(kc)`` on a 1-D view is provably non-negative.

The kernels are compiled on first use (numba imported only then), like :mod:`sweatlab.topics.ladder`'s.
Which vector width LLVM picks depends on the CPU model it targets (``prefer-256-bit`` tuning on
Intel AVX-512 cores); :func:`match_vector_width` asks for the width of the CPU's FMA units, and
:mod:`sweatlab.topics.isa` runs a kernel in a fresh process with the width forced either way.
Lab 02's stand-ins, which name these kernels, are the lab's own (``sweatlab.labs.lab02_simd.standins``).
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np

__all__ = [
    "MR", "NR", "KC", "NC", "JIT_OPTIONS", "FAST_OPTIONS",
    "reference_scores_strict", "reference_scores_fast", "pack_a", "pack_bt", "reference_micro_6x4",
    "reference_matmul_micro", "reference_matmul_micro_parallel", "reference_matmul_tiled", "matmul_driver",
    "codegen_features", "match_vector_width",
]

MR, NR = 6, 4  # the register block: 6 rows of A x 4 rows of B^T = 24 accumulators (of 32 zmm / 16 ymm registers)
KC = 512  # k block: a 6-row strip of packed A (6 x 512 x 4 B = 12 KiB) stays in L1
NC = 256  # n block: the packed B^T panel (256 x 512 x 4 B = 512 KiB) stays in a 1-2 MiB L2
JIT_OPTIONS = {"error_model": "numpy", "boundscheck": False}
FAST_OPTIONS = {**JIT_OPTIONS, "fastmath": True}


# ## The dot form: Q @ K.T, one reduction per entry

def _scores_strict(Q, K):
    """S = Q @ K.T for float32 Q (m, d) and K (n, d): S[i, j] is the dot product of row i of Q and row j of K,
    added in order in one running sum (IEEE order kept: the loop cannot be vectorised)."""
    m, d = Q.shape
    n = K.shape[0]
    S = np.empty((m, n), dtype=np.float32)
    for i in range(m):
        q = Q[i]
        for j in range(n):
            k = K[j]
            s = np.float32(0.0)
            for p in range(d):
                s += q[p] * k[p]
            S[i, j] = s
    return S


# ## Packing and the micro-kernel

def _pack_a(A, k0, kc, Ap):
    """Ap[i, :kc] = A[i, k0:k0 + kc] for every row of A; rows past A's (padding to a multiple of MR) are zero."""
    M = A.shape[0]
    for i in range(M):
        src = A[i, k0:k0 + kc]
        dst = Ap[i]
        for p in range(kc):
            dst[p] = src[p]
    for i in range(M, Ap.shape[0]):
        dst = Ap[i]
        for p in range(kc):
            dst[p] = 0.0


def _pack_bt(B, k0, kc, j0, nc, Bp):
    """Bp[j, p] = B[k0 + p, j0 + j] for j < nc, p < kc: a block of B transposed, in 8 x 8 tiles (both
    sides then touch few cache lines); rows nc up to the next multiple of NR are zero."""
    for pb in range(0, kc, 8):
        pe = min(pb + 8, kc)
        for jb in range(0, nc, 8):
            je = min(jb + 8, nc)
            for p in range(pe - pb):
                src = B[k0 + pb + p, j0 + jb:j0 + je]
                for j in range(je - jb):
                    Bp[jb + j, pb + p] = src[j]
    for j in range(nc, min(Bp.shape[0], (nc + NR - 1) // NR * NR)):
        dst = Bp[j]
        for p in range(kc):
            dst[p] = 0.0


def _micro_6x4(Ap, Bp, i, j, kc, Cblk):
    """Cblk[r, c] += sum over p < kc of Ap[i + r, p] * Bp[j + c, p], for r < 6 and c < 4: 24 dot products,
    each in its own accumulator, all sharing the 10 loads of one step of p."""
    a0, a1, a2, a3, a4, a5 = Ap[i], Ap[i + 1], Ap[i + 2], Ap[i + 3], Ap[i + 4], Ap[i + 5]
    b0, b1, b2, b3 = Bp[j], Bp[j + 1], Bp[j + 2], Bp[j + 3]
    c00 = c01 = c02 = c03 = np.float32(0.0)
    c10 = c11 = c12 = c13 = np.float32(0.0)
    c20 = c21 = c22 = c23 = np.float32(0.0)
    c30 = c31 = c32 = c33 = np.float32(0.0)
    c40 = c41 = c42 = c43 = np.float32(0.0)
    c50 = c51 = c52 = c53 = np.float32(0.0)
    for p in range(kc):
        x0, x1, x2, x3 = b0[p], b1[p], b2[p], b3[p]
        y = a0[p]
        c00 += y * x0
        c01 += y * x1
        c02 += y * x2
        c03 += y * x3
        y = a1[p]
        c10 += y * x0
        c11 += y * x1
        c12 += y * x2
        c13 += y * x3
        y = a2[p]
        c20 += y * x0
        c21 += y * x1
        c22 += y * x2
        c23 += y * x3
        y = a3[p]
        c30 += y * x0
        c31 += y * x1
        c32 += y * x2
        c33 += y * x3
        y = a4[p]
        c40 += y * x0
        c41 += y * x1
        c42 += y * x2
        c43 += y * x3
        y = a5[p]
        c50 += y * x0
        c51 += y * x1
        c52 += y * x2
        c53 += y * x3
    Cblk[0, 0] += c00
    Cblk[0, 1] += c01
    Cblk[0, 2] += c02
    Cblk[0, 3] += c03
    Cblk[1, 0] += c10
    Cblk[1, 1] += c11
    Cblk[1, 2] += c12
    Cblk[1, 3] += c13
    Cblk[2, 0] += c20
    Cblk[2, 1] += c21
    Cblk[2, 2] += c22
    Cblk[2, 3] += c23
    Cblk[3, 0] += c30
    Cblk[3, 1] += c31
    Cblk[3, 2] += c32
    Cblk[3, 3] += c33
    Cblk[4, 0] += c40
    Cblk[4, 1] += c41
    Cblk[4, 2] += c42
    Cblk[4, 3] += c43
    Cblk[5, 0] += c50
    Cblk[5, 1] += c51
    Cblk[5, 2] += c52
    Cblk[5, 3] += c53


_KERNELS: dict[str, Any] = {}


def _jit(name: str, py_func: Callable, **options: Any) -> Any:
    if name not in _KERNELS:
        from numba import njit

        _KERNELS[name] = njit(**options)(py_func)
    return _KERNELS[name]


def __getattr__(name: str) -> Any:
    """The compiled kernels (PEP 562): numba is imported, and each kernel compiled, on first use."""
    builders = {
        "reference_scores_strict": lambda: _jit(name, _scores_strict, **JIT_OPTIONS),
        "reference_scores_fast": lambda: _jit(name, _scores_strict, **FAST_OPTIONS),
        "pack_a": lambda: _jit(name, _pack_a, **FAST_OPTIONS),
        "pack_bt": lambda: _jit(name, _pack_bt, **FAST_OPTIONS),
        "reference_micro_6x4": lambda: _jit(name, _micro_6x4, **FAST_OPTIONS),
        "reference_matmul_micro": lambda: _build_driver(name, parallel=False),
        "reference_matmul_micro_parallel": lambda: _build_driver(name, parallel=True),
        "reference_matmul_tiled": lambda: __import__("sweatlab.topics.ladder", fromlist=["x"]).reference_matmul_tiled,
    }
    if name in builders:
        return builders[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def matmul_driver(micro: Any, parallel: bool = False) -> Any:
    """The packed GEMM around a compiled 6 x 4 micro-kernel ``micro(Ap, Bp, i, j, kc, Cblk)``, which adds
    a block of A @ B into Cblk: A and B^T packed in cache blocks, each 6 x 4 block of C from the
    micro-kernel, a block that sticks out of C computed in an edge buffer first. With ``parallel``,
    the row blocks of C are shared out among numba's threads (``prange``; without it, a plain loop):
    no two threads write the same row, and the packing stays on one thread, the serial part
    Amdahl's law is about. The library's kernels are this driver around its own micro-kernel; the
    tests wrap wrong micro-kernels in it."""
    from numba import njit, prange

    pack_a, pack_bt = (getattr(sys.modules[__name__], n) for n in ("pack_a", "pack_bt"))

    @njit(parallel=parallel, **FAST_OPTIONS)
    def matmul(A, B):
        M, K = A.shape
        N = B.shape[1]
        C = np.zeros((M, N), dtype=np.float32)
        Ap = np.empty(((M + MR - 1) // MR * MR, max(1, min(KC, K))), dtype=np.float32)
        Bp = np.empty((max(NR, min(NC, (N + NR - 1) // NR * NR)), max(1, min(KC, K))), dtype=np.float32)
        for k0 in range(0, K, KC):
            kc = min(KC, K - k0)
            pack_a(A, k0, kc, Ap)
            for j0 in range(0, N, NC):
                nc = min(NC, N - j0)
                pack_bt(B, k0, kc, j0, nc, Bp)
                for ib in prange((M + MR - 1) // MR):  # whole row blocks per thread: no shared writes
                    i = ib * MR
                    edge = np.zeros((MR, NR), dtype=np.float32)  # one per row block: never shared
                    for j in range(0, nc, NR):
                        if i + MR <= M and j + NR <= nc:
                            micro(Ap, Bp, i, j, kc, C[i:i + MR, j0 + j:j0 + j + NR])
                        else:
                            edge[:] = 0.0
                            micro(Ap, Bp, i, j, kc, edge)
                            for r in range(min(MR, M - i)):
                                for c in range(min(NR, nc - j)):
                                    C[i + r, j0 + j + c] += edge[r, c]
        return C

    return matmul


def _build_driver(name: str, parallel: bool) -> Any:
    if name not in _KERNELS:
        _KERNELS[name] = matmul_driver(getattr(sys.modules[__name__], "reference_micro_6x4"), parallel)
    return _KERNELS[name]


# ## Which vector width numba generates

def codegen_features() -> str | None:
    """The CPU features numba's code generator uses in this process (None before its first compile)."""
    try:
        from numba.core.registry import cpu_target
    except ImportError:
        return None
    if "_toplevel_target_context" not in vars(cpu_target):
        return None
    return cpu_target.target_context.codegen()._tm_features


def match_vector_width(machine: Any = None, vendor_family: tuple | None = None) -> str:
    """Make numba generate vectors as wide as this CPU's FMA units (call before numba's first compile).

    LLVM chooses a preferred vector width per CPU model: it tunes Intel's AVX-512 cores to prefer
    256-bit vectors (the ``prefer-256-bit`` tuning flag) although their units are 512 bits wide,
    and lets AMD Zen 4 use 512-bit ones although its units are 256 bits wide and run each 512-bit
    instruction as two halves. Where AVX-512 is present, this appends ``-prefer-256-bit`` (units of
    512 bits) or ``+prefer-256-bit`` (units of 256 bits, see :func:`sweatlab.measure.peak.core_type`) to the
    feature string numba gives LLVM. Returns one line saying what was done and why.
    """
    import os

    from sweatlab.measure import peak

    if machine is None:
        from sweatlab.measure.hardware import describe

        machine = describe()
    if not machine.isa.get("avx512f"):
        return ("no AVX-512 on this CPU: numba keeps LLVM's choice (256-bit ymm with AVX2, 128-bit NEON on Arm); "
                "nothing to ask for")
    if codegen_features() is not None:
        return ("numba has compiled already in this process, so its target is fixed: restart the kernel and run "
                "the setup cell first to choose the vector width")
    if os.environ.get("NUMBA_CPU_FEATURES"):
        return "NUMBA_CPU_FEATURES is set already (by you): left as it is"
    if vendor_family is None:
        vendor_family = peak._x86_vendor_family()
    units = peak.core_type(machine.isa, machine.arch, *vendor_family, machine.os).vector_bits
    import llvmlite.binding as ll
    from numba.core import config

    flag = "-prefer-256-bit" if units >= 512 else "+prefer-256-bit"
    os.environ["NUMBA_CPU_FEATURES"] = ll.get_host_cpu_features().flatten() + "," + flag
    config.reload_config()
    width = 512 if units >= 512 else 256
    return (f"AVX-512 present, FMA units {units} bits wide: numba asked for {width}-bit vectors "
            f"(NUMBA_CPU_FEATURES = this CPU's features + {flag})")
