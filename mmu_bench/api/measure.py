"""THE PUBLIC PLUGIN CONTRACT for measures: how a model is scored on a task.

A measure reads *records*: one per scored item, written by the evaluation for every model (the
unlearned one and each reference model, whose records are cached), with the item's fields and
the model's raw signals:

    output            the greedy answer (text)
    option_logprobs   multiple choice: each option's mean token log-probability as the answer
                      to the bare question (then end of answer), in option order
    answer_logprobs   the reference answer's per-token log-probabilities (then end of answer):
                      multiple choice, the correct option's text after the bare question;
                      cloze and generation, the ground truth after the item's own prompt
    answer_expected_logprobs, answer_logprob_variances
                      per answer token, the mean and variance of log p over the vocabulary
                      under the model's own next-token distribution (Min-K%++ reads them)
    answer_argmax_hits
                      per answer token (then end of answer), 1 where it is the model's argmax
                      next-token prediction, else 0 (from the same pass; absent from reference
                      records cached before it was added: a measure reading it raises
                      NotApplicable on them)

and the item's ``task``, ``item_id``, ``entity_id``, ``split``, ``modality``, ``view``, ``fact``,
``format``, ``prompt``, ``answer`` (a letter for multiple choice) and ``options``.

Two kinds of measure:

    ItemMeasure    ``item(record, references)`` gives each item a value (or None: not scored);
                   the task's value is their mean with its standard error (override
                   ``aggregate`` for another). Per-item values are kept in samples.jsonl.
    Measure        ``compute(records)`` gives the task one value from all its records: a
                   p-value, an AUC, a correlation.

What a measure declares:

    name              its name in results, tables and leaderboards
    description       a few words for table footers ("greedy letter")
    version           bump it when its values change
    formats           the item formats it scores (the others never reach it)
    higher_is_better  True or False; None (the default) for a measure of knowledge or ability,
                      whose direction is the task's: higher on a retention task, lower on a
                      forgetting task. A task's YAML may override it.
    best              the best value when it is neither the highest nor the lowest (PrivLeak:
                      0); the measure then has no direction (``higher_is_better`` is ignored)
    chance            what a model that knows nothing scores (None: unknown); normalisation uses
                      it when a task has no gold reference model
    references        reference models whose records of the same items it reads ("vanilla",
                      "oracle", ...): checked before any work, read from the cache, never
                      re-evaluated
    other_tasks       other tasks whose records it reads (e.g. a held-out split): the harness
                      evaluates them too
    reads             the record fields it reads beyond the item's own (``output``,
                      ``option_logprobs``, ``answer_logprobs``, ...); None (the default): any.
                      Where every measure of a task says, the harness runs only the passes that
                      give them (a trajectory point scores the score measures only)
    options           the options a task's YAML may set, with their defaults
                      (``{measure: forget_quality, against: gold}``); the instance reads them in
                      ``self.options`` and may set ``references`` / ``other_tasks`` from them
    table             the table that shows it: "main" (the accuracy table), "information" (does
                      the information remain?) or a table of its own, named by this title;
                      table.md, report.html and the leaderboard's CSV show every measure of a
                      table, each table in a section of its own
    label             its header on the leaderboard's Markdown and HTML tables of its table
                      (after the dimension's label, on each dimension's primary task that
                      reports it); empty, or a measure of the main table (whose leaderboard
                      table shows the dimensions' scores): the leaderboard's CSV only
    explain           the sentence the leaderboard's section says of it, with its label: what
                      the number means and which way is good

A measure that cannot be computed on a run (no holdout items, no gold reference, no perturbed
answers) raises ``NotApplicable(reason)``: the value is recorded as absent with the reason,
never as a made-up 0 or 0.5.

Measures are registered under the entry-point group ``mmu_bench.measures`` (the built-in ones
too), or given as ``package.module:Class`` or ``path/to/file.py:Class`` to ``--measure``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mmu_bench.api.metrics import mean_and_stderr
from mmu_bench.api.schema import FORMATS
from mmu_bench.core.errors import MMUBenchError

# Reference models that never learned the forget entities' looks, best first: the floor of
# forgetting in normalisation, and the default comparison of forget quality and PrivLeak. The
# visual oracle never saw the forget entities' images but learned their text: the gold standard
# of the reformulated task. The oracle never saw them at all: the gold standard of the old one.
GOLD_ROLES = ("visual_oracle", "oracle")


class NotApplicable(Exception):  # noqa: N818 (a verdict, not a failure)
    """Raised by a measure that does not apply to these records; the message is the reason."""


@dataclass(frozen=True)
class Value:
    """A measure's value on one task. ``mean`` is the value (the mean of per-item values, or a
    corpus-level value); ``stderr`` its standard error where one is known; ``n`` the items.
    ``against``: the reference model it compares with, if any. ``absent``: why there is no value
    (``mean`` is then NaN)."""

    mean: float
    stderr: float | None = None
    n: int = 0
    against: str | None = None
    absent: str | None = None

    @classmethod
    def of(cls, values: Sequence[float]) -> Value:
        """Mean and standard error (sample standard deviation / sqrt(n); 0 for one item)."""
        mean, stderr = mean_and_stderr(values)
        return cls(mean, stderr, len(values))

    @classmethod
    def missing(cls, reason: str) -> Value:
        return cls(float("nan"), absent=reason)

    def to_dict(self) -> dict:
        out = {"mean": self.mean, "stderr": self.stderr, "n": self.n}
        if self.against is not None:
            out["against"] = self.against
        if self.absent is not None:
            out["absent"] = self.absent
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Value:
        mean = data.get("mean")
        return cls(float("nan") if mean is None else float(mean), data.get("stderr"), int(data.get("n", 0)),
                   data.get("against"), data.get("absent"))


@dataclass
class Records:
    """What a measure sees on one task: the scored model's records (``items``, of the formats the
    measure takes, in a stable order) and, on request, other models' records."""

    task: str
    model: str  # who is scored: "unlearned", "vanilla", "oracle", ...
    items: list[dict]
    formats: tuple[str, ...] = FORMATS
    by_model: dict[str, dict[str, list[dict]]] = field(default_factory=dict, repr=False)  # model -> task -> records
    _index: dict = field(default_factory=dict, repr=False)

    def _records(self, model: str, task: str) -> list[dict]:
        if model not in self.by_model:
            raise MMUBenchError(f"no records of model {model!r} (there are: {', '.join(sorted(self.by_model))})")
        return [r for r in self.by_model[model].get(task, []) if r["format"] in self.formats]

    def models(self) -> list[str]:
        """Every model whose records are at hand (the scored one and the reference models)."""
        return list(self.by_model)

    def comparison(self, against: str) -> str:
        """The reference model a comparison reads: ``against`` itself (a role), or for
        ``"gold"`` the first of ``GOLD_ROLES`` at hand. NotApplicable when there is none, or
        when it is the scored model itself."""
        if against == "gold":
            found = [role for role in GOLD_ROLES if role in self.by_model]
            if not found:
                raise NotApplicable(f"no gold reference model ({' or '.join(GOLD_ROLES)}) in this run")
            against = found[0]
        elif against not in self.by_model:
            raise NotApplicable(f"no {against} model in this run")
        if against == self.model:
            raise NotApplicable(f"the {against} model is the reference it would be compared with")
        return against

    def reference(self, role: str) -> list[dict]:
        """``role``'s records of the same items as ``items``, in the same order."""
        if role not in self._index:
            self._index[role] = {r["item_id"]: r for r in self._records(role, self.task)}
        index = self._index[role]
        missing = [r["item_id"] for r in self.items if r["item_id"] not in index]
        if missing:
            raise MMUBenchError(f"task {self.task!r}: model {role!r} has no record of item(s) {', '.join(missing[:3])}"
                                f"{' ...' if len(missing) > 3 else ''}")
        return [index[r["item_id"]] for r in self.items]

    def of_task(self, task: str, model: str | None = None) -> list[dict]:
        """Another task's records (of the measure's formats), of the scored model by default;
        empty when the task has no items on this benchmark."""
        return self._records(model or self.model, task)


class Measure:
    """A task-level measure: override ``compute``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    formats: ClassVar[tuple[str, ...]] = FORMATS
    higher_is_better: ClassVar[bool | None] = None
    best: ClassVar[float | None] = None
    chance: ClassVar[float | None] = None
    references: ClassVar[tuple[str, ...]] = ()
    other_tasks: ClassVar[tuple[str, ...]] = ()
    reads: ClassVar[tuple[str, ...] | None] = None
    options: ClassVar[dict[str, Any]] = {}
    table: ClassVar[str] = "main"
    label: ClassVar[str] = ""
    explain: ClassVar[str] = ""

    def __init__(self, **options):
        unknown = sorted(set(options) - set(type(self).options))
        if unknown:
            known = ", ".join(sorted(type(self).options)) or "none"
            raise MMUBenchError(f"measure {self.name!r} has no option(s) {', '.join(unknown)} (its options: {known})")
        self.options = {**type(self).options, **options}

    def compute(self, records: Records) -> Value | None:
        """The task's value, or None when the measure does not apply to these records."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute() (or item(), as an ItemMeasure)")


class ItemMeasure(Measure):
    """A per-item measure: override ``item``."""

    def item(self, record: dict, references: dict[str, dict]) -> float | None:
        """The item's value (None: the item is not scored). ``references`` maps each role in
        ``self.references`` to that model's record of the same item."""
        raise NotImplementedError(f"{type(self).__name__} must implement item()")

    def aggregate(self, values: list[float]) -> Value:
        return Value.of(values)

    def item_values(self, records: Records) -> list[float | None]:
        """``item`` of every record, in order (the harness keeps them in samples.jsonl)."""
        refs = {role: records.reference(role) for role in self.references}
        return [self.item(record, {role: rows[i] for role, rows in refs.items()})
                for i, record in enumerate(records.items)]

    def compute(self, records: Records) -> Value | None:
        values = [v for v in self.item_values(records) if v is not None]
        return self.aggregate(values) if values else None
