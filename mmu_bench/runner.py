"""`mmu-bench run` and `prepare`: config -> benchmark -> model -> method -> evaluation -> run folder."""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import yaml

from . import registry, results
from .config import RunConfig, method_config
from .context import EncodedSet, MethodData, UnlearningContext
from .errors import MMUBenchError
from .evaluation import EvalSettings, Evaluation, evaluate
from .metrics import KNOWLEDGE_METRIC
from .provenance import environment, git_state, package_versions
from .storage import atomic_write_json, home, staging_dir
from .tasks import Task, default_prompts, load_tasks

# Tasks whose vanilla multiple-choice accuracy proves the model knows the forget entities.
KNOWLEDGE_TASKS = ("visual_forgetting", "textual_retention")


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
        return cls(progress=progress, **config.model_args)
    except (TypeError, ValueError) as exc:
        raise MMUBenchError(f"model {config.model!r}: bad --model-arg: {exc}") from exc


def eval_settings(config: RunConfig, progress: bool) -> EvalSettings:
    return EvalSettings(batch_size=config.eval_batch_size, limit=config.eval_limit, seed=0, progress=progress)


def reference_scores(provider, benchmark, tasks: list[Task], settings: EvalSettings, device) -> dict:
    """Scores of the vanilla and oracle models on every task, evaluated once and cached."""
    out = {}
    for role in provider.roles:
        tag = json.dumps({"tasks": {t.name: t.version for t in tasks}, "limit": settings.limit,
                          "benchmark": benchmark.key()}, sort_keys=True)
        loaded = provider.load(role, benchmark)
        digest = hashlib.sha256(f"{loaded.path}|{tag}".encode()).hexdigest()[:16]
        path = home() / "references" / provider.name / f"{role}-{digest}.json"
        if path.exists():
            out[role] = json.loads(path.read_text())
            continue
        loaded.model.to(device)
        evaluation = evaluate(loaded.model, loaded.processor, benchmark.eval, tasks, settings)
        entry = {"role": role, "model_path": loaded.path, "recipe_hash": loaded.recipe_hash,
                 "scores": evaluation.scores}
        atomic_write_json(path, entry)
        out[role] = entry
    return out


def knowledge_check(vanilla_scores: dict, threshold: float) -> dict:
    """The vanilla model's multiple-choice accuracy on the forget entities (image and text);
    raise when under ``threshold``: scores of a model that never knew them mean nothing."""
    found = {}
    for task in KNOWLEDGE_TASKS:
        per_metric = vanilla_scores.get(task, {})
        if KNOWLEDGE_METRIC not in per_metric:
            raise MMUBenchError(f"cannot check the vanilla model's knowledge: no multiple-choice score for {task!r}")
        found[task] = per_metric[KNOWLEDGE_METRIC]["mean"]
    weak = {t: v for t, v in found.items() if v < threshold}
    if weak:
        listed = ", ".join(f"{t} {v:.2f}" for t, v in weak.items())
        raise MMUBenchError(
            f"the vanilla model does not know the benchmark: multiple-choice accuracy ({KNOWLEDGE_METRIC}) {listed} is under "
            f"{threshold:.2f}. Results would be meaningless, so none are reported. Train the reference "
            "models longer (--model-arg) or lower --min-vanilla-mc if you know what you are doing."
        )
    return found


def new_run_dir(config: RunConfig, method_name: str) -> Path:
    from .names import safe_name

    root = Path(config.output_dir) / safe_name(config.benchmark) / safe_name(config.model) / safe_name(method_name)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-r{config.forget_ratio:g}-s{config.seed}"
    candidate, n = root / base, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{base}-{n}"
    return candidate


def run(config: RunConfig, progress: bool = True) -> Path:
    """Unlearn, evaluate, write the run folder; returns its path."""
    started = time.time()
    config.validate()
    resolved = registry.resolve_method(config.method)
    method_cfg = method_config(resolved.cls, config.benchmark, config.method_args)
    registry.benchmark_loader(config.benchmark)
    registry.model_provider(config.model)
    tasks = load_tasks(config.tasks)
    all_tasks = load_tasks()
    device = pick_device(config.device)
    seed_everything(config.seed)

    benchmark = load_benchmark(config)
    provider = make_provider(config, progress)
    settings = eval_settings(config, progress)
    refs = reference_scores(provider, benchmark, all_tasks, settings, device)
    knowledge = knowledge_check(refs["vanilla"]["scores"], config.min_vanilla_mc)

    vanilla = provider.load("vanilla", benchmark)
    model = vanilla.model.to(device)
    prompts = default_prompts()
    data = MethodData(
        forget=EncodedSet(benchmark.forget_set(), vanilla.processor, prompts),
        retain=EncodedSet(benchmark.retain_set(), vanilla.processor, prompts),
        preserve_text=EncodedSet(benchmark.preserve_text(), vanilla.processor, prompts),
    )
    ctx = UnlearningContext(
        model=model, processor=vanilla.processor, config=method_cfg, data=data, seed=config.seed,
        benchmark=benchmark.name,
        reference_loader=lambda role: provider.load(role, benchmark).model.to(device),
    )
    seed_everything(config.seed)
    method = resolved.cls(method_cfg)
    train_started = time.time()
    method.setup(ctx)
    method.unlearn(ctx)
    train_seconds = time.time() - train_started
    evaluation = evaluate(ctx.model, vanilla.processor, benchmark.eval, tasks, settings)

    result = compose(config, benchmark, tasks, resolved, method_cfg, evaluation, refs, knowledge, ctx,
                     {"vanilla": vanilla.path, "oracle": provider.path("oracle", benchmark)})
    result["provenance"]["wall_seconds"] = round(time.time() - started, 2)
    result["provenance"]["unlearn_seconds"] = round(train_seconds, 2)
    return write_run(config, result, evaluation)


def compose(config, benchmark, tasks, resolved, method_cfg, evaluation: Evaluation, refs: dict, knowledge: dict,
            ctx: UnlearningContext, model_paths: dict) -> dict:
    scores = {"unlearned": evaluation.scores, **{role: refs[role]["scores"] for role in refs}}
    dims = {who: results.dimension_scores(s, tasks) for who, s in scores.items()}
    chance = {t.dimension: results.chance_score(evaluation.scores.get(t.name, {})) for t in tasks if t.primary}
    normalised = results.normalise(dims["unlearned"], dims["vanilla"], dims.get("oracle"), chance)
    losses = [h["loss"] for h in ctx.history if "loss" in h]
    return {
        "schema_version": results.SCHEMA_VERSION,
        "benchmark": {"name": benchmark.name, "fingerprint": benchmark.fingerprint,
                      "forget_ratio": benchmark.forget_ratio, "forget_entities": list(benchmark.forget_entities),
                      "info": benchmark.info},
        "model": {"name": config.model, "references": {k: str(v) for k, v in model_paths.items()}},
        "method": {"name": resolved.name, "spec": config.method, "version": resolved.cls.version,
                   "origin": resolved.origin, "source_file": resolved.source_file,
                   "source_sha256": resolved.source_sha256, "config": asdict(method_cfg)},
        "seed": config.seed,
        "tasks": {t.name: {"version": t.version, "dimension": t.dimension, "primary": t.primary,
                           "higher_is_better": t.higher_is_better} for t in tasks},
        "scores": scores,
        "dimensions": dims,
        "normalised": normalised,
        "overall": results.overall(normalised),
        "vanilla_knowledge": knowledge,
        "training": {"steps": len(losses), "first_loss": losses[0] if losses else None,
                     "last_loss": losses[-1] if losses else None, "method_report": ctx.extras},
        "provenance": {"git": git_state(), "packages": package_versions(), **environment(),
                       "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }


def _json_safe(obj):
    """NaN is not JSON: write null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_run(config: RunConfig, result: dict, evaluation: Evaluation) -> Path:
    """Everything is written into a staging folder renamed into place at the end: a crash or
    Ctrl-C leaves no partial run, and an existing run folder is never touched."""
    for _ in range(100):
        final = new_run_dir(config, result["method"]["name"])
        result["run_id"] = final.name
        try:
            with staging_dir(final) as tmp:
                (tmp / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
                with open(tmp / "samples.jsonl", "w", encoding="utf-8") as fh:
                    for record in evaluation.records:
                        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                rows = results.table_rows(result)
                (tmp / "table.csv").write_text(results.to_csv(rows))
                (tmp / "table.md").write_text(results.to_markdown(rows, title=summary_title(result),
                                                                   footer=summary_footer(result)))
                (tmp / "results.json").write_text(json.dumps(_json_safe(result), indent=2, sort_keys=True) + "\n")
            return final
        except FileExistsError:
            continue  # another run took this id meanwhile: take the next one
    raise MMUBenchError(f"could not find a free run folder under {config.output_dir}")


def summary_title(result: dict) -> str:
    return (f"{result['method']['name']} on {result['benchmark']['name']} "
            f"(forget {result['benchmark']['forget_ratio']:g}%, seed {result['seed']}, model {result['model']['name']})")


def summary_footer(result: dict) -> str:
    value = result["overall"]
    text = "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"
    return (f"Overall score (harmonic mean of the normalised dimensions): **{text}**. "
            "mc_acc: greedy letter; mc_loglik_acc: most likely option; cloze_acc: answer contained; "
            "rougeL: ROUGE-L F1. vanilla/oracle: the reference models' task scores.")


def prepare(config: RunConfig, progress: bool = True) -> dict:
    """Generate the benchmark, train (or find) the reference models, score them once."""
    config.validate()
    registry.benchmark_loader(config.benchmark)
    registry.model_provider(config.model)
    tasks = load_tasks()
    benchmark = load_benchmark(config)
    provider = make_provider(config, progress)
    refs = reference_scores(provider, benchmark, tasks, eval_settings(config, progress), pick_device(config.device))
    return {"benchmark": benchmark, "references": refs, "tasks": tasks}
