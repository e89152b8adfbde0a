"""Exact memorisation and extraction strength against values computed by hand: the end-of-answer
token left out, the mean over items, every format, and records without the argmax hits."""


import pytest

from mmu_bench.api import NotApplicable
from mmu_bench.harness import score as scoring
from mmu_bench.measures.memorisation import ExactMemorization, ExtractionStrength
from mmu_bench.spec import measures as spec_measures
from mmu_bench.spec.tasks import load_tasks
from task_files import write_base

EM, ES = ExactMemorization(), ExtractionStrength()


def item(name, hits, fmt="generation", task="t"):
    """A record whose answer has len(hits) - 1 tokens, then the end-of-answer token."""
    return {"task": task, "item_id": name, "format": fmt, "answer": "A" if fmt == "multiple_choice" else "x",
            "options": ["x", "y"], "output": "", "answer_logprobs": [-1.0] * len(hits), "answer_argmax_hits": hits}


def test_exact_memorization_by_hand():
    # Answer tokens hit, miss, hit, hit (then EOS, hit): 3 of 4.
    assert EM.item(item("a", [1, 0, 1, 1, 1]), {}) == 0.75
    assert EM.item(item("b", [0, 0, 0, 0]), {}) == 0.0


def test_extraction_strength_by_hand():
    # Hits 1 0 1 1: given the first 2 tokens the last 2 are predicted, not given 1 (token 2 missed):
    # k = 2 of n = 4, ES = 1 - 2/4.
    assert ES.item(item("a", [1, 0, 1, 1, 1]), {}) == 0.5
    assert ES.item(item("b", [1, 1, 1, 0]), {}) == 1.0  # every token predicted from the prompt alone: k = 0
    assert ES.item(item("c", [0, 0, 1, 0]), {}) == pytest.approx(1 / 3)  # only the last token: k = 2 of 3
    # Not even the last token predicted: k = n, ES = 0 (open-unlearning's loop would stop at k = n - 1: 1/3).
    assert ES.item(item("d", [1, 1, 0, 1]), {}) == 0.0


def test_the_end_of_answer_token_does_not_count():
    # Every answer token predicted, the EOS missed: EM 1 and ES 1; no answer token, the EOS hit: 0 and 0.
    assert EM.item(item("a", [1, 1, 0]), {}) == ES.item(item("a", [1, 1, 0]), {}) == 1.0
    assert EM.item(item("b", [0, 0, 1]), {}) == ES.item(item("b", [0, 0, 1]), {}) == 0.0
    # An answer of the EOS alone is not scored (open-unlearning: no valid target tokens).
    assert EM.item(item("c", [1]), {}) is None and ES.item(item("c", [1]), {}) is None


@pytest.fixture
def tasks(tmp_path):
    write_base(tmp_path, ["exact_memorization", "extraction_strength"], [])
    (tmp_path / "t.yaml").write_text("include: _base.yaml\ntask: t\nversion: 1\ndimension: d\nhigher_is_better: false\n"
                                     "data: {split: forget}\n")
    return spec_measures.resolve(load_tasks(directory=tmp_path))


def test_the_task_value_is_the_mean_over_items_of_every_format(tasks):
    tasks, measures = tasks
    records = {"unlearned": [item("g", [1, 0, 1, 1, 1]), item("c", [0, 1, 0], "cloze"),
                             item("m", [1, 1, 1], "multiple_choice"), item("eos", [1])]}
    values = scoring.score(records, tasks, measures)["unlearned"]["t"]
    # EM: (3/4 + 1/2 + 1) / 3 items (the EOS-only answer is not scored); ES: (1/2 + 1/2 + 1) / 3.
    assert values["exact_memorization"].mean == pytest.approx(0.75) and values["exact_memorization"].n == 3
    assert values["extraction_strength"].mean == pytest.approx(2 / 3) and values["extraction_strength"].n == 3
    assert records["unlearned"][0]["exact_memorization"] == 0.75  # per item, for samples.jsonl


def test_records_without_the_hits_are_absent_with_the_reason(tasks):
    tasks, measures = tasks
    old = item("g", [1, 1])
    del old["answer_argmax_hits"]  # a reference record cached before the field existed
    with pytest.raises(NotApplicable, match="answer_argmax_hits"):
        EM.item(old, {})
    values = scoring.score({"vanilla": [old]}, tasks, measures)["vanilla"]["t"]
    assert "answer_argmax_hits" in values["exact_memorization"].absent
    assert "older mmu-bench" in values["extraction_strength"].absent
