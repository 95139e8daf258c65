"""sweatlab.topics.tinylm: the model, its shipped weights and checksum, the reference inference path, tensor parallel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sweatlab.topics import tinylm


def test_the_shipped_weights_load_and_match_their_checksum():
    assert tinylm.WEIGHTS_SHA256 and tinylm.sha256_file(tinylm.WEIGHTS) == tinylm.WEIGHTS_SHA256
    m = tinylm.load_quality_model()
    assert 0.9e6 < tinylm.n_params(m) < 1.3e6 and m.cfg.block == 256
    assert m.meta["heldout_ppl_per_byte"] > 1


def test_a_wrong_checksum_is_refused(tmp_path):
    bad = tmp_path / "w.pt"
    bad.write_bytes(tinylm.WEIGHTS.read_bytes() + b"x")
    with pytest.raises(ValueError, match="SHA-256"):
        tinylm.load_quality_model(bad, sha256=tinylm.WEIGHTS_SHA256)


def test_the_split_holds_out_a_tenth():
    train, val = tinylm.split(bytes(range(256)) * 40)
    assert len(train) + len(val) == 256 * 40 and abs(len(val) / (256 * 40) - 0.1) < 0.01


def _small():
    return tinylm.random_model(tinylm.Config(n_layer=2, d_model=32, n_head=2, block=32), seed=3)


def test_the_kv_cache_gives_the_same_logits_as_recomputation():
    m = _small()
    x = torch.randint(0, 256, (1, 12))
    with torch.inference_mode():
        full = m(x)
        c = m.new_caches()
        a = m(x[:, :7], c, 0)
        b = m(x[:, 7:], c, 7)
    assert torch.allclose(torch.cat([a, b], 1), full, atol=1e-5)
    assert tinylm.generate(m, [1, 2, 3], 6) == tinylm.generate(m, [1, 2, 3], 6, cache=False)


def test_the_numpy_decoder_matches_torch():
    m = _small()
    w = tinylm.to_numpy(m)
    ids = [5, 9, 200, 17]
    cache = [[None, None] for _ in range(2)]
    for p, t in enumerate(ids):
        z = tinylm.numpy_step(w, t, p, cache)
    with torch.inference_mode():
        ref = m(torch.tensor([ids]))[0, -1].numpy()
    assert np.abs(z - ref).max() < 1e-4


def test_quantizers_round_trip_within_half_a_step():
    w = np.random.default_rng(0).normal(size=(8, 64)).astype(np.float32)
    q, s = tinylm.quantize_int8_rows(w)
    assert q.dtype == np.int8 and np.all(np.abs(tinylm.dequantize_int8_rows(q, s) - w) <= s[:, None] / 2 + 1e-7)
    p, s4, lo = tinylm.quantize_int4_groups(w, 16)
    assert p.dtype == np.uint8 and p.shape == (8, 32) and s4.shape == (8, 4)
    assert np.all(np.abs(tinylm.dequantize_int4_groups(p, s4, lo, 16) - w) <= np.repeat(s4, 16, 1) / 2 + 1e-6)


def test_dequant_and_fake_quant_models_compute_the_same():
    m = _small()
    x = torch.randint(0, 256, (1, 8))
    with torch.inference_mode():
        for bits in (8, 4):
            assert torch.allclose(tinylm.dequant_model(m, bits, 16)(x), tinylm.fake_quant_model(m, bits, 16)(x), atol=1e-5)


def test_sampling_perplexity_and_cost_model():
    z = np.array([0.0, 3.0, 1.0])
    assert tinylm.sample_next(z, 0.0) == 1
    draws = [tinylm.sample_next(z, 1.0, s) for s in range(400)]
    assert abs(draws.count(1) / 400 - np.exp(3) / np.exp(z).sum()) < 0.08
    assert tinylm.perplexity(np.zeros((3, 256)), [1, 2, 3]) == pytest.approx(256)
    assert tinylm.tp_seconds_per_token(1.0, 1, 10, 1e3, 1e-3, 1e9) == 1.0
    assert tinylm.tp_seconds_per_token(1.0, 2, 10, 1e3, 1e-3, 1e9) == pytest.approx(0.5 + 10 * (1e-3 + 1e-6))


def test_tensor_parallel_on_loopback_matches_one_process():
    from dataclasses import asdict
    cfg = tinylm.Config(n_layer=2, d_model=32, n_head=2, block=32)
    m = tinylm.random_model(cfg, seed=1)
    spec = {"config": asdict(cfg), "seed": 1, "prompt": [3, 4, 5], "n_new": 4, "reps": 5}
    r = tinylm.run_tensor_parallel(spec, world=2, timeout_s=120)
    with torch.inference_mode():
        ref = m(torch.tensor([[3, 4, 5]]))[0].numpy()
    assert np.abs(r["rank0_logits"] - ref).max() < 1e-4
    assert r["ids"] == tinylm.generate(m, [3, 4, 5], 4)
    assert r["allreduces"] == 4 * 2 * 2 and 0 < r["comm_s"] < r["seconds"]


def test_the_onnx_decode_graph_generates_the_same_bytes(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    m = _small()
    path = tinylm.export_decode_onnx(m, tmp_path / "d.onnx")
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert tinylm.ort_generate(s, m.cfg, [7, 8], 5) == tinylm.generate(m, [7, 8], 5)
