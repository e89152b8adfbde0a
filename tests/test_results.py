import math

import pytest

from mmu_bench import results


def _m(**values):
    return {k: {"mean": v, "stderr": 0.0, "n": 10} for k, v in values.items()}


def test_task_score_is_the_mean_of_the_headline_metrics():
    assert results.task_score(_m(mc_acc=0.1, mc_loglik_acc=0.9, cloze_acc=0.6, rougeL=0.3)) == pytest.approx(0.6)


def test_normalisation_by_hand():
    vanilla = {"visual_forgetting": 0.9, "textual_retention": 0.8, "retained_vqa": 0.8, "general_utility": 0.5}
    oracle = {"visual_forgetting": 0.3, "textual_retention": 0.8, "retained_vqa": 0.8, "general_utility": 0.5}
    unlearned = {"visual_forgetting": 0.45, "textual_retention": 0.4, "retained_vqa": 0.88, "general_utility": 0.25}
    norm = results.normalise(unlearned, vanilla, oracle, chance={"visual_forgetting": 0.1})
    assert norm["visual_forgetting"] == pytest.approx((0.9 - 0.45) / (0.9 - 0.3))  # 0.75
    assert norm["textual_retention"] == pytest.approx(0.5)
    assert norm["retained_vqa"] == 1.0  # clipped
    assert norm["general_utility"] == pytest.approx(0.5)
    # harmonic mean of 0.75, 0.5, 1, 0.5 = 4 / (4/3 + 2 + 1 + 2)
    assert results.overall(norm) == pytest.approx(4 / (4 / 3 + 2 + 1 + 2))


def test_forgetting_falls_back_to_chance_without_an_oracle():
    norm = results.normalise({"visual_forgetting": 0.5}, {"visual_forgetting": 0.9}, None,
                             chance={"visual_forgetting": 0.1})
    assert norm["visual_forgetting"] == pytest.approx(0.5)


def test_collapse_anywhere_zeroes_the_overall_score():
    assert results.harmonic_mean([1.0, 1.0, 0.0, 1.0]) == 0.0
    assert math.isnan(results.harmonic_mean([1.0, float("nan")]))
