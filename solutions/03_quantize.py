# %% [markdown] sweat={"id": "intro"}
# # Lab 03 · Quantization: how few bits does intelligence need?
#
# A trained network is a few million numbers. Stored as fp32 they take 4 bytes each; stored as int8, 1;
# as int4, half a byte. Fewer bytes mean less memory traffic and, on a CPU with the right instructions,
# more arithmetic per cycle. The price is error. This lab measures both sides on **your** machine: you
# write the quantizers by hand in numpy, check one against torch bit for bit, then serve one trained
# model eleven ways (torch, numpy by hand, ONNX Runtime; fp32, bf16, int8, int4) and put accuracy,
# latency, bytes and joules in one table.
#
# **You will be able to**
# - say what fp32, bf16, fp16, int8 and int4 can represent (range, step, bytes), and what this CPU computes
#   natively (VNNI, AMX-INT8, or neither);
# - explain why a batch-1 language-model decode runs at a speed set by bytes per weight, and predict it from
#   this machine's memory bandwidth;
# - write affine and symmetric quantization with per-tensor, per-channel and group-wise scales, and measure
#   their error as SQNR in dB against the number of bits;
# - choose a calibration range (min/max or a percentile) and show what one outlier does to each;
# - pack int4 codes two per byte, and multiply int8 matrices exactly with int32 accumulators (and say when
#   those would overflow);
# - read a latency table and say where int8 pays and where it does not (the batch size, signed or unsigned
#   activations, no VNNI, the wrong kernel).
#
# **Prerequisites**: numpy (dtypes, broadcasting, `reshape`), a little torch (`nn.Linear`). Lab 00 (timing,
# roofline, energy kinds) helps; this lab repeats what it needs.
#
# **Time.** Compute, *measured* by running the solution top to bottom: 94 s in full mode (the default when
# you run it; one run, `sweatlab execute 03 --full`) on a 2-core Intel Xeon virtual machine with AMX, the
# machine of the course's shipped run; 41-43 s in quick mode (`SWEAT_QUICK=1`, used by the tests; five
# runs, `sweatlab execute 03`), measured earlier on a 2-vCPU AMD EPYC virtual machine shared with other jobs
# (Zen 4, *inferred*: the VM reports only "AMD EPYC"; AVX-512 with VNNI and bf16, no AMX). The solution's
# outputs and the figures quoted in this lab come from the course's shipped run ({{run_machine}},
# {{run_mode}} mode); your run prints your own. Reading and the eight exercises: about 100 minutes,
# *estimated* from the lab's size (not a timed class): about 35 minutes of reading and plots, 5-10 minutes
# for each of the eight exercises, a little more for `quantize` (the rounding rules) and `quantize_blocks`
# (the reshape). Plan a 90-120 minute slot, or set the int4 and overflow exercises as homework.
#
# Eight exercises, each a function followed by a `check(...)` cell: `affine_params`, `quantize` (with
# `dequantize`), `quantize_blocks`, `sqnr_db`, `calibration_range`, `pack_int4` (with `unpack_int4`),
# `int8_matmul`, `max_safe_k`. Until you write one, the cells that use it run the lab's stand-in (the course
# library's version, `sweatlab.topics.quant`), say so once, and mark its numbers " (stand-in)" in text and
# plots, so the notebook always runs top to bottom.

# %% sweat={"id": "setup", "role": "setup"}
import copy
import io
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from sweatlab.measure import config, records, roofline
from sweatlab.topics import quant, serve
from sweatlab.kit import open_lab
from sweatlab.measure.hardware import describe
from sweatlab.measure.timing import bench, compare, format_seconds

lab = open_lab("03_quantize")  # checks, stand-ins (labelled), the energy meter, quoted figures, the record
QUICK = config.quick()  # SWEAT_QUICK=1 shrinks the budgets (tests and CI); the lab is written for full mode
THREADS = 1  # every engine runs on one thread: steadier comparisons on a shared machine, and what the grader gives
BIG = 256  # the large batch of the latency table
torch.set_num_threads(THREADS)
machine = describe(import_torch=True)
INT8 = quant.int8_support(machine)
VNNI = INT8.vnni
plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3})

# Energy: measured where this machine has a CPU energy sensor (RAPL), else a labelled *estimate* from stated
# inputs (lab 00, section 8): your CPU's TDP and core count when you have set them (SWEAT_TDP_W and
# SWEAT_CHIP_CORES before starting JupyterLab, or sweatlab.ini; `sweatlab doctor` shows which are in use),
# else a hypothetical AMD EPYC 7763 (280 W, 64 cores), with this process on THREADS of its cores.
KIND = {"measured": "measured", "estimated": "est.", "unavailable": "n/a"}


class Timed:
    """A bench result with the energy of its window: joules per call = average power x median time."""

    def __init__(self, bench_result, reading):
        self.bench, self.reading = bench_result, reading

    @property
    def seconds(self):
        return self.bench.median_s

    @property
    def joules(self):
        watts = self.reading.average_w
        return None if watts is None else watts * self.bench.median_s

    @property
    def kind(self):
        return self.reading.kind


def energy_text(joules, kind):
    """Joules with their kind, in a readable unit ('n/a' when this machine can say nothing)."""
    if joules is None:
        return "n/a"
    value, unit = next(((joules / scale, unit) for scale, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "uJ"))
                        if joules >= scale), (joules * 1e9, "nJ"))
    return f"{value:.3g} {unit} {KIND[kind]}"


def plain_log(axis, formatter=None, subs=(1.0, 2.0, 5.0)):
    """Ticks of a log axis at 1, 2, 5 x 10^k, labelled as plain numbers (or by `formatter`), never as powers."""
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(formatter or (lambda v, _: f"{v:g}")))
    axis.set_minor_formatter(NullFormatter())


def timed(fn, *args, budget_s=0.3, min_runs=5):
    """bench(fn, *args) inside the lab's energy meter (a sensor where there is one, else the labelled estimate)."""
    with lab.meter(THREADS) as meter:
        result = bench(fn, *args, budget_s=budget_s, min_runs=min_runs)
    return Timed(result, meter.reading)


def labelled(text, *names):
    """`text`, marked " (stand-in)" when any of the functions `names` last ran as the lab's stand-in."""
    used = [name for name in names if lab.stood_in(name)]
    return lab.label(used[0], text) if used else text


INT8_SHORT = INT8.kernel.split(" (")[0]  # "VNNI", "AVX2 only", "Arm dot product", ...
cores = machine.usable_cores or os.cpu_count() or 1
run_machine = lab.quote("run_machine", f"{machine.cpu_model or machine.arch}, {cores} core{'s' * (cores != 1)}, "
                        f"int8: {INT8_SHORT}", "{}")
run_mode = lab.quote("run_mode", "quick" if QUICK else "full", "{}")
print(f"quick mode: {QUICK}; threads per engine: {THREADS}; large batch: {BIG}")
print(machine)
print(f"int8 on this CPU: {INT8.kernel}")

# %% [markdown] sweat={"id": "sec-formats"}
# ## 1. Number formats: range, step, bytes
#
# A **float** spends its bits on an exponent (the range) and a fraction (the relative step between
# neighbouring numbers). fp32 has 8 exponent bits and 23 fraction bits; **bf16** keeps fp32's 8 exponent
# bits and only 7 fraction bits, so it covers the same range with a coarse step; **fp16** has 5 exponent
# bits and 10 fraction bits: a finer step, a much smaller range. An **integer** code (int8, int4) has no
# exponent at all: it is a whole number times a scale that is stored elsewhere, so its step is the same
# everywhere in the range, and choosing that scale is the whole art of quantization.
#
# The table is computed from `torch.finfo` and the integer ranges; the last column comes from this
# CPU's instruction-set flags (`sweatlab.measure.hardware.describe`).

# %% sweat={"id": "formats", "role": "demo"}
native = {"fp32": "yes (FMA)", "bf16": "yes" if INT8.bf16 else "no: converted to fp32",
          "fp16": "yes" if INT8.fp16 else "no: converted to fp32 (F16C)" if INT8.x86 else "no",
          "int8": INT8.kernel, "int4": "no CPU: unpacked to int8 or float first"}
print(f"{'format':7}{'bits':>5}{'bytes':>6}{'largest':>12}{'smallest normal':>17}{'step after 1.0':>16}"
      f"{'digits':>8}   native arithmetic here")
for f in quant.number_formats():
    if f.kind == "float":
        print(f"{f.name:7}{f.bits:>5}{f.bytes:>6g}{f.largest:>12.3g}{f.smallest_normal:>17.3g}{f.step_at_one:>16.3g}"
              f"{f.decimal_digits:>8.1f}   {native[f.name]}")
    else:
        print(f"{f.name:7}{f.bits:>5}{f.bytes:>6g}{f.largest:>12.0f}{'-':>17}{'1 code':>16}{'-':>8}   "
              f"{native[f.name]}  ({f.levels} codes)")
print("\nthe same numbers stored in three float formats:")
print(f"{'value':>12}{'fp32':>16}{'bf16':>16}{'fp16':>16}")
stored = {}
for v in (0.1, 3.14159265, 1000.3, 70000.0, 1e-6):
    t = torch.tensor(v, dtype=torch.float64)
    stored[v] = {name: t.to(d).item() for name, d in (("fp32", torch.float32), ("bf16", torch.bfloat16),
                                                      ("fp16", torch.float16))}
    print(f"{v:>12g}" + "".join(f"{x:>16.8g}" for x in stored[v].values()))
print("\nthis CPU:")
for line in INT8.lines:
    print(" -", line)
FORMATS = {f.name: f for f in quant.number_formats()}
lab.quote("bf16_1000", stored[1000.3]["bf16"], "{:g}")
lab.quote("bf16_70000", stored[70000.0]["bf16"], "{:g}")
lab.quote("fp16_70000", stored[70000.0]["fp16"], "{:g}")
lab.quote("bf16_step_1000", FORMATS["bf16"].step_at(1000.3), "{:g}")
lab.quote("bf16_step_70000", FORMATS["bf16"].step_at(70000.0), "{:g}")
lab.quote("fp16_step_1000", FORMATS["fp16"].step_at(1000.3), "{:g}")
lab.quote("native_bf16", "yes" if INT8.bf16 else "no: converted to fp32", "{}")
lab.quote("native_fp16", "yes" if INT8.fp16 else "no: converted to fp32", "{}")
lab.quote("native_int8", INT8_SHORT, "{}");

# %% [markdown] sweat={"id": "sec-formats-read"}
# **Read the table.** bf16 stores 1000.3 as {{bf16_1000}} and 70000 as {{bf16_70000}} (a step of
# {{bf16_step_1000}} at 1000, {{bf16_step_70000}} at 70000) but never overflows where fp32 would not; fp16
# keeps 1000.3 to a step of {{fp16_step_1000}} but turns 70000 into `{{fp16_70000}}` and 1e-6 into a
# subnormal with few digits left. An int8 code holds 256 values, int4 16: with a scale
# chosen for the data they can be surprisingly accurate (section 5), and with a bad scale useless
# (section 6).
#
# **Native** means the CPU has an instruction that does the arithmetic in that format. Without one, a
# library converts to fp32, computes, and converts back: the bytes shrink, the arithmetic does not speed
# up. The list under the table names the int8 instruction this CPU has (if any); section 9 measures what
# it is worth.

# %% [markdown] sweat={"id": "sec-bits"}
# ## 2. Why bits matter for speed: decoding is a matrix-vector product
#
# A language model generating text at batch 1 runs every weight matrix once per token, each on one
# vector: a **matrix-vector product**. Each weight is read once and used in one multiply-add (2 FLOPs),
# so in fp32 that is 2 FLOPs per 4 bytes, **0.5 FLOP/byte**: far left of any CPU's ridge point (lab 00).
# The time per token is then the bytes of the weights divided by the memory bandwidth, and the bytes per
# weight set the tokens per second: fp32 4, bf16 2, int8 1, int4 about 0.5 plus its scales.
#
# The cell below tests that on this machine: one matrix-vector product with the same weights stored in
# each format, through ONNX Runtime (fp32, int8 and int4 kernels) and torch (bf16), one thread. Beside
# each it prints the time the roofline predicts, bytes / bandwidth, with the bandwidth measured by a
# STREAM-style triad on one core (`sweatlab.measure.roofline.stream_triad`).

# %% sweat={"id": "matvec", "role": "demo"}
WORK = Path(tempfile.mkdtemp(prefix="lab03-"))  # ONNX files of this session (a temporary folder)
K_MV, N_MV = config.pick((4096, 4096), (8192, 4096))
g = np.random.default_rng(1)
w_mv = (g.standard_normal((K_MV, N_MV), dtype=np.float32) * 0.02)
serve.matmul_model(w_mv, WORK / "mv_fp32.onnx")
mv = {"fp32": serve.OrtModel(WORK / "mv_fp32.onnx", THREADS)}
mv["int8"] = serve.OrtModel(serve.ort_quantize_dynamic(WORK / "mv_fp32.onnx", WORK / "mv_int8.onnx"), THREADS)
mv["int4"] = serve.OrtModel(serve.ort_quantize_int4(WORK / "mv_fp32.onnx", WORK / "mv_int4.onnx"), THREADS)
w_bf16 = torch.from_numpy(w_mv).to(torch.bfloat16)
x_mv = g.standard_normal((1, K_MV), dtype=np.float32)
x_bf16 = torch.from_numpy(x_mv).to(torch.bfloat16)


def bf16_matvec():
    with torch.inference_mode():
        return x_bf16 @ w_bf16


runs_mv = {  # format -> (how, bits per weight, bytes of weights, function)
    "fp32": ("ONNX Runtime MatMul", 32, w_mv.nbytes, lambda: mv["fp32"].run(x_mv)),
    "bf16": ("torch matmul", 16, w_bf16.numel() * 2, bf16_matvec),
    "int8": ("ONNX Runtime MatMulInteger", 8, mv["int8"].bytes, lambda: mv["int8"].run(x_mv)),
    "int4": ("ONNX Runtime MatMulNBits", 4, mv["int4"].bytes, lambda: mv["int4"].run(x_mv)),
}
triad = roofline.stream_triad(quick=True, threads=1)
L3 = machine.cache_bytes.get("L3")
print(f"weights {K_MV} x {N_MV}; one-core memory bandwidth (triad) {triad.gbs:.1f} GB/s; "
      f"L3 {L3 // 2**20 if L3 else '?'} MiB")
matvec = {}
print(f"\n{'format':7}{'kernel':29}{'weights':>10}{'time':>10}{'IQR':>10}{'GB/s':>7}{'predicted':>11}"
      f"{'x predicted':>12}{'energy':>15}  weights from")
with threadpool_limits(THREADS):
    for fmt, (how, bits, nbytes, fn) in runs_mv.items():
        m = timed(fn, budget_s=config.pick(0.3, 1.0))
        matvec[fmt] = (bits, nbytes, m)
        gbs = nbytes / m.seconds / 1e9
        predicted = nbytes / (triad.gbs * 1e9)
        where = "L3 (they fit)" if L3 and nbytes <= L3 else "memory"
        print(f"{fmt:7}{how:29}{nbytes / 2**20:>6.1f} MiB{format_seconds(m.seconds):>10}"
              f"{format_seconds(m.bench.iqr_s):>10}{gbs:>7.1f}{format_seconds(predicted):>11}"
              f"{m.seconds / predicted:>11.2f}x{energy_text(m.joules, m.kind):>15}  {where}")
if not INT8.bf16:
    print("\nbf16: this CPU has no native bf16, so torch converts to fp32 and back: the bytes shrink, the work grows")
PARAMS_LM = 124e6  # a GPT-2-small-sized model: 124 M weights, all read once per generated token
print(f"\nprediction for a {PARAMS_LM / 1e6:.0f} M-weight model at batch 1 (weights larger than most CPUs' caches): "
      "each format at its measured rate, capped at the memory roof")
for fmt, (bits, nbytes, m) in matvec.items():
    per_weight = nbytes / (K_MV * N_MV)
    kernel_gbs = nbytes / m.seconds / 1e9
    gbs = min(kernel_gbs, triad.gbs)
    why = "as measured" if kernel_gbs < triad.gbs else "the memory roof: measured faster, from the cache"
    tokens = lab.quote(f"tokens_{fmt}", gbs * 1e9 / (PARAMS_LM * per_weight), "{:,.0f}")
    print(f"  {fmt}: {per_weight:.3g} bytes per weight at {gbs:.1f} GB/s ({why}) -> about {tokens} tokens/s")
lab.quote("triad_gbs", triad.gbs, "{:.1f} GB/s")
for fmt, (bits, nbytes, m) in matvec.items():
    lab.quote(f"mv_time_{fmt}", format_seconds(m.seconds), "{}")
    lab.quote(f"mv_gbs_{fmt}", nbytes / m.seconds / 1e9, "{:.3g} GB/s")
bf16_vs_fp32 = matvec["bf16"][2].seconds / matvec["fp32"][2].seconds
lab.quote("mv_bf16_verdict", f"{bf16_vs_fp32:.1f}x slower than fp32: the kernel, not the memory, set its speed"
          if bf16_vs_fp32 > 1 else
          f"{1 / bf16_vs_fp32:.1f}x faster than fp32: half the bytes paid", "{}")

# %% sweat={"id": "matvec-plot", "role": "demo"}
fig_matvec, ax = plt.subplots(figsize=(8.5, 4.8), layout="constrained")
per_weight = {f: matvec[f][1] / (K_MV * N_MV) for f in matvec}
xs = sorted(per_weight.values())
ax.plot(xs, [x * K_MV * N_MV / (triad.gbs * 1e9) * 1e3 for x in xs], "k--", lw=1.2,
        label=f"roofline: bytes / {triad.gbs:.1f} GB/s (one-core triad)")
for fmt, (bits, nbytes, m) in matvec.items():
    x, y = per_weight[fmt], m.seconds * 1e3
    q1, q3 = np.percentile(m.bench.samples_s, [25, 75]) * 1e3
    in_l3 = bool(L3 and nbytes <= L3)
    ax.errorbar([x], [y], yerr=[[y - q1], [q3 - y]], fmt="o", ms=9, capsize=4, color="tab:blue",
                mfc="white" if in_l3 else "tab:blue", mew=2)
    left = fmt != "int8"  # int4 and int8 sit close together: their labels go to opposite sides
    ax.annotate(f"{fmt}, {runs_mv[fmt][0]}\n{format_seconds(m.seconds)}, {nbytes / m.seconds / 1e9:.0f} GB/s",
                (x, y), textcoords="offset points", xytext=(-12 if left else 12, 0), ha="right" if left else "left",
                va="center", fontsize=9)
ax.plot([], [], "o", color="tab:blue", ms=8, label="measured, weights from memory (bars: IQR)")
ax.plot([], [], "o", color="tab:blue", mfc="white", mew=2, ms=8,
        label=f"measured, weights fit in L3 ({L3 // 2**20 if L3 else '?'} MiB)")
ax.set(xscale="log", yscale="log", xlabel="bytes per weight (scales included)", ylabel="time per product [ms]",
       title=f"One {K_MV} x {N_MV} matrix-vector product (a token through one layer), one thread")
ax.set_xticks([0.5, 1, 2, 4], ["0.5", "1", "2", "4"])
ax.xaxis.set_minor_formatter(NullFormatter())
ax.set_xlim(0.17, 7)
times = [t * 1e3 for _, _, m in matvec.values() for t in np.percentile(m.bench.samples_s, [25, 75])]
times.append(xs[0] * K_MV * N_MV / (triad.gbs * 1e9) * 1e3)
ax.set_ylim(min(times) / 1.6, max(times) * 1.6)
plain_log(ax.yaxis)
ax.legend(fontsize=9, loc="upper left");

# %% [markdown] sweat={"id": "sec-bits-read"}
# **Read the plot and the table.** A point on the dashed line runs at this core's memory bandwidth: its time
# is set by its bytes, and the column "x predicted" is 1. A filled point's weights are larger than the
# last-level cache, so it can only approach the line from above (a matrix-vector product only reads; the
# triad also writes, so the two bandwidths differ a little). A hollow point's weights fit in the
# last-level cache, which serves them faster than memory: it may sit *below* the line, and on a larger
# model it would not. A point far above the line is held back by its kernel, not by memory: converting or
# unpacking the weights costs more than the bytes it saves. torch's bf16 product is the case to watch: it
# moves half of fp32's bytes, so only its kernel can make it slower. On a CPU without native bf16 that
# kernel converts every weight to fp32 first; on a CPU with native bf16 (AVX512-BF16, AMX) the kernel torch
# picks for a matrix-vector product may still use those instructions less well than ONNX Runtime's fp32
# kernel uses FMA. On the GPU server's host CPU it was slower than fp32. In the course's shipped run (native bf16
# there: {{native_bf16}}) it ran {{mv_bf16_verdict}}.
#
# So bytes per weight set the speed of a token only where the kernel keeps up with memory; the printed
# tokens/s are this machine's answer for a 124 M-weight model (the shipped run: {{tokens_fp32}} in fp32,
# {{tokens_int8}} in int8, {{tokens_int4}} in int4). A GPU server measured for this course shows the same
# law at a larger scale (shipped measurements, provenance below): its matrix-vector products ran at full
# board power while the arithmetic units mostly waited for memory, and halving the bytes (bf16) raised the
# work per joule.

# %% sweat={"id": "gpu-shipped", "role": "demo"}
print(f"shipped measurement: {quant.GPU_PROVENANCE}")
for f in quant.GPU_SHIPPED:
    print(f"  {f.work:78s} {f.rate:>9,.4g} {f.unit:9s} at {f.watts:3.0f} W = {f.per_joule:8.3g} {f.unit.split('/')[0]} "
          f"per joule ({f.note})")
gemv32, gemv16 = quant.GPU_SHIPPED[2], quant.GPU_SHIPPED[3]
print(f"\nbf16 instead of fp32 weights on that GPU: {gemv16.rate / gemv32.rate:.2f}x the matrix-vector rate, "
      f"{gemv16.per_joule / gemv32.per_joule:.2f}x the work per joule")

# %% [markdown] sweat={"id": "sec-model"}
# ## 3. A model to quantize
#
# A multilayer perceptron (64 → 1024 → 1024 → 10, about 1.1 M weights, 4.5 MB in fp32) trained on
# scikit-learn's bundled digits (1,797 8x8 images; nothing is downloaded): 1,400 images for training and
# 397 for testing, seeds fixed. It is small enough to train in seconds and large enough that one batch
# of 256 takes milliseconds, so its latency can be measured.

# %% sweat={"id": "train", "role": "demo"}
from sklearn.datasets import load_digits

digits = load_digits()
X_all = (digits.data / 16.0).astype(np.float32)  # pixels 0..16 -> 0..1
y_all = digits.target
order = np.random.default_rng(0).permutation(len(X_all))
X_train, y_train = X_all[order[:1400]], y_all[order[:1400]]
X_test, y_test = X_all[order[1400:]], y_all[order[1400:]]

torch.manual_seed(0)
HIDDEN = 1024
model = torch.nn.Sequential(torch.nn.Linear(64, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, HIDDEN),
                            torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 10))
optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
xt, yt = torch.from_numpy(X_train), torch.from_numpy(y_train)
t0 = time.perf_counter()
for epoch in range(8):
    perm = torch.randperm(len(xt), generator=torch.Generator().manual_seed(epoch))
    for i in range(0, len(xt), 128):
        batch = perm[i:i + 128]
        loss = torch.nn.functional.cross_entropy(model(xt[batch]), yt[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
model.eval()
train_s = time.perf_counter() - t0
LAYERS = [(layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy())
          for layer in model if isinstance(layer, torch.nn.Linear)]


def accuracy(predict):
    """Share of the 397 test images whose largest output is the right digit."""
    return float((np.asarray(predict(X_test)).argmax(axis=1) == y_test).mean())


def torch_predict(m, dtype=torch.float32):
    def predict(x):
        with torch.inference_mode():
            return m(torch.from_numpy(np.asarray(x, dtype=np.float32)).to(dtype)).float().numpy()
    return predict


ACC_FP32 = accuracy(torch_predict(model))
print(f"[timing] trained in {train_s:.1f} s")
print(f"weights: {sum(w.size for w, _ in LAYERS):,} in {len(LAYERS)} layers; test accuracy (fp32): {100 * ACC_FP32:.2f}%")

# %% [markdown] sweat={"id": "sec-affine"}
# ## 4. Affine quantization: a scale and a zero point
#
# Map a range of real numbers [lo, hi] onto the integer codes [qmin, qmax] of b bits (0..255 for unsigned
# 8-bit, -128..127 for signed):
#
# $$q = \mathrm{clip}\big(\mathrm{round}(x / s) + z,\ q_{min},\ q_{max}\big), \qquad \hat x = (q - z)\, s$$
#
# with the **scale** s = (hi - lo) / (qmax - qmin), the real value of one code step, and the **zero point**
# z, the code that stands for 0.0. The range is first widened to include 0, and z is rounded to a whole
# code, so that **0.0 is represented exactly**: zero padding and the zeros a ReLU produces then cost no
# error. This is *affine* (or asymmetric) quantization, the scheme of Jacob et al. (2018), of torch's
# `quantize_per_tensor` and of ONNX's `QuantizeLinear`.

# %% [markdown] sweat={"id": "ex-affine-task"}
# ### Exercise 1: scale and zero point
# Write `affine_params(lo, hi, bits=8, signed=False)` returning `(scale, zero_point)`:
# - the codes are 0 .. 2^b - 1 when unsigned and -2^(b-1) .. 2^(b-1) - 1 when signed;
# - widen [lo, hi] to include 0 first; if it is then empty (lo = hi = 0), return scale 1.0 and zero point qmin;
# - the zero point is the code that 0.0 maps to: a whole number (a Python `int`) inside the code range.
#
# Which code should `lo` map to? Write that down first, then solve for the zero point.

# %% sweat={"id": "ex-affine", "role": "answer", "exercise": "affine_params"}
def affine_params(lo, hi, bits=8, signed=False):
    """(scale, zero_point) mapping [lo, hi] (widened to include 0) onto the b-bit codes."""
    ### BEGIN SOLUTION
    qmin, qmax = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi == lo:
        return 1.0, qmin
    scale = (hi - lo) / (qmax - qmin)
    zero_point = int(min(max(qmin - round(lo / scale), qmin), qmax))
    return scale, zero_point
    ### END SOLUTION


# %% sweat={"id": "check-affine", "role": "check", "exercise": "affine_params", "title": "Exercise 1: scale and zero point"}
from sweatlab.kit import check
check("affine_params")

# %% [markdown] sweat={"id": "ex-quantize-task"}
# ### Exercise 2: quantize and dequantize, bit for bit with torch
# Write `quantize(x, scale, zero_point, bits=8, signed=False)` and `dequantize(q, scale, zero_point)`.
# - `quantize` returns the codes as `np.int8` when `signed`, else `np.uint8` (also for bits < 8);
#   values outside the range saturate at qmin and qmax.
# - Round **to nearest, ties to even**, as torch and ONNX do. Do the arithmetic in float32, multiplying by
#   the float32 reciprocal of the scale: `x * np.float32(1 / np.float32(scale))` is what torch computes.
#   Does the zero point go in before or after the rounding in the formula above?
# - `dequantize` returns float32 values (q - z) s. Mind the dtype of `q - zero_point` when q is `uint8`.
#
# The check compares your codes with `torch.quantize_per_tensor` on the same inputs, scale and zero point,
# bit for bit.

# %% sweat={"id": "ex-quantize", "role": "answer", "exercise": "quantize"}
def quantize(x, scale, zero_point, bits=8, signed=False):
    """Integer codes of x (int8 if signed, else uint8): round(x / scale) + zero_point, saturated to the b-bit range."""
    ### BEGIN SOLUTION
    qmin, qmax = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    inv = np.float32(1.0) / np.float32(scale)
    q = np.rint(np.asarray(x, dtype=np.float32) * inv).astype(np.int64) + int(zero_point)
    return np.clip(q, qmin, qmax).astype(np.int8 if signed else np.uint8)
    ### END SOLUTION


def dequantize(q, scale, zero_point):
    """float32 values (q - zero_point) * scale."""
    ### BEGIN SOLUTION
    return ((np.asarray(q).astype(np.int32) - int(zero_point)) * np.float32(scale)).astype(np.float32)
    ### END SOLUTION


# %% sweat={"id": "check-quantize", "role": "check", "exercise": "quantize", "title": "Exercise 2: quantize and dequantize, bit for bit with torch"}
from sweatlab.kit import check
check("quantize")

# %% [markdown] sweat={"id": "torch-agree-md"}
# The check compared a few hundred values. Below, many more: random activations quantized by your
# `quantize` and by `torch.quantize_per_tensor` with the same scale and an odd zero point. Any code that
# differs is printed with what torch did there. (torch's quantized tensors are deprecated in the pinned
# torch; the warning it gives is printed too.)

# %% sweat={"id": "torch-agree", "role": "demo"}
n_agree = config.pick(200_000, 2_000_000)
x_agree = np.random.default_rng(2).standard_normal(n_agree).astype(np.float32) * 3
s_agree, z_agree = quant.affine_params(float(x_agree.min()), float(x_agree.max()), 8)  # inputs of the test
z_agree |= 1  # an odd zero point: the case where the order of rounding and adding shows
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    codes_torch = torch.quantize_per_tensor(torch.from_numpy(x_agree), s_agree, z_agree, torch.quint8).int_repr().numpy()
codes_mine = lab.mine("quantize")(x_agree, s_agree, z_agree, 8, signed=False)
yours = lab.label("quantize", "your quantize")
differ = np.flatnonzero(codes_mine.astype(np.int32) != codes_torch.astype(np.int32))
print(f"{lab.quote('agree_n', n_agree, '{:,}')} values, scale {s_agree:.6g}, zero point {z_agree}: {yours} and "
      f"torch differ on {lab.quote('agree_differ', f'{len(differ):,} code' + 's' * (len(differ) != 1), '{}')}")
inv = np.float32(1) / np.float32(s_agree)
fused_codes = np.clip(np.rint((x_agree.astype(np.float64) * np.float64(inv) + z_agree).astype(np.float32)), 0, 255)
for i in differ[:4]:
    print(f"  x = {float(x_agree[i])!r}: x * (1/scale) = {float(x_agree[i] * inv)!r} in float32; {yours} {codes_mine[i]}, "
          f"torch {codes_torch[i]}; rounding x * (1/scale) + zero point in one step gives {fused_codes[i]:.0f}")
if len(differ) and np.array_equal(fused_codes[differ], codes_torch[differ]):
    why = ("each at (or within a rounding error of) a tie, k + 1/2, where torch's x86 code adds the zero point "
           "before rounding (one fused multiply-add), its documented formula after")
    print("each difference sits on (or within a rounding error of) a tie, k + 0.5: there torch's x86 code, which computes "
          "x * (1/scale) + zero point in one fused multiply-add and rounds once, lands on the neighbouring code; the formula "
          "torch documents (and ONNX's QuantizeLinear) rounds x * (1/scale) first, as you did")
elif not len(differ):
    why = "this torch build rounds exactly as the formula it documents"
    print("bit for bit on every value: this torch build rounds exactly as the formula it documents")
else:
    why = "not all explained by ties: compare your rounding with the formula above"
    print(f"some differences are not ties: check the rounding and the order of the zero point in {yours}")
lab.quote("agree_why", why, "{}")
print("\ntorch's deprecation status:", serve.torch_quantization_status())
for w in seen[:1]:
    print("warning seen:", str(w.message).split(". ")[0] + ".")

# %% [markdown] sweat={"id": "sec-blocks"}
# ## 5. Symmetric quantization, per tensor, per channel, per group
#
# Weights are centred on 0, so they are usually quantized **symmetrically**: zero point 0, codes in
# [-qmax, qmax] with qmax = 2^(b-1) - 1 (127 for int8, 7 for int4; the code -128 is left unused so that
# +a and -a stay opposites), and scale = max|w| / qmax. One scale can serve:
#
# - the whole tensor (**per tensor**): one outlier weight stretches the step for every weight;
# - each output row (**per channel**): a row of small weights gets a small step;
# - each group of g consecutive weights in a row (**group-wise**, g = 32 or 128 in int4 LLM formats): finer
#   still, at the price of one more stored scale per g weights.
#
# The error is measured as the **signal-to-quantization-noise ratio**,
# SQNR = 10 log10(Σ x² / Σ (x - x̂)²) in decibels: 10 dB more means a tenth of the noise power. For a
# uniform quantizer, each extra bit halves the step and adds about 6.02 dB (20 log10 2).

# %% [markdown] sweat={"id": "ex-blocks-task"}
# ### Exercise 3: one scale per block
# Write `quantize_blocks(w, bits, block)` for a 2-D float matrix `w` (rows x cols) and `block = (br, bc)`
# dividing its shape. Each br x bc block gets its own symmetric scale = max|w| over the block / qmax; return
# `(q, scales)`: the codes as `np.int8`, shape of `w`, in [-qmax, qmax], and the float32 scales, shape
# (rows / br, cols / bc). A block of zeros gets scale 1.0.
#
# `block=w.shape` is per tensor, `(1, cols)` per row, `(1, 32)` groups of 32. One `reshape` to 4-D turns
# the blocks into axes you can reduce over; which order of the four axes keeps each block together?

# %% sweat={"id": "ex-blocks", "role": "answer", "exercise": "quantize_blocks"}
def quantize_blocks(w, bits, block):
    """Symmetric int8 codes of w with one float32 scale per block; returns (codes, scales)."""
    ### BEGIN SOLUTION
    w = np.asarray(w, dtype=np.float32)
    rows, cols = w.shape
    br, bc = block
    qmax = 2 ** (bits - 1) - 1
    view = w.reshape(rows // br, br, cols // bc, bc)
    amax = np.abs(view).max(axis=(1, 3))
    scales = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
    q = np.clip(np.rint(view / scales[:, None, :, None]), -qmax, qmax).astype(np.int8)
    return q.reshape(rows, cols), scales
    ### END SOLUTION


# %% sweat={"id": "check-blocks", "role": "check", "exercise": "quantize_blocks", "title": "Exercise 3: one scale per block"}
from sweatlab.kit import check
check("quantize_blocks")

# %% [markdown] sweat={"id": "ex-sqnr-task"}
# ### Exercise 4: SQNR in decibels
# Write `sqnr_db(x, x_hat)`: 10 log10 of the signal power Σx² over the noise power Σ(x - x̂)², as a float;
# `math.inf` when x̂ equals x exactly. Power, not amplitude: which factor goes in front of the log?

# %% sweat={"id": "ex-sqnr", "role": "answer", "exercise": "sqnr_db"}
def sqnr_db(x, x_hat):
    """Signal-to-quantization-noise ratio in dB."""
    ### BEGIN SOLUTION
    x = np.asarray(x, dtype=np.float64)
    noise = float(np.sum((x - np.asarray(x_hat, dtype=np.float64)) ** 2))
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(float(np.sum(x ** 2)) / noise)
    ### END SOLUTION


# %% sweat={"id": "check-sqnr", "role": "check", "exercise": "sqnr_db", "title": "Exercise 4: SQNR in decibels"}
from sweatlab.kit import check
check("sqnr_db")

# %% [markdown] sweat={"id": "sqnr-md"}
# Now the error against the bits, for three granularities, on two matrices: the trained model's
# 1024 x 1024 middle layer, and a **synthetic** matrix built the way large language models' weights are
# often described (rows of very different size, a few weights far larger than the rest; Dettmers et al.
# 2022). The grey lines are the same weights stored as bf16 and fp16. Everything is computed with your
# `quantize_blocks` and `sqnr_db` (or the lab's stand-ins, labelled, until you write them).

# %% sweat={"id": "sqnr-plot", "role": "demo"}
BITS = [2, 3, 4, 5, 6, 8]
g = np.random.default_rng(3)
synthetic = (g.standard_normal((1024, 1024)) * np.exp(g.normal(0, 0.5, (1024, 1)))).astype(np.float32)
spikes = g.random(synthetic.shape) < 0.001
synthetic[spikes] *= 10  # 0.1% of the weights 10x larger
MATRICES = {"this model, layer 2 (1024 x 1024)": LAYERS[1][0], "synthetic, uneven rows + 0.1% outliers": synthetic}
GRAINS = {"per tensor": None, "per channel (row)": "row", "groups of 32": (1, 32)}
sqnr = {}
for mname, w in MATRICES.items():
    for gname, grain in GRAINS.items():
        block = w.shape if grain is None else (1, w.shape[1]) if grain == "row" else grain
        for bits in BITS:
            q, s = lab.mine("quantize_blocks")(w, bits, block)
            sqnr[mname, gname, bits] = lab.mine("sqnr_db")(w, quant.dequantize_blocks(q, s, block))
    for fmt, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        sqnr[mname, fmt, 16] = lab.mine("sqnr_db")(w, torch.from_numpy(w).to(dtype).float().numpy())

fig_sqnr, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True, layout="constrained")
for ax, mname in zip(axes, MATRICES):
    for (gname, _), marker in zip(GRAINS.items(), "osD"):
        ys = [sqnr[mname, gname, b] for b in BITS]
        ax.plot(BITS, ys, marker=marker, label=labelled(gname, "quantize_blocks", "sqnr_db"))
        ax.annotate(f"{ys[-1]:.1f} dB", (BITS[-1], ys[-1]), textcoords="offset points", xytext=(6, -3), fontsize=8)
    ref = sqnr[mname, "groups of 32", 8] + 3
    ax.plot([4, 8], [ref - 6.02 * 4, ref], "k--", lw=1, label="slope of 6.02 dB per bit")
    for fmt, style in (("bf16", ":"), ("fp16", "-.")):
        ax.axhline(sqnr[mname, fmt, 16], color="grey", ls=style, lw=1.3,
                   label=labelled(f"{fmt} (16 bits): {sqnr[mname, fmt, 16]:.0f} dB", "sqnr_db"))
    ax.set(xlabel="bits per weight (integer codes)", title=mname, xticks=BITS, xlim=(1.5, 9.2), ylim=(-3, 80))
axes[0].set_ylabel(labelled("SQNR [dB], higher is better", "quantize_blocks", "sqnr_db"))
axes[0].legend(fontsize=8, loc="upper left")
axes[1].legend(fontsize=8, loc="upper left")
LAYER, SYNTH = MATRICES
for key, mname in (("layer", LAYER), ("synth", SYNTH)):
    for short, gname in (("tensor", "per tensor"), ("channel", "per channel (row)"), ("group", "groups of 32")):
        lab.quote(f"sqnr8_{key}_{short}", sqnr[mname, gname, 8], "{:.1f} dB")
    gain = sqnr[mname, "groups of 32", 8] - sqnr[mname, "per tensor", 8]
    lab.quote(f"sqnr_gain_{key}", gain, "{:.1f} dB")
    bits_worth = round(gain / 6.02, 1)  # "1 bit", "4.3 bits"
    lab.quote(f"sqnr_gain_{key}_bits", f"{bits_worth:g} bit" + "s" * (bits_worth != 1), "{}")
for fmt in ("bf16", "fp16"):
    lab.quote(f"sqnr_{fmt}_layer", sqnr[LAYER, fmt, 16], "{:.0f} dB")
lab.quote("bf16_vs_group", "above" if sqnr[LAYER, "bf16", 16] > sqnr[LAYER, "groups of 32", 8] else "below", "{}")
lab.quote("fp16_vs_bf16", "higher still" if sqnr[LAYER, "fp16", 16] > sqnr[LAYER, "bf16", 16] else "no higher", "{}");

# %% [markdown] sweat={"id": "sqnr-read"}
# **Read the plot.** Where the step is small next to the weights, each line climbs about 6 dB per bit,
# parallel to the dashed slope: one bit halves the step. The granularity moves the whole line up. At 8 bits
# on the trained layer, groups of 32 gain {{sqnr_gain_layer}} over one scale per tensor ({{sqnr8_layer_tensor}}
# to {{sqnr8_layer_group}}, worth about {{sqnr_gain_layer_bits}} at 6 dB a bit); on the synthetic
# matrix, with rows of very different size and a few large weights, one scale per tensor wastes most codes
# on the outliers and the gap is {{sqnr_gain_synth}} ({{sqnr8_synth_tensor}} to {{sqnr8_synth_group}}), worth
# about {{sqnr_gain_synth_bits}}. That is why int4 formats for LLMs use small groups. bf16 keeps 8
# significant bits *per value* (every weight has its own exponent, a scale of its own): on the trained
# layer it reached {{sqnr_bf16_layer}}, {{bf16_vs_group}} the finest 8-bit grouping; fp16, with 11
# significant bits and a range these weights fit in, came {{fp16_vs_bf16}} ({{sqnr_fp16_layer}}).
#
# 0 dB means the noise is as large as the weights themselves: at 2 or 3 bits with one scale per tensor,
# nearly every weight rounds to 0. SQNR is not accuracy: how much noise a network tolerates is measured in
# sections 6 and 9.

# %% [markdown] sweat={"id": "sec-calib"}
# ## 6. Calibration: which range?
#
# Weights are known in advance; **activations** are not. Static quantization fixes their scale and zero
# point from a **calibration** set: run the model on a few hundred representative inputs and record each
# layer's range. The simplest range is min/max; a **percentile** range (e.g. the 0.1th to the 99.9th)
# clips the rare extreme values in exchange for a finer step for the rest. Dynamic quantization instead
# measures each batch's range at run time (ONNX Runtime's dynamic mode, torch's `quantize_dynamic`).

# %% [markdown] sweat={"id": "ex-calib-task"}
# ### Exercise 5: a calibration range
# Write `calibration_range(x, percentile=100.0)` returning `(lo, hi)`: the (100 - p)th and the pth
# percentile of all the values in `x` (any shape), as floats, widened to include 0. With p = 100 that is
# min and max. `np.percentile` does the work; mind which percentile goes with which end.

# %% sweat={"id": "ex-calib", "role": "answer", "exercise": "calibration_range"}
def calibration_range(x, percentile=100.0):
    """(lo, hi): the (100 - p)th and pth percentiles of x, widened to include 0."""
    ### BEGIN SOLUTION
    lo, hi = np.percentile(np.asarray(x, dtype=np.float64).ravel(), [100.0 - percentile, percentile])
    return min(float(lo), 0.0), max(float(hi), 0.0)
    ### END SOLUTION


# %% sweat={"id": "check-calib", "role": "check", "exercise": "calibration_range", "title": "Exercise 5: a calibration range"}
from sweatlab.kit import check
check("calibration_range")

# %% [markdown] sweat={"id": "calib-md"}
# One realistic mistake makes the point: among 256 calibration images, **one** was fed without the
# division by 16 (pixels 0..16 instead of 0..1). Below, the hidden activations are quantized to unsigned b
# bits with ranges from min/max or from the 0.1-99.9 percentiles, calibrated on the clean set or on the
# set with that one image, and the model's test accuracy is measured (the activations are quantized and
# dequantized in float: the effect of the codes, without an int8 kernel).

# %% sweat={"id": "calib-plot", "role": "demo"}
def hidden_activations(x):
    """The two hidden layers' outputs (after ReLU) for inputs x."""
    out, h = [], x
    for w, b in LAYERS[:-1]:
        h = np.maximum(h @ w.T + b, 0)
        out.append(h)
    return out


def forward_fake_quant(x, params, bits):
    """The fp32 model with each hidden activation quantized to `bits` and back, with (scale, zero point) per layer."""
    h = x
    for i, (w, b) in enumerate(LAYERS):
        h = h @ w.T + b
        if i < len(LAYERS) - 1:
            h = np.maximum(h, 0)
            h = lab.mine("dequantize")(lab.mine("quantize")(h, *params[i], bits, signed=False), *params[i])
    return h


calib_clean = X_train[:256]
calib_bad = calib_clean.copy()
calib_bad[0] *= 16  # one image that skipped the normalisation
CAL_BITS = [3, 4, 5, 6, 8]
calib_acc, calib_ranges = {}, {}
for cname, data in (("clean", calib_clean), ("1 bad image", calib_bad)):
    acts = hidden_activations(data)
    for pct in (100.0, 99.9):
        ranges = [lab.mine("calibration_range")(a, pct) for a in acts]
        calib_ranges[cname, pct] = ranges
        for bits in CAL_BITS:
            params = [lab.mine("affine_params")(lo, hi, bits) for lo, hi in ranges]
            calib_acc[cname, pct, bits] = accuracy(lambda x: forward_fake_quant(x, params, bits))

CALIB_FNS = ("calibration_range", "affine_params", "quantize", "dequantize")  # what the accuracies ran on
fig_calib, (left, right) = plt.subplots(1, 2, figsize=(11, 4.3), layout="constrained")
a_clean, a_bad = hidden_activations(calib_bad[1:])[0].ravel(), hidden_activations(calib_bad[:1])[0].ravel()
bins = np.linspace(0, max(a_bad.max(), a_clean.max()) * 1.02, 80)
left.hist(a_clean, bins=bins, color="tab:blue", alpha=0.7, label="the 255 normal images")
left.hist(a_bad, bins=bins, color="tab:red", alpha=0.7, label="the 1 unnormalised image")
for (cname, pct), colour, style in ((("clean", 100.0), "tab:blue", "-"), (("1 bad image", 100.0), "tab:red", "-"),
                                   (("1 bad image", 99.9), "tab:green", "--")):
    hi = calib_ranges[cname, pct][0][1]
    left.axvline(hi, color=colour, ls=style, lw=2,
                 label=labelled(f"hi, {'min/max' if pct == 100 else '99.9th pct'}, {cname}: {hi:.2f}", "calibration_range"))
left.set(yscale="log", xlabel="layer-1 activation (after ReLU)", ylabel="count (log)",
         title="Calibration activations and the range each method picks")
left.legend(fontsize=8)
STYLES = {("clean", 100.0): ("tab:blue", "-", "o", -0.09), ("clean", 99.9): ("tab:cyan", "--", "s", -0.03),
          ("1 bad image", 100.0): ("tab:red", "-", "o", 0.03), ("1 bad image", 99.9): ("tab:green", "--", "D", 0.09)}
for (cname, pct), (colour, style, marker, dx) in STYLES.items():
    right.plot([b + dx for b in CAL_BITS], [100 * (1 - calib_acc[cname, pct, b]) for b in CAL_BITS], color=colour,
               ls=style, marker=marker, label=labelled(f"{'min/max' if pct == 100 else '99.9th percentile'}, {cname}",
                                                       *CALIB_FNS))
right.axhline(100 * (1 - ACC_FP32), color="black", lw=1, ls=":", label=f"fp32: {100 * (1 - ACC_FP32):.1f}% wrong")
right.set(yscale="log", xlabel="bits per activation (unsigned codes)", ylabel="test images wrong [%] (log)",
          xticks=CAL_BITS, ylim=(1, 100), title="Test error with quantized activations (lower is better)")
plain_log(right.yaxis)
right.legend(fontsize=8, loc="upper right")
for (cname, pct) in STYLES:
    method = labelled(f"{'min/max' if pct == 100 else '99.9th percentile'}, {cname}", *CALIB_FNS)
    print(f"{method:42s} accuracy at " + ", ".join(f"{b} bits {100 * calib_acc[cname, pct, b]:.1f}%" for b in CAL_BITS))
for cname in ("clean", "1 bad image"):
    print(f"{labelled(f'{cname}, layer-1 range', 'calibration_range'):42s} hi: min/max "
          f"{calib_ranges[cname, 100.0][0][1]:.2f}, 99.9th percentile {calib_ranges[cname, 99.9][0][1]:.2f}")
hi_of = {(cname, pct): calib_ranges[cname, pct][0][1] for cname, pct in STYLES}
for key, (cname, pct) in (("clean", ("clean", 100.0)), ("bad", ("1 bad image", 100.0)),
                          ("pct_clean", ("clean", 99.9)), ("pct_bad", ("1 bad image", 99.9))):
    lab.quote(f"calib_hi_{key}", hi_of[cname, pct], "{:.2f}")
    lab.quote(f"calib_acc4_{key}", 100 * calib_acc[cname, pct, 4], "{:.1f}%")
lab.quote("calib_stretch", hi_of["1 bad image", 100.0] / hi_of["clean", 100.0], "{:.1f}x")
lab.quote("calib_pct_stretch", hi_of["1 bad image", 99.9] / hi_of["clean", 99.9], "{:.1f}x")
lab.quote("acc_fp32", 100 * ACC_FP32, "{:.2f}%")
lab.quote("err_fp32", 100 * (1 - ACC_FP32), "{:.1f}%")
worst_pct_bad = min(calib_acc["1 bad image", 99.9, b] for b in CAL_BITS)
lab.quote("calib_pct_bad_worst", 100 * worst_pct_bad, "{:.1f}%");

# %% [markdown] sweat={"id": "calib-read"}
# **Read the plots.** One image out of 256 stretches layer 1's min/max range {{calib_stretch}}
# ({{calib_hi_clean}} to {{calib_hi_bad}}), so every code step grows by the same factor and the 255 normal
# images share fewer codes: compare the red line (right) with the blue one as the bits shrink. At 4 bits
# the shipped run's test accuracy went from {{calib_acc4_clean}} to {{calib_acc4_bad}} (fp32:
# {{acc_fp32}}). The 99.9th percentile moves too ({{calib_hi_pct_clean}} to {{calib_hi_pct_bad}},
# {{calib_pct_stretch}}: that one image holds a few tenths of a percent of all the values, more than the
# 0.1% it clips), but less than min/max; with the bad image it kept {{calib_acc4_pct_bad}} at 4 bits, and
# at least {{calib_pct_bad_worst}} from 3 to 8 bits. On clean data, clipping the top 0.1% gave
# {{calib_acc4_pct_clean}} at 4 bits against min/max's {{calib_acc4_clean}}; it is never free: the clipped
# values get a large error. Both methods are in ONNX Runtime's calibrator (`CalibrationMethod.MinMax`,
# `Percentile`, `Entropy`). Large language models have real outlier features of this kind, which is why
# LLM.int8() (Dettmers et al. 2022) keeps them in 16 bits.

# %% [markdown] sweat={"id": "sec-int4"}
# ## 7. int4: two codes in a byte
#
# No CPU has a 4-bit load, so int4 weights are stored two per byte and unpacked in registers just before
# the arithmetic. ONNX's INT4 type fixes the layout: the **first** element of each pair goes in the 4
# **low** bits of the byte, the second in the 4 high bits, each as a 4-bit two's-complement number
# (-8..7).

# %% [markdown] sweat={"id": "ex-int4-task"}
# ### Exercise 6: pack and unpack
# Write `pack_int4(q)`: codes in [-8, 7] (any integer dtype and shape, read flattened) → a `np.uint8` array
# of ceil(n / 2) bytes, element 2i in the low nibble and 2i+1 in the high nibble; an odd count gets a 0 as
# the last high nibble. And `unpack_int4(packed, n)` → the first n codes as `np.int8`, with their signs.
#
# `q & 0xF` gives the 4-bit two's-complement pattern of a negative code; coming back, which nibble values
# stand for negative codes?

# %% sweat={"id": "ex-int4", "role": "answer", "exercise": "int4"}
def pack_int4(q):
    """Signed 4-bit codes -> uint8 bytes, two per byte, the first in the low nibble."""
    ### BEGIN SOLUTION
    flat = np.asarray(q).astype(np.int16).ravel()
    if flat.size % 2:
        flat = np.append(flat, 0)
    nibbles = (flat & 0xF).astype(np.uint8)
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8)
    ### END SOLUTION


def unpack_int4(packed, n):
    """The first n signed 4-bit codes of packed bytes, as int8."""
    ### BEGIN SOLUTION
    p = np.asarray(packed, dtype=np.uint8).ravel()
    out = np.empty(2 * p.size, dtype=np.int8)
    out[0::2] = p & 0xF
    out[1::2] = p >> 4
    out[out > 7] -= 16
    return out[:n]
    ### END SOLUTION


# %% sweat={"id": "check-int4", "role": "check", "exercise": "int4", "title": "Exercise 6: pack and unpack"}
from sweatlab.kit import check
check("int4")

# %% sweat={"id": "int4-bytes", "role": "demo"}
GROUP = 32
packed_layers, fp32_bytes, int4_bytes, int8_bytes = [], 0, 0, 0
for w, b in LAYERS:
    q4, s4 = lab.mine("quantize_blocks")(w, 4, (1, GROUP))
    packed = lab.mine("pack_int4")(q4)
    assert np.array_equal(lab.mine("unpack_int4")(packed, q4.size).reshape(q4.shape), q4), (
        "unpack_int4(pack_int4(q)) does not give q back: run the check of exercise 6")
    packed_layers.append((packed, s4, w.shape, b))
    q8, s8 = lab.mine("quantize_blocks")(w, 8, (1, w.shape[1]))
    fp32_bytes += w.nbytes + b.nbytes
    int8_bytes += q8.nbytes + s8.nbytes + b.nbytes
    int4_bytes += packed.nbytes + s4.nbytes + b.nbytes
INT4_FNS = ("quantize_blocks", "pack_int4", "unpack_int4")
print(labelled("the model's weights and biases", *INT4_FNS)
      + f": fp32 {lab.quote('model_mb_fp32', fp32_bytes / 1e6, '{:.2f} MB')}; "
      f"int8 per channel {lab.quote('model_mb_int8', int8_bytes / 1e6, '{:.2f} MB')} "
      f"({fp32_bytes / int8_bytes:.2f}x smaller); int4 in groups of {GROUP} "
      f"{lab.quote('model_mb_int4', int4_bytes / 1e6, '{:.2f} MB')} "
      f"({lab.quote('int4_smaller', fp32_bytes / int4_bytes, '{:.2f}x')} smaller)")
print(f"int4 bits per weight including its fp32 group scale: 4 + 32 / {GROUP} = {4 + 32 / GROUP:g}; "
      f"the fp32 biases stay fp32")

# %% [markdown] sweat={"id": "sec-matmul"}
# ## 8. Integer matrix products: exact, and when they overflow
#
# With both operands quantized, a matrix product runs on the codes: C = s_a s_b Σ_k q_a q_b (plus terms
# for zero points), and the sum Σ_k q_a q_b is **exact integer arithmetic**, if the accumulator is wide
# enough. An int8 x int8 product needs 16 bits; a sum of k of them needs more: hardware accumulates in
# **int32** (VNNI's VPDPBUSD, Arm's SDOT, AMX). The float scales are applied once, at the end.

# %% [markdown] sweat={"id": "ex-matmul-task"}
# ### Exercise 7: an exact int8 matrix product
# Write `int8_matmul(a, b)` for 8-bit integer matrices (`int8` or `uint8`, m x k and k x n): the exact
# product as an `np.int32` array. What does numpy do with `a @ b` when both are `int8`, or `uint8` times
# `int8`? Try one small example with large values before you decide.

# %% sweat={"id": "ex-matmul", "role": "answer", "exercise": "int8_matmul"}
def int8_matmul(a, b):
    """Exact A @ B of 8-bit integer matrices, accumulated in int32."""
    ### BEGIN SOLUTION
    return np.asarray(a).astype(np.int32) @ np.asarray(b).astype(np.int32)
    ### END SOLUTION


# %% sweat={"id": "check-matmul", "role": "check", "exercise": "int8_matmul", "title": "Exercise 7: an exact int8 matrix product"}
from sweatlab.kit import check
check("int8_matmul")

# %% [markdown] sweat={"id": "ex-overflow-task"}
# ### Exercise 8: when does the accumulator overflow?
# Write `max_safe_k(a_max, b_max, acc_bits=32)`: the largest k for which a sum of k products with
# |a| ≤ a_max and |b| ≤ b_max can never overflow a *signed* acc_bits-bit accumulator (largest value
# 2^(acc_bits-1) - 1), as an int. Then read off: how long may an int8 dot product be in int32 (a_max = 128:
# the code -128)? And what happens to an AVX2 CPU's VPMADDUBSW, which adds *pairs* of u8 x s8 products
# (255 x 128) into a signed 16-bit lane?

# %% sweat={"id": "ex-overflow", "role": "answer", "exercise": "max_safe_k"}
def max_safe_k(a_max, b_max, acc_bits=32):
    """Longest dot product of terms bounded by a_max * b_max that a signed acc_bits-bit sum holds."""
    ### BEGIN SOLUTION
    return (2 ** (acc_bits - 1) - 1) // (a_max * b_max)
    ### END SOLUTION


# %% sweat={"id": "check-overflow", "role": "check", "exercise": "max_safe_k", "title": "Exercise 8: when does the accumulator overflow?"}
from sweatlab.kit import check
check("max_safe_k")

# %% [markdown] sweat={"id": "kernels-md"}
# int32 accumulation is exact far beyond any layer's width. But exact is not fast: the cell below runs
# the same int8 product (256 x 1024 by 1024 x 1024) on four kernels: your `int8_matmul` (numpy has no
# integer BLAS: its integer matmul is a plain loop), ONNX Runtime's `MatMulInteger` with signed and with
# unsigned weights, and torch's private `torch._int_mm` (signed x signed), beside numpy's float32 BLAS on
# the same numbers. GOP/s counts a multiply-add as 2 operations, as GFLOP/s does.

# %% sweat={"id": "kernels", "role": "demo"}
M_K, K_K, N_K = BIG, 1024, 1024
g = np.random.default_rng(4)
a_u8 = g.integers(0, 256, (M_K, K_K)).astype(np.uint8)
b_s8 = g.integers(-128, 128, (K_K, N_K)).astype(np.int8)
b_u8 = (b_s8.astype(np.int16) + 128).astype(np.uint8)
a_s8, a_f32, b_f32 = (a_u8.astype(np.int16) - 128).astype(np.int8), a_u8.astype(np.float32), b_s8.astype(np.float32)
mmi_s8 = serve.OrtModel(serve.matmul_integer_model(b_s8, WORK / "mmi_s8.onnx"), THREADS)
mmi_u8 = serve.OrtModel(serve.matmul_integer_model(b_u8, WORK / "mmi_u8.onnx"), THREADS)
ta_s8, tb_s8 = torch.from_numpy(a_s8), torch.from_numpy(b_s8)
exact = quant.int8_matmul(a_u8, b_s8)  # the course's exact product, to test ONNX Runtime's against
assert np.array_equal(mmi_s8.session.run(None, {"a": a_u8})[0], exact)
lab.mine("int8_matmul")(a_u8[:1], b_s8)  # one small call: is it yours or the stand-in?
MINE_KERNEL = lab.label("int8_matmul", "your int8_matmul (numpy, int32)")
BLAS_KERNEL = "numpy float32 BLAS (same numbers)"
KERNELS = {
    MINE_KERNEL: lambda: lab.mine("int8_matmul")(a_u8, b_s8),
    BLAS_KERNEL: lambda: a_f32 @ b_f32,
    "ONNX Runtime MatMulInteger u8 x s8": lambda: mmi_s8.session.run(None, {"a": a_u8}),
    "ONNX Runtime MatMulInteger u8 x u8": lambda: mmi_u8.session.run(None, {"a": a_u8}),
    "torch._int_mm s8 x s8": lambda: torch._int_mm(ta_s8, tb_s8),
}
try:  # a private torch function: not every CPU build has it
    torch._int_mm(ta_s8[:32, :64].contiguous(), tb_s8[:64, :32].contiguous())
except RuntimeError as exc:
    del KERNELS["torch._int_mm s8 x s8"]
    print(f"torch._int_mm is not available in this torch build on this CPU, so it is not measured ({str(exc)[:80]})")
ops = 2 * M_K * K_K * N_K
kernel_rate = {}
print(f"{'kernel':38}{'time':>10}{'GOP/s':>9}{'energy per product':>20}")
with threadpool_limits(THREADS):
    for name, fn in KERNELS.items():
        m = timed(fn, budget_s=config.pick(0.3, 0.8), min_runs=3)
        kernel_rate[name] = ops / m.seconds / 1e9
        print(f"{name:38}{format_seconds(m.seconds):>10}{kernel_rate[name]:>9.1f}{energy_text(m.joules, m.kind):>20}")
library_int8 = {n: r for n, r in kernel_rate.items() if n not in (MINE_KERNEL, BLAS_KERNEL)}
fastest = max(library_int8, key=library_int8.get)
span = lab.quote("kernel_span", kernel_rate[fastest] / kernel_rate[MINE_KERNEL], "{:,.0f}x")
vs_blas = lab.quote("kernel_vs_blas", kernel_rate[fastest] / kernel_rate[BLAS_KERNEL], "{:.1f}x")
print(f"\nthe fastest library int8 kernel here ({lab.quote('kernel_fastest', fastest, '{}')}) ran {span} the rate of "
      f"{MINE_KERNEL} and {vs_blas} float32 BLAS on the same numbers")
for key, name in (("numpy_int", MINE_KERNEL), ("blas_f32", BLAS_KERNEL), ("ort_u8s8", "ONNX Runtime MatMulInteger u8 x s8"),
                  ("ort_u8u8", "ONNX Runtime MatMulInteger u8 x u8"), ("torch_int_mm", "torch._int_mm s8 x s8")):
    rate = kernel_rate.get(name)
    lab.quote(f"gops_{key}", "n/a" if rate is None else f"{rate:,.0f}" if rate >= 100 else f"{rate:.2g}", "{}")
lab.quote("u8u8_share", kernel_rate["ONNX Runtime MatMulInteger u8 x u8"] / kernel_rate["ONNX Runtime MatMulInteger u8 x s8"],
          "{:.2f}x")
bf16_mm, int8_mm = quant.GPU_SHIPPED[0], quant.GPU_SHIPPED[1]
print(f"shipped measurement (GPU server): {int8_mm.work} {int8_mm.rate:g} {int8_mm.unit} vs {bf16_mm.work} "
      f"{bf16_mm.rate:g} {bf16_mm.unit}: the generic int8 path ran {bf16_mm.rate / int8_mm.rate:.1f}x slower than bf16")

# %% [markdown] sweat={"id": "kernels-read"}
# **Read the table.** The same exact integer arithmetic ran {{kernel_span}} the rate of numpy's integer
# matmul on the fastest library kernel ({{kernel_fastest}}) in the shipped run: numpy's integer matmul
# has no vector kernel behind it, while ONNX Runtime and torch call hand-written int8 kernels (MLAS,
# oneDNN) that use the CPU's int8 instructions where it has them. Against float32 BLAS on the same numbers,
# that kernel ran {{kernel_vs_blas}} as fast. On x86, VPDPBUSD and VPMADDUBSW multiply an **unsigned**
# byte by a **signed** one only, so u8 x u8 needs extra work (widening to 16 bits first): compare the two
# MatMulInteger rows (the shipped run: u8 x u8 at {{u8u8_share}} the rate of u8 x s8). AMX's tile
# instructions take every sign pair, but the rows show whether a library's u8 x u8 kernel uses them. Arm's
# SDOT and UDOT instead take two signed or two unsigned bytes. The GPU server told the same story: its
# generic int8 matmul ran well below its bf16 tensor-core kernel, far from the datasheet's int8 figure.
# **A datasheet's int8 rate needs the kernel written for it.**

# %% [markdown] sweat={"id": "sec-serve"}
# ## 9. One model, eleven ways
#
# The trained model from section 3, served as:
#
# | variant | what runs | weights | activations |
# |---|---|---|---|
# | torch fp32 | `nn.Linear` (torch's BLAS) | fp32 | fp32 |
# | torch bf16 | the model cast to bf16 | bf16 | bf16 |
# | torch int8 dynamic | `torch.ao.quantization.quantize_dynamic`, the fastest engine here | s8 per tensor | u8 in 7 bits (`reduce_range`), range per call |
# | numpy int8 by hand | your `quantize_blocks`, `affine_params`, `quantize`, `int8_matmul` | s8 per channel | u8, range per call |
# | numpy int4 by hand | your `quantize_blocks` + `pack_int4`, unpacked per call, float matmul | int4, groups of 32 | fp32 |
# | ONNX Runtime fp32 | the exported graph | fp32 | fp32 |
# | ORT int8 dynamic | `quantize_dynamic`, s8 weights | s8 per tensor | u8, range per call |
# | ORT int8 dynamic, u8 weights | the same with unsigned weights | u8 | u8 |
# | ORT int8 static | `quantize_static`, 256 calibration images, min/max | s8 per channel | u8, fixed range |
# | ORT int8 static, s8 activations | the same with signed activations | s8 per channel | s8, fixed range |
# | ORT int4 weight-only | `MatMulNBits`, groups of 32, int8 compute (accuracy level 4) | int4 | u8 inside the kernel |
#
# The export uses torch's current exporter (`torch.onnx.export(..., dynamo=True)`); ONNX Runtime's
# quantizers rewrite the graph. torch's own int8 path, `torch.ao.quantization`, is **deprecated** in the
# pinned torch (section 4 printed its warning). Its maintained successor is the separate `torchao`
# package, whose documentation pairs `quantize_` with `torch.compile` for speed (on a CPU that needs a C++
# compiler); tried once in eager mode while this lab was written (an earlier run on another machine, a
# 2-vCPU AMD EPYC VM, Zen 4), its int8 model ran slower than fp32 at batch 1, so the course does not
# install it. `quantize_dynamic` still works in the
# pinned torch and calls tuned int8 kernels (fbgemm, oneDNN); the cell below picks the fastest of its
# engines on this CPU.

# %% sweat={"id": "variants", "role": "demo"}
class HandInt8:
    """The model in int8 by hand: weights symmetric per output channel, activations affine u8 per call."""

    def __init__(self, layers):
        self.layers = []
        for w, b in layers:
            q, s = lab.mine("quantize_blocks")(w, 8, (1, w.shape[1]))
            self.layers.append((np.ascontiguousarray(q.T), s.ravel(), q.astype(np.int32).sum(axis=1), b))
        self.bytes = sum(q.nbytes + s.nbytes + c.nbytes + b.nbytes for q, s, c, b in self.layers)

    def __call__(self, x):
        h = np.asarray(x, dtype=np.float32)
        for i, (qt, sw, row_sums, b) in enumerate(self.layers):
            scale, zp = lab.mine("affine_params")(float(h.min()), float(h.max()), 8)
            qx = lab.mine("quantize")(h, scale, zp, 8, signed=False)
            acc = lab.mine("int8_matmul")(qx, qt) - zp * row_sums  # = sum_k (qx - zp) * qw, exactly
            h = acc.astype(np.float32) * (np.float32(scale) * sw) + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0)
        return h


class HandInt4:
    """Weight-only int4 by hand: packed codes and group scales, unpacked to float32 on every call."""

    def __init__(self, packed_layers, group):
        self.layers, self.group = packed_layers, group
        self.bytes = sum(p.nbytes + s.nbytes + b.nbytes for p, s, _, b in packed_layers)

    def __call__(self, x):
        h = np.asarray(x, dtype=np.float32)
        for i, (packed, scales, shape, b) in enumerate(self.layers):
            codes = lab.mine("unpack_int4")(packed, shape[0] * shape[1]).reshape(shape)
            h = h @ quant.dequantize_blocks(codes, scales, (1, self.group)).T + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0)
        return h


def state_bytes(m):
    """Bytes of torch.save(m.state_dict()): the weights as torch stores them."""
    buffer = io.BytesIO()
    torch.save(m.state_dict(), buffer)
    return buffer.getbuffer().nbytes


with threadpool_limits(THREADS):
    engine_ms = {}
    for engine in serve.torch_int8_engines():
        q_model = serve.torch_dynamic_int8(model, engine)
        x_big = torch.from_numpy(X_test[:BIG])
        engine_ms[engine] = timed(lambda: q_model(x_big), budget_s=config.pick(0.2, 0.5))
    ENGINE = min(engine_ms, key=lambda e: engine_ms[e].seconds)
    print(f"torch's int8 engines at batch {BIG}: " + ", ".join(
        f"{e} {format_seconds(t.seconds)} ({energy_text(t.joules, t.kind)})" for e, t in engine_ms.items())
        + f"; using the fastest, {ENGINE}")
    torch_int8 = serve.torch_dynamic_int8(model, ENGINE)

model_bf16 = copy.deepcopy(model).to(torch.bfloat16)
onnx_fp32 = serve.export_onnx(model, torch.from_numpy(X_train[:2]), WORK / "model_fp32.onnx")
calibration = [X_train[i:i + 32] for i in range(0, 256, 32)]
ort_files = {
    "ORT fp32": onnx_fp32,
    "ORT int8 dynamic": serve.ort_quantize_dynamic(onnx_fp32, WORK / "dyn_s8.onnx", "s8"),
    "ORT int8 dynamic, u8 weights": serve.ort_quantize_dynamic(onnx_fp32, WORK / "dyn_u8.onnx", "u8"),
    "ORT int8 static": serve.ort_quantize_static(onnx_fp32, WORK / "static_u8.onnx", calibration, "u8"),
    "ORT int8 static, s8 activations": serve.ort_quantize_static(onnx_fp32, WORK / "static_s8.onnx", calibration, "s8"),
    "ORT int4 weight-only": serve.ort_quantize_int4(onnx_fp32, WORK / "int4.onnx", block_size=GROUP, accuracy_level=4),
}
ort_models = {name: serve.OrtModel(path, THREADS) for name, path in ort_files.items()}
hand_int8 = HandInt8(LAYERS)
hand_int4 = HandInt4(packed_layers, GROUP)
VARIANTS = {  # name -> (predict on a numpy batch, bytes as stored)
    "torch fp32": (torch_predict(model), state_bytes(model)),
    "torch bf16": (torch_predict(model_bf16, torch.bfloat16), state_bytes(model_bf16)),
    f"torch int8 dynamic ({ENGINE})": (torch_predict(torch_int8), state_bytes(torch_int8)),
    "numpy int8 by hand": (hand_int8, hand_int8.bytes),
    "numpy int4 by hand": (hand_int4, hand_int4.bytes),
    **{name: (m.run, m.bytes) for name, m in ort_models.items()},
}
hand_int8(X_test[:1]), hand_int4(X_test[:1])  # one call each: do they run on your functions or the stand-ins?
SHOWN = {name: name for name in VARIANTS}  # the names as the table and the plot show them
SHOWN["numpy int8 by hand"] = labelled("numpy int8 by hand", "quantize_blocks", "affine_params", "quantize", "int8_matmul")
SHOWN["numpy int4 by hand"] = labelled("numpy int4 by hand", "quantize_blocks", "pack_int4", "unpack_int4")
for name, m in ort_models.items():
    print(f"{name:34s} ONNX operators: {', '.join(m.ops)}")

# %% sweat={"id": "serve-measure", "role": "demo"}
rows = {}
with threadpool_limits(THREADS):
    for name, (predict, nbytes) in tqdm(VARIANTS.items(), desc="variants"):
        row = {"accuracy": round(accuracy(predict), 4), "bytes": int(nbytes)}
        for batch, key in ((1, "b1"), (BIG, "big")):
            xb = X_test[:batch]
            slow = "by hand" in name and batch == BIG
            m = timed(predict, xb, budget_s=config.pick(0.25, 0.8), min_runs=3 if slow else 5)
            row[f"latency_ms_{key}"] = round(m.seconds * 1e3, 4)
            row[f"iqr_ms_{key}"] = round(m.bench.iqr_s * 1e3, 4)
            if batch == BIG:
                row["energy_j"] = None if m.joules is None else m.joules / BIG  # joules per image at the large batch
                row["energy_kind"] = m.kind
        rows[name] = row
base = rows["ORT fp32"]
print(f"{'variant':33}{'accuracy':>9}{'batch 1':>10}{f'batch {BIG}':>11}{'per image':>11}{'vs ORT fp32':>12}"
      f"{'MB':>6}{'energy per image':>18}")
for name, r in rows.items():
    print(f"{SHOWN[name]:33}{100 * r['accuracy']:>8.2f}%{format_seconds(r['latency_ms_b1'] / 1e3):>10}"
          f"{format_seconds(r['latency_ms_big'] / 1e3):>11}{format_seconds(r['latency_ms_big'] / 1e3 / BIG):>11}"
          f"{base['latency_ms_big'] / r['latency_ms_big']:>11.2f}x{r['bytes'] / 1e6:>6.2f}"
          f"{energy_text(r['energy_j'], r['energy_kind']):>18}")
kinds = {r["energy_kind"] for r in rows.values()}
if "estimated" in kinds:
    print(f"\nenergy est.: an ESTIMATE, not a measurement (no CPU energy sensor here): power = {lab.energy.tdp_w:g} W x "
          f"({THREADS} core / {lab.energy.chip_cores}) x CPU utilisation, inputs: {lab.energy}; at one power for every "
          "row, joules per image follow time per image")
print(f"\nlatencies are medians of repeated runs, one thread; MB = bytes as stored (torch.save of the state dict, "
      f"the ONNX file, or the numpy arrays); accuracy on the {len(y_test)} test images")
TORCH_INT8 = f"torch int8 dynamic ({ENGINE})"
lab.quote("torch_engine", ENGINE, "{}")
for key, name in (("ort_fp32", "ORT fp32"), ("ort_int8_dynamic", "ORT int8 dynamic"), ("ort_int8_static", "ORT int8 static"),
                  ("torch_int8", TORCH_INT8), ("torch_bf16", "torch bf16"), ("torch_fp32", "torch fp32")):
    lab.quote(f"lat_big_{key}", format_seconds(rows[name]["latency_ms_big"] / 1e3), "{}")
other_acc = [f"{SHOWN[n]} ({100 * r['accuracy']:.2f}%)" for n, r in rows.items()
             if round(r["accuracy"], 4) != round(ACC_FP32, 4)]
lab.quote("acc_same", "every variant" if not other_acc else "every variant but " + ", ".join(other_acc), "{}");

# %% sweat={"id": "serve-plot", "role": "demo"}
names = list(rows)
colours = ["tab:blue" if n.startswith("torch") else "tab:orange" if n.startswith("numpy") else "tab:green" for n in names]
fig_serve, axes = plt.subplots(1, 2, figsize=(12, 5.2), sharey=True, layout="constrained")
for ax, key, title in ((axes[0], "b1", "batch 1 (one image)"), (axes[1], "big", f"batch {BIG}, per image")):
    per = 1 if key == "b1" else BIG
    values = [rows[n][f"latency_ms_{key}"] * 1e3 / per for n in names]
    errors = [rows[n][f"iqr_ms_{key}"] * 1e3 / per / 2 for n in names]
    y = np.arange(len(names))[::-1]
    ax.barh(y, values, xerr=errors, color=colours, alpha=0.85, capsize=3)
    ref = rows["ORT fp32"][f"latency_ms_{key}"] * 1e3 / per
    ax.axvline(ref, color="black", ls=":", lw=1)
    for yi, v, e in zip(y, values, errors):
        ax.annotate(f"{format_seconds(v * 1e-6)}  ({ref / v:.2g}x)", (v + e, yi), textcoords="offset points",
                    xytext=(5, 0), va="center", fontsize=8.5)
    ax.set(xscale="log", title=title, xlabel="time per image (log); (x) = speed-up over ORT fp32 (dotted)")
    ax.set_xlim(min(values) / 2, max(values) * 15)
    plain_log(ax.xaxis, lambda v, _: format_seconds(v * 1e-6), subs=(1.0,))
axes[0].set_yticks(np.arange(len(names))[::-1], [SHOWN[n] for n in names])
axes[0].plot([], [], color="tab:blue", lw=6, label="torch")
axes[0].plot([], [], color="tab:orange", lw=6, label="numpy by hand")
axes[0].plot([], [], color="tab:green", lw=6, label="ONNX Runtime")
axes[0].legend(fontsize=8, loc="lower right")
fig_serve.suptitle("One trained model, eleven ways: median time per image, bars = IQR, one thread", fontsize=11);

# %% [markdown] sweat={"id": "sec-aims"}
# ### The aims, measured
# The lab sets three aims for this table: ONNX Runtime int8 at least **3x** faster than ONNX Runtime fp32
# at batch 256 on a CPU with VNNI (at least **1.5x** elsewhere), with accuracy within **1 point** of fp32;
# and int4 weights plus their scales in at most **1/6** of the fp32 bytes. The speed ratio is measured
# again here with interleaved pairs (lab 00), which a busy machine disturbs less than two separate medians.

# %% sweat={"id": "aims", "role": "demo"}
x_big = X_test[:BIG]
with threadpool_limits(THREADS):
    speed = compare(lambda: ort_models["ORT fp32"].run(x_big), lambda: ort_models["ORT int8 dynamic"].run(x_big),
                    budget_s=config.pick(1.0, 3.0), names=("ORT fp32", "ORT int8 dynamic"))
    speed_static = compare(lambda: ort_models["ORT fp32"].run(x_big), lambda: ort_models["ORT int8 static"].run(x_big),
                           budget_s=config.pick(0.6, 2.0), names=("ORT fp32", "ORT int8 static"))
aim_speed = INT8.speed_aim
acc_drop = {n: 100 * (rows["ORT fp32"]["accuracy"] - rows[n]["accuracy"]) for n in ("ORT int8 dynamic", "ORT int8 static")}
int4_ratio = rows["ORT int4 weight-only"]["bytes"] / rows["ORT fp32"]["bytes"]
hand_int4_ratio = rows["numpy int4 by hand"]["bytes"] / rows["torch fp32"]["bytes"]
q1, q3 = speed.ratio_q1_q3
print(f"ORT int8 dynamic vs ORT fp32 at batch {BIG}: {lab.quote('aim_speedup', speed.ratio, '{:.2f}x')} faster "
      f"(IQR of the pair ratios {lab.quote('aim_iqr', (q1, q3), '{0[0]:.2f}-{0[1]:.2f}')}, {speed.pairs} pairs); "
      f"static int8: {lab.quote('aim_static', speed_static.ratio, '{:.2f}x')}")
reached = {"speed": speed.ratio >= aim_speed, "accuracy": all(abs(d) <= 1 for d in acc_drop.values()),
           "int4 bytes": max(int4_ratio, hand_int4_ratio) <= 1 / 6}
print(f"  aim: at least {lab.quote('aim_target', aim_speed, '{:g}x')} on this CPU ({'VNNI present' if VNNI else 'no VNNI'}): "
      f"{'REACHED' if reached['speed'] else 'NOT reached'}")
for n, drop in acc_drop.items():
    print(f"{n}: accuracy {100 * rows[n]['accuracy']:.2f}% vs fp32 {100 * rows['ORT fp32']['accuracy']:.2f}% "
          f"({drop:+.2f} points lost): {'within' if abs(drop) <= 1 else 'NOT within'} 1 point")
print(f"int4 weight-only: ONNX file {int4_ratio:.3f} of fp32's bytes (1/{lab.quote('int4_fraction', 1 / int4_ratio, '{:.2f}')}); "
      f"{SHOWN['numpy int4 by hand']} {hand_int4_ratio:.3f} (1/{1 / hand_int4_ratio:.2f}): aim at most 1/6 = 0.167: "
      f"{'REACHED' if reached['int4 bytes'] else 'NOT reached'}")
lab.quote("acc_int8_dynamic", 100 * rows["ORT int8 dynamic"]["accuracy"], "{:.2f}%")
lab.quote("acc_int8_static", 100 * rows["ORT int8 static"]["accuracy"], "{:.2f}%")
lab.quote("acc_ort_fp32", 100 * rows["ORT fp32"]["accuracy"], "{:.2f}%")
missed = [aim for aim, ok in reached.items() if not ok]
lab.quote("aims_verdict", "all three aims reached" if not missed else f"not reached: {', '.join(missed)}", "{}");

# %% [markdown] sweat={"id": "sec-pays"}
# ## 10. Where int8 pays, and where it does not
#
# The table holds the evidence; the cell below reads it back, and adds one experiment the table cannot
# make: the **same** int8 model on the **same** CPU with its int8 instructions (VNNI, and AMX where the CPU
# has it) hidden. oneDNN (the library under torch's
# `onednn` engine) obeys the environment variable `ONEDNN_MAX_CPU_ISA`, which caps the instructions it may
# use; each run below is a separate process with that cap, printing the kernel oneDNN chose
# (`ONEDNN_VERBOSE`). A cap can hide an instruction the CPU has, never add one it lacks: on a CPU without
# VNNI only one side can be measured, and the cell says so.

# %% sweat={"id": "pays", "role": "demo"}
def ratio(a, b, key="big"):
    return rows[a][f"latency_ms_{key}"] / rows[b][f"latency_ms_{key}"]


def quoted_ratio(name, value):
    """A speed ratio, printed and quoted."""
    return lab.quote(name, value, "{:.2f}x")


b1_r, big_r = ratio("ORT fp32", "ORT int8 dynamic", "b1"), ratio("ORT fp32", "ORT int8 dynamic")
b1_int8, big_int8 = quoted_ratio("b1_int8_ratio", b1_r), quoted_ratio("big_int8_ratio", big_r)
b1_vs_big = lab.quote("b1_vs_big", "ran slower than fp32 at batch 1" if b1_r < 1 else
                      f"gained about as much at batch 1 as at batch {BIG}" if 0.9 <= b1_r / big_r <= 1.1 else
                      f"gained {'less' if b1_r < big_r else 'more'} at batch 1 than at batch {BIG}", "{}")
print(f"batch 1: ORT int8 dynamic runs {b1_int8} ORT fp32's speed; at batch {BIG}: {big_int8}; int8 {b1_vs_big}")
print(f"signed vs unsigned: u8 weights {quoted_ratio('u8w_ratio', ratio('ORT fp32', 'ORT int8 dynamic, u8 weights'))} "
      f"fp32 at batch {BIG} (s8 weights: {big_int8}); static with s8 activations "
      f"{quoted_ratio('s8act_ratio', ratio('ORT fp32', 'ORT int8 static, s8 activations'))} "
      f"(u8 activations: {quoted_ratio('static_ratio', ratio('ORT fp32', 'ORT int8 static'))})")
print(f"bf16 in torch: {quoted_ratio('bf16_ratio', ratio('torch fp32', 'torch bf16'))} torch fp32 at batch {BIG} "
      f"({'native bf16 here' if INT8.bf16 else 'no native bf16 here'})")
print(f"int4 weight-only: ORT {quoted_ratio('int4_b1_ratio', ratio('ORT fp32', 'ORT int4 weight-only', 'b1'))} fp32 "
      f"at batch 1, {quoted_ratio('int4_big_ratio', ratio('ORT fp32', 'ORT int4 weight-only'))} at batch {BIG}; "
      f"{SHOWN['numpy int4 by hand']} {ratio('torch fp32', 'numpy int4 by hand', 'b1'):.2f}x torch fp32 at batch 1")
hand8 = ratio("torch fp32", "numpy int8 by hand")
print(f"{SHOWN['numpy int8 by hand']}: {hand8:.3f}x torch fp32 at batch {BIG} (numpy's integer matmul): "
      f"{lab.quote('hand_int8_slower', 1 / hand8, '{:,.0f}x')} {'slower' if hand8 < 1 else 'faster'}")

runs, note = serve.onednn_int8_plan(INT8)
print(f"\noneDNN with an instruction cap: {note}")
onednn_runs = []
sizes = [64, HIDDEN, HIDDEN, 10]
child_meter = dict(estimate=True, tdp_w=lab.energy.tdp_w, host_cores=lab.energy.chip_cores, cores_used=THREADS,
                   tdp_source=lab.energy.source)  # the child process builds its meter from the lab's one set of inputs
for run_label, cap in runs:
    r = serve.onednn_int8_run(run_label, cap, sizes, BIG, threads=THREADS, budget_s=config.pick(0.4, 1.2),
                              energy_meter=child_meter)
    onednn_runs.append(r)
if onednn_runs:
    print(f"{'run':26}{'ONEDNN_MAX_CPU_ISA':>20}  {'int8 kernel oneDNN chose':30}{'fp32':>9}{'int8':>9}{'int8 speed-up':>15}"
          f"{'energy int8/call':>19}")
for r in onednn_runs:
    if r.error:
        print(f"{r.label:26}{r.isa_cap or '(none)':>20}  failed: {r.error}")
        continue
    print(f"{r.label:26}{r.isa_cap or '(none)':>20}  {', '.join(r.kernels) or '?':30}{r.fp32_ms:>6.2f} ms"
          f"{r.int8_ms:>6.2f} ms{r.ratio:>14.2f}x{energy_text(r.int8_j, r.energy_kind):>19}")
good = [r for r in onednn_runs if not r.error]
if len(good) >= 2:
    hidden = "AMX and VNNI" if INT8.amx_int8 else "VNNI"
    first, last = (r.kernels[0] if r.kernels else "?" for r in (good[0], good[-1]))
    print(f"hiding {hidden} made the int8 model take {good[-1].int8_ms / good[0].int8_ms:.2f}x as long "
          f"({first} -> {last}); fp32, which torch runs on its BLAS and not on oneDNN, took "
          f"{good[-1].fp32_ms / good[0].fp32_ms:.2f}x as long (the cap does not touch it: any difference is the machine's noise)")
    verdict = (f"hiding {hidden} took the int8 model from {good[0].ratio:.2f}x to {good[-1].ratio:.2f}x fp32's speed "
               f"(`{first}` -> `{last}`)")
elif good:
    verdict = f"only this CPU as it is could run ({good[0].ratio:.2f}x fp32's speed in int8): {note}"
else:
    verdict = f"not measured here: {note}"
lab.quote("onednn_verdict", verdict, "{}")
print("(random weights of the model's shapes, in a fresh process each: speed does not depend on the values)")

# %% [markdown] sweat={"id": "pays-read"}
# **What the numbers say** (each claim is one printed line above; check it against yours, and the shipped
# run's figures quoted here against the printout):
#
# - **Large batches**: the weights are reused across the batch, so the product is compute-bound and int8
#   gains through its arithmetic. With an int8 dot-product instruction (VNNI, Arm's SDOT) one instruction
#   does four multiply-adds per 32-bit lane where an fp32 FMA does one (AMX tiles do more still); with AVX2
#   only, the same four take three instructions, and int8 gains less. The table's batch-256 ratio was
#   {{big_int8_ratio}} in the shipped run; the aims' interleaved pairs measured the same comparison again at
#   {{aim_speedup}} (IQR {{aim_iqr}}).
# - **Batch 1**: nothing is reused, so the weights' bytes and the fixed costs of a call decide: int8 reads a
#   quarter of fp32's bytes, but quantizes the activations on every call and runs a few small kernels
#   instead of one. In the shipped run int8 {{b1_vs_big}} ({{b1_int8_ratio}} against {{big_int8_ratio}}):
#   where the call's fixed costs are small next to its work, batch 1 can gain about as much as a large
#   batch; where they dominate, it gains less or loses. This model (4.5 MB in fp32) fits in many CPUs'
#   last-level cache; for a model far larger than the caches, batch-1 speed follows the weights' bytes
#   (section 2), which is where weight-only int4 helps most.
# - **Signed vs unsigned**: x86's VNNI (VPDPBUSD) and AVX2 (VPMADDUBSW) int8 instructions multiply an
#   unsigned byte by a signed byte (AMX's tile instructions take every sign pair, but a library need not
#   have a fast kernel for each). ReLU activations are non-negative, so u8 activations lose nothing and s8
#   weights are the natural pair; u8 weights (u8 x u8) or s8 activations can need extra work per product,
#   which the two "u8 weights" and "s8 activations" rows price on this CPU (the shipped run: u8 weights
#   {{u8w_ratio}} fp32's speed against s8 weights' {{big_int8_ratio}}; s8 activations {{s8act_ratio}}
#   against u8 activations' {{static_ratio}}).
#   Arm's SDOT and UDOT take two signed or two unsigned bytes, so there the pairing matters less.
# - **No VNNI**: on such a CPU the same int8 model needs three instructions per dot-product step instead of
#   one, and the int16 intermediate of VPMADDUBSW can saturate (exercise 8), which is why ONNX Runtime
#   offers `reduce_range` (7-bit weights) for such CPUs, and why torch's dynamic int8 `Linear` quantizes its
#   activations to 7 bits (`reduce_range=True` in its forward). On a CPU with VNNI the capped run above
#   measures how much it is worth, with the kernel names to prove which instructions ran; in the shipped
#   run, {{onednn_verdict}}.
# - **The right kernel**: numpy's int8 by hand is exact and about as accurate as the libraries, and far
#   slower than fp32 ({{hand_int8_slower}} slower at batch 256 in the shipped run): numbers in int8 are not
#   enough, the product must run on an int8 kernel (section 8).
# - **bf16** pays only with native bf16 arithmetic (AVX512-BF16, AMX, Arm BF16); otherwise it is converted
#   to fp32 and back on every operation. Native bf16 is needed, not enough: the library's kernel must use
#   it (in the shipped run, section 2's matrix-vector product in bf16 ran {{mv_bf16_verdict}}). In the
#   shipped run torch's bf16 model ran {{bf16_ratio}} torch fp32's speed at batch 256 (native bf16 there:
#   {{native_bf16}}).

# %% [markdown] sweat={"id": "sec-other-hw"}
# ## 11. On other hardware
#
# - **Intel Xeon with AMX** (Sapphire Rapids and later): oneDNN runs int8 and bf16 matrix products on AMX
#   tiles, so torch's `onednn` engine may beat `x86`; the engine sweep above picks whichever is faster. The
#   oneDNN experiment then has three levels (AMX, VNNI, neither).
# - **x86 without VNNI** (Intel before Cascade Lake, AMD before Zen 4, many laptops): int8 still helps at
#   large batches through AVX2, by less; the lab's speed aim there is 1.5x, and the oneDNN experiment can
#   show only the one side.
# - **Arm** (Apple M-series, Graviton, Raspberry Pi 5): the int8 dot product is SDOT/UDOT (and SMMLA with
#   I8MM); ONNX Runtime has Arm kernels for them. torch's int8 engine there is `qnnpack`; the oneDNN
#   instruction cap is x86-only, so that experiment is skipped, and says so.
# - **GPUs**: int8 and fp8 tensor cores exist, but only a tuned kernel reaches them: the shipped GPU
#   measurement's generic int8 path ran below bf16 (section 8). At batch 1 a GPU is memory-bound too, so
#   weight-only int4 (AWQ, GPTQ kernels) is the common choice for LLM decoding.

# %% [markdown] sweat={"id": "sec-record"}
# ## 12. Record what you measured

# %% sweat={"id": "record", "role": "demo", "record_keys": ["rows", "sqnr_db", "vnni", "int8_kernel", "big_batch", "threads", "ort_int8_speedup_big", "ort_int8_static_speedup_big", "int4_bytes_ratio", "quick"]}
SQNR_GRAINS = ["per tensor", "per channel (row)", "groups of 32"]
rec = lab.record(
    rows={name: {k: r[k] for k in ("accuracy", "latency_ms_b1", "latency_ms_big", "bytes", "energy_j", "energy_kind")}
          for name, r in rows.items()},
    sqnr_db={str(b): {gname: round(sqnr[next(iter(MATRICES)), gname, b], 2) for gname in SQNR_GRAINS} for b in BITS},
    vnni=bool(VNNI),
    int8_kernel=INT8.kernel,
    big_batch=BIG,
    threads=THREADS,
    ort_int8_speedup_big=round(speed.ratio, 3),
    ort_int8_static_speedup_big=round(speed_static.ratio, 3),
    int4_bytes_ratio=round(int4_ratio, 4),
    quick=QUICK,
)
print(f"recorded lab {rec['lab']} in {records.records_path_for_display()}: {len(rec['values']['rows'])} variants, "
      f"SQNR at {len(rec['values']['sqnr_db'])} bit widths, vnni={rec['values']['vnni']}")

# %% tags=["solution"]
# Author only: save the key plots for the slides (slides/img/03_*.png) when asked to.
if os.environ.get("SWEAT_SLIDES_IMG"):
    for name, figure in (("matvec", fig_matvec), ("sqnr", fig_sqnr), ("calib", fig_calib), ("serve", fig_serve)):
        figure.savefig(os.path.join(os.environ["SWEAT_SLIDES_IMG"], f"03_{name}.png"), dpi=120, bbox_inches="tight")
    print("saved slide images")

# %% [markdown] sweat={"id": "summary"}
# ## Summary
#
# - A format is range, step and bytes: bf16 keeps fp32's range with a coarse step, fp16 the reverse; an
#   integer code is a whole number times a scale chosen for the data.
# - Batch-1 decoding streams every weight once per token: time follows bytes per weight, and the roofline
#   predicts it from the memory bandwidth (section 2).
# - Affine quantization: scale and zero point, 0.0 exact, round half to even; your codes matched torch's
#   bit for bit where torch agrees with its own documented formula (section 4).
# - About 6 dB of SQNR per bit; finer scales (per channel, per group) lift the whole curve, most where rows
#   and outliers differ (section 5). A percentile range survives an outlier that wrecks min/max (section 6).
# - int4 packs two codes per byte; with group scales it stores about 5 bits per weight (section 7).
# - int8 products are exact in int32 for any layer width; speed needs a kernel with the CPU's int8
#   instructions (on x86, u8 activations with s8 weights); at batch 1 the per-call costs (quantizing the
#   activations) can eat part of the gain, and the table says how much on your CPU (sections 8-10).
#
# ## Reflection questions
# 1. Your `quantize` and torch differed on a few values in section 4 (or on none). What would you have to
#    change to match torch's x86 code exactly, and why might a library prefer a fused multiply-add there?
# 2. The SQNR curves rise about 6 dB per bit. How many bits would per-tensor quantization of the synthetic
#    matrix need to match groups of 32 at 4 bits? What does each group scale cost in bits per weight?
# 3. In section 6, the percentile range clipped the top 0.1% of activations. When would that clipping hurt
#    accuracy more than min/max's coarse step does?
# 4. ONNX Runtime's dynamic int8 quantizes activations on every call. Using the batch-1 and batch-256 rows,
#    estimate what that costs per call. When would static quantization be worth its calibration step?
# 5. A 7 B-parameter model decodes at batch 1 on a laptop with 60 GB/s of memory bandwidth. Predict tokens/s
#    in bf16, int8 and int4 (groups of 32, fp16 scales). Which of your measurements would make the
#    prediction more honest?
#
# ## Further reading
# - B. Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
#   Inference", CVPR 2018 (arXiv:1712.05877): the affine scheme, zero points, int32 accumulation.
# - M. Nagel et al., "A White Paper on Neural Network Quantization", 2021 (arXiv:2106.08295): granularity,
#   calibration, what to try when accuracy drops.
# - T. Dettmers et al., "LLM.int8(): 8-bit Matrix Multiplication for Transformers at Scale", NeurIPS 2022
#   (arXiv:2208.07339): outlier features, and keeping them out of int8.
# - E. Frantar et al., "GPTQ" (arXiv:2210.17323) and J. Lin et al., "AWQ" (arXiv:2306.00978): 4-bit
#   weight-only quantization of large language models, group-wise.
# - H. Shen et al., "Efficient LLM Inference on CPUs", 2023 (arXiv:2311.00502): int4 weights on x86 CPUs.
# - ONNX operator specification, `QuantizeLinear` (rounding, saturation) and the INT4 type (nibble order);
#   ONNX Runtime documentation, "Quantize ONNX models" (dynamic vs static, QDQ, `reduce_range` without VNNI).
# - PyTorch documentation, "Quantization" (the deprecation of `torch.ao.quantization` and the move to torchao).
# - Intel, *Intel 64 and IA-32 Architectures Software Developer's Manual*: VPDPBUSD (VNNI), VPMADDUBSW,
#   AMX TDPBUSD.
