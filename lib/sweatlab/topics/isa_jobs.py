"""Lab 02's measurement jobs, run in a fresh process by :func:`sweatlab.topics.isa.run_job`.

Each job takes its spec (plain JSON) and returns plain JSON, reported to the parent on one marked
line (:func:`sweatlab.measure.fresh.report`): ``numpy_ops`` (exp, tanh, add, sum on float32
vectors; np.matmul), ``torch_ops`` (add, sum, exp; fp32 and bf16 matmul; an int8 Linear through
oneDNN, with the oneDNN kernel each used), ``numba_micro`` (lab 02's micro-kernel matmul and the
vector registers its code uses) and ``oversubscription`` (thread pools stacked on thread pools,
and the fix, with or without another program busy on one core).

    python -m sweatlab.topics.isa_jobs '{"job": "numpy_ops", ...}'
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Callable

from sweatlab.measure import onednn
from sweatlab.measure.fresh import report
from sweatlab.topics.isa import numpy_dispatch


def _measure(ops: dict[str, Callable[[], Any]], rounds: int, sample_s: float, energy: dict | None,
             threads: int) -> dict[str, dict[str, Any]]:
    """Best and median seconds per call of each op (rounds interleaved), then its energy per call."""
    loops = {}
    for name, fn in ops.items():
        fn()  # warm-up (lazy initialisation, JIT)
        n, took = 1, 0.0
        while True:
            start = time.perf_counter()
            for _ in range(n):
                fn()
            took = time.perf_counter() - start
            if took >= sample_s or n >= 1 << 20:
                break
            n = max(n + 1, min(n * 10, int(n * 1.3 * sample_s / max(took, 1e-9))))
        loops[name] = n
    samples: dict[str, list[float]] = {name: [] for name in ops}
    names = list(ops)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            fn, n = ops[name], loops[name]
            start = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - start) / n)
    out = {}
    for name in names:
        xs = sorted(samples[name])
        out[name] = {"best_s": xs[0], "median_s": xs[len(xs) // 2], "loops": loops[name]}
        if energy:
            from sweatlab.measure.energy import EnergyMeter

            meter = EnergyMeter(estimate=True, tdp_w=energy["tdp_w"], host_cores=energy["host_cores"],
                                cores_used=threads, tdp_source=energy.get("source"), poll_s=None).begin()
            calls, start = 0, time.perf_counter()
            while time.perf_counter() - start < energy.get("window_s", 0.1) or calls == 0:
                ops[name]()
                calls += 1
            reading = meter.end()
            out[name]["joules_per_call"] = reading.joules / calls if reading.joules is not None else None
            out[name]["energy_kind"] = reading.kind
    return out


def _job_numpy_ops(spec: dict) -> dict:
    import numpy as np

    from sweatlab.measure.timing import thread_settings

    n, m = int(spec.get("n_vec", 65536)), int(spec.get("n_mat", 512))
    g = np.random.default_rng(0)
    x = g.random(n, dtype=np.float32) - np.float32(0.5)
    y = g.random(n, dtype=np.float32)
    out = np.empty_like(x)
    A, B = g.random((m, m), dtype=np.float32), g.random((m, m), dtype=np.float32)
    C = np.empty((m, m), dtype=np.float32)
    every = {
        "np.exp": lambda: np.exp(x, out=out),
        "np.tanh": lambda: np.tanh(x, out=out),
        "np.add": lambda: np.add(x, y, out=out),
        "np.sum": lambda: np.sum(x),
        "np.matmul": lambda: np.matmul(A, B, out=C),
    }
    ops = {k: every[k] for k in spec.get("ops", list(every))}
    from threadpoolctl import threadpool_limits

    threads = int(spec.get("threads", 1))
    with threadpool_limits(limits=threads, user_api="blas"):
        timings = _measure(ops, int(spec.get("rounds", 5)), float(spec.get("sample_s", 0.01)), spec.get("energy"),
                           threads)
        blas = thread_settings().get("blas")
    return {"ops": timings, "numpy_enabled": numpy_dispatch()["found"], "blas": blas,
            "sizes": {"vector": n, "matrix": m}}


def _job_torch_ops(spec: dict) -> dict:
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    threads = int(spec.get("threads", 1))
    torch.set_num_threads(threads)
    n, m = int(spec.get("n_vec", 65536)), int(spec.get("n_mat", 512))
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, generator=gen) - 0.5, torch.rand(n, generator=gen)
    out = torch.empty_like(x)
    A, B = torch.rand(m, m, generator=gen), torch.rand(m, m, generator=gen)
    C = torch.empty(m, m)
    Ab, Bb = A.to(torch.bfloat16), B.to(torch.bfloat16)
    Cb = torch.empty(m, m, dtype=torch.bfloat16)
    every: dict[str, Callable[[], Any]] = {
        "torch.add": lambda: torch.add(x, y, out=out),
        "torch.sum": lambda: torch.sum(x),
        "torch.exp": lambda: torch.exp(x, out=out),
        "matmul fp32": lambda: torch.matmul(A, B, out=C),
        "matmul bf16": lambda: torch.matmul(Ab, Bb, out=Cb),
    }
    wanted = spec.get("ops", list(every) + ["linear int8"])
    notes = []
    if "linear int8" in wanted:
        try:
            torch.backends.quantized.engine = "onednn"
            lin = torch.nn.Sequential(torch.nn.Linear(m, m, bias=False))
            q = torch.ao.quantization.quantize_dynamic(lin, {torch.nn.Linear}, dtype=torch.qint8)
            every["linear int8"] = lambda: q(A)
        except Exception as exc:  # an engine this torch build lacks
            notes.append(f"linear int8 not measured: {type(exc).__name__}: {exc}"[:200])
    ops = {k: every[k] for k in wanted if k in every}
    from sweatlab.measure.hardware import capture_fd1

    kernels: dict[str, list[str]] = {}
    isa_line = None
    mk = getattr(torch.backends, "mkldnn", None)
    with torch.inference_mode():
        if mk is not None and mk.is_available():
            for name in ("matmul fp32", "matmul bf16", "linear int8"):
                if name in ops:
                    def once(fn=ops[name]):
                        with mk.verbose(mk.VERBOSE_ON):
                            fn()
                    log = capture_fd1(once)
                    isa_line = isa_line or onednn.isa_line(log)
                    kernels[name] = sorted(set(f"{p.kind}:{p.impl}" for p in onednn.executed(log)))
        timings = _measure(ops, int(spec.get("rounds", 5)), float(spec.get("sample_s", 0.01)), spec.get("energy"),
                           threads)
    try:
        bf16_ok = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        bf16_ok = None
    return {"ops": timings, "capability": torch.backends.cpu.get_cpu_capability(), "onednn_isa": isa_line,
            "kernels": kernels, "onednn_bf16_supported": bf16_ok, "threads": torch.get_num_threads(),
            "torch": str(torch.__version__), "notes": notes, "sizes": {"vector": n, "matrix": m}}


def _job_numba_micro(spec: dict) -> dict:
    import numpy as np

    from sweatlab.measure import asm
    from sweatlab.topics import gemm
    from sweatlab.topics.ladder import error_vs_bound, gamma

    n = int(spec.get("n", 512))
    g = np.random.default_rng(0)
    A, B = g.random((n, n), dtype=np.float32), g.random((n, n), dtype=np.float32)
    kernel = gemm.reference_matmul_micro
    C = kernel(A, B)
    error = error_vs_bound(C, A, B, gamma(n))
    ops = {"micro-kernel matmul": lambda: kernel(A, B)}
    timings = _measure(ops, int(spec.get("rounds", 5)), float(spec.get("sample_s", 0.05)), spec.get("energy"), 1)
    counts = asm.float_ops(asm.numba_asm(gemm.reference_micro_6x4))
    features = gemm.codegen_features() or ""
    return {"ops": timings, "gflops": 2 * n ** 3 / timings["micro-kernel matmul"]["best_s"] / 1e9,
            "median_gflops": 2 * n ** 3 / timings["micro-kernel matmul"]["median_s"] / 1e9, "error": error,
            "asm": counts, "prefer_256": "+prefer-256-bit" in features,
            "told_512": "-prefer-256-bit" in features, "n": n}


def _oversubscription_case(case: str, fixed: bool, rounds: int, size: int, batch: int,
                           energy: dict | None = None) -> dict:
    """One case of thread pools stacked on thread pools: ``batch`` float32 products of ``size``, as it comes or
    fixed (one library's threads limited so that the threads add up to the cores)."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from sweatlab.measure.timing import thread_settings

    g = np.random.default_rng(0)
    As = g.random((batch, size, size), dtype=np.float32)
    Bs = g.random((batch, size, size), dtype=np.float32)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit: int | None = 1 if fixed else None
    if case == "numba x BLAS":
        import numba
        from numba import njit, prange

        @njit(parallel=True)
        def batched(As, Bs):
            out = np.empty_like(As)
            for b in prange(As.shape[0]):
                out[b] = np.dot(As[b], Bs[b])
            return out

        work: Callable[[], Any] = lambda: batched(As, Bs)  # noqa: E731
        what = f"numba prange over {batch} products, each np.dot (BLAS) inside"

        def note() -> str:
            return f"numba {numba.get_num_threads()} x BLAS {thread_settings().get('blas_threads')}"
    elif case == "threads x BLAS":
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(cores)
        work = lambda: list(pool.map(lambda b: As[b] @ Bs[b], range(batch)))  # noqa: E731
        what = f"a pool of {cores} Python threads, each np.matmul (BLAS)"

        def note() -> str:
            return f"{cores} Python threads x BLAS {thread_settings().get('blas_threads')}"
    elif case == "torch + BLAS":
        import threading
        import warnings

        warnings.filterwarnings("ignore")
        import torch

        tA, tB = torch.from_numpy(As.copy()), torch.from_numpy(Bs.copy())
        share = max(1, cores // 2)
        torch.set_num_threads(share if fixed else cores)
        limit = share if fixed else None

        def torch_part() -> None:
            for b in range(batch):
                tA[b] @ tB[b]

        def work() -> None:
            t = threading.Thread(target=torch_part)
            t.start()
            for b in range(batch):
                As[b] @ Bs[b]
            t.join()

        what = f"{batch} torch matmuls in one thread while {batch} numpy matmuls run in another"

        def note() -> str:
            return f"torch {torch.get_num_threads()} + BLAS {thread_settings().get('blas_threads')}"
    else:
        raise ValueError(f"unknown case {case!r}")
    work()  # first call outside the limits: numba compiles, and loads the BLAS its np.dot calls (scipy's)
    with threadpool_limits(limits=limit, user_api="blas"):
        work()
        meter = None
        if energy:
            from sweatlab.measure.energy import EnergyMeter

            meter = EnergyMeter(estimate=True, tdp_w=energy["tdp_w"], host_cores=energy["host_cores"],
                                cores_used=cores, tdp_source=energy.get("source"), poll_s=None).begin()
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        reading = meter.end() if meter is not None else None
        threads_note = note()
    times.sort()
    out = {"case": case, "fixed": fixed, "what": what, "best_s": times[0], "median_s": times[len(times) // 2],
           "flops": 2 * 2 * batch * size ** 3 if case == "torch + BLAS" else 2 * batch * size ** 3,
           "threads_note": threads_note, "cores": cores}
    if reading is not None:
        out["joules"] = reading.joules / rounds if reading.joules is not None else None
        out["energy_kind"] = reading.kind
    return out


def _job_oversubscription(spec: dict) -> dict:
    """One case; with ``busy``, a second program (a busy loop in its own process) holds one core meanwhile."""
    rounds, size, batch = int(spec.get("rounds", 5)), int(spec.get("size", 384)), int(spec.get("batch", 16))
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if spec.get("busy") else None
    try:
        out = _oversubscription_case(spec["case"], bool(spec.get("fixed")), rounds, size, batch, spec.get("energy"))
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    out["busy"] = bool(spec.get("busy"))
    return out


JOBS: dict[str, Callable[[dict], dict]] = {
    "numpy_ops": _job_numpy_ops,
    "torch_ops": _job_torch_ops,
    "numba_micro": _job_numba_micro,
    "oversubscription": _job_oversubscription,
}


def main(argv: list[str] | None = None) -> int:
    """Child entry point: ``python -m sweatlab.topics.isa_jobs '{"job": ...}'`` prints one result line."""
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    report(JOBS[spec["job"]](spec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
