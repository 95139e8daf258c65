"""sweatlab.measure.roofline: the bound, the ridge, small real measurements, byte accounting, the plot."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from sweatlab.measure import flops as F
from sweatlab.measure import roofline as R
from sweatlab.measure.hardware import describe
from sweatlab.measure.roofline import Bandwidth, KernelPoint, PeakCompute, Roofline

MIB = 2**20


def test_attainable_is_min_of_peak_and_bandwidth_times_intensity():
    assert R.attainable_gflops(0.5, 100.0, 20.0) == pytest.approx(10.0)  # memory-bound
    assert R.attainable_gflops(50.0, 100.0, 20.0) == pytest.approx(100.0)  # compute-bound
    got = R.attainable_gflops(np.array([0.1, 5.0, 10.0]), 100.0, 20.0)
    assert np.allclose(got, [2.0, 100.0, 100.0])


def test_ridge_is_peak_over_bandwidth_and_both_roofs_meet_there():
    ridge = R.ridge_intensity(100.0, 20.0)
    assert ridge == pytest.approx(5.0)
    assert R.attainable_gflops(ridge, 100.0, 20.0) == pytest.approx(100.0)
    assert R.attainable_gflops(ridge * 0.5, 100.0, 20.0) == pytest.approx(50.0)


def test_roofline_bound_rejects_missing_roofs():
    with pytest.raises(ValueError, match="peak_gflops"):
        R.attainable_gflops(1.0, 0.0, 10.0)


def test_kernel_point_uses_the_cost_and_the_time():
    p = R.kernel_point("mm", F.matmul(100, 100, 100), 1e-3)
    assert p.gflops == pytest.approx(2e6 / 1e-3 / 1e9)  # 2 GFLOP/s
    assert p.intensity == pytest.approx(F.matmul(100, 100, 100).intensity)


def test_peak_fp32_uses_the_best_run_and_two_n_cubed_flops():
    p = R.peak_fp32(n=256, budget_s=0.05)
    assert p.dtype == "float32" and p.n == 256
    assert p.gflops == pytest.approx(2 * 256**3 / p.timing.min_s / 1e9)
    assert p.gflops >= p.median_gflops > 0
    assert "numpy matmul" in p.backend


def test_peak_fp32_records_the_thread_limit_it_ran_under():
    p = R.peak_fp32(n=128, budget_s=0.02, threads=1)
    if describe().blas is not None:
        assert p.threads == 1


def test_bf16_is_measured_only_with_native_support_else_skipped_with_reason():
    ok, why = R.bf16_support()
    p = R.peak_bf16(n=128, budget_s=0.02)
    assert why
    if ok:
        assert p.gflops and p.gflops > 0
    else:
        assert p.gflops is None and p.skipped_reason == why
        assert "skipped" in repr(p)


def test_cpu_without_bf16_flags_is_skipped(monkeypatch):
    pytest.importorskip("torch")
    real = describe(import_torch=True)
    fake_isa = {k: (False if "bf16" in k else v) for k, v in real.isa.items()}
    fake = type(real)(**{**real.__dict__, "isa": fake_isa})
    monkeypatch.setattr("sweatlab.measure.hardware.describe", lambda **kw: fake)
    ok, why = R.bf16_support()
    assert not ok and "no native bf16" in why


def test_forced_bf16_runs_and_says_it_was_forced():
    pytest.importorskip("torch")
    ok, _ = R.bf16_support()
    p = R.peak_bf16(n=64, budget_s=0.01, force=True)
    assert p.gflops and p.gflops > 0
    if not ok:
        assert any("forced" in w for w in p.warnings)


def test_triad_counts_five_arrays_and_reports_streams_three_array_credit():
    b = R.stream_triad(array_bytes=16 * MIB, threads=1, budget_s=0.02)
    assert b.array_bytes == 16 * MIB
    assert b.bytes_per_triad == 5 * 16 * MIB
    assert b.gbs == pytest.approx(b.bytes_per_triad / b.timing.min_s / 1e9)
    assert b.stream_gbs == pytest.approx(b.gbs * 3 / 5)
    assert "5 arrays" in b.accounting and "write-allocate" in b.accounting.lower()


def test_triad_with_threads_splits_the_arrays():
    b = R.stream_triad(array_bytes=16 * MIB, threads=2, budget_s=0.02)
    assert b.threads == 2 and b.gbs > 0  # stream_triad checks the values it computed


def test_triad_size_is_capped_and_warned_when_the_vm_reports_a_huge_l3(monkeypatch):
    real = describe()
    fake = type(real)(**{**real.__dict__, "cache_bytes": {**real.cache_bytes, "L3": 480 * MIB}})
    monkeypatch.setattr("sweatlab.measure.hardware.describe", lambda **kw: fake)
    size, warns = R._triad_array_bytes(quick=False)
    assert size <= 512 * MIB
    assert any("4x" in w and "480 MiB" in w for w in warns)
    qsize, _ = R._triad_array_bytes(quick=True)
    assert qsize <= 128 * MIB


def test_triad_arrays_are_4x_a_small_llc(monkeypatch):
    real = describe()
    fake = type(real)(**{**real.__dict__, "cache_bytes": {**real.cache_bytes, "L3": 100 * MIB}})
    monkeypatch.setattr("sweatlab.measure.hardware.describe", lambda **kw: fake)
    psutil = pytest.importorskip("psutil")
    if psutil.virtual_memory().available // 8 < 400 * MIB:
        pytest.skip("too little free memory for 3 arrays of 400 MiB")
    size, warns = R._triad_array_bytes(quick=False)
    assert size == 400 * MIB and warns == []  # Hager's rule: 4x the last-level cache


def _fake_roofline() -> Roofline:
    fp32 = PeakCompute("float32", "numpy matmul", 2048, 200.0, 180.0, 1)
    bf16 = PeakCompute("bfloat16", "torch matmul", 2048, 1200.0, 1000.0, 1)
    mem = Bandwidth(20.0, 18.0, 12.0, 256 * MIB, 5 * 256 * MIB, 1, "5 arrays")
    return Roofline((fp32, bf16), mem, "Test CPU")


def test_roofline_ridge_and_attainable_per_dtype():
    roof = _fake_roofline()
    assert roof.ridge_intensity("float32") == pytest.approx(10.0)
    assert roof.ridge_intensity("bfloat16") == pytest.approx(60.0)
    assert roof.attainable_gflops(1.0) == pytest.approx(20.0)
    assert roof.attainable_gflops(100.0, "bfloat16") == pytest.approx(1200.0)
    with pytest.raises(ValueError, match="int8"):
        roof.attainable_gflops(1.0, "int8")


def test_roofline_plot_has_log_axes_with_units_ridges_and_named_kernels():
    roof = _fake_roofline()
    kernels = [KernelPoint("matvec", 0.5, 9.0), KernelPoint("gemm 2048", 300.0, 190.0)]
    fig = roof.plot(kernels)
    try:
        ax = fig.axes[0]
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert "FLOP/byte" in ax.get_xlabel() and "GFLOP/s" in ax.get_ylabel()
        assert "Test CPU" in ax.get_title()
        texts = [t.get_text() for t in ax.texts]
        assert "matvec" in texts and "gemm 2048" in texts
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert sum("ridge" in t for t in legend) == 2  # one per dtype roof, in the legend
        x_lo, x_hi = ax.get_xlim()
        assert x_lo <= 0.5 and x_hi >= 300.0  # every kernel inside the axes
    finally:
        plt.close(fig)


def test_plot_from_datasheet_numbers_with_a_kernel_dict():
    fig = R.plot_roofline(kernels={"decode step": (0.5, 40.0)}, peak_gflops={"bf16 (datasheet)": 989_000.0}, bandwidth_gbs=3350.0, title="H100 SXM")
    try:
        ax = fig.axes[0]
        assert ax.get_title() == "H100 SXM"
        assert any("decode step" == t.get_text() for t in ax.texts)
    finally:
        plt.close(fig)


def test_plot_without_roofs_says_what_to_give():
    with pytest.raises(ValueError, match="peak_gflops and bandwidth_gbs"):
        R.plot_roofline(kernels={})


def test_cache_bandwidth_is_above_memory_bandwidth_and_says_its_level():
    l2 = R.cache_bandwidth("L2", budget_s=0.05)
    if l2 is None:
        pytest.skip("this machine does not report its L2 size")
    dram = R.stream_triad(64 * R.MIB, threads=1, budget_s=0.05)
    assert l2.level == "L2" and "from L2" in repr(l2) and l2.array_bytes * 3 <= describe().cache_bytes["L2"]
    assert l2.gbs > dram.gbs, (l2, dram)  # a ratio in one process, not an absolute speed


def test_cache_bandwidth_is_none_for_a_level_the_machine_does_not_report():
    assert R.cache_bandwidth("L9") is None


def test_two_close_ridges_are_named_in_the_legend_not_in_overlapping_labels():
    fig = R.plot_roofline(kernels={"add": (0.083, 2.6)}, peak_gflops={"BLAS": 103.0, "hardware": 118.0},
                          bandwidth_gbs=37.6, cache_gbs={"L2": 114.0})
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert not any("ridge" in t for t in texts), texts
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("ridge" in t and "2.74" in t for t in legend) and any("L2: 114 GB/s" in t for t in legend), legend
