"""Memorisation of the reference answer under teacher forcing: open-unlearning's Exact
Memorization and Extraction Strength (``src/evals/metrics/memorization.py``), from the per-token
argmax hits the evaluation records in the pass that gives ``answer_logprobs``.

The answer is the reference answer of every format: the ground truth after the item's own
prompt (cloze, generation), the correct option's text after the bare question (multiple
choice), as the membership inference measures read it. Its n tokens are the answer's without
the end-of-answer token the evaluation appends, which open-unlearning leaves out too
(``tokenwise_vocab_logprobs``: "ignore eos prediction"). An answer of no token but that one is
not scored.

    EM = (answer tokens that are the model's argmax prediction) / n
    ES = 1 - k / n, k the smallest prefix length (0 <= k <= n) such that, given the prompt
         and the first k answer tokens, every later token is the argmax prediction

Both are means over items. ES is Carlini et al.'s definition, as open-unlearning's docs give it:
k = n (nothing extracted, not even the last token) gives 0. open-unlearning's loop stops at
k = n - 1 and so gives 1 / n there; ours differs from its numbers on exactly those items.
"""

from __future__ import annotations

from mmu_bench.api import FORMATS, ItemMeasure, NotApplicable

FIELD = "answer_argmax_hits"


def _hits(record: dict) -> list[int] | None:
    """The answer tokens' hits without the end-of-answer token; None for an answer of that token alone."""
    if FIELD not in record:
        raise NotApplicable(f"records without {FIELD!r} (reference records cached by an older mmu-bench; "
                            "they are remade when their cache is)")
    hits = record[FIELD][:-1]
    return hits or None


def exact_memorization(hits: list[int]) -> float:
    return sum(hits) / len(hits)


def extraction_strength(hits: list[int]) -> float:
    n = len(hits)
    k = n  # no suffix predicted: ES = 0
    while k > 0 and hits[k - 1]:  # the longest run of hits that ends the answer
        k -= 1
    return 1 - k / n


class _Memorisation(ItemMeasure):
    formats = FORMATS
    table = "information"
    # None: the task's direction (low on forgetting tasks, high on retention tasks is good).
    higher_is_better = None

    def item(self, record, references):
        hits = _hits(record)
        return None if hits is None else self.of(hits)


class ExactMemorization(_Memorisation):
    """exact_memorization: the share of the reference answer's tokens that the model predicts
    (argmax) given the prompt and the answer's earlier tokens."""

    name = "exact_memorization"
    description = "share of answer tokens that are the argmax prediction (teacher forced)"
    label = "EM"
    explain = ("EM (exact memorisation, open-unlearning's): the share of the answer's tokens the model predicts "
               "given the earlier ones; lower on forgetting tasks, higher on retention tasks is better.")
    of = staticmethod(exact_memorization)


class ExtractionStrength(_Memorisation):
    """extraction_strength: 1 - (the shortest answer prefix after which the model predicts the
    rest of the answer, argmax) / answer length."""

    name = "extraction_strength"
    description = "1 - shortest prefix after which the rest of the answer is predicted / length"
    label = "ES"
    explain = ("ES (extraction strength): 1 - the share of the answer a model must be given before it predicts "
               "the rest; lower on forgetting tasks, higher on retention tasks is better.")
    of = staticmethod(extraction_strength)
