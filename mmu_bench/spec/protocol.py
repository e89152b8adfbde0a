"""Evaluation protocols: how a benchmark's own code asks and scores its questions.

A protocol is a YAML file (``protocols/<name>.yaml``, installed as ``mmu_bench._protocols``,
or any file given by path) that changes, for every task, what the harness's task files set:

- ``prompts``: templates merged over the tasks' (``tasks/_base.yaml``), and ``blank``; a
  template ``<format>_<modality>`` (e.g. ``generation_text``) words one modality apart;
- ``max_new_tokens``: the greedy budget per format;
- ``shots``: per format, how many entities' items serve as solved examples, prepended to each
  scored question of the same format and modality (``shot_<format>`` templates); they are
  drawn from the task's own items and not scored (``with_demonstrations``); ``shot_splits``
  limits them to the tasks of some splits;
- ``add_measures``: measures every task also reports (those of other formats skip the items);
- ``measure_options``: per measure, options set on every task (over the task files' own), e.g.
  ``{cloze_acc: {rule: mllmu}}``: MLLMU-Bench's cloze rule.

``harness`` changes nothing: MMU-Synth's protocol, and every task's version stays as it is.
A benchmark names its own protocol (``Benchmark.protocol``): ``--protocol auto``, the default,
follows it; ``--protocol NAME|FILE`` picks another one, ``--protocol-arg shots.cloze=0`` (or
``max_new_tokens.generation=32``) changes one setting of it. What a run used is recorded in
results.json (``protocol``) and is part of its tasks' versions, hence of every cache key.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from mmu_bench.api.prompts import demonstration
from mmu_bench.api.schema import FORMATS
from mmu_bench.core.errors import MMUBenchError, UnknownNameError
from mmu_bench.core.storage import json_digest, read_yaml_mapping
from mmu_bench.spec.selection import text_rows
from mmu_bench.spec.tasks import Task

HARNESS = "harness"
AUTO = "auto"
SETTINGS = ("max_new_tokens", "shots")  # what --protocol-arg may change, per format


@dataclass(frozen=True)
class Protocol:
    name: str
    version: str
    reference: str  # where each choice comes from
    prompts: dict = field(default_factory=dict)
    blank: str | None = None
    max_new_tokens: dict = field(default_factory=dict)
    shots: dict = field(default_factory=dict)
    shot_splits: tuple[str, ...] = ()  # tasks of these splits get shots (empty: every task)
    measures: tuple[str, ...] = ()
    measure_options: dict = field(default_factory=dict)  # measure -> options, on every task
    args: dict = field(default_factory=dict)  # the --protocol-arg overrides applied
    source: str = field(default="", compare=False)

    @property
    def changes_nothing(self) -> bool:
        return not (self.prompts or self.blank or self.max_new_tokens or self.shots or self.measures
                    or self.measure_options)

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "reference": self.reference, "prompts": self.prompts,
                "blank": self.blank, "max_new_tokens": self.max_new_tokens, "shots": self.shots,
                "shot_splits": list(self.shot_splits), "measures": list(self.measures),
                **({"measure_options": self.measure_options} if self.measure_options else {}), "args": self.args}

    def apply(self, tasks: list[Task]) -> list[Task]:
        """The tasks as this protocol asks and scores them."""
        if self.changes_nothing:
            return list(tasks)
        tag = f"+{self.name}.{self.version}-{json_digest(self.to_dict(), 8)}"
        return [replace(
            task.with_measures(list(self.measures)),
            version=task.version + tag,
            prompts={"prompts": {**task.prompts["prompts"], **self.prompts},
                     "blank": self.blank if self.blank is not None else task.prompts["blank"]},
            max_new_tokens={**task.max_new_tokens, **self.max_new_tokens},
            shots={**task.shots, **self.shots},
            shot_splits=self.shot_splits,
            options={**task.options, **{name: {**task.options.get(name, {}), **opts}
                                        for name, opts in self.measure_options.items()}},
        ) for task in tasks]


def with_demonstrations(tasks: list[Task], dataset, seed: int = 0) -> list[Task]:
    """Each task that asks for shots, with its demonstrations, as MLLMU-Bench's eval draws
    them: per format, ``shots[format]`` of the task's entities, drawn from ``seed`` (the same
    in every run, so that reference records stay cached); every item of theirs in that format
    becomes a solved example, shown before each question of the same format and modality, and
    is not scored (``Task.exclude``). Examples are text: their images are not shown."""
    wanting = [t for t in tasks if any(t.shots.values()) and (not t.shot_splits or t.data.get("split") in t.shot_splits)]
    if not wanting:
        return list(tasks)
    rows = text_rows(dataset, wanting)
    out = []
    for task in tasks:
        demos, exclude = {}, set()
        for fmt, k in (task.shots.items() if task in wanting else ()):
            group = [r for r in rows[task.name] if r["format"] == fmt]
            entities = sorted({r["entity_id"] for r in group})
            if not k or not group:
                continue
            if k >= len(entities):
                raise MMUBenchError(f"task {task.name!r}: {fmt} demonstrations from {k} entities asked (protocol "
                                    f"shots) but its {fmt} items cover {len(entities)}; lower them with "
                                    f"--protocol-arg shots.{fmt}=N")
            chosen = set(random.Random(f"{seed}/{task.name}/{fmt}/shots").sample(entities, k))
            for row in (r for r in group if r["entity_id"] in chosen):
                key = f"{fmt}/{row['modality']}"
                demos[key] = demos.get(key, "") + demonstration(row, task.prompts)
                exclude.add(row["item_id"])
        out.append(replace(task, prompts={**task.prompts, "demonstrations": demos}, exclude=frozenset(exclude))
                   if demos else task)
    return out


def protocols_dir() -> Path:
    return Path(str(resources.files("mmu_bench._protocols")))


def available() -> dict[str, Path]:
    return {p.stem: p for p in sorted(protocols_dir().glob("*.yaml"))}


def _per_format(path, spec: dict, key: str) -> dict[str, int]:
    value = spec.get(key) or {}
    if not isinstance(value, dict):
        raise MMUBenchError(f"{path}: field {key!r} must map formats to integers, got {value!r}")
    out = {}
    for fmt, n in value.items():
        if fmt not in FORMATS:
            raise MMUBenchError(f"{path}: field {key!r} has unknown format {fmt!r}; expected one of {FORMATS}")
        if isinstance(n, bool) or not isinstance(n, int) or n < (1 if key == "max_new_tokens" else 0):
            raise MMUBenchError(f"{path}: field {key}.{fmt} must be an integer >= "
                                f"{1 if key == 'max_new_tokens' else 0}, got {n!r}")
        out[fmt] = n
    return out


def _overridden(spec: dict, args: dict, where: str) -> tuple[dict, dict]:
    """``spec`` with ``--protocol-arg`` overrides (``SETTING.FORMAT=INT``) applied, and the
    overrides as integers."""
    spec = {**spec, **{key: dict(spec.get(key) or {}) for key in SETTINGS}}
    typed = {}
    for key, value in args.items():
        setting, _, fmt = str(key).partition(".")
        if setting not in SETTINGS or fmt not in FORMATS:
            raise MMUBenchError(f"{where}: --protocol-arg {key!r}: expected SETTING.FORMAT with SETTING one of "
                                f"{', '.join(SETTINGS)} and FORMAT one of {', '.join(FORMATS)}")
        try:
            typed[key] = spec[setting][fmt] = int(value)
        except (TypeError, ValueError):
            raise MMUBenchError(f"{where}: --protocol-arg {key}: expected an integer, got {value!r}") from None
    return spec, typed


def load(name: str, args: dict | None = None) -> Protocol:
    """A shipped protocol by name, or a protocol file by path, with ``args`` applied."""
    found = available()
    if name in found:
        path = found[name]
    elif name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name).expanduser()
        if not path.is_file():
            raise MMUBenchError(f"protocol file {path} does not exist")
    else:
        raise UnknownNameError("protocol", name, found)
    spec, args = _overridden(read_yaml_mapping(path, "protocol file"), dict(args or {}), f"protocol {name!r}")
    for key in ("protocol", "version", "reference"):
        if not isinstance(spec.get(key), (str, int)) or not str(spec[key]).strip():
            raise MMUBenchError(f"{path}: field {key!r} is missing (a protocol names itself, its version and "
                                "the reference code it follows)")
    prompts = spec.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise MMUBenchError(f"{path}: field 'prompts' must map template names to strings")
    measures = spec.get("add_measures") or []
    if not isinstance(measures, list) or not all(isinstance(m, str) for m in measures):
        raise MMUBenchError(f"{path}: field 'add_measures' must be a list of measure names")
    options = spec.get("measure_options") or {}
    if not isinstance(options, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in options.items()):
        raise MMUBenchError(f"{path}: field 'measure_options' must map measure names to their options, e.g. "
                            "{cloze_acc: {rule: mllmu}}")
    lacking = [fmt for fmt, k in spec["shots"].items() if k and f"shot_{fmt}" not in prompts]
    if lacking:
        raise MMUBenchError(f"{path}: field 'shots' asks for {lacking[0]} demonstrations but 'prompts' has no "
                            f"'shot_{lacking[0]}' template")
    splits = spec.get("shot_splits") or []
    if not isinstance(splits, list) or not all(isinstance(x, str) for x in splits):
        raise MMUBenchError(f"{path}: field 'shot_splits' must be a list of splits (forget, retain, general, holdout)")
    return Protocol(name=str(spec["protocol"]), version=str(spec["version"]),
                    reference=" ".join(str(spec["reference"]).split()), prompts=dict(prompts),
                    blank=spec.get("blank"), max_new_tokens=_per_format(path, spec, "max_new_tokens"),
                    shots=_per_format(path, spec, "shots"), shot_splits=tuple(splits),
                    measures=tuple(measures), measure_options={k: dict(v) for k, v in options.items()}, args=args,
                    source=str(path))


def resolve(name: str, benchmark_protocol: str, args: dict | None = None) -> Protocol:
    """The protocol a run uses: ``name``, or the benchmark's own for ``auto``."""
    return load(benchmark_protocol if name == AUTO else name, args)
