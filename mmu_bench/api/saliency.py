"""Saliency masks over trainable parameters (MMUnlearner's geometry constraint), reusable by
any method: diagonal Fisher estimates, the forget/preserve ratio mask, a random mask of the
same sparsity, sparsity reports, and a guard that keeps masked-out parameters fixed.

Masks are dicts ``parameter name -> bool tensor`` over the parameters that are actually
trained (``requires_grad``), so they follow LoRA adapters or any other parameter subset.

Under LoRA, a mask can also be scored on the *full* weights (the paper's quantity) and mapped
onto the adapter: ``lora_layers`` finds the adapted linear layers, ``requiring_grad`` lets the
frozen base weights take a gradient for the Fisher estimate, ``lines`` turns a full-weight
mask into the rows and columns a LoRA update can move (``adapter_masks``: B's rows, A's
columns), and ``induced`` / ``jaccard`` measure what that mapping keeps of the full mask.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from mmu_bench.api.losses import nll

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
                    desc: str = "fisher", progress: bool = True,
                    sync: Callable[[torch.Tensor], torch.Tensor] | None = None,
                    synced: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """Mean over ``batches`` of the squared gradient of the batch NLL, per element of ``params``
    (a diagonal Fisher estimate). No optimizer step; gradients are cleared afterwards.
    ``sync`` (e.g. a mean over processes) is applied to the gradients of the ``synced``
    parameters before squaring: those a distributed wrapper does not average itself."""
    was_training = model.training
    model.train()
    sums = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    synced = set(synced)
    count = 0
    for batch in tqdm(batches, desc=desc, unit="batch", leave=False, disable=None if progress else True):
        model.zero_grad(set_to_none=True)
        nll(model, batch).backward()
        for n, p in params.items():
            if p.grad is not None:
                grad = p.grad.detach()
                if sync is not None and n in synced:
                    grad = sync(grad)
                sums[n] += grad.float() ** 2
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


# --------------------------------------------------------------------------------------------
# Full-weight saliency under LoRA


@dataclass(frozen=True)
class LoraLayer:
    """One LoRA-adapted linear layer, by parameter names: ``W`` (out x in, frozen) and the
    adapter's ``A`` (r x in) and ``B`` (out x r); the update is ``scale * B @ A``."""

    weight: str
    a: str
    b: str


def lora_layers(model, params: Iterable[str] | None = None) -> dict[str, LoraLayer]:
    """The LoRA-adapted linear layers of ``model`` (PEFT's layout, found by its attributes
    ``base_layer``, ``lora_A``, ``lora_B``; one entry per active adapter), keyed by module name.
    With ``params``: only the layers whose ``B`` is among them."""
    wanted = set(params) if params is not None else None
    found = {}
    for name, module in model.named_modules():
        if not all(hasattr(module, a) for a in ("base_layer", "lora_A", "lora_B")):
            continue
        if not isinstance(getattr(module.base_layer, "weight", None), torch.nn.Parameter):
            continue
        active = getattr(module, "active_adapters", None) or list(module.lora_A.keys())
        for key in active:
            if key not in module.lora_A:
                continue
            layer = LoraLayer(f"{name}.base_layer.weight", f"{name}.lora_A.{key}.weight", f"{name}.lora_B.{key}.weight")
            if wanted is None or layer.b in wanted:
                found[f"{name}:{key}"] = layer
    return found


@contextlib.contextmanager
def requiring_grad(params: Iterable[torch.nn.Parameter]) -> Iterator[None]:
    """Let (frozen) ``params`` take gradients inside the block; their flags are restored after,
    and their gradients dropped."""
    params = list(params)
    before = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        yield
    finally:
        for p, flag in zip(params, before):
            p.requires_grad_(flag)
            p.grad = None


def lines(full: torch.Tensor, share: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows and columns of a full-weight mask (out x in) that a LoRA mask keeps: row ``i``
    (an output unit: ``B``'s row ``i``) when at least ``share`` of its elements are selected,
    column ``j`` (an input feature: ``A``'s column ``j``) likewise; a line without any selected
    element never counts (so ``share=0`` means "any selected element")."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    m = full.bool()
    rows = (m.float().mean(1) >= share) & m.any(1)
    cols = (m.float().mean(0) >= share) & m.any(0)
    return rows, cols


def adapter_masks(rows: torch.Tensor, cols: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask of ``A``, r x in; mask of ``B``, out x r) from the kept columns and rows: every
    element of a kept line."""
    return cols.view(1, -1).expand(rank, -1).clone(), rows.view(-1, 1).expand(-1, rank).clone()


def induced(mask_a: torch.Tensor, mask_b: torch.Tensor) -> torch.Tensor:
    """The elements of ``W`` (out x in) that masked updates of ``A`` and ``B`` can move (to first
    order, with the other factor non-zero): ``d(B A)[i, j] = dB[i] . A[:, j] + B[i] . dA[:, j]``,
    so every element of a row with a selected ``B`` element, and of a column with a selected
    ``A`` element."""
    rows, cols = mask_b.bool().any(1), mask_a.bool().any(0)
    return rows.view(-1, 1) | cols.view(1, -1)


def jaccard(pairs: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float | None:
    """|X & Y| / |X | Y| summed over the tensor pairs (None when both are empty everywhere)."""
    inter = union_ = 0
    for x, y in pairs:
        x, y = x.bool(), y.bool()
        inter += int((x & y).sum())
        union_ += int((x | y).sum())
    return round(inter / union_, 6) if union_ else None


def trainable_summary(model, sides: Iterable[str]) -> dict:
    """What trains, for results.json: the sides asked for, trainable elements per module group,
    and, with a LoRA adapter, its rank and the number of adapted linear layers per group."""
    elements: dict[str, int] = {}
    for n, p in trainable(model).items():
        elements[module_group(n)] = elements.get(module_group(n), 0) + p.numel()
    out: dict = {"sides": list(sides), "elements": elements}
    layers = lora_layers(model)
    if layers:
        adapted: dict[str, int] = {}
        for layer in layers.values():
            adapted[module_group(layer.weight)] = adapted.get(module_group(layer.weight), 0) + 1
        params = dict(model.named_parameters())
        out["lora"] = {"rank": params[next(iter(layers.values())).a].shape[0], "adapted_layers": adapted}
    return out


def onto_adapter(mask: dict[str, torch.Tensor], layers: dict[str, LoraLayer], share: float = 0.5,
                 seed: int | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """The adapter-level mask from a mask that holds, for each of ``layers``, its full weight
    ``W``'s mask (and the adapter's own saliency masks of ``A`` and ``B``, for comparison).

    Each layer's ``A`` and ``B`` masks become the columns and rows ``lines`` keeps of ``W``'s
    mask; with ``seed`` (the random ablation), as many rows and columns of the layer drawn at
    random instead, and every other parameter's mask a ``random_like`` one. Returns the mask
    (without the ``W`` entries) and facts for the report: the full-weight mask's size, the
    rows and columns kept, and two Jaccard overlaps with the full-weight mask: of what the
    mapped mask can move (``induced``), and of what the adapter's own saliency mask would."""
    weights = {layer.weight for layer in layers.values()}
    adapter = {n for layer in layers.values() for n in (layer.a, layer.b)}
    kept = {}
    for key, layer in layers.items():
        rows, cols = lines(mask[layer.weight], share)
        kept[f"{key}:rows"], kept[f"{key}:cols"] = rows, cols
    others = {n: m for n, m in mask.items() if n not in weights and n not in adapter}
    if seed is not None:
        kept, others = random_like(kept, seed), random_like(others, seed + 1)
    out = dict(others)
    for key, layer in layers.items():
        out[layer.a], out[layer.b] = adapter_masks(kept[f"{key}:rows"], kept[f"{key}:cols"], mask[layer.a].shape[0])
    full = [mask[layer.weight] for layer in layers.values()]
    selected, total = sum(int(m.sum()) for m in full), sum(m.numel() for m in full)
    movable = sum(int(induced(out[layer.a], out[layer.b]).sum()) for layer in layers.values())
    facts = {
        "full_weight_mask": {"selected": selected, "total": total, "fraction": round(selected / total, 6) if total else 0.0},
        "mapped_fraction": round(movable / total, 6) if total else 0.0,  # of W's elements the mapped mask can move
        "adapter_lines": {"share": share,
                          "rows": sum(int(kept[f"{k}:rows"].sum()) for k in layers),
                          "rows_total": sum(kept[f"{k}:rows"].numel() for k in layers),
                          "columns": sum(int(kept[f"{k}:cols"].sum()) for k in layers),
                          "columns_total": sum(kept[f"{k}:cols"].numel() for k in layers)},
        "jaccard_full_vs_mapped": jaccard((m, induced(out[layer.a], out[layer.b])) for m, layer in zip(full, layers.values())),
        "jaccard_full_vs_adapter_saliency": jaccard((m, induced(mask[layer.a], mask[layer.b]))
                                                    for m, layer in zip(full, layers.values())),
    }
    return out, facts
