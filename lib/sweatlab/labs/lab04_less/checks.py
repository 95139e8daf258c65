"""Public checks of lab 04_less: "Doing less work: does every forward pass justify itself?"

Exercises, in notebook order (the name the `check(...)` cell uses, and the learner's function):

    early_stop   early_stop(val_losses, patience) -> {"stop": epoch or None, "best": epoch}
    entropy      predictive_entropy(probs (T, N, C)) -> (N,) entropy in nats of the mean over T
    exit_costs   exit_costs(block_flops, head_flops) -> FLOPs per sample of leaving at each exit
    exit_rule    exit_rule(exit_probs (K, N, C), threshold) -> {"exit": (N,), "pred": (N,)}
    cascade      cascade(small_probs (N, C), big_probs (N, C), threshold) -> {"pred": (N,), "to_big": (N,)}

Every function takes plain data (lists of numbers, numpy arrays) and returns plain data, so the
grader calls it in a child process and compares the JSON it gets back. Expected values come from
the references in :mod:`sweatlab.topics.frugal` (numpy only: importing them does not import torch).
Hand-made cases use probabilities that are exact binary fractions (0.75, 0.875), so a comparison
with the threshold is exactly "equal" where a test means equal; each targets one mistake a learner
makes (an off-by-one patience, restoring the last checkpoint, log base 2, the mean of the entropies,
>= for >, a later exit overwriting an earlier one, a cascade that sends everything to the big model)
and says so in its hint.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sweatlab.kit.checks import CheckFailure, Tester, public_test
from sweatlab.topics.frugal import (reference_cascade, reference_early_stop, reference_exit_costs, reference_exit_rule,
                                    reference_predictive_entropy)

LAB = "04_less"


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _shape_text(value: Any) -> str:
    return f"shape {np.shape(value)}" if isinstance(value, (list, np.ndarray)) else type(value).__name__


# ---------------------------------------------------------------------------------------------
# early_stop
# ---------------------------------------------------------------------------------------------

def _early(t: Tester, losses: list[float], patience: int, what: str = "") -> dict:
    got = t.call("early_stop", losses, patience)
    call = what or f"early_stop({losses}, patience={patience})"
    t.expect(isinstance(got, dict) and "stop" in got and "best" in got,
             what=f"{call} returned {got!r}",
             hint='return a dict with two keys: {"stop": the epoch after which training stops (or None), '
                  '"best": the epoch whose weights to restore}')
    for key in ("stop", "best"):
        value = got[key]
        if isinstance(value, float) and value.is_integer():
            got[key] = int(value)
        t.expect(_is_int(got[key]) or (key == "stop" and got[key] is None),
                 what=f'{call}["{key}"] is {got[key]!r}',
                 hint="epochs are whole numbers counted from 0; \"stop\" is None when the rule never fires")
    return got


def _expect_early(t: Tester, losses: list[float], patience: int, extra_hint: str = "") -> None:
    want = reference_early_stop(losses, patience)
    call = f"early_stop({losses}, patience={patience})"
    got = _early(t, losses, patience, call)
    if got["stop"] != want["stop"]:
        hint = extra_hint or ("count the epochs since the best one: training stops after the epoch that makes "
                              "`patience` epochs in a row without a strictly lower loss")
        if want["stop"] is not None and got["stop"] == want["stop"] + 1:
            hint = ("you stopped one epoch too late: with patience p, the stop comes p epochs after the best "
                    "epoch (epoch - best == patience), not p + 1")
        elif want["stop"] is not None and got["stop"] == want["stop"] - 1:
            hint = ("you stopped one epoch too early: with patience p, p epochs must pass without improvement "
                    "after the best epoch (epoch - best == patience)")
        elif want["stop"] is None:
            hint = ("these losses never go `patience` epochs without a strictly lower loss, so the rule never "
                    "fires: return None for \"stop\"")
        t.expect_equal(got["stop"], want["stop"], what=f'{call}["stop"]', hint=hint)
    if got["best"] != want["best"]:
        hint = extra_hint or "the best epoch is the one with the lowest loss (the earliest of equal ones)"
        last = want["stop"] if want["stop"] is not None else len(losses) - 1
        if got["best"] == last and last != want["best"]:
            hint = ("that is the last epoch trained: restore the best checkpoint, the epoch with the lowest "
                    "validation loss, not the weights you stopped with")
        t.expect_equal(got["best"], want["best"], what=f'{call}["best"]', hint=hint)


@public_test(LAB, "early_stop", points=2)
def stops_patience_epochs_after_the_best(t: Tester):
    # best epoch 2 (0.6); epochs 3, 4, 5 do not improve: with patience 3 it stops after epoch 5
    _expect_early(t, [1.0, 0.8, 0.6, 0.7, 0.65, 0.9, 0.62, 0.5], 3)


@public_test(LAB, "early_stop", points=2)
def restores_the_best_checkpoint_not_the_last(t: Tester):
    _expect_early(t, [0.9, 0.5, 0.55, 0.52, 0.6, 0.58, 0.7], 4)


@public_test(LAB, "early_stop", points=1)
def patience_1_stops_at_the_first_epoch_without_improvement(t: Tester):
    _expect_early(t, [0.9, 0.7, 0.8, 0.6, 0.65], 1)


@public_test(LAB, "early_stop", points=1)
def a_tie_is_not_an_improvement(t: Tester):
    _expect_early(t, [0.5, 0.4, 0.4, 0.4, 0.4, 0.45], 3,
                  extra_hint="an epoch improves only when its loss is strictly lower than the best so far; an "
                             "equal loss does not reset the patience or move the best epoch (use <, not <=)")


@public_test(LAB, "early_stop", points=1)
def compares_with_the_best_so_far_not_the_previous_epoch(t: Tester):
    _expect_early(t, [1.0, 0.5, 0.6, 0.55, 0.58, 0.56, 0.57, 0.59], 3,
                  extra_hint="measure each epoch against the lowest loss so far, not against the epoch before "
                             "it: 0.55 after 0.6 is better than its neighbour but not better than 0.5")


@public_test(LAB, "early_stop", points=1)
def never_stops_while_the_loss_keeps_falling(t: Tester):
    _expect_early(t, [0.9, 0.8, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45], 2)
    _expect_early(t, [0.3], 1)  # after the first epoch: nothing to compare yet


@public_test(LAB, "early_stop", points=2)
def noisy_training_runs(t: Tester):
    rng = t.rng()
    for patience in (1, 3, 5, 10):
        for _ in range(3):
            n = int(rng.integers(20, 60))
            trend = 2.0 * np.exp(-np.arange(n) / rng.uniform(3, 15)) + 0.2
            losses = [round(float(v), 4) for v in trend + rng.normal(0, 0.03, n) + np.linspace(0, rng.uniform(0, 0.3), n)]
            _expect_early(t, losses, patience)


# ---------------------------------------------------------------------------------------------
# predictive_entropy
# ---------------------------------------------------------------------------------------------

def _entropy(t: Tester, probs: np.ndarray, what: str, hint: str = "") -> None:
    want = reference_predictive_entropy(probs)
    got = t.call("predictive_entropy", probs)
    try:
        got_a = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckFailure(what, f"{len(want)} numbers", repr(got)[:80], "return one entropy per input") from None
    if got_a.shape != want.shape:
        shape_hint = (f"probs has shape (T, N, C) = {probs.shape}: average over the T passes (axis 0), then take "
                      "one entropy per input over the classes (the last axis): N numbers")
        raise CheckFailure(what, f"shape {want.shape}", f"shape {got_a.shape}", shape_hint)
    hints = [hint] if hint else []
    if np.all(np.isfinite(got_a)):
        mean_of_entropies = np.mean([reference_predictive_entropy(one[None]) for one in probs], axis=0)
        if np.allclose(got_a, want / np.log(2), rtol=1e-6) and not np.allclose(want, 0):
            hints = ["that is the entropy in bits (log base 2): use the natural log, np.log, for nats"]
        elif np.allclose(got_a, want / np.log(10), rtol=1e-6) and not np.allclose(want, 0):
            hints = ["that is log base 10: use the natural log, np.log, for nats"]
        elif np.allclose(got_a, mean_of_entropies, rtol=1e-6) and not np.allclose(want, mean_of_entropies):
            hints = ["that is the mean of the T passes' entropies; the predictive entropy is the entropy of the "
                     "mean prediction: average the probabilities over the passes first, then take the entropy"]
    else:
        hints = ["a NaN or infinity came back: a class of probability 0 contributes 0 (0 ln 0 is taken as 0); "
                 "log(0) is -inf and 0 * -inf is NaN, so leave those terms out or use np.where"]
    t.expect_close(got_a, want, rtol=1e-6, atol=1e-12, what=what, hint=hints[0] if hints else
                   "H = -sum_c p_c ln p_c of the mean p over the passes (axis 0), one value per input")


@public_test(LAB, "entropy", points=2)
def uniform_over_ten_classes_is_ln_10(t: Tester):
    probs = np.full((1, 3, 10), 0.1)
    _entropy(t, probs, "predictive_entropy(every pass uniform over 10 classes), 1 pass, 3 inputs: ln 10 each",
             hint="the entropy of a uniform distribution over C classes is ln C (natural log: nats)")


@public_test(LAB, "entropy", points=1)
def a_certain_prediction_has_entropy_zero(t: Tester):
    probs = np.zeros((2, 3, 4))
    probs[:, 0, 1] = probs[:, 1, 3] = probs[:, 2, 0] = 1.0
    _entropy(t, probs, "predictive_entropy(2 passes that agree, each one-hot) for 3 inputs: 0 each")


@public_test(LAB, "entropy", points=2)
def entropy_of_the_mean_not_the_mean_of_entropies(t: Tester):
    probs = np.zeros((2, 2, 3))
    probs[0, 0, 0] = probs[1, 0, 1] = 1.0           # input 0: two sure passes that disagree -> ln 2
    probs[:, 1] = [0.5, 0.5, 0.0]                   # input 1: two unsure passes that agree -> ln 2 as well
    _entropy(t, probs, "predictive_entropy for 2 passes: input 0 one-hot on class 0 then class 1, "
                       "input 1 [0.5, 0.5, 0] twice (both ln 2)")


@public_test(LAB, "entropy", points=1)
def averages_over_the_passes_axis(t: Tester):
    rng = t.rng()
    probs = rng.dirichlet(np.full(4, 0.5), size=(3, 5))  # T=3 passes, N=5 inputs, C=4 classes
    _entropy(t, probs, "predictive_entropy of random probabilities, shape (T=3, N=5, C=4): 5 values")


@public_test(LAB, "entropy", points=2)
def random_mc_dropout_samples(t: Tester):
    rng = t.rng()
    for concentration in (0.05, 0.5, 5.0):
        probs = rng.dirichlet(np.full(10, concentration), size=(20, 30))
        probs[rng.random(probs.shape) < 0.05] = 0.0  # some exact zeros, as a confident softmax underflows to
        probs /= probs.sum(axis=2, keepdims=True)
        _entropy(t, probs, f"predictive_entropy of 20 passes x 30 inputs x 10 classes (Dirichlet {concentration:g})")


# ---------------------------------------------------------------------------------------------
# exit_costs
# ---------------------------------------------------------------------------------------------

def _expect_costs(t: Tester, blocks: list[int], heads: list[int]) -> None:
    want = reference_exit_costs(blocks, heads)
    got = t.call("exit_costs", blocks, heads)
    call = f"exit_costs({blocks}, {heads})"
    try:
        got_a = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckFailure(call, f"{len(want)} numbers", repr(got)[:80], "return one cost per exit") from None
    hint = ("leaving at exit k costs every block up to k plus every exit up to k: sum(block_flops[:k+1]) + "
            "sum(head_flops[:k+1])")
    if got_a.shape == want.shape:
        own_head = np.cumsum(blocks) + np.asarray(heads)
        if np.array_equal(got_a, own_head) and not np.array_equal(own_head, want):
            hint = ("you counted only the exit where the input leaves; every exit before it ran too (it computed "
                    "its probabilities and decided to send the input on): add their FLOPs")
        elif np.array_equal(got_a, np.asarray(blocks) + np.asarray(heads)):
            hint = "an input leaving at exit k has run every block before it too: the costs add up (cumulative sums)"
        elif np.array_equal(got_a, np.cumsum(blocks)):
            hint = "the exits cost FLOPs too: add the head_flops of every exit the input passed"
    t.expect_close(got_a, want, rtol=0, what=call, hint=hint)


@public_test(LAB, "exit_costs", points=2)
def three_exits_by_hand(t: Tester):
    _expect_costs(t, [100, 1000, 5000], [10, 20, 30])  # 110, 1130, 6160


@public_test(LAB, "exit_costs", points=1)
def one_exit_is_the_whole_network(t: Tester):
    _expect_costs(t, [7000], [300])


@public_test(LAB, "exit_costs", points=1)
def random_networks(t: Tester):
    rng = t.rng()
    for k in (2, 4, 6):
        _expect_costs(t, [int(v) for v in rng.integers(1_000, 1_000_000, k)], [int(v) for v in rng.integers(100, 50_000, k)])


# ---------------------------------------------------------------------------------------------
# exit_rule
# ---------------------------------------------------------------------------------------------

def _rule(t: Tester, probs: np.ndarray, threshold: float, what: str) -> tuple[np.ndarray, np.ndarray]:
    got = t.call("exit_rule", probs, threshold)
    t.expect(isinstance(got, dict) and "exit" in got and "pred" in got, what=f"{what} returned {str(got)[:80]}",
             hint='return a dict {"exit": an exit index per input, "pred": the class given there}')
    n = probs.shape[1]
    out = []
    for key in ("exit", "pred"):
        try:
            value = np.asarray(got[key])
            ok = value.shape == (n,) and np.all(np.isfinite(value.astype(np.float64)))
        except (TypeError, ValueError):
            value, ok = None, False
        t.expect(ok and np.all(value == np.round(value)), what=f'{what}["{key}"] is {_shape_text(got[key])}: '
                                                           f"expected {n} whole numbers, one per input",
                 hint="one exit index (0 to K-1) and one class per input" + (
                     "; the exit of an input confident nowhere is the last exit, K-1, not -1 or K"
                     if key == "exit" else "; the class is the argmax of the probabilities, not the probability"))
        out.append(value.astype(np.int64))
    return out[0], out[1]


def _expect_rule(t: Tester, probs: np.ndarray, threshold: float, what: str, hint: str = "") -> None:
    want = reference_exit_rule(probs, threshold)
    exit_, pred = _rule(t, probs, threshold, what)
    k_last = probs.shape[0] - 1
    if not np.array_equal(exit_, want["exit"]):
        conf = probs.max(axis=2)
        ge = conf >= threshold
        ge[-1] = True
        last_confident = np.where((conf > threshold)[:-1].any(axis=0),
                                  k_last - 1 - np.argmax((conf > threshold)[:-1][::-1], axis=0), k_last)
        wrong_hint = hint or ("each input leaves at the FIRST exit whose top probability is strictly greater than "
                              "the threshold; one confident nowhere leaves at the last exit")
        if np.array_equal(exit_, ge.argmax(axis=0)):
            wrong_hint = ("a top probability exactly equal to the threshold is not confident enough: leave only when "
                          "it is strictly greater (>, not >=)")
        elif np.array_equal(exit_, last_confident):
            wrong_hint = ("an input that has left is gone: a later exit must not take it back. Your code lets a later "
                          "confident exit overwrite an earlier one; keep the first exit where it is confident")
        elif np.any(exit_ > k_last) or np.any(exit_ < 0):
            wrong_hint = f"exits are numbered 0 to {k_last}: an input confident nowhere leaves at the last one, {k_last}"
        t.expect_equal(exit_, want["exit"], what=f'{what}["exit"]', hint=wrong_hint)
    if not np.array_equal(pred, want["pred"]):
        first_pred = probs[0].argmax(axis=1)
        last_pred = probs[-1].argmax(axis=1)
        wrong_hint = "the prediction is the argmax of the probabilities at the exit where the input leaves"
        if np.array_equal(pred, last_pred):
            wrong_hint = "that is the last exit's class for every input: take the class at the exit where each one left"
        elif np.array_equal(pred, first_pred):
            wrong_hint = "that is the first exit's class for every input: take the class at the exit where each one left"
        t.expect_equal(pred, want["pred"], what=f'{what}["pred"]', hint=wrong_hint)


def _hand_made() -> np.ndarray:
    """3 exits x 4 inputs x 3 classes, exact binary fractions; threshold 0.75."""
    return np.array([
        # input 0: sure at exit 0   1: sure at exit 1 only   2: exactly 0.75 at exits 0 and 1   3: sure nowhere
        [[0.875, 0.125, 0.0], [0.5, 0.25, 0.25], [0.75, 0.25, 0.0], [0.5, 0.375, 0.125]],
        [[0.25, 0.625, 0.125], [0.125, 0.875, 0.0], [0.25, 0.75, 0.0], [0.375, 0.5, 0.125]],
        [[0.0, 0.25, 0.75], [0.25, 0.25, 0.5], [0.25, 0.25, 0.5], [0.25, 0.125, 0.625]],
    ])


@public_test(LAB, "exit_rule", points=2)
def four_inputs_by_hand(t: Tester):
    _expect_rule(t, _hand_made(), 0.75,
                 "exit_rule(3 exits x 4 inputs, threshold 0.75): input 0 sure at exit 0, input 1 at exit 1, "
                 "input 2 exactly 0.75 at exits 0 and 1, input 3 nowhere")


@public_test(LAB, "exit_rule", points=2)
def the_threshold_is_exclusive(t: Tester):
    probs = np.array([[[0.75, 0.25]], [[0.25, 0.75]], [[0.875, 0.125]]])  # exactly at the threshold twice
    _expect_rule(t, probs, 0.75, "exit_rule(one input at exactly 0.75 at exits 0 and 1, 0.875 at exit 2, threshold 0.75)")


@public_test(LAB, "exit_rule", points=2)
def an_input_that_left_is_gone(t: Tester):
    probs = np.array([
        [[0.875, 0.125, 0.0], [0.5, 0.5, 0.0]],     # input 0 sure of class 0 at exit 0
        [[0.0, 0.0625, 0.9375], [0.0, 0.875, 0.125]],  # ... and sure of class 2 at exit 1: it has left already
        [[0.0, 1.0, 0.0], [0.0, 0.25, 0.75]],
    ])
    _expect_rule(t, probs, 0.8, "exit_rule(input 0 sure of class 0 at exit 0 and of class 2 at exit 1, threshold 0.8)")


@public_test(LAB, "exit_rule", points=1)
def thresholds_one_and_zero(t: Tester):
    rng = t.rng()
    probs = rng.dirichlet(np.full(5, 0.3), size=(3, 8))
    _expect_rule(t, probs, 1.0, "exit_rule(random, threshold 1.0): no probability is > 1, so every input leaves "
                                "at the last exit")
    _expect_rule(t, probs, 0.0, "exit_rule(random, threshold 0.0): every top probability is > 0, so every input "
                                "leaves at the first exit")


@public_test(LAB, "exit_rule", points=2)
def random_exit_networks(t: Tester):
    rng = t.rng()
    for k, n, threshold in ((2, 40, 0.6), (4, 100, 0.9), (5, 100, 0.99)):
        concentration = np.linspace(0.5, 0.05, k)[:, None, None]  # later exits more confident, as in a trained network
        probs = np.stack([rng.dirichlet(np.full(10, c.item()), size=n) for c in concentration])
        _expect_rule(t, probs, threshold, f"exit_rule({k} exits x {n} inputs x 10 classes, threshold {threshold})")


# ---------------------------------------------------------------------------------------------
# cascade
# ---------------------------------------------------------------------------------------------

def _expect_cascade(t: Tester, small: np.ndarray, big: np.ndarray, threshold: float, what: str) -> None:
    want = reference_cascade(small, big, threshold)
    got = t.call("cascade", small, big, threshold)
    t.expect(isinstance(got, dict) and "pred" in got and "to_big" in got, what=f"{what} returned {str(got)[:80]}",
             hint='return a dict {"pred": the class per input, "to_big": True for the inputs sent to the big model}')
    n = small.shape[0]
    to_big = np.asarray(got["to_big"])
    t.expect(to_big.shape == (n,) and to_big.dtype.kind in "biu" and set(np.unique(to_big)) <= {0, 1},
             what=f'{what}["to_big"] is {_shape_text(got["to_big"])}: expected {n} booleans',
             hint="one True/False per input: True where the small model is not confident enough")
    to_big = to_big.astype(bool)
    if not np.array_equal(to_big, want["to_big"]):
        small_conf = small.max(axis=1)
        hint = ("send an input to the big model exactly when the small model's top probability is NOT strictly "
                "greater than the threshold")
        if to_big.all() and not want["to_big"].all():
            hint = ("every input was sent to the big model: that cascade costs more than the big model alone. Send "
                    "only the inputs the small model is unsure of")
        elif np.array_equal(to_big, ~want["to_big"]):
            hint = "the routing is inverted: the confident inputs stay with the small model, the unsure ones go on"
        elif np.array_equal(to_big, small_conf < threshold):
            hint = ("an input whose small top probability equals the threshold is not confident (the small model "
                    "answers only above it): use <= for sending, or ~(p > threshold)")
        t.expect_equal(to_big, want["to_big"], what=f'{what}["to_big"]', hint=hint)
    try:
        pred = np.asarray(got["pred"], dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckFailure(f'{what}["pred"]', f"{n} classes", repr(got["pred"])[:80]) from None
    if pred.shape != (n,) or not np.array_equal(pred, want["pred"]):
        hint = "the small model's argmax where it answers, the big model's argmax for the inputs sent to it"
        if pred.shape == (n,) and np.array_equal(pred[~want["to_big"]], np.nan_to_num(big[~want["to_big"]]).argmax(axis=1)):
            hint = ("the inputs the small model is sure of must keep its answer: the big model never sees them (here "
                    "its outputs for them are NaN)")
        elif pred.shape == (n,) and np.array_equal(pred, small.argmax(axis=1)):
            hint = "the inputs sent to the big model must get the big model's answer"
        t.expect_equal(pred.astype(np.int64) if pred.shape == (n,) else pred, want["pred"], what=f'{what}["pred"]',
                       hint=hint)


@public_test(LAB, "cascade", points=2)
def five_inputs_by_hand(t: Tester):
    small = np.array([[0.875, 0.125, 0.0], [0.5, 0.25, 0.25], [0.75, 0.25, 0.0], [0.0, 0.0625, 0.9375],
                      [0.25, 0.375, 0.375]])
    big = np.array([[0.0, 1.0, 0.0], [0.125, 0.0, 0.875], [0.0, 0.125, 0.875], [1.0, 0.0, 0.0], [0.0, 0.75, 0.25]])
    _expect_cascade(t, small, big, 0.75, "cascade(5 inputs, threshold 0.75; input 2's small top probability is "
                                         "exactly 0.75)")


@public_test(LAB, "cascade", points=2)
def the_big_model_never_answers_for_inputs_it_is_not_sent(t: Tester):
    rng = t.rng()
    small = rng.dirichlet(np.full(10, 0.1), size=60)
    big = rng.dirichlet(np.full(10, 0.1), size=60)
    kept = small.max(axis=1) > 0.9
    big[kept] = np.nan  # the deployed cascade never computes these rows
    _expect_cascade(t, small, big, 0.9, "cascade(60 inputs, threshold 0.9; big's rows for inputs the small model "
                                        "keeps are NaN)")


@public_test(LAB, "cascade", points=1)
def only_unsure_inputs_reach_the_big_model(t: Tester):
    small = np.array([[0.875, 0.125], [0.9375, 0.0625], [0.125, 0.875], [0.5, 0.5]])
    big = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    _expect_cascade(t, small, big, 0.8, "cascade(3 sure inputs and 1 unsure one, threshold 0.8)")


@public_test(LAB, "cascade", points=1)
def random_models_and_thresholds(t: Tester):
    rng = t.rng()
    for threshold in (0.3, 0.7, 0.95, 0.999):
        small = rng.dirichlet(np.full(10, 0.2), size=80)
        big = rng.dirichlet(np.full(10, 0.05), size=80)
        _expect_cascade(t, small, big, threshold, f"cascade(80 random inputs, threshold {threshold})")
