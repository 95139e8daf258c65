"""One graded submission as plain data: what the grader, the store, the reports and Gradescope share."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sweatlab.kit.checks import TestResult


@dataclass
class SubmissionGrade:
    """Everything about one graded submission (plain data: it feeds the CSV, feedback and JSON)."""

    name: str  # as the learner wrote it (UTF-8), or as Gradescope's export names the learner
    path: str
    lab: str | None
    key: str = ""  # a safe, stable file name for this submission's files in the output folder
    sha256: str = ""  # of the submitted file: --resume skips an unchanged submission
    tests_id: str = ""  # which tests graded it: new hidden tests mean grading again
    results: list[TestResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cell_errors: list[str] = field(default_factory=list)
    limit_notes: list[str] = field(default_factory=list)
    exercise_titles: dict[str, str] = field(default_factory=dict)
    reflections: dict[str, dict[str, str]] = field(default_factory=dict)  # cell id -> {"question", "answer"}
    seconds: float = 0.0
    readable: bool = True

    @property
    def score(self) -> float:
        return sum(r.points for r in self.results)

    @property
    def max_score(self) -> float:
        return sum(r.max_points for r in self.results)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "SubmissionGrade":
        data = dict(data)
        data["results"] = [TestResult(**r) for r in data.get("results", [])]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
