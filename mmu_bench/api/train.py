"""The one training loop methods share: optimizer, schedule, clipping, progress bar, logging."""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from mmu_bench.api.encoding import to_device
from mmu_bench.api.method import Batches, MethodConfig, UnlearningMethod
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.processes import is_main


def total_steps(config: MethodConfig, forget_size: int) -> int:
    if config.steps:
        return config.steps
    return max(1, math.ceil(config.epochs * forget_size / config.batch_size))


def lr_lambda(config: MethodConfig, total: int):
    warmup = config.warmup_steps

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if config.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        if config.schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def make_optimizer(model, config: MethodConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise MMUBenchError("the model has no trainable parameters")
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


class Stepper:
    """One optimizer, its schedule and clipping, and the step bookkeeping: what ``run_loop``
    and methods with a loop of their own (MMUnlearner's interleaving) share."""

    def __init__(self, method: UnlearningMethod, ctx, total: int):
        self.method, self.ctx = method, ctx
        self.accelerator = ctx.accelerator
        self.optimizer = method.make_optimizer(ctx)
        # The schedule is ours, not accelerate's: a prepared scheduler would advance once per
        # process per step, as if each process drew a batch of its own.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(method.config, total))
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if self.accelerator is not None:
            self.optimizer = self.accelerator.prepare_optimizer(self.optimizer)

    def step(self, loss: torch.Tensor, step: int, after_backward=None, after_clip=None, **log) -> None:
        """Backward, ``after_backward`` (default: the method's hook), clip, ``after_clip``,
        optimizer step, schedule step. A gradient mask passed as ``after_backward`` is applied
        before clipping (the clip sees the masked gradient); as ``after_clip``, after it (the
        clip scales by the norm of the whole gradient, as MMUnlearner's public code does)."""
        acc = self.accelerator
        # Over several processes the logged loss is the mean of the processes' losses (each on
        # its slice of the batch), and all of them stop together on a non-finite one.
        logged = loss.detach() if acc is None else acc.reduce(loss.detach().clone(), reduction="mean")
        if not torch.isfinite(logged):
            raise MMUBenchError(f"{self.method.name}: loss is {logged.item()} at step {step}; lower the lr or check the method")
        self.optimizer.zero_grad(set_to_none=True)
        if acc is None:
            loss.backward()
        else:
            acc.backward(loss)  # DDP averages the gradients over the processes here
        (after_backward or self.method.after_backward)(self.ctx)
        clip = self.method.config.max_grad_norm
        if not clip:
            grad_norm = None
        elif acc is None:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, clip).item()
        else:
            grad_norm = acc.clip_grad_norm_(self.params, clip).item()
        if after_clip is not None:
            after_clip(self.ctx)
        self.optimizer.step()
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        self.ctx.log(step=step, loss=logged.item(), lr=lr, grad_norm=grad_norm, **log)


def progress_bar(total: int, desc: str, progress: bool):
    show = progress and is_main()  # one bar for a multi-process run, not one per process
    return tqdm(range(total), desc=desc, unit="step", disable=None if show else True, leave=False)


def run_loop(method: UnlearningMethod, ctx) -> None:
    """Train ``ctx.model`` with ``method.loss`` for the configured number of steps (a progress
    bar unless ``ctx.progress`` is off)."""
    config = method.config
    model = ctx.model
    model.train()
    total = total_steps(config, len(ctx.data.forget))
    stepper = Stepper(method, ctx, total)
    forget = ctx.data.forget.batches(config.batch_size, seed=ctx.seed)
    retain = ctx.data.retain.batches(config.batch_size, seed=ctx.seed + 1) if method.uses_retain else None
    bar = progress_bar(total, f"unlearning ({method.name})", ctx.progress)
    for step in bar:
        batch = Batches(
            forget=to_device(next(forget), model),
            retain=to_device(next(retain), model) if retain is not None else None,
            step=step,
        )
        loss = method.loss(ctx, batch)
        stepper.step(loss, step)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        ctx.step_done(step + 1, total)
    model.eval()
