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
    """Rows each task scores, in a stable order (a seeded sample per format under ``limit``)."""
    wanted: dict[str, list[dict]] = {t.name: [] for t in tasks}
    for row in dataset:
        for task in tasks:
            if row["format"] in task.formats and task.selects(row):
                wanted[task.name].append(row)
    if settings.limit is not None:
        for name, rows in wanted.items():
            by_format = defaultdict(list)
            for row in rows:
                by_format[row["format"]].append(row)
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
    return select_rows(dataset.select_columns([c for c in dataset.column_names if c != "image"]), tasks, EvalSettings())
