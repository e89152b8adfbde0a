"""What reports draw from a continual stream (``mmu_bench.runs.continual``): the clusters a
bootstrap resamples, the figures under resampled people, the erosion curves, and a one-shot run's
overall under the same draws. Every expected value is worked out by hand from the stream below."""

import numpy as np
import pytest

from mmu_bench.runs import continual
from mmu_bench.runs.results import Normalisation, RunResult, TaskInfo

TASKS = {"visual_forgetting": (False, 1), "textual_retention": (True, 2), "general_utility": (True, 3)}
INFOS = {name: TaskInfo("1", name, True, hib, ["acc"], {"acc": hib}, ["acc"], order)
         for name, (hib, order) in TASKS.items()}
CHANCE = {name: 0.25 for name in TASKS}


def clusters(vf: dict, tr: dict, gu: dict) -> dict:
    """One snapshot's per-person sums: one item per person (or general item), measure ``acc``."""
    return {"visual_forgetting": {p: {"acc": [v, 1]} for p, v in vf.items()},
            "textual_retention": {p: {"acc": [v, 1]} for p, v in tr.items()},
            "general_utility": {f"item:{i}": {"acc": [v, 1]} for i, v in gu.items()}}


VANILLA = clusters({"a": 1.0, "b": 1.0}, {"a": 1.0, "b": 1.0}, {"g1": 1.0, "g2": 1.0})
AFTER_1 = clusters({"a": 0.0, "b": 0.6}, {"a": 1.0, "b": 1.0}, {"g1": 1.0, "g2": 0.5})
FINAL = clusters({"a": 0.2, "b": 0.0}, {"a": 0.5, "b": 1.0}, {"g1": 1.0, "g2": 0.0})
GOLD = clusters({"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 1.0}, {"g1": 1.0, "g2": 1.0})


def lines() -> list[dict]:
    """Two requests: person a, then person b."""
    return [{"request": 0, "people": [], "model": "vanilla", "clusters": VANILLA},
            {"request": 1, "people": ["a"], "clusters": AFTER_1, "gold": GOLD, "gold_role": "visual_oracle"},
            {"request": 2, "people": ["b"], "clusters": FINAL, "gold": GOLD, "gold_role": "visual_oracle"}]


def one_shot(with_clusters: bool = True) -> RunResult:
    """An ordinary run on a and b: forgets both, keeps b's text at half, the general items whole."""
    norm = {"visual_forgetting": Normalisation(False, 1.0, "visual_oracle", 0.0),
            "textual_retention": Normalisation(True, 1.0), "general_utility": Normalisation(True, 1.0)}
    sums = clusters({"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 0.5}, {"g1": 1.0, "g2": 1.0})
    return RunResult(benchmark={}, model={}, method={}, seed=0, tasks=INFOS, scores={}, dimensions={},
                     normalisation=norm, normalised={}, overall=0.9, clusters=sums if with_clusters else {})


def test_the_clusters_resampled_are_the_banks_in_its_order():
    ids = continual.cluster_ids(lines(), INFOS)
    assert ids == {"visual_forgetting": ("a", "b"), "textual_retention": ("a", "b"),
                   "general_utility": ("item:g1", "item:g2")}
    bank = continual.Bank([*(x["clusters"] for x in lines()), GOLD, GOLD], {n: ["acc"] for n in INFOS})
    assert {task: tuple(v) for task, v in bank.ids.items()} == ids


def test_resampled_figures_are_one_value_per_draw_and_the_people_draws_are_shared():
    found, weights = continual.resampled(lines(), INFOS, CHANCE, 50, np.random.default_rng(3))
    assert weights["visual_forgetting"].shape == (50, 2)
    # forgetting and textual retention are over the same people: one draw serves both
    assert (weights["visual_forgetting"] == weights["textual_retention"]).all()
    assert found["after"][-1]["overall"].shape == (50,)
    # a draw of a twice: forgetting 0.2 -> (1 - 0.2) / (1 - 0) = 0.8; textual 0.5 -> 0.5 (by hand)
    only_a = np.flatnonzero(weights["visual_forgetting"][:, 0] == 2)
    assert len(only_a) > 0
    assert found["after"][-1]["normalised"]["visual_forgetting"][only_a] == pytest.approx(0.8)
    assert found["after"][-1]["normalised"]["textual_retention"][only_a] == pytest.approx(0.5)


def test_the_erosion_curves_by_hand_and_their_slope_is_the_erosion():
    series = continual.retention_series(lines(), INFOS)
    # textual retention over a and b: 1, 1, (0.5 + 1) / 2; general utility: 1, 0.75, 0.5
    assert series["textual_retention"] == pytest.approx([1.0, 1.0, 0.75])
    assert series["general_utility"] == pytest.approx([1.0, 0.75, 0.5])
    assert "visual_forgetting" not in series
    erosion = continual.figures(lines(), INFOS, CHANCE)["erosion"]
    assert erosion["textual_retention"] == pytest.approx(-0.125)  # ((0.75 - 1) * 1 + 0 + ...) / 2
    for dim, values in series.items():
        assert continual.slope(values) == pytest.approx(erosion[dim])


def test_a_one_shot_runs_overall_under_given_draws():
    run = one_shot()
    # everyone once: forgetting 1, textual 0.75, general 1: 3 / (1 + 4/3 + 1) = 0.9
    assert continual.overall_under(run) == pytest.approx(0.9)
    weights = {"visual_forgetting": np.array([[2, 0], [0, 2]]), "textual_retention": np.array([[2, 0], [0, 2]]),
               "general_utility": np.array([[2, 0], [0, 2]])}
    # a twice with g1 twice: 1, 1, 1; b twice with g2 twice: 1, 0.5, 1 -> 3 / 4
    assert continual.overall_under(run, weights) == pytest.approx([1.0, 0.75])
    assert continual.overall_under(one_shot(with_clusters=False)) is None
