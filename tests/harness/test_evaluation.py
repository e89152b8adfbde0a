"""Evaluation: batched records equal one-at-a-time ones; the raw signals are what they claim."""

import copy
import math

import pytest
import torch

from mmu_bench.api import default_prompts
from mmu_bench.api.benchmark import add_split_column
from mmu_bench.api.encoding import encode
from mmu_bench.api.prompts import user_text
from mmu_bench.api.schema import LETTERS
from mmu_bench.data.synth import SynthConfig, generate
from mmu_bench.harness.evaluate import Encodings, EvalSettings, evaluate, needs_of, select_rows
from mmu_bench.models.tiny import build_model, build_processor, recipe_vocabulary
from mmu_bench.spec.tasks import load_tasks


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
    assert [r["item_id"] for r in batched] == [r["item_id"] for r in single]
    for a, b in zip(batched, single):
        assert a["output"] == b["output"], a["item_id"]
        assert a["answer_logprobs"] == pytest.approx(b["answer_logprobs"], abs=1e-4)
        if "option_logprobs" in a:
            assert a["option_logprobs"] == pytest.approx(b["option_logprobs"], abs=1e-4)


def test_cached_encodings_give_the_records_of_fresh_ones(setup):
    """A run keeps its items' encodings (the trajectory's points and the final evaluation score the
    same items): records from the cache equal records from encoding afresh, to the last digit."""
    model, processor, rows, tasks = setup
    settings = EvalSettings(batch_size=8, limit=3, progress=False)
    fresh = evaluate(model, processor, rows, tasks, settings)
    cache = Encodings(processor)
    first = evaluate(model, processor, rows, tasks, settings, encodings=cache)
    misses = cache.misses
    again = evaluate(model, processor, rows, tasks, settings, encodings=cache)
    assert cache.misses == misses and cache.hits > 0  # the second pass encoded nothing
    assert first == fresh and again == fresh
    # Another processor than the cache's is never served the cache's encodings.
    other = build_processor(recipe_vocabulary(default_prompts()))
    assert evaluate(model, other, rows, tasks, settings, encodings=cache) == fresh
    assert cache.misses == misses


def test_a_trajectory_point_runs_only_the_passes_its_score_measures_read(setup):
    """A trajectory point scores the score measures only: multiple choice by its options,
    cloze and generation by the greedy output. Those passes alone give the same values, to the
    last digit, and the fields nobody reads are not computed."""
    from mmu_bench.harness.score import primary_tasks
    from mmu_bench.spec.measures import resolve

    model, processor, rows, tasks = setup
    tasks, measures = resolve(tasks, [])
    primary = primary_tasks(tasks)
    needs = needs_of(primary, measures)
    assert needs == {"multiple_choice": frozenset({"option_logprobs"}), "cloze": frozenset({"output"}),
                     "generation": frozenset({"output"})}
    assert needs_of(tasks, measures) is None  # the information measures do not say what they read
    settings = EvalSettings(batch_size=8, limit=3, progress=False)
    full = evaluate(model, processor, rows, primary, settings)
    some = evaluate(model, processor, rows, primary, settings, needs=needs)
    assert [(r["task"], r["item_id"]) for r in some] == [(r["task"], r["item_id"]) for r in full]
    for a, b in zip(some, full):
        if a["format"] == "multiple_choice":
            assert a["option_logprobs"] == b["option_logprobs"] and "output" not in a
        else:
            assert a["output"] == b["output"] and "answer_logprobs" not in a


def test_a_full_cache_encodes_afresh(setup):
    model, processor, rows, tasks = setup
    settings = EvalSettings(batch_size=8, limit=2, progress=False)
    cache = Encodings(processor, max_bytes=0)
    assert evaluate(model, processor, rows, tasks, settings, encodings=cache) == evaluate(
        model, processor, rows, tasks, settings)
    assert cache.kept == {} and cache.bytes == 0


def test_rows_are_chosen_alike_from_a_dataset_and_from_its_rows(setup):
    """On a datasets.Dataset the rows are chosen without decoding the images; the rows, their
    order and the sample are those of its rows as a list."""
    import datasets
    import numpy as np

    from mmu_bench.spec.selection import with_images

    _, _, rows, tasks = setup
    as_list = [dict(r) for r in rows]
    table = datasets.Dataset.from_list(as_list).cast_column("image", datasets.Image())
    for limit in (None, 2):
        a = select_rows(as_list, tasks, EvalSettings(limit=limit))
        b = select_rows(table, tasks, EvalSettings(limit=limit))
        assert a.keys() == b.keys()
        for name in a:
            assert [r["item_id"] for r in a[name]] == [r["item_id"] for r in b[name]]
            for x, y in zip(a[name], b[name]):
                assert x.keys() == y.keys() and np.array_equal(np.asarray(x["image"]), np.asarray(y["image"]))
                assert {k: v for k, v in x.items() if k != "image"} == {k: v for k, v in y.items() if k != "image"}
    picked = [as_list[3], as_list[0]]
    assert [r["item_id"] for r in with_images(table, picked)] == [as_list[3]["item_id"], as_list[0]["item_id"]]


def _by_hand(model, processor, user, image, answer, moments=False):
    """The answer's per-token log-probabilities, from one unbatched forward pass (``moments``:
    also, per answer token, the sum over the vocabulary of p log p and of p (log p)^2 - its square)."""
    row = encode(processor, user, image, answer)
    batch = {k: v.unsqueeze(0) if k != "pixel_values" else v for k, v in row.items() if k != "labels"}
    with torch.no_grad():
        logp = torch.log_softmax(model(**batch).logits[0].float(), -1)
    labels = row["labels"]
    positions = [i - 1 for i in range(1, len(labels)) if labels[i] != -100]
    picked = [logp[i, labels[i + 1]].item() for i in positions]
    if not moments:
        return picked
    mean = [sum(math.exp(x) * x for x in logp[i].tolist()) for i in positions]
    var = [sum(math.exp(x) * x * x for x in logp[i].tolist()) - m * m for i, m in zip(positions, mean)]
    return picked, mean, var


def test_records_carry_the_answers_log_probabilities(setup):
    model, processor, rows, tasks = setup
    records = evaluate(model, processor, rows, tasks, EvalSettings(limit=2, progress=False))
    by_id = {r["item_id"]: r for r in rows}
    task_of = {t.name: t for t in tasks}
    seen = set()
    for record in records:
        row, task = by_id[record["item_id"]], task_of[record["task"]]
        n_answer = len(processor.tokenizer(
            row["options"][LETTERS.index(row["answer"])] if row["format"] == "multiple_choice" else row["answer"],
            add_special_tokens=False)["input_ids"])
        assert len(record["answer_logprobs"]) == n_answer + 1  # then end of answer
        if record["format"] == "multiple_choice":
            # The correct option's text after the bare question; its mean is that option's score.
            expected = _by_hand(model, processor, user_text(row, task.prompts, "option_loglik"), row["image"],
                                row["options"][LETTERS.index(row["answer"])])
            correct = record["option_logprobs"][LETTERS.index(row["answer"])]
            assert sum(record["answer_logprobs"]) / len(record["answer_logprobs"]) == pytest.approx(correct, abs=1e-5)
        else:
            expected, mean, var = _by_hand(model, processor, user_text(row, task.prompts), row["image"], row["answer"],
                                           moments=True)
            # Min-K%++'s normalisers: mean and variance of log p under the model's distribution.
            assert record["answer_expected_logprobs"] == pytest.approx(mean, abs=1e-3)
            assert record["answer_logprob_variances"] == pytest.approx(var, abs=1e-3)
        assert record["answer_logprobs"] == pytest.approx(expected, abs=1e-4)
        assert len(record["answer_expected_logprobs"]) == len(record["answer_logprob_variances"]) == len(expected)
        seen.add(record["format"])
    assert seen == {"multiple_choice", "cloze", "generation"}


def test_records_carry_whether_each_answer_token_is_the_argmax(setup):
    """``answer_argmax_hits``: per answer token, then EOS, 1 where the unbatched pass's argmax is the token.
    The untrained model predicts no answer token, so its head is given a bias towards EOS: then
    exactly the last position of every answer is a hit."""
    model, processor, rows, tasks = setup
    model = copy.deepcopy(model)
    head = torch.nn.Linear(model.lm_head.in_features, model.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[processor.tokenizer.eos_token_id] = 1e4
    model.lm_head = head
    records = evaluate(model, processor, rows, tasks, EvalSettings(limit=2, progress=False, batch_size=16))
    by_id, task_of = {r["item_id"]: r for r in rows}, {t.name: t for t in tasks}
    for record in records:
        row, task = by_id[record["item_id"]], task_of[record["task"]]
        mc = record["format"] == "multiple_choice"
        answer = row["options"][LETTERS.index(row["answer"])] if mc else row["answer"]
        encoded = encode(processor, user_text(row, task.prompts, "option_loglik") if mc else user_text(row, task.prompts),
                         row["image"], answer)
        batch = {k: v.unsqueeze(0) if k != "pixel_values" else v for k, v in encoded.items() if k != "labels"}
        with torch.no_grad():
            predicted = model(**batch).logits[0].argmax(-1)
        labels = encoded["labels"]
        hits = [int(predicted[i - 1] == labels[i]) for i in range(1, len(labels)) if labels[i] != -100]
        assert record["answer_argmax_hits"] == hits == [0] * (len(hits) - 1) + [1]
        assert len(hits) == len(record["answer_logprobs"])


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

