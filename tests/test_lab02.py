"""Lab 02_simd: the wrong answers each check must reject, and the lab on a CPU without AVX-512.

What every lab must do (the solution passes every check, the blank lab fails them, one check cell per
exercise in order, the deck, the record, the time estimates) is in tests/test_lab_contract.py.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import io

import numpy as np
import pytest
from numba import njit

from sweatlab import course as C
from sweatlab.kit import Lab
from sweatlab.kit.checks import LabChecks
from sweatlab.labs.lab02_simd import standins
from sweatlab.measure import hardware
from sweatlab.topics import gemm, isa

from conftest import REPO

LAB = "02_simd"
SOURCE = REPO / "solutions" / f"{LAB}.py"


def _with(namespace: dict, **functions) -> dict:
    return {**namespace, **functions}


def _failed(exercise: str, namespace: dict) -> list[str]:
    return [r.name for r in LabChecks(LAB).results(exercise, namespace) if not r.passed]


# ---- exercise 1: the peak ---------------------------------------------------------------------

@pytest.mark.parametrize("wrong, failing_test", [
    (lambda cores, ghz, vb, units, bits=32: cores * ghz * (vb // bits) * units, "one AVX-512 core with two FMA units"),
    (lambda cores, ghz, vb, units, bits=32: cores * ghz * (vb // 8) * units * 2, "one AVX-512 core with two FMA units"),
    (lambda cores, ghz, vb, units, bits=32: ghz * (vb // bits) * units * 2, "cores multiply"),
    (lambda cores, ghz, vb, units, bits=32: cores * ghz * (vb // 32) * units * 2, "narrower numbers fill more lanes"),
])
def test_peak_rejects_wrong_formulas(solved, wrong, failing_test):
    assert failing_test in _failed("peak", _with(solved, peak_gflops=wrong))


# ---- exercise 2: the reduction ----------------------------------------------------------------

@njit(fastmath=True)
def scores_float64(Q, K):
    S = np.empty((Q.shape[0], K.shape[0]))
    for i in range(Q.shape[0]):
        for j in range(K.shape[0]):
            s = 0.0
            for p in range(Q.shape[1]):
                s += Q[i, p] * K[j, p]
            S[i, j] = s
    return S


@njit(fastmath=True)
def scores_like_a_matmul(Q, K):
    """Treats K as a (d, n) matrix, as if computing Q @ K."""
    m, d = Q.shape
    n = K.shape[1]
    S = np.zeros((m, n), dtype=np.float32)
    for i in range(m):
        for j in range(n):
            for p in range(min(d, K.shape[0])):
                S[i, j] += Q[i, p] * K[p, j]
    return S


@njit(fastmath=True)
def scores_sum_not_reset(Q, K):
    S = np.empty((Q.shape[0], K.shape[0]), dtype=np.float32)
    for i in range(Q.shape[0]):
        s = np.float32(0.0)
        for j in range(K.shape[0]):
            for p in range(Q.shape[1]):
                s += Q[i, p] * K[j, p]
            S[i, j] = s
    return S


@njit(fastmath=True)
def scores_off_by_one(Q, K):
    S = np.empty((Q.shape[0], K.shape[0]), dtype=np.float32)
    for i in range(Q.shape[0]):
        for j in range(K.shape[0]):
            s = np.float32(0.0)
            for p in range(Q.shape[1] - 1):
                s += Q[i, p] * K[j, p]
            S[i, j] = s
    return S


def test_reduction_rejects_wrong_kernels(solved):
    assert _failed("reduction", _with(solved, scores_fast=scores_float64)) == ["stays float32"]
    for wrong in (scores_like_a_matmul, scores_sum_not_reset, scores_off_by_one):
        assert len(_failed("reduction", _with(solved, scores_fast=wrong))) >= 3, wrong.__name__


def test_reduction_speed_check_rejects_the_reduction_added_in_order(solved):
    # right answers, no permission to reassociate: only the speed ratio can tell
    assert _failed("reduction", _with(solved, scores_fast=gemm.reference_scores_strict)) == [
        "faster than the strict reference"]


# ---- exercise 3: the numpy switch -------------------------------------------------------------

def _index(dispatch, baseline, keep):
    if keep is None or keep in baseline:
        return 0
    if keep not in dispatch:
        raise ValueError(keep)
    return dispatch.index(keep) + 1


@pytest.mark.parametrize("wrong, failing_test", [
    (lambda d, b, keep: " ".join(d[_index(d, b, keep):][:1]), "numpy 2 on an AVX-512 CPU: keep AVX2"),  # next only
    (lambda d, b, keep: " ".join(b + d[_index(d, b, keep):]), "baseline only"),  # baseline listed too
    (lambda d, b, keep: d[_index(d, b, keep):], "numpy 2 on an AVX-512 CPU: keep AVX2"),  # a list, not the string
    (lambda d, b, keep: " ".join(d[max(0, _index(d, b, keep) - 1):]) if keep else " ".join(d),
     "numpy 2 on an AVX-512 CPU: keep AVX2"),  # disables keep itself
    (lambda d, b, keep: " ".join(d[d.index(keep) + 1:]) if keep in d else " ".join(d), "an unknown name is refused"),
    (lambda d, b, keep: " ".join(t for t in d[_index(d, b, keep):]), "never a baseline name"),
])
def test_isa_switch_rejects_wrong_values(solved, wrong, failing_test):
    assert failing_test in _failed("isa_switch", _with(solved, npy_disable=wrong))


# ---- exercises 4 and 5: the micro-kernel and its parallel version -----------------------------

def _driver(solved, micro_py):
    """The lab's given driver (packed_matmul, its setup cell) around a (wrong) micro-kernel given as plain Python."""
    return solved["packed_matmul"](njit(fastmath=True, error_model="numpy")(micro_py))


def micro_overwrites(Ap, Bp, i, j, kc, Cblk):
    """Assigns the block instead of adding to it: the second k block replaces the first."""
    for r in range(6):
        for c in range(4):
            a, b = Ap[i + r], Bp[j + c]
            s = np.float32(0.0)
            for p in range(kc):
                s += a[p] * b[p]
            Cblk[r, c] = s


def micro_whole_rows(Ap, Bp, i, j, kc, Cblk):
    """Sums over the whole packed row (Ap.shape[1]) instead of kc: stale values in a short k block."""
    for r in range(6):
        for c in range(4):
            a, b = Ap[i + r], Bp[j + c]
            s = np.float32(0.0)
            for p in range(Ap.shape[1]):
                s += a[p] * b[p]
            Cblk[r, c] += s


def micro_swapped(Ap, Bp, i, j, kc, Cblk):
    """Row r of A with row c of B, stored at [c, r]."""
    for r in range(4):
        for c in range(4):
            a, b = Ap[i + r], Bp[j + c]
            s = np.float32(0.0)
            for p in range(kc):
                s += a[p] * b[p]
            Cblk[c, r] += s


@pytest.mark.parametrize("micro_py, failing_test", [
    (micro_overwrites, "two k blocks: K = 600"),
    (micro_whole_rows, "two k blocks: K = 600"),
    (micro_swapped, "one block 6x8 @ 8x4"),
])
def test_micro_rejects_wrong_kernels(solved, micro_py, failing_test):
    failed = _failed("micro", _with(solved, matmul_micro=_driver(solved, micro_py)))
    assert failing_test in failed, failed


def test_micro_speed_check_rejects_a_correct_kernel_without_register_blocking(solved):
    # lab 01's tiled kernel under the new name: right answers, no gain over the reference
    slow = _with(solved, matmul_micro=lambda A, B: solved["matmul_lab01"](A, B))
    assert _failed("micro", slow) == ["faster than lab 01's tiled kernel"]


def parallel_drops_edges(A, B):
    C = (A.astype(np.float64) @ B.astype(np.float64)).astype(np.float32)
    m = A.shape[0]
    if m % 6:
        C[m - m % 6:] = 0.0
    return C


def test_parallel_rejects_a_serial_kernel_and_dropped_edges(solved):
    serial = _failed("parallel", _with(solved, matmul_micro_parallel=gemm.reference_matmul_micro))
    assert serial == ["faster than one thread"]  # right answers, one thread: only the ratio can tell
    assert "edges 7x5 @ 5x9 and 13x40 @ 40x6" in _failed("parallel", _with(solved, matmul_micro_parallel=parallel_drops_edges))


# ---- exercise 6: Amdahl's law -----------------------------------------------------------------

def amdahl_swapped(threads, seconds):
    t1, f = standins.reference_amdahl(threads, seconds)
    return f, t1


def amdahl_from_efficiency(threads, seconds):
    p, t = max(threads), min(seconds)
    return seconds[0], 1 - 1 / (seconds[0] / t) if p > 1 else 0.0


def amdahl_unclipped(threads, seconds):
    slope, intercept = np.polyfit(1.0 / np.array(threads, dtype=float), np.array(seconds, dtype=float), 1)
    return float(intercept + slope), float(intercept / (intercept + slope))


@pytest.mark.parametrize("wrong, failing_test", [
    (amdahl_swapped, "exact times on 1, 2, 4, 8 threads"),
    (amdahl_from_efficiency, "exact times on 1, 2, 4, 8 threads"),
    (amdahl_unclipped, "a serial fraction between 0 and 1"),
])
def test_amdahl_rejects_wrong_fits(solved, wrong, failing_test):
    assert failing_test in _failed("amdahl", _with(solved, amdahl_fit=wrong))


# ---- the notebook itself --------------------------------------------------------------------

def test_the_lab_hides_every_solution(solution):
    lab = C.make_lab(solution)
    answers = "\n".join(c.source for c in lab.cells if c.metadata.get("sweat", {}).get("role") == "answer")
    assert C.BEGIN not in answers and "SWEAT_SLIDES_IMG" not in "\n".join(c.source for c in lab.cells)
    for body in ("vector_bits // bits", "s += q[p] * k[p]", "dispatch.index(keep) + 1", "c53 += y * x3",
                 "for ib in prange", "np.polyfit"):
        assert body not in answers, body


def test_the_parallel_exercise_asks_the_grader_for_two_threads(solution):
    from sweatlab.grading.grader import lab_threads

    assert lab_threads(C.make_lab(solution)) == 2


# ---- the stand-ins, and cells that hold only what the learner writes ----------------------------

KIT_CALLS = ("mine", "pick", "stand_in", "stood_in", "label")


def _code_cells(nb, *roles):
    return [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("sweat", {}).get("role") in roles]


def _exercise_functions(nb) -> dict[str, int]:
    """{function: exercise number}: the functions the answer cells define, numbered in the lab's order."""
    found: dict[str, int] = {}
    for number, cell in enumerate(_code_cells(nb, "answer"), start=1):
        for stmt in ast.parse(cell.source).body:
            if isinstance(stmt, ast.FunctionDef):
                found[stmt.name] = number
    return found


def _kit_names(tree: ast.AST) -> set[str]:
    """The functions a cell asks the lab's kit about: lab.mine("fn"), lab.pick("fn", ...), lab.label("fn", ...)."""
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in KIT_CALLS
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "lab"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)}


def test_each_answer_cell_holds_only_the_function_the_learner_writes(solution):
    """The learner replacing an answer cell must not delete given code (the driver matmul_micro once shared one)."""
    for cell in _code_cells(solution, "answer"):
        body = ast.parse(cell.source).body
        assert body and all(isinstance(stmt, ast.FunctionDef) for stmt in body), cell.id
        for stmt in body:
            code = ast.get_source_segment(cell.source, stmt)
            assert C.BEGIN in code, f"{cell.id}: {stmt.name} is given code in an answer cell; move it to a setup cell"


def test_the_stand_in_table_covers_every_exercise_function_the_demos_call(solution):
    exercises = _exercise_functions(solution)
    table = {s.name: s for s in standins.STAND_INS}
    asked = set()
    for cell in _code_cells(solution, "demo"):  # (a setup cell may call one: the given driver calls micro_6x4)
        tree = ast.parse(cell.source)
        asked |= _kit_names(tree)
        direct = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in exercises}
        assert not direct, f"demo {cell.id} calls {sorted(direct)} itself: go through lab.mine / lab.pick (a stand-in)"
    assert asked - set(table) == set(), f"the demos ask the kit for functions without a stand-in: {asked - set(table)}"
    assert set(exercises) <= asked, f"exercise functions no demo reaches through the kit: {set(exercises) - asked}"
    for name, number in exercises.items():
        assert name in table and table[name].exercise == number, (name, number)
        assert callable(table[name].load()), name


def test_stand_ins_answer_with_one_note_and_label_their_numbers():
    said = []

    def not_written(*args):
        raise NotImplementedError("ex: replace this line with your code")

    namespace = {name: not_written for name in _exercise_functions(C.load_source(SOURCE))}
    lab = Lab(LAB, namespace, say=said.append)
    fn, value = lab.pick("peak_gflops", 1, 2.0, 256, 2)
    assert value == 1 * 2.0 * 8 * 2 * 2 and lab.stood_in("peak_gflops")
    lab.pick("peak_gflops", 1, 2.0, 256, 2)
    assert said == [standins.STAND_INS[0].note()] and "exercise 1" in said[0]
    assert lab.label("peak_gflops", "peak") == "peak (stand-in)"
    assert lab.mine("amdahl_fit")([1, 2], [1.0, 0.6]) == pytest.approx((1.0, 0.2))
    assert lab.mine("npy_disable")(["A", "B"], ["Z"], "A") == "B"
    for s in standins.STAND_INS:  # every stand-in, once used, marks its numbers
        lab.stand_in(s.name)
        assert lab.label(s.name, "GFLOP/s").endswith(" (stand-in)"), s.name
    assert len(said) == len(standins.STAND_INS) and all(n.startswith("(stand-in)") for n in said)
    namespace["peak_gflops"] = lambda *a: 7.0  # once written, yours answers and the label is plain
    assert lab.mine("peak_gflops")(1, 2.0, 256, 2) == 7.0 and lab.label("peak_gflops", "peak") == "peak"


def test_the_given_driver_calls_the_micro_kernel_defined_when_it_runs(blank, solution):
    """Rewriting micro_6x4 takes effect without re-running the driver's cell (numba fixes a kernel's callees when it
    compiles it), and while micro_6x4 is the stub, the check names micro_6x4, not the driver that called it."""
    lab = C.make_lab(solution)
    ns = dict(blank)  # the blank lab run: micro_6x4 is the stub
    exec(compile(_answer(lab, "micro-driver"), "<cell micro-driver>", "exec"), ns)  # the driver, bound to this copy
    results = LabChecks(LAB).results("micro", ns)
    assert results and all(r.not_written and "micro_6x4 is not written yet" in r.message for r in results), [
        r.message for r in results]
    A, B = np.ones((7, 5), np.float32), np.ones((5, 9), np.float32)
    with pytest.raises(NotImplementedError):
        ns["matmul_micro"](A, B)  # compiled here around the stub
    exec(compile(_answer(solution, "ex-micro"), "<cell ex-micro>", "exec"), ns)  # the learner writes it
    assert np.array_equal(ns["matmul_micro"](A, B), np.full((7, 9), 5.0, np.float32))
    parallel = dict(ns)
    exec(compile(_answer(lab, "ex-micro"), "<cell ex-micro>", "exec"), parallel)  # the stub again
    exec(compile(_answer(solution, "ex-parallel"), "<cell ex-parallel>", "exec"), parallel)  # and ex. 5 written
    messages = [r.message for r in LabChecks(LAB).results("parallel", parallel) if not r.passed]
    assert messages and all("micro_6x4 is not written yet" in m for m in messages), messages
    unwritten = [r.message for r in LabChecks(LAB).results("parallel", ns | {"micro_6x4": blank["micro_6x4"]})]
    assert all("matmul_micro_parallel is not written yet" in m for m in unwritten), unwritten  # ex. 5's own stub


def _answer(nb, cell_id: str) -> str:
    [cell] = [c for c in nb.cells if c.id == cell_id]
    return cell.source


# ---- a CPU without AVX-512: the lab's other path ------------------------------------------------

def _no_avx512(machine):
    isa_flags = {k: (False if k.startswith(("avx512", "amx")) else v) for k, v in machine.isa.items()}
    return dataclasses.replace(machine, isa=isa_flags, cpu_model="a CPU without AVX-512 (faked)")


def _cell(nb, cell_id: str) -> str:
    [cell] = [c for c in nb.cells if c.id == cell_id]
    return cell.source


@pytest.mark.skipif(not hardware.describe().arch.lower().startswith(("x86", "amd64")), reason="an x86 test")
def test_the_lab_says_what_it_cannot_measure_without_avx512(solution, monkeypatch):
    """The setup, the ISA table and the vector-width lesson on a faked description with AVX-512 hidden."""
    fake = _no_avx512(hardware.describe())
    monkeypatch.setattr(hardware, "describe", lambda *a, **k: fake)
    monkeypatch.setenv("SWEAT_QUICK", "1")
    namespace: dict = {"__name__": "__main__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for cell_id in ("setup", "isa-machine", "lesson-width"):
            exec(compile(_cell(solution, cell_id), f"<cell {cell_id}>", "exec"), namespace)
    text = out.getvalue()
    assert "no AVX-512 on this CPU" in text  # the setup's width note, and the lesson's skip
    assert "nothing to choose" in text
    assert namespace["WIDTH_ROWS"] == {}  # no fresh process started for a width it cannot choose
    rows = {f.name: f for f in namespace["FAMILIES"]}
    assert rows["AVX-512"].present is False and rows["AVX-512"].peak_gflops is None
    assert rows["AVX2 + FMA"].peak_gflops == pytest.approx(namespace["HW_1"].gflops)  # the peak AVX2 gives
    assert "AVX2" in namespace["HW_1"].isa


def test_with_numpys_avx512_targets_switched_off_the_plan_skips_them_and_says_why():
    """numpy's own report from a fresh process with its AVX-512 dispatch switched off."""
    hidden = "X86_V4 AVX512_ICL AVX512_SPR AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_KNL AVX512_KNM"
    info = isa.dispatch_report({"NPY_DISABLE_CPU_FEATURES": hidden})
    assert not any(t.startswith(("X86_V4", "AVX512")) for t in info["found"]), info
    fake = _no_avx512(hardware.describe())
    switches, skipped = isa.plan(fake, info, "AVX2", "openblas 0.3.31, Haswell kernels, pthreads")
    labels = [f"{s.library}: {s.label}" for s in switches]
    assert not any("AVX-512" in label for label in labels)
    assert any(s.library == "numpy" and "no AVX-512 target" in s.reason for s in skipped)
    assert [s.env for s in switches if s.library == "oneDNN"] == [{"ONEDNN_MAX_CPU_ISA": "SSE41"}]
    assert [s.env for s in switches if s.library == "torch (ATen)"] == [{"ATEN_CPU_CAPABILITY": "default"}]
