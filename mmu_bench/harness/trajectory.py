"""Trajectories: how forgetting and retention move during unlearning, and what each dimension
keeps at a matched amount of forgetting.

During a run the model is scored at ``points`` evenly spaced steps (plus step 0 and the end) on
a seeded sample of each dimension's primary task (``sample`` items per task and format, the
same items in every run), on its score measures only. Each point's dimension scores are
normalised like the final ones, against the reference models' scores *on the same sample*
(their cached records of those items). The points go to ``trajectory.jsonl``; the summary
(matched-forgetting scores and the trade-off AUC) to ``results.json`` under ``trade_off``.

Methods report progress through ``ctx.step_done(step, total)`` (the shared loop does it after
every step); the harness scores the model when a point is due. A method that never calls it
still gets its start and end points.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from mmu_bench.harness import score as scoring
from mmu_bench.harness.evaluate import EvalSettings, evaluate, select_rows
from mmu_bench.runs import results

TRAJECTORY_FILE = "trajectory.jsonl"
LEVELS = (0.5, 0.8, 0.95)  # normalised forgetting at which retention is compared


def cluster_of(record: dict) -> str:
    """What a bootstrap resamples: the record's entity (a person); an item without one (general
    utility) is its own cluster."""
    return record.get("entity_id") or f"item:{record['item_id']}"


def cluster_sums(records: list[dict], score: dict[str, list[str]]) -> dict:
    """task -> cluster -> measure -> [sum, count] of the per-item values of each task's score
    measures (``score``: task -> its score measures); what a bootstrap over people needs."""
    out: dict = {}
    for record in records:
        for measure in score.get(record["task"], ()):
            value = record.get(measure)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            cell = out.setdefault(record["task"], {}).setdefault(cluster_of(record), {}).setdefault(measure, [0.0, 0])
            cell[0] += float(value)
            cell[1] += 1
    return out


class Recorder:
    """Scores the model at the trajectory's points during one run (every process of a
    multi-process run calls it together; each then holds every point)."""

    def __init__(self, session, points: int, sample: int, accelerator=None):
        self.points, self.sample = points, sample
        self.tasks = scoring.primary_tasks(session.tasks)
        self.infos = scoring.task_infos(self.tasks, session.measures)
        self.score_measures = {t.name: list(t.score) for t in self.tasks}
        self.measures = session.measures
        self.settings = EvalSettings(batch_size=session.settings.batch_size, limit=sample, seed=0, progress=False)
        self.accelerator = accelerator
        # Drawn from the rows the run scores (and the reference models were scored on: under
        # --eval-limit, a sample of them), so that every sampled item has their records.
        scored = select_rows(session.benchmark.eval, self.tasks, session.settings)
        chosen = select_rows(_unique(scored), self.tasks, self.settings)
        wanted = {(name, row["item_id"]) for name, rows in chosen.items() for row in rows}
        self.dataset = _unique(chosen)  # drawn once: each point would otherwise read the whole benchmark again
        refs = {role: [r for r in ref.records if (r["task"], r["item_id"]) in wanted]
                for role, ref in session.refs.items()}
        ref_scores = scoring.score(refs, self.tasks, self.measures)
        dims = {role: results.dimension_scores(s, self.infos) for role, s in ref_scores.items()}
        chance = scoring.chance(ref_scores["vanilla"], self.tasks, self.measures)
        self.normalisation = results.normalisation(dims, self.infos, chance)
        self.lines: list[dict] = []
        self.total: int | None = None
        self._next = 0
        self._reported = 0
        self._at_end = False
        self._started = time.time()

    # -- when ---------------------------------------------------------------------------------
    def _due(self, k: int) -> int:
        """The step of the k-th of ``points`` evenly spaced points (k = 1 .. points)."""
        return math.ceil(k * self.total / self.points)

    def step_done(self, model, processor, step: int, total: int) -> None:
        """Score the model when ``step`` of ``total`` reaches the next point not yet scored
        (points a method passes between two calls are scored once, at the later step)."""
        if not self.points:
            return
        if self.total != total:
            self.total, self._next = total, 1
        scored = self._next <= self.points and step >= self._due(self._next)
        if scored:
            self.record(model, processor, step)
            while self._next <= self.points and self._due(self._next) <= step:
                self._next += 1
        self._reported = max(self._reported, step)
        # The method says it is done and the model was scored now: no end point is needed.
        self._at_end = scored and step >= total

    def finish(self, model, processor, steps: int) -> None:
        """The end point (at ``steps``, the steps the run logged, or the last step a method
        reported if later; at 1 at least, after the start), unless the method's last report was
        its last step, was scored, and no step was logged after it."""
        end = max(steps, self._reported, 1)
        if not (self._at_end and self.lines[-1]["step"] >= end):
            self.record(model, processor, end)

    # -- what ---------------------------------------------------------------------------------
    def record(self, model, processor, step: int) -> None:
        device = next(model.parameters()).device
        # Scoring must not move the run's random streams: a run with a trajectory trains exactly
        # like one without.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            records = evaluate(model, processor, self.dataset, self.tasks, self.settings, self.accelerator)
        scores = scoring.score({results.UNLEARNED: records}, self.tasks, self.measures)[results.UNLEARNED]
        dims = results.dimension_scores(scores, self.infos)
        self.lines.append({
            "point": len(self.lines), "step": step, "total": self.total, "seconds": round(time.time() - self._started, 2),
            "dimensions": dims, "normalised": results.normalise(dims, self.normalisation),
            "clusters": cluster_sums(records, self.score_measures),
        })

    # -- the run's summary ------------------------------------------------------------------------
    def summary(self) -> dict:
        forgetting, retention = roles(self.infos)
        out = {"points": self.points, "sample": self.sample, "levels": list(LEVELS), "forgetting": forgetting,
               "retention": retention, "score": self.score_measures,
               "tasks": {t.name: t.dimension for t in self.tasks},
               "normalisation": {d: asdict(n) for d, n in self.normalisation.items()}}
        return {**out, **trade_off([line["normalised"] for line in self.lines], forgetting, retention)}

    def to_jsonl(self) -> str:
        return "".join(json.dumps(results.json_safe(line), sort_keys=True) + "\n" for line in self.lines)


def _unique(chosen: dict[str, list[dict]]) -> list[dict]:
    """The rows of every task, each once, in order."""
    return list({row["item_id"]: row for rows in chosen.values() for row in rows}.values())


def roles(infos: dict[str, results.TaskInfo]) -> tuple[str | None, list[str]]:
    """(the forgetting dimension, the retention dimensions): the first primary task where lower
    is better, and every primary task where higher is."""
    primary = sorted((t for t in infos.values() if t.primary), key=lambda t: (t.order, t.dimension))
    forgetting = next((t.dimension for t in primary if not t.higher_is_better), None)
    return forgetting, [t.dimension for t in primary if t.higher_is_better]


# -- matched forgetting -------------------------------------------------------------------------
def at_levels(xs, ys, levels) -> np.ndarray:
    """``y`` where ``x`` first reaches each level along the trajectory, linear between that
    point and the one before it; NaN where it never does (never extrapolated). ``xs``, ``ys``:
    [..., points] in step order (a point without ``x`` never reaches a level); returns [...,
    levels]."""
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    lv = np.asarray(levels, dtype=float)
    shape = x.shape[:-1] + (len(lv), x.shape[-1])
    xb, yb = np.broadcast_to(x[..., None, :], shape), np.broadcast_to(y[..., None, :], shape)
    hit = np.nan_to_num(xb, nan=-np.inf) >= lv[:, None]
    first = hit.argmax(-1)[..., None]
    before = np.maximum(first - 1, 0)
    x1, y1 = np.take_along_axis(xb, first, -1)[..., 0], np.take_along_axis(yb, first, -1)[..., 0]
    x0, y0 = np.take_along_axis(xb, before, -1)[..., 0], np.take_along_axis(yb, before, -1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        between = y0 + (lv - x0) / (x1 - x0) * (y1 - y0)
    value = np.where(first[..., 0] == 0, y1, between)
    return np.where(hit.any(-1), value, np.nan)


def area(xs, ys) -> float:
    """The area under retention against forgetting: the integral over levels f in [0, 1] of
    the retention where forgetting first reaches f (``at_levels``), counted 0 where the run
    never reaches f. Exact: levels up to the first point's forgetting take its retention; each
    later segment that raises the highest forgetting so far adds its new levels' trapezoid.
    NaN when a point has no forgetting score."""
    total, top, before = 0.0, 0.0, None
    for x, y in zip(np.asarray(xs, dtype=float).tolist(), np.asarray(ys, dtype=float).tolist()):
        if math.isnan(x):
            return float("nan")
        if before is None:
            total, top = x * y, x
        elif x > top:
            x0, y0 = before
            at_top = y0 + (top - x0) / (x - x0) * (y - y0)
            total += (x - top) * (at_top + y) / 2
            top = x
        before = (x, y)
    return total


def curves(normalised: dict[str, np.ndarray], forgetting: str, retention: list[str]):
    """(x, {curve: y}): the normalised forgetting and each retention dimension, and their
    harmonic mean (``harmonic``), arrays [..., points]."""
    ys = {dim: normalised[dim] for dim in retention}
    ys["harmonic"] = results.harmonic_mean([normalised[d] for d in retention])
    return normalised[forgetting], ys


def trade_off(normalised: list[dict[str, float]], forgetting: str | None, retention: list[str]) -> dict:
    """From the points' normalised dimension scores (in step order): each retention dimension
    (and their harmonic mean) at each of ``LEVELS`` (None: not reached), the highest forgetting
    reached, and the area under each curve."""
    if forgetting is None or not normalised:
        return {"matched": {}, "max_forgetting": None, "auc": {}}
    dims = {d: np.array([n.get(d, np.nan) for n in normalised], dtype=float) for d in [forgetting, *retention]}
    x, ys = curves(dims, forgetting, retention)
    matched = {dim: at_levels(x, y, LEVELS) for dim, y in ys.items()}
    return {
        "matched": {f"{level:g}": {dim: _number(v[i]) for dim, v in matched.items()} for i, level in enumerate(LEVELS)},
        "max_forgetting": _number(np.nanmax(x)) if not np.isnan(x).all() else None,
        "auc": {dim: _number(area(x, y)) for dim, y in ys.items()},
    }


def _number(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


def resampled(lines: list[dict], summary: dict, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The run's matched-forgetting values under ``n`` resamples of its people
    (``mmu_bench.stats``): "<level>/<curve>" -> [n] (NaN: not reached in that resample)."""
    from mmu_bench.runs.stats import task_scores

    spec = {d: results.Normalisation(**v) for d, v in summary["normalisation"].items()}
    scores = task_scores([line["clusters"] for line in lines], summary["score"], n, rng)
    normalised = {summary["tasks"][t]: spec[summary["tasks"][t]].apply(v) for t, v in scores.items()}
    x, ys = curves(normalised, summary["forgetting"], summary["retention"])
    out = {}
    for dim, y in ys.items():
        values = at_levels(x, y, LEVELS)
        for i, level in enumerate(LEVELS):
            out[f"{level:g}/{dim}"] = values[:, i]
    return out


def read(folder: Path) -> list[dict]:
    """A run folder's trajectory points (empty when it has none)."""
    path = Path(folder) / TRAJECTORY_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
