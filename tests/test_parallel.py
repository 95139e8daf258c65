"""sweatlab.topics.parallel: Amdahl's law, its fit to measured times, and the scaling sweep."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sweatlab.topics import parallel as P


def test_amdahl_time_and_speedup():
    assert P.amdahl_time(1, 10.0, 0.1) == pytest.approx(10.0)
    assert P.amdahl_time(4, 10.0, 0.1) == pytest.approx(10.0 * (0.1 + 0.9 / 4))
    assert P.amdahl_speedup(1, 0.3) == pytest.approx(1.0)
    assert P.amdahl_speedup(1e9, 0.05) == pytest.approx(20.0, rel=1e-6)
    assert P.amdahl_speedup(8, 0.0) == pytest.approx(8.0)
    with pytest.raises(ValueError):
        P.amdahl_time(0, 1.0, 0.1)


def test_the_fit_recovers_exact_times():
    ps = [1, 2, 4, 8, 16]
    fit = P.fit_amdahl(ps, [P.amdahl_time(p, 3.0, 0.07) for p in ps])
    assert fit.t1_s == pytest.approx(3.0) and fit.serial_fraction == pytest.approx(0.07)
    assert fit.rms_relative_error < 1e-9 and not fit.exact
    assert fit.max_speedup == pytest.approx(1 / 0.07)
    assert fit.predict_s(32) == pytest.approx(P.amdahl_time(32, 3.0, 0.07))
    assert fit.speedup(2) == pytest.approx(P.amdahl_speedup(2, 0.07))
    assert "serial fraction 0.070" in repr(fit)


def test_two_thread_counts_determine_it_exactly_and_say_so():
    fit = P.fit_amdahl([1, 2, 1, 2], [1.0, 0.6, 1.0, 0.6])
    assert fit.exact and fit.serial_fraction == pytest.approx(0.2) and fit.t1_s == pytest.approx(1.0)
    assert "exactly determined" in repr(fit)


def test_noisy_times_give_a_close_fit_weighted_by_relative_error():
    rng = np.random.default_rng(0)
    ps = [1, 2, 4, 8, 16, 32] * 3
    ts = [P.amdahl_time(p, 5.0, 0.02) * (1 + 0.02 * rng.standard_normal()) for p in ps]
    fit = P.fit_amdahl(ps, ts)
    assert abs(fit.serial_fraction - 0.02) < 0.005 and abs(fit.t1_s - 5.0) < 0.1
    assert 0.005 < fit.rms_relative_error < 0.05


def test_the_fraction_stays_between_zero_and_one():
    superlinear = P.fit_amdahl([1, 2], [10.0, 4.5])
    assert superlinear.serial_fraction == 0.0 and math.isinf(superlinear.max_speedup)
    assert 8.5 < superlinear.t1_s < 10.5
    slower = P.fit_amdahl([1, 2, 4], [1.0, 1.1, 1.3])
    assert slower.serial_fraction == pytest.approx(1.0) and slower.max_speedup == pytest.approx(1.0)


@pytest.mark.parametrize("threads, seconds", [([1, 1], [1.0, 1.0]), ([1, 2], [1.0]), ([0, 2], [1.0, 0.5]),
                                              ([1, 2], [1.0, 0.0])])
def test_bad_input_is_refused(threads, seconds):
    with pytest.raises(ValueError):
        P.fit_amdahl(threads, seconds)


def test_scaling_times_each_thread_count_and_restores_the_pool():
    import numba
    from numba import njit, prange

    @njit(parallel=True)
    def total(x):
        s = 0.0
        for i in prange(x.shape[0]):
            s += x[i]
        return s

    x = np.ones(100_000)
    before = numba.get_num_threads()
    points = P.scaling(total, x, threads=[1], budget_s=0.01, rounds=1)
    assert [p.threads for p in points] == [1] and points[0].numba_threads == 1 and points[0].median_s > 0
    assert numba.get_num_threads() == before
    with pytest.raises(ValueError, match="NUMBA_NUM_THREADS"):
        P.scaling(total, x, threads=[numba.config.NUMBA_NUM_THREADS + 1])
