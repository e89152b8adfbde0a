"""THE PUBLIC PLUGIN CONTRACT for benchmark adapters, and the canonical benchmark every adapter
produces, whatever its source.

An adapter is a subclass of ``BenchmarkAdapter`` with a ``name`` and one method:

    load(forget_ratio, **options) -> Benchmark     canonical rows (``mmu_bench.api.schema``) split
                                                   into forget / retain / general / holdout

``--benchmark-arg KEY=VALUE`` options reach ``load`` as keyword arguments; ``check`` is called with
the same arguments before any work (by default it checks the forget ratio against
``forget_ratios`` and the options against ``load``'s signature): raise ``ValueError`` naming the
option. What the adapter declares:

    name           its name on the command line, in results and on leaderboards
    description    a few words for ``mmu-bench list``
    version        bump it when the rows it produces change
    forget_ratios  the forget splits it has, in percent (empty: any)
    protocol       how its own authors ask and score (``mmu_bench.spec.protocol``): a shipped
                   protocol's name (``harness``, ``mllmu``, ``clear``) or a protocol YAML file,
                   relative to the adapter's own file; ``--protocol auto`` follows it
    hparams        its methods' default hyperparameters: a shipped file's name (``mmu-synth``)
                   or a YAML file relative to the adapter's file; None: the methods' own defaults

Adapters are registered under the entry-point group ``mmu_bench.benchmarks`` (the built-in ones
too), or given to ``--benchmark`` as ``package.module:Class`` or ``path/to/file.py:Class``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    import datasets

# What unlearning methods train on: free-form question-answer pairs, as in MLLMU-Bench's
# forget and retain sets (the other formats are for scoring).
QA_FORMAT = "generation"


class BenchmarkAdapter:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    forget_ratios: ClassVar[tuple[float, ...]] = ()
    protocol: ClassVar[str] = "harness"
    hparams: ClassVar[str | None] = None

    def load(self, forget_ratio: float, **options) -> Benchmark:
        raise NotImplementedError(f"{type(self).__name__} must implement load()")

    def check(self, forget_ratio: float, **options) -> None:
        """Raise ValueError when ``load`` would refuse these arguments; no data is read."""
        if self.forget_ratios and forget_ratio not in self.forget_ratios:
            raise ValueError(f"forget ratio {forget_ratio!r} is not one of {self.name}'s splits "
                             f"{tuple(self.forget_ratios)}")
        try:
            inspect.signature(self.load).bind(forget_ratio, **options)
        except TypeError as exc:
            raise ValueError(f"{exc} (--benchmark-arg)") from None


@dataclass
class Benchmark:
    """Canonical rows (schema.FEATURES plus a ``split`` column: forget | retain | general |
    holdout). Holdout entities (people of the same distribution no model was ever trained on,
    for membership inference) have scored rows only; a benchmark without them says why in
    ``info['holdout']``."""

    name: str
    forget_ratio: float
    train: datasets.Dataset  # rows a vanilla model is fine-tuned on
    eval: datasets.Dataset  # scored items
    forget_entities: tuple[str, ...]
    retain_entities: tuple[str, ...]
    fingerprint: str  # identifies source, version and generation config: caches key on it
    info: dict = field(default_factory=dict)  # recorded in results (sizes, source, config)
    holdout_entities: tuple[str, ...] = ()
    # item_id -> the item's question reworded (prompt attacks ask it); a benchmark without any
    # says why in ``info['paraphrases']``
    paraphrases: dict[str, str] = field(default_factory=dict)

    def key(self) -> str:
        """Identifies this benchmark *and* its forget split."""
        return f"{self.name}-{self.fingerprint}-forget{self.forget_ratio:g}"

    def _select(self, dataset: datasets.Dataset, **where) -> datasets.Dataset:
        columns = dataset.select_columns(list(where)).to_dict()
        keep = [i for i in range(len(dataset)) if all(columns[k][i] in v for k, v in where.items())]
        return dataset.select(keep)

    def qa_rows(self, splits: tuple[str, ...], modality: str) -> datasets.Dataset:
        """Free-form QA training rows of the given splits and modality (training views only)."""
        views = ("train",) if modality == "image" else ("",)
        return self._select(self.train, split=splits, modality=(modality,), format=(QA_FORMAT,), view=views)

    def forget_set(self) -> datasets.Dataset:
        """Image QA of the forget entities: what a method is asked to unlearn."""
        return self.qa_rows(("forget",), "image")

    def retain_set(self) -> datasets.Dataset:
        """Image QA of the retained entities."""
        return self.qa_rows(("retain",), "image")

    def preserve_text(self) -> datasets.Dataset:
        """Text-only QA of every entity, forget entities included (the knowledge to keep; in a
        continual run, the people earlier requests forgot too: split ``forgotten``)."""
        return self.qa_rows(("forget", "retain", "forgotten"), "text")

    def training_rows(self, role: str) -> datasets.Dataset:
        """What the reference model ``role`` is fine-tuned on:

        - ``vanilla``: everything;
        - ``oracle``: everything but the forget entities (the gold standard of the old task:
          retrained without them);
        - ``visual_oracle``: everything but the forget entities' image rows, their text rows
          kept (the gold standard of the reformulated task: it knows them by name, not by face).
        """
        if role == "vanilla":
            return self.train
        if role == "oracle":
            return self._select(self.train, split=("retain", "general"))
        if role == "visual_oracle":
            columns = self.train.select_columns(["split", "modality"]).to_dict()
            keep = [i for i, (split, modality) in enumerate(zip(columns["split"], columns["modality"]))
                    if not (split == "forget" and modality == "image")]
            return self.train.select(keep)
        raise ValueError(f"no training data is defined for reference model {role!r}")

    def supports(self, role: str) -> bool:
        """Whether reference model ``role`` means something here: a visual oracle only when the
        forget entities have text rows to keep (else it would be the oracle again)."""
        return role != "visual_oracle" or len(self.qa_rows(("forget",), "text")) > 0


def add_split_column(dataset: datasets.Dataset, forget: set[str], holdout: set[str] = frozenset()) -> datasets.Dataset:
    entity_ids = dataset.select_columns(["entity_id"]).to_dict()["entity_id"]
    splits = ["general" if not e else "forget" if e in forget else "holdout" if e in holdout else "retain"
              for e in entity_ids]
    return dataset.add_column("split", splits)
