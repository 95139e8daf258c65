"""What the grader writes: grades.csv, feedback/<key>.md, results.json (Gradescope style), reflections.md.

Every file here is rebuilt from the per-submission results in ``OUT/graded/`` (see
:mod:`.store`), plus an optional CSV of scores marked by hand.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

from sweatlab.kit.checks import TestResult
from sweatlab.grading.submission import SubmissionGrade

_MAX_IN_HEADER = re.compile(r"^(.*?)\s*\(max\s*([0-9.]+)\)\s*$")


def test_column(r) -> str:
    return f"{r.exercise}: {r.name}"


def exercise_label(grade: SubmissionGrade, exercise: str) -> str:
    """The exercise as the lab names it ("Exercise 3: strides of the innermost loop"), else its key."""
    return grade.exercise_titles.get(exercise, exercise)


def gradescope(grade: SubmissionGrade) -> dict:
    """One submission in Gradescope's results.json format."""
    from sweatlab.grading.gradescope import results_object

    return results_object(grade)


def _grouped(grade: SubmissionGrade) -> list[tuple[str, list[TestResult]]]:
    groups: dict[str, list[TestResult]] = {}
    for r in grade.results:
        groups.setdefault(r.exercise, []).append(r)
    return list(groups.items())


def feedback_markdown(grade: SubmissionGrade) -> str:
    """The learner's feedback: the score, notes on the submission, then one section per exercise."""
    lines = [f"# Feedback: {grade.name}", ""]
    lines.append(f"Lab **{grade.lab or 'unknown'}**: **{grade.score:g} / {grade.max_score:g}** points.")
    lines.append("")
    if grade.notes:
        lines += ["## About your submission", ""] + [f"- {n}" for n in grade.notes] + [""]
    if grade.results:
        lines += ["## Exercises", "", "| | exercise | test | points |", "|---|---|---|---|"]
        for exercise, results in _grouped(grade):
            label = exercise_label(grade, exercise)
            for r in results:
                lines.append(f"| {'✓' if r.passed else '✗'} | {label} | {r.name} | {r.points:g} / {r.max_points:g} |")
        failing = [(e, rs) for e, rs in _grouped(grade) if not all(r.passed for r in rs)]
        if failing:
            lines += ["", "## What went wrong", ""]
            for exercise, results in failing:
                label = exercise_label(grade, exercise)
                failed = [r for r in results if not r.passed]
                lines.append(f"### {label}")
                lines.append("")
                if all(r.not_written for r in failed) and failed:
                    # one line per exercise, not one per test: the advice is the same for all of them
                    lines += ["```", failed[0].message.rstrip(), "```", ""]
                    continue
                hints: list[str] = []
                for r in failed:
                    lines += [f"**{r.name}**", "", "```", r.message.rstrip()] + \
                             ([r.traceback.rstrip()] if r.traceback else []) + ["```", ""]
                    if getattr(r, "hint", "") and r.hint not in hints:
                        hints.append(r.hint)
                lines += [f"*Hint:* {h}" for h in hints] + ([""] if hints else [])  # once each per exercise
    if grade.cell_errors:
        lines += ["## Cells that raised an error", ""]
        for e in grade.cell_errors:
            lines += ["```", e.rstrip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------
# Scores marked by hand
# ---------------------------------------------------------------------------------------------

def read_manual_scores(path: Path) -> tuple[dict[str, dict[str, float]], dict[str, float], list[str]]:
    """A CSV with a ``submission`` column and one column per item, headed ``item (max N)``.

    Returns {submission: {item: points}}, {item: max points}, and problems found (named, not fatal).
    """
    problems: list[str] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows or "submission" not in rows[0]:
        raise ValueError(f"{path}: the first row must name the columns, one of them 'submission' "
                         "and each other 'item (max N)'")
    header = rows[0]
    who = header.index("submission")
    items: dict[int, tuple[str, float]] = {}
    for i, title in enumerate(header):
        if i == who or not title.strip():
            continue
        m = _MAX_IN_HEADER.match(title)
        if not m:
            problems.append(f"column {title!r} has no '(max N)': skipped")
            continue
        items[i] = (m.group(1).strip(), float(m.group(2)))
    scores: dict[str, dict[str, float]] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        name = row[who].strip() if who < len(row) else ""
        marks = {}
        for i, (item, top) in items.items():
            text = row[i].strip() if i < len(row) else ""
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                problems.append(f"row {n}, {item}: {text!r} is not a number: skipped")
                continue
            if not 0 <= value <= top:
                problems.append(f"row {n}, {item}: {value:g} is outside 0..{top:g}: skipped")
                continue
            marks[item] = value
        scores[name] = marks
    return scores, {item: top for item, top in items.values()}, problems


def merge_manual(grades: list[SubmissionGrade], manual: Path) -> tuple[list[SubmissionGrade], list[str]]:
    """Each grade with the hand-marked items added as results (exercise "manual")."""
    scores, tops, problems = read_manual_scores(manual)
    names = {g.name for g in grades} | {g.key for g in grades}
    problems += [f"{who!r} in {manual.name} matches no graded submission" for who in scores if who not in names]
    merged = []
    for g in grades:
        marks = scores.get(g.name, scores.get(g.key, {}))
        extra = [TestResult(g.lab or "", "manual", item, marks.get(item, 0.0), top, item in marks and marks[item] >= top,
                            "marked by hand" if item in marks else "not marked yet")
                 for item, top in tops.items()]
        merged.append(dataclasses.replace(g, results=[r for r in g.results if r.exercise != "manual"] + extra))
    return merged, problems


# ---------------------------------------------------------------------------------------------
# The class's files
# ---------------------------------------------------------------------------------------------

def reflections_markdown(grades: list[SubmissionGrade]) -> str:
    """Every learner's free-text answers, grouped by question, for marking by hand."""
    questions: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for g in grades:
        for cell_id, item in g.reflections.items():
            questions.setdefault((g.lab or "", cell_id), []).append((g.name, item.get("answer", "")))
    if not questions:
        return ""
    titles = {}
    for g in grades:
        for cell_id, item in g.reflections.items():
            titles.setdefault((g.lab or "", cell_id), item.get("question", cell_id))
    lines = ["# Reflection answers", "",
             "One section per question; mark them by hand and merge the marks with "
             "`--manual scores.csv` (a `submission` column, then one `item (max N)` column per question).", ""]
    for (lab, cell_id), answers in questions.items():
        lines += [f"## {lab} / {cell_id}: {titles[(lab, cell_id)]}", ""]
        for name, answer in sorted(answers, key=lambda a: a[0].casefold()):
            lines += [f"### {name}", "", answer.strip() or "*(not answered)*", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_outputs(grades: list[SubmissionGrade], out_dir: Path, manual: Path | None = None) -> dict[str, Path]:
    """Write every class file from ``grades``; returns their paths (and ``problems`` from a manual CSV)."""
    out_dir = Path(out_dir)
    (out_dir / "feedback").mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    if manual is not None:
        grades, problems = merge_manual(grades, Path(manual))
    columns: list[str] = []
    for g in grades:
        for r in g.results:
            if test_column(r) not in columns:
                columns.append(test_column(r))
    csv_path = out_dir / "grades.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "file", "lab", "total", "max", *columns, "seconds", "feedback", "notes"])
        for g in grades:
            by_col = {test_column(r): r.points for r in g.results}
            writer.writerow([g.name, g.path, g.lab or "", f"{g.score:g}", f"{g.max_score:g}",
                             *[f"{by_col[c]:g}" if c in by_col else "" for c in columns],
                             f"{g.seconds:.1f}", f"feedback/{g.key}.md",
                             " | ".join(n.splitlines()[0] for n in g.notes)])
    keep = {f"{g.key}.md" for g in grades}
    for g in grades:
        (out_dir / "feedback" / f"{g.key}.md").write_text(feedback_markdown(g), encoding="utf-8")
    for stale in (out_dir / "feedback").glob("*.md"):
        if stale.name not in keep:
            stale.unlink()
    results_path = out_dir / "results.json"
    results_path.write_text(json.dumps({"submissions": {g.name: gradescope(g) for g in grades}}, indent=1,
                                       ensure_ascii=False), encoding="utf-8")
    paths = {"csv": csv_path, "feedback": out_dir / "feedback", "results": results_path}
    text = reflections_markdown(grades)
    reflections = out_dir / "reflections.md"
    if text:
        reflections.write_text(text, encoding="utf-8")
        paths["reflections"] = reflections
    elif reflections.exists():
        reflections.unlink()
    paths["problems"] = problems  # type: ignore[assignment]
    return paths


def rebuild(out_dir: Path, manual: Path | None = None) -> tuple[list[SubmissionGrade], dict]:
    """Write the class files anew from every saved result in ``out_dir/graded``."""
    from sweatlab.grading import store

    grades, bad = store.load_all(out_dir)
    paths = write_outputs(grades, out_dir, manual)
    paths["problems"] = list(paths.get("problems", [])) + [f"unreadable result {b}" for b in bad]
    return grades, paths
