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
    chance            what a model that knows nothing scores (None: unknown); normalisation uses
                      it when a task has no gold reference model
    references        reference models whose records of the same items it reads ("vanilla",
                      "oracle", ...): checked before any work, read from the cache, never
                      re-evaluated
    other_tasks       other tasks whose records it reads (e.g. a held-out split)

Measures are registered under the entry-point group ``mmu_bench.measures`` (the built-in ones
too), or given as ``package.module:Class`` or ``path/to/file.py:Class`` to ``--measure``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from .data.schema import FORMATS
from .errors import MMUBenchError
from .metrics import mean_and_stderr


@dataclass(frozen=True)
class Value:
    """A measure's value on one task. ``mean`` is the value (the mean of per-item values, or a
    corpus-level value); ``stderr`` its standard error where one is known; ``n`` the items."""

    mean: float
    stderr: float | None = None
    n: int = 0

    @classmethod
    def of(cls, values: Sequence[float]) -> Value:
        """Mean and standard error (sample standard deviation / sqrt(n); 0 for one item)."""
        mean, stderr = mean_and_stderr(values)
        return cls(mean, stderr, len(values))

    def to_dict(self) -> dict:
        return {"mean": self.mean, "stderr": self.stderr, "n": self.n}

    @classmethod
    def from_dict(cls, data: dict) -> Value:
        mean = data.get("mean")
        return cls(float("nan") if mean is None else float(mean), data.get("stderr"), int(data.get("n", 0)))


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
        rows = self.by_model[model].get(task)
        if rows is None:
            raise MMUBenchError(f"model {model!r} has no records of task {task!r}")
        return [r for r in rows if r["format"] in self.formats]

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
        """Another task's records (of the measure's formats), of the scored model by default."""
        return self._records(model or self.model, task)


class Measure:
    """A task-level measure: override ``compute``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    formats: ClassVar[tuple[str, ...]] = FORMATS
    higher_is_better: ClassVar[bool | None] = None
    chance: ClassVar[float | None] = None
    references: ClassVar[tuple[str, ...]] = ()
    other_tasks: ClassVar[tuple[str, ...]] = ()

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
