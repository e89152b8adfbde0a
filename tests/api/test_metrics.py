import math

import pytest

from mmu_bench.api import metrics


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


def test_cloze_by_mllmu_benchs_rule_is_lower_in_lower_and_nothing_else():
    assert metrics.cloze_correct("It is a BAKER", "baker", rule="mllmu")
    # whitespace is not collapsed: "Jorik  Kestrel" (two spaces) does not hold "jorik kestrel"
    assert not metrics.cloze_correct("Jorik  Kestrel", "jorik kestrel", rule="mllmu")
    assert metrics.cloze_correct("Jorik  Kestrel", "jorik kestrel")
    assert not metrics.cloze_correct("Kestrel, Jorik .", "jorik.", rule="mllmu")
    assert metrics.cloze_correct("Kestrel, Jorik .", "jorik.")  # normalised: no space before "."
    assert metrics.cloze_correct("anything", "", rule="mllmu")  # "" in s holds in Python, as in eval.py
    with pytest.raises(ValueError, match="unknown cloze rule 'loose'"):
        metrics.cloze_correct("a", "a", rule="loose")


def test_rouge_l_against_a_hand_computed_value():
    # reference "the cat sat on the mat" (6 tokens), prediction "the cat lay on the mat" (6):
    # LCS = the cat on the mat = 5 -> P = R = 5/6 -> F1 = 5/6.
    assert metrics.rouge("the cat lay on the mat", "the cat sat on the mat") == pytest.approx(5 / 6)
    # Stemming: "works" and "working" share the stem "work"; LCS 3 of 3 and 3.
    assert metrics.rouge("she is working", "she is works") == pytest.approx(1.0)
    # Prediction "a b" vs reference "a b c d": LCS 2, P = 1, R = 0.5, F1 = 2/3.
    assert metrics.rouge("alpha beta", "alpha beta gamma delta") == pytest.approx(2 / 3)
    assert metrics.rouge("", "alpha") == 0.0


def test_rouge_is_rouge_scores_own_stemmed_scorer():
    """The per-process word-stem cache changes no score: the same values as rouge-score's
    ``RougeScorer(use_stemmer=True)``, on words its Porter stemmer changes and on odd text."""
    import random

    from rouge_score import rouge_scorer

    words = ("running runner ran runs generously generation generated the a of happily happiness cats cat's "
             "Ünïcode 123 don't flying flies").split()
    theirs = rouge_scorer.RougeScorer(list(metrics.ROUGE_TYPES), use_stemmer=True)
    rng = random.Random(0)
    for _ in range(300):
        a, b = (" ".join(rng.choices(words, k=rng.randint(0, 10))) for _ in range(2))
        want = theirs.score(b, a)
        for kind in metrics.ROUGE_TYPES:
            for part in ("fmeasure", "recall", "precision"):
                assert metrics.rouge(a, b, kind, part) == getattr(want[kind], part), (a, b, kind, part)


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


def test_rouge_1_and_2_f1_against_hand_computed_values():
    # reference "the cat sat on the mat", prediction "the cat lay on the mat": unigram overlap
    # the x2, cat, on, mat = 5 of 6 each side -> 5/6; bigrams: the-cat, on-the, the-mat = 3 of 5 -> 3/5.
    pred, ref = "the cat lay on the mat", "the cat sat on the mat"
    assert metrics.rouge(pred, ref, "rouge1") == pytest.approx(5 / 6)
    assert metrics.rouge(pred, ref, "rouge2") == pytest.approx(3 / 5)
    # Stemming as for ROUGE-L: "works" / "working" match.
    assert metrics.rouge("she is working", "she is works", "rouge2") == pytest.approx(1.0)


def test_rouge_l_recall_against_a_hand_computed_value():
    # LCS("alpha beta", "alpha beta gamma delta") = 2 of the reference's 4 tokens -> 0.5 (F1 2/3).
    assert metrics.rouge("alpha beta", "alpha beta gamma delta", "rougeL", "recall") == pytest.approx(0.5)
    # A long output that contains the whole reference has recall 1 (precision is low).
    assert metrics.rouge("so alpha and beta it is", "alpha beta", "rougeL", "recall") == pytest.approx(1.0)


def test_bleu_against_a_hand_computed_value():
    # "the cat sat on a mat" vs "the cat sat on the mat": clipped n-gram precisions 5/6, 3/5,
    # 2/4, 1/3; equal lengths -> brevity penalty 1; BLEU = (5/6 * 3/5 * 2/4 * 1/3) ** (1/4).
    expected = (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert metrics.bleu("the cat sat on a mat", "the cat sat on the mat") == pytest.approx(expected)
    assert metrics.bleu("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    # No 3-gram or 4-gram match: smoothing method 1 counts 0.1 of a match (0.1/4 and 0.1/3);
    # 1-grams the, cat, on: 3/6; 2-grams the-cat: 1/5.
    smoothed = (3 / 6 * 1 / 5 * 0.1 / 4 * 0.1 / 3) ** 0.25
    assert metrics.bleu("the cat is on a rug", "the cat sat on the mat") == pytest.approx(smoothed)
    assert metrics.bleu("", "the cat") == 0.0
