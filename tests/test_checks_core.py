"""The check machinery shared by notebooks and the grader."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from sweatlab.kit import checks as core
from sweatlab.kit.checks import (CheckFailure, EncodeError, InProcessRunner, LabChecks, Tester, decode,
                                  encode, public_test, run_exercise)

LAB = "99_selftest"


@public_test(LAB, "square", points=2)
def squares_a_vector(t: Tester):
    x = t.rng().integers(-5, 5, size=6)
    t.expect_equal(t.call("square", x), x ** 2, what="square(x) for a vector of 6 ints",
                   hint="square each element")


@public_test(LAB, "square")
def squares_zero(t: Tester):
    t.expect_close(t.call("square", 0.0), 0.0, what="square(0.0)")


class AlwaysEqual(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


def test_plain_data_round_trips_through_json():
    value = {"a": [1, 2.5, None, "x"], "b": np.arange(6, dtype=np.float32).reshape(2, 3), "c": np.int64(7)}
    back = decode(json.loads(json.dumps(encode(value))))
    assert back["a"] == [1, 2.5, None, "x"] and back["c"] == 7 and type(back["c"]) is int
    assert back["b"].dtype == np.float32 and back["b"].shape == (2, 3)


@pytest.mark.parametrize("bad", [AlwaysEqual(3), object(), np.array(["a"]), {1: 2}, lambda: 1])
def test_objects_that_could_fake_a_comparison_are_refused(bad):
    with pytest.raises(EncodeError):
        encode(bad)


def test_a_correct_function_passes_every_test():
    results = run_exercise(LAB, "square", InProcessRunner({"square": lambda x: np.asarray(x) ** 2}))
    assert [r.passed for r in results] == [True, True] and sum(r.points for r in results) == 3


def test_an_always_equal_result_fails():
    [first, _] = run_exercise(LAB, "square", InProcessRunner({"square": lambda x: AlwaysEqual(0)}))
    assert not first.passed and "cannot read" in first.message


def test_the_blank_stub_fails_with_a_hint_to_write_the_code():
    def square(x):
        raise NotImplementedError("ex-square: replace this line with your code")

    results = run_exercise(LAB, "square", InProcessRunner({"square": square}))
    assert not any(r.passed for r in results) and all(r.not_written for r in results)
    report = core.format_report("square", results)
    assert report.startswith("✗ square: 0 of 2 tests passed") and "raise NotImplementedError" in report


def test_a_wrong_answer_says_expected_got_and_hint():
    results = run_exercise(LAB, "square", InProcessRunner({"square": lambda x: np.asarray(x) * 2}))
    assert not results[0].passed
    assert "square(x) for a vector of 6 ints: expected array(6,)" in results[0].message
    assert "hint: square each element" in results[0].text


def test_a_missing_function_is_named():
    [first, _] = run_exercise(LAB, "square", InProcessRunner({}))
    assert "no function named 'square'" in first.message


def test_a_crash_in_learner_code_shows_only_its_own_frames():
    namespace = {}
    exec(compile("def square(x):\n    return x / undefined_name\n", "<ipython-input-1>", "exec"), namespace)
    [first, _] = run_exercise(LAB, "square", InProcessRunner(namespace))
    assert "NameError" in first.message and "<ipython-input-1>" in first.traceback
    assert "core.py" not in first.traceback


def test_expect_close_points_at_the_first_wrong_entry():
    with pytest.raises(CheckFailure, match=r"at index \(1, 0\).*1 of 4 entries differ"):
        Tester.expect_close(np.array([[1.0, 2.0], [9.0, 4.0]]), np.array([[1.0, 2.0], [3.0, 4.0]]), what="m")
    with pytest.raises(CheckFailure, match="shape"):
        Tester.expect_close(np.zeros(3), np.zeros((3, 1)), what="m")


def test_expect_equal_does_not_take_true_for_one():
    with pytest.raises(CheckFailure):
        Tester.expect_equal(True, 1, what="count")


def test_rng_is_the_same_for_the_same_test_name():
    a = Tester(None, "lab/ex/t").rng().random(3)
    assert np.array_equal(a, Tester(None, "lab/ex/t").rng().random(3))
    assert not np.array_equal(a, Tester(None, "lab/ex/u").rng().random(3))


def test_lab_checks_prints_the_verdict(capsys):
    LabChecks(LAB)("square", {"square": lambda x: np.asarray(x) ** 2})
    assert capsys.readouterr().out == "✓ square: all 2 tests passed\n"


def test_a_numba_typing_error_gets_a_hint_about_what_usually_causes_it():
    numba = pytest.importorskip("numba")

    @numba.njit
    def square(x):
        total = 0
        for v in x:
            total += v.nonexistent  # numba cannot type this
        return total

    from sweatlab.kit.checks import InProcessRunner, Tester, run_test, TestSpec

    def test(t):
        t.call("square", np.arange(3.0))

    result = run_test(TestSpec("x", "square", "types", 1.0, test), InProcessRunner({"square": square}))
    assert not result.passed and result.message.startswith("square raised TypingError")
    assert "numba could not compile" in result.hint and "np.asarray" in result.hint


class _ScriptedRunner(InProcessRunner):
    """Each call "takes" its kernel time plus a fixed cost of making the inputs, as in the grader."""

    KERNEL_S = {"fast": 0.010, "slow": 0.040}
    MAKE_INPUTS_S = 0.100
    DIGEST_S = 0.020  # reducing the 4x4 result to its digest, part of every timed call in the grader

    def timed_call(self, func, args, kwargs, reference=False, digest=None):
        value, _ = super().timed_call(func, args, kwargs, reference, digest)
        return value, self.KERNEL_S[func] + self.MAKE_INPUTS_S + self.DIGEST_S

    def timed_decode(self, args, digest_shape=None):
        return self.MAKE_INPUTS_S + (self.DIGEST_S if digest_shape == (4, 4) else 0.0)


def test_speed_ratio_takes_the_cost_of_making_inputs_off_both_sides():
    """Inputs that take 100 ms to make (and a digest of 20 ms) would turn a 4x kernel into 1.23x if the costs
    stayed in; the digest's cost is measured for the shape of the reference's result."""
    double = lambda x, *extra: 2 * x  # noqa: E731
    tester = Tester(_ScriptedRunner({"fast": double, "slow": double}), "speed")

    def check(got, inputs, what):
        Tester.expect_close(got, 2 * inputs[0], what=what)

    make = lambda rng: (core.RandomArray.fresh(rng, (4, 4), "float32"),)  # noqa: E731
    assert tester.speed_ratio("fast", "slow", make, check, rounds=2, fast_args=(7,)) == pytest.approx(4.0)


class _BusyCoreRunner(InProcessRunner):
    """The two-thread "fast" side runs no faster than one thread until round 30: its second core was taken."""

    def __init__(self, namespace, free_from_call=60):
        super().__init__(namespace)
        self.calls, self.free_from_call = 0, free_from_call

    def timed_call(self, func, args, kwargs, reference=False, digest=None):
        value, _ = super().timed_call(func, args, kwargs, reference, digest)
        self.calls += 1
        if func == "fast" and self.calls >= self.free_from_call:
            return value, 0.010
        return value, 0.020

    def timed_decode(self, args, digest_shape=None):
        return 0.0


def test_more_rounds_find_the_free_core_and_cannot_speed_up_an_equal_kernel():
    double = lambda x, *extra: 2 * x  # noqa: E731

    def check(got, inputs, what):
        Tester.expect_close(got, 2 * inputs[0], what=what)

    make = lambda rng: (core.RandomArray.fresh(rng, (4, 4), "float32"),)  # noqa: E731
    plain = Tester(_BusyCoreRunner({"fast": double, "slow": double}), "speed")
    assert plain.speed_ratio("fast", "slow", make, check, rounds=15) == pytest.approx(1.0)
    patient = Tester(_BusyCoreRunner({"fast": double, "slow": double}), "speed")
    assert patient.speed_ratio("fast", "slow", make, check, rounds=15, more_until=1.25, more_s=5.0) == pytest.approx(2.0)
    never = Tester(_BusyCoreRunner({"fast": double, "slow": double}, free_from_call=10 ** 9), "speed")
    started = time.monotonic()
    assert never.speed_ratio("fast", "slow", make, check, rounds=15, more_until=1.25, more_s=0.3) == pytest.approx(1.0)
    assert time.monotonic() - started < 5.0, "the extra rounds stop at their deadline"
