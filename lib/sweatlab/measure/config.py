"""Course-wide switches read from the environment, and where the course folder is (standard library only)."""

from __future__ import annotations

import os
from pathlib import Path


def quick() -> bool:
    """True in quick mode (``SWEAT_QUICK=1``, set by the tests and CI): labs shrink problem sizes."""
    return os.environ.get("SWEAT_QUICK", "").strip().lower() in ("1", "true", "yes")


def pick(quick_value, full_value):
    """``quick_value`` in quick mode, else ``full_value``: ``n = pick(128, 512)``."""
    return quick_value if quick() else full_value


def course_root(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The course folder: the nearest folder at or above ``start`` (default: the current directory)
    holding ``pyproject.toml`` beside ``solutions/`` or ``labs/``; None outside a course.

    The one rule every part of the package uses: the results folder (``records``), the CLI's
    default ``--root`` (``course.layout.find_root``) and ``sweatlab progress``. A clone of the
    course has all three; the folder of Gradescope's autograder has no ``solutions/``.
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and ((folder / "solutions").is_dir() or (folder / "labs").is_dir()):
            return folder
    return None
