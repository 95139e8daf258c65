"""The course's fixed words and places: markers, roles, the kernel, the folders, the errors, and
the one way to name a lab (:func:`resolve_lab`).

Standard library only (and :mod:`sweatlab.measure.config`, which is too), so ``doctor`` and the
CLI can use it on an install where nbformat or jupytext is missing or broken. The tooling that
reads and writes notebooks is in ``source``, ``build`` and ``check``; ``sweatlab.course`` gathers it all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from sweatlab.measure.config import course_root

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
SOLUTION_TAG = "solution"
CHECK_OUTPUT_TAG = "nbval-check-output"
ROLES = ("answer", "check", "setup", "prose", "demo", "reflection")
KERNEL_NAME = "systems-that-sweat"
KERNEL_SPEC = {
    "display_name": "Python 3 (Systems That Sweat)",
    "language": "python",
    "name": KERNEL_NAME,
}
# Only these metadata keys survive from the source into the notebooks; everything else
# jupytext might add (lines_to_next_cell, ...) would churn the generated files.
KEPT_CELL_METADATA = ("sweat", "tags", "slideshow", "jupyter")
LAB_NAME_RE = re.compile(r"^\d\d_[a-z0-9_]+$")


class CourseError(Exception):
    """A problem in a course notebook, with where it is and how to fix it."""

    def __init__(self, path: Path | str, problem: str, fix: str, cell: int | None = None,
                 cell_id: str | None = None, line: int | None = None):
        self.path, self.problem, self.fix = Path(path), problem, fix
        self.cell, self.cell_id, self.line = cell, cell_id, line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = str(self.path) + (f":{self.line}" if self.line else "")
        if self.cell is not None:
            where += f", cell {self.cell}" + (f" (id '{self.cell_id}')" if self.cell_id else "")
        return f"{where}: {self.problem}\n    fix: {self.fix}"


class MarkerError(ValueError):
    """Solution markers that do not pair up in one cell; ``line`` is 1-based within the cell."""

    def __init__(self, problem: str, fix: str, line: int):
        self.problem, self.fix, self.line = problem, fix, line
        super().__init__(f"{problem} (fix: {fix})")


@dataclass(frozen=True)
class Course:
    """Where a course's folders are: ``root/solutions``, ``root/labs``, ``root/slides``."""

    root: Path

    @property
    def solutions(self) -> Path:
        return self.root / "solutions"

    @property
    def labs(self) -> Path:
        return self.root / "labs"

    @property
    def slides(self) -> Path:
        return self.root / "slides"

    def sources(self) -> list[Path]:
        """The lab sources, ``solutions/NN_topic.py``, in order."""
        return [self.solutions / f"{name}.py" for name in lab_names(self.solutions, ".py")]

    def solution_ipynb(self, src: Path) -> Path:
        return src.with_suffix(".ipynb")

    def lab_ipynb(self, src: Path) -> Path:
        return self.labs / (src.stem + ".ipynb")


def find_root(start: Path | None = None) -> Path:
    """The course root found from ``start`` (:func:`sweatlab.measure.config.course_root`), or a CourseError."""
    root = course_root(start)
    if root is None:
        raise CourseError((start or Path.cwd()).resolve(),
                          "not inside the course folder (no pyproject.toml beside solutions/ or labs/ above it)",
                          "cd into the cloned course repository, or pass --root PATH")
    return root


class LabNameError(CourseError, ValueError):
    """No lab, or several, match the name given; its text (one line) lists the labs."""

    def __init__(self, problem: str):
        super().__init__("", problem, "name a lab by its number, its full name or a unique prefix")

    def __str__(self) -> str:
        return self.problem


def lab_names(folder: Path, suffix: str = ".ipynb") -> list[str]:
    """The labs (``NN_topic``) that have a file ``NN_topic<suffix>`` in ``folder``, in order."""
    return sorted(p.stem for p in Path(folder).glob(f"*{suffix}") if LAB_NAME_RE.match(p.stem))


def resolve_lab(wanted: str, labs: Iterable[str]) -> str:
    """The one lab of ``labs`` that ``wanted`` names: its full name, its number ("01") or a unique prefix
    ("01_mat"); an exact name wins over a prefix, and a path or file name counts by its stem
    ("solutions/01_matmul.py"). A :class:`LabNameError` that lists the labs when none or several match."""
    labs = sorted(labs)
    name = Path(str(wanted).strip()).name
    for suffix in (".py", ".ipynb"):
        name = name.removesuffix(suffix)
    if name in labs:
        return name
    matches = [lab for lab in labs if name and lab.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise LabNameError(f"no lab matches {name!r}; the labs are: {', '.join(labs) or 'none'}")
    raise LabNameError(f"{name!r} matches {len(matches)} labs ({', '.join(matches)}); name one of them")


def sweat_of(cell) -> dict:
    """A cell's ``sweat`` metadata (id, role, timeout, ...); empty when it has none."""
    meta = cell.get("metadata", {}).get("sweat", {})
    return meta if isinstance(meta, dict) else {}


def exercises_of(cell) -> list[str]:
    """The exercises a cell answers or checks: its ``sweat`` metadata's ``"exercise"`` (a name, or a list of
    names for an answer cell that serves several); empty when it names none."""
    value = sweat_of(cell).get("exercise")
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [v for v in values if isinstance(v, str) and v]


def tags_of(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))
