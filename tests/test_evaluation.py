"""Batched evaluation gives the same answers as one item at a time."""

import pytest

from mmu_bench.data.base import add_split_column
from mmu_bench.data.synth import SynthConfig, generate
from mmu_bench.evaluation import EvalSettings, aggregate, evaluate, select_rows
from mmu_bench.models.tiny import build_model, build_processor, recipe_vocabulary
from mmu_bench.tasks import default_prompts, load_tasks


@pytest.fixture(scope="module")
def setup():
    data = generate(SynthConfig(num_entities=6, train_views=1, heldout_views=1, text_variants=1,
                                general_train_images=1, general_eval_images=2, general_eval_sums=2))
    rows = add_split_column(data["eval"], {"e0000", "e0001"})
    processor = build_processor(recipe_vocabulary(default_prompts()))
    return build_model(processor, seed=1), processor, rows, load_tasks()


def test_batched_and_unbatched_evaluation_agree(setup):
    model, processor, rows, tasks = setup
    settings = dict(limit=3, progress=False)
    batched = evaluate(model, processor, rows, tasks, EvalSettings(batch_size=16, **settings))
    single = evaluate(model, processor, rows, tasks, EvalSettings(batch_size=1, **settings))
    assert [r["item_id"] for r in batched.records] == [r["item_id"] for r in single.records]
    for a, b in zip(batched.records, single.records):
        assert a["output"] == b["output"], a["item_id"]
        if "option_logprobs" in a:
            assert a["option_logprobs"] == pytest.approx(b["option_logprobs"], abs=1e-4)
            assert a["mc_loglik_acc"] == b["mc_loglik_acc"]


def test_each_task_scores_its_own_rows(setup):
    _, _, rows, tasks = setup
    chosen = select_rows(rows, tasks, EvalSettings())
    forget_image = chosen["visual_forgetting"]
    assert forget_image and all(r["split"] == "forget" and r["modality"] == "image" and r["view"] == "train"
                                for r in forget_image)
    assert all(r["modality"] == "text" and r["split"] == "forget" for r in chosen["textual_retention"])
    assert all(r["split"] == "retain" for r in chosen["retained_vqa"])
    assert all(r["split"] == "general" and r["entity_id"] == "" for r in chosen["general_utility"])
    # 2 forget entities x 5 image facts x 3 formats
    assert len(forget_image) == 30


def test_limit_samples_per_format_with_a_fixed_seed(setup):
    _, _, rows, tasks = setup
    a = select_rows(rows, tasks, EvalSettings(limit=2))
    b = select_rows(rows, tasks, EvalSettings(limit=2))
    assert [r["item_id"] for r in a["retained_vqa"]] == [r["item_id"] for r in b["retained_vqa"]]
    assert len(a["retained_vqa"]) == 6  # 2 per format


def test_aggregate_by_hand():
    records = [{"task": "t", "mc_acc": 1.0, "mc_loglik_acc": 0.0}, {"task": "t", "mc_acc": 0.0, "mc_loglik_acc": 0.0},
               {"task": "t", "rougeL": 0.5}]
    scores = aggregate(records)
    assert scores["t"]["mc_acc"]["mean"] == 0.5 and scores["t"]["mc_acc"]["n"] == 2
    assert scores["t"]["rougeL"] == {"mean": 0.5, "stderr": 0.0, "n": 1}
