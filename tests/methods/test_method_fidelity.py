"""Method fidelity (issue #12): MMUnlearner under LoRA (every variant on a tiny random-weight
LLaVA with a LoRA adapter, the full-weight saliency and its mapping onto the adapter), stage 2's
clip/mask order and constant schedule, the empty preserve set, and the KL_Min and IDK
reductions against hand-computed values."""

import json
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from mmu_bench.api import default_prompts, saliency
from mmu_bench.api.context import EncodedSet, MethodData, UnlearningContext
from mmu_bench.api.encoding import IGNORE
from mmu_bench.api.losses import joint_nll, kl_from_reference, nll
from mmu_bench.api.method import Batches, MethodConfig, UnlearningMethod
from mmu_bench.api.train import Stepper, lr_lambda
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.spec import registry
from mmu_bench.spec.config import method_config
from mmu_bench.spec.registry import resolve_method
from random_mllms import save_llava

BENCH = {"num_entities": 4, "train_views": 1, "heldout_views": 1, "text_variants": 1, "general_train_images": 4,
         "general_eval_images": 2, "general_eval_sums": 2}


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    return save_llava(tmp_path_factory.mktemp("hub") / "llava")


@pytest.fixture(scope="module")
def bench():
    from mmu_bench.data.synth import load

    return load(forget_ratio=10, **BENCH)


def provider(folder):
    return registry.make_model(f"hf:{folder}", progress=False, dtype="float32", device="cpu")


def method(name, **config):
    cls = resolve_method(name).cls
    return cls(cls.Config(**config))


def context(model, processor, bench, config, preserve_text=None):
    prompts = default_prompts()
    text = bench.preserve_text() if preserve_text is None else preserve_text
    data = MethodData(*(EncodedSet(rows, processor, prompts) for rows in (bench.forget_set(), bench.retain_set(), text)))
    return UnlearningContext(model=model, processor=processor, config=config, data=data, seed=0,
                             benchmark=bench.name, progress=False)


FAST = {"lr": 1e-2, "steps": 2, "batch_size": 2, "mask_batch_size": 2, "mask_batches": 1, "retain_per_forget": 1}


def mmunlearner_on_lora(folder, bench, preserve_text=None, **config):
    """MMUnlearner from setup to the end of stage 2 on the tiny random LLaVA with a fresh LoRA
    adapter over the sides it asks for: (ctx, method, parameters before, after)."""
    made = provider(folder)
    mmu = method("mmunlearner", **{**FAST, **config})
    torch.manual_seed(0)
    model = made.trainable(made.base_model(), mmu.trainable_sides())
    ctx = context(model, made.processor(), bench, mmu.config, preserve_text)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    mmu.setup(ctx)
    mmu.unlearn(ctx)
    return ctx, mmu, before, {n: p.detach().clone() for n, p in model.named_parameters()}


# -- MMUnlearner on a LoRA model: every variant -------------------------------------------------


@pytest.mark.parametrize("saliency_on", ["full", "adapter"])
@pytest.mark.parametrize("variant", ["language", "vision", "both"])
def test_every_mmunlearner_variant_runs_on_a_lora_llava(llava, bench, variant, saliency_on):
    runs = {kind: mmunlearner_on_lora(llava, bench, variant=variant, saliency_on=saliency_on, mask=kind)
            for kind in ("saliency", "random")}
    sides = {"language": {"language_layers"}, "vision": {"vision_tower", "projector"}}
    wanted = set().union(*(sides[s] for s in (("language", "vision") if variant == "both" else (variant,))))
    for kind, (ctx, mmu, before, after) in runs.items():
        report = ctx.extras
        assert report["mask_kind"] == kind and report["mask_variant"] == variant
        sparsity = report["mask_sparsity"]
        # The adapter covers the vision tower and projector exactly when the mask needs them.
        assert ({"vision_tower", "projector"} <= set(sparsity)) is (variant != "language")
        for group, counts in sparsity.items():
            if group != "all" and group not in wanted:
                assert counts["selected"] == 0, (group, counts)  # outside the side: masked out
        assert sum(sparsity[g]["selected"] for g in wanted) > 0
        changed = {n for n in after if not torch.equal(after[n], before[n])}
        assert changed and all("lora_" in n for n in changed)  # the base weights never move
        assert all(not p.requires_grad for n, p in ctx.model.named_parameters() if "lora_" not in n)  # restored
        if saliency_on == "full":
            facts = report["full_weight_saliency"]
            assert report["mask_scored_on"].startswith("full weights")
            assert 0.0 < facts["full_weight_mask"]["fraction"] < 1.0
            for key in ("jaccard_full_vs_mapped", "jaccard_full_vs_adapter_saliency"):
                assert facts[key] is None or 0.0 <= facts[key] <= 1.0
            # A's columns and B's rows: whole lines of the adapter, as the mapping says.
            for layer in saliency.lora_layers(ctx.model).values():
                a, b = mmu.mask[layer.a], mmu.mask[layer.b]
                assert torch.equal(a, a[:1].expand_as(a)) and torch.equal(b, b[:, :1].expand_as(b))
        else:
            assert report["mask_scored_on"] == "adapter" and "full_weight_saliency" not in report
            # A fresh adapter's A has no gradient while B = 0: the adapter's saliency never selects it.
            if kind == "saliency":
                assert not any(m.any() for n, m in mmu.mask.items() if "lora_A" in n)
    (_, sal, *_), (_, rand, *_) = runs["saliency"], runs["random"]
    if saliency_on == "full":  # as many rows and columns, other ones
        lines = [r[0].extras["full_weight_saliency"]["adapter_lines"] for r in runs.values()]
        assert lines[0] == lines[1]
    else:  # as many elements per tensor, other ones
        assert all(int(sal.mask[n].sum()) == int(rand.mask[n].sum()) for n in sal.mask)
    assert any(not torch.equal(sal.mask[n], rand.mask[n]) for n in sal.mask if sal.mask[n].any())


def test_lora_covers_the_vision_tower_and_projector_when_asked(llava):
    made = provider(llava)
    language = made.trainable(made.base_model())
    both = made.trainable(made.base_model(), ("language", "vision"))
    groups = lambda m: {saliency.module_group(n) for n, p in m.named_parameters() if p.requires_grad}  # noqa: E731
    assert groups(language) == {"language_layers"}
    assert groups(both) == {"language_layers", "vision_tower", "projector"}
    summary = saliency.trainable_summary(both, ("language", "vision"))
    assert summary["sides"] == ["language", "vision"] and summary["lora"]["rank"] == 16
    assert set(summary["lora"]["adapted_layers"]) == {"language_layers", "vision_tower", "projector"}
    with pytest.raises(ValueError, match="sides"):
        made.trainable(made.base_model(), ("audio",))
    # A vision mask on a language-only adapter has nothing to mask: a clear error, not a no-op.
    assert method("mmunlearner", variant="vision").trainable_sides() == ("language", "vision")
    assert method("mmunlearner").trainable_sides() == ("language",)
    assert UnlearningMethod().trainable_sides() == ("language",)


@pytest.mark.parametrize("version", ["2", "2.5"])
def test_lora_covers_qwen_vl_vision_tower_and_merger_when_asked(tmp_path, version):
    from random_mllms import save_qwen

    made = provider(save_qwen(tmp_path / "qwen", version))
    summary = saliency.trainable_summary(made.trainable(made.base_model(), ("language", "vision")), ("language", "vision"))
    assert set(summary["lora"]["adapted_layers"]) == {"language_layers", "vision_tower", "projector"}  # merger = projector
    language = saliency.trainable_summary(made.trainable(made.base_model()), ("language",))
    assert set(language["elements"]) == {"language_layers"}


def test_the_full_weight_fisher_under_lora_is_the_plain_models(llava, bench):
    """``saliency_on=full`` scores what the paper scores: the Fisher of W in the LoRA model
    (B = 0) equals the Fisher of the same weights in the model without an adapter."""
    made = provider(llava)
    plain = made.base_model()
    peft = made.trainable(made.base_model())
    ctx = context(peft, made.processor(), bench, None)
    batches = [next(ctx.data.forget.batches(2, seed=0))]
    layers = list(saliency.lora_layers(peft).values())[:3]
    named = dict(peft.named_parameters())
    weights = {layer.weight: named[layer.weight] for layer in layers}
    with saliency.requiring_grad(weights.values()):
        got = saliency.fisher_diagonal(peft, weights, batches, progress=False)
    assert all(not p.requires_grad and p.grad is None for p in weights.values())
    plain_names = {layer.weight: layer.weight.replace("base_model.model.", "", 1).replace(".base_layer", "")
                   for layer in layers}
    plain_params = dict(plain.named_parameters())
    expected = saliency.fisher_diagonal(plain, {n: plain_params[plain_names[n]] for n in weights}, batches,
                                        progress=False)
    for n in weights:
        assert got[n].abs().sum() > 0
        assert torch.allclose(got[n], expected[n], rtol=1e-4, atol=1e-12)


# -- the mapping rule, by hand ------------------------------------------------------------------

W_MASK = torch.tensor([[1, 1, 1, 0],  # 3/4 selected: row kept
                       [1, 0, 0, 0],  # 1/4: not kept
                       [1, 1, 0, 0]], dtype=torch.bool)  # 2/4 = 0.5: kept (>= 0.5)
# columns: 3/3, 2/3 kept; 1/3, 0/3 not


def test_lines_of_a_full_weight_mask_by_hand():
    rows, cols = saliency.lines(W_MASK, share=0.5)
    assert rows.tolist() == [True, False, True] and cols.tolist() == [True, True, False, False]
    a, b = saliency.adapter_masks(rows, cols, rank=2)
    assert a.tolist() == [[True, True, False, False]] * 2  # A: r x in, its kept columns
    assert b.tolist() == [[True, True], [False, False], [True, True]]  # B: out x r, its kept rows
    moved = saliency.induced(a, b)  # rows 0 and 2 whole, plus columns 0 and 1 of row 1
    assert moved.tolist() == [[True] * 4, [True, True, False, False], [True] * 4]
    assert saliency.jaccard([(W_MASK, moved)]) == pytest.approx(6 / 10)
    # share 0 = any selected element: every row, columns 0-2; share 1: no row, column 0 only.
    rows, cols = saliency.lines(W_MASK, share=0.0)
    assert rows.tolist() == [True] * 3 and cols.tolist() == [True, True, True, False]
    rows, cols = saliency.lines(W_MASK, share=1.0)
    assert rows.tolist() == [False] * 3 and cols.tolist() == [True, False, False, False]
    a, b = saliency.adapter_masks(rows, cols, rank=2)
    assert saliency.jaccard([(W_MASK, saliency.induced(a, b))]) == pytest.approx(3 / 6)
    with pytest.raises(ValueError, match="share"):
        saliency.lines(W_MASK, share=1.5)


def test_onto_adapter_maps_each_layer_and_reports_the_overlaps():
    layer = saliency.LoraLayer("w", "a", "b")
    own_b = torch.zeros(3, 2, dtype=torch.bool)
    own_b[1, 0] = True  # the adapter's own saliency: row 1 only (and no A column)
    mask = {"w": W_MASK, "a": torch.zeros(2, 4, dtype=torch.bool), "b": own_b, "norm": torch.tensor([True, False])}
    out, facts = saliency.onto_adapter(mask, {"layer": layer}, share=0.5)
    assert set(out) == {"a", "b", "norm"} and torch.equal(out["norm"], mask["norm"])
    assert out["b"].tolist() == [[True, True], [False, False], [True, True]]
    assert facts["full_weight_mask"] == {"selected": 6, "total": 12, "fraction": 0.5}
    assert facts["adapter_lines"] == {"share": 0.5, "rows": 2, "rows_total": 3, "columns": 2, "columns_total": 4}
    assert facts["jaccard_full_vs_mapped"] == pytest.approx(0.6) and facts["mapped_fraction"] == pytest.approx(10 / 12)
    assert facts["jaccard_full_vs_adapter_saliency"] == pytest.approx(1 / 9)  # row 1: {(1,0)} of 6 + 3
    rand, rfacts = saliency.onto_adapter(mask, {"layer": layer}, share=0.5, seed=3)
    assert rfacts["adapter_lines"] == facts["adapter_lines"]  # as many rows and columns
    assert int(rand["norm"].sum()) == 1
    assert saliency.onto_adapter(mask, {"layer": layer}, 0.5, seed=3)[0]["b"].tolist() == rand["b"].tolist()


# -- stage 2: clip before or after the mask, constant schedule ----------------------------------


class Toy(UnlearningMethod):
    name = "toy"

    def make_optimizer(self, ctx):
        return torch.optim.SGD(ctx.model.parameters(), lr=1.0)


def toy_step(where: str) -> list[float]:
    """One SGD step (lr 1) on loss = 3 w0 + 4 w1 (gradient (3, 4), norm 5), clip 1.0, mask (1, 0)."""
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ctx = SimpleNamespace(model=model, accelerator=None, log=lambda **_: None)
    stepper = Stepper(Toy(MethodConfig(max_grad_norm=1.0, schedule="constant")), ctx, total=1)
    mask = lambda _ctx: model.weight.grad.mul_(torch.tensor([[1.0, 0.0]]))  # noqa: E731
    stepper.step((model.weight * torch.tensor([[3.0, 4.0]])).sum(), 0, **{where: mask})
    return model.weight.detach().view(-1).tolist()


def test_clip_before_mask_and_mask_before_clip_by_hand():
    # mask, then clip: (3, 0) has norm 3 -> (1, 0). Clip, then mask: (3, 4) / 5 -> (0.6, 0.8) -> (0.6, 0).
    assert toy_step("after_backward") == pytest.approx([-1.0, 0.0])
    assert toy_step("after_clip") == pytest.approx([-0.6, 0.0])


def test_mmunlearner_passes_its_mask_where_clip_before_mask_says(monkeypatch, llava, bench):
    from mmu_bench.methods import mmunlearner

    seen = []

    class Recording(Stepper):
        def step(self, loss, step, after_backward=None, after_clip=None, **log):
            seen.append((log["kind"], after_backward is not None, after_clip is not None))
            super().step(loss, step, after_backward, after_clip, **log)

    monkeypatch.setattr(mmunlearner, "Stepper", Recording)
    for flag in (False, True):
        seen.clear()
        ctx, *_ = mmunlearner_on_lora(llava, bench, clip_before_mask=flag, steps=1)
        assert seen == [("forget", not flag, flag), ("retain", False, False)]


def test_the_constant_schedule_keeps_the_lr_and_is_the_real_benchmarks_default(llava, bench):
    assert [lr_lambda(MethodConfig(schedule="constant"), 10)(s) for s in range(10)] == [1.0] * 10
    ctx, *_ = mmunlearner_on_lora(llava, bench, schedule="constant", steps=2)
    assert [h["lr"] for h in ctx.history] == [FAST["lr"]] * 4  # 2 forget + 2 retain steps
    ctx, *_ = mmunlearner_on_lora(llava, bench, schedule="linear", steps=2)
    lrs = [h["lr"] for h in ctx.history]
    assert lrs[0] == FAST["lr"] and lrs == sorted(lrs, reverse=True) and lrs[-1] < lrs[0]
    cls = resolve_method("mmunlearner").cls
    for bench_name in ("mllmu", "clear"):
        cfg = method_config(cls, bench_name, {})
        assert (cfg.schedule, cfg.clip_before_mask, cfg.saliency_on) == ("constant", True, "full")
    synth = method_config(cls, "mmu-synth", {})
    assert (synth.schedule, synth.clip_before_mask) == ("constant", False)  # as before (#12 leaves it)


# -- the empty preserve set ---------------------------------------------------------------------


def test_an_empty_text_preserve_set_is_an_error_or_a_recorded_warning(llava, bench):
    empty = bench.preserve_text().select([])
    with pytest.raises(MMUBenchError, match="no text-only QA rows.*variant=vision.*empty_text_ok"):
        mmunlearner_on_lora(llava, bench, preserve_text=empty, steps=1)
    with pytest.warns(UserWarning, match="no text-only QA rows"):
        ctx, *_ = mmunlearner_on_lora(llava, bench, preserve_text=empty, steps=1, empty_text_ok=True)
    assert "retain VQA alone" in ctx.extras["preserve_warning"]
    assert ctx.extras["preserve_rows"] == {"text": 0, "retain_vqa": len(bench.retain_set())}
    # The vision mask's preserve set never had text: no error there.
    ctx, *_ = mmunlearner_on_lora(llava, bench, preserve_text=empty, steps=1, variant="vision")
    assert "preserve_warning" not in ctx.extras


# -- KL_Min's reduction -------------------------------------------------------------------------


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def test_kl_sum_and_mean_reductions_by_hand():
    # Two rows of three positions, vocabulary 2. Position t's distributions: ref P[b][t], model Q[b][t].
    P = [[[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]], [[0.6, 0.4], [0.7, 0.3], [0.5, 0.5]]]
    Q = [[[0.5, 0.5], [0.4, 0.6], [0.3, 0.7]], [[0.1, 0.9], [0.5, 0.5], [0.8, 0.2]]]
    ref_logits, logits = torch.log(torch.tensor(P)), torch.log(torch.tensor(Q))
    labels = torch.tensor([[IGNORE, 0, 1], [IGNORE, 1, IGNORE]])  # predicted from (0,0), (0,1), (1,0)
    attention = torch.tensor([[1, 1, 1], [1, 1, 0]])  # row 1's last position is padding
    k = [[kl(P[b][t], Q[b][t]) for t in range(3)] for b in range(2)]
    answer = [k[0][0], k[0][1], k[1][0]]
    everything = [k[0][0], k[0][1], k[0][2], k[1][0], k[1][1]]
    assert kl_from_reference(ref_logits, logits, labels).item() == pytest.approx(sum(answer) / 3)
    assert kl_from_reference(ref_logits, logits, labels, "sum").item() == pytest.approx(sum(answer) / 2)
    assert kl_from_reference(ref_logits, logits, labels, "sum", attention).item() == pytest.approx(sum(everything) / 2)
    assert kl_from_reference(ref_logits, logits, labels, "mean", attention).item() == pytest.approx(sum(everything) / 5)
    # Without padding, sum over every position is MLLMU-Bench's F.kl_div(..., reduction="batchmean").
    ones = torch.ones(2, 3, dtype=torch.long)
    reference = F.kl_div(F.log_softmax(logits, -1), F.softmax(ref_logits, -1), reduction="batchmean")
    assert kl_from_reference(ref_logits, logits, labels, "sum", ones).item() == pytest.approx(reference.item())
    with pytest.raises(ValueError, match="reduction"):
        kl_from_reference(ref_logits, logits, labels, "batchmean")


def test_kl_min_options_and_their_defaults_per_benchmark():
    cls = resolve_method("kl_min").cls
    for bench_name, expected in (("mllmu", ("sum", "all")), ("clear", ("sum", "all")), ("mmu-synth", ("mean", "answer"))):
        cfg = method_config(cls, bench_name, {})
        assert (cfg.kl_reduction, cfg.kl_positions) == expected
    with pytest.raises(ValueError, match="kl_reduction"):
        cls.Config(kl_reduction="batchmean")
    with pytest.raises(ValueError, match="kl_positions"):
        cls.Config(kl_positions="labels")


# -- IDK: refusals and reduction ----------------------------------------------------------------


class Lookup(torch.nn.Module):
    """Logits of each position from its input token: token 0 -> p(1) = 3/4, token 1 -> 1/2 each."""

    def forward(self, input_ids, **_):
        table = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
        return SimpleNamespace(logits=table[input_ids])


FORGET = {"input_ids": torch.tensor([[0, 0, 1]]), "labels": torch.tensor([[IGNORE, 1, 1]])}  # 2 tokens, p 3/4 each
RETAIN = {"input_ids": torch.tensor([[1, 1]]), "labels": torch.tensor([[IGNORE, 0]])}  # 1 token, p 1/2


def test_idk_joint_token_mean_and_separate_means_by_hand():
    s_f, s_r = -2 * math.log(0.75), math.log(2.0)
    model = Lookup()
    assert nll(model, FORGET).item() == pytest.approx(s_f / 2)
    assert joint_nll(model, [FORGET, RETAIN]).item() == pytest.approx((s_f + s_r) / 3)
    assert joint_nll(model, [FORGET, RETAIN], [1.0, 2.0]).item() == pytest.approx((s_f + 2 * s_r) / 3)
    ctx = SimpleNamespace(model=model)
    batch = Batches(forget=FORGET, retain=RETAIN, step=0)
    joint = method("idk", reduction="joint").loss(ctx, batch).item()
    separate = method("idk").loss(ctx, batch).item()
    assert joint == pytest.approx((s_f + s_r) / 3) and separate == pytest.approx(s_f / 2 + s_r)
    assert abs(joint - separate) > 0.1  # the two reductions differ here


def test_tofu_refusals_are_drawn_per_item_from_the_seed(bench):
    from mmu_bench.api.refusals import TOFU
    from mmu_bench.methods.idk import tofu_refusal

    assert len(TOFU) == 100 and TOFU[0] == "I'm not certain about that." and TOFU[-1] == "I'm not sure I can help with that."
    ids = [f"item-{i}" for i in range(40)]
    first = [tofu_refusal(0, i) for i in ids]
    assert first == [tofu_refusal(0, i) for i in ids] and set(first) <= set(TOFU)
    assert len(set(first)) > 10  # a refusal per item, not one for all
    assert first != [tofu_refusal(1, i) for i in ids]  # another seed, other draws
    idk = method("idk", refusals="tofu")
    ctx = context(None, SimpleNamespace(), bench, idk.config)
    idk.setup(ctx)
    rows = ctx.data.forget.rows
    assert [ctx.data.forget.answer(r) for r in rows] == [tofu_refusal(0, r["item_id"]) for r in rows]
    single = method("idk")
    ctx = context(None, SimpleNamespace(), bench, single.config)
    single.setup(ctx)
    assert {ctx.data.forget.answer(r) for r in rows} == {"I do not know."}


def test_idk_options_and_their_defaults_per_benchmark():
    cls = resolve_method("idk").cls
    for bench_name, expected in (("mllmu", ("tofu", "joint")), ("clear", ("tofu", "joint")),
                                 ("mmu-synth", ("single", "separate"))):
        cfg = method_config(cls, bench_name, {})
        assert (cfg.refusals, cfg.reduction) == expected
    with pytest.raises(ValueError, match="refusals"):
        cls.Config(refusals="many")
    with pytest.raises(ValueError, match="reduction"):
        cls.Config(reduction="mean")


# -- through the runner: the method's sides reach the provider, and results.json says so ------


def test_a_run_adapts_the_vision_side_for_a_vision_mask_and_records_it(llava, tmp_path):
    from mmu_bench.cli import main

    args = ["--model", f"hf:{llava}", "--min-vanilla-mc", "0", "--eval-limit", "1", "--eval-batch-size", "8", "--quiet",
            "--forget-ratio", "10", "--output-dir", str(tmp_path), "--method", "mmunlearner"]
    args += [a for k, v in {"dtype": "float32", "steps": 1, "lr": 1e-3, "batch_size": 4, "device": "cpu"}.items()
             for a in ("--model-arg", f"{k}={v}")]
    args += [a for k, v in BENCH.items() for a in ("--benchmark-arg", f"{k}={v}")]
    args += [a for k, v in {**FAST, "steps": 1, "variant": "both"}.items() for a in ("--method-arg", f"{k}={v}")]
    assert main(["run", *args]) == 0
    [path] = tmp_path.rglob("results.json")
    training = json.loads(path.read_text())["training"]
    assert training["trainable"]["sides"] == ["language", "vision"]
    assert set(training["trainable"]["lora"]["adapted_layers"]) == {"language_layers", "vision_tower", "projector"}
    report = training["method_report"]
    assert report["full_weight_saliency"]["full_weight_mask"]["total"] > 0
    assert report["mask_sparsity"]["vision_tower"]["selected"] > 0
