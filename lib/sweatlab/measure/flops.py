"""FLOP and byte counts for the kernels of the course; arithmetic intensity.

Convention, used everywhere in the course:
    * a multiply-add is 2 FLOPs (a FLOP is one add or one multiply; not a MAC);
      a matmul (m x k) @ (k x n) is 2*m*n*k FLOPs.
    * bytes = the compulsory memory traffic of one call: every input read once, every
      output written once (an ideal cache). Real kernels move at least this much.
    * only matmul-like work and bias adds are counted; softmax, norms and activations
      (O(n) next to the O(n^2)-O(n^3) matmuls) are left out. Kaplan et al. 2020 (arXiv:2001.08361,
      section 2.1, Table 1) leave out more: they count 2N FLOPs per token forward (N = non-embedding
      parameters, plus an attention term) and omit biases and other subleading terms, so this
      module's linear() and conv2d() count slightly more than their formula.

Each function returns a `Cost(flops, bytes)`; `cost.intensity` is FLOP/byte. Costs add:
`linear(...) + attention(...)` is the work of both, with the bytes of both (unfused).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Cost",
    "itemsize",
    "matmul",
    "linear",
    "conv2d",
    "conv2d_output_size",
    "attention",
    "decode_step",
    "arithmetic_intensity",
]

_NAMED_SIZES = {"bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2, "half": 2, "float32": 4, "fp32": 4, "float": 4, "float64": 8, "fp64": 8, "double": 8, "int8": 1, "uint8": 1, "int4": 0.5, "int32": 4}


def _human(x: float, unit: str) -> str:
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


@dataclass(frozen=True, repr=False)
class Cost:
    """Work of one call: FLOPs (a multiply-add = 2) and compulsory bytes moved."""

    flops: int
    bytes: int
    name: str = ""

    @property
    def intensity(self) -> float:
        """Arithmetic intensity in FLOP/byte: flops / bytes."""
        return arithmetic_intensity(self.flops, self.bytes)

    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        name = " + ".join(n for n in (self.name, other.name) if n)
        return Cost(self.flops + other.flops, self.bytes + other.bytes, name)

    def __mul__(self, times: int) -> Cost:
        times = _positive_int("times", times)
        return Cost(self.flops * times, self.bytes * times, f"{times} x {self.name}" if self.name else "")

    __rmul__ = __mul__

    def __repr__(self) -> str:
        label = f"{self.name}: " if self.name else ""
        return f"Cost({label}{_human(self.flops, 'FLOP')}, {_human(self.bytes, 'B')}, {self.intensity:.3g} FLOP/byte)"


def arithmetic_intensity(flops: float, bytes_moved: float) -> float:
    """FLOPs per byte moved: flops / bytes_moved."""
    if not bytes_moved > 0:
        raise ValueError(f"bytes_moved must be > 0, got {bytes_moved!r}")
    if flops < 0:
        raise ValueError(f"flops must be >= 0, got {flops!r}")
    return flops / bytes_moved


# ## Argument checks


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    try:
        v = operator.index(value)  # accepts numpy ints, refuses floats
    except TypeError:
        raise ValueError(f"{name} must be a positive int, got {value!r}") from None
    if v <= 0:
        raise ValueError(f"{name} must be a positive int, got {v}")
    return v


def _nonneg_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}") from None
    if v < 0:
        raise ValueError(f"{name} must be an int >= 0, got {v}")
    return v


def _pair(name: str, value: Any, check: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return check(name, value[0]), check(name, value[1])
    v = check(name, value)
    return v, v


def itemsize(dtype: Any) -> float:
    """Bytes per element of a dtype given as a name ('float32', 'bf16', 'int4'), numpy/torch dtype or number."""
    if isinstance(dtype, bool):
        raise ValueError(f"dtype must be a dtype name, a dtype or a byte count, got {dtype!r}")
    if isinstance(dtype, (int, float)):
        if dtype <= 0:
            raise ValueError(f"dtype as a byte count must be > 0, got {dtype!r}")
        return dtype
    if isinstance(dtype, str):
        key = dtype.lower().removeprefix("torch.")
        if key in _NAMED_SIZES:
            return _NAMED_SIZES[key]
        try:
            import numpy as np

            return np.dtype(key).itemsize
        except TypeError:
            raise ValueError(f"unknown dtype {dtype!r}: use e.g. 'float32', 'bf16', 'int8', 'int4' or a byte count") from None
    size = getattr(dtype, "itemsize", None)  # torch dtypes, numpy dtype objects
    if isinstance(size, (int, float)) and size > 0:
        return size
    try:
        import numpy as np

        return np.dtype(dtype).itemsize  # numpy scalar types such as np.float64
    except TypeError:
        pass
    raise ValueError(f"unknown dtype {dtype!r}: use e.g. 'float32', 'bf16', 'int8', 'int4' or a byte count")


def _nbytes(elements: int, dtype: Any) -> int:
    return math.ceil(elements * itemsize(dtype))


# ## Kernels


def matmul(m: int, n: int, k: int, *, batch: int = 1, dtype: Any = "float32") -> Cost:
    """(m x k) @ (k x n), `batch` times: flops = 2*batch*m*n*k; bytes = A + B + C once each."""
    m, n, k = _positive_int("m", m), _positive_int("n", n), _positive_int("k", k)
    batch = _positive_int("batch", batch)
    flops = 2 * batch * m * n * k
    nbytes = _nbytes(batch * (m * k + k * n + m * n), dtype)
    label = f"matmul {m}x{k}@{k}x{n}" + (f" x{batch}" if batch > 1 else "")
    return Cost(flops, nbytes, label)


def linear(batch: int, in_features: int, out_features: int, *, bias: bool = True, dtype: Any = "float32") -> Cost:
    """y = x W^T (+ b) for x (batch, in): flops = 2*batch*in*out (+ batch*out); bytes = x + W (+ b) + y."""
    b = _positive_int("batch", batch)
    i = _positive_int("in_features", in_features)
    o = _positive_int("out_features", out_features)
    flops = 2 * b * i * o + (b * o if bias else 0)
    nbytes = _nbytes(b * i + i * o + (o if bias else 0) + b * o, dtype)
    return Cost(flops, nbytes, f"linear {i}->{o} batch {b}" + ("" if bias else " no bias"))


def conv2d_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1, as in torch.nn.Conv2d."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv2d(
    batch: int,
    in_channels: int,
    out_channels: int,
    height: int,
    width: int,
    kernel_size: int | tuple[int, int],
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    bias: bool = True,
    dtype: Any = "float32",
) -> Cost:
    """Direct 2-D convolution, NCHW: flops = 2*B*C_out*H_out*W_out*(C_in/groups)*kh*kw (+ bias adds).

    bytes = input + weights (C_out*(C_in/groups)*kh*kw) + bias + output, once each.
    """
    b = _positive_int("batch", batch)
    cin = _positive_int("in_channels", in_channels)
    cout = _positive_int("out_channels", out_channels)
    h, w = _positive_int("height", height), _positive_int("width", width)
    kh, kw = _pair("kernel_size", kernel_size, _positive_int)
    sh, sw = _pair("stride", stride, _positive_int)
    ph, pw = _pair("padding", padding, _nonneg_int)
    dh, dw = _pair("dilation", dilation, _positive_int)
    g = _positive_int("groups", groups)
    if cin % g:
        raise ValueError(f"in_channels ({cin}) must be divisible by groups ({g})")
    if cout % g:
        raise ValueError(f"out_channels ({cout}) must be divisible by groups ({g})")
    ho = conv2d_output_size(h, kh, sh, ph, dh)
    wo = conv2d_output_size(w, kw, sw, pw, dw)
    if ho <= 0 or wo <= 0:
        raise ValueError(
            f"kernel_size {kh}x{kw} (dilation {dh}x{dw}) does not fit the padded {h}x{w} input:"
            " use a smaller kernel or more padding"
        )
    per_output = (cin // g) * kh * kw
    outputs = b * cout * ho * wo
    flops = 2 * outputs * per_output + (outputs if bias else 0)
    weights = cout * per_output
    nbytes = _nbytes(b * cin * h * w + weights + (cout if bias else 0) + outputs, dtype)
    label = f"conv2d {cin}->{cout} {kh}x{kw} on {h}x{w}" + (f" stride {sh}" if (sh, sw) != (1, 1) else "") + (f" groups {g}" if g > 1 else "")
    return Cost(flops, nbytes, label)


def attention(
    seq_len: int,
    head_dim: int,
    *,
    num_heads: int = 1,
    batch: int = 1,
    kv_len: int | None = None,
    causal: bool = False,
    materialize_scores: bool = False,
    dtype: Any = "float32",
) -> Cost:
    """Scaled dot-product attention softmax(Q K^T) V, heads x batch.

    pairs = query-key pairs scored (seq_len * kv_len, or only j <= i when causal).
    flops = 4 * batch * num_heads * pairs * head_dim  (Q K^T and P V are 2*pairs*head_dim each);
    softmax and scaling are left out. bytes = Q, K, V read + output written; with
    `materialize_scores` (the unfused way) the score matrix is also written, read, written
    again as probabilities and read: 4 * batch * heads * seq_len * kv_len more elements.
    Projections are not included: add `linear(...)` costs for them.
    """
    lq = _positive_int("seq_len", seq_len)
    d = _positive_int("head_dim", head_dim)
    h = _positive_int("num_heads", num_heads)
    b = _positive_int("batch", batch)
    lk = lq if kv_len is None else _positive_int("kv_len", kv_len)
    if causal:
        if lk < lq:
            raise ValueError(f"kv_len ({lk}) must be >= seq_len ({lq}) for causal attention: queries are the last seq_len positions")
        # query i (0-based, among the last lq of lk positions) sees lk - lq + i + 1 keys
        pairs = lq * (lk - lq) + lq * (lq + 1) // 2
    else:
        pairs = lq * lk
    flops = 4 * b * h * pairs * d
    elements = b * h * (2 * lq * d + 2 * lk * d)  # Q and output; K and V
    if materialize_scores:
        elements += 4 * b * h * lq * lk
    label = f"attention L={lq}" + (f" kv={lk}" if lk != lq else "") + f" d={d} heads={h}" + (" causal" if causal else "")
    return Cost(flops, _nbytes(elements, dtype), label)


def decode_step(
    d_model: int,
    n_layers: int,
    kv_len: int,
    *,
    d_ff: int | None = None,
    vocab_size: int = 0,
    batch: int = 1,
    gated_mlp: bool = False,
    weight_dtype: Any = "float32",
    kv_dtype: Any = None,
    act_dtype: Any = "float32",
) -> Cost:
    """One generated token per sequence of a decoder-only transformer with a KV cache.

    Per layer: Q,K,V and output projections (4*d^2 weights), an MLP (2*d*d_ff weights, 3 if
    gated), attention of the new token over `kv_len` cached positions (its own K,V included).
    flops = batch * (2 * weights + 4 * n_layers * kv_len * d_model), i.e. ~2 FLOPs per
    parameter per token plus attention. bytes = all weights once (shared by the batch) +
    the KV cache read (2 * n_layers * kv_len * d_model per sequence) + the new K,V written +
    the activations read and written by each linear. Norms and biases are left out.
    """
    d = _positive_int("d_model", d_model)
    layers = _positive_int("n_layers", n_layers)
    kv = _positive_int("kv_len", kv_len)
    ff = 4 * d if d_ff is None else _positive_int("d_ff", d_ff)
    vocab = _nonneg_int("vocab_size", vocab_size)
    b = _positive_int("batch", batch)
    kv_dtype = act_dtype if kv_dtype is None else kv_dtype
    mlp_mats = 3 if gated_mlp else 2
    weights_per_layer = 4 * d * d + mlp_mats * d * ff
    weights = layers * weights_per_layer + vocab * d
    flops = b * (2 * weights + 4 * layers * kv * d)
    # Activations read + written by each linear, per token and layer: QKV d in, 3d out;
    # attention reads q (d), writes d; out-proj d in, d out; MLP d in, (mlp_mats-1)*ff out,
    # ff in, d out. LM head: d in, vocab out.
    act_per_layer = d + 3 * d + d + d + d + d + d + (mlp_mats - 1) * ff + ff + d
    acts = b * (layers * act_per_layer + (d + vocab if vocab else 0))
    kv_read = b * layers * 2 * kv * d
    kv_write = b * layers * 2 * d
    nbytes = _nbytes(weights, weight_dtype) + _nbytes(kv_read + kv_write, kv_dtype) + _nbytes(acts, act_dtype)
    label = f"decode step d={d} layers={layers} kv={kv}" + (f" batch {b}" if b > 1 else "")
    return Cost(flops, nbytes, label)
