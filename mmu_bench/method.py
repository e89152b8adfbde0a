"""THE PUBLIC PLUGIN CONTRACT for unlearning methods.

A method is a subclass of ``UnlearningMethod`` with a ``name``, a ``Config`` dataclass of
hyperparameters (subclass of ``MethodConfig``), and hooks over the shared loop in
``mmu_bench.train``:

    setup(ctx)              once, before training: load a reference model, compute a mask...
    loss(ctx, batch)        the loss of one step; ``batch.forget`` (and ``batch.retain`` when
                            ``uses_retain``) are model-ready dicts, passed through untouched
    after_backward(ctx)     after the backward pass, before clipping and the optimizer step
    make_optimizer(ctx)     the optimizer (default AdamW over the trainable parameters)
    unlearn(ctx)            the whole procedure; the default runs the shared loop. Override it
                            for methods that are not gradient based.

Everything a method may touch comes through ``ctx`` (an ``UnlearningContext``). A method
never sees benchmark internals; it works for any benchmark and model the harness supports.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .context import UnlearningContext


@dataclass
class MethodConfig:
    """Hyperparameters every gradient method shares; subclass to add your own."""

    lr: float = 1e-4
    steps: int = 0  # optimizer steps; 0 = ``epochs`` passes over the forget set
    epochs: float = 1.0
    batch_size: int = 8
    max_grad_norm: float = 1.0  # 0 disables clipping
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "linear"  # linear | cosine | constant (after warmup)

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.steps < 0 or self.epochs <= 0 or self.batch_size < 1:
            raise ValueError("steps must be >= 0, epochs > 0 and batch_size >= 1")
        if self.schedule not in ("linear", "cosine", "constant"):
            raise ValueError(f"schedule must be linear, cosine or constant, got {self.schedule!r}")


# The settings the field publishes for 7B models on the real benchmarks (MLLMU-Bench's baselines:
# AdamW, lr 2e-5, 1 epoch, batch 4, linear decay). Methods start their benchmark_defaults from
# these; the tiny embedded model needs its own (tuned) values instead.
PUBLISHED_SETTINGS = {
    "mllmu": {"lr": 2e-5, "epochs": 1.0, "steps": 0, "batch_size": 4, "schedule": "linear"},
    "clear": {"lr": 2e-5, "epochs": 1.0, "steps": 0, "batch_size": 4, "schedule": "linear"},
}


@dataclass
class Batches:
    """What one step of the shared loop sees."""

    forget: dict
    retain: dict | None
    step: int


class UnlearningMethod:
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    # Per-benchmark defaults that override the Config defaults (user arguments override both),
    # e.g. {"mmu-synth": {"lr": 5e-4, "steps": 40}}: hyperparameters tuned for that benchmark.
    benchmark_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    uses_retain: ClassVar[bool] = False
    # Which reference model the method needs frozen copies of: "vanilla", "oracle" or None.
    reference: ClassVar[str | None] = None

    def __init__(self, config: MethodConfig | None = None):
        self.config = config if config is not None else self.Config()

    def setup(self, ctx: UnlearningContext) -> None:
        """Called once before training."""

    def loss(self, ctx: UnlearningContext, batch: Batches) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement loss() or override unlearn()")

    def after_backward(self, ctx: UnlearningContext) -> None:
        """Called after each backward pass (e.g. to mask gradients)."""

    def make_optimizer(self, ctx: UnlearningContext) -> torch.optim.Optimizer:
        """AdamW over the trainable parameters; override for another optimizer or groups."""
        from .train import make_optimizer

        return make_optimizer(ctx.model, self.config)

    def unlearn(self, ctx: UnlearningContext) -> None:
        from .train import run_loop

        run_loop(self, ctx)


def config_fields(config_class: type[MethodConfig]) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(config_class)}
