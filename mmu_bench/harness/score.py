"""Records -> measure values: every task's measures over every model's records.

The harness side of the measure contract (``mmu_bench.measure``): it resolves the measures the
tasks name (and ``--measure`` adds), checks before any work that the records they need will
exist, and scores each model's records of each task, keeping per-item values in the records.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

from mmu_bench.api.measure import ItemMeasure, Measure, NotApplicable, Records, Value
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.storage import json_digest
from mmu_bench.runs.results import TaskInfo, present
from mmu_bench.spec import registry
from mmu_bench.spec.tasks import Task


@dataclass
class Measures:
    """The resolved measures of a run, by name, with where each came from; one instance per
    measure and set of options (a task's YAML may set options)."""

    classes: dict[str, type[Measure]]
    info: dict[str, dict]  # name -> version, origin, source_sha256, description
    _made: dict = field(default_factory=dict, repr=False)

    def __getitem__(self, name: str) -> type[Measure]:
        """``name``'s class (what it declares)."""
        return self.classes[name]

    def of(self, task: Task, name: str) -> Measure:
        """``name`` with ``task``'s options for it."""
        try:
            return self.make(name, task.options.get(name, {}))
        except MMUBenchError as exc:
            raise MMUBenchError(f"task {task.name!r} ({task.source}): {exc}") from exc

    def make(self, name: str, options: dict) -> Measure:
        key = (name, json_digest(options))
        if key not in self._made:
            self._made[key] = self.classes[name](**options)
        return self._made[key]


def resolve(tasks: list[Task], extra: list[str] | None = None) -> tuple[list[Task], Measures]:
    """The tasks with ``extra`` measures added to each (``--measure``: a name, ``module:Class`` or
    ``path/to/file.py:Class``), and every measure they name, resolved (options checked)."""
    classes: dict[str, type[Measure]] = {}
    info: dict[str, dict] = {}

    def add(spec: str) -> str:
        resolved = registry.resolve_measure(spec)
        name = resolved.name
        if name in info and info[name]["source_sha256"] != resolved.source_sha256:
            raise MMUBenchError(f"two different measures are named {name!r}: {info[name]['origin']} and {resolved.origin}")
        classes[name] = resolved.cls
        info[name] = {"version": resolved.cls.version, "origin": resolved.origin,
                      "source_sha256": resolved.source_sha256, "description": resolved.cls.description,
                      "table": resolved.cls.table}
        return name

    extra_names = [add(spec) for spec in extra or []]
    tasks = [t.with_measures(extra_names) for t in tasks]
    for task in tasks:
        for name in task.measures:
            if name not in classes:
                try:
                    add(name)
                except MMUBenchError as exc:
                    raise MMUBenchError(f"task {task.name!r} ({task.source}): {exc}") from exc
    measures = Measures(classes, info)
    for task in tasks:
        for name in task.measures:
            measures.of(task, name)  # options are checked now, before any work
    return tasks, measures


def needed(tasks: list[Task], measures: Measures, every: list[Task]) -> list[Task]:
    """``tasks`` and, after them, the tasks of ``every`` whose records their measures read
    (a measure's ``other_tasks``): the harness evaluates those too."""
    by_name = {t.name: t for t in every}
    out = list(tasks)
    for task in tasks:
        for name in task.measures:
            for other in measures.of(task, name).other_tasks:
                if other not in by_name:
                    raise MMUBenchError(f"measure {name!r} (task {task.name!r}) reads the records of task {other!r}, "
                                        f"which does not exist (tasks: {', '.join(sorted(by_name))})")
                if all(t.name != other for t in out):
                    out.append(by_name[other])
    return out


def check_needs(tasks: list[Task], measures: Measures, roles: tuple[str, ...] | list[str]) -> None:
    """Every reference model and task a measure reads must be part of the run: say which is not,
    before any work (never a silent None later)."""
    names = {t.name for t in tasks}
    for task in tasks:
        for name in task.measures:
            measure = measures.of(task, name)
            missing = [r for r in measure.references if r not in roles]
            if missing:
                raise MMUBenchError(f"measure {name!r} (task {task.name!r}) reads the records of reference model(s) "
                                    f"{', '.join(missing)}, which this model provider does not have "
                                    f"(it has {', '.join(roles)})")
            absent = [t for t in measure.other_tasks if t not in names]
            if absent:
                raise MMUBenchError(f"measure {name!r} (task {task.name!r}) reads the records of task(s) "
                                    f"{', '.join(absent)}: add them to --tasks")


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
