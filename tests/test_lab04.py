"""Lab 04_less: what is particular to it, above all the plausible wrong answers each check must reject.

What every lab must do (the solution passes every check, the blank lab fails them, one check cell per
exercise in order, the deck, the record, the time estimates) is in tests/test_lab_contract.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from sweatlab.topics import frugal
from sweatlab.kit.checks import LabChecks

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
