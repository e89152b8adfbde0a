"""One plan per run: the configuration validated once, every plugin resolved and checked, the
protocol loaded once, the tasks and measures resolved, the attacks planned and the run key
computed, before any data is read or any model loaded.

Every command that runs models starts from a plan (``for_run``, ``for_checkpoint``,
``for_references``); the harness (``mmu_bench.harness``) carries it out and composes the result
from it and from what each step returns.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.options import typed_dataclass
from mmu_bench.core.processes import launched
from mmu_bench.core.storage import json_digest
from mmu_bench.spec import hparams, registry, trackers, utility
from mmu_bench.spec import protocol as protocols
from mmu_bench.spec.config import RunConfig, method_config
from mmu_bench.spec.measures import Measures, check_needs, needed
from mmu_bench.spec.measures import resolve as resolve_measures
from mmu_bench.spec.protocol import Protocol
from mmu_bench.spec.tasks import Task, load_tasks

EVERY_ATTACK = "all"  # ``attacks: [all]`` / ``--attacks``: every registered attack
CHECKPOINT = "checkpoint:"  # the method spec of a run scored with `eval --checkpoint`


@dataclass
class PlannedAttack:
    resolved: registry.Resolved
    attack: object  # the Attack instance, with its options
    config: dict


@dataclass
class Plan:
    """What a run is, checked. ``method`` is the method's record in results.json (None when no
    method runs: ``prepare``, ``attack --run``); ``method_class`` and ``method_config`` the
    method itself (None for a checkpoint scored with ``eval``)."""

    config: RunConfig
    benchmark: object  # the BenchmarkAdapter instance
    provider: object  # the ModelProvider instance, with its options
    model_name: str  # the model as run folders and results name it
    protocol: Protocol
    tasks: list[Task]  # what the run scores (with the tasks their measures read)
    all_tasks: list[Task]  # what the reference models are scored on
    measures: Measures
    hparams: Path | None  # the benchmark's hyperparameter file
    plugins: dict = field(default_factory=dict)  # "benchmark", "model" -> where each came from (results record it)
    attacks: list[PlannedAttack] = field(default_factory=list)
    method: dict | None = None
    method_class: type | None = None
    method_config: object = None
    key: str = ""  # the run key (empty when no method runs)

    def folder_names(self) -> tuple[str, str, str]:
        """(benchmark, model, method): the run folder's path under the output folder."""
        return self.benchmark.name, self.model_name, self.method["name"]


def for_run(config: RunConfig, progress: bool = True) -> Plan:
    """The plan of ``mmu-bench run``: ``config.method`` unlearns."""
    plan = _base(config, progress, result=True)
    resolved = registry.resolve_method(config.method)
    plan.method_class = resolved.cls
    plan.method_config = method_config(resolved.cls, plan.hparams, config.method_args)
    plan.method = {"name": resolved.name, "spec": config.method, "version": resolved.cls.version,
                   "origin": resolved.origin, "source_file": resolved.source_file,
                   "source_sha256": resolved.source_sha256, "config": asdict(plan.method_config)}
    return _ready(plan)


def for_checkpoint(config: RunConfig, checkpoint: str, name: str, progress: bool = True) -> Plan:
    """The plan of ``mmu-bench eval``: a model unlearned elsewhere, scored exactly like a run
    and named ``name`` on leaderboards."""
    plan = _base(config, progress, result=True)
    if config.stream.active:
        raise MMUBenchError("eval scores one checkpoint: --requests and a continual block are for mmu-bench run")
    path = Path(checkpoint)
    if not path.is_dir():
        raise MMUBenchError(f"--checkpoint {checkpoint}: no such folder")
    plan.method = {"name": name, "spec": f"{CHECKPOINT}{path.resolve()}", "version": "",
                   "origin": f"checkpoint {path.resolve()}", "source_file": str(path.resolve()),
                   "source_sha256": folder_sha256(path), "config": {}}
    return _ready(plan)


def for_references(config: RunConfig, progress: bool = True) -> Plan:
    """The plan of ``mmu-bench prepare`` and ``attack --run``: the benchmark and the reference
    models, no method."""
    plan = _base(config, progress)
    plan.attacks = plan_attacks(config, plan.hparams)
    return plan


def _ready(plan: Plan) -> Plan:
    plan.attacks = plan_attacks(plan.config, plan.hparams)
    plan.key = run_key(plan.config, plan.method, plan.protocol)
    return plan


def _base(config: RunConfig, progress: bool, result: bool = False) -> Plan:
    """What every plan holds; ``result``: the plan writes a run folder (its trackers and utility
    suites are checked too)."""
    config.validate()
    if result:
        trackers.require(config.log_with)  # a tracker's package missing: fail before any work
        if config.utility_suite:
            if launched():
                raise MMUBenchError("--utility-suite does not run under `accelerate launch`: run in a single process")
            utility.require(config.utility_suite)
    adapter = registry.resolve_benchmark(config.benchmark)
    benchmark = adapter.cls()
    try:
        benchmark.check(config.forget_ratio, **config.benchmark_args)
    except (TypeError, ValueError) as exc:
        raise MMUBenchError(f"benchmark {config.benchmark!r}: {exc}") from exc
    provider, model_name, model_plugin = make_provider(config, progress)
    protocol = protocol_of(config, adapter)
    all_tasks, measures = resolve_measures(protocol.apply(load_tasks()), config.measures)
    tasks = all_tasks
    if config.tasks:  # in the order given; unknown names fail with "did you mean"
        by_name = {t.name: t for t in all_tasks}
        tasks = [by_name[t.name] for t in load_tasks(config.tasks)]
    tasks = needed(tasks, measures, all_tasks)  # with the tasks their measures read
    check_needs(tasks, measures, provider.roles)
    hparams_file = hparams.hparams_file(declared(benchmark.hparams, adapter))
    return Plan(config, benchmark, provider, model_name, protocol, tasks, all_tasks, measures, hparams_file,
                plugins={"benchmark": origin(adapter), "model": origin(model_plugin)})


def origin(plugin: registry.Resolved) -> dict:
    """Where a plugin came from, as results record it."""
    return {"origin": plugin.origin, "version": plugin.cls.version, "source_sha256": plugin.source_sha256}


def protocol_of(config: RunConfig, adapter: registry.Resolved | None = None) -> Protocol:
    """The evaluation protocol of a run: ``auto`` is the one its benchmark declares."""
    adapter = adapter or registry.resolve_benchmark(config.benchmark)
    return protocols.resolve(config.protocol, declared(adapter.cls.protocol, adapter), config.protocol_args)


def declared(value: str | None, plugin: registry.Resolved) -> str | None:
    """A file a plugin declares (a protocol, hyperparameters): a shipped one's name as it is, a
    relative path relative to the plugin's own file."""
    if value is None or not (value.endswith((".yaml", ".yml")) or "/" in value):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else Path(plugin.source_file).parent / path)


def make_provider(config: RunConfig, progress: bool) -> tuple[object, str, registry.Resolved]:
    """The model provider with its options (checked now), the model's name and the plugin."""
    resolved, implied = registry.resolve_model(config.model)
    try:
        provider = registry.make_model(config.model, progress, **config.model_args)
    except (TypeError, ValueError) as exc:
        raise MMUBenchError(f"model {config.model!r}: bad --model-arg: {exc}") from exc
    provider.check_sources()  # the local folders it was given exist
    return provider, config.model if implied else resolved.name, resolved


def plan_attacks(config: RunConfig, hparams_file: Path | None) -> list[PlannedAttack]:
    """The run's attacks with their options (Config defaults <- ``attack:<name>`` in the
    benchmark's hyperparameter file <- ``--attack-arg``), every name and option checked; they
    run in a single process only."""
    if not config.attacks:
        if config.attack_args:
            raise MMUBenchError("--attack-arg given, but no attack runs: add --attacks or --attack NAME")
        return []
    if launched():
        raise MMUBenchError("attacks do not run under `accelerate launch`: run without --attacks, then "
                            "`mmu-bench attack --run DIR` in a single process")
    planned = []
    wanted = attack_names(config.attacks)
    for spec in wanted:
        resolved = registry.resolve_attack(spec)
        cls = resolved.cls
        fields = {f.name for f in cls.Config.__dataclass_fields__.values()}
        defaults, _ = hparams.attack_defaults(hparams_file, cls.name, fields)
        given = {key.split(".", 1)[1]: value for key, value in config.attack_args.items()
                 if key.split(".", 1)[0] in (spec, cls.name)}
        options = typed_dataclass(cls.Config, {**defaults, **given}, f"attack {cls.name!r}", "option")
        planned.append(PlannedAttack(resolved, cls(options), dict(options.__dict__)))
    known = {p.resolved.name for p in planned} | set(wanted)
    stray = sorted({key.split(".", 1)[0] for key in config.attack_args} - known)
    if stray:
        raise MMUBenchError(f"--attack-arg names attack(s) {', '.join(stray)}, which this run does not run "
                            f"(it runs: {', '.join(sorted(known)) or 'none'})")
    return planned


def attack_names(specs: list[str]) -> list[str]:
    """``specs`` with ``all`` replaced by every registered attack, in name order, each once."""
    out: list[str] = []
    for spec in specs:
        for name in sorted(registry.entry_points_of(registry.ATTACKS)) if spec == EVERY_ATTACK else [spec]:
            if name not in out:
                out.append(name)
    return out


def run_key(config: RunConfig, method: dict, protocol: Protocol | None = None) -> str:
    """Identifies what a run computes (not when): a sweep skips a run whose key has results.
    ``method``: the method's record (name, source_sha256, config); ``protocol``: the run's (by
    default, the one ``config`` names)."""
    protocol = protocol or protocol_of(config)
    blob = {
        "method": {k: method[k] for k in ("name", "source_sha256", "config")},
        "seed": config.seed, "forget_ratio": config.forget_ratio, "benchmark": config.benchmark,
        "benchmark_args": config.benchmark_args, "model": config.model, "model_args": config.model_args,
        "tasks": config.tasks, "eval_limit": config.eval_limit,
    }
    if config.measures:  # only when given: the keys of earlier runs stay valid
        blob["measures"] = config.measures
    if config.attacks:  # a run with attacks computes more: a sweep must not take one without for it
        blob["attacks"] = {"names": config.attacks, "args": config.attack_args}
    if not protocol.changes_nothing:  # the harness's protocol keeps the keys of earlier runs
        blob["protocol"] = protocol.to_dict()
    if config.trajectory:
        blob["trajectory"] = [config.trajectory, config.trajectory_sample]
    if config.utility_suite:  # only when given: the keys of earlier runs stay valid
        blob["utility"] = {**utility.key(config), "in_overall": config.utility_in_overall}
    if config.stream.active:  # one request is an ordinary run, with an ordinary run's key
        blob["continual"] = config.stream.key()
    return json_digest(blob, 20)


def one_shot_key(config: RunConfig, method: dict, protocol: Protocol | None = None) -> str:
    """The key of the ordinary run on the same whole forget set: what a continual run is
    compared with."""
    return run_key(replace(config, continual={}), method, protocol)


def folder_sha256(path: Path) -> str:
    """Hash of a checkpoint's weight and config files, in name order."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin", ".json")):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()

