"""A run's per-task table (``table.csv``, ``table.md``), from its results."""

from __future__ import annotations

import csv
import io
import math

from .results import UNLEARNED, RunResult, task_score


def measure_columns(result: RunResult) -> list[str]:
    """Every measure reported on some task, in the tasks' order."""
    return list(dict.fromkeys(m for t in result.tasks.values() for m in t.measures))


def table_rows(result: RunResult) -> list[dict]:
    """One row per task: the unlearned model's measures, its task score, the reference models'
    task scores and the normalised dimension score (primary tasks)."""
    rows = []
    unlearned = result.scores[UNLEARNED]
    roles = result.reference_roles()
    for name, task in result.tasks.items():
        per_measure = unlearned.get(name, {})
        row = {"task": name, "dimension": task.dimension, "better": "higher" if task.higher_is_better else "lower"}
        for measure in measure_columns(result):
            row[measure] = per_measure[measure].mean if measure in per_measure else float("nan")
        row["score"] = task_score(per_measure, task.score)
        for role in roles:
            ref = result.scores[role]
            row[role] = task_score(ref[name], task.score) if name in ref else float("nan")
        row["normalised"] = result.normalised.get(task.dimension, float("nan")) if task.primary else float("nan")
        rows.append(row)
    return rows


def title(result: RunResult) -> str:
    return (f"{result.method['name']} on {result.benchmark['name']} "
            f"(forget {result.benchmark['forget_ratio']:g}%, seed {result.seed}, model {result.model['name']})")


def footer(result: RunResult) -> str:
    value = result.overall
    text = "n/a" if math.isnan(value) else f"{value:.3f}"
    described = {m: info.get("description", "") for m, info in result.measures.items()}
    named = "; ".join(f"{m}: {described[m]}" for m in measure_columns(result) if described.get(m))
    roles = "/".join(result.reference_roles())
    return (f"Overall score (harmonic mean of the normalised dimensions): **{text}**. "
            + (f"{named}. " if named else "") + f"{roles}: the reference models' task scores.")


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(v) for k, v in row.items()})
    return buf.getvalue()


def to_markdown(rows: list[dict], title: str = "", footer: str = "") -> str:
    header = list(rows[0])
    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row[h]) or "-" for h in header) + " |")
    if footer:
        lines += ["", footer]
    return "\n".join(lines) + "\n"
