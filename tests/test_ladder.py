"""sweatlab.topics.ladder (lab 01's harness and reference kernels), lab 01's stand-ins, and lab 01 run top
to bottom, blank and solved.

The rule it holds the lab to (COURSE.md, the lab standard): a measurement never waits on an unrelated
exercise; where the learner's code is missing, the lab's stand-in runs instead, with a note, and every
number it makes is labelled " (stand-in)".
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import math
import re

import numpy as np
import pytest

from sweatlab import course as C
from sweatlab.course import figures as F
from sweatlab.kit import open_lab
from sweatlab.kit.standins import stand_ins_of
from sweatlab.labs.lab01_matmul.checks import gamma as checks_gamma
from sweatlab.labs.lab01_matmul.standins import STAND_INS
from sweatlab.topics import ladder as L

from conftest import REPO, lab_namespace

LAB = "01_matmul"
SOURCE = REPO / "solutions" / f"{LAB}.py"
RUNGS = ["python_ijk", "python_ikj", "numpy_rows", "numba_ijk", "numba_ikj", "numba_tiled", "blas"]
WRITTEN_BY_THE_LEARNER = {"matmul_rtol": 1, "matmul_ijk": 2, "inner_strides": 3, "matmul_ikj": 4, "matmul_rows": 5,
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


def test_reference_inner_strides_is_the_row_major_stride_of_each_matrix_along_the_inner_loop():
    assert L.reference_inner_strides("ijk", 100) == (1, 100, 0)  # the lab's own example
    assert L.reference_inner_strides("ikj", 7) == (0, 1, 1) == L.reference_inner_strides("kij", 7)
    assert L.reference_inner_strides("jki", 7) == (7, 0, 7) == L.reference_inner_strides("kji", 7)
    assert L.reference_inner_strides("jik", 5) == (1, 5, 0)


@pytest.mark.parametrize("order", L.LOOP_ORDERS)
def test_every_loop_order_kernel_computes_a_at_b_with_its_loops_in_that_order(order):
    source = L.loop_order_source(order)
    loops = re.findall(r"for (\w) in range\((\w)\)", source)
    assert [v for v, _ in loops] == list(order)
    assert all(bound == {"i": "M", "k": "K", "j": "N"}[v] for v, bound in loops)
    A, B = _rectangular(7, 5, 3)
    C = L.loop_order_kernel(order)(A, B)
    assert C.dtype == np.float32 and L.error_vs_bound(C, A, B, L.gamma(5)) <= 1
    with pytest.raises(ValueError, match="loop order"):
        L.loop_order_source("iij")


def test_the_tiled_trap_demo_is_correct_for_any_tile():
    A, B = _rectangular(13, 11, 17)
    for tile in (1, 4, 64):
        assert L.error_vs_bound(L.demo_matmul_tiled_absolute(A, B, tile), A, B, L.gamma(11)) <= 1


# ---- the lab's stand-ins (sweatlab/labs/lab01_matmul/standins.py) -------------------------------

def test_every_stand_in_loads_a_reference_and_every_rung_function_has_one():
    table = stand_ins_of(LAB)
    assert [s.name for s in STAND_INS] == list(table)  # each function once
    for stand_in in STAND_INS:
        assert callable(stand_in.load()) and stand_in.what
    assert {n: s.exercise for n, s in table.items() if s.exercise} == WRITTEN_BY_THE_LEARNER
    assert table["matmul_numba_ijk"].exercise is None  # given by the setup cell, not an exercise
    assert table["matmul_rtol"].load() is L.gamma and table["matmul_tiled"].load() is L.reference_matmul_tiled
    assert list(L.RUNG_FUNCTIONS) == RUNGS
    assert all(f is None or f in table for f in L.RUNG_FUNCTIONS.values())


def test_each_stand_in_names_the_exercise_whose_heading_asks_for_its_function(solution_nb):
    """The note says "until you write exercise N": N must be the exercise that defines the function."""
    heading = None
    asked = {}
    for cell in solution_nb.cells:
        if cell.cell_type == "markdown":
            found = re.search(r"^### Exercise (\d+)", cell.source, re.M)
            heading = int(found.group(1)) if found else heading
        elif C.sweat_of(cell).get("role") == "answer":
            for name in re.findall(r"^def (\w+)\(", cell.source, re.M):
                asked[name] = heading
    assert asked == WRITTEN_BY_THE_LEARNER


def test_every_stand_in_passes_the_public_checks_of_its_exercise(solution_nb):
    """A stand-in is the course's answer: swapped in for the learner's function, it passes every check of
    that exercise (the tiled kernel's out-of-cache speed test, long, is left to the solution's tests)."""
    from sweatlab.kit.checks import InProcessRunner, load_lab_tests, run_test

    solved = lab_namespace(solution_nb)
    exercise_of = {"matmul_rtol": "rtol", "matmul_ijk": "ijk", "inner_strides": "strides", "matmul_ikj": "ikj",
                   "matmul_rows": "rows", "matmul_numba_ikj": "numba_ikj", "matmul_tiled": "tiled"}
    assert set(exercise_of) == set(WRITTEN_BY_THE_LEARNER)
    for name, exercise in exercise_of.items():
        namespace = {**solved, name: stand_ins_of(LAB)[name].load()}
        tests = [t for t in load_lab_tests(LAB) if t.exercise == exercise and "out of cache" not in t.name]
        results = [run_test(t, InProcessRunner(namespace)) for t in tests]
        assert results and all(r.passed for r in results), [(r.name, r.message) for r in results if not r.passed]


# ---- the harness, with the lab's kit ----------------------------------------------------------

def _lab(said: list | None = None, **functions):
    """Lab 01's kit on a namespace holding ``functions`` (the blank lab's stubs by default), its notes kept."""
    namespace = {name: not_written for name in WRITTEN_BY_THE_LEARNER}
    namespace.update(functions)
    lab = open_lab(LAB, namespace)
    lab.say = said.append if said is not None else None
    return lab, namespace


def test_a_missing_tolerance_is_replaced_by_gamma_with_one_note():
    said = []
    lab, namespace = _lab(said)
    rtol = lab.mine("matmul_rtol")
    assert [rtol(k) for k in (10, 20, 10)] == [L.gamma(10), L.gamma(20), L.gamma(10)]
    assert said == ["(stand-in) matmul_rtol is not written yet: the course's float32 bound gamma_k stands in, "
                    "labelled (stand-in) in text and plots, until you write exercise 1"]
    assert lab.stood_in("matmul_rtol") and lab.label("matmul_rtol", "bound") == "bound (stand-in)"
    namespace["matmul_rtol"] = lambda k: 0.5  # once written, it is used, unlabelled, with no second note
    assert rtol(10) == 0.5
    assert not lab.stood_in("matmul_rtol") and lab.label("matmul_rtol", "bound") == "bound" and len(said) == 1


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


def test_the_lab_meter_carries_the_energy_inputs_read_once(monkeypatch):
    """The lab's meter, the one the notebook's ladder measures every rung with, estimates from the inputs
    read once (here SWEAT_TDP_W and SWEAT_CHIP_CORES), for one core."""
    monkeypatch.setenv("SWEAT_TDP_W", "64")
    monkeypatch.setenv("SWEAT_CHIP_CORES", "16")
    lab, _ = _lab()
    assert (lab.energy.tdp_w, lab.energy.chip_cores, lab.energy.hypothetical) == (64.0, 16, False)
    meter = lab.meter(1)
    assert (meter.tdp_w, meter.host_cores, meter.cores_used) == (64.0, 16, 1)
    ladder = L.Ladder(100.0, 90.0, budget_s=0.05, energy_meter=lambda: lab.meter(1), lab=lab)
    m = ladder.measure("blas", np.matmul, 64)
    assert m.energy is not None and m.energy_kind in ("measured", "estimated")


def test_measure_stands_the_stand_in_in_for_a_missing_kernel_and_marks_the_rung():
    said = []
    lab, namespace = _lab(said)
    ladder = L.Ladder(100.0, 50.0, budget_s=0.01, say=said.append, lab=lab)
    rtol = lab.mine("matmul_rtol")
    for n in (16, 24):
        m = ladder.measure("numba_ikj", namespace["matmul_numba_ikj"], n, rtol=rtol)
        assert m.reference and m.kernel == "matmul_numba_ikj (stand-in)" and m.error <= 1 and m.gflops > 0
    notes = [line for line in said if line.startswith("(stand-in)")]
    assert notes == ["(stand-in) matmul_numba_ikj is not written yet: the course's numba ikj matmul stands in, "
                     "labelled (stand-in) in text and plots, until you write exercise 6",
                     "(stand-in) matmul_rtol is not written yet: the course's float32 bound gamma_k stands in, "
                     "labelled (stand-in) in text and plots, until you write exercise 1"]
    assert set(ladder.gflops["numba_ikj"]) == {16, 24}
    # the learner's kernel, once written, replaces the stand-in's numbers and its mark
    for n in (16, 24):
        mine = ladder.measure("numba_ikj", lambda A, B: A @ B, n)
        assert not mine.reference and mine.kernel == "<lambda>"
    assert not ladder.by_stand_in("numba_ikj") and ladder.label("numba, ikj", "numba_ikj") == "numba, ikj"


def test_a_rung_the_stand_in_measured_is_labelled_stand_in_in_its_timing_line_and_its_label():
    said = []
    lab, namespace = _lab()
    ladder = L.Ladder(100.0, 50.0, budget_s=0.01, say=said.append, lab=lab)
    stood = ladder.measure("numba_tiled", namespace["matmul_tiled"], 20, 8)
    own = ladder.measure("blas", np.matmul, 20)
    line, own_line = (line for line in said if line.startswith("[timing]"))
    assert line.startswith("[timing] numba_tiled (stand-in) n=20 ") and line == ladder.timing_line(stood)
    assert own_line.startswith("[timing] blas         n=20 ") and "(stand-in)" not in own_line
    assert ladder.by_stand_in("numba_tiled") and not ladder.by_stand_in("blas")
    assert ladder.label("numba, tiled ikj", "numba_tiled") == "numba, tiled ikj (stand-in)"
    assert ladder.label("BLAS np.matmul", "blas") == "BLAS np.matmul"
    assert "numba_tiled [20] (stand-in)" in repr(ladder) and "blas [20]" in repr(ladder)
    assert "(matmul_tiled (stand-in))" in repr(stood) and "(stand-in)" not in repr(own)
    # one size measured by the stand-in keeps the rung marked, even once another size is the learner's
    ladder.measure("numba_tiled", L.reference_matmul_tiled, 24, 8)
    assert ladder.by_stand_in("numba_tiled") and ladder.label("t", "numba_tiled") == "t (stand-in)"


def test_measure_of_lists_and_extra_arguments_and_the_kits_pick():
    said = []
    lab, namespace = _lab(said)
    ladder = L.Ladder(100.0, 50.0, budget_s=0.01, lab=lab)
    m = ladder.measure("python_ikj", namespace["matmul_ikj"], 8, lists=True)
    assert m.reference and m.kernel == "matmul_ikj (stand-in)"
    assert ladder.measure("numba_tiled", not_written, 20, 8).kernel == "matmul_tiled (stand-in)"
    A, B = L.random_matrices(10)
    kernel, C = lab.pick("matmul_tiled", A, B, 4)
    assert kernel is L.reference_matmul_tiled and L.error_vs_bound(C, A, B, L.gamma(10)) <= 1
    assert lab.label("matmul_tiled") == "matmul_tiled (stand-in)"
    assert len(said) == 2  # matmul_ikj and matmul_tiled, each noted once


def test_measure_never_times_a_wrong_kernel_and_keeps_a_missing_library_call_an_error():
    lab, _ = _lab()
    ladder = L.Ladder(100.0, 50.0, budget_s=0.01, lab=lab)
    with pytest.raises(L.WrongResult, match="numba_ikj at n=8"):
        ladder.measure("numba_ikj", lambda A, B: A @ B + 1, 8)
    assert "numba_ikj" not in ladder.gflops
    with pytest.raises(NotImplementedError):  # no stand-in for BLAS, nor for a rung the ladder does not know
        ladder.measure("blas", not_written, 8)
    with pytest.raises(NotImplementedError):
        ladder.measure("not_a_rung", not_written, 8)
    with pytest.raises(KeyError, match="no stand-in"):
        lab.pick("not_a_lab_function")
    without_kit = L.Ladder(100.0, 50.0, budget_s=0.01)  # without the lab's kit there is nothing to stand in
    with pytest.raises(NotImplementedError):
        without_kit.measure("numba_ikj", not_written, 8)


def test_the_library_says_nothing_unless_asked():
    out = io.StringIO()
    said = []
    with contextlib.redirect_stdout(out):
        lab, namespace = _lab(said)
        ladder = L.Ladder(100.0, 50.0, budget_s=0.01, lab=lab)
        ladder.measure("numpy_rows", namespace["matmul_rows"], 8)
    assert out.getvalue() == "" and len(said) == 1 and said[0].startswith("(stand-in) matmul_rows")


# ---- lab 01 run cell by cell in a plain namespace, blank and solved ----------------------------

def _run_lab(nb, tmp_path) -> tuple[dict, str, dict]:
    """Exec every code cell but the checks in one namespace, quick mode, headless, as `sweatlab execute`
    would (the figures lab.quote makes collected); (namespace, printed text, figures)."""
    import matplotlib.pyplot as plt

    out = io.StringIO()
    figures = tmp_path / "figures.jsonl"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEAT_QUICK", "1")
        mp.setenv("MPLBACKEND", "Agg")
        mp.setenv("SWEAT_RESULTS_DIR", str(tmp_path))
        mp.setenv(F.FIGURES_ENV, str(figures))
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
    return namespace, out.getvalue(), F.read_run_figures(figures)


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
def test_the_blank_lab_measures_every_rung_with_stand_ins(blank_run):
    namespace, printed, _ = blank_run
    assert "[skipped]" not in printed
    for name, exercise in WRITTEN_BY_THE_LEARNER.items():
        note = f"(stand-in) {name} is not written yet"
        assert printed.count(note) == 1, f"expected one note for {name}, got {printed.count(note)}:\n{printed}"
        assert re.search(rf"^{re.escape(note)}: .* until you write exercise {exercise}$", printed, re.M), name
    values = namespace["rec"]["values"]
    assert all(isinstance(values["gflops"][r], float) and values["gflops"][r] > 0 for r in RUNGS), values["gflops"]
    assert values["stand_in_rungs"] == ["python_ijk", "python_ikj", "numpy_rows", "numba_ikj", "numba_tiled"]
    assert values["best_tile"] in namespace["TILES"]
    assert f"recorded lab 01_matmul in {namespace['where']}: 7 rungs" in printed
    assert "5 of them by the lab's stand-in" in printed


@pytest.mark.slow
def test_the_blank_lab_labels_every_number_a_stand_in_made(blank_run):
    namespace, printed, _ = blank_run
    for rung in ("python_ijk", "python_ikj", "numpy_rows", "numba_ikj", "numba_tiled"):
        assert re.search(rf"^\[timing\] {rung} \(stand-in\) ", printed, re.M), rung
        assert re.search(rf"^{rung} \(stand-in\) +\d", printed, re.M), f"{rung} unmarked in the ladder table"
    for rung in ("numba_ijk", "blas"):  # given by the lab, not exercises: never marked
        assert re.search(rf"^\[timing\] {rung} +n=", printed, re.M), rung
        assert not namespace["ladder"].by_stand_in(rung)
    ticks = [t.get_text() for t in namespace["fig_ladder"].axes[0].get_yticklabels()]
    assert "numba, ikj (stand-in)" in ticks and "numba, ijk" in ticks and "BLAS np.matmul" in ticks
    assert namespace["TILED"] == "matmul_tiled (stand-in)"
    assert namespace["fig_orders"].axes[0].get_xlabel().endswith(" (stand-in)")  # the strides on its ticks
    assert re.search(r"^rtol for n = k = \d+: .* \(stand-in\)$", printed, re.M)  # the stand-in's gamma_k
    assert re.search(r"^order  inner index  strides \(A, B, C\) \(stand-in\)$", printed, re.M)
    assert re.search(r"^numba ikj \(stand-in\) +scalar", printed, re.M)  # its assembly, not the learner's


@pytest.mark.slow
def test_the_solved_lab_needs_no_stand_in(solved_run):
    namespace, printed, _ = solved_run
    assert "(stand-in)" not in printed and "[skipped]" not in printed
    values = namespace["rec"]["values"]
    assert all(values["gflops"][r] > 0 for r in RUNGS) and values["stand_in_rungs"] == []
    assert namespace["TILED"] == "matmul_tiled"
    assert not namespace["fig_orders"].axes[0].get_xlabel().endswith("(stand-in)")


@pytest.mark.slow
def test_the_run_makes_every_figure_the_prose_the_deck_and_the_guide_quote(solution_nb, solved_run, blank_run):
    """Each {{placeholder}} of the lab's prose, and each <!--fig 01_matmul.name--> of its deck and of the
    instructor guide, is a figure the run makes (lab.quote); the blank lab's run makes the same ones."""
    _, _, figures = solved_run
    quoted = {name for cell in solution_nb.cells if cell.cell_type == "markdown"
              for name in F.placeholders(cell.source)}
    assert len(quoted) >= 20 and quoted <= set(figures), sorted(quoted - set(figures))
    for path in (REPO / "slides" / f"{LAB}.md", REPO / "slides" / "INSTRUCTOR.md"):
        names = {name for lab, name, _ in F.QUOTE.findall(path.read_text(encoding="utf-8")) if lab == LAB}
        assert names and names <= set(figures), (path.name, sorted(names - set(figures)))
    assert set(blank_run[2]) == set(figures)
    assert figures["mode"] == "quick" and figures["n_common"] == str(solved_run[0]["N_COMMON"])


def test_the_prose_types_no_figure_of_a_run_by_hand(solution_nb):
    """What the text quotes from its own run is a placeholder: no "on the VM this notebook was run on" figure,
    no "(reference)" label of the old fallback."""
    for cell in solution_nb.cells:
        text = " ".join(cell.source.split())
        assert not re.search(r"(this notebook was run on|on that VM|the run shipped here)", text), cell.id
        assert "(reference)" not in text and "[reference]" not in text, cell.id


def _bound_names(source: str) -> set[str]:
    """Names a cell defines or assigns at any depth (functions, classes, assignments, imports)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return found


def test_the_blank_lab_carries_no_answer_outside_its_answer_cells(solution_nb):
    """Setup and demo cells never define an exercise's function or fall back to a reference themselves: they
    call the kit (lab.mine, lab.pick, Ladder(lab=lab)), so a blank lab holds no answer a learner could take."""
    lab = C.make_lab(solution_nb)
    for cell in lab.cells:
        role = C.sweat_of(cell).get("role")
        if cell.cell_type != "code" or role not in ("setup", "demo"):
            continue
        assert not _bound_names(cell.source) & set(WRITTEN_BY_THE_LEARNER), cell.id
        assert "except NotImplementedError" not in cell.source and "mine_or_reference" not in cell.source, cell.id
        assert not re.search(r"\bC\[i, j\] \+= A\[i, k\] \* B\[k, j\]", cell.source), cell.id  # no inline kernel
    setup = "\n".join(c.source for c in lab.cells if C.sweat_of(c).get("role") == "setup")
    assert "Ladder(" not in setup or "lab=lab" in setup
    assert "reference_matmul_numba_ikj" in setup  # exercise 7's check's baseline, under the course's name


def test_the_energy_inputs_are_the_kits(solution_nb):
    """No TDP inputs or meter factory of the lab's own: the kit's one set of inputs, and its meter."""
    code = [c.source for c in solution_nb.cells if c.cell_type == "code"]
    own = {"MY_TDP_W", "MY_CHIP_CORES", "TDP_W", "CHIP_CORES", "TDP_SOURCE", "ENERGY_JOB", "METER", "rung_meter"}
    for source in code:
        assert not _bound_names(source) & own and "EnergyMeter(" not in source
    assert "energy_meter=lambda: lab.meter(1)" in "\n".join(code)


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
