"""The harness side of attacks (``mmu_bench.attack``): resolve them, run them on the unlearned
model and (cached) on the gold reference, and keep what they find in ``attacks.json``.

Attacks run after evaluation (``run --attacks``, ``eval --checkpoint ... --attacks``) or later
on a finished run folder (``mmu-bench attack --run DIR``). Either way their numbers go into
``attacks.json`` beside ``results.json``, which attacks never change: a later attack only adds
to ``attacks.json`` (replaced atomically) and rebuilds ``table.md`` from both files.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from mmu_bench.api.attack import Attack, Target
from mmu_bench.api.measure import GOLD_ROLES
from mmu_bench.core import integrity
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.storage import home, json_digest
from mmu_bench.harness import score as scoring
from mmu_bench.harness.evaluate import EvalSettings, evaluate, select_rows
from mmu_bench.runs import results
from mmu_bench.spec import hparams, registry
from mmu_bench.spec.config import typed_dataclass

ATTACKS_FILE = "attacks.json"
ATTACKS_VERSION = 1
ATTACKED_DIMENSION = "visual_forgetting"  # attacks try to bring back what this dimension says is gone
EVERY = "all"  # ``attacks: [all]`` / ``--attacks``: every registered attack


@dataclass
class Planned:
    resolved: registry.Resolved
    attack: Attack
    config: dict


def names(specs: list[str]) -> list[str]:
    """``specs`` with ``all`` replaced by every registered attack, in name order, each once."""
    out: list[str] = []
    for spec in specs:
        for name in sorted(registry.entry_points_of(registry.ATTACKS)) if spec == EVERY else [spec]:
            if name not in out:
                out.append(name)
    return out


def plan(specs: list[str], benchmark: str, attack_args: dict) -> list[Planned]:
    """The attacks of ``specs`` with their options (Config defaults <- ``attack:<name>`` in
    ``hparams/<benchmark>.yaml`` <- ``attack_args``): every name and option is checked here,
    before any work."""
    planned = []
    wanted = names(specs)
    for spec in wanted:
        resolved = registry.resolve_attack(spec)
        cls = resolved.cls
        fields = {f.name for f in cls.Config.__dataclass_fields__.values()}
        defaults, _ = hparams.attack_defaults(benchmark, cls.name, fields)
        given = {key.split(".", 1)[1]: value for key, value in attack_args.items()
                 if key.split(".", 1)[0] in (spec, cls.name)}
        config = typed_dataclass(cls.Config, {**defaults, **given}, f"attack {cls.name!r}", "option")
        planned.append(Planned(resolved, cls(config), dict(config.__dict__)))
    known = {p.resolved.name for p in planned} | set(wanted)
    stray = sorted({key.split(".", 1)[0] for key in attack_args} - known)
    if stray:
        raise MMUBenchError(f"--attack-arg names attack(s) {', '.join(stray)}, which this run does not run "
                            f"(it runs: {', '.join(sorted(known)) or 'none'})")
    return planned


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


def targets(session, model, processor, records: list[dict], seed: int, progress: bool = True):
    """(the model's Target, the gold reference's GoldTarget) for attacks on ``session``'s
    benchmark; ``records``: the model's records on the run's tasks (evaluated here when they
    lack the attacked task). No model: no Target (None), the gold reference's only."""
    task = attacked_task(session.all_tasks)
    settings = EvalSettings(batch_size=session.settings.batch_size, limit=session.settings.limit, seed=0, progress=False)
    rows = select_rows(session.benchmark.eval, [task], settings)[task.name]

    def run_eval(m, proc, rows_, task_):
        return evaluate(m, proc, rows_, [task_], settings)

    of_task = {role: [r for r in ref.records if r["task"] == task.name] for role, ref in session.refs.items()}
    common = dict(benchmark=session.benchmark, task=task, rows=rows, vanilla_records=of_task["vanilla"], seed=seed,
                  device=session.device, progress=progress, _evaluate=run_eval, _score=scorer(task, session.measures))
    target = None
    if model is not None:
        own = [r for r in records if r["task"] == task.name] or run_eval(model, processor, rows, task)
        target = Target(model=model, processor=processor, who=results.UNLEARNED, records=own, **common)
    role = gold_role(session.refs)
    return target, GoldTarget(session, role, common, of_task.get(role, []))


def run_suite(session, model, processor, records: list[dict], seed: int, planned: list[Planned],
              progress: bool = True) -> dict:
    """Every planned attack on ``model`` (whose records on the run's tasks are ``records``) and
    on the gold reference; the contents of attacks.json. An attack that fails is recorded under
    ``failed`` with its error; the others still run."""
    started = time.time()
    target, gold = targets(session, model, processor, records, seed, progress)
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


def run_one(p: Planned, target: Target, gold: GoldTarget) -> dict:
    started = time.time()
    unlearned = p.attack.run(target)
    own_seconds = round(time.time() - started, 2)
    theirs, gold_seconds = gold.run(p)
    compared = p.attack.compare(unlearned, theirs)
    return {"version": p.resolved.cls.version, "origin": p.resolved.origin, "source_sha256": p.resolved.source_sha256,
            "description": p.resolved.cls.description, "config": p.config, "columns": list(p.resolved.cls.columns),
            "unlearned": unlearned, "gold": theirs, "compared": compared,
            "seconds": {"unlearned": own_seconds, "gold": gold_seconds}}


class GoldTarget:
    """The gold reference under attack: its numbers are cached per attack, options, seed and
    model (they do not depend on the method), and the model is loaded only on a cache miss."""

    def __init__(self, session, role: str | None, common: dict, records: list[dict]):
        self.session, self.role, self.common, self.records = session, role, common, records
        self._target: Target | None = None

    def cache_path(self, p: Planned) -> Path:
        s = self.session
        key = {"attacks_version": ATTACKS_VERSION, "attack": p.resolved.name, "version": p.resolved.cls.version,
               "source_sha256": p.resolved.source_sha256, "config": p.config, "seed": self.common["seed"],
               "model": str(s.provider.path(self.role, s.benchmark)), "benchmark": s.benchmark.key(),
               "task": self.common["task"].version, "limit": s.settings.limit}
        return home() / "attacks" / s.provider.name / f"{self.role}-{json_digest(key)}.json"

    def run(self, p: Planned) -> tuple[dict | None, float | str | None]:
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


# -- attacks.json ----------------------------------------------------------------------------------
def read(run_dir: Path) -> dict | None:
    """A run folder's attacks.json, or None when it has none."""
    path = Path(run_dir) / ATTACKS_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MMUBenchError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or "attacks" not in data:
        raise MMUBenchError(f"{path}: not an attacks file (no 'attacks' key)")
    return data


def merge(old: dict | None, new: dict) -> dict:
    """``new`` over ``old``: attacks run again replace their entries; the others are kept."""
    if not old:
        return new
    merged = dict(new)
    merged["attacks"] = {**old.get("attacks", {}), **new["attacks"]}
    failed = {k: v for k, v in old.get("failed", {}).items() if k not in new["attacks"]}
    merged["failed"] = {**failed, **new["failed"]}
    merged["seconds"] = round(old.get("seconds", 0) + new.get("seconds", 0), 2)
    return merged


def headline(report: dict | None, who: str = "unlearned") -> dict[str, float]:
    """The attacks' columns for ``who`` ("unlearned" or "gold"): flat name -> value."""
    out: dict[str, float] = {}
    for entry in (report or {}).get("attacks", {}).values():
        numbers = {**(entry.get(who) or {}), **(entry.get("compared", {}) if who == "unlearned" else {})}
        for column in entry.get("columns", []):
            value = numbers.get(column)
            if isinstance(value, (int, float)):
                out[column] = float(value)
    return out


def rows(report: dict) -> list[dict]:
    """table.md's attack table: per attack and column, the unlearned model's value and the gold
    reference's."""
    out = []
    for name, entry in report.get("attacks", {}).items():
        gold = entry.get("gold") or {}
        numbers = {**entry.get("unlearned", {}), **entry.get("compared", {})}
        for column in entry.get("columns", []):
            out.append({"attack": name, "measure": column, "unlearned": _num(numbers.get(column)),
                        report.get("gold") or "gold": _num(gold.get(column))})
    return out


def _num(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def failures(report: dict | None) -> list[str]:
    return [f"{name}: {error}" for name, error in (report or {}).get("failed", {}).items()]
