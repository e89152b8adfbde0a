"""Saliency masks on hand-made models whose Fisher ratios are known."""

import pytest
import torch

from mmu_bench.api import saliency


class TwoSided(torch.nn.Module):
    """Parameter names like a LLaVA: a vision tower, a projector, a language model and a head.
    ``forward`` returns logits whose NLL gradient we can compute by hand."""

    def __init__(self):
        super().__init__()
        self.model = torch.nn.Module()
        self.model.vision_tower = torch.nn.Linear(2, 2, bias=False)
        self.model.multi_modal_projector = torch.nn.Linear(2, 2, bias=False)
        self.model.language_model = torch.nn.Module()
        self.model.language_model.embed_tokens = torch.nn.Embedding(3, 2)
        self.lm_head = torch.nn.Linear(2, 2, bias=False)


def test_module_groups_and_sides():
    names = dict(TwoSided().named_parameters())
    groups = {n: saliency.module_group(n) for n in names}
    assert groups == {"model.vision_tower.weight": "vision_tower", "model.multi_modal_projector.weight": "projector",
                      "model.language_model.embed_tokens.weight": "embeddings", "lm_head.weight": "lm_head"}
    assert saliency.module_group("model.visual.merger.mlp.0.weight") == "projector"  # Qwen2-VL
    assert saliency.module_group("base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.default.weight") \
        == "language_layers"  # LoRA
    assert set(saliency.select(TwoSided(), "vision")) == {"model.vision_tower.weight", "model.multi_modal_projector.weight"}
    assert set(saliency.select(TwoSided(), "language")) == {"model.language_model.embed_tokens.weight", "lm_head.weight"}
    with pytest.raises(ValueError, match="variant"):
        saliency.select(TwoSided(), "audio")


class Quadratic(torch.nn.Module):
    """NLL = sum(w * x): the gradient of a batch is x itself, so the Fisher diagonal is the
    mean of x**2 over batches."""

    def __init__(self, n):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(n))


def _fisher(model, xs, monkeypatch):
    monkeypatch.setattr(saliency, "nll", lambda m, batch: (m.w * batch["x"]).sum())
    return saliency.fisher_diagonal(model, {"w": model.w}, [{"x": torch.tensor(x)} for x in xs], progress=False)


def test_fisher_diagonal_is_the_mean_squared_gradient(monkeypatch):
    model = Quadratic(3)
    fisher = _fisher(model, [[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]], monkeypatch)
    assert fisher["w"].tolist() == pytest.approx([(1 + 9) / 2, (4 + 0) / 2, 0.0])
    assert model.w.grad is None  # gradients are cleared, no step taken
    assert model.w.detach().tolist() == [0.0, 0.0, 0.0]


def test_ratio_mask_by_hand(monkeypatch):
    model = Quadratic(4)
    forget = _fisher(model, [[2.0, 1.0, 0.0, 1.0]], monkeypatch)  # F_f = 4, 1, 0, 1
    keep = _fisher(model, [[1.0, 2.0, 0.0, 1.0]], monkeypatch)  # F_r = 1, 4, 0, 1
    # ratios: 4, 1/4, (0+eps)/(0+eps) = 1, 1
    assert saliency.ratio_mask(forget, keep, gamma=1.0)["w"].tolist() == [True, False, True, True]
    assert saliency.ratio_mask(forget, keep, gamma=2.0)["w"].tolist() == [True, False, False, False]
    assert saliency.ratio_mask(forget, keep, gamma=0.2)["w"].tolist() == [True, True, True, True]
    # Without any forget gradient an element carries no saliency (eps / eps = 1 is no evidence).
    assert saliency.ratio_mask(forget, keep, 1.0, require_forget_signal=True)["w"].tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="gamma"):
        saliency.ratio_mask(forget, keep, gamma=0)


def test_random_mask_keeps_the_sparsity_per_tensor_and_differs():
    mask = {"a": torch.tensor([True, False, False, True, False, False, False, False] * 8), "b": torch.zeros(5, dtype=bool)}
    rand = saliency.random_like(mask, seed=0)
    assert int(rand["a"].sum()) == int(mask["a"].sum()) == 16 and int(rand["b"].sum()) == 0
    assert not torch.equal(rand["a"], mask["a"])
    assert torch.equal(rand["a"], saliency.random_like(mask, seed=0)["a"])  # seeded


def test_complete_masks_out_parameters_outside_the_side_and_sparsity_reports_groups():
    model = TwoSided()
    vision = {n: torch.ones_like(p, dtype=torch.bool) for n, p in saliency.select(model, "vision").items()}
    vision["model.vision_tower.weight"][0, 0] = False
    full = saliency.complete(vision, model)
    assert not full["lm_head.weight"].any() and not full["model.language_model.embed_tokens.weight"].any()
    report = saliency.sparsity(full)
    assert report["vision_tower"] == {"selected": 3, "total": 4, "fraction": 0.75}
    assert report["projector"]["fraction"] == 1.0 and report["lm_head"]["selected"] == 0
    assert report["all"] == {"selected": 7, "total": 4 + 4 + 6 + 4, "fraction": round(7 / 18, 6)}


def test_strict_guard_keeps_masked_out_parameters_bit_identical_under_adam_momentum():
    torch.manual_seed(0)
    model = TwoSided()
    params = dict(model.named_parameters())
    mask = {n: torch.rand_like(p) > 0.5 for n, p in params.items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)

    def step(masked):
        optimizer.zero_grad()
        loss = sum((p ** 2).sum() for p in model.parameters())
        loss.backward()
        if masked:
            saliency.mask_gradients(model, mask)
        optimizer.step()

    step(masked=False)  # a "retain" step: builds momentum on every element
    before = {n: p.detach().clone() for n, p in params.items()}
    with saliency.masked_out_fixed(model, mask):
        step(masked=True)  # a "forget" step
    for n, p in params.items():
        assert torch.equal(p.detach()[~mask[n]], before[n][~mask[n]])  # bit-identical
        assert not torch.equal(p.detach()[mask[n]], before[n][mask[n]])  # the masked ones moved
    # Without the guard, momentum moves the masked-out elements although their gradient is 0.
    before = {n: p.detach().clone() for n, p in params.items()}
    step(masked=True)
    assert any(not torch.equal(p.detach()[~mask[n]], before[n][~mask[n]]) for n, p in params.items())
