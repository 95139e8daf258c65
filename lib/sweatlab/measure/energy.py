"""Energy: read a real sensor where there is one, else say so; estimate only when asked.

    probe_energy_sensors() -> tuple[SensorStatus, ...]     each sensor, available or not, and why
    with EnergyMeter() as m: work()   ->  m.reading        an EnergyReading
    m = EnergyMeter(); m.begin(); work(); r = m.end()

Sensors:
    rapl          Linux powercap (Intel RAPL; AMD Zen, families 17h/19h, since Linux 5.11, when the
                  intel_rapl powercap driver learned AMD's RAPL MSRs; the separate amd_energy hwmon
                  driver of Linux 5.8 is not read here): cumulative µJ counters per
                  domain under /sys/class/powercap; whole-package energy, all programs included.
    nvml          NVIDIA GPUs (Volta and newer) through NVML's total-energy counter, via the
                  pynvml module (nvidia-ml-py) or, without it, the driver's libnvidia-ml directly.
    powermetrics  macOS; needs sudo, so it is listed but not read.

RAPL domains are nested: a package contains its core, uncore (graphics) and, on servers, dram
subdomains; psys (the whole platform, on some laptops) contains the packages. So
    joules = sum of the top-level package domains (+ NVIDIA GPUs, which RAPL never sees);
subdomains are reported in `detail_j` and are never added. With prefer_psys=True and a psys
domain present, joules = psys alone (packages then go to `detail_j`).

A counter that went backwards wrapped: it restarted from 0 after max_energy_range_uj, so
delta = end - start + max_energy_range_uj. A background thread reads the counters every
`poll_s` seconds so that a long window that wraps more than once is still right.

kind: "measured" (a sensor), "estimated" (only with estimate=True: a stated TDP model),
"unavailable" (joules is None, never 0; `reason` says why).

Which devices a reading covers is part of it (`devices`): a meter measures the CPU by default,
from CPU domains only, and is "unavailable" where the CPU has no sensor, even when a GPU's counter
is there; an idle GPU's 70-80 W are not the energy of a matrix product on the CPU. A meter with
devices="gpu" (or "cpu+gpu") counts the GPUs, and first samples each GPU's idle power for
`gpu_baseline_s`, so that a reading can say how much of a GPU's energy its work added.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "SensorStatus",
    "EnergyReading",
    "EnergyMeter",
    "RaplZone",
    "find_rapl_zones",
    "probe_energy_sensors",
    "DEFAULT_RAPL_ROOT",
]

DEFAULT_RAPL_ROOT = "/sys/class/powercap"
_ZONE_RE = re.compile(r"(intel-rapl(?:-mmio)?):(\d+(?::\d+)*)")
_PERMISSION_HELP = (
    "since Linux 5.10 only root may read RAPL counters (CVE-2020-8694). Ask an admin for read access"
    " (a udev rule giving a group mode 0440 on energy_uj), or run as root"
)


def _now() -> float:
    """The meter's clock in seconds (one place, so tests can drive it)."""
    return time.perf_counter()


def _read_text(path: Path) -> str:
    """Read a sysfs file (one place, so tests can simulate permission errors)."""
    with open(path, encoding="ascii") as f:
        return f.read()


# ## Sensor status


@dataclass(frozen=True)
class SensorStatus:
    """One energy sensor: available or not, why, and the domains it would report."""

    name: str  # "rapl", "nvml", "powermetrics"
    available: bool
    reason: str  # what it reads when available; why not when unavailable
    domains: tuple[str, ...] = ()
    device: Literal["cpu", "gpu", "soc"] = "cpu"


# ## RAPL


@dataclass(frozen=True)
class RaplZone:
    """One powercap zone: id like 'intel-rapl:0:1', name like 'core', its parent's id, wrap range."""

    zone_id: str
    name: str
    path: Path
    parent: str | None
    max_energy_range_uj: int | None

    @property
    def top_level(self) -> bool:
        """True for a zone with no parent (a package, psys, or a top-level dram)."""
        return self.parent is None


def find_rapl_zones(root: str | os.PathLike[str] = DEFAULT_RAPL_ROOT) -> list[RaplZone]:
    """Zones under `root` that have an energy counter; MMIO copies of MSR zones are dropped.

    Works on the flat /sys/class/powercap layout and on the nested /sys/devices/virtual/powercap one.
    """
    root = Path(root)
    found: dict[str, Path] = {}

    def visit(d: Path, depth: int) -> None:
        try:
            entries = sorted(d.iterdir())
        except OSError:
            return
        for e in entries:
            if _ZONE_RE.fullmatch(e.name) and e.name not in found and (e / "energy_uj").exists():
                found[e.name] = e
            if depth < 3 and (e.name.startswith("intel-rapl")) and e.is_dir():
                visit(e, depth + 1)

    visit(root, 0)
    zones: list[RaplZone] = []
    for zone_id, path in found.items():
        try:
            name = _read_text(path / "name").strip()
        except OSError:
            name = zone_id
        try:
            max_uj: int | None = int(_read_text(path / "max_energy_range_uj").strip())
        except (OSError, ValueError):
            max_uj = None
        parent = zone_id.rsplit(":", 1)[0] if zone_id.count(":") >= 2 else None
        zones.append(RaplZone(zone_id, name, path, parent, max_uj))
    msr_top = {z.name for z in zones if z.top_level and not z.zone_id.startswith("intel-rapl-mmio")}
    mmio_dupes = {z.zone_id for z in zones if z.zone_id.startswith("intel-rapl-mmio") and z.top_level and z.name in msr_top}
    return [z for z in zones if z.zone_id not in mmio_dupes and (z.parent not in mmio_dupes)]


def _zone_labels(zones: list[RaplZone]) -> dict[str, str]:
    by_id = {z.zone_id: z for z in zones}
    labels: dict[str, str] = {}
    for z in zones:
        if z.top_level:
            labels[z.zone_id] = z.name
        else:
            parent = by_id.get(z.parent or "")
            labels[z.zone_id] = f"{parent.name if parent else z.parent}/{z.name}"
    # Two top-level zones with the same name (rare): keep them apart.
    counts: dict[str, int] = {}
    for v in labels.values():
        counts[v] = counts.get(v, 0) + 1
    return {k: (f"{v} ({k})" if counts[v] > 1 else v) for k, v in labels.items()}


class _RaplCounter:
    """Accumulates µJ deltas per zone across reads, correcting for counter wraparound."""

    def __init__(self, zones: list[RaplZone]) -> None:
        self.zones = zones
        self.lock = threading.Lock()
        self.total_uj = {z.zone_id: 0 for z in zones}
        self.wraps = {z.zone_id: 0 for z in zones}
        self.broken: dict[str, str] = {}
        self.last = self._read()

    def _read(self) -> dict[str, int]:
        return {z.zone_id: int(_read_text(z.path / "energy_uj").strip()) for z in self.zones}

    def update(self) -> None:
        with self.lock:  # read inside the lock: two interleaved readers would fake a wrap
            now = self._read()
            for z in self.zones:
                delta = now[z.zone_id] - self.last[z.zone_id]
                if delta < 0:
                    if z.max_energy_range_uj:
                        delta += z.max_energy_range_uj
                        self.wraps[z.zone_id] += 1
                    else:
                        self.broken[z.zone_id] = "counter went backwards and max_energy_range_uj is unreadable, so the wrap cannot be corrected"
                        delta = 0
                self.total_uj[z.zone_id] += delta
            self.last = now


def _rapl_status(root: str | os.PathLike[str]) -> tuple[SensorStatus, list[RaplZone]]:
    if platform.system() != "Linux":
        return SensorStatus("rapl", False, f"RAPL powercap is a Linux interface; this is {platform.system()}"), []
    root = Path(root)
    if not root.exists():
        from sweatlab.measure.hardware import describe

        vm = describe().virtual_machine
        why = f"no {root}: the kernel exposes no RAPL energy counters here"
        if vm:
            why += "; this is a virtual machine (the CPU reports a hypervisor), and VMs do not pass RAPL through"
        else:
            why += " (it needs an Intel CPU, or AMD Zen with Linux >= 5.11, and the intel_rapl driver; containers may hide it)"
        return SensorStatus("rapl", False, why), []
    try:
        zones = find_rapl_zones(root)
    except PermissionError as err:
        return SensorStatus("rapl", False, f"permission denied listing {root}: {err}"), []
    if not zones:
        return SensorStatus("rapl", False, f"no RAPL zones with an energy counter under {root} (driver not loaded? try `sudo modprobe intel_rapl_msr`)"), []
    for z in zones:
        try:
            int(_read_text(z.path / "energy_uj").strip())
        except PermissionError:
            return SensorStatus("rapl", False, f"permission denied reading {z.path / 'energy_uj'}: {_PERMISSION_HELP}"), zones
        except (OSError, ValueError) as err:
            return SensorStatus("rapl", False, f"cannot read {z.path / 'energy_uj'}: {err}"), zones
    labels = _zone_labels(zones)
    domains = tuple(labels[z.zone_id] for z in zones)
    top = ", ".join(labels[z.zone_id] for z in zones if z.top_level)
    return SensorStatus("rapl", True, f"reads {top} (whole-package energy: every program counts)", domains), zones


# ## NVML


class _CtypesNVML:
    """The few NVML calls needed, pynvml-style, straight from the driver's libnvidia-ml."""

    class NVMLError(Exception):
        pass

    def __init__(self, lib: Any) -> None:
        self._lib = lib

    @classmethod
    def load(cls) -> _CtypesNVML | None:
        names = ["libnvidia-ml.so.1", "libnvidia-ml.so", "nvml.dll"]
        found = ctypes.util.find_library("nvidia-ml")
        if found:
            names.insert(0, found)
        for name in names:
            try:
                return cls(ctypes.CDLL(name))
            except OSError:
                continue
        return None

    def _check(self, code: int) -> None:
        if code != 0:
            msg = "error"
            try:
                f = self._lib.nvmlErrorString
                f.restype = ctypes.c_char_p
                msg = f(code).decode()
            except Exception:
                pass
            raise self.NVMLError(f"NVML error {code}: {msg}")

    def nvmlInit(self) -> None:
        self._check(self._lib.nvmlInit_v2())

    def nvmlShutdown(self) -> None:
        self._check(self._lib.nvmlShutdown())

    def nvmlDeviceGetCount(self) -> int:
        n = ctypes.c_uint()
        self._check(self._lib.nvmlDeviceGetCount_v2(ctypes.byref(n)))
        return n.value

    def nvmlDeviceGetHandleByIndex(self, i: int) -> Any:
        h = ctypes.c_void_p()
        self._check(self._lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(i), ctypes.byref(h)))
        return h

    def nvmlDeviceGetName(self, h: Any) -> str:
        buf = ctypes.create_string_buffer(96)
        self._check(self._lib.nvmlDeviceGetName(h, buf, ctypes.c_uint(96)))
        return buf.value.decode()

    def nvmlDeviceGetTotalEnergyConsumption(self, h: Any) -> int:
        mj = ctypes.c_ulonglong()
        self._check(self._lib.nvmlDeviceGetTotalEnergyConsumption(h, ctypes.byref(mj)))
        return mj.value


def _load_nvml(module: Any = None) -> tuple[Any | None, str]:
    if module is not None:
        return module, "the given NVML module"
    try:
        import pynvml  # type: ignore[import-not-found]

        return pynvml, "pynvml"
    except Exception:
        pass
    lib = _CtypesNVML.load()
    if lib is not None:
        return lib, "libnvidia-ml"
    return None, ""


def _nvml_status(module: Any = None) -> tuple[SensorStatus, Any | None, list[tuple[str, Any]]]:
    nvml, via = _load_nvml(module)
    if nvml is None:
        smi = " (nvidia-smi is on PATH but the NVML library did not load)" if shutil.which("nvidia-smi") else " and no nvidia-smi"
        return SensorStatus("nvml", False, f"no NVIDIA driver: no NVML library (pynvml or libnvidia-ml){smi}", device="gpu"), None, []
    try:
        nvml.nvmlInit()
        count = nvml.nvmlDeviceGetCount()
    except Exception as err:
        return SensorStatus("nvml", False, f"NVML did not start ({via}): {err}", device="gpu"), None, []
    if count == 0:
        return SensorStatus("nvml", False, "NVML runs but sees no NVIDIA GPU", device="gpu"), nvml, []
    ok: list[tuple[str, Any]] = []
    problems: list[str] = []
    for i in range(count):
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            name = nvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
        except Exception as err:
            problems.append(f"gpu{i}: {err}")
            continue
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            ok.append((f"gpu{i}", handle))
        except Exception as err:
            problems.append(f"gpu{i} ({name}) has no energy counter (GPUs before Volta have none): {err}")
    if not ok:
        return SensorStatus("nvml", False, "; ".join(problems), device="gpu"), nvml, []
    reason = f"reads the total-energy counter of {', '.join(k for k, _ in ok)} via {via} (updates every 20-100 ms)"
    if problems:
        reason += "; skipped: " + "; ".join(problems)
    return SensorStatus("nvml", True, reason, tuple(k for k, _ in ok), device="gpu"), nvml, ok


def _powermetrics_status() -> SensorStatus:
    if platform.system() != "Darwin":
        return SensorStatus("powermetrics", False, "macOS only", device="soc")
    return SensorStatus(
        "powermetrics", False,
        "macOS powermetrics needs sudo, so EnergyMeter does not read it; watch CPU power in a terminal with"
        " `sudo powermetrics --samplers cpu_power -i 1000`",
        device="soc",
    )


def probe_energy_sensors(rapl_root: str | os.PathLike[str] = DEFAULT_RAPL_ROOT, nvml_module: Any = None) -> tuple[SensorStatus, ...]:
    """Every energy sensor this library knows, available or not, each with its reason."""
    rapl, _ = _rapl_status(rapl_root)
    nvml, _, _ = _nvml_status(nvml_module)
    return (rapl, nvml, _powermetrics_status())


# ## Readings


def _fmt_j(j: float | None) -> str:
    return "n/a" if j is None else (f"{j:.3g} J" if j < 1000 else f"{j / 1000:.3g} kJ")


@dataclass(frozen=True, repr=False)
class EnergyReading:
    """Energy over one window. joules is None when unavailable, never 0 for 'unknown'."""

    joules: float | None
    duration_s: float
    kind: Literal["measured", "estimated", "unavailable"]
    source: str  # e.g. "rapl: package-0 + nvml: gpu0", "estimate: TDP x core share x utilisation", "none"
    domains_j: dict[str, float] = field(default_factory=dict)  # non-overlapping; sums to joules
    detail_j: dict[str, float] = field(default_factory=dict)  # nested/overlapping domains: never add these
    estimate_j: float | None = None  # the TDP model's figure when estimate=True (also next to a measurement)
    assumptions: str | None = None  # the estimate's model and inputs, as text
    reason: str | None = None  # why unavailable
    warnings: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()  # what `joules` covers: ("cpu",), ("gpu",) or ("cpu", "gpu"); () if unavailable
    baseline_w: dict[str, float] = field(default_factory=dict)  # each GPU's idle power, sampled before the window

    @property
    def above_baseline_j(self) -> float | None:
        """The GPUs' energy above their idle power over the window (None without a GPU baseline)."""
        if not self.baseline_w:
            return None
        gpu = sum(j for k, j in {**self.domains_j, **self.detail_j}.items() if k in self.baseline_w)
        return gpu - sum(self.baseline_w.values()) * self.duration_s

    @property
    def average_w(self) -> float | None:
        """Average power in W: joules / duration_s (None when joules is unknown)."""
        if self.joules is None or self.duration_s <= 0:
            return None
        return self.joules / self.duration_s

    def __repr__(self) -> str:
        if self.kind == "unavailable":
            head = f"EnergyReading(unavailable over {self.duration_s:.3g} s: joules=None; {self.reason})"
        else:
            w = self.average_w
            tag = "ESTIMATE, not a measurement: " if self.kind == "estimated" else "measured: "
            what = f" of the {'+'.join(self.devices)}" if self.devices else ""
            head = (
                f"EnergyReading({_fmt_j(self.joules)}{what} over {self.duration_s:.3g} s"
                f" = {w:.3g} W average; {tag}{self.source})" if w is not None else f"EnergyReading({_fmt_j(self.joules)}; {tag}{self.source})"
            )
            if self.baseline_w:
                idle = " + ".join(f"{k} {v:.3g} W" for k, v in self.baseline_w.items())
                head += f"\n  GPU idle power before the window: {idle}; above idle: {_fmt_j(self.above_baseline_j)}"
            if self.kind == "measured" and self.estimate_j is not None:
                head += f"\n  the TDP model would have said {_fmt_j(self.estimate_j)}"
        if self.assumptions:
            head += f"\n  assumptions: {self.assumptions}"
        head += "".join(f"\n  warning: {w}" for w in self.warnings)
        return head


def _process_cpu_s() -> float:
    try:
        import psutil

        t = psutil.Process().cpu_times()
        return t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)
    except Exception:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class EnergyMeter:
    """Measure the energy of a block of code: `with EnergyMeter() as m: ...; m.reading`, or begin()/end().

    estimate=True adds a labelled estimate from a stated model (it needs tdp_w, the CPU's TDP
    in watts from its datasheet):
        P = tdp_w x (cores_used / host_cores) x utilisation,  E = P x duration,
    utilisation = this process's CPU time / (duration x cores_used), from psutil.
    host_cores defaults to the physical cores this OS sees: in a VM the host has more, so
    pass the real count. Idle/static power, memory, GPUs and other programs are left out.
    """

    def __init__(
        self,
        *,
        estimate: bool = False,
        tdp_w: float | None = None,
        tdp_source: str | None = None,
        host_cores: int | None = None,
        cores_used: int | None = None,
        use_sensors: bool = True,
        rapl_root: str | os.PathLike[str] = DEFAULT_RAPL_ROOT,
        nvml_module: Any = None,
        prefer_psys: bool = False,
        poll_s: float | None = 5.0,
        devices: str = "cpu",
        gpu_baseline_s: float = 0.25,
    ) -> None:
        if devices not in ("cpu", "gpu", "cpu+gpu"):
            raise ValueError(f"devices must be 'cpu', 'gpu' or 'cpu+gpu', not {devices!r}: the energy of a job "
                             "is the energy of the devices it ran on")
        if estimate and not (isinstance(tdp_w, (int, float)) and tdp_w > 0):
            raise ValueError(
                "estimate=True needs tdp_w=<the CPU's TDP in watts> (from its datasheet, e.g. ark.intel.com"
                " or the vendor page); the estimate is only as good as that number"
            )
        self.estimate = estimate
        self.tdp_w = tdp_w
        self.tdp_source = tdp_source
        self.host_cores = host_cores
        self.cores_used = cores_used
        self.use_sensors = use_sensors
        self.rapl_root = rapl_root
        self.nvml_module = nvml_module
        self.prefer_psys = prefer_psys
        self.poll_s = poll_s
        self.devices = tuple(devices.split("+"))
        self.gpu_baseline_s = gpu_baseline_s
        self.reading: EnergyReading | None = None
        self._started = False

    # context manager
    def __enter__(self) -> EnergyMeter:
        return self.begin()

    def __exit__(self, *exc: Any) -> None:
        self.reading = self.end()

    def begin(self) -> EnergyMeter:
        """Start the window: snapshot every available sensor (and CPU time for the estimate)."""
        if self._started:
            raise RuntimeError("this EnergyMeter is already measuring: call end() first, or use a second meter")
        self._reasons: list[str] = []
        self._rapl: _RaplCounter | None = None
        self._nvml: Any = None
        self._gpus: list[tuple[str, Any]] = []
        self._gpu_start: dict[str, int] = {}
        self._gpu_idle_w: dict[str, float] = {}
        if self.use_sensors:
            status, zones = _rapl_status(self.rapl_root)
            if status.available:
                try:
                    self._rapl = _RaplCounter(zones)
                except OSError as err:
                    self._reasons.append(f"rapl: {err}")
            else:
                self._reasons.append(f"rapl: {status.reason}")
            nstatus, nvml, gpus = _nvml_status(self.nvml_module)
            if nstatus.available:
                self._nvml, self._gpus = nvml, gpus
                self._gpu_start = {k: int(nvml.nvmlDeviceGetTotalEnergyConsumption(h)) for k, h in gpus}
                self._gpu_idle_w = {}
                if "gpu" in self.devices and self.gpu_baseline_s > 0:  # each GPU's idle draw, just before the window
                    t0 = _now()
                    time.sleep(self.gpu_baseline_s)
                    after = {k: int(nvml.nvmlDeviceGetTotalEnergyConsumption(h)) for k, h in gpus}
                    dt = _now() - t0
                    self._gpu_idle_w = {k: (after[k] - self._gpu_start[k]) / 1e3 / dt for k in after}
                    self._gpu_start = after
            else:
                self._reasons.append(f"nvml: {nstatus.reason}")
        else:
            self._reasons.append("sensors turned off (use_sensors=False)")
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        if self._rapl is not None and self.poll_s:
            self._poller = threading.Thread(target=self._poll, name="sweatlab-rapl-poll", daemon=True)
            self._poller.start()
        self._cpu0 = _process_cpu_s()
        self._t0 = _now()
        self._started = True
        return self

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except OSError:
                return

    def poll(self) -> None:
        """Read the counters now; the background thread does this every poll_s (needed only if poll_s=None)."""
        if self._started and self._rapl is not None:
            self._rapl.update()

    def end(self) -> EnergyReading:
        """Close the window and return its EnergyReading."""
        if not self._started:
            raise RuntimeError("call begin() (or use `with EnergyMeter() as m:`) before end()")
        duration = _now() - self._t0
        cpu_s = _process_cpu_s() - self._cpu0
        self._started = False
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
        warns: list[str] = []
        domains: dict[str, float] = {}
        detail: dict[str, float] = {}
        sources: list[str] = []
        covered: list[str] = []
        if self._rapl is not None:
            self._rapl.update()
            d, det, src, w = self._rapl_split(self._rapl)
            warns += w
            if src and "cpu" in self.devices:
                domains.update(d)
                detail.update(det)
                sources.append(src)
                covered.append("cpu")
            elif src:
                detail.update(d)
                warns.append(f"the CPU's energy ({_fmt_j(sum(d.values()))}, rapl) is not counted: this meter "
                             f"measures the {'+'.join(self.devices)}")
            else:
                self._reasons.append("rapl: no usable counter (" + "; ".join(w[:-1]) + ")")
        elif "cpu" in self.devices and self._gpus:
            self._reasons.append("the GPU's counter (nvml) measures the GPU, not a job on the CPU")
        if self._gpus:
            gpu_j = {}
            for key, handle in self._gpus:
                end_mj = int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
                gpu_j[key] = (end_mj - self._gpu_start[key]) / 1e3
            if "gpu" in self.devices:
                domains.update(gpu_j)
                sources.append("nvml: " + " + ".join(k for k, _ in self._gpus))
                covered.append("gpu")
                if duration < 0.1:
                    warns.append("window shorter than NVML's 20-100 ms update period: GPU energy may read low, even 0")
            else:
                detail.update(gpu_j)
                warns.append(f"the GPUs' energy ({_fmt_j(sum(gpu_j.values()))}, nvml) is not counted: this meter "
                             "measures the CPU (EnergyMeter(devices='gpu') measures them)")
        elif "gpu" in self.devices and self.use_sensors:
            self._reasons.append("no GPU energy counter")
        est_j, assumptions = (self._estimate(duration, cpu_s) if self.estimate else (None, None))
        if covered and domains:
            return EnergyReading(
                joules=sum(domains.values()), duration_s=duration, kind="measured", source=" + ".join(sources),
                domains_j=domains, detail_j=detail, estimate_j=est_j, assumptions=assumptions, warnings=tuple(warns),
                devices=tuple(covered), baseline_w=dict(self._gpu_idle_w),
            )
        reason = "; ".join(self._reasons) or "no energy sensor"
        if est_j is not None and "cpu" in self.devices:
            return EnergyReading(
                joules=est_j, duration_s=duration, kind="estimated", source="estimate: TDP x core share x CPU utilisation",
                detail_j=detail, estimate_j=est_j, assumptions=assumptions, reason=f"no sensor: {reason}",
                warnings=tuple(warns), devices=("cpu",),
            )
        return EnergyReading(
            joules=None, duration_s=duration, kind="unavailable", source="none", detail_j=detail,
            reason=reason + (". For a labelled estimate: EnergyMeter(estimate=True, tdp_w=<your CPU's TDP>)"
                             if "cpu" in self.devices else ""),
            warnings=tuple(warns),
        )

    def _rapl_split(self, counter: _RaplCounter) -> tuple[dict[str, float], dict[str, float], str, list[str]]:
        """Non-overlapping domains (sum = total), nested detail, a source label, warnings."""
        labels = _zone_labels(counter.zones)
        warns: list[str] = []
        joules = {z.zone_id: counter.total_uj[z.zone_id] / 1e6 for z in counter.zones}
        top = [z for z in counter.zones if z.top_level]
        psys = [z for z in top if z.name == "psys"]
        packages = [z for z in top if z.name.startswith("package")]
        if self.prefer_psys and psys:
            counted = psys
        else:
            counted = packages or [z for z in top if z.name != "psys"]
        counted_ids = {z.zone_id for z in counted}
        domains = {labels[z]: j for z, j in joules.items() if z in counted_ids and z not in counter.broken}
        detail = {labels[z]: j for z, j in joules.items() if z not in counted_ids and z not in counter.broken}
        for z, why in counter.broken.items():
            warns.append(f"{labels[z]}: {why}; left out")
        wraps = sum(counter.wraps.values())
        if wraps:
            warns.append(f"corrected {wraps} counter wraparound(s) using max_energy_range_uj")
        warns.append("RAPL counts the whole CPU package: every program running adds to it, not just yours")
        src = "rapl: " + " + ".join(domains) if domains else ""
        return domains, detail, src, warns

    def _estimate(self, duration: float, cpu_s: float) -> tuple[float, str]:
        from sweatlab.measure.hardware import describe

        assert self.tdp_w is not None
        used = self.cores_used or _usable_cores()
        host = self.host_cores or describe().physical_cores or os.cpu_count() or used
        util = min(1.0, max(0.0, cpu_s / (duration * used))) if duration > 0 else 0.0
        share = min(1.0, used / host)
        power = self.tdp_w * share * util
        vm_note = ""
        if self.host_cores is None:
            vm_note = " (cores this OS sees; in a VM the host has more, so pass host_cores=... or this over-estimates)"
        text = (
            f"P = TDP x (cores_used / host_cores) x utilisation = {self.tdp_w:g} W x ({used}/{host}) x {util:.2f}"
            f" = {power:.3g} W over {duration:.3g} s. TDP {self.tdp_w:g} W from {self.tdp_source or 'the caller (source not given)'};"
            f" host_cores={host}{vm_note}; utilisation = this process's CPU time {cpu_s:.3g} s / ({duration:.3g} s x {used} cores)."
            " Leaves out idle and static power, memory, GPUs and other programs; TDP is a cooling rating, not a measured draw."
        )
        return power * duration, text


# ---------------------------------------------------------------------------------------------
# The estimate's inputs: one place for every lab, set once by the learner
# ---------------------------------------------------------------------------------------------

CONFIG_FILE = "sweatlab.ini"
# The inputs used until the learner gives their own: a hypothetical 64-core server part rated at 280 W
# (AMD EPYC 7763; AMD's product page lists a default TDP of 280 W), this process on some of its cores.
HYPOTHETICAL_TDP_W, HYPOTHETICAL_CHIP_CORES = 280.0, 64
HYPOTHETICAL_SOURCE = "hypothetical: AMD EPYC 7763, 280 W, 64 cores"
HOW_TO_SET = (f"set SWEAT_TDP_W and SWEAT_CHIP_CORES (your CPU's TDP in watts and its core count, from its datasheet) "
              f"in the environment before starting JupyterLab, or write them in {CONFIG_FILE} in the course folder "
              f"(or ~/.config/sweatlab/{CONFIG_FILE}) as\n    [energy]\n    tdp_w = 15\n    chip_cores = 4\n"
              f"    source = Intel Core i5-1135G7 datasheet")


@dataclass(frozen=True)
class EstimateInputs:
    """What the labelled estimate P = TDP x (cores used / chip cores) x utilisation needs, and where it came from."""

    tdp_w: float
    chip_cores: int
    source: str  # what the TDP figure is: a datasheet, or the hypothetical default
    origin: str  # where these inputs were read: "default", "environment", or the config file's path

    @property
    def hypothetical(self) -> bool:
        return self.origin == "default"

    def meter(self, cores_used: int | None = 1, **kwargs: Any) -> EnergyMeter:
        """A fresh meter: a sensor where there is one, with this estimate beside it."""
        kwargs.setdefault("poll_s", None)
        return EnergyMeter(estimate=True, tdp_w=self.tdp_w, host_cores=self.chip_cores, cores_used=cores_used,
                           tdp_source=self.source, **kwargs)

    def __str__(self) -> str:
        where = {"default": "the course's default", "environment": "SWEAT_TDP_W / SWEAT_CHIP_CORES"}.get(
            self.origin, self.origin)
        return f"TDP {self.tdp_w:g} W, {self.chip_cores} cores ({self.source}; from {where})"


def _config_files(start: Path | None = None) -> list[Path]:
    env = os.environ.get("SWEAT_CONFIG")
    if env:
        return [Path(env).expanduser()]
    here = (start or Path.cwd()).resolve()
    found = [folder / CONFIG_FILE for folder in (here, *here.parents)]
    return found + [Path.home() / ".config" / "sweatlab" / CONFIG_FILE]


def _positive(text: str, what: str, where: str, kind: type) -> Any:
    try:
        value = kind(float(text)) if kind is int else float(text)
    except ValueError:
        value = None
    if value is None or value <= 0 or (kind is int and float(text) != int(float(text))):
        raise ValueError(f"{what} = {text!r} in {where} is not a positive {'whole ' if kind is int else ''}number; "
                         + HOW_TO_SET)
    return value


def estimate_inputs(start: Path | None = None) -> EstimateInputs:
    """The learner's TDP and core count: the environment, else the first sweatlab.ini found, else the default.

    A value that is set but not a positive number raises ValueError saying how to fix it, rather than
    silently falling back to the hypothetical default.
    """
    env_tdp, env_cores = os.environ.get("SWEAT_TDP_W", "").strip(), os.environ.get("SWEAT_CHIP_CORES", "").strip()
    if env_tdp or env_cores:
        if not (env_tdp and env_cores):
            raise ValueError("only one of SWEAT_TDP_W and SWEAT_CHIP_CORES is set; the estimate needs both: "
                             + HOW_TO_SET)
        return EstimateInputs(_positive(env_tdp, "SWEAT_TDP_W", "the environment", float),
                              _positive(env_cores, "SWEAT_CHIP_CORES", "the environment", int),
                              os.environ.get("SWEAT_TDP_SOURCE", "").strip() or "your datasheet", "environment")
    import configparser

    for path in _config_files(start):
        if not path.is_file():
            continue
        parser = configparser.ConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error as exc:
            raise ValueError(f"{path} is not a readable config file ({exc}); " + HOW_TO_SET) from None
        if not parser.has_section("energy"):
            continue
        sec = parser["energy"]
        if "tdp_w" not in sec or "chip_cores" not in sec:
            raise ValueError(f"{path} has an [energy] section without tdp_w and chip_cores; " + HOW_TO_SET)
        return EstimateInputs(_positive(sec["tdp_w"], "tdp_w", str(path), float),
                              _positive(sec["chip_cores"], "chip_cores", str(path), int),
                              sec.get("source", "").strip() or "your datasheet", str(path))
    return EstimateInputs(HYPOTHETICAL_TDP_W, HYPOTHETICAL_CHIP_CORES, HYPOTHETICAL_SOURCE, "default")
