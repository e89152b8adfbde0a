"""The canonical benchmark every adapter produces, whatever its source."""

from __future__ import annotations

from dataclasses import dataclass, field

import datasets

# What unlearning methods train on: free-form question-answer pairs, as in MLLMU-Bench's
# forget and retain sets (the other formats are for scoring).
QA_FORMAT = "generation"


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
        """Text-only QA of every entity, forget entities included (the knowledge to keep)."""
        return self.qa_rows(("forget", "retain"), "text")

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
