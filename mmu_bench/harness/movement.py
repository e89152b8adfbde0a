"""How far unlearning moved the trained weights: a run that changed nothing is flagged
(open-unlearning #178: gradient checkpointing with LoRA silently trained nothing).

Only trained parameters (``requires_grad``) are compared: a copy of them before the method
runs, on the CPU (with a LoRA adapter: the adapter alone), against the same parameters after.
Per module group (``saliency.module_group``; a LoRA adapter's ``A`` and ``B`` matrices as groups
of their own): the relative L2 change ||after - before|| / ||before|| over the group's elements,
or, where ||before|| = 0 (LoRA ``B`` starts at zero), the absolute ||after||; and how many
elements changed at all.
"""

from __future__ import annotations

import math

import torch

from mmu_bench.api.saliency import module_group, trainable


def snapshot(model) -> dict[str, torch.Tensor]:
    """A CPU copy of ``model``'s trained parameters."""
    return {n: p.detach().to("cpu", copy=True) for n, p in trainable(model).items()}


def group_of(name: str) -> str:
    for part in ("lora_A", "lora_B"):
        if f".{part}." in name:
            return f"{module_group(name)}/{part}"
    return module_group(name)


@torch.no_grad()
def movement(before: dict[str, torch.Tensor], model) -> dict:
    """The record of ``provenance.weight_change``: per group its ``relative_l2`` (or ``l2``
    where it started at zero), ``elements`` and ``moved``; the totals; ``unchanged`` and, when
    true, ``why``."""
    params = dict(model.named_parameters())
    sums: dict[str, list[float]] = {}  # group -> [||before||^2, ||after - before||^2, elements, moved]
    lora_b_zero = None
    for name, old in before.items():
        if name not in params:  # a method that replaced a module: its new weights are not compared
            continue
        new = params[name].detach().to("cpu")
        delta = new.double() - old.double()
        acc = sums.setdefault(group_of(name), [0.0, 0.0, 0, 0])
        acc[0] += float(old.double().square().sum())
        acc[1] += float(delta.square().sum())
        acc[2] += old.numel()
        acc[3] += int((new != old).sum())
        if ".lora_B." in name:
            lora_b_zero = (lora_b_zero is not False) and not bool(new.any())
    groups = {}
    for group, (before_sq, delta_sq, elements, moved) in sorted(sums.items()):
        size = {"relative_l2": math.sqrt(delta_sq / before_sq)} if before_sq > 0 else {"l2": math.sqrt(delta_sq)}
        groups[group] = {**size, "elements": elements, "moved": moved}
    total = sum(g["elements"] for g in groups.values())
    moved = sum(g["moved"] for g in groups.values())
    out = {"groups": groups, "elements": total, "moved": moved, "unchanged": False}
    if moved == 0:
        out.update(unchanged=True, why=f"none of the {total} trained parameters changed")
    elif lora_b_zero:
        out.update(unchanged=True, why="every LoRA B matrix is still zero: the adapter changes nothing")
    return out
