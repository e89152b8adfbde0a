import math

import pytest

from mmu_bench import metrics


def test_mc_letter_takes_first_character_like_mllmu_bench():
    assert metrics.mc_letter("B") == "B"
    assert metrics.mc_letter("  c) the nurse") == "C"
    assert metrics.mc_letter("The answer is B") is None  # 'T' is no option key
    assert metrics.mc_letter("E") is None
    assert metrics.mc_letter("D", num_options=3) is None
    assert metrics.mc_letter("") is None


def test_mc_correct():
    assert metrics.mc_correct("A.", "A")
    assert not metrics.mc_correct("B", "A")


def test_cloze_is_case_insensitive_containment_after_normalising():
    assert metrics.cloze_correct("Jorik Kestrel .", "jorik kestrel")
    assert metrics.cloze_correct("It is a BAKER", "baker")
    assert not metrics.cloze_correct("a bake", "baker")
    assert not metrics.cloze_correct("anything", "")


def test_rouge_l_against_a_hand_computed_value():
    # reference "the cat sat on the mat" (6 tokens), prediction "the cat lay on the mat" (6):
    # LCS = the cat on the mat = 5 -> P = R = 5/6 -> F1 = 5/6.
    assert metrics.rouge_l("the cat lay on the mat", "the cat sat on the mat") == pytest.approx(5 / 6)
    # Stemming: "works" and "working" share the stem "work"; LCS 3 of 3 and 3.
    assert metrics.rouge_l("she is working", "she is works") == pytest.approx(1.0)
    # Prediction "a b" vs reference "a b c d": LCS 2, P = 1, R = 0.5, F1 = 2/3.
    assert metrics.rouge_l("alpha beta", "alpha beta gamma delta") == pytest.approx(2 / 3)
    assert metrics.rouge_l("", "alpha") == 0.0


def test_loglik_choice_picks_the_maximum_and_the_first_on_ties():
    assert metrics.loglik_choice([-3.0, -1.0, -2.0, -5.0]) == 1
    assert metrics.loglik_choice([-1.0, -1.0]) == 0


def test_mean_and_stderr_by_hand():
    mean, stderr = metrics.mean_and_stderr([1.0, 0.0, 1.0, 0.0])
    # sample variance = 4 * 0.25 / 3 = 1/3; stderr = sqrt(1/3 / 4)
    assert mean == 0.5
    assert stderr == pytest.approx(math.sqrt(1 / 12))
    assert metrics.mean_and_stderr([2.0]) == (2.0, 0.0)
    assert all(math.isnan(v) for v in metrics.mean_and_stderr([]))
