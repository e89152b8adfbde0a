"""UNDIAL, SCRUB and DPO (IdkDPO), issue #13: each loss against its formula on hand-made
tensors, SCRUB's max/min schedule, and one tiny end-to-end run per method."""

import copy
import json
import math
from types import SimpleNamespace

import pytest
import torch

from mmu_bench.api.context import MethodData, UnlearningContext
from mmu_bench.api.encoding import IGNORE
from mmu_bench.cli import main
from mmu_bench.methods.dpo import dpo_loss
from mmu_bench.methods.scrub import SCRUB, distill_kl, schedule, scrub_loss
from mmu_bench.methods.undial import adjusted_logits, undial_loss
from small import SMALL


def softmax(xs):
    z = sum(math.exp(x) for x in xs)
    return [math.exp(x) / z for x in xs]


# -- UNDIAL -------------------------------------------------------------------------------------

def test_undial_lowers_the_target_logit_by_beta_and_nothing_else():
    teacher = torch.tensor([[[1.0, 2.0, 3.0], [0.5, 0.5, 0.5], [4.0, -1.0, 0.0]]])
    targets = torch.tensor([[2, 0, IGNORE]])
    out = adjusted_logits(teacher, targets, beta=2.5)
    assert out.tolist() == [[[1.0, 2.0, 0.5], [-2.0, 0.5, 0.5], [4.0, -1.0, 0.0]]]  # IGNORE: unchanged
    assert torch.equal(adjusted_logits(teacher, targets, beta=0.0), teacher)


def test_undial_loss_is_cross_entropy_to_the_adjusted_teacher_on_answer_tokens():
    beta = 2.0
    labels = torch.tensor([[IGNORE, 2, 0]])  # position 0 predicts token 2, position 1 token 0
    teacher = torch.tensor([[[1.0, 2.0, 3.0], [0.5, 0.5, 0.5], [9.0, 9.0, 9.0]]])
    student = torch.tensor([[[0.0, 0.0, 0.0], [0.0, math.log(2.0), 0.0], [1.0, 5.0, 2.0]]])
    q1 = softmax([0.5 - beta, 0.5, 0.5])
    ce1 = -sum(q * math.log(p) for q, p in zip(q1, [0.25, 0.5, 0.25]))
    expected = (math.log(3.0) + ce1) / 2  # uniform student at position 0: CE = ln 3 for any target
    assert undial_loss(student, teacher, labels, beta).item() == pytest.approx(expected, rel=1e-6)
    # positions=all: a prompt position (label IGNORE) counts too, distilled to the unchanged teacher.
    labels = torch.tensor([[IGNORE, IGNORE, 0]])
    q0 = softmax([1.0, 2.0, 3.0])
    ce0 = -sum(q * math.log(1 / 3) for q in q0)
    mask = torch.tensor([[1, 1]])
    assert undial_loss(student, teacher, labels, beta, mask).item() == pytest.approx((ce0 + ce1) / 2, rel=1e-6)


# -- SCRUB --------------------------------------------------------------------------------------

def test_scrub_schedule_runs_max_steps_in_the_first_msteps_epochs_then_min_steps():
    plan = schedule(epochs=3, msteps=2, max_steps=2, min_steps=3)
    assert [kind for _, kind in plan] == ["max"] * 2 + ["min"] * 3 + ["max"] * 2 + ["min"] * 3 + ["min"] * 3
    assert [epoch for epoch, _ in plan] == [1] * 5 + [2] * 5 + [3] * 3
    # steps cuts the schedule, or continues it with min-only epochs.
    assert schedule(3, 2, 2, 3, total=3) == [(1, "max"), (1, "max"), (1, "min")]
    assert schedule(1, 1, 1, 1, total=4) == [(1, "max"), (1, "min"), (2, "min"), (3, "min")]
    assert schedule(2, 0, 5, 1) == [(1, "min"), (2, "min")]  # msteps=0: no max phase at all


def test_scrub_max_step_ascends_and_min_step_descends_the_tempered_kl():
    labels = torch.tensor([[IGNORE, 1]])  # one answer position (position 0 predicts token 1)
    ref = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])
    cur = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])
    T = 2.0
    p, q = softmax([1.0, 0.0]), softmax([0.0, 0.5])
    kl = sum(a * math.log(a / b) for a, b in zip(p, q)) * T**2
    assert distill_kl(ref, cur, labels, T).item() == pytest.approx(kl, rel=1e-6)
    cfg = SCRUB.Config(kd_T=T, kl_weight=0.5, nll_weight=0.25)
    assert scrub_loss("max", cur, ref, labels, cfg).item() == pytest.approx(-kl, rel=1e-6)  # maximise the KL
    nll = -math.log(softmax([0.0, 1.0])[1])
    assert scrub_loss("min", cur, ref, labels, cfg).item() == pytest.approx(0.25 * nll + 0.5 * kl, rel=1e-6)
    assert scrub_loss("max", ref, ref, labels, cfg).item() == pytest.approx(0.0, abs=1e-7)


class TinyLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(5, 5)

    device = property(lambda self: self.emb.weight.device)
    dtype = property(lambda self: self.emb.weight.dtype)

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.emb(input_ids))


class TinySet:
    """``n`` rows of token ``tag``: which set a step drew from shows in its batch."""

    def __init__(self, n, tag):
        self.n, self.tag, self.drawn = n, tag, 0

    def __len__(self):
        return self.n

    def steps_per_epoch(self, batch_size):
        return math.ceil(self.n / batch_size)

    def batches(self, batch_size, seed):
        while True:
            self.drawn += 1
            ids = torch.tensor([[self.tag, self.tag, self.tag]])
            yield {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([[IGNORE, 1, 2]])}


def test_scrub_unlearn_follows_the_schedule_and_reports_each_epoch():
    model = TinyLM()
    forget, retain = TinySet(2, 3), TinySet(3, 4)
    calls = []
    method = SCRUB(SCRUB.Config(epochs=3, msteps=2, batch_size=1, lr=1e-2))
    ctx = UnlearningContext(model=model, processor=None, config=method.config, data=MethodData(forget, retain, None),
                            seed=0, benchmark="tiny", reference_loader=lambda role: copy.deepcopy(model),
                            progress=False, on_step=lambda step, total: calls.append((step, total)))
    method.setup(ctx)
    method.unlearn(ctx)
    kinds = [h["kind"] for h in ctx.history]
    assert kinds == ["max"] * 2 + ["min"] * 3 + ["max"] * 2 + ["min"] * 3 + ["min"] * 3
    assert (forget.drawn, retain.drawn) == (4, 9)
    assert all(h["loss"] <= 0 for h in ctx.history if h["kind"] == "max")  # -KL
    assert all(h["loss"] > 0 for h in ctx.history if h["kind"] == "min")
    assert calls == [(5, 13), (10, 13), (13, 13)]  # after each epoch
    assert ctx.extras == {"max_steps": 4, "min_steps": 9}


# -- DPO ----------------------------------------------------------------------------------------

def test_dpo_loss_equals_its_formula_and_prefers_the_refusal():
    beta = 0.1
    win, lose, ref_win, ref_lose = (torch.tensor([x]) for x in (-2.0, -5.0, -4.0, -3.0))
    margin = (-2.0 + 4.0) - (-5.0 + 3.0)  # 4
    expected = -(2 / beta) * math.log(1 / (1 + math.exp(-beta * margin)))
    assert dpo_loss(win, lose, ref_win, ref_lose, beta).item() == pytest.approx(expected, rel=1e-6)
    # Policy == reference: (2 / beta) ln 2.
    assert dpo_loss(ref_win, ref_lose, ref_win, ref_lose, beta).item() == pytest.approx(2 / beta * math.log(2))
    # The refusal likelier (or the answer less likely) than under the reference: a lower loss.
    base = dpo_loss(ref_win, ref_lose, ref_win, ref_lose, beta)
    assert dpo_loss(ref_win + 1, ref_lose, ref_win, ref_lose, beta) < base
    assert dpo_loss(ref_win, ref_lose - 1, ref_win, ref_lose, beta) < base
    assert dpo_loss(ref_win - 1, ref_lose + 1, ref_win, ref_lose, beta) > base


# -- end to end ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name,spec,args", [
    ("undial", "mmu_bench.methods.undial:UNDIAL", []),
    ("scrub", "mmu_bench.methods.scrub:SCRUB", ["--method-arg", "max_steps_per_epoch=1"]),
    ("dpo", "mmu_bench.methods.dpo:DPO", []),
])
def test_tiny_run_end_to_end(tmp_path, name, spec, args):
    assert main(["run", "--method", spec, "--method-arg", "steps=2", *args, *SMALL, "--forget-ratio", "10",
                 "--output-dir", str(tmp_path)]) == 0
    folder = sorted((tmp_path / "mmu-synth" / "tiny-llava" / name).iterdir())[-1]
    result = json.loads((folder / "results.json").read_text())
    assert result["method"]["name"] == name and result["method"]["config"]["steps"] == 2
    if name == "scrub":  # one max step, then one min step
        assert result["training"]["method_report"] == {"max_steps": 1, "min_steps": 1}
