"""Recording a trajectory: how forgetting and retention move during unlearning.

During a run the model is scored at ``points`` evenly spaced steps (plus step 0 and the end) on
a seeded sample of each dimension's primary task (``sample`` items per task and format, the
same items in every run), on its score measures only. Each point's dimension scores are
normalised like the final ones, against the reference models' scores *on the same sample*
(their cached records of those items). The points go to ``trajectory.jsonl``; the summary
(matched-forgetting scores and the trade-off AUC, ``mmu_bench.runs.trajectory``) to
``results.json`` under ``trade_off``.

Methods report progress through ``ctx.step_done(step, total)`` (the shared loop does it after
every step); the harness scores the model when a point is due. A method that never calls it
still gets its start and end points.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict

import torch

from mmu_bench.harness import score as scoring
from mmu_bench.harness.evaluate import EvalSettings, evaluate, needs_of, select_rows
from mmu_bench.runs import results
from mmu_bench.runs.stats import cluster_sums
from mmu_bench.runs.trajectory import LEVELS, roles, to_jsonl, trade_off
from mmu_bench.spec.selection import text_only, with_images


class Recorder:
    """Scores the model at the trajectory's points during one run (every process of a
    multi-process run calls it together; each then holds every point)."""

    def __init__(self, session, points: int, sample: int, accelerator=None, encodings=None, clock=None):
        """``encodings``: the run's encoded items (``evaluate.Encodings``): every point scores the
        same sample; ``clock``: the run's (``harness.clock``), whose trajectory phase the points are."""
        self.points, self.sample = points, sample
        self.encodings, self.clock = encodings, clock
        self.tasks = scoring.primary_tasks(session.tasks)
        self.infos = scoring.task_infos(self.tasks, session.measures)
        self.score_measures = {t.name: list(t.score) for t in self.tasks}
        self.measures = session.measures
        # Only the passes the score measures read run at a point (the same values as a full evaluation).
        self.needs = needs_of(self.tasks, self.measures)
        self.settings = EvalSettings(batch_size=session.settings.batch_size, limit=sample, seed=0, progress=False)
        self.accelerator = accelerator
        # Drawn from the rows the run scores (and the reference models were scored on: under
        # --eval-limit, a sample of them), so that every sampled item has their records.
        scored = select_rows(text_only(session.benchmark.eval), self.tasks, session.settings)
        chosen = select_rows(_unique(scored), self.tasks, self.settings)
        wanted = {(name, row["item_id"]) for name, rows in chosen.items() for row in rows}
        # Drawn once, and only the sample's images decoded: each point would otherwise read the
        # whole benchmark again.
        self.dataset = with_images(session.benchmark.eval, _unique(chosen))
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
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
                self.clock.phase("trajectory") if self.clock is not None else contextlib.nullcontext():
            records = evaluate(model, processor, self.dataset, self.tasks, self.settings, self.accelerator,
                               self.encodings, self.needs)
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
        return to_jsonl(self.lines)


def _unique(chosen: dict[str, list[dict]]) -> list[dict]:
    """The rows of every task, each once, in order."""
    return list({row["item_id"]: row for rows in chosen.values() for row in rows}.values())


