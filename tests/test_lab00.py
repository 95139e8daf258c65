"""Lab 00_measure: what is particular to it, above all the plausible mistakes each check must reject.

What every lab must do (the solution passes every check, the blank lab fails them, one check cell per
exercise in order, the deck, the record, the time estimates) is in tests/test_lab_contract.py.
"""

from __future__ import annotations

import statistics
import time

import pytest

from sweatlab.kit.checks import LabChecks

from conftest import REPO

LAB = "00_measure"
SOURCE = REPO / "solutions" / f"{LAB}.py"
NAMESPACE = "__lab00_test__"  # the module name the lab's code runs under
EXERCISES = ["time_it", "matmul_flops", "gflops", "kernel_cost", "attainable_gflops", "bound_by", "predict_seconds"]


def _results(exercise, namespace):
    return LabChecks(LAB).results(exercise, namespace)


def _with(solved, **replacements) -> dict:
    ns = dict(solved)
    ns.update(replacements)
    ns["time_it_on_fake"] = ns["time_it_probe"](ns)  # the probe must see the replaced time_it
    return ns


def _failures(exercise, namespace) -> list[str]:
    return [r.text for r in _results(exercise, namespace) if not r.passed]


# ---------------------------------------------------------------------------------------------
# The lab as built from its source
# ---------------------------------------------------------------------------------------------

def test_seven_exercises_with_several_tests_each():
    counts = {ex: len(_results(ex, {})) for ex in EXERCISES}
    assert all(n >= 2 for n in counts.values()), counts


def test_blank_lab_stubs_keep_the_signatures(blank):
    import inspect

    assert str(inspect.signature(blank["time_it"])) == "(fn, repeats=7, warmup=1, clock=<built-in function perf_counter>)"
    assert list(inspect.signature(blank["kernel_cost"]).parameters) == ["kernel", "n", "itemsize"]


# ---------------------------------------------------------------------------------------------
# Plausible mistakes are caught, with a hint that names them
# ---------------------------------------------------------------------------------------------

def test_matmul_flops_counting_multiply_adds_fails(solved):
    failures = _failures("matmul_flops", _with(solved, matmul_flops=lambda m, n, k: m * n * k))
    assert failures and "multiply-adds; each is 2 FLOPs" in failures[0]


def test_matmul_flops_with_k_minus_one_adds_fails(solved):
    assert _failures("matmul_flops", _with(solved, matmul_flops=lambda m, n, k: m * n * (2 * k - 1)))


def _time_it_mean(fn, repeats=7, warmup=1, clock=time.perf_counter):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    return statistics.fmean(samples)


def _time_it_warmup_timed(fn, repeats=7, warmup=1, clock=time.perf_counter):
    samples = []
    for _ in range(warmup + repeats):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    return statistics.median(samples)


def _time_it_ignores_clock(fn, repeats=7, warmup=1, clock=time.perf_counter):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def _time_it_milliseconds(fn, repeats=7, warmup=1, clock=time.perf_counter):
    return 1000 * _time_it_ignores_clock(fn, repeats, warmup, clock)


def _time_it_upper_middle(fn, repeats=7, warmup=1, clock=time.perf_counter):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    return sorted(samples)[len(samples) // 2]


def _time_it_whole_loop(fn, repeats=7, warmup=1, clock=time.perf_counter):
    for _ in range(warmup):
        fn()
    t0 = clock()
    for _ in range(repeats):
        fn()
    return (clock() - t0) / repeats


def _time_it_always_one_warmup(fn, repeats=7, warmup=1, clock=time.perf_counter):
    fn()  # one untimed call even when warmup=0
    return _solution_like(fn, repeats, warmup - 1, clock)


def _solution_like(fn, repeats, warmup, clock):
    for _ in range(max(warmup, 0)):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    return statistics.median(samples)


@pytest.mark.parametrize("wrong, hint", [
    (_time_it_mean, "that is the mean"),
    (_time_it_warmup_timed, "the warm-up calls are in your samples"),
    (_time_it_ignores_clock, "time each call with the `clock` argument"),
    (_time_it_milliseconds, "looks like milliseconds"),
    (_time_it_upper_middle, "mean of the two middle ones"),
    (_time_it_whole_loop, ""),
    (_time_it_always_one_warmup, "with warmup=0 there is no untimed call"),
])
def test_time_it_mistakes_fail_with_a_hint(solved, wrong, hint):
    failures = _failures("time_it", _with(solved, time_it=wrong))
    assert failures
    assert any(hint in f for f in failures), failures


def test_time_it_probe_uses_the_fake_clock_exactly(solved):
    from sweatlab.labs.lab00_measure.checks import run_fake_timing

    out = run_fake_timing(solved["time_it"], {"durations": [4.0, 0.375, 0.125, 0.25, 1.5, 0.25],
                                              "warmup": 1, "repeats": 5})
    assert out == {"result": 0.25, "calls": 6}


def test_gflops_with_binary_giga_fails(solved):
    failures = _failures("gflops", _with(solved, gflops=lambda f, s: f / s / 2**30))
    assert failures and "giga = 1e9" in failures[0]


def _cost_without_dot_output(kernel, n, itemsize=4):
    cost = dict(_solution_cost(kernel, n, itemsize))
    if kernel == "dot":
        cost["bytes"] = 2 * n * itemsize
        cost["intensity"] = cost["flops"] / cost["bytes"]
    return cost


def _cost_in_elements(kernel, n, itemsize=4):
    cost = dict(_solution_cost(kernel, n, itemsize))
    cost["bytes"] //= itemsize
    cost["intensity"] = cost["flops"] / cost["bytes"]
    return cost


def _cost_matmul_n_cubed(kernel, n, itemsize=4):
    cost = dict(_solution_cost(kernel, n, itemsize))
    if kernel == "matmul":
        cost["flops"] = n**3
        cost["intensity"] = cost["flops"] / cost["bytes"]
    return cost


def _solution_cost(kernel, n, itemsize):
    from sweatlab.labs.lab00_measure.standins import reference_cost

    return reference_cost(kernel, n, itemsize)


@pytest.mark.parametrize("wrong, hint", [
    (_cost_without_dot_output, "the result (one element) is written too"),
    (_cost_in_elements, "you counted elements"),
    (_cost_matmul_n_cubed, "2*n**3 FLOPs"),
])
def test_kernel_cost_mistakes_fail_with_a_hint(solved, wrong, hint):
    failures = _failures("kernel_cost", _with(solved, kernel_cost=wrong))
    assert failures and any(hint in f for f in failures), failures


def test_kernel_cost_returning_a_tuple_fails(solved):
    wrong = lambda kernel, n, itemsize=4: tuple(_solution_cost(kernel, n, itemsize).values())  # noqa: E731
    failures = _failures("kernel_cost", _with(solved, kernel_cost=wrong))
    assert len(failures) == 5 and '"flops", "bytes" and "intensity"' in failures[0]


@pytest.mark.parametrize("wrong, hint", [
    (lambda i, p, b: max(p, b * i), "that is the max"),
    (lambda i, p, b: min(p, b / i), "multiply bandwidth by intensity"),
    (lambda i, p, b: b * i, "cap the result at peak_gflops"),
])
def test_attainable_gflops_mistakes_fail_with_a_hint(solved, wrong, hint):
    failures = _failures("attainable_gflops", _with(solved, attainable_gflops=wrong))
    assert failures and any(hint in f for f in failures), failures


@pytest.mark.parametrize("wrong", [
    lambda i, p, b: "memory" if i < b / p else "compute",           # ridge upside down
    lambda i, p, b: "compute" if i < p / b else "memory",           # labels swapped
    lambda i, p, b: "memory-bound" if i < p / b else "compute-bound",
])
def test_bound_by_mistakes_fail(solved, wrong):
    assert _failures("bound_by", _with(solved, bound_by=wrong))


def _seconds_parts(kernel, n, p, b):
    from sweatlab.labs.lab00_measure.standins import reference_cost

    cost = reference_cost(kernel, n)
    return cost["flops"] / (p * 1e9), cost["bytes"] / (b * 1e9)


@pytest.mark.parametrize("wrong, hint", [
    (lambda k, n, p, b: min(_seconds_parts(k, n, p, b)), "take the max"),
    (lambda k, n, p, b: _seconds_parts(k, n, p, b)[0], "the time of the FLOPs alone"),
    (lambda k, n, p, b: _seconds_parts(k, n, p, b)[1], "the time of the bytes alone"),
    (lambda k, n, p, b: max(_seconds_parts(k, n, p, b)) * 1e9, "multiply them by 1e9"),
    (lambda k, n, p, b: max(_seconds_parts(k, n, p, b)) * 1e3, "milliseconds"),
    (lambda k, n, p, b: sum(_seconds_parts(k, n, p, b)), "perfect overlap"),
])
def test_predict_seconds_mistakes_fail_with_a_hint(solved, wrong, hint):
    failures = _failures("predict_seconds", _with(solved, predict_seconds=wrong))
    assert failures and any(hint in f for f in failures), failures


def test_a_prediction_far_from_the_measurement_fails_against_it(solved):
    """Right on the made-up machines' form but 4x too optimistic about memory: only the measurement catches it."""
    results = _results("predict_seconds", _with(
        solved, predict_seconds=lambda k, n, p, b: max(_seconds_parts(k, n, p, b)[0], _seconds_parts(k, n, p, b)[1] / 4)))
    measured = [r for r in results if "measured here" in r.name]
    assert measured and not measured[0].passed and "within 2x" in measured[0].message, measured
    ok = _results("predict_seconds", solved)
    assert all(r.passed for r in ok), [r.text for r in ok if not r.passed]
    ratios = ok[-1].metrics
    assert 0.5 <= ratios["add: measured / predicted"] <= 2 and 0.5 <= ratios["dot: measured / predicted"] <= 2


def test_a_crash_in_time_it_is_reported_as_time_it(solved):
    def broken(fn, repeats=7, warmup=1, clock=time.perf_counter):
        return undefined_name  # noqa: F821

    results = _results("time_it", _with(solved, time_it=broken))
    assert not any(r.passed for r in results)
    assert results[0].message.startswith("time_it raised NameError")


# ---------------------------------------------------------------------------------------------
# Stand-ins: the blank lab's demo cells run the course's version, noted once and labelled
# ---------------------------------------------------------------------------------------------

def test_every_exercise_has_a_stand_in_that_passes_its_checks(solved):
    from sweatlab.labs.lab00_measure.standins import STAND_INS

    assert [(s.name, s.exercise) for s in STAND_INS] == [(name, i) for i, name in enumerate(EXERCISES, 1)]
    ns = _with(solved, **{s.name: s.load() for s in STAND_INS})
    for exercise in EXERCISES:
        assert not _failures(exercise, ns), (exercise, _failures(exercise, ns))


def _code_cells(nb, roles=("setup", "demo")):
    return [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("sweat", {}).get("role") in roles]


def test_the_blank_lab_carries_no_answer_outside_its_answer_cells(solution):
    """No setup or demo cell defines an exercise's function or imports the course's answers by name:
    a demo that needs one calls lab.mine("fn")."""
    import ast

    from sweatlab import course as C

    blank_nb = C.make_lab(solution)
    assert _code_cells(blank_nb)
    for cell in _code_cells(blank_nb):
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, (ast.FunctionDef, ast.Lambda)):
                assert getattr(node, "name", None) not in EXERCISES, (cell.id, node.name)
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").endswith("standins"), (cell.id, node.module)
                assert not [a.name for a in node.names if a.name.startswith("reference")], (cell.id, node.module)
        assert "mine_or_reference" not in cell.source and "MY_TDP_W" not in cell.source, cell.id


def _run_cell(nb, cell_id: str, namespace: dict) -> dict:
    """Run one code cell of ``nb`` in a copy of ``namespace`` whose ``lab`` is bound to that copy (as the setup
    cell binds it to the kernel's namespace)."""
    from sweatlab.kit import open_lab

    ns = dict(namespace)
    ns["lab"] = open_lab(LAB, ns)
    [cell] = [c for c in nb.cells if c.cell_type == "code" and c.id == cell_id]
    exec(compile(cell.source, f"<cell {cell_id}>", "exec"), ns)
    return ns


def _gflops_inputs(namespace: dict) -> dict:
    from types import SimpleNamespace

    ns = dict(namespace)
    ns.update(n_thr=64, oversub={("as the machine is", 1): SimpleNamespace(median_s=1e-5)})
    return ns


def test_a_blank_demo_needing_unwritten_functions_shows_the_labelled_stand_ins(solution, blank, capsys):
    from sweatlab import course as C

    _run_cell(C.make_lab(solution), "use-gflops", _gflops_inputs(blank))
    out = capsys.readouterr().out
    assert "(stand-in) matmul_flops is not written yet" in out and "(stand-in) gflops is not written yet" in out, out
    work = 2 * 64**3
    assert f"matmul_flops (stand-in) {work:,} FLOPs" in out, out
    assert f"gflops (stand-in) {work / 1e-5 / 1e9:.1f} GFLOP/s" in out, out


def test_the_same_demo_with_the_functions_written_shows_no_stand_in(solution, solved, capsys):
    _run_cell(solution, "use-gflops", _gflops_inputs(solved))
    out = capsys.readouterr().out
    assert "stand-in" not in out, out
    assert f"gflops {2 * 64**3 / 1e-5 / 1e9:.1f} GFLOP/s" in out, out


def test_a_blank_time_it_demo_times_with_the_stand_in_and_says_so(solution, blank, capsys):
    from types import SimpleNamespace

    from sweatlab import course as C

    calls = []
    ns = dict(blank, scale=lambda: calls.append(1), naive_s=1e-3, scale_result=SimpleNamespace(median_s=5e-4))
    ns = _run_cell(C.make_lab(solution), "use-time-it", ns)
    out = capsys.readouterr().out
    assert "(stand-in) time_it is not written yet" in out and "time_it(scale, 21, 1) (stand-in)" in out, out
    assert len(calls) == 22 and ns["time_it_s"] >= 0  # 1 warm-up + 21 timed calls, by the stand-in
