"""Pool a class's records into one self-contained HTML page: `sweatlab class-report FOLDER`.

    load_folder(folder) -> Pool                 every record file under folder; bad ones are listed, never fatal
    cpu_family(machine) -> str                  the CPU family a record's machine belongs to (rule below)
    latest(entries) -> list[Entry]              the newest record per learner and lab
    find_outliers(entries) -> list[Outlier]     values far from their family's median (rule below)
    render(pool) -> str                         the HTML page: plots as base64 PNG, inline CSS, no script
    main(folder, output) -> int                 the command: writes the page, reports skipped files on stderr

Input: each learner's `results/records.jsonl` (one JSON record per line, as `records.record`
writes it), or `*.json` files holding one record or a list of records, anywhere under the
folder. A record's learner is its own `learner` field when it has one; else the folder right
under FOLDER that holds the file (`alice/results/records.jsonl` is alice's); else, for a file
directly in FOLDER, its name (`bob.jsonl`, `carol.json`).

CPU family (the first rule that matches): Arm (`arch` arm*/aarch*, or an Apple CPU) ->
"Apple M-series / Arm64"; AMX in the ISA -> "Intel Sapphire Rapids-class (AMX)"; AVX-512 on an
AMD CPU -> "AMD Zen 4-class (AVX-512)"; other AVX-512 -> "Intel AVX-512 (no AMX)"; AVX2 ->
"AVX2 x86-64"; any other x86 -> "Older x86-64 (no AVX2)"; nothing known -> "Unknown CPU".

Outliers (on log10 of each positive value, since speeds scale by factors): a value is flagged
when it lies more than 3 scaled MADs (1.4826 x the median absolute deviation) and more than a
factor of 2 from its family's median, in a family of 3 or more machines; in a smaller family,
when it is more than 10x from the median of the whole class (3 or more machines).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sweatlab.course.layout import LAB_NAME_RE
from sweatlab.kit.report import LabReport, RecordError, report_of

__all__ = ["Entry", "Skipped", "Pool", "Outlier", "RecordError", "FAMILIES", "cpu_family", "learner_name",
           "parse_record", "load_folder", "latest", "find_outliers", "render", "main", "OUTLIER_RULE", "FAMILY_RULE"]

MAX_FILE_BYTES = 20 * 2**20  # a record file is a few KiB per record; anything bigger is not one
MAX_LINE_REPORTS = 10  # per file: more bad lines are summed up in one line
GENERIC_NAMES = {"records", "record", "results", "result", "sweatlab"}
FAMILIES = [  # in the order the page lists them
    "Intel Sapphire Rapids-class (AMX)",
    "AMD Zen 4-class (AVX-512)",
    "Intel AVX-512 (no AMX)",
    "AVX2 x86-64",
    "Older x86-64 (no AVX2)",
    "Apple M-series / Arm64",
    "Unknown CPU",
]
FAMILY_COLORS = ["#1f77b4", "#d62728", "#9467bd", "#2ca02c", "#8c564b", "#ff7f0e", "#7f7f7f"]
FAMILY_RULE = ("Arm (arch arm*/aarch*, or an Apple CPU): Apple M-series / Arm64; AMX in the ISA: Intel Sapphire "
               "Rapids-class; AVX-512 on an AMD CPU: AMD Zen 4-class; other AVX-512: Intel AVX-512 (no AMX); AVX2: "
               "AVX2 x86-64; any other x86: older x86-64; nothing known: unknown. The first rule that matches wins.")
OUTLIER_RULE = ("A value is flagged when, on a log scale, it lies more than 3 scaled MADs (1.4826 × the median "
                "absolute deviation) and more than a factor of 2 from its family's median, in a family of 3 or "
                "more machines; in a smaller family, when it is more than 10× from the median of the whole class "
                "(3 or more machines). Only positive values are tested.")
FAMILY_FACTOR = 2.0
CLASS_FACTOR = 10.0
MAD_SCALE = 1.4826


@dataclass
class Entry:
    """One usable record: who, which lab, when, on what, and its numbers as {(group, name): value}."""

    learner: str
    lab: str
    utc: datetime
    machine: dict[str, Any]
    values: dict[str, Any]
    metrics: dict[tuple[str, str], float]
    source: str
    family: str = ""
    stand_ins: tuple[str, ...] = ()  # the lab's functions whose numbers came from the course's stand-in

    def __post_init__(self) -> None:
        if not self.family:
            self.family = cpu_family(self.machine)


@dataclass
class Skipped:
    """A file (or a line of one) left out of the report, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Pool:
    """What load_folder found: usable records (all of them, oldest first) and what it skipped."""

    folder: Path
    entries: list[Entry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    files: int = 0


@dataclass
class Outlier:
    """A flagged value, with the median it was compared to and how far from it (a factor)."""

    learner: str
    family: str
    lab: str
    group: str
    name: str
    value: float
    median: float
    factor: float
    against: str  # "family" or "class"


# ## CPU family


def cpu_family(machine: dict[str, Any] | None) -> str:
    """The family of a record's `machine` (cpu_model, arch, isa), by the rule in FAMILY_RULE."""
    machine = machine if isinstance(machine, dict) else {}
    model = str(machine.get("cpu_model") or "")
    arch = str(machine.get("arch") or "").lower()
    isa = {str(x).lower() for x in machine.get("isa") or [] if isinstance(x, str)}
    if arch.startswith(("arm", "aarch")) or model.lower().startswith("apple") or "neon" in isa:
        return "Apple M-series / Arm64"
    if isa & {"amx_tile", "amx_bf16", "amx_int8"}:
        return "Intel Sapphire Rapids-class (AMX)"
    if "avx512f" in isa:
        return "AMD Zen 4-class (AVX-512)" if re.search(r"\bamd\b|ryzen|epyc", model, re.I) else "Intel AVX-512 (no AMX)"
    if "avx2" in isa:
        return "AVX2 x86-64"
    if isa or arch in ("x86_64", "amd64", "i386", "i686", "x86"):
        return "Older x86-64 (no AVX2)"
    return "Unknown CPU"




# ## Loading


def _parse_utc(text: Any) -> datetime:
    if not isinstance(text, str):
        raise RecordError("'utc' is missing: no time to pick the latest record by")
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RecordError(f"'utc' is {text!r}, not an ISO time") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def parse_record(obj: Any, learner: str, source: str) -> Entry:
    """One record (a decoded JSON object) as an Entry; RecordError says why it cannot be used."""
    if not isinstance(obj, dict) or "lab" not in obj or "values" not in obj:
        kind = type(obj).__name__ if not isinstance(obj, dict) else "object with keys " + ", ".join(sorted(obj)[:5])
        raise RecordError(f"not a sweatlab record (a JSON {kind}; a record has 'lab', 'values', 'machine', 'utc')")
    lab = obj["lab"]
    if not isinstance(lab, str) or not LAB_NAME_RE.match(lab):
        raise RecordError(f"lab {lab!r} is not a lab's name (NN_topic, e.g. 01_matmul)")
    if not isinstance(obj["values"], dict):
        raise RecordError(f"'values' is a {type(obj['values']).__name__}, not a dict")
    machine = obj.get("machine")
    if not isinstance(machine, dict):
        raise RecordError("'machine' is missing: the record cannot be placed in a CPU family")
    utc = _parse_utc(obj.get("utc"))
    metrics = report_of(lab).extract(obj["values"])
    own = obj.get("learner")
    stood = obj.get("stand_ins") or ()
    return Entry(learner=own.strip() if isinstance(own, str) and own.strip() else learner, lab=lab, utc=utc,
                 machine=machine, values=obj["values"], metrics=metrics, source=source,
                 stand_ins=tuple(str(x) for x in stood) if isinstance(stood, list) else ())


def _generic(name: str) -> bool:
    return name.lower() in GENERIC_NAMES or bool(re.match(r"^\d\d_", name))


def learner_name(path: Path, folder: Path) -> str:
    """Who a file belongs to: its top folder under `folder`; for a file directly in `folder`, its name.

    A generic file name at the top (`records.jsonl`, `00_measure.json`) names no one: `folder`'s own name is used.
    """
    rel = path.resolve().relative_to(folder.resolve())
    if len(rel.parts) > 1:
        return rel.parts[0]
    stem = path.name.split(".")[0]
    return stem if stem and not _generic(stem) else (folder.resolve().name or "learner")


def _records_in(path: Path) -> Iterable[tuple[str, Any]]:
    """(where, decoded object) for each record in the file; a bad line or file yields (where, RecordError)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        yield "", RecordError("not UTF-8 text (a binary file?)")
        return
    if path.suffix == ".jsonl":
        lines = text.splitlines()
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield f"line {i}", json.loads(line)
            except json.JSONDecodeError as exc:
                cut = " (cut short: the write was interrupted?)" if i == len(lines) and not text.endswith("\n") else ""
                yield f"line {i}", RecordError(f"not valid JSON{cut}: {exc.msg} (column {exc.colno})")
        return
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        yield "", RecordError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
        return
    if isinstance(obj, list):
        if not obj:
            yield "", RecordError("an empty list: no records in it")
        for i, item in enumerate(obj):
            yield f"item {i}", item
    else:
        yield "", obj


def load_folder(folder: str | Path) -> Pool:
    """Every record under `folder` (records.jsonl / *.jsonl / *.json, recursively), and every file or line skipped."""
    folder = Path(folder)
    pool = Pool(folder=folder)
    paths = sorted(p for p in folder.rglob("*") if p.suffix in (".jsonl", ".json") and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    for path in paths:
        pool.files += 1
        shown = str(path.relative_to(folder))
        if path.stat().st_size > MAX_FILE_BYTES:
            pool.skipped.append(Skipped(shown, f"larger than {MAX_FILE_BYTES // 2**20} MiB: not a record file"))
            continue
        if path.stat().st_size == 0:
            pool.skipped.append(Skipped(shown, "empty file"))
            continue
        learner = learner_name(path, folder)
        bad: list[Skipped] = []
        try:
            for where, obj in _records_in(path):
                label = f"{shown} {where}".strip()
                if isinstance(obj, RecordError):
                    bad.append(Skipped(label, str(obj)))
                    continue
                try:
                    pool.entries.append(parse_record(obj, learner, label))
                except RecordError as exc:
                    bad.append(Skipped(label, str(exc)))
        except OSError as exc:
            bad.append(Skipped(shown, f"cannot be read: {exc.strerror or exc}"))
        pool.skipped.extend(bad[:MAX_LINE_REPORTS])
        if len(bad) > MAX_LINE_REPORTS:
            pool.skipped.append(Skipped(shown, f"{len(bad) - MAX_LINE_REPORTS} more bad lines or items not listed"))
    pool.entries.sort(key=lambda e: e.utc)
    return pool


def latest(entries: Iterable[Entry]) -> list[Entry]:
    """The newest record (by its utc time; the later one in the files on a tie) per learner and lab."""
    best: dict[tuple[str, str], Entry] = {}
    for e in entries:
        key = (e.learner, e.lab)
        if key not in best or e.utc >= best[key].utc:
            best[key] = e
    return sorted(best.values(), key=lambda e: (e.lab, _family_rank(e.family), e.learner.lower()))


def _family_rank(family: str) -> int:
    return FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)


# ## Outliers


def _median_mad(xs: list[float]) -> tuple[float, float]:
    med = statistics.median(xs)
    return med, statistics.median(abs(x - med) for x in xs)


def find_outliers(entries: Iterable[Entry]) -> list[Outlier]:
    """Flag each value far from its family's (or, in a family of under 3, the class's) median; see OUTLIER_RULE."""
    entries = list(entries)
    out: list[Outlier] = []
    keys = sorted({(e.lab, k) for e in entries for k in e.metrics})
    for lab, key in keys:
        have = [e for e in entries if e.lab == lab and e.metrics.get(key, 0) > 0]
        logs = {id(e): math.log10(e.metrics[key]) for e in have}
        everyone = [logs[id(e)] for e in have]
        for e in have:
            family = [logs[id(o)] for o in have if o.family == e.family]
            if len(family) >= 3:
                med, mad = _median_mad(family)
                limit, against = max(3 * MAD_SCALE * mad, math.log10(FAMILY_FACTOR)), "family"
            elif len(everyone) >= 3:
                med, limit, against = statistics.median(everyone), math.log10(CLASS_FACTOR), "class"
            else:
                continue
            gap = logs[id(e)] - med
            if abs(gap) > limit + 1e-12:
                out.append(Outlier(e.learner, e.family, lab, key[0], key[1], e.metrics[key], 10**med, 10**gap, against))
    return out


# ## Plots


def _figure(width: float, height: float) -> Any:
    """A bare matplotlib Figure: rendered by Agg into PNG bytes, never a window and no pyplot state."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _color(family: str) -> str:
    return FAMILY_COLORS[min(_family_rank(family), len(FAMILY_COLORS) - 1)]


def _family_legend(fig: Any, families: list[str], extra: list[Any] = (), line: bool = True) -> None:
    """One legend entry per family, under the plots: it never hides a point."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=_color(f), marker="o", linestyle="-" if line else "none", label=f)
               for f in families] + list(extra)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), frameon=False, fontsize=10)


def _outlier_handle() -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color="black", marker="o", markerfacecolor="none", markersize=13, linestyle="none",
                  label="flagged outlier (named)")


def _tick(v: float, _pos: Any = None) -> str:
    return f"{v:,.0f}" if v >= 1000 else f"{v:g}"


def _y_axis(ax: Any, values: list[float], log: bool) -> bool:
    """Log scale with plain-number ticks when the values span a factor of 10 or more; else linear from 0."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    pos = [v for v in values if v > 0]
    if log and pos and len(pos) == len(values) and max(pos) / min(pos) >= 10:
        ax.set_yscale("log")
        if max(pos) / min(pos) < 1000:
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(_tick))
        ax.yaxis.set_minor_formatter(NullFormatter())
        return True
    if values and min(values) >= 0:
        ax.set_ylim(0, max(values) * 1.15 or 1)
    return False


def plot_roofline(entries: list[Entry], flagged: set[tuple[str, str]]) -> str:
    """Lab 00: each machine's roof (min(peak, bandwidth x intensity)) and its ridge point, log-log; base64 PNG."""
    import numpy as np

    fig = _figure(9.5, 5.6)
    ax = fig.add_subplot()
    peaks = [e.metrics["GFLOP/s fp32", "peak, all cores"] for e in entries]
    bws = [e.metrics["GB/s", "bandwidth, all cores"] for e in entries]
    ridges = [p / b for p, b in zip(peaks, bws)]
    xs = np.logspace(math.log10(min([1 / 16] + [r / 8 for r in ridges])), math.log10(max([64] + [r * 8 for r in ridges])), 200)
    for e, peak, bw, ridge in zip(entries, peaks, bws, ridges):
        c = _color(e.family)
        ax.plot(xs, np.minimum(peak, bw * xs), color=c, alpha=0.55, lw=1.4)
        ax.plot([ridge], [peak], "o", color=c, markersize=7, zorder=3)
        if (e.learner, e.lab) in flagged:
            ax.plot([ridge], [peak], "o", markerfacecolor="none", markeredgecolor="black", markersize=14, zorder=4)
            ax.annotate(e.learner, (ridge, peak), xytext=(8, 6), textcoords="offset points", fontsize=10)
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(_tick))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("arithmetic intensity (FLOP/byte)", fontsize=11)
    ax.set_ylabel("attainable GFLOP/s (fp32)", fontsize=11)
    ax.set_title("Each machine's roofline; the dot is its ridge point (peak / bandwidth)", fontsize=12)
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", alpha=0.1)
    ax.tick_params(labelsize=10)
    _family_legend(fig, _families(entries), [_outlier_handle()] if flagged else [])
    return _png(fig)


def _families(entries: Iterable[Entry]) -> list[str]:
    return sorted({e.family for e in entries}, key=_family_rank)


def plot_groups(spec: LabReport, entries: list[Entry], flagged: set[tuple[str, str, str, str]]) -> str | None:
    """One panel per plotted group of `spec`: a point per machine per name, by family colour; base64 PNG."""
    groups = [g for g in spec.plots if any(k[0] == g for e in entries for k in e.metrics)]
    if not groups:
        return None
    names = {g: list(dict.fromkeys(k[1] for e in entries for k in e.metrics if k[0] == g)) for g in groups}
    widths = [max(len(names[g]), 2) for g in groups]
    fig = _figure(min(max(6.5, 1.15 * sum(widths) + 2.2 * len(groups)), 12.5), 5.4)
    axes = fig.subplots(1, len(groups), squeeze=False, width_ratios=widths)[0]
    families = _families(entries)
    any_flag = False
    for ax, g in zip(axes, groups):
        cats = names[g]
        for e in entries:
            fi = families.index(e.family)
            dx = (fi - (len(families) - 1) / 2) * min(0.5 / max(len(families), 1), 0.12)
            pts = [(i + dx, e.metrics[g, n], n) for i, n in enumerate(cats) if (g, n) in e.metrics]
            if not pts:
                continue
            c = _color(e.family)
            style = "-o" if spec.ladder else "o"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=c, alpha=0.75, lw=1.2, markersize=6)
            for x, y, n in pts:
                if (e.learner, e.lab, g, n) in flagged:
                    any_flag = True
                    ax.plot([x], [y], "o", markerfacecolor="none", markeredgecolor="black", markersize=13, zorder=4)
                    ax.annotate(e.learner, (x, y), xytext=(7, 5), textcoords="offset points", fontsize=9)
        ax.set_xticks(range(len(cats)), [c.replace("_", " ") for c in cats], rotation=30, ha="right", fontsize=10)
        ax.set_xlim(-0.6, len(cats) - 0.4)
        ys = [e.metrics[g, n] for e in entries for n in cats if (g, n) in e.metrics]
        if "speed-up" in g:  # the line a speed-up is measured from
            ax.axhline(1.0, color="#555", linestyle="--", lw=1)
            ax.annotate("1 = no speed-up", (1, 1), xycoords=("axes fraction", "data"), xytext=(-4, 4),
                        textcoords="offset points", ha="right", fontsize=9, color="#555")
            ys.append(1.0)
        is_log = _y_axis(ax, ys, spec.log)
        ax.set_ylabel(g + (" (log scale)" if is_log else ""), fontsize=11)
        ax.grid(True, axis="y", which="major", alpha=0.4)
        ax.grid(True, axis="y", which="minor", alpha=0.1)
        ax.tick_params(axis="y", labelsize=10)
    _family_legend(fig, families, [_outlier_handle()] if any_flag else [], line=spec.ladder)
    return _png(fig)


# ## The page


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 24px 32px 64px; color: #1d1d1f; line-height: 1.45; font-size: 16px; }
h1 { margin-bottom: 4px; } h2 { margin-top: 40px; border-bottom: 2px solid #ddd; padding-bottom: 4px; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 12px 0; font-size: 14px; }
th, td { border: 1px solid #d0d0d0; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td small { color: #666; } td.num small { white-space: nowrap; } .flag { color: #b00020; font-weight: 600; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 50%; margin-right: 6px; vertical-align: -1px; }
img { max-width: 100%; height: auto; display: block; margin: 12px 0; border: 1px solid #eee; }
.rule { background: #f7f7fb; border-left: 4px solid #88a; padding: 8px 12px; font-size: 14px; }
details summary { cursor: pointer; color: #245; margin: 8px 0; }
.skipped td:first-child { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; }
"""


def _fmt(x: float) -> str:
    a = abs(x)
    if a == 0:
        return "0"
    if a >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if a >= 1 else f"{x:.2g}"


def _e(text: Any) -> str:
    return html.escape(str(text))


def _summary_table(lab: str, entries: list[Entry], outliers: list[Outlier]) -> str:
    families = _families(entries)
    keys = list(dict.fromkeys(k for e in entries for k in e.metrics))
    n_flag = {}
    for o in outliers:
        if o.lab == lab:
            n_flag[(o.group, o.name, o.family)] = n_flag.get((o.group, o.name, o.family), 0) + 1
    head = "".join(f'<th><span class="swatch" style="background:{_color(f)}"></span>{_e(f)}</th>' for f in families)
    rows = []
    for g, n in keys:
        cells = []
        for f in families + ["all"]:
            xs = [e.metrics[g, n] for e in entries if (g, n) in e.metrics and (f == "all" or e.family == f)]
            if not xs:
                cells.append("<td></td>")
                continue
            flag = n_flag.get((g, n, f), 0) if f != "all" else sum(v for k, v in n_flag.items() if k[:2] == (g, n))
            rng = f"{_fmt(min(xs))} – {_fmt(max(xs))}, n={len(xs)}" if len(xs) > 1 else "one machine"
            mark = f' <span class="flag">⚑{flag}</span>' if flag else ""
            cells.append(f'<td class="num">{_fmt(statistics.median(xs))}{mark}<br><small>{rng}</small></td>')
        rows.append(f"<tr><th>{_e(n.replace('_', ' '))} <small>({_e(g)})</small></th>{''.join(cells)}</tr>")
    return (f'<table class="summary"><tr><th>median <small>(range, machines)</small></th>{head}<th>whole class</th>'
            f"</tr>{''.join(rows)}</table>")


def _learner_table(entries: list[Entry], flagged: set[tuple[str, str, str, str]]) -> str:
    keys = list(dict.fromkeys(k for e in entries for k in e.metrics))
    head = "".join(f"<th>{_e(n.replace('_', ' '))}<br><small>{_e(g)}</small></th>" for g, n in keys)
    rows = []
    for e in entries:
        cells = []
        for g, n in keys:
            if (g, n) not in e.metrics:
                cells.append("<td></td>")
                continue
            cls = ' flag"' if (e.learner, e.lab, g, n) in flagged else '"'
            cells.append(f'<td class="num{cls}>{_fmt(e.metrics[g, n])}</td>')
        mode = {True: "quick", False: "full"}.get(e.values.get("quick"), "")
        cpu = e.machine.get("cpu_model") or "?"
        stood = (f"<br><small>stand-in for: {_e(', '.join(e.stand_ins))}</small>" if e.stand_ins else "")
        rows.append(f'<tr><td><span class="swatch" style="background:{_color(e.family)}"></span>{_e(e.learner)}{stood}</td>'
                    f"<td>{_e(cpu)}<br><small>{_e(e.family)}</small></td><td>{mode}<br><small>"
                    f"{e.utc.strftime('%Y-%m-%d %H:%M')}</small></td>{''.join(cells)}</tr>")
    return (f"<table><tr><th>learner</th><th>CPU</th><th>mode, UTC</th>{head}</tr>{''.join(rows)}</table>")


def render(pool: Pool, title: str = "Class report") -> str:
    """The whole page as one HTML string: the latest record per learner and lab, plots, tables, outliers, skipped."""
    used = latest(pool.entries)
    outliers = find_outliers(used)
    flagged = {(o.learner, o.lab, o.group, o.name) for o in outliers}
    learners = {e.learner: e for e in used}
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<h1>{_e(title)}</h1>",
             f'<p class="meta">{len(learners)} learner{"s" * (len(learners) != 1)}, {len(used)} records used (the latest per learner and lab, '
             f"of {len(pool.entries)} read from {pool.files} files); {len(pool.skipped)} skipped. Made {now}.</p>"]

    fam_rows = []
    for f in _families(used):
        names = sorted({e.learner for e in used if e.family == f}, key=str.lower)
        cpus = sorted({str(e.machine.get("cpu_model") or "?") for e in used if e.family == f})
        fam_rows.append(f'<tr><td><span class="swatch" style="background:{_color(f)}"></span>{_e(f)}</td>'
                        f'<td class="num">{len(names)}</td><td>{_e(", ".join(names))}</td><td>{_e("; ".join(cpus))}</td></tr>')
    parts += ["<h2>Machines by CPU family</h2>", f'<p class="rule">{_e(FAMILY_RULE)}</p>',
              f"<table><tr><th>family</th><th>learners</th><th>who</th><th>CPUs</th></tr>{''.join(fam_rows)}</table>"]

    for lab in sorted({e.lab for e in used}):
        spec = report_of(lab)
        es = [e for e in used if e.lab == lab]
        parts.append(f'<h2 id="lab-{lab}">{_e(spec.title)} <small>({len(es)} machine{"s" * (len(es) != 1)})</small></h2>')
        png = plot_roofline(es, {(o.learner, o.lab) for o in outliers if o.lab == lab}) if spec.roofline \
            else plot_groups(spec, es, flagged)
        if png:
            parts.append(f'<img alt="{_e(spec.title)}" src="data:image/png;base64,{png}">')
        parts.append(_summary_table(lab, es, outliers))
        parts.append(f"<details><summary>each learner's values ({len(es)})</summary>{_learner_table(es, flagged)}</details>")

    parts += ["<h2>Outliers</h2>", f'<p class="rule">{_e(OUTLIER_RULE)}</p>']
    if outliers:
        rows = "".join(f"<tr><td>{_e(o.learner)}</td><td>{_e(o.family)}</td><td>{_e(o.lab)}</td>"
                       f"<td>{_e(o.name.replace('_', ' '))} <small>({_e(o.group)})</small></td>"
                       f'<td class="num">{_fmt(o.value)}</td><td class="num">{_fmt(o.median)}</td>'
                       f'<td class="num flag">{"×" + _fmt(o.factor) if o.factor >= 1 else "÷" + _fmt(1 / o.factor)}</td>'
                       f"<td>{o.against}</td></tr>" for o in outliers)
        parts.append("<table><tr><th>learner</th><th>family</th><th>lab</th><th>value of</th><th>value</th>"
                     f"<th>median</th><th>off by</th><th>compared with</th></tr>{rows}</table>")
    else:
        parts.append("<p>No value is flagged.</p>")

    parts.append(f'<h2 id="skipped">Skipped ({len(pool.skipped)})</h2>')
    if pool.skipped:
        rows = "".join(f"<tr><td>{_e(s.path)}</td><td>{_e(s.reason)}</td></tr>" for s in pool.skipped)
        parts.append('<p>These files or lines were left out; the rest of the report does not use them.</p>'
                     f'<table class="skipped"><tr><th>file</th><th>why</th></tr>{rows}</table>')
    else:
        parts.append("<p>Nothing was skipped.</p>")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f"<body>\n{body}\n</body></html>\n")


# ## The command


def main(folder: str | Path, output: str | Path = "class-report.html") -> int:
    """Write the report for `folder` to `output`; 0 when written, 2 when there is nothing to report (message on stderr)."""
    folder = Path(folder)
    if not folder.is_dir():
        print(f"class-report: {folder} is not a folder: give the folder holding the learners' record files "
              "(e.g. collected/alice/records.jsonl)", file=sys.stderr)
        return 2
    pool = load_folder(folder)
    for s in pool.skipped:
        print(f"skipped {s}", file=sys.stderr)
    if not pool.entries:
        found = (f"{pool.files} .json/.jsonl file(s), none holding a usable record (see above)" if pool.files
                 else "no .jsonl or .json file")
        print(f"class-report: no records in {folder} ({found}). Collect each learner's results/records.jsonl into "
              f"a folder per learner (e.g. {folder}/alice/records.jsonl) and run again.", file=sys.stderr)
        return 2
    page = render(pool, title=f"Class report: {folder.resolve().name}")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    learners = len({e.learner for e in pool.entries})
    print(f"wrote {out} ({len(page) // 1024} KiB): {learners} learner{'s' * (learners != 1)}, {len(pool.entries)} records, "
          f"{len(pool.skipped)} skipped")
    return 0
