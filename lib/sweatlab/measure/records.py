"""Keep what a lab measured: one JSON line per record, with the machine and package versions.

    record("00_measure", gflops=123.4, threads=1) -> dict     appends to <results>/records.jsonl
    load_records(lab=None) -> list[dict]

The results folder is $SWEAT_RESULTS_DIR if set, else `results/` in the course folder (found from
the current directory by `sweatlab.measure.config.course_root`), else `results/` in the current
directory. The course keeps it out of git.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from sweatlab.measure.config import course_root

__all__ = ["record", "write_record", "load_records", "results_dir", "records_path_for_display", "RECORDS_FILE", "package_versions"]

RECORDS_FILE = "records.jsonl"
_PACKAGES = ("sweatlab", "numpy", "torch", "numba", "threadpoolctl", "psutil", "matplotlib", "onnxruntime", "onnx",
             "onnxscript", "scikit-learn")


def results_dir() -> Path:
    """$SWEAT_RESULTS_DIR, else <course folder>/results, else ./results (not created here)."""
    env = os.environ.get("SWEAT_RESULTS_DIR")
    if env:
        return Path(env).expanduser()
    return (course_root() or Path.cwd().resolve()) / "results"


def records_path_for_display() -> str:
    """Where records go, relative to the course folder when inside it (safe to print in a notebook)."""
    path = results_dir() / RECORDS_FILE
    root = course_root()
    try:
        return str(path.resolve().relative_to(root)) if root else str(path)
    except ValueError:
        return str(path)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape the numbers (None: not installed)."""
    import platform

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _jsonable(value: Any, where: str) -> Any:
    """value as plain JSON types; numpy scalars become Python numbers; anything else is refused."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}: JSON has no NaN or infinity; record None for 'unknown' instead")
        return value
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return _jsonable(value.item(), where)
        if isinstance(value, np.ndarray):
            raise TypeError(
                f"{where} is a numpy array of shape {value.shape}: record a number (e.g. float(x.mean()))"
                " or a short list (x.tolist())"
            )
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has a non-string key {k!r}: JSON keys must be strings")
            out[k] = _jsonable(v, f"{where}[{k!r}]")
        return out
    hint = ""
    if hasattr(value, "median_s"):
        hint = " (for a timing, record its number: result.median_s)"
    raise TypeError(
        f"{where} is a {type(value).__name__}, which JSON cannot hold: record numbers, strings, bools, None,"
        f" or lists/dicts of them{hint}"
    )


def _ends_mid_line(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except OSError:  # missing or empty file
        return False


def record(lab: str, /, **values: Any) -> dict[str, Any]:
    """Append {lab, values, machine, versions, utc} as one JSON line to <results>/records.jsonl; return it."""
    return write_record(lab, values)


def write_record(lab: str, values: dict[str, Any], stand_ins: list[str] | None = None) -> dict[str, Any]:
    """:func:`record`, with ``stand_ins``: the lab's functions whose numbers came from the course's stand-in."""
    if not isinstance(lab, str) or not lab.strip():
        raise ValueError(f"lab must be a non-empty string such as '00_measure', got {lab!r}")
    clean = {k: _jsonable(v, f"values[{k!r}]") for k, v in values.items()}
    from sweatlab.measure.hardware import summary

    rec = {
        "lab": lab,
        "values": clean,
        "machine": summary(),
        "versions": package_versions(),
        "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if stand_ins:
        rec["stand_ins"] = sorted(stand_ins)
    line = json.dumps(rec, allow_nan=False, sort_keys=False)
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RECORDS_FILE
    if _ends_mid_line(path):
        line = "\n" + line  # an earlier write was cut short: start on a fresh line
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")  # one write per record, so records never interleave mid-line
    return rec


def load_records(lab: str | None = None) -> list[dict[str, Any]]:
    """All records in <results>/records.jsonl, oldest first (only `lab`'s if given); bad lines are skipped."""
    path = results_dir() / RECORDS_FILE
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # e.g. a line cut short by an interrupted write
            if isinstance(rec, dict) and (lab is None or rec.get("lab") == lab):
                out.append(rec)
    return out
