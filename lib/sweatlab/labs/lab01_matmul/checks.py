"""Public checks of lab 01_matmul: the matmul ladder from the textbook loop to BLAS.

One section per exercise, in notebook order: rtol, ijk, strides, ikj, rows, numba_ikj, tiled.

Every matmul is compared with a float64 reference ``A @ B`` under the tolerance the lab
derives: a float32 dot product of length k is off by at most ``gamma_k * (|A| @ |B|)``,
with ``gamma_k = k u / (1 - k u)`` and ``u = 2**-24`` (Higham, *Accuracy and Stability of
Numerical Algorithms*, 2nd ed., eq. 3.5). Inputs are positive, so ``|A| @ |B| = A @ B`` and
that bound is exactly ``rtol = gamma_k``: a correct kernel can never fail it, whatever order
it adds in, and a wrong one misses by far more. One test per kernel uses small signed
integers, where float32 arithmetic is exact and any sign or index slip shows.
Inputs are tiny (3x4 @ 4x5 and the like): the grader calls these in a child process with limits.
Two tests are speed ratios, on fresh inputs each round, every result checked: numba_ikj against
the ijk reference of the setup cell, and the tiled kernel against the library's untiled ikj on a
product whose B is larger than the caches. In the grader the trusted process times each call, and
the reference runs from the pristine lab in a process of its own; each threshold is far below the
gain expected.
"""

from __future__ import annotations

import math

import numpy as np

from sweatlab.topics.ladder import gamma  # the bound the lab's harness checks every rung with
from sweatlab.topics.ladder import reference_inner_strides
from sweatlab.kit.checks import RandomArray, Tester, public_test

LAB = "01_matmul"


# ---------------------------------------------------------------------------------------------
# Inputs and the comparison shared by every matmul exercise
# ---------------------------------------------------------------------------------------------

def _positive(t: Tester, shape: tuple[int, int], salt: int) -> np.ndarray:
    """float32 values in [0.5, 1.5): no cancellation, so the bound is a pure relative one."""
    return (0.5 + t.rng(salt).random(shape)).astype(np.float32)


def _small_ints(t: Tester, shape: tuple[int, int], salt: int) -> np.ndarray:
    """Signed integers in [-4, 4] as float32: every product and sum is exact."""
    return t.rng(salt).integers(-4, 5, size=shape).astype(np.float32)


def _reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.float64) @ b.astype(np.float64)


def _expect_matmul(t: Tester, got, a: np.ndarray, b: np.ndarray, what: str, hint: str) -> None:
    t.expect_close(got, _reference(a, b), what=what, rtol=gamma(a.shape[1]), hint=hint)


SHAPE_HINT = ("C has len(A) rows and len(B[0]) columns, and the sum runs over len(B) = len(A[0]); "
              "take each loop bound from the right dimension")
EDGE_HINT = ("with a single row or column every loop still runs over its own dimension; start each "
             "entry of C from 0 and return a 2-D result (a list of rows), even when it is 1x1")
OUTER_HINT = ("a Kx1 @ 1xN product is an outer product: K=1, so C[i][j] = A[i][0] * B[0][j]; "
              "check that the sum over k does not run over m or n")
SIGN_HINT = "with signed whole numbers the exact answer is known: look for a swapped index (A[k][i], B[j][k])"


def _register_matmul_tests(exercise: str, func: str, *, as_lists: bool, extra: tuple = (),
                           args_text: str = "") -> None:
    """The four correctness tests every matmul exercise gets (rectangular, 1xK@Kx1, Kx1@1xN, exact ints)."""

    def inputs(a: np.ndarray, b: np.ndarray) -> tuple:
        return (a.tolist(), b.tolist()) if as_lists else (a, b)

    cases = [
        ("rectangular 3x4 @ 4x5", (3, 4), (4, 5), 2, SHAPE_HINT, _positive),
        ("row times column 1x7 @ 7x1", (1, 7), (7, 1), 1, EDGE_HINT, _positive),
        ("column times row 6x1 @ 1x5", (6, 1), (1, 5), 1, OUTER_HINT, _positive),
        ("signed integers 5x3 @ 3x6 exactly", (5, 3), (3, 6), 1, SIGN_HINT, _small_ints),
    ]
    for index, (name, shape_a, shape_b, points, hint, make) in enumerate(cases):
        def test(t: Tester, shape_a=shape_a, shape_b=shape_b, hint=hint, make=make, index=index) -> None:
            a, b = make(t, shape_a, 2 * index), make(t, shape_b, 2 * index + 1)
            what = f"{func}(A, B{args_text}) for A {shape_a[0]}x{shape_a[1]}, B {shape_b[0]}x{shape_b[1]}"
            got = t.call(func, *inputs(a, b), *extra)
            if make is _small_ints:  # exact in float32: no tolerance at all
                t.expect_close(got, _reference(a, b), what=what, rtol=0.0, hint=hint)
            else:
                _expect_matmul(t, got, a, b, what, hint)

        public_test(LAB, exercise, points=points, name=name)(test)


# ---------------------------------------------------------------------------------------------
# rtol: the float32 tolerance
# ---------------------------------------------------------------------------------------------

@public_test(LAB, "rtol", points=1)
def one_term_is_the_unit_roundoff(t: Tester):
    t.expect_close(t.call("matmul_rtol", 1), gamma(1), rtol=1e-3, what="matmul_rtol(1)",
                   hint="u = 2**-24 (about 5.96e-8) is the unit roundoff of float32: half the machine "
                        "epsilon np.finfo(np.float32).eps = 2**-23, because rounding to nearest is off by at "
                        "most half a step")


@public_test(LAB, "rtol", points=2)
def grows_linearly_with_k(t: Tester):
    for k in (10, 1000, 100_000):
        t.expect_close(t.call("matmul_rtol", k), gamma(k), rtol=1e-3, what=f"matmul_rtol({k})",
                       hint="the worst case adds one rounding per term, so it grows like k u; sqrt(k) u is the "
                            "typical error of random roundings, not a bound")


@public_test(LAB, "rtol", points=1)
def keeps_the_exact_denominator_and_gives_up_at_ku_1(t: Tester):
    t.expect_close(t.call("matmul_rtol", 2 ** 23), 1.0, rtol=1e-6, what="matmul_rtol(2**23), where k u = 1/2",
                   hint="use gamma_k = k u / (1 - k u): the denominator matters once k u is not tiny")
    for k in (2 ** 24, 2 ** 25):
        got = t.call("matmul_rtol", k)
        t.expect(isinstance(got, float) and math.isinf(got) and got > 0,
                 what=f"matmul_rtol({k}) should be math.inf (k u >= 1: the bound says nothing), got {got!r}",
                 hint="return math.inf when k * u >= 1")


# ---------------------------------------------------------------------------------------------
# ijk (and ikj, after strides): pure Python on lists
# ---------------------------------------------------------------------------------------------

_register_matmul_tests("ijk", "matmul_ijk", as_lists=True)


# ---------------------------------------------------------------------------------------------
# strides: what the innermost loop does to each address
# ---------------------------------------------------------------------------------------------

def _expect_strides(t: Tester, order: str, n: int) -> None:
    got = t.call("inner_strides", order, n)
    if isinstance(got, list):
        got = [int(v) if isinstance(v, float) and v.is_integer() else v for v in got]
    t.expect_equal(got, list(reference_inner_strides(order, n)),
                   what=f"inner_strides({order!r}, {n}) as (A, B, C)",
                   hint="the innermost loop is the last letter; in row-major storage element [r, c] sits at "
                        "r*n + c, so a step in the column index moves 1, in the row index n, and an index "
                        "that does not appear in the element moves 0")


@public_test(LAB, "strides", points=1)
def ijk_and_ikj(t: Tester):
    for order in ("ijk", "ikj"):
        _expect_strides(t, order, 100)


@public_test(LAB, "strides", points=2)
def all_six_orders_any_n(t: Tester):
    for order in ("jik", "jki", "kij", "kji", "ijk", "ikj"):
        _expect_strides(t, order, 7)


_register_matmul_tests("ikj", "matmul_ikj", as_lists=True)


# ---------------------------------------------------------------------------------------------
# rows: NumPy does the innermost loop, one row at a time
# ---------------------------------------------------------------------------------------------

_register_matmul_tests("rows", "matmul_rows", as_lists=False)


@public_test(LAB, "rows", points=1)
def stays_float32(t: Tester):
    a, b = _positive(t, (4, 3), 0), _positive(t, (3, 2), 1)
    got = t.call("matmul_rows", a, b)
    t.expect_equal(str(getattr(got, "dtype", type(got).__name__)), "float32",
                   what="the dtype matmul_rows returns for float32 inputs",
                   hint="np.zeros((m, n)) makes float64; allocate C with dtype=A.dtype so the rung computes in "
                        "float32 like the others")


# ---------------------------------------------------------------------------------------------
# numba_ikj: the compiled ikj kernel
# ---------------------------------------------------------------------------------------------

_register_matmul_tests("numba_ikj", "matmul_numba_ikj", as_lists=False)


@public_test(LAB, "numba_ikj", points=1)
def larger_rectangular_33x40_at_40x29(t: Tester):
    a, b = _positive(t, (33, 40), 0), _positive(t, (40, 29), 1)
    _expect_matmul(t, t.call("matmul_numba_ikj", a, b), a, b, what="matmul_numba_ikj(A, B) for 33x40 @ 40x29",
                   hint=SHAPE_HINT)


SPEED_N = 256  # ijk 14.2 ms, ikj 0.72 ms in the shipped notebook's run: long enough to time from outside the sandbox
SPEED_MIN_RATIO = 2.0  # far below the expected gain, so a busy 2-core machine still passes a real ikj


def _speed_inputs(rng: np.random.Generator) -> tuple[RandomArray, RandomArray]:
    """Fresh positive float32 inputs for one timed round (sent as recipes: the request stays small)."""
    return tuple(RandomArray.fresh(rng, (SPEED_N, SPEED_N), "float32", 0.5, 1.5) for _ in range(2))


def _speed_check(got, inputs: tuple, what: str) -> None:
    a, b = inputs
    Tester.expect_close(got, _reference(a, b), what=f"{what} for {SPEED_N}x{SPEED_N} inputs",
                        rtol=gamma(SPEED_N), hint="a timed run must also be right: " + SHAPE_HINT)


@public_test(LAB, "numba_ikj", points=2)
def faster_than_the_ijk_reference(t: Tester):
    ratio = t.speed_ratio("matmul_numba_ikj", "matmul_numba_ijk", _speed_inputs, _speed_check)
    t.expect(ratio >= SPEED_MIN_RATIO,
             what=f"matmul_numba_ikj should run at least {SPEED_MIN_RATIO:g}x faster than the lab's ijk "
                  f"reference matmul_numba_ijk at n = {SPEED_N}; measured {ratio:.2f}x (best time of each over "
                  "interleaved rounds on fresh inputs)",
             hint="keep the loops in i, k, j order with j innermost, so the inner loop walks rows of B and C "
                  "with stride 1; keep @njit on the function")


# ---------------------------------------------------------------------------------------------
# tiled: cache tiling, for any tile size
# ---------------------------------------------------------------------------------------------

_register_matmul_tests("tiled", "matmul_tiled", as_lists=False, extra=(2,), args_text=", tile=2")

TILE_EDGE_HINT = ("the last block of each loop is shorter when the size is not a multiple of tile: end it "
                  "at min(start + tile, size), and loop to the size itself, not to size - size % tile")


@public_test(LAB, "tiled", points=2)
def sizes_not_a_multiple_of_the_tile(t: Tester):
    for (m, k, n), tile in (((7, 10, 9), 4), ((13, 11, 17), 5), ((33, 33, 33), 8)):
        a, b = _positive(t, (m, k), tile), _positive(t, (k, n), tile + 1)
        _expect_matmul(t, t.call("matmul_tiled", a, b, tile), a, b,
                       what=f"matmul_tiled(A, B, tile={tile}) for {m}x{k} @ {k}x{n}", hint=TILE_EDGE_HINT)


@public_test(LAB, "tiled", points=1)
def tile_of_one_and_tile_larger_than_the_matrix(t: Tester):
    for tile in (1, 16):
        a, b = _positive(t, (5, 3), tile), _positive(t, (3, 6), tile + 1)
        _expect_matmul(t, t.call("matmul_tiled", a, b, tile), a, b,
                       what=f"matmul_tiled(A, B, tile={tile}) for 5x3 @ 3x6",
                       hint="tile=1 is the plain loop in blocks of one; a tile larger than the matrix is one "
                            "block clipped to the matrix: the buffer you copy B into must never be read past "
                            "the block's real height and width")


# Out of every cache: B is 6144 x 6144 float32 = 144 MiB, more than the L3 of the CPUs the course
# runs on, so untiled ikj streams all of B from DRAM for each of A's 32 rows while the tiled kernel
# loads each tile of B once and uses it for all 32. On the Zen 4 VM (1 MiB L2, 32 MiB L3), in one
# process, best of 3: ikj 271 ms, tiled 82 ms at tile 128 (3.3x); 2.6x at tile 64, 3.8x at 256.
TILED_SHAPE = (32, 6144, 6144)  # M, K, N
TILED_TILE = 128  # 64 KiB a tile: fits the L2 of every x86 CPU of the last decade
TILED_MIN_RATIO = 1.5  # far below the ~3x expected, so a busy machine still passes a real tiled kernel


def _tiled_inputs(rng: np.random.Generator) -> tuple[RandomArray, RandomArray]:
    m, k, n = TILED_SHAPE
    return RandomArray.fresh(rng, (m, k), "float32", 0.5, 1.5), RandomArray.fresh(rng, (k, n), "float32", 0.5, 1.5)


def _tiled_check(got, inputs: tuple, what: str) -> None:
    a, b = inputs
    m, k, n = TILED_SHAPE
    Tester.expect_close(got, _reference(a, b), what=f"{what} for {m}x{k} @ {k}x{n} inputs", rtol=gamma(k),
                        hint="a timed run must also be right: " + TILE_EDGE_HINT)


@public_test(LAB, "tiled", points=2)
def faster_than_untiled_ikj_out_of_cache(t: Tester):
    m, k, n = TILED_SHAPE
    ratio = t.speed_ratio("matmul_tiled", "reference_matmul_numba_ikj", _tiled_inputs, _tiled_check, rounds=4,
                          fast_args=(TILED_TILE,))
    t.expect(ratio >= TILED_MIN_RATIO,
             what=f"matmul_tiled(A, B, tile={TILED_TILE}) should run at least {TILED_MIN_RATIO:g}x faster than "
                  f"the library's untiled ikj for {m}x{k} @ {k}x{n} (B is {k * n * 4 // 2**20} MiB, larger than "
                  f"the caches); measured {ratio:.2f}x (best time of each over interleaved rounds on fresh inputs)",
             hint="each tile of B must be used for every row of A before the next tile is loaded: loop over the "
                  "tiles (j0, k0) outside and over the rows i inside; copy the tile into Bt once per tile, not "
                  "once per row; keep @njit and the row views")
