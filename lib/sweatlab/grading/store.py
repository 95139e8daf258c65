"""Each graded submission on disk the moment it is graded: ``OUT/graded/<key>.json``.

The class outputs (grades.csv, feedback, results.json, reflections) are rebuilt from these files,
so a batch that is interrupted, killed or extended loses nothing: grading one submission again
replaces its own file, and the outputs are written anew from all of them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from sweatlab.grading.submission import SubmissionGrade

FOLDER = "graded"


def path_for(out_dir: Path, key: str) -> Path:
    return Path(out_dir) / FOLDER / f"{key}.json"


def save(out_dir: Path, grade: SubmissionGrade) -> Path:
    """Write one submission's result atomically (a reader never sees half a file)."""
    target = path_for(out_dir, grade.key)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(grade.to_json(), f, ensure_ascii=False, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target


def load(out_dir: Path, key: str) -> SubmissionGrade | None:
    """The saved result of one submission, or None (never saved, or unreadable)."""
    try:
        return SubmissionGrade.from_json(json.loads(path_for(out_dir, key).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def load_all(out_dir: Path) -> tuple[list[SubmissionGrade], list[str]]:
    """Every saved result, sorted by name; and the files that could not be read (named, not fatal)."""
    grades, bad = [], []
    for path in sorted((Path(out_dir) / FOLDER).glob("*.json")):
        try:
            grades.append(SubmissionGrade.from_json(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError) as exc:
            bad.append(f"{path.name}: {exc}")
    grades.sort(key=lambda g: (g.name.casefold(), g.key))
    return grades, bad
