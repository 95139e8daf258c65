"""The course's fixed words and places: markers, roles, the kernel, the folders, the errors.

Standard library only, so ``doctor`` and the CLI can use it on an install where nbformat or
jupytext is missing or broken. The tooling that reads and writes notebooks is in
``course_source``, ``course_build`` and ``course_check``; ``sweatlab.course`` gathers it all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

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
        return sorted(p for p in self.solutions.glob("*.py") if LAB_NAME_RE.match(p.stem))

    def solution_ipynb(self, src: Path) -> Path:
        return src.with_suffix(".ipynb")

    def lab_ipynb(self, src: Path) -> Path:
        return self.labs / (src.stem + ".ipynb")


def find_root(start: Path | None = None) -> Path:
    """The course root: the nearest folder at or above ``start`` holding ``solutions/`` and ``pyproject.toml``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "solutions").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    raise CourseError(here, "not inside the course folder (no solutions/ and pyproject.toml above it)",
                      "cd into the cloned course repository, or pass --root PATH")


def sweat_of(cell) -> dict:
    """A cell's ``sweat`` metadata (id, role, timeout, ...); empty when it has none."""
    meta = cell.get("metadata", {}).get("sweat", {})
    return meta if isinstance(meta, dict) else {}


def tags_of(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))
