"""Counting floating-point instructions in generated code: scalar, packed by register width, FMA."""

from __future__ import annotations

import numpy as np

from sweatlab.measure import asm
from sweatlab.topics.ladder import reference_matmul_numba_ijk, reference_matmul_numba_ikj

X86 = """
    vmulss  (%rax,%rcx,4), %xmm1, %xmm2
    vaddss  %xmm2, %xmm0, %xmm0
    vmulps  (%rdx), %ymm3, %ymm4
    vfmadd231ps (%rsi), %zmm5, %zmm6
    vaddpd  %xmm1, %xmm2, %xmm3
    movq    %rax, %rbx
"""
ARM = """
    fmla    v0.4s, v1.4s, v2.4s
    fadd    s0, s0, s1
    fmadd   d0, d1, d2, d3
    ldr     q0, [x0]
"""


def test_x86_and_arm_listings_are_counted_by_kind():
    x = asm.float_ops(X86)
    assert (x["scalar"], x["packed xmm (128 bit)"], x["packed ymm (256 bit)"], x["packed zmm (512 bit)"]) == (2, 1, 1, 1)
    assert x["of which fma"] == 1
    a = asm.float_ops(ARM)
    assert (a["packed neon (128 bit)"], a["scalar"], a["of which fma"]) == (1, 2, 2)


def test_the_compiled_ikj_loop_is_packed_and_ijk_is_scalar_only():
    A = np.ones((32, 32), np.float32)
    reference_matmul_numba_ijk(A, A), reference_matmul_numba_ikj(A, A)
    ijk = asm.float_ops(asm.numba_asm(reference_matmul_numba_ijk))
    ikj = asm.float_ops(asm.numba_asm(reference_matmul_numba_ikj))
    packed = [k for k in asm.KINDS if k.startswith("packed")]
    assert ijk["scalar"] > 0 and sum(ijk[k] for k in packed) == 0, ijk
    assert sum(ikj[k] for k in packed) > 0, ikj
