"""A run's per-task table (``table.csv``, ``table.md``), from its results."""

from __future__ import annotations

import csv
import io
import math

from mmu_bench.runs.results import UNLEARNED, Normalisation, RunResult, task_score


def measure_columns(result: RunResult, table: str = "main") -> list[str]:
    """Every measure of ``table`` ("main" or "information") reported on some task, in the order
    of the tasks (primary tasks first, in their display order)."""
    tasks = sorted(result.tasks.values(), key=lambda t: (not t.primary, t.order))
    return list(dict.fromkeys(m for t in tasks for m in t.measures
                              if result.measures.get(m, {}).get("table", "main") == table))


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
        row["normalised"] = (result.normalised.get(task.dimension, float("nan")) if task.primary
                             else suite_normalised(result, name) if task.suite else float("nan"))
        rows.append(row)
    return rows


def suite_normalised(result: RunResult, task: str, model: str = UNLEARNED) -> float:
    """A utility-suite task's score against the vanilla model's (x / vanilla, clipped), as every
    higher-is-better dimension is normalised."""
    info = result.tasks[task]
    score = task_score(result.scores[model].get(task, {}), info.score)
    vanilla = task_score(result.scores.get("vanilla", {}).get(task, {}), info.score)
    return Normalisation(True, vanilla).apply(score)


def information_rows(result: RunResult) -> list[dict]:
    """The second table: per task with such measures, the unlearned model's values of the
    measures of "does the information remain?" (truth ratio, forget quality, MIA, PrivLeak),
    and the reference model each compares with."""
    columns = measure_columns(result, "information")
    rows = []
    for name, task in result.tasks.items():
        if not any(m in columns for m in task.measures):
            continue
        per_measure = result.scores[UNLEARNED].get(name, {})
        row = {"task": name, "dimension": task.dimension}
        for measure in columns:
            value = per_measure.get(measure)
            row[measure] = value.mean if value is not None and value.absent is None else float("nan")
        row["against"] = " ".join(sorted({v.against for v in per_measure.values() if v.against})) or "-"
        rows.append(row)
    return rows


def absences(result: RunResult) -> list[str]:
    """Why measures of the unlearned model have no value, one line per task and reason."""
    lines = []
    for task, per_measure in result.scores[UNLEARNED].items():
        reasons: dict[str, list[str]] = {}
        for measure, value in per_measure.items():
            if value.absent:
                reasons.setdefault(value.absent, []).append(measure)
        lines += [f"{task}: {', '.join(names)}: {reason}" for reason, names in reasons.items()]
    return lines


INFORMATION_FOOTER = (
    "Does the information remain? truth_ratio_forget: 1 = true and false answers equally likely (forgotten); "
    "truth_ratio_retain: higher = the true answer preferred; forget_quality: KS-test p-value against the reference "
    "in `against` (high = indistinguishable from it: good); mia_auc_*: AUC of telling the task's items from "
    "never-trained people (0.5 = like never seen); privleak_*: (AUC - reference AUC) / reference AUC, near 0 is best, "
    "positive = still recognisable, negative = over-unlearned or knowledge lost. See README, \"Forget quality and privacy\"."
)


ATTACKS_FOOTER = (
    "Lower is better for the unlearned model. relearn_recovery_*: after fine-tuning on the image QA of half the forget "
    "people (leaked) for a small budget, the share of the way back to the vanilla model's score, on the other half "
    "(other) or the leaked half; *_excess_*: minus the gold reference's recovery under the same attack. "
    "attack_success_image: items right on any perturbed image; attack_success_prompt: success@B of the prompt attacks; "
    "quant_recovery: the share of the way back after quantisation. See README, \"Attacks\"; every number is in "
    "attacks.json."
)


def write_markdown(result: RunResult, attacks: dict | None = None) -> str:
    """table.md: the accuracy table, then the information table (when there is one), the
    attacks table (``attacks``: the run's attacks.json) and why measures are absent."""
    from mmu_bench.harness.attacks import failures, rows

    text = to_markdown(table_rows(result), title=title(result), footer=footer(result))
    info = information_rows(result)
    if info:
        text += "\n" + to_markdown(info, title="Does the information remain?", footer=INFORMATION_FOOTER)
    found = rows(attacks) if attacks else []
    if found:
        text += "\n" + to_markdown(found, title="Does forgetting survive an adversary?", footer=ATTACKS_FOOTER)
    failed = failures(attacks)
    if failed:
        text += "\nFailed attacks:\n\n" + "\n".join(f"- {line}" for line in failed) + "\n"
    missing = absences(result)
    if missing:
        text += "\nAbsent values:\n\n" + "\n".join(f"- {line}" for line in missing) + "\n"
    return text


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
