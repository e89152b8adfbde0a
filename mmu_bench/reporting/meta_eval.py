"""The meta-evaluation's leaderboard files: ``meta-eval__<benchmark>__<model>.json`` (every value,
as ``mmu-bench meta-eval`` made it), ``.csv`` (one row per side and measure), ``.md`` (the
measures ranked), ``.png`` (faithfulness against robustness) and a section of ``index.html``.
Reads and writes files only (``mmu_bench.runs.meta`` has the statistics)."""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from pathlib import Path

from mmu_bench.core.names import safe_name
from mmu_bench.core.storage import atomic_write_json, atomic_write_text
from mmu_bench.reporting import pages
from mmu_bench.reporting.plots import COLOURS, _save
from mmu_bench.runs import meta

PREFIX = "meta-eval__"
SIDE_TITLES = {meta.VISUAL: "Visual forgetting: knows the forget people's faces, or never saw them",
               meta.TEXT: "Textual retention: learned the text about the forget people, or never did"}
READING = ("Faithfulness: the AUC of the measure at telling the models that have the knowledge from those that never "
           "had it (1 = always, 0.5 = a coin, under 0.5 = the wrong way round), with its 95 % bootstrap interval over "
           "the models. Robustness (visual side): per attack, R = min(1, (max(Δ never-knew, 0) + 0.05) / Δ unlearned), "
           "Δ = how far the attack moves the measure's reading towards \"known\", in units of the gap between the pools "
           "(OpenUnlearning's relearning rule), mean over the unlearned models; robustness = their harmonic mean; "
           "overall = the harmonic mean of faithfulness and robustness. Unlearned at: where the measure puts the "
           "unlearned models before any attack (0 = with the never-knew pool, 1 = with the knowing pool); a measure "
           "that never calls them forgotten cannot be fooled, so read its robustness with it (docs/meta-eval.md).")


def stem(doc: dict) -> str:
    return f"{PREFIX}{safe_name(doc['benchmark'])}__{safe_name(doc['model'])}"


def _sorted(rows: list[dict], side: str) -> list[dict]:
    def key(r):
        first = r["overall"] if side == meta.VISUAL else r["faithfulness"]
        return (-(first if not math.isnan(first) else -1), -(r["faithfulness"] if not math.isnan(r["faithfulness"])
                                                             else -1), r["measure"])
    return sorted((r for r in rows if r["side"] == side), key=key)


def _num(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def columns(doc: dict, side: str) -> list[tuple[str, str]]:
    """(header, key) of a side's table."""
    cols = [("measure", "measure"), ("faithfulness", "faithfulness"), ("95 % CI", "ci"), ("knows / never", "pools")]
    if side == meta.VISUAL:
        cols.append(("unlearned at", "unlearned_at"))
        for attack in doc.get("attacks", {}):
            cols += [(f"{attack}: Δ unlearned", f"{attack}_moved_unlearned"),
                     (f"{attack}: Δ never-knew", f"{attack}_moved_never"), (f"{attack}: R", f"{attack}_robustness")]
        cols += [("robustness", "robustness"), ("overall", "overall")]
    return cols


def _cell(row: dict, key: str) -> str:
    if key == "ci":
        if math.isnan(row["faithfulness_low"]):
            return "-"
        return f"{_num(row['faithfulness_low'])}-{_num(row['faithfulness_high'])}"
    if key == "pools":
        return f"{row['n_knows']} / {row['n_never']}"
    if key == "measure":
        return row["measure"]
    return _num(row.get(key))


def to_csv(rows: list[dict]) -> str:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(row.get(k), float) and math.isnan(row[k]) else row.get(k, ""))
                         for k in keys})
    return buf.getvalue()


def _setting(doc: dict) -> str:
    m = doc["meta_config"]
    tasks = [doc["sides"][side] for side in meta.SIDES]  # in the sides' order: the JSON's keys are sorted
    pools = {task: {g: len(ids) for g, ids in doc["pools"][task].items()} for task in tasks}
    unlearned = [i.split(" ", 1)[1] for i, e in doc["models"].items() if e.get("kind") == "unlearned"]
    budgets = ", ".join(" ".join(f"{k}={v}" for k, v in b.items()) for b in m["budgets"]) or "none"
    return (f"Pools: seeds {', '.join(map(str, m['seeds']))} (the references are seed 0); extra budgets of the knowing "
            f"pool: {budgets}. Models per pool: "
            + "; ".join(f"{task} {p['knows']} knowing, {p['never']} never-knew" for task, p in pools.items())
            + f". Unlearned models (seed 0): {', '.join(unlearned) or 'none'}. Attacks: "
            + (", ".join(f"{a} ({', '.join(f'{k}={v}' for k, v in c.items())})" for a, c in doc["attacks"].items())
               or "none") + ".")


def to_markdown(doc: dict, rows: list[dict]) -> str:
    lines = [f"# Meta-evaluation: {doc['benchmark']} / {doc['model']}", "",
             "Which measure tells forgotten from not forgotten? Written by `mmu-bench meta-eval`; every value is in "
             f"`{stem(doc)}.json`.", "", _setting(doc), "", READING, ""]
    for side in meta.SIDES:
        cols = columns(doc, side)
        lines += [f"## {SIDE_TITLES[side]}", "",
                  "Ranked by overall." if side == meta.VISUAL else "Ranked by faithfulness (the attacks bring back "
                  "images: robustness is measured on the visual side).", "",
                  "| " + " | ".join(h for h, _ in cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(_cell(r, k) for _, k in cols) + " |" for r in _sorted(rows, side)]
        lines.append("")
    return "\n".join(lines)


def plot(doc: dict, rows: list[dict], path: Path) -> None:
    """Per measure, ranked as in the tables: faithfulness and robustness on the visual side,
    faithfulness on the text side (horizontal bars: every name stays readable)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    visual, text = _sorted(rows, meta.VISUAL), _sorted(rows, meta.TEXT)
    height = max(4.0, 0.32 * max(len(visual), len(text)) + 1.5)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, height))

    def bars(ax, ranked, keys):
        ys = list(range(len(ranked)))
        width = 0.8 / len(keys)
        for k, (key, label) in enumerate(keys):
            values = [0.0 if math.isnan(r[key]) else r[key] for r in ranked]
            ax.barh([y + (k - (len(keys) - 1) / 2) * width for y in ys], values, width, color=COLOURS[k], label=label)
        ax.set_yticks(ys)
        ax.set_yticklabels([r["measure"] for r in ranked], fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0.5, color="#999", lw=0.8, ls="--")
        ax.set_xlim(0, 1.05)

    bars(left, visual, [("faithfulness", "faithfulness (AUC)"), ("robustness", "robustness (relearning, quantisation)")])
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=2)
    left.set_title("visual forgetting (ranked by overall)", fontsize=10)
    bars(right, text, [("faithfulness", "faithfulness (AUC)")])
    right.set_title("textual retention (ranked by faithfulness)", fontsize=10)
    fig.suptitle(f"meta-evaluation: {doc['benchmark']} / {doc['model']}", fontsize=11)
    _save(fig, path)


def section(doc: dict, rows: list[dict], with_plot: bool) -> str:
    """The meta-evaluation's section of index.html."""
    s = stem(doc)
    parts = [f'<section id="{html.escape(s)}"><h2>Meta-evaluation: {html.escape(doc["benchmark"])} / '
             f'{html.escape(doc["model"])}</h2>', f"<p>{pages.prose(_setting(doc))}</p>", f"<p>{pages.prose(READING)}</p>"]
    for n, side in enumerate(meta.SIDES):
        cols = columns(doc, side)
        body = []
        for r in _sorted(rows, side):
            cells = []
            for _, key in cols:
                value = r.get(key) if key not in ("ci", "pools", "measure") else None
                cells.append(pages.cell(_cell(r, key), pages.number(value)))
            body.append("<tr>" + "".join(cells) + "</tr>")
        parts += [f"<h3>{html.escape(SIDE_TITLES[side])}</h3>", pages.table([h for h, _ in cols], body, f"{s}-{n}")]
    if with_plot:
        parts.append(f'<figure><img src="{html.escape(s)}.png" alt="meta-evaluation: faithfulness and '
                     'robustness"></figure>')
    return "\n".join(parts) + "\n</section>"


def write(doc: dict, out_dir: str | Path, with_plot: bool = True) -> list[Path]:
    """The meta-evaluation's files in ``out_dir``; its section spliced into index.html there when
    the page exists (``mmu-bench leaderboard`` adds it when it writes the page)."""
    out = Path(out_dir)
    s = stem(doc)
    rows = meta.summarise(doc)
    atomic_write_json(out / f"{s}.json", doc)
    atomic_write_text(out / f"{s}.csv", to_csv(rows))
    atomic_write_text(out / f"{s}.md", to_markdown(doc, rows))
    written = [out / f"{s}{ext}" for ext in (".json", ".csv", ".md")]
    if with_plot:
        plot(doc, rows, out / f"{s}.png")
        written.append(out / f"{s}.png")
    page = out / "index.html"
    if page.is_file():
        atomic_write_text(page, splice(page.read_text(), s, section(doc, rows, with_plot)))
        written.append(page)
    return written


def read(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def sections_in(out_dir: str | Path) -> list[tuple[str, str, str]]:
    """(stem, title, section) of every meta-evaluation in ``out_dir``, for the page."""
    found = []
    for path in sorted(Path(out_dir).glob(f"{PREFIX}*.json")):
        doc = read(path)
        rows = meta.summarise(doc)
        has_plot = path.with_suffix(".png").is_file()
        found.append((stem(doc), f"Meta-evaluation: {doc['benchmark']} / {doc['model']}",
                      marked(stem(doc), section(doc, rows, has_plot))))
    return found


def marked(s: str, text: str) -> str:
    return f"<!-- {s} -->\n{text}\n<!-- /{s} -->"


def splice(page: str, s: str, text: str) -> str:
    """``page`` with the section of ``s`` replaced (or put before the page's script)."""
    block = marked(s, text)
    pattern = re.compile(rf"<!-- {re.escape(s)} -->\n.*?\n<!-- /{re.escape(s)} -->", re.S)
    if pattern.search(page):
        return pattern.sub(lambda _: block, page)
    return page.replace("\n<script>", f"\n{block}\n<script>", 1)
