"""Devices and workloads: a sourced datasheet table, and roofline models of inference per joule.

    DEVICES                      the table: one Device per chip, every figure a Figure with units and source
    device("NVIDIA H100 SXM")    look one up by name
    this_machine(roofline, ...)  the learner's machine as a Device, from its measured roofline
    Workload / WORKLOADS         an MLP at batch 1 and 256, a decode step at batch 1, a prefill
    predict(device, workload)    a Prediction: seconds, inferences per second and per joule, the bound
    compute_bound_batch(...)     the batch size at which a device turns compute-bound
    bytes_per_token, tokens_per_joule, step_model, choose_device
                                 the same model in plain numbers (lab 05's stand-ins)
    TPU_PAPER                    Jouppi et al. 2017: the table inputs and the ratios the paper states
    chinchilla_optimal(C)        Hoffmann et al. 2022: compute-optimal parameters and tokens

Every figure says what it is:
  kind      "peak" (a datasheet's theoretical maximum), "measured", "derived" (computed from other
            figures: the arithmetic is in `note`), "TDP" (thermal design power or the board's power
            limit: a rating, not a measurement)
  dense     True for dense matrix throughput, False for a "with sparsity" (2:4) figure, None where the
            distinction does not apply (bandwidth, power)
  primary   True when the figure was checked in the primary source (the vendor's own page or the
            paper); False when it comes from a secondary source that cites it (named in `source`)

The model is the roofline of Williams, Waterman & Patterson (CACM 2009): a step of F FLOPs that
moves B bytes takes at least max(F / peak, B / bandwidth); energy = that time x the device's
power figure. It leaves out what the shipped measurements (``sweatlab.measure.energy_data.SHIPPED_H200``) show matters: launch and
host overhead, idle power, and kernels that do not reach the peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

from sweatlab.measure.energy_data import GPU_SERVER_PROVENANCE, MLP_PARAMS, SHIPPED

_H200 = {m.work: m for m in SHIPPED if m.device == "H200 GPU"}  # the shipped kernel measurements, one place
_INT8_MM, _GEMV32 = "int8 matmul (torch._int_mm), n = 8192", "fp32 matrix-vector product, n = 8192"

__all__ = ["Figure", "Device", "DEVICES", "device", "this_machine", "Workload", "WORKLOADS", "Prediction",
           "predict", "compute_bound_batch", "bytes_per_token", "tokens_per_joule", "step_model",
           "choose_device", "BYTES_PER_PARAM", "PRECISIONS", "TPU_PAPER", "tpu_ratios",
           "chinchilla_optimal", "HERNANDEZ_BROWN",
           "measure_energy", "plot_rooflines"]

PRECISIONS = ("fp32", "bf16", "int8")
BYTES_PER_PARAM = {"fp32": 4, "bf16": 2, "int8": 1}
UNITS = {"peak": "GFLOP/s", "bandwidth": "GB/s", "power": "W"}  # int8 peaks are GOP/s: same scale


@dataclass(frozen=True)
class Figure:
    """One number from a source: value, units, where it comes from and what kind of number it is."""

    value: float
    unit: str
    source: str
    kind: str  # "peak", "measured", "derived", "TDP"
    primary: bool
    dense: bool | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if not (isinstance(self.value, (int, float)) and self.value > 0 and math.isfinite(self.value)):
            raise ValueError(f"a figure needs a positive value, got {self.value!r}")
        if not self.unit or not self.source:
            raise ValueError("every figure needs a unit and a source")
        if self.kind not in ("peak", "measured", "derived", "TDP"):
            raise ValueError(f"kind must be peak, measured, derived or TDP, not {self.kind!r}")

    @property
    def label(self) -> str:
        """'peak, dense, primary' and so on: what a table column shows."""
        bits = [self.kind]
        if self.dense is not None:
            bits.append("dense" if self.dense else "sparse")
        bits.append("primary" if self.primary else "secondary")
        return ", ".join(bits)


@dataclass(frozen=True)
class Device:
    """One chip: peak throughput per precision (GFLOP/s, or GOP/s for int8), memory bandwidth, power."""

    name: str
    category: str  # "CPU", "GPU", "TPU", "laptop SoC", "this machine"
    peaks: Mapping[str, Figure]  # precision -> Figure in GFLOP/s (int8: GOP/s)
    bandwidth: Figure  # GB/s
    power: Figure | None  # W; None where no source gives one
    note: str = ""

    def peak_gflops(self, precision: str) -> float | None:
        f = self.peaks.get(precision)
        return None if f is None else f.value

    @property
    def bandwidth_gbs(self) -> float:
        return self.bandwidth.value

    @property
    def watts(self) -> float | None:
        return None if self.power is None else self.power.value

    def ridge(self, precision: str) -> float | None:
        """FLOP/byte where the bandwidth slope meets the `precision` roof."""
        p = self.peak_gflops(precision)
        return None if p is None else p / self.bandwidth_gbs

    def figures(self) -> list[tuple[str, Figure]]:
        """Every figure of the device with what it measures: ('peak bf16', Figure), ..."""
        out = [(f"peak {k}", v) for k, v in self.peaks.items()] + [("bandwidth", self.bandwidth)]
        if self.power is not None:
            out.append(("power", self.power))
        return out

    def source_kind(self) -> str:
        """'primary', 'secondary', 'measured' or a mix: how the row is sourced, in one word or two."""
        kinds = sorted({"measured" if f.kind == "measured" else ("primary" if f.primary else "secondary")
                        for _, f in self.figures()})
        return "+".join(kinds)


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------

JOUPPI = ("N. P. Jouppi et al., \"In-Datacenter Performance Analysis of a Tensor Processing Unit\", ISCA 2017, "
          "arXiv:1704.04760")
JOUPPI_ABSTRACT = JOUPPI + ", abstract (https://arxiv.org/abs/1704.04760)"
JOUPPI_TABLE2 = (JOUPPI + ", Table 2, as extracted by a third party and cross-checked for the Haswell and the "
                 "servers' busy power against a press quote; not read in the PDF")
NV_A100 = ("NVIDIA A100 Tensor Core GPU datasheet (https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/"
           "a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf), as tabulated by glennklockwood.com/garden/"
           "processors/A100")
NV_H100 = ("NVIDIA H100 Tensor Core GPU datasheet (https://resources.nvidia.com/en-us-tensor-core/"
           "nvidia-tensor-core-gpu-datasheet), as tabulated by glennklockwood.com/garden/processors/h100")
NV_H200 = ("NVIDIA H200 Tensor Core GPU product page (https://www.nvidia.com/en-us/data-center/h200/), as restated "
           "by several secondary pages (same GH100 compute as H100 SXM; 141 GB HBM3e at 4.8 TB/s; up to 700 W)")
NV_T4 = ("NVIDIA T4 Tensor Core GPU datasheet (https://www.nvidia.com/en-us/data-center/tesla-t4/), as reported by "
         "heise.de and geektopia.es at the launch, 2018-09 (75 W at the launch, 70 W in the datasheet)")
NV_L4 = ("NVIDIA L4 Tensor Core GPU datasheet (https://www.nvidia.com/en-us/data-center/l4/): FP16/BF16 242 TFLOPS "
         "and INT8 485 TOPS are printed with sparsity; as restated by store listings and comparison sites")
GCP_V4 = "Google Cloud TPU documentation, \"TPU v4\" (https://cloud.google.com/tpu/docs/v4), key specifications table"
GCP_V5E = "Google Cloud TPU documentation, \"TPU v5e\" (https://cloud.google.com/tpu/docs/v5e), key specifications table"
INTEL_SPR = ("Intel Xeon Platinum 8480+ (Sapphire Rapids) product specifications (https://ark.intel.com/): 56 cores, "
             "2.0 GHz base, 350 W TDP, 8 channels of DDR5-4800; as restated by secondary pages")
INTEL_AMX = ("AMX: 1,024 bf16 or 2,048 int8 operations per core per cycle; AVX-512: 64 fp32 FLOP per core per cycle "
             "(PyTorch AMX recipe, https://pytorch.org/tutorials/recipes/amx.html, and Intel's AMX overview)")
AMD_9654 = ("AMD EPYC 9654 (Zen 4, Genoa) product page (https://www.amd.com/en/products/processors/server/epyc/"
            "4th-generation-9004-and-8004-series/amd-epyc-9654.html): 96 cores, 2.4 GHz base, 360 W default TDP, "
            "12 channels of DDR5-4800; as restated by secondary pages (TechPowerUp, tomshardware.fr)")
AMD_ZEN4 = ("AMD, Software Optimization Guide for the AMD Zen4 Microarchitecture, pub. 57647: two 256-bit FMA "
            "pipes; a 512-bit instruction runs as two halves")
AWS_G3 = ("AWS Graviton getting-started guide (https://github.com/aws/aws-graviton-getting-started): Graviton3, "
          "64 Neoverse-V1 cores at 2.6 GHz, 2 x 256-bit SVE, 8 channels of DDR5-4800")
APPLE_M2 = ("Apple newsroom, \"Apple unveils M2\", 2022-06-06 (https://www.apple.com/newsroom/2022/06/"
            "apple-unveils-m2-with-breakthrough-performance-and-capabilities/), as mirrored by press pages")


def _f(value: float, unit: str, source: str, kind: str, primary: bool, dense: bool | None = None,
       note: str = "") -> Figure:
    return Figure(float(value), unit, source, kind, primary, dense, note)


def _peaks(source: str, primary: bool, kind: str = "peak", note: str = "", **gflops: float) -> dict[str, Figure]:
    unit = {"fp32": "GFLOP/s", "bf16": "GFLOP/s", "int8": "GOP/s"}
    return {k: _f(v, unit[k], source, kind, primary, True, note) for k, v in gflops.items()}


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------

DEVICES: tuple[Device, ...] = (
    # --- Jouppi et al. 2017: the three dies of the paper -------------------------------------
    Device("Intel Haswell E5-2699 v3 (2017 paper)", "CPU",
           _peaks(JOUPPI_TABLE2, False, fp32=1_300, int8=2_600),
           _f(51, "GB/s", JOUPPI_TABLE2, "peak", False),
           _f(145, "W", JOUPPI_TABLE2, "TDP", False),
           note="18 cores at 2.3 GHz, 22 nm; per die (the paper's servers hold 2)"),
    Device("NVIDIA K80 die (2017 paper)", "GPU",
           _peaks(JOUPPI_TABLE2, False, fp32=2_800),
           _f(160, "GB/s", JOUPPI_TABLE2, "peak", False),
           _f(150, "W", JOUPPI_TABLE2, "TDP", False),
           note="one of the two dies of a K80 board, 28 nm, 560 MHz; no 8-bit path"),
    Device("Google TPU v1 (2017 paper)", "TPU",
           {"int8": _f(92_000, "GOP/s", JOUPPI_ABSTRACT, "peak", True, True)},
           _f(34, "GB/s", JOUPPI_TABLE2, "peak", False),
           _f(75, "W", JOUPPI_TABLE2, "TDP", False),
           note="65,536 8-bit MACs at 700 MHz, 28 MiB on chip; DDR3 weight memory"),
    # --- data-centre GPUs ----------------------------------------------------------------------
    Device("NVIDIA T4", "GPU",
           _peaks(NV_T4, False, fp32=8_100, bf16=65_000, int8=130_000),
           _f(320, "GB/s", NV_T4, "peak", False),
           _f(70, "W", NV_T4, "TDP", False),
           note="bf16 column: the T4 (Turing) has fp16 tensor cores, no bf16; 65 TFLOPS is fp16 mixed precision"),
    Device("NVIDIA L4", "GPU",
           {"fp32": _f(30_300, "GFLOP/s", NV_L4, "peak", False, True),
            "bf16": _f(121_000, "GFLOP/s", NV_L4, "derived", False, True, "242 TFLOPS with sparsity / 2"),
            "int8": _f(242_500, "GOP/s", NV_L4, "derived", False, True, "485 TOPS with sparsity / 2")},
           _f(300, "GB/s", NV_L4, "peak", False),
           _f(72, "W", NV_L4, "TDP", False)),
    Device("NVIDIA A100 SXM 80GB", "GPU",
           _peaks(NV_A100, False, fp32=19_500, bf16=312_000, int8=624_000),
           _f(2_039, "GB/s", NV_A100, "peak", False),
           _f(400, "W", NV_A100, "TDP", False, note="maximum board power")),
    Device("NVIDIA H100 SXM", "GPU",
           _peaks(NV_H100, False, fp32=66_900, bf16=989_400, int8=1_978_900),
           _f(3_350, "GB/s", NV_H100, "peak", False),
           _f(700, "W", NV_H100, "TDP", False, note="maximum board power")),
    Device("NVIDIA H200 SXM (datasheet)", "GPU",
           _peaks(NV_H200, False, fp32=66_900, bf16=989_400, int8=1_978_900,
                  note="same compute as the H100 SXM; the datasheet prints twice these 'with sparsity'"),
           _f(4_800, "GB/s", NV_H200, "peak", False),
           _f(700, "W", NV_H200, "TDP", False, note="maximum board power")),
    Device("NVIDIA H200 SXM (measured)", "GPU",
           {"fp32": _f(_H200["fp32 matmul, n = 8192 (TF32 off)"].gflops, "GFLOP/s", GPU_SERVER_PROVENANCE, "measured",
                       True, True, f"torch matmul n = 8192, TF32 off, at {_H200['fp32 matmul, n = 8192 (TF32 off)'].watts:g} W"),
            "bf16": _f(_H200["bf16 matmul, n = 8192"].gflops, "GFLOP/s", GPU_SERVER_PROVENANCE, "measured", True, True,
                       f"torch matmul n = 8192, at {_H200['bf16 matmul, n = 8192'].watts:g} W"),
            "int8": _f(_H200[_INT8_MM].gflops, "GOP/s", GPU_SERVER_PROVENANCE, "measured", True, True,
                       f"torch._int_mm n = 8192, at {_H200[_INT8_MM].watts:g} W: not the tuned int8 kernel")},
           _f(_H200[_GEMV32].gflops * 2, "GB/s", GPU_SERVER_PROVENANCE, "measured", True,
              note=f"fp32 matrix-vector product n = 8192: {_H200[_GEMV32].gflops / 1e3:g} TFLOP/s x 2 bytes per FLOP"),
           _f(_H200["bf16 matmul, n = 8192"].watts, "W", GPU_SERVER_PROVENANCE, "measured", True,
              note="board power during the bf16 matmul")),
    # --- TPUs -------------------------------------------------------------------------------------
    Device("Google TPU v4 (per chip)", "TPU",
           _peaks(GCP_V4, True, bf16=275_000, int8=275_000),
           _f(1_200, "GB/s", GCP_V4, "peak", True),
           _f(170, "W", GCP_V4, "measured", True, note="Google's measured mean (min/mean/max 90/170/192 W)")),
    Device("Google TPU v5e (per chip)", "TPU",
           _peaks(GCP_V5E, True, bf16=197_000, int8=393_000),
           _f(819, "GB/s", GCP_V5E, "peak", True, note="one version of the page says 800 GiBps"),
           None, note="Google publishes no power figure for v5e"),
    # --- server CPUs --------------------------------------------------------------------------
    Device("Intel Xeon Platinum 8480+ (Sapphire Rapids)", "CPU",
           {"fp32": _f(7_168, "GFLOP/s", INTEL_SPR + "; " + INTEL_AMX, "derived", False, True,
                       "56 cores x 2.0 GHz (base) x 64 FLOP/cycle (AVX-512); all-core AVX-512 clocks may differ"),
            "bf16": _f(114_688, "GFLOP/s", INTEL_SPR + "; " + INTEL_AMX, "derived", False, True,
                       "56 x 2.0 GHz x 1,024 (AMX bf16)"),
            "int8": _f(229_376, "GOP/s", INTEL_SPR + "; " + INTEL_AMX, "derived", False, True,
                       "56 x 2.0 GHz x 2,048 (AMX int8)")},
           _f(307.2, "GB/s", INTEL_SPR, "derived", False, note="8 channels x 4800 MT/s x 8 bytes"),
           _f(350, "W", INTEL_SPR, "TDP", False)),
    Device("H200 server host CPU, 16 vCPU Xeon with AMX (measured)", "CPU",
           {"fp32": _f(1_342, "GFLOP/s", GPU_SERVER_PROVENANCE, "measured", True, True, "torch matmul n = 4096"),
            "bf16": _f(4_159, "GFLOP/s", GPU_SERVER_PROVENANCE, "measured", True, True, "torch matmul n = 4096 (AMX)")},
           _f(116.7, "GB/s", GPU_SERVER_PROVENANCE, "measured", True, note="sweatlab triad, 16 threads"),
           None, note="the VM exposed no CPU energy counter: no power figure"),
    Device("AMD EPYC 9654 (Genoa, Zen 4)", "CPU",
           {"fp32": _f(7_373, "GFLOP/s", AMD_9654 + "; " + AMD_ZEN4, "derived", False, True,
                       "96 cores x 2.4 GHz (base) x 32 FLOP/cycle (2 x 256-bit FMA)"),
            "bf16": _f(14_746, "GFLOP/s", AMD_9654 + "; " + AMD_ZEN4, "derived", False, True,
                       "AVX512_BF16 dot products: twice the fp32 rate (assumed)"),
            "int8": _f(29_491, "GOP/s", AMD_9654 + "; " + AMD_ZEN4, "derived", False, True,
                       "AVX512_VNNI: four times the fp32 rate (assumed)")},
           _f(460.8, "GB/s", AMD_9654, "derived", False, note="12 channels x 4800 MT/s x 8 bytes"),
           _f(360, "W", AMD_9654, "TDP", False)),
    Device("AWS Graviton3 (Arm Neoverse V1)", "CPU",
           {"fp32": _f(5_325, "GFLOP/s", AWS_G3, "derived", False, True,
                       "64 cores x 2.6 GHz x 2 SVE pipes x 8 lanes x 2 (FMA)")},
           _f(307.2, "GB/s", AWS_G3, "derived", False, note="8 channels x 4800 MT/s x 8 bytes"),
           None, note="AWS publishes no TDP; bf16 and int8 instructions exist, rates unpublished"),
    # --- laptop class ---------------------------------------------------------------------------
    Device("Apple M2 (Neural Engine + memory)", "laptop SoC",
           {"int8": _f(15_800, "GOP/s", APPLE_M2, "peak", False, None,
                       "Neural Engine '15.8 trillion operations per second', precision unstated")},
           _f(100, "GB/s", APPLE_M2, "peak", False),
           None, note="Apple publishes no TDP"),
)


def device(name: str) -> Device:
    """The device whose name starts with ``name`` (case-insensitive)."""
    hits = [d for d in DEVICES if d.name.lower().startswith(name.lower())]
    if len(hits) != 1:
        raise KeyError(f"{name!r} matches {len(hits)} devices: {[d.name for d in hits]}")
    return hits[0]


def this_machine(peaks_gflops: Mapping[str, float | None], bandwidth_gbs: float, *, watts: float | None = None,
                 power_kind: str = "derived", power_source: str = "", name: str = "this machine") -> Device:
    """The learner's machine as a Device: peaks and bandwidth measured by ``sweatlab.measure.roofline``.

    ``watts``: a power figure where there is one (a sensor's average: power_kind "measured"; a TDP
    model: "derived", with its assumptions in ``power_source``); None where none is known.
    """
    src = "measured in this notebook with sweatlab.measure.roofline (best run)"
    peaks = {k: _f(v, "GOP/s" if k == "int8" else "GFLOP/s", src, "measured", True, True)
             for k, v in peaks_gflops.items() if v}
    power = _f(watts, "W", power_source or "this notebook", power_kind, True) if watts else None
    return Device(name, "this machine", peaks, _f(bandwidth_gbs, "GB/s", src, "measured", True), power)


# ---------------------------------------------------------------------------------------------
# Workloads and the model
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Workload:
    """One step of inference: ``batch`` inputs through ``n_params`` weights (read once per step)."""

    name: str
    n_params: float
    batch: int
    precision: str = "bf16"
    act_bytes_per_input: float = 0.0  # activations read and written per input, in bytes
    unit: str = "inference"  # what one input is: "inference", "token"

    @property
    def flops(self) -> float:
        return 2.0 * self.n_params * self.batch  # a multiply-add per weight per input

    @property
    def bytes(self) -> float:
        """Weights once per step (the batch reuses them) + each input's activations."""
        return self.n_params * BYTES_PER_PARAM[self.precision] + self.batch * self.act_bytes_per_input

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes

    def with_batch(self, batch: int) -> "Workload":
        return replace(self, batch=int(batch), name=f"{self.name.split(',')[0]}, batch {batch}")

    def with_precision(self, precision: str) -> "Workload":
        return replace(self, precision=precision)


GPT2_SMALL_PARAMS = 124e6  # GPT-2 small, the model of the H200 decode measurements


def _mlp_acts(precision: str) -> float:
    return 2 * 4 * 4096 * BYTES_PER_PARAM[precision]  # each of 4 layers reads and writes a 4096-vector


WORKLOADS: tuple[Workload, ...] = (
    Workload("MLP 4x4096, batch 1", MLP_PARAMS, 1, "bf16", _mlp_acts("bf16")),
    Workload("MLP 4x4096, batch 256", MLP_PARAMS, 256, "bf16", _mlp_acts("bf16")),
    Workload("decode step 124M, batch 1", GPT2_SMALL_PARAMS, 1, "bf16", 0.0, "token"),
    Workload("prefill 124M, 2048 tokens", GPT2_SMALL_PARAMS, 2048, "bf16", 0.0, "token"),
)


@dataclass(frozen=True)
class Prediction:
    """What the roofline model predicts for one workload on one device."""

    device: str
    workload: str
    seconds: float  # per step
    per_second: float  # inputs (inferences or tokens) per second
    per_joule: float | None  # inputs per joule at the device's power figure; None without one
    bound: str  # "memory" or "compute"
    watts: float | None
    power_kind: str | None

    @property
    def joules_per_input(self) -> float | None:
        return None if not self.per_joule else 1.0 / self.per_joule


def predict(dev: Device, work: Workload) -> Prediction | None:
    """The roofline's best case for ``work`` on ``dev``; None when the device has no peak for its precision."""
    peak = dev.peak_gflops(work.precision)
    if peak is None:
        return None
    compute_s = work.flops / (peak * 1e9)
    memory_s = work.bytes / (dev.bandwidth_gbs * 1e9)
    seconds = max(compute_s, memory_s)
    per_s = work.batch / seconds
    watts = dev.watts
    return Prediction(dev.name, work.name, seconds, per_s, per_s / watts if watts else None,
                      "compute" if compute_s >= memory_s else "memory", watts,
                      dev.power.kind if dev.power else None)


def compute_bound_batch(peak_gflops: float, bandwidth_gbs: float, bytes_per_param: float) -> int:
    """Smallest batch whose weight intensity 2 * batch / bytes_per_param reaches the ridge (weights only)."""
    ridge = peak_gflops / bandwidth_gbs
    return max(1, math.ceil(ridge * bytes_per_param / 2 - 1e-9))


# The model in plain numbers: lab 05's stand-ins (sweatlab.labs.lab05_perf_per_watt.standins) while the
# learner's own versions are unwritten.

def bytes_per_token(n_params: float, bits: float) -> float:
    """Bytes of weights one batch-1 decode step reads: every weight once, ``bits`` bits each."""
    return n_params * bits / 8


def tokens_per_joule(n_params: float, bits: float, bandwidth_gbs: float, watts: float) -> float:
    """Batch-1 decode tokens per joule on the memory roof: (bandwidth / bytes per token) / watts."""
    return bandwidth_gbs * 1e9 / bytes_per_token(n_params, bits) / watts


def step_model(n_params: float, batch: int, bytes_per_param: float, peak_gflops: float, bandwidth_gbs: float,
               watts: float) -> dict[str, Any]:
    """The roofline of one step of ``batch`` inputs through ``n_params`` weights (weights only as traffic):
    {"seconds", "per_second", "per_joule", "bound"}; a tie counts as compute-bound."""
    compute_s = 2 * n_params * batch / (peak_gflops * 1e9)
    memory_s = n_params * bytes_per_param / (bandwidth_gbs * 1e9)
    seconds = max(compute_s, memory_s)
    per_second = batch / seconds
    return {"seconds": seconds, "per_second": per_second, "per_joule": per_second / watts,
            "bound": "compute" if compute_s >= memory_s else "memory"}


def choose_device(options: Iterable[Mapping[str, Any]], latency_budget_s: float,
                  energy_budget_j: float) -> str | None:
    """The name of the option within both budgets ("seconds" and "joules" per request) with the fewest
    joules; None when none meets both."""
    ok = [o for o in options if o["seconds"] <= latency_budget_s and o["joules"] <= energy_budget_j]
    return min(ok, key=lambda o: o["joules"])["name"] if ok else None


# ---------------------------------------------------------------------------------------------
# Jouppi et al. 2017 rebuilt
# ---------------------------------------------------------------------------------------------

TPU_PAPER: dict[str, Any] = {
    "source": JOUPPI,
    "stated": {"speed vs GPU or CPU": (15, 30), "TOPS/W vs GPU or CPU": (30, 80)},  # abstract [primary]
    # Table 6 (per die, relative to the CPU), weighted mean over the six applications [secondary]
    "relative_performance_weighted": {"CPU": 1.0, "GPU": 1.9, "TPU": 29.2},
    "relative_performance_geomean": {"CPU": 1.0, "GPU": 1.1, "TPU": 14.5},
    # Figure 9 (performance/Watt relative to the CPU, weighted mean), incremental = host excluded [secondary]
    "perf_per_watt_incremental_weighted": {"GPU": 2.9, "TPU": 83.0},
    "perf_per_watt_total_weighted": {"GPU": 2.1, "TPU": 34.0},
    "inputs_primary": False,
}


def tpu_ratios(paper: Mapping[str, Any] = TPU_PAPER) -> list[dict[str, Any]]:
    """The paper's comparisons rebuilt from its table inputs: peak, peak/TDP, measured speed, speed/TDP."""
    cpu, gpu, tpu = (device(n) for n in ("Intel Haswell", "NVIDIA K80", "Google TPU v1"))
    peak = {"CPU": cpu.peak_gflops("int8"), "GPU": gpu.peak_gflops("fp32"), "TPU": tpu.peak_gflops("int8")}
    tdp = {"CPU": cpu.watts, "GPU": gpu.watts, "TPU": tpu.watts}
    rel = paper["relative_performance_weighted"]
    rows = []
    for base in ("CPU", "GPU"):
        rows.append({"ratio": f"peak ops/s, TPU vs {base}", "paper": "15-30x (measured, not peak)",
                     "rebuilt": peak["TPU"] / peak[base]})
        rows.append({"ratio": f"peak ops/s per TDP watt, TPU vs {base}", "paper": "30-80x (measured TOPS/W)",
                     "rebuilt": (peak["TPU"] / tdp["TPU"]) / (peak[base] / tdp[base])})
        rows.append({"ratio": f"measured speed (Table 6, weighted), TPU vs {base}", "paper": "15-30x",
                     "rebuilt": rel["TPU"] / rel[base]})
        rows.append({"ratio": f"measured speed per TDP watt, TPU vs {base}", "paper": "30-80x",
                     "rebuilt": (rel["TPU"] / tdp["TPU"]) / (rel[base] / tdp[base])})
    inc = paper["perf_per_watt_incremental_weighted"]
    rows.append({"ratio": "Fig. 9 incremental perf/W, TPU vs GPU (83 / 2.9)", "paper": "30-80x",
                 "rebuilt": inc["TPU"] / inc["GPU"]})
    rows.append({"ratio": "Fig. 9 incremental perf/W, TPU vs CPU", "paper": "30-80x", "rebuilt": inc["TPU"]})
    return rows


# ---------------------------------------------------------------------------------------------
# Algorithms against hardware
# ---------------------------------------------------------------------------------------------

HERNANDEZ_BROWN = {
    "source": ("D. Hernandez, T. B. Brown, \"Measuring the Algorithmic Efficiency of Neural Networks\", 2020, "
               "arXiv:2005.04305, abstract"),
    "compute_reduction": 44.0, "years": 7, "moores_law_over_same_period": 11.0,
}
CHINCHILLA = {
    "source": ("J. Hoffmann et al., \"Training Compute-Optimal Large Language Models\", 2022, arXiv:2203.15556 "
               "(Chinchilla: 70 B parameters on 1.4 T tokens, about 20 tokens per parameter)"),
    "tokens_per_param": 20.0, "flops_per_param_token": 6.0,
}


def chinchilla_optimal(compute_flops: float, tokens_per_param: float = 20.0) -> dict[str, float]:
    """Compute-optimal parameters N and tokens D for a training budget C = 6 N D with D = k N."""
    n = math.sqrt(compute_flops / (6.0 * tokens_per_param))
    return {"params": n, "tokens": tokens_per_param * n}


# ---------------------------------------------------------------------------------------------
# Measuring a workload's energy (CPU or GPU): one path for both, testable with a fake NVML
# ---------------------------------------------------------------------------------------------

def measure_energy(step: Any, inputs_per_call: int, seconds: float, *, meter: Any, sync: Any = None,
                   warmup: int = 1) -> dict[str, Any]:
    """Call ``step()`` for about ``seconds`` inside ``meter`` (an unstarted EnergyMeter); plain data out.

    ``sync`` (e.g. torch.cuda.synchronize) runs after the warm-up and before the window closes, so
    that asynchronous GPU work is inside the window. Returns calls, seconds, inputs per second,
    joules (None when unknown), their kind and source, and inputs per joule.
    """
    import time

    for _ in range(warmup):
        step()
    if sync:
        sync()
    calls = 0
    meter.begin()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or calls == 0:
        step()
        calls += 1
    if sync:
        sync()
    r = meter.end()
    n = calls * inputs_per_call
    joules = r.joules if r.kind == "measured" else r.estimate_j
    kind = r.kind if r.kind == "measured" else ("estimated" if r.estimate_j is not None else "unavailable")
    return {"calls": calls, "seconds": r.duration_s, "per_second": n / r.duration_s, "joules": joules,
            "kind": kind, "source": r.source if r.kind == "measured" else (r.assumptions or r.reason or ""),
            "per_joule": n / joules if joules else None, "average_w": joules / r.duration_s if joules else None,
            "idle_w": sum(r.baseline_w.values()) if r.baseline_w else None}


# ---------------------------------------------------------------------------------------------
# Plot: every device's roofline, one panel per precision
# ---------------------------------------------------------------------------------------------

_STYLE = {"CPU": "-", "GPU": "--", "TPU": "-.", "laptop SoC": ":", "this machine": "-"}


def plot_rooflines(devices: Iterable[Device], precisions: Iterable[str] = PRECISIONS,
                   workloads: Iterable[Workload] = (), title: str | None = None) -> Any:
    """One log-log panel per precision: each device's roof min(peak, bandwidth x intensity), labelled at its
    right end; vertical lines at the workloads' intensities. Returns the Figure."""
    import matplotlib.pyplot as plt
    import numpy as np

    devices, precisions, workloads = list(devices), list(precisions), list(workloads)
    fig, axes = plt.subplots(1, len(precisions), figsize=(6.2 * len(precisions), 6.2), layout="constrained",
                             squeeze=False)
    x = np.logspace(-1, 4, 300)
    cmap = plt.get_cmap("tab20")
    colour = {d.name: ("black" if d.category == "this machine" else cmap((2 * i) % 20 + (2 * i) // 20))
              for i, d in enumerate(devices)}
    for ax, prec in zip(axes[0], precisions):
        shown = [d for d in devices if d.peak_gflops(prec)]
        for d in shown:
            peak, bw = d.peak_gflops(prec), d.bandwidth_gbs
            lw = 3 if d.category == "this machine" else 1.6
            ax.plot(x, np.minimum(peak, bw * x), _STYLE.get(d.category, "-"), color=colour[d.name], lw=lw,
                    label=f"{d.name}: {peak / 1e3:,.3g} T, {bw:,.0f} GB/s")
            ax.plot([peak / bw], [peak], "D", color=colour[d.name], ms=5)
        at: dict[float, list[str]] = {}
        for w in workloads:  # one line per distinct intensity, its workloads named together
            at.setdefault(round(w.intensity, 1), []).append(w.name)
        for xi, labels in at.items():
            ax.axvline(xi, color="grey", lw=0.8, ls=":")
            ax.annotate(" / ".join(labels), (xi, 2.0), xytext=(2, 0), textcoords="offset points", rotation=90,
                        fontsize=7, color="dimgrey", va="bottom")
        unit = "GOP/s" if prec == "int8" else "GFLOP/s"
        ax.set(xscale="log", yscale="log", xlabel=f"arithmetic intensity [{'op' if prec == 'int8' else 'FLOP'}/byte]",
               ylabel=f"attainable {unit}", title=f"{prec}: {len(shown)} devices with a published {prec} peak")
        ax.set_ylim(1.0, 5e6)
        ax.set_xlim(0.1, 1e4)
        ax.grid(True, which="major", alpha=0.4)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=1, fontsize=7.5, frameon=False)
    fig.suptitle(title or "Rooflines per precision (dense peaks; diamonds: ridge points; solid: CPU, dashed: GPU, "
                 "dash-dot: TPU, thick: this machine)", fontsize=10)
    return fig
