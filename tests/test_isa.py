"""sweatlab.topics.isa: ISA families and their peaks, numpy's switch, the plan of switches per machine, fresh processes."""

from __future__ import annotations

import dataclasses

import pytest

from sweatlab.measure import hardware, onednn, peak
from sweatlab.topics import isa, isa_jobs

X86_FLAGS = ("sse2", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")
ZEN4 = ("sse2", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16")
ZEN3 = ("sse2", "sse4_2", "avx", "avx2", "fma", "f16c")
SPR = X86_FLAGS
CLOCK = peak.Clock(3.0, "given", False)
AMD_ZEN4, AMD_ZEN3, INTEL = ("AuthenticAMD", 25, 17), ("AuthenticAMD", 25, 1), ("GenuineIntel", 6, 143)


def machine(flags, arch="x86_64", os_name="Linux") -> hardware.MachineInfo:
    names = hardware.ARM_FEATURES if arch.startswith("aarch") else hardware.X86_FEATURES
    return hardware.MachineInfo(
        os=os_name, arch=arch, cpu_model="test CPU", physical_cores=4, logical_cores=4, usable_cores=4,
        isa={k: (k in flags) for k in names}, cache_bytes={"L1d": 32768, "L2": 2 ** 20, "L3": None, "L1i": None},
        memory_gib=8.0, virtual_machine=False, blas=None, blas_threads=None, numpy_version="2", numpy_simd={},
        torch_version=None, torch_cpu_capability=None, onednn_isa=None, gpus=(), reasons={})


NUMPY2 = {"baseline": ["X86_V2"], "dispatch": ["X86_V3", "X86_V4", "AVX512_ICL", "AVX512_SPR"]}


# ---- families and their peaks -------------------------------------------------------------------

def test_families_on_a_zen4_give_the_same_fp32_peak_for_avx2_and_avx512_and_double_for_bf16():
    rows = {f.name: f for f in isa.families(machine(ZEN4), CLOCK, cores=1, vendor_family=AMD_ZEN4)}
    assert rows["AVX2 + FMA"].peak_gflops == pytest.approx(3.0 * 8 * 2 * 2)
    assert rows["AVX-512"].peak_gflops == pytest.approx(rows["AVX2 + FMA"].peak_gflops)  # 256-bit units
    assert rows["AVX-512 BF16"].peak_gflops == pytest.approx(2 * rows["AVX-512"].peak_gflops)
    assert rows["AVX-512 VNNI"].peak_gflops == pytest.approx(4 * rows["AVX-512"].peak_gflops)
    assert rows["AMX"].present is False and rows["AMX"].peak_gflops is None
    assert rows["scalar (no SIMD)"].peak_gflops == pytest.approx(3.0 * 1 * 2 * 2)
    assert rows["SSE2"].peak_gflops == pytest.approx(3.0 * 4 * 1 * 2)


def test_families_on_intel_avx512_double_the_fp32_peak_and_amx_is_far_above():
    rows = {f.name: f for f in isa.families(machine(SPR), CLOCK, cores=2, vendor_family=INTEL)}
    assert rows["AVX-512"].peak_gflops == pytest.approx(2 * rows["AVX2 + FMA"].peak_gflops)
    assert rows["AMX"].peak_gflops == pytest.approx(2 * 3.0 * 1024)
    assert "x 2 FLOP" in rows["AVX2 + FMA"].formula


def test_families_without_avx512_say_absent_and_arm_lists_its_own():
    rows = {f.name: f for f in isa.families(machine(ZEN3), CLOCK, vendor_family=AMD_ZEN3)}
    assert rows["AVX-512"].present is False and rows["AVX-512 BF16"].peak_gflops is None
    arm = isa.families(machine(("neon", "dotprod"), arch="aarch64"), CLOCK)
    names = [f.name for f in arm]
    assert "NEON (ASIMD)" in names and "AVX2 + FMA" not in names
    neon = next(f for f in arm if f.name == "NEON (ASIMD)")
    assert neon.present and neon.peak_gflops == pytest.approx(3.0 * 4 * 2 * 2)  # 1 core, 4 lanes, 2 pipes


# ---- numpy's switch -----------------------------------------------------------------------------

def test_numpy_disable_lists_every_target_after_keep_and_never_a_baseline_one():
    d, b = NUMPY2["dispatch"], NUMPY2["baseline"]
    assert isa.numpy_disable(d, b, "X86_V3") == "X86_V4 AVX512_ICL AVX512_SPR"
    assert isa.numpy_disable(d, b, None) == isa.numpy_disable(d, b, "X86_V2") == " ".join(d)
    assert isa.numpy_disable(d, b, "AVX512_SPR") == ""
    assert isa.numpy_disable(["X86_V2", "X86_V3"], ["X86_V2"], None) == "X86_V3"
    with pytest.raises(ValueError, match="silently"):
        isa.numpy_disable(d, b, "AVX512F")


def test_the_avx2_level_target_is_the_one_before_the_first_avx512_target():
    assert isa.avx2_level_target(NUMPY2["dispatch"]) == "X86_V3"
    assert isa.avx2_level_target(["SSE41", "AVX", "F16C", "FMA3", "AVX2", "AVX512F", "AVX512_SKX"]) == "AVX2"
    assert isa.avx2_level_target(["ASIMDHP", "ASIMDDP", "SVE"]) is None
    assert isa.avx2_level_target(["X86_V4"]) is None


def test_numpy_dispatch_reports_numpys_own_names():
    info = isa.numpy_dispatch()
    assert set(info) == {"baseline", "dispatch", "found"}
    assert set(info["found"]) <= set(info["dispatch"])


# ---- the plan -----------------------------------------------------------------------------------

def _labels(switches):
    return [(s.library, list(s.env.values())[0]) for s in switches]


def test_plan_on_a_zen4_switches_off_what_it_has_and_skips_amx():
    found = dict(NUMPY2, found=["X86_V3", "X86_V4", "AVX512_ICL"])
    switches, skipped = isa.plan(machine(ZEN4), found, "AVX512", "openblas 0.3.31, SkylakeX kernels, pthreads")
    assert _labels(switches) == [
        ("numpy", "X86_V4 AVX512_ICL AVX512_SPR"), ("numpy", "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"),
        ("OpenBLAS", "Haswell"), ("torch (ATen)", "avx2"), ("torch (ATen)", "default"),
        ("oneDNN", "AVX512_CORE_VNNI"), ("oneDNN", "AVX512_CORE"), ("oneDNN", "AVX2")]
    assert any("AVX512_CORE_AMX" in s.reason for s in skipped)


def test_plan_on_sapphire_rapids_also_switches_amx_off():
    found = dict(NUMPY2, found=NUMPY2["dispatch"])
    switches, _ = isa.plan(machine(SPR), found, "AVX512", "openblas 0.3.31, SkylakeX kernels, pthreads")
    assert [v for lib, v in _labels(switches) if lib == "oneDNN"] == [
        "AVX512_CORE_BF16", "AVX512_CORE_VNNI", "AVX512_CORE", "AVX2"]


def test_plan_on_an_avx2_cpu_skips_every_avx512_switch_and_says_why():
    found = dict(NUMPY2, found=["X86_V3"])
    switches, skipped = isa.plan(machine(ZEN3), found, "AVX2", "openblas 0.3.31, Zen kernels, pthreads")
    assert _labels(switches) == [("numpy", "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"), ("OpenBLAS", "Sandybridge"),
                                 ("torch (ATen)", "default"), ("oneDNN", "SSE41")]
    assert any(s.library == "numpy" and "no AVX-512 target" in s.reason for s in skipped)


def test_plan_on_arm_and_without_torch_skips_with_reasons():
    arm_numpy = {"baseline": ["NEON", "ASIMD"], "dispatch": ["ASIMDHP", "ASIMDDP", "SVE"], "found": ["ASIMDHP"]}
    switches, skipped = isa.plan(machine(("neon",), arch="aarch64"), arm_numpy, None, "Accelerate")
    assert _labels(switches) == [("numpy", "ASIMDHP ASIMDDP SVE")]
    reasons = {s.library: s.reason for s in skipped}
    assert "Arm" in reasons["numpy"] and "torch is not installed" in reasons["torch (ATen)"]
    assert "OpenBLAS on x86" in reasons["OpenBLAS"]


# ---- oneDNN's log -------------------------------------------------------------------------------

LOG = """onednn_verbose,v1,info,oneDNN v3.12.0 (commit 80afa71)
onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with Intel DL Boost and bfloat16 support
onednn_verbose,v1,primitive,info,template:operation,engine,primitive,implementation
onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx512_core_bf16,undef,src:bf16::blocked:ab::f0,,,512x512:512x512,1.2
onednn_verbose,v1,primitive,exec,cpu,gemm_api,,undef,src_s8::blocked:ab:f0,,,512x512:512x512,0.6
dnnl_verbose,exec,cpu,reorder,jit:uni,undef,src_f32::blocked:ab:f0,,,64x64,0.01
"""


def test_onednn_log_gives_the_isa_and_each_kernel():
    assert onednn.isa_line(LOG) == "Intel AVX-512 with Intel DL Boost and bfloat16 support"
    assert isa.onednn_kernels(LOG) == ["matmul:brg_matmul:avx512_core_bf16", "gemm_api:(no name)", "reorder:jit:uni"]
    assert onednn.isa_line("nothing") is None and isa.onednn_kernels("") == []


def test_speedups_are_switched_over_default_best_times():
    base = {"a": {"best_s": 1.0}, "b": {"best_s": 2.0}, "c": {"best_s": 1.0}}
    off = {"a": {"best_s": 3.0}, "b": {"best_s": 2.0}}
    assert isa.speedups(base, off) == {"a": 3.0, "b": 1.0}


# ---- fresh processes ----------------------------------------------------------------------------

def test_a_snippet_runs_in_a_fresh_process_with_its_switch_and_reports_back():
    result = isa.run_snippet("import os\nprint('noise')\nreport({'v': os.environ.get('SWEAT_TEST_SWITCH')})",
                             {"SWEAT_TEST_SWITCH": "on"})
    assert result.ok and result.value == {"v": "on"} and "noise" in result.log
    failed = isa.run_snippet("raise SystemExit(3)")
    assert not failed.ok and "exit status 3" in failed.error


def test_a_switch_of_this_process_does_not_leak_into_the_child(monkeypatch):
    monkeypatch.setenv("NPY_DISABLE_CPU_FEATURES", "X86_V4")
    result = isa.run_snippet("import os\nreport(os.environ.get('NPY_DISABLE_CPU_FEATURES'))")
    assert result.ok and result.value is None


def test_numpy_ops_job_times_each_operation_and_says_which_targets_were_on():
    result = isa.run_job({"job": "numpy_ops", "ops": ["np.add", "np.sum"], "rounds": 2, "sample_s": 0.002,
                          "n_vec": 4096, "energy": {"tdp_w": 100.0, "host_cores": 8, "source": "test"}})
    assert result.ok, result.stderr[-500:]
    ops = result.value["ops"]
    assert set(ops) == {"np.add", "np.sum"}
    assert 0 < ops["np.add"]["best_s"] <= ops["np.add"]["median_s"]
    assert ops["np.sum"]["energy_kind"] in ("measured", "estimated")
    assert result.value["numpy_enabled"] == isa.numpy_dispatch()["found"]


def test_numpy_ignores_an_unknown_name_and_obeys_its_own():
    found = isa.numpy_dispatch()["found"]
    if not found:
        pytest.skip("numpy found no dispatch target on this CPU: nothing to switch off")
    assert isa.dispatch_report({"NPY_DISABLE_CPU_FEATURES": "NOT_A_TARGET"})["found"] == found
    assert isa.dispatch_report({"NPY_DISABLE_CPU_FEATURES": found[-1]})["found"] == found[:-1]


@pytest.mark.skipif(not hardware.describe().isa.get("avx512f"), reason="the vector width can be chosen only with AVX-512")
def test_numba_width_env_makes_the_micro_kernel_use_that_register_width():
    for width, reg in ((256, "packed ymm (256 bit)"), (512, "packed zmm (512 bit)")):
        result = isa.run_job({"job": "numba_micro", "n": 48, "rounds": 1, "sample_s": 0.001}, isa.numba_width_env(width))
        assert result.ok, result.stderr[-500:]
        assert result.value["asm"][reg] > 0 and result.value["error"] <= 1
    with pytest.raises(ValueError):
        isa.numba_width_env(128)


def test_oversubscription_job_reports_both_thread_settings():
    result = isa.run_job({"job": "oversubscription", "case": "threads x BLAS", "fixed": True, "rounds": 1,
                          "size": 64, "batch": 2})
    assert result.ok, result.stderr[-500:]
    assert result.value["threads_note"].endswith("x BLAS 1") and result.value["best_s"] > 0
    with pytest.raises(ValueError):
        isa_jobs._oversubscription_case("nested pools", False, 1, 8, 1)


def test_a_family_row_is_plain_data():
    f = isa.families(machine(ZEN4), CLOCK, vendor_family=AMD_ZEN4)[0]
    assert dataclasses.asdict(f)["name"] == "scalar (no SIMD)"
