from collections import Counter

import pytest

from mmu_bench.api.schema import LETTERS, validate_row
from mmu_bench.data import synth

SMALL = synth.SynthConfig(num_entities=12, train_views=2, heldout_views=1, text_variants=1,
                          general_train_images=4, general_eval_images=4, general_eval_sums=4)


@pytest.fixture(scope="module")
def data():
    return synth.generate(SMALL)


def _rows(dataset):
    return [{k: v for k, v in row.items() if k != "image"} for row in dataset]


def test_same_seed_same_data(data):
    again = synth.generate(SMALL)
    for split in data:
        assert _rows(data[split]) == _rows(again[split])
    pixels = [r["image"].tobytes() if r["image"] else None for r in data["eval"]]
    assert pixels == [r["image"].tobytes() if r["image"] else None for r in again["eval"]]


def test_different_seed_different_data(data):
    other = synth.generate(synth.SynthConfig(**{**SMALL.__dict__, "seed": 1}))
    assert _rows(other["entities"]) != _rows(data["entities"])


def test_entities_have_names_facts_and_distinct_looks(data):
    entities = data["entities"].to_list()
    holdout = synth.n_holdout(12)  # 2: as many as the 15 % forget split
    assert len(entities) == 12 + holdout and sum(e["holdout_rank"] is not None for e in entities) == holdout
    assert len({e["name"] for e in entities}) == 12 + holdout
    looks = [(e["shape"], e["colour"], e["background"], e["texture"]) for e in entities]
    for i, a in enumerate(looks):
        for b in looks[i + 1:]:
            assert sum(x != y for x, y in zip(a, b)) >= 2
    for e in entities:
        for fact in synth.FACT_NAMES:
            assert e[fact] in synth.FACTS[fact]


def test_every_row_fits_the_schema(data):
    for split in ("train", "eval", "general_train"):
        for i, row in enumerate(data[split]):
            validate_row(row, f"{split} row {i}")


def test_eval_items_per_entity_and_formats(data):
    rows = _rows(data["eval"])
    per_entity = Counter(r["entity_id"] for r in rows if r["entity_id"])
    # 5 image facts x 2 views x 3 formats + 4 text facts x 3 formats; holdout people: one view
    assert {n for e, n in per_entity.items() if e.startswith("e")} == {5 * 2 * 3 + 4 * 3}
    assert {n for e, n in per_entity.items() if e.startswith("h")} == {5 * 3 + 4 * 3}
    assert Counter(r["format"] for r in rows) == {f: len(rows) // 3 for f in ("multiple_choice", "cloze", "generation")}


def test_multiple_choice_distractors_share_the_category_and_positions_balance(data):
    entities = {e["entity_id"]: e for e in data["entities"].to_list()}
    mc = [r for r in _rows(data["eval"]) if r["format"] == "multiple_choice"]
    for r in mc:
        assert len(set(r["options"])) == 4
        if r["entity_id"]:
            pool = [e["name"] for e in entities.values()] if r["fact"] == "name" else synth.FACTS[r["fact"]]
            assert all(o in pool for o in r["options"])
            truth = entities[r["entity_id"]]["name" if r["fact"] == "name" else r["fact"]]
            assert r["options"][LETTERS.index(r["answer"])] == truth
    counts = Counter(r["answer"] for r in mc)
    assert max(counts.values()) - min(counts.values()) <= 1


def test_forget_splits_are_nested_and_disjoint_from_retain(tmp_path, monkeypatch):
    monkeypatch.setenv("MMU_BENCH_HOME", str(tmp_path))
    opts = {k: v for k, v in SMALL.__dict__.items() if k not in ("num_entities", "seed")}
    sets, holdouts = {}, {}
    for ratio in synth.FORGET_RATIOS:
        bench = synth.load(forget_ratio=ratio, num_entities=40, **opts)
        forget, retain = set(bench.forget_entities), set(bench.retain_entities)
        assert forget and not forget & retain and len(forget | retain) == 40
        assert len(forget) == synth.n_forget(40, ratio)
        assert set(bench.forget_set()["entity_id"]) == forget
        assert set(bench.retain_set()["entity_id"]) == retain
        assert set(bench.training_rows("oracle")["entity_id"]) - {""} == retain
        sets[ratio] = forget
        holdouts[ratio] = set(bench.holdout_entities)
        # Holdout people: as many as the forget people, scored, never in any training set.
        assert len(holdouts[ratio]) == len(forget) and not holdouts[ratio] & (forget | retain)
        assert set(e for e, s in zip(bench.eval["entity_id"], bench.eval["split"]) if s == "holdout") == holdouts[ratio]
        for role in ("vanilla", "oracle", "visual_oracle"):
            assert not set(bench.training_rows(role)["entity_id"]) & holdouts[ratio]
        # The visual oracle: every row but the forget people's images; their text rows kept.
        visual = bench.training_rows("visual_oracle")
        kept = {(e, m) for e, m in zip(visual["entity_id"], visual["modality"]) if e in forget}
        assert kept == {(e, "text") for e in forget}
        assert len(visual) == len(bench.train) - len(bench.forget_set()) - sum(
            1 for e, m, v in zip(bench.train["entity_id"], bench.train["modality"], bench.train["format"])
            if e in forget and m == "image" and v != "generation")
    assert sets[5] <= sets[10] <= sets[15]
    assert holdouts[5] <= holdouts[10] <= holdouts[15]
    # Stable: the same people on another load.
    assert set(synth.load(forget_ratio=10, num_entities=40, **opts).holdout_entities) == holdouts[10]


def test_holdout_people_leave_the_other_rows_unchanged(data, monkeypatch):
    """Drawn from a stream of their own: without them, every other row is the same."""
    monkeypatch.setattr(synth, "_holdout", lambda *args: [])
    without = synth.generate(SMALL)
    rows = _rows(data["eval"])
    others = [r for r in rows if not r["entity_id"].startswith("h")]
    assert others == rows[: len(others)] == _rows(without["eval"])
    assert _rows(data["train"]) == _rows(without["train"])
    entities = data["entities"].to_list()
    names = {e["name"] for e in entities if e["holdout_rank"] is None}
    assert not names & {e["name"] for e in entities if e["holdout_rank"] is not None}


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="num_entities"):
        synth.SynthConfig(num_entities=2)
    with pytest.raises(ValueError, match="forget ratio"):
        synth.load(forget_ratio=7)


def test_vocabulary_covers_every_generated_word(data):
    words = set(synth.vocabulary())
    for split in ("train", "eval"):
        for row in _rows(data[split]):
            for text in [row["question"], row["answer"], *row["options"]]:
                assert set(synth._words(text)) <= words, text
