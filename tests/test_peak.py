"""The hardware peak: cores x clock x lanes x FMA units x 2, per ISA, with its inputs and assumptions."""

from __future__ import annotations

import dataclasses

import pytest

from sweatlab.measure import hardware, peak

X86 = {k: False for k in hardware.X86_FEATURES}
ZEN3 = {**X86, "sse2": True, "avx": True, "avx2": True, "fma": True}
ZEN4 = {**ZEN3, "avx512f": True, "avx512_bf16": True, "avx512_vnni": True}
SPR = {**ZEN4, "amx_tile": True, "amx_bf16": True, "amx_int8": True}
CLOCK = peak.Clock(3.0, "given")


def _machine(isa: dict, arch: str = "x86_64", os_name: str = "Linux", cores: int = 4):
    return dataclasses.replace(hardware.describe(), isa=isa, arch=arch, os=os_name, physical_cores=cores)


@pytest.mark.parametrize("isa, vendor_family, per_cycle, name", [
    (ZEN3, ("AuthenticAMD", 25, 1), 32, "AVX2+FMA"),  # Zen 3: 2 x 256-bit FMA
    (ZEN3, ("AuthenticAMD", 23, 1), 16, "128-bit halves"),  # Zen 1: 256-bit work on 128-bit units
    (ZEN4, ("AuthenticAMD", 25, 17), 32, "two 256-bit halves"),  # Zen 4: AVX-512 does not double
    (ZEN4, ("AuthenticAMD", 26, 2), 64, "AVX-512"),  # Zen 5: full 512-bit datapath
    (SPR, ("GenuineIntel", 6, 143), 64, "AVX-512"),  # Sapphire Rapids: 2 x 512-bit FMA
    ({**X86, "sse2": True}, ("GenuineIntel", 6, 15), 8, "SSE"),
])
def test_fp32_flop_per_cycle_per_core_follows_the_core_type(isa, vendor_family, per_cycle, name):
    p = peak.hardware_peak("float32", _machine(isa), CLOCK, vendor_family=vendor_family)
    assert p.per_core_per_cycle == per_cycle and name in p.isa
    assert p.gflops == pytest.approx(4 * 3.0 * per_cycle)
    assert "4 cores x 3.00 GHz" in p.formula() and f"{p.gflops:,.0f} GFLOP/s" in p.formula()


def test_float64_has_half_the_lanes():
    m = _machine(SPR)
    f32, f64 = (peak.hardware_peak(d, m, CLOCK, vendor_family=("GenuineIntel", 6, 143)) for d in ("float32", "float64"))
    assert f64.gflops * 2 == f32.gflops


def test_bf16_and_int8_use_amx_where_present_else_the_vector_units_else_nothing():
    intel = ("GenuineIntel", 6, 143)
    amx = peak.hardware_peak("bf16", _machine(SPR, cores=1), CLOCK, vendor_family=intel)
    assert amx.isa == "AMX" and amx.per_core_per_cycle == 1024
    assert peak.hardware_peak("int8", _machine(SPR, cores=1), CLOCK, vendor_family=intel).per_core_per_cycle == 2048
    zen4 = peak.hardware_peak("bf16", _machine(ZEN4, cores=1), CLOCK, vendor_family=("AuthenticAMD", 25, 17))
    assert "BF16" in zen4.isa and zen4.per_core_per_cycle == 64  # twice the fp32 rate of the same units
    assert peak.hardware_peak("bf16", _machine(ZEN3), CLOCK, vendor_family=("AuthenticAMD", 25, 1)) is None
    assert peak.hardware_peak("int8", _machine(ZEN3), CLOCK, vendor_family=("AuthenticAMD", 25, 1)) is None


def test_arm_assumes_its_fma_pipes_and_says_so():
    neon = {**{k: False for k in hardware.ARM_FEATURES}, "neon": True}
    apple = peak.hardware_peak("float32", _machine(neon, "arm64", "Darwin"), CLOCK)
    linux = peak.hardware_peak("float32", _machine(neon, "aarch64", "Linux"), CLOCK)
    assert apple.per_core_per_cycle == 32 and linux.per_core_per_cycle == 16
    assert any("Neoverse V1/V2 have 4" in a for a in linux.assumed)


def test_an_unknown_clock_is_named_as_an_assumption_and_gives_no_number():
    p = peak.hardware_peak("float32", _machine(ZEN3), peak.Clock(None, "not reported", True),
                           vendor_family=("AuthenticAMD", 25, 1))
    assert p.gflops is None and "unknown" in p.formula() and any("clock" in a for a in p.assumed)


def test_cpufreq_is_read_where_linux_shows_it(tmp_path):
    (tmp_path / "cpuinfo_max_freq").write_text("3700000\n")
    assert peak._cpufreq_max_ghz(str(tmp_path)) == pytest.approx(3.7)
    assert peak._cpufreq_max_ghz(str(tmp_path / "missing")) is None


def test_the_measured_clock_is_a_plausible_core_clock():
    c = peak.measure_clock(steps=2_000_000, repeats=3)
    assert c.ghz is not None and 0.3 < c.ghz < 8.0, c
    assert "add-xor chain" in c.source


def test_this_machine_has_an_fp32_peak_above_zero():
    p = peak.hardware_peak("float32")
    assert p is not None and p.cores >= 1 and p.lanes >= 4 and p.units >= 1
    assert p.as_dict()["formula"] == p.formula()
