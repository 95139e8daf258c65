# %% [markdown] sweat={"id": "intro"}
# # Lab 00 · Measure first: how fast is this machine, honestly?
#
# Every later lab asks "is this faster?", "how close to the hardware's limit is it?", "how many
# joules did it cost?". This lab builds the instruments to answer those questions on **your**
# machine, and shows what goes wrong without them.
#
# **You will be able to**
# - time code so that the number means something: warm-up, repeats, the median and its spread;
# - decide A-versus-B questions with an interleaved ratio instead of two separate timings;
# - see what BLAS thread settings do, including oversubscription on a machine with few cores;
# - count FLOPs and bytes of a kernel, and turn a time into GFLOP/s;
# - measure this machine's roofline (peak compute, memory bandwidth), predict a kernel's speed from
#   it, and explain the gap to what you measure;
# - say which energy sensors this machine has, and what an energy *estimate* can and cannot tell.
#
# **Prerequisites**: Python and numpy basics (arrays, `a @ b`, `dtype`). No maths beyond
# multiplication; no GPU.
#
# **Time**: running every cell takes under a minute of compute, *measured*: 50 s in full mode (the mode
# you work in; `sweatlab execute 00 --full`) in the course's shipped run, on a {{machine}}. Earlier
# runs on 2-core AMD EPYC virtual machines (Zen 3 and Zen 4) shared with another job measured 19-30 s in
# quick mode (`SWEAT_QUICK=1`, used by the tests; `sweatlab execute 00`) and 37-42 s in full mode (several
# runs each). The solution's outputs and the figures quoted in this lab come from the course's shipped
# run. Reading and the seven exercises are
# *estimated* at 80-95 minutes for a newcomer: about 5-15 minutes per exercise (time_it and
# kernel_cost take longest, the others are a line or two each once understood) plus about 30 minutes for
# reading the sections and their plots. That is an estimate from the lab's size, not a timed class.
#
# **How to work**: run the cells in order. Each exercise is a function you write in the cell marked
# `# YOUR CODE HERE`, followed by a `check(...)` cell that tests it instantly. Until you write a
# function, the cells that use it run the course's version in its place (a *stand-in*): they say so
# once, and every number it produced is labelled "(stand-in)", so the notebook always runs top to bottom.

# %% sweat={"id": "setup", "role": "setup"}
import contextlib
import os
import statistics
import subprocess
import sys
import time

import matplotlib.pyplot as plt
import numpy as np
from threadpoolctl import threadpool_limits

from sweatlab.measure import energy, energy_data, peak, records, roofline
from sweatlab.kit import open_lab
from sweatlab.labs.lab00_measure.checks import time_it_probe
from sweatlab.labs.lab00_measure.plots import plain_log_ticks
from sweatlab.measure.config import pick, quick
from sweatlab.measure.flops import matmul as matmul_cost
from sweatlab.measure.hardware import describe
from sweatlab.measure.roofline import prediction_cases  # check("predict_seconds") measures this machine with it
from sweatlab.measure.timing import (bench, compare, format_seconds, runnable_elsewhere, thread_settings,
                             timer_resolution_ns)

lab = open_lab("00_measure")  # checks, stand-ins (labelled), the energy meter, quoted figures, the record
time_it_on_fake = time_it_probe(globals())  # lets check("time_it") drive your time_it with a fake clock
QUICK = quick()  # SWEAT_QUICK=1 shrinks the sizes (tests and CI); the lab is written for full mode
CORES = describe().usable_cores or os.cpu_count() or 1
rng = np.random.default_rng(0)
plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3})

print(f"quick mode: {QUICK}; cores this process may use: {CORES}")
print(describe())
cpu_name = (describe().cpu_model or describe().arch).replace("(R)", "").replace("(TM)", "")
lab.quote("machine", f"{CORES}-core {cpu_name}" + (" virtual machine" if describe().virtual_machine else ""),
          "{}")  # the decks say which machine their figures come from

# %% [markdown] sweat={"id": "sec-naive"}
# ## 1. One call, timed naively
#
# The obvious way to time something: read the clock, call it, read the clock again. Let us do that
# for a simple numpy operation, doubling an 8 MiB array, and then simply do it again, many times.

# %% sweat={"id": "naive-once", "role": "demo"}
x = rng.standard_normal(2**21, dtype=np.float32)  # 2M floats = 8 MiB


def scale():
    return x * 2.0  # allocates a fresh 8 MiB result every call


t0 = time.perf_counter()
scale()
naive_s = time.perf_counter() - t0
print(f"[timing] one call, timed naively: {format_seconds(naive_s)}")

# %% sweat={"id": "naive-many", "role": "demo"}
n_calls = pick(60, 200)
later_s = []
for _ in range(n_calls - 1):
    t0 = time.perf_counter()
    scale()
    later_s.append(time.perf_counter() - t0)
later_s = np.array(later_s)
median_s, mean_s, min_s = np.median(later_s), later_s.mean(), later_s.min()
print(f"[timing] call 1 (the naive timing above): {format_seconds(naive_s)}")
print(f"[timing] calls 2..{n_calls}: median {format_seconds(median_s)}, mean {format_seconds(mean_s)}, "
      f"min {format_seconds(min_s)}, max {format_seconds(later_s.max())}")
print(f"the first call took {lab.quote('first_call_x', naive_s / median_s, '{:.1f}x')} the median of the later "
      f"calls; the mean is {mean_s / median_s:.2f}x the median, the min {min_s / median_s:.2f}x")

# %% sweat={"id": "naive-plot", "role": "demo"}
fig_timer, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
left.plot(np.arange(2, n_calls + 1), later_s * 1e3, ".", color="tab:blue", label="calls 2..N")
left.plot([1], [naive_s * 1e3], "o", color="tab:red", ms=9, label="call 1 (the naive timing)")
left.set(yscale="log", xlabel="call number", ylabel="time per call [ms]",
         title="The same call, timed one at a time")
left.legend()
right.hist(later_s * 1e3, bins=np.geomspace(later_s.min() * 1e3 * 0.9, later_s.max() * 1e3 * 1.1, 30),
          color="tab:blue", alpha=0.7)
for value, label, colour in ((median_s, "median", "black"), (mean_s, "mean", "tab:orange"),
                             (min_s, "min", "tab:green")):
    right.axvline(value * 1e3, color=colour, lw=2, label=f"{label} {value * 1e3:.3g} ms")
right.set(xscale="log", xlabel="time per call [ms]", ylabel="number of calls", title="Calls 2..N: the distribution")
right.legend()
plain_log_ticks(left.yaxis)
plain_log_ticks(right.xaxis);

# %% [markdown] sweat={"id": "sec-naive-read"}
# **Read the plots.** On most machines call 1 (red) stands well above the rest: the cell above
# printed by how much on yours (in the shipped run: {{first_call_x}} the
# median). Here the first call pays for memory: numpy asks the operating system for 8 MiB it has
# never touched, and each fresh 4 KiB page costs a page fault on first write; later
# calls reuse memory the allocator kept. Elsewhere the first call pays for lazy initialisation,
# cold caches, or compilation (numba, torch): same lesson, **warm up before you time**.
#
# The later calls are not all equal either. The histogram has a tail to the right: the operating
# system, another program, a frequency change interrupted some calls. That tail drags the **mean**
# up; the **min** is one lucky call that you may never see again; the **median** stays with the
# typical call. Report the median, and a spread (the interquartile range, IQR: the middle half of
# the samples).
#
# ### What does the clock itself cost?
# A timing includes reading the clock. Below: the cost of one `time.perf_counter_ns()` read (the
# median of back-to-back reads) and the clock's useful resolution.

# %% sweat={"id": "clock-cost", "role": "demo"}
clock = time.perf_counter_ns
gaps = np.empty(pick(20_000, 100_000), dtype=np.int64)
for i in range(len(gaps)):
    before = clock()
    after = clock()
    gaps[i] = after - before
timer_overhead_ns = int(np.median(gaps))
resolution_ns = timer_resolution_ns()
print(f"[timing] one clock read costs about {lab.quote('clock_read_ns', timer_overhead_ns, '{:d}')} ns "
      f"(median of {len(gaps):,} back-to-back reads); useful resolution {resolution_ns} ns")
print(f"so a call shorter than about {100 * max(timer_overhead_ns, resolution_ns) / 1e3:.0f} us (100 clock reads) "
      "cannot be timed alone: time many calls in a row and divide")

# %% [markdown] sweat={"id": "sec-bench"}
# ## 2. The disciplined version
#
# `sweatlab.measure.timing.bench` does what the plots asked for: it calls the function once untimed
# (warm-up), batches fast calls so that each timed sample lasts at least 1 ms (far above the clock's
# cost), repeats until a time budget is spent, switches the garbage collector off while timing (as
# Python's `timeit` does), and reports the median with the IQR, the min and warnings.

# %% sweat={"id": "bench-scale", "role": "demo"}
scale_result = bench(scale, budget_s=pick(0.2, 0.5))
print(scale_result)
print(f"naive single call: {format_seconds(naive_s)}; bench median: {format_seconds(scale_result.median_s)} "
      f"({naive_s / scale_result.median_s:.1f}x)")

# %% [markdown] sweat={"id": "ex-time-it-task"}
# ### Exercise 1: a correct timing function
#
# Write `time_it(fn, repeats, warmup, clock)`: call `fn()` `warmup` times without timing it, then
# `repeats` times, timing **each** call with `clock()` (read it just before and just after the call);
# return the **median** of those `repeats` times, in seconds.
#
# - Use the `clock` you are given (it defaults to `time.perf_counter`, which counts seconds). The
#   check passes in a fake clock whose calls take known times, so your answer can be checked
#   exactly, with no noise.
# - `statistics.median` (or `np.median`) gives the median; with an even count it averages the middle
#   two.

# %% sweat={"id": "ex-time-it", "role": "answer", "exercise": "time_it"}
def time_it(fn, repeats=7, warmup=1, clock=time.perf_counter):
    """Median seconds of `repeats` timed calls of fn(), after `warmup` untimed calls."""
    ### BEGIN SOLUTION
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = clock()
        fn()
        samples.append(clock() - start)
    return statistics.median(samples)
    ### END SOLUTION


# %% sweat={"id": "check-time-it", "role": "check", "exercise": "time_it", "title": "Exercise 1: a correct timing function"}
from sweatlab.kit import check
check("time_it")


# %% [markdown] sweat={"id": "use-time-it-md"}
# Your `time_it` on the same `scale` call, next to the naive single call and `bench`:

# %% sweat={"id": "use-time-it", "role": "demo"}
my_time_it = lab.mine("time_it")  # your time_it; the course's stand-in, labelled, until you write it
time_it_s = my_time_it(scale, repeats=21, warmup=1)
print(f"[timing] naive one call {format_seconds(naive_s)} | {lab.label('time_it', 'time_it(scale, 21, 1)')} "
      f"{format_seconds(time_it_s)} | bench median {format_seconds(scale_result.median_s)}")

# %% [markdown] sweat={"id": "sec-ratio"}
# ## 3. Noise, and why ratios beat absolute times
#
# A question you will ask all course long: *is A faster than B, and by how much?* Here: is a float32
# matrix product really twice as fast as a float64 one (half the bytes per number, twice the numbers
# per vector instruction)? Both are timed on one BLAS thread.
#
# Two ways to answer:
# - **separately**: time A for a while (its median), then B (its median), divide;
# - **interleaved** (`sweatlab.measure.timing.compare`): A, B, B, A, A, B... and take the median of the
#   per-pair ratios. A slow spell of the machine then hits both sides of a pair.
#
# To make the noise visible on any machine, the second half of the experiment starts "bursty
# neighbours": other processes, one per core, that run matrix products for 0.13 s and sleep for
# 0.17 s, over and over, like a colleague's job on a shared machine. Each method estimates the same
# ratio several times; the spread of its estimates is the point.

# %% sweat={"id": "neighbours", "role": "setup"}
_NEIGHBOUR = r"""
import sys, time
import numpy as np
on_s, off_s = float(sys.argv[1]), float(sys.argv[2])
a = np.ones((256, 256), dtype=np.float32)
print("ready", flush=True)
while True:
    t = time.perf_counter()
    while time.perf_counter() - t < on_s:
        a @ a
    if off_s > 0:
        time.sleep(off_s)
"""


@contextlib.contextmanager
def busy_neighbours(count, blas_threads=1, on_s=1.0, off_s=0.0):
    """Run `count` other processes doing matrix products (on_s busy, off_s idle, repeated) while the block runs."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
        env[var] = str(blas_threads)
    procs = [subprocess.Popen([sys.executable, "-c", _NEIGHBOUR, str(on_s), str(off_s)],
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(count)]
    try:
        for p in procs:
            p.stdout.readline()  # wait until it has imported numpy and started working
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
            p.stdout.close()


# %% sweat={"id": "ratio-run", "role": "demo"}
n = 256
a64, b64 = rng.standard_normal((n, n)), rng.standard_normal((n, n))
a32, b32 = a64.astype(np.float32), b64.astype(np.float32)


def matmul_fp64():
    return a64 @ b64


def matmul_fp32():
    return a32 @ b32


rounds = pick(5, 9)
estimates = {}
with threadpool_limits(1, user_api="blas"):
    for condition in ("as the machine is", "with bursty neighbours"):
        noise = busy_neighbours(CORES, on_s=0.13, off_s=0.17) if "bursty" in condition else contextlib.nullcontext()
        separate, interleaved = [], []
        with noise:
            for _ in range(rounds):
                t64 = bench(matmul_fp64, budget_s=0.1).median_s
                t32 = bench(matmul_fp32, budget_s=0.1).median_s
                separate.append(t64 / t32)
                interleaved.append(compare(matmul_fp64, matmul_fp32, budget_s=0.3).ratio)
        estimates[condition] = {"separately": separate, "interleaved": interleaved}

for condition, methods in estimates.items():
    for method, values in methods.items():
        print(f"{condition:24s} {method:12s} fp64/fp32 time ratio: median {np.median(values):.2f}, "
              f"estimates range {min(values):.2f} to {max(values):.2f} (spread {max(values) / min(values):.2f}x)")
for method, key in (("separately", "separate"), ("interleaved", "interleaved")):  # quoted by the text below
    values = estimates["with bursty neighbours"][method]
    lab.quote(f"ratio_{key}_bursts", f"{min(values):.2f}-{max(values):.2f}", "{}")
    lab.quote(f"ratio_{key}_bursts_spread", max(values) / min(values), "{:.2f}x")

# %% sweat={"id": "ratio-plot", "role": "demo"}
fig_ratio, ax = plt.subplots(figsize=(9, 4), layout="constrained")
positions = []
for i, (condition, methods) in enumerate(estimates.items()):
    for j, (method, values) in enumerate(methods.items()):
        pos = i * 3 + j
        positions.append((pos, f"{method}\n{condition}"))
        ax.plot(np.full(len(values), pos) + np.linspace(-0.15, 0.15, len(values)), values, "o",
                color=("tab:orange", "tab:blue")[j], alpha=0.8)
        ax.hlines(np.median(values), pos - 0.3, pos + 0.3, color="black")
ax.set_xticks([p for p, _ in positions], [label for _, label in positions], fontsize=9)
ax.set(ylabel="time(fp64) / time(fp32)", yscale="log",
       title=f"The same ratio estimated {rounds} times per method (black: median)")
plain_log_ticks(ax.yaxis);

# %% [markdown] sweat={"id": "sec-ratio-read"}
# **Read the plot.** Each dot is one complete estimate of the same ratio. Compare the vertical spread
# of the orange dots (separately) with the blue ones (interleaved), without and with neighbours:
# the cell above printed each spread. When a burst of neighbour work lands on A's timing but not on
# B's, the separate ratio is wrong by the size of that burst; in the interleaved pairs both sides see
# nearly the same machine, so the burst cancels. In the shipped run, the
# separate estimates under the bursts ranged {{ratio_separate_bursts}} (spread
# {{ratio_separate_bursts_spread}}), the interleaved ones {{ratio_interleaved_bursts}}
# ({{ratio_interleaved_bursts_spread}}). If your machine was quiet and the neighbours had little
# effect, the two methods agree: the spreads say so. Interleaving cancels noise that is slower
# than one pair (a job starting and stopping); noise as fast as a single sample (the operating system
# switching programs every few milliseconds) hits both methods, and only the median over many pairs
# protects you from it.
#
# Take-away for the rest of the course: **decide A versus B with `compare` (a ratio of interleaved
# pairs); quote medians, never a single run**. Note also the ratio itself: whether float32 halves
# the time depends on your CPU's vector units and its memory, which is what the rest of this lab
# measures.

# %% [markdown] sweat={"id": "sec-threads"}
# ## 4. Threads: what you asked for, and what you got
#
# numpy hands matrix products to a BLAS library, which starts its own thread pool, by default one
# thread per logical CPU: OpenBLAS on Linux counts the CPUs this process may run on, SMT siblings
# (hyperthreads) included (`get_num_procs` in OpenBLAS's `driver/others/memory.c`). Other libraries
# (torch, numba, onnxruntime) start their own pools too. `thread_settings()` shows what this process has.

# %% sweat={"id": "thread-settings", "role": "demo"}
threads = thread_settings()
print(f"cores: {threads['logical_cores']} logical, {threads['usable_cores']} usable by this process")
print(f"numpy's BLAS: {threads['blas']}, {threads['blas_threads']} threads")
for pool in threads["threadpools"]:
    print(f"  thread pool: {pool['library']} ({pool['api']}), {pool['num_threads']} threads")
print("thread environment variables:", {k: v for k, v in threads["env"].items() if v} or "none set")
for key, why in threads["reasons"].items():
    print(f"  {key}: {why}")

# %% [markdown] sweat={"id": "sec-oversub"}
# **Oversubscription** is more runnable threads than cores. It happens quietly: BLAS starts a thread
# per logical CPU, and then a second program (another notebook, a data loader, a neighbour on a shared
# server) does the same. BLAS threads split a matrix product into equal parts and wait for each
# other; if one of them is pushed off its core, all of them wait.
#
# Below, one matrix product is timed with 1 BLAS thread, one per usable logical CPU (`CORES`), and two
# per logical CPU (set at run time with threadpoolctl's `threadpool_limits`): first as the machine is,
# then while one neighbour process runs its own BLAS with a thread per logical CPU. Then threads x
# processes > cores.

# %% sweat={"id": "oversub-run", "role": "demo"}
n_thr = pick(256, 512)
a_thr = rng.standard_normal((n_thr, n_thr), dtype=np.float32)
b_thr = rng.standard_normal((n_thr, n_thr), dtype=np.float32)
thread_counts = sorted({1, CORES, 2 * CORES})
others = runnable_elsewhere()  # threads of other programs running right now (Linux); None elsewhere
if others is None:
    print("what else runs right now: not available on this OS")
else:  # not the one-minute load average: that still counts section 3's neighbours, stopped seconds ago
    print(f"threads of other programs running right now: {others} on {CORES} cores "
          f"({'busy already: close other programs for steadier numbers' if others else 'quiet'})")


def n_threads(t):
    return f"{t} BLAS thread{'s' if t != 1 else ''}"


oversub = {}
for condition in ("as the machine is", "one BLAS neighbour"):
    noise = busy_neighbours(1, blas_threads=CORES) if condition != "as the machine is" else contextlib.nullcontext()
    with noise:
        for t in thread_counts:
            with threadpool_limits(t, user_api="blas"):
                oversub[condition, t] = bench(lambda: a_thr @ b_thr, budget_s=pick(0.2, 0.4), min_runs=5)
for (condition, t), r in oversub.items():
    print(f"[timing] {condition:18s} {n_threads(t) + ':':16s} median {format_seconds(r.median_s)} "
          f"(IQR {format_seconds(r.iqr_s)}), {r.gflops(matmul_cost(n_thr, n_thr, n_thr).flops):.1f} GFLOP/s")
for condition in ("as the machine is", "one BLAS neighbour"):
    times = {t: oversub[condition, t].median_s for t in thread_counts}
    best = min(times, key=times.get)
    worst = max(times, key=times.get)
    slowdown = f"{times[worst] / times[best]:.1f}x"
    if condition == "as the machine is":  # quoted by the text below
        alone_best, alone_worst = best, worst
        lab.quote("threads_best", n_threads(best), "{}")  # "2 BLAS threads"
        lab.quote("threads_worst", n_threads(worst), "{}")
        slowdown = lab.quote("threads_worst_x", times[worst] / times[best], "{:.1f}x")
    print(f"{condition}: fastest with {n_threads(best)}; {n_threads(worst)} took {slowdown} as long")
neighbour_x = oversub["one BLAS neighbour", alone_worst].median_s / oversub["as the machine is", alone_best].median_s
print(f"next to the neighbour, {n_threads(alone_worst)} took {lab.quote('threads_neighbour_x', neighbour_x, '{:.1f}x')} "
      f"as long as {n_threads(alone_best)} alone")

# %% sweat={"id": "oversub-plot", "role": "demo"}
fig_threads, ax = plt.subplots(figsize=(9, 4), layout="constrained")
for j, condition in enumerate(("as the machine is", "one BLAS neighbour")):
    for i, t in enumerate(thread_counts):
        r = oversub[condition, t]
        pos = i + (j - 0.5) * 0.4
        jitter = np.random.default_rng(i).uniform(-0.12, 0.12, len(r.samples_s))
        ax.plot(pos + jitter, np.array(r.samples_s) * 1e3, ".", ms=4, alpha=0.5, color=("tab:blue", "tab:red")[j],
                label=condition if i == 0 else None)
        ax.hlines(r.median_s * 1e3, pos - 0.17, pos + 0.17, color="black", lw=2)
ax.set_xticks(range(len(thread_counts)), [f"{t} BLAS thread{'s' if t > 1 else ''}" for t in thread_counts])
ax.set(yscale="log", ylabel="time per matmul [ms]",
       title=f"{n_thr}x{n_thr} float32 matmul on {CORES} cores: every sample (black: median)")
plain_log_ticks(ax.yaxis)
ax.legend();

# %% [markdown] sweat={"id": "sec-threads-read"}
# **Read the plot.** Each dot is one timed sample; the last lines printed above say which thread
# count had the fastest median on your machine, as it is and next to a neighbour, and how much slower
# the worst setting was (in the shipped run: fastest with {{threads_best}} as the machine was;
# {{threads_worst}} took {{threads_worst_x}} as long, and {{threads_neighbour_x}} as long next to the
# neighbour). Look at the spread as well as the medians:
# a setting whose samples scatter over a factor of ten is one you cannot rely on, even when its
# median looks good. On an idle machine with several real cores, one BLAS thread per physical core
# usually wins (SMT siblings share one core's vector units); with two threads per core, or a
# neighbour competing for the cores, the BLAS threads wait for each other and times can jump by an
# order of magnitude. If your plot does not show that, your machine had spare cores or your BLAS
# backs off politely: that is a measured fact about your setup, and worth knowing.
#
# Rules the course follows from here on: **record the thread count with every timing** (`bench` does);
# **on a shared or small machine, ask for no more threads than free cores**; and **one thread is the
# steadiest baseline** (torch's own benchmark tool, `torch.utils.benchmark`, defaults to one thread too). Set
# thread counts either before Python starts (`OMP_NUM_THREADS=1` and friends) or at run time with
# `threadpool_limits`, as above.

# %% [markdown] sweat={"id": "sec-work"}
# ## 5. Counting work: FLOPs and bytes
#
# A time alone says little: 5 ms is slow for adding two short vectors and fast for a large matrix
# product. Divide the **work** by the time to get a rate you can compare with what the hardware can
# do. Two kinds of work matter:
# - **FLOPs**, floating-point operations. Convention: a multiply-add counts as 2 FLOPs (the usual
#   one for matrix-product GFLOP/s, and the one `sweatlab.measure.flops` uses; some write-ups count n^3
#   "operations" for an n x n product instead, so check before comparing their numbers with yours).
# - **bytes moved** to and from memory. Convention: the compulsory traffic, every input read once
#   and every output written once (as if caches were perfect); real code moves at least this much.
#
# ### Exercise 2: the FLOPs of a matrix product
# Write `matmul_flops(m, n, k)`: the FLOPs of an `(m, k) @ (k, n)` product.

# %% sweat={"id": "ex-matmul-flops", "role": "answer", "exercise": "matmul_flops"}
def matmul_flops(m, n, k):
    """FLOPs of an (m, k) @ (k, n) product. How many outputs are there, and how much work goes into each?"""
    ### BEGIN SOLUTION
    return 2 * m * n * k
    ### END SOLUTION


# %% sweat={"id": "check-matmul-flops", "role": "check", "exercise": "matmul_flops", "title": "Exercise 2: the FLOPs of a matrix product"}
from sweatlab.kit import check
check("matmul_flops")

# %% [markdown] sweat={"id": "ex-gflops-task"}
# ### Exercise 3: GFLOP/s
# Write `gflops(flops, seconds)`: the rate in GFLOP/s (giga = 10^9, as for every rate: GB/s too).

# %% sweat={"id": "ex-gflops", "role": "answer", "exercise": "gflops"}
def gflops(flops, seconds):
    """The rate in GFLOP/s of `flops` operations done in `seconds`. What does the G stand for here?"""
    ### BEGIN SOLUTION
    return flops / seconds / 1e9
    ### END SOLUTION


# %% sweat={"id": "check-gflops", "role": "check", "exercise": "gflops", "title": "Exercise 3: GFLOP/s"}
from sweatlab.kit import check
check("gflops")

# %% [markdown] sweat={"id": "use-gflops-md"}
# Your two functions on the matrix products you timed in section 4 (one BLAS thread, as the machine
# is):

# %% sweat={"id": "use-gflops", "role": "demo"}
my_matmul_flops = lab.mine("matmul_flops")  # yours; the course's stand-in, labelled, until you write it
my_gflops = lab.mine("gflops")
one_thread = oversub["as the machine is", 1]
work = my_matmul_flops(n_thr, n_thr, n_thr)
rate = my_gflops(work, one_thread.median_s)
print(f"{n_thr}x{n_thr} @ {n_thr}x{n_thr}: {lab.label('matmul_flops')} {work:,} FLOPs in "
      f"{format_seconds(one_thread.median_s)} (median, 1 thread); {lab.label('gflops')} {rate:.1f} GFLOP/s")

# %% [markdown] sweat={"id": "ex-kernel-cost-task"}
# ### Exercise 4: FLOPs, bytes and arithmetic intensity of four kernels
#
# **Arithmetic intensity** is FLOPs per byte moved. It decides whether memory or arithmetic limits a
# kernel (next section). Write `kernel_cost(kernel, n, itemsize=4)` returning a dict
# `{"flops": ..., "bytes": ..., "intensity": ...}` for these kernels on numbers of `itemsize` bytes
# (4 for float32):
#
# | kernel | computes | shapes |
# |---|---|---|
# | `"add"` | `z = x + y` | x, y, z: n elements |
# | `"dot"` | `s = x · y` (one number) | x, y: n elements |
# | `"matvec"` | `y = A x` | A: n x n, x and y: n |
# | `"matmul"` | `C = A B` | A, B, C: n x n |
#
# Count as in the conventions above: a multiply-add is 2 FLOPs, an add alone is 1; every input is
# read once and every output written once.

# %% sweat={"id": "ex-kernel-cost", "role": "answer", "exercise": "kernel_cost"}
def kernel_cost(kernel, n, itemsize=4):
    """{"flops", "bytes", "intensity"} of one call of `kernel` ("add", "dot", "matvec", "matmul") at size n."""
    ### BEGIN SOLUTION
    if kernel == "add":
        work, elements = n, 3 * n
    elif kernel == "dot":
        work, elements = 2 * n, 2 * n + 1
    elif kernel == "matvec":
        work, elements = 2 * n * n, n * n + 2 * n
    elif kernel == "matmul":
        work, elements = 2 * n**3, 3 * n * n
    else:
        raise ValueError(f"unknown kernel {kernel!r}")
    nbytes = elements * itemsize
    return {"flops": work, "bytes": nbytes, "intensity": work / nbytes}
    ### END SOLUTION


# %% sweat={"id": "check-kernel-cost", "role": "check", "exercise": "kernel_cost", "title": "Exercise 4: FLOPs, bytes and arithmetic intensity of four kernels"}
from sweatlab.kit import check
check("kernel_cost")

# %% [markdown] sweat={"id": "sec-roofline"}
# ## 6. This machine's roofline
#
# Two numbers bound every kernel (Williams, Waterman and Patterson, 2009):
# - **peak compute** P, in GFLOP/s. Two figures, never confused: the **hardware peak**, cores x clock x
#   SIMD lanes x FMA units x 2 (`sweatlab.measure.peak`, computed from this CPU's instruction set, its inputs and
#   assumptions printed), which no code can beat; and **BLAS's best**, the fastest large float32 matrix
#   product through numpy's BLAS (`roofline.peak_fp32`), the best this machine does with the best code
#   anyone wrote for it. The roofline below uses BLAS's best, the ceiling real code meets;
# - **memory bandwidth** B, in GB/s: measured with a STREAM-style triad `a = b + s*c` on arrays far
#   larger than the caches (`roofline.stream_triad`).
#
# A kernel of intensity I FLOP/byte cannot beat **min(P, B x I)**: with few FLOPs per byte it waits
# for memory (the slanted part of the roof), with many it waits for arithmetic (the flat part). Both
# are measured twice: with one core (the numpy kernels below run on one core), and with every core
# (the machine's figure, which this lab records).

# %% sweat={"id": "roofline-measure", "role": "demo"}
peak_1 = roofline.peak_fp32(quick=QUICK, threads=1)
bw_1 = roofline.stream_triad(quick=QUICK, threads=1)
peak_all = roofline.peak_fp32(quick=QUICK, threads=CORES)
bw_all = roofline.stream_triad(quick=QUICK, threads=CORES)
for label, p, b in (("1 core", peak_1, bw_1), (f"{CORES} cores", peak_all, bw_all)):
    print(f"[timing] {label:8s}: peak {p.gflops:.1f} GFLOP/s (median run {p.median_gflops:.1f}), "
          f"bandwidth {b.gbs:.1f} GB/s (median run {b.median_gbs:.1f}), "
          f"ridge at {roofline.ridge_intensity(p.gflops, b.gbs):.1f} FLOP/byte")
    for w in p.warnings + b.warnings:
        print(f"    warning: {w}")
compute_x, bandwidth_x = peak_all.gflops / peak_1.gflops, bw_all.gbs / bw_1.gbs
if CORES == 1:
    scaling = "one core only, so nothing to compare"
elif bandwidth_x < 0.75 * compute_x:
    scaling = "bandwidth gained much less than compute"
elif bandwidth_x < 0.95 * compute_x:
    scaling = "bandwidth gained somewhat less than compute"
elif bandwidth_x <= 1.05 * compute_x:
    scaling = "bandwidth gained about as much as compute"
else:
    scaling = "bandwidth gained more than compute"
print(f"all cores vs one: compute {lab.quote('compute_scaling', compute_x, 'x{:.2f}')}, "
      f"bandwidth {lab.quote('bandwidth_scaling', bandwidth_x, 'x{:.2f}')}: {lab.quote('scaling_verdict', scaling, '{}')}")
for name, value in (("peak_1core", peak_1.gflops), ("bandwidth_1core", bw_1.gbs), ("peak_all", peak_all.gflops),
                    ("bandwidth_all", bw_all.gbs),
                    ("ridge_1core", roofline.ridge_intensity(peak_1.gflops, bw_1.gbs))):  # as printed above
    lab.quote(name, value, "{:.1f}")
hw_1 = peak.hardware_peak("float32", describe(), cores=1)
hw_all = peak.hardware_peak("float32", describe(), clock_=hw_1.clock, cores=CORES)
if hw_1.gflops:  # as the formula below prints it; the deck quotes it
    lab.quote("hardware_peak_1core", hw_1.gflops, "{:.0f}")
print(f"hardware peak, 1 core: {hw_1.formula()}")
print(f"  clock: {hw_1.clock.source}")
for line in hw_1.assumed + hw_1.notes:
    print(f"  assumed or noted: {line}")
if hw_1.gflops:
    print(f"[timing] BLAS's best reaches {100 * peak_1.gflops / hw_1.gflops:.0f}% of the hardware peak on one core, "
          f"{100 * peak_all.gflops / hw_all.gflops:.0f}% on {CORES} (hardware peak {hw_all.gflops:.0f} GFLOP/s)")
    if peak_1.gflops > hw_1.gflops:
        print("note: BLAS above the hardware peak is impossible: the clock was measured while another program shared "
              "the core (or the core type was guessed wrong). Close other programs and rerun this cell.")
if CORES > 1 and peak_all.gflops < peak_1.gflops:
    print(f"note: {CORES} cores measured SLOWER than one: other programs were using the cores (see section 4); "
          "close them and rerun this cell for the machine's real figure")
print("how the bandwidth was counted:", bw_1.accounting)

# %% [markdown] sweat={"id": "sec-roofline-read"}
# Peaks are the fastest run (as STREAM and HPL report them: the machine *can* do this); the medians
# next to them show how much a typical run falls short on your machine right now. The line "all cores
# vs one" compares the two measurements. Compute grows with every free core; bandwidth grows only until
# the cores together saturate the one memory system they share, so on a machine with many cores it
# gains much less than compute, while with two or four it may still nearly keep pace. In the shipped
# run, compute gained {{compute_scaling}} and bandwidth {{bandwidth_scaling}}: {{scaling_verdict}}.
#
# ### Exercise 5: attainable GFLOP/s
# Write `attainable_gflops(intensity, peak_gflops, bandwidth_gbs)`: the roofline's bound for a
# kernel of the given intensity (a number). GB/s x FLOP/byte = GFLOP/s.

# %% sweat={"id": "ex-attainable", "role": "answer", "exercise": "attainable_gflops"}
def attainable_gflops(intensity, peak_gflops, bandwidth_gbs):
    """The roofline's bound in GFLOP/s for a kernel of this intensity (FLOP/byte): which two limits apply?"""
    ### BEGIN SOLUTION
    return min(peak_gflops, bandwidth_gbs * intensity)
    ### END SOLUTION


# %% sweat={"id": "check-attainable", "role": "check", "exercise": "attainable_gflops", "title": "Exercise 5: attainable GFLOP/s"}
from sweatlab.kit import check
check("attainable_gflops")

# %% [markdown] sweat={"id": "ex-bound-by-task"}
# ### Exercise 6: memory-bound or compute-bound?
# The **ridge point** is the intensity where the two limits meet: peak / bandwidth. Write
# `bound_by(intensity, peak_gflops, bandwidth_gbs)` returning `"memory"` for a kernel left of the
# ridge (intensity below it) and `"compute"` otherwise.

# %% sweat={"id": "ex-bound-by", "role": "answer", "exercise": "bound_by"}
def bound_by(intensity, peak_gflops, bandwidth_gbs):
    """Which roof limits a kernel of this intensity, "memory" or "compute"? Where do the two roofs meet?"""
    ### BEGIN SOLUTION
    return "memory" if intensity < peak_gflops / bandwidth_gbs else "compute"
    ### END SOLUTION


# %% sweat={"id": "check-bound-by", "role": "check", "exercise": "bound_by", "title": "Exercise 6: memory-bound or compute-bound?"}
from sweatlab.kit import check
check("bound_by")

# %% [markdown] sweat={"id": "sec-predict"}
# ## 7. Predict, then measure
#
# Now use your functions: for six kernels, compute the intensity (`kernel_cost`), predict the
# attainable GFLOP/s from the **one-core** roofline measured above (`attainable_gflops`), say what
# bounds it (`bound_by`), and only then measure it, on one core. Write down which kernel you expect
# to come closest to its roof before you run the next cell.
#
# | kernel | size | why it is here |
# |---|---|---|
# | vector add | 2^24 floats (64 MiB each) | memory-bound, data far larger than the caches |
# | vector add | 2^13 floats (32 KiB each) | the same kernel, data small enough to stay in cache |
# | dot product | 2^24 floats | memory-bound, reads only |
# | matrix-vector | 8192 x 8192 (256 MiB) | memory-bound: every weight used once (like one token through a layer) |
# | matmul | 64 x 64 | compute-bound by intensity on most machines, but tiny |
# | matmul | 1024 x 1024 (512 in quick mode) | compute-bound, large |
#
# ### Exercise 7: predict the time
# A roofline is a prediction of *time* too. Write `predict_seconds(kernel, n, peak_gflops,
# bandwidth_gbs)`: the fewest seconds one call of `kernel` at size n (float32) can take on a machine
# with that peak and that bandwidth, if arithmetic and memory traffic overlap perfectly. Use your
# `kernel_cost`. The table below prints your prediction beside the measurement; the check then
# measures this machine's one-core roof and two memory-bound kernels again, and asks your prediction
# to be within 2x of what they took.

# %% sweat={"id": "ex-predict-seconds", "role": "answer", "exercise": "predict_seconds"}
def predict_seconds(kernel, n, peak_gflops, bandwidth_gbs):
    """The roofline's time for one call of `kernel` at size n. How long do its FLOPs take at the peak,
    its bytes at the bandwidth, and which of the two does the call have to wait for?"""
    ### BEGIN SOLUTION
    cost = kernel_cost(kernel, n)
    return max(cost["flops"] / (peak_gflops * 1e9), cost["bytes"] / (bandwidth_gbs * 1e9))
    ### END SOLUTION


# %% sweat={"id": "predict-run", "role": "demo"}
my_kernel_cost = lab.mine("kernel_cost")  # each: yours; the course's stand-in, labelled, until you write it
my_predict_seconds = lab.mine("predict_seconds")
my_attainable = lab.mine("attainable_gflops")
my_bound_by = lab.mine("bound_by")
my_gflops = lab.mine("gflops")


def vec(size):
    return rng.standard_normal(size, dtype=np.float32)


n_big, n_small, n_mv, n_mm = 2**24, 2**13, 8192, pick(512, 1024)
xb, yb, zb = vec(n_big), vec(n_big), np.empty(n_big, np.float32)
xs, ys, zs = vec(n_small), vec(n_small), np.empty(n_small, np.float32)
A_mv, v_mv, w_mv = rng.standard_normal((n_mv, n_mv), dtype=np.float32), vec(n_mv), np.empty(n_mv, np.float32)
A64, C64 = rng.standard_normal((64, 64), dtype=np.float32), np.empty((64, 64), np.float32)
A_mm, B_mm = rng.standard_normal((n_mm, n_mm), dtype=np.float32), rng.standard_normal((n_mm, n_mm), dtype=np.float32)
C_mm = np.empty((n_mm, n_mm), np.float32)
kernels = [  # name, kernel, n, the call (outputs preallocated: no allocation inside the timing)
    ("add, DRAM", "add", n_big, lambda: np.add(xb, yb, out=zb)),
    ("add, in cache", "add", n_small, lambda: np.add(xs, ys, out=zs)),
    ("dot, DRAM", "dot", n_big, lambda: np.dot(xb, yb)),
    (f"matvec {n_mv}", "matvec", n_mv, lambda: np.matmul(A_mv, v_mv, out=w_mv)),
    ("matmul 64", "matmul", 64, lambda: np.matmul(A64, A64, out=C64)),
    (f"matmul {n_mm}", "matmul", n_mm, lambda: np.matmul(A_mm, B_mm, out=C_mm)),
]
P1, B1 = peak_1.gflops, bw_1.gbs
rows = []
with threadpool_limits(1, user_api="blas"):
    for name, kernel, size, call in kernels:
        cost = my_kernel_cost(kernel, size)
        predicted = my_attainable(cost["intensity"], P1, B1)
        result = bench(call, budget_s=pick(0.2, 0.5), name=name)
        measured = my_gflops(cost["flops"], result.median_s)
        rows.append(dict(name=name, intensity=cost["intensity"], bound=my_bound_by(cost["intensity"], P1, B1),
                         predicted=predicted, measured=measured, median_s=result.median_s,
                         predicted_s=my_predict_seconds(kernel, size, P1, B1)))

    one, one_out = np.ones(1, np.float32), np.empty(1, np.float32)
    call_overhead_s = bench(lambda: np.add(one, one, out=one_out), budget_s=0.1).median_s

print(f"one-core roof: peak {P1:.1f} GFLOP/s, bandwidth {B1:.1f} GB/s, ridge {P1 / B1:.2f} FLOP/byte")
print(f"[timing] per-call overhead, np.add on 1 element: {format_seconds(call_overhead_s)}\n")
print(f"{'kernel':16s} {'FLOP/byte':>9s} {'bound by':>8s} {'predicted':>10s} {'measured':>9s} {'of roof':>8s} "
      f"{'time, predicted':>15s} {'measured':>9s}  verdict")
l2_bytes = describe().cache_bytes.get("L2")
small_bytes = 3 * n_small * 4
roof_figures = {"add, DRAM": "roof_add_dram", "add, in cache": "roof_add_cache", "dot, DRAM": "roof_dot_dram",
                f"matvec {n_mv}": "roof_matvec", "matmul 64": "roof_matmul_64", f"matmul {n_mm}": "roof_matmul_large"}
for r in rows:
    share = r["measured"] / r["predicted"]
    lab.quote(roof_figures[r["name"]], share, "{:.0%}")  # the share of its roof, as the table prints it
    if share > 1.1 and r["name"] == "add, in cache":
        where = f"the {l2_bytes // 1024} KiB L2 cache" if l2_bytes and l2_bytes >= small_bytes else "a cache"
        verdict = f"ABOVE the DRAM roof: its {small_bytes // 1024} KiB fit in {where}"
    elif share > 1.1:
        verdict = "ABOVE its roof: the roof was measured low (a busy moment?); rerun section 6, then this cell"
    elif share >= 0.7:
        verdict = "near its roof"
    else:
        verdict = "well below its roof"
    r["share"], r["verdict"] = share, verdict
    print(f"{r['name']:16s} {r['intensity']:9.3f} {r['bound']:>8s} {r['predicted']:10.2f} {r['measured']:9.2f} "
          f"{share:8.0%} {format_seconds(r['predicted_s']):>15s} {format_seconds(r['median_s']):>9s}  {verdict}")
print(f"\n(GFLOP/s. FLOP/byte: {lab.label('kernel_cost')}; bound by: {lab.label('bound_by')}; predicted: "
      f"{lab.label('attainable_gflops')} on the one-core roofline; measured: {lab.label('gflops')} of the median, "
      f"one thread; time per call: {lab.label('predict_seconds')}, and the median measured)")

# %% sweat={"id": "check-predict-seconds", "role": "check", "exercise": "predict_seconds", "title": "Exercise 7: predict the time"}
from sweatlab.kit import check
check("predict_seconds")

# %% sweat={"id": "predict-plot", "role": "demo"}
stand_in = " (stand-in)" if lab.stood_in("kernel_cost") or lab.stood_in("gflops") else ""  # where a point came from
points = [roofline.KernelPoint(r["name"] + stand_in, r["intensity"], r["measured"]) for r in rows]
HW1 = hw_1.gflops or P1
fig_roofline = roofline.plot_roofline(None, points, peak_gflops={"fp32 BLAS's best, 1 core": P1,
                                                        "fp32 hardware peak, 1 core": HW1}, bandwidth_gbs=B1,
                             title=f"Roofline of this machine ({describe().cpu_model or 'unknown CPU'}), "
                                   "kernels measured on one core")
ax = fig_roofline.axes[0]
x_line = np.logspace(np.log10(ax.get_xlim()[0]), np.log10(ax.get_xlim()[1]), 200)
ax.plot(x_line, np.minimum(peak_all.gflops, bw_all.gbs * x_line), "--", color="grey", lw=1.5,
        label=f"all {CORES} cores: {peak_all.gflops:.0f} GFLOP/s, {bw_all.gbs:.0f} GB/s")
ax.set_ylim(top=max(ax.get_ylim()[1], 2 * peak_all.gflops))
roofline.legend_below(ax)

# %% [markdown] sweat={"id": "sec-predict-read"}
# **Read the table and the plot**, kernel by kernel, with the verdicts printed above:
# - **add and dot on data in DRAM** are memory-bound: their roof is the slanted one, and the
#   arithmetic is nearly free. If add lands further below its roof than dot (in the shipped run: add at
#   {{roof_add_dram}} of its roof, dot at {{roof_dot_dram}}), one reason is traffic the count leaves out:
#   writing `z` first reads each cache line of it into the cache (write-allocate), a fourth array of
#   traffic on most x86 CPUs. A read-only kernel like dot does not pay that.
# - **add in cache**: the roof uses *DRAM* bandwidth, but these arrays fit in a cache that is several
#   times faster. If this point is above the slanted roof (in the shipped run: {{roof_add_cache}} of
#   the DRAM roof), that is why: the roofline holds for the memory level the data actually lives in.
#   (Much smaller calls are held back instead by the fixed per-call overhead of Python and numpy,
#   printed above the table.)
# - **matrix-vector** does 2 FLOPs per weight loaded: memory-bound, like one token of a language
#   model passing through a layer (lab 06). Where it lands well below its roof (in the shipped run:
#   {{roof_matvec}} of it), the BLAS routine on your machine does not stream memory as well as the
#   simple triad: the roof is a bound, not a promise.
#   In float32 that is 2 FLOPs per 4 bytes, 0.5 FLOP/byte, far left of the ridge: generating text one
#   token at a time ("decode") is a chain of such products, so it runs at the memory roof whatever the
#   compute peak. Store each weight in one byte (int8) and the same FLOPs move a quarter of the bytes:
#   2 FLOP/byte, up to 4x faster on the same roof while the kernel stays memory-bound; 4 bits, 8x less
#   traffic. Lab 03 measures how much of that a real kernel keeps.
# - **matmul 64**, at 64/6 = 10.7 FLOP/byte, is compute-bound wherever that lies right of the ridge
#   (the "bound by" column says for yours; the one-core ridge of the shipped run was {{ridge_1core}}
#   FLOP/byte), yet one call lasts only microseconds (the table's time column): fixed costs per call
#   (Python, numpy, the BLAS's setup) can be a large share of it. Compare its time with the per-call
#   overhead printed above the table (in the shipped run it reached {{roof_matmul_64}} of its roof).
# - **the large matmul** runs the same BLAS routine the peak was measured with (at a larger size), so
#   it should come close to the flat roof (in the shipped run: {{roof_matmul_large}} of it); labs 01
#   and 02 are about how BLAS gets there and what it costs you not to.
#
# The dashed grey roof is all cores; section 6 printed how it compares with one core on your machine.
# A percentage of peak means little until it says which roof, and how many cores.

# %% [markdown] sweat={"id": "sec-energy"}
# ## 8. Energy: what this machine can tell you
#
# The course's final question is intelligence per **joule**. Energy can be *measured* only where the
# hardware exposes a counter: Intel and AMD CPUs on Linux through RAPL (usually readable only by
# root since Linux 5.10), NVIDIA GPUs through NVML. Virtual machines normally expose none.
# `probe_energy_sensors()` says what this machine has, and why not where it has none.

# %% sweat={"id": "energy-probe", "role": "demo"}
sensors = energy.probe_energy_sensors()
for s in sensors:
    print(f"{s.name:13s} {s.device:4s} {'AVAILABLE' if s.available else 'not available':14s} {s.reason}")
energy_sensor = ", ".join(s.name for s in sensors if s.available) or "none"
print(f"\nenergy sensors usable here: {lab.quote('energy_sensors', energy_sensor, '{}')}")

# %% sweat={"id": "energy-meter", "role": "demo"}
work_s = pick(0.5, 2.0)
a_e = rng.standard_normal((512, 512), dtype=np.float32)
big = [np.full(2**23, 1.0) for _ in range(3)]  # 3 x 64 MiB float64: a triad far larger than the caches


def run_for(seconds, step):
    """Call step() until `seconds` have passed; return the number of calls."""
    calls, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        step()
        calls += 1
    return calls


def matmul_step():
    a_e @ a_e


def triad_step():
    np.multiply(big[2], 3.0, out=big[0])
    np.add(big[0], big[1], out=big[0])


WORK = [("matmul 512 (compute-bound)", matmul_step, matmul_cost(512, 512, 512).flops),
        ("triad 2^23 (memory-bound)", triad_step, 2 * 2**23)]  # a multiply and an add per element
my_gflops = lab.mine("gflops")  # yours; the course's stand-in, labelled, until you write it
energy_rows = []
with threadpool_limits(1, user_api="blas"):
    for work_name, step, flop_per_call in WORK:
        # a sensor only, no estimate: what this machine can *measure* (the CPU's energy; a GPU's counter is
        # never counted for CPU work). The labelled estimate comes below.
        with energy.EnergyMeter() as meter:
            calls = run_for(work_s, step)
        energy_rows.append((work_name, calls * flop_per_call, meter.reading))
print(energy_rows[0][2])
print()
for work_name, work, r in energy_rows:
    rate = f"{work_name:28s} {my_gflops(work, r.duration_s):7.2f} {lab.label('gflops', 'GFLOP/s')}"
    if r.joules is not None:
        print(f"{rate}, {r.joules:.2f} J ({r.kind}: {r.source}) = {work / 1e9 / r.joules:.3g} GFLOP per joule")
    else:
        print(f"{rate}; joules unknown ({r.kind}), so GFLOP per joule is unknown: None, not 0")

# %% [markdown] sweat={"id": "sec-energy-reference"}
# Where this machine measured nothing, a **shipped measurement** stands in: figures measured once on a
# machine with an energy counter, shipped with the course as data with their provenance
# (`sweatlab.measure.energy_data`), and labelled so they are never mistaken for yours. They show what the two
# kernels above would show with a sensor: a compute-bound product does far more work per joule than
# a memory-bound one, at nearly the same power. The table of energy per operation below it says why.

# %% sweat={"id": "energy-reference", "role": "demo"}
print(f"shipped measurement: {energy_data.SHIPPED_PROVENANCE}")
for m in energy_data.SHIPPED:
    print(f"  {m.device}  {m.work:38s} {m.bound:>7s}-bound {m.gflops:>9,.0f} GFLOP/s at {m.watts:3.0f} W "
          f"= {m.gflop_per_joule:6.1f} GFLOP per joule")
matmul32, gemv32 = energy_data.SHIPPED[0], energy_data.SHIPPED[1]
print(f"same board, {matmul32.watts:.0f} W and {gemv32.watts:.0f} W: the fp32 matmul did "
      f"{matmul32.gflop_per_joule / gemv32.gflop_per_joule:.0f}x more work per joule than the matrix-vector product")
print(f"\nenergy per operation, {energy_data.HOROWITZ_SOURCE}:")
for op, pj in energy_data.HOROWITZ_45NM.items():
    print(f"  {op:30s} {pj:8.2f} pJ")
print(f"one 64-bit DRAM read costs as much as {energy_data.horowitz_ratio():,.0f} to "
      f"{energy_data.horowitz_ratio('DRAM read (64 bit), high end'):,.0f} fp32 adds")

# %% [markdown] sweat={"id": "sec-estimate"}
# Where no sensor exists, an **estimate** is a model, and only as good as its inputs. `EnergyMeter`
# gives one only when asked, labelled as such, with its assumptions: power = TDP x (cores used /
# cores of the chip) x CPU utilisation. TDP is the chip's rated thermal design power from its
# datasheet. The course keeps one set of inputs for every lab's estimate, `lab.energy` (the cell
# below prints it and where it came from). Until you set yours, they are **hypothetical**: a VM does not
# say which chip it runs on, so the course assumes a 64-core server part rated at 280 W (the AMD EPYC
# 7763: AMD's product specification page lists a default TDP of 280 W, configurable 225-280 W; the same
# range appears in AMD's Milan launch line-up as tabulated by Techgage, 2021), with this process as a
# 1-core slice of it. The first row below always uses those hypothetical inputs; a second row uses
# yours once you have set them.
#
# **To set yours** (every lab's estimate then uses them): look up your CPU's TDP in watts and its
# core count on the vendor's product page, then either set the environment variables `SWEAT_TDP_W`
# and `SWEAT_CHIP_CORES` before starting JupyterLab, or write them in a file `sweatlab.ini` in the course
# folder (or in `~/.config/sweatlab/`) and rerun the setup cell:
#
# ```
# [energy]
# tdp_w = <your CPU's TDP in watts>
# chip_cores = <its number of cores>
# source = <where the TDP comes from, e.g. the vendor's product page>
# ```
#
# `sweatlab doctor` reports which inputs are in use and where they came from.

# %% sweat={"id": "energy-estimate", "role": "demo"}
print(f"the estimate's inputs in use: {lab.energy}")
assumptions = [  # (label, TDP in W, cores of the chip, a fresh meter with those inputs)
    (f"hypothetical: {energy.HYPOTHETICAL_TDP_W:g} W, {energy.HYPOTHETICAL_CHIP_CORES}-core chip; 1 core of it",
     energy.HYPOTHETICAL_TDP_W, energy.HYPOTHETICAL_CHIP_CORES,
     lambda: energy.EnergyMeter(estimate=True, tdp_w=energy.HYPOTHETICAL_TDP_W,
                                host_cores=energy.HYPOTHETICAL_CHIP_CORES, cores_used=1,
                                tdp_source=energy.HYPOTHETICAL_SOURCE))]
if not lab.energy.hypothetical:  # your inputs, set as the text above says
    assumptions.append((f"yours: {lab.energy.tdp_w:g} W, {lab.energy.chip_cores}-core chip; 1 core of it",
                        lab.energy.tdp_w, lab.energy.chip_cores, lambda: lab.meter(cores_used=1)))
else:
    print("(no row of your own yet: set your CPU's TDP and core count as the text above says)")
print()

estimates_j = {}
with threadpool_limits(1, user_api="blas"):
    for label, tdp, chip_cores, make_meter in assumptions:
        for work_name, step in (("matmul (compute-bound)", matmul_step), ("triad (memory-bound)", triad_step)):
            with make_meter() as meter:
                run_for(work_s / 2, step)
            r = meter.reading
            estimates_j[label, work_name] = r
            watts = r.estimate_j / r.duration_s
            utilisation = watts / (tdp / chip_cores)  # the model: P = TDP x (1 core / chip cores) x utilisation
            sensor = f"; sensor: {r.joules:.3f} J" if r.kind == "measured" else ""
            print(f"{label:48s} {work_name:22s} estimate {r.estimate_j:7.3f} J over {r.duration_s:.2f} s "
                  f"= {watts:6.2f} W (CPU utilisation {utilisation:.2f}){sensor}")
print("\nthe first reading in full, with its stated assumptions:")
print(estimates_j[assumptions[0][0], "matmul (compute-bound)"])

# %% [markdown] sweat={"id": "sec-energy-read"}
# **What the estimate can tell**: an order of magnitude, *given* its stated inputs, and how energy
# scales with CPU time (twice the CPU time, twice the estimate).
#
# **What it cannot tell**: anything the inputs do not contain. Change the TDP or the core count and
# the estimate moves in proportion. And the compute-bound matmul and the memory-bound triad get watts
# that differ only as much as their printed CPU utilisation does: the model sees a busy core either
# way, while a real chip spends its energy differently on vector arithmetic and on moving data from
# DRAM (the table of energy per operation above). So an estimate can never show that one kernel is
# more *energy*-efficient than another beyond what their CPU times already say; the shipped
# measurement above does, and so does a sensor. Where you have one (RAPL on a Linux laptop with read
# access, NVML on an NVIDIA GPU), `EnergyMeter()` reports measured joules for the device it measures,
# with the estimate beside it when you ask for both.

# %% [markdown] sweat={"id": "sec-other-hw"}
# ## 9. On other hardware
#
# - **AVX2 or AVX-512**: an AVX2 instruction (most laptops, AMD before Zen 4) works on 8 float32 at
#   once, an AVX-512 one (recent Xeons, AMD Zen 4 and later) on 16, so the peak per core at the same
#   clock can double where the units are 512 bits wide (Xeons with two FMA units, Zen 5); Zen 4 runs
#   each 512-bit instruction as two 256-bit halves, so its peak stays that of AVX2 (AMD, *Software
#   Optimization Guide for the AMD Zen4 Microarchitecture*, pub. 57647, section 2.11). The method is
#   unchanged. `describe()` at the top lists your ISA.
# - **ARM (Apple M-series, Graviton, Raspberry Pi)**: NEON vectors are 128 bits, but Apple chips
#   have several vector units and very high memory bandwidth, so the ridge point sits further left:
#   more kernels are compute-bound. numpy may use Apple's Accelerate, which threadpoolctl cannot see
#   (`blas_threads` then reads None, with the reason) and whose thread count the environment variable
#   `VECLIB_MAXIMUM_THREADS` sets.
# - **Laptops**: turbo clocks and heat make numbers drift within a run (the first seconds are fastest),
#   and plugging in the charger changes them: another reason for medians and interleaved ratios.
#   Linux laptops with Intel or AMD CPUs have RAPL, readable after an admin grants access.
# - **GPUs**: far higher roofs. NVIDIA's A100, H100 and H200 datasheets give bf16 tensor-core peaks of
#   312, 989 and 989 TFLOP/s dense (they print twice that "with sparsity") and 2.0, 3.35 and 4.8 TB/s
#   of HBM (A100 80GB SXM, H100 SXM, H200 SXM). One H200 SXM measured for this course (2026-11-29, one
#   run each) did a bf16 matmul at 651 TFLOP/s (n = 8192) and streamed about 3.8 TB/s in a float32
#   matrix-vector product. Kernels run *asynchronously*: a timer must synchronise with the GPU before
#   reading the clock, or it measures only the launch. NVML gives measured energy on NVIDIA GPUs from
#   Volta on.
# - **More cores**: thread counts matter more, not less: the oversubscription experiment above
#   scales with `CORES`.

# %% [markdown] sweat={"id": "sec-record"}
# ## 10. Record what you measured
#
# `lab.record` appends one line to `results/records.jsonl` with your numbers, this machine's
# description and the package versions. Later labs compare against these numbers (percent of peak),
# and an instructor can pool a class's records into one chart.

# %% sweat={"id": "record", "role": "demo", "record_keys": ["peak_gflops_fp32", "hardware_peak_gflops_fp32", "bandwidth_gbs", "timer_overhead_ns", "energy_sensor", "peak_gflops_fp32_1core", "bandwidth_gbs_1core", "cores", "quick"]}
rec = lab.record(
    peak_gflops_fp32=round(peak_all.gflops, 2),
    hardware_peak_gflops_fp32=round(hw_all.gflops, 2) if hw_all.gflops else None,
    bandwidth_gbs=round(bw_all.gbs, 2),
    timer_overhead_ns=timer_overhead_ns,
    energy_sensor=energy_sensor,
    peak_gflops_fp32_1core=round(P1, 2),
    bandwidth_gbs_1core=round(B1, 2),
    cores=CORES,
    quick=QUICK,
)
print(f"recorded in {records.records_path_for_display()}:")
for key, value in rec["values"].items():
    print(f"  {key}: {value}")

# %% tags=["solution"]
# Author only: save the key plots for the slides (slides/img/00_*.png) when asked to.
if os.environ.get("SWEAT_SLIDES_IMG"):
    for name, figure in (("timer", fig_timer), ("ratio", fig_ratio), ("threads", fig_threads),
                         ("roofline", fig_roofline)):
        figure.savefig(os.path.join(os.environ["SWEAT_SLIDES_IMG"], f"00_{name}.png"), dpi=120, bbox_inches="tight")
    print("saved slide images")

# %% [markdown] sweat={"id": "summary"}
# ## Summary
#
# - One timed call is not a measurement: the first call pays one-off costs, later calls scatter.
#   Warm up, repeat, report the **median** with its spread; batch calls shorter than ~100 clock reads.
# - Decide A versus B with an **interleaved ratio**: noise that hits both sides of a pair cancels.
# - **Threads** are a setting you must know and record; more threads than free cores
#   can make BLAS slower, sometimes by an order of magnitude.
# - Work divided by time gives a rate: FLOPs with a multiply-add as 2, bytes as compulsory traffic,
#   their ratio the **arithmetic intensity**.
# - Your machine's **roofline**, min(peak, bandwidth x intensity), predicts the best a kernel can do;
#   the gap between prediction and measurement is where the lessons are (caches, overheads, the
#   quality of the code).
# - Energy is **measured** only with a sensor; an estimate is a labelled model that cannot rank two
#   kernels beyond what their times say.
#
# ## Reflection questions
# 1. Your `time_it` returns a median. When would the minimum be the better number to report, when the
#    mean, and when the first call alone? (Hints: the roofline's peaks are minimums; a million calls
#    cost the mean times a million; a user opening an app waits for the first call.)
# 2. Interleaving cancels noise that hits both sides of a pair. What kind of noise would *not* cancel?
# 3. The matrix-vector kernel has an intensity of about 0.5 FLOP/byte in float32. What would it become
#    with weights stored in int8 (1 byte), and what would that do to its attainable GFLOP/s on your
#    roofline? (Lab 03 measures it.)
# 4. Section 6 printed what all cores add over one, for compute and for bandwidth. What does the
#    bandwidth factor mean for running two memory-bound jobs side by side?
# 5. Someone reports "our model uses 30% less energy" from a TDP-based estimate. What question do you
#    ask first?
#
# ## Further reading
# - S. Williams, A. Waterman, D. Patterson, "Roofline: an insightful visual performance model for
#   multicore architectures", *Communications of the ACM* 52(4), 2009.
# - J. D. McCalpin, "Memory Bandwidth and Machine Balance in Current High Performance Computers",
#   IEEE TCCA Newsletter, 1995 (the STREAM benchmark).
# - A. Georges, D. Buytaert, L. Eeckhout, "Statistically rigorous Java performance evaluation",
#   OOPSLA 2007 (why single runs and best-of-N numbers mislead; their remedy is a confidence interval
#   of the *mean*).
# - T. Hoefler, R. Belli, "Scientific Benchmarking of Parallel Computing Systems: Twelve Ways to Tell
#   the Masses when Reporting Performance Results", SC'15 (timings are rarely normal: check before
#   using means, otherwise report the median with a nonparametric confidence interval).
# - Python documentation, `timeit` (GC off, loops and repeats); pyperf documentation, "Analyze
#   benchmark results" and "Tune the system for benchmarks" (medians, spread, many processes).
# - PyTorch documentation, `torch.utils.benchmark` (median and IQR, one thread by default).
# - CodeCarbon documentation, "Methodology" (how TDP-based estimates are built, and their limits);
#   Intel security advisory INTEL-SA-00389 (why RAPL is root-only since Linux 5.10).
