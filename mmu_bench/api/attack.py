"""THE PUBLIC PLUGIN CONTRACT for attacks: does forgetting survive an adversary?

An attack is a subclass of ``Attack`` with a ``name``, a ``Config`` dataclass of options (each
with a default) and one method:

    run(target) -> dict[str, float]     the attack's numbers on one model

The harness calls ``run`` on the unlearned model and, once per seed (cached), on the gold
reference (the model that never learned the forget entities: the visual oracle where there is
one, else the oracle). ``compare(unlearned, gold)`` may add numbers that need both (e.g. the
recovery in excess of the gold reference's). What an attack declares for the tables:

    columns     the numbers table.md, report.html and the leaderboard's CSV show, lower being
                better for the unlearned model
    labels      column -> its header on the leaderboard's Markdown and HTML tables, in order
                (the columns they show; the others are in the CSV only)
    explain     the sentence the leaderboard's attack section says of it (how to read its columns)
    order       where its columns come among the attacks' (lower first; then by name)

An attack that makes a model of the target's (fine-tuned, quantised) may also give it through
``attacked_model(target)``: ``mmu-bench meta-eval`` then scores every measure on that model.

Register an attack under the entry-point group ``mmu_bench.attacks``, or pass
``path/to/file.py:Class`` or ``package.module:Class`` to ``--attack``.

Everything an attack may touch comes through the ``Target``: the model (never change it in
place: ``target.copy_model()``), the attacked task's rows, evaluation and scoring as the harness
does them, the forget set to relearn from, and the seed.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mmu_bench.api.metrics import cloze_correct, loglik_choice
from mmu_bench.api.schema import LETTERS


@dataclass
class AttackConfig:
    """Options every attack shares; subclass to add your own."""


class Attack:
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    Config: ClassVar[type[AttackConfig]] = AttackConfig
    columns: ClassVar[tuple[str, ...]] = ()  # the headline numbers (lower is better for the unlearned model)
    labels: ClassVar[dict[str, str]] = {}
    explain: ClassVar[str] = ""
    order: ClassVar[int] = 100

    def __init__(self, config: AttackConfig | None = None):
        self.config = config if config is not None else self.Config()

    def run(self, target: Target) -> dict[str, float]:
        raise NotImplementedError(f"{type(self).__name__} must implement run()")

    def compare(self, unlearned: dict[str, float], gold: dict[str, float] | None) -> dict[str, float]:
        """Numbers that need both models' results (none by default)."""
        return {}

    def attacked_model(self, target: Target):
        """The model this attack makes of the target's model (never the model itself: a copy),
        for every measure to be scored on it: ``mmu-bench meta-eval`` asks how far each measure
        moves under the attack. None (the default): the attack makes no one model (it changes
        inputs, say), and meta-eval cannot use it."""
        return None


def right(record: dict) -> bool:
    """Whether a record's answer is right, the rule attacks share: multiple choice, the most
    likely option is the correct one; cloze and generation, the ground truth appears in the
    greedy output (the cloze rule)."""
    if record["format"] == "multiple_choice":
        return LETTERS[loglik_choice(record["option_logprobs"])] == record["answer"]
    return cloze_correct(record["output"], record["answer"])


def rate(hits: list[bool]) -> float:
    return sum(hits) / len(hits) if hits else float("nan")


class AnyOf:
    """Items right under *any* of several tries (variants, prompts): ``add`` one try's records
    (returns that try's rate); ``rate()`` is the share of ``items`` some try got right."""

    def __init__(self, items):
        self.hit = dict.fromkeys(items, False)

    def add(self, records: list[dict]) -> float:
        hits = [right(r) for r in records]
        for record, ok in zip(records, hits):
            self.hit[record["item_id"]] = self.hit.get(record["item_id"], False) or ok
        return rate(hits)

    def rate(self) -> float:
        return rate(list(self.hit.values()))


@dataclass
class Target:
    """One model under attack, and what an attack needs to attack and score it.

    ``records`` are the model's own records on the attacked task before any attack (what its
    scores in results.json were computed from); ``vanilla_records`` the vanilla model's."""

    model: Any
    processor: Any
    who: str  # "unlearned", or the gold reference's role
    benchmark: Any
    task: Any  # the attacked task (visual forgetting), scoring its score measures only
    rows: list[dict]  # the task's rows, as scored
    records: list[dict]
    vanilla_records: list[dict]
    seed: int
    device: Any
    progress: bool = True
    # a continual run's requests, oldest first (the people of each); None for an ordinary run
    requests: list[list[str]] | None = None
    _evaluate: Any = field(default=None, repr=False)  # (model, processor, rows, task) -> records
    _score: Any = field(default=None, repr=False)  # records -> task score

    def copy_model(self):
        """A deep copy of the model (attacks change copies, never the model). Its trainable
        parameters are the model's (a LoRA adapter's, say); all of them when none is."""
        clone = copy.deepcopy(self.model)
        if not any(p.requires_grad for p in clone.parameters()):
            clone.requires_grad_(True)
        return clone

    def evaluate(self, model=None, rows: list[dict] | None = None, task=None) -> list[dict]:
        """Records of ``model`` (default: the target's) on ``rows`` (default: the task's rows)
        under ``task`` (default: the attacked task; pass a changed copy to change prompts)."""
        return self._evaluate(model if model is not None else self.model, self.processor,
                              rows if rows is not None else self.rows, task if task is not None else self.task)

    def score(self, records: list[dict]) -> float:
        """The task score of ``records`` (the mean of its score measures, as in results.json)."""
        return self._score(records)

    def forget_features(self, entities) -> list[dict]:
        """The image QA training pairs of these forget entities (what methods unlearn), encoded
        as the harness fine-tunes on them."""
        from mmu_bench.api.context import EncodedSet
        from mmu_bench.api.prompts import default_prompts

        rows = self.benchmark.forget_set()
        wanted = set(entities)
        ids = rows.select_columns(["entity_id"]).to_dict()["entity_id"]
        rows = rows.select([i for i, e in enumerate(ids) if e in wanted])
        return EncodedSet(rows, self.processor, default_prompts()).features

    def finetune(self, model, features: list[dict], *, steps: int, lr: float, batch_size: int,
                 schedule: str = "constant") -> list[float]:
        """Plain supervised fine-tuning of ``model`` (a copy) on ``features``, as the harness
        trains its reference models; seeded by the target's seed. Returns the losses."""
        from mmu_bench.api.finetune import finetune

        return finetune(model, features, self.processor.tokenizer.pad_token_id, steps=steps, lr=lr,
                        batch_size=batch_size, seed=self.seed, schedule=schedule, desc=f"attack ({self.who})",
                        progress=self.progress)

    def leaked_entities(self, fraction: float, salt: str) -> tuple[list[str], list[str]]:
        """The forget people an attack leaks, and the others: after a continual run the oldest
        request's people (do the oldest deletions come back first?), else ``split_entities``."""
        if self.requests:
            first = sorted(self.requests[0])
            return first, sorted(set(self.benchmark.forget_entities) - set(first))
        return self.split_entities(fraction, salt)

    def split_entities(self, fraction: float, salt: str) -> tuple[list[str], list[str]]:
        """The forget entities in two disjoint seeded parts: ``fraction`` of them (at least one)
        and the rest. Same seed, same split, for every model."""
        entities = sorted(self.benchmark.forget_entities)
        random.Random(f"{salt}/{self.seed}").shuffle(entities)
        k = min(len(entities), max(1, round(len(entities) * fraction)))
        return sorted(entities[:k]), sorted(entities[k:])


def number(value) -> float:
    """A number from an attack's results: None (how JSON keeps NaN) is NaN."""
    return float("nan") if value is None else float(value)


def of_entities(records: list[dict], entities) -> list[dict]:
    wanted = set(entities)
    return [r for r in records if r["entity_id"] in wanted]


# Recovery divides by how far the model is below the vanilla model. Under this gap (in task
# score; a third of the way from the vanilla model to the gold reference on MMU-Synth) the
# ratio is noise: on 5 people x 30 items a score moves by a few hundredths between seeds.
MIN_GAP = 0.1


def recovery(after: float, before: float, vanilla: float, min_gap: float = MIN_GAP) -> float:
    """(after - before) / (vanilla - before): 0 = nothing came back, 1 = back to the vanilla
    model. NaN when the model is less than ``min_gap`` below the vanilla model (it forgot
    next to nothing, so there is nothing to recover)."""
    gap = vanilla - before
    return (after - before) / gap if gap >= min_gap else float("nan")
