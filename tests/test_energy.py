"""sweatlab.measure.energy: RAPL against a fake sysfs tree, NVML against a fake module, the estimate's model.

The fake tree mirrors /sys/class/powercap on a two-socket Intel server with a psys domain:
intel-rapl:0 package-0 {core, uncore, dram}, intel-rapl:1 package-1, intel-rapl:2 psys.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from sweatlab.measure import energy
from sweatlab.measure.energy import EnergyMeter, SensorStatus, find_rapl_zones, probe_energy_sensors

linux = pytest.mark.skipif(platform.system() != "Linux", reason="RAPL is read only on Linux; the fakes follow its sysfs layout")

MAX_UJ = 262_143_328_850


def _zone(root: Path, zone_id: str, name: str, uj: int, max_uj: int | None = MAX_UJ) -> Path:
    d = root / zone_id
    d.mkdir(parents=True)
    (d / "name").write_text(name + "\n")
    (d / "energy_uj").write_text(f"{uj}\n")
    if max_uj is not None:
        (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def _set(root: Path, zone_id: str, uj: int) -> None:
    (root / zone_id / "energy_uj").write_text(f"{uj}\n")


@pytest.fixture
def server(tmp_path: Path) -> Path:
    """Two packages with nested domains, and psys, all at 1000 J."""
    (tmp_path / "intel-rapl").mkdir()  # the control-type folder: no counter of its own
    _zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000_000)
    _zone(tmp_path, "intel-rapl:0:0", "core", 1_000_000_000)
    _zone(tmp_path, "intel-rapl:0:1", "uncore", 1_000_000_000)
    _zone(tmp_path, "intel-rapl:0:2", "dram", 1_000_000_000)
    _zone(tmp_path, "intel-rapl:1", "package-1", 1_000_000_000)
    _zone(tmp_path, "intel-rapl:2", "psys", 1_000_000_000)
    return tmp_path


class _NoGPU:
    """NVML that starts but sees no GPU (keeps tests independent of the test machine)."""

    class NVMLError(Exception):
        pass

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 0


def _fake_nvml(start_mj: list[int], counter: bool = True) -> SimpleNamespace:
    values = list(start_mj)

    class NVMLError(Exception):
        pass

    def energy_of(handle):
        if not counter:
            raise NVMLError("Not Supported")
        return values[handle]

    mod = SimpleNamespace(
        NVMLError=NVMLError,
        nvmlInit=lambda: None,
        nvmlDeviceGetCount=lambda: len(values),
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: b"Tesla P100" if not counter else "NVIDIA A100",
        nvmlDeviceGetTotalEnergyConsumption=energy_of,
    )
    mod.values = values
    return mod


def _meter(root: Path, **kw) -> EnergyMeter:
    return EnergyMeter(rapl_root=root, nvml_module=kw.pop("nvml_module", _NoGPU()), poll_s=None, **kw)


# ## Finding zones


@linux
def test_probe_lists_every_rapl_domain_of_the_fake_tree(server):
    rapl = probe_energy_sensors(rapl_root=server, nvml_module=_NoGPU())[0]
    assert rapl.name == "rapl" and rapl.available
    assert set(rapl.domains) == {"package-0", "package-0/core", "package-0/uncore", "package-0/dram", "package-1", "psys"}


@linux
def test_zones_know_their_parent(server):
    zones = {z.zone_id: z for z in find_rapl_zones(server)}
    assert zones["intel-rapl:0:2"].parent == "intel-rapl:0" and not zones["intel-rapl:0:2"].top_level
    assert zones["intel-rapl:1"].top_level and zones["intel-rapl:0"].max_energy_range_uj == MAX_UJ
    assert "intel-rapl" not in zones


@linux
def test_nested_devices_layout_is_found(tmp_path):
    top = _zone(tmp_path / "intel-rapl", "intel-rapl:0", "package-0", 5)
    _zone(top, "intel-rapl:0:0", "core", 5)
    zones = {z.zone_id for z in find_rapl_zones(tmp_path)}
    assert zones == {"intel-rapl:0", "intel-rapl:0:0"}


@linux
def test_mmio_copy_of_a_package_is_not_counted_twice(server):
    _zone(server, "intel-rapl-mmio:0", "package-0", 7)
    assert "intel-rapl-mmio:0" not in {z.zone_id for z in find_rapl_zones(server)}


# ## Reading energy


@linux
def test_total_is_the_packages_not_their_subdomains(server):
    m = _meter(server).begin()
    _set(server, "intel-rapl:0", 1_010_000_000)  # +10 J
    _set(server, "intel-rapl:0:0", 1_006_000_000)  # +6 J, inside package-0
    _set(server, "intel-rapl:0:1", 1_001_000_000)  # +1 J, inside package-0
    _set(server, "intel-rapl:0:2", 1_002_000_000)  # +2 J, inside package-0
    _set(server, "intel-rapl:1", 1_005_000_000)  # +5 J
    _set(server, "intel-rapl:2", 1_030_000_000)  # +30 J, contains both packages
    r = m.end()
    assert r.kind == "measured"
    assert r.joules == pytest.approx(15.0)  # 10 + 5; summing everything would give 54
    assert r.domains_j == pytest.approx({"package-0": 10.0, "package-1": 5.0})
    assert sum(r.domains_j.values()) == pytest.approx(r.joules)
    assert r.detail_j == pytest.approx({"package-0/core": 6.0, "package-0/uncore": 1.0, "package-0/dram": 2.0, "psys": 30.0})
    assert "package-0" in r.source


@linux
def test_prefer_psys_counts_psys_alone(server):
    m = _meter(server, prefer_psys=True).begin()
    _set(server, "intel-rapl:0", 1_010_000_000)
    _set(server, "intel-rapl:1", 1_005_000_000)
    _set(server, "intel-rapl:2", 1_030_000_000)
    r = m.end()
    assert r.joules == pytest.approx(30.0)
    assert r.domains_j == pytest.approx({"psys": 30.0})
    assert r.detail_j["package-0"] == pytest.approx(10.0)


@linux
def test_wraparound_adds_max_range(tmp_path):
    _zone(tmp_path, "intel-rapl:0", "package-0", MAX_UJ - 1_000_000)
    m = _meter(tmp_path).begin()
    _set(tmp_path, "intel-rapl:0", 2_000_000)  # wrapped past max: 1 J before the wrap, 2 J after
    r = m.end()
    assert r.joules == pytest.approx(3.0)
    assert any("wraparound" in w for w in r.warnings)


@linux
def test_two_wraps_in_a_long_window_are_caught_by_polling(tmp_path):
    _zone(tmp_path, "intel-rapl:0", "package-0", 100, max_uj=1_000_000)  # a 1 J counter
    m = _meter(tmp_path).begin()
    _set(tmp_path, "intel-rapl:0", 50)  # wrapped once: +999 950 uJ
    m.poll()
    _set(tmp_path, "intel-rapl:0", 10)  # wrapped again: +999 960 uJ
    r = m.end()
    assert r.joules == pytest.approx((1_000_000 - 50 + 1_000_000 - 40) / 1e6)


@linux
def test_backwards_counter_without_max_range_is_dropped_not_negative(tmp_path):
    _zone(tmp_path, "intel-rapl:0", "package-0", 5_000_000, max_uj=None)
    m = _meter(tmp_path).begin()
    _set(tmp_path, "intel-rapl:0", 1_000_000)
    r = m.end()
    assert r.joules is None and r.kind == "unavailable"
    assert "max_energy_range_uj" in r.reason


@linux
def test_permission_denied_is_unavailable_with_the_fix(server, monkeypatch):
    real = energy._read_text

    def deny(path):
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(energy, "_read_text", deny)
    rapl = probe_energy_sensors(rapl_root=server, nvml_module=_NoGPU())[0]
    assert not rapl.available
    assert "permission denied" in rapl.reason and "root" in rapl.reason
    r = _meter(server).begin().end()
    assert r.kind == "unavailable" and r.joules is None and "permission denied" in r.reason


@linux
def test_missing_powercap_is_unavailable_and_joules_is_none_not_zero(tmp_path):
    r = _meter(tmp_path / "absent").begin().end()
    assert r.kind == "unavailable"
    assert r.joules is None and r.average_w is None
    assert "absent" in r.reason and "estimate=True" in r.reason
    assert "joules=None" in repr(r)


@linux
def test_context_manager_sets_the_reading(server):
    with _meter(server) as m:
        _set(server, "intel-rapl:0", 1_002_000_000)
    assert m.reading is not None and m.reading.joules == pytest.approx(2.0)
    assert m.reading.duration_s > 0


def test_end_before_begin_says_what_to_do():
    with pytest.raises(RuntimeError, match="begin"):
        EnergyMeter().end()


# ## NVML


@linux
def test_nvml_gpu_energy_from_an_injected_module_adds_to_rapl(server):
    nvml = _fake_nvml([1_000, 50_000])
    m = _meter(server, nvml_module=nvml, devices="cpu+gpu", gpu_baseline_s=0).begin()
    _set(server, "intel-rapl:0", 1_010_000_000)
    nvml.values[0] += 4_000  # +4 J (NVML counts mJ)
    nvml.values[1] += 500
    r = m.end()
    assert r.domains_j == pytest.approx({"package-0": 10.0, "package-1": 0.0, "gpu0": 4.0, "gpu1": 0.5})
    assert r.joules == pytest.approx(14.5) and r.devices == ("cpu", "gpu")
    assert "nvml" in r.source and "rapl" in r.source


@linux
def test_a_cpu_meter_counts_the_cpu_only_and_names_the_gpu_energy_it_left_out(server):
    nvml = _fake_nvml([1_000])
    m = _meter(server, nvml_module=nvml).begin()
    _set(server, "intel-rapl:0", 1_010_000_000)
    nvml.values[0] += 4_000
    r = m.end()
    assert r.joules == pytest.approx(10.0) and r.devices == ("cpu",) and "nvml" not in r.source
    assert r.detail_j["gpu0"] == pytest.approx(4.0) and any("not counted" in w for w in r.warnings)


class _IdleGPU:
    """A fake NVML whose one GPU draws a steady 78.6 W, whatever runs on the CPU."""

    NVMLError = Exception

    def __init__(self, watts: float = 78.6):
        self.watts, self.t0 = watts, time.perf_counter()

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return "NVIDIA H200"

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        return int(self.watts * (time.perf_counter() - self.t0) * 1000)  # mJ


def test_an_idle_gpu_is_never_the_energy_of_a_cpu_job_without_rapl(tmp_path):
    """A 16-core server with an idle GPU and no RAPL: a CPU matmul's energy is unavailable, not the GPU's idle draw."""
    m = EnergyMeter(rapl_root=tmp_path / "no-powercap", nvml_module=_IdleGPU(), poll_s=None).begin()
    time.sleep(0.3)
    r = m.end()
    assert r.kind == "unavailable" and r.joules is None and r.devices == ()
    assert "measures the GPU, not a job on the CPU" in r.reason
    assert r.detail_j["gpu0"] == pytest.approx(78.6 * r.duration_s, rel=0.2)


def test_a_gpu_meter_reports_the_gpus_energy_with_its_idle_baseline(tmp_path):
    m = EnergyMeter(rapl_root=tmp_path / "no-powercap", nvml_module=_IdleGPU(), poll_s=None, devices="gpu",
                    gpu_baseline_s=0.2).begin()
    time.sleep(0.3)
    r = m.end()
    assert r.kind == "measured" and r.devices == ("gpu",)
    assert r.baseline_w["gpu0"] == pytest.approx(78.6, rel=0.2)
    assert r.joules == pytest.approx(78.6 * r.duration_s, rel=0.2)
    assert abs(r.above_baseline_j) < 0.2 * r.joules, "an idle GPU adds nothing above its idle power"
    assert "idle power" in repr(r)


def test_gpu_without_energy_counter_is_reported_with_a_reason(tmp_path):
    status = probe_energy_sensors(rapl_root=tmp_path / "absent", nvml_module=_fake_nvml([0], counter=False))[1]
    assert status.name == "nvml" and not status.available
    assert "no energy counter" in status.reason and "Tesla P100" in status.reason


def test_nvml_without_gpus_is_unavailable():
    status = energy._nvml_status(_NoGPU())[0]
    assert not status.available and "no NVIDIA GPU" in status.reason


# ## Estimate


def test_estimate_needs_a_tdp():
    with pytest.raises(ValueError, match="tdp_w"):
        EnergyMeter(estimate=True)


def test_estimate_follows_the_stated_model(tmp_path, monkeypatch):
    clock = iter([10.0, 12.0])  # a 2 s window
    cpu = iter([5.0, 7.0])  # 2 s of CPU time
    monkeypatch.setattr(energy, "_now", lambda: next(clock))
    monkeypatch.setattr(energy, "_process_cpu_s", lambda: next(cpu))
    m = _meter(tmp_path / "absent", estimate=True, tdp_w=100.0, tdp_source="datasheet", cores_used=2, host_cores=4)
    r = m.begin().end()
    # utilisation = 2 / (2 s x 2 cores) = 0.5; P = 100 W x 2/4 x 0.5 = 25 W; E = 50 J
    assert r.kind == "estimated"
    assert r.joules == pytest.approx(50.0) and r.average_w == pytest.approx(25.0)
    assert "TDP" in r.assumptions and "host_cores=4" in r.assumptions and "datasheet" in r.assumptions
    assert "ESTIMATE" in repr(r)


@linux
def test_estimate_next_to_a_measurement_keeps_the_measurement(server):
    m = _meter(server, estimate=True, tdp_w=200.0, host_cores=64).begin()
    _set(server, "intel-rapl:0", 1_003_000_000)
    r = m.end()
    assert r.kind == "measured" and r.joules == pytest.approx(3.0)
    assert r.estimate_j is not None and r.assumptions


def test_no_estimate_unless_asked(tmp_path):
    r = _meter(tmp_path / "absent").begin().end()
    assert r.estimate_j is None and r.assumptions is None


# ## This machine


def test_probe_on_this_machine_gives_a_reason_for_every_sensor():
    sensors = probe_energy_sensors()
    assert {s.name for s in sensors} >= {"rapl", "nvml", "powermetrics"}
    for s in sensors:
        assert isinstance(s, SensorStatus)
        assert isinstance(s.reason, str) and s.reason
        assert s.available or not s.domains
    rapl = next(s for s in sensors if s.name == "rapl")
    if not Path(energy.DEFAULT_RAPL_ROOT).exists():
        assert not rapl.available and energy.DEFAULT_RAPL_ROOT in rapl.reason


def test_meter_on_this_machine_never_reports_zero_for_unknown():
    r = EnergyMeter(poll_s=None).begin().end()
    if r.kind == "unavailable":
        assert r.joules is None and r.reason
    else:
        assert r.kind == "measured" and r.joules is not None and r.domains_j


def test_beginning_twice_is_refused(tmp_path):
    m = _meter(tmp_path / "absent").begin()
    with pytest.raises(RuntimeError, match="end"):
        m.begin()
    assert m.end().kind == "unavailable"


def test_shipped_figures_carry_their_provenance_and_show_compute_vs_memory_per_joule():
    from sweatlab.measure import energy_data as E

    assert all(m.kind == "shipped measurement" and "NVML" in m.provenance and "one run" in m.provenance
               for m in E.SHIPPED)
    matmul, gemv = E.SHIPPED[0], E.SHIPPED[1]
    assert (matmul.bound, gemv.bound) == ("compute", "memory")
    assert matmul.gflop_per_joule == pytest.approx(72, rel=0.01) and gemv.gflop_per_joule == pytest.approx(2.7, rel=0.01)
    assert 1000 < E.horowitz_ratio() < E.horowitz_ratio("DRAM read (64 bit), high end") < 3000
    assert "ISSCC 2014" in E.HOROWITZ_SOURCE
