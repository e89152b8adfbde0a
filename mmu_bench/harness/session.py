"""What a run needs before any model is changed: the device, the benchmark's data, and the
reference models' records (cached; trained and scored on first use) with their scores."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from mmu_bench.api.measure import Value
from mmu_bench.api.provider import CachedProvider
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.processes import is_main
from mmu_bench.harness import distributed
from mmu_bench.harness.references import Reference, reference_records
from mmu_bench.harness.score import score
from mmu_bench.spec import protocol as protocols
from mmu_bench.spec.plan import Plan
from mmu_bench.spec.selection import EvalSettings
from mmu_bench.spec.tasks import Task


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


def process_device(name: str, acc) -> torch.device:
    """Under ``accelerate launch`` accelerate places each process: one GPU each, or the CPU."""
    wanted = pick_device(name) if name != "auto" else acc.device
    if wanted.type != acc.device.type:
        raise MMUBenchError(f"--device {name}: accelerate placed this process on {acc.device}; choose "
                            "devices through accelerate (--gpu_ids; ACCELERATE_USE_CPU=true for CPUs)")
    return acc.device


@dataclass
class Session:
    """A plan with its data and reference models at hand."""

    plan: Plan
    benchmark: object  # the canonical Benchmark
    tasks: list[Task]  # what the run scores, with the protocol's demonstrations
    all_tasks: list[Task]  # what the reference models are scored on, likewise
    settings: EvalSettings
    refs: dict[str, Reference]
    ref_scores: dict[str, dict[str, dict[str, Value]]]  # role -> task -> measure -> value
    knowledge: dict[str, float]  # task -> the vanilla model's knowledge measure, where checked
    device: torch.device

    @property
    def config(self):
        return self.plan.config

    @property
    def measures(self):
        return self.plan.measures

    @property
    def provider(self):
        return self.plan.provider


def open_session(plan: Plan, progress: bool, strict: bool = True, retrain: bool = False) -> Session:
    """Loads the benchmark and the reference models' records and scores them; ``strict``:
    refuses when the vanilla model does not know the benchmark; ``retrain``: trains the
    harness-trained references anew (cached or shipped)."""
    config, provider = plan.config, plan.provider
    if retrain:
        if not isinstance(provider, CachedProvider):
            raise MMUBenchError(f"--retrain: model {config.model!r} has no reference models the harness trains")
        provider.retrain = True
    acc = distributed.accelerator()
    device = pick_device(config.device) if acc is None else process_device(config.device, acc)
    settings = EvalSettings(batch_size=config.eval_batch_size, limit=config.eval_limit, seed=0,
                            progress=progress and is_main())
    # Over several processes the main one generates the data and trains and scores the
    # reference models; the others wait, then read what it cached.
    with distributed.main_first(acc):
        benchmark = load_benchmark(plan)
        all_tasks = protocols.with_demonstrations(plan.all_tasks, benchmark.eval, settings.seed)
        refs = reference_records(provider, benchmark, all_tasks, settings, device)
    by_name = {t.name: t for t in all_tasks}
    tasks = [by_name[t.name] for t in plan.tasks]
    ref_scores = score({role: ref.records for role, ref in refs.items()}, all_tasks, plan.measures)
    session = Session(plan, benchmark, tasks, all_tasks, settings, refs, ref_scores,
                      knowledge(ref_scores["vanilla"], all_tasks), device)
    if strict:
        require_knowledge(session)
    return session


def load_benchmark(plan: Plan):
    config = plan.config
    try:
        return plan.benchmark.load(config.forget_ratio, **config.benchmark_args)
    except (TypeError, ValueError) as exc:
        raise MMUBenchError(f"benchmark {config.benchmark!r}: {exc}") from exc


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
