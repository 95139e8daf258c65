"""What the grader writes: grades.csv, feedback/<submission>.md, results.json (Gradescope style)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .grader import SubmissionGrade


def test_column(r) -> str:
    return f"{r.exercise}: {r.name}"


def gradescope(grade: SubmissionGrade) -> dict:
    """One submission in Gradescope's results.json schema (score, tests with name/score/max_score/output)."""
    notes = grade.notes + grade.cell_errors
    return {
        "score": round(grade.score, 4),
        "max_score": round(grade.max_score, 4),
        "execution_time": round(grade.seconds, 2),
        "output": "\n".join(notes),
        "tests": [{"name": test_column(r), "score": r.points, "max_score": r.max_points,
                   "status": "passed" if r.passed else "failed",
                   "output": r.message + (("\n" + r.traceback) if r.traceback else ""),
                   "visibility": "visible"} for r in grade.results],
    }


def feedback_markdown(grade: SubmissionGrade) -> str:
    lines = [f"# Feedback: {grade.name}", ""]
    lines.append(f"Lab **{grade.lab or 'unknown'}**: **{grade.score:g} / {grade.max_score:g}** points.")
    lines.append("")
    if grade.notes:
        lines += ["## About your submission", ""] + [f"- {n}" for n in grade.notes] + [""]
    if grade.results:
        lines += ["## Tests", "", "| | exercise | test | points |", "|---|---|---|---|"]
        for r in grade.results:
            lines.append(f"| {'✓' if r.passed else '✗'} | {r.exercise} | {r.name} | {r.points:g} / {r.max_points:g} |")
        failed = [r for r in grade.results if not r.passed]
        if failed:
            lines += ["", "## What went wrong", ""]
            for r in failed:
                lines.append(f"### {r.exercise}: {r.name}")
                lines += ["", "```", r.message.rstrip()] + ([r.traceback.rstrip()] if r.traceback else []) + ["```", ""]
    if grade.cell_errors:
        lines += ["## Cells that raised an error", ""]
        for e in grade.cell_errors:
            lines += ["```", e.rstrip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_outputs(grades: list[SubmissionGrade], out_dir: Path) -> dict[str, Path]:
    """Write every output file; returns their paths."""
    out_dir = Path(out_dir)
    (out_dir / "feedback").mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for g in grades:
        for r in g.results:
            if test_column(r) not in columns:
                columns.append(test_column(r))
    csv_path = out_dir / "grades.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "lab", "total", "max", *columns, "seconds", "notes"])
        for g in grades:
            by_col = {test_column(r): r.points for r in g.results}
            writer.writerow([g.name, g.lab or "", f"{g.score:g}", f"{g.max_score:g}",
                             *[f"{by_col[c]:g}" if c in by_col else "" for c in columns],
                             f"{g.seconds:.1f}", " | ".join(n.splitlines()[0] for n in g.notes)])
    for g in grades:
        (out_dir / "feedback" / f"{g.name}.md").write_text(feedback_markdown(g), encoding="utf-8")
    results_path = out_dir / "results.json"
    results_path.write_text(json.dumps({"submissions": {g.name: gradescope(g) for g in grades}}, indent=1),
                            encoding="utf-8")
    return {"csv": csv_path, "feedback": out_dir / "feedback", "results": results_path}
