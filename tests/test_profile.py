"""sweatlab.tools.profile: the quick profile end to end; and: library functions print nothing."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest

from sweatlab.measure import energy, flops, hardware, records, roofline, timing
from sweatlab.tools import profile


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick profile through main(), as `sweatlab profile --quick --out DIR` would run it."""
    out = tmp_path_factory.mktemp("profile")
    results = tmp_path_factory.mktemp("results")
    mp = pytest.MonkeyPatch()
    mp.setenv("SWEAT_RESULTS_DIR", str(results))
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    try:
        with redirect_stdout(buf):
            code = profile.main(["--out", str(out), "--quick"])
        recs = records.load_records("profile")
    finally:
        mp.undo()
    return code, buf.getvalue(), out, recs


def test_quick_profile_exits_0_and_prints_the_report_path_and_a_table(quick_run):
    code, printed, out, _ = quick_run
    assert code == 0
    assert str(out / "profile.md") in printed
    assert "peak fp32" in printed and "GFLOP/s" in printed and "GB/s" in printed


def test_quick_profile_writes_markdown_and_a_png(quick_run):
    _, _, out, _ = quick_run
    md = (out / "profile.md").read_text()
    for needle in ("# Machine profile", "peak fp32", "memory bandwidth", "timer resolution", "bench overhead",
                   "Energy sensors", "rapl", "Kernels on the roofline", "roofline.png"):
        assert needle in md, needle
    assert (out / "roofline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_profile_records_its_numbers(quick_run):
    *_, recs = quick_run
    assert len(recs) == 1
    v = recs[0]["values"]
    assert v["quick"] is True
    assert v["peak_fp32_gflops"] > 0 and v["bandwidth_gbs"] > 0
    assert v["timer_resolution_ns"] > 0 and 0 < v["bench_overhead_ns"] < 1000
    assert (v["peak_bf16_gflops"] is None) == bool(v["bf16_skipped_reason"])
    assert set(v["energy_sensors"]) >= {"rapl", "nvml"}


def test_profile_help_names_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        profile.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--out" in text and "--quick" in text


def test_library_functions_print_nothing(capfd, tmp_path, monkeypatch):
    """Only profile.main and explicit show()/plot() helpers may print; fd-level capture sees C output too."""
    monkeypatch.setenv("SWEAT_RESULTS_DIR", str(tmp_path))
    timing.bench(lambda: None, budget_s=0.01)
    timing.compare(sum, sum, range(10), budget_s=0.01)
    timing.thread_settings(import_libs=True)
    timing.timer_resolution_ns()
    hardware.describe(refresh=True)
    hardware.describe(import_torch=True, refresh=True)  # reads oneDNN's verbose line from fd 1
    hardware.summary()
    energy.probe_energy_sensors()
    with energy.EnergyMeter(poll_s=None):
        pass
    flops.decode_step(64, 2, 16)
    roofline.peak_fp32(n=64, budget_s=0.01)
    roofline.peak_bf16(n=64, budget_s=0.01)
    roofline.stream_triad(array_bytes=8 * 2**20, threads=1, budget_s=0.01)
    records.record("quiet", x=1)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
