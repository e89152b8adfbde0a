"""The canonical benchmark every adapter produces, whatever its source."""

from __future__ import annotations

from dataclasses import dataclass, field

import datasets

# What unlearning methods train on: free-form question-answer pairs, as in MLLMU-Bench's
# forget and retain sets (the other formats are for scoring).
QA_FORMAT = "generation"


@dataclass
class Benchmark:
    """Canonical rows (schema.FEATURES plus a ``split`` column: forget | retain | general)."""

    name: str
    forget_ratio: float
    train: datasets.Dataset  # rows a vanilla model is fine-tuned on
    eval: datasets.Dataset  # scored items
    forget_entities: tuple[str, ...]
    retain_entities: tuple[str, ...]
    fingerprint: str  # identifies source, version and generation config: caches key on it
    info: dict = field(default_factory=dict)  # recorded in results (sizes, source, config)

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

    def vanilla_train(self) -> datasets.Dataset:
        return self.train

    def oracle_train(self) -> datasets.Dataset:
        """Everything but the forget entities: the retrain-from-scratch gold standard's data."""
        return self._select(self.train, split=("retain", "general"))


def add_split_column(dataset: datasets.Dataset, forget: set[str]) -> datasets.Dataset:
    entity_ids = dataset.select_columns(["entity_id"]).to_dict()["entity_id"]
    splits = ["general" if not e else "forget" if e in forget else "retain" for e in entity_ids]
    return dataset.add_column("split", splits)
