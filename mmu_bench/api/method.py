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
    trainable_sides()       the parts of the model the method trains: ``("language",)`` by
                            default; add ``"vision"`` (vision tower and projector) and a model
                            provider that trains an adapter covers those layers too

A method with a loop of its own calls ``ctx.step_done(step, total)`` at its natural checkpoints
(the shared loop does after every step): the harness scores a trajectory point there when one
is due (``mmu_bench.trajectory``).

Everything a method may touch comes through ``ctx`` (an ``UnlearningContext``). A method
never sees benchmark internals; it works for any benchmark and model the harness supports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from mmu_bench.api.context import UnlearningContext


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


@dataclass
class Batches:
    """What one step of the shared loop sees."""

    forget: dict
    retain: dict | None
    step: int


class UnlearningMethod:
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    # Its hyperparameters. Per-benchmark defaults (tuned or published values) are data, not
    # code: hparams/<benchmark>.yaml, layered between these defaults and the user's arguments.
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    uses_retain: ClassVar[bool] = False

    def __init__(self, config: MethodConfig | None = None):
        self.config = config if config is not None else self.Config()

    def trainable_sides(self) -> tuple[str, ...]:
        """The sides of the model this method trains, asked of the model provider before the
        model is loaded: ``language`` (the language model: what the field's LoRA adapter
        covers) and/or ``vision`` (the vision tower and the projector). A provider that trains
        every parameter ignores it; one with a LoRA adapter adapts these sides' linear layers."""
        return ("language",)

    def setup(self, ctx: UnlearningContext) -> None:
        """Called once before training."""

    def loss(self, ctx: UnlearningContext, batch: Batches) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement loss() or override unlearn()")

    def after_backward(self, ctx: UnlearningContext) -> None:
        """Called after each backward pass (e.g. to mask gradients)."""

    def make_optimizer(self, ctx: UnlearningContext) -> torch.optim.Optimizer:
        """AdamW over the trainable parameters; override for another optimizer or groups."""
        from mmu_bench.api.train import make_optimizer

        return make_optimizer(ctx.model, self.config)

    def unlearn(self, ctx: UnlearningContext) -> None:
        from mmu_bench.api.train import run_loop

        run_loop(self, ctx)
