"""Does the information remain? The truth ratio of TOFU and forget quality (a KS test against a
reference model), from the option log-likelihoods the evaluation already computes.

Truth ratio of an item: TR = P(perturbed) / P(correct), where P(a) = exp(mean token
log-probability of a) and the perturbed answers' probabilities are averaged in log space, as
TOFU's and open-unlearning's code do (the geometric mean of the ratios). The perturbed answers
are the item's wrong options: MMU-Synth's distractors, MLLMU-Bench's wrong options, CLEAR's
other names. TR near 1: the model cannot tell the true answer from false ones; near 0: it
knows the true one.
"""

from __future__ import annotations

import math

from scipy.stats import ks_2samp

from mmu_bench.data.schema import LETTERS
from mmu_bench.measure import ItemMeasure, Measure, NotApplicable, Value


def truth_ratio(option_logprobs: list[float], correct: int) -> float:
    """exp(mean over wrong options of their mean token log-probability - the correct one's)."""
    wrong = [lp for k, lp in enumerate(option_logprobs) if k != correct]
    return math.exp(sum(wrong) / len(wrong) - option_logprobs[correct])


def record_truth_ratio(record: dict) -> float:
    return truth_ratio(record["option_logprobs"], LETTERS.index(record["answer"]))


class TruthRatioForget(ItemMeasure):
    """truth_ratio_forget: TOFU's forget-set statistic, mean(min(TR, 1/TR)). 1: the true answer
    is no likelier than the false ones (forgotten); near 0: one side is strongly preferred."""

    name = "truth_ratio_forget"
    description = "mean min(TR, 1/TR): 1 = true and false answers equally likely"
    formats = ("multiple_choice",)
    higher_is_better = True
    table = "information"

    def item(self, record, references):
        tr = record_truth_ratio(record)
        return min(tr, 1 / tr) if tr > 0 else 0.0


class TruthRatioRetain(ItemMeasure):
    """truth_ratio_retain: TOFU's retain-set statistic, mean(max(0, 1 - TR)). 1: the true answer
    is far likelier than the false ones (known); 0: it is not preferred."""

    name = "truth_ratio_retain"
    description = "mean max(0, 1 - TR): 1 = the true answer is preferred"
    formats = ("multiple_choice",)
    higher_is_better = True
    table = "information"

    def item(self, record, references):
        return max(0.0, 1 - record_truth_ratio(record))


class ForgetQuality(Measure):
    """forget_quality: the p-value of a two-sample KS test between the truth ratios of the scored
    model and of a reference model on the same items (``against``: ``gold``, the first gold
    reference at hand, or a role such as ``vanilla``). High: the two distributions cannot be
    told apart. Against the gold reference on forget images, high is good (as if never
    trained on them); against the vanilla model on text, high is good too (nothing lost)."""

    name = "forget_quality"
    description = "KS-test p-value of truth ratios vs the reference (high = indistinguishable)"
    formats = ("multiple_choice",)
    higher_is_better = True
    options = {"against": "gold"}
    table = "information"

    def __init__(self, **options):
        super().__init__(**options)
        against = self.options["against"]
        self.references = () if against == "gold" else (against,)

    def compute(self, records):
        role = records.comparison(self.options["against"])
        ours = [record_truth_ratio(r) for r in records.items]
        theirs = [record_truth_ratio(r) for r in records.reference(role)]
        if len(ours) < 2:
            raise NotApplicable("fewer than 2 multiple-choice items")
        return Value(float(ks_2samp(ours, theirs).pvalue), None, len(ours), against=role)
