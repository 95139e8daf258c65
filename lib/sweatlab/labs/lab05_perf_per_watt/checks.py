"""Public checks of lab 05_perf_per_watt: "CPU, GPU or TPU: who wins intelligence per joule?"

Exercises (the name the notebook's `check(...)` cell uses, and the learner's function):

    bytes_per_token      bytes_per_token(n_params, bits) -> bytes of weights read per decode token at batch 1
    tokens_per_joule     tokens_per_joule(n_params, bits, bandwidth_gbs, watts) -> decode tokens per joule
                         on the memory roof at that power
    step_model           step_model(n_params, batch, bytes_per_param, peak_gflops, bandwidth_gbs, watts)
                         -> {"seconds", "per_second", "per_joule", "bound"} for one batched step
    compute_bound_batch  compute_bound_batch(peak_gflops, bandwidth_gbs, bytes_per_param) -> smallest batch
                         that is compute-bound
    choose_device        choose_device(options, latency_budget_s, energy_budget_j) -> the name of the
                         device that meets both budgets with the fewest joules (None if none does)
    compute_optimal      compute_optimal(compute_flops) -> {"params", "tokens"}: C = 6 N D, D = 20 N

Every function takes and returns plain data (numbers, strings, lists, dicts).
"""

from __future__ import annotations

import math
from typing import Any

from sweatlab.kit.checks import Tester, public_test

LAB = "05_perf_per_watt"


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _close(a: Any, b: float, rtol: float = 1e-9) -> bool:
    return _num(a) and math.isclose(a, b, rel_tol=rtol)


# ---------------------------------------------------------------------------------------------
# bytes_per_token
# ---------------------------------------------------------------------------------------------

def _expect_bytes(t: Tester, n: float, bits: float) -> None:
    got = t.call("bytes_per_token", n, bits)
    want = n * bits / 8
    hint = "every weight is read once per token at batch 1: n_params x bits / 8 bytes"
    if _close(got, n * bits):
        hint = "that is bits, not bytes: a byte is 8 bits, divide by 8"
    elif _close(got, n * bits / 8 * 1e-9) or _close(got, n * bits / 8 / 2**30):
        hint = "return bytes, not GB or GiB"
    elif _close(got, n * 8 / bits):
        hint = "fewer bits per weight means fewer bytes: multiply by bits, then divide by 8"
    t.expect_close(got, want, rtol=1e-9, what=f"bytes_per_token({n:g}, bits={bits:g})", hint=hint)


@public_test(LAB, "bytes_per_token", points=1)
def gpt2_small_in_bf16(t: Tester):
    _expect_bytes(t, 124e6, 16)  # 248 MB per token


@public_test(LAB, "bytes_per_token", points=1)
def int8_int4_and_fp32(t: Tester):
    for n, bits in ((7e9, 8), (7e9, 4), (67_108_864, 32)):
        _expect_bytes(t, n, bits)


# ---------------------------------------------------------------------------------------------
# tokens_per_joule
# ---------------------------------------------------------------------------------------------

def _expect_tpj(t: Tester, n: float, bits: float, bw: float, watts: float) -> None:
    got = t.call("tokens_per_joule", n, bits, bw, watts)
    per_s = bw * 1e9 / (n * bits / 8)
    want = per_s / watts
    hint = ("tokens per second on the memory roof = bandwidth (bytes/s) / bytes per token; "
            "tokens per joule = tokens per second / watts (a watt is a joule per second)")
    if _close(got, watts / per_s):
        hint = "that is joules per token (watts / tokens per second): invert it for tokens per joule"
    elif _close(got, per_s * watts):
        hint = "per watt means divided by the watts, not multiplied"
    elif _close(got, per_s):
        hint = "that is tokens per second: divide by the watts for tokens per joule"
    elif _close(got, bw * 1e9 / (n * bits) / watts):
        hint = "bits, not bytes: bytes per token = n_params x bits / 8"
    elif _close(got, bw / (n * bits / 8) / watts):
        hint = "GB/s is 1e9 bytes per second: multiply bandwidth_gbs by 1e9"
    t.expect_close(got, want, rtol=1e-9,
                   what=f"tokens_per_joule({n:g}, bits={bits:g}, bandwidth_gbs={bw:g}, watts={watts:g})", hint=hint)


@public_test(LAB, "tokens_per_joule", points=1)
def h200_datasheet_bf16(t: Tester):
    _expect_tpj(t, 124e6, 16, 4800.0, 700.0)


@public_test(LAB, "tokens_per_joule", points=1)
def a_laptop_and_a_server_cpu(t: Tester):
    _expect_tpj(t, 1.1e9, 4, 100.0, 20.0)
    _expect_tpj(t, 7e9, 8, 460.8, 360.0)


@public_test(LAB, "tokens_per_joule", points=1)
def halving_the_bits_doubles_tokens_per_joule(t: Tester):
    a = t.call("tokens_per_joule", 1e9, 16, 300.0, 72.0)
    b = t.call("tokens_per_joule", 1e9, 8, 300.0, 72.0)
    t.expect(_num(a) and _num(b) and math.isclose(b / a, 2.0, rel_tol=1e-9),
             what=f"tokens_per_joule with 8-bit weights / with 16-bit weights = {b!r} / {a!r}; expected exactly 2",
             hint="a memory-bound step's time is proportional to the bytes it reads")


# ---------------------------------------------------------------------------------------------
# step_model
# ---------------------------------------------------------------------------------------------

def reference_step(n: float, batch: int, bpp: float, peak: float, bw: float, watts: float) -> dict:
    compute_s = 2 * n * batch / (peak * 1e9)
    memory_s = n * bpp / (bw * 1e9)  # the batch reuses the weights: read once per step
    s = max(compute_s, memory_s)
    return {"seconds": s, "per_second": batch / s, "per_joule": batch / s / watts,
            "bound": "compute" if compute_s >= memory_s else "memory"}


def _expect_step(t: Tester, n: float, batch: int, bpp: float, peak: float, bw: float, watts: float) -> None:
    call = f"step_model({n:g}, batch={batch}, bytes_per_param={bpp:g}, peak_gflops={peak:g}, " \
           f"bandwidth_gbs={bw:g}, watts={watts:g})"
    got = t.call("step_model", n, batch, bpp, peak, bw, watts)
    want = reference_step(n, batch, bpp, peak, bw, watts)
    t.expect(isinstance(got, dict) and all(k in got for k in want), what=f"{call} returned {got!r}",
             hint='return a dict with the keys "seconds", "per_second", "per_joule" and "bound"')
    hint = ("the step takes max(FLOPs / peak, bytes / bandwidth); FLOPs = 2 x n_params x batch; the weights are "
            "read once per step whatever the batch: bytes = n_params x bytes_per_param")
    s = got["seconds"]
    if batch > 1 and _close(s, max(2 * n * batch / (peak * 1e9), n * bpp * batch / (bw * 1e9))):
        hint = ("the batch reuses the weights: one step reads them once for all its inputs, so the bytes do not "
                "grow with the batch (that is why batching helps)")
    elif _close(s, max(2 * n * batch / (watts * 1e9), n * bpp / (bw * 1e9))) or \
            _close(s, 2 * n * batch / (watts * 1e9)):
        hint = "you divided the FLOPs by the watts: the compute time is FLOPs / (peak_gflops x 1e9); watts only " \
               "turn time into joules"
    elif _close(s, 2 * n * batch / (peak * 1e9) + n * bpp / (bw * 1e9)):
        hint = "the roofline overlaps compute and memory: take the max of the two times, not their sum"
    t.expect_close(s, want["seconds"], rtol=1e-9, what=f'{call}["seconds"]', hint=hint)
    t.expect_close(got["per_second"], want["per_second"], rtol=1e-9, what=f'{call}["per_second"]',
                   hint="inputs per second = batch / seconds per step")
    pj_hint = "inputs per joule = inputs per second / watts"
    if _close(got["per_joule"], watts / want["per_second"]):
        pj_hint = "that is joules per input (watts / inputs per second): per joule is the inverse"
    elif _close(got["per_joule"], want["per_second"] * watts):
        pj_hint = "per watt means divided by the watts"
    t.expect_close(got["per_joule"], want["per_joule"], rtol=1e-9, what=f'{call}["per_joule"]', hint=pj_hint)
    t.expect_equal(got["bound"], want["bound"], what=f'{call}["bound"]',
                   hint='"memory" when reading the weights takes longer than the arithmetic, else "compute"')


@public_test(LAB, "step_model", points=1)
def mlp_batch_1_on_an_h100(t: Tester):
    _expect_step(t, 67_108_864, 1, 2, 989_400.0, 3_350.0, 700.0)


@public_test(LAB, "step_model", points=1)
def mlp_batch_256_on_an_h100(t: Tester):
    _expect_step(t, 67_108_864, 256, 2, 989_400.0, 3_350.0, 700.0)


@public_test(LAB, "step_model", points=1)
def random_devices_and_batches(t: Tester):
    rng = t.rng()
    for _ in range(6):
        _expect_step(t, float(rng.integers(10**6, 10**10)), int(rng.choice([1, 2, 8, 64, 512, 4096])),
                     float(rng.choice([0.5, 1, 2, 4])), float(rng.uniform(100, 10**6)), float(rng.uniform(20, 5000)),
                     float(rng.uniform(10, 800)))


# ---------------------------------------------------------------------------------------------
# compute_bound_batch
# ---------------------------------------------------------------------------------------------

def reference_batch(peak: float, bw: float, bpp: float) -> int:
    return max(1, math.ceil(peak / bw * bpp / 2 - 1e-9))


def _expect_batch(t: Tester, peak: float, bw: float, bpp: float) -> None:
    got = t.call("compute_bound_batch", peak, bw, bpp)
    want = reference_batch(peak, bw, bpp)
    ridge = peak / bw
    hint = (f"the ridge is peak / bandwidth = {ridge:.4g} FLOP/byte; a batch of B does 2 B FLOPs per weight and reads "
            f"its bytes_per_param bytes once, so its intensity is 2 B / bytes_per_param: the smallest whole B that "
            f"reaches the ridge")
    if _num(got):
        if got == reference_batch(peak, bw, bpp * 8):
            hint = "bytes_per_param is already in bytes: do not multiply by 8"
        elif got == math.floor(ridge * bpp / 2) and got != want:
            hint = "round up: a batch below the ridge is still memory-bound (math.ceil)"
        elif got == max(1, math.ceil(ridge / bpp / 2)):
            hint = "intensity is FLOPs per byte: 2 B / bytes_per_param, so B = ridge x bytes_per_param / 2"
        elif got == max(1, math.ceil(ridge * bpp)):
            hint = "each weight gives 2 FLOPs per input (a multiply-add): B = ridge x bytes_per_param / 2"
    elif got is None or (isinstance(got, float) and math.isinf(got)):
        hint = ("if the bytes grew with the batch the intensity would never rise: the batch reuses the weights, "
                "read once per step")
    t.expect_equal(got, want, what=f"compute_bound_batch(peak_gflops={peak:g}, bandwidth_gbs={bw:g}, "
                                   f"bytes_per_param={bpp:g})", hint=hint)


@public_test(LAB, "compute_bound_batch", points=1)
def h100_in_bf16(t: Tester):
    _expect_batch(t, 989_400.0, 3_350.0, 2)  # ridge 295 FLOP/byte: batch 296


@public_test(LAB, "compute_bound_batch", points=1)
def a_cpu_in_fp32_and_a_tpu_in_int8(t: Tester):
    _expect_batch(t, 7_373.0, 460.8, 4)
    _expect_batch(t, 92_000.0, 34.0, 1)


@public_test(LAB, "compute_bound_batch", points=1)
def never_below_one(t: Tester):
    _expect_batch(t, 10.0, 100.0, 1)  # ridge 0.1 FLOP/byte: even batch 1 is compute-bound


# ---------------------------------------------------------------------------------------------
# choose_device
# ---------------------------------------------------------------------------------------------

def reference_choice(options: list[dict], latency: float, energy: float) -> str | None:
    ok = [o for o in options if o["seconds"] <= latency and o["joules"] <= energy]
    return min(ok, key=lambda o: o["joules"])["name"] if ok else None


def _expect_choice(t: Tester, options: list[dict], latency: float, energy: float, what: str) -> None:
    got = t.call("choose_device", options, latency, energy)
    want = reference_choice(options, latency, energy)
    fastest = min(options, key=lambda o: o["seconds"])["name"]
    frugal = min(options, key=lambda o: o["joules"])["name"]
    hint = ("keep only the devices within both budgets (seconds <= latency_budget_s and joules <= energy_budget_j), "
            "then take the one with the fewest joules; None when none qualifies")
    if got == fastest and got != want:
        hint = "the fastest device is not the answer: it must also fit the energy budget, and among those that fit, " \
               "the fewest joules wins"
    elif got == frugal and got != want:
        hint = "the most frugal device misses the latency budget: check both budgets first"
    elif want is None and got is not None:
        hint = "no device meets both budgets here: return None"
    t.expect_equal(got, want, what=f"choose_device({what}, latency_budget_s={latency:g}, energy_budget_j={energy:g})",
                   hint=hint)


_OPTIONS = [
    {"name": "H100", "seconds": 0.0004, "joules": 0.28},
    {"name": "L4", "seconds": 0.0009, "joules": 0.065},
    {"name": "EPYC", "seconds": 0.0011, "joules": 0.39},
    {"name": "laptop", "seconds": 0.0050, "joules": 0.05},
]


@public_test(LAB, "choose_device", points=1)
def fastest_is_over_the_energy_budget(t: Tester):
    _expect_choice(t, _OPTIONS, 0.002, 0.1, "four devices")  # L4


@public_test(LAB, "choose_device", points=1)
def tight_latency_leaves_one(t: Tester):
    _expect_choice(t, _OPTIONS, 0.0005, 0.5, "four devices")  # H100


@public_test(LAB, "choose_device", points=1)
def nothing_fits(t: Tester):
    _expect_choice(t, _OPTIONS, 0.0005, 0.1, "four devices")  # None


@public_test(LAB, "choose_device", points=1)
def random_options(t: Tester):
    rng = t.rng()
    for _ in range(6):
        opts = [{"name": f"dev{i}", "seconds": float(10 ** rng.uniform(-4, -1)), "joules": float(10 ** rng.uniform(-3, 0))}
                for i in range(5)]
        _expect_choice(t, opts, float(10 ** rng.uniform(-3.5, -1)), float(10 ** rng.uniform(-2.5, 0)), "five devices")


# ---------------------------------------------------------------------------------------------
# compute_optimal
# ---------------------------------------------------------------------------------------------

def _expect_optimal(t: Tester, c: float) -> None:
    got = t.call("compute_optimal", c)
    n = math.sqrt(c / 120)
    t.expect(isinstance(got, dict) and "params" in got and "tokens" in got, what=f"compute_optimal({c:g}) returned {got!r}",
             hint='return {"params": N, "tokens": D}')
    hint = "C = 6 N D and D = 20 N, so C = 120 N^2: N = sqrt(C / 120), D = 20 N"
    if _close(got["params"], math.sqrt(c / 20)):
        hint = "training costs 6 FLOPs per parameter per token (2 forward, 4 backward): C = 6 N D"
    elif _close(got["params"], math.sqrt(c / 40)):
        hint = "training is 6 N D (forward and backward), not the forward pass's 2 N D"
    elif _close(got["params"], c / 120):
        hint = "C = 120 N^2: take the square root"
    t.expect_close(got["params"], n, rtol=1e-6, what=f'compute_optimal({c:g})["params"]', hint=hint)
    t.expect_close(got["tokens"], 20 * n, rtol=1e-6, what=f'compute_optimal({c:g})["tokens"]',
                   hint="about 20 tokens per parameter (Hoffmann et al. 2022)")


@public_test(LAB, "compute_optimal", points=1)
def chinchilla_budget(t: Tester):
    _expect_optimal(t, 6 * 70e9 * 1.4e12)  # 5.9e23 FLOPs: about 70 B parameters, 1.4 T tokens


@public_test(LAB, "compute_optimal", points=1)
def small_budgets(t: Tester):
    for c in (1e18, 3.6e20, 1e21):
        _expect_optimal(t, c)
