"""The one column model of every table reporting writes: which columns a leaderboard shows, their
headers and cells, and the prose of each section, from what the measures and attacks declare
(``table``, ``label``, ``explain``; ``labels``, ``explain``, ``order``: ``mmu_bench.api``), never
from lists kept here. The Markdown and HTML leaderboards draw the same ``sections``; the CSV has
every number.

A declaration comes from the files a run wrote (results.json records its measures', attacks.json
its attacks'); for files written before declarations were recorded, from the installed plugin
of that name, read without importing it (``mmu_bench.spec.registry.declared``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from mmu_bench.runs import results, trajectory
from mmu_bench.runs.results import RunResult
from mmu_bench.spec import registry

MATCHED = "matched/"  # a row's matched-forgetting columns: matched/<level>/<curve>
AUC = "auc/"  # a row's trade-off areas: auc/<curve>
ATTACK_PREFIX = "attack/"  # a row's attack columns: attack/<column>
BEST = "best"  # the p-value cell of the best row
TRACE = "_trace"  # a row's per-seed trajectories, normalised, with the harmonic curve (for the plot; not written)
RUNS = "_runs"  # a method row's runs: (seed, run uid) each (for the HTML page's links; not written)
SEEDS = "_per_seed"  # a row's per-seed values of the tested columns (for the paired tests; not written)
CONTINUAL = "continual"  # the kind of a continual run's row (``mmu_bench.reporting.continual``): its own section only
# A method row's count of runs whose unlearning changed no trained weight (results.json
# provenance.weight_change); such a row's name carries UNCHANGED_MARK, explained under the table.
UNCHANGED = "weights_unchanged"
UNCHANGED_MARK = "†"
UNCHANGED_NOTE = (f"{UNCHANGED_MARK}: unlearning changed no trained weight in a run of this row (none moved, or every "
                  "LoRA B matrix is still zero), so it scores the model as it was before (`weights_unchanged`: how many "
                  "of its seeds; results.json `provenance.weight_change`).")

MAIN = "main"
# The measure tables mmu-bench's api names, and what each section says after its measures'
# sentences; a measure that names another table gets a section titled by that name.
TABLE_TITLES = {"information": "Does the information remain?"}
TABLE_NOTES = {"information": "A reference model compared with itself has no value (-). See "
                              "docs/measures.md, \"Forget quality and privacy\"."}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Dimension:
    name: str
    label: str
    higher_is_better: bool


# -- declarations ----------------------------------------------------------------------------------
def measure_declarations(runs: list[RunResult]) -> dict[str, dict]:
    """measure -> its ``table``, ``label``, ``explain`` and ``description``, for every measure of
    ``runs`` (a run that recorded them wins over the installed plugin)."""
    found: dict[str, dict] = {}
    for result in runs:
        named = {m: {} for task in result.tasks.values() for m in task.measures}  # measures of older files
        for name, info in {**named, **result.measures}.items():
            recorded = "label" in info
            if name in found and (found[name]["recorded"] or not recorded):
                continue
            info = info if recorded else {**_installed(registry.MEASURES, name), **info}
            found[name] = {"table": info.get("table", MAIN), "label": info.get("label", ""),
                           "explain": info.get("explain", ""), "description": info.get("description", ""),
                           "recorded": recorded}
    return found


def attack_declarations(reports: list[dict]) -> dict[str, dict]:
    """attack -> its ``labels``, ``explain``, ``order`` and ``columns``, for every attack of the
    runs' attacks.json files (``reports``; a run that recorded them wins over the installed plugin)."""
    found: dict[str, dict] = {}
    for report in reports:
        for name, entry in (report or {}).get("attacks", {}).items():
            recorded = "labels" in entry
            if name in found and (found[name]["recorded"] or not recorded):
                continue
            entry = entry if recorded else {**_installed(registry.ATTACKS, name), **entry}
            found[name] = {"labels": dict(entry.get("labels") or {}), "explain": entry.get("explain", ""),
                           "order": entry.get("order", 100), "columns": list(entry.get("columns", [])),
                           "recorded": recorded}
    return found


def _installed(kind, name: str) -> dict:
    """What the installed plugin ``name`` declares for reports (files of older runs lack it)."""
    declared = registry.declared(kind, name)
    return {key: declared[key] for key in ("table", "label", "explain", "labels", "order") if key in declared}


def measure_tables(declared: dict[str, dict]) -> list[str]:
    """The tables other than the main one: the api's first, in its order, then the others by name."""
    tables = {d["table"] for d in declared.values()} - {MAIN}
    known = list(TABLE_TITLES)
    return sorted(tables, key=lambda t: (known.index(t) if t in known else len(known), t))


def table_title(table: str) -> str:
    return TABLE_TITLES.get(table, table)


def footer(names: list[str], declared: dict[str, dict]) -> str:
    """``measure: description`` of each of ``names`` that has one."""
    return "; ".join(f"{m}: {declared[m]['description']}" for m in names if declared.get(m, {}).get("description"))


# -- cells -----------------------------------------------------------------------------------------
def value_at(row: dict, key: str) -> float:
    """``row[key]``, NaN where it is missing or None (a row, or a trajectory point's scores)."""
    value = row.get(key)
    return float("nan") if value is None else value


def csv_cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    if value is None:
        return ""
    text = str(value)
    if text.startswith(_FORMULA_START):
        text = "'" + text  # a spreadsheet would execute it
    return text


def _pm(row: dict, key: str) -> str:
    mean, std = row.get(f"{key}_mean"), row.get(f"{key}_std")
    if mean is None or math.isnan(mean):
        return "-"
    return f"{mean:.3f} ± {std:.3f}" if row["n_seeds"] > 1 else f"{mean:.3f}"


def _pm_any(row: dict, key: str) -> str:
    """Mean ± std, with the std shown whenever there is one (a reference row's attack numbers
    are over seeds)."""
    mean, std = row.get(f"{key}_mean"), row.get(f"{key}_std")
    if mean is None or math.isnan(mean):
        return "-"
    return f"{mean:.3f} ± {std:.3f}" if std else f"{mean:.3f}"


def _ci(row: dict, key: str) -> str:
    low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if low is None or math.isnan(low):
        return "-"
    return f"[{low:.3f}, {high:.3f}]"


def _p(row: dict, key: str) -> str:
    p = row.get(f"{key}_p_vs_best")
    if p is None or p == BEST:
        return p or "-"
    return "-" if math.isnan(p) else "<0.001" if p < 0.001 else f"{p:.3f}"


def _matched_cell(row: dict, key: str) -> str:
    if key.endswith("/reached"):
        mean = row.get(f"{key}_mean")
        return "-" if mean is None or math.isnan(mean) else f"{round(mean * row['n_seeds'])}/{row['n_seeds']}"
    text = _pm(row, key)
    if text == "-":
        return "not reached" if key.startswith(MATCHED) else text
    if row.get(f"{key}_ci_low") is not None:
        text += f" {_ci(row, key)}"
    p = _p(row, key)
    if p == "best":
        return f"**{text}**"
    return f"{text} p={p}" if p != "-" else text


def _n_seeds(row: dict, key: str) -> str:
    return str(row["n_seeds"] or "-")


def _source(row: dict, key: str) -> str:
    return row["source_sha256"] or "-"


def row_label(row: dict) -> str:
    """A row's method, and its variant where it has one; marked when a run of it changed nothing."""
    label = f"{row['method']} ({row['variant']})" if row.get("variant") else row["method"]
    return f"{label} {UNCHANGED_MARK}" if row.get(UNCHANGED) else label


def markdown_name(row: dict) -> str:
    """A row's method (and variant) as a Markdown cell."""
    return csv_cell(row_label(row)).replace("|", "\\|")


# -- columns and sections --------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """A leaderboard table column: the row key it shows, its header, how its cell reads, and the
    row field it sorts by (``key + sort``) on the HTML page."""
    key: str
    header: str
    cell: Callable[[dict, str], str]
    sort: str = "_mean"

    def text(self, row: dict) -> str:
        return self.cell(row, self.key)

    def sort_value(self, row: dict) -> float | None:
        value = row.get(self.key + self.sort) if self.sort is not None else None
        if value == BEST:
            return 0.0
        return float(value) if isinstance(value, (int, float)) and not math.isnan(value) else None



@dataclass(frozen=True)
class Section:
    """One table of a leaderboard: after the method and forget % columns, ``columns``; its rows
    picked by ``select`` where it has one (``section_rows``), with links to the runs' reports
    where ``links`` (the main table always has them)."""
    title: str
    text: str
    columns: list[Column]
    level: int = 2
    select: Callable[[list[dict]], list[dict]] | None = None
    links: bool = False


def primary_tasks(runs: list[RunResult]) -> dict[str, str]:
    """dimension -> its primary task (the first run to have one names it)."""
    primary: dict[str, str] = {}
    for result in runs:
        for name, task in result.tasks.items():
            if task.primary:
                primary.setdefault(task.dimension, name)
    return primary


def measure_sections(runs: list[RunResult], dims: list[Dimension], declared: dict[str, dict]) -> list[Section]:
    """Per measure table: the labelled measures on the primary task of each dimension that
    reports them, headed by the dimension's label and the measure's; the section says each
    shown measure's sentence."""
    primary = primary_tasks(runs)
    found = {f"{t}/{m}" for r in runs for t, info in r.tasks.items() for m in info.measures}
    out = []
    for table in measure_tables(declared):
        names = sorted(m for m, d in declared.items() if d["table"] == table and d["label"])
        shown = [(d, m) for d in dims if d.name in primary for m in names if f"{primary[d.name]}/{m}" in found]
        if not shown:
            continue
        columns = [Column(f"{primary[d.name]}/{m}", f"{d.label}: {declared[m]['label']}", _pm) for d, m in shown]
        said = [declared[m]["explain"] for m in dict.fromkeys(m for _, m in shown) if declared[m]["explain"]]
        out.append(Section(table_title(table), " ".join([*said, *([TABLE_NOTES[table]] if table in TABLE_NOTES else [])]),
                           columns))
    return out


def attack_section(rows: list[dict], declared: dict[str, dict]) -> list[Section]:
    """The attacks' labelled columns, where runs have them, in the attacks' order."""
    columns, said = [], []
    for name in sorted(declared, key=lambda n: (declared[n]["order"], n)):
        shown = [Column(ATTACK_PREFIX + c, label, _pm_any) for c, label in declared[name]["labels"].items()
                 if any(f"{ATTACK_PREFIX}{c}_mean" in r for r in rows)]
        columns += shown
        if shown and declared[name]["explain"]:
            said.append(declared[name]["explain"])
    if not columns:
        return []
    return [Section("Does forgetting survive an adversary?",
                    " ".join(["Lower is better.", *said, "The gold reference's row: its own numbers under the same "
                              "attacks (mean over seeds). See docs/attacks.md."]), columns)]


def suite_columns(rows: list[dict]) -> list[tuple[str, str]]:
    """(flat key, header) of the utility-suite tasks' scores and normalised scores, where runs have them."""
    names = sorted({k[: -len("/score_mean")] for r in rows for k in r
                    if k.startswith(results.SUITE_PREFIX) and k.endswith("/score_mean")})
    return [(f"{n}/{part}", f"{n[len(results.SUITE_PREFIX):]}{suffix}") for n in names
            for part, suffix in (("score", ""), ("normalised", " (÷ vanilla)"))]


def sections(rows: list[dict], dims: list[Dimension], measures: list[Section] = (),
             attacks: list[Section] = ()) -> list[Section]:
    """Every table of a board, in order: the main one, the measure tables (``measure_sections``),
    "does forgetting survive an adversary?" (``attack_section``), the utility suites and "at
    equal forgetting" (where the runs have them). The Markdown and the HTML leaderboards both
    draw these."""
    lower = [d.label for d in dims if not d.higher_is_better]
    direction = (f"({', '.join(lower)}: lower is better; the others: higher)" if lower else "(higher is better)")
    main = [Column("n_seeds", "seeds", _n_seeds, ""), Column("overall", "overall", _pm),
            Column("overall", "95 % CI", _ci, "_ci_low"), Column("overall", "p vs best", _p, "_p_vs_best")] + [
        Column(f"{d.name}/score", f"{d.label} {'↑' if d.higher_is_better else '↓'}", _pm) for d in dims] + [
        Column("source_sha256", "source", _source, None)]
    out = [Section("", "Generated by `mmu-bench leaderboard` from results.json files; do not edit. Mean ± std over seeds. "
                   "Dimension scores: each dimension's primary task score, the mean of its score measures "
                   f"{direction}. Overall: harmonic mean of the normalised dimensions (see README). 95 % CI: bootstrap "
                   "over seeds and people (2,000 resamples, seeded; README, \"Statistics\"). p vs best: paired t-test "
                   "against the best method over the seeds both ran (two-sided)."
                   + (f" {UNCHANGED_NOTE}" if any(r.get(UNCHANGED) for r in rows) else ""), main, 1)]
    out += [*measures, *attacks]
    suite = suite_columns(rows)
    if suite:
        out.append(Section("General utility suites",
                           "lmms-eval tasks (`--utility-suite`): each task's score, the mean of its metrics where higher "
                           "is better, and that score divided by the vanilla model's (clipped to 1). They join the "
                           "general-utility dimension, and so the overall score, only in runs made with "
                           "`--utility-in-overall` (README, \"Utility suites\").", [Column(k, label, _pm) for k, label in suite]))
    return out + _trade_off_sections(rows, dims)


def _traced(rows: list[dict]) -> list[dict]:
    return [r for r in rows if any(k.startswith(MATCHED) for k in r)]


def section_rows(section: Section, rows: list[dict]) -> list[dict]:
    """The rows a section shows: those it selects where it says; else the one-shot rows (not
    the continual ones, which have a section of their own), the "at equal forgetting" tables
    only those with a trajectory."""
    if section.select is not None:
        return section.select(rows)
    rows = [r for r in rows if r["kind"] != CONTINUAL]
    return _traced(rows) if section.level == 3 else rows


def _trade_off_sections(rows: list[dict], dims: list[Dimension]) -> list[Section]:
    """"At equal forgetting": per level, each retention dimension where the run first reached
    that much forgetting; then the trade-off areas."""
    if not _traced(rows):
        return []
    curves = [(d.name, d.label) for d in dims if d.higher_is_better] + [("harmonic", "harmonic mean")]
    out = [Section("At equal forgetting",
                   "From each run's trajectory (`trajectory.jsonl`: the model scored on a seeded sample of each task at "
                   "evenly spaced points of unlearning): each retention dimension, normalised, where the run's normalised "
                   "visual forgetting first reaches the level (linear between points; never extrapolated). Mean ± std over "
                   "the seeds that reached it, 95 % bootstrap CI, p vs best (paired t-test on the seeds both reached; "
                   "**bold**: the best). See docs/equal-forgetting.md.", [])]
    for level in trajectory.LEVELS:
        key = f"{MATCHED}{level:g}/"
        columns = [Column(key + "reached", "seeds reached", _matched_cell)] + [
            Column(key + name, label, _matched_cell) for name, label in curves]
        out.append(Section(f"Normalised forgetting {level:g}", "", columns, 3))
    columns = [Column("max_forgetting", "max forgetting", _matched_cell)] + [
        Column(AUC + name, label, _matched_cell) for name, label in curves]
    out.append(Section("Trade-off area", "Area under each retention dimension against normalised forgetting "
                       "over [0, 1], a level never reached counting 0 (1 = forgets completely, loses nothing). "
                       "p vs best: paired t-test.", columns, 3))
    return out
