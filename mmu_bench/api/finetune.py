"""Plain supervised fine-tuning on pre-encoded (prompt, answer) features: how reference models
(vanilla, oracle, and the tiny model's base) are trained."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from mmu_bench.api.encoding import collate, to_device
from mmu_bench.api.losses import nll
from mmu_bench.api.method import MethodConfig
from mmu_bench.api.train import lr_lambda


def finetune(model, features: Sequence[dict], pad_token_id: int, *, steps: int, lr: float, batch_size: int,
             seed: int, warmup_steps: int = 0, schedule: str = "cosine", desc: str = "fine-tuning",
             progress: bool = True) -> list[float]:
    """``steps`` AdamW steps on batches drawn from ``features`` (a fresh shuffle per pass).
    ``features`` may encode lazily on indexing (real benchmarks' images do not all fit in
    memory). Returns the loss of every step. (Batches of similar lengths would waste less compute on
    padding, but batches of one kind of question learned far worse here.)"""
    if not features:
        raise ValueError("no training data")
    config = MethodConfig(lr=lr, steps=steps, batch_size=batch_size, warmup_steps=warmup_steps, schedule=schedule)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, steps))
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    losses = []
    model.train()
    for _ in tqdm(range(steps), desc=desc, unit="step", disable=None if progress else True, leave=False):
        if len(order) < batch_size:
            order += torch.randperm(len(features), generator=generator).tolist()
        idx, order = order[:batch_size], order[batch_size:]
        batch = to_device(collate([features[i] for i in idx], pad_token_id), model)
        loss = nll(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    model.eval()
    return losses

