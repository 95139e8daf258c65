"""sweatlab.topics.devices: every figure carries a source and units; the model and the TPU rebuild are sane."""

from __future__ import annotations

import math

import pytest

from sweatlab.topics import devices as D
from sweatlab.measure import energy, energy_data


def test_every_figure_has_a_value_a_unit_a_source_and_a_kind():
    for d in D.DEVICES:
        figures = d.figures()
        assert figures, d.name
        for what, f in figures:
            assert f.value > 0 and math.isfinite(f.value), (d.name, what)
            assert f.unit in ("GFLOP/s", "GOP/s", "GB/s", "W"), (d.name, what, f.unit)
            assert len(f.source) > 20, (d.name, what)
            assert f.kind in ("peak", "measured", "derived", "TDP"), (d.name, what)
            assert f.label  # peak/measured, dense/sparse, primary/secondary, as text


def test_units_match_what_is_measured():
    for d in D.DEVICES:
        for prec, f in d.peaks.items():
            assert f.unit == ("GOP/s" if prec == "int8" else "GFLOP/s"), (d.name, prec)
        assert d.bandwidth.unit == "GB/s"
        assert d.power is None or d.power.unit == "W"


def test_derived_figures_show_their_arithmetic_and_measured_ones_their_provenance():
    for d in D.DEVICES:
        for what, f in d.figures():
            if f.kind == "derived":
                assert f.note, (d.name, what)
            if f.kind == "measured" and "H200" in d.name:
                assert "2026-11-29" in f.source


def test_the_issue_s_devices_are_all_there():
    names = " ".join(d.name for d in D.DEVICES)
    for needed in ("Haswell", "K80", "TPU v1", "T4", "A100", "H100", "H200 SXM (datasheet)", "H200 SXM (measured)",
                   "TPU v4", "TPU v5e", "Sapphire Rapids", "EPYC", "Graviton3", "M2", "host CPU"):
        assert needed in names, needed


def test_a_figure_without_a_source_or_unit_is_refused():
    with pytest.raises(ValueError):
        D.Figure(1.0, "W", "", "TDP", True)
    with pytest.raises(ValueError):
        D.Figure(1.0, "", "somewhere", "TDP", True)
    with pytest.raises(ValueError):
        D.Figure(0.0, "W", "somewhere", "TDP", True)


def test_dense_figures_only_no_sparse_peaks_in_the_table():
    for d in D.DEVICES:
        for f in d.peaks.values():
            assert f.dense is not False, d.name


def test_batch_one_is_memory_bound_everywhere_and_prefill_compute_bound_on_gpus():
    decode = D.WORKLOADS[2]
    for d in D.DEVICES:
        p = D.predict(d, decode)
        if p:
            assert p.bound == "memory", d.name
    for name in ("NVIDIA A100", "NVIDIA H100", "NVIDIA T4"):
        assert D.predict(D.device(name), D.WORKLOADS[3]).bound == "compute"


def test_memory_bound_tokens_per_joule_is_bandwidth_per_watt_over_bytes():
    h100 = D.device("NVIDIA H100")
    p = D.predict(h100, D.Workload("d", 1e9, 1, "bf16"))
    assert p.per_joule == pytest.approx(3350e9 / 2e9 / 700)


def test_batching_reuses_weights():
    h100 = D.device("NVIDIA H100")
    one = D.predict(h100, D.Workload("m", 1e8, 1, "bf16"))
    many = D.predict(h100, D.Workload("m", 1e8, 64, "bf16"))
    assert many.seconds == pytest.approx(one.seconds)  # still memory-bound: same bytes, 64x the inputs
    assert many.per_second == pytest.approx(64 * one.per_second)


def test_compute_bound_batch_matches_the_ridge():
    assert D.compute_bound_batch(989_400, 3_350, 2) == 296
    assert D.compute_bound_batch(10, 100, 1) == 1
    b = D.compute_bound_batch(312_000, 2_039, 2)
    assert 2 * b / 2 >= 312_000 / 2_039 > 2 * (b - 1) / 2


def test_the_plain_number_model_agrees_with_predict():
    h100 = D.device("NVIDIA H100")
    for batch in (1, 64, 296, 4096):
        p = D.predict(h100, D.Workload("m", 1e9, batch, "bf16"))
        r = D.step_model(1e9, batch, 2, h100.peak_gflops("bf16"), h100.bandwidth_gbs, h100.watts)
        assert r["seconds"] == pytest.approx(p.seconds) and r["per_joule"] == pytest.approx(p.per_joule)
        assert r["per_second"] == pytest.approx(p.per_second) and r["bound"] == p.bound
    assert D.step_model(1e9, 296, 2, 989_400, 3_350, 700)["bound"] == "compute"
    assert D.step_model(1e9, 295, 2, 989_400, 3_350, 700)["bound"] == "memory"


def test_tokens_per_joule_is_the_memory_roof_over_the_power():
    assert D.bytes_per_token(124e6, 16) == pytest.approx(248e6)
    assert D.bytes_per_token(7e9, 4) == pytest.approx(3.5e9)
    h100 = D.device("NVIDIA H100")
    tpj = D.tokens_per_joule(1e9, 16, h100.bandwidth_gbs, h100.watts)
    assert tpj == pytest.approx(D.predict(h100, D.Workload("d", 1e9, 1, "bf16")).per_joule)
    assert D.tokens_per_joule(1e9, 8, 300, 72) == pytest.approx(2 * D.tokens_per_joule(1e9, 16, 300, 72))


def test_choose_device_keeps_both_budgets_then_the_fewest_joules():
    options = [{"name": "fast", "seconds": 0.001, "joules": 0.5}, {"name": "frugal", "seconds": 0.01, "joules": 0.01},
               {"name": "middle", "seconds": 0.002, "joules": 0.1}]
    assert D.choose_device(options, 0.005, 1.0) == "middle"  # frugal misses the latency budget
    assert D.choose_device(options, 0.001, 1.0) == "fast"
    assert D.choose_device(options, 0.1, 1.0) == "frugal"
    assert D.choose_device(options, 0.001, 0.2) is None
    assert D.choose_device([], 1.0, 1.0) is None


def test_a_device_without_the_precision_is_skipped():
    assert D.predict(D.device("NVIDIA K80"), D.Workload("x", 1e6, 1, "int8")) is None


def test_tpu_rebuild_matches_the_paper_s_inputs():
    rows = {r["ratio"]: r["rebuilt"] for r in D.tpu_ratios()}
    assert rows["peak ops/s, TPU vs GPU"] == pytest.approx(92 / 2.8)
    assert rows["peak ops/s per TDP watt, TPU vs GPU"] == pytest.approx((92 / 75) / (2.8 / 150))
    assert rows["measured speed (Table 6, weighted), TPU vs GPU"] == pytest.approx(29.2 / 1.9)
    assert 15 <= rows["measured speed (Table 6, weighted), TPU vs GPU"] <= 30
    assert 30 <= rows["measured speed per TDP watt, TPU vs GPU"] <= 80


def test_chinchilla_optimal():
    o = D.chinchilla_optimal(6 * 70e9 * 1.4e12)
    assert o["params"] == pytest.approx(70e9) and o["tokens"] == pytest.approx(1.4e12)


def test_this_machine_row():
    d = D.this_machine({"fp32": 80.0, "bf16": None}, 30.0)
    assert d.peak_gflops("fp32") == 80.0 and d.peak_gflops("bf16") is None and d.watts is None
    assert d.source_kind() == "measured"


def test_shipped_h200_runs_carry_provenance():
    for runs in energy_data.SHIPPED_H200.values():
        for r in runs:
            assert r.kind == "shipped measurement" and "NVML" in r.provenance


# --- the GPU path, with a fake NVML --------------------------------------------------------------

class _FakeNVML:
    """One GPU whose energy counter (mJ) advances with every read: 100 J per read."""

    def __init__(self):
        self.mj = 1_000_000

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return "NVIDIA H200"

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        self.mj += 100_000
        return self.mj


def test_measure_energy_on_a_fake_gpu(tmp_path):
    calls = []
    syncs = []
    meter = energy.EnergyMeter(devices="gpu", nvml_module=_FakeNVML(), rapl_root=tmp_path / "none", poll_s=None,
                               gpu_baseline_s=0.01)
    out = D.measure_energy(lambda: calls.append(1), 8, 0.02, meter=meter, sync=lambda: syncs.append(1))
    assert out["kind"] == "measured" and "nvml" in out["source"]
    assert out["joules"] == pytest.approx(100.0)  # one read at begin (after the baseline), one at end
    assert out["per_joule"] == pytest.approx(out["calls"] * 8 / 100.0)
    assert out["idle_w"] is not None and len(syncs) == 2


def test_measure_energy_without_a_sensor_is_estimated_or_unavailable(tmp_path):
    class _NoGPU:
        def nvmlInit(self):
            raise RuntimeError("no driver")

    est = energy.EnergyMeter(estimate=True, tdp_w=280.0, host_cores=64, cores_used=1, rapl_root=tmp_path / "none",
                             nvml_module=_NoGPU(), poll_s=None)
    out = D.measure_energy(lambda: sum(range(1000)), 1, 0.02, meter=est)
    assert out["kind"] == "estimated" and out["joules"] > 0
    bare = energy.EnergyMeter(rapl_root=tmp_path / "none", nvml_module=_NoGPU(), poll_s=None)
    out = D.measure_energy(lambda: None, 1, 0.01, meter=bare)
    assert out["kind"] == "unavailable" and out["joules"] is None and out["per_joule"] is None
