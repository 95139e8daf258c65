# %% [markdown] sweat={"id": "intro"}
# # Lab 04 · Doing less work: does every forward pass justify itself?
#
# The cheapest FLOP is the one you never compute. Two classic tricks come from training under scarcity:
# dropout (too little data for too many weights) and early stopping (epochs that no longer help).
# *Inference* offers two more ways to do less: let easy inputs leave a network early, or let a small model
# answer first and call a big one only when it is unsure. This lab measures each on your machine, in
# FLOPs, seconds and joules, and asks what the accuracy paid for the saving.
#
# **You will be able to**
# - read learning curves, see overfitting, and show what dropout changes;
# - write an early-stopping rule with patience and best-checkpoint restore, and measure the compute and
#   energy it saves against a fixed schedule;
# - measure a model's uncertainty with MC dropout (predictive entropy) and check that the inputs it is
#   unsure of are the ones it gets wrong;
# - build the exit rule of an early-exit network, count the FLOPs each input really costs, and explain
#   why the measured time saved is not the FLOPs saved;
# - write a cascade's routing policy and compare the cascade with each model alone in accuracy, FLOPs,
#   latency and joules.
#
# **Prerequisites**: Python and numpy; what a neural network's forward pass, loss and training loop are
# (the lab uses small PyTorch models and shows every loop). Lab 00 (timing, FLOPs, energy estimates)
# helps; this lab repeats what it needs.
#
# **Time.** Compute, *measured* by running the solution top to bottom: 84 s in full mode (the default when
# you run it: three seeds instead of one, longer CNN training, longer timings; `sweatlab execute 04 --full`)
# on a 2-core Intel Xeon virtual machine with AMX, the machine of the course's shipped run. Earlier, on a
# 2-core AMD EPYC virtual machine shared with other jobs (Zen 4, inferred from its CPU family and AVX-512;
# no energy sensor), it measured 29-50 s in quick mode (`SWEAT_QUICK=1`, used by the tests; `sweatlab
# execute 04`; 29-35 s when the machine was quiet) and 67 s in full mode. The solution's outputs and the
# figures quoted in this lab come from the course's shipped run ({{machine}}, {{mode}} mode); your run
# prints your own. Reading and the five exercises: about 75-100 minutes, *estimated* from the lab's size
# (not a timed class): 10-15 minutes per exercise with one mistake to fix, and about 25 minutes for the
# sections and their plots. Plan a 90-minute slot and leave the reflection questions for afterwards.
#
# Five exercises, each a function of plain arrays followed by a `check(...)` cell: `early_stop`,
# `predictive_entropy`, `exit_costs`, `exit_rule`, `cascade`. Until you write one, the cells that use it
# run the lab's stand-in (the course's own version) instead, say so once, and mark every number and plot
# label it produced " (stand-in)", so the notebook always runs top to bottom.

# %% sweat={"id": "setup", "role": "setup"}
import copy
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from sweatlab.kit import open_lab
from sweatlab.labs.lab04_less.plots import flops_ticks, label_points, style
from sweatlab.measure import config, records
from sweatlab.measure.hardware import describe
from sweatlab.measure.timing import bench, compare, format_seconds
from sweatlab.topics import frugal
from sweatlab.topics.frugal import evaluate, forward_flops, mc_dropout_probs, softmax_probs, train_epoch

lab = open_lab("04_less")  # checks, stand-ins (labelled), the energy meter, quoted figures, the record
QUICK = config.quick()  # SWEAT_QUICK=1 shrinks the runs (tests and CI); the lab is written for full mode
torch.set_num_threads(1)  # small models: one core gives steadier timings, and the energy estimate counts 1 core
DATA = frugal.digits()  # scikit-learn's bundled 8x8 digits: nothing is downloaded
X_train, y_train = torch.from_numpy(DATA.X_train), torch.from_numpy(DATA.y_train)
X_val, y_val = torch.from_numpy(DATA.X_val), torch.from_numpy(DATA.y_val)
X_test, y_test = torch.from_numpy(DATA.X_test), torch.from_numpy(DATA.y_test)
LR, BATCH = 1e-3, 32  # Adam's learning rate and the mini-batch size, for every model of the lab
style()
FLOPS_TICKS = flops_ticks()  # FLOPs axes read 20k, 1.5M


def joules_text(reading, per=1.0):
    """A reading's joules (divided by `per`) with their kind: '12.3 J (estimated)'; 'unknown' when none."""
    if reading.joules is None:
        return f"unknown ({reading.kind})"
    return f"{reading.joules / per:.3g} J ({reading.kind})"


def run_for(seconds, fn):
    """Call fn() until `seconds` have passed; return the number of calls."""
    calls, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        fn()
        calls += 1
    return calls


print(f"quick mode: {QUICK}; torch {torch.__version__} with {torch.get_num_threads()} thread")
print(DATA)
machine = describe()
print(machine)
cpu_name = (machine.cpu_model or machine.arch).replace("(R)", "").replace("(TM)", "")
lab.quote("machine", f"{machine.usable_cores or 1}-core {cpu_name}" + (" virtual machine" if machine.virtual_machine else ""),
          "{}")  # the deck and the guide say which machine their figures come from
lab.quote("mode", "quick" if QUICK else "full", "{}")
# Energy: measured where this machine has a CPU energy sensor (RAPL), else a labelled *estimate* (lab 00,
# section 8): power = TDP x (1 core / cores of the chip) x CPU utilisation. Until you give your CPU's TDP and
# core count (its datasheet), the inputs are the course's hypothetical default: set SWEAT_TDP_W and
# SWEAT_CHIP_CORES before starting JupyterLab, or write them in sweatlab.ini (`sweatlab doctor` shows which
# inputs are in use). Every meter of the lab comes from lab.meter().
print(f"energy estimate's inputs: {lab.energy}")

# %% [markdown] sweat={"id": "sec-dropout"}
# ## 1. Dropout: the same network, with and without
#
# A network with far more weights than training examples can learn the examples by heart: its training
# loss goes to zero while its loss on data it has not seen (the **validation** set) stops falling and
# climbs. That is **overfitting**. **Dropout** (Srivastava et al. 2014) fights it cheaply: while training,
# every hidden unit is zeroed with probability p on each mini-batch and the survivors are scaled by
# 1/(1-p) (PyTorch's `nn.Dropout`), so no unit can rely on any other being there. At test time nothing
# is dropped. It adds almost no FLOPs (a mask and a multiply per hidden unit); the random numbers it
# draws cost time, which section 3 measures.
#
# Below, one network (64 pixels → 256 → 256 → 10 classes, about 85,000 weights) is trained twice from the
# same initial weights and the same order of mini-batches: once without dropout, once with p = 0.3. To
# make overfitting easy to see, it gets only 200 of the 997 training digits. After every epoch (one pass
# over those 200) both are evaluated on the training digits and on the 300 validation digits, with
# dropout off.

# %% sweat={"id": "dropout-run", "role": "demo"}
WIDTHS, DROPOUT = (64, 256, 256, 10), 0.3
N_FEW = 200
EPOCHS_CURVES = config.pick(80, 100)
X_few, y_few = X_train[:N_FEW], y_train[:N_FEW]


def train_with_curves(dropout, seed=0):
    """Train the MLP on the 200 digits for EPOCHS_CURVES epochs; evaluate after each epoch."""
    torch.manual_seed(seed)
    model = frugal.mlp(WIDTHS, dropout)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    order = torch.Generator().manual_seed(seed)
    curves = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": []}
    for _ in range(EPOCHS_CURVES):
        train_epoch(model, opt, X_few, y_few, BATCH, order)
        for split, X, y in (("train", X_few, y_few), ("val", X_val, y_val)):
            loss, acc = evaluate(model, X, y)
            curves[f"{split}_loss"].append(loss)
            curves[f"{split}_acc"].append(acc)
    return model, {k: np.array(v) for k, v in curves.items()}


warm = frugal.mlp(WIDTHS, DROPOUT)  # one untimed epoch first: torch's one-off start-up costs are not a run's
train_epoch(warm, torch.optim.Adam(warm.parameters(), lr=LR), X_few, y_few, BATCH, torch.Generator().manual_seed(9))
curves = {}
for p in (0.0, DROPOUT):
    t0 = time.perf_counter()
    _, curves[p] = train_with_curves(p)
    print(f"[timing] p = {p}: {EPOCHS_CURVES} epochs on {N_FEW} digits in {time.perf_counter() - t0:.2f} s")
for p, c in curves.items():
    best = int(np.argmin(c["val_loss"]))
    print(f"dropout p = {p}: lowest validation loss {c['val_loss'][best]:.3f} at epoch {best + 1}, "
          f"{c['val_loss'][-1]:.3f} at the end; validation accuracy at the end {100 * c['val_acc'][-1]:.1f}%, "
          f"training accuracy {100 * c['train_acc'][-1]:.1f}%")
for p, tag in ((0.0, "off"), (DROPOUT, "on")):  # the figures the text below quotes
    c = curves[p]
    best = int(np.argmin(c["val_loss"]))
    lab.quote(f"dropout_best_{tag}", c["val_loss"][best], "{:.3f}")
    lab.quote(f"dropout_best_epoch_{tag}", best + 1, "{:d}")
    lab.quote(f"dropout_end_{tag}", c["val_loss"][-1], "{:.3f}")
    lab.quote(f"dropout_val_acc_{tag}", 100 * c["val_acc"][-1], "{:.1f}%")
    lab.quote(f"dropout_train_acc_{tag}", 100 * c["train_acc"][-1], "{:.1f}%")
end_off, end_on = curves[0.0]["val_loss"][-1], curves[DROPOUT]["val_loss"][-1]
lab.quote("dropout_end_verdict", "below" if end_on < end_off else "above" if end_on > end_off else "level with", "{}")
lab.quote("dropout_epochs", EPOCHS_CURVES, "{:d}")

# %% sweat={"id": "dropout-plot", "role": "demo"}
fig_dropout, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
epochs_axis = np.arange(1, EPOCHS_CURVES + 1)
for p, colour in ((0.0, "tab:red"), (DROPOUT, "tab:blue")):
    c, name = curves[p], "no dropout" if p == 0 else f"dropout p = {p}"
    ax_loss.plot(epochs_axis, c["train_loss"], "--", color=colour, lw=1.2, label=f"{name}: training")
    ax_loss.plot(epochs_axis, c["val_loss"], "-", color=colour, lw=2, label=f"{name}: validation")
    best = int(np.argmin(c["val_loss"]))
    ax_loss.plot([best + 1], [c["val_loss"][best]], "o", color=colour, ms=7)
    ax_acc.plot(epochs_axis, 100 * c["train_acc"], "--", color=colour, lw=1.2, label=f"{name}: training")
    ax_acc.plot(epochs_axis, 100 * c["val_acc"], "-", color=colour, lw=2, label=f"{name}: validation")
ax_loss.set(yscale="log", xlabel="epoch", ylabel="cross-entropy loss (log scale)",
            title=f"Loss, {N_FEW} training digits (dots: lowest validation loss)")
ax_acc.set(xlabel="epoch", ylabel="accuracy [%]", ylim=(50, 101), title="Accuracy, same runs")
ax_loss.legend(fontsize=8)
ax_acc.legend(fontsize=8, loc="lower right");

# %% [markdown] sweat={"id": "dropout-read"}
# **Read the plots.** Dashed lines are the 200 training digits, solid lines the validation digits. Without
# dropout (red) the training loss falls towards zero while the validation loss reaches its lowest point
# (the dot); where it rises after that, more epochs make the model *more* sure of its mistakes on data it
# has not seen. With dropout (blue) the network cannot memorise as easily, which is meant to keep its
# training loss higher and its validation loss lower.
#
# In the shipped run ({{dropout_epochs}} epochs), without dropout the validation loss was lowest at
# {{dropout_best_off}} (epoch {{dropout_best_epoch_off}}) and ended at {{dropout_end_off}}; with p = 0.3 it was
# lowest at {{dropout_best_on}} (epoch {{dropout_best_epoch_on}}) and ended at {{dropout_end_on}}, {{dropout_end_verdict}}
# the end without dropout. Validation accuracy ended at {{dropout_val_acc_off}} without dropout and
# {{dropout_val_acc_on}} with it (training accuracy {{dropout_train_acc_off}} and {{dropout_train_acc_on}}). Accuracy
# only counts which class wins; the loss also counts how confident the model was, so the two panels
# need not move together.
#
# Both runs ask the same question about compute: after which epoch does further training stop buying
# anything on the validation set? The next section turns that into a rule.

# %% [markdown] sweat={"id": "sec-early-stop"}
# ## 2. Early stopping: stop paying when the validation loss stops improving
#
# A **fixed schedule** trains for a number of epochs chosen in advance (here 100), whether the model still
# improves or not. **Early stopping** (Prechelt 1998) watches the validation loss after every epoch and
# stops once it has not improved for `patience` epochs in a row, then restores the weights of the best
# epoch, the **best checkpoint**: the epochs after it were paid for and thrown away, but no more of them.
# It costs a validation pass per epoch and a copy of the weights whenever the loss improves.
#
# ### Exercise 1: the early-stopping rule
# Write `early_stop(val_losses, patience)`. `val_losses[e]` is the validation loss after epoch `e`
# (epochs counted from 0); lower is better. Return a dict `{"stop": ..., "best": ...}`:
# - an epoch **improves** when its loss is *strictly lower* than the lowest loss before it;
# - `"stop"`: the epoch after which training stops, the one that makes `patience` epochs in a row
#   without improvement; `None` when the losses given never trigger the rule;
# - `"best"`: the epoch whose checkpoint to restore: the lowest loss up to the stop (the earliest of equal
#   ones).
#
# The training loop below calls your function after every epoch with the losses so far, and stops as
# soon as `"stop"` is not `None`. Example: with `patience=2`, losses `[0.9, 0.7, 0.8, 0.75]` stop after
# epoch 3 and restore epoch 1.

# %% sweat={"id": "ex-early-stop", "role": "answer", "exercise": "early_stop"}
def early_stop(val_losses, patience):
    """{"stop": the epoch after which to stop (or None), "best": the epoch whose weights to restore}."""
    ### BEGIN SOLUTION
    best, stop = 0, None
    for epoch, loss in enumerate(val_losses):
        if loss < val_losses[best]:
            best = epoch
        elif epoch - best >= patience:
            stop = epoch
            break
    return {"stop": stop, "best": best}
    ### END SOLUTION


# %% sweat={"id": "check-early-stop", "role": "check", "exercise": "early_stop", "title": "Exercise 1: the early-stopping rule"}
from sweatlab.kit import check
check("early_stop")

# %% [markdown] sweat={"id": "early-stop-run-md"}
# Now the real thing, on all 997 training digits with dropout p = 0.3. Each run starts from the same
# seed, so the two runs of one seed see the same initial weights and the same mini-batches:
# - the **fixed schedule**: 100 epochs, no validation while training (it does not need any); the weights
#   after every epoch are copied aside, to draw its curves afterwards, outside the measurement (the copies
#   themselves are timed with it; the cell prints their share of its time);
# - **early stopping**: the same training with a validation pass after every epoch and your `early_stop`
#   with patience 10, the best checkpoint kept and restored at the end.
#
# Each run is timed (the time early stopping spends watching, its validation passes and checkpoint copies,
# separately too), and its energy read by a meter from `lab.meter()` (a sensor where there is one, else
# the labelled estimate of the setup cell). Training FLOPs are counted as 3 forward passes per training
# sample (forward, and a backward pass of about twice the forward: Kaplan et al. 2020 count 2N FLOPs per
# token forward and 6N for training), plus one forward pass per validation sample for early stopping;
# the optimizer's update is left out. Full mode repeats both runs with three seeds.

# %% sweat={"id": "early-stop-run", "role": "demo"}
FIXED_EPOCHS, PATIENCE = 100, 10
SEEDS = config.pick([0], [0, 1, 2])
MLP_FLOPS = forward_flops(frugal.mlp(WIDTHS, DROPOUT), X_val[:1])  # one sample's forward pass
TRAIN_EPOCH_FLOPS = frugal.TRAIN_FLOPS_PER_FORWARD * MLP_FLOPS * len(y_train)
VAL_PASS_FLOPS = MLP_FLOPS * len(y_val)
my_early_stop = lab.mine("early_stop")  # yours, or the lab's stand-in (labelled) while it is not written


def fresh_run(seed):
    torch.manual_seed(seed)
    model = frugal.mlp(WIDTHS, DROPOUT)
    return model, torch.optim.Adam(model.parameters(), lr=LR), torch.Generator().manual_seed(seed)


def fixed_schedule(seed):
    """FIXED_EPOCHS epochs, no validation; returns the model, each epoch's weights, seconds, energy."""
    model, opt, order = fresh_run(seed)
    weights, copy_s = [], 0.0
    with lab.meter() as m:
        t0 = time.perf_counter()
        for _ in range(FIXED_EPOCHS):
            train_epoch(model, opt, X_train, y_train, BATCH, order)
            t1 = time.perf_counter()
            weights.append(copy.deepcopy(model.state_dict()))  # for the curves only (about 0.3 MB)
            copy_s += time.perf_counter() - t1
        seconds = time.perf_counter() - t0
    return model, weights, seconds, m.reading, copy_s


def with_early_stopping(seed):
    """The same training, a validation pass after each epoch, stopped by early_stop; best weights restored."""
    model, opt, order = fresh_run(seed)
    losses, kept, watching_s = [], {}, 0.0
    with lab.meter() as m:
        t0 = time.perf_counter()
        for epoch in range(FIXED_EPOCHS):  # the fixed schedule is the most it may run
            train_epoch(model, opt, X_train, y_train, BATCH, order)
            t1 = time.perf_counter()
            losses.append(evaluate(model, X_val, y_val)[0])
            decision = my_early_stop(losses, PATIENCE)
            if decision["best"] == epoch:
                kept = {epoch: copy.deepcopy(model.state_dict())}  # the best checkpoint so far
            watching_s += time.perf_counter() - t1  # what early stopping adds to each epoch
            if decision["stop"] is not None:
                break
        seconds = time.perf_counter() - t0
    if decision["best"] not in kept:
        raise ValueError(f"early_stop named epoch {decision['best']} as the best, but did not name it when that "
                         "epoch ended, so its weights were not kept: check your rule against the exercise text")
    model.load_state_dict(kept[decision["best"]])
    return model, np.array(losses), decision, seconds, m.reading, watching_s


runs = {}
for seed in SEEDS:  # early stopping first: a slow start of the machine then counts against it, not for it
    es_model, es_losses, decision, es_s, es_j, watching_s = with_early_stopping(seed)
    fixed_model, weights, fixed_s, fixed_j, copy_s = fixed_schedule(seed)
    epochs_run = len(es_losses)
    runs[seed] = dict(fixed_model=fixed_model, weights=weights, fixed_s=fixed_s, fixed_j=fixed_j, copy_s=copy_s,
                      es_model=es_model, es_losses=es_losses, decision=decision, es_s=es_s, es_j=es_j,
                      watching_s=watching_s,
                      epochs_run=epochs_run, fixed_acc=evaluate(fixed_model, X_test, y_test)[1],
                      es_acc=evaluate(es_model, X_test, y_test)[1],
                      fixed_flops=FIXED_EPOCHS * TRAIN_EPOCH_FLOPS,
                      es_flops=epochs_run * (TRAIN_EPOCH_FLOPS + VAL_PASS_FLOPS))
    print(f"[timing] seed {seed}: fixed schedule {FIXED_EPOCHS} epochs in {fixed_s:.2f} s "
          f"({1e3 * fixed_s / FIXED_EPOCHS:.1f} ms per epoch); early stopping {epochs_run} epochs in {es_s:.2f} s "
          f"({1e3 * es_s / epochs_run:.1f} ms per epoch, watching included)")
print(f"one forward pass of the MLP: {MLP_FLOPS:,} FLOPs per sample; a training epoch "
      f"{TRAIN_EPOCH_FLOPS / 1e9:.3f} GFLOP, a validation pass {VAL_PASS_FLOPS / 1e9:.4f} GFLOP")
r0 = runs[SEEDS[0]]
WATCH_TIME_PCT = 100 * r0["watching_s"] / r0["es_s"]
WATCH_FLOPS_PCT = 100 * VAL_PASS_FLOPS / (TRAIN_EPOCH_FLOPS + VAL_PASS_FLOPS)
print(f"[timing] seed {SEEDS[0]}: watching (validation pass, rule, checkpoint copies) took "
      f"{WATCH_TIME_PCT:.1f}% of the early-stopping run's time and {WATCH_FLOPS_PCT:.1f}% of its FLOPs")
print(f"[timing] seed {SEEDS[0]}: the fixed schedule's weight copies (kept for the curves) took "
      f"{100 * r0['copy_s'] / r0['fixed_s']:.1f}% of its time")
lab.quote("es_watch_time", WATCH_TIME_PCT, "{:.1f}%")
lab.quote("es_watch_flops", WATCH_FLOPS_PCT, "{:.1f}%")

# %% sweat={"id": "early-stop-table", "role": "demo"}
def saving(early, fixed):
    """Percent of the fixed schedule's cost that early stopping did not spend."""
    return 100 * (1 - early / fixed)


print(f"{'seed':>4} {'run':<15}{'epochs':>7}{'GFLOP':>9}{'time':>10}{'energy':>22}{'test acc.':>11}")
for seed, r in runs.items():
    stop = r["decision"]["stop"]
    rows = [("fixed schedule", FIXED_EPOCHS, r["fixed_flops"], r["fixed_s"], r["fixed_j"], r["fixed_acc"]),
            (f"early, best {r['decision']['best'] + 1}", r["epochs_run"], r["es_flops"], r["es_s"], r["es_j"],
             r["es_acc"])]
    for name, epochs, work, seconds, reading, acc in rows:
        print(f"{seed:>4} {name:<15}{epochs:>7}{work / 1e9:>9.2f}{format_seconds(seconds):>10}"
              f"{joules_text(reading):>22}{100 * acc:>10.1f}%")
    j_saving = (saving(r["es_j"].joules, r["fixed_j"].joules)
                if r["es_j"].joules is not None and r["fixed_j"].joules is not None else None)
    r["saving_pct"] = {"flops": saving(r["es_flops"], r["fixed_flops"]), "time": saving(r["es_s"], r["fixed_s"]),
                       "joules": j_saving}
    print(f"{'':>4} {lab.label('early_stop', 'saved')}: {r['saving_pct']['flops']:.0f}% of the FLOPs, "
          f"{r['saving_pct']['time']:.0f}% of the "
          f"time, " + (f"{j_saving:.0f}% of the joules ({r['es_j'].kind})" if j_saving is not None
                       else "joules unknown") +
          f"; test accuracy {100 * (r['es_acc'] - r['fixed_acc']):+.1f} points"
          + ("" if stop is not None else " (the rule never fired: it ran the whole schedule)"))
for seed, r in runs.items():
    r["reached"] = r["saving_pct"]["flops"] >= 50 and r["es_acc"] >= r["fixed_acc"] - 0.005
    print(f"seed {seed}: the lab's aim (no more than 0.5 points below the fixed schedule's test accuracy, with at "
          f"most half its training FLOPs) {'REACHED' if r['reached'] else 'NOT reached'}")
if runs[SEEDS[0]]["es_j"].kind == "estimated":
    print(f"\nenergy: an ESTIMATE (no CPU energy sensor here): {lab.energy.tdp_w:g} W x (1 core / "
          f"{lab.energy.chip_cores}) x CPU utilisation, inputs {lab.energy.source}; it follows CPU time, so its "
          "saving follows the time's")


def in_words(texts):
    """'a', 'a and b', 'a, b and c'."""
    texts = list(texts)
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " and " + texts[-1]


def percent(v):
    """A saving in percent; a negative one says that it cost more."""
    if v is None:
        return "unknown"
    pct = int(round(float(v)))
    return f"{pct}%" if pct >= 0 else f"{pct}% (it cost more)"


# The figures the text below quotes (one per seed, in order).
rs = list(runs.values())
lab.quote("es_seeds", ("seeds " if len(rs) > 1 else "seed ") + in_words(str(s) for s in runs), "{}")
lab.quote("es_epochs", in_words(str(r["epochs_run"]) for r in rs), "{}")
lab.quote("es_best", ("epochs " if len(rs) > 1 else "epoch ") + in_words(str(r["decision"]["best"] + 1) for r in rs),
          "{}")
lab.quote("es_flops_saved", in_words(percent(r["saving_pct"]["flops"]) for r in rs), "{}")
lab.quote("es_time_saved", in_words(percent(r["saving_pct"]["time"]) for r in rs), "{}")
lab.quote("es_joules_saved", in_words(percent(r["saving_pct"]["joules"]) for r in rs), "{}")
lab.quote("es_energy_kind", rs[0]["es_j"].kind, "{}")
lab.quote("es_acc_change", in_words(f"{100 * (r['es_acc'] - r['fixed_acc']):+.1f}" for r in rs), "{}")
fixed_accs = [100 * r["fixed_acc"] for r in rs]
lab.quote("es_fixed_acc", f"between {min(fixed_accs):.1f}% and {max(fixed_accs):.1f}%, depending on the seed"
          if len(rs) > 1 else f"at {fixed_accs[0]:.1f}%", "{}")
held = sum(r["reached"] for r in rs)
lab.quote("es_aim", f"held for {held} seed{'s' if held != 1 else ''} of {len(rs)}" if len(rs) > 1
          else f"{'held' if held else 'did not hold'} for the one seed run", "{}")
spread = max(fixed_accs) - min(fixed_accs)
lab.quote("es_spread", (f"the fixed schedule's own test accuracy moved by {spread:.1f} points from seed to seed, "
                        + ("more than" if spread > 0.5 else "no more than") + " the half point asked for")
          if len(rs) > 1 else "one seed cannot show how far the fixed schedule's own test accuracy moves from "
                              "seed to seed (full mode runs three)", "{}")

# %% sweat={"id": "early-stop-replay", "role": "demo"}
# The fixed schedule's curves, from the weights it kept after every epoch (outside the measurement).
r0 = runs[SEEDS[0]]
replay_model = frugal.mlp(WIDTHS, DROPOUT)
fixed_val, fixed_val_acc, fixed_test = [], [], []
for state in r0["weights"]:
    replay_model.load_state_dict(state)
    loss, acc = evaluate(replay_model, X_val, y_val)
    fixed_val.append(loss), fixed_val_acc.append(acc)
    fixed_test.append(evaluate(replay_model, X_test, y_test)[1])
fixed_val, fixed_val_acc, fixed_test = np.array(fixed_val), np.array(fixed_val_acc), np.array(fixed_test)
same = np.allclose(fixed_val[:r0["epochs_run"]], r0["es_losses"], rtol=1e-6, atol=0)
print(f"seed {SEEDS[0]}: the early-stopped run's {r0['epochs_run']} validation losses "
      + ("equal the fixed schedule's first ones: the two runs trained identically until the stop"
         if same else "differ from the fixed schedule's: the runs did not train identically (threads? seeds?)"))
lab.quote("es_retraced", "retraced the fixed run exactly until its stop" if same
          else "did not retrace the fixed run exactly until its stop", "{}")
print(f"lowest validation loss over all {FIXED_EPOCHS} epochs: epoch {int(np.argmin(fixed_val)) + 1}; "
      f"early stopping restored epoch {r0['decision']['best'] + 1}")
target = fixed_val_acc[-1]  # the target: the validation accuracy the fixed schedule ends with
first = int(np.argmax(fixed_val_acc >= target)) + 1
print(f"target, the fixed schedule's final validation accuracy: {100 * target:.1f}%; it first reached it after epoch "
      f"{first} ({first * TRAIN_EPOCH_FLOPS / 1e9:.1f} of its {FIXED_EPOCHS * TRAIN_EPOCH_FLOPS / 1e9:.1f} GFLOP); "
      f"early stopping's restored checkpoint: {100 * fixed_val_acc[r0['decision']['best']]:.1f}% after "
      f"{r0['es_flops'] / 1e9:.1f} GFLOP")

# %% sweat={"id": "early-stop-plot", "role": "demo"}
fig_early = plt.figure(figsize=(12, 5.4), layout="constrained")
grid = fig_early.add_gridspec(2, 2, width_ratios=[2, 1])
ax_vloss = fig_early.add_subplot(grid[0, 0])
ax_tacc = fig_early.add_subplot(grid[1, 0], sharex=ax_vloss)
ax_save = fig_early.add_subplot(grid[:, 1])
ep = np.arange(1, FIXED_EPOCHS + 1)
best, stop_at = r0["decision"]["best"] + 1, r0["epochs_run"]
ax_vloss.plot(ep, fixed_val, color="tab:blue", lw=2, label="validation loss")
ax_tacc.plot(ep, 100 * fixed_test, color="tab:green", lw=1.5, label="test accuracy")
for ax in (ax_vloss, ax_tacc):
    ax.axvline(best, color="black", ls=":", lw=1.5,
               label=lab.label("early_stop", f"best checkpoint: epoch {best} (restored)"))
    ax.axvline(stop_at, color="tab:red", ls="--", lw=1.5,
               label=lab.label("early_stop", f"stopped after epoch {stop_at} (patience {PATIENCE})"))
    ax.axvspan(stop_at, FIXED_EPOCHS, color="tab:red", alpha=0.07, label="epochs early stopping did not pay for")
ax_vloss.set(yscale="log", ylabel="validation loss (log scale)", xlim=(0, FIXED_EPOCHS + 1),
             title=f"The fixed schedule's {FIXED_EPOCHS} epochs (seed {SEEDS[0]}), and where early stopping acted")
ax_vloss.legend(fontsize=8, loc="upper right")
low = np.percentile(100 * fixed_test, 5)
ax_tacc.set(xlabel="epoch", ylabel="test accuracy [%]", ylim=(max(low - 1.5, 0), min(100 * fixed_test.max() + 0.8, 100.2)))
handles, texts = ax_tacc.get_legend_handles_labels()
ax_tacc.legend(handles[:1], texts[:1], fontsize=8, loc="lower right")
rows = ["FLOPs", "time", f"energy ({runs[SEEDS[0]]['es_j'].kind})"]
for i, seed in enumerate(runs):
    pct = runs[seed]["saving_pct"]
    values = [pct["flops"], pct["time"], pct["joules"] if pct["joules"] is not None else np.nan]
    offsets = np.arange(3) + 0.15 * (i - (len(runs) - 1) / 2)
    ax_save.plot(values, offsets, "o", ms=8,
                 label=f"seed {seed}: test accuracy {100 * (runs[seed]['es_acc'] - runs[seed]['fixed_acc']):+.1f} points")
    for y_pos, v in zip(offsets, values):
        if np.isfinite(v):
            ax_save.annotate(f"{v:.0f}%", (v, y_pos), textcoords="offset points", xytext=(8, -3), fontsize=8)
ax_save.set_yticks(range(3), rows)
ax_save.invert_yaxis()
ax_save.axvline(50, color="grey", ls=":", lw=1.2, label="half the fixed schedule's cost")
ax_save.set(xlim=(0, 100), ylim=(2.6, -0.6), xlabel="% of the fixed schedule's cost saved",
            title=lab.label("early_stop", "What early stopping saved"))
ax_save.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False);

# %% [markdown] sweat={"id": "early-stop-read"}
# **Read the table and the plot.** The shaded part of the curve is what the fixed schedule paid for after
# early stopping had given up. Three things to check in your numbers:
# - **The FLOPs saving and the time saving differ.** The FLOPs count charges each validation pass at one
#   forward pass per validation digit, a tenth of a training epoch's FLOPs here. The clock sees something
#   else: a training epoch is 32 small steps, each a forward pass, a backward pass and an optimizer update
#   with fixed costs per call, while a validation pass is one batched forward pass. The line that begins
#   `[timing] seed 0: watching` compares the two shares (in the shipped run, watching took
#   {{es_watch_time}} of the time against {{es_watch_flops}} of the FLOPs); where watching takes a smaller
#   share of the time than of the FLOPs, the time saving comes out larger than the FLOPs saving. The
#   milliseconds per epoch of the two runs also differ by the machine's own noise (other programs, clock
#   changes): compare them too.
# - **Energy**: with a sensor, joules are measured for the whole CPU package. Without one, the estimate
#   is a fixed power times CPU time, so its saving can only repeat the time's: it is labelled as an
#   estimate everywhere it appears.
# - **Accuracy**: the restored checkpoint's test accuracy against the fixed schedule's. 500 test digits
#   make one digit 0.2 points, so a difference of half a point is two or three digits: in full mode the
#   three seeds show how much it moves from seed to seed.
#
# Stopping early is a bet: that `patience` epochs without improvement mean there will be none. With
# dropout the validation loss can keep creeping down slowly, so a short patience may stop too early; a
# long one spends more epochs for nothing. Try `PATIENCE = 3` and `PATIENCE = 20` and rerun.
#
# In the shipped run, patience 10 stopped {{es_seeds}} after {{es_epochs}} epochs (restoring {{es_best}}, counted
# from 1), saving {{es_flops_saved}} of the training FLOPs and {{es_time_saved}} of the time, at
# {{es_acc_change}} points of test accuracy; the fixed schedule itself ended {{es_fixed_acc}}. So the lab's
# aim (no more than half a point below the fixed schedule's test accuracy, with at most half its compute)
# {{es_aim}}: with 500 test digits, {{es_spread}}.

# %% [markdown] sweat={"id": "sec-mc"}
# ## 3. How sure is the model? Uncertainty with MC dropout
#
# A softmax gives probabilities, but a single forward pass is often sure of itself even when it is
# wrong. **MC dropout** (Gal & Ghahramani 2016) keeps dropout *on* at test time and runs the same input
# T times: each pass drops different units, so the T predictions differ where the model's knowledge is
# thin. Their **mean** is the prediction; how spread out it is, is the uncertainty. One number for it is
# the **predictive entropy** of the mean prediction p̄ (in nats, natural log):
#
# $$H[\bar p] = -\sum_c \bar p_c \ln \bar p_c, \qquad \bar p_c = \frac{1}{T}\sum_{t=1}^{T} p_{t,c} .$$
#
# It is 0 when every pass puts all its probability on one class, and ln C (ln 10 ≈ 2.30 for the digits)
# when the mean is uniform. A class of probability 0 adds 0 (the limit of p ln p).
#
# ### Exercise 2: predictive entropy
# Write `predictive_entropy(probs)`: `probs` has shape `(T, N, C)`: T passes, N inputs, C classes, each
# row summing to 1. Return an array of N entropies, in nats, of the mean over the T passes.

# %% sweat={"id": "ex-entropy", "role": "answer", "exercise": "entropy"}
def predictive_entropy(probs):
    """Entropy in nats of the mean prediction over axis 0: (T, N, C) -> (N,)."""
    ### BEGIN SOLUTION
    mean = np.asarray(probs, dtype=np.float64).mean(axis=0)
    safe = np.where(mean > 0, mean, 1.0)  # log(1) = 0: a zero probability adds nothing
    return -(mean * np.log(safe)).sum(axis=1)
    ### END SOLUTION


# %% sweat={"id": "check-entropy", "role": "check", "exercise": "entropy", "title": "Exercise 2: predictive entropy"}
from sweatlab.kit import check
check("entropy")

# %% [markdown] sweat={"id": "mc-run-md"}
# The model is the early-stopped one of section 2 (seed 0, best checkpoint restored). Below: T passes
# with dropout on over the 500 test digits, and for comparison the single pass with dropout off that
# every other section uses. Uncertainty is not free: MC dropout costs T forward passes per input, and the
# cell measures what that is in time.

# %% sweat={"id": "mc-run", "role": "demo"}
T_PASSES = config.pick(30, 100)
mc_model = runs[SEEDS[0]]["es_model"]
my_entropy = lab.mine("predictive_entropy")  # yours, or the lab's stand-in (labelled) while it is not written
one_pass = bench(softmax_probs, mc_model, X_test, budget_s=config.pick(0.2, 0.5), name="one pass, dropout off")
one_mc_pass = bench(mc_dropout_probs, mc_model, X_test, 1, budget_s=config.pick(0.2, 0.5), name="one pass, dropout on")
t0 = time.perf_counter()
mc = mc_dropout_probs(mc_model, X_test, T_PASSES, seed=0)  # (T, N, C)
mc_s = time.perf_counter() - t0
single = softmax_probs(mc_model, X_test)[None]  # (1, N, C): one pass, dropout off
labels_test = DATA.y_test
H_mc, H_one = my_entropy(mc), my_entropy(single)
pred_mc, pred_one = mc.mean(axis=0).argmax(axis=1), single[0].argmax(axis=1)


def same_unit(*seconds):
    """Times in one unit with the same decimals, 3 significant digits for the shortest: ['1.10 ms', '4.47 ms']."""
    shortest = min(seconds)
    unit, scale = ("s", 1.0) if shortest >= 1 else ("ms", 1e-3) if shortest >= 1e-3 else ("us", 1e-6)
    decimals = max(0, 2 - int(np.floor(np.log10(shortest / scale))))
    return [f"{s / scale:.{decimals}f} {unit}" for s in seconds]


pass_off_text, pass_on_text = same_unit(one_pass.median_s, one_mc_pass.median_s)
print(f"[timing] one pass over {len(labels_test)} test digits: {pass_off_text} with dropout off, "
      f"{pass_on_text} with dropout on (medians); {T_PASSES} MC passes: {format_seconds(mc_s)}, "
      f"{mc_s / one_pass.median_s:.0f}x one pass with dropout off")
print(f"FLOPs per input: {MLP_FLOPS:,} for one pass, {T_PASSES * MLP_FLOPS:,} for MC dropout")
print(f"test accuracy: one pass {100 * np.mean(pred_one == labels_test):.1f}%, mean of {T_PASSES} MC passes "
      f"{100 * np.mean(pred_mc == labels_test):.1f}%")
wrong = pred_mc != labels_test
h_right, h_wrong = H_mc[~wrong].mean(), (H_mc[wrong].mean() if wrong.any() else np.nan)
print(lab.label("predictive_entropy", "mean predictive entropy (MC)")
      + f": {h_right:.3f} nats on the {int((~wrong).sum())} right answers, "
      f"{h_wrong:.3f} on the {int(wrong.sum())} wrong ones (ln 10 = {np.log(10):.3f})")
# The figures the text below quotes.
lab.quote("mc_t", T_PASSES, "{:d}")
lab.quote("mc_pass_off", pass_off_text, "{}")
lab.quote("mc_pass_on", pass_on_text, "{}")
mc_on_ratio = one_mc_pass.median_s / one_pass.median_s
lab.quote("mc_on_ratio", mc_on_ratio, "{:.1f}x")
# Dropout on = the pass with dropout off + the masks (drawing the random numbers, applying them): above 2x, the
# masks took longer than the whole pass without them, its matrix products included.
lab.quote("mc_mask_verdict", "the masks took longer than the whole pass without them, matrix products included"
          if mc_on_ratio > 2 else "the masks added time, though less than the whole pass without them took"
          if mc_on_ratio > 1 else "the masks added no time that this timing could see", "{}")
lab.quote("mc_acc_one", 100 * np.mean(pred_one == labels_test), "{:.1f}%")
lab.quote("mc_acc_mc", 100 * np.mean(pred_mc == labels_test), "{:.1f}%")
lab.quote("mc_h_right", h_right, "{:.3f}")
lab.quote("mc_n_right", int((~wrong).sum()), "{:d}")
lab.quote("mc_h_wrong", h_wrong, "{:.3f}")
lab.quote("mc_n_wrong", int(wrong.sum()), "{:d}")
lab.quote("mc_signal", "no wrong answers to compare" if not wrong.any() else
          "the wrong answers were the less sure ones on average" if h_wrong > h_right else
          "the wrong answers were not the less sure ones on average: here entropy was no signal", "{}")

# %% sweat={"id": "mc-plot", "role": "demo"}
def accuracy_when_keeping(entropy, pred, fractions):
    """Accuracy on the given fraction of inputs with the lowest entropy (the model's surest)."""
    order = np.argsort(entropy, kind="stable")
    return np.array([np.mean(pred[order[:max(1, int(round(f * len(order))))]] == labels_test[order[
        :max(1, int(round(f * len(order))))]]) for f in fractions])


fractions = np.linspace(0.5, 1.0, 51)
fig_mc, (ax_cov, ax_hist) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
ax_cov.plot(100 * fractions, 100 * accuracy_when_keeping(H_mc, pred_mc, fractions), "o-", ms=3,
            color="tab:blue", label=lab.label("predictive_entropy", f"ranked by MC-dropout entropy (T = {T_PASSES})"))
ax_cov.plot(100 * fractions, 100 * accuracy_when_keeping(H_one, pred_one, fractions), "s-", ms=3,
            color="tab:orange", label=lab.label("predictive_entropy", "ranked by one pass's entropy"))
ax_cov.set(xlabel="% of test digits answered (the surest first)", ylabel="accuracy on those [%]",
           title="Accuracy vs coverage: abstain on the least sure")
ax_cov.legend(fontsize=9)
bins = np.linspace(0, max(H_mc.max(), 1e-3) * 1.05, 30)
ax_hist.hist(H_mc[~wrong], bins=bins, color="tab:green", alpha=0.7, label=f"right ({int((~wrong).sum())})")
ax_hist.hist(H_mc[wrong], bins=bins, color="tab:red", alpha=0.8, label=f"wrong ({int(wrong.sum())})")
ax_hist.set(yscale="log", xlabel=lab.label("predictive_entropy", "predictive entropy [nats] (MC dropout)"),
            ylabel="test digits (log scale)",
            title="Entropy of right and wrong answers")
ax_hist.legend(fontsize=9);

# %% [markdown] sweat={"id": "mc-images-md"}
# The twelve test digits the model is least sure of, with the true label and the two classes the mean
# prediction ranks highest:

# %% sweat={"id": "mc-images", "role": "demo"}
unsure = np.argsort(-H_mc, kind="stable")[:12]
mean_probs = mc.mean(axis=0)
fig_unsure, axes = plt.subplots(2, 6, figsize=(11, 4.6), layout="constrained")
for ax, i in zip(axes.flat, unsure):
    top2 = np.argsort(-mean_probs[i])[:2]
    ax.imshow(DATA.X_test[i].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    ax.set_xticks([]), ax.set_yticks([])
    verdict = "right" if pred_mc[i] == labels_test[i] else "WRONG"
    ax.set_title(f"true {labels_test[i]}: {verdict}\n{top2[0]} {100 * mean_probs[i, top2[0]]:.0f}%, "
                 f"{top2[1]} {100 * mean_probs[i, top2[1]]:.0f}%\nH = {H_mc[i]:.2f}", fontsize=9,
                 color="black" if verdict == "right" else "tab:red")
fig_unsure.suptitle(lab.label("predictive_entropy", "The 12 least sure test digits (MC dropout): true label, top two "
                                                     "guesses, entropy in nats"), fontsize=11);

# %% [markdown] sweat={"id": "mc-read"}
# **The time.** T passes cost T times the FLOPs, and the clock can say more: in the shipped run one pass over
# the 500 test digits took {{mc_pass_off}} with dropout off and {{mc_pass_on}} with it on ({{mc_on_ratio}} as long;
# the line of the MC cell that begins `[timing] one pass` gives yours). Each MC pass draws a fresh random
# number for every hidden unit of every input (500 x 512 per pass here) to decide what to drop; for a
# network this small, drawing those numbers can cost more than the matrix products, and a FLOP count never
# sees it. In the shipped run {{mc_mask_verdict}}.
#
# **Read the plots.** If entropy is a useful signal, the wrong answers (red) sit at higher entropy than the
# right ones, and the accuracy-coverage curve falls from left to right: answering only the surest digits
# is more accurate than answering all. In the shipped run (T = {{mc_t}}) the mean entropy was {{mc_h_right}} nats on
# the {{mc_n_right}} right answers and {{mc_h_wrong}} on the {{mc_n_wrong}} wrong ones: {{mc_signal}}. The two curves compare MC dropout's entropy with the one pass's;
# where the blue one lies above the orange, the T passes bought a better ranking of what to trust. Look at
# the twelve unsure digits: how many would you label with confidence at 8x8 pixels?
#
# This is the bridge to the rest of the lab: a model that knows when it is unsure can **decide how much
# work an input deserves**. Sections 4 and 5 spend more compute only on the inputs that need it; they use
# a single pass's top probability as the confidence, because MC dropout's T passes would cost more than
# the work they are meant to save.

# %% [markdown] sweat={"id": "sec-exit"}
# ## 4. Early exit: let easy inputs leave early
#
# An **early-exit network** (BranchyNet, Teerapittayanon et al. 2016) puts a small classifier, an *exit*,
# after each block of a network. At inference, an input stops at the first exit that is confident
# enough, and the blocks after it never run for that input. The network here is a small CNN for the 8x8
# digits with 4 blocks and 4 exits:
#
# | block | what it does | output per digit | exit after it |
# |---|---|---|---|
# | 1 | 3x3 convolution, 16 channels | 16 x 8 x 8 | linear 1024 → 10 |
# | 2 | 3x3 convolution, 32 channels, 2x2 max-pool | 32 x 4 x 4 | linear 512 → 10 |
# | 3 | 3x3 convolution, 64 channels | 64 x 4 x 4 | linear 1024 → 10 |
# | 4 | linear 1024 → 128 | 128 | linear 128 → 10 |
#
# All exits are trained together: the loss is the mean of the 4 exits' cross-entropies. The network
# **without** early exit, the baseline every saving is measured against, runs the 4 blocks and only the
# last exit.

# %% sweat={"id": "exit-train", "role": "demo"}
CNN_EPOCHS = config.pick(12, 30)
torch.manual_seed(0)
exit_net = frugal.exit_cnn()
opt = torch.optim.Adam(exit_net.parameters(), lr=LR)
order = torch.Generator().manual_seed(0)
with lab.meter() as exit_train_energy:
    t0 = time.perf_counter()
    for _ in range(CNN_EPOCHS):
        train_epoch(exit_net, opt, X_train, y_train, BATCH, order)
    exit_train_s = time.perf_counter() - t0
exit_net.eval()
P_val, P_test = softmax_probs(exit_net, X_val), softmax_probs(exit_net, X_test)  # (exits, N, classes)
K = P_test.shape[0]
exit_acc_val = (P_val.argmax(axis=2) == DATA.y_val).mean(axis=1)
exit_acc_test = (P_test.argmax(axis=2) == labels_test).mean(axis=1)
PLAIN_ACC_VAL, PLAIN_ACC_TEST = exit_acc_val[-1], exit_acc_test[-1]  # the plain network's answer is the last exit's
print(f"[timing] {CNN_EPOCHS} epochs in {exit_train_s:.1f} s; energy {joules_text(exit_train_energy.reading)}")
for k in range(K):
    print(f"exit {k + 1}: accuracy {100 * exit_acc_val[k]:.1f}% (validation), {100 * exit_acc_test[k]:.1f}% (test)")
lab.quote("exit1_acc", 100 * exit_acc_test[0], "{:.1f}%")
lab.quote("plain_acc", 100 * PLAIN_ACC_TEST, "{:.1f}%")

# %% [markdown] sweat={"id": "ex-exit-costs-task"}
# ### Exercise 3: what does leaving at exit k cost?
# An input that leaves at exit k has run blocks 1..k, and also **every exit up to k**: each exit before k
# ran, was not confident enough, and sent the input on. Write `exit_costs(block_flops, head_flops)`: given
# the FLOPs per sample of each block and of each exit (two lists of K numbers, in order), return the K
# FLOPs per sample of an input that leaves at exit 1, 2, ..., K (as a list or an array).

# %% sweat={"id": "ex-exit-costs", "role": "answer", "exercise": "exit_costs"}
def exit_costs(block_flops, head_flops):
    """FLOPs per sample of an input leaving at each exit, in order."""
    ### BEGIN SOLUTION
    return np.cumsum(block_flops) + np.cumsum(head_flops)
    ### END SOLUTION


# %% sweat={"id": "check-exit-costs", "role": "check", "exercise": "exit_costs", "title": "Exercise 3: what does leaving at exit k cost?"}
from sweatlab.kit import check
check("exit_costs")

# %% sweat={"id": "exit-costs-table", "role": "demo"} tags=["nbval-check-output"]
BLOCK_FLOPS, HEAD_FLOPS = exit_net.block_flops(), exit_net.head_flops()
COSTS = np.asarray(lab.mine("exit_costs")(BLOCK_FLOPS, HEAD_FLOPS), dtype=np.int64)  # yours, or the stand-in
PLAIN_FLOPS = sum(BLOCK_FLOPS) + HEAD_FLOPS[-1]
print(f"{'exit':>4}{'block FLOPs':>13}{'exit FLOPs':>12}{' ' + lab.label('exit_costs', 'leaving here costs'):>20}"
      f"{'of the plain network':>22}")
for k in range(K):
    print(f"{k + 1:>4}{BLOCK_FLOPS[k]:>13,}{HEAD_FLOPS[k]:>12,}{COSTS[k]:>20,}{100 * COSTS[k] / PLAIN_FLOPS:>21.1f}%")
print(f"the plain network (4 blocks, last exit only): {PLAIN_FLOPS:,} FLOPs per digit")
for k in range(K):  # the figures the decks quote
    lab.quote(f"block_flops_{k + 1}", BLOCK_FLOPS[k] / 1e3, "{:.0f}k")
    lab.quote(f"exit_cost_{k + 1}", int(COSTS[k]), "{:,}")
    lab.quote(f"exit_cost_share_{k + 1}", 100 * COSTS[k] / PLAIN_FLOPS, "{:.1f}%")
lab.quote("plain_flops", PLAIN_FLOPS, "{:,}")

# %% [markdown] sweat={"id": "ex-exit-rule-task"}
# Blocks 2 and 3 hold most of the work, so every input that leaves at exit 1 saves most of it. Which
# inputs may leave is the **exit rule**: here, an input leaves at the first exit whose top class
# probability is above a threshold.
#
# ### Exercise 4: the exit rule
# Write `exit_rule(exit_probs, threshold)`. `exit_probs` has shape `(K, N, C)`: the class probabilities
# of each of the K exits for N inputs. Return a dict `{"exit": ..., "pred": ...}` of two integer arrays of
# length N:
# - `"exit"`: the index (0 to K-1) of the first exit whose **top probability is strictly greater than**
#   `threshold`; an input that is confident at no exit leaves at the last one, K-1;
# - `"pred"`: the class the input is given at the exit where it leaves (the argmax there).
#
# An input that has left is gone: what a later exit would have said about it does not count. (The
# offline version here sees every exit's probabilities; the network itself, `exit_net.early_exit`, runs
# each block only on the inputs still in, and the cells below check that both agree.)

# %% sweat={"id": "ex-exit-rule", "role": "answer", "exercise": "exit_rule"}
def exit_rule(exit_probs, threshold):
    """{"exit": first exit whose top probability > threshold (else the last), "pred": the class given there}."""
    ### BEGIN SOLUTION
    probs = np.asarray(exit_probs)
    confident = probs.max(axis=2) > threshold  # (K, N)
    confident[-1] = True  # the last exit takes everyone still in
    exit_ = confident.argmax(axis=0)  # the first True
    pred = probs.argmax(axis=2)[exit_, np.arange(probs.shape[1])]
    return {"exit": exit_, "pred": pred}
    ### END SOLUTION


# %% sweat={"id": "check-exit-rule", "role": "check", "exercise": "exit_rule", "title": "Exercise 4: the exit rule"}
from sweatlab.kit import check
check("exit_rule")

# %% [markdown] sweat={"id": "exit-sweep-md"}
# ### The threshold decides the trade
# A low threshold lets many inputs out at exit 1 (cheap, less accurate); threshold 1.0 lets nobody out
# early (every input pays for every block *and* every exit, a little more than the plain network). The
# sweep below runs your rule at each threshold on the validation and the test digits. The threshold is
# **chosen on the validation digits**, never on the test digits: the cheapest one whose validation
# accuracy is no more than half a point below the plain network's. The test digits then say what it
# really gives.

# %% sweat={"id": "exit-sweep", "role": "demo"}
THRESHOLDS = [0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999, 1.0]
my_exit_rule = lab.mine("exit_rule")  # yours, or the lab's stand-in (labelled) while it is not written


def sweep_point(P, labels, threshold):
    """Accuracy, mean FLOPs per input and the exit counts of the rule at one threshold."""
    r = my_exit_rule(P, threshold)
    exits = np.asarray(r["exit"])
    return np.mean(np.asarray(r["pred"]) == labels), COSTS[exits].mean(), np.bincount(exits, minlength=K)


sweep = {split: [sweep_point(P, y, t) for t in THRESHOLDS]
         for split, P, y in (("val", P_val, DATA.y_val), ("test", P_test, labels_test))}
allowed = [i for i, (acc, _, _) in enumerate(sweep["val"]) if acc >= PLAIN_ACC_VAL - 0.005]
CHOSEN = THRESHOLDS[min(allowed, key=lambda i: sweep["val"][i][1])]
print(f"{'threshold':>9}{'val acc.':>10}{'test acc.':>10}{'FLOPs/digit':>13}{'saved':>7}   test digits leaving at exits 1..{K}")
for t, (va, _, _), (ta, fps, counts) in zip(THRESHOLDS, sweep["val"], sweep["test"]):
    mark = "  <- chosen on validation" if t == CHOSEN else ""
    print(f"{t:>9g}{100 * va:>9.1f}%{100 * ta:>9.1f}%{fps:>13,.0f}{100 * (1 - fps / PLAIN_FLOPS):>6.0f}%   "
          f"{' '.join(f'{c:>4}' for c in counts)}{mark}")
ee_acc, ee_flops, ee_counts = sweep["test"][THRESHOLDS.index(CHOSEN)]
EE_SAVED_PCT = 100 * (1 - ee_flops / PLAIN_FLOPS)
EE_ACC_CHANGE = 100 * (ee_acc - PLAIN_ACC_TEST)
EE_REACHED = EE_SAVED_PCT >= 40 and EE_ACC_CHANGE >= -1
print(f"\nplain network: {PLAIN_FLOPS:,} FLOPs per digit, test accuracy {100 * PLAIN_ACC_TEST:.1f}%")
print(lab.label("exit_rule", f"early exit at threshold {CHOSEN:g}")
      + f": {ee_flops:,.0f} FLOPs per digit ({EE_SAVED_PCT:.0f}% saved), "
      f"test accuracy {100 * ee_acc:.1f}% ({EE_ACC_CHANGE:+.1f} points)")
pred_net, exit_net_taken = exit_net.early_exit(X_test, CHOSEN)
rule = my_exit_rule(P_test, CHOSEN)
agree = np.mean((pred_net.numpy() == np.asarray(rule["pred"])) & (exit_net_taken.numpy() == np.asarray(rule["exit"])))
print(f"the lab's aim (at least 40% of the FLOPs saved, at most 1 point of test accuracy lost): "
      f"{'REACHED' if EE_REACHED else 'NOT reached'}")
print("exit_net.early_exit (each block on the inputs still in) agrees with "
      + lab.label("exit_rule", "exit_rule") + f" on {100 * agree:.1f}% of the test digits"
      + ("" if agree == 1 else ": a probability within rounding of the threshold can flip an exit; many "
         "disagreements mean the rule differs from the exercise's"))
# The figures the text below quotes.
lab.quote("ee_chosen", CHOSEN, "{:g}")
lab.quote("ee_flops", ee_flops, "{:,.0f}")
lab.quote("ee_saved", EE_SAVED_PCT, "{:.0f}%")
lab.quote("ee_acc", 100 * ee_acc, "{:.1f}%")
lab.quote("ee_acc_change", EE_ACC_CHANGE, "{:+.1f}")
lab.quote("ee_aim", "reached" if EE_REACHED else "not reached", "{}")

# %% sweat={"id": "exit-plot", "role": "demo"}
def plot_exit_tradeoff(threshold=None):
    """Test accuracy against FLOPs per digit for every threshold, each exit alone, the plain network."""
    fig, ax = plt.subplots(figsize=(8.5, 4.8), layout="constrained")
    accs = [100 * a for a, _, _ in sweep["test"]]
    fps = [f for _, f, _ in sweep["test"]]
    ax.plot(fps, accs, "o-", color="tab:blue",
            label=lab.label("exit_rule", "early exit, one point per threshold (test digits)"))
    label_points(ax, fps, accs, [f"{t:g}" for t in THRESHOLDS], "tab:blue")
    alone = [sum(BLOCK_FLOPS[:k + 1]) + HEAD_FLOPS[k] for k in range(K - 1)]  # the network cut after block k
    ax.plot(alone, 100 * exit_acc_test[:-1], "s", color="tab:grey", ms=7,
            label="exit k alone, every digit (the network cut there)")
    for k in range(K - 1):
        ax.annotate(f"exit {k + 1} alone", (alone[k], 100 * exit_acc_test[k]), textcoords="offset points",
                    xytext=(-7, -3), ha="right", fontsize=8, color="tab:grey")
    ax.plot([PLAIN_FLOPS], [100 * PLAIN_ACC_TEST], "*", color="black", ms=14,
            label=f"plain network (no early exit: exit {K} alone)")
    ax.axhline(100 * PLAIN_ACC_TEST - 1, color="tab:red", ls=":", lw=1, label="1 point below the plain network")
    i = THRESHOLDS.index(CHOSEN)
    ax.plot([fps[i]], [accs[i]], "o", ms=13, mfc="none", mec="tab:green", mew=2,
            label=lab.label("exit_rule", f"chosen on validation: {CHOSEN:g}"))
    if threshold is not None:
        acc_t, fps_t, _ = sweep_point(P_test, labels_test, threshold)
        ax.plot([fps_t], [100 * acc_t], "r*", ms=15, label=f"threshold {threshold:g} (slider)")
    ax.set(xscale="log", xlabel=lab.label("exit_costs", "FLOPs per test digit (log scale)"), ylabel="test accuracy [%]",
           title="Early exit: FLOPs per digit vs accuracy (labels: threshold)")
    ax.set_xlim(min(alone) / 3, PLAIN_FLOPS * 1.8)
    ax.xaxis.set_major_formatter(FLOPS_TICKS)
    low = min(min(accs), 100 * exit_acc_test.min(), 100 * PLAIN_ACC_TEST - 1)
    ax.set_ylim(low - 0.6, max(accs + [100 * PLAIN_ACC_TEST]) + 0.6)
    ax.legend(fontsize=8, loc="lower right")
    return fig


fig_exit = plot_exit_tradeoff()

# %% [markdown] sweat={"id": "exit-sweep-read"}
# In the shipped run the threshold chosen on the validation digits was {{ee_chosen}}: {{ee_flops}} FLOPs per test
# digit instead of the plain network's {{plain_flops}} ({{ee_saved}} saved), at a test accuracy of {{ee_acc}}
# against the plain network's {{plain_acc}} ({{ee_acc_change}} points). So the lab's aim (at least 40% of
# the FLOPs saved, at most 1 point of test accuracy lost) was {{ee_aim}}. On 8x8 digits exit 1 alone was
# {{exit1_acc}} accurate on the test digits: the more accurate the first exit, the more digits can leave
# there; harder data makes the trade steeper.

# %% [markdown] sweat={"id": "exit-explore-md"}
# Explore with the slider: it moves the threshold, puts the point on the plot (red star) and says how many
# test digits leave at each exit and how accurate each group is. The same function works without widgets:
# `explore_threshold(0.9)`; where ipywidgets is not installed, the cell calls it with the chosen threshold.

# %% sweat={"id": "exit-explore", "role": "demo"}
def explore_threshold(threshold=0.9):
    """Early exit at this threshold on the test digits: accuracy, FLOPs, where the digits leave."""
    r = my_exit_rule(P_test, threshold)
    exits, pred = np.asarray(r["exit"]), np.asarray(r["pred"])
    fps = COSTS[exits].mean()
    print(lab.label("exit_rule", f"threshold {threshold:g}") + f": test accuracy {100 * np.mean(pred == labels_test):.1f}% "
          f"(plain network {100 * PLAIN_ACC_TEST:.1f}%), {fps:,.0f} FLOPs per digit "
          f"({100 * (1 - fps / PLAIN_FLOPS):.0f}% saved)")
    for k in range(K):
        here = exits == k
        acc_here = f"{100 * np.mean(pred[here] == labels_test[here]):.1f}% right" if here.any() else "-"
        print(f"  exit {k + 1}: {int(here.sum()):>3} digits, {acc_here}")
    plot_exit_tradeoff(threshold)
    plt.show()


try:
    import ipywidgets as widgets
except ImportError:
    widgets = None
SLIDER_STEPS = sorted(set(THRESHOLDS) | {round(float(x), 2) for x in np.arange(0.3, 0.99, 0.05)})
if widgets is not None:
    widgets.interact(explore_threshold, threshold=widgets.SelectionSlider(
        options=SLIDER_STEPS, value=CHOSEN, description="threshold", continuous_update=False))
else:
    print("ipywidgets is not installed: call explore_threshold(0.9) with the threshold you want")
    explore_threshold(CHOSEN)

# %% [markdown] sweat={"id": "exit-time-md"}
# ### FLOPs saved are not seconds saved
# The FLOPs above are theory. The cells below *measure* the network on this machine, in two ways:
# - **batched**: all 500 test digits in one call. `exit_net.early_exit` runs block 1 and exit 1 on the
#   batch, gathers the digits that stay (a copy of their activations), runs block 2 on those only, and so
#   on;
# - **one digit at a time** (batch 1, the latency a user waits for): `exit_net.early_exit_one` stops at
#   the first confident exit, reading the confidence with a Python `if`.
#
# Each is compared with the plain network done the same way, at several thresholds, with `compare` (lab
# 00, section 3): the two run in interleaved pairs, so a slow spell of the machine hits both sides of a
# pair, and the time saved comes from the median of the pairs' time ratios (the plot's bars: their
# interquartile range). A point on the diagonal of the plot would mean the clock saves exactly what the
# FLOPs promise.

# %% sweat={"id": "exit-time", "role": "demo"}
TIMED = sorted({0.0, 0.8, 0.95, 0.99, 0.999, 1.0, CHOSEN})
ROWS = [X_test[i:i + 1] for i in range(config.pick(200, 500))]  # batch-1 inputs
exits_rows = {t: np.asarray(my_exit_rule(P_test[:, :len(ROWS)], t)["exit"]) for t in TIMED}
BUDGET_S = config.pick(0.25, 0.6)
MODES = {"batched": len(y_test), "one at a time": len(ROWS)}  # inputs per timed call


def plain_batch():
    with torch.inference_mode():
        return exit_net.plain(X_test)


def plain_rows():
    with torch.inference_mode():
        for x in ROWS:
            exit_net.plain(x)


def early_batch(t):
    return lambda: exit_net.early_exit(X_test, t)


def early_rows(t):
    return lambda: [exit_net.early_exit_one(x, t) for x in ROWS]


# Each threshold against the plain network in interleaved pairs (lab 00, section 3): a slow spell of the
# machine hits both sides of a pair. ratio = time(plain) / time(early exit).
timing, flops_saved = {}, {}
for t in TIMED:
    timing[t] = {"batched": compare(plain_batch, early_batch(t), budget_s=BUDGET_S, min_pairs=7),
                 "one at a time": compare(plain_rows, early_rows(t), budget_s=2 * BUDGET_S, min_pairs=5)}
    flops_saved[t] = {"batched": 100 * (1 - sweep_point(P_test, labels_test, t)[1] / PLAIN_FLOPS),
                      "one at a time": 100 * (1 - COSTS[exits_rows[t]].mean() / PLAIN_FLOPS)}


def time_saved(result):
    """Percent of the plain network's time saved: 1 - time(early) / time(plain), from the median pair ratio."""
    return 100 * (1 - 1 / result.ratio)


print(f"{'':>9}{'':>12}{'FLOPs saved':>13}{'batched: us/digit':>19}{'time saved':>12}{'one at a time: us/digit':>25}"
      f"{'time saved':>12}")
for t in TIMED:
    cells = ""
    for mode, width in (("batched", 19), ("one at a time", 25)):
        r = timing[t][mode]
        cells += f"{1e6 * r.median_b_s / MODES[mode]:>{width}.2f}{time_saved(r):>11.0f}%"
    print(f"[timing] {f'thr {t:g}':>12}{flops_saved[t]['batched']:>12.0f}%{cells}")
plain_us = {mode: 1e6 * timing[CHOSEN][mode].median_a_s / MODES[mode] for mode in MODES}
print(f"[timing] {'plain':>12}{'-':>13}{plain_us['batched']:>19.2f}{'-':>12}{plain_us['one at a time']:>25.1f}{'-':>12}")
print(f"(time saved: the median of interleaved pairs; one at a time: the first {len(ROWS)} test digits, whose FLOPs "
      f"saving at the chosen threshold is {flops_saved[CHOSEN]['one at a time']:.0f}%)")
share = {mode: 100 - time_saved(timing[0.0][mode]) for mode in MODES}
print(f"threshold 0 sends every digit out at exit 1: {100 * COSTS[0] / PLAIN_FLOPS:.1f}% of the plain network's FLOPs, "
      f"{share['batched']:.0f}% of its time batched, {share['one at a time']:.0f}% one digit at a time")
# The figures the text below quotes.
exit1_share = 100 * COSTS[0] / PLAIN_FLOPS
lab.quote("t0_time_batched", share["batched"], "{:.0f}%")
lab.quote("t0_time_one", share["one at a time"], "{:.0f}%")
gap = {mode: abs(share[mode] - exit1_share) for mode in MODES}
lab.quote("t0_verdict", "closer to the FLOPs' share batched than one digit at a time"
          if gap["batched"] < gap["one at a time"] else "no closer to the FLOPs' share batched than one digit at a time",
          "{}")
lab.quote("ee_time_saved_batched", time_saved(timing[CHOSEN]["batched"]), "{:.0f}%")
lab.quote("ee_time_saved_one", time_saved(timing[CHOSEN]["one at a time"]), "{:.0f}%")
lab.quote("t1_time_saved_batched", time_saved(timing[1.0]["batched"]), "{:.0f}%")
lab.quote("t1_time_saved_one", time_saved(timing[1.0]["one at a time"]), "{:.0f}%")


def against_plain(saved_pct, noun="time"):
    """A measured saving in words that stay right when it is a loss: '87% less time', '10% more time'."""
    pct = int(round(float(saved_pct)))
    return f"{pct}% less {noun}" if pct > 0 else f"{-pct}% more {noun}" if pct < 0 else f"about the same {noun}"


for t, tag in ((CHOSEN, "ee"), (1.0, "t1")):
    lab.quote(f"{tag}_time_batched_words", against_plain(time_saved(timing[t]["batched"])), "{}")
    lab.quote(f"{tag}_time_one_words", against_plain(time_saved(timing[t]["one at a time"])), "{}")

# %% sweat={"id": "exit-energy", "role": "demo"}
ENERGY_S = config.pick(0.5, 1.5)
exit_energy = {}
for name, fn, n_in in (("plain, batched", plain_batch, len(y_test)),
                       (f"early exit {CHOSEN:g}, batched", lambda: exit_net.early_exit(X_test, CHOSEN), len(y_test)),
                       ("plain, one at a time", plain_rows, len(ROWS)),
                       (f"early exit {CHOSEN:g}, one at a time",
                        lambda: [exit_net.early_exit_one(x, CHOSEN) for x in ROWS], len(ROWS))):
    with lab.meter() as m:
        calls = run_for(ENERGY_S, fn)
    exit_energy[name] = (m.reading, calls * n_in)
    print(f"{name:34s} {joules_text(m.reading, calls * n_in / 1000)} per 1000 digits")
for mode, tag in (("batched", "batched"), ("one at a time", "one")):
    (plain_r, plain_n), (ee_r, ee_n) = exit_energy[f"plain, {mode}"], exit_energy[f"early exit {CHOSEN:g}, {mode}"]
    saved = None
    if plain_r.joules is not None and ee_r.joules is not None:
        saved = 100 * (1 - (ee_r.joules / ee_n) / (plain_r.joules / plain_n))
        print(f"{mode}: early exit saved {saved:.0f}% of the joules per digit ({ee_r.kind})")
    lab.quote(f"ee_joules_saved_{tag}", "unknown" if saved is None else f"{saved:.0f}%", "{}")
    lab.quote(f"ee_joules_{tag}_words", "unknown energy" if saved is None else against_plain(saved, "energy"), "{}")
lab.quote("energy_kind", ee_r.kind, "{}")

# %% sweat={"id": "exit-time-plot", "role": "demo"}
fig_exit_time, ax = plt.subplots(figsize=(8, 5.4), layout="constrained")
all_values = []
for mode, colour, marker in (("batched", "tab:blue", "o"), ("one at a time", "tab:orange", "s")):
    xs, ys, lo, hi = [], [], [], []
    for t in TIMED:
        r = timing[t][mode]
        q1, q3 = r.ratio_q1_q3
        saved = time_saved(r)
        xs.append(flops_saved[t][mode]), ys.append(saved)
        lo.append(saved - 100 * (1 - 1 / q1)), hi.append(100 * (1 - 1 / q3) - saved)
    ax.errorbar(xs, ys, yerr=[lo, hi], fmt=marker, color=colour, ms=7, capsize=3,
                label=f"{mode} ({'500 digits per call' if mode == 'batched' else 'batch 1'}): median pair, bars = IQR")
    for t, x, y in zip(TIMED, xs, ys):
        ax.annotate(f"{t:g}", (x, y), textcoords="offset points", xytext=(6, -3), fontsize=8, color=colour)
    all_values += xs + [y - d for y, d in zip(ys, lo)]
lim_low = min(-10, min(all_values)) - 5
ax.plot([lim_low, 100], [lim_low, 100], color="grey", ls="--", lw=1, label="time saved = FLOPs saved")
ax.axhline(0, color="black", lw=0.8)
ax.set(xlim=(lim_low, 105), ylim=(lim_low, 105),
       xlabel=lab.label("exit_costs" if lab.stood_in("exit_costs") else "exit_rule",
                        "FLOPs saved vs the plain network [%] (theory)"),
       ylabel="wall time saved vs the plain network [%] (measured)",
       title="Early exit: measured time saved against FLOPs saved (labels: threshold)")
ax.legend(fontsize=8, loc="upper left");

# %% [markdown] sweat={"id": "exit-time-read"}
# **Read the plot.** Points below the dashed diagonal saved less time than FLOPs; points below zero took
# *longer* than the plain network. The line of the timing cell that begins `threshold 0 sends every digit
# out at exit 1` is the key measurement: with threshold 0 every digit leaves at exit 1, which costs
# {{exit_cost_share_1}} of the plain network's FLOPs; compare that with the share of the time it took. Why
# the clock and the FLOP count can disagree:
# - **Fixed costs per call.** Every layer call costs PyTorch microseconds of Python and dispatch before
#   any arithmetic, whatever the batch size. One digit at a time, those costs can be most of the time: a
#   digit that leaves at exit 1 skips the big blocks, but still pays for a convolution, a linear layer, a
#   softmax, a max and a Python `if` on the result. Batched, the same calls are shared by 500 digits,
#   so more of the time per digit is arithmetic and memory, and the saving can come closer to the FLOPs'.
# - **Gathering the survivors** (batched): after each exit the remaining digits' activations are copied
#   into a new, smaller tensor: memory traffic and calls, no FLOPs.
# - **Small batches can run slower per FLOP**: the later blocks see only the few digits still in; a
#   convolution on 20 digits need not run at the speed it reaches on 500.
# - **High thresholds** let few digits out early, and the ones that stay pay for every exit on the way:
#   at threshold 1.0 nothing is saved and every exit is paid for, the cost of the machinery alone.
#
# In the shipped run, threshold 0 took {{t0_time_batched}} of the plain network's time batched and {{t0_time_one}} one
# digit at a time, for {{exit_cost_share_1}} of its FLOPs: {{t0_verdict}}. Against the plain network, the
# chosen threshold ({{ee_chosen}}, {{ee_saved}} of the FLOPs saved) took {{ee_time_batched_words}} batched and
# {{ee_time_one_words}} one digit at a time; threshold 1.0 took {{t1_time_batched_words}} batched and
# {{t1_time_one_words}} one digit at a time.
#
# How large each effect is depends on your CPU, the batch size and the size of the network: the bigger
# the blocks an exit skips, the smaller the fixed costs look beside them. On a GPU, where each kernel
# launch costs microseconds and small batches leave most of the chip idle, batched early exit tends to
# save even less time than its FLOPs say.

# %% [markdown] sweat={"id": "sec-cascade"}
# ## 5. A cascade: a small model first, a big one when it is unsure
#
# Early exit needs a network built with exits. A **cascade** works with any two models: a small, cheap
# one answers every input it is confident about, and only the rest go to a big, accurate one (Viola &
# Jones 2001 made face detection fast this way; FrugalGPT, Chen et al. 2023, does it with language
# models). Here the small model is an MLP 64 → 32 → 10, the big one the CNN of section 4 *without* exits
# (4 blocks and the last classifier), trained on its own.

# %% sweat={"id": "cascade-train", "role": "demo"}
SMALL_EPOCHS = 40
torch.manual_seed(0)
small = frugal.mlp((64, 32, 10))
opt = torch.optim.Adam(small.parameters(), lr=LR)
order = torch.Generator().manual_seed(0)
t0 = time.perf_counter()
for _ in range(SMALL_EPOCHS):
    train_epoch(small, opt, X_train, y_train, BATCH, order)
small_train_s = time.perf_counter() - t0
torch.manual_seed(0)
big = frugal.plain_cnn()
opt = torch.optim.Adam(big.parameters(), lr=LR)
order = torch.Generator().manual_seed(0)
t0 = time.perf_counter()
for _ in range(CNN_EPOCHS):
    train_epoch(big, opt, X_train, y_train, BATCH, order)
big_train_s = time.perf_counter() - t0
small.eval(), big.eval()
SMALL_FLOPS, BIG_FLOPS = forward_flops(small, X_test[:1]), forward_flops(big, X_test[:1])
S_val, B_val = softmax_probs(small, X_val), softmax_probs(big, X_val)
S_test, B_test = softmax_probs(small, X_test), softmax_probs(big, X_test)
SMALL_ACC_TEST, BIG_ACC_TEST = np.mean(S_test.argmax(1) == labels_test), np.mean(B_test.argmax(1) == labels_test)
BIG_ACC_VAL = np.mean(B_val.argmax(1) == DATA.y_val)
print(f"[timing] small: {SMALL_EPOCHS} epochs in {small_train_s:.1f} s; big: {CNN_EPOCHS} epochs in {big_train_s:.1f} s")
print(f"small model: {SMALL_FLOPS:,} FLOPs per digit, test accuracy {100 * SMALL_ACC_TEST:.1f}%")
print(f"big model:   {BIG_FLOPS:,} FLOPs per digit ({BIG_FLOPS / SMALL_FLOPS:.0f} times the small one), test "
      f"accuracy {100 * BIG_ACC_TEST:.1f}%")
lab.quote("small_flops", SMALL_FLOPS, "{:,}")
lab.quote("big_flops", BIG_FLOPS, "{:,}")
lab.quote("small_acc", 100 * SMALL_ACC_TEST, "{:.1f}%")
lab.quote("big_acc", 100 * BIG_ACC_TEST, "{:.1f}%")

# %% [markdown] sweat={"id": "ex-cascade-task"}
# ### Exercise 5: the cascade's policy
# Write `cascade(small_probs, big_probs, threshold)`. Both arrays have shape `(N, C)`: the small and the
# big model's class probabilities for N inputs. Return a dict `{"pred": ..., "to_big": ...}`:
# - `"to_big"`: a boolean array, True for the inputs sent to the big model: those whose **small top
#   probability is not strictly greater than** `threshold`;
# - `"pred"`: the small model's class where it answers, the big model's class for the inputs sent to it.
#
# Offline, `big_probs` is given for every input so your function can be checked; the deployed cascade
# (`frugal.run_cascade`, measured below) runs the big model only on the inputs sent to it. So never use
# the big model's output for an input that stays with the small one: the check fills those rows with NaN.

# %% sweat={"id": "ex-cascade", "role": "answer", "exercise": "cascade"}
def cascade(small_probs, big_probs, threshold):
    """{"pred": the cascade's class per input, "to_big": True where the small model is not confident}."""
    ### BEGIN SOLUTION
    small_probs, big_probs = np.asarray(small_probs), np.asarray(big_probs)
    to_big = ~(small_probs.max(axis=1) > threshold)
    pred = small_probs.argmax(axis=1)
    pred[to_big] = big_probs[to_big].argmax(axis=1)
    return {"pred": pred, "to_big": to_big}
    ### END SOLUTION


# %% sweat={"id": "check-cascade", "role": "check", "exercise": "cascade", "title": "Exercise 5: the cascade's policy"}
from sweatlab.kit import check
check("cascade")

# %% [markdown] sweat={"id": "cascade-sweep-md"}
# Every input pays for the small model; those sent on pay for the big one too. So the FLOPs per input are
# `small + (fraction sent) x big`. The threshold is chosen on the validation digits as in section 4: the
# cheapest whose validation accuracy is no more than half a point below the big model's.

# %% sweat={"id": "cascade-sweep", "role": "demo"}
CASCADE_THRESHOLDS = [0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999]
my_cascade = lab.mine("cascade")  # yours, or the lab's stand-in (labelled) while it is not written


def cascade_point(S, B, labels, threshold):
    r = my_cascade(S, B, threshold)
    sent = np.mean(np.asarray(r["to_big"], dtype=bool))
    return np.mean(np.asarray(r["pred"]) == labels), SMALL_FLOPS + sent * BIG_FLOPS, sent


csweep = {split: [cascade_point(S, B, y, t) for t in CASCADE_THRESHOLDS]
          for split, S, B, y in (("val", S_val, B_val, DATA.y_val), ("test", S_test, B_test, labels_test))}
ok = [i for i, (acc, _, _) in enumerate(csweep["val"]) if acc >= BIG_ACC_VAL - 0.005]
C_CHOSEN = CASCADE_THRESHOLDS[min(ok, key=lambda i: csweep["val"][i][1])] if ok else CASCADE_THRESHOLDS[-1]
print(lab.label("cascade", "the cascade at each threshold"))
print(f"{'threshold':>9}{'val acc.':>10}{'test acc.':>10}{'sent to big':>13}{'FLOPs/digit':>13}")
for t, (va, _, _), (ta, fps, sent) in zip(CASCADE_THRESHOLDS, csweep["val"], csweep["test"]):
    print(f"{t:>9g}{100 * va:>9.1f}%{100 * ta:>9.1f}%{100 * sent:>12.0f}%{fps:>13,.0f}"
          + ("  <- chosen on validation" if t == C_CHOSEN else ""))
if not ok:
    print("no threshold came within half a point of the big model on validation: the highest is used")

# %% [markdown] sweat={"id": "cascade-measure-md"}
# Now the three systems measured as deployed, on the 500 test digits: the small model alone, the big model
# alone, and the cascade at the chosen threshold (`frugal.run_cascade`: the big model runs only on the
# digits sent to it). Latency is measured two ways: **batched** (all digits in one call, time per digit)
# and **one digit at a time** (each digit's own latency, the median of 3 calls, on the first 500 digits,
# 200 in quick mode: a cascade is fast for the digits the small model keeps and slow for those it sends
# on, so the table gives the mean and the 95th percentile). Energy is read around 1.5 s of batched work
# for each (0.5 s in quick mode).

# %% sweat={"id": "cascade-measure", "role": "demo"}
def small_batch():
    with torch.inference_mode():
        return small(X_test).argmax(1)


def big_batch():
    with torch.inference_mode():
        return big(X_test).argmax(1)


def one_small(x):
    with torch.inference_mode():
        return int(small(x).argmax(1))


def one_big(x):
    with torch.inference_mode():
        return int(big(x).argmax(1))


systems = {
    "small": (small_batch, one_small),
    "big": (big_batch, one_big),
    f"cascade {C_CHOSEN:g}": (lambda: frugal.run_cascade(small, big, X_test, C_CHOSEN),
                              lambda x: frugal.cascade_one(small, big, x, C_CHOSEN)),
}
deployed_pred, deployed_sent = frugal.run_cascade(small, big, X_test, C_CHOSEN)
c_acc, c_flops, c_sent = csweep["test"][CASCADE_THRESHOLDS.index(C_CHOSEN)]
policy = my_cascade(S_test, B_test, C_CHOSEN)
agree = np.mean((deployed_pred.numpy() == np.asarray(policy["pred"]))
                & (deployed_sent.numpy() == np.asarray(policy["to_big"], dtype=bool)))
print("frugal.run_cascade (the big model only on what it is sent) agrees with "
      + lab.label("cascade", "cascade") + f" on {100 * agree:.1f}% of the test digits"
      + ("" if agree == 1 else ": the accuracy and FLOPs below are the policy's, the times the deployed cascade's"))
accuracy = {"small": SMALL_ACC_TEST, "big": BIG_ACC_TEST, f"cascade {C_CHOSEN:g}": c_acc}
work = {"small": SMALL_FLOPS, "big": BIG_FLOPS, f"cascade {C_CHOSEN:g}": c_flops}
measured = {}
for name, (batched, single_fn) in systems.items():
    b = bench(batched, budget_s=BUDGET_S, min_runs=5)
    each = frugal.per_input_seconds(single_fn, ROWS, repeats=3)
    with lab.meter() as m:
        calls = run_for(ENERGY_S, batched)
    measured[name] = dict(batched_s=b.median_s / len(y_test), batched_q=np.percentile(b.samples_s, [25, 75]) / len(y_test),
                          each_s=each, one_mean_s=each.mean(), one_p95_s=np.percentile(each, 95), reading=m.reading,
                          per_1000=calls * len(y_test) / 1000)
print(f"{'':>9}{'system':<24}{'test acc.':>10}{'FLOPs/digit':>13}{'batched us/digit':>18}{'one at a time: mean':>21}"
      f"{'p95':>9}{'energy per 1000 digits':>26}")
for name in systems:
    r = measured[name]
    shown = lab.label("cascade", name) if name.startswith("cascade") else name
    print(f"[timing] {shown:<24}{100 * accuracy[name]:>9.1f}%{work[name]:>13,.0f}{1e6 * r['batched_s']:>18.2f}"
          f"{1e6 * r['one_mean_s']:>19.0f}us{1e6 * r['one_p95_s']:>7.0f}us"
          f"{joules_text(r['reading'], r['per_1000']):>26}")
print(f"the cascade sent {100 * c_sent:.0f}% of the test digits ({int(deployed_sent.sum())}) to the big model")
cname = f"cascade {C_CHOSEN:g}"
c_shares = {"flops": 100 * c_flops / BIG_FLOPS,
            "batched": 100 * measured[cname]["batched_s"] / measured["big"]["batched_s"],
            "mean": 100 * measured[cname]["one_mean_s"] / measured["big"]["one_mean_s"],
            "p95": 100 * measured[cname]["one_p95_s"] / measured["big"]["one_p95_s"]}
print(f"[timing] the cascade as a share of the big model: {c_shares['flops']:.0f}% of its FLOPs, "
      f"{c_shares['batched']:.0f}% of its batched time, {c_shares['mean']:.0f}% of its mean latency one digit at "
      f"a time, {c_shares['p95']:.0f}% of its 95th percentile")
kinds = {r["reading"].kind for r in measured.values()}
if "estimated" in kinds:
    print(f"energy: an ESTIMATE (no CPU energy sensor here): {lab.energy.tdp_w:g} W x (1 core / "
          f"{lab.energy.chip_cores}) x CPU utilisation, inputs {lab.energy.source}: it follows CPU time")


def per_1000_text(name):
    r = measured[name]
    return "unknown" if r["reading"].joules is None else f"{r['reading'].joules / r['per_1000']:.3g} J"


# The figures the text below quotes.
lab.quote("c_chosen", C_CHOSEN, "{:g}")
lab.quote("c_sent", 100 * c_sent, "{:.0f}%")
lab.quote("c_acc", 100 * c_acc, "{:.1f}%")
lab.quote("c_flops", c_flops, "{:,.0f}")
for key, value in c_shares.items():
    lab.quote(f"c_{key}_share", value, "{:.0f}%")
lab.quote("c_tail_verdict", "above" if c_shares["p95"] > 100 else "not above", "{}")
for key, name in (("c", cname), ("big", "big"), ("small", "small")):
    lab.quote(f"{key}_batched_us", 1e6 * measured[name]["batched_s"], "{:.3g}")
    lab.quote(f"{key}_mean_us", 1e6 * measured[name]["one_mean_s"], "{:.0f}")
    lab.quote(f"{key}_p95_us", 1e6 * measured[name]["one_p95_s"], "{:.0f}")
    lab.quote(f"{key}_j_per_1000", per_1000_text(name), "{}")

# %% sweat={"id": "cascade-plot", "role": "demo"}
fig_cascade, (ax_c, ax_l) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
c_acc_curve = [100 * a for a, _, _ in csweep["test"]]
c_flops_curve = [f for _, f, _ in csweep["test"]]
ax_c.plot(c_flops_curve, c_acc_curve, "o-", color="tab:purple",
          label=lab.label("cascade", "cascade, one point per threshold"))
label_points(ax_c, c_flops_curve, c_acc_curve, [f"{t:g}" for t in CASCADE_THRESHOLDS], "tab:purple")
ax_c.plot([SMALL_FLOPS], [100 * SMALL_ACC_TEST], "s", color="tab:green", ms=9, label="small model alone")
ax_c.plot([BIG_FLOPS], [100 * BIG_ACC_TEST], "*", color="black", ms=14, label="big model alone")
i = CASCADE_THRESHOLDS.index(C_CHOSEN)
ax_c.plot([c_flops_curve[i]], [c_acc_curve[i]], "o", ms=13, mfc="none", mec="tab:red", mew=2,
          label=lab.label("cascade", f"chosen on validation: {C_CHOSEN:g}"))
ax_c.set(xscale="log", xlabel="FLOPs per test digit (log scale)", ylabel="test accuracy [%]",
         xlim=(SMALL_FLOPS / 2, BIG_FLOPS * 2), title="Cascade: FLOPs per digit vs accuracy (labels: threshold)")
ax_c.xaxis.set_major_formatter(FLOPS_TICKS)
ax_c.legend(fontsize=8, loc="lower right")
names = list(systems)
jitter = np.random.default_rng(0)
for j, n in enumerate(names):
    r = measured[n]
    each_us = 1e6 * r["each_s"]
    ax_l.plot(each_us, j + jitter.uniform(-0.15, 0.15, len(each_us)), ".", ms=4, alpha=0.4, color="tab:orange",
              label="one at a time: each digit (median of 3 calls)" if j == 0 else None)
    ax_l.plot([1e6 * r["one_mean_s"]], [j], "D", color="black", ms=7, label="one at a time: mean" if j == 0 else None)
    ax_l.plot([1e6 * r["one_p95_s"]], [j], "|", color="tab:red", ms=22, mew=2.5,
              label="one at a time: 95th percentile" if j == 0 else None)
    q1, q3 = 1e6 * r["batched_q"]
    mid = 1e6 * r["batched_s"]
    ax_l.errorbar([mid], [j - 0.33], xerr=[[mid - q1], [q3 - mid]], fmt="s", color="tab:blue", ms=7, capsize=3,
                  label="batched, 500 digits per call: per digit (median, bars = IQR)" if j == 0 else None)
    ax_l.annotate(f"{mid:.3g}", (mid, j - 0.33), textcoords="offset points", xytext=(7, 4), fontsize=8, color="tab:blue")
    ax_l.annotate(f"mean {1e6 * r['one_mean_s']:.3g}", (1e6 * r["one_mean_s"], j), textcoords="offset points",
                  xytext=(-20, 12), fontsize=8)
ax_l.set_yticks(range(len(names)), [lab.label("cascade", n) if n.startswith("cascade") else n for n in names])
ax_l.set_ylim(len(names) - 0.5, -0.7)
ax_l.set(xscale="log", xlabel="microseconds per digit (log scale), measured", title="Latency of each system, one core")
ax_l.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False);

# %% [markdown] sweat={"id": "cascade-read"}
# **Read the table and the plots.** The cascade's FLOPs are the small model's plus the big model's share;
# its accuracy comes close to the big model's when the small model's confidence is trustworthy (section
# 3's lesson) and the threshold is high enough. The line of the measuring cell that begins `[timing] the
# cascade as a share of the big model` puts FLOPs, time and latency side by side:
# - **batched**, the cascade makes two model calls and gathers the digits it sends on; the big model runs
#   on a small batch. Whether its time share stays near its FLOPs share depends on how large those fixed
#   costs are next to the big model's arithmetic on your machine;
# - **one digit at a time**, the digits the small model keeps get its latency, so the *mean* falls; the digits
#   sent on pay for *both* models, so the 95th percentile can exceed the big model's own. A service that
#   promises every user a latency must plan for that tail (reflection question 5).
#
# In the shipped run the threshold chosen on validation was {{c_chosen}}, and the cascade sent {{c_sent}} of the test
# digits on. Its test accuracy was {{c_acc}}, against {{small_acc}} for the small model alone and {{big_acc}} for
# the big one. It cost {{c_flops_share}} of the big model's FLOPs, {{c_batched_share}} of its batched time and
# {{c_mean_share}} of its mean latency one digit at a time, and {{c_p95_share}} of its 95th percentile: a tail
# {{c_tail_verdict}} the big model's own.
#
# Energy, on a machine without a sensor, is estimated from CPU time, so it follows the batched times
# (it is read around batched work); with a sensor (RAPL on a Linux laptop, NVML on an NVIDIA GPU) you
# measure it.

# %% [markdown] sweat={"id": "sec-other-hw"}
# ## 6. On other hardware
# - **Laptops with an energy sensor** (Intel or AMD on Linux, RAPL readable): the tables then show
#   *measured* joules for the whole CPU package, with everything else that ran; run each measurement
#   twice and compare.
# - **More cores**: this lab pins torch to one thread. More threads can cut the big model's batched time,
#   while the small model is too small to split, so a cascade's batched saving would shrink; one digit at
#   a time there is little to split at all. Measure it: change `torch.set_num_threads(1)` in the setup cell.
# - **GPUs**: batched work is where a GPU shines, and early exit and cascades break a batch into smaller,
#   irregular ones. They pay off most in latency-bound serving (one request at a time) and where the big
#   model is far bigger than here (the FrugalGPT setting: several large language models behind an API).
# - **Bigger data**: on harder tasks than 8x8 digits, fewer inputs are easy, the first exits are less
#   accurate, and the best threshold moves; the method to find it (choose on validation, report on test)
#   stays the same.

# %% [markdown] sweat={"id": "sec-record"}
# ## 7. Record what you measured
#
# `lab.record` appends one line to `results/records.jsonl` with your numbers, this machine's
# description and the package versions.

# %% sweat={"id": "record", "role": "demo", "record_keys": ["early_stop.epochs", "early_stop.joules", "early_stop.kind", "early_stop.saving_pct", "early_stop.test_accuracy", "early_exit.threshold", "early_exit.flops_per_sample", "early_exit.accuracy", "early_exit.chosen", "early_exit.flops_saved_pct", "early_exit.accuracy_change_pts", "cascade.small", "cascade.big", "cascade.cascade", "quick"]}
def _system(name):
    r = measured[name]
    return {"accuracy": round(float(accuracy[name]), 4), "flops": round(float(work[name])),
            "latency_batched_us": round(1e6 * r["batched_s"], 3), "latency_one_mean_us": round(1e6 * r["one_mean_s"], 2),
            "joules_per_1000": (round(r["reading"].joules / r["per_1000"], 4) if r["reading"].joules is not None
                                else None), "energy_kind": r["reading"].kind}


rec = lab.record(
    early_stop={"epochs": {str(s): {"fixed": FIXED_EPOCHS, "early": r["epochs_run"], "best": r["decision"]["best"] + 1}
                           for s, r in runs.items()},
                "joules": {str(s): {"fixed": r["fixed_j"].joules, "early": r["es_j"].joules} for s, r in runs.items()},
                "kind": runs[SEEDS[0]]["es_j"].kind,
                "saving_pct": {str(s): {k: (round(v, 1) if v is not None else None) for k, v in r["saving_pct"].items()}
                               for s, r in runs.items()},
                "test_accuracy": {str(s): {"fixed": r["fixed_acc"], "early": r["es_acc"]} for s, r in runs.items()}},
    early_exit={"threshold": THRESHOLDS,
                "flops_per_sample": [round(float(f)) for _, f, _ in sweep["test"]],
                "accuracy": [round(float(a), 4) for a, _, _ in sweep["test"]],
                "chosen": CHOSEN,
                "flops_saved_pct": round(EE_SAVED_PCT, 1),
                "accuracy_change_pts": round(EE_ACC_CHANGE, 2)},
    cascade={"small": _system("small"), "big": _system("big"), "cascade": _system(f"cascade {C_CHOSEN:g}")},
    quick=QUICK,
)
print(f"recorded lab {rec['lab']} in {records.records_path_for_display()}: early stopping with "
      f"{len(runs)} seed(s), {len(THRESHOLDS)} early-exit thresholds, 3 systems of the cascade")

# %% tags=["solution"]
# Author only: save the key plots for the slides (slides/img/04_*.png) when asked to.
if os.environ.get("SWEAT_SLIDES_IMG"):
    for name, figure in (("dropout", fig_dropout), ("early_stop", fig_early), ("mc", fig_mc), ("unsure", fig_unsure),
                         ("exit", fig_exit), ("exit_time", fig_exit_time), ("cascade", fig_cascade)):
        figure.savefig(os.path.join(os.environ["SWEAT_SLIDES_IMG"], f"04_{name}.png"), dpi=120, bbox_inches="tight")
    print("saved slide images")

# %% [markdown] sweat={"id": "summary"}
# ## Summary
#
# - **Dropout** regularises for almost no FLOPs: with few training examples it is meant to keep the
#   validation loss lower while the training loss falls (in the shipped run its validation loss ended
#   {{dropout_end_verdict}} the run without it). Its random masks cost time, not FLOPs (section 3 measured them).
# - **Early stopping** turns the learning curve into a saving: stop after `patience` epochs without a
#   strictly better validation loss, restore the best checkpoint. Its saving is measured in FLOPs, time
#   and joules against a fixed schedule, and its cost is a small bet on the accuracy.
# - **MC dropout** gives each answer an uncertainty (the entropy of the mean of T passes) at T times the
#   FLOPs, and more in time where drawing the random masks is slow; where the uncertainty is informative,
#   the wrong answers sit among the unsure ones (section 3 measured how far that held).
# - **Early exit** lets confident inputs leave early. The FLOPs saved are counted per input (every exit it
#   passed counts); the time saved is measured, and falls short of the FLOPs where fixed costs per call,
#   gathers and small batches dominate.
# - **A cascade** sends only the unsure inputs to the big model: FLOPs a fraction of the big model's (the
#   small model's plus the share sent on), accuracy near the big model's where the small model's
#   confidence can be trusted, and a latency tail that pays for both models.
# - Thresholds are chosen on validation data and reported on test data.
#
# ## Reflection questions
# 1. Your early-stopping run restored epoch *b* and stopped at epoch *s*. How many epochs did it pay for
#    that it threw away, and how would you choose `patience` for a run that costs a day per epoch?
# 2. Early stopping needs a validation pass every epoch. When could that pass cost more than the epochs it
#    saves?
# 3. MC dropout costs T forward passes. For the early-exit network, would it be worth using MC-dropout
#    entropy instead of the top probability as the exit rule? Count the FLOPs.
# 4. Section 4's threshold 1.0 costs more FLOPs than the plain network. Where did the extra FLOPs go, what
#    did your run measure in time, and which of the two grew more?
# 5. A cascade's mean latency can be low while its 95th percentile is high. Design a policy that keeps the
#    tail bounded (hint: a budget of big-model calls per second, or a deadline).
#
# ## Further reading
# - N. Srivastava, G. Hinton, A. Krizhevsky, I. Sutskever, R. Salakhutdinov, "Dropout: A Simple Way to
#   Prevent Neural Networks from Overfitting", *JMLR* 15, 2014.
# - L. Prechelt, "Early Stopping — But When?", in *Neural Networks: Tricks of the Trade*, Springer LNCS
#   1524, 1998: patience-style criteria compared on many problems.
# - Y. Gal, Z. Ghahramani, "Dropout as a Bayesian Approximation: Representing Model Uncertainty in Deep
#   Learning", ICML 2016.
# - S. Teerapittayanon, B. McDanel, H. T. Kung, "BranchyNet: Fast Inference via Early Exiting from Deep
#   Neural Networks", ICPR 2016 (entropy-threshold exits); G. Huang et al., "Multi-Scale Dense Networks
#   for Resource Efficient Image Classification", ICLR 2018.
# - P. Viola, M. Jones, "Rapid Object Detection using a Boosted Cascade of Simple Features", CVPR 2001;
#   L. Chen, M. Zaharia, J. Zou, "FrugalGPT: How to Use Large Language Models While Reducing Cost and
#   Improving Performance", arXiv:2305.05176, 2023.
# - J. Kaplan et al., "Scaling Laws for Neural Language Models", arXiv:2001.08361, 2020 (section 2.1:
#   training compute as 3 forward passes).
# - R. Schwartz, J. Dodge, N. A. Smith, O. Etzioni, "Green AI", *Communications of the ACM* 63(12), 2020.
