"""A run's per-task table (``table.csv``, ``table.md``), from its results."""

from __future__ import annotations

import csv
import io
import math

from mmu_bench.core.names import safe_name
from mmu_bench.reporting import continual
from mmu_bench.reporting.columns import MAIN, attack_declarations, measure_declarations, table_title
from mmu_bench.reporting.columns import footer as columns_footer
from mmu_bench.reporting.columns import measure_tables as tables_of
from mmu_bench.runs.results import UNLEARNED, Normalisation, RunResult, task_score

CSV_FILE, MARKDOWN_FILE = "table.csv", "table.md"
TABLE_FILES = {"information": "information.csv"}  # a table's CSV; others: <table>.csv
# Where the docs explain a measure table (table.md's footer says so).
TABLE_DOCS = {"information": "See docs/measures.md, \"Forget quality and privacy\"."}


def files(result: RunResult, attacks: dict | None = None) -> dict[str, str]:
    """A run folder's tables: file name -> contents (``attacks``: its attacks.json)."""
    out = {CSV_FILE: to_csv(table_rows(result)), MARKDOWN_FILE: write_markdown(result, attacks)}
    for table, rows in measure_tables(result).items():
        out[TABLE_FILES.get(table, f"{safe_name(table)}.csv")] = to_csv(rows)
    return out


def measure_columns(result: RunResult, table: str = MAIN) -> list[str]:
    """Every measure of ``table`` reported on some task, in the order of the tasks (primary tasks
    first, in their display order)."""
    declared = measure_declarations([result])
    tasks = sorted(result.tasks.values(), key=lambda t: (not t.primary, t.order))
    return list(dict.fromkeys(m for t in tasks for m in t.measures
                              if declared.get(m, {}).get("table", MAIN) == table))


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


def measure_tables(result: RunResult) -> dict[str, list[dict]]:
    """Each table besides the main one (``information``: does the information remain?), by its
    name: per task with such measures, the unlearned model's values and the reference model each
    compares with."""
    out = {}
    for table in tables_of(measure_declarations([result])):
        columns = measure_columns(result, table)
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
        if rows:
            out[table] = rows
    return out


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


def attacks_footer(report: dict) -> str:
    """What table.md and report.html say under the attacks' numbers, from what each attack declares."""
    declared = attack_declarations([report])
    said = [declared[n]["explain"] for n in sorted(declared, key=lambda n: (declared[n]["order"], n))
            if declared[n]["explain"]]
    return " ".join(["Lower is better for the unlearned model.", *said,
                     "See docs/attacks.md; every number is in attacks.json."])


def write_markdown(result: RunResult, attacks: dict | None = None) -> str:
    """table.md: the accuracy table, then each measure table (``measure_tables``), the attacks
    table (``attacks``: the run's attacks.json), why measures are absent and, for a continual
    run, its stream (``reporting.continual.run_markdown``)."""
    from mmu_bench.runs.attacks import failures, rows

    text = to_markdown(table_rows(result), title=title(result), footer=footer(result))
    declared = measure_declarations([result])
    for table, rows_of in measure_tables(result).items():
        said = columns_footer(measure_columns(result, table), declared)
        text += "\n" + to_markdown(rows_of, title=table_title(table),
                                   footer=" ".join(x for x in (said + "." if said else "", TABLE_DOCS.get(table, "")) if x))
    found = rows(attacks) if attacks else []
    if found:
        text += "\n" + to_markdown(found, title="Does forgetting survive an adversary?", footer=attacks_footer(attacks))
    failed = failures(attacks)
    if failed:
        text += "\nFailed attacks:\n\n" + "\n".join(f"- {line}" for line in failed) + "\n"
    missing = absences(result)
    if missing:
        text += "\nAbsent values:\n\n" + "\n".join(f"- {line}" for line in missing) + "\n"
    if result.continual:  # a continual run: its stream's matrix and figures
        text += continual.run_markdown(result)
    return text


def title(result: RunResult) -> str:
    return (f"{result.method['name']} on {result.benchmark['name']} "
            f"(forget {result.benchmark['forget_ratio']:g}%, seed {result.seed}, model {result.model['name']})")


def footer(result: RunResult) -> str:
    value = result.overall
    text = "n/a" if math.isnan(value) else f"{value:.3f}"
    named = columns_footer(measure_columns(result), measure_declarations([result]))
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
