"""`sweatlab profile`: measure this machine once and write a short report.

    run_profile(out_dir, quick=False) -> ProfileReport    writes profile.md and roofline.png, records "profile"
    main(argv) -> int                                     the command line: --out DIR, --quick

Measures peak fp32 (BLAS) and bf16 (torch, where native) matmul throughput, the triad
memory bandwidth, the clock's resolution and bench()'s overhead, lists the SIMD features
and energy sensors, and places a few reference kernels on the roofline. Full mode takes
well under 2 minutes, quick mode a few seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweatlab.measure import flops as F
from sweatlab.measure.energy import SensorStatus, probe_energy_sensors
from sweatlab.measure.hardware import MachineInfo, describe
from sweatlab.measure.roofline import KernelPoint, Roofline, kernel_point, peak_bf16, peak_fp32, stream_triad, triad_cost
from sweatlab.measure.timing import bench, timer_resolution_ns

__all__ = ["ProfileReport", "run_profile", "main"]


def _threads(n: int | str | None) -> str:
    return "threads unknown" if n is None else f"{n} thread{'' if str(n) == '1' else 's'}"


@dataclass(frozen=True, repr=False)
class ProfileReport:
    """What `sweatlab profile` measured, and where it wrote the report and plot."""

    report_path: Path
    plot_path: Path
    quick: bool
    duration_s: float
    cpu_model: str | None
    peak_fp32_gflops: float
    peak_fp32_gflops_by_threads: dict[str, float | None]
    peak_bf16_gflops: float | None
    bf16_skipped_reason: str | None
    bandwidth_gbs: float
    ridge_fp32_flop_per_byte: float
    timer_resolution_ns: int
    bench_overhead_ns: float
    isa: tuple[str, ...]
    numpy_simd: tuple[str, ...]
    energy_sensors: tuple[SensorStatus, ...]
    kernels: tuple[KernelPoint, ...]
    roofline: Roofline = field(compare=False)
    record: dict[str, Any] = field(compare=False, default_factory=dict)

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) rows of the short summary table."""
        why = (self.bf16_skipped_reason or "not measured").split(":")[0]
        bf16 = f"{self.peak_bf16_gflops:.1f} GFLOP/s" if self.peak_bf16_gflops else f"skipped: {why}"
        sensors = ", ".join(s.name for s in self.energy_sensors if s.available) or "none"
        return [
            ("CPU", self.cpu_model or "unknown"),
            ("peak fp32 (BLAS matmul)", f"{self.peak_fp32_gflops:.1f} GFLOP/s ({_threads(self.roofline.peaks[0].threads)})"),
            ("peak bf16 (torch matmul)", bf16),
            ("memory bandwidth (triad)", f"{self.bandwidth_gbs:.1f} GB/s"),
            ("ridge point (fp32)", f"{self.ridge_fp32_flop_per_byte:.1f} FLOP/byte"),
            ("timer resolution", f"{self.timer_resolution_ns} ns"),
            ("bench overhead (no-op)", f"{self.bench_overhead_ns:.0f} ns per call"),
            ("energy sensors", sensors),
        ]

    def __repr__(self) -> str:
        width = max(len(k) for k, _ in self.rows())
        body = "\n".join(f"  {k:<{width}}  {v}" for k, v in self.rows())
        return f"ProfileReport({self.report_path}, {self.duration_s:.1f} s{' quick' if self.quick else ''}\n{body})"


def _matvec_point(n: int, budget_s: float) -> KernelPoint:
    import numpy as np

    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n), dtype=np.float32)
    x = rng.standard_normal(n, dtype=np.float32)
    y = np.empty(n, dtype=np.float32)
    t = bench(np.matmul, a, x, out=y, budget_s=budget_s, min_runs=3)
    return kernel_point(f"matvec n={n} fp32", F.matmul(n, 1, n), t)


def _small_matmul_point(n: int, budget_s: float) -> KernelPoint:
    import numpy as np

    rng = np.random.default_rng(2)
    a = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    t = bench(np.matmul, a, a, out=c, budget_s=budget_s, min_runs=3)
    return kernel_point(f"matmul n={n} fp32 (in cache)", F.matmul(n, n, n), t)


def _markdown(r: ProfileReport, info: MachineInfo, warnings: list[str]) -> str:
    roof = r.roofline
    lines = [
        "# Machine profile",
        "",
        f"Measured {r.record.get('utc', '')} in {r.duration_s:.1f} s{' (quick mode: smaller sizes, noisier)' if r.quick else ''}.",
        f"{info.cpu_model or 'unknown CPU'}; {info.physical_cores} physical / {info.logical_cores} logical cores;"
        f" {info.memory_gib} GiB; {'virtual machine' if info.virtual_machine else 'virtual machine: ' + str(info.virtual_machine)}.",
        "",
        "| measure | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in r.rows()]
    fp32 = roof.peaks[0]
    lines += [
        "",
        "## How each number was measured",
        "",
        f"- **fp32 peak**: {fp32.backend}, n={fp32.n}, {_threads(fp32.threads)}; best run"
        f" {fp32.gflops:.1f} GFLOP/s, median {fp32.median_gflops:.1f} (a multiply-add counts 2 FLOPs)."
        + (
            " Best run by BLAS threads: "
            + ", ".join(f"{_threads(t)} {g:.1f}" for t, g in r.peak_fp32_gflops_by_threads.items() if g)
            + " GFLOP/s; the roof uses the faster."
            if len(r.peak_fp32_gflops_by_threads) > 1
            else ""
        ),
    ]
    bf = roof.peaks[1] if len(roof.peaks) > 1 else None
    if bf is not None and bf.gflops:
        lines.append(f"- **bf16 peak**: {bf.backend}, n={bf.n}, {_threads(bf.threads)}; best {bf.gflops:.1f}, median {bf.median_gflops:.1f} GFLOP/s.")
    else:
        lines.append(f"- **bf16 peak**: skipped: {r.bf16_skipped_reason}.")
    m = roof.memory
    lines += [
        f"- **bandwidth**: {m.gbs:.1f} GB/s best, {m.median_gbs:.1f} median; 3 arrays of {m.array_bytes // 2**20} MiB,"
        f" {_threads(m.threads)}. {m.accounting}",
        f"- **timer**: perf_counter's useful resolution {r.timer_resolution_ns} ns; bench(lambda: None) reports"
        f" {r.bench_overhead_ns:.0f} ns per call (the harness's own cost per call).",
        f"- **ISA**: {' '.join(r.isa) or 'none known'}. numpy SIMD dispatch: {' '.join(r.numpy_simd) or 'baseline only'}."
        f" torch CPU capability: {info.torch_cpu_capability or '-'}; oneDNN ISA: {info.onednn_isa or '-'}.",
        "",
        "## Energy sensors",
        "",
    ]
    lines += [f"- **{s.name}**: {'available' if s.available else 'not available'}: {s.reason}" for s in r.energy_sensors]
    lines += [
        "",
        "## Kernels on the roofline",
        "",
        "| kernel | FLOP/byte | GFLOP/s | % of attainable |",
        "|---|---|---|---|",
    ]
    for k in r.kernels:
        bound = roof.attainable_gflops(k.intensity)
        lines.append(f"| {k.name} | {k.intensity:.3g} | {k.gflops:.1f} | {100 * k.gflops / bound:.0f}% |")
    lines += [
        "",
        "Over 100% means the kernel moved less data than counted (caches) or streamed faster than the"
        " triad does (read-only traffic is cheaper than writes): the triad roof is measured, not a law.",
    ]
    lines += ["", "![roofline](roofline.png)", ""]
    if warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in dict.fromkeys(warnings)] + [""]
    return "\n".join(lines)


def run_profile(out_dir: str | Path, quick: bool = False) -> ProfileReport:
    """Measure this machine; write out_dir/profile.md and out_dir/roofline.png; record('profile', ...)."""
    from sweatlab.measure.records import record

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = describe(import_torch=True)
    resolution = timer_resolution_ns()
    overhead = bench(lambda: None, budget_s=0.05 if quick else 0.2, name="no-op").median_s * 1e9
    # BLAS with all its threads and with one: on a small or shared machine one thread can
    # win (two vCPUs may share a core, or a neighbour takes one). The roof is the faster.
    fp32_runs = [peak_fp32(quick=quick)]
    if (fp32_runs[0].threads or 1) > 1:
        fp32_runs.append(peak_fp32(quick=quick, threads=1))
    fp32 = max(fp32_runs, key=lambda p: p.gflops or 0.0)
    bf16 = peak_bf16(quick=quick)
    mem = stream_triad(quick=quick)
    roof = Roofline((fp32, bf16), mem, info.cpu_model)

    assert fp32.timing is not None and mem.timing is not None and fp32.n is not None
    kernels = [
        kernel_point(f"sgemm n={fp32.n} (BLAS)", F.matmul(fp32.n, fp32.n, fp32.n), fp32.timing),
        kernel_point("triad (numpy, 2 passes)", triad_cost(mem.array_bytes), mem.timing),
        _matvec_point(4096 if quick else 8192, 0.1 if quick else 0.3),
        _small_matmul_point(64, 0.05 if quick else 0.2),
    ]
    if bf16.gflops and bf16.timing is not None and bf16.n:
        kernels.insert(1, kernel_point(f"bf16 matmul n={bf16.n} (torch)", F.matmul(bf16.n, bf16.n, bf16.n, dtype="bf16"), bf16.timing))
    sensors = probe_energy_sensors()

    fig = roof.plot(kernels, title=f"Roofline of {info.cpu_model or 'this machine'} (measured{', quick' if quick else ''})")
    plot_path = out / "roofline.png"
    fig.savefig(plot_path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)

    ridge = roof.ridge_intensity("float32") or float("nan")
    rec = record(
        "profile",
        quick=quick,
        peak_fp32_gflops=fp32.gflops,
        peak_fp32_median_gflops=fp32.median_gflops,
        fp32_threads=fp32.threads,
        peak_fp32_gflops_by_threads={str(p.threads): p.gflops for p in fp32_runs},
        peak_bf16_gflops=bf16.gflops,
        bf16_skipped_reason=bf16.skipped_reason,
        bandwidth_gbs=mem.gbs,
        bandwidth_median_gbs=mem.median_gbs,
        stream_triad_gbs=mem.stream_gbs,
        triad_array_bytes=mem.array_bytes,
        triad_threads=mem.threads,
        timer_resolution_ns=resolution,
        bench_overhead_ns=overhead,
        energy_sensors={s.name: s.available for s in sensors},
        kernels={k.name: [k.intensity, k.gflops] for k in kernels},
    )
    report = ProfileReport(
        report_path=out / "profile.md",
        plot_path=plot_path,
        quick=quick,
        duration_s=time.perf_counter() - t0,
        cpu_model=info.cpu_model,
        peak_fp32_gflops=fp32.gflops or 0.0,
        peak_fp32_gflops_by_threads={str(p.threads): p.gflops for p in fp32_runs},
        peak_bf16_gflops=bf16.gflops,
        bf16_skipped_reason=bf16.skipped_reason,
        bandwidth_gbs=mem.gbs,
        ridge_fp32_flop_per_byte=ridge,
        timer_resolution_ns=resolution,
        bench_overhead_ns=overhead,
        isa=tuple(info.isa_present),
        numpy_simd=tuple(info.numpy_simd.get("found", [])),
        energy_sensors=sensors,
        kernels=tuple(kernels),
        roofline=roof,
        record=rec,
    )
    warnings = (
        [f"fp32 ({p.threads} threads): {w}" for p in fp32_runs for w in p.warnings]
        + [f"bf16: {w}" for w in bf16.warnings]
        + [f"bandwidth: {w}" for w in mem.warnings]
    )
    report.report_path.write_text(_markdown(report, info, warnings), encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    """`sweatlab profile [--out DIR] [--quick]`: run the profile, print where the report is and a short table."""
    from sweatlab.measure.records import results_dir

    parser = argparse.ArgumentParser(
        prog="sweatlab profile",
        description="Measure this machine (peak fp32/bf16, memory bandwidth, timer, SIMD, energy sensors)"
        " and write profile.md and roofline.png.",
    )
    parser.add_argument("--out", metavar="DIR", default=None, help="output folder (default: results/profile in the course folder)")
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds (noisier)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else results_dir() / "profile"
    print(f"Profiling this machine{' (quick)' if args.quick else ''}; this takes {'a few seconds' if args.quick else 'up to a minute or two'}...", flush=True)
    try:
        report = run_profile(out, quick=args.quick)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    width = max(len(k) for k, _ in report.rows())
    for k, v in report.rows():
        print(f"  {k:<{width}}  {v}")
    print(f"Report: {report.report_path}")
    print(f"Plot:   {report.plot_path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
