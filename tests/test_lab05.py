"""Lab 05_perf_per_watt: what is particular to it, above all the plausible mistakes each check must reject.

What every lab must do (the solution passes every check, the blank lab fails them, one check cell per
exercise in order, the deck, the record, the time estimates) is in tests/test_lab_contract.py.
"""

from __future__ import annotations

import math
import re

import pytest

from sweatlab.kit.checks import LabChecks

from conftest import REPO

LAB = "05_perf_per_watt"
SOURCE = REPO / "solutions" / f"{LAB}.py"
NAMESPACE = "__lab05_test__"  # the module name the lab's code runs under
EXERCISES = ["bytes_per_token", "tokens_per_joule", "step_model", "compute_bound_batch", "choose_device",
             "compute_optimal"]


def _failures(exercise, namespace) -> list[str]:
    return [r.text for r in LabChecks(LAB).results(exercise, namespace) if not r.passed]


def _with(solved, **replacements) -> dict:
    ns = dict(solved)
    ns.update(replacements)
    return ns


def test_six_exercises_with_several_tests_each():
    assert LabChecks(LAB).exercises == EXERCISES
    counts = {ex: len(LabChecks(LAB).results(ex, {})) for ex in EXERCISES}
    assert all(n >= 2 for n in counts.values()), counts


# --- bits vs bytes ----------------------------------------------------------------------------

def test_bytes_per_token_in_bits_fails(solved):
    failures = _failures("bytes_per_token", _with(solved, bytes_per_token=lambda n, bits: n * bits))
    assert failures and "that is bits, not bytes" in failures[0]


def test_tokens_per_joule_with_bits_for_bytes_fails(solved):
    bad = lambda n, bits, bw, w: bw * 1e9 / (n * bits) / w  # noqa: E731
    failures = _failures("tokens_per_joule", _with(solved, tokens_per_joule=bad))
    assert failures and "bits, not bytes" in failures[0]


def test_compute_bound_batch_with_bits_fails(solved):
    bad = lambda peak, bw, bpp: max(1, math.ceil(peak / bw * bpp * 8 / 2 - 1e-9))  # noqa: E731
    failures = _failures("compute_bound_batch", _with(solved, compute_bound_batch=bad))
    assert failures and "already in bytes" in failures[0]


# --- per watt inverted -------------------------------------------------------------------------

def test_tokens_per_joule_inverted_fails(solved):
    bad = lambda n, bits, bw, w: w / (bw * 1e9 / (n * bits / 8))  # noqa: E731  joules per token
    failures = _failures("tokens_per_joule", _with(solved, tokens_per_joule=bad))
    assert failures and "joules per token" in failures[0]


def test_step_model_per_joule_inverted_fails(solved):
    good = solved["step_model"]

    def bad(*args):
        r = dict(good(*args))
        r["per_joule"] = args[5] / r["per_second"]
        return r

    failures = _failures("step_model", _with(solved, step_model=bad))
    assert failures and "joules per input" in failures[0]


# --- peak vs TDP confusion ---------------------------------------------------------------------

def test_step_model_dividing_flops_by_watts_fails(solved):
    good = solved["step_model"]

    def bad(n, batch, bpp, peak, bw, watts):  # watts where the peak belongs
        return good(n, batch, bpp, watts, bw, watts)

    failures = _failures("step_model", _with(solved, step_model=bad))
    assert failures and "divided the FLOPs by the watts" in " ".join(failures)


# --- forgetting that the batch reuses the weights ----------------------------------------------

def test_step_model_reading_weights_per_input_fails(solved):
    def bad(n, batch, bpp, peak, bw, watts):
        s = max(2 * n * batch / (peak * 1e9), n * bpp * batch / (bw * 1e9))
        return {"seconds": s, "per_second": batch / s, "per_joule": batch / s / watts,
                "bound": "compute" if 2 * n * batch / (peak * 1e9) >= n * bpp * batch / (bw * 1e9) else "memory"}

    failures = _failures("step_model", _with(solved, step_model=bad))
    assert failures and "the batch reuses the weights" in " ".join(failures)


def test_compute_bound_batch_never_reached_fails(solved):
    failures = _failures("compute_bound_batch", _with(solved, compute_bound_batch=lambda p, b, x: math.inf))
    assert failures and "reuses the weights" in failures[0]


# --- the fastest device, ignoring the energy budget ----------------------------------------------

def test_choosing_the_fastest_fails(solved):
    bad = lambda opts, lat, e: min(opts, key=lambda o: o["seconds"])["name"]  # noqa: E731
    failures = _failures("choose_device", _with(solved, choose_device=bad))
    assert failures and "fastest device is not the answer" in failures[0]


def test_choosing_the_fastest_within_latency_only_fails(solved):
    def bad(opts, lat, e):
        ok = [o for o in opts if o["seconds"] <= lat]
        return min(ok, key=lambda o: o["seconds"])["name"] if ok else None

    assert _failures("choose_device", _with(solved, choose_device=bad))


def test_choosing_the_most_frugal_ignoring_latency_fails(solved):
    bad = lambda opts, lat, e: min(opts, key=lambda o: o["joules"])["name"]  # noqa: E731
    failures = _failures("choose_device", _with(solved, choose_device=bad))
    assert failures and ("misses the latency budget" in " ".join(failures) or "return None" in " ".join(failures))


# --- training compute ----------------------------------------------------------------------------

def test_compute_optimal_with_forward_flops_only_fails(solved):
    bad = lambda c: {"params": math.sqrt(c / 40), "tokens": 20 * math.sqrt(c / 40)}  # noqa: E731
    failures = _failures("compute_optimal", _with(solved, compute_optimal=bad))
    assert failures and "6 N D" in failures[0]


def test_compute_optimal_without_square_root_fails(solved):
    failures = _failures("compute_optimal", _with(solved, compute_optimal=lambda c: {"params": c / 120,
                                                                                     "tokens": c / 6}))
    assert failures and "square root" in failures[0]


# --- the blank lab's demos: the learner's function, or the labelled stand-in, never an inline answer ----------

# The demo cells that need an exercise's function, and the functions each one calls through lab.mine.
DEMOS_NEEDING_ANSWERS = {
    "decode-table": ["bytes_per_token", "tokens_per_joule"],
    "model-table": ["step_model", "compute_bound_batch"],
    "decide": ["choose_device"],
    "optimal-demo": ["compute_optimal"],
}
# What each demo needs from the cells before it that measure this machine (a fixed stand-in for them here).
_FAKE_MACHINE = ('MINE = D.this_machine({"fp32": 200.0, "bf16": 400.0}, 30.0, name="this machine (test)")\n'
                 "mine_roof = None\n")
_RUN = ["setup", "<answers>", "<machine>", "roofline-plot", "decode-table", "model-table", "model-plot", "decide",
        "optimal-demo"]


def _run_demos(nb, replace: dict | None = None) -> tuple[dict, str]:
    """Run the setup cell, the answer cells and the demos of _RUN in a fresh ``__main__`` module (where the
    setup cell's open_lab finds the notebook's functions), quick mode, headless: (namespace, printed text).
    ``replace`` puts functions into the namespace after the answer cells: a learner's own versions."""
    import contextlib
    import io
    import sys
    import types

    import matplotlib.pyplot as plt

    cells = {c.id: c for c in nb.cells}
    answers = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("sweat", {}).get("role") == "answer"]
    module = types.ModuleType("__main__")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEAT_QUICK", "1")
        mp.setenv("MPLBACKEND", "Agg")
        mp.setitem(sys.modules, "__main__", module)
        for var in ("SWEAT_TDP_W", "SWEAT_CHIP_CORES", "SWEAT_FIGURES_OUT"):
            mp.delenv(var, raising=False)
        plt.switch_backend("Agg")
        try:
            with contextlib.redirect_stdout(out):
                for step in _RUN:
                    if step == "<answers>":
                        sources = [(c.id, c.source) for c in answers]
                    elif step == "<machine>":
                        sources = [("fake-machine", _FAKE_MACHINE)]
                        module.__dict__.update(replace or {})
                    else:
                        sources = [(step, cells[step].source)]
                    for cid, source in sources:
                        try:
                            exec(compile(source, f"<cell {cid}>", "exec"), module.__dict__)
                        except Exception as err:
                            raise AssertionError(f"cell {cid} raised {err!r}; it printed:\n{out.getvalue()}") from err
        finally:
            plt.close("all")
    return module.__dict__, out.getvalue()


@pytest.fixture(scope="module")
def blank_demos(solution):
    from sweatlab import course as C

    return _run_demos(C.make_lab(solution))


@pytest.fixture(scope="module")
def solved_demos(solution):
    return _run_demos(solution)


def test_the_demos_needing_answers_call_them_through_the_kit(solution):
    from sweatlab.kit.lab import Lab

    found = {}
    for cell in solution.cells:
        if cell.cell_type == "code" and cell.metadata.get("sweat", {}).get("role") == "demo":
            called = re.findall(r'lab\.mine\("(\w+)"\)', cell.source)
            if called:
                found[cell.id] = called
    assert found == DEMOS_NEEDING_ANSWERS
    assert sorted(n for ns in found.values() for n in ns) == sorted(Lab(LAB, {}, say=None).stand_ins)


def test_no_setup_or_demo_cell_of_the_blank_lab_defines_an_exercise_function(solution):
    from sweatlab import course as C

    for cell in C.make_lab(solution).cells:
        role = cell.metadata.get("sweat", {}).get("role")
        if cell.cell_type == "code" and role in ("setup", "demo"):
            defined = re.findall(r"^\s*(?:def\s+(\w+)|(\w+)\s*=)", cell.source, re.M)
            names = {a or b for a, b in defined}
            assert not names & set(EXERCISES), (cell.id, names & set(EXERCISES))
            assert "mine_or_reference" not in cell.source and "NotImplementedError" not in cell.source, cell.id


def test_the_blank_lab_s_demos_run_on_the_stand_ins_and_label_them(blank_demos):
    ns, printed = blank_demos
    for fn in [n for ns_ in DEMOS_NEEDING_ANSWERS.values() for n in ns_]:
        note = f"(stand-in) {fn} is not written yet"
        assert printed.count(note) == 1, f"expected one note for {fn}, got {printed.count(note)}:\n{printed}"
    assert re.search(r"MB read per token \(stand-in\)", printed)
    assert re.search(r"GB/s per W +tokens/J \(stand-in\)", printed)
    assert "from step_model (stand-in); the last column from compute_bound_batch (stand-in)" in printed
    choices = re.findall(r"-> (.+?) \(\d", printed)
    assert len(choices) == 4 and all(c.endswith(" (stand-in)") for c in choices), choices
    assert printed.count("B tokens, from compute_optimal (stand-in)") == 2
    ax = ns["fig_model"].axes[0]
    assert ax.get_ylabel().endswith(" (stand-in)") and ax.get_title().endswith(" (stand-in)")
    assert all(ns["lab"].stood_in(fn) for fn in ns["lab"].stand_ins)


def test_the_stand_ins_give_the_solution_s_numbers_and_the_solution_needs_none(blank_demos, solved_demos):
    (blank, _), (solved, printed) = blank_demos, solved_demos
    assert "stand-in" not in printed
    assert not solved["fig_model"].axes[0].get_ylabel().endswith(" (stand-in)")
    assert [(t, d.name) for t, d in blank["decode_rows"]] == [(t, d.name) for t, d in solved["decode_rows"]]
    assert blank["model_rows"] == solved["model_rows"] and blank["bound_from"] == solved["bound_from"]
    assert blank["decisions"] == solved["decisions"] and len(set(solved["decisions"].values())) > 1


def test_the_demos_use_the_learner_s_functions_once_written(solution, solved_demos):
    """A demo that computed an answer inline would print the course's numbers whatever the learner wrote."""
    doubled = lambda n, bits, bw, w: 2 * bw * 1e9 / (n * bits / 8) / w  # noqa: E731
    frugal = lambda options, latency, energy: min(options, key=lambda o: o["joules"])["name"]  # noqa: E731
    slow = lambda c: {"params": 1.0, "tokens": 20.0}  # noqa: E731
    few = lambda peak, bw, bpp: 7  # noqa: E731
    ns, printed = _run_demos(solution, {"tokens_per_joule": doubled, "choose_device": frugal, "compute_optimal": slow,
                                        "compute_bound_batch": few})
    ref_ns = solved_demos[0]
    assert [t for t, _ in ns["decode_rows"]] == pytest.approx([2 * t for t, _ in ref_ns["decode_rows"]])
    assert set(ns["bound_from"].values()) == {7}
    assert ns["decisions"] != ref_ns["decisions"]  # the tight-latency scenario: the frugal pick misses the budget
    assert printed.count("0.0 M parameters on 0.00 B tokens") == 2
    assert "stand-in" not in printed


def test_every_stand_in_passes_the_lab_s_public_checks():
    from sweatlab.kit.lab import Lab

    lab = Lab(LAB, {}, say=None)
    namespace = {name: lab.stand_ins[name].load() for name in lab.stand_ins}
    for exercise in EXERCISES:
        assert not _failures(exercise, namespace), exercise
