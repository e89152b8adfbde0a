"""Records -> measure values: every task's measures over every model's records.

The harness side of the measure contract (``mmu_bench.measure``): it resolves the measures the
tasks name (and ``--measure`` adds), checks before any work that the records they need will
exist, and scores each model's records of each task, keeping per-item values in the records.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from mmu_bench.api.measure import ItemMeasure, Measure, NotApplicable, Records, Value
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.runs.results import TaskInfo, present
from mmu_bench.spec.measures import Measures
from mmu_bench.spec.tasks import Task


def by_task(records: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        out[record["task"]].append(record)
    return dict(out)


def score(records: dict[str, list[dict]], tasks: list[Task], measures: Measures,
          models: list[str] | None = None) -> dict[str, dict[str, dict[str, Value]]]:
    """model -> task -> measure -> value, for ``models`` (default: every model in ``records``,
    which maps each model to its records). A measure that applies to no record of a task, or
    raises NotApplicable, gets an absent value with the reason; one that returns None is left
    out. Per-item values are written into the records, under the measure's name."""
    grouped = {model: by_task(rows) for model, rows in records.items()}
    out: dict[str, dict[str, dict[str, Value]]] = {}
    for model in models or list(grouped):
        out[model] = {}
        for task in tasks:
            rows = grouped[model].get(task.name)
            if not rows:
                continue
            out[model][task.name] = {}
            for name in task.measures:
                measure = measures.of(task, name)
                items = [r for r in rows if r["format"] in measure.formats]
                if not items:
                    out[model][task.name][name] = Value.missing(f"no {' or '.join(measure.formats)} items")
                    continue
                value = _score_one(measure, Records(task.name, model, items, measure.formats, grouped))
                if value is not None:
                    out[model][task.name][name] = value
    return out


def _score_one(measure: Measure, view: Records) -> Value | None:
    try:
        if not isinstance(measure, ItemMeasure):
            return measure.compute(view)
        values = measure.item_values(view)
        for record, value in zip(view.items, values):
            if value is not None:
                record[measure.name] = value
        kept = [v for v in values if v is not None]
        return measure.aggregate(kept) if kept else None
    except NotApplicable as why:
        return Value.missing(str(why))
    except MMUBenchError:
        raise
    except Exception as exc:  # a measure plugin's own failure: say which, where
        raise MMUBenchError(f"measure {measure.name!r} failed on task {view.task!r} ({view.model} model): "
                            f"{type(exc).__name__}: {exc}") from exc


def primary_tasks(tasks: list[Task]) -> list[Task]:
    """The primary task of each dimension, scoring its score measures only (what trajectories
    and attacks score: the dimension score, nothing else)."""
    return [replace(t, measures=tuple(t.score)) for t in tasks if t.primary]


def task_infos(tasks: list[Task], measures: Measures) -> dict[str, TaskInfo]:
    """What results record of each task: version, dimension, directions, score measures."""
    return {t.name: TaskInfo(version=t.version, dimension=t.dimension, primary=t.primary,
                             higher_is_better=t.higher_is_better, measures=list(t.measures),
                             directions={m: t.direction(measures[m]) for m in t.measures}, score=list(t.score),
                             order=t.order, label=t.label, options=dict(t.options))
            for t in tasks}


def chance(scores: dict[str, dict[str, Value]], tasks: list[Task], measures: Measures) -> dict[str, float]:
    """Per dimension: the chance level of its primary task's score, over the score measures that
    scored something (``scores``: task -> measure -> value). NaN when one has no known chance."""
    out = {}
    for task in tasks:
        if not task.primary:
            continue
        levels = [measures[m].chance for m in task.score if present(scores.get(task.name, {}), m)]
        if not levels or any(level is None for level in levels):
            out[task.dimension] = float("nan")
        else:
            out[task.dimension] = sum(levels) / len(levels)
    return out
