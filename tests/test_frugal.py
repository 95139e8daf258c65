"""sweatlab.topics.frugal: the data, the models and their FLOP counts, and the reference rules of lab 04."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from sweatlab.measure import flops
from sweatlab.topics import frugal

from conftest import REPO

torch = pytest.importorskip("torch")


# ---------------------------------------------------------------------------------------------
# Importing the rules stays cheap
# ---------------------------------------------------------------------------------------------

def test_importing_the_module_the_lab_checks_and_stand_ins_does_not_import_torch():
    code = ("import sys; import sweatlab.topics.frugal, sweatlab.labs.lab04_less.checks; "
            "from sweatlab.kit.standins import stand_ins_of; [s.load() for s in stand_ins_of('04_less').values()]; "
            "print('torch' in sys.modules, 'sklearn' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(REPO / "lib"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

def test_digits_are_split_stratified_scaled_and_the_same_every_time():
    d = frugal.digits()
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (997, 300, 500)
    for X, y in ((d.X_train, d.y_train), (d.X_val, d.y_val), (d.X_test, d.y_test)):
        assert X.dtype == np.float32 and X.shape == (len(y), 64) and 0.0 <= X.min() and X.max() <= 1.0
        assert set(np.unique(y)) == set(range(10))
    again = frugal.digits()
    assert np.array_equal(d.X_test, again.X_test) and np.array_equal(d.y_train, again.y_train)
    assert "train 997, validation 300, test 500" in repr(d)


# ---------------------------------------------------------------------------------------------
# FLOP counts
# ---------------------------------------------------------------------------------------------

def test_forward_flops_of_an_mlp_is_the_sum_of_its_linear_layers():
    model = frugal.mlp((64, 256, 256, 10), dropout=0.3)
    want = sum(flops.linear(1, a, b).flops for a, b in ((64, 256), (256, 256), (256, 10)))
    assert frugal.forward_flops(model, torch.zeros(5, 64)) == want == 169_482
    assert model.training  # the count leaves the model's mode as it was


def test_forward_flops_of_the_cnn_counts_convolutions_at_their_input_size():
    want = (flops.conv2d(1, 1, 16, 8, 8, 3, padding=1).flops + flops.conv2d(1, 16, 32, 8, 8, 3, padding=1).flops
            + flops.conv2d(1, 32, 64, 4, 4, 3, padding=1).flops + flops.linear(1, 1024, 128).flops
            + flops.linear(1, 128, 10).flops)
    assert frugal.forward_flops(frugal.plain_cnn(), torch.zeros(1, 64)) == want


def test_exit_network_pieces_add_up_to_the_plain_network():
    net = frugal.exit_cnn()
    blocks, heads = net.block_flops(), net.head_flops()
    assert len(blocks) == len(heads) == 4
    assert sum(blocks) + heads[-1] == frugal.forward_flops(frugal.plain_cnn(), torch.zeros(1, 64))
    assert list(frugal.reference_exit_costs(blocks, heads)) == list(np.cumsum(blocks) + np.cumsum(heads))


# ---------------------------------------------------------------------------------------------
# The exit network and the cascade as deployed
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    n = frugal.exit_cnn()
    n.eval()
    return n


def test_plain_is_the_last_exit(net):
    x = torch.rand(7, 64)
    with torch.no_grad():
        assert torch.allclose(net.plain(x), net(x)[-1])


def test_batched_early_exit_at_the_extremes(net):
    x = torch.rand(30, 64)
    with torch.no_grad():
        plain = net.plain(x).argmax(dim=1)
        first = net(x)[0].argmax(dim=1)
    pred, exit_ = net.early_exit(x, 1.0)  # nothing is > 1: every input at the last exit
    assert torch.equal(exit_, torch.full((30,), 3)) and torch.equal(pred, plain)
    pred, exit_ = net.early_exit(x, 0.0)  # every top probability is > 0: every input at the first exit
    assert torch.equal(exit_, torch.zeros(30, dtype=torch.long)) and torch.equal(pred, first)


def test_batched_and_one_at_a_time_early_exit_agree_with_the_rule(net):
    x = torch.rand(40, 64)
    probs = frugal.softmax_probs(net, x)
    assert probs.shape == (4, 40, 10)
    for threshold in np.quantile(probs.max(axis=2), [0.3, 0.6, 0.9]):
        threshold = float(threshold) + 1e-7  # off the exact values, so float32 and float64 agree
        pred, exit_ = net.early_exit(x, threshold)
        ref = frugal.reference_exit_rule(probs, threshold)
        assert np.array_equal(exit_.numpy(), ref["exit"]) and np.array_equal(pred.numpy(), ref["pred"])
        one = [net.early_exit_one(x[i:i + 1], threshold) for i in range(len(x))]
        assert [p for p, _ in one] == list(ref["pred"]) and [e for _, e in one] == list(ref["exit"])


def test_cascade_one_matches_the_batched_cascade():
    torch.manual_seed(1)
    small, big = frugal.mlp((64, 8, 10)), frugal.mlp((64, 32, 10))
    x = torch.rand(25, 64)
    pred, to_big = frugal.run_cascade(small, big, x, 0.15)
    one = [frugal.cascade_one(small, big, x[i:i + 1], 0.15) for i in range(25)]
    assert [p for p, _ in one] == pred.tolist() and [b for _, b in one] == to_big.tolist()


# ---------------------------------------------------------------------------------------------
# Training, probabilities, MC dropout
# ---------------------------------------------------------------------------------------------

def test_training_is_deterministic_given_the_seeds():
    d = frugal.digits()
    X, y = torch.from_numpy(d.X_train[:128]), torch.from_numpy(d.y_train[:128])

    def run():
        torch.manual_seed(3)
        model = frugal.mlp((64, 32, 10), dropout=0.3)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        order = torch.Generator().manual_seed(3)
        return [frugal.train_epoch(model, opt, X, y, 32, order) for _ in range(3)], frugal.evaluate(model, X, y)

    assert run() == run()


def test_evaluate_gives_loss_and_accuracy_with_dropout_off():
    torch.manual_seed(0)
    model = frugal.mlp((64, 16, 10), dropout=0.5)
    x, y = torch.rand(20, 64), torch.arange(20) % 10
    loss, acc = frugal.evaluate(model, x, y)
    assert loss == frugal.evaluate(model, x, y)[0]  # no dropout: the same every time
    assert 0.0 <= acc <= 1.0 and math.isfinite(loss) and model.training


def test_mc_dropout_gives_different_passes_repeatably_and_leaves_the_random_state_alone():
    torch.manual_seed(0)
    model = frugal.mlp((64, 32, 10), dropout=0.5)
    model.eval()
    x = torch.rand(6, 64)
    state = torch.get_rng_state()
    a = frugal.mc_dropout_probs(model, x, 5, seed=1)
    assert torch.equal(state, torch.get_rng_state())
    assert a.shape == (5, 6, 10) and np.allclose(a.sum(axis=2), 1.0)
    assert np.array_equal(a, frugal.mc_dropout_probs(model, x, 5, seed=1))
    assert not np.allclose(a[0], a[1])
    assert not model.training and not any(m.training for m in model.modules())


def test_mc_dropout_needs_a_dropout_layer():
    with pytest.raises(ValueError, match="no Dropout layer"):
        frugal.mc_dropout_probs(frugal.mlp((64, 10)), torch.rand(2, 64), 3)


def test_per_input_seconds_times_each_input():
    calls = []
    times = frugal.per_input_seconds(calls.append, [1, 2, 3], repeats=2)
    assert times.shape == (3,) and np.all(times >= 0) and calls == [1, 2, 3] * 3  # warm-up + 2 rounds
    with pytest.raises(ValueError):
        frugal.per_input_seconds(calls.append, [1], repeats=0)


# ---------------------------------------------------------------------------------------------
# The reference rules
# ---------------------------------------------------------------------------------------------

def test_reference_early_stop():
    assert frugal.reference_early_stop([1.0, 0.8, 0.6, 0.7, 0.65, 0.9], 3) == {"stop": 5, "best": 2}
    assert frugal.reference_early_stop([0.5, 0.4, 0.4, 0.4], 2) == {"stop": 3, "best": 1}  # ties do not improve
    assert frugal.reference_early_stop([0.9, 0.8, 0.7], 1) == {"stop": None, "best": 2}
    with pytest.raises(ValueError):
        frugal.reference_early_stop([1.0], 0)


def test_reference_predictive_entropy():
    assert np.allclose(frugal.reference_predictive_entropy(np.full((2, 3, 10), 0.1)), np.log(10))
    one_hot = np.zeros((1, 2, 3))
    one_hot[0, :, 1] = 1.0
    assert np.array_equal(frugal.reference_predictive_entropy(one_hot), [0.0, 0.0])
    disagree = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert np.allclose(frugal.reference_predictive_entropy(disagree), [np.log(2)])
    with pytest.raises(ValueError):
        frugal.reference_predictive_entropy(np.full((3, 10), 0.1))


def test_reference_exit_rule_is_strict_and_ends_at_the_last_exit():
    probs = np.array([[[0.75, 0.25], [0.5, 0.5]], [[0.25, 0.75], [0.875, 0.125]], [[0.5, 0.5], [0.5, 0.5]]])
    r = frugal.reference_exit_rule(probs, 0.75)
    assert r["exit"].tolist() == [2, 1] and r["pred"].tolist() == [0, 0]
    with pytest.raises(ValueError):
        frugal.reference_exit_rule(probs[0], 0.5)


def test_reference_cascade_never_reads_the_big_model_where_the_small_one_answers():
    small = np.array([[0.9, 0.1], [0.5, 0.5], [0.75, 0.25]])
    big = np.array([[np.nan, np.nan], [0.0, 1.0], [0.0, 1.0]])
    r = frugal.reference_cascade(small, big, 0.75)
    assert r["to_big"].tolist() == [False, True, True] and r["pred"].tolist() == [0, 1, 1]


def test_reference_exit_costs_needs_one_head_per_block():
    with pytest.raises(ValueError):
        frugal.reference_exit_costs([1, 2, 3], [1, 2])


def test_stand_ins_name_existing_references():
    """Lab 04's stand-ins (sweatlab.labs.lab04_less.standins) are this module's reference rules."""
    from sweatlab.kit.standins import stand_ins_of

    table = stand_ins_of("04_less")
    assert len(table) == 5
    for stand_in in table.values():
        reference = stand_in.load()
        assert callable(reference) and reference is getattr(frugal, f"reference_{stand_in.name}")
