"""ROUGE and BLEU of generated answers: ROUGE-L F1 as MLLMU-Bench scores it (the harness's
headline), and the other generation metrics the real benchmarks' own code reports, which their
protocols add (``protocols/``)."""

from mmu_bench.api import ItemMeasure, bleu, rouge


class _Generation(ItemMeasure):
    formats = ("generation",)
    chance = 0.0
    reads = ("output",)
    kind, part = "rougeL", "fmeasure"

    def item(self, record, references):
        return rouge(record["output"], record["answer"], self.kind, self.part)


class RougeL(_Generation):
    """rougeL: ROUGE-L F1 of the output against the ground truth, Porter stemming (rouge-score)."""

    name = "rougeL"
    description = "ROUGE-L F1"


class Rouge1(_Generation):
    """rouge1: ROUGE-1 F1 (unigram overlap), Porter stemming, as MLLMU-Bench's eval reports it."""

    name = "rouge1"
    description = "ROUGE-1 F1"
    kind = "rouge1"


class Rouge2(_Generation):
    """rouge2: ROUGE-2 F1 (bigram overlap), Porter stemming, as MLLMU-Bench's eval reports it."""

    name = "rouge2"
    description = "ROUGE-2 F1"
    kind = "rouge2"


class RougeLRecall(_Generation):
    """rougeL_recall: ROUGE-L recall (the share of the ground truth's longest common subsequence
    the output covers), Porter stemming: CLEAR's official generation metric."""

    name = "rougeL_recall"
    description = "ROUGE-L recall"
    part = "recall"


class Bleu(_Generation):
    """bleu: sentence BLEU-4 of the output against the ground truth (``metrics.bleu``), as
    MLLMU-Bench's eval reports it."""

    name = "bleu"
    description = "sentence BLEU"

    def item(self, record, references):
        return bleu(record["output"], record["answer"])
