"""`mmu-bench run` and `prepare`: config -> benchmark -> model -> method -> evaluation -> run folder."""

from __future__ import annotations

import hashlib
import json
import random
import time
import traceback
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import yaml

from mmu_bench.api import saliency
from mmu_bench.api.context import EncodedSet, MethodData, UnlearningContext
from mmu_bench.api.measure import Value
from mmu_bench.api.provider import CachedProvider
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.storage import atomic_write_json, atomic_write_text, json_digest, staging_dir
from mmu_bench.harness import attacks as attacking
from mmu_bench.harness import distributed, suites, tracking, trajectory
from mmu_bench.harness import score as scoring
from mmu_bench.harness.evaluate import EvalSettings, evaluate, over_budget
from mmu_bench.harness.provenance import environment, git_state, package_versions
from mmu_bench.harness.references import Reference, cached_scores, reference_records
from mmu_bench.reporting import report, tables
from mmu_bench.runs import results
from mmu_bench.spec import protocol as protocols
from mmu_bench.spec import registry
from mmu_bench.spec.config import RunConfig, load_yaml, method_config
from mmu_bench.spec.protocol import Protocol
from mmu_bench.spec.tasks import Task, default_prompts, load_tasks


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise MMUBenchError(f"--device {name!r} is not a device name (auto, cpu, cuda, cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MMUBenchError(f"--device {name}: CUDA is not available on this machine")
    return device


def load_benchmark(config: RunConfig):
    loader = registry.benchmark_loader(config.benchmark)
    try:
        return loader(forget_ratio=config.forget_ratio, **config.benchmark_args)
    except (TypeError, ValueError) as exc:
        raise MMUBenchError(f"benchmark {config.benchmark!r}: {exc}") from exc


def make_provider(config: RunConfig, progress: bool):
    cls = registry.model_provider(config.model)
    try:
        provider = cls(progress=progress, **config.model_args)
    except (TypeError, ValueError) as exc:
        raise MMUBenchError(f"model {config.model!r}: bad --model-arg: {exc}") from exc
    if hasattr(provider, "check_sources"):  # local folders it was given exist
        provider.check_sources()
    return provider


def eval_settings(config: RunConfig, progress: bool) -> EvalSettings:
    return EvalSettings(batch_size=config.eval_batch_size, limit=config.eval_limit, seed=0, progress=progress)


def knowledge(vanilla_scores: dict[str, dict[str, Value]], tasks: list[Task]) -> dict[str, float]:
    """The vanilla model's knowledge measure on each task that checks it (the forget entities,
    image and text)."""
    found = {}
    for task in tasks:
        if not task.knowledge_check:
            continue
        per_measure = vanilla_scores.get(task.name, {})
        if task.knowledge_measure not in per_measure:
            raise MMUBenchError(f"cannot check the vanilla model's knowledge: no {task.knowledge_measure} score for "
                                f"{task.name!r}")
        found[task.name] = per_measure[task.knowledge_measure].mean
    return found


def require_knowledge(session: Session) -> None:
    """Raise when the vanilla model is under ``--min-vanilla-mc`` on a task that checks it:
    scores of a model that never knew the forget entities mean nothing."""
    threshold = session.config.min_vanilla_mc
    measure = {t.name: t.knowledge_measure for t in session.all_tasks}
    weak = {t: v for t, v in session.knowledge.items() if v < threshold}
    if weak:
        listed = ", ".join(f"{measure[t]} {v:.2f} on {t}" for t, v in weak.items())
        raise MMUBenchError(
            f"the vanilla model does not know the benchmark: {listed} is under "
            f"{threshold:.2f}. Results would be meaningless, so none are reported. Train the reference "
            "models longer (--model-arg) or lower --min-vanilla-mc if you know what you are doing."
        )


def new_run_dir(config: RunConfig, method_name: str) -> Path:
    from mmu_bench.core.names import safe_name

    root = Path(config.output_dir) / safe_name(config.benchmark) / safe_name(config.model) / safe_name(method_name)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-r{config.forget_ratio:g}-s{config.seed}"
    candidate, n = root / base, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{base}-{n}"
    return candidate


@dataclass
class Session:
    """What a run or an evaluation needs before any model is changed."""

    config: RunConfig
    tasks: list[Task]  # what the run scores
    all_tasks: list[Task]  # what the reference models are scored on
    measures: scoring.Measures
    benchmark: object
    provider: object
    settings: EvalSettings
    refs: dict[str, Reference]
    ref_scores: dict[str, dict[str, dict[str, Value]]]  # role -> task -> measure -> value
    knowledge: dict
    device: torch.device
    protocol: Protocol


def open_session(config: RunConfig, progress: bool, strict: bool = True, retrain: bool = False) -> Session:
    """Checks names and options (before any work), then loads the benchmark and the reference
    models' records and scores them; ``strict``: refuses when the vanilla model does not know
    the benchmark; ``retrain``: trains the harness-trained references anew (cached or shipped)."""
    check_names(config)
    protocol = run_protocol(config)
    all_tasks, measures = scoring.resolve(protocol.apply(load_tasks()), config.measures)
    tasks = all_tasks
    if config.tasks:  # in the order given; unknown names fail with "did you mean"
        by_name = {t.name: t for t in all_tasks}
        tasks = [by_name[t.name] for t in load_tasks(config.tasks)]
    tasks = scoring.needed(tasks, measures, all_tasks)  # with the tasks their measures read
    provider = make_provider(config, progress)
    if retrain:
        if not isinstance(provider, CachedProvider):
            raise MMUBenchError(f"--retrain: model {config.model!r} has no reference models the harness trains")
        provider.retrain = True
    scoring.check_needs(tasks, measures, provider.roles)
    benchmark, settings, refs, device, all_tasks = load_references(config, provider, all_tasks, progress)
    by_name = {t.name: t for t in all_tasks}
    tasks = [by_name[t.name] for t in tasks]  # with the protocol's demonstrations
    records = {role: ref.records for role, ref in refs.items()}
    ref_scores = scoring.score(records, all_tasks, measures)
    session = Session(config, tasks, all_tasks, measures, benchmark, provider, settings, refs, ref_scores,
                      knowledge(ref_scores["vanilla"], all_tasks), device, protocol)
    if strict:
        require_knowledge(session)
    return session


def check_names(config: RunConfig) -> None:
    """Options and the benchmark, model and protocol names: errors before any work."""
    config.validate()
    registry.benchmark_loader(config.benchmark)
    registry.model_provider(config.model)
    run_protocol(config)


def run_protocol(config: RunConfig) -> Protocol:
    """The evaluation protocol of a run: ``auto`` is the benchmark's own (a shipped protocol of
    its name), else the harness's."""
    return protocols.resolve(config.protocol, config.benchmark if config.benchmark in protocols.available()
                             else protocols.HARNESS, config.protocol_args)


def load_references(config: RunConfig, provider, tasks: list[Task], progress: bool):
    """The benchmark and the reference models' records on ``tasks`` (training and evaluating the
    models if missing): (benchmark, settings, refs, device, the tasks with their demonstrations)."""
    acc = distributed.accelerator()
    device = pick_device(config.device) if acc is None else process_device(config, acc)
    progress = progress and distributed.is_main()
    # Over several processes the main one generates the data and trains and scores the
    # reference models; the others wait, then read what it cached.
    with distributed.main_first(acc):
        benchmark = load_benchmark(config)
        settings = eval_settings(config, progress)
        tasks = protocols.with_demonstrations(tasks, benchmark.eval, settings.seed)
        refs = reference_records(provider, benchmark, tasks, settings, device)
    return benchmark, settings, refs, device, tasks


def process_device(config: RunConfig, acc) -> torch.device:
    """Under ``accelerate launch`` accelerate places each process: one GPU each, or the CPU."""
    wanted = pick_device(config.device) if config.device != "auto" else acc.device
    if wanted.type != acc.device.type:
        raise MMUBenchError(f"--device {config.device}: accelerate placed this process on {acc.device}; choose "
                            "devices through accelerate (--gpu_ids; ACCELERATE_USE_CPU=true for CPUs)")
    return acc.device


def run_key(config: RunConfig, method: dict) -> str:
    """Identifies what a run computes (not when): a sweep skips a run whose key has results."""
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
    protocol = run_protocol(config)
    if not protocol.changes_nothing:  # the harness's protocol keeps the keys of earlier runs
        blob["protocol"] = protocol.to_dict()
    if config.trajectory:
        blob["trajectory"] = [config.trajectory, config.trajectory_sample]
    if config.utility_suite:  # only when given: the keys of earlier runs stay valid
        blob["utility"] = {**utility_key(config), "in_overall": config.utility_in_overall}
    return json_digest(blob, 20)


def method_info(config: RunConfig) -> tuple[registry.Resolved, object, dict]:
    """Resolve ``config.method`` and its configuration; fails before any work."""
    resolved = registry.resolve_method(config.method)
    method_cfg = method_config(resolved.cls, config.benchmark, config.method_args)
    info = {"name": resolved.name, "spec": config.method, "version": resolved.cls.version,
            "origin": resolved.origin, "source_file": resolved.source_file,
            "source_sha256": resolved.source_sha256, "config": asdict(method_cfg)}
    return resolved, method_cfg, info


def run(config: RunConfig, progress: bool = True) -> Path | None:
    """Unlearn, evaluate, write the run folder; returns its path (None on the processes of a
    multi-process run other than the main one: they write nothing)."""
    started = time.time()
    config.validate()
    resolved, method_cfg, info = method_info(config)
    planned = plan_attacks(config)
    require_suites(config)
    trackers = tracking.start(config, info, run_key(config, info))  # --log-with; None when none
    try:
        return _unlearn(config, progress, started, resolved, method_cfg, info, planned, trackers)
    except BaseException:
        tracking.abort(trackers)
        raise


def _unlearn(config: RunConfig, progress: bool, started: float, resolved: registry.Resolved, method_cfg, info: dict,
             planned: list[attacking.Planned], trackers: tracking.Trackers | None) -> Path | None:
    session = open_session(config, progress)
    benchmark, provider, device = session.benchmark, session.provider, session.device
    acc = distributed.accelerator()
    method = resolved.cls(method_cfg)
    sides = tuple(method.trainable_sides())  # what the provider makes trainable (LoRA targets)
    vanilla = provider.load("vanilla", benchmark, sides=sides)
    trains = saliency.trainable_summary(vanilla.model, sides)
    model = vanilla.model.to(device)
    if acc is not None:
        # Wrapped before setup(): a method's masks and parameter names then come from the
        # same model object its training steps use.
        model = distributed.prepare_model(acc, model)
    part = (acc.process_index, acc.num_processes) if acc is not None else None
    prompts = default_prompts()
    data = MethodData(
        forget=EncodedSet(benchmark.forget_set(), vanilla.processor, prompts, part=part),
        retain=EncodedSet(benchmark.retain_set(), vanilla.processor, prompts, part=part),
        preserve_text=EncodedSet(benchmark.preserve_text(), vanilla.processor, prompts, part=part),
    )
    ctx = UnlearningContext(
        model=model, processor=vanilla.processor, config=method_cfg, data=data, seed=config.seed,
        benchmark=benchmark.name,
        reference_loader=lambda role: provider.load(role, benchmark).model.to(device),
        accelerator=acc, progress=progress and distributed.is_main(),
    )
    recorder = trajectory.Recorder(session, config.trajectory, config.trajectory_sample, acc) if config.trajectory else None
    if recorder is not None:
        ctx.on_step = lambda step, total: recorder.step_done(ctx.unwrapped_model, vanilla.processor, step, total)
    if trackers is not None:  # every entry of the history (training.log) also goes to the trackers
        ctx.log = trackers.watch(ctx.log)
    seed_everything(config.seed)
    train_started = time.time()
    method.setup(ctx)
    if recorder is not None:
        recorder.record(ctx.unwrapped_model, vanilla.processor, 0)
    method.unlearn(ctx)
    distributed.check_in_sync(acc, ctx.unwrapped_model)
    losses = [h["loss"] for h in ctx.history if "loss" in h]
    if recorder is not None:
        recorder.finish(ctx.unwrapped_model, vanilla.processor, len(losses))
    training = {"steps": len(losses), "first_loss": losses[0] if losses else None,
                "last_loss": losses[-1] if losses else None, "method_report": ctx.extras, "trainable": trains,
                "seconds": round(time.time() - train_started, 2),
                "log": [{k: h[k] for k in ("step", "loss", "lr") if k in h} for h in ctx.history if "loss" in h]}
    try:
        return finish(session, ctx.unwrapped_model, vanilla.processor, info, training, started, planned, recorder,
                      trackers)
    finally:
        distributed.release(acc)


def plan_attacks(config: RunConfig) -> list[attacking.Planned]:
    """The run's attacks, checked before any work (they run in a single process only)."""
    if not config.attacks:
        if config.attack_args:
            raise MMUBenchError("--attack-arg given, but no attack runs: add --attacks or --attack NAME")
        return []
    if distributed.accelerator() is not None:
        raise MMUBenchError("attacks do not run under `accelerate launch`: run without --attacks, then "
                            "`mmu-bench attack --run DIR` in a single process")
    return attacking.plan(config.attacks, config.benchmark, config.attack_args)


def require_suites(config: RunConfig) -> None:
    """--utility-suite: lmms-eval installed, one process; checked before any work."""
    if not config.utility_suite:
        return
    if distributed.accelerator() is not None:
        raise MMUBenchError("--utility-suite does not run under `accelerate launch`: run in a single process")
    suites.require(config.utility_suite)


def utility_key(config: RunConfig) -> dict:
    """What the utility suites' scores depend on besides the model."""
    return {"suite": list(config.utility_suite), "limit": config.utility_limit, "tasks": suites.folder_digest(
        config.utility_tasks), "lmms_eval": suites.version()}


def utility(session: Session, model, processor) -> dict[str, suites.SuiteScores] | None:
    """The unlearned model's and the reference models' (cached) scores on the utility suites;
    None without --utility-suite."""
    config = session.config
    if not config.utility_suite:
        return None

    def score(m, p) -> dict:
        return suites.evaluate(m, p, config.utility_suite, config.utility_limit, session.settings.seed,
                               config.utility_tasks, config.eval_batch_size).to_dict()

    key = {**utility_key(config), "sample_seed": session.settings.seed}
    refs = cached_scores(session.provider, session.benchmark, "utility", key, score, session.device,
                         roles=list(session.refs))
    found = {role: suites.SuiteScores.from_dict(v) for role, v in refs.items()}
    found[results.UNLEARNED] = suites.SuiteScores.from_dict(score(model, processor))
    return found


CHECKPOINT = "checkpoint:"  # the method spec of a run scored with `eval --checkpoint`


def evaluate_checkpoint(config: RunConfig, checkpoint: str, name: str, progress: bool = True) -> Path | None:
    """Score a model unlearned elsewhere (any method, any code) exactly like a run, so that it
    can join a leaderboard under ``name``."""
    started = time.time()
    config.validate()
    tracking.require(config.log_with)  # a tracker's package missing: fail before any work
    require_suites(config)
    path = Path(checkpoint)
    if not path.is_dir():
        raise MMUBenchError(f"--checkpoint {checkpoint}: no such folder")
    planned = plan_attacks(config)
    session = open_session(config, progress)
    loaded = session.provider.load_checkpoint(str(path), session.benchmark)
    info = {"name": name, "spec": f"{CHECKPOINT}{path.resolve()}", "version": "", "origin": f"checkpoint {path.resolve()}",
            "source_file": str(path.resolve()), "source_sha256": folder_sha256(path), "config": {}}
    training = {"steps": 0, "first_loss": None, "last_loss": None, "method_report": {}, "seconds": 0.0}
    trackers = tracking.start(config, info, run_key(config, info))  # --log-with: the configuration and scores
    try:
        return finish(session, loaded.model.to(session.device), loaded.processor, info, training, started, planned,
                      trackers=trackers)
    except BaseException:
        tracking.abort(trackers)
        raise


def folder_sha256(path: Path) -> str:
    """Hash of a checkpoint's weight and config files, in name order."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin", ".json")):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def finish(session: Session, model, processor, info: dict, training: dict, started: float,
           planned: list[attacking.Planned] = (), recorder: trajectory.Recorder | None = None,
           trackers: tracking.Trackers | None = None) -> Path | None:
    config = session.config
    acc = distributed.accelerator()
    records = evaluate(model, processor, session.benchmark.eval, session.tasks, session.settings, acc)
    if not distributed.is_main():
        return None  # every process holds all the records; the main one writes them
    everyone = {results.UNLEARNED: records, **{role: ref.records for role, ref in session.refs.items()}}
    scores = scoring.score(everyone, session.tasks, session.measures, models=[results.UNLEARNED])
    result = compose(session, info, scores[results.UNLEARNED], training, processor, utility(session, model, processor))
    result.run_key = run_key(config, info)
    primary = {t.name: list(t.score) for t in session.tasks if t.primary}
    result.clusters = trajectory.cluster_sums(records, primary)
    if recorder is not None:
        result.trade_off = recorder.summary()
    result.provenance["wall_seconds"] = round(time.time() - started, 2)
    if trackers is not None:
        result.provenance["trackers"] = trackers.where
    if acc is not None:
        result.provenance["processes"] = acc.num_processes
    attacks = None
    if planned:
        attacks = attacking.run_suite(session, model, processor, records, config.seed, planned,
                                      session.settings.progress)
    weights = (model, processor) if keep_weights(config.save_model, model, info) else None
    samples = report.with_vanilla(records, session.refs.get("vanilla"))
    thumbs = report.thumbnails(session.benchmark.eval, records)
    folder = write_run(config, result, samples, attacks, weights, recorder.to_jsonl() if recorder is not None else None,
                       thumbs)
    if trackers is not None:  # after the folder is written: a tracker failing here loses nothing
        trackers.end(result, training["steps"])
    return folder


SMALL_MODEL = 100_000_000  # parameters: ``save_model: auto`` keeps weights up to this size (400 MB in fp32)


def keep_weights(choice: str, model, info: dict) -> bool:
    """Whether the run folder keeps the unlearned weights (``model/``, what `mmu-bench attack
    --run` loads): ``auto`` keeps a LoRA adapter or a small model, never a copy of a checkpoint
    scored with ``eval`` (its folder is recorded instead)."""
    if choice != "auto":
        return choice == "yes"
    if info["spec"].startswith(CHECKPOINT):
        return False
    if hasattr(model, "peft_config"):
        return True
    return sum(p.numel() for p in model.parameters()) <= SMALL_MODEL


def compose(session: Session, info: dict, unlearned: dict[str, dict[str, Value]], training: dict,
            processor, suite: dict[str, suites.SuiteScores] | None = None) -> results.RunResult:
    config, benchmark, refs = session.config, session.benchmark, session.refs
    # A task with no items on this benchmark (MLLMU-Bench has no never-trained people, MMU-Synth
    # no held-out text set) is left out of the results: it has nothing to show.
    tasks = scoring.task_infos([t for t in session.tasks if t.name in unlearned], session.measures)
    scores = {results.UNLEARNED: unlearned, **session.ref_scores}
    protocol = {}
    if suite is not None:  # the utility suites' tasks join the results as general-utility tasks
        tasks.update(suites.task_infos(suite[results.UNLEARNED], config.utility_in_overall))
        scores = {who: {**per, **suite[who].scores} if who in suite else per for who, per in scores.items()}
        protocol["utility_suite"] = {**utility_key(config), "sample_seed": session.settings.seed,
                                     "joins_overall": config.utility_in_overall}
    dims = {who: results.dimension_scores(s, tasks, scores.get("vanilla")) for who, s in scores.items()}
    chance = scoring.chance(unlearned, session.tasks, session.measures)
    spec = results.normalisation(dims, tasks, chance)
    normalised = results.normalise(dims[results.UNLEARNED], spec)
    return results.RunResult(
        run_uid=uuid.uuid4().hex,
        benchmark={"name": benchmark.name, "fingerprint": benchmark.fingerprint,
                   "forget_ratio": benchmark.forget_ratio, "forget_entities": list(benchmark.forget_entities),
                   "info": benchmark.info},
        model={"name": config.model,
               "references": {role: {"path": refs[role].model_path, "recipe_hash": refs[role].recipe_hash}
                              for role in refs}},
        method=info,
        seed=config.seed,
        tasks=tasks,
        measures=session.measures.info,
        scores=scores,
        dimensions=dims,
        normalisation=spec,
        normalised=normalised,
        overall=results.overall(normalised, results.dimension_order(tasks)),
        vanilla_knowledge=session.knowledge,
        training=training,
        protocol={**session.protocol.to_dict(),
                  "demonstrations": {t.name: sorted(t.exclude) for t in session.tasks if t.exclude},
                  "over_budget": over_budget(benchmark.eval, session.tasks, processor.tokenizer), **protocol},
        provenance={"git": git_state(), "packages": package_versions(), **environment(),
                    "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    )


def write_run(config: RunConfig, result: results.RunResult, records: list[dict], attacks: dict | None = None,
              weights: tuple | None = None, points: str | None = None, thumbs: dict | None = None) -> Path:
    """Everything is written into a staging folder renamed into place at the end: a crash or
    Ctrl-C leaves no partial run, and an existing run folder is never touched. ``attacks``: the
    contents of attacks.json; ``weights``: (model, processor) saved under ``model/``;
    ``points``: the contents of trajectory.jsonl."""

    def fill(tmp: Path, run_id: str) -> None:
        result.run_id = run_id
        (tmp / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        with open(tmp / "samples.jsonl", "w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        (tmp / "table.csv").write_text(tables.to_csv(tables.table_rows(result)))
        (tmp / "table.md").write_text(tables.write_markdown(result, attacks))
        information = tables.information_rows(result)
        if information:
            (tmp / "information.csv").write_text(tables.to_csv(information))
        if points is not None:
            (tmp / trajectory.TRAJECTORY_FILE).write_text(points)
        if attacks is not None:
            atomic_write_json(tmp / attacking.ATTACKS_FILE, attacks)  # the form `attack --run` rewrites it in
        if weights is not None:
            model, processor = weights
            model.save_pretrained(str(tmp / MODEL_DIR))
            processor.save_pretrained(str(tmp / MODEL_DIR))
        (tmp / "results.json").write_text(result.to_json())
        if thumbs is not None:
            (tmp / report.THUMBNAILS_FILE).write_text(json.dumps(thumbs, sort_keys=True))
        report.write(tmp)  # from the files above, as `mmu-bench report` rebuilds it

    return _write_new_folder(config, result.method["name"], fill)


MODEL_DIR = "model"


def write_failure(config: RunConfig, method_name: str, key: str | None, error: BaseException) -> Path:
    """Record a failed run in its own folder (``failure.json``, never ``results.json``)."""
    record = {"run_key": key, "config": config.to_dict(), "error": f"{type(error).__name__}: {error}",
              "traceback": "".join(traceback.format_exception(error)),
              "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    def fill(tmp: Path, run_id: str) -> None:
        (tmp / "failure.json").write_text(json.dumps(results.json_safe(record), indent=2, default=str) + "\n")

    return _write_new_folder(config, method_name, fill)


def _write_new_folder(config: RunConfig, method_name: str, fill) -> Path:
    """``fill(tmp, run_id)`` writes a staging folder that is renamed to a new run folder."""
    for _ in range(100):
        final = new_run_dir(config, method_name)
        try:
            with staging_dir(final) as tmp:
                fill(tmp, final.name)
            return final
        except FileExistsError:
            continue  # another run took this id meanwhile: take the next one
    raise MMUBenchError(f"could not find a free run folder under {config.output_dir}")


def prepare(config: RunConfig, progress: bool = True, retrain: bool = False) -> Session:
    """Generate the benchmark, find (cached or shipped) or train the reference models, evaluate
    them once; ``retrain``: train them anew even when cached or shipped."""
    return open_session(config, progress, strict=False, retrain=retrain)


def attack_folder(run_dir: str, specs: list[str], attack_args: dict, progress: bool = True) -> tuple[Path, dict]:
    """Run attacks on a finished run folder without unlearning again: its unlearned model comes
    from ``model/`` (or the checkpoint an ``eval`` run scored). attacks.json gains their numbers
    (replaced atomically, earlier attacks kept) and table.md is rebuilt; results.json is never
    touched; report.html is rebuilt. Returns the folder and the merged attacks report."""
    folder = results.run_folder(run_dir, "--run ")
    result = results.read(folder / "results.json")
    saved = load_yaml(folder / "config.yaml")
    config = RunConfig(**{**saved, "attacks": list(specs), "attack_args": dict(attack_args)})
    config.validate()
    planned = plan_attacks(config)
    session = open_session(config, progress)
    loaded = load_unlearned(folder, result, session)
    attacked = attacking.run_suite(session, loaded.model.to(session.device), loaded.processor, [], result.seed, planned,
                                 progress)
    recorded = result.dimensions.get(results.UNLEARNED, {}).get(attacking.ATTACKED_DIMENSION)
    if recorded is not None and abs(attacked["score_before"] - recorded) > 1e-6:
        attacked["note"] = (f"the loaded model scores {attacked['score_before']:.4f} on {attacked['task']} where results.json "
                          f"says {recorded:.4f} (another machine or library version?)")
    merged = attacking.merge(attacking.read(folder), attacked)
    atomic_write_json(folder / attacking.ATTACKS_FILE, merged)
    atomic_write_text(folder / "table.md", tables.write_markdown(result, merged))
    report.write(folder)
    return folder, merged


def load_unlearned(folder: Path, result: results.RunResult, session: Session):
    """The run's unlearned model: ``model/`` in its folder, else the checkpoint an `eval` run
    scored (unchanged since: its hash is checked)."""
    if (folder / MODEL_DIR).is_dir():
        return session.provider.load_checkpoint(str(folder / MODEL_DIR), session.benchmark)
    spec = result.method.get("spec", "")
    if spec.startswith(CHECKPOINT):
        path = Path(spec[len(CHECKPOINT):])
        if not path.is_dir():
            raise MMUBenchError(f"{folder}: the checkpoint it scored, {path}, is gone")
        if folder_sha256(path) != result.method.get("source_sha256"):
            raise MMUBenchError(f"{folder}: the checkpoint it scored, {path}, has changed since (its hash differs)")
        return session.provider.load_checkpoint(str(path), session.benchmark)
    raise MMUBenchError(f"{folder} keeps no unlearned weights (no {MODEL_DIR}/ folder; the run had save_model="
                        f"{session.config.save_model}). Re-run it with --save-model yes, or with --attacks")
