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

from mmu_bench.api import LETTERS, ItemMeasure, Measure, NotApplicable, Value


def truth_ratio(option_logprobs: list[float], correct: int) -> float:
    """exp(mean over wrong options of their mean token log-probability - the correct one's)."""
    wrong = [lp for k, lp in enumerate(option_logprobs) if k != correct]
    return math.exp(sum(wrong) / len(wrong) - option_logprobs[correct])


def record_truth_ratio(record: dict) -> float | None:
    """The item's truth ratio: from its options (multiple choice), or from its paraphrased and
    perturbed answers (CLEAR's captions: ``alternative_logprobs``); None when it has neither."""
    if "option_logprobs" in record:
        return truth_ratio(record["option_logprobs"], LETTERS.index(record["answer"]))
    alternatives = record.get("alternative_logprobs")
    if not alternatives:
        return None
    return truth_ratio([alternatives["paraphrased"], *alternatives["perturbed"]], 0)


def _ratios(records: list[dict]) -> list[float]:
    return [tr for tr in map(record_truth_ratio, records) if tr is not None]


# Multiple choice (the wrong options as perturbed answers) and generation items that carry a
# paraphrased and perturbed answers (CLEAR's captions); other generation items are skipped.
TRUTH_FORMATS = ("multiple_choice", "generation")


class TruthRatioForget(ItemMeasure):
    """truth_ratio_forget: TOFU's forget-set statistic, mean(min(TR, 1/TR)). 1: the true answer
    is no likelier than the false ones (forgotten); near 0: one side is strongly preferred."""

    name = "truth_ratio_forget"
    description = "mean min(TR, 1/TR): 1 = true and false answers equally likely"
    formats = TRUTH_FORMATS
    higher_is_better = True
    table = "information"

    def item(self, record, references):
        tr = record_truth_ratio(record)
        if tr is None:
            return None
        return min(tr, 1 / tr) if tr > 0 else 0.0


class TruthRatioRetain(ItemMeasure):
    """truth_ratio_retain: TOFU's retain-set statistic, mean(max(0, 1 - TR)). 1: the true answer
    is far likelier than the false ones (known); 0: it is not preferred."""

    name = "truth_ratio_retain"
    description = "mean max(0, 1 - TR): 1 = the true answer is preferred"
    formats = TRUTH_FORMATS
    higher_is_better = True
    table = "information"

    def item(self, record, references):
        tr = record_truth_ratio(record)
        return None if tr is None else max(0.0, 1 - tr)


class ForgetQuality(Measure):
    """forget_quality: the p-value of a two-sample KS test between the truth ratios of the scored
    model and of a reference model on the same items (``against``: ``gold``, the first gold
    reference at hand, or a role such as ``vanilla``). High: the two distributions cannot be
    told apart. Against the gold reference on forget images, high is good (as if never
    trained on them); against the vanilla model on text, high is good too (nothing lost)."""

    name = "forget_quality"
    description = "KS-test p-value of truth ratios vs the reference (high = indistinguishable)"
    formats = TRUTH_FORMATS
    higher_is_better = True
    options = {"against": "gold"}
    table = "information"
    label = "forget quality"
    explain = ("Forget quality: KS-test p-value of truth ratios against the reference (visual forgetting: the gold "
               "reference, text: the vanilla model); high = indistinguishable from it (good).")

    def __init__(self, **options):
        super().__init__(**options)
        against = self.options["against"]
        self.references = () if against == "gold" else (against,)

    def compute(self, records):
        ours = _ratios(records.items)
        if len(ours) < 2:
            raise NotApplicable("fewer than 2 items with a truth ratio (multiple choice, or paraphrased and "
                                "perturbed answers)")
        role = records.comparison(self.options["against"])
        theirs = _ratios(records.reference(role))
        return Value(float(ks_2samp(ours, theirs).pvalue), None, len(ours), against=role)
