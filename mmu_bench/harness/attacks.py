"""Running attacks (the contract: ``mmu_bench.api.attack``) on the unlearned model and (cached)
on the gold reference; what they find goes to ``attacks.json`` (``mmu_bench.runs.attacks``).

Attacks run after evaluation (``run --attacks``, ``eval --checkpoint ... --attacks``) or later
on a finished run folder (``mmu-bench attack --run DIR``). Either way their numbers go into
``attacks.json`` beside ``results.json``, which attacks never change: a later attack only adds
to ``attacks.json`` (replaced atomically) and rebuilds ``table.md`` from both files.
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm.auto import tqdm

from mmu_bench.api.attack import Target
from mmu_bench.api.measure import GOLD_ROLES
from mmu_bench.core import integrity
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.storage import home, json_digest
from mmu_bench.harness import score as scoring
from mmu_bench.harness.evaluate import EvalSettings, evaluate, select_rows
from mmu_bench.runs import results
from mmu_bench.runs.attacks import ATTACKS_VERSION
from mmu_bench.spec.plan import PlannedAttack

ATTACKED_DIMENSION = "visual_forgetting"  # attacks try to bring back what this dimension says is gone


def attacked_task(tasks):
    """The primary task of the visual forgetting dimension, scoring its score measures only."""
    for task in scoring.primary_tasks(tasks):
        if task.dimension == ATTACKED_DIMENSION:
            return task
    raise MMUBenchError(f"attacks need the primary task of dimension {ATTACKED_DIMENSION!r}, which the tasks lack")


def scorer(task, measures):
    """records -> the task score, as results.json computes it."""
    def score(records: list[dict]) -> float:
        if not records:
            return float("nan")
        scored = scoring.score({"model": [dict(r) for r in records]}, [task], measures)
        return results.task_score(scored["model"].get(task.name, {}), list(task.score))
    return score


def gold_role(refs: dict) -> str | None:
    return next((role for role in GOLD_ROLES if role in refs), None)


def targets(session, model, processor, records: list[dict], seed: int, progress: bool = True,
            requests: list[list[str]] | None = None):
    """(the model's Target, the gold reference's GoldTarget) for attacks on ``session``'s
    benchmark; ``records``: the model's records on the run's tasks (evaluated here when they
    lack the attacked task; ``requests``: a continual run's, oldest first). No model: no Target
    (None), the gold reference's only."""
    task = attacked_task(session.all_tasks)
    settings = EvalSettings(batch_size=session.settings.batch_size, limit=session.settings.limit, seed=0, progress=False)
    rows = select_rows(session.benchmark.eval, [task], settings)[task.name]

    def run_eval(m, proc, rows_, task_):
        return evaluate(m, proc, rows_, [task_], settings)

    of_task = {role: [r for r in ref.records if r["task"] == task.name] for role, ref in session.refs.items()}
    common = dict(benchmark=session.benchmark, task=task, rows=rows, vanilla_records=of_task["vanilla"], seed=seed,
                  device=session.device, progress=progress, requests=requests, _evaluate=run_eval,
                  _score=scorer(task, session.measures))
    target = None
    if model is not None:
        own = [r for r in records if r["task"] == task.name] or run_eval(model, processor, rows, task)
        target = Target(model=model, processor=processor, who=results.UNLEARNED, records=own, **common)
    role = gold_role(session.refs)
    return target, GoldTarget(session, role, common, of_task.get(role, []))


def run_suite(session, model, processor, records: list[dict], seed: int, planned: list[PlannedAttack],
              progress: bool = True, requests: list[list[str]] | None = None) -> dict:
    """Every planned attack on ``model`` (whose records on the run's tasks are ``records``) and
    on the gold reference; the contents of attacks.json. An attack that fails is recorded under
    ``failed`` with its error; the others still run."""
    started = time.time()
    target, gold = targets(session, model, processor, records, seed, progress, requests)
    task = target.task
    report = {"attacks_version": ATTACKS_VERSION, "task": task.name, "task_version": task.version, "seed": seed,
              "gold": gold.role, "score_before": target.score(target.records), "attacks": {}, "failed": {}}
    with tqdm(planned, desc="attacks", unit="attack", disable=None if progress else True, leave=False) as bar:
        for p in bar:
            bar.set_postfix_str(p.resolved.name)
            try:
                report["attacks"][p.resolved.name] = run_one(p, target, gold)
            except Exception as exc:  # an attack plugin's failure must not lose the run or the other attacks
                report["failed"][p.resolved.name] = f"{type(exc).__name__}: {exc}"
    gold.release()
    report["seconds"] = round(time.time() - started, 2)
    return results.json_safe(report)


def run_one(p: PlannedAttack, target: Target, gold: GoldTarget) -> dict:
    started = time.time()
    unlearned = p.attack.run(target)
    own_seconds = round(time.time() - started, 2)
    theirs, gold_seconds = gold.run(p)
    compared = p.attack.compare(unlearned, theirs)
    return {"version": p.resolved.cls.version, "origin": p.resolved.origin, "source_sha256": p.resolved.source_sha256,
            "description": p.resolved.cls.description, "config": p.config, "columns": list(p.resolved.cls.columns),
            "labels": dict(p.resolved.cls.labels), "explain": p.resolved.cls.explain, "order": p.resolved.cls.order,
            "unlearned": unlearned, "gold": theirs, "compared": compared,
            "seconds": {"unlearned": own_seconds, "gold": gold_seconds}}


class GoldTarget:
    """The gold reference under attack: its numbers are cached per attack, options, seed and
    model (they do not depend on the method), and the model is loaded only on a cache miss."""

    def __init__(self, session, role: str | None, common: dict, records: list[dict]):
        self.session, self.role, self.common, self.records = session, role, common, records
        self._target: Target | None = None

    def cache_path(self, p: PlannedAttack) -> Path:
        s = self.session
        key = {"attacks_version": ATTACKS_VERSION, "attack": p.resolved.name, "version": p.resolved.cls.version,
               "source_sha256": p.resolved.source_sha256, "config": p.config, "seed": self.common["seed"],
               "model": str(s.provider.path(self.role, s.benchmark)), "benchmark": s.benchmark.key(),
               "task": self.common["task"].version, "limit": s.settings.limit}
        return home() / "attacks" / s.provider.name / f"{self.role}-{json_digest(key)}.json"

    def run(self, p: PlannedAttack) -> tuple[dict | None, float | str | None]:
        if self.role is None:
            return None, None
        path = self.cache_path(p)
        cached = integrity.read_sealed(path, f"cached {p.resolved.name} numbers of the {self.role} model")
        if cached is not None:
            return cached["numbers"], "cached"
        started = time.time()
        numbers = results.json_safe(p.attack.run(self.target()))
        integrity.sealed_json(path, {"role": self.role, "attack": p.resolved.name, "numbers": numbers})
        return numbers, round(time.time() - started, 2)

    def target(self) -> Target:
        if self._target is None:
            s = self.session
            loaded = s.provider.load(self.role, s.benchmark)
            self._target = Target(model=loaded.model.to(s.device), processor=loaded.processor, who=self.role,
                                  records=self.records, **self.common)
        return self._target

    def release(self) -> None:
        self._target = None


