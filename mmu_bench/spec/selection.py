"""Which rows a task scores: a stable order, and a seeded sample per format under ``--eval-limit``."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from mmu_bench.spec.tasks import Task


@dataclass
class EvalSettings:
    batch_size: int = 64
    limit: int | None = None  # at most this many rows per task and format (seeded sample); None = all
    seed: int = 0
    progress: bool = True


def select_rows(dataset, tasks: list[Task], settings: EvalSettings) -> dict[str, list[dict]]:
    """Rows each task scores, in a stable order (a seeded sample per format under ``limit``). On
    a ``datasets.Dataset`` the choice is made on its columns without the images, and only the
    chosen rows' images are decoded (decoding every image of a benchmark for a sample of it
    cost a run seconds)."""
    if "image" not in getattr(dataset, "column_names", ()):
        chosen = _chosen(rows_of(dataset), tasks, settings)
        return {name: [row for _, row in picked] for name, picked in chosen.items()}
    chosen = _chosen(rows_of(text_only(dataset)), tasks, settings)
    needed = sorted({i for picked in chosen.values() for i, _ in picked})
    full = dict(zip(needed, rows_of(dataset.select(needed)))) if needed else {}
    return {name: [full[i] for i, _ in picked] for name, picked in chosen.items()}


def rows_of(dataset) -> list[dict]:
    """The rows of a list, or of a ``datasets.Dataset`` read column by column (the same values
    as iterating it, in a fraction of the time)."""
    if not hasattr(dataset, "column_names"):
        return list(dataset)
    columns = dataset[:]
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def _chosen(rows: list[dict], tasks: list[Task], settings: EvalSettings) -> dict[str, list[tuple[int, dict]]]:
    """(index, row) of the rows each task scores, as ``select_rows`` orders and samples them."""
    wanted: dict[str, list[tuple[int, dict]]] = {t.name: [] for t in tasks}
    for i, row in enumerate(rows):
        for task in tasks:
            if row["format"] in task.formats and task.selects(row):
                wanted[task.name].append((i, row))
    if settings.limit is not None:
        for name, picked in wanted.items():
            by_format = defaultdict(list)
            for pair in picked:
                by_format[pair[1]["format"]].append(pair)
            kept = []
            for fmt in sorted(by_format):
                group = by_format[fmt]
                if len(group) > settings.limit:
                    rng = random.Random(f"{settings.seed}/{name}/{fmt}")
                    group = [group[i] for i in sorted(rng.sample(range(len(group)), settings.limit))]
                kept.extend(group)
            wanted[name] = kept
    return wanted


def text_rows(dataset, tasks: list[Task]) -> dict[str, list[dict]]:
    """Every row each task scores (no sample), without images: nothing is decoded."""
    return select_rows(text_only(dataset), tasks, EvalSettings())


def text_only(dataset):
    """``dataset`` without its images (a ``datasets.Dataset``'s image column), else as it is."""
    if "image" not in getattr(dataset, "column_names", ()):
        return dataset
    return dataset.select_columns([c for c in dataset.column_names if c != "image"])


def with_images(dataset, rows: list[dict]) -> list[dict]:
    """The whole rows of ``dataset`` (images decoded) with the item ids of ``rows``, in their order."""
    if "image" not in getattr(dataset, "column_names", ()):
        return rows
    position = {item: i for i, item in enumerate(dataset["item_id"])}
    return rows_of(dataset.select([position[r["item_id"]] for r in rows]))
