"""Saliency masks over trainable parameters (MMUnlearner's geometry constraint), reusable by
any method: diagonal Fisher estimates, the forget/preserve ratio mask, a random mask of the
same sparsity, sparsity reports, and a guard that keeps masked-out parameters fixed.

Masks are dicts ``parameter name -> bool tensor`` over the parameters that are actually
trained (``requires_grad``), so they follow LoRA adapters or any other parameter subset.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from tqdm.auto import tqdm

from .losses import nll

EPS = 1e-15
VARIANTS = ("language", "vision", "both")
# Name fragments of the vision side: LLaVA's tower and projector, Qwen2-VL's `visual` (its
# patch merger is the projector).
_VISION = ("vision_tower", "multi_modal_projector", "visual.", "vision_model", "image_newline")


def module_group(name: str) -> str:
    """The coarse module group a parameter belongs to, for masks and reports."""
    if any(part in name for part in _VISION):
        return "projector" if ("multi_modal_projector" in name or "merger" in name) else "vision_tower"
    if "embed_tokens" in name:
        return "embeddings"
    if "lm_head" in name:
        return "lm_head"
    return "language_layers"


def side(name: str) -> str:
    """``vision`` (tower and projector) or ``language`` (everything else, embeddings and head too)."""
    return "vision" if module_group(name) in ("vision_tower", "projector") else "language"


def trainable(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def select(model, variant: str) -> dict[str, torch.nn.Parameter]:
    """The trainable parameters a ``language`` / ``vision`` / ``both`` mask ranges over."""
    if variant not in VARIANTS:
        raise ValueError(f"mask variant must be one of {VARIANTS}, got {variant!r}")
    return {n: p for n, p in trainable(model).items() if variant == "both" or side(n) == variant}


def fisher_diagonal(model, params: dict[str, torch.nn.Parameter], batches: Iterable[dict],
                    desc: str = "fisher", progress: bool = True) -> dict[str, torch.Tensor]:
    """Mean over ``batches`` of the squared gradient of the batch NLL, per element of ``params``
    (a diagonal Fisher estimate). No optimizer step; gradients are cleared afterwards."""
    was_training = model.training
    model.train()
    sums = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    count = 0
    for batch in tqdm(batches, desc=desc, unit="batch", leave=False, disable=None if progress else True):
        model.zero_grad(set_to_none=True)
        nll(model, batch).backward()
        for n, p in params.items():
            if p.grad is not None:
                sums[n] += p.grad.detach().float() ** 2
        count += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    if count == 0:
        raise ValueError(f"{desc}: no batches to estimate the Fisher information from")
    return {n: s / count for n, s in sums.items()}


def ratio_mask(fisher_forget: dict[str, torch.Tensor], fisher_preserve: dict[str, torch.Tensor],
               gamma: float = 1.0, require_forget_signal: bool = False) -> dict[str, torch.Tensor]:
    """``(F_f + eps) / (F_r + eps) >= gamma`` element-wise: the parameters that matter more to
    the forget data than to the data to preserve. With ``require_forget_signal``, elements whose
    forget Fisher is exactly 0 are left out: the eps terms alone would give them a ratio of 1
    (e.g. every LoRA ``A`` element while ``B`` is still zero)."""
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    missing = set(fisher_forget) ^ set(fisher_preserve)
    if missing:
        raise ValueError(f"the two Fisher estimates cover different parameters: {sorted(missing)[:5]}")
    mask = {n: (fisher_forget[n] + EPS) / (fisher_preserve[n] + EPS) >= gamma for n in fisher_forget}
    if require_forget_signal:
        mask = {n: m & (fisher_forget[n] > 0) for n, m in mask.items()}
    return mask


def random_like(mask: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """A random mask with exactly as many selected elements per tensor as ``mask`` (the
    ablation: does *which* parameters matter, or only how many?)."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for n, m in mask.items():
        k = int(m.sum())
        flat = torch.zeros(m.numel(), dtype=torch.bool)
        flat[torch.randperm(m.numel(), generator=generator)[:k]] = True
        out[n] = flat.view(m.shape).to(m.device)
    return out


def union(*masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for mask in masks:
        for n, m in mask.items():
            out[n] = out[n] | m if n in out else m.clone()
    return out


def complete(mask: dict[str, torch.Tensor], model) -> dict[str, torch.Tensor]:
    """``mask`` extended to every trainable parameter: those it does not range over are
    masked out (all False), so nothing outside the mask moves by masked steps."""
    return {n: mask[n] if n in mask else torch.zeros_like(p, dtype=torch.bool) for n, p in trainable(model).items()}


def sparsity(mask: dict[str, torch.Tensor]) -> dict[str, dict]:
    """Per module group (and ``all``): selected elements, total elements, selected fraction."""
    counts: dict[str, list[int]] = {}
    for n, m in mask.items():
        for group in (module_group(n), "all"):
            c = counts.setdefault(group, [0, 0])
            c[0] += int(m.sum())
            c[1] += m.numel()
    return {g: {"selected": s, "total": t, "fraction": round(s / t, 6) if t else 0.0} for g, (s, t) in counts.items()}


def mask_gradients(model, mask: dict[str, torch.Tensor]) -> None:
    """Multiply each trainable parameter's gradient by its mask (in place)."""
    for n, p in trainable(model).items():
        if p.grad is not None:
            p.grad.mul_(mask[n].to(p.grad.dtype))


@contextlib.contextmanager
def masked_out_fixed(model, mask: dict[str, torch.Tensor]) -> Iterator[None]:
    """Restore every masked-out element after the block (e.g. an optimizer step): optimizer
    momentum and weight decay then cannot move them. Stores only the masked-out values."""
    params = trainable(model)
    kept = {n: p.detach()[~mask[n]].clone() for n, p in params.items() if not bool(mask[n].all())}
    yield
    with torch.no_grad():
        for n, values in kept.items():
            params[n][~mask[n]] = values
