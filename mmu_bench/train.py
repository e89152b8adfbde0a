"""The one training loop methods share: optimizer, schedule, clipping, progress bar, logging."""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from .errors import MMUBenchError
from .evaluation import to_device
from .method import Batches, MethodConfig, UnlearningMethod


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


def run_loop(method: UnlearningMethod, ctx, progress: bool = True) -> None:
    """Train ``ctx.model`` with ``method.loss`` for the configured number of steps."""
    config = method.config
    model = ctx.model
    model.train()
    total = total_steps(config, len(ctx.data.forget))
    optimizer = method.make_optimizer(ctx)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, total))
    forget = ctx.data.forget.batches(config.batch_size, seed=ctx.seed)
    retain = ctx.data.retain.batches(config.batch_size, seed=ctx.seed + 1) if method.uses_retain else None
    trainable = [p for group in optimizer.param_groups for p in group["params"]]
    bar = tqdm(range(total), desc=f"unlearning ({method.name})", unit="step", disable=None if progress else True, leave=False)
    for step in bar:
        batch = Batches(
            forget=to_device(next(forget), model),
            retain=to_device(next(retain), model) if retain is not None else None,
            step=step,
        )
        loss = method.loss(ctx, batch)
        if not torch.isfinite(loss):
            raise MMUBenchError(f"{method.name}: loss is {loss.item()} at step {step}; lower the lr or check the method")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        method.after_backward(ctx)
        grad_norm = (
            torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm).item() if config.max_grad_norm else None
        )
        optimizer.step()
        scheduler.step()
        ctx.log(step=step, loss=loss.item(), lr=scheduler.get_last_lr()[0], grad_norm=grad_norm)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
