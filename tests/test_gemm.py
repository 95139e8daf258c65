"""sweatlab.topics.gemm: lab 02's reference kernels (dot form, packing, the micro-kernel, the packed driver)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sweatlab.measure import asm, hardware
from sweatlab.topics import gemm
from sweatlab.topics.ladder import error_vs_bound, gamma

SHAPES = [(1, 1, 1), (6, 8, 4), (7, 5, 9), (13, 17, 6), (12, 600, 8), (30, 20, 270), (0, 3, 4), (3, 0, 4)]


@pytest.mark.parametrize("name", ["reference_matmul_micro", "reference_matmul_micro_parallel"])
@pytest.mark.parametrize("m, k, n", SHAPES)
def test_the_micro_kernel_matmuls_are_right_for_odd_shapes_and_several_blocks(name, m, k, n):
    g = np.random.default_rng(m * 100 + k + n)
    A, B = g.random((m, k), dtype=np.float32), g.random((k, n), dtype=np.float32)
    C = getattr(gemm, name)(A, B)
    assert C.shape == (m, n) and C.dtype == np.float32
    if m and n:
        assert error_vs_bound(C, A, B, gamma(max(k, 1))) <= 1


def test_the_dot_form_strict_and_fast_agree_within_the_bound_and_only_fast_is_vectorised():
    g = np.random.default_rng(1)
    Q, K = g.random((9, 70), dtype=np.float32), g.random((5, 70), dtype=np.float32)
    for kernel in (gemm.reference_scores_strict, gemm.reference_scores_fast):
        S = kernel(Q, K)
        assert S.dtype == np.float32 and error_vs_bound(S, Q, K.T, gamma(70)) <= 1
    strict = asm.float_ops(asm.numba_asm(gemm.reference_scores_strict))
    fast = asm.float_ops(asm.numba_asm(gemm.reference_scores_fast))
    packed = [k for k in asm.KINDS if k.startswith("packed")]
    assert sum(strict[k] for k in packed) == 0 and sum(fast[k] for k in packed) > 0


def test_packing_copies_transposes_and_zero_pads():
    g = np.random.default_rng(2)
    A, B = g.random((7, 10), dtype=np.float32), g.random((10, 9), dtype=np.float32)
    Ap = np.full((12, 4), 9.0, dtype=np.float32)
    gemm.pack_a(A, 3, 4, Ap)
    assert np.array_equal(Ap[:7], A[:, 3:7]) and not Ap[7:].any()
    Bp = np.full((8, 5), 9.0, dtype=np.float32)
    gemm.pack_bt(B, 2, 5, 1, 6, Bp)
    assert np.array_equal(Bp[:6], B[2:7, 1:7].T) and not Bp[6:8].any()


def test_the_micro_kernel_adds_24_dot_products_into_its_block():
    g = np.random.default_rng(3)
    Ap, Bp = g.random((8, 16), dtype=np.float32), g.random((6, 16), dtype=np.float32)
    C = np.ones((6, 4), dtype=np.float32)
    gemm.reference_micro_6x4(Ap, Bp, 1, 2, 10, C)
    expected = 1 + Ap[1:7, :10].astype(np.float64) @ Bp[2:6, :10].astype(np.float64).T
    assert np.allclose(C, expected, rtol=gamma(10))


def test_the_kernel_module_leaves_the_labs_stand_ins_to_the_lab():
    """lab 02's stand-in table lives in the lab's package: gemm imports no other topic for it (no gemm <-> isa circle)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(gemm))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m.startswith(("sweatlab.topics", "sweatlab.kit", "sweatlab.labs")) for m in imported), imported
    assert not hasattr(gemm, "STAND_INS") and not hasattr(gemm, "StandIns")


def test_the_driver_runs_any_compiled_micro_kernel_serial_or_parallel():
    g = np.random.default_rng(4)
    A, B = g.random((13, 600), dtype=np.float32), g.random((600, 270), dtype=np.float32)
    for parallel in (False, True):
        C = gemm.matmul_driver(gemm.reference_micro_6x4, parallel)(A, B)
        assert C.shape == (13, 270) and error_vs_bound(C, A, B, gamma(600)) <= 1


def test_the_vector_width_is_left_alone_without_avx512_and_fixed_once_numba_has_compiled():
    info = hardware.describe()
    no512 = dataclasses.replace(info, isa={**info.isa, "avx512f": False})
    assert "no AVX-512" in gemm.match_vector_width(no512)
    gemm.reference_scores_strict(np.ones((1, 1), np.float32), np.ones((1, 1), np.float32))  # numba has compiled now
    assert gemm.codegen_features() is not None
    with512 = dataclasses.replace(info, isa={**info.isa, "avx512f": True})
    assert "compiled already" in gemm.match_vector_width(with512)
