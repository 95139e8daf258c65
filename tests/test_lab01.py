"""Lab 01_matmul: what is particular to it, above all the plausible wrong answers each check must reject.

What every lab must do (the solution passes every check, the blank lab fails them, one check cell per
exercise in order, the deck, the record, the time estimates) is in tests/test_lab_contract.py.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
import pytest

from sweatlab import course as C
from sweatlab.kit.checks import LabChecks
from sweatlab.labs.lab01_matmul.checks import gamma

from conftest import REPO

LAB = "01_matmul"
SOURCE = REPO / "solutions" / f"{LAB}.py"


def _results(exercise: str, namespace: dict):
    return LabChecks(LAB).results(exercise, namespace)


def _with(namespace: dict, **functions) -> dict:
    return {**namespace, **functions}


def _failed(exercise: str, namespace: dict) -> list[str]:
    return [r.name for r in _results(exercise, namespace) if not r.passed]


# ---- plausible wrong answers, one or more per exercise ----------------------------------------

U = 2.0 ** -24


@pytest.mark.parametrize("wrong, failing_test", [
    (lambda k: k * 2.0 ** -23, "one term is the unit roundoff"),  # machine epsilon instead of u
    (lambda k: math.sqrt(k) * U, "grows linearly with k"),  # the typical error, not a bound
    (lambda k: k * U, "keeps the exact denominator and gives up at ku 1"),  # first order only
    (lambda k: k * U / (1 - k * U), "keeps the exact denominator and gives up at ku 1"),  # no inf: divides by 0
])
def test_rtol_rejects_wrong_formulas(solved, wrong, failing_test):
    assert failing_test in _failed("rtol", _with(solved, matmul_rtol=wrong))


def test_the_tolerance_of_the_checks_is_the_one_the_notebook_derives(solved):
    for k in (1, 128, 1024, 2 ** 23, 2 ** 24):
        assert solved["matmul_rtol"](k) == gamma(k)


def ijk_sum_not_reset(A, B):
    C = [[0.0] * len(B[0]) for _ in A]
    for i in range(len(A)):
        s = 0.0
        for j in range(len(B[0])):
            for k in range(len(B)):
                s += A[i][k] * B[k][j]
            C[i][j] = s
    return C


def ijk_square_bounds(A, B):
    n = len(A)
    C = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            C[i][j] = sum(A[i][k] * B[k][j] for k in range(n))
    return C


def ijk_transposed(A, B):
    return [[sum(A[i][k] * B[j][k] for k in range(len(B))) for j in range(len(B[0]))] for i in range(len(A))]


@pytest.mark.parametrize("wrong", [ijk_sum_not_reset, ijk_square_bounds, ijk_transposed])
def test_ijk_and_ikj_reject_wrong_loops(solved, wrong):
    for exercise, name in (("ijk", "matmul_ijk"), ("ikj", "matmul_ikj")):
        assert _failed(exercise, _with(solved, **{name: wrong}))


def ikj_assigns_instead_of_adding(A, B):
    C = [[0.0] * len(B[0]) for _ in A]
    for i in range(len(A)):
        for k in range(len(B)):
            for j in range(len(B[0])):
                C[i][j] = A[i][k] * B[k][j]
    return C


def test_ikj_rejects_assignment_instead_of_accumulation(solved):
    assert len(_failed("ikj", _with(solved, matmul_ikj=ikj_assigns_instead_of_adding))) >= 3


@pytest.mark.parametrize("wrong", [
    lambda order, n: (1, n, 0),  # always the ijk answer
    lambda order, n: tuple({"i": n, "k": 1, "j": 0}[c] for c in order),  # confuses loops with strides
    lambda order, n: tuple(1 if s == n else n if s == 1 else s  # column-major storage
                           for s in _row_major(order, n)),
])
def test_strides_reject_wrong_models(solved, wrong):
    assert _failed("strides", _with(solved, inner_strides=wrong))


def _row_major(order, n):
    inner = order[-1]
    return tuple(n if inner == r else 1 if inner == c else 0 for r, c in ("ik", "kj", "ij"))


def rows_float64(A, B):
    C = np.zeros((A.shape[0], B.shape[1]))
    for i in range(A.shape[0]):
        for k in range(A.shape[1]):
            C[i] += A[i, k] * B[k]
    return C


def rows_column_of_b(A, B):
    C = np.zeros((A.shape[0], B.shape[1]), dtype=A.dtype)
    for i in range(A.shape[0]):
        for k in range(min(A.shape[1], B.shape[1])):
            C[i, k] = A[i] @ B[:, k]
    return C


def test_rows_rejects_float64_and_wrong_indexing(solved):
    assert _failed("rows", _with(solved, matmul_rows=rows_float64)) == ["stays float32"]
    assert len(_failed("rows", _with(solved, matmul_rows=rows_column_of_b))) >= 3


def numba_ikj_overwrites(A, B):
    C = np.zeros((A.shape[0], B.shape[1]), dtype=A.dtype)
    for i in range(A.shape[0]):
        for k in range(A.shape[1]):
            C[i, :] = A[i, k] * B[k, :]
    return C


@njit  # compiled, as the learner's would be: in plain Python its n = 256 speed test alone takes half a minute
def numba_ikj_square_only(A, B):
    n = A.shape[0]  # every loop bound taken from A's rows
    C = np.zeros((n, n), dtype=A.dtype)
    for i in range(n):
        for k in range(min(n, A.shape[1])):
            for j in range(min(n, B.shape[1])):
                C[i, j] += A[i, k] * B[k, j]
    return C


@pytest.mark.parametrize("wrong", [numba_ikj_overwrites, numba_ikj_square_only])
def test_numba_ikj_rejects_wrong_kernels(solved, wrong):
    assert _failed("numba_ikj", _with(solved, matmul_numba_ikj=wrong))


def test_numba_ikj_speed_check_rejects_a_correct_but_ijk_ordered_kernel(solved):
    # right answers, wrong loop order: only the speed ratio against the ijk reference can tell
    assert _failed("numba_ikj", _with(solved, matmul_numba_ikj=solved["matmul_numba_ijk"])) == [
        "faster than the ijk reference"]


def tiled_drops_the_remainder(A, B, tile):
    M, K = A.shape
    N = B.shape[1]
    C = np.zeros((M, N), dtype=A.dtype)
    for j0 in range(0, N - N % tile, tile):
        for k0 in range(0, K - K % tile, tile):
            C[:, j0:j0 + tile] += A[:, k0:k0 + tile] @ B[k0:k0 + tile, j0:j0 + tile]
    return C


def tiled_overwrites_per_k_block(A, B, tile):
    M, K = A.shape
    N = B.shape[1]
    C = np.zeros((M, N), dtype=A.dtype)
    for j0 in range(0, N, tile):
        for k0 in range(0, K, tile):
            C[:, j0:j0 + tile] = A[:, k0:k0 + tile] @ B[k0:k0 + tile, j0:j0 + tile]
    return C


def tiled_reads_stale_buffer(A, B, tile):
    """Packs into a tile x tile buffer but multiplies the whole buffer, stale rows included."""
    M, K = A.shape
    N = B.shape[1]
    C = np.zeros((M, N), dtype=A.dtype)
    Bt = np.ones((tile, tile), dtype=B.dtype)
    for j0 in range(0, N, tile):
        j1 = min(j0 + tile, N)
        for k0 in range(0, K, tile):
            k1 = min(k0 + tile, K)
            Bt[: k1 - k0, : j1 - j0] = B[k0:k1, j0:j1]
            a = np.zeros((M, tile), dtype=A.dtype)
            a[:, : k1 - k0] = A[:, k0:k1]
            a[:, k1 - k0:] = 1.0
            C[:, j0:j1] += (a @ Bt)[:, : j1 - j0]
    return C


@pytest.mark.parametrize("wrong, failing_test", [
    (tiled_drops_the_remainder, "sizes not a multiple of the tile"),
    (tiled_overwrites_per_k_block, "sizes not a multiple of the tile"),
    (tiled_reads_stale_buffer, "tile of one and tile larger than the matrix"),
])
def test_tiled_rejects_wrong_blocking(solved, wrong, failing_test):
    assert failing_test in _failed("tiled", _with(solved, matmul_tiled=wrong))


# ---- the notebook itself --------------------------------------------------------------------

def test_the_lab_hides_every_solution(solution):
    lab = C.make_lab(solution)
    text = "\n".join(c.source for c in lab.cells)
    assert C.BEGIN not in text and "SWEAT_SLIDES_IMG" not in text  # the author-only cell is dropped
    answers = "\n".join(c.source for c in lab.cells if c.metadata.get("sweat", {}).get("role") == "answer")
    for body in ("s += A[i][k] * B[k][j]", "c_row[jj] += a * b_row[jj]", "k * u / (1 - k * u)"):
        assert body not in answers


def test_exercise_7s_baseline_is_the_courses_kernel_and_no_answer_of_exercise_6(blank):
    """The setup cell binds the untiled ikj that exercise 7's check times against under the course's name
    (the grader takes it from the blank lab); the learner's matmul_numba_ikj stays theirs to write."""
    from sweatlab.topics import ladder

    assert blank["reference_matmul_numba_ikj"] is ladder.reference_matmul_numba_ikj
    a = np.ones((2, 2), dtype=np.float32)
    with pytest.raises(NotImplementedError):
        blank["matmul_numba_ikj"](a, a)
    results = _results("numba_ikj", blank)
    assert results and all(r.not_written for r in results)
