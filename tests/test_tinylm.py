"""sweatlab.topics.tinylm: the model, its shipped weights and checksum, the numpy decoder, quantized models,
ONNX export, tensor parallel; and lab 06's reference answers (its stand-ins), which those modules take as
arguments."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from sweatlab.labs.lab06_tiny_lm import reference as R
from sweatlab.topics.tinylm import corpus, onnx_export, quantized, tensor_parallel, weights
from sweatlab.topics.tinylm.model import Config, generate, n_params, random_model, to_numpy
from sweatlab.topics.tinylm.numpy_decoder import numpy_step

PACKAGE = Path(quantized.__file__).resolve().parent


def test_the_shipped_weights_load_and_match_their_checksum():
    assert weights.WEIGHTS_SHA256 and weights.sha256_file(weights.WEIGHTS) == weights.WEIGHTS_SHA256
    m = weights.load_quality_model()
    assert 0.9e6 < n_params(m) < 1.3e6 and m.cfg.block == 256
    assert m.meta["heldout_ppl_per_byte"] > 1


def test_the_shipped_weights_are_package_data():
    # pyproject ships sweatlab/assets/* as package data: the weights must sit there
    assert weights.WEIGHTS.parent.name == "assets" and weights.WEIGHTS.parent.parent.name == "sweatlab"
    assert weights.WEIGHTS.is_file()


def test_a_wrong_checksum_is_refused(tmp_path):
    bad = tmp_path / "w.pt"
    bad.write_bytes(weights.WEIGHTS.read_bytes() + b"x")
    with pytest.raises(ValueError, match="SHA-256"):
        weights.load_quality_model(bad, sha256=weights.WEIGHTS_SHA256)


def test_the_split_holds_out_a_tenth():
    train, val = corpus.split(bytes(range(256)) * 40)
    assert len(train) + len(val) == 256 * 40 and abs(len(val) / (256 * 40) - 0.1) < 0.01


def _small():
    return random_model(Config(n_layer=2, d_model=32, n_head=2, block=32), seed=3)


def test_the_kv_cache_gives_the_same_logits_as_recomputation():
    m = _small()
    x = torch.randint(0, 256, (1, 12))
    with torch.inference_mode():
        full = m(x)
        c = m.new_caches()
        a = m(x[:, :7], c, 0)
        b = m(x[:, 7:], c, 7)
    assert torch.allclose(torch.cat([a, b], 1), full, atol=1e-5)
    assert generate(m, [1, 2, 3], 6) == generate(m, [1, 2, 3], 6, cache=False)


def test_the_numpy_decoder_matches_torch():
    m = _small()
    w = to_numpy(m)
    ids = [5, 9, 200, 17]
    cache = [[None, None] for _ in range(2)]
    for p, t in enumerate(ids):
        z = numpy_step(w, t, p, cache, attend=R.attend_one)
    with torch.inference_mode():
        ref = m(torch.tensor([ids]))[0, -1].numpy()
    assert np.abs(z - ref).max() < 1e-4


def test_the_numpy_decoder_uses_the_attention_it_is_given():
    m = _small()
    w = to_numpy(m)
    calls = []

    def last_value_only(q, k, v):  # a wrong attention: the decoder must compute with it, not its own
        calls.append(k.shape)
        return np.asarray(v)[:, -1]

    ids = [5, 9, 200]
    right, wrong = [[None, None] for _ in range(2)], [[None, None] for _ in range(2)]
    for p, t in enumerate(ids):
        z_right = numpy_step(w, t, p, right, attend=R.attend_one)
        z_wrong = numpy_step(w, t, p, wrong, attend=last_value_only)
    assert calls[-1] == (2, 3, 16) and len(calls) == 2 * len(ids)
    assert np.abs(z_right - z_wrong).max() > 1e-6


def test_quantizers_round_trip_within_half_a_step():
    w = np.random.default_rng(0).normal(size=(8, 64)).astype(np.float32)
    q, s = R.quantize_int8_rows(w)
    assert q.dtype == np.int8 and np.all(np.abs(R.dequantize_int8_rows(q, s) - w) <= s[:, None] / 2 + 1e-7)
    p, s4, lo = R.quantize_int4_groups(w, 16)
    assert p.dtype == np.uint8 and p.shape == (8, 32) and s4.shape == (8, 4)
    assert np.all(np.abs(R.dequantize_int4_groups(p, s4, lo, 16) - w) <= np.repeat(s4, 16, 1) / 2 + 1e-6)


def test_dequant_and_fake_quant_models_compute_the_same():
    m = _small()
    x = torch.randint(0, 256, (1, 8))
    with torch.inference_mode():
        for bits, quantize in ((8, R.quantize_int8_rows), (4, R.quantize_int4_groups)):
            assert torch.allclose(quantized.dequant_model(m, bits, quantize, 16)(x),
                                  quantized.fake_quant_model(m, bits, quantize, 16)(x), atol=1e-5)


def test_a_dequant_layer_decodes_the_quantizers_codes():
    lin = torch.nn.Linear(64, 8)
    w = lin.weight.detach().numpy()
    d8 = quantized.DequantLinear(lin, 8, R.quantize_int8_rows)
    assert np.allclose(d8.weight_fp32().numpy(), R.dequantize_int8_rows(*R.quantize_int8_rows(w)), atol=1e-7)
    d4 = quantized.DequantLinear(lin, 4, R.quantize_int4_groups, 16)
    want = R.dequantize_int4_groups(*R.quantize_int4_groups(w, 16), 16)
    assert np.allclose(d4.weight_fp32().numpy(), want, atol=1e-6)
    assert d8.nbytes() == 8 * 64 + 8 * 4 and d4.nbytes() == 8 * 32 + 2 * 8 * 4 * 4


def test_sampling_perplexity_and_cost_model():
    z = np.array([0.0, 3.0, 1.0])
    assert R.sample_next(z, 0.0) == 1
    draws = [R.sample_next(z, 1.0, s) for s in range(400)]
    assert abs(draws.count(1) / 400 - np.exp(3) / np.exp(z).sum()) < 0.08
    assert R.perplexity(np.zeros((3, 256)), [1, 2, 3]) == pytest.approx(256)
    assert R.tp_seconds_per_token(1.0, 1, 10, 1e3, 1e-3, 1e9) == 1.0
    assert R.tp_seconds_per_token(1.0, 2, 10, 1e3, 1e-3, 1e9) == pytest.approx(0.5 + 10 * (1e-3 + 1e-6))


def test_tensor_parallel_on_loopback_matches_one_process():
    cfg = Config(n_layer=2, d_model=32, n_head=2, block=32)
    m = random_model(cfg, seed=1)
    spec = {"config": asdict(cfg), "seed": 1, "prompt": [3, 4, 5], "n_new": 4, "reps": 5}
    r = tensor_parallel.run_tensor_parallel(spec, world=2, timeout_s=120)
    with torch.inference_mode():
        ref = m(torch.tensor([[3, 4, 5]]))[0].numpy()
    assert np.abs(r["rank0_logits"] - ref).max() < 1e-4
    assert r["ids"] == generate(m, [3, 4, 5], 4)
    assert r["allreduces"] == 4 * 2 * 2 and 0 < r["comm_s"] < r["seconds"]


def test_the_ranks_are_started_through_the_packages_command_line():
    cmd = tensor_parallel.rank_command(1, 2, "10.0.0.5", 29517, "spec.json", threads=1)
    assert cmd[1:4] == ["-m", "sweatlab.topics.tinylm", "tp"] and "--out" not in cmd
    assert (tensor_parallel.PACKAGE_ROOT / "sweatlab" / "topics" / "tinylm" / "__main__.py").is_file()
    out = subprocess.run([sys.executable, "-m", "sweatlab.topics.tinylm", "tp", "--help"], capture_output=True,
                         text=True, env={"PYTHONPATH": str(tensor_parallel.PACKAGE_ROOT)}, timeout=120)
    assert out.returncode == 0 and "--addr" in out.stdout


def test_the_onnx_decode_graph_generates_the_same_bytes(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    m = _small()
    path = onnx_export.export_decode_onnx(m, tmp_path / "d.onnx")
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert onnx_export.ort_generate(s, m.cfg, [7, 8], 5) == generate(m, [7, 8], 5)


def test_the_topic_holds_none_of_the_labs_answers():
    """The functions lab 06 asks for live in the lab's own package (its stand-ins), not in the topic."""
    answers = {"sample_next", "attend_one", "quantize_int8_rows", "dequantize_int8_rows", "quantize_int4_groups",
               "dequantize_int4_groups", "perplexity", "tp_seconds_per_token"}
    for path in PACKAGE.glob("*.py"):
        defined = {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}
        assert not defined & answers, f"{path.name} defines {sorted(defined & answers)}"
    init = ast.parse((PACKAGE / "__init__.py").read_text())
    assert all(isinstance(n, ast.Expr) or isinstance(n, ast.ImportFrom) and n.module == "__future__"
               for n in init.body), "the package's __init__ re-exports nothing: import from its modules"
