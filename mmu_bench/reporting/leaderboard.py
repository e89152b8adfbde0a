"""`mmu-bench leaderboard`: results.json files -> one CSV, Markdown table and plot per
benchmark and model. Built from results files only; rebuilding gives the same bytes.

One row per method (and its configuration) and forget ratio: mean and standard deviation over
seeds of every task measure, of the dimension scores and of the overall score, with the number
of seeds and the method's version and source hash. Runs scored with different task versions
never share a row. The reference models (vanilla, oracle, ...) get rows of their own. Results
are read through ``mmu_bench.results`` (older schema versions included).

A continual run (``--requests K``) never shares a row with one-shot runs: its rows (kind
``continual``, one per method, configuration, forget ratio and stream: K and its split) have a
section of their own (``mmu_bench.reporting.continual``), and join the CSV after the others.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.names import safe_name
from mmu_bench.core.storage import atomic_write_text, json_digest
from mmu_bench.reporting import continual, leaderboard_page, meta_eval, tables
from mmu_bench.reporting.columns import (
    ATTACK_PREFIX,
    AUC,
    BEST,
    CONTINUAL,
    MATCHED,
    RUNS,
    SEEDS,
    TRACE,
    UNCHANGED,
    Dimension,
    attack_declarations,
    attack_section,
    csv_cell,
    markdown_name,
    measure_declarations,
    measure_sections,
    section_rows,
    sections,
    value_at,
)
from mmu_bench.reporting.plots import plot, plot_continual, plot_forget_ratio, plot_trade_off
from mmu_bench.runs import continual as streams
from mmu_bench.runs import results, stats, trajectory
from mmu_bench.runs.attacks import headline
from mmu_bench.runs.attacks import read as read_attacks
from mmu_bench.runs.results import UNLEARNED, RunResult


@dataclass
class Collected:
    runs: list[RunResult]
    duplicates: int = 0
    unreadable: list[str] = field(default_factory=list)
    attacks: dict[str, dict] = field(default_factory=dict)  # run uid -> its attacks.json, where it has one
    trajectories: dict[str, list[dict]] = field(default_factory=dict)  # run uid -> its trajectory.jsonl points
    folders: dict[str, Path] = field(default_factory=dict)  # run uid -> its folder
    roots: dict[str, Path] = field(default_factory=dict)  # run uid -> the --runs folder it was found under
    streams: dict[str, list[dict]] = field(default_factory=dict)  # run uid -> its continual.jsonl lines (continual runs)


def uid(result: RunResult) -> str:
    return result.run_uid or f"{result.run_key}/{result.run_id}"


def collect(roots: list[str]) -> Collected:
    """Every results.json under ``roots`` (with the attacks.json beside it); a run found twice
    (same run_uid) counts once."""
    seen: dict[str, RunResult] = {}
    out = Collected(runs=[])
    for root in roots:
        for path in sorted(Path(root).rglob("results.json")):
            try:
                result = results.read(path)
                report = read_attacks(path.parent)
                points = trajectory.read(path.parent)
                lines = streams.read(path.parent) if result.continual else []
            except (MMUBenchError, ValueError) as exc:
                out.unreadable.append(str(exc))
                continue
            if uid(result) in seen:
                out.duplicates += 1
                continue
            seen[uid(result)] = result
            out.folders[uid(result)] = path.parent
            out.roots[uid(result)] = Path(root)
            if report:
                out.attacks[uid(result)] = report
            if points:
                out.trajectories[uid(result)] = points
            if lines:
                out.streams[uid(result)] = lines
    out.runs = [seen[key] for key in sorted(seen)]
    return out


def _config_hash(config: dict) -> str:
    return json_digest(config, 8)


def _task_versions(result: RunResult) -> str:
    return ";".join(f"{name}={t.version}" for name, t in sorted(result.tasks.items()))


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _row(label: dict, per_run: list[dict]) -> dict:
    """Aggregate the metric dicts of several runs (one per seed): mean and std of each."""
    row = dict(label)
    row["n_seeds"] = len(per_run)
    keys = sorted({k for run in per_run for k in run})
    for key in keys:
        mean, std = _mean_std([run.get(key) for run in per_run])
        row[f"{key}_mean"], row[f"{key}_std"] = mean, std
    return row


def _flatten(result: RunResult, model: str) -> dict:
    """One model's numbers in a run: overall, per dimension its score and normalised score, per
    task every measure's value."""
    normalised = result.normalised_of(model)
    flat = {"overall": result.overall_of(model)}
    dims = result.dimensions.get(model, {})
    for dim in result.dimension_order():
        flat[f"{dim}/score"] = dims.get(dim)
        flat[f"{dim}/normalised"] = normalised.get(dim)
    for task, per_measure in result.scores[model].items():
        for measure, value in per_measure.items():
            flat[f"{task}/{measure}"] = value.mean
    for task, info in result.tasks.items():
        if info.suite and task in result.scores[model]:  # utility-suite tasks: their score and x / vanilla
            flat[f"{task}/score"] = results.task_score(result.scores[model][task], info.score)
            flat[f"{task}/normalised"] = tables.suite_normalised(result, task, model)
    if model == UNLEARNED and result.trade_off:
        flat.update(_trade_off_numbers(result.trade_off))
    return flat


def _trade_off_numbers(summary: dict) -> dict:
    """A run's matched-forgetting values (None: not reached), whether it reached each level
    (1 or 0) and its trade-off areas."""
    top = summary.get("max_forgetting")
    flat: dict = {"max_forgetting": top}
    for level, per_curve in summary.get("matched", {}).items():
        flat[f"{MATCHED}{level}/reached"] = float(top is not None and top >= float(level))
        for curve, value in per_curve.items():
            flat[f"{MATCHED}{level}/{curve}"] = value
    for curve, value in summary.get("auc", {}).items():
        flat[f"{AUC}{curve}"] = value
    return flat


def dimensions(runs: list[RunResult]) -> list[Dimension]:
    """Every dimension of ``runs``, in their display order (the first run to have one names it)."""
    found: dict[str, tuple] = {}
    for result in runs:
        labels = result.dimension_labels()
        for rank, dim in enumerate(result.dimension_order()):
            if dim not in found:
                found[dim] = (rank, len(found), Dimension(dim, labels[dim], result.normalisation[dim].higher_is_better
                                                         if dim in result.normalisation else True))
    return [d for _, _, d in sorted(found.values(), key=lambda x: (x[0], x[1]))]


def _attack_numbers(report: dict | None, who: str) -> dict:
    return {ATTACK_PREFIX + k: v for k, v in headline(report, who).items()}


def build_rows(runs: list[RunResult], attacks: dict[str, dict] | None = None,
               trajectories: dict[str, list[dict]] | None = None) -> tuple[dict[tuple[str, str], list[dict]], list[str]]:
    """(benchmark, model) -> leaderboard rows, and notes on what was kept apart. ``attacks``:
    run uid -> attacks.json: their columns for the methods, and the gold reference's numbers
    (mean over seeds) in its row. ``trajectories``: run uid -> its trajectory points, for the
    intervals of the matched-forgetting columns. Continual runs are left to ``continual_rows``."""
    attacks = attacks or {}
    trajectories = trajectories or {}
    groups: dict[tuple, list[RunResult]] = defaultdict(list)
    for result in runs:
        if result.continual:
            continue
        method = result.method
        key = (result.benchmark["name"], result.model["name"], result.benchmark["forget_ratio"],
               method["name"], method["source_sha256"], _config_hash(method["config"]), _task_versions(result))
        groups[key].append(result)
    boards: dict[tuple[str, str], list[dict]] = defaultdict(list)
    notes = []
    by_method: dict[tuple, set] = defaultdict(set)
    references: dict[tuple, RunResult] = {}
    gold_attacks: dict[tuple, dict[int, dict]] = {}
    for key, members in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        bench, model, ratio, name, sha, cfg, versions = key
        by_method[(bench, model, ratio, name, sha, cfg)].add(versions)
        members.sort(key=lambda r: (r.seed, r.run_id))
        method = members[0].method
        label = {"method": name, "kind": "method", "forget_ratio": ratio,
                 "seeds": " ".join(str(r.seed) for r in members), "method_version": method["version"],
                 "source_sha256": sha[:12], "config_hash": cfg,
                 "config": json.dumps(method["config"], sort_keys=True), "task_versions": versions}
        per_run = [{**_flatten(r, UNLEARNED), **_attack_numbers(attacks.get(uid(r)), "unlearned")} for r in members]
        row = _row(label, per_run)
        row[UNCHANGED] = sum(bool(r.provenance.get("weight_change", {}).get("unchanged")) for r in members)
        row.update(_intervals(members, trajectories))
        row[RUNS] = [(r.seed, uid(r)) for r in members]
        row[SEEDS] = {key: {r.seed: run.get(key) for r, run in zip(members, per_run)} for key in _tested(per_run)}
        traces = [_trace(trajectories.get(uid(r), []), r) for r in members]
        if all(traces):
            row[TRACE] = traces
        boards[(bench, model)].append(row)
        for role in members[0].reference_roles():
            ref = members[0].model["references"].get(role)
            ref_hash = ref.get("recipe_hash", "") if isinstance(ref, dict) else ""
            key = (bench, model, ratio, role, ref_hash, versions)
            references.setdefault(key, members[0])
            for r in members:  # the gold reference under attack: one entry per seed
                report = attacks.get(uid(r))
                if report and report.get("gold") == role:
                    gold_attacks.setdefault(key, {}).setdefault(r.seed, _attack_numbers(report, "gold"))
    for key, result in sorted(references.items(), key=lambda kv: str(kv[0])):
        bench, model, ratio, role, ref_hash, versions = key
        label = {"method": f"{role} (reference)", "kind": "reference", "forget_ratio": ratio, "seeds": "",
                 "method_version": "", "source_sha256": ref_hash, "config_hash": "", "config": "",
                 "task_versions": versions}
        row = _row(label, [_flatten(result, role)])
        per_seed = gold_attacks.get(key, {})
        if per_seed:
            row.update({k: v for k, v in _row({}, [per_seed[s] for s in sorted(per_seed)]).items() if k != "n_seeds"})
        row["n_seeds"] = 0
        boards[(bench, model)].append(row)
    for (bench, model, ratio, name, _, cfg), versions in sorted(by_method.items(), key=lambda kv: str(kv[0])):
        if len(versions) > 1:
            notes.append(f"{bench}/{model}: {name} (forget {ratio:g}%, config {cfg}) was scored with "
                         f"{len(versions)} different task versions; each has its own row")
    for rows in boards.values():
        _name_variants(rows)
        _paired_tests(rows)
        rows.sort(key=lambda r: (-_sortable(r["overall_mean"]), r["kind"], r["method"], r["forget_ratio"],
                                 r["config_hash"], r["task_versions"]))
    return boards, notes


def continual_rows(runs: list[RunResult], lines: dict[str, list[dict]] | None = None,
                   attacks: dict[str, dict] | None = None) -> tuple[dict[tuple[str, str], list[dict]], list[str]]:
    """(benchmark, model) -> the continual runs' rows (kind ``continual``), and notes on the
    seeds with no one-shot run to compare with. Grouped as the one-shot rows are, and by stream
    (its number of requests and split); every number of the final model as in a one-shot row,
    with the stream's figures (``reporting.continual.numbers``), the gap to the one-shot run of
    each seed and the intervals (``lines``: run uid -> its continual.jsonl lines)."""
    lines = lines or {}
    attacks = attacks or {}
    index = continual.pair_index(runs)
    groups: dict[tuple, list[RunResult]] = defaultdict(list)
    for result in runs:
        if result.continual:
            method = result.method
            groups[(result.benchmark["name"], result.model["name"], result.benchmark["forget_ratio"], method["name"],
                    method["source_sha256"], _config_hash(method["config"]), _task_versions(result),
                    continual.stream_key(result))].append(result)
    boards: dict[tuple[str, str], list[dict]] = defaultdict(list)
    notes = []
    for key, members in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        bench, model, ratio, name, sha, cfg, versions, (requests, _) = key
        members.sort(key=lambda r: (r.seed, r.run_id))
        method = members[0].method
        pairs = [continual.pair_of(r, index) for r in members]
        label = {"method": name, "kind": CONTINUAL, "forget_ratio": ratio, "requests": requests,
                 "split": continual.split_text(members[0]), "seeds": " ".join(str(r.seed) for r in members),
                 "method_version": method["version"], "source_sha256": sha[:12], "config_hash": cfg,
                 "config": json.dumps(method["config"], sort_keys=True), "task_versions": versions}
        per_run = [{**_flatten(r, UNLEARNED), **continual.numbers(r, pair), **_attack_numbers(attacks.get(uid(r)), "unlearned")}
                   for r, pair in zip(members, pairs)]
        row = _row(label, per_run)
        row[continual.PAIRS] = sum(p is not None for p in pairs)
        row.update(continual.intervals(members, [lines.get(uid(r), []) for r in members], pairs))
        row[RUNS] = [(r.seed, uid(r)) for r in members]
        missing = [r.seed for r, p in zip(members, pairs) if p is None]
        if missing:
            row[continual.MISSING] = missing
            notes.append(f"{bench}/{model}: {name} ({requests} requests, forget {ratio:g}%, config {cfg}): no one-shot "
                         f"run with the key its stream names for seed(s) {', '.join(map(str, missing))}; its continual "
                         "gap leaves them out")
        boards[(bench, model)].append(row)
    for rows in boards.values():
        _name_variants(rows, CONTINUAL)
        rows.sort(key=lambda r: (-_sortable(r["overall_mean"]), r["method"], r["forget_ratio"], r["requests"],
                                 r["config_hash"], r["split"], r["task_versions"]))
    return boards, notes


def _trace(lines: list[dict], result: RunResult) -> list[dict]:
    """A run's points' normalised scores, with the harmonic mean of its retention dimensions."""
    retention = result.trade_off.get("retention", [])
    return [{**line["normalised"], "harmonic": results.harmonic_mean([value_at(line["normalised"], d) for d in retention])}
            for line in lines] if retention else []


def _tested(per_run: list[dict]) -> list[str]:
    """The columns compared across methods with a paired test: the overall score, every
    matched-forgetting value and the trade-off areas."""
    keys = {k for run in per_run for k in run}
    return ["overall"] + sorted(k for k in keys if (k.startswith(MATCHED) and not k.endswith("/reached"))
                                or k.startswith(AUC))


def _intervals(members: list[RunResult], trajectories: dict[str, list[dict]]) -> dict:
    """95 % bootstrap intervals over seeds and people (``mmu_bench.stats``) of the overall score
    and of each matched-forgetting value: ``<column>_ci_low`` / ``_ci_high``. Seeded: the same
    runs give the same intervals."""
    k = len(members)
    rng = np.random.default_rng(0)
    n = stats.RESAMPLES * k
    out = {}
    overall = [_overall_bank(r, n, rng) for r in members]
    if all(b is not None for b in overall):
        out["overall_ci_low"], out["overall_ci_high"] = stats.interval([b.reshape(stats.RESAMPLES, k) for b in overall])
    matched = [trajectory.resampled(trajectories[uid(r)], r.trade_off, n, rng)
               if r.trade_off and uid(r) in trajectories else None for r in members]
    if matched and all(m is not None for m in matched):
        for column in matched[0]:
            low, high = stats.interval([m[column].reshape(stats.RESAMPLES, k) for m in matched])
            out[f"{MATCHED}{column}_ci_low"], out[f"{MATCHED}{column}_ci_high"] = low, high
    return out


def _overall_bank(result: RunResult, n: int, rng) -> np.ndarray | None:
    """The run's overall score under ``n`` resamples of its people, [n]; None without the
    per-person sums (runs written before they were kept)."""
    primary = {name: t for name, t in result.tasks.items() if t.primary}
    if not result.clusters or any(name not in result.clusters for name in primary):
        return None
    scores = stats.task_scores([result.clusters], {name: t.score for name, t in primary.items()}, n, rng)
    normalised = {t.dimension: result.normalisation[t.dimension].apply(scores[name][:, 0]) for name, t in primary.items()}
    return results.harmonic_mean([normalised[d] for d in result.dimension_order()])


def best_row(rows: list[dict], key: str) -> dict | None:
    """The method row with the highest mean of ``key``; for a matched-forgetting value, among
    the rows whose every seed reached the level when there are any."""
    candidates = [r for r in rows if r["kind"] == "method" and not math.isnan(value_at(r, f"{key}_mean"))]
    if key.startswith(MATCHED):
        reached = f"{key.rsplit('/', 1)[0]}/reached_mean"
        full = [r for r in candidates if value_at(r, reached) == 1.0]
        candidates = full or candidates
    return max(candidates, key=lambda r: r[f"{key}_mean"], default=None)


def _paired_tests(rows: list[dict]) -> None:
    """Each method row against the best row of each tested column, over the seeds both ran
    (paired t-test, ``mmu_bench.stats.paired_test``): ``<column>_p_vs_best``, ``best`` in the
    best row itself."""
    keys = sorted({k for r in rows if r["kind"] == "method" for k in r.get(SEEDS, {})})
    for key in keys:
        best = best_row(rows, key)
        for row in rows:
            if row["kind"] != "method" or best is None:
                continue
            p = BEST if row is best else stats.paired_test(row[SEEDS].get(key, {}), best[SEEDS].get(key, {}))[0]
            row[f"{key}_p_vs_best"] = p


def _name_variants(rows: list[dict], kind: str = "method") -> None:
    """Rows of one method (of ``kind``; continual ones with one number of requests) with different
    configurations get a ``variant`` naming the settings that tell them apart (e.g.
    ``mask=random``), so a reader need not diff the config JSON."""
    by_method: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        row.setdefault("variant", "")
        if row["kind"] == kind:
            by_method[(row["method"], row["forget_ratio"], row.get("requests"))].append(row)
    for group in by_method.values():
        configs = [json.loads(r["config"]) for r in group]
        if len({r["config_hash"] for r in group}) < 2:
            continue
        keys = sorted({k for c in configs for k in c if len({json.dumps(x.get(k)) for x in configs}) > 1})
        for row, config in zip(group, configs):
            row["variant"] = " ".join(f"{k}={config.get(k)}" for k in keys)


def _sortable(value: float) -> float:
    return -1.0 if value is None or math.isnan(value) else value


def _columns(rows: list[dict], dims: list[Dimension]) -> list[str]:
    first = ["method", "variant", "kind", "forget_ratio", "n_seeds", "seeds", "overall_mean", "overall_std",
             "overall_ci_low", "overall_ci_high", "overall_p_vs_best"]
    dims = [f"{d.name}/{part}_{stat}" for d in dims for part in ("score", "normalised") for stat in ("mean", "std")]
    tail = ["method_version", "source_sha256", "config_hash", "config", "task_versions"]
    stream = [c for c in continual.CSV_FIRST if any(c in r for r in rows)]  # none without continual rows
    rest = sorted({k for r in rows for k in r if not k.startswith("_")} - set(first) - set(stream) - set(dims) - set(tail))
    return first + stream + [d for d in dims if any(d in r for r in rows)] + rest + tail


def to_csv(rows: list[dict], dims: list[Dimension]) -> str:
    columns = _columns(rows, dims)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def to_markdown(rows: list[dict], title: str, board_sections: list) -> str:
    """A board's Markdown: its ``sections`` (``columns.sections``), one table each."""
    lines = []
    for section in board_sections:
        heading = f"{'#' * section.level} {title if section.level == 1 else section.title}"
        lines += ([""] if lines else []) + [heading, ""]
        if not section.columns:
            lines.append(section.text)
            continue
        header = ["method", "forget %"] + [c.header for c in section.columns]
        lines += ([section.text, ""] if section.text else []) + [
            "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in section_rows(section, rows):
            cells = [markdown_name(row), f"{row['forget_ratio']:g}"] + [c.text(row) for c in section.columns]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def build(roots: list[str], out_dir: str, with_plot: bool = True,
          link_base: str | None = None) -> tuple[list[Path], list[str], Collected]:
    """Write the leaderboard files (per board a CSV, Markdown and plots; index.html for them all);
    returns them, the notes and what was collected."""
    collected = collect(roots)
    out = Path(out_dir)
    links = {key: leaderboard_page.report_link(folder, collected.roots[key], out, link_base)
             for key, folder in collected.folders.items()}
    boards, notes = build_rows(collected.runs, collected.attacks, collected.trajectories)
    stream_boards, stream_notes = continual_rows(collected.runs, collected.streams, collected.attacks)
    notes += stream_notes
    written, sections_html = [], []
    out = Path(out_dir)
    for bench, model in sorted(set(boards) | set(stream_boards)):
        rows, stream_rows = boards.get((bench, model), []), stream_boards.get((bench, model), [])
        stem = f"{safe_name(bench)}__{safe_name(model)}"
        title = f"{bench} / {model}"
        runs = [r for r in collected.runs if (r.benchmark["name"], r.model["name"]) == (bench, model)]
        one_shot = [r for r in runs if not r.continual]
        dims = dimensions(runs)
        files = {"ratio": f"{stem}__forget_ratio.png", "continual": f"{stem}__continual.png"} if with_plot else {}
        tables = sections(rows, dims, measure_sections(one_shot, dims, measure_declarations(one_shot)),
                          attack_section(rows, attack_declarations([collected.attacks.get(uid(r)) for r in one_shot])))
        tables += continual.forget_ratio_section(rows, dims, files.get("ratio", ""))
        tables += continual.section(stream_rows, dims, files.get("continual", ""))
        atomic_write_text(out / f"{stem}.csv", to_csv(rows + stream_rows, dims))
        atomic_write_text(out / f"{stem}.md", to_markdown(rows + stream_rows, title, tables))
        written += [out / f"{stem}.csv", out / f"{stem}.md"]
        plots = []
        if with_plot:
            if rows:
                plot(rows, out / f"{stem}.png", title, dims)
                plots.append(f"{stem}.png")
            if plot_trade_off(rows, out / f"{stem}__trade_off.png", title, dims):
                plots.append(f"{stem}__trade_off.png")
            if plot_forget_ratio(continual.ratio_groups(rows), out / files["ratio"], title, dims):
                plots.append(files["ratio"])
            if plot_continual(stream_rows, out / files["continual"], title):
                plots.append(files["continual"])
            written += [out / p for p in plots]
        sections_html.append((stem, title, leaderboard_page.board(title, stem, rows + stream_rows, tables, plots, links)))
    if sections_html:
        sections_html += meta_eval.sections_in(out)  # the meta-evaluations written there (`mmu-bench meta-eval`)
        atomic_write_text(out / leaderboard_page.INDEX_FILE, leaderboard_page.render(sections_html))
        written.append(out / leaderboard_page.INDEX_FILE)
    return written, notes, collected
