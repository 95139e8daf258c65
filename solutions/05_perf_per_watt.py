# %% [markdown] sweat={"id": "intro"}
# # Lab 05 · Performance per watt: CPU, GPU or TPU, who wins intelligence per joule?
#
# A datasheet gives a chip's peak operations per second and its power rating. Divide one by the other
# and every accelerator looks tens of times better than a CPU. This lab asks what that ratio means for a
# real workload: how many inferences (or tokens) per **joule** each device can deliver, what decides it
# (arithmetic or memory traffic), what a measured machine really does, and when the answer flips.
#
# **You will be able to**
# - read a device table and say for each figure what it is: peak or measured, dense or sparse, TDP or
#   measured watts, primary or secondary source;
# - model one inference step on any device with the roofline (time = max(FLOPs / peak, bytes / bandwidth))
#   and turn it into inferences per second and per joule;
# - explain why a batch-1 decode step is memory-bound (bandwidth per watt decides) and find the batch at
#   which each device turns compute-bound;
# - compare the model with measurements (an H200 GPU measured for the course, and your own CPU) and name
#   what the model leaves out: idle power, host overhead, kernels below the peak;
# - rebuild the TPU paper's ratios from its table inputs, and say why peak-per-TDP and measured ratios differ;
# - pick a device for a workload under a latency and an energy budget, and justify it with numbers.
#
# **Prerequisites**: lab 00 (roofline, FLOPs and bytes, energy kinds). Python and numpy; no GPU needed.
#
# **Time.** Compute, *measured* by running this notebook top to bottom: 34 s in full mode (the mode you
# work in: larger models, longer timings; `sweatlab execute 05 --full`) in the course's shipped run, on a
# {{machine}} shared with other jobs (CPU energy {{cpu_energy_kind}}). Earlier runs on a 2-vCPU AMD EPYC
# virtual machine (Zen 4, no energy sensor, no GPU) shared with other jobs measured 14-15 s in quick mode
# (`SWEAT_QUICK=1`, used by the tests; `sweatlab execute 05`) and 27 s in full mode. The solution's outputs
# and the figures quoted in this lab come from the course's shipped run. Reading and the six exercises:
# about 75-90 minutes, *estimated* from the lab's size (not a timed class): 5-10 minutes per exercise and
# about 35 minutes for the sections, tables and plots.
#
# Six exercises, each a function of plain numbers followed by a `check(...)` cell: `bytes_per_token`,
# `tokens_per_joule`, `step_model`, `compute_bound_batch`, `choose_device`, `compute_optimal`. Until you
# write one, the cells that use it run the lab's stand-in (the course's version) instead, say so once, and
# mark its numbers " (stand-in)" in text and plots.

# %% sweat={"id": "setup", "role": "setup"}
import math
import os

import matplotlib.pyplot as plt
import numpy as np

from sweatlab.kit import open_lab
from sweatlab.measure import energy, energy_data, records, roofline
from sweatlab.measure.config import pick, quick
from sweatlab.measure.hardware import describe
from sweatlab.measure.timing import bench, format_seconds
from sweatlab.topics import devices as D

lab = open_lab("05_perf_per_watt")  # checks, stand-ins (labelled), the energy meter, quoted figures, the record
QUICK = quick()  # SWEAT_QUICK=1 shrinks the sizes (tests and CI); the lab is written for full mode
CORES = describe().usable_cores or os.cpu_count() or 1
plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3})


def fmt(x, unit=""):
    """A number for a table: 3 significant digits, or n/a."""
    if x is None:
        return "n/a"
    return f"{x:,.3g}{unit}" if abs(x) < 1000 else f"{x:,.0f}{unit}"


print(f"quick mode: {QUICK}; cores this process may use: {CORES}")
machine = describe()
print(machine)
cpu_name = (machine.cpu_model or machine.arch).replace("(R)", "").replace("(TM)", "")
widest = next((w for key, w in (("amx_tile", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"), ("neon", "NEON"))
               if machine.isa.get(key)), None)
lab.quote("machine", f"{CORES}-core {cpu_name}" + (" virtual machine" if machine.virtual_machine else "")
          + (f" with {widest}" if widest else "") + (", no GPU" if machine.gpus == () else ""),
          "{}")  # the deck and the guide say which machine their figures come from
# This CPU's energy: measured where it has a sensor (RAPL), else a labelled *estimate* (lab 00, section 8):
# power = TDP x (cores used / cores of the chip) x CPU utilisation, from the inputs printed here.
print(f"energy estimate's inputs: {lab.energy}")
if lab.energy.hypothetical:
    print("  (hypothetical: to make the estimate yours, set SWEAT_TDP_W and SWEAT_CHIP_CORES before starting "
          "JupyterLab, or write them in sweatlab.ini; `sweatlab doctor` shows which inputs are in use)")

# %% [markdown] sweat={"id": "sec-table"}
# ## 1. The device table, and what each number is
#
# `sweatlab.topics.devices.DEVICES` holds one row per chip. Every figure carries its unit, its source, and what
# kind of number it is. Read the labels before the values:
#
# - **peak** is a datasheet's theoretical maximum; **measured** is what a program achieved; **derived** is
#   computed from other published figures (cores x clock x operations per cycle; channels x transfer rate x
#   8 bytes), with the arithmetic in the row's note; **TDP** is a power *rating* (thermal design power or
#   maximum board power), not what the chip draws on your workload.
# - **dense** or **sparse**: NVIDIA prints tensor-core figures "with sparsity" (2:4 structured sparsity:
#   half the weights zero) at twice the dense rate. The table keeps dense figures; the L4's were halved.
# - **primary** means the figure was checked in the vendor's own page or the paper; **secondary** means it
#   comes from a page that cites it.
# - int8 peaks are in GOP/s (integer operations), the others in GFLOP/s: the same scale, not the same work.

# %% sweat={"id": "table", "role": "demo"}
print(f"{'device':52s} {'fp32':>9s} {'bf16':>9s} {'int8':>9s} {'GB/s':>7s} {'W':>5s}  power kind / sources")
for d in D.DEVICES:
    peaks = [fmt(d.peak_gflops(p) / 1e3 if d.peak_gflops(p) else None) for p in D.PRECISIONS]
    power = f"{d.watts:5.0f}" if d.watts else "  n/a"
    pk = d.power.kind if d.power else "none published"
    print(f"{d.name:52s} {peaks[0]:>9s} {peaks[1]:>9s} {peaks[2]:>9s} {d.bandwidth_gbs:7,.0f} {power}  "
          f"{pk}; {d.source_kind()}")
print("\n(peaks in TFLOP/s, int8 in TOPS; dense. The first three rows are the dies of Jouppi et al. 2017.)")
h100 = D.device("NVIDIA H100")
print(f"\none row in full, {h100.name}:")
for what, f in h100.figures():
    print(f"  {what:10s} {f.value:>12,.1f} {f.unit:8s} [{f.label}] {f.note}")
print(f"  source: {h100.bandwidth.source}")

# %% [markdown] sweat={"id": "sec-roofline"}
# ## 2. Your machine beside them, and every roofline on one chart
#
# Your CPU's row comes from its measured roofline (lab 00's `roofline.measure`): the best matmul rate per
# precision and the triad bandwidth, all cores. Its power: a sensor's reading where there is one, else the
# labelled estimate from your TDP and core count (the setup cell prints the inputs in use; measured in section 6).

# %% sweat={"id": "measure-roofline", "role": "demo"}
mine_roof = roofline.measure(quick=QUICK)
print(mine_roof)
MINE = D.this_machine({"fp32": mine_roof.peak_gflops("float32"), "bf16": mine_roof.peak_gflops("bfloat16")},
                      mine_roof.memory.gbs, name=f"this machine ({CORES} cores)")
print(f"\nbf16 peak measured here: {fmt(MINE.peak_gflops('bf16'))} GFLOP/s "
      f"({'measured' if MINE.peak_gflops('bf16') else 'skipped: ' + str(mine_roof.peaks[-1].skipped_reason)})")

# %% sweat={"id": "roofline-plot", "role": "demo"}
SHOWN = [d for d in D.DEVICES if d.name != "NVIDIA H200 SXM (datasheet)"] + [MINE]  # H200 compute = H100's
bf16_devs = [d for d in SHOWN if d.peak_gflops("bf16")]
peaks_b = [d.peak_gflops("bf16") for d in bf16_devs]
bws_b = [d.bandwidth_gbs for d in bf16_devs]
peak_spread, bw_spread = max(peaks_b) / min(peaks_b), max(bws_b) / min(bws_b)
print(f"bf16 panel: {len(bf16_devs)} devices; peaks {min(peaks_b):,.0f} to {max(peaks_b):,.0f} GFLOP/s "
      f"({peak_spread:,.0f}x); bandwidths {min(bws_b):,.0f} to {max(bws_b):,.0f} GB/s ({bw_spread:,.0f}x)")
batch1_intensity = max(w.with_precision("bf16").intensity for w in D.WORKLOADS if w.batch == 1)
right_of = [d.name for d in bf16_devs if d.ridge("bf16") <= batch1_intensity]
print(f"batch-1 intensity in bf16: {batch1_intensity:.2f} FLOP/byte; ridges at or left of it: "
      f"{', '.join(right_of) or 'none'}")
lab.quote("bf16_peak_spread", peak_spread, "{:,.0f}x")
lab.quote("bf16_bandwidth_spread", bw_spread, "{:,.0f}x")
lab.quote("bf16_spread_verdict", "more" if peak_spread > bw_spread else "less", "{}")
lab.quote("batch1_vs_ridges", "left of every ridge" if not right_of else
          f"left of {len(bf16_devs) - len(right_of)} of the {len(bf16_devs)} ridges", "{}")
fig_roofs = D.plot_rooflines(SHOWN, workloads=[w.with_precision("bf16") for w in D.WORKLOADS]);

# %% [markdown] sweat={"id": "sec-roofline-read"}
# **Read the chart.** Each line is one device's roofline: the slope on the left is memory bandwidth (GB/s
# times FLOP/byte), the flat top its peak; the diamond is the ridge point. The dotted verticals are the
# workloads of section 3 (in bf16). Notice:
# - in the shipped run's bf16 panel the highest roof is {{bf16_peak_spread}} the lowest, the steepest slope
#   {{bf16_bandwidth_spread}} the shallowest (the cell above prints both ranges, with your machine among
#   them): a datasheet's peak separates these devices {{bf16_spread_verdict}} than their memory does;
# - the batch-1 workloads sit at an intensity near 1 FLOP/byte, {{batch1_vs_ridges}} in the shipped run's bf16 panel:
#   left of a ridge only the slope (bandwidth) counts, and the huge roof is unused;
# - the int8 panel holds the 2017 TPU: its roof is high, its slope (34 GB/s) the lowest of that panel.
#
# The H200's datasheet row is left off the chart because its compute equals the H100's; its measured row
# (651 TFLOP/s bf16, 3.8 TB/s) is drawn.

# %% [markdown] sweat={"id": "sec-decode"}
# ## 3. Workload models
#
# One inference step reads every weight once and does a multiply-add (2 FLOPs) per weight per input. A batch
# of B inputs reuses the weights it has read: 2 N B FLOPs for about N x bytes-per-weight bytes. At batch 1
# the intensity is 2 / bytes-per-weight FLOP/byte: 1 in bf16.
#
# **Decode at batch 1.** Generating one token of a language model at batch 1 reads all N weights.
#
# ### Exercise 1: bytes per token
# Write `bytes_per_token(n_params, bits)`: how many bytes of weights one batch-1 decode step reads, for
# weights stored in `bits` bits each.

# %% sweat={"id": "ex-bytes", "role": "answer", "exercise": "bytes_per_token"}
def bytes_per_token(n_params, bits):
    """Bytes of weights read by one batch-1 decode step."""
    ### BEGIN SOLUTION
    return n_params * bits / 8
    ### END SOLUTION


# %% sweat={"id": "check-bytes", "role": "check", "exercise": "bytes_per_token", "title": "Exercise 1: bytes per token"}
from sweatlab.kit import check
check("bytes_per_token")

# %% [markdown] sweat={"id": "ex-tpj-task"}
# ### Exercise 2: tokens per joule on the memory roof
# Write `tokens_per_joule(n_params, bits, bandwidth_gbs, watts)`: the decode tokens per second the memory
# roof allows (bandwidth over bytes per token; GB/s means 10^9 bytes per second), divided by the power in
# watts (a watt is a joule per second).

# %% sweat={"id": "ex-tpj", "role": "answer", "exercise": "tokens_per_joule"}
def tokens_per_joule(n_params, bits, bandwidth_gbs, watts):
    """Batch-1 decode tokens per joule when memory bandwidth limits the step."""
    ### BEGIN SOLUTION
    per_second = bandwidth_gbs * 1e9 / bytes_per_token(n_params, bits)
    return per_second / watts
    ### END SOLUTION


# %% sweat={"id": "check-tpj", "role": "check", "exercise": "tokens_per_joule", "title": "Exercise 2: tokens per joule on the memory roof"}
from sweatlab.kit import check
check("tokens_per_joule")

# %% sweat={"id": "decode-table", "role": "demo"}
my_bytes, my_tpj = lab.mine("bytes_per_token"), lab.mine("tokens_per_joule")
per_token = my_bytes(D.GPT2_SMALL_PARAMS, 16)
print(f"GPT-2 small (124 M weights), batch-1 decode on the memory roof, bf16 weights (16 bits): "
      f"{lab.label('bytes_per_token', f'{per_token / 1e6:,.0f} MB read per token')}")
decode_rows = []
for d in SHOWN:
    if not d.watts:
        continue
    tpj = my_tpj(D.GPT2_SMALL_PARAMS, 16, d.bandwidth_gbs, d.watts)
    decode_rows.append((tpj, d))
tpj_head = lab.label("tokens_per_joule", "tokens/J")
col = len(tpj_head) + 1
print(f"{'device':52s} {'GB/s':>7s} {'W':>5s} {'GB/s per W':>10s} {tpj_head:>{col}s}  power kind")
for tpj, d in sorted(decode_rows, key=lambda r: -r[0]):
    print(f"{d.name:52s} {d.bandwidth_gbs:7,.0f} {d.watts:5.0f} {d.bandwidth_gbs / d.watts:10.2f} {tpj:{col}.3g}  "
          f"{d.power.kind}")
print("\n(devices without a power figure are left out: Graviton3, TPU v5e and M2 publish none; this machine's "
      "power is measured in section 6)")

# %% [markdown] sweat={"id": "sec-decode-read"}
# **Read the table.** On the memory roof, tokens per joule is bandwidth per watt divided by the bytes per
# token: the ranking is the column "GB/s per W", whatever the devices' compute peaks. Halve the bytes per
# weight (int8) and every row doubles; the ranking does not change.
#
# ### Exercise 3: one batched step on any device
# Write `step_model(n_params, batch, bytes_per_param, peak_gflops, bandwidth_gbs, watts)` returning a dict:
# `"seconds"` for one step (the roofline: the longer of the arithmetic at peak and the weight traffic at
# full bandwidth; count only the weights as traffic), `"per_second"` (inputs per second), `"per_joule"`
# (inputs per joule at `watts`) and `"bound"` (`"memory"` or `"compute"`, whichever time is longer; a tie
# counts as compute).

# %% sweat={"id": "ex-step", "role": "answer", "exercise": "step_model"}
def step_model(n_params, batch, bytes_per_param, peak_gflops, bandwidth_gbs, watts):
    """Roofline model of one step of `batch` inputs through `n_params` weights."""
    ### BEGIN SOLUTION
    compute_s = 2 * n_params * batch / (peak_gflops * 1e9)
    memory_s = n_params * bytes_per_param / (bandwidth_gbs * 1e9)
    seconds = max(compute_s, memory_s)
    per_second = batch / seconds
    return {"seconds": seconds, "per_second": per_second, "per_joule": per_second / watts,
            "bound": "compute" if compute_s >= memory_s else "memory"}
    ### END SOLUTION


# %% sweat={"id": "check-step", "role": "check", "exercise": "step_model", "title": "Exercise 3: one batched step on any device"}
from sweatlab.kit import check
check("step_model")

# %% [markdown] sweat={"id": "ex-batch-task"}
# ### Exercise 4: where does a device turn compute-bound?
# Write `compute_bound_batch(peak_gflops, bandwidth_gbs, bytes_per_param)`: the smallest whole batch whose
# intensity (2 x batch FLOPs per weight over bytes_per_param bytes) reaches the device's ridge point
# (peak / bandwidth, FLOP/byte). Never less than 1.

# %% sweat={"id": "ex-batch", "role": "answer", "exercise": "compute_bound_batch"}
def compute_bound_batch(peak_gflops, bandwidth_gbs, bytes_per_param):
    """Smallest batch at which a step is compute-bound on this device."""
    ### BEGIN SOLUTION
    ridge = peak_gflops / bandwidth_gbs
    return max(1, math.ceil(ridge * bytes_per_param / 2 - 1e-9))
    ### END SOLUTION


# %% sweat={"id": "check-batch", "role": "check", "exercise": "compute_bound_batch", "title": "Exercise 4: where does a device turn compute-bound?"}
from sweatlab.kit import check
check("compute_bound_batch")

# %% sweat={"id": "model-table", "role": "demo"}
my_step, my_batch = lab.mine("step_model"), lab.mine("compute_bound_batch")
PREC = "bf16"
model_rows, bound_from, lines = {}, {}, []
for d in SHOWN:
    peak = d.peak_gflops(PREC)
    if not peak or not d.watts:
        continue
    cells = []
    for w in D.WORKLOADS:
        r = my_step(w.n_params, w.batch, D.BYTES_PER_PARAM[PREC], peak, d.bandwidth_gbs, d.watts)
        model_rows[d.name, w.name] = r
        cells.append(f"{fmt(r['per_joule'])}/J {r['bound'][:3]}")
    bound_from[d.name] = my_batch(peak, d.bandwidth_gbs, D.BYTES_PER_PARAM[PREC])
    lines.append(f"{d.name[:46]:46s}" + "".join(f"{c:>28s}" for c in cells) + f"{bound_from[d.name]:>26,d}")
print(f"Roofline model in {PREC} (weights only as traffic), inputs per joule at each device's power figure, "
      f"from {lab.label('step_model')}; the last column from {lab.label('compute_bound_batch')}:")
head = "".join(f"{w.name:>28s}" for w in D.WORKLOADS)
print(f"{'device':46s}{head}{'compute-bound from batch':>26s}")
print("\n".join(lines))
print("\n(mem = memory-bound, com = compute-bound; power: TDP where the source gives one, measured where marked "
      "in the table of section 1)")
accel = [d.name for d in SHOWN if d.category in ("GPU", "TPU") and d.name in bound_from]
gpus = [n for n in accel if D.device(n).category == "GPU"]
mlp1, mlp256 = D.WORKLOADS[0].name, D.WORKLOADS[1].name
gains = [model_rows[n, mlp256]["per_joule"] / model_rows[n, mlp1]["per_joule"] for n in accel]
print(f"MLP batch 256 over batch 1, inputs per joule on the GPUs and TPUs: {min(gains):,.0f}x to {max(gains):,.0f}x")
# these four come from the table's datasheet and shipped rows only (not this machine's): data=True
lab.quote("accel_batch_gain", f"{min(gains):,.0f}x to {max(gains):,.0f}x", "{}", data=True)
lab.quote("gpu_bound_batch", f"{min(bound_from[n] for n in gpus):,d} to {max(bound_from[n] for n in gpus):,d}", "{}",
          data=True)
lab.quote("epyc_bound_batch", bound_from[D.device("AMD EPYC").name], "{:,d}", data=True)
lab.quote("spr_bound_batch", bound_from[D.device("Intel Xeon Platinum").name], "{:,d}", data=True)

# %% sweat={"id": "model-plot", "role": "demo"}
names = [d.name for d in SHOWN if d.peak_gflops(PREC) and d.watts]
fig_model, ax = plt.subplots(figsize=(11, 5.5), layout="constrained")
width = 0.8 / len(D.WORKLOADS)
for i, w in enumerate(D.WORKLOADS):
    vals = [model_rows[n, w.name]["per_joule"] for n in names]
    ax.bar(np.arange(len(names)) + i * width, vals, width, label=w.name)
ax.set(yscale="log", ylabel=lab.label("step_model", "inputs per joule (model) [1/J]"),
       title=lab.label("step_model", f"Roofline model, {PREC}: inferences or tokens per joule at each device's "
                                     "power figure"))
ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, [n.replace(" (", "\n(") for n in names], rotation=30,
              ha="right", fontsize=8)
ax.legend(fontsize=9);

# %% [markdown] sweat={"id": "sec-model-read"}
# **Read the plot and the table.** At batch 1 (MLP, decode) every device is memory-bound: the bars follow
# bandwidth per watt. At batch 256 and in the prefill the same weights serve many inputs: from MLP batch 1
# to batch 256 the GPUs' and TPUs' inputs per joule rise {{accel_batch_gain}} (printed under the table), and
# the GPUs turn compute-bound only from the batch in the last column onwards ({{gpu_bound_batch}} in bf16).
# A CPU without matrix units (the EPYC row) has a low ridge and turns compute-bound from batch
# {{epyc_bound_batch}}, under a low roof; with AMX (the Sapphire Rapids row, derived peak) its ridge moves as far
# right as a GPU's (batch {{spr_bound_batch}}). The model is a *best case*: every device at its peak and its
# full power figure. Section 4 shows how far a measured GPU falls from it, and why.

# %% [markdown] sweat={"id": "sec-h200"}
# ## 4. Measured against modelled: an H200 GPU
#
# Shipped measurements, made once for the course on a cloud VM with an NVIDIA H200 SXM and its board energy
# counter (NVML; board only, not the host; one run each; provenance below). GPT-2 small (124 M weights) in
# bf16, three ways: a framework's `generate` (Hugging Face, greedy), the same weights as a chain of
# matrix-vector products replayed as a CUDA graph, and the model's prediction at the datasheet's
# 4.8 TB/s and 700 W.

# %% sweat={"id": "h200-table", "role": "demo"}
print(f"provenance: {energy_data.GPU_SERVER_PROVENANCE}\n")
h200 = D.device("NVIDIA H200 SXM (datasheet)")
h200_rows = []
print(f"{'how':34s} {'batch':>6s} {'tokens/s':>10s} {'J per token':>12s} {'model J/token':>14s} {'measured/model':>15s}")
for key in ("decode, framework generate", "decode, CUDA graph"):
    for run in energy_data.SHIPPED_H200[key]:
        pred = D.predict(h200, D.Workload("decode", D.GPT2_SMALL_PARAMS, run.batch, "bf16"))
        ratio = run.joules_per_input / pred.joules_per_input
        h200_rows.append((key, run, pred))
        print(f"{key:34s} {run.batch:6d} {run.per_second:10,.1f} {run.joules_per_input:12.4g} "
              f"{pred.joules_per_input:14.3g} {ratio:14,.0f}x")
gen1 = energy_data.SHIPPED_H200["decode, framework generate"][0]
idle_lo, idle_hi = energy_data.H200_IDLE_W
idle_share_j = idle_lo / gen1.per_second
print(f"\nidle board power (same machine): {idle_lo:.0f}-{idle_hi:.0f} W. At batch 1 through generate, "
      f"{gen1.per_second:g} tokens/s at about {gen1.watts:.0f} W: {idle_lo:.0f} W / {gen1.per_second:g} tokens/s "
      f"= {idle_share_j:.1f} J of the {gen1.joules_per_input:g} J per token is the board idling")
graph1 = energy_data.SHIPPED_H200["decode, CUDA graph"][0]
print(f"the same weights as a CUDA graph: {graph1.per_second / gen1.per_second:,.0f}x the tokens per second, "
      f"{gen1.joules_per_input / graph1.joules_per_input:,.0f}x fewer joules per token")
gen_runs = energy_data.SHIPPED_H200["decode, framework generate"]
gen_step_ms = [r.batch / r.per_second * 1e3 for r in gen_runs]  # one step serves `batch` tokens
graph_step_ms = 1e3 / graph1.per_second
graph_tbs = D.GPT2_SMALL_PARAMS * D.BYTES_PER_PARAM["bf16"] * graph1.per_second / 1e12  # weight bytes per second
print("time per decode step through generate: " + ", ".join(f"{t:.0f} ms at batch {r.batch}" for r, t in
                                                             zip(gen_runs, gen_step_ms))
      + f"; as a CUDA graph at batch 1: {graph_step_ms:.2f} ms, reading the weights at {graph_tbs:.2f} TB/s "
        f"({graph_tbs / (h200.bandwidth_gbs / 1e3):.0%} of the datasheet's {h200.bandwidth_gbs / 1e3:g} TB/s)")
mlp_runs = energy_data.SHIPPED_H200["MLP, CUDA graph"]
mlp_fall = mlp_runs[0].joules_per_input / mlp_runs[-1].joules_per_input
print(f"MLP as a CUDA graph: {mlp_fall:,.0f}x fewer joules per inference at batch {mlp_runs[-1].batch} than at "
      f"batch {mlp_runs[0].batch}, at {mlp_runs[-1].watts:.0f} W against {mlp_runs[0].watts:.0f} W")
gen1_model = h200_rows[0][2]  # the model's prediction for generate's batch-1 row
# every figure of this section comes from the shipped H200 measurements and the datasheet: data=True
lab.quote("h200_graph_speedup", graph1.per_second / gen1.per_second, "{:,.0f}", data=True)
lab.quote("h200_idle_j_per_token", idle_share_j, "{:.1f} J", data=True)
lab.quote("h200_model_j_per_token", gen1_model.joules_per_input, "{:.2g} J", data=True)
lab.quote("h200_generate_over_model", gen1.joules_per_input / gen1_model.joules_per_input, "{:,.0f}x", data=True)
lab.quote("h200_generate_step_ms", gen_step_ms[0], "{:.0f} ms", data=True)
lab.quote("h200_generate_step_span", f"{min(gen_step_ms):.0f}-{max(gen_step_ms):.0f} ms", "{}", data=True)
lab.quote("h200_graph_step_ms", graph_step_ms, "{:.2f} ms", data=True)
lab.quote("h200_graph_tbs", graph_tbs, "{:.1f} TB/s", data=True)
lab.quote("h200_graph_bw_share", graph_tbs / (h200.bandwidth_gbs / 1e3), "{:.0%}", data=True)
lab.quote("h200_mlp_energy_fall", mlp_fall, "{:,.0f}x", data=True)

# %% sweat={"id": "h200-plot", "role": "demo"}
fig_h200, ax = plt.subplots(figsize=(9, 5.5), layout="constrained")
mlp_runs = energy_data.SHIPPED_H200["MLP, CUDA graph"]
batches = np.array([r.batch for r in mlp_runs])
ax.plot(batches, [r.joules_per_input for r in mlp_runs], "o-", color="tab:red",
        label="MLP 4x4096 bf16, CUDA graph: measured (board energy)")
model_j = [D.predict(h200, D.Workload("MLP", energy_data.MLP_PARAMS, int(b), "bf16")).joules_per_input for b in batches]
ax.plot(batches, model_j, "s--", color="tab:red", mfc="white", label="same MLP: model at 4.8 TB/s, 989 TFLOP/s, 700 W")
for key, style, colour in (("decode, framework generate", "^-", "tab:purple"), ("decode, CUDA graph", "v-", "tab:blue")):
    runs = energy_data.SHIPPED_H200[key]
    ax.plot([r.batch for r in runs], [r.joules_per_input for r in runs], style, color=colour,
            label=f"GPT-2 small decode, {key.split(', ')[1]}: measured")
dec_b = np.array([1, 16, 64, 256])
ax.plot(dec_b, [D.predict(h200, D.Workload("d", D.GPT2_SMALL_PARAMS, int(b), "bf16")).joules_per_input for b in dec_b],
        "D--", color="tab:blue", mfc="white", label="GPT-2 small decode: model")
for r in mlp_runs[:1] + mlp_runs[-1:]:
    ax.annotate(f"{r.watts:.0f} W", (r.batch, r.joules_per_input), xytext=(6, 4), textcoords="offset points", fontsize=8)
ax.set(xscale="log", yscale="log", xlabel="batch (inputs per step)", ylabel="joules per inference or token [J]",
       title="H200: measured joules per input against the roofline model (shipped measurements)")
ax.legend(fontsize=8, loc="lower left");

# %% [markdown] sweat={"id": "sec-h200-read"}
# **Read the table and the plot.** The model is a floor, and the measurements sit above it by factors the
# table prints:
# - **host overhead**: through the framework's `generate`, one step took {{h200_generate_step_ms}} at batch 1
#   (1 / 15.5 tokens/s) and {{h200_generate_step_span}} at every batch from 1 to 256 (batch / tokens per
#   second, printed above), while the same weights as a CUDA graph took {{h200_graph_step_ms}} per step at
#   batch 1. A step time that hardly changes with the batch, hundreds of times the GPU's own work, is the
#   GPU waiting for Python and the framework between kernels: the graph ran {{h200_graph_speedup}} times
#   more steps per second. The roofline knows nothing of the host.
# - **idle power**: the board draws 81-83 W doing nothing. A watt-second spent waiting is charged to the
#   tokens produced: at 15.5 tokens/s, idle power alone is {{h200_idle_j_per_token}} per token (printed above).
# - **kernels below the peak and power below the rating**: even the CUDA graph read weights at about
#   {{h200_graph_tbs}} at batch 1, {{h200_graph_bw_share}} of the datasheet's 4.8 TB/s, while drawing 283 W
#   rather than 700 W. Both errors of the model (bandwidth too high, power too high) partly cancel in joules
#   per token.
# - **batching** is where the joules go down: the MLP's energy per inference fell {{h200_mlp_energy_fall}} from
#   batch 1 to 4096 on the same board, while its power rose from 423 to 726 W.

# %% [markdown] sweat={"id": "sec-tpu"}
# ## 5. The TPU paper, rebuilt from its own inputs
#
# Jouppi et al. (ISCA 2017) state in their abstract that the TPU was "about 15X-30X faster than its
# contemporary GPU or CPU, with TOPS/Watt about 30X-80X higher". Below, the comparison redone from the
# paper's table inputs: peaks and TDP per die (Table 2) and the measured relative performance on their six
# production applications (Table 6, weighted mean). The abstract's figures are primary; the table values
# come from a third-party extraction, partly cross-checked, and are marked secondary.

# %% sweat={"id": "tpu-rebuild", "role": "demo"}
tpu_rows = D.tpu_ratios()
print(f"source: {D.TPU_PAPER['source']}")
print(f"{'ratio':56s} {'paper says':>28s} {'rebuilt':>9s}")
for r in tpu_rows:
    print(f"{r['ratio']:56s} {r['paper']:>28s} {r['rebuilt']:8.1f}x")
cpu_d, gpu_d, tpu_d = D.device("Intel Haswell"), D.device("NVIDIA K80"), D.device("Google TPU v1")
print(f"\ninputs per die: TPU {tpu_d.peak_gflops('int8') / 1e3:g} TOPS int8 at {tpu_d.watts:g} W TDP; K80 "
      f"{gpu_d.peak_gflops('fp32') / 1e3:g} TFLOPS fp32 at {gpu_d.watts:g} W; Haswell "
      f"{cpu_d.peak_gflops('int8') / 1e3:g} TOPS 8-bit at {cpu_d.watts:g} W")
rebuilt = {r["ratio"]: r["rebuilt"] for r in tpu_rows}


def ratio_span(kind):
    """'33-35x': the rebuilt ratio of `kind` against the GPU and the CPU, lower one first."""
    lo, hi = sorted(round(rebuilt[f"{kind}, TPU vs {base}"]) for base in ("GPU", "CPU"))
    return f"{lo}x" if lo == hi else f"{lo}-{hi}x"


overstate = {base: rebuilt[f"peak ops/s per TDP watt, TPU vs {base}"]
             / rebuilt[f"measured speed per TDP watt, TPU vs {base}"] for base in ("GPU", "CPU")}
print("peak per TDP watt over measured speed per TDP watt: "
      + ", ".join(f"{v:.1f}x against the {base}" for base, v in overstate.items()))
# every figure of this section comes from the paper's inputs: data=True
lab.quote("tpu_peak", ratio_span("peak ops/s"), "{}", data=True)
lab.quote("tpu_peak_vs_cpu", rebuilt["peak ops/s, TPU vs CPU"], "{:.0f}x", data=True)
lab.quote("tpu_peak_per_tdp", ratio_span("peak ops/s per TDP watt"), "{}", data=True)
for base in ("GPU", "CPU"):
    lab.quote(f"tpu_speed_vs_{base.lower()}", rebuilt[f"measured speed (Table 6, weighted), TPU vs {base}"], "{:.0f}x",
              data=True)
    lab.quote(f"tpu_speed_per_tdp_vs_{base.lower()}", rebuilt[f"measured speed per TDP watt, TPU vs {base}"], "{:.0f}x",
              data=True)
    lab.quote(f"tpu_peak_over_speed_vs_{base.lower()}", overstate[base], "{:.1f}x", data=True)
lab.quote("tpu_fig9_vs_gpu", rebuilt["Fig. 9 incremental perf/W, TPU vs GPU (83 / 2.9)"], "{:.0f}x", data=True)
lab.quote("tpu_fig9_vs_cpu", rebuilt["Fig. 9 incremental perf/W, TPU vs CPU"], "{:.0f}x", data=True)

# %% [markdown] sweat={"id": "sec-tpu-read"}
# **Read the rebuild.** Peak against peak, the TPU is {{tpu_peak}} the K80 and the Haswell; peak per TDP watt,
# {{tpu_peak_per_tdp}}. The measured, weighted-mean speed-ups (Table 6) give {{tpu_speed_vs_gpu}} against the GPU
# and {{tpu_speed_vs_cpu}} against the CPU: the paper's "15X-30X". Divided by TDP they give
# {{tpu_speed_per_tdp_vs_gpu}} and {{tpu_speed_per_tdp_vs_cpu}}, inside "30X-80X"; the paper's own perf/Watt
# (Figure 9) uses measured server power and gives {{tpu_fig9_vs_gpu}} and {{tpu_fig9_vs_cpu}} with the host
# excluded. The gap between peak ratios and measured ones (peak per TDP watt over measured speed per TDP
# watt: {{tpu_peak_over_speed_vs_gpu}} against the GPU, {{tpu_peak_over_speed_vs_cpu}} against the CPU) is
# the section 3 lesson again: the TPU's weights came from 34 GB/s memory, the lowest slope of the int8 panel
# in section 2, and the paper's abstract estimates that the K80's GDDR5 memory in the TPU "would triple
# achieved TOPS": its applications ran mostly under the slanted roof, far from
# 92 TOPS. A chip's peak per watt bounds its value; only a workload measured at the wall says what it
# delivers.

# %% [markdown] sweat={"id": "sec-cpu"}
# ## 6. This CPU, measured on the same workloads
#
# The same three shapes, in float32 through numpy's BLAS on all cores: the MLP (4 square layers) at batch 1
# and at a larger batch, and a decode step written as the chain of matrix-vector products of a GPT-2-like
# model (12 layers of 12 d^2 weights plus a 50,257-word output layer). Quick mode uses smaller widths. Each
# is timed with `bench`, then run for a fixed time inside an energy meter (`lab.meter`): joules are
# **measured** where this CPU has a sensor, else **estimated** from the TDP and core count the setup cell
# printed (the label says which).

# %% sweat={"id": "cpu-measure", "role": "demo"}
rng = np.random.default_rng(0)
WIDTH = pick(2048, 4096)
D_MODEL = pick(384, 768)
BIG_BATCH = pick(64, 256)
mlp_w = [rng.standard_normal((WIDTH, WIDTH), dtype=np.float32) * 0.02 for _ in range(4)]
dec_w = [rng.standard_normal((D_MODEL, 12 * D_MODEL), dtype=np.float32) * 0.02 for _ in range(12)]
dec_w.append(rng.standard_normal((D_MODEL, 50_257), dtype=np.float32) * 0.02)
mlp_params = sum(w.size for w in mlp_w)
dec_params = sum(w.size for w in dec_w)
x1 = rng.standard_normal((1, WIDTH), dtype=np.float32)
xb = rng.standard_normal((BIG_BATCH, WIDTH), dtype=np.float32)
t1 = rng.standard_normal((1, D_MODEL), dtype=np.float32)


def mlp(x):
    for w in mlp_w:
        x = np.maximum(x @ w, 0.0)
    return x


def decode_step(x):
    for w in dec_w[:-1]:
        x = (x @ w)[:, :D_MODEL]  # a stand-in for one layer's 12 d^2 weights, read once
    return x @ dec_w[-1]


CPU_WORK = [("MLP, batch 1", lambda: mlp(x1), 1, mlp_params, 1),
            (f"MLP, batch {BIG_BATCH}", lambda: mlp(xb), BIG_BATCH, mlp_params, BIG_BATCH),
            ("decode step, batch 1", lambda: decode_step(t1), 1, dec_params, 1)]
cpu_rows = []
window_s = pick(1.0, 2.0)
for name, step, inputs, params, batch in CPU_WORK:
    timing = bench(step, budget_s=pick(0.4, 1.0))
    e = D.measure_energy(step, inputs, window_s, meter=lab.meter(cores_used=CORES))
    pred = D.predict(MINE, D.Workload(name, params, batch, "fp32"))
    cpu_rows.append({"workload": name, "params": params, "batch": batch, "median_s": timing.median_s,
                     "per_second": inputs / timing.median_s,
                     "joules_per_input": (e["joules"] / (e["per_second"] * e["seconds"])) if e["joules"] else None,
                     "per_joule": e["per_joule"], "kind": e["kind"], "source": e["source"],
                     "model_per_second": pred.per_second, "model_bound": pred.bound})
print(f"this machine: {describe().cpu_model}; numpy float32, {CORES} cores; weights: MLP {mlp_params / 1e6:.1f} M "
      f"({mlp_params * 4 / 1e6:.0f} MB), decode {dec_params / 1e6:.1f} M ({dec_params * 4 / 1e6:.0f} MB)\n")
print(f"{'workload':22s} {'median':>10s} {'inputs/s':>10s} {'model/s':>10s} {'bound':>8s} {'of model':>9s} "
      f"{'J per input':>12s} {'inputs/J':>10s}  energy kind")
for r in cpu_rows:
    print(f"{r['workload']:22s} {format_seconds(r['median_s']):>10s} {r['per_second']:10.4g} "
          f"{r['model_per_second']:10.4g} {r['model_bound']:>8s} {r['per_second'] / r['model_per_second']:8.0%} "
          f"{fmt(r['joules_per_input']):>12s} {fmt(r['per_joule']):>10s}  {r['kind']}")
gain = cpu_rows[1]["per_second"] / cpu_rows[0]["per_second"]
model_gain = cpu_rows[1]["model_per_second"] / cpu_rows[0]["model_per_second"]
print(f"\nbatch {BIG_BATCH} over batch 1: {gain:.1f}x the inputs per second measured, {model_gain:.1f}x in the model")
print(f"energy: {cpu_rows[0]['kind']}; {cpu_rows[0]['source']}")
batch1 = [r for r in cpu_rows if r["batch"] == 1]
bounds = sorted({r["model_bound"] for r in batch1})
lab.quote("cpu_batch1_bound", f"{bounds[0]}-bound" if len(bounds) == 1 else
          "; ".join(f"{r['workload']}: {r['model_bound']}-bound" for r in batch1), "{}")
lab.quote("cpu_batch_gain", gain, "{:.1f}x")
lab.quote("cpu_batch_gain_model", model_gain, "{:.1f}x")
lab.quote("cpu_batch1_share", " and ".join(f"{r['per_second'] / r['model_per_second']:.0%}" for r in batch1), "{}")
lab.quote("cpu_energy_kind", cpu_rows[0]["kind"], "{}")

# %% [markdown] sweat={"id": "sec-cpu-read"}
# **Read the table.** "model/s" is the roofline prediction from *this machine's* measured roofline (section
# 2); "of model" is how much of it the run achieved. In the shipped run the batch-1 rows are
# {{cpu_batch1_bound}} in the model (section 3 found every device memory-bound at batch 1); the batched MLP
# row reuses each weight for every input of the batch, so its inputs per second (and per joule) go up:
# {{cpu_batch_gain}} measured against {{cpu_batch_gain_model}} in the model. The batch-1 rows reached
# {{cpu_batch1_share}} of the model.
# Above 100%, the weights came from the caches, faster than the memory bandwidth the model assumes (quick
# mode's smaller weights fit a large last-level cache more easily). Far below it, the usual suspects are
# BLAS's matrix-vector path and, on a shared machine, BLAS threads waiting for a core another program holds
# (lab 00's oversubscription experiment).
#
# The energy kind in the shipped run is **{{cpu_energy_kind}}** (your table's last column gives yours). Where it
# reads **estimated**, the joules are the TDP
# model's: they scale with CPU time and say nothing a sensor would add (lab 00). To make the estimate yours,
# set SWEAT_TDP_W and SWEAT_CHIP_CORES before starting JupyterLab, or write them in sweatlab.ini
# (`sweatlab doctor` shows which inputs are in use). Where it reads **measured**, it is the whole CPU
# package, other programs included.

# %% [markdown] sweat={"id": "sec-gpu"}
# ## 7. An NVIDIA GPU, measured here when there is one
#
# When PyTorch sees a CUDA GPU, the next cell runs the MLP in bf16 on it at batch 1 and 256, with the GPU's
# own energy counter (NVML; the meter first samples the idle power so you can see how much the work added).
# Without one it says so and shows the shipped H200 measurement and the model's prediction instead.

# %% sweat={"id": "gpu-measure", "role": "demo"}
gpu_rows = []
try:
    import torch
    HAVE_CUDA = torch.cuda.is_available()
except Exception as err:  # torch missing or broken: treat as no GPU
    HAVE_CUDA, torch = False, None
    print(f"(torch did not load: {err})")
if HAVE_CUDA:
    dev_name = torch.cuda.get_device_name(0)
    g_w = [torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16) * 0.02 for _ in range(4)]
    for b in (1, 256):
        gx = torch.randn(b, 4096, device="cuda", dtype=torch.bfloat16)

        def gpu_step(gx=gx):
            h = gx
            for w in g_w:
                h = torch.relu(h @ w)
            return h

        # the GPU's own counter only: lab.meter()'s CPU estimate would say nothing about work on the GPU
        e = D.measure_energy(gpu_step, b, pick(1.0, 2.0), sync=torch.cuda.synchronize,
                             meter=energy.EnergyMeter(devices="gpu", poll_s=None))
        gpu_rows.append({"device": dev_name, "batch": b, **e})
        print(f"{dev_name}: MLP 4x4096 bf16, batch {b}: {e['per_second']:,.0f} inferences/s; "
              f"{fmt(e['per_joule'])} inferences/J ({e['kind']}: {e['source']}); idle before: {fmt(e['idle_w'])} W")
else:
    print("no NVIDIA GPU visible to PyTorch here (torch.cuda.is_available() is False): nothing measured.")
    print("shipped instead (H200 SXM, CUDA graph, board energy; provenance in section 4):")
    for r in energy_data.SHIPPED_H200["MLP, CUDA graph"]:
        if r.batch in (1, 256):
            pred = D.predict(h200, D.Workload("MLP", energy_data.MLP_PARAMS, r.batch, "bf16"))
            print(f"  MLP 4x4096 bf16, batch {r.batch:4d}: measured {r.per_second:10,.0f} inferences/s, "
                  f"{1 / r.joules_per_input:7,.0f} inferences/J at {r.watts:.0f} W | model {pred.per_second:10,.0f}/s, "
                  f"{pred.per_joule:7,.0f}/J at 700 W")

# %% [markdown] sweat={"id": "sec-decide"}
# ## 8. Choosing a device
#
# A service must answer each request within a **latency budget** and may spend at most an **energy budget**
# per request (or a cost: joules times the price of electricity). Among the devices that meet both, the
# cheapest in joules wins; the fastest device is the right answer only when it is also within the energy
# budget.
#
# ### Exercise 5: pick a device
# Write `choose_device(options, latency_budget_s, energy_budget_j)`. `options` is a list of dicts with keys
# `"name"`, `"seconds"` (per request) and `"joules"` (per request). Return the name of the device that meets
# both budgets with the fewest joules, or `None` if no device meets both.

# %% sweat={"id": "ex-choose", "role": "answer", "exercise": "choose_device"}
def choose_device(options, latency_budget_s, energy_budget_j):
    """Name of the device within both budgets that uses the fewest joules; None if none qualifies."""
    ### BEGIN SOLUTION
    ok = [o for o in options if o["seconds"] <= latency_budget_s and o["joules"] <= energy_budget_j]
    if not ok:
        return None
    return min(ok, key=lambda o: o["joules"])["name"]
    ### END SOLUTION


# %% sweat={"id": "check-choose", "role": "check", "exercise": "choose_device", "title": "Exercise 5: pick a device"}
from sweatlab.kit import check
check("choose_device")

# %% sweat={"id": "decide", "role": "demo"}
my_choose = lab.mine("choose_device")
SCENARIOS = [  # (request, workload, latency budget s, energy budget J per request)
    ("one chat token, batch 1", D.WORKLOADS[2], 0.005, 0.05),
    ("one chat token, batch 1, tight latency", D.WORKLOADS[2], 0.0001, 0.05),
    ("256 classifications at once", D.WORKLOADS[1], 0.002, 0.5),
    ("a 2048-token prompt (prefill)", D.WORKLOADS[3], 0.01, 1.0),
]
decisions = {}
for title, w, lat, joules in SCENARIOS:
    options = []
    for d in SHOWN:
        p = D.predict(d, w)
        if p and p.per_joule:
            options.append({"name": d.name, "seconds": p.seconds, "joules": p.seconds * p.watts})
    pick_name = my_choose(options, lat, joules)
    fastest = min(options, key=lambda o: o["seconds"])
    decisions[title] = pick_name
    chosen = next((o for o in options if o["name"] == pick_name), None)
    why = (f"{format_seconds(chosen['seconds'])}, {chosen['joules']:.3g} J per request" if chosen else
           "no device meets both budgets")
    print(f"{title}: budgets {format_seconds(lat)} and {joules:g} J -> {lab.label('choose_device', str(pick_name))} "
          f"({why}); fastest: "
          f"{fastest['name']} ({format_seconds(fastest['seconds'])}, {fastest['joules']:.3g} J)")
print("\n(model predictions in bf16 at each device's power figure; devices without a power figure are left out)")

# %% [markdown] sweat={"id": "sec-decide-read"}
# **Justify each choice from the printed numbers**: which budget excluded the fastest device, and by how
# much? The model's joules are a floor (section 4): a measured GPU at batch 1 through a framework spent
# {{h200_generate_over_model}} the model's energy per token (the shipped H200 run), enough to change a choice
# above. Before you buy, measure the candidate on *your* workload and software.

# %% [markdown] sweat={"id": "sec-thesis"}
# ## 9. Algorithms against hardware
#
# Hernandez & Brown (2020) measured that the compute needed to train a classifier to AlexNet-level accuracy
# on ImageNet fell 44x between 2012 and 2019, and note that Moore's law would have given 11x over the same
# period. Hardware and algorithmic gains multiply. Compare with the spread of peak-per-TDP in the table.

# %% sweat={"id": "thesis", "role": "demo"}
hb = D.HERNANDEZ_BROWN
months = hb["years"] * 12
print(f"{hb['source']}")
print(f"44x in {months} months = a halving every {months / math.log2(hb['compute_reduction']):.1f} months; "
      f"Moore's law over the same years: {hb['moores_law_over_same_period']:g}x")
k80, h100 = D.device("NVIDIA K80"), D.device("NVIDIA H100")
k80_pw = k80.peak_gflops("fp32") / k80.watts
h100_pw = h100.peak_gflops("bf16") / h100.watts
print(f"peak per TDP watt, K80 die fp32 (2014 part) {k80_pw:.1f} GFLOP/J vs H100 SXM bf16 dense (2022 part) "
      f"{h100_pw:,.0f} GFLOP/J: {h100_pw / k80_pw:.0f}x, of which the change of precision is part")

# %% [markdown] sweat={"id": "ex-optimal-task"}
# The other half of algorithmic efficiency is spending a training budget well. Hoffmann et al. (2022) found
# that for a compute-optimal language model, parameters N and training tokens D should grow together: about
# 20 tokens per parameter (their Chinchilla: 70 B parameters on 1.4 T tokens). Training costs about 6 FLOPs
# per parameter per token (forward 2, backward 4): C = 6 N D.
#
# ### Exercise 6: the compute-optimal model for a budget
# Write `compute_optimal(compute_flops)` returning `{"params": N, "tokens": D}` with C = 6 N D and D = 20 N.

# %% sweat={"id": "ex-optimal", "role": "answer", "exercise": "compute_optimal"}
def compute_optimal(compute_flops):
    """Compute-optimal parameters and tokens for a training budget (Hoffmann et al. 2022's 20:1 rule)."""
    ### BEGIN SOLUTION
    n = math.sqrt(compute_flops / 120)
    return {"params": n, "tokens": 20 * n}
    ### END SOLUTION


# %% sweat={"id": "check-optimal", "role": "check", "exercise": "compute_optimal", "title": "Exercise 6: the compute-optimal model for a budget"}
from sweatlab.kit import check
check("compute_optimal")

# %% sweat={"id": "optimal-demo", "role": "demo"}
my_opt = lab.mine("compute_optimal")
h200_meas = D.device("NVIDIA H200 SXM (measured)").peak_gflops("bf16") * 1e9
mine_fp32 = MINE.peak_gflops("fp32") * 1e9
for label, flops_per_s in (("this machine, fp32 at its measured peak", mine_fp32),
                           ("one H200 at its measured bf16 matmul rate", h200_meas)):
    c = flops_per_s * 86_400
    o = my_opt(c)
    print(f"one day of {label} ({c:.2g} FLOPs): {o['params'] / 1e6:,.1f} M parameters on "
          f"{o['tokens'] / 1e9:,.2f} B tokens, from {lab.label('compute_optimal')}")
print("(at 100% utilisation: an upper bound; real training reaches a fraction of the matmul peak)")

# %% [markdown] sweat={"id": "sec-other-hw"}
# ## 10. On other hardware
#
# - **A CPU with AMX** (Intel Sapphire Rapids and later): bf16 and int8 matrix units raise the CPU's roof by
#   several times (the H200 server's host measured 4,159 GFLOP/s bf16 against 1,342 fp32), which moves its
#   ridge right: the CPU stays memory-bound to a larger batch. Section 2's bf16 line shows whether your CPU
#   has a native bf16 path; AVX-512 bf16 (AMD Zen 4) helps less than AMX, AVX2-only CPUs have none.
# - **A CPU energy sensor** (RAPL on Linux with read access): section 6 then reports measured joules of the
#   whole package, other programs included; run the cells on a quiet machine.
# - **An NVIDIA GPU**: section 7 measures it; compare its batch-1 and batch-256 inferences per joule with
#   the shipped H200 and with the model, and watch the idle power line.
# - **Apple silicon**: no power sensor without sudo (powermetrics), so energy stays estimated; memory
#   bandwidth per watt is high, which the decode table rewards.

# %% [markdown] sweat={"id": "sec-record"}
# ## 11. Record what you measured

# %% sweat={"id": "record", "role": "demo", "record_keys": ["devices", "measured", "tpu_paper", "quick"]}
rec = lab.record(
    devices=[{"name": d.name, "peak_gflops_bf16": d.peak_gflops("bf16"), "peak_gflops_fp32": d.peak_gflops("fp32"),
              "bandwidth_gbs": d.bandwidth_gbs, "watts": d.watts, "source_kind": d.source_kind()} for d in SHOWN],
    measured=[{"workload": r["workload"], "device": "this CPU", "throughput": round(r["per_second"], 4),
               "joules": r["joules_per_input"], "kind": r["kind"]} for r in cpu_rows]
    + [{"workload": f"MLP bf16, batch {g['batch']}", "device": g["device"], "throughput": round(g["per_second"], 2),
        "joules": (1 / g["per_joule"]) if g["per_joule"] else None, "kind": g["kind"]} for g in gpu_rows],
    tpu_paper=[{"ratio": r["ratio"], "paper": r["paper"], "rebuilt": round(r["rebuilt"], 2)} for r in tpu_rows],
    quick=QUICK,
)
print(f"recorded in {records.records_path_for_display()}:")
for r in rec["values"]["measured"]:
    print(f"  {r}")

# %% tags=["solution"]
# Author only: save the key plots for the slides (slides/img/05_*.png) when asked to.
if os.environ.get("SWEAT_SLIDES_IMG"):
    for name, figure in (("rooflines", fig_roofs), ("model", fig_model), ("h200", fig_h200)):
        figure.savefig(os.path.join(os.environ["SWEAT_SLIDES_IMG"], f"05_{name}.png"), dpi=120, bbox_inches="tight")
    print("saved slide images")

# %% [markdown] sweat={"id": "summary"}
# ## Summary
#
# - A device table is only as good as its labels: peak or measured, dense or sparse, TDP or measured watts,
#   primary or secondary. Divide a peak by a TDP and you get a bound, not an efficiency.
# - One step reads every weight once: at batch 1 it is memory-bound on every device, and **bandwidth per
#   watt** decides tokens per joule. Batching reuses the weights; a device turns compute-bound at the batch
#   that reaches its ridge point ({{gpu_bound_batch}} for the table's GPUs in bf16).
# - Measured machines fall short of the model: the host and the framework can leave a GPU idle, and idle
#   power is charged to every token. The model is a floor for joules, not a forecast.
# - The TPU paper's "30X-80X" TOPS/Watt is measured on its workloads. Rebuilt from its inputs, peak per TDP
#   watt gives {{tpu_peak_per_tdp}}, measured speed per TDP watt {{tpu_speed_per_tdp_vs_gpu}} against the GPU
#   and {{tpu_speed_per_tdp_vs_cpu}} against the CPU: the peak ratio overstates the measured one by
#   {{tpu_peak_over_speed_vs_gpu}} and {{tpu_peak_over_speed_vs_cpu}}, because the TPU ran further below its
#   peak than the others did (its applications mostly under its 34 GB/s slope).
# - Choose a device under both a latency and an energy budget, from numbers measured on the workload.
#
# ## Reflection questions
# 1. The decode table ranks devices by GB/s per W. What would change in it with int4 weights, and what would not?
# 2. Section 4 charged the H200's idle power to the tokens it produced. When is that fair, and when should idle
#    power be left out (think of a shared, busy server)?
# 3. The TPU paper's measured speed-up over the CPU ({{tpu_speed_vs_cpu}}, weighted) is below its peak ratio
#    ({{tpu_peak_vs_cpu}}). Name two reasons from the paper's own inputs.
# 4. Your CPU's batched MLP: how close to the model did it get, and which roof (compute or memory) was it
#    under? What would move it closer?
# 5. For the "one chat token" scenario, what latency budget would make the CPU the choice? What energy budget?
#
# ## Further reading
# - N. P. Jouppi et al., "In-Datacenter Performance Analysis of a Tensor Processing Unit", ISCA 2017,
#   arXiv:1704.04760 (https://arxiv.org/abs/1704.04760).
# - S. Williams, A. Waterman, D. Patterson, "Roofline: an insightful visual performance model for multicore
#   architectures", Communications of the ACM 52(4), 2009.
# - D. Hernandez, T. B. Brown, "Measuring the Algorithmic Efficiency of Neural Networks", 2020,
#   arXiv:2005.04305 (https://arxiv.org/abs/2005.04305).
# - J. Hoffmann et al., "Training Compute-Optimal Large Language Models", 2022, arXiv:2203.15556
#   (https://arxiv.org/abs/2203.15556).
# - J. Kaplan et al., "Scaling Laws for Neural Language Models", 2020, arXiv:2001.08361.
# - Google Cloud TPU documentation, "TPU v4" and "TPU v5e" (https://cloud.google.com/tpu/docs/v4,
#   https://cloud.google.com/tpu/docs/v5e); NVIDIA's A100, H100, H200, L4 and T4 datasheets (addresses in
#   `sweatlab.topics.devices`).
