"""The hardware peak: what the silicon could do per second, from its parts, with its inputs shown.

    peak = cores x clock x SIMD lanes x FMA units x 2 FLOP per fused multiply-add

BLAS's own fastest run is a *measurement*; this is the *ceiling* it is measured against, so
"BLAS reaches N% of peak" means something. Every input says where it came from, and the ones
that were assumed (a VM hides the clock and the core type) are listed, so a learner can
replace them with a datasheet's figures.

Per core and cycle (single precision), from the vendors' optimisation guides:

- Intel cores with AVX-512 (Skylake-SP to Sapphire Rapids, Xeon Gold/Platinum): two 512-bit
  FMA units, 2 x 16 lanes x 2 = 64 FLOP. Some lower Xeon parts have one; that is an assumption.
- AMD Zen 4: AVX-512 instructions run on 256-bit units as two halves (AMD, *Software
  Optimization Guide for the AMD Zen4 Microarchitecture*, pub. 57647, section 2.11), so
  AVX-512 does not double the rate: two 256-bit FMA pipes, 2 x 8 x 2 = 32 FLOP, as on Zen 3.
- AMD Zen 5: a full 512-bit datapath (on the server and desktop parts): 2 x 16 x 2 = 64 FLOP.
- AVX2 with FMA (Intel Haswell and later, AMD Zen 2 to 4): two 256-bit FMA units, 32 FLOP.
- Arm NEON: 128-bit vectors, 4 fp32 lanes; Apple's performance cores and Neoverse V1/V2
  have four FMA pipes (32 FLOP), most Cortex-A cores two (16 FLOP): assumed from the core type.
- bf16: Intel AMX tiles do 1024 bf16 FLOP per cycle per core (Intel: "1,024 BF16 operations per
  cycle per core" for the TMUL unit); AVX-512 BF16 (`vdpbf16ps`) does two bf16 products per fp32
  lane, so twice the fp32 rate of its units.
- int8: AMX 2048 operations per cycle per core; AVX-512 VNNI (`vpdpbusd`) four 8-bit products
  per 32-bit lane, so 4x the fp32 lane count per unit, times 2 operations.

The clock: Linux reports the maximum frequency in cpufreq where the machine exposes it; a VM
usually does not, so the clock is *measured* with a dependent chain of integer adds and xors
(each one cycle of latency on every current x86 and Arm core; the chain cannot be overlapped
or vectorised), which gives the frequency the core runs at under load, turbo included.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from sweatlab.measure import hardware

FLOP_PER_FMA = 2
DTYPES = ("float64", "float32", "bf16", "int8")


@dataclass(frozen=True)
class Clock:
    """A core clock in GHz and where it came from."""

    ghz: float | None
    source: str
    assumed: bool = False


@dataclass(frozen=True)
class HardwarePeak:
    """The theoretical peak for one number format, with every input and its source."""

    dtype: str
    cores: int
    cores_source: str
    clock: Clock
    isa: str  # the instruction set this peak is for: "AVX-512", "AVX2+FMA", "AMX", "NEON", ...
    lanes: int  # values of this dtype per vector (or per tile operation, for AMX: its per-cycle rate)
    units: int  # FMA units (pipes) per core that execute it
    ops_per_lane: int  # FLOP (or int ops) per lane per instruction: 2 for an FMA, 4 for a bf16 pair, 8 for VNNI
    assumed: tuple[str, ...] = ()  # which inputs are assumptions, in words
    notes: tuple[str, ...] = ()

    @property
    def per_core_per_cycle(self) -> int:
        return self.lanes * self.units * self.ops_per_lane

    @property
    def gflops(self) -> float | None:
        """Peak in GFLOP/s (GOP/s for int8); None when the clock is unknown."""
        if self.clock.ghz is None:
            return None
        return self.cores * self.clock.ghz * self.per_core_per_cycle

    def formula(self) -> str:
        """The arithmetic, spelled out: '2 cores x 3.70 GHz x 8 lanes x 2 FMA units x 2 FLOP = 118 GFLOP/s'."""
        clock = f"{self.clock.ghz:.2f} GHz" if self.clock.ghz else "? GHz"
        per_lane = (f"{self.ops_per_lane} FLOP" if self.dtype != "int8" else f"{self.ops_per_lane} ops")
        value = f"{self.gflops:,.0f} G{'OP' if self.dtype == 'int8' else 'FLOP'}/s" if self.gflops else "unknown"
        return (f"{self.cores} cores x {clock} x {self.lanes} lanes x {self.units} unit(s) x {per_lane} = {value}"
                f" ({self.dtype}, {self.isa})")

    def __repr__(self) -> str:
        text = self.formula()
        if self.assumed:
            text += "; assumed: " + "; ".join(self.assumed)
        return f"HardwarePeak({text})"

    def as_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "gflops": self.gflops, "cores": self.cores, "cores_source": self.cores_source,
                "clock_ghz": self.clock.ghz, "clock_source": self.clock.source, "isa": self.isa,
                "lanes": self.lanes, "units": self.units, "ops_per_lane": self.ops_per_lane,
                "assumed": list(self.assumed), "formula": self.formula()}


# ---------------------------------------------------------------------------------------------
# The clock
# ---------------------------------------------------------------------------------------------

def _cpufreq_max_ghz(root: str = "/sys/devices/system/cpu/cpu0/cpufreq") -> float | None:
    try:
        with open(os.path.join(root, "cpuinfo_max_freq")) as f:
            return int(f.read().strip()) / 1e6
    except (OSError, ValueError):
        return None


_CHAIN = None


def _chain_kernel():
    """A numba loop whose every step is one add then one xor on the previous value: 2 cycles a step."""
    global _CHAIN
    if _CHAIN is None:
        from numba import njit

        @njit(cache=False)
        def chain(n, seed):
            x = seed
            for i in range(n):
                x = (x + i) ^ 0x5A5A  # add (1 cycle) feeding xor (1 cycle): a strict 2-cycle chain
            return x

        _CHAIN = chain
    return _CHAIN


def measure_clock(steps: int = 2_000_000, repeats: int = 41) -> Clock:
    """The core clock under load, from a dependent add-xor chain (2 cycles a step); the fastest of
    ``repeats`` runs, since interruptions only make a run slower. Many short runs (about a
    millisecond each, under a scheduler time slice) rather than a few long ones, so that on a
    shared machine at least one run has the core to itself."""
    try:
        chain = _chain_kernel()
        chain(1000, 1)  # compile
    except Exception as exc:  # no numba: the clock stays unknown, with the reason
        return Clock(None, f"not measured ({type(exc).__name__}: {exc})", True)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        chain(steps, 1)
        best = min(best, time.perf_counter() - start)
    return Clock(2 * steps / best / 1e9, f"measured: a dependent add-xor chain, {2 * steps / 1e6:.0f} M cycles "
                                         f"in {best * 1e3:.1f} ms (fastest of {repeats})")


def clock(measure: bool = True) -> Clock:
    """The clock to use: cpufreq's maximum where Linux shows it, else measured, else unknown."""
    ghz = _cpufreq_max_ghz()
    if ghz:
        return Clock(ghz, "cpufreq cpuinfo_max_freq (the highest clock the OS may set)")
    if measure:
        return measure_clock()
    return Clock(None, "not reported by the OS (a VM usually hides it) and not measured", True)


# ---------------------------------------------------------------------------------------------
# The core type: vector width and FMA units
# ---------------------------------------------------------------------------------------------

def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":")[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _x86_vendor_family() -> tuple[str | None, int | None, int | None]:
    vendor = _cpuinfo_field("vendor_id")
    try:
        family = int(_cpuinfo_field("cpu family") or "")
        model = int(_cpuinfo_field("model") or "")
    except ValueError:
        family = model = None
    return vendor, family, model


@dataclass(frozen=True)
class CoreType:
    """How wide and how many the vector FMA units of one core are."""

    isa: str
    vector_bits: int  # the width the units execute per cycle
    units: int
    assumed: tuple[str, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = field(default_factory=tuple)


def core_type(isa: dict[str, bool | None], arch: str, vendor: str | None = None, family: int | None = None,
              model: int | None = None, os_name: str | None = None) -> CoreType:
    """The fp32 vector units of this core, from its ISA flags and (x86) vendor and family."""
    arch = arch.lower()
    if arch in ("arm64", "aarch64") or arch.startswith("arm"):
        if (os_name or "").lower() == "darwin":
            return CoreType("NEON", 128, 4, ("4 FMA pipes per performance core (Apple M-series); "
                                            "efficiency cores have fewer",))
        return CoreType("NEON", 128, 2, ("2 FMA pipes per core (most Cortex-A and Neoverse N cores; "
                                        "Neoverse V1/V2 have 4)",))
    amd = vendor == "AuthenticAMD"
    intel = vendor == "GenuineIntel"
    if isa.get("avx512f"):
        if amd and family == 25:  # Zen 4 (family 19h): AVX-512 on 256-bit units
            return CoreType("AVX-512 (run as two 256-bit halves)", 256, 2,
                            notes=("Zen 4 executes each 512-bit instruction on its 256-bit units, so AVX-512 "
                                   "does not double the rate over AVX2 (AMD pub. 57647)",))
        if amd and family is not None and family >= 26:  # Zen 5 and later
            return CoreType("AVX-512", 512, 2, ("a full 512-bit datapath, as on Zen 5 server and desktop parts",))
        return CoreType("AVX-512", 512, 2, ("2 FMA units per core (Xeon Gold/Platinum; some other parts have 1)",)
                        if intel else ("2 FMA units of 512 bits per core",))
    if isa.get("avx2") and isa.get("fma"):
        if amd and family == 23 and model is not None and model < 0x30:  # Zen and Zen+: 128-bit units
            return CoreType("AVX2 (run as two 128-bit halves)", 128, 2,
                            notes=("Zen and Zen+ execute each 256-bit instruction on their 128-bit units",))
        if amd and family is not None and family >= 23:  # Zen 2, 3, 4: two 256-bit FMA pipes
            return CoreType("AVX2+FMA", 256, 2)
        return CoreType("AVX2+FMA", 256, 2, ("2 FMA units of 256 bits per core (Haswell and later big cores; "
                                             "Atom-class efficiency cores of hybrid chips have narrower units)",))
    if isa.get("avx"):
        return CoreType("AVX (no FMA: one multiply and one add unit)", 256, 1)
    return CoreType("SSE (no FMA: one multiply and one add unit)", 128, 1, ("SSE only: 4 lanes, one mul + one add",))


# ---------------------------------------------------------------------------------------------
# The peak
# ---------------------------------------------------------------------------------------------

def hardware_peak(dtype: str = "float32", machine: hardware.MachineInfo | None = None,
                  clock_: Clock | None = None, cores: int | None = None,
                  vendor_family: tuple[str | None, int | None, int | None] | None = None) -> HardwarePeak | None:
    """The theoretical peak of this machine for ``dtype`` (None: it has no unit for that format).

    ``machine``, ``clock_``, ``cores`` and ``vendor_family`` (x86 vendor id, family, model) default
    to this machine's; give them to compute another machine's peak from its datasheet.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    m = machine or hardware.describe()
    if cores is None:
        cores = m.physical_cores or m.logical_cores or 1
        cores_source = ("physical cores" if m.physical_cores else
                        "logical CPUs (physical cores not reported; SMT siblings share one core's units)")
    else:
        cores_source = "given"
    c = clock_ or clock()
    if vendor_family is None:
        vendor_family = _x86_vendor_family() if m.arch.lower() in ("x86_64", "amd64") else (None, None, None)
    vendor, family, model = vendor_family
    ct = core_type(m.isa, m.arch, vendor, family, model, m.os)
    assumed = list(ct.assumed)
    if c.assumed or c.ghz is None:
        assumed.append(f"the clock ({c.source})")
    fp32_lanes = ct.vector_bits // 32

    if dtype in ("float32", "float64"):
        lanes = fp32_lanes if dtype == "float32" else fp32_lanes // 2
        return HardwarePeak(dtype, cores, cores_source, c, ct.isa, lanes, ct.units, FLOP_PER_FMA,
                            tuple(assumed), ct.notes)
    if dtype == "bf16":
        if m.isa.get("amx_bf16"):
            return HardwarePeak("bf16", cores, cores_source, c, "AMX", 512, 1, FLOP_PER_FMA, tuple(assumed),
                                ("AMX: 1024 bf16 FLOP per cycle per core (Intel)",))
        if m.isa.get("avx512_bf16"):
            return HardwarePeak("bf16", cores, cores_source, c, "AVX-512 BF16 (vdpbf16ps)", fp32_lanes, ct.units,
                                2 * FLOP_PER_FMA, tuple(assumed), ("two bf16 products per fp32 lane",))
        return None
    # int8
    if m.isa.get("amx_int8"):
        return HardwarePeak("int8", cores, cores_source, c, "AMX", 1024, 1, 2, tuple(assumed),
                            ("AMX: 2048 int8 operations per cycle per core (Intel)",))
    if m.isa.get("avx512_vnni") or m.isa.get("avx_vnni"):
        return HardwarePeak("int8", cores, cores_source, c, "VNNI (vpdpbusd)", fp32_lanes, ct.units, 4 * 2,
                            tuple(assumed), ("four 8-bit products per 32-bit lane",))
    return None


def hardware_peaks(machine: hardware.MachineInfo | None = None, measure_clock_: bool = True) -> dict[str, HardwarePeak]:
    """Every format this machine has a unit for, sharing one clock reading."""
    m = machine or hardware.describe()
    c = clock(measure=measure_clock_)
    found = {}
    for dtype in DTYPES:
        p = hardware_peak(dtype, m, c)
        if p is not None:
            found[dtype] = p
    return found


