"""Task definitions: versioned YAML files (data, not code), one per scored quantity.

A task selects canonical rows (``data``), names the measures that score them (``measures``,
each a registered measure; a mapping ``{measure: NAME, higher_is_better: BOOL, OPTION: VALUE}``
overrides a measure's direction on this task and sets its options; ``add_measures`` adds to the
list of an included file) and the ones whose mean is the task's score (``score``), and
says whether a higher score is better (``higher_is_better``): normalisation reads it. Each
``dimension`` of the overall score is the dimension of exactly one ``primary`` task; ``order``
places it in tables and plots, ``label`` names it there.

A task file may ``include:`` another (keys of the including file win). Task files live in
the repository's ``tasks/`` folder, installed as ``mmu_bench._tasks``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from mmu_bench.api.schema import FORMATS
from mmu_bench.core.errors import MMUBenchError, UnknownNameError
from mmu_bench.core.storage import read_yaml_mapping


@dataclass(frozen=True)
class Task:
    name: str
    version: str  # "<task version>.<prompt version>"
    dimension: str
    primary: bool
    higher_is_better: bool
    description: str
    data: dict  # filters on canonical columns: split, modality, view
    formats: tuple[str, ...]
    prompts: dict  # {"prompts": templates, "blank": ...}: what prompts.user_text takes
    max_new_tokens: dict
    shots: dict = field(default_factory=dict)  # format -> entities whose items are demonstrations (a protocol's)
    shot_splits: tuple = ()  # the splits whose tasks get them (empty: all)
    # Items shown as demonstrations (``protocol.with_demonstrations``): never scored.
    exclude: frozenset = frozenset()
    measures: tuple[str, ...] = ()  # what is reported
    score: tuple[str, ...] = ()  # the task score: the mean of these measures' values
    directions: dict = field(default_factory=dict)  # measure -> higher_is_better, where the YAML sets it
    options: dict = field(default_factory=dict)  # measure -> its options on this task, where the YAML sets them
    knowledge_check: bool = False  # the vanilla model must reach --min-vanilla-mc on knowledge_measure
    knowledge_measure: str = ""
    order: int = 0
    label: str = ""
    source: str = field(default="", compare=False)

    def selects(self, row: dict) -> bool:
        return all(row.get(key) == value for key, value in self.data.items()) and row.get("item_id") not in self.exclude

    def with_measures(self, extra: list[str]) -> Task:
        """This task, also reporting ``extra`` measures (``--measure``)."""
        return replace(self, measures=(*self.measures, *(m for m in extra if m not in self.measures)))

    def direction(self, measure) -> bool | None:
        """Whether a higher value of ``measure`` (a Measure class or instance) is better on this
        task: the YAML's word, else the measure's own, else the task's (a measure of knowledge);
        None for a measure whose best value lies in between (``best``)."""
        if getattr(measure, "best", None) is not None and measure.name not in self.directions:
            return None
        if measure.name in self.directions:
            return self.directions[measure.name]
        return self.higher_is_better if measure.higher_is_better is None else measure.higher_is_better


def tasks_dir() -> Path:
    return Path(str(resources.files("mmu_bench._tasks")))


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    if path in seen:
        raise MMUBenchError(f"{path}: include cycle through {' -> '.join(str(p) for p in seen)}")
    spec = read_yaml_mapping(path, "task file")
    if "include" in spec:
        base = _read(path.parent / spec.pop("include"), (*seen, path))
        spec = {**base, **spec}
    return spec


def _measures(path: Path, spec: dict) -> tuple[tuple[str, ...], dict, dict, tuple[str, ...]]:
    """(measure names, direction overrides, options, score measures) of a task file."""
    names, directions, options = [], {}, {}
    entries = spec["measures"] or []
    added = spec.get("add_measures") or []
    if not isinstance(entries, list) or not isinstance(added, list):
        raise MMUBenchError(f"{path}: fields 'measures' and 'add_measures' must be lists")
    for entry in [*entries, *added]:
        if isinstance(entry, dict):
            if "measure" not in entry:
                raise MMUBenchError(f"{path}: field 'measures': an entry must be a name or a mapping with 'measure' "
                                    f"(and optionally 'higher_is_better' and the measure's options), got {entry!r}")
            name = str(entry["measure"])
            if "higher_is_better" in entry:
                if not isinstance(entry["higher_is_better"], bool):
                    raise MMUBenchError(f"{path}: field 'measures': higher_is_better of {name!r} must be true or false")
                directions[name] = entry["higher_is_better"]
            rest = {k: v for k, v in entry.items() if k not in ("measure", "higher_is_better")}
            if rest:
                options[name] = rest
        elif isinstance(entry, str) and entry.strip():
            name = entry.strip()
        else:
            raise MMUBenchError(f"{path}: field 'measures': an entry must be a name or a mapping, got {entry!r}")
        if name in names:
            raise MMUBenchError(f"{path}: field 'measures' names {name!r} twice")
        names.append(name)
    score = spec.get("score") or []
    if not isinstance(score, list) or not all(isinstance(s, str) for s in score):
        raise MMUBenchError(f"{path}: field 'score' must be a list of measure names, got {score!r}")
    stray = [s for s in score if s not in names]
    if stray:
        raise MMUBenchError(f"{path}: field 'score' names {', '.join(stray)}, not in 'measures'")
    return tuple(names), directions, options, tuple(score)


def _build(path: Path) -> Task:
    spec = _read(path)
    required = ("task", "version", "dimension", "higher_is_better", "data", "prompts", "formats", "measures", "score")
    missing = [key for key in required if key not in spec]
    if missing:
        raise MMUBenchError(f"{path}: missing field(s) {', '.join(missing)}")
    if not isinstance(spec["dimension"], str) or not spec["dimension"].strip():
        raise MMUBenchError(f"{path}: field 'dimension' must be a name, got {spec['dimension']!r}")
    if not isinstance(spec["higher_is_better"], bool):
        raise MMUBenchError(f"{path}: field 'higher_is_better' must be true or false, got {spec['higher_is_better']!r}")
    bad = [f for f in spec["formats"] if f not in FORMATS]
    if bad:
        raise MMUBenchError(f"{path}: field 'formats' has unknown format(s) {bad}; expected {FORMATS}")
    measures, directions, options, score = _measures(path, spec)
    knowledge = bool(spec.get("knowledge_check", False))
    if knowledge and spec.get("knowledge_measure") not in measures:
        raise MMUBenchError(f"{path}: field 'knowledge_measure' must name one of its measures, "
                            f"got {spec.get('knowledge_measure')!r}")
    return Task(
        name=spec["task"],
        version=f"{spec['version']}.{spec.get('prompt_version', 0)}",
        dimension=spec["dimension"],
        primary=bool(spec.get("primary", True)),
        higher_is_better=bool(spec["higher_is_better"]),
        description=" ".join(str(spec.get("description", "")).split()),
        data=dict(spec["data"]),
        formats=tuple(spec["formats"]),
        prompts={"prompts": dict(spec["prompts"]), "blank": spec.get("blank", "[Blank]")},
        max_new_tokens=dict(spec.get("max_new_tokens", {})),
        measures=measures,
        score=score,
        directions=directions,
        options=options,
        knowledge_check=knowledge,
        knowledge_measure=str(spec.get("knowledge_measure", "")),
        order=int(spec.get("order", 0)),
        label=str(spec.get("label", "")),
        source=str(path),
    )


def available(directory: Path | None = None) -> dict[str, Path]:
    directory = directory or tasks_dir()
    return {p.stem: p for p in sorted(directory.glob("*.yaml")) if not p.stem.startswith("_")}


def load_tasks(names: list[str] | None = None, directory: Path | None = None) -> list[Task]:
    """The named tasks (all by default), in a stable order."""
    found = available(directory)
    chosen = names or list(found)
    for name in chosen:
        if name not in found:
            raise UnknownNameError("task", name, found)
    tasks = [_build(found[name]) for name in chosen]
    if names is None:
        where = directory or tasks_dir()
        for dim in dict.fromkeys(t.dimension for t in tasks):
            primaries = [t.name for t in tasks if t.dimension == dim and t.primary]
            if len(primaries) != 1:
                found_text = ", ".join(primaries) or "none"
                raise MMUBenchError(f"{where}: dimension {dim!r} needs exactly one primary task, found {found_text}")
    return tasks


