"""What a method sees: the model, its data as model-ready batches, reference models, a log."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from mmu_bench.api.encoding import collate, encode_many
from mmu_bench.api.prompts import user_text
from mmu_bench.core.processes import slice_of


class EncodedSet:
    """Canonical QA rows encoded for training, once, on first use. ``answer`` may replace the
    target of every row (e.g. a refusal for IDK-style methods). ``part`` = (process index,
    process count) in a multi-process run: each batch is then this process's slice of the
    batch a single process would draw (see ``mmu_bench.distributed``)."""

    def __init__(self, rows, processor, prompts: dict, answer: Callable[[dict], str] | None = None,
                 part: tuple[int, int] | None = None):
        self.rows = rows
        self.processor = processor
        self.prompts = prompts
        self.answer = answer
        self.part = part
        self._features: list[dict] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def features(self) -> list[dict[str, torch.Tensor]]:
        if self._features is None:
            self._features = encode_many(self.processor, [
                (user_text(row, self.prompts), row["image"], self.answer(row) if self.answer else row["answer"])
                for row in self.rows
            ])
        return self._features

    def with_answer(self, answer: Callable[[dict], str]) -> EncodedSet:
        return EncodedSet(self.rows, self.processor, self.prompts, answer, self.part)

    def batches(self, batch_size: int, seed: int) -> Iterator[dict]:
        """Endless shuffled batches (a fresh permutation per pass, from ``seed``)."""
        if len(self) == 0:
            raise ValueError("cannot draw batches from an empty set")
        pad = self.processor.tokenizer.pad_token_id
        generator = torch.Generator().manual_seed(seed)
        for _ in itertools.count():
            order = torch.randperm(len(self), generator=generator).tolist()
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                if len(idx) < batch_size and len(order) >= batch_size:
                    idx += order[: batch_size - len(idx)]  # keep every batch full
                if self.part is not None:
                    idx = slice_of(idx, self.part)
                yield collate([self.features[i] for i in idx], pad)

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(len(self) / batch_size)


@dataclass
class MethodData:
    forget: EncodedSet  # image QA of the forget entities
    retain: EncodedSet  # image QA of the retained entities
    preserve_text: EncodedSet  # text QA of every entity (the knowledge to keep)


@dataclass
class UnlearningContext:
    model: Any
    processor: Any
    config: Any  # the method's Config instance
    data: MethodData
    seed: int
    benchmark: str  # the benchmark's name (e.g. for logging); methods must not depend on it
    reference_loader: Callable[[str], Any] | None = None
    # In a multi-process run (``accelerate launch``): the Accelerator, and ``model`` is wrapped
    # for it (DDP adds a ``module.`` prefix to parameter names). None in a single process.
    accelerator: Any = None
    progress: bool = True  # show training progress bars (``--quiet`` turns them off)
    history: list[dict] = field(default_factory=list)  # what the loop and the method log
    extras: dict = field(default_factory=dict)  # method-reported facts, saved in results.json
    on_step: Callable[[int, int], None] | None = None  # the harness's trajectory (``step_done``)
    _references: dict = field(default_factory=dict)

    @property
    def unwrapped_model(self):
        """``model`` without a distributed wrapper: for its attributes and parameter names as a
        single process sees them. Train through ``model``: only its forward syncs gradients."""
        return self.accelerator.unwrap_model(self.model) if self.accelerator is not None else self.model

    @property
    def device(self) -> torch.device:
        return self.unwrapped_model.device

    def reference_model(self, role: str = "vanilla"):
        """A frozen copy of the ``vanilla`` or ``oracle`` model, loaded once."""
        if role not in self._references:
            if self.reference_loader is None:
                raise RuntimeError("this run provides no reference models")
            ref = self.reference_loader(role)
            ref.eval()
            ref.requires_grad_(False)
            self._references[role] = ref
        return self._references[role]

    def log(self, **values) -> None:
        self.history.append(values)

    def step_done(self, step: int, total: int) -> None:
        """Tell the harness that ``step`` of ``total`` steps are done (1-based; call it at the
        method's natural checkpoints, e.g. after each forget-retain cycle). When a trajectory
        point is due (``--trajectory``) the model is scored here, on a sample, without touching
        the run's random streams. The shared loop calls it after every step."""
        if self.on_step is not None:
            self.on_step(step, total)

    def report(self, **facts) -> None:
        """Facts about the method's run (mask sparsity, ...) to keep in results.json."""
        self.extras.update(facts)
