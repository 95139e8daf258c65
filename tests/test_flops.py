"""sweatlab.measure.flops: one convention (a multiply-add is 2 FLOPs; compulsory bytes), checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from sweatlab.measure import flops as F
from sweatlab.measure.flops import Cost


def test_matmul_counts_a_multiply_add_as_two_flops():
    assert F.matmul(2, 3, 4).flops == 2 * 2 * 3 * 4  # 48; counting MACs would give 24


def test_matmul_bytes_read_each_input_and_write_the_output_once():
    # A is m x k = 2 x 4, B is k x n = 4 x 3, C is m x n = 2 x 3; fp32
    assert F.matmul(2, 3, 4).bytes == (8 + 12 + 6) * 4
    assert F.matmul(2, 3, 4, dtype="float64").bytes == (8 + 12 + 6) * 8


def test_square_fp32_matmul_intensity_is_n_over_6():
    n = 1024
    assert F.matmul(n, n, n).intensity == pytest.approx(2 * n**3 / (3 * n * n * 4))
    assert F.matmul(n, n, n).intensity == pytest.approx(n / 6)


def test_batched_matmul_scales_flops_and_bytes():
    one, many = F.matmul(8, 8, 8), F.matmul(8, 8, 8, batch=5)
    assert (many.flops, many.bytes) == (5 * one.flops, 5 * one.bytes)


def test_matvec_is_memory_bound_at_about_half_a_flop_per_byte():
    assert F.matmul(4096, 1, 4096).intensity == pytest.approx(0.5, rel=1e-3)


def test_linear_without_bias_equals_the_matmul():
    lin = F.linear(32, 128, 64, bias=False)
    mm = F.matmul(32, 64, 128)
    assert (lin.flops, lin.bytes) == (mm.flops, mm.bytes)


def test_linear_bias_adds_one_flop_per_output_and_its_vector():
    with_b, without = F.linear(8, 16, 32), F.linear(8, 16, 32, bias=False)
    assert with_b.flops - without.flops == 8 * 32
    assert with_b.bytes - without.bytes == 32 * 4


def test_conv2d_same_padding_flops():
    c = F.conv2d(1, 3, 8, 32, 32, 3, padding=1)
    assert c.flops == 2 * 8 * 32 * 32 * 3 * 9 + 8 * 32 * 32
    weights, inp, out = 8 * 3 * 9, 3 * 32 * 32, 8 * 32 * 32
    assert c.bytes == (inp + weights + 8 + out) * 4


def test_conv2d_stride_shrinks_the_output():
    full = F.conv2d(1, 16, 16, 32, 32, 3, padding=1, bias=False)
    strided = F.conv2d(1, 16, 16, 32, 32, 3, stride=2, padding=1, bias=False)
    assert F.conv2d_output_size(32, 3, stride=2, padding=1) == 16
    assert strided.flops * 4 == full.flops


def test_conv2d_groups_divide_the_work():
    dense = F.conv2d(2, 8, 8, 16, 16, 3, padding=1, bias=False)
    depthwise = F.conv2d(2, 8, 8, 16, 16, 3, padding=1, groups=8, bias=False)
    assert depthwise.flops * 8 == dense.flops


def test_conv2d_output_size_matches_torch():
    torch = pytest.importorskip("torch")
    for h, k, s, p, d in [(32, 3, 1, 1, 1), (31, 5, 2, 0, 1), (28, 3, 2, 2, 2), (7, 7, 1, 0, 1)]:
        conv = torch.nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
        out = conv(torch.zeros(1, 1, h, h))
        assert out.shape[-1] == F.conv2d_output_size(h, k, s, p, d)


def test_conv2d_rejects_groups_that_do_not_divide_channels():
    with pytest.raises(ValueError, match="groups"):
        F.conv2d(1, 6, 8, 8, 8, 3, groups=4)
    with pytest.raises(ValueError, match="kernel_size"):
        F.conv2d(1, 3, 3, 4, 4, 7)


def test_attention_is_four_flops_per_query_key_pair_per_head_dim():
    a = F.attention(128, 64, num_heads=4, batch=2)
    assert a.flops == 4 * 2 * 4 * 128 * 128 * 64  # Q K^T and P V, 2 FLOPs per multiply-add each


def test_causal_attention_counts_only_visible_pairs():
    assert F.attention(4, 8, causal=True).flops == 4 * (1 + 2 + 3 + 4) * 8
    # 2 new queries at the end of 5 positions see 4 and 5 keys
    assert F.attention(2, 8, kv_len=5, causal=True).flops == 4 * (4 + 5) * 8


def test_cross_attention_uses_kv_len():
    a = F.attention(10, 16, kv_len=100)
    assert a.flops == 4 * 10 * 100 * 16
    assert a.bytes == (2 * 10 * 16 + 2 * 100 * 16) * 4


def test_materialised_scores_add_four_score_matrices_of_traffic():
    fused, unfused = F.attention(64, 32), F.attention(64, 32, materialize_scores=True)
    assert unfused.flops == fused.flops
    assert unfused.bytes - fused.bytes == 4 * 64 * 64 * 4


def test_decode_step_is_two_flops_per_weight_plus_attention():
    d, layers, kv = 256, 4, 100
    c = F.decode_step(d, layers, kv)
    weights = layers * (4 * d * d + 2 * d * 4 * d)  # 12 d^2 per layer with d_ff = 4d
    assert c.flops == 2 * weights + 4 * layers * kv * d


def test_decode_step_attention_grows_with_the_cache():
    a, b = F.decode_step(128, 2, 1), F.decode_step(128, 2, 1001)
    assert b.flops - a.flops == 4 * 2 * 1000 * 128
    assert b.bytes - a.bytes == 2 * 2 * 1000 * 128 * 4  # K and V of 1000 more positions, fp32


def test_decode_step_at_batch_one_is_memory_bound_and_int4_weights_help():
    fp32 = F.decode_step(512, 8, 256, vocab_size=1000)
    int4 = F.decode_step(512, 8, 256, vocab_size=1000, weight_dtype="int4")
    assert fp32.intensity < 1  # about 2 FLOPs per 4-byte weight
    assert int4.bytes < fp32.bytes / 4
    assert int4.flops == fp32.flops


def test_decode_step_batch_shares_the_weights():
    one, eight = F.decode_step(256, 2, 10), F.decode_step(256, 2, 10, batch=8)
    assert eight.flops == 8 * one.flops
    assert eight.bytes < 2 * one.bytes  # weights read once for the whole batch


def test_gated_mlp_has_three_matrices():
    d, ff = 64, 128
    plain = F.decode_step(d, 1, 1, d_ff=ff)
    gated = F.decode_step(d, 1, 1, d_ff=ff, gated_mlp=True)
    assert gated.flops - plain.flops == 2 * d * ff


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: F.matmul(4, 4, 0), "k must be a positive int, got 0"),
        (lambda: F.matmul(-1, 4, 4), "m must be a positive int, got -1"),
        (lambda: F.matmul(2.5, 4, 4), "m must be a positive int, got 2.5"),
        (lambda: F.matmul(True, 4, 4), "m must be a positive int, got True"),
        (lambda: F.linear(0, 4, 4), "batch must be a positive int"),
        (lambda: F.conv2d(1, 3, 8, 32, 32, 3, padding=-1), "padding must be an int >= 0"),
        (lambda: F.attention(16, 0), "head_dim must be a positive int"),
        (lambda: F.decode_step(64, 2, 0), "kv_len must be a positive int"),
        (lambda: F.matmul(4, 4, 4, dtype="float17"), "unknown dtype"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        call()


def test_numpy_integers_are_accepted():
    assert F.matmul(np.int64(8), np.int32(8), np.uint16(8)).flops == 2 * 8**3


def test_costs_add_and_repr_is_readable():
    total = F.linear(1, 64, 64) + F.attention(16, 64)
    assert total.flops == F.linear(1, 64, 64).flops + F.attention(16, 64).flops
    assert isinstance(total, Cost)
    assert "FLOP/byte" in repr(F.matmul(512, 512, 512)) and "MFLOP" in repr(F.matmul(512, 512, 512))


@pytest.mark.parametrize("dtype, size", [("bf16", 2), ("bfloat16", 2), ("int8", 1), ("int4", 0.5), (np.float64, 8), (np.dtype("float16"), 2), (4, 4)])
def test_itemsize(dtype, size):
    assert F.itemsize(dtype) == size


def test_arithmetic_intensity_refuses_zero_bytes():
    with pytest.raises(ValueError, match="bytes_moved"):
        F.arithmetic_intensity(10, 0)
