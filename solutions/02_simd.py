# %% [markdown] sweat={"id": "intro"}
# # Lab 02: SIMD and threads
#
# **What does the silicon give for free, and what must you ask for?**
#
# Lab 01 ended with the best loop still several times slower than BLAS on the same core. This lab
# closes most of that gap and then uses every core, by asking the hardware for what it has: vector
# lanes and fused multiply-adds (SIMD), instruction-set extensions that libraries switch on for you
# (or not), registers that hold a block of the answer, and threads. Every claim is checked twice: by a
# measurement on *your* machine, and by the machine code or the library's own log.
#
# **You will be able to**
# - name the ISA families (SSE, AVX2, AVX-512 with VNNI and BF16, AMX; NEON and SVE on Arm), say which
#   your CPU has, and compute the hardware peak each gives: cores x clock x lanes x FMA units x 2;
# - explain why an elementwise loop vectorises and a float reduction does not until `fastmath` allows
#   reassociation, and show it by counting vector instructions in the generated assembly;
# - switch a library's instruction-set dispatch off in a fresh process (numpy, OpenBLAS, torch's ATen,
#   oneDNN) and say from the measurement which operations depend on it and why the others do not;
# - write a packed, register-blocked matmul micro-kernel in numba that runs near BLAS, and name the three
#   things it needs (vector width, provably non-negative indices, accumulators as loop-carried sums);
# - run it on several threads, fit Amdahl's law to the scaling, and show and fix oversubscription;
# - say when bf16 is faster than fp32 on a CPU, from its instruction set.
#
# **Prerequisites:** labs 00 and 01 (timing, GFLOP/s, the hardware peak, the float32 tolerance, the
# tiled kernel). NumPy and numba as used there.
#
# **Time.** Compute, *measured* by running this notebook top to bottom: 188 s in full mode (the default when
# you run it) on a 2-core Intel Xeon virtual machine with AMX (Sapphire Rapids-class); 80-100 s in quick mode
# (`SWEAT_QUICK=1`, used by the tests), measured earlier on a 2-vCPU AMD EPYC virtual machine (Zen 4,
# inferred: CPU family 25 with AVX-512 and bf16, no AMX), where full mode took 157 s. Most of it is fresh
# Python processes started for the instruction-set switches (torch takes a few seconds to import each time)
# and the scalar matmul at n = 1024. The solution's outputs and the figures quoted in this lab come from the
# course's shipped run, in full mode (n = 1024) on {{machine}}. Reading and the six exercises: about 90
# minutes, *estimated* by the author (not timed with learners): 30 minutes of reading, 5-10 minutes for each
# short exercise, 25 minutes for the micro-kernel. Plan a 90-120 minute slot.
#
# Six exercises, each a function followed by a `check(...)` cell: `peak_gflops`, `scores_fast`,
# `npy_disable`, `micro_6x4` (inside `matmul_micro`), `matmul_micro_parallel`, `amdahl_fit`.

# %% sweat={"id": "setup", "role": "setup"}
import dataclasses
import inspect
import math
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, NullFormatter
from numba import njit, prange
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from sweatlab.topics import gemm
from sweatlab.measure import hardware

machine = hardware.describe()
WIDTH_NOTE = gemm.match_vector_width(machine)  # first, before any numba kernel exists: that fixes the width

from sweatlab.measure import asm, config, flops, peak, records, roofline
from sweatlab.topics import isa, ladder, parallel
from sweatlab.kit import open_lab
from sweatlab.topics.ladder import Ladder, error_vs_bound, gamma, random_matrices
from sweatlab.measure.timing import bench, format_seconds, thread_settings

lab = open_lab("02_simd")  # checks, stand-ins (labelled), the energy meter, quoted figures, the record
QUICK = config.quick()
CORES = machine.usable_cores or 1
N = config.pick(512, 1024)  # the matmul ladder; the aims of this lab are stated at n = 1024 (full mode)
N_SCORES = config.pick(256, 512)  # exercise 2's Q @ K.T
BUDGET_S = config.pick(0.2, 0.5)  # seconds of timed runs per measurement
ROUNDS = config.pick(3, 5)  # interleaved rounds per operation in the fresh-process measurements
MR, NR, KC, NC = gemm.MR, gemm.NR, gemm.KC, gemm.NC  # 6 x 4 register block; k and n cache blocks
pack_a, pack_bt = gemm.pack_a, gemm.pack_bt  # the packing routines (section 4 prints them)
scores_strict = gemm.reference_scores_strict  # Q @ K.T, each sum added in order: exercise 2's reference
matmul_micro_1t = gemm.reference_matmul_micro  # the library's one-thread micro-kernel: exercise 5's reference
TILE_LAB01 = 64


def matmul_lab01(A, B):
    """Lab 01's best kernel, tiled ikj with packed tiles of B (the library's copy), tile 64: exercise 4's reference."""
    return ladder.reference_matmul_tiled(A, B, TILE_LAB01)


# Energy: measured where a CPU energy sensor (RAPL) can be read, else a labelled *estimate* from stated
# inputs (lab 00, section 8): lab.meter() and lab.energy. The inputs are your CPU's TDP and core count
# (set SWEAT_TDP_W and SWEAT_CHIP_CORES before starting JupyterLab, or write them in sweatlab.ini;
# `sweatlab doctor` shows which are in use), else a hypothetical chip, named as such.
# The fresh processes of sections 3, 4, 6 and 7 get the same inputs, as a job's dict:
JOB_ENERGY = {"tdp_w": lab.energy.tdp_w, "host_cores": lab.energy.chip_cores, "source": lab.energy.source,
              "window_s": config.pick(0.05, 0.1)}
KIND = {"measured": "measured", "estimated": "est.", "unavailable": "n/a", None: "n/a"}


def timed(fn, *args, work, threads=1, budget_s=None, name=None):
    """Time fn(*args) (bench: median of repeated runs) inside an energy meter.
    Returns (BenchResult, GFLOP/s, GFLOP per joule or None, energy kind); work = FLOPs of one call."""
    m = lab.meter(threads).begin()
    res = bench(fn, *args, budget_s=BUDGET_S if budget_s is None else budget_s, min_runs=3, name=name)
    reading = m.end()
    gf = res.gflops(work)
    return res, gf, (gf / reading.average_w if reading.average_w else None), reading.kind


WIDEST = next((name for flag, name in (("amx_tile", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"), ("neon", "NEON"))
               if machine.isa.get(flag)), None)  # the widest family, in the machine's name as the figures give it
print("this machine: " + lab.quote("machine", f"{machine.cpu_model or machine.arch}"
                                   + (f" with {WIDEST}" if WIDEST else "") + f", {CORES} core{'s' if CORES != 1 else ''}", "{}"))
print(f"{lab.quote('mode', 'quick' if QUICK else 'full', '{}')} mode; matmuls at n = {lab.quote('n', N, '{}')}; "
      f"{lab.quote('cores', CORES, '{}')} usable core{'s' if CORES != 1 else ''}")
print(WIDTH_NOTE)
print(f"energy estimate's inputs: {lab.energy}")

# %% [markdown] sweat={"id": "sec-isa"}
# ## 1. Lanes, FMA and the instruction-set families
#
# A **SIMD** instruction does the same operation on every **lane** of a vector register: a 256-bit
# `ymm` register holds 8 float32, a 512-bit `zmm` 16, a 128-bit NEON register 4. A **fused
# multiply-add** (FMA) computes a·b + c in one instruction with one rounding: 2 FLOPs per lane. A core
# has a fixed number of FMA **units** (pipes) that each start one such instruction per cycle. So one
# core's peak is clock x lanes x units x 2, and the chip's is that times its cores: the formula of lab 00.
#
# The extensions came in **families**, each a set of instructions a program may use only where the CPU
# says it has them (Linux lists them as `flags` in `/proc/cpuinfo`; `sweatlab.measure.hardware` reads them):
#
# | family | vector | adds |
# |---|---|---|
# | SSE2 (x86-64 baseline) | 128 bit | 4 float32 lanes, separate multiply and add |
# | AVX2 + FMA | 256 bit | 8 lanes, fused multiply-add |
# | AVX-512 | 512 bit | 16 lanes, 32 registers, masks; **VNNI**: int8 dot products (`vpdpbusd`), **BF16**: bf16 dot products (`vdpbf16ps`) |
# | AMX (Intel, Sapphire Rapids on) | tiles of 16 rows x 64 bytes | a matrix unit: 1024 bf16 FLOP per cycle per core (Intel) |
# | NEON / ASIMD (every 64-bit Arm) | 128 bit | 4 lanes, FMA; dot-product and BF16 extensions |
# | SVE / SVE2, SME (newer Arm servers) | 128-2048 bit, chosen by the chip | length-agnostic vectors; SME: matrix tiles |
#
# Two traps. A family being present does not say how wide the units are: AMD Zen 4 runs each
# 512-bit instruction on its 256-bit units as two halves, so AVX-512 does not double its float32 peak
# (AMD, *Software Optimization Guide for the AMD Zen4 Microarchitecture*, pub. 57647); Intel's server
# cores and Zen 5's desktop and server parts have 512-bit units. And narrower numbers fill more lanes only with instructions made
# for them (VNNI, BF16, AMX): without those, the CPU widens them to float32 first.
#
# The cell below reads this CPU's flags and computes the peak each family gives here, with
# `sweatlab.topics.isa.families` (it cuts the CPU's instruction set down to one family at a time and asks
# `sweatlab.measure.peak` for the peak: same core, same clock, same number of units).

# %% sweat={"id": "isa-machine", "role": "demo"}
print(machine)
CLOCK = peak.clock()
print(f"clock: {CLOCK.ghz:.2f} GHz ({CLOCK.source})" if CLOCK.ghz else f"clock: unknown ({CLOCK.source})")
HW_1 = peak.hardware_peak("float32", machine, CLOCK, cores=1)
HW_ALL = peak.hardware_peak("float32", machine, CLOCK, cores=CORES)
FAMILIES = isa.families(machine, CLOCK, cores=1)
print(f"\n{'family':<20}{'on this CPU':>12}{'register':>10}{'peak, 1 core':>18}{f'peak, {CORES} cores':>18}  what it adds")
for f in FAMILIES:
    here = {True: "yes", False: "no", None: "not said"}[f.present]
    unit = "GOP/s" if f.dtype == "int8" else "GFLOP/s"
    one = f"{f.peak_gflops:,.0f} {unit}" if f.peak_gflops else "-"
    all_ = f"{f.peak_gflops * CORES:,.0f} {unit}" if f.peak_gflops else "-"
    bits = f"{f.vector_bits}" if f.vector_bits else "varies"
    print(f"{f.name:<20}{here:>12}{bits:>10}{one:>18}{all_:>18}  {f.dtype}: {f.what}")
print(f"\nhardware peak, float32, 1 core: {HW_1.formula()}")
for line in HW_1.assumed + HW_1.notes:
    print(f"  note: {line}")

# %% [markdown] sweat={"id": "ex-peak-task"}
# ### Exercise 1: the peak from its parts
# Write `peak_gflops(cores, ghz, vector_bits, fma_units, bits=32)`: the peak in GFLOP/s of `cores`
# cores at `ghz` GHz whose `fma_units` FMA units are each `vector_bits` wide, for numbers of `bits`
# bits. How many numbers fit in one register, and how many FLOPs is one fused multiply-add per lane?

# %% sweat={"id": "ex-peak", "role": "answer", "exercise": "peak"}
def peak_gflops(cores, ghz, vector_bits, fma_units, bits=32):
    """Peak GFLOP/s of `cores` cores at `ghz` GHz with `fma_units` FMA units of `vector_bits` bits, for `bits`-bit numbers."""
    ### BEGIN SOLUTION
    lanes = vector_bits // bits
    return cores * ghz * lanes * fma_units * 2
    ### END SOLUTION


# %% sweat={"id": "check-peak", "role": "check", "exercise": "peak", "title": "Exercise 1: the peak from its parts"}
from sweatlab.kit import check
check("peak")

# %% sweat={"id": "isa-peak-plot", "role": "demo"}
unit_bits = HW_1.lanes * 32  # the width of this core's FMA units (Zen 4: 256 although it runs AVX-512)
mine = lab.mine("peak_gflops")(1, CLOCK.ghz or float("nan"), unit_bits, HW_1.units)  # yours, or the stand-in
print(f"peak_gflops(1, {CLOCK.ghz or float('nan'):.2f}, {unit_bits}, {HW_1.units}) = "
      f"{lab.label('peak_gflops', f'{mine:.1f} GFLOP/s')}; the library's: {HW_1.gflops or float('nan'):.1f}")

fig_families, ax = plt.subplots(figsize=(8, 4.2), layout="constrained")
names = [f.name for f in FAMILIES]
for y, f in enumerate(FAMILIES):
    if f.peak_gflops:
        colour = {"float32": "tab:blue", "bf16": "tab:purple", "int8": "tab:green"}[f.dtype]
        ax.barh(y, f.peak_gflops, color=colour)
        ax.annotate(f"{f.peak_gflops:,.0f} {'GOP/s' if f.dtype == 'int8' else 'GFLOP/s'} ({f.dtype})",
                    (f.peak_gflops * 1.08, y), va="center", fontsize=9)
    else:
        why = "not on this CPU" if f.present is False else "present; peak not modelled" if f.present else "not reported"
        ax.annotate(why, (1.5, y), va="center", fontsize=9, color="grey")
known = [f.peak_gflops for f in FAMILIES if f.peak_gflops] or [1.0]
ax.set(xscale="log", xlim=(1, max(known) * 12), xlabel="peak of one core, GFLOP/s (int8: GOP/s), log scale",
       title=f"What each instruction-set family gives one core of this CPU at {CLOCK.ghz or 0:.2f} GHz")
ax.set_yticks(range(len(names)), names)
ax.invert_yaxis();

# %% [markdown] sweat={"id": "isa-read"}
# Read the bars (computed, not measured: the formula with this CPU's clock and units). Going from scalar
# code to the widest float32 family multiplies the ceiling by the lane count; bf16 and int8 dot-product
# instructions multiply it again, and AMX's tiles (where the CPU has them) far more, but only for code that
# uses them. Whether AVX-512 doubles AVX2 depends on the units, not the family: where they are 512 bits
# wide (Intel's server cores, Zen 5's desktop and server parts) the AVX-512 bar is twice the AVX2 one; on
# a Zen 4 the two bars are equal (the same 256-bit units). None of this happens by itself: the rest of the
# lab is about who generates these instructions (the compiler, or a library's dispatcher) and when.

# %% [markdown] sweat={"id": "sec-autovec"}
# ## 2. Auto-vectorisation: what the compiler may and may not do
#
# numba hands each loop to LLVM, which turns a loop into SIMD code when the result is *exactly* the
# same as running the iterations one at a time. Two loops:
#
# ```
# for i in range(n): y[i] += a * x[i]     # elementwise: every iteration independent
# for i in range(n): s += x[i] * y[i]     # reduction: every iteration needs the s of the one before
# ```
#
# The first vectorises: 8 or 16 iterations at once give the same numbers. The second would need 16
# partial sums added together at the end, which rounds differently: float addition is not associative
# ((a + b) + c ≠ a + (b + c) in general), and IEEE arithmetic promises the order written. So LLVM keeps
# one scalar chain. `@njit(fastmath=True)` gives it permission to **reassociate** (and to **contract**
# a·b + c into one FMA). The result changes within the bound γ_k of lab 01, which holds in any order.
#
# Evidence, not faith: `sweatlab.measure.asm.float_ops` counts the floating-point instructions numba generated,
# scalar or packed by register width, and the FMAs among them.

# %% sweat={"id": "autovec-asm", "role": "demo"}
@njit
def scale_add(a, x, y):
    """y += a x: elementwise, every iteration independent."""
    for i in range(x.shape[0]):
        y[i] += a * x[i]


@njit
def dot_strict(x, y):
    """One running sum, added in order: IEEE order kept."""
    s = np.float32(0.0)
    for i in range(x.shape[0]):
        s += x[i] * y[i]
    return s


@njit(fastmath=True)
def dot_fast(x, y):
    """The same loop; fastmath lets LLVM reassociate the sum over vector lanes (and fuse into FMAs)."""
    s = np.float32(0.0)
    for i in range(x.shape[0]):
        s += x[i] * y[i]
    return s


N_DOT = 4096  # 2 x 16 KiB of float32: in L1, so memory is not the limit
x_d, y_d = (np.random.default_rng(seed).random(N_DOT, dtype=np.float32) for seed in (1, 2))
scale_add(np.float32(2.0), x_d, y_d.copy()), dot_strict(x_d, y_d), dot_fast(x_d, y_d)  # compile
COLUMNS = ["scalar", "packed xmm (128 bit)", "packed ymm (256 bit)", "packed zmm (512 bit)", "packed neon (128 bit)",
           "of which fma"]
SHORT = {"scalar": "scalar", "packed xmm (128 bit)": "xmm", "packed ymm (256 bit)": "ymm",
         "packed zmm (512 bit)": "zmm", "packed neon (128 bit)": "neon", "of which fma": "FMA"}
print(f"{'kernel':<12}" + "".join(f"{SHORT[c]:>8}" for c in COLUMNS) + "   (floating-point instructions in the code)")
DOT_COUNTS = {}
for name, fn in (("scale_add", scale_add), ("dot_strict", dot_strict), ("dot_fast", dot_fast)):
    counts = DOT_COUNTS[name] = asm.float_ops(asm.numba_asm(fn))
    print(f"{name:<12}" + "".join(f"{counts[c]:>8}" for c in COLUMNS))
hot = [line.strip() for line in asm.numba_asm(dot_fast).splitlines() if "fmadd" in line or "fmla" in line][:3]
print("\nfused multiply-adds in dot_fast:", *hot, sep="\n  ")


def ops_in_words(counts):
    """'18 scalar, 0 packed, 0 FMA': a kernel's floating-point instructions, as the decks quote them."""
    packed = sum(v for k, v in counts.items() if k.startswith("packed"))
    return f"{counts['scalar']} scalar, {packed} packed, {counts['of which fma']} FMA"


widest = max((c for c in COLUMNS if c.startswith("packed")), key=lambda c: DOT_COUNTS["dot_fast"][c])
print(f"dot_strict: {lab.quote('strict_dot_ops', ops_in_words(DOT_COUNTS['dot_strict']), '{}')}; "
      f"dot_fast: {lab.quote('fast_dot_ops', ops_in_words(DOT_COUNTS['dot_fast']), '{}')}, mostly "
      f"{lab.quote('fast_dot_register', SHORT[widest] if DOT_COUNTS['dot_fast'][widest] else 'no packed', '{}')} "
      "registers")

# %% [markdown] sweat={"id": "chains-md"}
# Read the counts: `scale_add` and `dot_fast` run on packed registers (ymm, zmm or NEON, whichever this
# CPU and numba's target chose, section 4); `dot_strict` is scalar only, without a single FMA. The
# scalar instructions left in the vector kernels handle the last few elements and the final sum of the
# lanes. In the shipped run: `dot_strict` {{strict_dot_ops}}; `dot_fast` {{fast_dot_ops}}, its packed ones mostly
# {{fast_dot_register}}.
#
# **Latency or throughput?** Why is one chain slow? An add takes several cycles from its inputs to
# its result (its *latency*: 3 cycles on AMD's Zen cores, 4 on Intel's Skylake-family cores, in A. Fog's
# *Instruction tables*; other cores differ), but the core can *start* one or two adds every cycle (its
# *throughput*). One chain waits the whole latency per step. Independent chains overlap. The cell below
# runs the same dot product with 1, 2, 4 and 8 independent scalar sums (each sum still in order, so no
# `fastmath` is needed), then `dot_fast`: vector lanes *and* several vector chains, which LLVM adds when it
# vectorises; the cycles column it prints says about how long one add takes on your core.

# %% sweat={"id": "chains-measure", "role": "demo"}
@njit
def dot_2_chains(x, y):
    """x and y as (n/2, 2) views: column c feeds running sum c; the sums do not wait on each other."""
    s0 = s1 = np.float32(0.0)
    for r in range(x.shape[0]):
        s0 += x[r, 0] * y[r, 0]
        s1 += x[r, 1] * y[r, 1]
    return s0 + s1


@njit
def dot_4_chains(x, y):
    s0 = s1 = s2 = s3 = np.float32(0.0)
    for r in range(x.shape[0]):
        s0 += x[r, 0] * y[r, 0]
        s1 += x[r, 1] * y[r, 1]
        s2 += x[r, 2] * y[r, 2]
        s3 += x[r, 3] * y[r, 3]
    return (s0 + s1) + (s2 + s3)


@njit
def dot_8_chains(x, y):
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = np.float32(0.0)
    for r in range(x.shape[0]):
        s0 += x[r, 0] * y[r, 0]
        s1 += x[r, 1] * y[r, 1]
        s2 += x[r, 2] * y[r, 2]
        s3 += x[r, 3] * y[r, 3]
        s4 += x[r, 4] * y[r, 4]
        s5 += x[r, 5] * y[r, 5]
        s6 += x[r, 6] * y[r, 6]
        s7 += x[r, 7] * y[r, 7]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


exact = float(x_d.astype(np.float64) @ y_d.astype(np.float64))
ghz = CLOCK.ghz or float("nan")
chain_rows = []
for label, fn, chains in [("1 chain", dot_strict, 1), ("2 chains", dot_2_chains, 2), ("4 chains", dot_4_chains, 4),
                          ("8 chains", dot_8_chains, 8), ("dot_fast (SIMD)", dot_fast, None)]:
    args = (x_d, y_d) if chains in (1, None) else (x_d.reshape(-1, chains), y_d.reshape(-1, chains))
    assert abs(float(fn(*args)) - exact) <= gamma(N_DOT) * exact, label
    res, gf, per_j, kind = timed(fn, *args, work=2 * N_DOT, name=label)
    chain_rows.append((label, res, gf, per_j, kind, chains))
print(f"{'':<17}{'GFLOP/s':>9}{'x 1 chain':>11}{'cycles/step':>13}{'GFLOP/J':>14}")
for label, res, gf, per_j, kind, chains in chain_rows:
    cycles = f"{res.median_s * ghz * 1e9 / (N_DOT / chains):.1f}" if chains else "-"
    energy_text = f"{per_j:.3g} {KIND[kind]}" if per_j else "n/a"
    print(f"[timing] {label:<17}{gf:>9.2f}{gf / chain_rows[0][2]:>10.1f}x{cycles:>13}{energy_text:>14}")
print(f"one chain at 3 cycles per add (AMD Zen; 4 on Intel Skylake-family) allows {2 * ghz / 3:.2f} GFLOP/s; "
      f"'cycles/step': cycles per step of each chain at {ghz:.2f} GHz")
one_chain = chain_rows[0][1].median_s * ghz * 1e9 / N_DOT
print(f"one chain: {lab.quote('chain_cycles', one_chain, '{:.1f}')} cycles per step; dot_fast: "
      f"{lab.quote('simd_over_one_chain', chain_rows[-1][2] / chain_rows[0][2], '{:.0f}x')} one chain's GFLOP/s")
if "estimated" in {r[4] for r in chain_rows}:
    print(f"GFLOP/J est.: an ESTIMATE (no CPU energy sensor read here): {lab.energy.tdp_w:g} W x (cores used / "
          f"{lab.energy.chip_cores}) x CPU utilisation, {lab.energy.source}")

fig_chains, ax = plt.subplots(figsize=(7.5, 3.8), layout="constrained")
for y, (label, res, gf, per_j, kind, chains) in enumerate(chain_rows):
    q1, q3 = np.percentile(res.samples_s, [25, 75])
    ax.errorbar([gf], [y], xerr=[[gf - 2 * N_DOT / q3 / 1e9], [2 * N_DOT / q1 / 1e9 - gf]], fmt="o", ms=8,
                capsize=4, color="tab:green" if chains is None else "tab:blue")
    ax.annotate(f"{gf:.3g} GFLOP/s", (gf * 1.12, y), va="center", fontsize=9)
ax.axvline(2 * ghz / 3, color="grey", ls=":", label="one chain at 3 cycles per add (AMD Zen)")
ax.set_yticks(range(len(chain_rows)), [r[0] for r in chain_rows])
ax.invert_yaxis()
gfs = [r[2] for r in chain_rows]
ax.set(xscale="log", xlim=(min(gfs) / 2, max(gfs) * 4), xlabel="GFLOP/s (median, bars = IQR), log scale",
       title=f"Dot product of {N_DOT} float32 (in L1), one core: latency, then throughput, then SIMD")
ax.set_xticks([t for t in (0.5, 1, 2, 5, 10, 20, 50, 100, 200) if min(gfs) / 2 <= t <= max(gfs) * 4])
ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
ax.xaxis.set_minor_formatter(NullFormatter())
ax.legend(fontsize=8, loc="upper right");

# %% [markdown] sweat={"id": "chains-read"}
# Read the lines: one chain takes about the add latency per step (the cycles column: {{chain_cycles}} cycles
# in the shipped run); independent chains overlap until the core's adders and load ports are busy; vector
# lanes multiply again (`dot_fast` ran at {{simd_over_one_chain}} one chain's GFLOP/s there). The gap between
# the last two rows is what SIMD gives a reduction once it is *allowed* to reorder.

# %% [markdown] sweat={"id": "ex-scores-task"}
# ### Exercise 2: a reduction that vectorises
# Attention scores, kernel matrices and the micro-kernel of section 4 all have this form:
# **S = Q @ Kᵀ**, every entry the dot product of a row of Q with a row of K (both float32, shape
# (m, d) and (n, d)). Write `scores_fast(Q, K)`: for every i and j, the dot product of row i of Q and
# row j of K, as a loop over p in a numba kernel, in float32 (start each sum at `np.float32(0.0)`).
# The decorator is given: `fastmath=True` allows the reassociation. Take the rows once
# (`q = Q[i]`, `k = K[j]`) and loop `for p in range(d)`. The check compares you with float64 within
# γ_d, then times you against the setup's `scores_strict` (the same sums, added in order) at 256 x 256,
# d = 256, and asks for 3x.

# %% sweat={"id": "ex-scores", "role": "answer", "exercise": "reduction"}
@njit(fastmath=True)
def scores_fast(Q, K):
    """S = Q @ K.T in float32: S[i, j] = sum over p of Q[i, p] * K[j, p], each sum free to use vector lanes."""
    m, d = Q.shape
    n = K.shape[0]
    S = np.empty((m, n), dtype=np.float32)
    ### BEGIN SOLUTION
    for i in range(m):
        q = Q[i]
        for j in range(n):
            k = K[j]
            s = np.float32(0.0)
            for p in range(d):
                s += q[p] * k[p]
            S[i, j] = s
    ### END SOLUTION
    return S


# %% sweat={"id": "check-reduction", "role": "check", "exercise": "reduction", "title": "Exercise 2: a reduction that vectorises"}
from sweatlab.kit import check
check("reduction")

# %% sweat={"id": "scores-measure", "role": "demo"}
g = np.random.default_rng(3)
Q_s, K_s = g.random((N_SCORES, N_SCORES), dtype=np.float32), g.random((N_SCORES, N_SCORES), dtype=np.float32)
fast_kernel, S_fast = lab.pick("scores_fast", Q_s, K_s)  # your kernel, or the stand-in while it is not written
assert error_vs_bound(S_fast, Q_s, K_s.T, gamma(N_SCORES)) <= 1
plain_kernel = njit(getattr(fast_kernel, "py_func", fast_kernel))  # the very same Python code, without fastmath
work = 2 * N_SCORES ** 3
score_rows = []
for label, fn in (("scores_strict (setup)", scores_strict), (lab.label("scores_fast"), fast_kernel),
                  (lab.label("scores_fast", "scores_fast, no fastmath"), plain_kernel)):
    fn(Q_s, K_s)
    res, gf, per_j, kind = timed(fn, Q_s, K_s, work=work, name=label)
    counts = asm.float_ops(asm.numba_asm(fn))
    packed = sum(v for k, v in counts.items() if k.startswith("packed"))
    score_rows.append((label, gf, per_j, kind, counts["scalar"], packed, counts["of which fma"]))
print(f"S = Q @ K.T, Q and K {N_SCORES} x {N_SCORES}, float32, one thread")
print(f"{'kernel':<34}{'GFLOP/s':>9}{'GFLOP/J':>13}{'scalar':>8}{'packed':>8}{'FMA':>6}")
for label, gf, per_j, kind, scalar, packed, fma in score_rows:
    energy_text = f"{per_j:.3g} {KIND[kind]}" if per_j else "n/a"
    print(f"[timing] {label:<25}{gf:>9.2f}{energy_text:>13}{scalar:>8}{packed:>8}{fma:>6}")
FASTMATH_GAIN = score_rows[1][1] / score_rows[2][1]
print(f"[timing] {lab.label('scores_fast', 'your kernel')}: with fastmath "
      f"{lab.quote('fastmath_speedup', FASTMATH_GAIN, '{:.1f}x')} the speed of the same code without it")

# %% [markdown] sweat={"id": "scores-read"}
# The last two rows are the same Python function compiled twice: the only difference is permission to
# reassociate, and the instruction counts say what it bought (packed instructions and FMAs where there
# were none); in the shipped run, fastmath gave {{fastmath_speedup}} the speed. Its result differs from the strict
# one in the last bits, within the bound γ_d.

# %% [markdown] sweat={"id": "sec-dispatch"}
# ## 3. Dispatch: the instructions libraries choose for you
#
# numpy, OpenBLAS, torch and oneDNN ship several versions of their hot loops (for SSE, AVX2, AVX-512,
# AMX, NEON...) and pick one **when they load**, from what the CPU reports. Each has a switch to cap the
# choice, read once at start-up, so every setting below runs in a **fresh Python process**
# (`sweatlab.topics.isa.run_job`), which reports its timings and what each library says it used:
#
# | library | switch | what it reaches |
# |---|---|---|
# | numpy | `NPY_DISABLE_CPU_FEATURES` = its dispatch target names | numpy's own loops (exp, tanh, sum...) |
# | OpenBLAS (behind `np.matmul`) | `OPENBLAS_CORETYPE` = a core name | its sgemm kernel |
# | torch (ATen) | `ATEN_CPU_CAPABILITY` = `default`, `avx2`, `avx512` | ATen's elementwise and reduction loops |
# | oneDNN (inside torch) | `ONEDNN_MAX_CPU_ISA` = an ISA level; `ONEDNN_VERBOSE=1` logs each kernel | bf16 and int8 matmuls |
#
# One trap first: numpy ignores a name it does not know, without a word. The cell below asks numpy, in a
# fresh process, to disable `AVX512F` (a flag name, not one of numpy's target names) and prints which
# targets that process still has on.

# %% sweat={"id": "dispatch-numpy", "role": "demo"}
NUMPY = isa.numpy_dispatch()
print(f"numpy's own report: baseline {NUMPY['baseline']}, dispatch targets {NUMPY['dispatch']}, "
      f"found on this CPU {NUMPY['found']}")
probe = isa.run_job({"job": "numpy_ops", "ops": ["np.add"], "rounds": 1}, {"NPY_DISABLE_CPU_FEATURES": "AVX512F"})
if probe.ok:
    print(f"with NPY_DISABLE_CPU_FEATURES=AVX512F numpy still has on: {probe.value['numpy_enabled']} "
          f"({'unchanged: the name was ignored, silently' if probe.value['numpy_enabled'] == NUMPY['found'] else 'changed'})")
else:
    print(f"the probe failed: {probe.error}")

# %% [markdown] sweat={"id": "ex-switch-task"}
# ### Exercise 3: the switch, from numpy's own names
# Write `npy_disable(dispatch, baseline, keep)`: the value of `NPY_DISABLE_CPU_FEATURES` that leaves
# numpy's dispatch targets up to and including `keep` on, given numpy's `dispatch` list (in numpy's
# order) and its `baseline` list. Return the names to disable as one space-separated string in numpy's
# order. `keep=None`, or a baseline name, means baseline only. Numpy refuses to disable a baseline
# target, so never list one. And since numpy would ignore an unknown name silently, raise `ValueError`
# when `keep` is neither a dispatch nor a baseline name.

# %% sweat={"id": "ex-switch", "role": "answer", "exercise": "isa_switch"}
def npy_disable(dispatch, baseline, keep):
    """NPY_DISABLE_CPU_FEATURES that keeps numpy's dispatch targets up to `keep` (None: baseline only)."""
    ### BEGIN SOLUTION
    if keep is None or keep in baseline:
        start = 0
    elif keep in dispatch:
        start = dispatch.index(keep) + 1
    else:
        raise ValueError(f"{keep!r} is not one of numpy's targets: {baseline + dispatch}")
    return " ".join(t for t in dispatch[start:] if t not in baseline)
    ### END SOLUTION


# %% sweat={"id": "check-isa_switch", "role": "check", "exercise": "isa_switch", "title": "Exercise 3: the switch, from numpy's own names"}
from sweatlab.kit import check
check("isa_switch")

# %% [markdown] sweat={"id": "dispatch-run-md"}
# Now the sweep. `sweatlab.topics.isa.plan` chooses the switches that take something away that *this* CPU has
# (and says why it skips the others); your `npy_disable` writes numpy's. Each setting runs the same
# operations in a fresh process, one thread, best of several interleaved rounds: numpy's `exp`, `tanh`,
# `add`, `sum` on 65,536 float32 and `np.matmul` at 512; torch's `add`, `sum`, `exp`, an fp32 and a bf16
# matmul at 512, and an int8 `Linear` (dynamic quantization through oneDNN). Every setting runs twice, in
# two passes, and so do the processes without a switch; per operation, the faster run counts.

# %% sweat={"id": "dispatch-run", "role": "demo"}
SAMPLE_S = config.pick(0.005, 0.01)
NUMPY_JOB = {"job": "numpy_ops", "rounds": ROUNDS, "sample_s": SAMPLE_S, "n_vec": 65536, "n_mat": 512, "threads": 1,
             "energy": JOB_ENERGY}
TORCH_JOB = {"job": "torch_ops", "rounds": ROUNDS, "sample_s": SAMPLE_S, "n_vec": 65536, "n_mat": 512, "threads": 1,
             "energy": JOB_ENERGY}


def best_of(*runs):
    """Per operation, the run with the faster best time (every setting runs more than once)."""
    ok = [r for r in runs if r.ok]
    if not ok:
        return None
    merged = dict(ok[0].value)
    merged["ops"] = {op: min((r.value["ops"][op] for r in ok if op in r.value["ops"]), key=lambda v: v["best_s"])
                     for op in ok[0].value["ops"]}
    return merged


default_runs = {"numpy_ops": [isa.run_job(NUMPY_JOB)], "torch_ops": [isa.run_job(TORCH_JOB)]}
torch_first = default_runs["torch_ops"][0]
TORCH_CAPABILITY = torch_first.value["capability"] if torch_first.ok else None
if not torch_first.ok:
    print(f"torch could not be measured here ({torch_first.error}): its switches are skipped")
SWITCHES, SKIPPED = isa.plan(machine, NUMPY, TORCH_CAPABILITY, thread_settings()["blas"])
keep_avx2 = isa.avx2_level_target(NUMPY["dispatch"])
for i, sw in enumerate(SWITCHES):  # numpy's switches with your npy_disable (the stand-in while it is not written)
    if sw.library == "numpy":
        keep = keep_avx2 if sw.label.startswith("AVX-512") else None
        value = lab.mine("npy_disable")(NUMPY["dispatch"], NUMPY["baseline"], keep)
        SWITCHES[i] = isa.Switch(sw.library, sw.label, {"NPY_DISABLE_CPU_FEATURES": value}, sw.job, sw.changes)
passes = {sw.label: [] for sw in SWITCHES}
for sweep in range(2):  # two passes over every setting: a burst of other work rarely hits both runs of one
    for sw in tqdm(SWITCHES, desc=f"pass {sweep + 1} of 2 (a fresh process per switch)"):
        passes[sw.label].append(isa.run_job(NUMPY_JOB if sw.job == "numpy_ops" else TORCH_JOB, sw.env))
    default_runs["numpy_ops"].append(isa.run_job(NUMPY_JOB))
    if torch_first.ok:
        default_runs["torch_ops"].append(isa.run_job(TORCH_JOB))
DEFAULT = {job: best_of(*runs) for job, runs in default_runs.items()}
switched_runs = {}
for label, runs in passes.items():  # the faster run per operation, kept in the first run's result
    best = best_of(*runs)
    first = next((r for r in runs if r.ok), runs[0])
    switched_runs[label] = dataclasses.replace(first, value=best if best is not None else first.value,
                                               seconds=sum(r.seconds for r in runs))
for sw in SWITCHES:
    env = " ".join(f"{k}={v}" for k, v in sw.env.items())
    state = "ok" if switched_runs[sw.label].ok else f"FAILED ({switched_runs[sw.label].error})"
    print(f"{sw.library:>13}: {env}  [{state}]")
for s in SKIPPED:
    print(f"{s.library:>13}: not measured ({s.label}): {s.reason}")

# %% sweat={"id": "dispatch-table", "role": "demo"}
ISA_SPEEDUPS, rows = {}, []
for sw in SWITCHES:
    run = switched_runs[sw.label]
    base = DEFAULT.get(sw.job)
    if not run.ok or base is None:
        continue
    ratios = isa.speedups(base["ops"], run.value["ops"])
    ISA_SPEEDUPS[f"{sw.library}: {sw.label}"] = {op: round(r, 3) for op, r in ratios.items()}
    for op, r in ratios.items():
        on, off = base["ops"][op], run.value["ops"][op]
        rows.append((sw, op, on, off, r))
def joules(j):
    """Energy as text in a readable unit ('134 uJ', '5.47 mJ')."""
    if j is None:
        return "n/a"
    for unit, scale in (("J", 1.0), ("mJ", 1e-3), ("uJ", 1e-6)):
        if j >= scale:
            return f"{j / scale:.3g} {unit}"
    return f"{j / 1e-9:.3g} nJ"


print("speed-up = time with the switch / time without it (best of interleaved rounds, one thread); > 1: the "
      "instructions switched off were helping")
print(f"{'operation':>22}{'default':>11}{'switched':>11}{'speed-up':>10}{'energy/call':>14}{'switched':>11}")
last = None
for sw, op, on, off, r in rows:
    if sw.label != last:
        env = " ".join(f"{k}={v}" for k, v in sw.env.items())
        print(f"{sw.library}: {sw.label}   [{env}]")
        last = sw.label
    kind = KIND[on.get("energy_kind")]
    mark = "  <- changed" if r >= 1.25 else ""
    print(f"[timing] {op:>13}{format_seconds(on['best_s']):>11}{format_seconds(off['best_s']):>11}{r:>9.2f}x"
          f"{joules(on.get('joules_per_call')):>9} {kind:<4}{joules(off.get('joules_per_call')):>11}{mark}")
print("\nwhat each process says it used:")
print(f"  numpy, no switch: targets on {DEFAULT['numpy_ops']['numpy_enabled']}; BLAS {DEFAULT['numpy_ops']['blas']}")
for sw in SWITCHES:
    run = switched_runs[sw.label]
    if not run.ok:
        continue
    v = run.value
    if sw.job == "numpy_ops":
        print(f"  {sw.library} {sw.label}: numpy targets on {v['numpy_enabled']}; BLAS {v['blas']}")
    else:
        kern = "; ".join(f"{op}: {', '.join(k for k in ks if k.startswith('matmul')) or 'no oneDNN matmul'}"
                         for op, ks in v["kernels"].items() if op != "matmul fp32")
        print(f"  {sw.library} {sw.label}: ATen capability {v['capability']}; oneDNN ISA '{v['onednn_isa']}'; {kern}")
if DEFAULT.get("torch_ops"):
    v = DEFAULT["torch_ops"]
    kern = "; ".join(f"{op}: {', '.join(ks) or 'no oneDNN call (MKL or ATen)'}" for op, ks in v["kernels"].items())
    print(f"  torch, no switch: ATen capability {v['capability']}; oneDNN ISA '{v['onednn_isa']}'; {kern}")
changed = sorted({f"{op} ({sw.library})" for sw, op, on, off, r in rows if r >= 1.25})
same = sorted({op for sw, op, on, off, r in rows if r < 1.25} - {c.split(" (")[0] for c in changed})
print(f"\nchanged by at least one switch (>= 1.25x): {', '.join(changed) or 'none'}")
print(f"never changed: {', '.join(same) or 'none'}")
kinds = {on.get("energy_kind") for sw, op, on, off, r in rows}
if "estimated" in kinds:
    print(f"J/call est.: an ESTIMATE from {lab.energy.tdp_w:g} W x (1 core / {lab.energy.chip_cores}) x utilisation "
          f"({lab.energy.source}): with one power for every process, energy follows time")
BF16_CAPPED = ISA_SPEEDUPS.get("oneDNN: max ISA AVX2", {}).get("matmul bf16")
print("bf16 matmul with oneDNN capped at AVX2 (no native bf16): "
      + (lab.quote("bf16_avx2_slowdown", BF16_CAPPED, "{:.3g}x the time it took without the cap") if BF16_CAPPED else
         lab.quote("bf16_avx2_slowdown", "not measured (no such switch here)", "{}")))

# %% sweat={"id": "dispatch-plot", "role": "demo"}
OPS = list(dict.fromkeys(op for sw, op, on, off, r in rows))
SWITCH_LABELS = list(dict.fromkeys(f"{sw.library}: {sw.label}" for sw, *_ in rows))
grid = np.full((len(SWITCH_LABELS), len(OPS)), np.nan)
for sw, op, on, off, r in rows:
    grid[SWITCH_LABELS.index(f"{sw.library}: {sw.label}"), OPS.index(op)] = r
fig_dispatch, ax = plt.subplots(figsize=(11, 0.55 * len(SWITCH_LABELS) + 2.2), layout="constrained")
shown = np.log10(np.clip(grid, 1.0, 100.0))  # 1x (white) to 100x and more (dark red); below 1x is noise
image = ax.imshow(np.ma.masked_invalid(shown), cmap="Reds", vmin=0, vmax=2, aspect="auto")
ax.set_facecolor("0.85")  # grey: the operation does not run in that library's process
for (i, j), r in np.ndenumerate(grid):
    if np.isfinite(r):
        ax.text(j, i, f"{r:.2g}x", ha="center", va="center", fontsize=9,
                color="white" if r >= 10 else "black", fontweight="bold" if r >= 1.25 else "normal")
ax.set_xticks(range(len(OPS)), OPS, rotation=30, ha="right")
ax.set_yticks(range(len(SWITCH_LABELS)), SWITCH_LABELS)
bar = fig_dispatch.colorbar(image, ax=ax, ticks=[0, 1, 2])
bar.ax.set_yticklabels(["1x", "10x", "100x"])
bar.set_label("time with the switch / time without")
ax.set_title("What each dispatch switch costs each operation: one thread, a fresh process per switch\n"
             "(bold: 1.25x or more; grey: the operation does not run in that library)", fontsize=10);

# %% [markdown] sweat={"id": "dispatch-read"}
# Read the table from its mechanism, not its numbers:
# - **numpy's switch** reaches numpy's own loops only. Transcendental functions (`exp`, `tanh`) have
#   hand-written AVX-512 and AVX2 versions; if yours slowed down with the targets off, those are the
#   loops that were lost. `add` and `sum` on data in L2 are limited by loads and stores, which the
#   compiled baseline (SSE2-class, `X86_V2`) already does well enough, so they do not slow down. `np.matmul`
#   does not move at all: it is OpenBLAS's code, which does its own dispatch.
# - **OpenBLAS's core type** reaches `np.matmul` only: a Haswell (AVX2) kernel instead of an AVX-512
#   one. On a Zen 4 that is a small step at most (the same 256-bit units); on an Intel AVX-512 core it
#   should be larger.
# - **ATen's capability** reaches torch's elementwise and reduction loops; `default` compiles them
#   without AVX2, so `add` and `sum` slow down where they are vectorised loops. The matmuls do not move:
#   fp32 goes to MKL, bf16 and int8 to oneDNN, each with its own dispatch.
# - **oneDNN's maximum ISA** reaches the bf16 and int8 matmuls, and the log names the kernel that ran
#   (`brg_matmul:avx512_core_amx`, or `avx10_1_512_amx` in newer oneDNN, uses AMX tiles;
#   `brg_matmul:avx512_core_bf16` uses `vdpbf16ps`; `gemm:jit:bf16` converts bf16 to fp32; `avx512_core_vnni`
#   uses `vpdpbusd`). The fp32 matmul does not move: it never calls oneDNN. On a CPU with AMX, capping at
#   `AVX512_CORE_BF16` takes away the tiles and leaves `vdpbf16ps`; capping below bf16 takes away the bf16
#   dot product too; capping at AVX2 takes torch's bf16 matmul out of oneDNN altogether (in the shipped run:
#   {{bf16_avx2_slowdown}}), and on a CPU without native bf16 that slow path is the normal one (section 7).

# %% [markdown] sweat={"id": "sec-micro"}
# ## 4. The micro-kernel: from lab 01's tiles to near BLAS
#
# Lab 01's tiled ikj loop keeps a tile of B in cache, yet its inner loop still does a **load of C, a load
# of B and a store of C for every vector FMA**: three memory operations per FMA, and a core does at most
# two or three per cycle. BLAS keeps a block of C in **registers** for the whole k loop, so it loads only
# A and B and each load feeds several FMAs (Goto & van de Geijn 2008).
#
# numba has no vector type we could keep in a register by hand. What LLVM *will* keep in a vector
# register is the running sum of a reduction it vectorises: the dot form of section 2. So the
# micro-kernel computes a block of **6 rows x 4 columns of C as 24 dot products at once**: 24 scalar
# sums in the Python code, each becoming a vector register of partial sums (lanes along k) once LLVM
# vectorises the k loop. One step of k loads 6 values of A and 4 of B and does 24 multiply-adds: 10
# loads per 24 FMAs instead of 3 per 1.
#
# For the dot form, the 4 columns of B must be contiguous rows: so B is **packed** transposed (a block
# Bᵀ of NC = 256 columns x KC = 512 k values, 512 KiB, sized for L2), and A's rows are copied into a
# contiguous block of KC values (6 rows x 512 x 4 bytes = 12 KiB, in L1). The packing routines are in
# the library (`pack_a`, `pack_bt` in the setup cell):

# %% sweat={"id": "micro-pack", "role": "demo"}
print(inspect.getsource(gemm._pack_bt))

# %% [markdown] sweat={"id": "ex-micro-task"}
# ### Exercise 4: the 6 x 4 micro-kernel
# Fill in `micro_6x4(Ap, Bp, i, j, kc, Cblk)`: add to each `Cblk[r, c]` (r < 6, c < 4) the dot product,
# over p < kc, of row `i + r` of `Ap` with row `j + c` of `Bp`. Three rules make it fast, each shown in
# the demos after the check:
# 1. take the 10 rows once as views, `a0 = Ap[i]`, ..., `b3 = Bp[j + 3]`, and loop `for p in range(kc)`;
# 2. keep the 24 sums in 24 local `np.float32` scalars (`c00`, ..., `c53`), not in an array;
# 3. add them into `Cblk` once, after the loop (`Cblk[0, 0] += c00`, ...).
#
# The driver in the cell below is given: `packed_matmul(micro)` packs, walks the blocks and handles edges
# (a block that sticks out of C is computed into a scratch block first), calling `micro` for every 6 x 4
# block of C; `matmul_micro(A, B)` is that driver around your `micro_6x4`, compiled again whenever you
# redefine `micro_6x4` (numba fixes the functions a kernel calls when it compiles it). Your `micro_6x4` goes
# in the cell after it. The check tests odd sizes, two k blocks and two panels, then times `matmul_micro`
# against lab 01's tiled kernel (`matmul_lab01`) at n = 512 and asks for 1.4x.

# %% sweat={"id": "micro-driver", "role": "setup"}
DRIVERS = {}  # micro-kernel -> the compiled driver around it


def packed_matmul(micro):
    """The packed GEMM around the 6 x 4 micro-kernel `micro(Ap, Bp, i, j, kc, Cblk)`, compiled once per micro-kernel."""
    if micro in DRIVERS:
        return DRIVERS[micro]

    @njit(fastmath=True, error_model="numpy")
    def matmul(A, B):
        """C = A @ B (float32): A and B^T packed in blocks (pack_a, pack_bt), every 6 x 4 block of C from micro."""
        m, k = A.shape
        n = B.shape[1]
        C = np.zeros((m, n), dtype=np.float32)
        edge = np.zeros((MR, NR), dtype=np.float32)  # a block that sticks out of C is computed here first
        Ap = np.empty(((m + MR - 1) // MR * MR, max(1, min(KC, k))), dtype=np.float32)
        Bp = np.empty((max(NR, min(NC, (n + NR - 1) // NR * NR)), max(1, min(KC, k))), dtype=np.float32)
        for k0 in range(0, k, KC):  # a block of KC values of k: rows of packed A and B^T
            kc = min(KC, k - k0)
            pack_a(A, k0, kc, Ap)
            for j0 in range(0, n, NC):  # a panel of NC columns of B, packed as rows of Bp
                nc = min(NC, n - j0)
                pack_bt(B, k0, kc, j0, nc, Bp)
                for i in range(0, m, MR):
                    for j in range(0, nc, NR):
                        if i + MR <= m and j + NR <= nc:
                            micro(Ap, Bp, i, j, kc, C[i:i + MR, j0 + j:j0 + j + NR])
                        else:
                            edge[:] = 0.0
                            micro(Ap, Bp, i, j, kc, edge)
                            for r in range(min(MR, m - i)):
                                for c in range(min(NR, nc - j)):
                                    C[i + r, j0 + j + c] += edge[r, c]
        return C

    DRIVERS[micro] = matmul
    return matmul


def matmul_micro(A, B):
    """C = A @ B (float32) with your micro_6x4 in the packed driver (the micro_6x4 defined when it is called)."""
    return packed_matmul(micro_6x4)(A, B)


# %% sweat={"id": "ex-micro", "role": "answer", "exercise": "micro"}
@njit(fastmath=True, error_model="numpy")
def micro_6x4(Ap, Bp, i, j, kc, Cblk):
    """Cblk[r, c] += sum over p < kc of Ap[i + r, p] * Bp[j + c, p], for r < 6 and c < 4: 24 dot products."""
    ### BEGIN SOLUTION
    a0, a1, a2, a3, a4, a5 = Ap[i], Ap[i + 1], Ap[i + 2], Ap[i + 3], Ap[i + 4], Ap[i + 5]
    b0, b1, b2, b3 = Bp[j], Bp[j + 1], Bp[j + 2], Bp[j + 3]
    c00 = c01 = c02 = c03 = np.float32(0.0)
    c10 = c11 = c12 = c13 = np.float32(0.0)
    c20 = c21 = c22 = c23 = np.float32(0.0)
    c30 = c31 = c32 = c33 = np.float32(0.0)
    c40 = c41 = c42 = c43 = np.float32(0.0)
    c50 = c51 = c52 = c53 = np.float32(0.0)
    for p in range(kc):
        x0, x1, x2, x3 = b0[p], b1[p], b2[p], b3[p]
        y = a0[p]
        c00 += y * x0
        c01 += y * x1
        c02 += y * x2
        c03 += y * x3
        y = a1[p]
        c10 += y * x0
        c11 += y * x1
        c12 += y * x2
        c13 += y * x3
        y = a2[p]
        c20 += y * x0
        c21 += y * x1
        c22 += y * x2
        c23 += y * x3
        y = a3[p]
        c30 += y * x0
        c31 += y * x1
        c32 += y * x2
        c33 += y * x3
        y = a4[p]
        c40 += y * x0
        c41 += y * x1
        c42 += y * x2
        c43 += y * x3
        y = a5[p]
        c50 += y * x0
        c51 += y * x1
        c52 += y * x2
        c53 += y * x3
    Cblk[0, 0] += c00
    Cblk[0, 1] += c01
    Cblk[0, 2] += c02
    Cblk[0, 3] += c03
    Cblk[1, 0] += c10
    Cblk[1, 1] += c11
    Cblk[1, 2] += c12
    Cblk[1, 3] += c13
    Cblk[2, 0] += c20
    Cblk[2, 1] += c21
    Cblk[2, 2] += c22
    Cblk[2, 3] += c23
    Cblk[3, 0] += c30
    Cblk[3, 1] += c31
    Cblk[3, 2] += c32
    Cblk[3, 3] += c33
    Cblk[4, 0] += c40
    Cblk[4, 1] += c41
    Cblk[4, 2] += c42
    Cblk[4, 3] += c43
    Cblk[5, 0] += c50
    Cblk[5, 1] += c51
    Cblk[5, 2] += c52
    Cblk[5, 3] += c53
    ### END SOLUTION


# %% sweat={"id": "check-micro", "role": "check", "exercise": "micro", "title": "Exercise 4: the 6 x 4 micro-kernel"}
from sweatlab.kit import check
check("micro")

# %% [markdown] sweat={"id": "lesson-width-md"}
# **Lesson 1: ask for the vector width the units have.** LLVM picks a preferred vector width per CPU
# model, not per instruction set. It tunes Intel's AVX-512 cores to *prefer 256-bit* vectors (its
# `prefer-256-bit` tuning flag), so numba's default code uses ymm there although the units are 512 bits
# wide: its ceiling is section 1's AVX2 bar, not the AVX-512 one. For AMD Zen 4 LLVM does not set that flag
# and emits zmm, although Zen 4's units are 256 bits wide. The setup cell therefore asks for the width of
# the units (`gemm.match_vector_width`, printed there). Below, the library's copy of the same kernel runs
# in three fresh processes: with LLVM's default for this CPU, forced to 256-bit and forced to 512-bit
# vectors (`NUMBA_CPU_FEATURES` = this CPU's features + `±prefer-256-bit`), with the registers its FMAs
# use: what the width is worth to this kernel on your CPU.

# %% sweat={"id": "lesson-width", "role": "demo"}
import llvmlite.binding as llvm_binding

WIDTH_ROWS = {}
UNIT_BITS = (HW_1.lanes or 0) * 32  # the width of this core's FMA units
lab.quote("fma_unit_bits", UNIT_BITS, "{}")
if machine.isa.get("avx512f"):
    for label, width in (("LLVM's default", None), ("forced 256-bit", 256), ("forced 512-bit", 512)):
        job = {"job": "numba_micro", "n": N, "rounds": ROUNDS, "sample_s": 0.05, "energy": JOB_ENERGY}
        WIDTH_ROWS[label] = isa.run_job(job, isa.numba_width_env(width) if width else None)
    print(f"LLVM's name for this CPU: {llvm_binding.get_host_cpu_name()}; micro-kernel matmul at n = {N}, one thread")
    print(f"{'vector width':<16}{'GFLOP/s':>9}{'ymm FMA':>9}{'zmm FMA':>9}{'GFLOP/J':>14}")
    for label, run in WIDTH_ROWS.items():
        if not run.ok:
            print(f"{label:<16} failed: {run.error}")
            continue
        v, counts = run.value, run.value["asm"]
        op = v["ops"]["micro-kernel matmul"]
        per_j = (2 * N ** 3 / 1e9 / op["joules_per_call"]) if op.get("joules_per_call") else None
        energy_text = f"{per_j:.3g} {KIND[op.get('energy_kind')]}" if per_j else "n/a"
        print(f"[timing] {label:<16}{v['gflops']:>9.1f}{counts['packed ymm (256 bit)']:>9}"
              f"{counts['packed zmm (512 bit)']:>9}{energy_text:>14}")
    ok = {k: r.value["gflops"] for k, r in WIDTH_ROWS.items() if r.ok}
    if len(ok) == 3:
        wide, narrow = ok["forced 512-bit"], ok["forced 256-bit"]
        print(f"[timing] 512-bit / 256-bit: {lab.quote('width_ratio', wide / narrow, '{:.2f}x')} on this CPU, whose "
              f"FMA units are {UNIT_BITS} bits wide")
    else:
        lab.quote("width_ratio", "not measured (a fresh process failed)", "{}")
    print("(the ymm and zmm columns count packed instructions in the micro-kernel's code, FMAs and the final sums)")
else:
    lab.quote("width_ratio", "not measured (no AVX-512 here)", "{}")
    print("no AVX-512 on this CPU: there is one vector width to generate (ymm with AVX2, 128-bit NEON on Arm), "
          "so there is nothing to choose; the lesson shows on an AVX-512 machine")

# %% [markdown] sweat={"id": "lesson-index-md"}
# **Lesson 2: indices the compiler can prove are not negative.** numba supports Python's negative
# indices, so `x[p]` with a `p` LLVM cannot prove ≥ 0 gets a test that wraps it around, and a loop with
# such a test does not vectorise. `for p in range(kc)` on a row view is provably ≥ 0; `for p in range(k0,
# k1)` on the whole packed array is not (k0 could be negative, as far as the compiler knows). **Lesson
# 3: accumulators live in registers only as loop-carried scalars.** Sums kept in a small array
# (`acc[r, c] += ...`) are loads and stores to memory on every step. The cell below writes the same
# 2 x 2 block three ways, runs each over all 2 x 2 blocks of a packed panel (in L2), and counts their
# instructions; your 6 x 4 kernel runs beside them.

# %% sweat={"id": "lesson-index", "role": "demo"}
@njit(fastmath=True, error_model="numpy")
def panel_2x2_views(Ap, Bp, C, kc):
    """Every 2 x 2 block of C: row views, range(kc), four scalar sums (the right way)."""
    for i in range(0, Ap.shape[0] - 1, 2):
        for j in range(0, Bp.shape[0] - 1, 2):
            a0, a1, b0, b1 = Ap[i], Ap[i + 1], Bp[j], Bp[j + 1]
            c00 = c01 = c10 = c11 = np.float32(0.0)
            for p in range(kc):
                c00 += a0[p] * b0[p]
                c01 += a0[p] * b1[p]
                c10 += a1[p] * b0[p]
                c11 += a1[p] * b1[p]
            C[i, j] += c00
            C[i, j + 1] += c01
            C[i + 1, j] += c10
            C[i + 1, j + 1] += c11


@njit(fastmath=True, error_model="numpy")
def panel_2x2_absolute(Ap, Bp, C, k0, k1):
    """The same block with absolute indices p in range(k0, k1): correct, but numba cannot prove p >= 0."""
    for i in range(0, Ap.shape[0] - 1, 2):
        for j in range(0, Bp.shape[0] - 1, 2):
            c00 = c01 = c10 = c11 = np.float32(0.0)
            for p in range(k0, k1):
                c00 += Ap[i, p] * Bp[j, p]
                c01 += Ap[i, p] * Bp[j + 1, p]
                c10 += Ap[i + 1, p] * Bp[j, p]
                c11 += Ap[i + 1, p] * Bp[j + 1, p]
            C[i, j] += c00
            C[i, j + 1] += c01
            C[i + 1, j] += c10
            C[i + 1, j + 1] += c11


@njit(fastmath=True, error_model="numpy")
def panel_2x2_array(Ap, Bp, C, kc):
    """The same block with its four sums in a small array: memory, not registers."""
    acc = np.zeros((2, 2), dtype=np.float32)
    for i in range(0, Ap.shape[0] - 1, 2):
        for j in range(0, Bp.shape[0] - 1, 2):
            a0, a1, b0, b1 = Ap[i], Ap[i + 1], Bp[j], Bp[j + 1]
            acc[:] = 0.0
            for p in range(kc):
                acc[0, 0] += a0[p] * b0[p]
                acc[0, 1] += a0[p] * b1[p]
                acc[1, 0] += a1[p] * b0[p]
                acc[1, 1] += a1[p] * b1[p]
            for r in range(2):
                for c in range(2):
                    C[i + r, j + c] += acc[r, c]


g = np.random.default_rng(4)  # one 6 x 4 block, to see whether your micro_6x4 is written
micro_block, _ = lab.pick("micro_6x4", g.random((6, 8), dtype=np.float32), g.random((4, 8), dtype=np.float32), 0, 0, 8,
                          np.zeros((MR, NR), dtype=np.float32))  # yours, or the stand-in while yours is not written
micro_kernel = packed_matmul(micro_block)  # the given driver around it: matmul_micro, once yours is written


@njit(fastmath=True, error_model="numpy")
def panel_6x4(Ap, Bp, C, kc):
    """Your micro_6x4 over every 6 x 4 block of the panel."""
    for i in range(0, Ap.shape[0] - 5, 6):
        for j in range(0, Bp.shape[0] - 3, 4):
            micro_6x4_kernel(Ap, Bp, i, j, kc, C[i:i + 6, j:j + 4])


micro_6x4_kernel = micro_block  # the kernel panel_6x4 calls (yours, or the stand-in while yours is not written)
P_ROWS, P_COLS, P_K = 96, 64, 512  # packed panels: 96 x 512 and 64 x 512 float32 (192 + 128 KiB, in L2)
g = np.random.default_rng(5)
Ap_t, Bp_t = g.random((P_ROWS, P_K), dtype=np.float32), g.random((P_COLS, P_K), dtype=np.float32)
expected = Ap_t.astype(np.float64) @ Bp_t.astype(np.float64).T
work = 2 * P_ROWS * P_COLS * P_K
lesson_rows = []
for label, fn, extra in (("2x2, row views", panel_2x2_views, (P_K,)),
                         ("2x2, range(k0, k1)", panel_2x2_absolute, (0, P_K)),
                         ("2x2, sums in an array", panel_2x2_array, (P_K,)),
                         (lab.label("micro_6x4", "6x4, micro_6x4"), panel_6x4, (P_K,))):
    C_t = np.zeros((P_ROWS, P_COLS), dtype=np.float32)
    fn(Ap_t, Bp_t, C_t, *extra)
    assert np.allclose(C_t, expected, rtol=gamma(P_K)), label
    res, gf, per_j, kind = timed(lambda fn=fn, extra=extra: fn(Ap_t, Bp_t, np.zeros((P_ROWS, P_COLS), np.float32),
                                                                *extra), work=work, name=label)
    counts = asm.float_ops(asm.numba_asm(fn if fn is not panel_6x4 else micro_6x4_kernel))
    packed = sum(v for key, v in counts.items() if key.startswith("packed"))
    lesson_rows.append((label, gf, per_j, kind, counts["scalar"], packed, counts["of which fma"]))
print(f"every block of a {P_ROWS} x {P_K} by {P_COLS} x {P_K} packed panel, one thread")
print(f"{'kernel':<28}{'GFLOP/s':>9}{'GFLOP/J':>13}{'scalar':>8}{'packed':>8}{'FMA':>6}")
for label, gf, per_j, kind, scalar, packed, fma in lesson_rows:
    energy_text = f"{per_j:.3g} {KIND[kind]}" if per_j else "n/a"
    print(f"[timing] {label:<28}{gf:>9.2f}{energy_text:>13}{scalar:>8}{packed:>8}{fma:>6}")
LESSON_GFLOPS = dict(zip(("views", "absolute", "array", "block_6x4"), (row[1] for row in lesson_rows)))
print("GFLOP/s: 2x2 row views " + lab.quote("lesson_views_gflops", LESSON_GFLOPS["views"], "{:.3g}")
      + ", range(k0, k1) " + lab.quote("lesson_absolute_gflops", LESSON_GFLOPS["absolute"], "{:.3g}")
      + ", sums in an array " + lab.quote("lesson_array_gflops", LESSON_GFLOPS["array"], "{:.3g}")
      + ", " + lab.label("micro_6x4", "6x4 " + lab.quote("lesson_6x4_gflops", LESSON_GFLOPS["block_6x4"], "{:.3g}")))

# %% [markdown] sweat={"id": "lessons-read"}
# Read the rows. Absolute indices cost the vector code (look at the packed and FMA counts: a few
# packed instructions may remain for the final additions); sums in an array cost the registers. With
# both rules kept, the 2 x 2 block is vectorised but does 4 loads per 4 FMAs; the 6 x 4 block does 10
# per 24, so the same vector units are busy far more of the time. In the shipped run, in GFLOP/s: row views
# {{lesson_views_gflops}}, absolute indices {{lesson_absolute_gflops}}, sums in an array
# {{lesson_array_gflops}}, the 6 x 4 block {{lesson_6x4_gflops}}; and lesson 1's 512-bit / 256-bit ratio:
# {{width_ratio}}, on a CPU with {{fma_unit_bits}}-bit FMA units.

# %% [markdown] sweat={"id": "sec-ladder"}
# ## 5. The ladder, one core
#
# Every kernel of this lab multiplies the same two n x n float32 matrices (n = `N`, printed by the
# setup cell), checked against float64 within γ_n before it is timed (lab 01's harness,
# `sweatlab.topics.ladder`), against two ceilings: the hardware peak of one core and BLAS's best run on one
# core. `numba_naive` is lab 01's given ijk kernel; `numba_fastmath` is your `scores_fast` run on A and
# Bᵀ (the transpose, by numpy, is part of its time, as packing is part of the micro-kernel's);
# `numba_tiled` is lab 01's tiled kernel.

# %% sweat={"id": "ladder-measure", "role": "demo"}
peaks_1 = [roofline.peak_fp32(n, quick=QUICK, threads=1) for n in (N, None)]
BLAS_1 = max(p.gflops for p in peaks_1)
HW1_GFLOPS = HW_1.gflops or float("nan")
print(f"[timing] BLAS's best on one core: {BLAS_1:.1f} GFLOP/s = {100 * BLAS_1 / HW1_GFLOPS:.0f}% of the hardware "
      f"peak ({HW1_GFLOPS:.1f} GFLOP/s)")
ladder_1 = Ladder(HW1_GFLOPS, BLAS_1, budget_s=BUDGET_S, say=print, energy_meter=lambda: lab.meter(1))


def matmul_dot_fast(A, B):
    """Your scores_fast on A and B^T: A @ B in the dot form (the numpy transpose is timed too)."""
    return fast_kernel(A, np.ascontiguousarray(B.T))


with threadpool_limits(limits=1, user_api="blas"):
    ladder_1.measure("numba_naive", ladder.reference_matmul_numba_ijk, N)
    ladder_1.measure("numba_fastmath", matmul_dot_fast, N)
    ladder_1.measure("numba_tiled", matmul_lab01, N)
    ladder_1.measure("numba_microkernel", micro_kernel, N)
    ladder_1.measure("blas_fp32", np.matmul, N)
G1 = {rung: by_n[N] for rung, by_n in ladder_1.gflops.items()}  # GFLOP/s of each rung at n = N, one thread
MICRO_SHARE = G1["numba_microkernel"] / G1["blas_fp32"]
print(f"[timing] {lab.label('micro_6x4', 'micro-kernel')}: {lab.quote('micro_share_blas', 100 * MICRO_SHARE, '{:.0f}%')} "
      f"of BLAS at n = {N}, one thread ({lab.quote('micro_gflops', G1['numba_microkernel'], '{:.3g}')} against "
      f"{lab.quote('blas1_gflops', G1['blas_fp32'], '{:.3g}')} GFLOP/s); "
      f"{lab.quote('micro_vs_tiled', G1['numba_microkernel'] / G1['numba_tiled'], '{:.1f}x')} lab 01's tiled kernel")
print(f"[timing] {lab.label('scores_fast', 'dot form with fastmath')}: "
      f"{lab.quote('fastmath_gflops', G1['numba_fastmath'], '{:.3g}')} GFLOP/s; lab 01's tiled kernel: "
      f"{lab.quote('tiled_gflops', G1['numba_tiled'], '{:.3g}')} GFLOP/s, so the dot form "
      + lab.quote("fastmath_vs_tiled", "beats" if G1["numba_fastmath"] > G1["numba_tiled"] else "does not beat", "{}")
      + " it")

# %% [markdown] sweat={"id": "ladder-read"}
# In the shipped run the micro-kernel reached {{micro_share_blas}} of one-thread BLAS ({{micro_gflops}} against
# {{blas1_gflops}} GFLOP/s) and {{micro_vs_tiled}} the speed of lab 01's tiled kernel; the dot form with
# fastmath ({{fastmath_gflops}} GFLOP/s) {{fastmath_vs_tiled}} the tiled kernel ({{tiled_gflops}} GFLOP/s):
# vectorised, but with two loads per FMA.

# %% [markdown] sweat={"id": "sec-threads"}
# ## 6. Threads
#
# `@njit(parallel=True)` with `for i in prange(...)` shares the iterations of one loop among numba's
# threads (one per core by default; `numba.set_num_threads` lowers it). The loop's iterations must be
# independent: here each thread takes whole **row blocks of C**, so no two threads ever write the same
# entry, and all of them only *read* the packed A and Bᵀ. Anything one thread writes must be its own:
# the edge buffer is made inside the loop. The packing itself stays on one thread here: the serial part
# that the fit below is about.

# %% [markdown] sweat={"id": "ex-parallel-task"}
# ### Exercise 5: the micro-kernel on every core
# Write the body of `matmul_micro_parallel(A, B)`: the given driver of exercise 4 (`packed_matmul`) with the
# loop over row blocks of C as a `prange` (loop over block numbers, `for ib in prange((m + MR - 1) // MR)`,
# with `i = ib * MR`), each iteration with its own `edge` buffer. Call your `micro_6x4` by its name. The check
# tests the same sizes as exercise 4, then times you against the one-thread micro-kernel
# `matmul_micro_1t` at n = 768 and asks for 1.25x; this needs a second core that is not busy.

# %% sweat={"id": "ex-parallel", "role": "answer", "threads": 2, "exercise": "parallel"}
@njit(parallel=True, fastmath=True, error_model="numpy")
def matmul_micro_parallel(A, B):
    """C = A @ B like matmul_micro, with the row blocks of C shared out among numba's threads."""
    m, k = A.shape
    n = B.shape[1]
    C = np.zeros((m, n), dtype=np.float32)
    Ap = np.empty(((m + MR - 1) // MR * MR, max(1, min(KC, k))), dtype=np.float32)
    Bp = np.empty((max(NR, min(NC, (n + NR - 1) // NR * NR)), max(1, min(KC, k))), dtype=np.float32)
    ### BEGIN SOLUTION
    for k0 in range(0, k, KC):
        kc = min(KC, k - k0)
        pack_a(A, k0, kc, Ap)
        for j0 in range(0, n, NC):
            nc = min(NC, n - j0)
            pack_bt(B, k0, kc, j0, nc, Bp)
            for ib in prange((m + MR - 1) // MR):
                i = ib * MR
                edge = np.zeros((MR, NR), dtype=np.float32)
                for j in range(0, nc, NR):
                    if i + MR <= m and j + NR <= nc:
                        micro_6x4(Ap, Bp, i, j, kc, C[i:i + MR, j0 + j:j0 + j + NR])
                    else:
                        edge[:] = 0.0
                        micro_6x4(Ap, Bp, i, j, kc, edge)
                        for r in range(min(MR, m - i)):
                            for c in range(min(NR, nc - j)):
                                C[i + r, j0 + j + c] += edge[r, c]
    ### END SOLUTION
    return C


# %% sweat={"id": "check-parallel", "role": "check", "exercise": "parallel", "title": "Exercise 5: the micro-kernel on every core"}
from sweatlab.kit import check
check("parallel")

# %% [markdown] sweat={"id": "scaling-md"}
# How does it scale? The cell below times your parallel kernel with numba's pool set to 1, 2, ... up to
# the cores this process may use (interleaved passes, the faster median of each kept), and, separately,
# the part that stays serial: the packing alone. BLAS on every core is measured first; then its threads are
# left to fall asleep and BLAS is limited to one thread for the rest of this notebook, because numba's
# threads and BLAS's must not share the cores (the oversubscription demo below shows what happens if they do).

# %% sweat={"id": "scaling-measure", "role": "demo"}
par_kernel, _ = lab.pick("matmul_micro_parallel", *random_matrices(16))  # yours, or the stand-in
HWALL_GFLOPS = HW_ALL.gflops or float("nan")
with threadpool_limits(limits=CORES, user_api="blas"):  # BLAS on every core first, numba's threads idle
    peaks_all = [roofline.peak_fp32(n, quick=QUICK, threads=CORES) for n in (N, None)]
    BLAS_ALL = max(p.gflops for p in peaks_all)
    ladder_all = Ladder(HWALL_GFLOPS, BLAS_ALL, budget_s=BUDGET_S, say=print, energy_meter=lambda: lab.meter(CORES))
    ladder_all.measure("blas_fp32", np.matmul, N)
time.sleep(0.5)  # OpenBLAS's idle threads spin for a while after a call: let them fall asleep (see below)
BLAS_ONE = threadpool_limits(limits=1, user_api="blas")  # from here on: numba's threads own the cores
ladder_all.measure("numba_microkernel_parallel", par_kernel, N)


@njit(fastmath=True, error_model="numpy")
def packing_only(A, B):
    """Everything the packed driver does on one thread besides the micro-kernel: allocating and packing."""
    m, k = A.shape
    n = B.shape[1]
    C = np.zeros((m, n), dtype=np.float32)
    Ap = np.empty(((m + MR - 1) // MR * MR, max(1, min(KC, k))), dtype=np.float32)
    Bp = np.empty((max(NR, min(NC, (n + NR - 1) // NR * NR)), max(1, min(KC, k))), dtype=np.float32)
    for k0 in range(0, k, KC):
        kc = min(KC, k - k0)
        pack_a(A, k0, kc, Ap)
        for j0 in range(0, n, NC):
            pack_bt(B, k0, kc, j0, min(NC, n - j0), Bp)
    return C


A_s, B_s = random_matrices(N)
THREADS = list(range(1, CORES + 1))
SCALING = parallel.scaling(par_kernel, A_s, B_s, threads=THREADS, budget_s=BUDGET_S / 2, rounds=ROUNDS) if CORES > 1 else []
packing_only(A_s, B_s)
t_pack = bench(packing_only, A_s, B_s, budget_s=BUDGET_S, min_runs=3).median_s
if SCALING:
    t_one = SCALING[0].median_s
    F_DIRECT = t_pack / t_one
    print(f"{'threads':>8}{'median':>11}{'GFLOP/s':>9}{'speed-up':>10}")
    for point in SCALING:
        print(f"[timing] {point.threads:>8}{format_seconds(point.median_s):>11}"
              f"{2 * N ** 3 / point.median_s / 1e9:>9.1f}{t_one / point.median_s:>9.2f}x")
    print(f"[timing] packing and allocation alone: {format_seconds(t_pack)} = {100 * F_DIRECT:.1f}% of the one-thread "
          "time: the serial part, measured directly")
else:
    F_DIRECT = None
    print("only one usable core here: there is no scaling to measure (the parallel kernel ran on one thread)")

# %% [markdown] sweat={"id": "ex-amdahl-task"}
# ### Exercise 6: fit Amdahl's law
# If a fraction f of the one-thread time t1 cannot be shared out, p threads take
# T(p) = t1 (f + (1 − f)/p) (G. Amdahl, AFIPS 1967). Write `amdahl_fit(threads, seconds)`: the t1 and f
# that fit measured times best, as a tuple `(t1, f)`. Hint: T(p) = a + b·(1/p) is a straight line in
# 1/p, so a least-squares line gives a and b; then t1 = a + b, f = a / t1. Several runs may share a
# thread count. Times can scale better than linearly (each core's share of the data fits its cache
# better): a negative a is noise, so then fit with a = 0 (f = 0); times that grow with p mean nothing was
# shared out: then b = 0 (f = 1).

# %% sweat={"id": "ex-amdahl", "role": "answer", "exercise": "amdahl"}
def amdahl_fit(threads, seconds):
    """(t1, f): the one-thread time and serial fraction of Amdahl's law that fit the measured times."""
    ### BEGIN SOLUTION
    x = np.array([1.0 / p for p in threads])
    t = np.array(seconds, dtype=float)
    slope, intercept = np.polyfit(x, t, 1)
    if intercept < 0:  # better than linear: perfect scaling, a line through the origin
        intercept, slope = 0.0, float(x @ t / (x @ x))
    elif slope < 0:  # slower with more threads: nothing was shared out
        intercept, slope = float(t.mean()), 0.0
    t1 = intercept + slope
    return float(t1), float(intercept / t1)
    ### END SOLUTION


# %% sweat={"id": "check-amdahl", "role": "check", "exercise": "amdahl", "title": "Exercise 6: fit Amdahl's law"}
from sweatlab.kit import check
check("amdahl")

# %% sweat={"id": "amdahl-plot", "role": "demo"}
fig_scaling, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
if SCALING:
    ts = [pt.median_s for pt in SCALING]
    T1_FIT, F_FIT = lab.mine("amdahl_fit")(THREADS, ts)  # your fit, or the stand-in while it is not written
    library_fit = parallel.fit_amdahl(THREADS, ts)
    print(lab.label("amdahl_fit", f"your fit: t1 = {format_seconds(T1_FIT)}, serial fraction f = {F_FIT:.3f}, "
                                  f"so at most {1 / F_FIT if F_FIT > 0 else math.inf:.3g}x however many cores"))
    print(f"the library's: {library_fit}")
    print(f"the packing measured alone: f = {F_DIRECT:.3f}; the fit's f includes everything else that does not "
          "share out (the parallel region's start and end, threads waiting for the slowest, memory both cores share)")
    if library_fit.exact:
        print("two thread counts, two unknowns: the fit passes through both points exactly, so this machine cannot "
              "test the law, only measure f; a machine with more cores can")
    speedups_measured = [ts[0] / t for t in ts]
    lo_hi = [(ts[0] / np.percentile(pt.bench.samples_s, 75), ts[0] / np.percentile(pt.bench.samples_s, 25))
             for pt in SCALING]
    ax.errorbar(THREADS, speedups_measured, yerr=[[s - lo for s, (lo, hi) in zip(speedups_measured, lo_hi)],
                                                  [hi - s for s, (lo, hi) in zip(speedups_measured, lo_hi)]],
                fmt="o", ms=8, capsize=4, color="tab:blue",
                label=lab.label("matmul_micro_parallel", "measured (median, bars = IQR)"))
    p_max = 4 * CORES
    ps = np.linspace(1, p_max, 200)
    ax.plot(ps, ps, "k:", lw=1, label="ideal: p threads, p times faster")
    ax.plot(ps, [parallel.amdahl_speedup(p, F_FIT) for p in ps], "-", color="tab:orange",
            label=lab.label("amdahl_fit", f"Amdahl, your fit: f = {F_FIT:.3f}"))
    if F_DIRECT is not None:
        ax.plot(ps, [parallel.amdahl_speedup(p, F_DIRECT) for p in ps], "--", color="tab:green",
                label=f"Amdahl with the packing alone: f = {F_DIRECT:.3f}")
    ax.axvline(CORES, color="grey", ls="--", lw=1)
    ax.annotate(f"{CORES} cores here ", (CORES, p_max * 1.03), fontsize=8, color="grey", ha="right", rotation=90, va="top")
    ax.set(xlim=(0.8, p_max + 0.2), ylim=(0.8, p_max * 1.05), xlabel="threads p",
           ylabel="speed-up over one thread (x)",
           title=lab.label("matmul_micro_parallel",
                           f"Your parallel micro-kernel at n = {N}: measured on {CORES} cores, extrapolated by the fit"))
    ax.legend(fontsize=8, loc="lower right")
else:
    T1_FIT = F_FIT = None
    ax.text(0.5, 0.5, "one usable core: nothing to scale", ha="center", transform=ax.transAxes)
    ax.set_axis_off();

# %% [markdown] sweat={"id": "oversub-md"}
# Read the curve beyond your cores: it is the fit's prediction, not a measurement. A serial fraction of
# a few percent costs little on 2 cores and caps a 64-core machine far below 64x, which is why BLAS
# packs in parallel too.
#
# **Oversubscription.** numba, OpenBLAS, torch (OpenMP) and Python's own thread pools each start one
# thread per core by default and know nothing of each other. Nest them, or run them at once, and the
# cores have more runnable threads than they can run: threads that spin while they wait for a partner
# that is not running, and caches shared by strangers. Three common cases, each in a fresh process, as
# they come and fixed (one library's threads limited with `threadpoolctl` or `torch.set_num_threads`, so
# that the threads add up to the cores), each on the otherwise idle machine and again while another
# program (a busy loop the job starts for the purpose) holds one core:
# - **numba x BLAS**: a `prange` loop whose iterations call `np.dot` (BLAS threads inside numba threads);
# - **threads x BLAS**: a pool of Python threads, each calling `np.matmul`;
# - **torch + BLAS**: torch matmuls in one thread while numpy matmuls run in another.

# %% sweat={"id": "oversub-run", "role": "demo"}
CASES = ["numba x BLAS", "threads x BLAS", "torch + BLAS"]
CASE_KEY = {"numba x BLAS": "numba", "threads x BLAS": "threads", "torch + BLAS": "torch"}  # their figures' names
OVERSUB, OVERSUB_IDLE = {}, {}  # (case, busy, fixed) -> the run; case -> GFLOP/s (as it comes, fixed), idle machine
if CORES > 1:
    for case in tqdm(CASES, desc="oversubscription cases"):
        for busy in (False, True):
            for fixed in (False, True):
                spec = {"job": "oversubscription", "case": case, "fixed": fixed, "busy": busy, "rounds": ROUNDS,
                        "size": 384, "batch": config.pick(8, 16), "energy": JOB_ENERGY}
                OVERSUB[case, busy, fixed] = isa.run_job(spec, timeout=240)
    print(f"GFLOP/s of the whole batch (best of {ROUNDS} rounds); 'one core busy': another program, a busy loop, "
          "holds one core meanwhile")
    print(f"{'':<16}{'idle machine':^24}{'one core busy':^36}")
    print(f"{'case':<16}{'as it comes':>12}{'fixed':>12}{'as it comes':>12}{'fixed':>12}{'J/batch':>12}"
          f"  threads as it comes -> fixed")
    for case in CASES:
        runs = [OVERSUB[case, busy, fixed] for busy in (False, True) for fixed in (False, True)]
        if not all(r.ok for r in runs):
            print(f"{case:<16} not measured: {next(r.error for r in runs if not r.ok)}")
            continue
        gf = [r.value["flops"] / r.value["best_s"] / 1e9 for r in runs]
        OVERSUB_IDLE[case] = gf[0], gf[1]
        raw, fix = runs[2].value, runs[3].value  # with one core busy
        j_text = (f"{raw['joules']:.3g} -> {fix['joules']:.3g} {KIND[fix.get('energy_kind')]}"
                  if raw.get("joules") and fix.get("joules") else "n/a")
        warns = sum(r.stderr.count("Detect OpenMP Loop") for r in runs)
        print(f"[timing] {case:<16}{gf[0]:>7.1f}{gf[1]:>12.1f}{gf[2]:>12.1f}{gf[3]:>12.1f}  {j_text:>14}  "
              f"{raw['threads_note']} -> {fix['threads_note']}" + (f"; OpenBLAS warned {warns}x" if warns else ""))
        print(f"          ({raw['what']}; fixed / as it comes: {gf[1] / gf[0]:.1f}x idle, {gf[3] / gf[2]:.1f}x with one "
              "core busy)")
else:
    print("one usable core: oversubscription cannot be shown without a second core to fight over")
for case in CASES:  # the idle machine's columns, as the deck quotes them
    key = CASE_KEY[case]
    if case in OVERSUB_IDLE:
        raw_gf, fixed_gf = OVERSUB_IDLE[case]
        lab.quote(f"oversub_{key}_raw", raw_gf, "{:.0f}")
        lab.quote(f"oversub_{key}_fixed", fixed_gf, "{:.0f}")
        lab.quote(f"oversub_{key}_gain", fixed_gf / raw_gf, "{:.1f}x")
    else:
        for part in ("raw", "fixed", "gain"):
            lab.quote(f"oversub_{key}_{part}", "n/a", "{}")
VERDICTS = {}  # "faster" / "slower" / "about as fast" -> the cases where "fixed" was that, idle machine
for case, (raw_gf, fixed_gf) in OVERSUB_IDLE.items():
    ratio = fixed_gf / raw_gf
    VERDICTS.setdefault("faster" if ratio >= 1.05 else "slower" if ratio <= 1 / 1.05 else "about as fast", []).append(case)
print("fixed, idle machine: " + lab.quote("oversub_verdict", "; ".join(f"{v} for {' and '.join(cases)}"
                                                                      for v, cases in VERDICTS.items()) or "not measured", "{}"))

# %% [markdown] sweat={"id": "oversub-read"}
# Read the ratios in the last line of each case (in the shipped run, fixed / as it comes without the busy loop:
# numba x BLAS {{oversub_numba_gain}}, threads x BLAS {{oversub_threads_gain}}, torch + BLAS
# {{oversub_torch_gain}}: "fixed" was {{oversub_verdict}}). Where "fixed" is faster, the stacked pools were
# costing you; where it is not, this machine had cores to spare for them at that moment, or the library
# noticed the nesting and held back, or the fix itself cost more than it saved: in torch + BLAS it gives each
# library half the cores, so when one part finishes first its cores sit idle while the other goes on with
# half, where the pools left as they come would hand it every core. How much stacking costs depends on the
# number of cores, on the libraries and on what else runs: threads that wait for a partner which is not
# running (descheduled because another program has its core), spinning while they wait, are where time and
# energy go, so the busy columns are the likelier case on a laptop with a browser open. In the numba x BLAS
# case OpenBLAS may also print "Detect OpenMP Loop and this application may hang" (counted above): it saw
# itself called from inside another library's parallel region. The fix is the same each time: **one
# budget of threads per process**, spent by one library at a time (or split between libraries that run at
# once, sized to their parts), and smaller when other programs share the machine. Set it explicitly:
# `threadpoolctl` (`threadpool_limits(1)` around BLAS calls made from threads), `numba.set_num_threads`,
# `torch.set_num_threads`, or the environment variables `OMP_NUM_THREADS`, `OPENBLAS_NUM_THREADS`,
# `NUMBA_NUM_THREADS` before Python starts. This is also why this lab measures torch only in fresh
# processes: torch's OpenMP threads would otherwise share this notebook with numba's and OpenBLAS's.

# %% [markdown] sweat={"id": "sec-bf16"}
# ## 7. bf16 against fp32
#
# bf16 keeps float32's 8-bit exponent and cuts the significand to 8 bits: half the bytes, the same
# range, about 3 significant digits. A CPU computes with it natively only through instructions made
# for it: AVX-512 BF16's `vdpbf16ps` (two bf16 products summed into each float32 lane: twice the FLOPs
# per instruction), Intel's AMX tiles, or Arm's BF16 extension. Without them, a library has to widen bf16
# to float32, compute in float32 and round back: more work than float32 alone. The cell below times
# torch's fp32 and bf16 matmuls (and an int8 `Linear`) at n = `N` on every core, in a fresh process, with
# oneDNN's log of the kernel that ran.

# %% sweat={"id": "bf16-run", "role": "demo"}
NATIVE_ISA = [name for name, flag in (("AMX-BF16", "amx_bf16"), ("AVX512-BF16", "avx512_bf16"), ("Arm BF16", "bf16"))
              if machine.isa.get(flag)]
bf16_job = {"job": "torch_ops", "ops": ["matmul fp32", "matmul bf16", "linear int8"], "n_mat": N,
            "threads": CORES, "rounds": ROUNDS, "sample_s": 0.05, "energy": JOB_ENERGY}
BF16_RUN = isa.run_job(bf16_job, timeout=300)
TORCH = {}
CORES_WORDS = f"{CORES} core{'s' if CORES != 1 else ''}"
CPU_SUMMARY = (f"{machine.cpu_model or 'an unnamed CPU'}, {CORES_WORDS}: {UNIT_BITS}-bit FMA units"
               + (", AVX-512" if machine.isa.get("avx512f") else "")
               + (f", native bf16 ({', '.join(NATIVE_ISA)})" if NATIVE_ISA else ", no native bf16"))
print(f"this CPU: {lab.quote('cpu_summary', CPU_SUMMARY, '{}')}")
if BF16_RUN.ok:
    v = BF16_RUN.value
    NATIVE_BF16 = bool(NATIVE_ISA) and v["onednn_bf16_supported"] is not False
    BF16_PEAK = peak.hardware_peak("bf16", machine, CLOCK, cores=CORES)
    print(f"torch {v['torch']}, {v['threads']} threads; oneDNN sees: {v['onednn_isa']}")
    print(f"{'operation':<14}{'GFLOP/s':>10}{'best':>10}{'GFLOP/J':>14}  kernel (oneDNN's log)")
    for op, t in v["ops"].items():
        gf = 2 * N ** 3 / t["best_s"] / 1e9
        TORCH[op] = gf
        per_j = (2 * N ** 3 / 1e9 / t["joules_per_call"]) if t.get("joules_per_call") else None
        energy_text = f"{per_j:.3g} {KIND[t.get('energy_kind')]}" if per_j else "n/a"
        kern = ", ".join(k for k in v["kernels"].get(op, []) if k.startswith("matmul")) or "no oneDNN call (MKL)"
        unit = "GOP/s" if "int8" in op else "GFLOP/s"
        print(f"[timing] {op:<14}{gf:>7.1f} {unit:<7}{format_seconds(t['best_s']):>8}{energy_text:>14}  {kern}")
    ratio = TORCH["matmul bf16"] / TORCH["matmul fp32"]
    BF16_KERNEL = ", ".join(k.split(":", 1)[1] for k in v["kernels"].get("matmul bf16", []) if k.startswith("matmul"))
    print(f"\n[timing] bf16 / fp32: {lab.quote('bf16_ratio', ratio, '{:.2f}x')} on {CORES_WORDS} "
          f"({lab.quote('torch_bf16_gflops', TORCH['matmul bf16'], '{:.0f}')} against "
          f"{lab.quote('torch_fp32_gflops', TORCH['matmul fp32'], '{:.0f}')} GFLOP/s); oneDNN's bf16 kernel: "
          + lab.quote("bf16_kernel", BF16_KERNEL or "none (no oneDNN matmul)", "{}"))
    if NATIVE_BF16:
        print(f"native bf16 here ({', '.join(NATIVE_ISA)}): the bf16 hardware peak of {CORES_WORDS} is "
              f"{BF16_PEAK.gflops or float('nan'):,.0f} GFLOP/s against {HWALL_GFLOPS:,.0f} for fp32 "
              f"({BF16_PEAK.formula() if BF16_PEAK else 'unknown'})")
    else:
        print("no native bf16 on this CPU (no AMX-BF16, AVX512-BF16 or Arm BF16): bf16 is widened to fp32 and back, "
              "so it cannot beat fp32; there is no bf16 hardware peak to draw")
else:
    NATIVE_BF16, BF16_PEAK = bool(NATIVE_ISA), None
    print(f"torch could not be measured here: {BF16_RUN.error}")
    for name in ("bf16_ratio", "torch_bf16_gflops", "torch_fp32_gflops", "bf16_kernel"):
        lab.quote(name, "not measured", "{}")

# %% [markdown] sweat={"id": "bf16-read"}
# In the shipped run: bf16 / fp32 = {{bf16_ratio}} ({{torch_bf16_gflops}} against {{torch_fp32_gflops}} GFLOP/s), and
# oneDNN's log named `{{bf16_kernel}}` for the bf16 matmul.
#
# Read the kernel column with the ISA table of section 1. Where it names `avx512_core_bf16`, or an AMX
# kernel (`avx512_core_amx`; `avx10_1_512_amx` in newer oneDNN), oneDNN used native bf16 instructions and
# the bf16 line should be above fp32 (by up to 2x with `vdpbf16ps`; far more with AMX tiles). Where the
# CPU has neither, there is no native kernel to name, and bf16 costs the widening on top of fp32's work.
# The fp32 matmul has no oneDNN kernel: torch sends it to MKL. The int8 `Linear` includes quantizing its
# input on every call (dynamic quantization), so it shows less than VNNI's peak; lab 03 is about int8.

# %% [markdown] sweat={"id": "sec-whole-ladder"}
# ## 8. The whole ladder, and the roofline
#
# Every rung of this lab, one core and all cores, against the ceilings of each (hardware peak, dashed;
# BLAS's best, dotted). torch's rungs ran in a fresh process on all cores.

# %% sweat={"id": "ladder-plot", "role": "demo"}
RUNGS_1 = ["numba_naive", "numba_fastmath", "numba_tiled", "numba_microkernel", "blas_fp32"]
RUNGS_ALL = ["numba_microkernel_parallel", "blas_fp32"]
LABELS = {"numba_naive": "numba ijk (lab 01)", "numba_fastmath": "dot form, fastmath (ex. 2)",
          "numba_tiled": "tiled ikj (lab 01)", "numba_microkernel": "micro-kernel 6x4 (ex. 4)",
          "blas_fp32": "BLAS np.matmul", "numba_microkernel_parallel": "micro-kernel, prange (ex. 5)"}
WRITTEN_BY = {"numba_fastmath": "scores_fast", "numba_microkernel": "micro_6x4",  # the exercise in each rung
              "numba_microkernel_parallel": "matmul_micro_parallel"}


def rung_label(rung, text):
    """text, marked " (stand-in)" when the rung ran the stand-in of the exercise it measures."""
    return lab.label(WRITTEN_BY[rung], text) if rung in WRITTEN_BY else text


entries = []  # (label, GFLOP/s, (low, high) IQR or None, threads)
for r in RUNGS_1:
    m = ladder_1.measurements[r][N]
    entries.append((rung_label(r, LABELS[r] + ", 1 thread"), m.gflops, m.iqr_gflops, 1))
for r in RUNGS_ALL:
    m = ladder_all.measurements[r][N]
    entries.append((rung_label(r, LABELS[r] + f", {CORES} threads"), m.gflops, m.iqr_gflops, CORES))
for op in ("matmul fp32", "matmul bf16"):
    if op in TORCH:
        entries.append((f"torch {op}, {CORES} threads", TORCH[op], None, CORES))
fig_ladder, ax = plt.subplots(figsize=(9, 5.4), layout="constrained")
for y, (label, gf, iqr, threads) in enumerate(entries):
    colour = "tab:blue" if threads == 1 else "tab:red"
    if iqr:
        ax.errorbar([gf], [y], xerr=[[gf - iqr[0]], [iqr[1] - gf]], fmt="o", ms=7, capsize=3, color=colour)
    else:
        ax.plot([gf], [y], "s", ms=7, color=colour)
    ax.annotate(f"{gf:,.3g}", (gf * 1.3, y), va="center", fontsize=9,
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
if NATIVE_BF16 and BF16_PEAK is not None and BF16_PEAK.gflops:
    ax.axvline(BF16_PEAK.gflops, ls="-.", color="tab:purple", lw=1.3,
               label=f"bf16 hardware peak, {CORES} cores ({BF16_PEAK.gflops:.0f})")
for x, style, colour, text in ((HW1_GFLOPS, "--", "tab:blue", f"hardware peak, 1 core ({HW1_GFLOPS:.0f})"),
                               (BLAS_1, ":", "tab:blue", f"BLAS's best, 1 core ({BLAS_1:.0f})"),
                               (HWALL_GFLOPS, "--", "tab:red", f"hardware peak, {CORES} cores ({HWALL_GFLOPS:.0f})"),
                               (BLAS_ALL, ":", "tab:red", f"BLAS's best, {CORES} cores ({BLAS_ALL:.0f})")):
    ax.axvline(x, ls=style, color=colour, lw=1.3, label=text)
ax.set_yticks(range(len(entries)), [e[0] for e in entries], fontsize=9)
ax.invert_yaxis()
values = [e[1] for e in entries]
ax.set(xscale="log", xlim=(min(values) / 2, max(values + [HWALL_GFLOPS]) * 3),
       xlabel="GFLOP/s, float32 (bf16 where named), n = %d, log scale (bars: IQR of the runs)" % N,
       title=f"This lab's matmuls on {machine.cpu_model or 'this machine'}: blue one core, red {CORES} cores")
ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False);

# %% sweat={"id": "ladder-table", "role": "demo"}
print(f"{'rung':<38}{'threads':>8}{'GFLOP/s':>10}{'% hw peak':>11}{'% BLAS':>8}{'GFLOP/J':>14}")
for r in RUNGS_1:
    m = ladder_1.measurements[r][N]
    per_j = f"{m.gflop_per_joule:.3g} {KIND[m.energy_kind]}" if m.gflop_per_joule else "n/a"
    print(f"{rung_label(r, r):<38}{1:>8}{m.gflops:>10.4g}{100 * m.gflops / HW1_GFLOPS:>10.3g}%"
          f"{100 * m.gflops / BLAS_1:>7.3g}%{per_j:>14}")
for r in RUNGS_ALL:
    m = ladder_all.measurements[r][N]
    per_j = f"{m.gflop_per_joule:.3g} {KIND[m.energy_kind]}" if m.gflop_per_joule else "n/a"
    print(f"{rung_label(r, r):<38}{CORES:>8}{m.gflops:>10.4g}"
          f"{100 * m.gflops / HWALL_GFLOPS:>10.3g}%{100 * m.gflops / BLAS_ALL:>7.3g}%{per_j:>14}")
if BF16_RUN.ok:
    for op, name in (("matmul fp32", "torch_fp32"), ("matmul bf16", "torch_bf16")):
        t = BF16_RUN.value["ops"][op]
        per_j = f"{2 * N ** 3 / 1e9 / t['joules_per_call']:.3g} {KIND[t.get('energy_kind')]}" if t.get("joules_per_call") else "n/a"
        ceiling = BF16_PEAK.gflops if (op == "matmul bf16" and BF16_PEAK is not None and BF16_PEAK.gflops) else HWALL_GFLOPS
        print(f"{name:<38}{CORES:>8}{TORCH[op]:>10.4g}{100 * TORCH[op] / ceiling:>10.3g}%{'-':>8}{per_j:>14}")
single = ladder_1.gflops["numba_microkernel"][N]
par = ladder_all.gflops["numba_microkernel_parallel"][N]
either = lab.stood_in("micro_6x4") or lab.stood_in("matmul_micro_parallel")
print(f"\n[timing] micro-kernel{' (stand-in)' if either else ''}: "
      f"{100 * single / ladder_1.gflops['blas_fp32'][N]:.0f}% of BLAS on one thread; "
      f"{lab.quote('parallel_speedup', par / single, '{:.2f}x')} on {CORES} threads "
      f"({100 * par / ladder_all.gflops['blas_fp32'][N]:.0f}% of BLAS on {CORES} threads, which ran at "
      f"{lab.quote('blas_all_gflops', ladder_all.gflops['blas_fp32'][N], '{:.0f}')} GFLOP/s)")
print("% hw peak: of the float32 peak of the cores used (torch bf16: of the bf16 peak where there is one); "
      "% BLAS: of BLAS's best on the same threads (its fastest run, at this n or the peak measurement's size)")
kinds = {m.energy_kind for lad in (ladder_1, ladder_all) for by_n in lad.measurements.values() for m in by_n.values()}
if "estimated" in kinds:
    print(f"GFLOP/J est.: an ESTIMATE, not a measurement (no CPU energy sensor read here): {lab.energy.tdp_w:g} W x "
          f"(cores used / {lab.energy.chip_cores}) x utilisation ({lab.energy.source}). At one power per core, work "
          "per joule follows work per second.")

# %% [markdown] sweat={"id": "roofline-md"}
# On every core, the micro-kernel ran {{parallel_speedup}} its one-thread speed in the shipped run, and
# BLAS {{blas_all_gflops}} GFLOP/s.
#
# Finally lab 00's roofline, measured again here on every core: the float32 and (where native) bf16
# ceilings, and the memory bandwidth of a triad. Every matmul of this lab has the same arithmetic
# intensity, 2n³ FLOPs over the 3n² float32 values it must at least read and write (n/6 FLOP/byte), so
# they stand in one column; the dot products of section 2 (2 FLOPs per 8 bytes) stand far to the left,
# and above the memory roof, because their 32 KiB lived in L1, not in DRAM.

# %% sweat={"id": "roofline-plot", "role": "demo"}
BW = roofline.stream_triad(quick=QUICK, threads=CORES)
print(BW)
ceilings = {f"fp32 hardware peak, {CORES} cores": HWALL_GFLOPS}
if NATIVE_BF16 and BF16_PEAK is not None and BF16_PEAK.gflops:
    ceilings[f"bf16 hardware peak, {CORES} cores"] = BF16_PEAK.gflops
fig_roofline = roofline.plot_roofline(None, [], peak_gflops=ceilings, bandwidth_gbs=BW.gbs,
                                      title=f"Roofline of this machine, {CORES} cores, with this lab's kernels")
ax = fig_roofline.axes[0]
ax.axhline(BLAS_ALL, color="grey", ls=":", lw=1.5, label=f"fp32 BLAS's best, {CORES} cores: {BLAS_ALL:,.0f} GFLOP/s")
mm = flops.matmul(N, N, N)
points = [(e[0], mm.intensity, e[1], "o" if e[3] == 1 else "s") for e in entries]
dot_cost = flops.Cost(2 * N_DOT, 2 * 4 * N_DOT, "dot")
points += [(f"dot, {r[0]}, 1 thread (data in L1)", dot_cost.intensity, r[2], "^") for r in chain_rows[::2]]
cmap = plt.get_cmap("tab10")
for i, (label, x, y, marker) in enumerate(points):
    ax.plot([x], [y], marker=marker, ms=8, ls="none", color=cmap(i % 10), label=label, zorder=5)
ax.set_xlim(right=max(ax.get_xlim()[1], mm.intensity * 6))
ax.set_ylim(bottom=min(ax.get_ylim()[0], min(p[2] for p in points) / 2))
ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
fig_roofline.set_size_inches(11.5, 5.5);

# %% [markdown] sweat={"id": "roofline-read"}
# Read the roofline: the matmuls share one intensity, far to the right of the ridge, so memory bandwidth
# never limits them: their heights are how well each kernel uses the arithmetic units, from the scalar
# ijk loop at the bottom to BLAS near the roof. Moving up that column is this lab; moving *right*, doing
# more work per byte, is why blocking and packing matter once data lives in DRAM.

# %% [markdown] sweat={"id": "other-hardware"}
# ## On other hardware
# - **Intel with AVX-512 (Skylake-SP to Sapphire Rapids).** 512-bit units: numba's default code prefers
#   256-bit vectors there, so ask for 512 (the setup cell does); AVX-512 roughly doubles the float32 peak
#   over AVX2. From Sapphire Rapids on, AMX tiles raise the bf16 and int8 peaks far more than wider vectors
#   do. For comparison, the shipped run ({{machine}}): the micro-kernel at {{micro_share_blas}} of
#   one-thread OpenBLAS at n = {{n}}, 512-bit / 256-bit vectors {{width_ratio}}, and torch's bf16 matmul at
#   {{torch_bf16_gflops}} GFLOP/s against {{torch_fp32_gflops}} for fp32 on {{cores}} threads, with oneDNN's
#   kernel `{{bf16_kernel}}`.
# - **AMD Zen 3 and other AVX2-only CPUs.** No AVX-512: numpy's AVX-512 switch, oneDNN's AVX-512 levels
#   and the vector-width lesson are skipped (the notebook says so), and there is no native bf16, so bf16
#   runs slower than fp32 there.
# - **AMD Zen 4.** AVX-512 on 256-bit units (two halves per instruction) and AVX512-BF16 without AMX: the
#   AVX-512 switches matter where AVX-512 has special instructions (bf16, VNNI, numpy's transcendental
#   functions), less for plain float32 arithmetic.
# - **Arm (Apple M-series, Graviton, Ampere).** NEON is 128 bits (4 float32 lanes), with 2-4 FMA pipes per
#   core; numba generates NEON code with its own LLVM, so no C compiler is needed. numpy dispatches to
#   its Arm targets (the baseline-only switch still works), torch has its own Arm kernels, and oneDNN's x86
#   ISA levels do not apply: those rows are skipped. Graviton 3 and newer have SVE and BF16.
# - **No compiler?** Nothing in this lab needs one: numba brings its own LLVM, and the libraries ship
#   their kernels compiled.
# - **Laptops** boost and throttle: compare ratios measured in one session; plug the charger in.

# %% [markdown] sweat={"id": "sec-record"}
# ## Record and summary

# %% sweat={"id": "record", "role": "demo", "record_keys": ["n", "gflops.numba_naive", "gflops.numba_fastmath", "gflops.numba_microkernel", "gflops.numba_microkernel_parallel", "gflops.blas_fp32", "gflops.torch_fp32", "gflops.torch_bf16", "threads", "hardware_peak_gflops.fp32_1_core", "hardware_peak_gflops.fp32_all_cores", "hardware_peak_gflops.bf16_all_cores", "blas_fp32_all_cores", "isa_speedups", "native_bf16", "serial_fraction", "energy_kind", "reference_functions", "quick"]}
RECORD_RUNGS = ["numba_naive", "numba_fastmath", "numba_microkernel", "numba_microkernel_parallel", "blas_fp32",
                "torch_fp32", "torch_bf16"]
MEASURED = {**{r: ladder_1.gflops[r][N] for r in RUNGS_1 if r != "numba_tiled"},
            "numba_microkernel_parallel": ladder_all.gflops["numba_microkernel_parallel"][N],
            "torch_fp32": TORCH.get("matmul fp32"), "torch_bf16": TORCH.get("matmul bf16")}
rec = lab.record(
    n=N,
    gflops={r: MEASURED.get(r) for r in RECORD_RUNGS},
    threads={r: (CORES if r in ("numba_microkernel_parallel", "torch_fp32", "torch_bf16") else 1) for r in RECORD_RUNGS},
    hardware_peak_gflops={"fp32_1_core": HW_1.gflops, "fp32_all_cores": HW_ALL.gflops,
                          "bf16_all_cores": BF16_PEAK.gflops if (NATIVE_BF16 and BF16_PEAK is not None) else None},
    blas_fp32_all_cores=ladder_all.gflops["blas_fp32"][N],
    isa_speedups=ISA_SPEEDUPS,
    native_bf16=bool(NATIVE_BF16),
    serial_fraction=F_FIT,
    energy_kind=sorted(kinds),
    reference_functions=[name for name in lab.stand_ins if lab.stood_in(name)],
    quick=QUICK,
)
print(f"recorded lab {rec['lab']} in {records.records_path_for_display()}: "
      f"{sum(v is not None for v in rec['values']['gflops'].values())} rungs at n = {N}, "
      f"{len(ISA_SPEEDUPS)} switches")

# %% tags=["solution"]
# Author only: save the key plots for the slides (slides/img/02_*.png) when asked to.
if os.environ.get("SWEAT_SLIDES_IMG"):
    for name, fig in (("families", fig_families), ("chains", fig_chains), ("dispatch", fig_dispatch),
                      ("ladder", fig_ladder), ("scaling", fig_scaling), ("roofline", fig_roofline)):
        fig.savefig(os.path.join(os.environ["SWEAT_SLIDES_IMG"], f"02_{name}.png"), dpi=120, bbox_inches="tight")
    print("saved slide images")

# %% [markdown] sweat={"id": "summary"}
# **Summary.**
# - The peak is cores x clock x lanes x FMA units x 2, and each instruction-set family changes the lanes
#   or the FLOPs per lane, for the code that uses it. Which one your code uses is decided by a compiler or
#   a library's dispatcher, not by the CPU.
# - A loop vectorises when its iterations are independent; a float reduction needs permission to
#   reassociate (`fastmath`). Independent chains beat one chain (latency against throughput), lanes beat
#   chains. The assembly counts are the evidence.
# - Dispatch switches reach only the library that reads them: each operation's speed-up says whose code
#   it runs and which instructions that code has special versions for.
# - Near-BLAS speed in plain numba needs the register block in the dot form, packed panels, provably
#   non-negative indices and the right vector width: your micro-kernel against lab 01's tiles is the
#   measurement.
# - Threads multiply it, minus the serial part (Amdahl), and only if the libraries in one process share
#   one budget of threads.
# - bf16 is fast only with instructions made for it.
#
# **Reflection questions.**
# 1. `dot_fast` and `dot_strict` give slightly different sums. Which is closer to the float64 answer, and
#    is the difference within the bound γ_k of lab 01? Would you allow `fastmath` in a kernel that sums
#    money?
# 2. In your sweep, name one operation that did not change under a switch and say whose code it runs.
# 3. Count loads and FMAs per step of k in a 4 x 4 and an 8 x 3 micro-kernel. Why not 8 x 8?
# 4. Your fit gave a serial fraction f. How fast would your kernel run on 64 cores, and what would you
#    parallelise next?
# 5. A colleague's data loader uses 8 worker threads, each calling numpy, on an 8-core laptop. What do
#    you check first, and what do you set?
#
# **Further reading.**
# - K. Goto, R. van de Geijn, "Anatomy of High-Performance Matrix Multiplication", *ACM TOMS* 34(3), 2008:
#   the packed panels and the register-blocked micro-kernel.
# - F. Van Zee, R. van de Geijn, "BLIS: A Framework for Rapidly Instantiating BLAS Functionality",
#   *ACM TOMS* 41(3), 2015: the micro-kernel as the only part written per CPU.
# - G. Amdahl, "Validity of the single processor approach to achieving large scale computing
#   capabilities", AFIPS 1967.
# - A. Fog, *Instruction tables* and *Optimizing subroutines in assembly language* (agner.org): latencies
#   and throughputs per core.
# - AMD, *Software Optimization Guide for the AMD Zen4 Microarchitecture*, pub. 57647: AVX-512 on 256-bit
#   units.
# - [numba performance tips](https://numba.readthedocs.io/en/stable/user/performance-tips.html):
#   fastmath, parallel=True, and what stops vectorisation.
# - S. Williams, A. Waterman, D. Patterson, "Roofline", *CACM* 52(4), 2009.
