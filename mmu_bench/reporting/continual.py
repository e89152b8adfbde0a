"""What reporting shows of continual runs (``mmu-bench run --requests K``), in one place: the
leaderboard's "Continual" rows and section (their numbers per run, the bootstrap intervals, the
gap to the one-shot run), its "Forget-set size" section (MUSE's C5), and a run's own "Continual"
part of table.md and report.html (the matrix as a heatmap, the erosion curves).

The numbers come from results.json's ``continual`` section and, for the intervals and the
erosion curves, from the run's ``continual.jsonl`` (``mmu_bench.runs.continual``). Reporting
never recomputes a run's scores otherwise.
"""

from __future__ import annotations

import html
import json
import math
import warnings
from collections import defaultdict

import numpy as np

from mmu_bench.core.storage import json_digest
from mmu_bench.reporting import pages
from mmu_bench.reporting.columns import CONTINUAL, Column, Dimension, Section, _ci, _n_seeds, _pm
from mmu_bench.runs import continual as stream
from mmu_bench.runs import stats
from mmu_bench.runs.results import RunResult

GAP = "continual_gap"  # a continual row's final overall minus its one-shot run's (per seed)
PAIRS = "one_shot_pairs"  # how many of a continual row's seeds have a one-shot run to pair with
ONE_SHOT = "one_shot/overall"  # the paired one-shot run's overall
MISSING = "_unpaired"  # a continual row's seeds without a one-shot run (for the section's note; not written)
# The columns a board's CSV shows after its first ones, where it has continual rows.
CSV_FIRST = ["requests", "split", f"{GAP}_mean", f"{GAP}_std", f"{GAP}_ci_low", f"{GAP}_ci_high", PAIRS]


# -- a continual run's numbers ---------------------------------------------------------------------
def requests_of(result: RunResult) -> int:
    """How many requests a run's stream had (0: an ordinary run)."""
    return len(result.continual.get("requests", [])) if result.continual else 0


def split_text(result: RunResult) -> str:
    """How the stream split its forget set, as the CSV shows it (``split_seed=0``, ``ratios=[5.0, 10.0]``)."""
    split = result.continual.get("split") or {}
    return " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(split.items()) if k != "requests")


def stream_key(result: RunResult) -> tuple[int, str]:
    """What tells two streams of one method apart: their number of requests and their split."""
    return requests_of(result), json_digest(result.continual.get("split") or {}, 8)


def identity(result: RunResult) -> tuple:
    """What makes two runs the same experiment but for the stream and what only adds numbers
    beside the scores (attacks, trackers): benchmark, model, forget ratio, method, source,
    configuration and task versions (a leaderboard row's key), with the seed."""
    method = result.method
    return (result.benchmark["name"], result.model["name"], result.benchmark["forget_ratio"], method["name"],
            method["source_sha256"], json_digest(method["config"], 8),
            ";".join(f"{n}={t.version}" for n, t in sorted(result.tasks.items())), result.seed)


def pair_index(runs: list[RunResult]) -> dict[tuple, RunResult]:
    """(run key, seed) and ``identity`` -> the ordinary run with them (the first by run id where
    one ran twice)."""
    out: dict[tuple, RunResult] = {}
    for result in sorted((r for r in runs if not r.continual), key=lambda r: r.run_id):
        out.setdefault((result.run_key, result.seed), result)
        out.setdefault(identity(result), result)
    return out


def pair_of(result: RunResult, index: dict[tuple, RunResult]) -> RunResult | None:
    """The one-shot run a continual run compares with: the run of the key it names and the same
    seed; else the same method, configuration and seed on the same benchmark, model and forget
    set (a one-shot run made with --attacks, say, has another key and the same scores)."""
    return index.get((result.continual.get("one_shot_key", ""), result.seed)) or index.get(identity(result))


def numbers(result: RunResult, pair: RunResult | None) -> dict:
    """A continual run's figures, flat (the leaderboard averages them over seeds): reversal and
    early forgetting (means over requests), erosion per retention dimension, the overall after
    each request, and with its one-shot run, that run's overall and the gap to it."""
    c = result.continual
    out = {"reversal": (c.get("reversal") or {}).get("mean"),
           "early_forgetting": (c.get("early_forgetting") or {}).get("mean")}
    out.update({f"erosion/{dim}": value for dim, value in (c.get("erosion") or {}).items()})
    out.update({f"after/{j}/overall": value for j, value in enumerate(c.get("overall_after") or [], 1)})
    # without a pair: no value (NaN), so that the columns are there, blank, and the means skip it
    out[ONE_SHOT] = pair.overall if pair is not None else float("nan")
    out[GAP] = _minus(result.overall, pair.overall) if pair is not None else float("nan")
    return out


def _minus(a, b) -> float:
    return float("nan") if a is None or b is None else a - b


# -- intervals -------------------------------------------------------------------------------------
def _banks(result: RunResult, lines: list[dict], pair: RunResult | None, n: int, rng) -> dict[str, np.ndarray]:
    """A continual run's figures under ``n`` resamples of its people, [n] each; with its one-shot
    run, the gap, that run's people drawn as the stream's where they are the same people."""
    found, weights = stream.resampled(lines, result.tasks, result.continual.get("chance") or {}, n, rng)
    last = found["after"][-1] if found["after"] else {"overall": None, "normalised": {}}
    out = {"overall": last["overall"], **{f"{d}/normalised": v for d, v in last["normalised"].items()},
           "reversal": stream.mean(found["reversal"]), "early_forgetting": stream.mean(found["early_forgetting"]),
           **{f"erosion/{d}": v for d, v in found["erosion"].items()}}
    if pair is not None:
        ids = {name: tuple(sorted(pair.clusters.get(name, {}))) for name in stream.primary(pair.tasks)}
        same = ids == stream.cluster_ids(lines, result.tasks)
        other = stream.overall_under(pair, weights if same else stats.draw_weights(ids, n, rng))
        if other is not None and last["overall"] is not None:
            out[GAP] = last["overall"] - other
    return {k: v for k, v in out.items() if isinstance(v, np.ndarray)}


def intervals(members: list[RunResult], lines: list[list[dict]], pairs: list[RunResult | None]) -> dict:
    """95 % bootstrap intervals over seeds and people (``mmu_bench.runs.stats``) of a continual
    row's figures: ``<column>_ci_low`` / ``_ci_high``. The gap's pairs each seed's stream with
    its one-shot run: one seed draw for both, the same people drawn in each. Seeded: the same
    runs give the same intervals. None at all where a run of the row has no continual.jsonl."""
    k = len(members)
    if not k or not all(lines):
        return {}
    rng = np.random.default_rng(0)
    n = stats.RESAMPLES * k
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample without a value: NaN, as intervals expect
        banks = [_banks(r, ls, p, n, rng) for r, ls, p in zip(members, lines, pairs)]
        out = {}
        for column in sorted(set.intersection(*(set(b) for b in banks)) - {GAP}):
            low, high = stats.interval([b[column].reshape(stats.RESAMPLES, k) for b in banks])
            out[f"{column}_ci_low"], out[f"{column}_ci_high"] = low, high
        paired = [b[GAP] for b in banks if GAP in b]
        if paired:  # over the seeds with a pair: the first resamples of each (independent draws)
            m = len(paired)
            low, high = stats.interval([g[: stats.RESAMPLES * m].reshape(stats.RESAMPLES, m) for g in paired])
            out[f"{GAP}_ci_low"], out[f"{GAP}_ci_high"] = low, high
    return out


# -- the leaderboard's sections --------------------------------------------------------------------
def _figure(row: dict, key: str) -> str:
    """Mean ± std over seeds, and the 95 % interval where there is one."""
    text = _pm(row, key)
    ci = _ci(row, key)
    return text if text == "-" or ci == "-" else f"{text} {ci}"


def _gap(row: dict, key: str) -> str:
    """The gap over the seeds with a one-shot run to pair with; blank (-) with none."""
    pairs = row.get(PAIRS, 0)
    mean, std = row.get(f"{key}_mean"), row.get(f"{key}_std")
    if not pairs or mean is None or math.isnan(mean):
        return "-"
    text = f"{mean:.3f} ± {std:.3f}" if pairs > 1 else f"{mean:.3f}"
    ci = _ci(row, key)
    text += "" if ci == "-" else f" {ci}"
    return text + (f" ({pairs}/{row['n_seeds']} seeds)" if pairs < row["n_seeds"] else "")


def _plain(row: dict, key: str) -> str:
    return str(row.get(key, "-"))


def continual_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["kind"] == CONTINUAL]


def unpaired_note(rows: list[dict]) -> str:
    """Which continual rows' seeds have no one-shot run to pair with (their gap is blank or partial)."""
    missing = [f"{r['method']}{' (' + r['variant'] + ')' if r.get('variant') else ''}, {r['requests']} requests, "
               f"forget {r['forget_ratio']:g}%: seed{'s' if len(r[MISSING]) > 1 else ''} "
               f"{', '.join(str(s) for s in r[MISSING])}" for r in continual_rows(rows) if r.get(MISSING)]
    if not missing:
        return ""
    return ("No one-shot run among the runs read has the seed and the run key a stream names (results.json "
            "`continual.one_shot_key`) or its method and configuration, so the gap leaves out: "
            + "; ".join(missing) + ".")


def section(rows: list[dict], dims: list[Dimension], plot_file: str = "") -> list[Section]:
    """The "Continual" section, where the board has continual rows."""
    shown = continual_rows(rows)
    if not shown:
        return []

    def present(key: str) -> bool:
        return any(f"{key}_mean" in r for r in shown)

    columns = [Column("requests", "requests", _plain, ""), Column("n_seeds", "seeds", _n_seeds, ""),
               Column("overall", "final overall", _figure), Column(GAP, "gap vs one-shot", _gap)]
    columns += [Column(f"{d.name}/normalised", f"{d.label} (normalised)", _figure) for d in dims
                if present(f"{d.name}/normalised")]
    columns += [Column(key, header, _figure) for key, header in (("reversal", "reversal ↓"),
                                                                 ("early_forgetting", "early forgetting"))]
    columns += [Column(f"erosion/{d.name}", f"erosion: {d.label}", _figure) for d in dims
                if present(f"erosion/{d.name}")]
    text = ("Continual unlearning (`mmu-bench run --requests K`; docs/continual.md): the forget set unlearned as a "
            "stream of K requests, each on the model the one before left. Final overall and the normalised "
            "dimensions: after the last request, against the whole forget set's gold reference, as a one-shot run "
            "is scored. Gap vs one-shot: the final overall minus that of the one-shot run of the same seed on the "
            "same forget set (the run whose key the stream names, results.json `continual.one_shot_key`, else the run "
            "of the same method and configuration); below 0: "
            "the stream ends worse than unlearning everyone at once. Reversal ↓: a request's largest rise of its "
            "forgetting score after it was unlearned (forgetting that came back), mean over requests 1..K-1. Early "
            "forgetting: the drop of the forgetting score on the people not yet requested, from the vanilla "
            "model's, mean over requests 1..K-1 (forgetting before it was asked for). Erosion: the least-squares "
            "slope per request of each retention dimension's score over requests 0..K (below 0: lost as requests "
            "come). Mean ± std over seeds [95 % CI: bootstrap over seeds and people, 2,000 resamples, seeded; the "
            "gap's pairs each seed's stream with its one-shot run, one seed draw and the same people drawn in "
            "both]." + (f" Plot: `{plot_file}`, the overall after each request." if plot_file else ""))
    note = unpaired_note(rows)
    return [Section("Continual", text + (f" {note}" if note else ""), columns, select=continual_rows, links=True)]


def ratio_groups(rows: list[dict]) -> list[list[dict]]:
    """The one-shot method rows of each method (and configuration) run at two or more forget
    ratios, each group in ratio order."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        if row["kind"] == "method":
            groups[(row["method"], row["config_hash"], row["source_sha256"], row["task_versions"])].append(row)
    return [sorted(g, key=lambda r: r["forget_ratio"]) for _, g in sorted(groups.items())
            if len({r["forget_ratio"] for r in g}) > 1]


def forget_ratio_section(rows: list[dict], dims: list[Dimension], plot_file: str = "") -> list[Section]:
    """"Forget-set size" (MUSE's C5, scale with the forget set): each method with one-shot runs
    at two or more forget ratios, at each; nothing where no method has."""
    if not ratio_groups(rows):
        return []
    columns = [Column("n_seeds", "seeds", _n_seeds, ""), Column("overall", "overall", _pm)] + [
        Column(f"{d.name}/normalised", f"{d.label} (normalised)", _pm) for d in dims]
    text = ("How each method scales with the forget set (MUSE's C5): the methods run at two or more forget ratios, "
            "with the same configuration, at each; normalised dimensions and overall, mean ± std over seeds."
            + (f" Plot: `{plot_file}`." if plot_file else ""))
    return [Section("Forget-set size", text, columns, select=lambda rs: [r for g in ratio_groups(rs) for r in g])]


# -- a run's table.md and report.html --------------------------------------------------------------
def matrix_columns(result: RunResult) -> list[str]:
    """The matrix's columns (evaluation sets) in the dimensions' order, each dimension's
    per-request columns (``<dimension>:<i>``) in request order."""
    matrix = result.continual.get("matrix") or {}
    out = []
    for dim in result.dimension_order():
        own = sorted((k for k in matrix if k.split(":")[0] == dim and ":" in k), key=lambda k: int(k.split(":")[1]))
        out += own or ([dim] if dim in matrix else [])
    return out + sorted(set(matrix) - set(out))


def matrix_rows(result: RunResult) -> list[dict]:
    """One row per request 0..K (0: before any): each evaluation set's score after it."""
    matrix = result.continual.get("matrix") or {}
    columns = matrix_columns(result)
    count = max((len(v) for v in matrix.values()), default=0)
    return [{"request": r, **{c: _num(matrix[c][r]) if r < len(matrix[c]) else float("nan") for c in columns}}
            for r in range(count)]


def after_rows(result: RunResult) -> list[dict]:
    """One row per request 1..K: its people, the normalised dimensions over everyone forgotten
    so far, the overall, and whether a gold reference normalised it."""
    order = result.dimension_order()
    requests = result.continual.get("requests") or []
    out = []
    for a in result.continual.get("after") or []:
        j = a["request"]
        people = str(len(requests[j - 1])) if 0 < j <= len(requests) else "-"
        normalised = a.get("normalised") or {}
        out.append({"request": str(j), "people": people, **{d: _num(normalised.get(d)) for d in order},
                    "overall": _num(a.get("overall")), "gold": "yes" if a.get("gold") else "no (chance)"})
    return out


def _num(value) -> float:
    return float("nan") if value is None else float(value)


def _fmt(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def figures_lines(result: RunResult) -> list[str]:
    """Reversal, early forgetting, erosion and the one-shot key, one sentence each."""
    c = result.continual
    lines = []
    for key, what, which in (
            ("reversal", "Reversal (a request's largest rise of its forgetting score after it was unlearned; lower is "
                         "better)", "of requests"),
            ("early_forgetting", "Early forgetting (the drop of the forgetting score on the people not yet requested, "
                                 "from the vanilla model's)", "after requests")):
        figure = c.get(key) or {}
        per = ", ".join(_fmt(v) for v in figure.get("per_request") or []) or "-"
        lines.append(f"{what}: mean **{_fmt(figure.get('mean'))}**; {which} 1..K-1: {per}.")
    erosion = c.get("erosion") or {}
    labels = result.dimension_labels()
    order = [d for d in result.dimension_order() if d in erosion] + sorted(set(erosion) - set(result.dimension_order()))
    slopes = ", ".join(f"{labels.get(d, d)} {_fmt(erosion[d])}" for d in order) or "-"
    lines.append(f"Erosion (least-squares slope per request of each retention dimension's score, requests 0..K; "
                 f"below 0: lost as requests come): {slopes}.")
    lines.append(f"One-shot run on the same forget set, which the final scores compare with: run key "
                 f"`{c.get('one_shot_key', '-')}`.")
    return lines


def run_markdown(result: RunResult) -> str:
    """table.md's "Continual" part: the matrix, the scores after each request, and the figures."""
    from mmu_bench.reporting.tables import to_markdown

    k = len(result.continual.get("requests") or [])
    matrix = matrix_rows(result)
    text = "\n" + to_markdown(matrix, title=f"Continual: {k} requests", footer=(
        "Rows: the model before any request (0) and after each. Columns: each evaluation set's score (the mean of "
        "its score measures); `<dimension>:<i>`: on the people of request i, the others over all their items.")
        ) if matrix else ""
    after = after_rows(result)
    if after:
        text += "\n" + to_markdown(after, title="After each request", footer=(
            "Normalised over everyone forgotten so far (the others over all their items), against the vanilla "
            "model and the gold reference of those people (chance where there is none); the last row is the run's."))
    return text + "\n" + "\n\n".join(figures_lines(result)) + "\n"


HEAT = (42, 111, 219)  # the pages' blue (pages.STYLE's bars)


def _heat_cell(value: float, title: str, diagonal: bool) -> str:
    """A matrix cell coloured by its value in [0, 1] (white 0 to blue 1); framed on the request
    that was just unlearned."""
    if math.isnan(value):
        return '<td data-sort="">-</td>'
    v = min(1.0, max(0.0, value))
    rgb = ",".join(str(round(255 + (c - 255) * v)) for c in HEAT)
    ink = "#fff" if v > 0.55 else "#222"
    frame = ";outline:2px solid #222;outline-offset:-2px" if diagonal else ""
    return (f'<td data-sort="{value!r}" title="{html.escape(title)}" style="background:rgb({rgb});color:{ink}{frame}">'
            f"{value:.3f}</td>")


def heatmap(result: RunResult) -> str:
    """The matrix as a table whose cells are coloured by their score."""
    columns = matrix_columns(result)
    body = []
    for row in matrix_rows(result):
        r = row["request"]
        cells = [pages.cell(str(r), float(r))]
        for column in columns:
            _, _, i = column.partition(":")
            where = f"on request {i}'s people" if i else "over all its items"
            cells.append(_heat_cell(row[column], f"{column} after request {r} ({where})", bool(i) and int(i) == r))
        body.append("<tr>" + "".join(cells) + "</tr>")
    return pages.table(["after request", *columns], body, "continual-matrix")


def _series_chart(series: dict[str, list[float]], title: str) -> str:
    """An inline SVG line chart of several series over requests 0..K, on a [0, 1] scale, with a legend."""
    colours = ("#2a6fdb", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085")
    count = max((len(v) for v in series.values()), default=0)
    if count < 2:
        return ""
    x = [40 + 360 * r / (count - 1) for r in range(count)]
    parts = []
    for n, (name, values) in enumerate(series.items()):
        colour = colours[n % len(colours)]
        points = " ".join(f"{x[r]:.1f},{150 - 130 * min(1.0, max(0.0, v)):.1f}" for r, v in enumerate(values)
                          if not math.isnan(v))
        parts.append(f'<polyline class="erosion" data-name="{html.escape(name)}" fill="none" stroke="{colour}" '
                     f'stroke-width="1.5" points="{points}"/>')
        parts.append(f'<text x="{410}" y="{24 + 14 * n}" font-size="10" fill="{colour}">{html.escape(name)}</text>')
    ticks = "".join(f'<text x="{x[r] - 3:.1f}" y="166" font-size="10">{r}</text>' for r in range(count))
    return (f'<figure><figcaption>{html.escape(title)}</figcaption><svg viewBox="0 0 560 170" width="560" height="170">'
            + "".join(parts) + '<text x="2" y="24" font-size="10">1</text><text x="2" y="152" font-size="10">0</text>'
            + ticks + "</svg></figure>")


def erosion_series(result: RunResult, lines: list[dict]) -> dict[str, list[float]]:
    """Each retention dimension's score after each request 0..K (what erosion is the slope of),
    from continual.jsonl; without it, the matrix's columns over all items (a dimension scored per
    person has none of its own there)."""
    if lines:
        found = stream.retention_series(lines, result.tasks)
    else:
        matrix = result.continual.get("matrix") or {}
        found = {d: matrix[d] for d in result.continual.get("erosion") or {} if d in matrix}
    labels = result.dimension_labels()
    return {labels.get(d, d): [_num(v) for v in values] for d, values in found.items()}


def run_html(result: RunResult, lines: list[dict]) -> str:
    """report.html's "Continual" part: the matrix as a heatmap, the scores after each request, the
    erosion curves and the figures."""
    k = len(result.continual.get("requests") or [])
    series = erosion_series(result, lines)
    curves = _series_chart(series, "erosion: each retention dimension's score before any request (0) and after each")
    labels = result.dimension_labels()
    missing = [labels.get(d, d) for d in result.continual.get("erosion") or {} if labels.get(d, d) not in series]
    if missing:  # scored per person: its curve over everyone needs continual.jsonl
        curves += f"<p>{html.escape(', '.join(missing))}: no curve without continual.jsonl beside results.json</p>"
    figures = "".join(f"<p>{pages.prose(line)}</p>" for line in figures_lines(result))
    return (f'<h2 id=continual>Continual: {k} requests</h2>\n'
            "<p>The model before any request (0) and after each, on every evaluation set (the mean of its score "
            "measures); <code>&lt;dimension&gt;:&lt;i&gt;</code>: on the people of request i, framed where request "
            "i was just unlearned. Colour: the score, white 0 to blue 1.</p>\n"
            + heatmap(result) + "\n<h3>After each request</h3>\n" + pages.dict_table(after_rows(result), "continual-after")
            + "\n" + (curves or "<p>no erosion curve (fewer than two points)</p>") + "\n" + figures + "\n")
