"""MANU (issue #13): its importance functions, combined score, global top-k mask and row pruning
against values computed by hand; which layers it finds on real architectures; the text-only
forget / retain split; its refusal of LoRA; one tiny end-to-end run whose saved weights carry
exactly the reported pruned rows."""

import json
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mmu_bench.api.context import EncodedSet
from mmu_bench.cli import main
from mmu_bench.models import tiny
from mmu_bench.spec.registry import resolve_method
from random_mllms import save_qwen, words
from small import SMALL

SPEC = "mmu_bench.methods.manu:MANU"
manu = __import__("mmu_bench.methods.manu", fromlist=["MANU"])


def test_importance_functions_by_hand():
    stats = manu.Stats(threshold=0.1)
    # two neurons over two real positions, plus one padded position that must not count
    out = torch.tensor([[[1.0, -2.0], [3.0, 0.05], [100.0, 100.0]]])
    stats.add(out, torch.tensor([[True, True, False]]))
    imp = stats.importance()
    # neuron 0: values 1, 3; neuron 1: values -2, 0.05
    assert imp["abs"].tolist() == pytest.approx([2.0, 1.025])
    assert imp["freq"].tolist() == pytest.approx([1.0, 0.5])  # |0.05| <= 0.1
    assert imp["var"].tolist() == pytest.approx([math.sqrt(2.0), math.sqrt(2 * 1.025**2)])  # unbiased std
    assert imp["rms"].tolist() == pytest.approx([math.sqrt(5.0), math.sqrt((4 + 0.0025) / 2)])


def test_importance_accumulates_over_batches_and_clamps():
    stats = manu.Stats(threshold=0.1)
    stats.add(torch.tensor([[2000.0], [0.0]]), None)  # a 2-D output (Qwen2-VL's vision blocks)
    stats.add(torch.tensor([[[-1000.0]]]), None)
    imp = stats.importance()
    assert imp["abs"].item() == pytest.approx(2000 / 3)  # 2000 clamped to 1000
    assert imp["rms"].item() == pytest.approx(math.sqrt(2e6 / 3))
    assert imp["freq"].item() == pytest.approx(2 / 3)


def test_combined_score_is_the_weighted_ratio_minus_one():
    forget = {"abs": torch.tensor([2.0, 1.0]), "freq": torch.tensor([1.0, 1.0]),
              "var": torch.tensor([1.0, 0.5]), "rms": torch.tensor([4.0, 1.0])}
    retain = {"abs": torch.tensor([1.0, 1.0]), "freq": torch.tensor([0.5, 1.0]),
              "var": torch.tensor([1.0, 1.0]), "rms": torch.tensor([2.0, 1.0])}
    w = manu.MANUConfig().weights
    assert w == {"abs": 2.0, "freq": 0.0, "var": 2.0, "rms": 2.0}  # the reference's weights
    got = manu.combined(forget, retain, w)
    eps = manu.EPS
    expected0 = 2 * (2 / (1 + eps) - 1) + 2 * (1 / (1 + eps) - 1) + 2 * (4 / (2 + eps) - 1)
    expected1 = 2 * (1 / (1 + eps) - 1) + 2 * (0.5 / (1 + eps) - 1) + 2 * (1 / (1 + eps) - 1)
    assert got.tolist() == pytest.approx([expected0, expected1])


def test_top_percent_is_one_threshold_over_every_module():
    scores = {"a": torch.tensor([5.0, 1.0, 0.0, 9.0]), "b": torch.tensor([8.0, 2.0, 3.0, 4.0, 7.0, 6.0])}
    masks = manu.top_percent(scores, 30)  # k = int(0.3 * 10) = 3: scores 9, 8, 7
    assert masks["a"].tolist() == [False, False, False, True]
    assert masks["b"].tolist() == [True, False, False, False, True, False]
    tied = manu.top_percent({"a": torch.tensor([1.0, 2.0, 2.0, 0.0])}, 25)  # k = 1, the tie goes too
    assert tied["a"].tolist() == [False, True, True, False]
    none = manu.top_percent({"a": torch.tensor([1.0, 2.0])}, 10)  # k = 0
    assert not none["a"].any()


def test_prune_zeroes_the_rows_and_biases_of_the_masked_units():
    torch.manual_seed(0)
    layer = nn.Linear(3, 4)
    before = layer.weight.detach().clone()
    n = manu.prune({"l": layer}, {"l": torch.tensor([False, True, False, True])})
    assert n == 2
    out = layer(torch.randn(5, 3))
    assert (out[:, [1, 3]] == 0).all() and (out[:, [0, 2]] != 0).all()
    assert torch.equal(layer.weight[[0, 2]], before[[0, 2]])


def test_it_finds_each_towers_mlp_linears_and_keeps_the_last_layers():
    arch = tiny.TinyArch(vision_hidden=32, vision_layers=2, vision_heads=2, text_hidden=64, text_layers=4,
                         text_heads=2, text_intermediate=128)
    model = tiny.build_model(tiny.build_processor(words(), arch), arch)
    vision = manu.mlp_neurons(model, "vision", 3)
    language = manu.mlp_neurons(model, "language", 3)
    assert sorted(n.rsplit(".", 3)[-3] for n in vision) == ["0", "0", "1", "1"]  # 2 layers < 3: both
    assert {n.split(".mlp.")[1] for n in vision} == {"fc1", "fc2"}
    assert sorted({n.split(".mlp.")[0].rsplit(".", 1)[1] for n in language}) == ["1", "2", "3"]
    assert len(language) == 9 and all("language_model" in n for n in language)
    assert len(manu.mlp_neurons(model, "language", 0)) == 12


def test_it_finds_qwen2_vl_layers(tmp_path):
    from transformers import Qwen2VLForConditionalGeneration

    model = Qwen2VLForConditionalGeneration.from_pretrained(str(save_qwen(tmp_path / "q")))
    vision = manu.mlp_neurons(model, "vision", 3)
    language = manu.mlp_neurons(model, "language", 3)
    assert vision and all(".visual." in "." + n and n.endswith(("mlp.fc1", "mlp.fc2")) for n in vision)
    assert language and all(n.endswith(("gate_proj", "up_proj", "down_proj")) for n in language)


def test_the_language_side_splits_text_qa_by_forget_entity():
    rows = lambda ids: [{"entity_id": e, "image": None} for e in ids]  # noqa: E731
    data = SimpleNamespace(forget=EncodedSet(rows(["p1", "p1", "p2"]), None, {}),
                           retain=EncodedSet(rows(["p3"]), None, {}),
                           preserve_text=EncodedSet(rows(["p1", "p3", "p2", "p4", "p3"]), None, {}))
    ctx = SimpleNamespace(data=data)
    method = manu.MANU()
    sets = method._data(ctx, ("vision", "language"))
    assert sets["vision"] == (data.forget, data.retain)
    forget_text, retain_text = sets["language"]
    assert [r["entity_id"] for r in forget_text.rows] == ["p1", "p2"]
    assert [r["entity_id"] for r in retain_text.rows] == ["p3", "p4", "p3"]
    data.preserve_text = EncodedSet(rows(["p3"]), None, {})
    with pytest.raises(ValueError, match="modalities=vision"):
        method._data(ctx, ("language",))


def test_it_refuses_a_lora_model_and_bad_options():
    from peft import LoraConfig, get_peft_model

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = nn.Module()
            self.mlp.up_proj = nn.Linear(4, 4)

    model = get_peft_model(Net(), LoraConfig(r=2, target_modules=["up_proj"]))
    ctx = SimpleNamespace(unwrapped_model=model)
    with pytest.raises(ValueError, match="lora=false"):
        manu.MANU().unlearn(ctx)
    with pytest.raises(ValueError, match="prune_percent"):
        manu.MANUConfig(prune_percent=0)
    with pytest.raises(ValueError, match="modalities"):
        manu.MANUConfig(modalities="audio")


def test_tiny_run_prunes_exactly_what_it_reports(tmp_path):
    from transformers import LlavaForConditionalGeneration

    args = ["run", "--method", SPEC, "--method-arg", "prune_percent=10", *SMALL, "--forget-ratio", "10",
            "--save-model", "yes", "--output-dir", str(tmp_path)]
    assert main(args) == 0
    [results] = tmp_path.glob("**/results.json")
    result = json.loads(results.read_text())
    assert result["method"]["name"] == "manu"
    report = result["training"]["method_report"]
    assert report["scored_neurons"] == {"vision": 384, "language": 1280}  # tiny-llava's MLPs, 2 layers each
    for side in ("vision", "language"):
        k = int(0.1 * report["scored_neurons"][side])
        assert k <= report["pruned_neurons"][side] <= k + 2  # ties may add a few
    assert result["training"]["steps"] == 1 and result["training"]["log"][0]["loss"] > 0
    model = LlavaForConditionalGeneration.from_pretrained(str(results.parent / "model"))
    modules = dict(model.named_modules())
    zero_rows = {side: sum(int((modules[n].weight == 0).all(dim=1).sum()) for n in report["pruned_layers"][side])
                 for side in ("vision", "language")}
    assert zero_rows == report["pruned_neurons"]
    assert resolve_method("manu").cls is resolve_method(SPEC).cls  # registered under its name
