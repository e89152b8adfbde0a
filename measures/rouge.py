"""ROUGE-L of generated answers, as MLLMU-Bench scores them."""

from mmu_bench.measure import ItemMeasure
from mmu_bench.metrics import rouge_l


class RougeL(ItemMeasure):
    """rougeL: ROUGE-L F1 of the output against the ground truth, Porter stemming (rouge-score)."""

    name = "rougeL"
    description = "ROUGE-L F1"
    formats = ("generation",)
    chance = 0.0

    def item(self, record, references):
        return rouge_l(record["output"], record["answer"])
