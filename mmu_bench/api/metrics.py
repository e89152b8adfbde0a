"""The pure functions behind the built-in measures (``measures/``) and their aggregate.
Scoring follows MLLMU-Bench:

- multiple choice (greedy): the first non-space character of the output, upper-cased, must be
  the correct option letter;
- multiple choice (log-likelihood): the option whose text has the highest mean token
  log-probability as the answer must be the correct one (no output parsing at all);
- cloze: the ground truth must appear in the output, case-insensitively, after both are
  normalised (whitespace collapsed, no space before punctuation); under the ``mllmu`` protocol
  exactly as MLLMU-Bench's eval.py: ``gt.lower() in output.lower()``;
- generation: ROUGE-L F1 with Porter stemming (``rouge-score``).

Beside them, the generation metrics the real benchmarks' own code reports: ROUGE-1 and ROUGE-2
F1 and sentence BLEU (MLLMU-Bench), ROUGE-L recall (CLEAR's official generation metric).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache

from mmu_bench.api.schema import LETTERS


def normalise(text: str) -> str:
    text = " ".join(text.lower().split())
    return re.sub(r"\s+([.,!?;:'])", r"\1", text)


def mc_letter(output: str, num_options: int = 4) -> str | None:
    """The option letter a greedy answer names, or None when it names none."""
    stripped = output.strip()
    if not stripped:
        return None
    first = stripped[0].upper()
    return first if first in LETTERS[:num_options] else None


def mc_correct(output: str, answer: str, num_options: int = 4) -> bool:
    return mc_letter(output, num_options) == answer


CLOZE_RULES = ("normalised", "mllmu")


def cloze_correct(output: str, answer: str, rule: str = "normalised") -> bool:
    """Whether a cloze output holds the answer. ``normalised`` (the harness's): after both are
    normalised, and never for an empty answer; ``mllmu``: MLLMU-Bench's eval.py exactly,
    ``gt.lower() in output.lower()``, nothing else."""
    if rule == "mllmu":
        return answer.lower() in output.lower()
    if rule != "normalised":
        raise ValueError(f"unknown cloze rule {rule!r}; expected one of {', '.join(CLOZE_RULES)}")
    target = normalise(answer)
    return bool(target) and target in normalise(output)


ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


class _StemmedTokenizer:
    """rouge-score's own tokenization with its Porter stemmer (``use_stemmer=True``), each word
    stemmed once per process: stemming was most of a run's scoring time, and a benchmark's
    outputs and answers repeat the same few hundred words."""

    def __init__(self):
        from nltk.stem import porter

        self.stem = lru_cache(maxsize=2**16)(porter.PorterStemmer().stem)

    def tokenize(self, text: str) -> list[str]:
        from rouge_score import tokenize

        return tokenize.tokenize(text, self)


@lru_cache(maxsize=len(ROUGE_TYPES))
def _scorer(kind: str):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([kind], tokenizer=_StemmedTokenizer())


@lru_cache(maxsize=2**16)
def _rouge(reference: str, prediction: str, kind: str):
    return _scorer(kind).score(reference, prediction)[kind]  # the reference models' pairs come back every run


def rouge(prediction: str, reference: str, kind: str = "rougeL", part: str = "fmeasure") -> float:
    """ROUGE ``kind`` (rouge1 | rouge2 | rougeL) of a prediction, with Porter stemming;
    ``part``: fmeasure | recall | precision."""
    return getattr(_rouge(reference, prediction, kind), part)


def bleu(prediction: str, reference: str) -> float:
    """Sentence BLEU-4 of whitespace tokens, as MLLMU-Bench's eval computes it: NLTK's
    ``sentence_bleu``, uniform weights, smoothing method 1 (an n-gram order with no match
    counts 0.1 matches instead of 0)."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    hypothesis = prediction.split()
    if not hypothesis:
        return 0.0
    return float(sentence_bleu([reference.split()], hypothesis, smoothing_function=SmoothingFunction().method1))


def loglik_choice(option_logprobs: Sequence[float]) -> int:
    """Index of the most likely option (the first one on ties)."""
    best = max(range(len(option_logprobs)), key=lambda i: (option_logprobs[i], -i))
    return best


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (sample standard deviation / sqrt(n)); 0 for n < 2."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)
