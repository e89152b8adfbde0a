"""Result schema: per-dimension scores, the overall score, tables (CSV and Markdown).

Overall score. Each dimension's score is the mean of its primary task's three format metrics
(multiple-choice accuracy by option log-likelihood, cloze accuracy, ROUGE-L). It is normalised to [0, 1] against the
reference models:

- visual forgetting: (vanilla - x) / (vanilla - oracle): 1 = forgotten as thoroughly as a
  model that never saw the forget entities. Without an oracle (or when it scores as high as
  the vanilla model), chance level takes its place: (vanilla - x) / (vanilla - chance);
- the other three: x / vanilla: 1 = as good as before unlearning.

Each is clipped to [0, 1]; the overall score is their harmonic mean, so a method must do well
on all four (a collapse anywhere drives it towards 0).
"""

from __future__ import annotations

import csv
import io
import math

from .data.schema import LETTERS
from .metrics import HEADLINE as HEADLINE_OF_FORMAT
from .metrics import METRICS
from .tasks import DIMENSIONS, Task

HEADLINE = tuple(HEADLINE_OF_FORMAT.values())
CHANCE = {"mc_loglik_acc": 1 / len(LETTERS), "cloze_acc": 0.0, "rougeL": 0.0}
SCHEMA_VERSION = 1


def task_score(per_metric: dict[str, dict]) -> float:
    """Mean of the headline metrics present (a task scoring fewer formats averages fewer)."""
    values = [per_metric[m]["mean"] for m in HEADLINE if m in per_metric]
    return sum(values) / len(values) if values else float("nan")


def chance_score(per_metric: dict[str, dict]) -> float:
    values = [CHANCE[m] for m in HEADLINE if m in per_metric]
    return sum(values) / len(values) if values else float("nan")


def dimension_scores(scores: dict[str, dict], tasks: list[Task]) -> dict[str, float]:
    """dimension -> score of its primary task."""
    out = {}
    for task in tasks:
        if task.primary and task.name in scores:
            out[task.dimension] = task_score(scores[task.name])
    return out


def _clip(x: float) -> float:
    return float("nan") if math.isnan(x) else min(1.0, max(0.0, x))


def normalise(unlearned: dict[str, float], vanilla: dict[str, float], oracle: dict[str, float] | None,
              chance: dict[str, float]) -> dict[str, float]:
    out = {}
    for dim, x in unlearned.items():
        v = vanilla.get(dim, float("nan"))
        if dim == "visual_forgetting":
            o = oracle.get(dim) if oracle else None
            floor = o if o is not None and v - o > 1e-9 else chance.get(dim, 0.0)
            out[dim] = _clip((v - x) / (v - floor)) if v - floor > 1e-9 else float("nan")
        else:
            out[dim] = _clip(x / v) if v > 1e-9 else float("nan")
    return out


def harmonic_mean(values: list[float]) -> float:
    if not values or any(math.isnan(v) for v in values):
        return float("nan")
    if any(v <= 0 for v in values):
        return 0.0
    return len(values) / sum(1 / v for v in values)


def overall(normalised: dict[str, float]) -> float:
    return harmonic_mean([normalised[d] for d in DIMENSIONS if d in normalised])


def table_rows(result: dict) -> list[dict]:
    """One row per task (unlearned model's metrics, with the reference models' task scores),
    then the overall score."""
    rows = []
    scores = result["scores"]
    for name, task in result["tasks"].items():
        per_metric = scores["unlearned"].get(name, {})
        row = {
            "task": name,
            "dimension": task["dimension"],
            "better": "higher" if task["higher_is_better"] else "lower",
        }
        for metric in METRICS:
            row[metric] = per_metric.get(metric, {}).get("mean", float("nan"))
        row["score"] = task_score(per_metric)
        for ref in ("vanilla", "oracle"):
            ref_scores = scores.get(ref) or {}
            row[ref] = task_score(ref_scores[name]) if name in ref_scores else float("nan")
        row["normalised"] = result["normalised"].get(task["dimension"], float("nan")) if task["primary"] else float("nan")
        rows.append(row)
    return rows


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
