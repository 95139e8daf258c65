# %% [markdown] sweat={"id": "intro"}
# # Lab 01: The naive matmul
#
# **Why is the textbook loop thousands of times slower than NumPy?**
#
# `C = A @ B` is the operation that most of a neural network's time goes into. In this lab you write
# it seven ways, from the three nested loops in every textbook to the BLAS library behind
# `np.matmul`, and measure every version on *your* machine. The measurements are plotted as a
# **ladder** in GFLOP/s, from pure Python to BLAS, against two ceilings: this core's hardware peak and
# BLAS's best run.
#
# **You will be able to**
# - measure a matmul in GFLOP/s (median of repeated runs) and say what fraction of the hardware peak and of
#   BLAS's best it reaches;
# - derive a float32 tolerance from the length k of the dot products, and check every kernel with it;
# - explain with *strides*, SIMD and the latency of a dependent add why loop order matters little in Python
#   and a great deal in compiled code;
# - write the same product as pure Python, NumPy row operations, numba loops (ijk, ikj) and a cache-tiled kernel;
# - say what is still missing between your best loop and BLAS (the subject of lab 02).
#
# **Prerequisites:** Python loops and lists, NumPy arrays and slicing. Lab 00 (timing, FLOPs,
# peak) helps; this lab repeats what it needs.
#
# **Time.** Compute, *measured* by running this notebook top to bottom on 2-core virtual machines
# shared with other jobs: 106 s in full mode (the default when you run it) on an Intel Xeon VM with
# AMX, the course's shipped run; on a 2-core AMD EPYC VM (Zen 4, *inferred*: the VM reports only
# "AMD EPYC"; CPU family 25 with AVX-512 fits Zen 4), 27-32 s in quick mode (`SWEAT_QUICK=1`, used by
# the tests) and 85-88 s in full mode. Exercise 7's speed check takes about 6 s of that. The solution's
# outputs and the figures quoted in this lab come from the course's shipped run ({{machine}},
# {{mode}} mode); your own run prints yours beside them. Reading and the seven exercises: about 80 minutes,
# *estimated* from working through the blank lab once, allowing a newcomer about 25 minutes of reading,
# 5-8 minutes per short exercise with one mistake to fix, and 20 minutes for the tiled kernel.
# Plan a 90-minute slot.
#
# Seven exercises, each a function followed by a `check(...)` cell: `matmul_rtol`, `matmul_ijk`,
# `inner_strides`, `matmul_ikj`, `matmul_rows`, `matmul_numba_ikj`, `matmul_tiled`.

# %% sweat={"id": "setup", "role": "setup"}
import math
import os

import matplotlib.pyplot as plt
import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from sweatlab.kit import open_lab
from sweatlab.measure import asm, config, flops, hardware, peak, records, roofline
from sweatlab.measure.timing import bench, format_seconds
from sweatlab.topics.ladder import Ladder, error_vs_bound, loop_order_kernel, loop_order_source, random_matrices, traffic

lab = open_lab("01_matmul")  # checks, stand-ins (labelled), the energy meter, quoted figures
QUICK = config.quick()
N_COMMON = config.pick(128, 256)  # every rung, pure Python included, is timed at this n
N_LARGE = config.pick(512, 1024)  # the fast rungs again, at an n whose matrices no longer fit in L2
N_ORDERS = config.pick(256, 512)  # the six loop orders
BUDGET_S = config.pick(0.2, 0.5)  # seconds of timed runs per measurement (bench keeps at least 3)


@njit
def matmul_numba_ijk(A, B):
    """Reference compiled kernel, the textbook ijk order: one dot product per C[i, j]. A is (M, K), B is (K, N)."""
    M, K = A.shape
    N = B.shape[1]
    C = np.zeros((M, N), dtype=A.dtype)
    for i in range(M):
        for j in range(N):
            acc = np.float32(0.0)
            for k in range(K):
                acc += A[i, k] * B[k, j]
            C[i, j] = acc
    return C


# Not an answer: the course's untiled ikj kernel, the baseline exercise 7's check times your tiled kernel against.
# The grader runs it from the blank lab, in a process of its own; exercise 6 is graded on your matmul_numba_ikj.
from sweatlab.topics.ladder import reference_matmul_numba_ikj

print(f"quick mode: {QUICK}; n = {N_COMMON} for every rung, {N_LARGE} for the fast rungs")
for name, value in (("mode", "quick" if QUICK else "full"), ("n_common", N_COMMON), ("n_large", N_LARGE),
                    ("n_orders", N_ORDERS)):
    lab.quote(name, value, "{}")  # the mode and sizes of this run, for the figures the text quotes from it

# %% [markdown] sweat={"id": "ceiling"}
# ## 1. How high is up? Two ceilings
#
# A matmul of an (m x k) by a (k x n) matrix does m·n·k multiply-adds, counted as **2mnk FLOPs**
# (a multiply and an add each count one). Its speed is FLOPs / seconds, in GFLOP/s.
#
# Every rung is compared with two ceilings, never one:
# - the **hardware peak** of one core: clock x SIMD lanes x FMA units x 2 FLOP per fused multiply-add,
#   computed by `sweatlab.measure.peak` from this CPU's instruction set. Every input is printed and the assumed
#   ones are named: a VM hides the clock, so it is *measured* with a chain of dependent adds, and the
#   number of FMA units comes from the vendor's guide for the core type. No code can beat it.
# - **BLAS's best**: the fastest run of `np.matmul` on float32 (`sweatlab.measure.roofline.peak_fp32`) at the
#   sizes this lab uses and one larger, with BLAS limited to one thread like every kernel here (threads
#   are lab 02). It is what the best code anyone wrote for this CPU reaches; how close it gets to the
#   hardware peak is itself a measurement, printed below.
#
# The rungs report their *median* run, so even BLAS lands a little under its own best.

# %% sweat={"id": "ceiling-measure", "role": "demo"}
machine = hardware.describe()
print(machine)
cores = machine.usable_cores or 1
lab.quote("machine", f"{machine.cpu_model or machine.arch}, {cores} core{'' if cores == 1 else 's'}"
                     + (", virtual machine" if machine.virtual_machine else ""), "{}")
HW = peak.hardware_peak("float32", machine, cores=1)
print(f"hardware peak, one core: {HW.formula()}")
print(f"  clock: {HW.clock.source}")
for line in HW.assumed:
    print(f"  assumed: {line}")
for line in HW.notes:
    print(f"  note: {line}")
peaks = [roofline.peak_fp32(n, quick=QUICK, threads=1) for n in (N_COMMON, N_LARGE, None)]  # None: its default n
for p in peaks:
    print(p)
BLAS_GFLOPS = max(p.gflops for p in peaks)
HW_GFLOPS = HW.gflops or float("nan")  # nan only where the clock could not be had: the % columns then say nan
print(f"[timing] BLAS's best on one core: {BLAS_GFLOPS:.1f} GFLOP/s float32 = {100 * BLAS_GFLOPS / HW_GFLOPS:.0f}% "
      f"of the hardware peak ({HW_GFLOPS:.1f} GFLOP/s)")
lab.quote("hw_gflops", HW_GFLOPS, "{:.0f}")
lab.quote("clock_ghz", HW.clock.ghz or float("nan"), "{:.2f}")
lab.quote("hw_per_cycle", f"{HW.lanes} lanes x {HW.units} FMA units x {HW.ops_per_lane}", "{}")
lab.quote("blas_best_gflops", BLAS_GFLOPS, "{:.0f}")
lab.quote("blas_pct_hw", 100 * BLAS_GFLOPS / HW_GFLOPS, "{:.0f}%")
if BLAS_GFLOPS > HW_GFLOPS:
    print("note: BLAS above the hardware peak is impossible: the clock was measured while another program shared "
          "the core (or the core type was guessed wrong). Close other programs and rerun this cell.")

# %% [markdown] sweat={"id": "tolerance"}
# ## 2. Correct first: what does "equal" mean in float32?
#
# Every kernel below is checked against a float64 reference *before* it is timed. Exact equality
# is the wrong test: float32 keeps a 24-bit significand, so each multiply and each add rounds its
# result, by a relative amount of at most the **unit roundoff** u = 2⁻²⁴ ≈ 5.96e-8: rounding to nearest
# is off by at most half a step, and a step is `np.finfo(np.float32).eps` = 2⁻²³ relative to 1.
#
# One entry of C is a dot product of length k: k products and k-1 additions, each rounding once.
# The classic bound (Higham 2002, §3.1, eq. 3.5) holds for *any* order of the additions:
#
# $$|\hat c_{ij} - c_{ij}| \le \gamma_k \sum_p |a_{ip}|\,|b_{pj}|, \qquad \gamma_k = \frac{k u}{1 - k u} \approx k u .$$
#
# That is the worst case, every rounding in the same direction. Random roundings partly cancel, so the
# *typical* error grows like √k·u instead. We check with the worst case: a correct kernel can never
# fail it, and a wrong one misses by far more. With positive inputs, Σ|a||b| is C itself, so the bound is
# simply a relative tolerance **rtol = γ_k**. The bound stops meaning anything once k·u reaches 1.

# %% [markdown] sweat={"id": "ex-rtol-task"}
# ### Exercise 1: the float32 tolerance
# Write `matmul_rtol(k)`: γ_k = k·u / (1 − k·u) with u = 2⁻²⁴, and `math.inf` when k·u ≥ 1.

# %% sweat={"id": "ex-rtol", "role": "answer", "exercise": "rtol"}
def matmul_rtol(k):
    """Worst-case relative error of a length-k float32 dot product: k u / (1 - k u), u = 2**-24 (inf if k u >= 1)."""
    ### BEGIN SOLUTION
    u = 2.0 ** -24
    if k * u >= 1:
        return math.inf
    return k * u / (1 - k * u)
    ### END SOLUTION


# %% sweat={"id": "check-rtol", "role": "check", "exercise": "rtol", "title": "Exercise 1: the float32 tolerance"}
from sweatlab.kit import check
check("rtol")

# %% [markdown] sweat={"id": "tolerance-measured"}
# How close to the bound do real sums get? The cell below adds k random float32 products in order
# (`np.cumsum`, one rounding per step, like the loops you will write) and, for comparison, with
# `np.sum`, and compares both with float64. `np.sum` (like `np.add.reduce`) adds in pairs: partial
# sums combined in a tree (NumPy's `numpy.sum` documentation, Notes). `np.matmul` does not: BLAS's
# micro-kernel adds the products one k after another into accumulators held in registers, one block of
# k at a time (Goto & van de Geijn 2008), so its rounding behaves like the in-order sum.

# %% sweat={"id": "tolerance-plot", "role": "demo"}
U = 2.0 ** -24
KS = np.unique(np.geomspace(10, config.pick(10**5, 10**6), 11).astype(int))
g = np.random.default_rng(1)
in_order, pairwise = [], []
for k in KS:
    errs_seq, errs_pair = [], []
    for _ in range(10):
        x, y = g.random(k, dtype=np.float32), g.random(k, dtype=np.float32)
        exact = float(np.dot(x.astype(np.float64), y.astype(np.float64)))
        products = x * y  # float32: each product rounded once
        errs_seq.append(abs(float(np.cumsum(products)[-1]) - exact) / exact)
        errs_pair.append(abs(float(np.sum(products)) - exact) / exact)
    in_order.append(max(errs_seq))
    pairwise.append(max(errs_pair))

bound = lab.mine("matmul_rtol")  # yours, or the labelled stand-in while exercise 1 is not written
fig, ax = plt.subplots(figsize=(7, 4.2))
ax.plot(KS, [bound(int(k)) for k in KS], "k-", label=lab.label("matmul_rtol", "bound γ_k, matmul_rtol"))
ax.plot(KS, np.sqrt(KS) * U, "k:", label="√k · u (typical size)")
ax.plot(KS, in_order, "o-", label="measured: added in order (worst of 10)")
ax.plot(KS, pairwise, "s-", label="measured: np.sum, pairwise (worst of 10)")
ax.set(xscale="log", yscale="log", xlabel="k, length of the dot product",
       ylabel="relative error vs float64", title="float32 dot products: measured error against the bound")
ax.legend(fontsize=9);

# %% [markdown] sweat={"id": "tolerance-harness"}
# Read the plot: the error of the in-order sum stays below the bound γ_k and far closer to √k·u;
# `np.sum`'s pairwise summation is smaller still. So the check below is safe for any correct kernel.
#
# The harness every rung goes through lives in the course library, `sweatlab.topics.ladder`, like the
# reference-first loop of [llm.c](https://github.com/karpathy/llm.c/blob/master/dev/cuda/matmul_forward.cu):
# check against float64 `A @ B` with rtol = γ_k from your `matmul_rtol` (printed as "error x% of the
# bound"), then time with `sweatlab.measure.timing.bench` (median of repeated runs, garbage collector off; the
# first call, which also compiles numba kernels, is never timed), and store GFLOP/s = 2n³ / median
# seconds in `LADDER`.
#
# No measurement waits for an exercise. While a function you are asked to write still raises
# `NotImplementedError`, the course's version of it stands in (the lab's stand-ins: `gamma_k` for
# `matmul_rtol`, a reference kernel for each matmul): a line starting `(stand-in)` says so once, and
# every number it makes is labelled "(stand-in)" in the timing lines, the plots and the table, so the
# course's code is never taken for yours. Write the exercise and rerun the measurement cell to put your
# own code on the ladder.

# %% sweat={"id": "harness", "role": "demo"}
# Energy per rung: measured where this machine has a CPU energy sensor (RAPL), else a labelled *estimate*
# from stated inputs (lab 00, section 8): this process's one core's share of the chip's TDP. The inputs are
# printed below; to use your CPU's (its datasheet), set SWEAT_TDP_W and SWEAT_CHIP_CORES before starting
# JupyterLab, or write them in sweatlab.ini (`sweatlab doctor` shows which inputs are in use).
print(f"energy estimate inputs: {lab.energy}")
ladder = Ladder(HW_GFLOPS, BLAS_GFLOPS, budget_s=BUDGET_S, say=print, energy_meter=lambda: lab.meter(1), lab=lab)
LADDER = ladder.gflops  # rung -> {n: GFLOP/s}, filled by measure()
rtol = lab.mine("matmul_rtol")  # your matmul_rtol; while exercise 1 is not written, the stand-in gamma_k (labelled)


def measure(rung, fn, n, *extra, lists=False, min_runs=3):
    """Check fn(A, B, *extra) at size n against float64 within rtol(n), time it, store and print its GFLOP/s.

    While fn is not written yet, the lab's stand-in for this rung is measured in its place, with a note,
    and the rung is labelled "(stand-in)". Returns a Measurement (.bench, .gflops, .error, .reference).
    """
    return ladder.measure(rung, fn, n, *extra, rtol=rtol, lists=lists, min_runs=min_runs)


for n in (N_COMMON, N_LARGE):
    print(lab.label("matmul_rtol", f"rtol for n = k = {n}: gamma_k = {rtol(n):.3g}   "
                                   f"(typical error sqrt(k) u = {math.sqrt(n) * U:.2g})"))

# %% [markdown] sweat={"id": "textbook"}
# ## 3. The textbook loop
#
# C[i][j] is the dot product of row i of A with column j of B. Three nested loops, i, j, then k:
#
# ```
# for i in range(M):          # rows of C
#     for j in range(N):      # columns of C
#         s = 0.0
#         for k in range(K):  # the dot product
#             s += A[i][k] * B[k][j]
#         C[i][j] = s
# ```

# %% [markdown] sweat={"id": "ex-ijk-task"}
# ### Exercise 2: the ijk loop in pure Python
# Write `matmul_ijk(A, B)` for `A` an M x K and `B` a K x N matrix given as **lists of lists of
# floats**; return C as a list of M lists of N floats. No NumPy inside. Mind non-square shapes and
# the edge cases 1 x K @ K x 1 (a 1 x 1 result) and K x 1 @ 1 x N.

# %% sweat={"id": "ex-ijk", "role": "answer", "exercise": "ijk"}
def matmul_ijk(A, B):
    """C = A @ B on lists of lists: C[i][j] = sum over k of A[i][k] * B[k][j], loops in i, j, k order."""
    ### BEGIN SOLUTION
    M, K, N = len(A), len(B), len(B[0])
    C = [[0.0] * N for _ in range(M)]
    for i in range(M):
        for j in range(N):
            s = 0.0
            for k in range(K):
                s += A[i][k] * B[k][j]
            C[i][j] = s
    return C
    ### END SOLUTION


# %% sweat={"id": "check-ijk", "role": "check", "exercise": "ijk", "title": "Exercise 2: the ijk loop in pure Python"}
from sweatlab.kit import check
check("ijk")

# %% [markdown] sweat={"id": "textbook-measure-md"}
# Now time it at n = `N_COMMON` (printed by the setup cell). Python floats are float64, so this rung
# computes in double precision; it is still the slowest rung by far. The second line divides the median
# time by the n³ trips through the inner loop, and sets it beside one multiply-add at the hardware peak.
# That ratio is the whole distance to BLAS, not the interpreter's cost: at the peak, BLAS also runs
# many float32 multiply-adds per cycle (16 on an AVX2 core with two 8-wide FMA units) where this loop
# does one float64 multiply and one add at a time. The interpreter's own cost is the step from
# `python_ijk` to `numba_ijk` (section 6): the same loops, compiled.

# %% sweat={"id": "textbook-measure", "role": "demo"}
r_py = measure("python_ijk", matmul_ijk, N_COMMON, lists=True)
per_iter_ns = r_py.bench.median_s / N_COMMON**3 * 1e9
print(f"[timing] {per_iter_ns:.0f} ns per inner-loop iteration; at the hardware peak one multiply-add takes "
      f"{2 / HW_GFLOPS:.3f} ns: one iteration lasts as long as {per_iter_ns / (2 / HW_GFLOPS):,.0f} "
      f"multiply-adds at peak (interpreter, float64 and no SIMD together; section 6 separates them)")
lab.quote("ns_per_iter", per_iter_ns, "{:.0f}")
lab.quote("ns_per_fma_peak", 2 / HW_GFLOPS, "{:.3f}")
lab.quote("iter_over_fma", per_iter_ns / (2 / HW_GFLOPS), "{:,.0f}x")

# %% [markdown] sweat={"id": "orders"}
# Each trip through the inner loop makes the interpreter decode bytecodes, look up `A[i]` and then
# `[k]` in lists of pointers, unbox two Python floats, allocate a new float for the product and another
# for the sum. The multiply-add itself is a tiny part of that. How tiny, section 6 measures: the same ijk
# loops, compiled (`python_ijk` to `numba_ijk` in the ladder table of section 8).
#
# ## 4. Loop orders and strides
#
# The three loops can be nested in any of 3! = 6 orders; every order computes the same sums. What changes
# is the order in which memory is visited. NumPy (and C) store a matrix **row-major**: element [r, c]
# of an n x n matrix sits r·n + c elements from the start. So a step along a row (column index + 1)
# moves 1 element (4 bytes in float32), and a step down a column moves n elements: that distance is the
# **stride** (`A.strides` gives it in bytes: `(4n, 4)`).
#
# What matters most is the innermost loop, which runs n³ times. In the order `ijk` the inner index is k:
# `A[i, k]` moves by 1, `B[k, j]` by n (down a column), `C[i, j]` by 0 (it stays put).

# %% [markdown] sweat={"id": "ex-strides-task"}
# ### Exercise 3: strides of the innermost loop
# Write `inner_strides(order, n)`: for a loop order such as `"ijk"` (outer to inner) on n x n
# row-major matrices, return the tuple `(stride_A, stride_B, stride_C)`: by how many elements the
# address of `A[i, k]`, `B[k, j]` and `C[i, j]` moves when the innermost index goes up by one.
# Example: `inner_strides("ijk", 100) == (1, 100, 0)`.

# %% sweat={"id": "ex-strides", "role": "answer", "exercise": "strides"}
def inner_strides(order, n):
    """(stride of A[i, k], of B[k, j], of C[i, j]) in elements, when the last loop of `order` steps by one."""
    ### BEGIN SOLUTION
    inner = order[-1]

    def stride(row, col):
        return n if inner == row else 1 if inner == col else 0

    return (stride("i", "k"), stride("k", "j"), stride("i", "j"))
    ### END SOLUTION


# %% sweat={"id": "check-strides", "role": "check", "exercise": "strides", "title": "Exercise 3: strides of the innermost loop"}
from sweatlab.kit import check
check("strides")

# %% sweat={"id": "strides-table", "role": "demo"} tags=["nbval-check-output"]
ORDERS = ["ijk", "ikj", "jik", "jki", "kij", "kji"]
strides = lab.mine("inner_strides")  # yours, or the labelled stand-in while exercise 3 is not written


def stride_text(order):
    """inner_strides as text with n written as 'n'."""
    return "(" + ", ".join("n" if s == 1000 else str(s) for s in strides(order, 1000)) + ")"


rows = [f"{order:<6} {order[-1]:^11}  {stride_text(order)}" for order in ORDERS]
print(lab.label("inner_strides", "order  inner index  strides (A, B, C)"), *rows, sep="\n")

# %% [markdown] sweat={"id": "ex-ikj-task"}
# Two orders, `ikj` and `kij`, walk along rows only (strides 0, 1, 1): B and C are read and written
# in the order they sit in memory, and `A[i, k]` is a constant the inner loop can keep in a register.
# Two, `jki` and `kji`, walk down columns of *two* matrices.
#
# ### Exercise 4: the ikj loop in pure Python
# Write `matmul_ikj(A, B)` (lists of lists, as in exercise 2) with the loops in i, k, j order:
# for each i and k, add `A[i][k] * B[k][j]` into `C[i][j]` for every j. Tip: fetch `A[i][k]`,
# the row `B[k]` and the row `C[i]` once, outside the j loop.

# %% sweat={"id": "ex-ikj", "role": "answer", "exercise": "ikj"}
def matmul_ikj(A, B):
    """C = A @ B on lists of lists, loops in i, k, j order: row i of C += A[i][k] * row k of B."""
    ### BEGIN SOLUTION
    M, K, N = len(A), len(B), len(B[0])
    C = [[0.0] * N for _ in range(M)]
    for i in range(M):
        c_row, a_row = C[i], A[i]
        for k in range(K):
            a, b_row = a_row[k], B[k]
            for j in range(N):
                c_row[j] += a * b_row[j]
    return C
    ### END SOLUTION


# %% sweat={"id": "check-ikj", "role": "check", "exercise": "ikj", "title": "Exercise 4: the ikj loop in pure Python"}
from sweatlab.kit import check
check("ikj")

# %% sweat={"id": "ikj-measure", "role": "demo"}
r_ikj = measure("python_ikj", matmul_ikj, N_COMMON, lists=True)
py_ikj_vs_ijk = r_ikj.bench.median_s / r_py.bench.median_s
print(f"[timing] pure Python: {ladder.label('ikj', 'python_ikj')} takes {py_ikj_vs_ijk:.2f}x "
      f"the time of {ladder.label('ijk', 'python_ijk')}")
lab.quote("py_ikj_vs_ijk", py_ikj_vs_ijk, "{:.2f}x")

# %% [markdown] sweat={"id": "rows"}
# The ratio above ({{py_ikj_vs_ijk}} in the shipped run) is far from the gap that loop order makes in
# compiled code (section 6): in the interpreter, the overhead of each iteration ({{ns_per_iter}} ns in
# the shipped run, section 3) hides most of what the memory system does. (A Python list of floats is
# not even contiguous floats: it holds pointers to float objects scattered on the heap.) Strides will
# matter as soon as the interpreter is gone: sections 5 and 6.

# %% [markdown] sweat={"id": "sec-5"}
# ## 5. NumPy over rows: let the library run the inner loop
#
# In ikj order the inner loop is `C[i, j] += a * B[k, j]` for all j: a whole row of C plus a number
# times a whole row of B. NumPy does that in one call, `C[i] += A[i, k] * B[k]`, running the j loop in
# compiled code over contiguous float32. Python now runs M·K iterations instead of M·K·N.

# %% [markdown] sweat={"id": "ex-rows-task"}
# ### Exercise 5: NumPy row operations
# Write `matmul_rows(A, B)` for float32 NumPy arrays: a Python loop over i and k, and one NumPy row
# operation per (i, k). Do not use `@`, `np.dot`, `np.matmul` or `np.einsum` (that would be the BLAS
# rung). Return a float32 array.

# %% sweat={"id": "ex-rows", "role": "answer", "exercise": "rows"}
def matmul_rows(A, B):
    """C = A @ B for NumPy arrays: for each i and k, C[i] += A[i, k] * B[k] (NumPy runs the j loop)."""
    M, K = A.shape
    N = B.shape[1]
    ### BEGIN SOLUTION
    C = np.zeros((M, N), dtype=A.dtype)
    for i in range(M):
        for k in range(K):
            C[i] += A[i, k] * B[k]
    return C
    ### END SOLUTION


# %% sweat={"id": "check-rows", "role": "check", "exercise": "rows", "title": "Exercise 5: NumPy row operations"}
from sweatlab.kit import check
check("rows")

# %% sweat={"id": "rows-measure", "role": "demo"}
r_rows = measure("numpy_rows", matmul_rows, N_COMMON)
measure("numpy_rows", matmul_rows, N_LARGE)
rows_us = r_rows.bench.median_s / N_COMMON**2 * 1e6
print(ladder.label(f"[timing] at n = {N_COMMON}: {rows_us:.2f} us per NumPy row operation, each doing {N_COMMON} "
                   "multiply-adds", "numpy_rows"))
lab.quote("rows_us", rows_us, "{:.2f}")
lab.quote("rows_gflops", r_rows.gflops, "{:.2g}")
lab.quote("rows_over_py", r_rows.gflops / r_py.gflops, "{:.0f}x")
lab.quote("rows_pct_hw", 100 * r_rows.gflops / HW_GFLOPS, "{:.2g}%")

# %% [markdown] sweat={"id": "compiled"}
# A big step up ({{rows_over_py}} pure Python's ijk in the shipped run), but each NumPy call still costs
# the time printed above ({{rows_us}} µs in the shipped run, mostly Python and NumPy call overhead) for
# only n multiply-adds of work, and it makes a temporary array (`A[i, k] * B[k]`) each time.

# %% [markdown] sweat={"id": "sec-6"}
# ## 6. Compiled loops: numba
#
# [numba](https://numba.readthedocs.io/) compiles a Python function to machine code with LLVM the
# first time it is called with given argument types (`@njit`). The loops stay the same; the
# interpreter is gone: no bytecodes, no boxed floats, just loads, multiply-adds and stores. Numba
# brings its own LLVM, so no C compiler is needed. The setup cell defines the textbook
# `matmul_numba_ijk`; all kernels in this lab run on one thread (no `prange`: threads are lab 02).

# %% [markdown] sweat={"id": "ex-numba-ikj-task"}
# ### Exercise 6: the compiled ikj kernel
# Fill in the body of `matmul_numba_ikj`: the same loops as `matmul_numba_ijk` in the setup cell, but
# in i, k, j order, adding `A[i, k] * B[k, j]` into `C[i, j]`. Keep `for j in range(N)` as the innermost
# loop. The first call compiles (about a second). The check calls it on small matrices, then times it
# against `matmul_numba_ijk` on 256 x 256 matrices, fresh ones each round, interleaved, checking every
# result, and asks for at least 2x: far less than the gain you should see (section 6 measures it). The
# course's grader, timing each call from outside its sandbox, measured 10.9-11.6x in three runs on a
# 2-core AMD EPYC VM (Zen 4, inferred) (README, *Grading*).

# %% sweat={"id": "ex-numba-ikj", "role": "answer", "exercise": "numba_ikj"}
@njit
def matmul_numba_ikj(A, B):
    """C = A @ B for float32 arrays, loops in i, k, j order, compiled by numba. A is (M, K), B is (K, N)."""
    M, K = A.shape
    N = B.shape[1]
    C = np.zeros((M, N), dtype=A.dtype)
    ### BEGIN SOLUTION
    for i in range(M):
        for k in range(K):
            a = A[i, k]
            for j in range(N):
                C[i, j] += a * B[k, j]
    ### END SOLUTION
    return C


# %% sweat={"id": "check-numba-ikj", "role": "check", "exercise": "numba_ikj", "title": "Exercise 6: the compiled ikj kernel"}
from sweatlab.kit import check
check("numba_ikj")

# %% [markdown] sweat={"id": "orders-md"}
# Now that the interpreter is gone, does loop order matter? The cell below takes all six orders from
# one template in the course's library (`loop_order_source`: the loop body is the same
# `C[i, j] += A[i, k] * B[k, j]`; it prints the jki one), compiles each with numba, and times them at
# n = `N_ORDERS`.

# %% sweat={"id": "orders-measure", "role": "demo"}
print(loop_order_source("jki"))
A_o, B_o = random_matrices(N_ORDERS)
order_gflops, order_results = {}, {}
for order in tqdm(ORDERS, desc="loop orders"):
    kernel = loop_order_kernel(order)  # the course's kernel for this order, compiled on its first call
    C_o = kernel(A_o, B_o)  # compiles it
    assert error_vs_bound(C_o, A_o, B_o, rtol(N_ORDERS)) <= 1
    res = bench(kernel, A_o, B_o, budget_s=BUDGET_S, min_runs=3, warmup=0, name=order)
    order_gflops[order] = res.gflops(flops.matmul(N_ORDERS, N_ORDERS, N_ORDERS).flops)
    order_results[order] = res
    print(f"[timing] {order}: median {format_seconds(res.median_s)}, {order_gflops[order]:.2f} GFLOP/s")
STRIDE_1 = ("ikj", "kij")  # the two orders whose inner loop has no stride n (the table in section 4)
fast_over_slow = [order_gflops[f] / order_gflops[o] for f in STRIDE_1 for o in ORDERS if o not in STRIDE_1]
ijk_over_colwise = [order_gflops["ijk"] / order_gflops[o] for o in ("jki", "kji")]
kij_vs_ikj = order_gflops["ikj"] / order_gflops["kij"]
lab.quote("orders_min_x", min(fast_over_slow), "{:.0f}")
lab.quote("orders_max_x", max(fast_over_slow), "{:.0f}")
lab.quote("orders_ikj_over_ijk", order_gflops["ikj"] / order_gflops["ijk"], "{:.0f}x")
lab.quote("orders_ijk_gflops", order_gflops["ijk"], "{:.2f}")
lab.quote("orders_b_kib", N_ORDERS**2 * 4 // 1024, "{:,}")
l2_bytes = machine.cache_bytes.get("L2")  # None where the machine does not report it
b_vs_l2 = ("not comparable with L2 (the machine does not report its size)" if not l2_bytes else
           f"{'more than' if N_ORDERS**2 * 4 > l2_bytes else 'within'} the machine's L2 ({l2_bytes // 1024:,} KiB)")
print(f"B at n = {N_ORDERS}: {N_ORDERS**2 * 4 // 1024:,} KiB, {b_vs_l2}")
lab.quote("orders_b_vs_l2", b_vs_l2, "{}")
lo, hi = min(ijk_over_colwise), max(ijk_over_colwise)
span = f"{lo:.1f}x" if f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f}-{hi:.1f}x"
lab.quote("colwise_vs_ijk", f"{span} slower than" if lo > 1 else f"{1 / hi:.2g}-{1 / lo:.2g}x the speed of", "{}")
lab.quote("kij_vs_ikj", f"{kij_vs_ikj:.1f}x slower than" if kij_vs_ikj >= 1.05 else
          f"{1 / kij_vs_ikj:.1f}x faster than" if kij_vs_ikj <= 1 / 1.05 else "as fast as (within 5%)", "{}")
lab.quote("kij_gflops", order_gflops["kij"], "{:.1f}")
lab.quote("ikj_gflops_orders", order_gflops["ikj"], "{:.1f}")

# %% sweat={"id": "orders-plot", "role": "demo"}
fig_orders, ax = plt.subplots(figsize=(7, 4))
labels = [f"{o}\n{stride_text(o)}" for o in ORDERS]  # strides: yours, or the stand-in's (labelled on the axis)
colours = ["tab:green" if max(strides(o, 1000)) == 1 else "tab:red" for o in ORDERS]
work_o = flops.matmul(N_ORDERS, N_ORDERS, N_ORDERS).flops / 1e9
for x, (o, colour) in enumerate(zip(ORDERS, colours)):
    q1, q3 = np.percentile(order_results[o].samples_s, [25, 75])  # the runs' IQR, as a rate below
    g = order_gflops[o]
    ax.errorbar([x], [g], yerr=[[g - work_o / q3], [work_o / q1 - g]], fmt="o", color=colour, ms=8, capsize=4)
    ax.annotate(f"{g:.2g}", (x, g), textcoords="offset points", xytext=(10, 0), va="center", fontsize=9)
ax.set_xticks(range(len(ORDERS)), labels)
ax.set(yscale="log", ylabel="GFLOP/s (log scale; median, bars = IQR)", xlim=(-0.5, len(ORDERS) - 0.5),
       xlabel=lab.label("inner_strides", "loop order, and inner-loop strides (A, B, C)"),
       title=f"Six loop orders, numba, float32, n = {N_ORDERS}, 1 thread (green: no stride n)");

# %% [markdown] sweat={"id": "compiled-why"}
# Read the bars. In the shipped run (n = {{n_orders}}), the two orders whose inner loop has no stride n ran
# **{{orders_min_x}}-{{orders_max_x}}x** faster than the other four (ikj over ijk: {{orders_ikj_over_ijk}}).
# Strides are only part of the reason:
# - **SIMD.** With stride 1 and no dependence between iterations of j, LLVM turns the inner loop of ikj
#   and kij into vector instructions (8 float32 per AVX2 instruction, 16 per AVX-512 one: the assembly
#   count below shows which this machine got). No other order gets that.
# - **A chain of dependent adds.** In ijk and jik the inner loop is a running sum: each `+=` waits for
#   the previous add to finish, and without permission to reorder additions (`fastmath`, lab 02) LLVM
#   must keep that order: at best one step per latency of a floating-point add, 3 cycles on AMD's Zen
#   cores and 4 on Intel Skylake-family cores in A. Fog's *Instruction tables* (Technical University of
#   Denmark, 2022). The ladder's numba ijk rung, measured next, shows how close ijk comes to that pace
#   where its matrices are small. At n = {{n_orders}} (these bars) B alone is {{orders_b_kib}} KiB: in
#   the shipped run that was {{orders_b_vs_l2}}; the last line printed gives yours. Where B is larger
#   than L2, its columns no longer stay there and ijk can slow down further. In these bars ijk ran
#   {{orders_ijk_gflops}} GFLOP/s in the shipped run; the rung below measures it at n = {{n_common}},
#   to compare.
# - **Cache lines.** Memory moves in 64-byte lines (16 floats). A stride-1 loop uses all 16 floats of
#   each line it loads; jki and kji step down columns of A *and* C, so every load and every store
#   touches a new line: in the shipped run they ran {{colwise_vs_ijk}} ijk.
#
# ikj and kij have the same strides; in the shipped run kij ran {{kij_vs_ikj}} ikj ({{kij_gflops}}
# against {{ikj_gflops_orders}} GFLOP/s; 1.5x slower in an earlier run on a Zen 3 VM at n = 256). Their
# traffic differs: ikj keeps row i of C in L1 for its whole k loop and streams rows of B, which it only
# reads; kij holds one row of B and sweeps it over every row of C, so each (k, i) step reads a row of C
# from beyond L1 and writes it back. Whether that extra traffic costs time depends on how fast your L2
# refills L1, and a small difference either way can also come from how LLVM compiled each loop; the
# lab does not count the traffic.
#
# Now the same two kernels as rungs of the ladder, at both sizes, and what one step of ijk's chain costs:

# %% sweat={"id": "compiled-measure", "role": "demo"}
for n in (N_COMMON, N_LARGE):
    measure("numba_ijk", matmul_numba_ijk, n)
    measure("numba_ikj", matmul_numba_ikj, n)
m_ijk, m_ikj = ladder.measurements["numba_ijk"][N_COMMON], ladder.measurements["numba_ikj"][N_COMMON]
step_ns = m_ijk.bench.median_s / N_COMMON**3 * 1e9
clock = HW.clock.ghz or float("nan")
print(f"[timing] numba ijk at n = {N_COMMON}: {step_ns:.2f} ns per step of its chain = {step_ns * clock:.1f} cycles at "
      f"{clock:.2f} GHz; one add's latency: 3 cycles on AMD Zen, 4 on Intel Skylake-family cores")
print(ladder.label(f"[timing] at n = {N_COMMON}: numba ijk {m_ijk.gflops / r_py.gflops:,.0f}x pure Python's ijk "
                   f"(the interpreter's cost); numba ikj {m_ikj.gflops / m_ijk.gflops:.0f}x numba ijk", "numba_ikj"))
lab.quote("ijk_ns_step", step_ns, "{:.2f}")
lab.quote("ijk_cycles_step", step_ns * clock, "{:.1f}")
lab.quote("gf_numba_ijk", m_ijk.gflops, "{:.2f}")
lab.quote("gf_numba_ikj", m_ikj.gflops, "{:.3g}")
lab.quote("interpreter_x", m_ijk.gflops / r_py.gflops, "{:,.0f}x")
lab.quote("ikj_over_ijk", m_ikj.gflops / m_ijk.gflops, "{:.0f}x")
orders_over_rung = order_gflops["ijk"] / m_ijk.gflops  # the bars' ijk at N_ORDERS against this rung at N_COMMON
lab.quote("ijk_orders_vs_rung", f"{orders_over_rung:.1f}x faster than" if orders_over_rung >= 1.1 else
          f"{1 / orders_over_rung:.1f}x slower than" if orders_over_rung <= 1 / 1.1 else "as fast as (within 10%)",
          "{}")

# %% [markdown] sweat={"id": "compiled-read"}
# Read the two lines. One step of numba ijk's chain took {{ijk_cycles_step}} cycles in the shipped run
# ({{ijk_ns_step}} ns at {{clock_ghz}} GHz). If the chain of dependent adds, not memory, sets its pace,
# that is the latency of one floating-point add on that core (3 cycles on AMD's Zen cores and 4 on Intel
# Skylake-family cores in Fog's tables; other cores differ): the test after the assembly times a chain
# of adds alone, to compare. Compiling the same ijk loops made them {{interpreter_x}} faster than in
# pure Python: that is the interpreter's cost. The stride-1 ikj order, compiled, is another
# {{ikj_over_ijk}} faster than compiled ijk at n = {{n_common}}.
#
# Against the loop-order bars: at n = {{n_common}} this ijk rung ran {{gf_numba_ijk}} GFLOP/s in the
# shipped run, and the bars' ijk at n = {{n_orders}} ran {{ijk_orders_vs_rung}} it (two kernels with the
# same loops, timed by two harnesses, so only a large difference means much). Clearly slower at the
# larger n suggests that memory joined the chain as a limit once B outgrew a cache; about as fast, or
# faster, suggests that the chain of adds sets the pace at both sizes.

# %% [markdown] sweat={"id": "asm-md"}
# **Evidence, not faith.** "LLVM vectorised the ikj loop" is a claim about machine code, so read the
# machine code. `sweatlab.measure.asm.float_ops` counts the floating-point instructions numba generated for a
# kernel (`inspect_asm()`): scalar ones, one number each (`vaddss`), packed ones by register width
# (xmm 128 bits, ymm 256, zmm 512: 4, 8 or 16 float32 at once), and fused multiply-adds (`vfmadd...`).

# %% sweat={"id": "asm-count", "role": "demo"}
kernel_ikj, _ = lab.pick("matmul_numba_ikj", *random_matrices(8))  # yours, or the stand-in (labelled below)
for name, fn in (("numba ijk (given)", matmul_numba_ijk), (lab.label("matmul_numba_ikj", "numba ikj"), kernel_ikj)):
    counts = asm.float_ops(asm.numba_asm(fn))
    print(f"{name:24s} " + ", ".join(f"{kind}: {count}" for kind, count in counts.items() if count))

# %% [markdown] sweat={"id": "asm-read"}
# Read the counts. ijk's arithmetic is all scalar: one multiply and one add per step, whatever the
# CPU offers. ikj's inner loop runs on packed registers: the SIMD that section 6 spoke of (on an
# AVX-512 core LLVM may choose zmm, on an AVX2 core ymm, on Arm NEON). The scalar instructions that
# remain in ikj handle the last few columns when N is not a multiple of the vector width. If the FMA
# count is 0, the multiply and the add stay apart: fusing them rounds once instead of twice, which
# changes results, so LLVM does it only when allowed (`fastmath`, lab 02).
#
# **Latency or throughput?** Section 6 blamed ijk's speed on one chain of dependent adds. Test that:
# the same float32 dot product with 1, 4 and 8 independent running sums (still scalar code: each sum
# keeps its own order, so no `fastmath` is needed). One chain can do no better than one add per add
# latency; independent chains overlap in the pipeline, until the core's adders and load ports are busy.

# %% sweat={"id": "chains-measure", "role": "demo"}
@njit
def dot_1_chain(x, y):
    s = np.float32(0.0)
    for i in range(x.shape[0]):
        s += x[i] * y[i]
    return s


@njit
def dot_4_chains(x, y):
    """x and y as (n/4, 4) views: column c feeds running sum c, four sums that do not wait on each other."""
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


N_DOT = 4096  # 2 x 16 KiB of float32: in L1, so memory is not the limit
x_d, y_d = (np.random.default_rng(seed).random(N_DOT, dtype=np.float32) for seed in (1, 2))
exact = float(x_d.astype(np.float64) @ y_d.astype(np.float64))
clock_ghz = HW.clock.ghz or float("nan")
chain_gflops = {}
for chains, fn in ((1, dot_1_chain), (4, dot_4_chains), (8, dot_8_chains)):
    a, b = (x_d, y_d) if chains == 1 else (x_d.reshape(-1, chains), y_d.reshape(-1, chains))
    assert abs(float(fn(a, b)) - exact) <= rtol(N_DOT) * exact, chains
    res = bench(fn, a, b, budget_s=BUDGET_S, name=f"{chains} chain(s)")
    chain_gflops[chains] = 2 * N_DOT / res.median_s / 1e9
    cycles_per_step = res.median_s * clock_ghz * 1e9 / (N_DOT / chains)
    print(f"[timing] {chains} chain(s): {chain_gflops[chains]:6.2f} GFLOP/s ({chain_gflops[chains] / chain_gflops[1]:.1f}x "
          f"one chain); {cycles_per_step:4.1f} cycles per step of each chain at {clock_ghz:.2f} GHz")
chain1_cycles = 2 * clock_ghz / chain_gflops[1]  # cycles per step of the one chain: this core's add latency
print(f"one chain at the {chain1_cycles:.1f} cycles per add measured here allows {chain_gflops[1]:.2f} GFLOP/s at "
      f"{clock_ghz:.2f} GHz: the most any loop that waits on one add per step (numba ijk) can reach")
eight_vs_four = chain_gflops[8] / chain_gflops[4]
lab.quote("chain1_cycles", chain1_cycles, "{:.1f}")
lab.quote("chain4_x", chain_gflops[4] / chain_gflops[1], "{:.1f}x")
lab.quote("chain8_vs_4", "no faster than four" if eight_vs_four < 1.1 else f"{eight_vs_four:.1f}x faster than four",
          "{}")
lab.quote("chain1_gflops", chain_gflops[1], "{:.1f}")  # the bound one chain of adds sets, at this core's latency
ijk_over_chain = step_ns * clock_ghz / chain1_cycles  # numba ijk's step against one chain's
lab.quote("ijk_vs_chain", "about the pace of" if 0.75 <= ijk_over_chain <= 1.33 else
          f"{ijk_over_chain:.1f}x as slow as" if ijk_over_chain > 1.33 else f"{1 / ijk_over_chain:.1f}x faster than",
          "{}")

# %% [markdown] sweat={"id": "chains-read"}
# Read the lines. One chain runs one add at a time, each waiting for the last: in the shipped run it took
# {{chain1_cycles}} cycles per step at the clock section 1 measured, the latency of an add on that core,
# so one chain ran {{chain1_gflops}} GFLOP/s: the most that any loop waiting on one add per step can
# reach at that clock (the last line printed). Numba ijk's step in section 6 ran {{ijk_vs_chain}} this
# chain alone. Independent chains can go faster on the same core, because their adds overlap in the
# pipeline: four chains ran {{chain4_x}} the rate of one in the shipped run. Past some number of chains
# the rate stops rising (eight chains in the shipped run: {{chain8_vs_4}}), and the limit is then
# throughput (how many adds and loads the core starts per cycle), not latency. That is the second half
# of why BLAS is fast: its micro-kernel keeps many independent sums of C in registers (lab 02).

# %% [markdown] sweat={"id": "tiling"}
# ## 7. Cache tiling
#
# In ikj order each row i of A sweeps over **all of B**: at n = `N_LARGE` that is n²·4 bytes (1 MiB
# at n = 512, 4 MiB at n = 1024). Where that is more than the L2 cache (this machine's is printed
# below), B is fetched from L3 or memory again for every row. **Tiling** cuts B into tile x tile blocks and
# uses each block for *every* row of A while it is still in cache:
#
# ```
# for j0 in range(0, N, tile):                 # a block of columns of B and C
#     for k0 in range(0, K, tile):             # ... and of rows of B: the tile B[k0:k1, j0:j1]
#         copy B[k0:k1, j0:j1] into Bt         # "packing": the tile becomes contiguous
#         for i in range(M):                   # every row of A reuses the tile
#             C[i, j0:j1] += A[i, k0:k1] @ Bt  # as ikj loops over the tile
# ```
#
# Three details decide whether tiling pays off:
# 1. **Edges.** n need not be a multiple of tile: each block ends at `min(start + tile, size)`.
# 2. **Packing.** Rows of B are n·4 bytes apart. When n is a power of two, the rows of a tile land in
#    the same few cache sets and evict each other (Lam, Rothberg & Wolf 1991). Copying the tile into
#    the small contiguous buffer `Bt` avoids that; the copy is done once per tile and reused M times.
# 3. **Row views.** Inside the tile, take `c_row = C[i, j0:j1]` and `b_row = Bt[kk]` and loop
#    `for jj in range(j1 - j0)`. Written as `for j in range(j0, j1): C[i, j] += ...`, numba cannot prove the
#    index is never negative, inserts a wrap-around test for Python's negative indices, and LLVM no
#    longer vectorizes the loop. The demo after the exercise measures how much that costs.

# %% sweat={"id": "tiling-caches", "role": "demo"}
cache = machine.cache_bytes
for level in ("L1d", "L2", "L3"):
    size = cache.get(level)
    print(f"{level:>3}: {'not reported on this machine' if size is None else f'{size // 1024} KiB'}")
print(f"B at n = {N_LARGE}: {N_LARGE**2 * 4 // 1024} KiB; one tile x tile float32 block: tile² x 4 bytes")
lab.quote("l2_size", f"{cache['L2'] // 1024:,} KiB" if cache.get("L2") else "unknown", "{}")

# %% [markdown] sweat={"id": "ex-tiled-task"}
# ### Exercise 7: the tiled kernel
# Fill in `matmul_tiled(A, B, tile)` following the sketch above: blocks over j and k, the tile of B
# packed into `Bt`, then every row i of A, with ikj loops on row views inside the tile. It must be
# correct for any tile ≥ 1, including sizes that are not a multiple of tile and a tile larger than the matrix.
# It must also pay off: the check times it (tile 128) against the library's untiled ikj on a
# 32 x 6144 @ 6144 x 6144 product, whose B (144 MiB) is larger than the caches of the CPUs this course
# runs on, and asks for at least 1.5x (about 3x on a 2-core AMD EPYC VM, Zen 4, when the check was set). That
# check takes a few seconds: it makes fresh inputs for every timed round.

# %% sweat={"id": "ex-tiled", "role": "answer", "exercise": "tiled"}
@njit
def matmul_tiled(A, B, tile):
    """C = A @ B in tile x tile blocks of B, each packed into Bt and reused for every row of A."""
    M, K = A.shape
    N = B.shape[1]
    C = np.zeros((M, N), dtype=A.dtype)
    Bt = np.empty((tile, tile), dtype=B.dtype)  # the packed tile of B
    ### BEGIN SOLUTION
    for j0 in range(0, N, tile):
        j1 = min(j0 + tile, N)
        for k0 in range(0, K, tile):
            k1 = min(k0 + tile, K)
            for kk in range(k1 - k0):  # pack B[k0:k1, j0:j1] into contiguous rows of Bt
                src, dst = B[k0 + kk, j0:j1], Bt[kk]
                for jj in range(j1 - j0):
                    dst[jj] = src[jj]
            for i in range(M):  # every row of A reuses the tile while it is in cache
                c_row, a_row = C[i, j0:j1], A[i, k0:k1]
                for kk in range(k1 - k0):
                    a, b_row = a_row[kk], Bt[kk]
                    for jj in range(j1 - j0):
                        c_row[jj] += a * b_row[jj]
    ### END SOLUTION
    return C


# %% sweat={"id": "check-tiled", "role": "check", "exercise": "tiled", "title": "Exercise 7: the tiled kernel"}
from sweatlab.kit import check
check("tiled")

# %% [markdown] sweat={"id": "tile-sweep-md"}
# Which tile size is best? Too small, and the loop overhead of short inner loops dominates; too large,
# and the tile no longer fits in the cache it was meant for. The sweep below times every tile at
# n = `N_LARGE` and marks where a tile (tile²·4 bytes) fills L1d and L2.

# %% sweat={"id": "tile-sweep", "role": "demo"}
TILES = [t for t in (8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512) if t <= N_LARGE]
A_t, B_t = random_matrices(N_LARGE)
# your matmul_tiled, or the lab's stand-in while exercise 7 is not written (compiles; 48 does not divide N_LARGE)
tiled, C_t = lab.pick("matmul_tiled", A_t, B_t, 48)
assert error_vs_bound(C_t, A_t, B_t, rtol(N_LARGE)) <= 1
TILED = lab.label("matmul_tiled")  # the name on the plots: "matmul_tiled (stand-in)" for the lab's stand-in
tile_gflops = {}
for tile in tqdm(TILES, desc="tile sizes"):
    res = bench(tiled, A_t, B_t, tile, budget_s=BUDGET_S / 2, min_runs=3, warmup=0, name=f"tile {tile}")
    tile_gflops[tile] = res.gflops(flops.matmul(N_LARGE, N_LARGE, N_LARGE).flops)
best_tile = max(tile_gflops, key=tile_gflops.get)
print(f"[timing] best tile at n = {N_LARGE} for {TILED}: {best_tile} ({tile_gflops[best_tile]:.1f} GFLOP/s)")
lab.quote("best_tile", best_tile, "{}")


def plot_tile_sweep(extra=None):
    """GFLOP/s against tile size, untiled ikj for reference, cache sizes marked; extra = (tile, GFLOP/s) to add."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(list(tile_gflops), list(tile_gflops.values()), "o-", label=TILED)
    ikj = LADDER.get("numba_ikj", {}).get(N_LARGE)
    if ikj:
        ax.axhline(ikj, color="tab:gray", ls="--", label=ladder.label("numba ikj, untiled", "numba_ikj"))
    for level, style in (("L1d", ":"), ("L2", "-.")):
        if cache.get(level):
            ax.axvline(math.sqrt(cache[level] / 4), color="k", ls=style, lw=1, label=f"tile fills {level}")
    if extra is not None:
        ax.plot(*extra, "r*", ms=14, label=f"tile = {extra[0]} (slider)")
    ax.set(xscale="log", xlabel="tile size (log scale)", ylabel="GFLOP/s",
           title=f"Tile sweep, n = {N_LARGE}, float32, 1 thread")
    ax.set_xticks(TILES, [str(t) for t in TILES], minor=False)
    ax.minorticks_off()
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=9)
    return fig


fig_tiles = plot_tile_sweep()

# %% [markdown] sweat={"id": "tile-explore-md"}
# Explore with the slider (it times one tile size and adds it to the plot as a red star; in a
# notebook run without a browser, it shows the best tile). The same function works without widgets:
# `explore_tile(100)`.

# %% sweat={"id": "tile-explore", "role": "demo"}
def explore_tile(tile=64):
    """Time matmul_tiled (the sweep's kernel) at n = N_LARGE with this tile and show it on the sweep."""
    res = bench(tiled, A_t, B_t, tile, budget_s=0.1, min_runs=3, name=f"tile {tile}")
    gf = res.gflops(flops.matmul(N_LARGE, N_LARGE, N_LARGE).flops)
    print(f"[timing] {TILED}, tile {tile}: {gf:.1f} GFLOP/s (median of {res.runs} runs)")
    plot_tile_sweep(extra=(tile, gf))
    plt.show()


try:
    import ipywidgets as widgets
except ImportError:
    widgets = None
if widgets is not None:
    widgets.interact(explore_tile, tile=widgets.IntSlider(value=best_tile, min=4, max=N_LARGE, step=4,
                                                          continuous_update=False, description="tile"))
else:
    print("ipywidgets is not installed: call explore_tile(64) with the tile size you want")

# %% [markdown] sweat={"id": "tile-trap-md"}
# The trap from detail 3, measured: the course's tiled kernel written with absolute indices, its inner
# loops
#
# ```
# for k in range(k0, k1):
#     a = A[i, k]
#     for j in range(j0, j1):
#         C[i, j] += a * Bt[k - k0, j - j0]
# ```
#
# instead of row views (`demo_matmul_tiled_absolute` in `sweatlab.topics.ladder`), against the sweep's
# kernel at its best tile.

# %% sweat={"id": "tile-trap", "role": "demo"}
from sweatlab.topics.ladder import demo_matmul_tiled_absolute  # correct, but numba keeps a wrap-around test

assert error_vs_bound(demo_matmul_tiled_absolute(A_t, B_t, best_tile), A_t, B_t, rtol(N_LARGE)) <= 1
slow = bench(demo_matmul_tiled_absolute, A_t, B_t, best_tile, budget_s=BUDGET_S, min_runs=3, warmup=0)
fast = bench(tiled, A_t, B_t, best_tile, budget_s=BUDGET_S, min_runs=3, warmup=0)
print(f"[timing] tile {best_tile}, n = {N_LARGE}: absolute indices {format_seconds(slow.median_s)}, "
      f"row views ({TILED}) {format_seconds(fast.median_s)}: absolute indices take {slow.median_s / fast.median_s:.1f}x "
      "the time")
lab.quote("trap_x", slow.median_s / fast.median_s, "{:.0f}x")

# %% [markdown] sweat={"id": "tiling-rung-md"}
# Compare the best tile with the dashed line (untiled ikj). How much tiling buys depends on n and on
# the caches: less while B fits in L2 anyway (the tile then saves only trips to L2), more once it does
# not; less where a large, fast L3 feeds the untiled loop well enough, more where L3 is small or slow
# per core. The sweep on *your* machine is the answer for your machine. The tiled rung of the ladder uses the best tile, at both sizes:

# %% sweat={"id": "tiling-measure", "role": "demo"}
for n in (N_COMMON, N_LARGE):
    measure("numba_tiled", matmul_tiled, n, min(best_tile, n))
tiled_gain = {n: LADDER["numba_tiled"][n] / LADDER["numba_ikj"][n] for n in (N_COMMON, N_LARGE)}
print(ladder.label(f"[timing] tiled over untiled ikj: {tiled_gain[N_COMMON]:.2f}x at n = {N_COMMON}, "
                   f"{tiled_gain[N_LARGE]:.2f}x at n = {N_LARGE} (tile {best_tile})", "numba_tiled"))
lab.quote("tiled_gain_common", tiled_gain[N_COMMON], "{:.2f}x")
lab.quote("tiled_gain_large", tiled_gain[N_LARGE], "{:.2f}x")

# %% [markdown] sweat={"id": "blas"}
# ## 8. BLAS, and the whole ladder
#
# `np.matmul` calls the BLAS library NumPy was built with (OpenBLAS in the pip wheels; Accelerate on
# recent macOS). Its kernels are written per CPU family, largely in assembly. We limit it to one thread,
# like every other rung.

# %% sweat={"id": "blas-measure", "role": "demo"}
with threadpool_limits(limits=1, user_api="blas"):
    for n in (N_COMMON, N_LARGE):
        r_blas = measure("blas", np.matmul, n)
threads = r_blas.bench.threads  # the thread settings bench records with each timing
print(f"thread settings recorded by bench: BLAS {threads['blas']} with {threads['blas_threads']} thread(s); "
      f"numba pool {threads['numba_threads']} thread(s), unused here (no prange)")

# %% sweat={"id": "ladder-plot", "role": "demo"}
RUNGS = ["python_ijk", "python_ikj", "numpy_rows", "numba_ijk", "numba_ikj", "numba_tiled", "blas"]
LABELS = {"python_ijk": "pure Python, ijk", "python_ikj": "pure Python, ikj", "numpy_rows": "NumPy row ops",
          "numba_ijk": "numba, ijk", "numba_ikj": "numba, ikj", "numba_tiled": "numba, tiled ikj",
          "blas": "BLAS np.matmul"}
common = [LADDER.get(r, {}).get(N_COMMON, np.nan) for r in RUNGS]
large = [LADDER.get(r, {}).get(N_LARGE, np.nan) for r in RUNGS]

fig_ladder, ax = plt.subplots(figsize=(9, 5.6), layout="constrained")
y = np.arange(len(RUNGS))


def iqr_bars(n):
    """Median GFLOP/s of each rung at size n, and the distance to its IQR ends (the runs' spread, as a rate)."""
    mid, lo, hi = [], [], []
    for r in RUNGS:
        m = ladder.measurements.get(r, {}).get(n)
        if m is None:
            mid.append(np.nan), lo.append(0.0), hi.append(0.0)
            continue
        slow, fast = m.iqr_gflops
        mid.append(m.gflops), lo.append(m.gflops - slow), hi.append(fast - m.gflops)
    return np.array(mid), np.array([lo, hi])


for n, marker, colour, dy, text in ((N_COMMON, "o", "tab:blue", -0.12, f"n = {N_COMMON} (every rung)"),
                                     (N_LARGE, "D", "tab:orange", 0.12, f"n = {N_LARGE} (the faster rungs only)")):
    mid, err = iqr_bars(n)
    ax.errorbar(mid, y + dy, xerr=err, fmt=marker, color=colour, ms=7, capsize=3, lw=1.2,
                label=f"{text}: median, bars = IQR of the runs")
ax.axvline(HW_GFLOPS, color="k", ls="--", lw=1.2, label=f"hardware peak, 1 core ({HW_GFLOPS:.0f} GFLOP/s)")
ax.axvline(BLAS_GFLOPS, color="grey", ls=":", lw=1.5, label=f"BLAS's best, 1 core ({BLAS_GFLOPS:.0f} GFLOP/s)")
for yi, gf, gf_large in zip(y, common, large):
    if np.isfinite(gf):
        pct = 100 * gf / HW_GFLOPS
        at = np.nanmax([gf, gf_large]) * 1.6
        ax.annotate(f"{gf:.3g} GFLOP/s ({pct:.0f}%)" if pct >= 10 else f"{gf:.3g} GFLOP/s ({pct:.2g}%)",
                    (at, yi), va="center", fontsize=9)
ax.set_yticks(y, [ladder.label(LABELS[r], r) for r in RUNGS])  # "(stand-in)": the lab's kernel, not yours
ax.invert_yaxis()
ax.set_xscale("log")
ax.set_xlim(min([v for v in common + large if np.isfinite(v)] + [BLAS_GFLOPS / 1e4]) / 3,
            max(HW_GFLOPS, BLAS_GFLOPS) * 30)
ax.set_xlabel("GFLOP/s, float32 (pure Python: float64), 1 thread, log scale")
top = ax.secondary_xaxis("top", functions=(lambda g: 100 * g / HW_GFLOPS, lambda p: p * HW_GFLOPS / 100))
top.set_xlabel("% of the hardware peak (labels: GFLOP/s and % of it)")
ax.set_title(f"The matmul ladder on {machine.cpu_model or 'this machine'}, one core", fontsize=11)
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=9, frameon=False);

# %% sweat={"id": "ladder-table", "role": "demo"}
base = LADDER.get("python_ijk", {}).get(N_COMMON)
names = {r: ladder.label(r, r) for r in RUNGS}  # "(stand-in)": measured with the lab's stand-in
w = max(map(len, names.values())) + 1
KIND = {"measured": "measured", "estimated": "est.", "unavailable": ""}


def per_joule(r, n):
    """The rung's GFLOP per joule at size n, with its kind, as text ("-" when unknown)."""
    m = ladder.measurements.get(r, {}).get(n)
    if m is None or m.gflop_per_joule is None:
        return "-"
    return f"{m.gflop_per_joule:.3g} {KIND[m.energy_kind]}"


print(f"{'rung':<{w}}{'n':>6}{'GFLOP/s':>12}{'% of hw peak':>14}{'% of BLAS':>11}{'x pure Python ijk':>19}"
      f"{'GFLOP/J':>15}")
for n in (N_COMMON, N_LARGE):
    for r in RUNGS:
        gf = LADDER.get(r, {}).get(n)
        if gf is None:
            continue
        times = "-" if not base or n != N_COMMON else f"{gf / base:,.0f}x" if gf >= 10 * base else f"{gf / base:.2g}x"
        print(f"{names[r]:<{w}}{n:>6}{gf:>12.4g}{100 * gf / HW_GFLOPS:>13.3g}%{100 * gf / BLAS_GFLOPS:>10.3g}%{times:>19}"
              f"{per_joule(r, n):>15}")
kinds = {m.energy_kind for by_n in ladder.measurements.values() for m in by_n.values()}
if "estimated" in kinds:
    print(f"\nGFLOP/J est.: an ESTIMATE, not a measurement (no CPU energy sensor here): power = {lab.energy.tdp_w:g} W "
          f"x (1 core / {lab.energy.chip_cores}) x CPU utilisation, inputs: {lab.energy}. At one power for every "
          "rung, work per joule follows work per second."
          + (" These inputs are hypothetical: set SWEAT_TDP_W and SWEAT_CHIP_CORES before starting JupyterLab, or "
             "write them in sweatlab.ini (`sweatlab doctor` shows which inputs are in use)."
             if lab.energy.hypothetical else ""))
if any(ladder.by_stand_in(r) for r in RUNGS):
    print("\n(stand-in): the lab's stand-in kernel was measured for an exercise not written yet; write it and rerun "
          "that rung's measurement cell to put yours on the ladder")
with threadpool_limits(limits=1, user_api="blas"):  # like with like: the same product in float64, BLAS, one thread
    A64, B64 = (X.astype(np.float64) for X in random_matrices(N_COMMON))
    blas64_gflops = bench(np.matmul, A64, B64, budget_s=BUDGET_S, min_runs=3, name="blas float64").gflops(
        flops.matmul(N_COMMON, N_COMMON, N_COMMON).flops)
if base and "blas" in LADDER:
    blas = LADDER["blas"][N_COMMON]
    print(f"\n[timing] span at n = {N_COMMON}: BLAS (float32) is {blas / base:,.0f}x faster than the textbook Python "
          f"loop (float64); like with like, BLAS in float64 ({blas64_gflops:.3g} GFLOP/s) is {blas64_gflops / base:,.0f}x"
          f" faster")
    lab.quote("gf_python_ijk", base, "{:.2g}")
    lab.quote("gf_blas", blas, "{:.3g}")
    lab.quote("span_x", float(f"{blas / base:.2g}"), "{:,.0f}x")  # two significant digits: "about 2,700x"
    lab.quote("span_f64_x", float(f"{blas64_gflops / base:.2g}"), "{:,.0f}x")
    lab.quote("f32_over_f64", blas / blas64_gflops, "{:.1f}x")
loops = [LADDER[r][N_LARGE] for r in ("numba_ikj", "numba_tiled") if N_LARGE in LADDER.get(r, {})]
if loops and N_LARGE in LADDER.get("blas", {}):
    lab.quote("best_loop_pct_hw", 100 * max(loops) / HW_GFLOPS, "{:.0f}%")
    lab.quote("blas_over_best", LADDER["blas"][N_LARGE] / max(loops), "{:.1f}x")
if any(gf > BLAS_GFLOPS for rung in LADDER.values() for gf in rung.values()):
    print("note: a rung above 100% of BLAS's best means the machine was busier while BLAS was measured"
          " (section 1) than later; rerun both for steadier percentages")

# %% [markdown] sweat={"id": "ladder-roofline-md"}
# ### The ladder on the roofline
# Lab 00 placed kernels on this machine's roofline by their arithmetic intensity, FLOPs per byte
# moved to and from memory. For a matmul that byte count depends on the loop, not on the maths, so
# each rung needs a **model of its traffic** beyond the caches (`traffic` from `sweatlab.topics.ladder`, for an n x n product):
#
# | rung | what goes to memory | elements moved | FLOP/byte, float32 |
# |---|---|---|---|
# | untiled loops (Python, NumPy rows, numba ijk and ikj) | every row of A sweeps all of B | n³ + 3n² | about 0.5, at any n |
# | tiled, tile T | each tile of B once; A and C once per block column | n² + 3n³/T | about T/6 |
# | BLAS | at least every matrix once | 3n² | n/6 (an upper bound) |
#
# Tiling raises the intensity from 0.5 to about T/6 FLOP/byte: that is what it is *for*. But inside a
# tile, every multiply-add still loads one element of B, now from L2: 4 bytes per 2 FLOPs, 0.5
# FLOP/byte again, one level up. So the plot also draws an **L2 roof** (a compiled triad on arrays
# that fill half of L2), and the table gives the tiled kernel a second row, counted at L2. The column
# "needs GB/s" is the bandwidth a rung's measured speed would take if all its modelled traffic came
# from that level: more than the memory roof gives means a cache is serving it.

# %% sweat={"id": "ladder-roofline", "role": "demo"}
dram_1 = roofline.stream_triad(quick=True, threads=1)  # one core, as every rung ran
l2_1 = roofline.cache_bandwidth("L2")
print(f"[timing] one core: memory {dram_1.gbs:.1f} GB/s (triad, {dram_1.array_bytes // 2**20} MiB arrays); "
      + (f"L2 {l2_1.gbs:.1f} GB/s ({l2_1.accounting})" if l2_1 else "L2: not measured (L2 size unknown or no numba)"))
rung_points = []
print(f"\n{'rung':<28}{'n':>6}{'FLOP/byte':>11}{'GFLOP/s':>9}{'needs GB/s':>12}  where its data must come from")
for r in RUNGS:
    sizes = ladder.measurements.get(r, {})
    if not sizes:
        continue
    n = max(sizes)  # the largest size this rung was measured at
    cost = traffic(r, n, tile=min(best_tile, n) if r == "numba_tiled" else None)
    gf = sizes[n].gflops
    needs = gf / cost.intensity  # GB/s the rung would need if its modelled traffic came from memory
    source = ("memory can feed it" if needs <= dram_1.gbs else
              "more than memory gives: a cache (L2 or L3) serves part of the modelled traffic"
              if not l2_1 or needs <= l2_1.gbs else "more than L2 gives: the model overcounts its traffic")
    print(f"{ladder.label(LABELS[r], r):<28}{n:>6}{cost.intensity:>11.3g}{gf:>9.3g}{needs:>12.3g}  {source}")
    rung_points.append(roofline.KernelPoint(f"{ladder.label(LABELS[r], r)}, n={n}", cost.intensity, gf))
    if r == "numba_tiled" and l2_1:  # the same run, counted one level up: one B element from L2 per multiply-add
        print(f"{'  ... its traffic to L2':<28}{n:>6}{0.5:>11.3g}{gf:>9.3g}{gf / 0.5:>12.3g}  "
              + ("L2 can feed it" if gf / 0.5 <= l2_1.gbs else "more than L2 gives"))
fig_rungs = roofline.plot_roofline(
    None, rung_points, peak_gflops={"fp32 BLAS's best, 1 core": BLAS_GFLOPS, "fp32 hardware peak, 1 core": HW_GFLOPS},
    bandwidth_gbs=dram_1.gbs, cache_gbs={"L2, 1 core": l2_1.gbs} if l2_1 else None,
    title=f"Every rung on the one-core roofline of {machine.cpu_model or 'this machine'}")
fig_rungs.set_size_inches(9, 6)
lab.quote("b_large_mib", N_LARGE**2 * 4 / 2**20, "{:g}")

# %% [markdown] sweat={"id": "ladder-read"}
# Read the ladder (the plot and the table above, both measured in this session):
# - **Pure Python → NumPy rows → numba ijk**: taking the interpreter out of the inner loop, then out of
#   all loops: the biggest steps on the ladder. `python_ijk` to `numba_ijk` is the same loops without
#   the interpreter, so its ratio in the table ({{interpreter_x}} in the shipped run) is the interpreter's cost;
#   everything after it is SIMD and memory order.
# - **numba ijk → ikj**: the same compiled code with a stride-1 inner loop that vectorizes and has no
#   dependent add chain: another {{ikj_over_ijk}} in the shipped run at n = {{n_common}} (section 6).
# - **The whole span** printed under the table ({{span_x}} in the shipped run) compares float64 Python
#   with float32 BLAS. Like with like, against BLAS in float64 (on the same line), it is {{span_f64_x}}:
#   float32 BLAS ran {{f32_over_f64}} faster than float64 BLAS in the shipped run (a vector instruction
#   holds twice as many float32 numbers as float64 ones).
# - **ikj → tiled**: a gain that depends on your caches and on the tile (section 7): in the shipped run
#   {{tiled_gain_common}} at n = {{n_common}} and {{tiled_gain_large}} at n = {{n_large}}, with the best
#   tile from the sweep. While B fits in L2 the tile saves only trips to L2, so the gain is usually
#   smaller; it grows once B outgrows L2.
# - **On the roofline** every untiled rung has the same modelled intensity, about 0.5 FLOP/byte, yet
#   their speeds span orders of magnitude: up to numba ijk, the interpreter and scalar code hold
#   them back, not memory. Where numba ikj "needs" more than the memory roof gives, its B
#   ({{b_large_mib}} MiB at n = {{n_large}}) is being served by a cache (L2 or L3); once B is larger than
#   L3, as in exercise 7's speed check (B of 144 MiB), ikj drops to the memory roof and tiling wins by
#   about 3x (measured on a 2-core AMD EPYC VM, Zen 4, when that check was set). The tiled kernel is far
#   from its memory roof; its limit is one level up, where it moves 0.5 FLOP/byte again (its second row in the table):
#   keeping C in registers is what raises that, in lab 02.
# - **Joules.** The last column is work per joule, labelled with its kind. On a machine without a CPU
#   energy sensor (most VMs, most laptops without root) it is an *estimate*: one core's share of a
#   stated TDP times its utilisation, the same power for every rung, so GFLOP per joule simply follows
#   GFLOP/s: the same product on the same core costs joules in proportion to its time, and the fast
#   rungs are the frugal ones. A sensor (RAPL) measures what the estimate cannot: that vector arithmetic
#   and waiting on memory draw different power (lab 00, section 8).
# - **Best loop → BLAS**: the last gap. The ikj inner loop loads and stores C for every single
#   vector multiply-add; BLAS keeps a block of C in *registers* across the whole k loop, feeds the
#   vector units from packed panels sized to L1 and L2: its best run reached {{blas_pct_hw}} of the
#   hardware peak in the shipped run (section 1), and at n = {{n_large}} it ran {{blas_over_best}} faster
#   than the best loop, which reached {{best_loop_pct_hw}} of the peak. That register-blocked
#   micro-kernel, vector lanes and threads are lab 02.

# %% [markdown] sweat={"id": "other-hardware"}
# ## On other hardware
# - **ARM laptops and Apple M-series.** NEON vectors hold 4 float32 (AVX2: 8; AVX-512: 16), so the
#   compiled rungs do fewer FLOPs per instruction; numba generates NEON code itself (it ships its own
#   LLVM, no compiler needed). On macOS, NumPy's wheels may use Apple's Accelerate BLAS, which is widely
#   measured to use the matrix coprocessor beside the cores: the BLAS rung can sit much further above the
#   numba rungs than on an x86 CPU.
# - **AVX-512 or not.** numba targets the CPU it runs on: AVX2 (8 float32 per instruction) on many
#   laptops, AVX-512 where the CPU has it (section 6's assembly count shows which this machine got).
#   On Intel CPUs *with* AVX-512, LLVM still prefers 256-bit vectors by default, so numba kernels do
#   not automatically use the wider registers that BLAS uses.
# - **Caches.** The best tile and the size of the ikj-to-tiled step follow the L1/L2/L3 sizes and
#   speeds; a laptop with a small L3 cache can gain more from tiling at n = 1024 than a server CPU with
#   a large one.
# - **Laptops** boost their clock while cool and throttle when hot or on battery: take the median,
#   keep the charger in, and compare ratios measured in one session rather than single numbers.
# - **GPUs.** The same ladder exists there, with thread blocks and shared memory instead of tiles:
#   a naive CUDA kernel reaches about 1% of cuBLAS, a tuned one about 94% (S. Boehm, SGEMM_CUDA README,
#   measured on an RTX A6000).

# %% [markdown] sweat={"id": "sec-record"}
# ## Record and summary

# %% sweat={"id": "record", "role": "demo", "record_keys": ["n", "gflops.python_ijk", "gflops.python_ikj", "gflops.numpy_rows", "gflops.numba_ijk", "gflops.numba_ikj", "gflops.numba_tiled", "gflops.blas", "n_large", "gflops_large", "peak_gflops", "hardware_peak_gflops", "gflop_per_joule", "energy_kind", "best_tile", "stand_in_rungs", "quick"]}
rec = lab.record(
    n=N_COMMON,
    gflops={r: LADDER.get(r, {}).get(N_COMMON) for r in RUNGS},
    n_large=N_LARGE,
    gflops_large={r: LADDER[r][N_LARGE] for r in RUNGS if N_LARGE in LADDER.get(r, {})},
    peak_gflops=BLAS_GFLOPS,
    hardware_peak_gflops=HW_GFLOPS,
    gflop_per_joule={r: ladder.measurements[r][N_COMMON].gflop_per_joule for r in RUNGS
                     if N_COMMON in ladder.measurements.get(r, {})},
    energy_kind=sorted({m.energy_kind for by_n in ladder.measurements.values() for m in by_n.values()}),
    best_tile=best_tile,
    stand_in_rungs=[r for r in RUNGS if ladder.by_stand_in(r)],  # measured with the lab's stand-in, not yours
    quick=QUICK,
)
where = records.records_path_for_display()
by_stand_in = rec["values"]["stand_in_rungs"]
print(f"recorded lab {rec['lab']} in {where}: "
      f"{sum(v is not None for v in rec['values']['gflops'].values())} rungs at n = {N_COMMON}"
      + (f", {len(by_stand_in)} of them by the lab's stand-in ({', '.join(by_stand_in)})" if by_stand_in else ""))

# %% tags=["solution"]
# Author only: save the key plots for the slides (slides/img/01_*.png) when asked to.
if os.environ.get("SWEAT_SLIDES_IMG"):
    for name, fig in (("ladder", fig_ladder), ("orders", fig_orders), ("tiles", fig_tiles), ("rungs", fig_rungs)):
        fig.savefig(os.path.join(os.environ["SWEAT_SLIDES_IMG"], f"01_{name}.png"), dpi=120, bbox_inches="tight")
    print("saved slide images")

# %% [markdown] sweat={"id": "summary"}
# **Summary.**
# - The textbook loop spends almost all its time in the interpreter, not in arithmetic: compiling the
#   same loops (`python_ijk` to `numba_ijk`) made them {{interpreter_x}} faster in the shipped run.
#   Removing the interpreter is worth the most; the rest of the way to BLAS is SIMD and memory order.
#   (Section 3's ratio to one multiply-add at peak lumps all of these together.)
# - Once the code is compiled, the inner loop decides: with stride 1 and independent iterations it
#   vectorizes; ijk waits on one dependent add at a time, and stride-n loops waste cache lines. In the
#   shipped run the stride-1 orders ran {{orders_min_x}}-{{orders_max_x}}x faster than the others at
#   n = {{n_orders}} (section 6).
# - Tiling keeps a block of B in cache; whether it pays depends on your cache sizes and speeds (section 7).
# - BLAS is faster still ({{blas_over_best}} over the best loop at n = {{n_large}} in the shipped run),
#   because it also keeps C in registers and is hand-tuned per CPU.
# - Every rung was checked against float64 with rtol = γ_k ≈ k·2⁻²⁴ before it was timed.
#
# **Reflection questions.**
# 1. Your pure-Python ikj and ijk ran within a small factor of each other, nothing like the gap between
#    the numba versions. Explain both facts with one sentence each.
# 2. `matmul_rows` does n² NumPy calls. Using the time per call you measured, estimate what fraction of its
#    time is call overhead. How would you cut the number of calls further without `@`?
# 3. γ_k for k = 4096 is about 2.4e-4. Would you trust a float32 matmul with k = 10⁷ (a long reduction) to
#    3 significant digits? What does pairwise summation (the plot in section 2) change?
# 4. Where did the tile sweep peak, and how big is one tile of float32 at that size compared with your
#    L1d and L2? Would you expect the same best tile on a laptop with a 256 KiB L2?
# 5. BLAS runs near the peak with the same loads and stores available to your kernel. Count the loads and
#    stores per multiply-add in your ikj inner loop. What would have to change to need fewer?
#
# **Further reading.**
# - K. Goto, R. van de Geijn, "Anatomy of High-Performance Matrix Multiplication", *ACM TOMS* 34(3), 2008:
#   how BLAS blocks for registers, L1, L2 and the TLB.
# - N. J. Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., SIAM 2002, chapter 3:
#   the γ_k bound for dot products and why pairwise summation is more accurate.
# - M. Lam, E. Rothberg, M. Wolf, "The Cache Performance and Optimizations of Blocked Algorithms",
#   ASPLOS 1991: tile sizes and cache conflicts.
# - S. Williams, A. Waterman, D. Patterson, "Roofline: An Insightful Visual Performance Model for
#   Multicore Architectures", *CACM* 52(4), 2009: the peak as a ceiling.
# - [flame/how-to-optimize-gemm](https://github.com/flame/how-to-optimize-gemm): the same ladder in C,
#   one idea per step, with GFLOP/s plots.
# - [numba performance tips](https://numba.readthedocs.io/en/stable/user/performance-tips.html):
#   fastmath, loop vectorization and what stops it.
# - S. Boehm, [SGEMM_CUDA](https://github.com/siboehm/SGEMM_CUDA): the ladder on a GPU.
