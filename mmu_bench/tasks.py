"""Task definitions: versioned YAML files (data, not code), one per scored dimension.

A task file may ``include:`` another (keys of the including file win). Task files live in
the repository's ``tasks/`` folder, installed as ``mmu_bench._tasks``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from .data.schema import FORMATS
from .errors import MMUBenchError, UnknownNameError

DIMENSIONS = ("visual_forgetting", "textual_retention", "retained_vqa", "general_utility")


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
    source: str = field(default="", compare=False)

    def selects(self, row: dict) -> bool:
        return all(row.get(key) == value for key, value in self.data.items())


def tasks_dir() -> Path:
    return Path(str(resources.files("mmu_bench._tasks")))


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    if path in seen:
        raise MMUBenchError(f"{path}: include cycle through {' -> '.join(str(p) for p in seen)}")
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise MMUBenchError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(spec, dict):
        raise MMUBenchError(f"{path}: a task file must hold a mapping, got {type(spec).__name__}")
    if "include" in spec:
        base = _read(path.parent / spec.pop("include"), (*seen, path))
        spec = {**base, **spec}
    return spec


def _build(path: Path) -> Task:
    spec = _read(path)
    required = ("task", "version", "dimension", "higher_is_better", "data", "prompts", "formats")
    missing = [key for key in required if key not in spec]
    if missing:
        raise MMUBenchError(f"{path}: missing field(s) {', '.join(missing)}")
    if spec["dimension"] not in DIMENSIONS:
        raise MMUBenchError(f"{path}: field 'dimension' is {spec['dimension']!r}; expected one of {DIMENSIONS}")
    bad = [f for f in spec["formats"] if f not in FORMATS]
    if bad:
        raise MMUBenchError(f"{path}: field 'formats' has unknown format(s) {bad}; expected {FORMATS}")
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
    for dim in DIMENSIONS:
        if names is None and not any(t.dimension == dim and t.primary for t in tasks):
            raise MMUBenchError(f"no primary task for dimension {dim!r} in {directory or tasks_dir()}")
    return tasks


def default_prompts(directory: Path | None = None) -> dict:
    """The shared prompt block (from ``_base.yaml``), used to fine-tune models in the same format."""
    spec = _read((directory or tasks_dir()) / "_base.yaml")
    return {key: spec[key] for key in ("prompt_version", "prompts", "blank", "formats")}


def prompts_hash(prompts: dict) -> str:
    return hashlib.sha256(json.dumps(prompts, sort_keys=True).encode()).hexdigest()[:12]
