"""sweatlab.topics.serve: ONNX export and conversion, ONNX Runtime quantizers, torch's int8 engines, the oneDNN cap."""

from __future__ import annotations

import platform

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from sweatlab.topics import quant, serve  # noqa: E402


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.ReLU(), torch.nn.Linear(96, 10)).eval()


@pytest.fixture(scope="module")
def exported(mlp, tmp_path_factory):
    return serve.export_onnx(mlp, torch.rand(4, 64), tmp_path_factory.mktemp("onnx") / "mlp.onnx")


def _x(n=7, k=64, seed=0):
    return np.random.default_rng(seed).random((n, k), dtype=np.float32)


def _torch_out(mlp, x):
    with torch.no_grad():
        return mlp(torch.from_numpy(x)).numpy()


def test_export_is_one_file_with_matmuls_and_a_dynamic_batch(mlp, exported):
    model = serve.OrtModel(exported)
    assert model.ops == ["MatMul", "Add", "Relu"]
    assert not list(exported.parent.glob("*.data"))  # the weights are inside the file
    for n in (1, 7):
        assert np.allclose(model.run(_x(n)), _torch_out(mlp, _x(n)), atol=1e-5)


def test_export_refuses_a_batch_of_one(mlp, tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        serve.export_onnx(mlp, torch.rand(1, 64), tmp_path / "m.onnx")


def test_gemm_to_matmul_keeps_the_outputs(tmp_path):
    g = np.random.default_rng(1)
    w, b = g.standard_normal((5, 3)).astype(np.float32), g.standard_normal(5).astype(np.float32)
    model = serve.onnx_model([serve.onnx_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
                             [("x", onnx.TensorProto.FLOAT, ["n", 3])], [("y", onnx.TensorProto.FLOAT, ["n", 5])],
                             [serve.onnx_tensor("w", w), serve.onnx_tensor("b", b)])
    converted = serve.gemm_to_matmul(model)
    assert [n.op_type for n in converted.graph.node] == ["MatMul", "Add"]
    assert [t.name for t in converted.graph.initializer] == ["b", "w_t"]
    assert np.array_equal(serve.onnx_array(converted.graph.initializer[1]), w.T)
    onnx.save(converted, str(tmp_path / "m.onnx"))
    x = g.standard_normal((4, 3)).astype(np.float32)
    assert np.allclose(serve.OrtModel(tmp_path / "m.onnx").run(x), x @ w.T + b, atol=1e-5)


def test_the_three_quantizers(exported, mlp, tmp_path):
    x = _x(16)
    ref = _torch_out(mlp, x)
    fp32 = serve.OrtModel(exported)
    dyn = serve.OrtModel(serve.ort_quantize_dynamic(exported, tmp_path / "dyn.onnx"))
    assert "MatMulInteger" in dyn.ops and "DynamicQuantizeLinear" in dyn.ops
    static = serve.OrtModel(serve.ort_quantize_static(exported, tmp_path / "st.onnx", [_x(16, seed=s) for s in range(4)]))
    assert "QuantizeLinear" in static.ops and "DequantizeLinear" in static.ops
    int4 = serve.OrtModel(serve.ort_quantize_int4(exported, tmp_path / "int4.onnx", block_size=32))
    assert "MatMulNBits" in int4.ops
    for model, tol in ((dyn, 0.05), (static, 0.15), (int4, 0.15)):
        assert model.bytes < fp32.bytes
        assert np.abs(model.run(x) - ref).max() < tol * np.abs(ref).max()
    assert int4.bytes < dyn.bytes


def test_tensor_protos_round_trip():
    for a in (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([-128, 5], dtype=np.int8), np.uint8([1, 255])):
        assert np.array_equal(serve.onnx_array(serve.onnx_tensor("t", a)), a)
    with pytest.raises(TypeError):
        serve.onnx_node("X", ["a"], ["b"], mode="text")


def test_matmul_models(tmp_path):
    g = np.random.default_rng(2)
    w = g.standard_normal((16, 8)).astype(np.float32)
    x = g.standard_normal((3, 16)).astype(np.float32)
    assert np.allclose(serve.OrtModel(serve.matmul_model(w, tmp_path / "mv.onnx")).run(x), x @ w, atol=1e-5)
    b = g.integers(-128, 128, (16, 8)).astype(np.int8)
    a = g.integers(0, 256, (3, 16)).astype(np.uint8)
    session = serve.OrtModel(serve.matmul_integer_model(b, tmp_path / "mmi.onnx")).session
    assert np.array_equal(session.run(None, {"a": a})[0], quant.int8_matmul(a, b))
    with pytest.raises(ValueError):
        serve.matmul_integer_model(b.astype(np.int16), tmp_path / "bad.onnx")


def test_torch_dynamic_int8_on_each_engine(mlp):
    engines = serve.torch_int8_engines()
    assert engines
    x = torch.from_numpy(_x(5))
    for engine in engines:
        q = serve.torch_dynamic_int8(mlp, engine)
        with torch.no_grad():
            assert torch.allclose(q(x), mlp(x), atol=0.05)
    assert "deprecated" in serve.torch_quantization_status()


VERBOSE = """onednn_verbose,v1,info,oneDNN v3.12.0 (commit 0000)
onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with Intel DL Boost
onednn_verbose,v1,primitive,exec,cpu,reorder,simple:any,undef,src:f32::blocked:ab::f0 dst:f32::blocked:ab::f0,,,4x4,0.01
onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx512_core_vnni,undef,src:u8::blocked:ab::f0 wei:s8::blocked:BA16a64b4a::f8:zpm2 dst:f32::blocked:ab::f0,,,256x64:64x1024,0.2
onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx512_core_vnni,undef,src:u8::blocked:ab::f0 wei:s8::blocked:BA16a64b4a::f8:zpm2 dst:f32::blocked:ab::f0,,,256x1024:1024x10,0.1
onednn_verbose,v1,primitive,exec,cpu,matmul,gemm:jit,undef,src:f32::blocked:ab::f0 wei:f32::blocked:ab::f0 dst:f32::blocked:ab::f0,,,2x2:2x2,0.1
"""


def test_parse_onednn_kernels():
    isa, kernels = serve.parse_onednn_kernels(VERBOSE)
    assert isa == "Intel AVX-512 with Intel DL Boost"
    assert kernels == ["brg_matmul:avx512_core_vnni"]
    assert serve.parse_onednn_kernels("nothing here") == (None, [])


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="ONEDNN_MAX_CPU_ISA is an x86 switch")
def test_onednn_int8_run_in_a_child_process():
    if "onednn" not in serve.torch_int8_engines():
        pytest.skip("this torch has no oneDNN quantized engine")
    r = serve.onednn_int8_run("capped at AVX2", "AVX2", [32, 64, 10], 8, budget_s=0.05,
                              energy_meter={"estimate": True, "tdp_w": 100.0, "host_cores": 10, "cores_used": 1})
    assert r.error is None, r.error
    assert r.fp32_ms > 0 and r.int8_ms > 0 and r.ratio > 0
    assert r.energy_kind in ("measured", "estimated") and r.int8_j > 0
    assert r.kernels and all("avx512" not in k and "amx" not in k for k in r.kernels)
