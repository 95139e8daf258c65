"""sweatlab.topics.ladder (lab 01's harness and reference kernels), and lab 01 run top to bottom, blank and solved.

The rule it holds the lab to (COURSE.md, the lab standard): a measurement never waits on an unrelated
exercise; where the learner's code is missing, the library's reference stands in, with a note.
"""

from __future__ import annotations

import contextlib
import io
import math
import re

import numpy as np
import pytest

from sweatlab import course as C
from sweatlab.topics import ladder as L
from sweatlab.labs.lab01_matmul.checks import gamma as checks_gamma

from conftest import REPO

SOURCE = REPO / "solutions" / "01_matmul.py"
RUNGS = ["python_ijk", "python_ikj", "numpy_rows", "numba_ijk", "numba_ikj", "numba_tiled", "blas"]
WRITTEN_BY_THE_LEARNER = {"matmul_rtol": 1, "matmul_ijk": 2, "matmul_ikj": 4, "matmul_rows": 5,
                          "matmul_numba_ikj": 6, "matmul_tiled": 7}


def not_written(*args, **kwargs):
    raise NotImplementedError("ex-x: replace this line with your code")


# ---- the tolerance -------------------------------------------------------------------------------

def test_gamma_is_k_u_over_one_minus_k_u_and_inf_once_k_u_reaches_one():
    u = 2.0 ** -24
    assert L.UNIT_ROUNDOFF == u == np.finfo(np.float32).eps / 2
    assert L.gamma(1) == pytest.approx(u / (1 - u), rel=1e-15)
    assert L.gamma(1000) == pytest.approx(1000 * u / (1 - 1000 * u), rel=1e-15)
    assert L.gamma(2 ** 23) == 1.0
    assert math.isinf(L.gamma(2 ** 24)) and math.isinf(L.gamma(2 ** 25))
    assert checks_gamma is L.gamma  # the checks use the library's bound, and the old import still works


def test_error_vs_bound_is_the_error_as_a_fraction_of_the_bound():
    A = np.array([[1.0, 2.0]], dtype=np.float32)
    B = np.array([[3.0], [4.0]], dtype=np.float32)  # A @ B = 11, |A| @ |B| = 11
    assert L.error_vs_bound(A @ B, A, B, 1e-3) == 0.0
    assert L.error_vs_bound([[11.0 + 0.011]], A, B, 1e-3) == pytest.approx(1.0)  # lists work too
    assert L.error_vs_bound([[11.022]], A, B, 1e-3) == pytest.approx(2.0)
    assert L.error_vs_bound([[12.0]], A, B, math.inf) == 0.0  # the bound says nothing once k u >= 1


def test_error_vs_bound_of_a_real_float32_matmul_is_within_the_bound_and_a_wrong_one_is_not():
    A, B = L.random_matrices(64)
    assert A.dtype == B.dtype == np.float32 and A.shape == (64, 64)
    assert 0 < L.error_vs_bound(A @ B, A, B, L.gamma(64)) <= 1
    wrong = A @ B
    wrong[3, 5] += 1e-3
    assert L.error_vs_bound(wrong, A, B, L.gamma(64)) > 1


def test_error_vs_bound_demands_exactness_where_the_bound_is_zero_and_rejects_nan_and_wrong_shapes():
    A = np.array([[0.0, 0.0], [1.0, 1.0]], dtype=np.float32)  # row 0 of C must be exactly 0
    B = np.ones((2, 2), dtype=np.float32)
    assert L.error_vs_bound(A @ B, A, B, 1e-3) == 0.0
    assert L.error_vs_bound(A @ B + np.array([[1e-9, 0], [0, 0]]), A, B, 1e-3) == math.inf
    assert not L.error_vs_bound(np.full((2, 2), np.nan), A, B, 1e-3) <= 1
    with pytest.raises(ValueError, match="shape"):
        L.error_vs_bound(np.ones((2, 1)), A, B, 1e-3)


# ---- the references ----------------------------------------------------------------------------

def _rectangular(m, k, n, seed=3):
    g = np.random.default_rng(seed)
    return (0.5 + g.random((m, k))).astype(np.float32), (0.5 + g.random((k, n))).astype(np.float32)


@pytest.mark.parametrize("shape", [(3, 4, 5), (1, 7, 1), (6, 1, 5), (33, 40, 29)])
@pytest.mark.parametrize("name, lists, extra", [
    ("reference_matmul_ijk", True, ()),
    ("reference_matmul_ikj", True, ()),
    ("reference_matmul_rows", False, ()),
    ("reference_matmul_numba_ijk", False, ()),
    ("reference_matmul_numba_ikj", False, ()),
    ("reference_matmul_tiled", False, (4,)),
    ("reference_matmul_tiled", False, (1,)),
    ("reference_matmul_tiled", False, (64,)),  # a tile larger than the matrix
])
def test_every_reference_equals_a_at_b_within_the_bound(name, lists, extra, shape):
    A, B = _rectangular(*shape)
    fn = getattr(L, name)
    C = fn(A.tolist(), B.tolist(), *extra) if lists else fn(A, B, *extra)
    assert np.asarray(C).shape == (shape[0], shape[2])
    assert L.error_vs_bound(C, A, B, L.gamma(shape[1])) <= 1
    if not lists:
        assert C.dtype == np.float32  # the float32 rungs stay float32


def test_the_references_are_exact_on_small_integers():
    g = np.random.default_rng(0)
    A, B = (g.integers(-4, 5, size=s).astype(np.float32) for s in ((5, 3), (3, 6)))
    for C in (L.reference_matmul_ijk(A.tolist(), B.tolist()), L.reference_matmul_ikj(A.tolist(), B.tolist()),
              L.reference_matmul_rows(A, B), L.reference_matmul_numba_ijk(A, B), L.reference_matmul_numba_ikj(A, B),
              L.reference_matmul_tiled(A, B, 2)):
        np.testing.assert_array_equal(np.asarray(C), A @ B)


def test_every_stand_in_names_an_existing_reference_and_every_rung_a_stand_in():
    for name, stand_in in L.STAND_INS.items():
        assert stand_in.name == name and callable(stand_in.function)
    assert {n: s.exercise for n, s in L.STAND_INS.items() if s.exercise} == WRITTEN_BY_THE_LEARNER
    assert list(L.RUNG_FUNCTIONS) == RUNGS
    assert all(f is None or f in L.STAND_INS for f in L.RUNG_FUNCTIONS.values())


# ---- the harness ---------------------------------------------------------------------------------

def test_a_missing_tolerance_is_replaced_by_gamma_with_one_note():
    said = []
    ladder = L.Ladder(100.0, 50.0, say=said.append)
    assert [ladder.mine_or_reference("matmul_rtol", not_written, k) for k in (10, 20, 10)] == [
        L.gamma(10), L.gamma(20), L.gamma(10)]
    assert said == ladder.notes == ["[reference] matmul_rtol is not written yet: the library's gamma_k stands in; "
                                    "write exercise 1 to use yours"]
    assert ladder.by_reference("matmul_rtol")
    assert ladder.mine_or_reference("matmul_rtol", lambda k: 0.5, 10) == 0.5  # once written, it is used
    assert not ladder.by_reference("matmul_rtol") and len(said) == 1


def test_each_rung_carries_its_energy_reading_and_work_per_joule(tmp_path):
    """With an energy meter, a rung's GFLOP per joule is its GFLOP/s over the window's average watts,
    labelled with the reading's kind; without a sensor or an estimate it is unknown, never 0."""
    from sweatlab.measure.energy import EnergyMeter

    no_sensor = dict(rapl_root=tmp_path / "none", nvml_module=None, poll_s=None, use_sensors=False)
    estimated = L.Ladder(100.0, 90.0, budget_s=0.05, energy_meter=lambda: EnergyMeter(
        estimate=True, tdp_w=64.0, host_cores=16, cores_used=1, tdp_source="a test", **no_sensor))
    m = estimated.measure("blas", np.matmul, 64)
    assert m.energy_kind == "estimated" and m.gflop_per_joule is not None
    assert m.gflop_per_joule == pytest.approx(m.gflops / m.energy.average_w)
    assert 0 < m.energy.average_w <= 4.0 + 1e-9  # at most 64 W x 1/16 of the chip
    low, high = m.iqr_gflops
    assert low <= m.gflops <= high
    unknown = L.Ladder(100.0, 90.0, budget_s=0.05, energy_meter=lambda: EnergyMeter(**no_sensor))
    u = unknown.measure("blas", np.matmul, 64)
    assert u.energy_kind == "unavailable" and u.gflop_per_joule is None
    assert "GFLOP per joule unknown" in unknown.timing_line(u)


def test_measure_stands_the_reference_in_for_a_missing_kernel_and_marks_the_rung():
    said = []
    ladder = L.Ladder(100.0, 50.0, budget_s=0.01, say=said.append)
    rtol = lambda k: ladder.mine_or_reference("matmul_rtol", not_written, k)  # noqa: E731
    for n in (16, 24):
        m = ladder.measure("numba_ikj", not_written, n, rtol=rtol)
        assert m.reference and m.kernel == "reference_matmul_numba_ikj" and m.error <= 1 and m.gflops > 0
    notes = [line for line in said if line.startswith("[reference]")]
    assert notes == ["[reference] matmul_numba_ikj is not written yet: the library's reference_matmul_numba_ikj "
                     "stands in; write exercise 6 to use yours",
                     "[reference] matmul_rtol is not written yet: the library's gamma_k stands in; write exercise 1 "
                     "to use yours"]
    assert sum(line.startswith("[timing] numba_ikj (reference)") for line in said) == 2
    assert set(ladder.gflops["numba_ikj"]) == {16, 24}
    assert ladder.by_reference("numba_ikj") and ladder.label("numba, ikj", "numba_ikj") == "numba, ikj (reference)"
    # the learner's kernel, once written, replaces the reference's numbers and its mark
    for n in (16, 24):
        mine = ladder.measure("numba_ikj", lambda A, B: A @ B, n)
        assert not mine.reference
    assert not ladder.by_reference("numba_ikj") and ladder.label("numba, ikj", "numba_ikj") == "numba, ikj"


def test_measure_of_lists_and_extra_arguments_and_pick():
    ladder = L.Ladder(100.0, 50.0, budget_s=0.01)
    m = ladder.measure("python_ikj", not_written, 8, lists=True)
    assert m.reference and m.kernel == "reference_matmul_ikj"
    assert ladder.measure("numba_tiled", not_written, 20, 8).kernel == "reference_matmul_tiled"
    A, B = L.random_matrices(10)
    kernel, C = ladder.pick("matmul_tiled", not_written, A, B, 4)
    assert kernel is L.reference_matmul_tiled and L.error_vs_bound(C, A, B, L.gamma(10)) <= 1
    assert len(ladder.notes) == 2  # matmul_ikj and matmul_tiled, each once


def test_measure_never_times_a_wrong_kernel_and_keeps_a_missing_library_call_an_error():
    ladder = L.Ladder(100.0, 50.0, budget_s=0.01)
    with pytest.raises(L.WrongResult, match="numba_ikj at n=8"):
        ladder.measure("numba_ikj", lambda A, B: A @ B + 1, 8)
    assert "numba_ikj" not in ladder.gflops
    with pytest.raises(NotImplementedError):  # no reference for BLAS, nor for a rung the ladder does not know
        ladder.measure("blas", not_written, 8)
    with pytest.raises(NotImplementedError):
        ladder.pick("not_a_lab_function", not_written)


def test_the_library_says_nothing_unless_asked():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ladder = L.Ladder(100.0, 50.0, budget_s=0.01)
        ladder.measure("numpy_rows", not_written, 8)
    assert out.getvalue() == "" and len(ladder.notes) == 1


# ---- lab 01 run cell by cell in a plain namespace, blank and solved ----------------------------

def _run_lab(nb, tmp_path) -> tuple[dict, str]:
    """Exec every code cell but the checks in one namespace, quick mode, headless; (namespace, printed text)."""
    import matplotlib.pyplot as plt

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEAT_QUICK", "1")
        mp.setenv("MPLBACKEND", "Agg")
        mp.setenv("SWEAT_RESULTS_DIR", str(tmp_path))
        mp.delenv("SWEAT_SLIDES_IMG", raising=False)
        plt.switch_backend("Agg")
        namespace: dict = {"__name__": "__main__"}
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                for cell in nb.cells:
                    if cell.cell_type != "code" or C.sweat_of(cell).get("role") == "check":
                        continue
                    try:
                        exec(compile(cell.source, f"<cell {cell.id}>", "exec"), namespace)
                    except Exception as err:
                        raise AssertionError(f"cell {cell.id} raised {err!r}; it printed:\n{out.getvalue()}") from err
        finally:
            plt.close("all")
    return namespace, out.getvalue()


@pytest.fixture(scope="module")
def solution_nb():
    return C.load_source(SOURCE)


@pytest.fixture(scope="module")
def blank_run(solution_nb, tmp_path_factory):
    return _run_lab(C.make_lab(solution_nb), tmp_path_factory.mktemp("blank"))


@pytest.fixture(scope="module")
def solved_run(solution_nb, tmp_path_factory):
    return _run_lab(solution_nb, tmp_path_factory.mktemp("solved"))


@pytest.mark.slow
def test_the_blank_lab_measures_every_rung_with_references_standing_in(blank_run):
    namespace, printed = blank_run
    assert "[skipped]" not in printed
    for name, exercise in WRITTEN_BY_THE_LEARNER.items():
        note = f"[reference] {name} is not written yet"
        assert printed.count(note) == 1, f"expected one note for {name}, got {printed.count(note)}:\n{printed}"
        assert f"write exercise {exercise} to use yours" in printed
    values = namespace["rec"]["values"]
    assert all(isinstance(values["gflops"][r], float) and values["gflops"][r] > 0 for r in RUNGS), values["gflops"]
    assert values["reference_rungs"] == ["python_ijk", "python_ikj", "numpy_rows", "numba_ikj", "numba_tiled"]
    assert values["best_tile"] in namespace["TILES"]
    assert f"recorded lab 01_matmul in {namespace['where']}: 7 rungs" in printed


@pytest.mark.slow
def test_the_blank_lab_labels_every_rung_the_library_measured(blank_run):
    namespace, printed = blank_run
    for rung in ("python_ijk", "python_ikj", "numpy_rows", "numba_ikj", "numba_tiled"):
        assert re.search(rf"^\[timing\] {rung} \(reference\) ", printed, re.M), rung
        assert re.search(rf"^{rung} \(reference\) +\d", printed, re.M), f"{rung} unmarked in the ladder table"
    for rung in ("numba_ijk", "blas"):  # given by the lab, not exercises: never marked
        assert re.search(rf"^\[timing\] {rung} +n=", printed, re.M), rung
        assert not namespace["ladder"].by_reference(rung)
    ticks = [t.get_text() for t in namespace["fig_ladder"].axes[0].get_yticklabels()]
    assert "numba, ikj (reference)" in ticks and "numba, ijk" in ticks and "BLAS np.matmul" in ticks
    assert namespace["TILED"] == "matmul_tiled (reference)"


@pytest.mark.slow
def test_the_solved_lab_needs_no_reference(solved_run):
    namespace, printed = solved_run
    assert "[reference]" not in printed and "(reference)" not in printed and "[skipped]" not in printed
    values = namespace["rec"]["values"]
    assert all(values["gflops"][r] > 0 for r in RUNGS) and values["reference_rungs"] == []
    assert namespace["TILED"] == "matmul_tiled"


def test_traffic_model_untiled_half_a_flop_per_byte_tiled_about_tile_over_six():
    from sweatlab.topics.ladder import traffic

    assert traffic("numba_ikj", 1024).intensity == pytest.approx(0.5, rel=0.01)
    assert traffic("python_ijk", 1024).flops == 2 * 1024**3
    assert traffic("numba_tiled", 1024, tile=128).intensity == pytest.approx(128 / 6, rel=0.05)
    assert traffic("numba_tiled", 64, tile=128).intensity == pytest.approx(64 / 8)  # one block: A, B, C once, C read too
    assert traffic("blas", 1024).intensity == pytest.approx(1024 / 6)
    with pytest.raises(ValueError, match="tile size"):
        traffic("numba_tiled", 1024)
    with pytest.raises(ValueError, match="no traffic model"):
        traffic("gpu", 1024)
