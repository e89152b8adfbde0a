"""How far unlearning moved the trained weights, on tiny tensors against values computed by hand."""

import math

import pytest
import torch
from torch import nn

from mmu_bench.harness.movement import movement, snapshot


def _module(**params: list[float]) -> nn.Module:
    """A module whose parameters have the dotted names given (``__`` for ``.``)."""
    root = nn.Module()
    for name, values in params.items():
        *path, leaf = name.split("__")
        node = root
        for part in path:
            if not hasattr(node, part):
                node.add_module(part, nn.Module())
            node = getattr(node, part)
        node.register_parameter(leaf, nn.Parameter(torch.tensor(values)))
    return root


def _set(model, name: str, values: list[float]) -> None:
    with torch.no_grad():
        dict(model.named_parameters())[name].copy_(torch.tensor(values))


def test_relative_change_per_group_and_the_elements_that_moved():
    model = _module(language_model__a__weight=[3.0, 4.0], language_model__b__weight=[0.0, 0.0],
                    vision_tower__c__weight=[1.0, 1.0, 1.0, 1.0])
    model.vision_tower.c.weight.requires_grad_(False)  # frozen: never compared
    before = snapshot(model)
    assert set(before) == {"language_model.a.weight", "language_model.b.weight"}
    _set(model, "language_model.a.weight", [3.0, 7.0])  # delta (0, 3)
    _set(model, "language_model.b.weight", [0.0, 4.0])  # delta (0, 4)
    _set(model, "vision_tower.c.weight", [9.0, 9.0, 9.0, 9.0])
    change = movement(before, model)
    # One group: ||delta|| = sqrt(9 + 16) = 5 over ||before|| = sqrt(9 + 16 + 0) = 5; 2 of 4 elements moved.
    assert change["groups"] == {"language_layers": {"relative_l2": pytest.approx(1.0), "elements": 4, "moved": 2}}
    assert change["elements"] == 4 and change["moved"] == 2 and change["unchanged"] is False
    assert "why" not in change


def test_lora_matrices_are_groups_of_their_own_and_b_from_zero_records_its_norm():
    names = {"language_model__q__lora_A__default__weight": [1.0, 2.0, 2.0],
             "language_model__q__lora_B__default__weight": [0.0, 0.0]}
    model = _module(**names)
    before = snapshot(model)
    _set(model, "language_model.q.lora_B.default.weight", [0.6, 0.8])
    change = movement(before, model)
    # A untouched (relative 0 of ||A|| = 3); B started at zero: its absolute norm, sqrt(0.36 + 0.64) = 1.
    assert change["groups"] == {
        "language_layers/lora_A": {"relative_l2": 0.0, "elements": 3, "moved": 0},
        "language_layers/lora_B": {"l2": pytest.approx(1.0), "elements": 2, "moved": 2}}
    assert change["unchanged"] is False


def test_a_run_that_moved_nothing_or_left_every_lora_b_at_zero_is_unchanged():
    model = _module(language_model__w=[1.0, -1.0])
    change = movement(snapshot(model), model)
    assert change["unchanged"] is True and change["why"] == "none of the 2 trained parameters changed"
    assert change["groups"]["language_layers"] == {"relative_l2": 0.0, "elements": 2, "moved": 0}
    # A trained (moved), every B still zero: the adapter's update B A is zero, nothing changed.
    model = _module(language_model__q__lora_A__default__weight=[1.0, 1.0],
                    language_model__q__lora_B__default__weight=[0.0],
                    language_model__k__lora_B__default__weight=[0.0])
    before = snapshot(model)
    _set(model, "language_model.q.lora_A.default.weight", [1.0, 2.0])
    change = movement(before, model)
    assert change["moved"] == 1 and change["unchanged"] is True and "LoRA B" in change["why"]
    assert change["groups"]["language_layers/lora_A"]["relative_l2"] == pytest.approx(1 / math.sqrt(2))
    # One B of two moved: the adapter changes the model.
    _set(model, "language_model.k.lora_B.default.weight", [0.5])
    assert movement(before, model)["unchanged"] is False


def test_the_snapshot_is_a_copy():
    model = _module(language_model__w=[1.0])
    before = snapshot(model)
    _set(model, "language_model.w", [2.0])
    assert before["language_model.w"].tolist() == [1.0]
