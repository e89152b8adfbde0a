"""Cloze accuracy, as MLLMU-Bench scores it."""

from mmu_bench.api import CLOZE_RULES, ItemMeasure, MMUBenchError, cloze_correct


class ClozeAccuracy(ItemMeasure):
    """cloze_acc: the ground truth appears in the output, case-insensitively. Option ``rule``:
    ``normalised`` (the harness protocol's: both normalised first, whitespace collapsed and no
    space before punctuation; an empty answer never counts) or ``mllmu`` (MLLMU-Bench's eval.py
    exactly, ``gt.lower() in output.lower()``; the ``mllmu`` protocol sets it)."""

    name = "cloze_acc"
    description = "answer contained"
    formats = ("cloze",)
    chance = 0.0
    options = {"rule": "normalised"}
    reads = ("output",)

    def __init__(self, **options):
        super().__init__(**options)
        if self.options["rule"] not in CLOZE_RULES:
            raise MMUBenchError(f"measure 'cloze_acc': option rule={self.options['rule']!r} is not one of "
                                f"{', '.join(CLOZE_RULES)}")

    def item(self, record, references):
        return float(cloze_correct(record["output"], record["answer"], self.options["rule"]))
