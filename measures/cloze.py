"""Cloze accuracy, as MLLMU-Bench scores it."""

from mmu_bench.api import ItemMeasure, cloze_correct


class ClozeAccuracy(ItemMeasure):
    """cloze_acc: the ground truth appears in the output, case-insensitively, after both are
    normalised (whitespace collapsed, no space before punctuation)."""

    name = "cloze_acc"
    description = "answer contained"
    formats = ("cloze",)
    chance = 0.0

    def item(self, record, references):
        return float(cloze_correct(record["output"], record["answer"]))
