"""RMU, SalUn and task-vector negation (issue #13): RMU's steering target and loss against the
formula by hand, its hooks gone after training; SalUn's top-fraction mask and masked gradients;
the task-vector arithmetic; one tiny end-to-end run of each."""

import copy
import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmu_bench.api.context import UnlearningContext
from mmu_bench.api.losses import nll
from mmu_bench.cli import main
from mmu_bench.spec.registry import resolve_method
from small import SMALL

SPECS = {"rmu": "mmu_bench.methods.rmu:RMU", "salun": "mmu_bench.methods.salun:SalUn",
         "task_vector": "mmu_bench.methods.task_vector:TaskVector"}


def method(name, **config):
    cls = resolve_method(SPECS[name]).cls
    return cls(cls.Config(**config))


# -- a toy "language model": model.layers[i].mlp.{up,down}_proj --------------------------------

class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.mlp = nn.Module()
        self.mlp.up_proj, self.mlp.down_proj = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)

    def forward(self, h):
        return (h + self.mlp.down_proj(torch.tanh(self.mlp.up_proj(h)))), None  # a tuple, as HF layers may return


class Toy(nn.Module):
    def __init__(self, d=6, depth=4, vocab=11):
        super().__init__()
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(vocab, d)
        self.model.layers = nn.ModuleList(Block(d) for _ in range(depth))
        self.lm_head = nn.Linear(d, vocab)

    @property
    def device(self):
        return self.lm_head.weight.device

    @property
    def dtype(self):
        return self.lm_head.weight.dtype

    def hidden(self, input_ids, upto):
        h = self.model.embed_tokens(input_ids)
        for layer in self.model.layers[: upto + 1]:
            h = layer(h)[0]
        return h

    def forward(self, input_ids, attention_mask=None, **_):
        h = self.model.embed_tokens(input_ids)
        for layer in self.model.layers:
            h = layer(h)[0]
        return SimpleNamespace(logits=self.lm_head(h))


class Fixed:
    """A data set of one batch, drawn again and again."""

    def __init__(self, batch, n=4):
        self.batch, self.n = batch, n

    def __len__(self):
        return self.n

    def batches(self, batch_size, seed):
        while True:
            yield dict(self.batch)


def batch(seed, b=2, t=5, vocab=11):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (b, t), generator=g)
    labels = ids.clone()
    labels[:, :2] = -100
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def context(model, forget, retain, reference=None, seed=0):
    data = SimpleNamespace(forget=Fixed(forget), retain=Fixed(retain))
    loader = (lambda role: reference) if reference is not None else None
    return UnlearningContext(model=model, processor=None, config=None, data=data, seed=seed, benchmark="toy",
                             reference_loader=loader, progress=False)


# -- RMU ------------------------------------------------------------------------------------

def test_rmu_control_vector_is_a_seeded_unit_direction_times_the_coefficient():
    from mmu_bench.methods.rmu import control_vector

    c = control_vector(16, 6.5, seed=3)
    assert c.shape == (1, 1, 16)
    assert torch.allclose(c.norm(), torch.tensor(6.5))
    assert (c >= 0).all()  # torch.rand: a direction in the positive orthant, as the reference's
    assert torch.equal(c, control_vector(16, 6.5, seed=3))
    assert not torch.equal(c, control_vector(16, 6.5, seed=4))
    u = torch.rand(1, 1, 16, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(c, 6.5 * u / u.norm())


def test_rmu_activation_mse_is_the_reference_mse_and_masks_positions():
    from mmu_bench.methods.rmu import activation_mse

    h, c = torch.randn(2, 3, 4), torch.randn(1, 1, 4)
    assert torch.allclose(activation_mse(h, c, torch.ones(2, 3)), F.mse_loss(h, c.expand_as(h)))
    mask = torch.tensor([[1, 1, 0], [0, 1, 0]])
    by_hand = ((h[0, 0] - c[0, 0]) ** 2).mean() + ((h[0, 1] - c[0, 0]) ** 2).mean() + ((h[1, 1] - c[0, 0]) ** 2).mean()
    assert torch.allclose(activation_mse(h, c, mask), by_hand / 3)


def test_rmu_loss_matches_the_formula_trains_only_the_chosen_mlps_and_removes_its_hooks():
    torch.manual_seed(0)
    model = Toy()
    frozen = copy.deepcopy(model)
    with torch.no_grad():  # a frozen model that differs, so that the retain term is not 0
        for p in frozen.parameters():
            p.add_(0.05 * torch.randn_like(p))
    frozen.eval().requires_grad_(False)
    forget, retain = batch(1), batch(2)
    rmu = method("rmu", layer=2, steering_coeff=4.0, alpha=3.0, lr=1e-2, steps=1)
    ctx = context(model, forget, retain, reference=frozen, seed=7)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        u = torch.rand(1, 1, 6, generator=torch.Generator().manual_seed(7))
        target = (4.0 * u / u.norm()).expand(2, 5, 6)
        expected = F.mse_loss(model.hidden(forget["input_ids"], 2), target) + 3.0 * F.mse_loss(
            model.hidden(retain["input_ids"], 2), frozen.hidden(retain["input_ids"], 2))
    rmu.setup(ctx)
    assert ctx.extras["rmu_trained_params"] == [f"model.layers.{i}.mlp.down_proj.{k}" for i in (0, 1, 2)
                                                for k in ("bias", "weight")]
    rmu.unlearn(ctx)
    logged = [h["loss"] for h in ctx.history if "loss" in h]
    assert logged == [pytest.approx(expected.item(), rel=1e-5)]
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved == set(ctx.extras["rmu_trained_params"])
    assert all(p.requires_grad for p in model.parameters())  # flags restored
    for m in (model, frozen):
        assert all(not layer._forward_hooks for layer in m.model.layers)


def test_rmu_default_layer_is_the_reference_relative_depth():
    rmu = method("rmu")
    assert [rmu._layer(depth) for depth in (32, 28, 2)] == [7, 6, 0]
    with pytest.raises(ValueError):
        method("rmu", layer=5)._layer(4)
    with pytest.raises(ValueError):
        method("rmu", positions="some")


# -- SalUn -----------------------------------------------------------------------------------

def test_salun_mask_keeps_exactly_the_top_fraction_by_gradient_magnitude():
    from mmu_bench.methods.salun import top_fraction

    scores = {"a": torch.tensor([[0.1, 0.9], [0.5, 0.2]]), "b": torch.tensor([0.7, 0.3, 0.05, 0.6])}
    mask = top_fraction(scores, 0.5)  # 8 elements: the 4 largest, 0.9, 0.7, 0.6, 0.5
    assert torch.equal(mask["a"], torch.tensor([[False, True], [True, False]]))
    assert torch.equal(mask["b"], torch.tensor([True, False, False, True]))
    ties = top_fraction({"x": torch.ones(5)}, 0.5)  # int(5 * 0.5) = 2, ties by position
    assert torch.equal(ties["x"], torch.tensor([True, True, False, False, False]))
    assert all(m.all() for m in top_fraction(scores, 1.0).values())


def test_salun_saliency_is_the_magnitude_of_the_summed_forget_gradient():
    from mmu_bench.methods.salun import gradient_magnitude

    torch.manual_seed(0)
    model = Toy(depth=1)
    batches = [batch(1), batch(2)]
    params = dict(model.named_parameters())
    got = gradient_magnitude(model, params, batches, progress=False)
    grads = [torch.autograd.grad(nll(model, b), list(params.values())) for b in batches]
    for i, n in enumerate(params):
        assert torch.allclose(got[n], (grads[0][i] + grads[1][i]).abs(), atol=1e-6)


def test_salun_masked_gradients_are_zero_and_masked_out_weights_do_not_move():
    torch.manual_seed(0)
    model = Toy(depth=1)
    salun = method("salun", weight_decay=0.1, lr=1e-2)
    ctx = context(model, batch(1), batch(2))
    salun.mask = {n: torch.rand(p.shape) < 0.5 for n, p in model.named_parameters()}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = salun.make_optimizer(ctx)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    salun.after_backward(ctx)
    for n, p in model.named_parameters():
        assert (p.grad[~salun.mask[n]] == 0).all()
        assert torch.equal(p.grad[salun.mask[n]], grads[n][salun.mask[n]])
    optimizer.step()  # weight decay would move every element: the masked-out ones are restored
    for n, p in model.named_parameters():
        assert torch.equal(p[~salun.mask[n]], before[n][~salun.mask[n]])
        assert not torch.equal(p[salun.mask[n]], before[n][salun.mask[n]])


def test_salun_random_answers_are_other_answers_of_the_same_format():
    from mmu_bench.methods.salun import random_answers

    rows = [{"item_id": f"f{i}", "format": "open", "answer": f"a{i}"} for i in range(3)]
    pool = rows + [{"item_id": "r0", "format": "open", "answer": "b"}, {"item_id": "r1", "format": "mc", "answer": "C"}]
    got = random_answers(rows, pool, seed=0)
    assert got == random_answers(rows, pool, seed=0)
    for row in rows:
        assert got[row["item_id"]] != row["answer"] and got[row["item_id"]] in {"a0", "a1", "a2", "b"}


# -- task vector -----------------------------------------------------------------------------

def test_task_negation_is_theta0_minus_alpha_times_the_task_vector():
    from mmu_bench.methods.task_vector import negate

    torch.manual_seed(0)
    layer = nn.Linear(3, 2)
    params = dict(layer.named_parameters())
    theta_0 = {n: p.detach().clone() for n, p in params.items()}
    with torch.no_grad():  # "fine-tuning"
        for p in params.values():
            p.add_(torch.randn_like(p))
    theta_ft = {n: p.detach().clone() for n, p in params.items()}
    negate(params, theta_0, 0.7)
    for n, p in params.items():
        assert torch.equal(p, theta_0[n] - 0.7 * (theta_ft[n] - theta_0[n]))


def test_task_negation_of_a_fresh_lora_adapter_negates_its_update_exactly():
    from mmu_bench.methods.task_vector import negate

    a0, b0 = torch.randn(2, 4), torch.zeros(3, 2)
    a_ft, b_ft = a0 + torch.randn(2, 4), torch.randn(3, 2)
    params = {"l.lora_A.weight": nn.Parameter(a_ft.clone()), "l.lora_B.weight": nn.Parameter(b_ft.clone())}
    negate(params, {"l.lora_A.weight": a0, "l.lora_B.weight": b0}, 0.5, {"l.lora_B.weight": "l.lora_A.weight"})
    delta = params["l.lora_B.weight"] @ params["l.lora_A.weight"]
    assert torch.allclose(delta, b0 @ a0 - 0.5 * (b_ft @ a_ft - b0 @ a0))


# -- end to end ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SPECS))
def test_tiny_run(name, tmp_path):
    args = ["run", "--method", SPECS[name], "--method-arg", "steps=2", *SMALL, "--forget-ratio", "10",
            "--output-dir", str(tmp_path)]
    assert main(args) == 0
    [results] = tmp_path.glob("**/results.json")
    result = json.loads(results.read_text())
    assert result["method"]["name"] == name
    assert result["method"]["config"]["steps"] == 2
