"""Meta-evaluation: which measure tells forgotten from not forgotten? (OpenUnlearning, Section 5;
ported to multimodal unlearning by Open-MMunlearning.)

Two pools of models per side, scored by every measure of that side's task:

- ``visual_forgetting`` (the forget people's images): models that know their faces (the vanilla
  recipe at other seeds and budgets) against models that never saw them (visual oracles and
  oracles at other seeds);
- ``textual_retention`` (text about the same people): models that learned that text (vanilla and
  visual-oracle recipes) against models that never did (oracles).

The pools are the provider's own reference recipes with other ``--model-arg`` values (``seed``,
and the budgets asked for), trained and evaluated once and cached like the references. The
run's references (seed 0) stay the comparisons of the measures that read one (forget quality
against the gold model, PrivLeak, ...), so the pools leave seed 0 out.

Robustness: every attack that gives a model (``Attack.attacked_model``: relearning,
quantisation) is applied to the never-knew models of the visual side and to models unlearned
by the given methods (seed 0, the benchmark's default hyperparameters); every measure is scored
again on the attacked models. ``mmu_bench.runs.meta`` turns the values into faithfulness and
robustness; this module only makes them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from tqdm.auto import tqdm

from mmu_bench.core import integrity
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.storage import home, json_digest
from mmu_bench.harness import attacks as attacking
from mmu_bench.harness.evaluate import evaluate
from mmu_bench.harness.provenance import git_state, package_versions
from mmu_bench.harness.references import model_identity, role_records, weights_digest
from mmu_bench.harness.run import unlearn
from mmu_bench.harness.score import score
from mmu_bench.harness.session import open_session, seed_everything
from mmu_bench.runs import meta
from mmu_bench.runs.meta import DEFAULT_ATTACKS, DEFAULT_METHODS
from mmu_bench.spec.config import RunConfig
from mmu_bench.spec.measures import needed
from mmu_bench.spec.plan import for_run, make_provider

# The measures OpenUnlearning meta-evaluates that no task reports by default.
EXTRA_MEASURES = ("exact_memorization", "extraction_strength")


@dataclass
class MetaConfig:
    """What ``mmu-bench meta-eval`` builds, beside the run options of the benchmark and model."""

    seeds: tuple[int, ...] = (1, 2)
    budgets: tuple[dict, ...] = ()  # extra --model-arg sets of the knowing pool (vanilla recipe), per seed
    pool_args: dict = field(default_factory=dict)  # --model-arg values of every pool model (not the references)
    methods: tuple[str, ...] = DEFAULT_METHODS
    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    resamples: int = 2000  # bootstrap resamples of the faithfulness AUC

    def validate(self) -> None:
        if not self.seeds:
            raise MMUBenchError("--seeds: at least one seed")
        if 0 in self.seeds:
            raise MMUBenchError("--seeds: 0 is the references' seed (the measures' comparisons); give other seeds")
        if len(set(self.seeds)) != len(self.seeds):
            raise MMUBenchError(f"--seeds: a seed is given twice ({', '.join(map(str, self.seeds))})")
        if self.resamples < 100:
            raise MMUBenchError(f"--resamples must be at least 100, got {self.resamples}")

    def to_dict(self) -> dict:
        return {"seeds": list(self.seeds), "budgets": [dict(b) for b in self.budgets], "pool_args": dict(self.pool_args),
                "methods": list(self.methods),
                "attacks": list(self.attacks), "resamples": self.resamples}


@dataclass(frozen=True)
class PoolModel:
    role: str
    overrides: dict = field(default_factory=dict)  # --model-arg values over the run's

    @property
    def id(self) -> str:
        return " ".join([self.role, *(f"{k}={v}" for k, v in sorted(self.overrides.items()))])


def pool_models(meta_config: MetaConfig, supports) -> dict[str, dict[str, list[PoolModel]]]:
    """Side -> {"knows": models, "never": models}, for the roles the benchmark supports."""
    common = meta_config.pool_args
    vanilla = [PoolModel("vanilla", {**common, "seed": s, **b}) for s in meta_config.seeds
               for b in ({}, *meta_config.budgets)]
    of = {role: [PoolModel(role, {**common, "seed": s}) for s in meta_config.seeds] for role in ("visual_oracle", "oracle")}
    sides = {
        meta.VISUAL: {"knows": vanilla, "never": of["visual_oracle"] + of["oracle"]},
        meta.TEXT: {"knows": vanilla + of["visual_oracle"], "never": of["oracle"]},
    }
    for side in sides.values():
        for group in side:
            side[group] = [m for m in side[group] if supports(m.role)]
    return sides


def side_tasks(tasks) -> dict:
    """Side (a dimension) -> its primary task, with every measure it reports."""
    found = {t.dimension: t for t in tasks if t.primary and t.dimension in meta.SIDES}
    missing = [d for d in meta.SIDES if d not in found]
    if missing:
        raise MMUBenchError(f"meta-eval needs the primary tasks of dimension(s) {', '.join(missing)}")
    return found


def meta_evaluate(config: RunConfig, meta_config: MetaConfig, progress: bool = True) -> dict:
    """The meta-evaluation's document (``mmu_bench.runs.meta``): every model's value of every
    measure of both sides' tasks, before and after each attack, with the pools."""
    meta_config.validate()
    started = time.time()
    seconds: dict[str, float] = {}
    config = replace(config, method=meta_config.methods[0] if meta_config.methods else config.method, seed=0,
                     trajectory=0, attacks=list(meta_config.attacks),
                     measures=[*config.measures, *(m for m in EXTRA_MEASURES if m not in config.measures)])
    plan = for_run(config, progress)
    sides = side_tasks(plan.all_tasks)
    wanted = needed(list(sides.values()), plan.measures, plan.all_tasks)
    plan = for_run(replace(config, tasks=[t.name for t in wanted]), progress)
    attacks = [p for p in plan.attacks if _makes_model(p)]
    unusable = [p.resolved.name for p in plan.attacks if not _makes_model(p)]
    if unusable:
        raise MMUBenchError(f"--attack {', '.join(unusable)}: makes no model of its own (Attack.attacked_model), "
                            "so meta-eval cannot score measures on it")
    clock = time.time()
    session = open_session(plan, progress)
    seconds["session"] = time.time() - clock
    sides = side_tasks(session.tasks)
    refs = {role: ref.records for role, ref in session.refs.items()}
    measure_of = {(task.name, name): session.measures.of(task, name) for task in sides.values() for name in task.measures}

    def values(records: list[dict]) -> dict:
        scored = score({"model": [dict(r) for r in records], **refs}, session.tasks, session.measures,
                       models=["model"])["model"]
        out = {}
        for task in sides.values():
            got = scored.get(task.name, {})
            out[task.name] = {name: None if got.get(name) is None else got[name].mean for name in task.measures}
        return out

    models: dict[str, dict] = {}
    pools = pool_models(meta_config, session.benchmark.supports)
    attacked_pool = {m.id: m for m in pools[meta.VISUAL]["never"]}
    everyone = {m.id: m for side in pools.values() for group in side.values() for m in group}
    clock = time.time()
    bar = tqdm(everyone.values(), desc="meta-eval pools", unit="model", disable=None if progress else True)
    for m in bar:
        bar.set_postfix_str(m.id)
        provider, _, _ = make_provider(replace(config, model_args={**config.model_args, **m.overrides}), progress)
        records = role_records(provider, m.role, session.benchmark, session.tasks, session.settings,
                               session.device).records
        entry = {"kind": "pool", "role": m.role, "overrides": m.overrides,
                 "model_path": model_identity(provider, m.role, session.benchmark), "values": values(records),
                 "attacked": {}}
        if m.id in attacked_pool:
            for p in attacks:
                after = _attacked_pool_records(session, provider, m.role, p, records)
                entry["attacked"][p.resolved.name] = values(after)
        models[m.id] = entry
    seconds["pools"] = time.time() - clock
    clock = time.time()
    for method in tqdm(meta_config.methods, desc="meta-eval unlearned", unit="method",
                       disable=None if progress else True):
        plan_m, before, attacked = _unlearned_records(session, config, method, attacks, progress)
        models[f"unlearned {method}"] = {"kind": "unlearned", "method": method, "run_key": plan_m.key,
                                         "method_source_sha256": plan_m.method["source_sha256"],
                                         "method_config": plan_m.method["config"], "values": values(before),
                                         "attacked": {name: values(r) for name, r in attacked.items()}}
    seconds["unlearned"] = time.time() - clock
    measures = {task.name: {name: meta.orientation(task, measure_of[task.name, name]) for name in task.measures}
                for task in sides.values()}
    return meta.document(
        benchmark=plan.config.benchmark, model=plan.model_name, config=plan.config.__dict__,
        meta_config=meta_config.to_dict(), sides={dim: task.name for dim, task in sides.items()},
        pools={sides[dim].name: {group: [m.id for m in ms] for group, ms in side.items()} for dim, side in pools.items()},
        measures=measures, models=models, attacks={p.resolved.name: p.config for p in attacks},
        provenance={"packages": package_versions(), "git": git_state(),
                    "seconds": {k: round(v, 1) for k, v in {**seconds, "total": time.time() - started}.items()}},
    )


def _makes_model(p) -> bool:
    from mmu_bench.api.attack import Attack

    return type(p.attack).attacked_model is not Attack.attacked_model


def _cache(kind: str, key: dict, provider_name: str):
    return home() / "meta-eval" / provider_name / f"{kind}-{json_digest(key)}.json"


def _attack_key(session, p) -> dict:
    return {"meta_eval_version": meta.VERSION, "attack": p.resolved.name, "version": p.resolved.cls.version,
            "source_sha256": p.resolved.source_sha256, "config": p.config, "seed": session.config.seed,
            "tasks": {t.name: t.version for t in session.tasks}, "limit": session.settings.limit,
            "benchmark": session.benchmark.key()}


def _records_after(session, model, processor, records: list[dict], p) -> list[dict]:
    """The records of ``p``'s attacked copy of ``model``, on the session's tasks."""
    target, _ = attacking.targets(session, model, processor, records, session.config.seed, progress=False)
    seed_everything(session.config.seed)
    attacked = p.attack.attacked_model(target)
    try:
        return evaluate(attacked, processor, session.benchmark.eval, session.tasks, session.settings)
    finally:
        del attacked


def _attacked_pool_records(session, provider, role: str, p, records: list[dict]) -> list[dict]:
    key = {**_attack_key(session, p), "model": model_identity(provider, role, session.benchmark),
           "weights": weights_digest(provider, role, session.benchmark)}
    path = _cache(f"{role}-{p.resolved.name}", key, provider.name)
    cached = integrity.read_sealed(path, f"cached {p.resolved.name} records of a meta-eval {role} model")
    if cached is not None:
        return cached["records"]
    loaded = provider.load(role, session.benchmark)
    after = _records_after(session, loaded.model.to(session.device), loaded.processor, records, p)
    integrity.sealed_json(path, {"role": role, "attack": p.resolved.name, "records": after})
    return after


def _unlearned_records(session, config: RunConfig, method: str, attacks, progress: bool) -> tuple:
    """A method's unlearned model (seed 0): its plan, its records, and its attacked copies'
    records (cached by the run key, the run's identity)."""
    plan = for_run(replace(config, method=method), progress=False)
    key = {"meta_eval_version": meta.VERSION, "run_key": plan.key, "tasks": {t.name: t.version for t in session.tasks},
           "limit": session.settings.limit}
    path = _cache(f"unlearned-{plan.method['name']}", key, session.provider.name)
    cached = integrity.read_sealed(path, f"cached meta-eval records of the {method} model")
    entry = cached or {"records": None, "attacked": {}}
    todo = [p for p in attacks if json_digest(_attack_key(session, p)) not in entry["attacked"]]
    if entry["records"] is None or todo:
        unlearned = unlearn(replace(session, plan=plan), progress)
        model, processor = unlearned.model, unlearned.processor
        if entry["records"] is None:
            entry["records"] = evaluate(model, processor, session.benchmark.eval, session.tasks, session.settings,
                                        encodings=unlearned.encodings)
        for p in todo:
            entry["attacked"][json_digest(_attack_key(session, p))] = {
                "attack": p.resolved.name, "records": _records_after(session, model, processor, entry["records"], p)}
        integrity.sealed_json(path, entry)
    by_digest = {json_digest(_attack_key(session, p)): p.resolved.name for p in attacks}
    return plan, entry["records"], {by_digest[d]: a["records"] for d, a in entry["attacked"].items() if d in by_digest}
