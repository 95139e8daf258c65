"""Lab 03_quantize: what is particular to it, above all the plausible wrong answers each check must reject.

What every lab must do (the solution passes every check, the blank lab fails them, one check cell per
exercise in order, the deck, the record, the time estimates) is in tests/test_lab_contract.py.
The last tests run the lab's own cells on a machine description with VNNI hidden (and on Arm), so the
path a learner without VNNI sees is covered on a machine that has it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import sys
import types

import numpy as np
import pytest

from sweatlab import course as C
from sweatlab.topics import quant, serve
from sweatlab.kit.checks import LabChecks

from conftest import REPO

LAB = "03_quantize"
SOURCE = REPO / "solutions" / f"{LAB}.py"


def _results(exercise: str, namespace: dict):
    return LabChecks(LAB).results(exercise, namespace)


def _with(namespace: dict, **functions) -> dict:
    return {**namespace, **functions}


def _failures(exercise: str, namespace: dict) -> list[str]:
    return [r.text for r in _results(exercise, namespace) if not r.passed]


def _rejected(exercise: str, namespace: dict, hint: str = "") -> list[str]:
    failures = _failures(exercise, namespace)
    assert failures, f"{exercise}: a wrong answer passed every test"
    if hint:
        assert any(hint in f for f in failures), failures
    return failures


# ---- affine_params ----------------------------------------------------------------------------

def _qrange(bits, signed):
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)


def affine_zero_point_sign(lo, hi, bits=8, signed=False):
    qmin, qmax = _qrange(bits, signed)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        return 1.0, qmin
    scale = (hi - lo) / (qmax - qmin)
    return scale, int(np.clip(qmin + round(lo / scale), qmin, qmax))


def affine_divides_by_2_to_the_bits(lo, hi, bits=8, signed=False):
    qmin, qmax = _qrange(bits, signed)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        return 1.0, qmin
    scale = (hi - lo) / 2 ** bits
    return scale, int(np.clip(qmin - round(lo / scale), qmin, qmax))


def affine_without_zero(lo, hi, bits=8, signed=False):
    qmin, qmax = _qrange(bits, signed)
    if hi == lo:
        return 1.0, qmin
    scale = (hi - lo) / (qmax - qmin)
    return scale, int(np.clip(qmin - round(lo / scale), qmin, qmax))


def affine_float_zero_point(lo, hi, bits=8, signed=False):
    qmin, qmax = _qrange(bits, signed)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        return 1.0, qmin
    scale = (hi - lo) / (qmax - qmin)
    return scale, qmin - lo / scale


def affine_signed_like_unsigned(lo, hi, bits=8, signed=False):
    qmin, qmax = _qrange(bits, signed)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        return 1.0, qmin
    scale = (hi - lo) / (qmax - qmin)
    return scale, int(round(-lo / scale))  # qmin taken as 0 even for signed codes


def affine_divides_by_an_empty_range(lo, hi, bits=8, signed=False):
    qmin, qmax = _qrange(bits, signed)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / (qmax - qmin)
    return scale, int(np.clip(qmin - round(lo / scale), qmin, qmax))


@pytest.mark.parametrize("wrong, hint", [
    (affine_zero_point_sign, "the zero point has the wrong sign"),
    (affine_divides_by_2_to_the_bits, "2**bits - 1 steps"),
    (affine_without_zero, "widen the range to include 0"),
    (affine_float_zero_point, "round the zero point"),
    (affine_signed_like_unsigned, "for signed codes the lowest code"),
    (affine_divides_by_an_empty_range, ""),
])
def test_affine_params_rejects_wrong_formulas(solved, wrong, hint):
    _rejected("affine_params", _with(solved, affine_params=wrong), hint)


# ---- quantize / dequantize ---------------------------------------------------------------------

def _v(x, scale):
    return np.asarray(x, dtype=np.float32) * (np.float32(1) / np.float32(scale))


def _out(q, bits, signed):
    qmin, qmax = _qrange(bits, signed)
    return np.clip(q, qmin, qmax).astype(np.int8 if signed else np.uint8)


def quantize_truncates(x, scale, zero_point, bits=8, signed=False):
    return _out(_v(x, scale).astype(np.int64) + zero_point, bits, signed)


def quantize_rounds_half_up(x, scale, zero_point, bits=8, signed=False):
    return _out(np.floor(_v(x, scale) + 0.5).astype(np.int64) + zero_point, bits, signed)


def quantize_subtracts_the_zero_point(x, scale, zero_point, bits=8, signed=False):
    return _out(np.rint(_v(x, scale)).astype(np.int64) - zero_point, bits, signed)


def quantize_without_clipping(x, scale, zero_point, bits=8, signed=False):
    return (np.rint(_v(x, scale)).astype(np.int64) + zero_point).astype(np.int8 if signed else np.uint8)


def quantize_clips_signed_to_255(x, scale, zero_point, bits=8, signed=False):
    q = np.clip(np.rint(_v(x, scale)).astype(np.int64) + zero_point, -128 if signed else 0, 255)
    return q.astype(np.int8 if signed else np.uint8)


def quantize_returns_floats(x, scale, zero_point, bits=8, signed=False):
    qmin, qmax = _qrange(bits, signed)
    return np.clip(np.rint(_v(x, scale)) + zero_point, qmin, qmax)


def quantize_always_8_bit(x, scale, zero_point, bits=8, signed=False):
    return _out(np.rint(_v(x, scale)).astype(np.int64) + zero_point, 8, signed)


@pytest.mark.parametrize("wrong, hint", [
    (quantize_truncates, "that is truncation"),
    (quantize_rounds_half_up, "ties go to the even code"),
    (quantize_subtracts_the_zero_point, "not subtracted"),
    (quantize_without_clipping, "clip to [qmin, qmax] before converting"),
    (quantize_clips_signed_to_255, "signed 8-bit codes stop at 127"),
    (quantize_returns_floats, "codes are bytes"),
    (quantize_always_8_bit, ""),
])
def test_quantize_rejects_wrong_rounding_zero_points_and_clipping(solved, wrong, hint):
    _rejected("quantize", _with(solved, quantize=wrong), hint)


def test_the_torch_tests_fail_a_truncating_quantizer(solved):
    failed = [r.name for r in _results("quantize", _with(solved, quantize=quantize_truncates)) if not r.passed]
    assert any("torch" in name for name in failed), failed


def dequantize_in_uint8(q, scale, zero_point):
    return ((np.asarray(q) - zero_point) * np.float32(scale)).astype(np.float32)  # uint8 - int wraps


def dequantize_float64(q, scale, zero_point):
    return (np.asarray(q).astype(np.int32) - zero_point) * scale


def test_dequantize_rejects_uint8_wraparound_and_float64(solved):
    _rejected("quantize", _with(solved, dequantize=dequantize_in_uint8), "wraps around for q < 3")
    failures = _rejected("quantize", _with(solved, dequantize=dequantize_float64), "float32")
    assert len(failures) == 1


# ---- quantize_blocks ---------------------------------------------------------------------------

def _blocks(w, bits, block, qmax, view_order="right", zero_scale=1.0):
    w = np.asarray(w, dtype=np.float32)
    rows, cols = w.shape
    br, bc = block
    if view_order == "right":
        view = w.reshape(rows // br, br, cols // bc, bc)
        amax = np.abs(view).max(axis=(1, 3))
        scales = np.where(amax > 0, amax / qmax, zero_scale).astype(np.float32)
        q = np.rint(view / scales[:, None, :, None])
    else:  # groups cut from the flat memory in the wrong order
        view = w.reshape(rows // br, cols // bc, br, bc)
        amax = np.abs(view).max(axis=(2, 3))
        scales = np.where(amax > 0, amax / qmax, zero_scale).astype(np.float32)
        q = np.rint(view / scales[:, :, None, None])
    hi = 2 ** (bits - 1) - 1
    return np.clip(q, -hi - 1, max(hi, qmax)).astype(np.int8).reshape(rows, cols), scales


@pytest.mark.parametrize("wrong, hint", [
    (lambda w, bits, block: _blocks(w, bits, block, 2 ** bits - 1), "2**bits - 1 is the unsigned range"),
    (lambda w, bits, block: _blocks(w, bits, block, 2 ** (bits - 1)), "with 128 the largest weight becomes"),
    (lambda w, bits, block: _blocks(w, bits, block, 2 ** (bits - 1) - 1, view_order="wrong"), "mixes rows"),
    (lambda w, bits, block: _blocks(w, bits, block, 2 ** (bits - 1) - 1, zero_scale=0.0), "use scale 1.0 there"),
])
def test_quantize_blocks_rejects_wrong_ranges_and_reshapes(solved, wrong, hint):
    with np.errstate(all="ignore"):
        _rejected("quantize_blocks", _with(solved, quantize_blocks=wrong), hint)


def blocks_reduced_over_the_wrong_axes(w, bits, block):
    """The right 4-D view, reduced over the block-index axes (0, 2) instead of the within-block axes (1, 3)."""
    w = np.asarray(w, dtype=np.float32)
    rows, cols = w.shape
    br, bc = block
    qmax = 2 ** (bits - 1) - 1
    view = w.reshape(rows // br, br, cols // bc, bc)
    amax = np.abs(view).max(axis=(0, 2))
    scales = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
    q = np.clip(np.rint(view / scales[None, :, None, :]), -qmax, qmax).astype(np.int8)
    return q.reshape(rows, cols), scales


def test_quantize_blocks_rejects_reducing_over_the_wrong_axes(solved):
    _rejected("quantize_blocks", _with(solved, quantize_blocks=blocks_reduced_over_the_wrong_axes), "one scale per block")


# ---- sqnr_db -----------------------------------------------------------------------------------

def _powers(x, x_hat):
    x = np.asarray(x, dtype=np.float64)
    return float(np.sum(x ** 2)), float(np.sum((x - np.asarray(x_hat, dtype=np.float64)) ** 2))


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, xh: 20 * math.log10(_powers(x, xh)[0] / _powers(x, xh)[1]), "20 log10 is for amplitude ratios"),
    (lambda x, xh: 10 * math.log10(_powers(x, xh)[1] / _powers(x, xh)[0]), "signal over noise"),
    (lambda x, xh: 10 * math.log10(math.sqrt(_powers(x, xh)[0] / _powers(x, xh)[1])), "not their square roots"),
    (lambda x, xh: 10 * math.log10(np.sum(np.abs(x)) / max(np.sum(np.abs(np.asarray(x) - xh)), 1e-30)), ""),
])
def test_sqnr_rejects_amplitude_inverted_and_abs_ratios(solved, wrong, hint):
    _rejected("sqnr_db", _with(solved, sqnr_db=wrong), hint)


def test_sqnr_rejects_a_crash_on_an_exact_copy(solved):
    wrong = lambda x, xh: 10 * math.log10(_powers(x, xh)[0] / _powers(x, xh)[1])  # noqa: E731 (ZeroDivisionError)
    failed = [r.name for r in _results("sqnr_db", _with(solved, sqnr_db=wrong)) if not r.passed]
    assert failed == ["an exact copy is infinite"]


# ---- calibration_range -------------------------------------------------------------------------

@pytest.mark.parametrize("wrong, hint", [
    (lambda x, p=100.0: (min(float(np.percentile(x, p)), 0.0), max(float(np.percentile(x, p)), 0.0)),
     "the low end is the (100 - p)th percentile"),
    (lambda x, p=100.0: tuple(float(v) for v in np.percentile(np.ravel(x), [100 - p, p])), "widen the range to include 0"),
    (lambda x, p=100.0: (-float(np.percentile(np.abs(x), p)), float(np.percentile(np.abs(x), p))), "asymmetric range"),
])
def test_calibration_range_rejects_wrong_ends(solved, wrong, hint):
    _rejected("calibration_range", _with(solved, calibration_range=wrong), hint)


# ---- int4 ---------------------------------------------------------------------------------------

def pack_high_nibble_first(q):
    flat = np.asarray(q).astype(np.int16).ravel()
    if flat.size % 2:
        flat = np.append(flat, 0)
    n = (flat & 0xF).astype(np.uint8)
    return ((n[0::2] << 4) | n[1::2]).astype(np.uint8)


def pack_without_masking(q):
    flat = np.asarray(q).astype(np.int16).ravel()
    if flat.size % 2:
        flat = np.append(flat, 0)
    return (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8)  # -1 is all ones: it covers the other nibble


def pack_drops_the_odd_code(q):
    flat = np.asarray(q).astype(np.int16).ravel()
    flat = flat[: flat.size // 2 * 2]
    n = (flat & 0xF).astype(np.uint8)
    return (n[0::2] | (n[1::2] << 4)).astype(np.uint8)


def unpack_without_sign(packed, n):
    p = np.asarray(packed, dtype=np.uint8).ravel()
    out = np.empty(2 * p.size, dtype=np.int8)
    out[0::2], out[1::2] = p & 0xF, p >> 4
    return out[:n]


def unpack_high_first(packed, n):
    return quant.unpack_int4(pack_high_nibble_first(quant.unpack_int4(packed, 2 * np.asarray(packed).size)), n)


@pytest.mark.parametrize("functions, hint", [
    ({"pack_int4": pack_high_nibble_first}, "the nibbles are swapped"),
    ({"pack_int4": pack_without_masking}, "first code in the low nibble"),
    ({"pack_int4": pack_drops_the_odd_code}, "pad with a 0 code"),
    ({"unpack_int4": unpack_without_sign}, "sign-extend"),
    ({"unpack_int4": unpack_high_first}, "LOW nibble"),
    ({"pack_int4": lambda q: quant.pack_int4(q).astype(np.int16)}, "bytes: .astype(np.uint8)"),
])
def test_int4_rejects_nibble_order_sign_and_padding_mistakes(solved, functions, hint):
    _rejected("int4", _with(solved, **functions), hint)


# ---- int8_matmul, max_safe_k ------------------------------------------------------------------

@pytest.mark.parametrize("wrong, hint", [
    (lambda a, b: a @ b, "convert both operands to np.int32"),                        # int8 @ int8 wraps
    (lambda a, b: np.asarray(a).astype(np.int16) @ np.asarray(b).astype(np.int16), "np.int32"),  # int16 accumulators
    (lambda a, b: np.asarray(a).astype(np.float32) @ np.asarray(b).astype(np.float32), "float32 holds every integer"),
    (lambda a, b: np.asarray(a).astype(np.int8).astype(np.int32) @ np.asarray(b).astype(np.int32), "never to int8"),
    (lambda a, b: np.asarray(a).astype(np.int64) @ np.asarray(b).astype(np.int64), "accumulate in int32"),
])
def test_int8_matmul_rejects_overflow_float_and_reinterpreting(solved, wrong, hint):
    _rejected("int8_matmul", _with(solved, int8_matmul=wrong), hint)


def test_float32_accumulation_is_caught_only_by_large_sums(solved):
    """Exact up to 2**24: a float32 product with an int32 result passes the small tests and fails the large one."""
    wrong = lambda a, b: (np.asarray(a).astype(np.float32) @ np.asarray(b).astype(np.float32)).astype(np.int32)  # noqa
    failed = [r.name for r in _results("int8_matmul", _with(solved, int8_matmul=wrong)) if not r.passed]
    assert failed == ["sums beyond float32s exact integers"]


@pytest.mark.parametrize("wrong, hint", [
    (lambda a, b, acc=32: (2 ** acc - 1) // (a * b), "one bit is the sign"),
    (lambda a, b, acc=32: (2 ** (acc - 1) - 1) / (a * b), "integer division"),
    (lambda a, b, acc=32: (2 ** (acc - 1) - 1) // (a * b) + 1, "one term too many"),
    (lambda a, b, acc=32: (2 ** (acc - 1)) // (a * b), ""),
])
def test_max_safe_k_rejects_unsigned_float_and_off_by_one(solved, wrong, hint):
    _rejected("max_safe_k", _with(solved, max_safe_k=wrong), hint)


# ---- the notebook itself ------------------------------------------------------------------------

def test_the_lab_hides_every_solution(solution):
    lab = C.make_lab(solution)
    text = "\n".join(c.source for c in lab.cells)
    assert C.BEGIN not in text and "SWEAT_SLIDES_IMG" not in text
    answers = "\n".join(c.source for c in lab.cells if c.metadata.get("sweat", {}).get("role") == "answer")
    for body in ("qmin - round(lo / scale)", "np.rint(", "nibbles[1::2] << 4", "astype(np.int32) @", "// (a_max * b_max)"):
        assert body not in answers


def test_eight_exercises_with_several_tests_each():
    exercises = LabChecks(LAB).exercises
    assert len(exercises) == 8
    assert all(len(_results(ex, {})) >= 3 for ex in exercises)


# ---- a CPU without VNNI, and an Arm CPU: the lab's other paths -----------------------------------

def _machine(**isa_changes):
    from sweatlab.measure.hardware import describe

    real = describe()
    return dataclasses.replace(real, isa={**real.isa, **isa_changes})


NO_VNNI = dict(avx512_vnni=False, avx_vnni=False, amx_int8=False, amx_tile=False, amx_bf16=False)


def test_int8_support_without_vnni_sets_the_lower_aim():
    s = quant.int8_support(_machine(**NO_VNNI, avx512f=False, avx512bw=False, avx512vl=False, avx512_bf16=False))
    assert not s.vnni and not s.int8_dot and s.speed_aim == 1.5
    assert "AVX2 only" in s.kernel and any("no VNNI" in line for line in s.lines)
    runs, note = serve.onednn_int8_plan(s)
    assert runs == [("this CPU (no VNNI)", None)] and "cannot be measured here" in note


def test_int8_support_with_vnni_and_amx():
    s = quant.int8_support(_machine(avx512f=True, avx512_vnni=True, amx_int8=True))
    assert s.vnni and s.amx_int8 and s.speed_aim == 3.0
    runs, _ = serve.onednn_int8_plan(s)
    assert [cap for _, cap in runs] == [None, "AVX512_CORE_VNNI", "AVX512_CORE"]


def test_int8_support_on_arm():
    arm = dataclasses.replace(_machine(), arch="aarch64",
                              isa={"neon": True, "dotprod": True, "i8mm": False, "bf16": False, "fp16": True})
    s = quant.int8_support(arm)
    assert not s.vnni and s.arm_dotprod and s.int8_dot and s.speed_aim == 1.5 and "SDOT" in s.kernel
    runs, note = serve.onednn_int8_plan(s)
    assert runs == [] and "not measured on aarch64" in note


def _cells(solution, *ids):
    by_id = {c.id: c for c in solution.cells}
    return [by_id[i] for i in ids]


def _run(cells, namespace) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for cell in cells:
            exec(compile(cell.source, f"<cell {cell.id}>", "exec", dont_inherit=True), namespace)
    return out.getvalue()


def _notebook_namespace(monkeypatch, name: str) -> dict:
    """A fresh namespace that open_lab() finds as the notebook's own (__main__), in quick mode, plots headless."""
    module = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, "__main__", module)
    monkeypatch.setenv("SWEAT_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return vars(module)


def test_the_lab_on_a_cpu_without_vnni_says_what_it_could_not_measure(solution, monkeypatch):
    """The setup, formats and 'where int8 pays' cells on a faked machine without VNNI: the lower aim, the
    AVX2 wording, and the oneDNN experiment reduced to one side, said so (the child process is faked too)."""
    from sweatlab.measure import hardware

    fake = _machine(**NO_VNNI)
    monkeypatch.setattr(hardware, "describe", lambda *a, **k: fake)
    calls = []

    def fake_run(label, cap, *args, **kwargs):
        calls.append(cap)
        return serve.OneDnnRun(label, cap, "Intel AVX-512", ("brg_matmul:avx512_core",), 6.0, 3.0, 2.0,
                               fp32_j=0.01, int8_j=0.005, energy_kind="estimated")

    monkeypatch.setattr(serve, "onednn_int8_run", fake_run)
    ns = _notebook_namespace(monkeypatch, "__lab03_novnni__")
    text = _run(_cells(solution, "setup", "formats"), ns)
    assert ns["VNNI"] is False and ns["INT8"].speed_aim == 1.5
    assert "no VNNI" in text and "VNNI (VPDPBUSD" not in text
    names = ["torch fp32", "torch bf16", "numpy int8 by hand", "numpy int4 by hand", "ORT fp32", "ORT int8 dynamic",
             "ORT int8 dynamic, u8 weights", "ORT int8 static", "ORT int8 static, s8 activations", "ORT int4 weight-only"]
    ns["rows"] = {n: {"latency_ms_b1": 1.0 + i, "latency_ms_big": 10.0 + i} for i, n in enumerate(names)}
    ns["SHOWN"] = {n: n for n in names}
    ns["HIDDEN"] = 1024
    text = _run(_cells(solution, "pays"), ns)
    assert calls == [None], "without VNNI only the machine as it is can be run"
    assert "cannot be measured here" in text and "hiding" not in text
    assert ns["verdict"].startswith("only this CPU as it is could run") and "hiding" not in ns["verdict"]


def test_the_record_cell_declares_the_issue_keys(solution):
    [record] = [c for c in solution.cells if c.id == "record"]
    keys = record.metadata["sweat"]["record_keys"]
    assert {"rows", "sqnr_db", "vnni"} <= set(keys)
    for field in ("accuracy", "latency_ms_b1", "latency_ms_big", "bytes", "energy_j", "energy_kind"):
        assert f'"{field}"' in record.source


# ---- the kit: stand-ins labelled, one set of energy inputs, figures from the run ---------------------

def test_the_lab_uses_the_kit_and_defines_no_stand_in_helper_or_energy_inputs():
    text = SOURCE.read_text(encoding="utf-8")
    for gone in ("MY_TDP_W", "TDP_W =", "CHIP_CORES =", "TDP_SOURCE", "METER", "def mine(", "EnergyMeter(", "[reference]"):
        assert gone not in text, gone
    assert "lab.meter(THREADS)" in text and "lab.energy" in text


def test_every_exercise_function_has_a_stand_in_from_the_library():
    from sweatlab.kit.standins import stand_ins_of

    table = stand_ins_of(LAB)
    functions = {"affine_params", "quantize", "dequantize", "quantize_blocks", "sqnr_db", "calibration_range",
                 "pack_int4", "unpack_int4", "int8_matmul", "max_safe_k"}
    assert set(table) == functions
    for name, stand_in in table.items():
        assert stand_in.load() is getattr(quant, name)
        assert stand_in.exercise in range(1, 9)


def test_the_blank_lab_runs_its_demos_on_labelled_stand_ins(solution, monkeypatch, tmp_path):
    """In the blank lab every demo that needs an unwritten exercise runs on the lab's stand-in, says so once,
    and labels what it printed and plotted " (stand-in)"; the numbers are the course's (the stand-in is the
    library's function, so they match the solution's)."""
    import matplotlib

    matplotlib.use("Agg")
    blank = C.make_lab(solution)
    ns = _notebook_namespace(monkeypatch, "__lab03_blank__")
    cells = [c for c in blank.cells if c.metadata.get("sweat", {}).get("role") in ("setup", "answer")]
    _run(cells, ns)
    with pytest.raises(NotImplementedError):
        ns["quantize"](np.zeros(3), 1.0, 0)
    ns["WORK"] = tmp_path  # the matvec cell's folder for ONNX files (that cell measures no exercise: not run here)
    text = _run(_cells(blank, "train", "torch-agree", "sqnr-plot", "calib-plot", "int4-bytes", "kernels"), ns)
    for name in ("quantize", "quantize_blocks", "sqnr_db", "calibration_range", "affine_params", "dequantize",
                 "pack_int4", "unpack_int4", "int8_matmul"):
        assert text.count(f"(stand-in) {name} is not written yet") == 1, name
    assert "your quantize (stand-in) and torch differ on" in text
    assert "min/max, clean (stand-in)" in text and "clean, layer-1 range (stand-in)" in text
    assert "the model's weights and biases (stand-in): fp32" in text
    assert "your int8_matmul (numpy, int32) (stand-in)" in text
    for fig, theory in ((ns["fig_sqnr"], "slope of 6.02 dB per bit"), (ns["fig_calib"], "fp32:")):
        labels = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
        measured = [t for t in labels if not t.startswith(theory) and not t.startswith("the ")]
        assert measured and all(t.endswith(" (stand-in)") for t in measured), labels
    # the stand-ins are the course's functions: the same numbers as the written solution's
    w = ns["LAYERS"][1][0]
    assert ns["sqnr"][next(iter(ns["MATRICES"])), "groups of 32", 8] == pytest.approx(
        quant.sqnr_db(w, quant.dequantize_blocks(*quant.quantize_blocks(w, 8, (1, 32)), (1, 32))))


def test_the_shipped_solution_ran_on_the_learners_functions_only():
    import nbformat

    nb = nbformat.read(REPO / "solutions" / f"{LAB}.ipynb", as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("text", "") or "".join(out.get("data", {}).get("text/plain", ""))
            assert "(stand-in)" not in text, (cell.id, text[:300])


def test_every_placeholder_is_made_by_the_run_and_the_deck_and_guide_quote_only_its_figures():
    import re

    import nbformat

    from sweatlab.course import figures as F

    made = F.figures_of(nbformat.read(REPO / "solutions" / f"{LAB}.ipynb", as_version=4)).get("values", {})
    wanted = set(F.placeholders(SOURCE.read_text(encoding="utf-8")))
    assert wanted and wanted <= set(made), sorted(wanted - set(made))
    deck = (REPO / "slides" / f"{LAB}.md").read_text(encoding="utf-8")
    guide = (REPO / "slides" / "INSTRUCTOR.md").read_text(encoding="utf-8")
    section = guide.split("## Lab 03 ", 1)[1].split("\n## Lab 04", 1)[0]
    for where, text in (("deck", deck), ("guide", section)):
        quotes = [m for m in F.QUOTE.finditer(text) if m.group(1) == LAB]
        assert quotes, f"the {where} quotes no run figure of lab 03"
        for m in quotes:
            assert m.group(2) in made and m.group(3) == made[m.group(2)], (where, m.group(0))
    # no run figure left typed by hand in the deck's notes: every "N.N ms", "N.NNx", "N.N dB" is a quote
    constants = {"6 dB", "1.5x"}  # the rule of thumb per bit; the lab's aim without VNNI
    bare = re.findall(r"\b\d+(?:\.\d+)? ?(?:ms|GB/s|dB|GOP/s)\b|\b\d+\.\d+x\b", F.QUOTE.sub("", deck))
    assert set(bare) <= constants, sorted(set(bare) - constants)
