"""The measures a run reports: resolved from the names the tasks give (and ``--measure`` adds),
with their options checked, and what they read checked before any work (the contract:
``mmu_bench.api.measure``; scoring records with them: ``mmu_bench.harness.score``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mmu_bench.api.measure import Measure
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.storage import json_digest
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
                      "table": resolved.cls.table, "label": resolved.cls.label, "explain": resolved.cls.explain}
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
