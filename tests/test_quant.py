"""sweatlab.topics.quant: the reference quantizers against torch, ONNX and ONNX Runtime, and the CPU feature reading."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest

from sweatlab.topics import quant


# ---- codes, scale and zero point ---------------------------------------------------------------

def test_qrange():
    assert quant.qrange(8, True) == (-128, 127) and quant.qrange(8, False) == (0, 255)
    assert quant.qrange(4, True) == (-8, 7) and quant.qrange(4, False) == (0, 15)
    with pytest.raises(ValueError):
        quant.qrange(1, True)


@pytest.mark.parametrize("lo, hi", [(-1.0, 3.0), (-0.37, 5.2), (0.5, 2.0), (-3.0, -1.0), (-7.5, 0.25)])
def test_affine_params_agree_with_onnx_runtime(lo, hi):
    from onnxruntime.quantization.quant_utils import compute_scale_zp

    for signed in (False, True):
        qmin, qmax = quant.qrange(8, signed)
        zp, scale = compute_scale_zp(np.float32(lo), np.float32(hi), np.int32(qmin), np.int32(qmax))
        ours = quant.affine_params(lo, hi, 8, signed)
        assert ours[1] == int(zp)
        assert math.isclose(ours[0], float(scale), rel_tol=1e-6)


def test_affine_params_make_zero_exact_and_span_the_range():
    for lo, hi, bits, signed in ((-1.0, 3.0, 8, False), (-2.0, 6.0, 8, True), (0.3, 9.0, 4, False)):
        scale, zp = quant.affine_params(lo, hi, bits, signed)
        qmin, qmax = quant.qrange(bits, signed)
        assert isinstance(zp, int) and qmin <= zp <= qmax
        assert quant.dequantize(quant.quantize(0.0, scale, zp, bits, signed), scale, zp) == 0.0
        assert quant.quantize(min(lo, 0.0), scale, zp, bits, signed) == qmin
    assert quant.affine_params(0.0, 0.0) == (1.0, 0)
    assert quant.affine_params(0.0, 0.0, signed=True) == (1.0, -128)


def _torch_codes(x, scale, zp, signed):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.quantize_per_tensor(torch.from_numpy(x), scale, zp, torch.qint8 if signed else torch.quint8)
    return q.int_repr().numpy().astype(np.int64)


def test_quantize_matches_torch_away_from_ties_and_at_ties_with_even_zero_points():
    rng = np.random.default_rng(0)
    for scale, zp, signed in ((0.0173, 3, False), (0.05, -5, True), (1 / 3, 0, True)):
        k = rng.integers(-300, 300, 5000)
        frac = rng.uniform(0.05, 0.45, 5000) + rng.integers(0, 2, 5000) * 0.5
        x = ((k + frac) * scale).astype(np.float32)
        assert np.array_equal(quant.quantize(x, scale, zp, 8, signed).astype(np.int64), _torch_codes(x, scale, zp, signed))
    ties = (np.arange(-20, 20) * 0.25 + 0.125).astype(np.float32)
    for zp, signed in ((0, True), (4, False), (-6, True)):
        assert np.array_equal(quant.quantize(ties, 0.25, zp, 8, signed).astype(np.int64), _torch_codes(ties, 0.25, zp, signed))


def test_quantize_follows_onnx_quantizelinear_including_ties_with_odd_zero_points():
    """ONNX's reference implementation of QuantizeLinear: round half to even, then add the zero point."""
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    from sweatlab.topics import serve

    x = np.concatenate([(np.arange(-40, 40) * 0.25 + 0.125), np.linspace(-30, 30, 101)]).astype(np.float32)
    for zp, dtype, signed in ((3, np.uint8, False), (-5, np.int8, True), (0, np.int8, True)):
        model = serve.onnx_model(
            [serve.onnx_node("QuantizeLinear", ["x", "s", "z"], ["y"])],
            [("x", onnx.TensorProto.FLOAT, [x.size])],
            [("y", onnx.TensorProto.INT8 if signed else onnx.TensorProto.UINT8, [x.size])],
            [serve.onnx_tensor("s", np.float32(0.25)), serve.onnx_tensor("z", np.array(zp, dtype=dtype))], opset=19)
        want = ReferenceEvaluator(model).run(None, {"x": x})[0]
        assert np.array_equal(quant.quantize(x, 0.25, zp, 8, signed), want)


def test_quantize_saturates_and_keeps_byte_dtypes():
    q = quant.quantize(np.float32([-1e6, 1e6, 0.0]), 0.1, 0, 8, signed=True)
    assert q.dtype == np.int8 and q.tolist() == [-128, 127, 0]
    q = quant.quantize(np.float32([-1e6, 1e6]), 0.1, 7, 4, signed=False)
    assert q.dtype == np.uint8 and q.tolist() == [0, 15]


def test_dequantize_does_not_wrap_uint8():
    back = quant.dequantize(np.array([0, 1, 255], dtype=np.uint8), 0.5, 3)
    assert back.dtype == np.float32 and back.tolist() == [-1.5, -1.0, 126.0]


# ---- blocks, error, calibration ----------------------------------------------------------------

@pytest.mark.parametrize("block, scales_shape", [((8, 64), (1, 1)), ((1, 64), (8, 1)), ((1, 32), (8, 2)), ((2, 16), (4, 4))])
def test_quantize_blocks_shapes_range_and_round_trip(block, scales_shape):
    w = np.random.default_rng(1).standard_normal((8, 64)).astype(np.float32)
    for bits in (8, 4):
        q, s = quant.quantize_blocks(w, bits, block)
        qmax = 2 ** (bits - 1) - 1
        assert q.dtype == np.int8 and s.dtype == np.float32 and s.shape == scales_shape
        assert q.min() >= -qmax and q.max() <= qmax and np.abs(q).max() == qmax
        err = np.abs(quant.dequantize_blocks(q, s, block) - w)
        step = np.repeat(np.repeat(s, block[0], axis=0), block[1], axis=1)
        assert np.all(err <= step / 2 * (1 + 1e-5))


def test_quantize_blocks_of_zeros_and_bad_blocks():
    q, s = quant.quantize_blocks(np.zeros((2, 4), dtype=np.float32), 8, (1, 4))
    assert s.tolist() == [[1.0], [1.0]] and not q.any()
    with pytest.raises(ValueError):
        quant.quantize_blocks(np.zeros((2, 6)), 8, (1, 4))


def test_sqnr_gains_about_six_db_per_bit():
    x = np.random.default_rng(2).uniform(-1, 1, 100_000).astype(np.float32)
    db = []
    for bits in (4, 6, 8):
        q, s = quant.quantize_blocks(x.reshape(1, -1), bits, (1, x.size))
        db.append(quant.sqnr_db(x, quant.dequantize_blocks(q, s, (1, x.size)).ravel()))
    assert 5.5 < (db[1] - db[0]) / 2 < 6.6 and 5.5 < (db[2] - db[1]) / 2 < 6.6
    assert quant.sqnr_db(x, x) == math.inf
    assert math.isclose(quant.sqnr_db([3.0, 4.0], [3.0, 3.0]), 10 * math.log10(25))


def test_calibration_range():
    x = np.arange(1, 101, dtype=np.float32)
    assert quant.calibration_range(x) == (0.0, 100.0)
    lo, hi = quant.calibration_range(x - 50.5, 90.0)
    assert math.isclose(lo, float(np.percentile(x - 50.5, 10)), rel_tol=1e-6)
    assert math.isclose(hi, float(np.percentile(x - 50.5, 90)), rel_tol=1e-6)


# ---- int4 ----------------------------------------------------------------------------------------

def test_pack_int4_layout_and_round_trip():
    assert quant.pack_int4([1, 2]).tolist() == [0x21]
    assert quant.pack_int4([-1, -8]).tolist() == [0x8F]
    assert quant.pack_int4([3, -2, 5]).tolist() == [0xE3, 0x05]
    q = np.random.default_rng(3).integers(-8, 8, 101).astype(np.int8)
    packed = quant.pack_int4(q)
    assert packed.dtype == np.uint8 and packed.size == 51
    assert np.array_equal(quant.unpack_int4(packed, q.size), q)
    with pytest.raises(ValueError):
        quant.pack_int4([8])


@pytest.mark.parametrize("runtime", ["onnx reference", "onnxruntime"])
def test_pack_int4_is_onnx_int4(runtime, tmp_path):
    """Bytes from pack_int4, stored as an ONNX INT4 tensor and read back by DequantizeLinear (scale 1): the codes.

    Both ONNX's reference implementation and ONNX Runtime read the first element from the low nibble."""
    onnx = pytest.importorskip("onnx")
    from sweatlab.topics import serve

    q = np.random.default_rng(0).integers(-8, 8, size=37).astype(np.int8)
    packed = serve.onnx_tensor("q", quant.pack_int4(q), data_type=onnx.TensorProto.INT4)
    del packed.dims[:]
    packed.dims.append(q.size)
    model = serve.onnx_model([serve.onnx_node("DequantizeLinear", ["q", "s"], ["y"])], [],
                             [("y", onnx.TensorProto.FLOAT, [q.size])], [packed, serve.onnx_tensor("s", np.float32(1.0))],
                             opset=21)
    if runtime == "onnx reference":
        from onnx.reference import ReferenceEvaluator

        got = ReferenceEvaluator(model).run(None, {})[0]
    else:
        ort = pytest.importorskip("onnxruntime")
        onnx.save(model, str(tmp_path / "int4.onnx"))
        got = ort.InferenceSession(str(tmp_path / "int4.onnx"), providers=["CPUExecutionProvider"]).run(None, {})[0]
    assert np.array_equal(got, q.astype(np.float32))


# ---- integer products ---------------------------------------------------------------------------

def test_int8_matmul_is_exact_where_8_and_16_bits_wrap():
    a = np.full((2, 512), -128, dtype=np.int8)
    b = np.full((512, 3), -128, dtype=np.int8)
    c = quant.int8_matmul(a, b)
    assert c.dtype == np.int32 and (c == 512 * 16384).all()
    u = np.random.default_rng(4).integers(0, 256, (3, 100)).astype(np.uint8)
    s = np.random.default_rng(5).integers(-128, 128, (100, 4)).astype(np.int8)
    assert np.array_equal(quant.int8_matmul(u, s), u.astype(np.int64) @ s.astype(np.int64))


def test_max_safe_k():
    assert quant.max_safe_k(128, 128) == 131_071
    assert quant.max_safe_k(255, 128, 16) == 1  # two u8 x s8 products overflow an int16 lane
    assert quant.max_safe_k(8, 8, 16) == 511
    k = quant.max_safe_k(128, 128)
    assert k * 128 * 128 <= 2 ** 31 - 1 < (k + 1) * 128 * 128


# ---- formats and the CPU -------------------------------------------------------------------------

def test_number_formats():
    f = {x.name: x for x in quant.number_formats()}
    assert f["bf16"].step_at_one == 2.0 ** -7 and f["fp16"].largest == 65504.0 and f["fp32"].step_at_one == 2.0 ** -23
    assert f["bf16"].largest > 3e38 and f["int8"].levels == 256 and f["int4"].levels == 16 and f["int4"].bytes == 0.5


def _fake(arch, **isa):
    @dataclasses.dataclass
    class M:
        arch: str
        isa: dict

    return M(arch, isa)


def test_step_at_is_the_gap_between_neighbours_of_the_format():
    import torch

    formats = {f.name: f for f in quant.number_formats()}
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16), ("fp32", torch.float32)):
        for v in (1.0, 3.0, 1000.3, 1024.0, 60000.0):
            here = torch.tensor(v, dtype=torch.float64).to(dtype)
            gap = float(torch.nextafter(here, torch.tensor(float("inf"), dtype=dtype)) - here)
            if math.floor(math.log2(v)) == math.floor(math.log2(float(here))):  # v did not round up to 2**k
                assert formats[name].step_at(v) == gap, (name, v)
    assert formats["bf16"].step_at(1000.3) == 4 and formats["bf16"].step_at(70000) == 512
    assert formats["fp16"].step_at(-1000.3) == 0.5 and formats["int8"].step_at(5) == 1.0
    with pytest.raises(ValueError):
        formats["fp16"].step_at(70000.0)  # beyond fp16's range: no step, it is inf


def test_int8_support_reads_the_flags():
    spr = quant.int8_support(_fake("x86_64", avx2=True, avx512f=True, avx512_vnni=True, amx_int8=True, amx_bf16=True))
    assert spr.vnni and spr.amx_int8 and spr.bf16 and spr.speed_aim == 3.0 and "AMX" in spr.kernel
    zen3 = quant.int8_support(_fake("x86_64", avx2=True, avx512f=False))
    assert not zen3.vnni and not zen3.int8_dot and zen3.speed_aim == 1.5 and "VPMADDUBSW" in zen3.kernel
    assert any("reduce_range" in line for line in zen3.lines)
    alder = quant.int8_support(_fake("x86_64", avx2=True, avx_vnni=True))
    assert alder.vnni and not alder.avx512
    pi = quant.int8_support(_fake("aarch64", neon=True, dotprod=False))
    assert not pi.int8_dot and pi.speed_aim == 1.5 and "no int8 dot-product" in pi.kernel
    m1 = quant.int8_support(_fake("arm64", neon=True, dotprod=True, fp16=True, bf16=False))
    assert m1.arm_dotprod and m1.fp16 and not m1.bf16 and not m1.x86
    unknown = quant.int8_support(object())
    assert unknown.arch == "unknown" and not unknown.int8_dot


def test_shipped_gpu_figures_carry_their_provenance():
    for f in quant.GPU_SHIPPED:
        assert f.kind == "shipped measurement" and "NVML" in f.provenance and f.watts > 0
    decode = [f for f in quant.GPU_SHIPPED if f.unit == "tokens/s"]
    assert [round(1 / f.per_joule, 3) for f in decode] == [0.14, 0.077]  # J per token, as measured


def test_weight_bytes():
    import torch

    assert quant.weight_bytes(np.zeros(10, dtype=np.float32), torch.zeros(4, dtype=torch.bfloat16)) == 48
