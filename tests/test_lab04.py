"""Lab 04_less: what is particular to it, above all the plausible wrong answers each check must reject.

What every lab must do (the solution passes every check, the blank lab fails them, one check cell per
exercise in order, the deck, the record, the time estimates) is in tests/test_lab_contract.py.
"""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest

from sweatlab import course as C
from sweatlab.course.figures import FIGURES_ENV
from sweatlab.kit.checks import LabChecks
from sweatlab.kit.lab import LAB_KEY
from sweatlab.kit.standins import LABEL, stand_ins_of
from sweatlab.topics import frugal

from conftest import REPO

LAB = "04_less"
SOURCE = REPO / "solutions" / f"{LAB}.py"
NAMESPACE = "__lab04_test__"  # the module name the lab's code runs under
EXERCISES = ["early_stop", "entropy", "exit_costs", "exit_rule", "cascade"]


def _results(exercise, namespace):
    return LabChecks(LAB).results(exercise, namespace)


def _with(solved, **replacements) -> dict:
    return {**solved, **replacements}


def _failures(exercise, namespace) -> list[str]:
    return [r.text for r in _results(exercise, namespace) if not r.passed]


def _expect_rejected(exercise, solved, hint="", **wrong):
    failures = _failures(exercise, _with(solved, **wrong))
    assert failures, f"{exercise}: the wrong answer passed every test"
    assert not hint or any(hint in f for f in failures), failures
    return failures


# ---------------------------------------------------------------------------------------------
# The lab as built from its source
# ---------------------------------------------------------------------------------------------

def test_five_exercises_in_notebook_order_with_several_tests_each():
    assert LabChecks(LAB).exercises == EXERCISES
    counts = {ex: len(_results(ex, {})) for ex in EXERCISES}
    assert all(n >= 3 for n in counts.values()), counts


def test_the_solution_agrees_with_the_library_references(solved):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(10, 0.3), size=(4, 50))
    for threshold in (0.5, 0.9, 0.99):
        mine, ref = solved["exit_rule"](probs, threshold), frugal.reference_exit_rule(probs, threshold)
        assert np.array_equal(mine["exit"], ref["exit"]) and np.array_equal(mine["pred"], ref["pred"])
        mine, ref = solved["cascade"](probs[0], probs[1], threshold), frugal.reference_cascade(probs[0], probs[1], threshold)
        assert np.array_equal(mine["pred"], ref["pred"]) and np.array_equal(mine["to_big"], ref["to_big"])
    assert np.allclose(solved["predictive_entropy"](probs), frugal.reference_predictive_entropy(probs))


# ---------------------------------------------------------------------------------------------
# Stand-ins: the lab's references, reached only through the kit, labelled where they answered
# ---------------------------------------------------------------------------------------------

STAND_IN_OF = {"early_stop": ("early_stop", 1, frugal.reference_early_stop),
               "entropy": ("predictive_entropy", 2, frugal.reference_predictive_entropy),
               "exit_costs": ("exit_costs", 3, frugal.reference_exit_costs),
               "exit_rule": ("exit_rule", 4, frugal.reference_exit_rule),
               "cascade": ("cascade", 5, frugal.reference_cascade)}


def test_each_exercise_has_the_library_reference_as_its_stand_in_numbered_in_notebook_order():
    table = stand_ins_of(LAB)
    assert list(STAND_IN_OF) == EXERCISES
    assert [(s.name, s.exercise) for s in table.values()] == [(f, n) for f, n, _ in STAND_IN_OF.values()]
    for function, _, reference in STAND_IN_OF.values():
        assert table[function].load() is reference


def test_no_demo_or_setup_cell_calls_a_reference_rule_or_defines_its_own_fallback(solution):
    """The references are the stand-ins: a demo reaches them through lab.mine/pick, which notes and labels them."""
    for cell in solution.cells:
        if cell.cell_type != "code" or C.sweat_of(cell).get("role") not in ("setup", "demo"):
            continue
        assert "reference_" not in cell.source, f"cell {cell.id} calls a reference rule directly: use lab.mine(...)"
        assert "NotImplementedError" not in cell.source, f"cell {cell.id} catches a stub itself: use lab.mine(...)"
        assert not re.search(r"\b(MY_TDP_W|TDP_W|CHIP_CORES|TDP_SOURCE)\b|EnergyMeter\(", cell.source), (
            f"cell {cell.id} sets up energy inputs or a meter of its own: use lab.meter() / lab.energy")


def _run_cells(nb, tmp_path, only=None) -> tuple[dict, dict[str, str]]:
    """Run a lab's code cells (those with an id in ``only``, else all) top to bottom in one namespace, in quick
    mode, the way a kernel does; returns the namespace and each cell's printed text."""
    import matplotlib

    matplotlib.use("Agg")
    namespace: dict = {"__name__": NAMESPACE}
    printed: dict[str, str] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEAT_QUICK", "1")
        mp.setenv("MPLBACKEND", "Agg")
        mp.setenv("SWEAT_RESULTS_DIR", str(tmp_path / "results"))
        mp.delenv(FIGURES_ENV, raising=False)
        for cell in nb.cells:
            if cell.cell_type != "code" or (only is not None and cell.id not in only):
                continue
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(cell.source, f"<cell {cell.id}>", "exec"), namespace)
            printed[cell.id] = out.getvalue()
    return namespace, printed


def _figure_texts(fig) -> str:
    """Every title, axis label, tick label and legend entry of a figure, one per line."""
    texts = [fig._suptitle.get_text()] if fig._suptitle else []
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        texts += [t.get_text() for t in ax.get_yticklabels()]
        legend = ax.get_legend()
        texts += [t.get_text() for t in legend.get_texts()] if legend else []
    return "\n".join(texts)


@pytest.fixture(scope="module")
def blank_run(solution, tmp_path_factory):
    """The blank lab, every exercise a stub, run top to bottom in quick mode (about half a minute)."""
    import matplotlib.pyplot as plt

    namespace, printed = _run_cells(C.make_lab(solution), tmp_path_factory.mktemp("lab04-blank"))
    figures = {name: _figure_texts(namespace[name]) for name in
               ("fig_early", "fig_mc", "fig_unsure", "fig_exit", "fig_exit_time", "fig_cascade")}
    plt.close("all")
    return namespace, printed, figures


# (cell that first needs the function, what its printout labels, figures whose labels it marks)
USES = {"early_stop": ("early-stop-run", "early-stop-table", ["fig_early"]),
        "predictive_entropy": ("mc-run", "mc-run", ["fig_mc", "fig_unsure"]),
        "exit_costs": ("exit-costs-table", "exit-costs-table", ["fig_exit", "fig_exit_time"]),
        "exit_rule": ("exit-sweep", "exit-sweep", ["fig_exit"]),
        "cascade": ("cascade-sweep", "cascade-measure", ["fig_cascade"])}


def test_the_blank_labs_demos_run_on_the_stand_ins_and_say_so_once(blank_run):
    namespace, printed, _ = blank_run
    lab = namespace[LAB_KEY]
    everything = "".join(printed.values())
    for function, (first_cell, _, _) in USES.items():
        note = stand_ins_of(LAB)[function].note()
        assert everything.count(note) == 1, f"{function}: the stand-in's note should be printed once, got " \
                                            f"{everything.count(note)}"
        assert note in printed[first_cell], f"{function}: its note belongs to cell {first_cell}, where it first answers"
        assert lab.stood_in(function)


def test_the_blank_labs_numbers_are_the_stand_ins_and_labelled_in_text_and_plots(blank_run):
    namespace, printed, figures = blank_run
    for function, (_, labelled_cell, figs) in USES.items():
        assert LABEL.strip() in printed[labelled_cell], f"{labelled_cell} prints {function}'s numbers unlabelled"
        for fig in figs:
            assert LABEL.strip() in figures[fig], f"{fig} shows {function}'s numbers unlabelled:\n{figures[fig]}"
    run = namespace["runs"][namespace["SEEDS"][0]]
    assert run["decision"] == frugal.reference_early_stop(list(run["es_losses"]), namespace["PATIENCE"])
    assert np.array_equal(namespace["COSTS"], frugal.reference_exit_costs(namespace["BLOCK_FLOPS"],
                                                                          namespace["HEAD_FLOPS"]))
    assert np.allclose(namespace["H_mc"], frugal.reference_predictive_entropy(namespace["mc"]))
    assert "saved (stand-in):" in printed["early-stop-table"]
    assert " leaving here costs (stand-in)" in printed["exit-costs-table"]


def test_the_solved_lab_answers_with_the_learners_functions_and_labels_nothing(solution, tmp_path):
    ids = {c.id for c in solution.cells if C.sweat_of(c).get("role") in ("setup", "answer")}
    namespace, printed = _run_cells(solution, tmp_path, only=ids)
    lab = namespace[LAB_KEY]
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(10, 0.3), size=(4, 20))
    calls = {"early_stop": ([0.9, 0.7, 0.8, 0.75], 2), "predictive_entropy": (probs,),
             "exit_costs": ([1, 2, 3, 4], [5, 6, 7, 8]), "exit_rule": (probs, 0.9), "cascade": (probs[0], probs[1], 0.9)}
    for function, args in calls.items():
        answered, _ = lab.pick(function, *args)
        assert answered is namespace[function] and not lab.stood_in(function)
        assert lab.label(function, "x") == "x"
    assert LABEL.strip() not in "".join(printed.values())


# ---------------------------------------------------------------------------------------------
# early_stop: off-by-one patience, the last checkpoint for the best, ties, the previous epoch
# ---------------------------------------------------------------------------------------------

def _early_stop_variant(val_losses, patience, *, wait=None, improves=lambda a, b: a < b, restore_last=False,
                        against_previous=False):
    wait = patience if wait is None else wait
    best, stop, since = 0, None, 0
    for epoch in range(1, len(val_losses)):
        reference = val_losses[epoch - 1] if against_previous else val_losses[best]
        if improves(val_losses[epoch], reference):
            since = 0
            if not against_previous or val_losses[epoch] < val_losses[best]:
                best = epoch
        else:
            since += 1
            if since >= wait:
                stop = epoch
                break
    if restore_last:
        best = stop if stop is not None else len(val_losses) - 1
    return {"stop": stop, "best": best}


@pytest.mark.parametrize("wrong, hint", [
    (lambda v, p: _early_stop_variant(v, p, wait=p + 1), "one epoch too late"),
    (lambda v, p: _early_stop_variant(v, p, wait=p - 1 if p > 1 else 1), "one epoch too early"),
    (lambda v, p: _early_stop_variant(v, p, restore_last=True), "not the weights you stopped with"),
    (lambda v, p: _early_stop_variant(v, p, improves=lambda a, b: a <= b), "strictly lower"),
    (lambda v, p: _early_stop_variant(v, p, against_previous=True), "not against the epoch before"),
])
def test_early_stop_mistakes_fail_with_a_hint(solved, wrong, hint):
    _expect_rejected("early_stop", solved, hint, early_stop=wrong)


def test_the_early_stop_variants_are_the_solution_when_nothing_is_wrong(solved):
    rng = np.random.default_rng(1)
    for patience in (1, 2, 5):
        losses = list(np.round(1 / np.arange(1, 40) + rng.normal(0, 0.02, 39), 3))
        assert _early_stop_variant(losses, patience) == frugal.reference_early_stop(losses, patience)
    assert not _failures("early_stop", _with(solved, early_stop=_early_stop_variant))


def test_early_stop_returning_a_tuple_fails_with_the_expected_form(solved):
    failures = _expect_rejected("early_stop", solved, '"stop"',
                                early_stop=lambda v, p: tuple(frugal.reference_early_stop(v, p).values()))
    assert len(failures) == len(_results("early_stop", solved))


def test_early_stop_returning_minus_one_for_never_fails(solved):
    def minus_one(v, p):
        r = frugal.reference_early_stop(v, p)
        return {"stop": -1 if r["stop"] is None else r["stop"], "best": r["best"]}

    _expect_rejected("early_stop", solved, "", early_stop=minus_one)


# ---------------------------------------------------------------------------------------------
# predictive_entropy: log base, the mean of entropies, zeros, the axis
# ---------------------------------------------------------------------------------------------

def _entropy_of(p, log=np.log):
    safe = np.where(p > 0, p, 1.0)
    return -(p * log(safe)).sum(axis=-1)


@pytest.mark.parametrize("wrong, hint", [
    (lambda probs: _entropy_of(np.asarray(probs).mean(axis=0), np.log2), "bits (log base 2)"),
    (lambda probs: _entropy_of(np.asarray(probs).mean(axis=0), np.log10), "log base 10"),
    (lambda probs: _entropy_of(np.asarray(probs)).mean(axis=0), "mean of the T passes' entropies"),
    (lambda probs: -(np.asarray(probs).mean(axis=0) * np.log(np.asarray(probs).mean(axis=0))).sum(axis=1),
     "0 ln 0 is taken as 0"),
    (lambda probs: _entropy_of(np.asarray(probs).mean(axis=1)), "average over the T passes (axis 0)"),
])
def test_entropy_mistakes_fail_with_a_hint(solved, wrong, hint):
    with np.errstate(divide="ignore", invalid="ignore"):
        _expect_rejected("entropy", solved, hint, predictive_entropy=wrong)


def test_entropy_of_the_first_pass_only_fails(solved):
    _expect_rejected("entropy", solved, "", predictive_entropy=lambda probs: _entropy_of(np.asarray(probs)[0]))


# ---------------------------------------------------------------------------------------------
# exit_costs: only the exit where the input leaves, not cumulative
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("wrong, hint", [
    (lambda b, h: np.cumsum(b) + np.asarray(h), "every exit before it ran too"),
    (lambda b, h: np.asarray(b) + np.asarray(h), "cumulative sums"),
    (lambda b, h: np.cumsum(b), "the exits cost FLOPs too"),
])
def test_exit_costs_mistakes_fail_with_a_hint(solved, wrong, hint):
    _expect_rejected("exit_costs", solved, hint, exit_costs=wrong)


# ---------------------------------------------------------------------------------------------
# exit_rule: >= for >, later exits overwriting earlier ones, the last exit, the class
# ---------------------------------------------------------------------------------------------

def exit_rule_ge(exit_probs, threshold):
    p = np.asarray(exit_probs)
    confident = p.max(axis=2) >= threshold
    confident[-1] = True
    exit_ = confident.argmax(axis=0)
    return {"exit": exit_, "pred": p.argmax(axis=2)[exit_, np.arange(p.shape[1])]}


def exit_rule_overwrites(exit_probs, threshold):
    """The loop that forgets who has left: a later confident exit takes the input back."""
    p = np.asarray(exit_probs)
    k_last, n = p.shape[0] - 1, p.shape[1]
    exit_, pred = np.full(n, k_last), p[-1].argmax(axis=1)
    for k in range(k_last):
        leave = p[k].max(axis=1) > threshold
        exit_[leave], pred[leave] = k, p[k].argmax(axis=1)[leave]
    return {"exit": exit_, "pred": pred}


def exit_rule_no_last_exit(exit_probs, threshold):
    p = np.asarray(exit_probs)
    confident = p.max(axis=2) > threshold
    exit_ = np.where(confident.any(axis=0), confident.argmax(axis=0), -1)
    return {"exit": exit_, "pred": p.argmax(axis=2)[exit_, np.arange(p.shape[1])]}


def exit_rule_last_class(exit_probs, threshold):
    r = frugal.reference_exit_rule(exit_probs, threshold)
    return {"exit": r["exit"], "pred": np.asarray(exit_probs)[-1].argmax(axis=1)}


def exit_rule_confidence_for_class(exit_probs, threshold):
    r = frugal.reference_exit_rule(exit_probs, threshold)
    p = np.asarray(exit_probs)
    return {"exit": r["exit"], "pred": p.max(axis=2)[r["exit"], np.arange(p.shape[1])]}


@pytest.mark.parametrize("wrong, hint", [
    (exit_rule_ge, "strictly greater (>, not >=)"),
    (exit_rule_overwrites, "an input that has left is gone"),
    (exit_rule_no_last_exit, "confident nowhere leaves at the last one"),
    (exit_rule_last_class, "the last exit's class for every input"),
    (exit_rule_confidence_for_class, "the argmax of the probabilities, not the probability"),
])
def test_exit_rule_mistakes_fail_with_a_hint(solved, wrong, hint):
    _expect_rejected("exit_rule", solved, hint, exit_rule=wrong)


def test_the_networks_batched_early_exit_follows_the_reference_rule():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = frugal.exit_cnn()
    x = torch.rand(64, 64)
    probs = frugal.softmax_probs(net, x)
    threshold = float(np.quantile(probs[0].max(axis=1), 0.5))  # half leave at the first exit
    pred, exit_ = net.early_exit(x, threshold)
    ref = frugal.reference_exit_rule(probs, threshold)
    assert np.mean(exit_.numpy() == ref["exit"]) > 0.95 and np.mean(pred.numpy() == ref["pred"]) > 0.95


# ---------------------------------------------------------------------------------------------
# cascade: always the big model, inverted routing, the boundary, big's answer where it is not asked
# ---------------------------------------------------------------------------------------------

def cascade_always_big(small_probs, big_probs, threshold):
    big = np.asarray(big_probs)
    return {"pred": np.nan_to_num(big).argmax(axis=1), "to_big": np.ones(len(big), dtype=bool)}


def cascade_inverted(small_probs, big_probs, threshold):
    r = frugal.reference_cascade(small_probs, big_probs, threshold)
    to_big = ~r["to_big"]
    small, big = np.asarray(small_probs), np.nan_to_num(np.asarray(big_probs))
    return {"pred": np.where(to_big, big.argmax(axis=1), small.argmax(axis=1)), "to_big": to_big}


def cascade_strict_boundary(small_probs, big_probs, threshold):
    small, big = np.asarray(small_probs), np.nan_to_num(np.asarray(big_probs))
    to_big = small.max(axis=1) < threshold
    return {"pred": np.where(to_big, big.argmax(axis=1), small.argmax(axis=1)), "to_big": to_big}


def cascade_big_answers_everything(small_probs, big_probs, threshold):
    r = frugal.reference_cascade(small_probs, big_probs, threshold)
    return {"pred": np.nan_to_num(np.asarray(big_probs)).argmax(axis=1), "to_big": r["to_big"]}


@pytest.mark.parametrize("wrong, hint", [
    (cascade_always_big, "costs more than the big model alone"),
    (cascade_inverted, "the routing is inverted"),
    (cascade_strict_boundary, "use <= for sending"),
    (cascade_big_answers_everything, "the big model never sees them"),
])
def test_cascade_mistakes_fail_with_a_hint(solved, wrong, hint):
    _expect_rejected("cascade", solved, hint, cascade=wrong)


def test_the_deployed_cascade_calls_the_big_model_only_on_what_it_sends():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    small, big = frugal.mlp((64, 8, 10)), frugal.mlp((64, 16, 10))
    seen = []
    big.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape[0]))
    x = torch.rand(50, 64)
    with torch.no_grad():
        conf = torch.softmax(small(x), dim=1).max(dim=1).values
    threshold = float(conf.median())
    pred, to_big = frugal.run_cascade(small, big, x, threshold)
    assert seen == [int(to_big.sum())] and 0 < seen[0] < 50
    ref = frugal.reference_cascade(frugal.softmax_probs(small, x), frugal.softmax_probs(big, x), threshold)
    assert np.array_equal(pred.numpy(), ref["pred"]) and np.array_equal(to_big.numpy(), ref["to_big"])
