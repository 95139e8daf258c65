"""`sweatlab doctor`: a pre-flight check of a learner's setup, one line per check.

Each check returns a :class:`Check`: ``ok``, ``warn`` (works, but something is worth knowing),
``info`` (what this machine has), or ``fail`` (something required is missing; ``fix`` says
the command that fixes it). The exit status is 1 when any check fails.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Callable

from sweatlab.course.layout import KERNEL_NAME  # stdlib only: doctor works on a broken install

STATUSES = ("ok", "info", "warn", "fail")


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table."""

    name: str
    status: str
    detail: str
    fix: str = ""


def _pins(extra: str | None = None) -> dict[str, str]:
    """name -> exact version, read from the installed package's own metadata (pyproject's pins)."""
    pins = {}
    for req in metadata.requires("sweatlab") or []:
        spec, _, marker = req.partition(";")
        wanted = f'extra == "{extra}"' in marker if extra else "extra ==" not in marker
        if wanted:
            match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s,;]+)", spec)
            if match:
                pins[match.group(1)] = match.group(2)
    return pins


def check_python() -> Check:
    v = sys.version_info
    text = f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"
    if v[:2] == (3, 11):
        return Check("python", "ok", text)
    if (3, 10) <= v[:2] < (3, 14):
        return Check("python", "warn", text + "; the course is tested on 3.11")
    return Check("python", "fail", text + "; 3.10-3.13 is needed",
                 "install Python 3.11, then: make PYTHON=python3.11 setup")


def _base_version(version: str) -> str:
    return version.split("+", 1)[0]  # torch 2.13.0+cpu is the 2.13.0 pin


def check_packages(pins: dict[str, str], label: str, required: bool) -> list[Check]:
    checks = []
    for name, want in sorted(pins.items()):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            checks.append(Check(f"{label} {name}", "fail" if required else "warn",
                                f"not installed (needs {want})", "make setup"))
            continue
        if _base_version(have) == want:
            checks.append(Check(f"{label} {name}", "ok", have))
        else:
            checks.append(Check(f"{label} {name}", "fail" if required else "warn",
                                f"{have} installed, the course pins {want}",
                                f"pip install '{name}=={want}'   (or: make setup)"))
    return checks


def check_kernel() -> Check:
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    fix = (f"{sys.executable} -m ipykernel install --sys-prefix --name {KERNEL_NAME} "
           "--display-name 'Python 3 (Systems That Sweat)'   (or: make setup)")
    if KERNEL_NAME not in specs:
        return Check("jupyter kernel", "fail", f"'{KERNEL_NAME}' is not registered", fix)
    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    exe = spec.argv[0] if spec.argv else ""
    same = exe == "python" or os.path.realpath(os.path.dirname(exe)) == os.path.realpath(os.path.dirname(sys.executable))
    if not same:
        return Check("jupyter kernel", "warn", f"'{KERNEL_NAME}' runs {exe}, not this environment's Python", fix)
    return Check("jupyter kernel", "ok", f"'{KERNEL_NAME}' in {specs[KERNEL_NAME]}")


def check_threads() -> Check:
    from sweatlab.measure.timing import thread_settings

    settings = thread_settings()
    cores = os.cpu_count() or 1
    parts, worst = [], "ok"
    for key, value in settings.items():
        if value is None or value == "" or isinstance(value, (list, dict)):
            continue
        parts.append(f"{key}={value}")
        if isinstance(value, int) and value > cores and "cores" not in key:
            worst = "warn"
    detail = ", ".join(parts) or "no thread settings found"
    if worst == "warn":
        return Check("threads", "warn", detail + f"; more threads than the {cores} logical cores oversubscribe",
                     "unset OMP_NUM_THREADS / MKL_NUM_THREADS, or set them to the number of cores")
    return Check("threads", "ok", detail)


def check_cpu() -> list[Check]:
    from sweatlab.measure.hardware import describe

    machine = describe()
    cores = f"{machine.physical_cores or '?'} physical / {machine.logical_cores or '?'} logical cores"
    checks = [Check("cpu", "info", f"{machine.cpu_model or 'unknown model'}, {machine.arch}, {cores}")]
    present = sorted(k for k, v in (machine.isa or {}).items() if v)
    checks.append(Check("cpu features", "info", ", ".join(present) or "none detected"))
    if machine.arch in ("x86_64", "AMD64") and not (machine.isa or {}).get("avx2"):
        checks.append(Check("simd", "warn", "no AVX2: vector-width comparisons in lab 02 run on what is there",
                            ""))
    return checks


def check_numba() -> Check:
    try:
        import numba

        @numba.njit(cache=False)
        def _add(a, b):
            return a + b

        assert _add(2, 3) == 5
        return Check("numba JIT", "ok", f"numba {numba.__version__} compiles (no C compiler needed)")
    except Exception as exc:  # a broken LLVM install shows up here, not in the labs
        return Check("numba JIT", "fail", f"cannot compile: {exc}", "make clean-venv setup")


def check_energy() -> Check:
    from sweatlab.measure.energy import probe_energy_sensors

    sensors = probe_energy_sensors()
    available = [s.name for s in sensors if s.available]
    if available:
        return Check("energy sensors", "ok", "measured energy from: " + ", ".join(available))
    reasons = "; ".join(f"{s.name}: {s.reason}" for s in sensors)
    return Check("energy sensors", "warn", "none readable, labs show labelled estimates (" + reasons + ")")


def check_energy_inputs() -> Check:
    """The TDP and core count every lab's energy estimate uses, and where they were read."""
    from sweatlab.measure.energy import CONFIG_FILE, estimate_inputs

    how = (f"set SWEAT_TDP_W and SWEAT_CHIP_CORES (your CPU's datasheet TDP in watts and its cores), or write "
           f"[energy] tdp_w = ... and chip_cores = ... in {CONFIG_FILE} in the course folder")
    try:
        inputs = estimate_inputs()
    except ValueError as exc:
        return Check("energy estimate inputs", "fail", str(exc).split(";")[0], how)
    if inputs.hypothetical:
        return Check("energy estimate inputs", "warn", f"the course's hypothetical default: {inputs}", how)
    return Check("energy estimate inputs", "ok", str(inputs))


def check_gpu() -> Check:
    from sweatlab.measure.hardware import describe

    gpus = describe().gpus or []
    if gpus:
        return Check("gpu", "info", "; ".join(str(g) for g in gpus))
    return Check("gpu", "info", "none found: every lab runs on the CPU; lab 05 uses datasheet figures for GPUs")


def _guard(name: str, fn: Callable[[], Check | list[Check]]) -> list[Check]:
    try:
        result = fn()
    except Exception as exc:  # one broken probe must not hide the others
        return [Check(name, "warn", f"could not check: {type(exc).__name__}: {exc}")]
    return result if isinstance(result, list) else [result]


def run_checks() -> list[Check]:
    """Every check, in the order a learner would fix them."""
    checks = [check_python()]
    checks += check_packages(_pins(), "package", required=True)
    checks += check_packages(_pins("test"), "test package", required=False)
    checks += _guard("jupyter kernel", check_kernel)
    checks += _guard("threads", check_threads)
    checks += _guard("cpu", check_cpu)
    checks += _guard("numba JIT", check_numba)
    checks += _guard("energy sensors", check_energy)
    checks += _guard("energy estimate inputs", check_energy_inputs)
    checks += _guard("gpu", check_gpu)
    return checks


def format_table(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'status':<6}  {'check':<{width}}  detail", f"{'-' * 6}  {'-' * width}  {'-' * 40}"]
    for c in checks:
        lines.append(f"{c.status.upper():<6}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status in ("fail", "warn"):
            lines.append(f"{'':<6}  {'':<{width}}  fix: {c.fix}")
    failed = [c for c in checks if c.status == "fail"]
    warned = [c for c in checks if c.status == "warn"]
    lines.append("")
    lines.append(f"{len(failed)} failed, {len(warned)} warnings, {len(checks)} checks"
                 + (": ready for the labs." if not failed else ": fix the FAIL lines above, then run make doctor again."))
    return "\n".join(lines)


def main(args) -> int:
    checks = run_checks()
    if getattr(args, "json", False):
        print(json.dumps([asdict(c) for c in checks], indent=1))
    else:
        print(format_table(checks))
    return 1 if any(c.status == "fail" for c in checks) else 0
