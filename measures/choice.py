"""Multiple-choice accuracy, two ways (MLLMU-Bench scores the first; the harness's task score
uses the second, which needs no output parsing)."""

from mmu_bench.api import LETTERS, ItemMeasure, loglik_choice, mc_correct


class MCAccuracy(ItemMeasure):
    """mc_acc: the greedy answer's first character, upper-cased, is the correct option letter."""

    name = "mc_acc"
    description = "greedy letter"
    formats = ("multiple_choice",)
    chance = 1 / len(LETTERS)
    reads = ("output",)

    def item(self, record, references):
        return float(mc_correct(record["output"], record["answer"], len(record["options"])))


class MCLoglikAccuracy(ItemMeasure):
    """mc_loglik_acc: the option whose text is most likely as the answer (mean token
    log-probability, then end of answer) is the correct one; ties go to the first option."""

    name = "mc_loglik_acc"
    description = "most likely option"
    formats = ("multiple_choice",)
    chance = 1 / len(LETTERS)
    reads = ("option_logprobs",)

    def item(self, record, references):
        return float(LETTERS[loglik_choice(record["option_logprobs"])] == record["answer"])
