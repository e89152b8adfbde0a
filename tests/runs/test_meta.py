"""The meta-evaluation's statistics (mmu_bench.runs.meta), against values computed by hand."""

import math

import pytest

from mmu_bench.runs import meta

FORGETTING = {"task_higher_is_better": False, "best": None}
RETENTION = {"task_higher_is_better": True, "best": None}


def test_the_knowledge_reading_takes_the_worse_direction_on_forgetting_and_the_better_on_retention():
    # accuracy (a measure of knowledge: the task's direction) on visual forgetting: higher = knows
    assert meta.reading(0.8, {**FORGETTING, "higher_is_better": False}) == 0.8
    # forget quality (higher is better everywhere): a high p-value is "like the gold model" = forgotten
    assert meta.reading(0.9, {**FORGETTING, "higher_is_better": True}) == -0.9
    # on textual retention knowing is better
    assert meta.reading(0.9, {**RETENTION, "higher_is_better": True}) == 0.9
    # PrivLeak (best 0): the distance from 0 on forgetting, minus it on retention
    assert meta.reading(-40.0, {**FORGETTING, "higher_is_better": None, "best": 0.0}) == 40.0
    assert meta.reading(-40.0, {**RETENTION, "higher_is_better": None, "best": 0.0}) == -40.0
    assert meta.reading(None, {**FORGETTING, "higher_is_better": False}) is None
    assert meta.reading(float("nan"), {**FORGETTING, "higher_is_better": False}) is None


def test_auc_counts_pairs_and_ties_half():
    # knows (3, 2), never (2, 1): pairs 3>2, 3>1, 2=2 (half), 2>1 -> 3.5 / 4
    assert meta.auc([3, 2], [2, 1]) == pytest.approx(0.875)
    assert meta.auc([1], [2]) == 0.0
    assert math.isnan(meta.auc([], [1]))


def test_the_interval_holds_the_auc_and_is_a_point_when_the_pools_are_apart():
    lo, hi = meta.auc_interval([5, 6, 7], [1, 2], resamples=500)
    assert (lo, hi) == (1.0, 1.0)
    lo, hi = meta.auc_interval([3, 1, 2], [2, 1.5, 0], resamples=500)
    assert 0 <= lo <= meta.auc([3, 1, 2], [2, 1.5, 0]) <= hi <= 1 and lo < hi


def test_robustness_is_openunlearnings_ratio_with_a_noise_floor():
    # never-knew models move by 0.1 of the gap on average; allowed = 0.1 + 0.05 = 0.15.
    # Unlearned: 0.1 (within: 1), 0.3 (0.15 / 0.3 = 0.5), 0.6 (0.25) -> mean 0.5833
    assert meta.robustness_of([0.1, 0.3, 0.6], [0.05, 0.15]) == pytest.approx((1 + 0.5 + 0.25) / 3)
    # the never-knew pool moving away from "known" allows no more than the floor
    assert meta.robustness_of([0.1], [-0.5]) == pytest.approx(0.5)
    assert math.isnan(meta.robustness_of([], [0.1]))


def test_harmonic_mean():
    assert meta.harmonic([0.5, 1.0]) == pytest.approx(2 / 3)
    assert meta.harmonic([0.0, 1.0]) == 0.0
    assert math.isnan(meta.harmonic([0.5, float("nan")]))


def _doc():
    how = {"higher_is_better": False, "best": None, "task_higher_is_better": False, "label": "acc", "table": "main",
           "description": ""}
    text = {**how, "higher_is_better": True, "task_higher_is_better": True}  # accuracy takes the task's direction
    models = {
        # knowing pool: acc 0.9 and 0.7; never-knew: 0.3 and 0.1 -> gap 0.6
        "k1": {"kind": "pool", "values": {"vf": {"acc": 0.9}, "tr": {"acc": 0.8}}, "attacked": {}},
        "k2": {"kind": "pool", "values": {"vf": {"acc": 0.7}, "tr": {"acc": 0.6}}, "attacked": {}},
        "n1": {"kind": "pool", "values": {"vf": {"acc": 0.3}, "tr": {"acc": 0.7}},
               "attacked": {"relearn": {"vf": {"acc": 0.36}, "tr": {"acc": 0.7}}}},
        "n2": {"kind": "pool", "values": {"vf": {"acc": 0.1}, "tr": {"acc": 0.2}},
               "attacked": {"relearn": {"vf": {"acc": 0.16}, "tr": {"acc": 0.2}}}},
        # unlearned: moved by 0.06 (as the never-knew) and 0.42
        "unlearned a": {"kind": "unlearned", "values": {"vf": {"acc": 0.2}, "tr": {"acc": 0.5}},
                        "attacked": {"relearn": {"vf": {"acc": 0.26}, "tr": {"acc": 0.5}}}},
        "unlearned b": {"kind": "unlearned", "values": {"vf": {"acc": 0.2}, "tr": {"acc": 0.5}},
                        "attacked": {"relearn": {"vf": {"acc": 0.62}, "tr": {"acc": 0.5}}}},
    }
    return meta.document(benchmark="b", model="m", meta_config={"resamples": 200, "seeds": [1], "budgets": []},
                         sides={meta.VISUAL: "vf", meta.TEXT: "tr"},
                         pools={"vf": {"knows": ["k1", "k2"], "never": ["n1", "n2"]},
                                "tr": {"knows": ["k1", "k2", "n1"], "never": ["n2"]}},
                         measures={"vf": {"acc": how}, "tr": {"acc": text}}, models=models,
                         attacks={"relearn": {"lr": 1e-5}})


def test_summarise_gives_faithfulness_and_robustness_computed_by_hand():
    rows = {r["side"]: r for r in meta.summarise(_doc())}
    visual, text = rows[meta.VISUAL], rows[meta.TEXT]
    assert visual["faithfulness"] == 1.0 and (visual["n_knows"], visual["n_never"]) == (2, 2)
    assert visual["gap"] == pytest.approx(0.6)
    # moves in gap units: never-knew 0.06 / 0.6 = 0.1 each; unlearned 0.1 and 0.7
    assert visual["relearn_moved_never"] == pytest.approx(0.1)
    assert visual["relearn_moved_unlearned"] == pytest.approx(0.4)
    # allowed 0.15: R = mean(1, 0.15 / 0.7)
    r = (1 + 0.15 / 0.7) / 2
    assert visual["relearn_robustness"] == pytest.approx(r)
    assert visual["robustness"] == pytest.approx(r)
    assert visual["overall"] == pytest.approx(2 / (1 / 1.0 + 1 / r))
    # text: knows 0.8, 0.6, 0.7 against 0.2 -> 1; no attack on this side
    assert text["faithfulness"] == 1.0 and math.isnan(text["robustness"])
