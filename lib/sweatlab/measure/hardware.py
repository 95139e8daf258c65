"""What machine is this? CPU, cores, ISA features, caches, BLAS, numpy SIMD, torch, GPUs.

    describe(import_torch=False) -> MachineInfo    one call, cached, well under a second
    summary() -> dict                              a small JSON-able digest for records

Sources: Linux /proc/cpuinfo and /sys/devices/system/cpu (x86 and ARM), macOS `sysctl`,
Windows registry; numpy's own CPU detection as a fallback for ISA features. The parsers
take text so they are tested on fixture text from other machines. Anything that cannot be
found is None, with the reason in `MachineInfo.reasons`: never a guess.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

__all__ = [
    "MachineInfo",
    "describe",
    "summary",
    "parse_cpuinfo",
    "parse_sysctl",
    "machine_from_sysctl",
    "isa_from_flags",
    "parse_cache_size",
    "read_sysfs_caches",
    "numpy_simd",
    "X86_FEATURES",
    "ARM_FEATURES",
]

# The ISA features that matter for the labs, named as Linux /proc/cpuinfo spells the flag.
X86_FEATURES: dict[str, str] = {
    "sse2": "sse2",
    "sse4_2": "sse4_2",
    "avx": "avx",
    "avx2": "avx2",
    "fma": "fma",
    "f16c": "f16c",
    "avx512f": "avx512f",
    "avx512bw": "avx512bw",
    "avx512vl": "avx512vl",
    "avx512_vnni": "avx512_vnni",
    "avx512_bf16": "avx512_bf16",
    "avx512_fp16": "avx512_fp16",
    "avx_vnni": "avx_vnni",
    "amx_tile": "amx_tile",
    "amx_bf16": "amx_bf16",
    "amx_int8": "amx_int8",
}
# Our name -> the Linux aarch64 `Features` word (32-bit ARM kernels say "neon").
ARM_FEATURES: dict[str, str] = {
    "neon": "asimd",
    "fp16": "asimdhp",
    "dotprod": "asimddp",
    "i8mm": "i8mm",
    "bf16": "bf16",
    "sve": "sve",
    "sve2": "sve2",
    "sme": "sme",
}
# numpy's runtime CPU-feature names -> ours (used where the OS gives no flag list: Windows).
_NUMPY_TO_ISA: dict[str, str] = {
    "SSE2": "sse2",
    "SSE42": "sse4_2",
    "AVX": "avx",
    "AVX2": "avx2",
    "FMA3": "fma",
    "F16C": "f16c",
    "AVX512F": "avx512f",
    "AVX512BW": "avx512bw",
    "AVX512VL": "avx512vl",
    "AVX512VNNI": "avx512_vnni",
    "AVX512BF16": "avx512_bf16",
    "AVX512FP16": "avx512_fp16",
    "ASIMD": "neon",
    "ASIMDHP": "fp16",
    "ASIMDDP": "dotprod",
    "SVE": "sve",
}
# ARM "CPU implementer" and "CPU part" ids (from the Arm technical reference manuals).
_ARM_IMPLEMENTERS = {
    "0x41": "Arm",
    "0x42": "Broadcom",
    "0x46": "Fujitsu",
    "0x48": "HiSilicon",
    "0x4e": "NVIDIA",
    "0x51": "Qualcomm",
    "0x61": "Apple",
    "0xc0": "Ampere",
}
_ARM_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1",
    "0xd0d": "Cortex-A77",
    "0xd40": "Neoverse-V1",
    "0xd41": "Cortex-A78",
    "0xd44": "Cortex-X1",
    "0xd46": "Cortex-A510",
    "0xd47": "Cortex-A710",
    "0xd48": "Cortex-X2",
    "0xd49": "Neoverse-N2",
    "0xd4f": "Neoverse-V2",
}
_VM_VENDORS = ("qemu", "kvm", "vmware", "virtualbox", "innotek", "xen", "amazon ec2", "google compute", "bochs", "parallels")


# ## Parsers (text in, dict out)


def _x86_isa(flags: set[str]) -> dict[str, bool | None]:
    return {name: flag in flags for name, flag in X86_FEATURES.items()}


def _arm_isa(flags: set[str]) -> dict[str, bool | None]:
    out: dict[str, bool | None] = {name: word in flags for name, word in ARM_FEATURES.items()}
    out["neon"] = bool({"asimd", "neon"} & flags)
    return out


def isa_from_flags(flags: set[str] | frozenset[str], arch: str) -> dict[str, bool | None]:
    """Map a Linux flag set to the feature dict for `arch` ('x86_64' or 'aarch64')."""
    return _arm_isa(set(flags)) if _is_arm(arch) else _x86_isa(set(flags))


def _is_arm(arch: str | None) -> bool:
    return bool(arch) and (arch.lower().startswith(("arm", "aarch")))  # type: ignore[union-attr]


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """Parse /proc/cpuinfo text (x86 or ARM) into model, vendor, core counts, flags and arch.

    Returns keys cpu_model, vendor, arch ('x86_64'/'aarch64'/None), logical_cores,
    physical_cores, flags (frozenset), isa (dict), virtual_machine, reasons.
    """
    blocks: list[dict[str, str]] = []
    extra: dict[str, str] = {}
    for chunk in re.split(r"\n\s*\n", text.strip()):
        block: dict[str, str] = {}
        for line in chunk.splitlines():
            if ":" in line:
                key, _, value = line.partition(":")
                block[key.strip().lower()] = value.strip()
        if "processor" in block and block["processor"].isdigit():
            blocks.append(block)
        else:
            extra.update(block)  # ARM boards put Hardware/Model lines after the cpus
    reasons: dict[str, str] = {}
    out: dict[str, Any] = {"logical_cores": len(blocks) or None}
    if not blocks:
        reasons["logical_cores"] = "no 'processor' entries in cpuinfo"
    first = blocks[0] if blocks else {}
    if "flags" in first or "vendor_id" in first:
        out["arch"] = "x86_64"
        flags = frozenset(first.get("flags", "").split())
        out["vendor"] = first.get("vendor_id")
        out["cpu_model"] = first.get("model name") or None
        if not out["cpu_model"]:
            reasons["cpu_model"] = "cpuinfo has no 'model name'"
        cores = {(b.get("physical id"), b.get("core id")) for b in blocks}
        if all(b.get("core id") is not None for b in blocks) and blocks:
            out["physical_cores"] = len(cores)
        else:
            out["physical_cores"] = None
            reasons["physical_cores"] = "cpuinfo has no 'core id' fields"
        out["virtual_machine"] = "hypervisor" in flags  # the CPUID hypervisor bit
    elif "features" in first or "cpu implementer" in first:
        out["arch"] = "aarch64"
        flags = frozenset(first.get("features", "").split())
        impl = first.get("cpu implementer", "").lower()
        out["vendor"] = _ARM_IMPLEMENTERS.get(impl, f"implementer {impl}" if impl else None)
        names: list[str] = []
        for b in blocks:
            part = b.get("cpu part", "").lower()
            if not part:
                continue
            label = _ARM_PARTS.get(part) if impl == "0x41" else None
            label = label or f"{out['vendor']} CPU part {part}"
            if label not in names:
                names.append(label)
        model = first.get("model name")  # some kernels print it, often just "ARMv8 Processor"
        out["cpu_model"] = " + ".join(names) if names else model
        if not out["cpu_model"]:
            reasons["cpu_model"] = "cpuinfo has no CPU part or model name"
        out["physical_cores"] = None
        reasons["physical_cores"] = "ARM cpuinfo has no core ids; the OS topology is used instead"
        out["virtual_machine"] = None
        reasons["virtual_machine"] = "ARM cpuinfo has no hypervisor flag"
    else:
        flags = frozenset()
        out.update(arch=None, vendor=None, cpu_model=None, physical_cores=None, virtual_machine=None)
        reasons["cpu_model"] = "unrecognised cpuinfo format"
    if extra.get("model") and out.get("arch") == "aarch64":
        out["board"] = extra["model"]
    out["flags"] = flags
    out["isa"] = isa_from_flags(flags, out["arch"]) if out.get("arch") else {}
    out["reasons"] = reasons
    return out


def parse_sysctl(text: str) -> dict[str, str]:
    """Parse `sysctl` output ('key: value' lines) into a dict of strings."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def machine_from_sysctl(values: dict[str, str]) -> dict[str, Any]:
    """Machine facts from parsed macOS `sysctl hw machdep` output (Apple silicon or Intel).

    Returns cpu_model, arch, physical_cores, logical_cores, isa, cache_bytes, reasons.
    A feature whose key is missing is None (this macOS does not report it), not False.
    """
    reasons: dict[str, str] = {}
    machine = values.get("hw.machine", "").lower()
    arm = machine.startswith("arm") or any(k.startswith("hw.optional.arm") for k in values)
    out: dict[str, Any] = {
        "arch": "arm64" if arm else ("x86_64" if machine else None),
        "cpu_model": values.get("machdep.cpu.brand_string") or None,
        "physical_cores": _int_or_none(values.get("hw.physicalcpu")),
        "logical_cores": _int_or_none(values.get("hw.logicalcpu")),
    }
    for key in ("cpu_model", "physical_cores", "logical_cores"):
        if out[key] is None:
            reasons[key] = "not in sysctl output"

    def flag(*keys: str) -> bool | None:
        seen = [values[k] for k in keys if k in values]
        return any(v.strip() == "1" for v in seen) if seen else None

    if arm:
        isa: dict[str, bool | None] = {
            "neon": flag("hw.optional.neon", "hw.optional.AdvSIMD"),
            "fp16": flag("hw.optional.arm.FEAT_FP16", "hw.optional.neon_fp16"),
            "dotprod": flag("hw.optional.arm.FEAT_DotProd"),
            "i8mm": flag("hw.optional.arm.FEAT_I8MM"),
            "bf16": flag("hw.optional.arm.FEAT_BF16"),
            "sve": flag("hw.optional.arm.FEAT_SVE"),
            "sve2": flag("hw.optional.arm.FEAT_SVE2"),
            "sme": flag("hw.optional.arm.FEAT_SME"),
        }
    else:
        words = set((values.get("machdep.cpu.features", "") + " " + values.get("machdep.cpu.leaf7_features", "")).upper().split())

        def x86(opt: str, *tokens: str) -> bool | None:
            got = flag(f"hw.optional.{opt}")
            if got is None and words:
                got = any(t in words for t in tokens)
            return got

        isa = {
            "sse2": x86("sse2", "SSE2"),
            "sse4_2": x86("sse4_2", "SSE4.2"),
            "avx": x86("avx1_0", "AVX1.0"),
            "avx2": x86("avx2_0", "AVX2"),
            "fma": x86("fma", "FMA"),
            "f16c": x86("f16c", "F16C"),
            "avx512f": x86("avx512f", "AVX512F"),
            "avx512bw": x86("avx512bw", "AVX512BW"),
            "avx512vl": x86("avx512vl", "AVX512VL"),
            "avx512_vnni": x86("avx512vnni", "AVX512VNNI"),
            "avx512_bf16": x86("avx512bf16", "AVX512BF16"),
            "avx512_fp16": None,
            "avx_vnni": None,
            "amx_tile": None,
            "amx_bf16": None,
            "amx_int8": None,
        }
    unknown = sorted(k for k, v in isa.items() if v is None)
    if unknown:
        reasons["isa"] = f"not reported by this macOS: {', '.join(unknown)}"
    out["isa"] = isa
    caches: dict[str, int | None] = {}
    for label, key in (("L1d", "hw.l1dcachesize"), ("L1i", "hw.l1icachesize"), ("L2", "hw.l2cachesize"), ("L3", "hw.l3cachesize")):
        size = _int_or_none(values.get(key))
        caches[label] = size if size else None
    missing = [k for k, v in caches.items() if v is None]
    if missing:
        reasons["cache_bytes"] = f"sysctl reports no {', '.join(missing)} (Apple silicon has no L3; its SLC is not reported)" if arm else f"sysctl reports no {', '.join(missing)}"
    out["cache_bytes"] = caches
    if values.get("sysctl.proc_translated", "").strip() == "1":
        reasons["arch"] = "this Python runs under Rosetta 2 (x86-64 translated on an Apple silicon Mac): install an arm64 Python for real speed"
    out["reasons"] = reasons
    return out


def parse_cache_size(text: str) -> int:
    """'32K' -> 32768, '2M' -> 2097152, '1024' -> 1024: a sysfs cache size in bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", text, flags=re.IGNORECASE)
    if not m:
        raise ValueError(f"not a cache size: {text!r}")
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2).upper()]


def read_sysfs_caches(root: str | os.PathLike[str] = "/sys/devices/system/cpu") -> dict[str, int]:
    """Per-instance cache sizes seen by cpu0, {'L1d': bytes, 'L1i': ..., 'L2': ..., 'L3': ...}."""
    base = Path(root) / "cpu0" / "cache"
    out: dict[str, int] = {}
    if not base.is_dir():
        return out
    for index in sorted(base.glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = parse_cache_size((index / "size").read_text())
        except (OSError, ValueError):
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        out[f"L{level}{suffix}"] = size
    return out


# ## Libraries


def numpy_simd() -> dict[str, list[str]]:
    """numpy's SIMD dispatch: baseline targets, and dispatch targets found / not found on this CPU."""
    try:
        from numpy._core._multiarray_umath import __cpu_baseline__, __cpu_dispatch__, __cpu_features__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import (  # type: ignore[no-redef]
            __cpu_baseline__,
            __cpu_dispatch__,
            __cpu_features__,
        )
    return {
        "baseline": list(__cpu_baseline__),
        "found": [t for t in __cpu_dispatch__ if __cpu_features__.get(t)],
        "not_found": [t for t in __cpu_dispatch__ if not __cpu_features__.get(t)],
    }


def _numpy_isa() -> dict[str, bool | None]:
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__  # type: ignore[no-redef]
    return {ours: bool(__cpu_features__[np]) for np, ours in _NUMPY_TO_ISA.items() if np in __cpu_features__}


def _numpy_blas(reasons: dict[str, str]) -> tuple[str | None, int | None]:
    from sweatlab.measure.timing import thread_settings

    ts = thread_settings()
    if ts.get("blas"):
        return ts["blas"], ts.get("blas_threads")
    try:
        import numpy as np

        deps = np.show_config(mode="dicts").get("Build Dependencies", {})
        blas = deps.get("blas", {})
        if blas.get("name"):
            reasons["blas_threads"] = "threadpoolctl cannot see this BLAS at run time, so its thread count is unknown"
            return f"{blas['name']} {blas.get('version', '')}".strip() + " (from numpy's build info)", None
    except Exception as err:  # pragma: no cover - depends on numpy build
        reasons["blas"] = f"numpy's build info unreadable: {err}"
        return None, None
    reasons["blas"] = "neither threadpoolctl nor numpy's build info names a BLAS"
    return None, None


def capture_fd1(fn: Callable[[], Any]) -> str:
    """What C code wrote to file descriptor 1 while ``fn`` ran (oneDNN's verbose lines, say)."""
    import tempfile

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 1)
            try:
                fn()
                try:
                    import ctypes

                    ctypes.CDLL(None).fflush(None)
                except Exception:
                    pass
            finally:
                os.dup2(saved, 1)
            tmp.seek(0)
            return tmp.read().decode(errors="replace")
    finally:
        os.close(saved)


def _onednn_isa() -> str | None:
    """The ISA line oneDNN prints when verbose (e.g. 'Intel AVX2'), captured from fd 1."""
    import torch

    if not torch.backends.mkldnn.is_available():
        return None

    def smallest_call() -> None:
        with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
            torch.zeros(8, 8).to_mkldnn()  # the smallest oneDNN call: one reorder

    text = capture_fd1(smallest_call)
    from sweatlab.measure.onednn import isa_line

    return isa_line(text)


def _torch_facts(reasons: dict[str, str], import_torch: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"torch_version": None, "torch_cpu_capability": None, "onednn_isa": None, "_torch": None}
    torch = sys.modules.get("torch")
    if torch is None and import_torch:
        try:
            import torch  # type: ignore[no-redef]
        except ImportError:
            torch = None
            reasons["torch_cpu_capability"] = "torch is not installed"
    elif torch is None:
        reasons["torch_cpu_capability"] = "torch not imported (describe(import_torch=True) imports it, ~1 s)"
    if torch is None:
        reasons.setdefault("onednn_isa", reasons.get("torch_cpu_capability", "torch unavailable"))
        return out
    out["_torch"] = torch
    out["torch_version"] = str(torch.__version__)
    try:
        out["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except Exception as err:
        reasons["torch_cpu_capability"] = f"torch.backends.cpu.get_cpu_capability() failed: {err}"
    try:
        out["onednn_isa"] = _onednn_isa()
        if out["onednn_isa"] is None:
            reasons["onednn_isa"] = "oneDNN is not built into this torch, or printed no ISA line"
    except Exception as err:
        reasons["onednn_isa"] = f"could not read oneDNN's ISA (run with ONEDNN_VERBOSE=1 to see it): {err}"
    return out


def _gpus(torch: Any, reasons: dict[str, str]) -> tuple[dict[str, Any], ...] | None:
    found: list[dict[str, Any]] = []
    if torch is not None:
        try:
            if torch.cuda.is_available():
                for i in range(torch.cuda.device_count()):
                    p = torch.cuda.get_device_properties(i)
                    found.append({"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1), "source": "torch.cuda"})
            mps = getattr(torch.backends, "mps", None)
            if mps is not None and mps.is_available():
                found.append({"name": "Apple GPU (MPS)", "memory_gib": None, "source": "torch.backends.mps"})
        except Exception as err:
            reasons["gpus"] = f"torch GPU query failed: {err}"
        if found:
            return tuple(found)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        reasons.setdefault("gpus", "no NVIDIA GPU found: nvidia-smi is not on PATH (no NVIDIA driver)")
        return ()
    try:
        proc = subprocess.run(
            [smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        reasons["gpus"] = f"nvidia-smi failed: {err}"
        return None
    if proc.returncode != 0:
        reasons["gpus"] = f"nvidia-smi failed: {(proc.stderr or proc.stdout).strip()[:200]}"
        return None
    for line in proc.stdout.strip().splitlines():
        name, _, mem = line.rpartition(",")
        try:
            mem_gib: float | None = round(float(mem) / 1024, 1)  # MiB -> GiB
        except ValueError:
            mem_gib = None
        found.append({"name": name.strip(), "memory_gib": mem_gib, "source": "nvidia-smi"})
    if not found:
        reasons["gpus"] = "nvidia-smi lists no GPU"
    return tuple(found)


def _dmi_says_vm(root: str = "/sys/class/dmi/id") -> bool | None:
    texts = []
    for name in ("sys_vendor", "product_name"):
        try:
            texts.append(Path(root, name).read_text().strip().lower())
        except OSError:
            pass
    if not texts:
        return None
    joined = " ".join(texts)
    if any(v in joined for v in _VM_VENDORS) or "virtual machine" in joined:
        return True
    return None


# ## The description


@dataclass(frozen=True, repr=False)
class MachineInfo:
    """Facts about this machine; None means unknown, with the reason in `reasons`."""

    os: str
    arch: str
    cpu_model: str | None
    physical_cores: int | None
    logical_cores: int | None
    usable_cores: int | None  # cores this process may run on (affinity / cgroup cpuset)
    isa: dict[str, bool | None]  # feature -> present; None = not reported here
    cache_bytes: dict[str, int | None]  # 'L1d', 'L1i', 'L2', 'L3': per-instance size
    memory_gib: float | None
    virtual_machine: bool | None
    blas: str | None  # the BLAS behind numpy, e.g. 'openblas 0.3.31, Haswell kernels, pthreads'
    blas_threads: int | None  # at the first describe(); timing.thread_settings() gives the live value
    numpy_version: str
    numpy_simd: dict[str, list[str]]  # baseline / found / not_found dispatch targets
    torch_version: str | None
    torch_cpu_capability: str | None  # 'AVX512', 'AVX2', 'DEFAULT', ...
    onednn_isa: str | None
    gpus: tuple[dict[str, Any], ...] | None  # () = looked and found none; None = could not look
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def isa_present(self) -> list[str]:
        """Names of the ISA features known to be present."""
        return [k for k, v in self.isa.items() if v]

    def summary(self) -> dict[str, Any]:
        """A small JSON-able digest for records."""
        return {
            "cpu_model": self.cpu_model,
            "os": self.os,
            "arch": self.arch,
            "physical_cores": self.physical_cores,
            "logical_cores": self.logical_cores,
            "usable_cores": self.usable_cores,
            "memory_gib": self.memory_gib,
            "virtual_machine": self.virtual_machine,
            "isa": self.isa_present,
            "l2_bytes": self.cache_bytes.get("L2"),
            "l3_bytes": self.cache_bytes.get("L3"),
            "blas": self.blas,
            "blas_threads": self.blas_threads,
            "numpy_simd": self.numpy_simd.get("found", []),
            "torch_cpu_capability": self.torch_cpu_capability,
            "gpus": [g["name"] for g in self.gpus] if self.gpus else [],
        }

    def __repr__(self) -> str:
        def mib(b: int | None) -> str:
            return "?" if b is None else (f"{b // 2**20} MiB" if b >= 2**20 else f"{b // 1024} KiB")

        caches = ", ".join(f"{k} {mib(v)}" for k, v in self.cache_bytes.items()) or "unknown"
        gpus = "unknown" if self.gpus is None else (", ".join(g["name"] for g in self.gpus) or "none")
        vm = {True: ", virtual machine", False: "", None: ""}[self.virtual_machine]
        lines = [
            f"MachineInfo({self.cpu_model or 'unknown CPU'}, {self.os} {self.arch}{vm}",
            f"  cores: {self.physical_cores} physical, {self.logical_cores} logical, {self.usable_cores} usable;"
            f" memory {self.memory_gib} GiB",
            f"  ISA: {' '.join(self.isa_present) or 'none known'}",
            f"  caches: {caches}",
            f"  BLAS: {self.blas} ({self.blas_threads} threads); numpy {self.numpy_version} SIMD: {' '.join(self.numpy_simd.get('found', [])) or 'baseline only'}",
            f"  torch: {self.torch_version or '-'}, CPU capability {self.torch_cpu_capability or '-'}, oneDNN ISA {self.onednn_isa or '-'}",
            f"  GPUs: {gpus})",
        ]
        return "\n".join(lines)


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _windows_cpu_model() -> str | None:  # pragma: no cover - Windows only
    try:
        import winreg

        key = winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0")
        return str(winreg.QueryValueEx(key, "ProcessorNameString")[0]).strip()
    except Exception:
        return None


@lru_cache(maxsize=4)
def _describe(import_torch: bool, torch_loaded: bool) -> MachineInfo:
    import numpy as np

    reasons: dict[str, str] = {}
    system = platform.system() or "unknown"
    arch = platform.machine() or "unknown"
    cpu: dict[str, Any] = {}
    caches: dict[str, int | None] = {}

    if system == "Linux":
        text = _read_text("/proc/cpuinfo")
        if text:
            cpu = parse_cpuinfo(text)
            reasons.update(cpu.pop("reasons"))
        else:
            reasons["cpu_model"] = "/proc/cpuinfo is unreadable"
        caches = dict(read_sysfs_caches())
        if not caches:
            reasons["cache_bytes"] = "no cache info in /sys/devices/system/cpu/cpu0/cache (common on ARM and in VMs)"
    elif system == "Darwin":
        try:
            proc = subprocess.run(["sysctl", "hw", "machdep", "sysctl.proc_translated"], capture_output=True, text=True, timeout=5)
            cpu = machine_from_sysctl(parse_sysctl(proc.stdout))
            reasons.update(cpu.pop("reasons"))
            caches = cpu.pop("cache_bytes")
        except (OSError, subprocess.TimeoutExpired) as err:
            reasons["cpu_model"] = f"sysctl failed: {err}"
    elif system == "Windows":  # pragma: no cover - Windows only
        cpu["cpu_model"] = _windows_cpu_model()
        if cpu["cpu_model"] is None:
            reasons["cpu_model"] = "registry has no ProcessorNameString"
        reasons["cache_bytes"] = "cache sizes are not read on Windows"
    else:
        reasons["cpu_model"] = f"no CPU reader for {system}"

    for level in ("L1d", "L1i", "L2", "L3"):
        caches.setdefault(level, None)
    missing = [k for k, v in caches.items() if v is None]
    if missing and "cache_bytes" not in reasons:
        reasons["cache_bytes"] = f"not reported: {', '.join(missing)}"

    isa: dict[str, bool | None] = dict(cpu.get("isa") or {})
    if not isa:
        isa = _numpy_isa()
        reasons["isa"] = "from numpy's runtime CPU detection (no OS flag list here); AMX is not covered"
        if _is_arm(arch):
            isa = {k: isa.get(k) for k in ARM_FEATURES}
        else:
            isa = {k: isa.get(k) for k in X86_FEATURES}

    logical = os.cpu_count()
    physical = cpu.get("physical_cores")
    if physical is None:
        try:
            import psutil

            physical = psutil.cpu_count(logical=False)
        except Exception:
            physical = None
        if physical is not None:
            reasons.pop("physical_cores", None)
        else:
            reasons.setdefault("physical_cores", "the OS does not report physical cores")
    try:
        usable: int | None = len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        usable = logical
    try:
        import psutil

        memory_gib: float | None = round(psutil.virtual_memory().total / 2**30, 1)
    except Exception as err:
        memory_gib = None
        reasons["memory_gib"] = f"psutil failed: {err}"

    vm = cpu.get("virtual_machine")
    if vm is not True and system == "Linux":
        dmi = _dmi_says_vm()
        if dmi or os.path.exists("/sys/hypervisor/type"):
            vm = True
    if vm is None:
        reasons.setdefault("virtual_machine", "no hypervisor flag or VM vendor string found")
    else:
        reasons.pop("virtual_machine", None)

    blas, blas_threads = _numpy_blas(reasons)
    torch_facts = _torch_facts(reasons, import_torch)
    gpus = _gpus(torch_facts.pop("_torch"), reasons)

    return MachineInfo(
        os=system,
        arch=cpu.get("arch") or arch,
        cpu_model=cpu.get("cpu_model"),
        physical_cores=physical,
        logical_cores=logical,
        usable_cores=usable,
        isa=isa,
        cache_bytes=caches,
        memory_gib=memory_gib,
        virtual_machine=vm,
        blas=blas,
        blas_threads=blas_threads,
        numpy_version=np.__version__,
        numpy_simd=numpy_simd(),
        torch_version=torch_facts["torch_version"],
        torch_cpu_capability=torch_facts["torch_cpu_capability"],
        onednn_isa=torch_facts["onednn_isa"],
        gpus=gpus,
        reasons=reasons,
    )


def describe(import_torch: bool = False, refresh: bool = False) -> MachineInfo:
    """Describe this machine (cached). torch is asked only if already imported or `import_torch`."""
    if refresh:
        _describe.cache_clear()
    return _describe(import_torch, "torch" in sys.modules)


def summary(import_torch: bool = False) -> dict[str, Any]:
    """describe(...).summary(): a small JSON-able dict for records."""
    return describe(import_torch=import_torch).summary()
