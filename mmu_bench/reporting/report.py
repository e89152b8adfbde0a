"""``report.html``: one self-contained page per run folder (no server, no network; thumbnails
embedded), written with the folder and rebuilt by ``mmu-bench report RUN_DIR`` from the folder
alone: the configuration and provenance, the dimension table against the references, the
attacks' numbers (attacks.json; `mmu-bench attack --run` rebuilds the page), for a continual run
its stream (the matrix as a heatmap, the erosion curves; ``reporting.continual``), the training
curve and trajectory, and a filterable table of every scored item with the unlearned
and the vanilla model's outputs.

Sample text reaches the page only as JSON inside a ``<script type="application/json">`` (with
``<`` escaped) and is shown through ``textContent``: a prompt or output holding markup shows as
text and runs nothing.
"""

from __future__ import annotations

import html
import json
import random
from pathlib import Path

from mmu_bench.core.names import safe_name
from mmu_bench.core.storage import atomic_write_text
from mmu_bench.reporting import continual, pages, tables
from mmu_bench.runs import attacks as attacking
from mmu_bench.runs import continual as stream
from mmu_bench.runs import results, samples, trajectory

REPORT_FILE = "report.html"
MAX_ROWS = 5000  # beyond this the sample table holds a seeded sample per task (the page says so)


def _sample_rows(samples: list[dict], thumbs: dict) -> tuple[list[dict], str]:
    note = ""
    if len(samples) > MAX_ROWS:
        by_task: dict[str, list[dict]] = {}
        for s in samples:
            by_task.setdefault(s["task"], []).append(s)
        per_task = max(1, MAX_ROWS // len(by_task))
        rng = random.Random(0)
        kept = []
        for task in sorted(by_task):
            rows = by_task[task]
            kept.extend(rows if len(rows) <= per_task else [rows[i] for i in sorted(rng.sample(range(len(rows)), per_task))])
        note = (f"{len(samples)} items scored; shown: a seeded sample of at most {per_task} per task "
                f"({len(kept)} in all). samples.jsonl holds them all.")
        samples = kept
    items = thumbs.get("items", {})
    rows = []
    for s in samples:
        output, vanilla = s.get("output"), s.get("vanilla_output")
        rows.append({
            "task": s.get("task", ""), "dimension": s.get("dimension", ""), "format": s.get("format", ""),
            "entity": s.get("entity_id", ""), "image": items.get(s.get("item_id"), ""),
            "prompt": s.get("prompt", ""), "answer": str(s.get("answer", "")), "output": output or "",
            "vanilla": vanilla,
            "changed": vanilla is not None and (output or "").strip() != (vanilla or "").strip(),
        })
    return rows, note


def _curve(points: list[tuple[float, float]], title: str) -> str:
    """An inline SVG line chart of (x, y) points."""
    if len(points) < 2:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    path = " ".join(f"{40 + 360 * (x - x0) / ((x1 - x0) or 1):.1f},{150 - 130 * (y - y0) / ((y1 - y0) or 1):.1f}"
                    for x, y in points)
    return (f'<figure><figcaption>{html.escape(title)}</figcaption><svg viewBox="0 0 420 170" width="420" height="170">'
            f'<polyline fill="none" stroke="#2a6fdb" stroke-width="1.5" points="{path}"/>'
            f'<text x="2" y="24" font-size="10">{y1:.3g}</text><text x="2" y="152" font-size="10">{y0:.3g}</text>'
            f'<text x="40" y="166" font-size="10">{x0:g}</text><text x="380" y="166" font-size="10">{x1:g}</text>'
            "</svg></figure>")


def _loss_curve(log: list[dict]) -> str:
    """The training loss per step; a continual run's requests (each counting its steps from 0)
    one after another."""
    steps = [h for h in log if "step" in h and "loss" in h]
    if any("request" in h for h in steps):
        return _curve([(n, h["loss"]) for n, h in enumerate(steps)], "training loss per step, the requests one after another")
    return _curve([(h["step"], h["loss"]) for h in steps], "training loss per step")


def time_rows(provenance: dict) -> list[dict]:
    """A row per phase of the run (results.json's ``provenance.phases``), with its share of the
    run's wall time, then the rest (what no phase holds: starting trackers, say)."""
    phases, wall = provenance.get("phases") or {}, provenance.get("wall_seconds")
    if not phases or not wall:
        return []
    order = [name for name in results.PHASES if name in phases] + sorted(set(phases) - set(results.PHASES))
    rows = [{"phase": name, "seconds": round(phases[name], 2), "share": f"{phases[name] / wall:.0%}"}
            for name in order]
    rest = wall - sum(phases.values())
    return rows + [{"phase": "other", "seconds": round(rest, 2), "share": f"{rest / wall:.0%}"},
                   {"phase": "run (wall)", "seconds": round(wall, 2), "share": "100%"}]


def render(run_dir: Path) -> str:
    """The report of the run folder ``run_dir`` (from its files only)."""
    run_dir = Path(run_dir)
    result = results.read(run_dir / "results.json")
    config = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").is_file() else ""
    thumbs = samples.read_thumbnails(run_dir)
    rows, note = _sample_rows(samples.read_jsonl(run_dir / samples.SAMPLES_FILE), thumbs)
    title = (f"{result.method.get('name', '?')} on {result.benchmark.get('name', '?')} "
             f"(forget {result.benchmark.get('forget_ratio', '?')}%, seed {result.seed})")
    log = result.training.get("log") or []
    curves = _loss_curve(log)
    points = trajectory.read(run_dir)
    for dimension in sorted({d for p in points for d in p.get("dimensions", {})}):
        curves += _curve([(p["step"], p["dimensions"][dimension]) for p in points
                          if isinstance(p.get("dimensions", {}).get(dimension), (int, float))],
                         f"trajectory: {dimension} per step (sampled items)")
    provenance = json.dumps(result.provenance, indent=1, sort_keys=True, default=str)
    timings = time_rows(result.provenance)
    overall = result.overall
    attacked = attacking.read(run_dir)
    attacks = "<p>no attacks run (<code>mmu-bench attack --run DIR</code> adds them)</p>"
    if attacked:
        failed = "".join(f"<li>failed: {html.escape(f)}</li>" for f in attacking.failures(attacked))
        attacks = (f"<p>{html.escape(tables.attacks_footer(attacked))}</p>"
                   + pages.dict_table(attacking.rows(attacked), "attacks")
                   + (f"<ul>{failed}</ul>" if failed else ""))
    return TEMPLATE.format(
        title=html.escape(title),
        overall=pages.fmt(overall),
        dimensions=pages.dict_table(tables.table_rows(result), "dimensions")
        + "".join(pages.dict_table(rows, safe_name(table)) for table, rows in tables.measure_tables(result).items()),
        curves=curves or "<p>no training curve recorded</p>",
        timings=pages.dict_table(timings, "timings") if timings else "<p>no phase timings recorded (an older run)</p>",
        attacks=attacks,
        continual=continual.run_html(result, stream.read(run_dir)) if result.continual else "",
        config=html.escape(config),
        provenance=html.escape(provenance),
        note=html.escape(note),
        rows=pages.script_json(rows),
        images=pages.script_json(thumbs.get("images", {})),
        style=pages.STYLE,
        sort_script=pages.SORT_SCRIPT,
    )


def write(run_dir: Path) -> Path:
    """(Re)write ``report.html`` in ``run_dir`` atomically."""
    path = Path(run_dir) / REPORT_FILE
    atomic_write_text(path, render(run_dir))
    return path


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mmu-bench: {title}</title>
<style>{style}
#filters label {{ margin-right: 1em; }}
img.thumb {{ width: 48px; height: 48px; image-rendering: pixelated; }}
</style></head><body>
<h1>{title}</h1>
<p>Overall score: <b id=overall>{overall}</b></p>
<h2>Dimensions</h2>
{dimensions}
<h2>Attacks</h2>
{attacks}
{continual}<h2>Training</h2>
{curves}
<h2>Where the time went</h2>
{timings}
<details><summary>Configuration</summary><pre>{config}</pre></details>
<details><summary>Provenance</summary><pre>{provenance}</pre></details>
<h2>Samples</h2>
<p>{note}</p>
<div id=filters>
<label>dimension <select id=f-dimension><option value="">all</option></select></label>
<label>format <select id=f-format><option value="">all</option></select></label>
<label>entity <select id=f-entity><option value="">all</option></select></label>
<label><input type=checkbox id=f-changed> changed since vanilla</label>
<span id=count></span>
</div>
<table id=samples><thead><tr><th>task</th><th>entity</th><th>image</th><th>prompt</th><th>answer</th>
<th>unlearned output</th><th>vanilla output</th></tr></thead><tbody></tbody></table>
<script type="application/json" id=rows-data>{rows}</script>
<script type="application/json" id=images-data>{images}</script>
<script>
(function () {{
  const rows = JSON.parse(document.getElementById("rows-data").textContent);
  const images = JSON.parse(document.getElementById("images-data").textContent);
  const body = document.querySelector("#samples tbody");
  const fields = ["dimension", "format", "entity"];
  for (const f of fields) {{
    const select = document.getElementById("f-" + f);
    for (const v of [...new Set(rows.map(r => r[f]))].sort()) {{
      const o = document.createElement("option"); o.value = v; o.textContent = v || "(none)"; select.appendChild(o);
    }}
    select.addEventListener("change", draw);
  }}
  document.getElementById("f-changed").addEventListener("change", draw);
  function correct(r, text) {{
    if (text === null) return null;
    const t = String(text).trim().toLowerCase(), a = String(r.answer).trim().toLowerCase();
    if (r.format === "multiple_choice") return t.slice(0, 1) === a.slice(0, 1);
    if (r.format === "cloze") return a.length > 0 && t.includes(a);
    return null;  // generation: scored by ROUGE, not right or wrong
  }}
  function cell(tr, text, verdict) {{
    const td = document.createElement("td"); td.textContent = text === null ? "-" : text;
    if (verdict !== undefined && verdict !== null) td.className = verdict ? "ok" : "bad";
    tr.appendChild(td);
  }}
  function draw() {{
    const want = Object.fromEntries(fields.map(f => [f, document.getElementById("f-" + f).value]));
    const changed = document.getElementById("f-changed").checked;
    body.replaceChildren();
    let n = 0;
    for (const r of rows) {{
      if (fields.some(f => want[f] && r[f] !== want[f])) continue;
      if (changed && !r.changed) continue;
      const tr = document.createElement("tr");
      cell(tr, r.task); cell(tr, r.entity);
      const td = document.createElement("td");
      if (r.image && images[r.image]) {{
        const img = document.createElement("img"); img.className = "thumb"; img.src = images[r.image]; img.alt = r.entity;
        td.appendChild(img);
      }}
      tr.appendChild(td);
      cell(tr, r.prompt); cell(tr, r.answer);
      cell(tr, r.output, correct(r, r.output)); cell(tr, r.vanilla, correct(r, r.vanilla));
      body.appendChild(tr); n++;
    }}
    document.getElementById("count").textContent = n + " of " + rows.length + " items";
  }}
  draw();
}})();
</script>
<script>{sort_script}</script>
</body></html>
"""
