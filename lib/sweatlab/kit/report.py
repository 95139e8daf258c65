"""What the class report reads from a lab's record, declared by the lab itself.

Each lab's package may hold ``record.py`` with ``REPORT = LabReport(title, extract, plots, ...)``:
``extract(values) -> {(group, name): number}`` turns the ``values`` of one of its records (what
``lab.record(...)`` wrote) into the numbers the report pools, raising :class:`RecordError` with the
reason when a record cannot be used. A lab without one gets :func:`generic_report`: every number in
its record, grouped by its top-level key, so a new lab appears in the class report with no edit
to the report.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["RecordError", "LabReport", "is_num", "number", "numbers", "generic_extract", "generic_report", "report_of"]


class RecordError(ValueError):
    """A record this report cannot use; the message says what is wrong with it."""


@dataclass(frozen=True)
class LabReport:
    """How the report reads and shows one lab: its numbers, and which groups of them get a plot."""

    title: str
    extract: Callable[[dict[str, Any]], dict[tuple[str, str], float]]
    plots: tuple[str, ...] = ()  # groups plotted as a strip (one point per machine per name)
    ladder: bool = False  # join each machine's points with a line (an ordered ladder)
    log: bool = True
    roofline: bool = False  # plot each machine's peak and bandwidth as a roofline (lab 00's record)


def is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def number(values: dict[str, Any], key: str, *, required: bool, positive: bool = True, where: str = "") -> float | None:
    where = where or f"values[{key!r}]"
    if key not in values or values[key] is None:
        if required:
            raise RecordError(f"{where} is missing")
        return None
    v = values[key]
    if not is_num(v) or (positive and v <= 0):
        raise RecordError(f"{where} is {v!r}, not a {'positive ' if positive else ''}number")
    return float(v)


def numbers(values: dict[str, Any], key: str, *, required: bool, order: Iterable[str] = ()) -> dict[str, float]:
    """values[key] as {name: number}: None entries are left out, anything else non-numeric is an error."""
    d = values.get(key)
    if d is None:
        if required:
            raise RecordError(f"values[{key!r}] is missing")
        return {}
    if not isinstance(d, dict):
        raise RecordError(f"values[{key!r}] is a {type(d).__name__}, not a dict of numbers")
    names = [k for k in order if k in d] + [k for k in d if k not in order]
    out = {}
    for name in names:
        v = d[name]
        if v is None or (isinstance(v, str) and name == "kind"):
            continue
        if not is_num(v) or v <= 0:
            raise RecordError(f"values[{key!r}][{name!r}] is {v!r}, not a positive number")
        out[name] = float(v)
    if required and not out:
        raise RecordError(f"values[{key!r}] holds no number")
    return out


def generic_extract(values: dict[str, Any]) -> dict[tuple[str, str], float]:
    """Every finite number of a record: a number at ``values[k]`` is ("numbers", k); one at
    ``values[k][j]`` is (k, j). Deeper numbers and anything else are left out."""
    out: dict[tuple[str, str], float] = {}
    for key, v in values.items():
        if is_num(v):
            out["numbers", str(key)] = float(v)
        elif isinstance(v, dict):
            for sub, x in v.items():
                if is_num(x):
                    out[str(key), str(sub)] = float(x)
    if not out:
        raise RecordError("no number in its values")
    return out


def generic_report(lab: str) -> LabReport:
    """The report of a lab that declares none: its title from its name, its numbers as :func:`generic_extract`."""
    number_, _, topic = lab.partition("_")
    return LabReport(f"Lab {number_}: {topic.replace('_', ' ')}", generic_extract, log=False)


def report_of(lab: str) -> LabReport:
    """``REPORT`` of ``sweatlab.labs.lab<lab>.record``, or :func:`generic_report` for a lab without one."""
    name = f"sweatlab.labs.lab{lab}.record"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name not in (name, name.rsplit(".", 1)[0]):
            raise
        return generic_report(lab)
    return module.REPORT
