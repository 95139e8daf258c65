"""Lab 05_perf_per_watt: what is particular to it, above all the plausible mistakes each check must reject.

What every lab must do (the solution passes every check, the blank lab fails them, one check cell per
exercise in order, the deck, the record, the time estimates) is in tests/test_lab_contract.py.
"""

from __future__ import annotations

import math

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
