"""One model served many ways: torch's int8 engines, ONNX export, ONNX Runtime in fp32, int8 and int4.

    torch_int8_engines() -> list[str]                  torch's quantized engines here ('x86', 'onednn', ...)
    torch_dynamic_int8(model, engine) -> Module        torch.ao.quantization.quantize_dynamic on that engine
    torch_quantization_status() -> str                 what the pinned torch says about its quantization API
    export_onnx(model, example, path) -> Path          torch.onnx.export (the torch.export-based exporter), one
                                                       file, a dynamic batch dimension, Gemm nodes as MatMul + Add
    gemm_to_matmul(model_proto) -> ModelProto          Gemm(x, W, b, transB=1) -> MatMul(x, W^T) + b
    OrtModel(path, threads=1)                          an ONNX Runtime CPU session: .run(x), .bytes, .ops
    ort_quantize_dynamic(src, dst, weight_type="s8")   int8 weights, activations quantized per call (u8)
    ort_quantize_static(src, dst, calibration, activation_type="u8")   calibrated QDQ int8
    ort_quantize_int4(src, dst, block_size=32, accuracy_level=4)       weight-only int4 (MatMulNBits)
    matmul_model(weight, path) -> Path                 a one-MatMul model y = x @ W (matrix-vector experiments)
    matmul_integer_model(b, path) -> Path              a one-MatMulInteger model: u8 activations times int8 weights
    onnx_tensor / onnx_array / onnx_node / onnx_model  ONNX protos from numpy and back, without onnx's builders
    onednn_int8_plan(support) -> (runs, note)          which oneDNN ISA caps show int8 with and without VNNI here
    onednn_int8_run(isa_cap, ...) -> OneDnnRun         the same int8 model in a child process with ONEDNN_MAX_CPU_ISA
    parse_onednn_kernels(text) -> list[str]            the matmul kernels a ONEDNN_VERBOSE log names

Everything runs on the CPU, one thread unless asked (a class's laptops and the grader's sandbox
both have few free cores; one thread makes the comparisons steadier). The libraries' log lines
and progress output are kept out of notebooks: every function here runs them quietly.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from sweatlab.measure import fresh, onednn

__all__ = [
    "torch_int8_engines",
    "torch_dynamic_int8",
    "torch_quantization_status",
    "export_onnx",
    "gemm_to_matmul",
    "OrtModel",
    "ort_quantize_dynamic",
    "ort_quantize_static",
    "ort_quantize_int4",
    "matmul_model",
    "matmul_integer_model",
    "onnx_tensor",
    "onnx_array",
    "onnx_node",
    "onnx_model",
    "OneDnnRun",
    "onednn_int8_plan",
    "onednn_int8_run",
    "parse_onednn_kernels",
]


@contextlib.contextmanager
def quiet():
    """Hide what the exporters and quantizers print: stdout/stderr writes, warnings and log records."""
    sink = io.StringIO()
    previous = logging.root.manager.disable
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield sink
        finally:
            logging.disable(previous)


# ---------------------------------------------------------------------------------------------
# torch's int8 path
# ---------------------------------------------------------------------------------------------

def torch_int8_engines() -> list[str]:
    """torch's quantized engines meant for this CPU: 'x86', 'fbgemm', 'onednn' on x86 (its 'qnnpack', a mobile
    engine, is left out there), 'qnnpack' (and 'onednn' where built) on Arm."""
    import platform

    import torch

    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    if platform.machine().lower() in ("x86_64", "amd64", "i686", "x86"):
        engines = [e for e in engines if e != "qnnpack"] or engines
    return engines


def torch_dynamic_int8(model: Any, engine: str) -> Any:
    """A copy of ``model`` whose nn.Linear layers run int8 (weights per tensor, activations per call) on ``engine``.

    Leaves ``torch.backends.quantized.engine`` set to ``engine``: a model quantized for one engine runs on it.
    """
    import copy

    import torch

    torch.backends.quantized.engine = engine
    with quiet():
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(), {torch.nn.Linear}, dtype=torch.qint8)


def torch_quantization_status() -> str:
    """The deprecation warning the pinned torch gives for torch.ao.quantization, first sentence (or a note)."""
    import torch

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(4, 4)), {torch.nn.Linear},
                                               dtype=torch.qint8)
    texts = list(dict.fromkeys(str(w.message).split("\n")[0].split(". ")[0].strip().rstrip(".")
                               for w in seen if "deprecat" in str(w.message).lower()))
    if not texts:
        return f"torch {torch.__version__}: torch.ao.quantization gave no deprecation warning"
    return f"torch {torch.__version__} warns: " + "; ".join(f"\"{t}.\"" for t in texts)


# ---------------------------------------------------------------------------------------------
# ONNX protos, built directly (a graph is a few protobuf messages)
# ---------------------------------------------------------------------------------------------

_ONNX_TYPES = {"float32": 1, "uint8": 2, "int8": 3, "int16": 5, "int32": 6, "int64": 7, "float16": 10, "float64": 11}
_NUMPY_TYPES = {code: np.dtype(name) for name, code in _ONNX_TYPES.items()}


def onnx_tensor(name: str, array: Any, data_type: int | None = None) -> Any:
    """A TensorProto holding ``array`` (little-endian raw bytes). ``data_type`` overrides the element type, e.g.
    onnx.TensorProto.INT4 with bytes already packed two codes per byte and ``array``'s shape given separately."""
    import onnx

    a = np.ascontiguousarray(array)
    if data_type is None:
        data_type = _ONNX_TYPES[a.dtype.name]
    return onnx.TensorProto(name=name, dims=list(a.shape), data_type=data_type,
                            raw_data=a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())


def onnx_array(tensor: Any) -> np.ndarray:
    """The numpy array of a TensorProto with raw data or float/int32/int64 fields (the common element types)."""
    dtype = _NUMPY_TYPES.get(tensor.data_type)
    if dtype is None:
        raise ValueError(f"element type {tensor.data_type} is not read here")
    shape = tuple(tensor.dims)
    if tensor.raw_data:
        return np.frombuffer(tensor.raw_data, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    for values in (tensor.float_data, tensor.double_data, tensor.int64_data, tensor.int32_data):
        if len(values):
            return np.asarray(values).astype(dtype).reshape(shape)
    return np.zeros(shape, dtype=dtype)


def onnx_node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str = "", **attributes: Any) -> Any:
    """A NodeProto; attributes may be ints or floats (what the course's graphs use)."""
    import onnx

    node = onnx.NodeProto(op_type=op_type, input=list(inputs), output=list(outputs), name=name or op_type.lower())
    for key, value in sorted(attributes.items()):
        if isinstance(value, (bool, int, np.integer)):
            node.attribute.append(onnx.AttributeProto(name=key, type=onnx.AttributeProto.INT, i=int(value)))
        elif isinstance(value, (float, np.floating)):
            node.attribute.append(onnx.AttributeProto(name=key, type=onnx.AttributeProto.FLOAT, f=float(value)))
        else:
            raise TypeError(f"attribute {key}: only ints and floats are supported here, got {type(value).__name__}")
    return node


def _attribute(node: Any, key: str, default: float) -> float:
    import onnx

    for a in node.attribute:
        if a.name == key:
            return a.i if a.type == onnx.AttributeProto.INT else a.f
    return default


def _value_info(name: str, elem_type: int, shape: Sequence[int | str]) -> Any:
    import onnx

    dims = [onnx.TensorShapeProto.Dimension(dim_param=d) if isinstance(d, str) else
            onnx.TensorShapeProto.Dimension(dim_value=int(d)) for d in shape]
    tensor_type = onnx.TypeProto.Tensor(elem_type=elem_type, shape=onnx.TensorShapeProto(dim=dims))
    return onnx.ValueInfoProto(name=name, type=onnx.TypeProto(tensor_type=tensor_type))


def onnx_model(nodes: Sequence[Any], inputs: Sequence[tuple[str, int, Sequence[int | str]]],
               outputs: Sequence[tuple[str, int, Sequence[int | str]]], initializers: Sequence[Any] = (),
               opset: int = 17, name: str = "graph") -> Any:
    """A checked ModelProto: ``inputs``/``outputs`` as (name, element type, shape with str for a dynamic dimension)."""
    import onnx

    graph = onnx.GraphProto(name=name, node=list(nodes), initializer=list(initializers),
                            input=[_value_info(*i) for i in inputs], output=[_value_info(*o) for o in outputs])
    model = onnx.ModelProto(ir_version=8 if opset < 21 else 10, graph=graph, producer_name="sweatlab",
                            opset_import=[onnx.OperatorSetIdProto(domain="", version=opset)])
    onnx.checker.check_model(model)
    return model


# ---------------------------------------------------------------------------------------------
# ONNX export and ONNX Runtime
# ---------------------------------------------------------------------------------------------

def gemm_to_matmul(model: Any) -> Any:
    """Replace each Gemm(x, W, b) with transB=1 (how nn.Linear exports) by MatMul(x, W^T) then Add(b).

    ONNX Runtime's weight-only int4 quantizer (MatMulNBits) rewrites MatMul nodes only; the int8
    quantizers handle both. Other Gemm forms are left alone.
    """
    import onnx

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    nodes = []
    for node in graph.node:
        simple = (node.op_type == "Gemm" and _attribute(node, "transA", 0) == 0 and _attribute(node, "transB", 0) == 1
                  and _attribute(node, "alpha", 1.0) == 1.0 and _attribute(node, "beta", 1.0) == 1.0
                  and len(node.input) >= 2 and node.input[1] in inits)
        if not simple:
            nodes.append(node)
            continue
        w = onnx_array(inits[node.input[1]])
        wt = onnx_tensor(node.input[1] + "_t", np.ascontiguousarray(w.T))
        graph.initializer.append(wt)
        base = node.name or "gemm"
        if len(node.input) > 2 and node.input[2]:
            mid = node.output[0] + "_matmul"
            nodes.append(onnx_node("MatMul", [node.input[0], wt.name], [mid], name=base + "_matmul"))
            nodes.append(onnx_node("Add", [mid, node.input[2]], [node.output[0]], name=base + "_add"))
        else:
            nodes.append(onnx_node("MatMul", [node.input[0], wt.name], [node.output[0]], name=base + "_matmul"))
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    onnx.checker.check_model(model)
    return model


def export_onnx(model: Any, example: Any, path: str | os.PathLike[str]) -> Path:
    """Export ``model`` to one ONNX file with torch.onnx.export's torch.export-based exporter (dynamo=True).

    The batch dimension is dynamic (the example needs a batch of at least 2: torch.export specialises a
    batch of 1), the weights are inside the file, and Gemm nodes become MatMul + Add (:func:`gemm_to_matmul`).
    """
    import onnx
    import torch

    path = Path(path)
    if example.shape[0] < 2:
        raise ValueError("give an example batch of at least 2 rows: a batch of 1 is exported as a constant")
    model = model.eval()
    with quiet(), torch.no_grad():
        program = torch.onnx.export(model, (example,), dynamo=True,
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
        program.save(str(path), external_data=False)
    proto = gemm_to_matmul(onnx.load(str(path)))
    onnx.save(proto, str(path))
    return path


@dataclass
class OrtModel:
    """An ONNX Runtime session on the CPU with ``threads`` intra-op threads: ``.run(x)`` returns the first output."""

    path: Path
    threads: int = 1
    session: Any = field(init=False, repr=False)
    input_name: str = field(init=False)

    def __post_init__(self) -> None:
        import onnxruntime as ort

        self.path = Path(self.path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    __call__ = run

    @property
    def bytes(self) -> int:
        """The model file's size: weights, scales, zero points and the graph."""
        return self.path.stat().st_size

    @property
    def ops(self) -> list[str]:
        """The operator types of the graph, in order of first appearance."""
        import onnx

        return list(dict.fromkeys(n.op_type for n in onnx.load(str(self.path)).graph.node))


_QTYPE = {"s8": "QInt8", "u8": "QUInt8"}


def ort_quantize_dynamic(src: str | os.PathLike[str], dst: str | os.PathLike[str], weight_type: str = "s8",
                         per_channel: bool = False, reduce_range: bool = False) -> Path:
    """int8 weights (``"s8"`` or ``"u8"``); each call quantizes its activations to u8 on the fly."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet():
        quantize_dynamic(str(src), str(dst), weight_type=getattr(QuantType, _QTYPE[weight_type]),
                         per_channel=per_channel, reduce_range=reduce_range)
    return Path(dst)


class _Batches:
    """An ONNX Runtime CalibrationDataReader over a list of float32 batches."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]):
        self._it = iter([{input_name: np.ascontiguousarray(b, dtype=np.float32)} for b in batches])

    def get_next(self) -> dict | None:
        return next(self._it, None)


def ort_quantize_static(src: str | os.PathLike[str], dst: str | os.PathLike[str], calibration: Sequence[np.ndarray],
                        activation_type: str = "u8", per_channel: bool = True, method: str = "MinMax") -> Path:
    """int8 weights (s8, per output channel) and activations whose ranges come from ``calibration`` batches.

    QDQ format (QuantizeLinear/DequantizeLinear pairs that ONNX Runtime fuses into int8 kernels);
    ``method`` is ONNX Runtime's CalibrationMethod ("MinMax", "Percentile", "Entropy").
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    name = OrtModel(Path(src)).input_name
    reader = type("Reader", (_Batches, CalibrationDataReader), {})(name, calibration)
    with quiet():
        quantize_static(str(src), str(dst), reader, quant_format=QuantFormat.QDQ,
                        activation_type=getattr(QuantType, _QTYPE[activation_type]), weight_type=QuantType.QInt8,
                        per_channel=per_channel, calibrate_method=getattr(CalibrationMethod, method))
    return Path(dst)


def ort_quantize_int4(src: str | os.PathLike[str], dst: str | os.PathLike[str], block_size: int = 32,
                      accuracy_level: int = 4) -> Path:
    """Weight-only int4: every MatMul's weights in symmetric 4-bit groups of ``block_size`` (MatMulNBits).

    accuracy_level 4 lets the kernel quantize activations to int8 and use int8 dot products; 0 keeps the
    arithmetic in fp32 (the weights are unpacked to fp32 first).
    """
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    with quiet():
        q = MatMulNBitsQuantizer(onnx.load(str(src)), bits=4, block_size=block_size, is_symmetric=True,
                                 accuracy_level=accuracy_level)
        q.process()
        q.model.save_model_to_file(str(dst), False)
    return Path(dst)


def matmul_model(weight: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """A one-node ONNX model y = x @ weight (weight: in x out, float32) with a dynamic batch."""
    import onnx

    k, n = weight.shape
    model = onnx_model([onnx_node("MatMul", ["x", "w"], ["y"], name="matmul")],
                       [("x", onnx.TensorProto.FLOAT, ["batch", k])], [("y", onnx.TensorProto.FLOAT, ["batch", n])],
                       [onnx_tensor("w", np.ascontiguousarray(weight, dtype=np.float32))], name="matvec")
    onnx.save(model, str(path))
    return Path(path)


def matmul_integer_model(b: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """A one-node ONNX model y = a @ b in exact integers: a is uint8 (batch x k), b the int8 or uint8 weights
    (k x n), y int32. ONNX Runtime runs it on its integer kernels (VNNI where the CPU has it)."""
    import onnx

    b = np.ascontiguousarray(b)
    if b.dtype not in (np.int8, np.uint8):
        raise ValueError(f"the weights must be int8 or uint8, got {b.dtype}")
    k, n = b.shape
    model = onnx_model([onnx_node("MatMulInteger", ["a", "b"], ["y"], name="matmul_integer")],
                       [("a", onnx.TensorProto.UINT8, ["batch", k])], [("y", onnx.TensorProto.INT32, ["batch", n])],
                       [onnx_tensor("b", b)], name="matmul_integer")
    onnx.save(model, str(path))
    return Path(path)


# ---------------------------------------------------------------------------------------------
# oneDNN with an instruction set hidden: the same int8 model with and without VNNI
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OneDnnRun:
    """One child process: torch's int8 model on the oneDNN engine, with oneDNN capped at ``isa_cap``."""

    label: str
    isa_cap: str | None  # ONEDNN_MAX_CPU_ISA, None = no cap
    onednn_isa: str | None  # what oneDNN said it may use
    kernels: tuple[str, ...]  # the int8 matmul kernels oneDNN ran
    fp32_ms: float | None
    int8_ms: float | None
    ratio: float | None  # fp32 time / int8 time, median of interleaved pairs
    error: str | None = None
    fp32_j: float | None = None  # joules per call (None when no sensor and no estimate was asked for)
    int8_j: float | None = None
    energy_kind: str = "unavailable"  # "measured", "estimated" or "unavailable", as sweatlab.measure.energy says


def parse_onednn_kernels(text: str) -> tuple[str | None, list[str]]:
    """(the ISA line, the distinct kernels of executed int8 matmuls) from ONEDNN_VERBOSE output."""
    kernels: list[str] = []
    for p in onednn.executed(text):
        if p.kind in ("matmul", "inner_product") and p.int8_source and p.impl not in kernels:
            kernels.append(p.impl)
    return onednn.isa_line(text), kernels


_CHILD = r"""
import json, sys, warnings
import torch
from sweatlab.measure.energy import EnergyMeter
from sweatlab.topics.serve import torch_dynamic_int8
from sweatlab.measure.timing import compare
from sweatlab.measure.fresh import report
torch.set_num_threads(int(sys.argv[1]))
sizes, batch, budget = json.loads(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
power = json.loads(sys.argv[5])
torch.manual_seed(0)
layers = []
for a, b in zip(sizes[:-1], sizes[1:]):
    layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
model = torch.nn.Sequential(*layers[:-1]).eval()
int8 = torch_dynamic_int8(model, "onednn")
x = torch.rand(batch, sizes[0])
with torch.inference_mode():
    with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
        int8(x)
    sys.stdout.flush()
    r = compare(lambda: model(x), lambda: int8(x), budget_s=budget, names=("fp32", "int8"))
    joules, kind = {}, "unavailable"
    for name, run, per_call in (("fp32", model, r.median_a_s), ("int8", int8, r.median_b_s)):
        meter = EnergyMeter(**power) if power else EnergyMeter()
        calls = max(3, int(budget / 2 / max(per_call, 1e-6)))
        with meter:
            for _ in range(calls):
                run(x)
        reading = meter.reading
        kind = reading.kind
        joules[name] = None if reading.joules is None else reading.joules / calls
out = {"fp32_ms": r.median_a_s * 1e3, "int8_ms": r.median_b_s * 1e3, "ratio": r.ratio,
       "fp32_j": joules["fp32"], "int8_j": joules["int8"], "energy_kind": kind}
report(out)
"""


def onednn_int8_plan(support: Any) -> tuple[list[tuple[str, str | None]], str]:
    """Which runs show int8 with and without VNNI on this CPU: [(label, ONEDNN_MAX_CPU_ISA or None)], and a note.

    ``support`` is a :class:`sweatlab.topics.quant.Int8Support`. oneDNN's cap hides instructions the CPU has; it
    cannot add ones it lacks, so a CPU without VNNI shows one side only, and a non-x86 CPU none.
    """
    if not getattr(support, "x86", False):
        return [], (f"not measured on {support.arch}: ONEDNN_MAX_CPU_ISA is an x86 switch (on Arm, torch's int8 "
                    "engine is qnnpack or oneDNN with Arm's compute library, which this experiment does not cap)")
    runs: list[tuple[str, str | None]] = []
    if support.amx_int8:
        runs += [("AMX-INT8 (no cap)", None), ("VNNI, AMX hidden", "AVX512_CORE_VNNI"),
                 ("no VNNI (AVX-512 only)", "AVX512_CORE")]
        note = "this CPU has AMX-INT8 and VNNI: all three levels are measured"
    elif support.vnni:
        runs += [("VNNI (no cap)", None), ("VNNI hidden", "AVX512_CORE" if support.avx512 else "AVX2")]
        note = "this CPU has VNNI: measured with it, then with oneDNN told not to use it"
    else:
        runs += [("this CPU (no VNNI)", None)]
        note = ("this CPU has no VNNI, so the VNNI side cannot be measured here; a CPU with VNNI (Intel since "
                "Cascade Lake, AMD since Zen 4) runs the same model's int8 matmuls in one instruction per group "
                "of four products")
    return runs, note


def onednn_int8_run(label: str, isa_cap: str | None, sizes: Sequence[int], batch: int, threads: int = 1,
                    budget_s: float = 0.5, timeout_s: float = 120.0, energy_meter: dict | None = None) -> OneDnnRun:
    """Run torch's dynamic int8 model (random weights of the given layer ``sizes``) on the oneDNN engine in a
    child process with ONEDNN_MAX_CPU_ISA=``isa_cap``; time fp32 against int8, interleaved, at ``batch``.

    ``energy_meter``: keyword arguments for the child's :class:`sweatlab.measure.energy.EnergyMeter` (e.g. a labelled
    estimate: ``{"estimate": True, "tdp_w": 280, ...}``); each side then runs alone for a while under a meter.
    Random weights: the speed of a matrix product does not depend on the values."""
    env = {"ONEDNN_MAX_CPU_ISA": isa_cap} if isa_cap else {}
    run = fresh.run_code(_CHILD, env, [str(threads), json.dumps(list(sizes)), str(batch), str(budget_s),
                                       json.dumps(energy_meter or {})], timeout=timeout_s)
    isa, kernels = parse_onednn_kernels(run.log)
    if not run.ok:
        why = f"timed out after {timeout_s:g} s" if "did not finish" in run.error else f"the child process failed: {run.error}"
        return OneDnnRun(label, isa_cap, isa, tuple(kernels), None, None, None, why)
    data = run.value
    return OneDnnRun(label, isa_cap, isa, tuple(kernels), data["fp32_ms"], data["int8_ms"], data["ratio"],
                     fp32_j=data["fp32_j"], int8_j=data["int8_j"], energy_kind=data["energy_kind"])
