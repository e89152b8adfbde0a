"""Options given as text (a command line, a YAML file) -> the typed dataclass that holds them, with
errors that name the owner, the option and the valid ones."""

from __future__ import annotations

import dataclasses
import typing

import yaml

from mmu_bench.core.errors import MMUBenchError


def coerce(value, annotation, where: str):
    """Convert a command-line string (or YAML value) to a dataclass field's type."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return coerce(value, args[0], where)
    if not isinstance(value, str):
        if annotation is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if annotation in (int, float, str, bool) and not isinstance(value, annotation):
            raise MMUBenchError(f"{where}: expected {annotation.__name__}, got {value!r}")
        return value
    try:
        if annotation is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if annotation in (int, float, str):
            return annotation(value)
        parsed = yaml.safe_load(value)
        return parsed
    except ValueError as exc:
        name = getattr(annotation, "__name__", str(annotation))
        raise MMUBenchError(f"{where}: expected {name}, got {value!r}") from exc



def typed_dataclass(config_cls: type, values: dict, owner: str, noun: str):
    """``config_cls(**values)`` with each value coerced to its field's type. Unknown keys, bad
    types and invalid values raise MMUBenchError naming ``owner`` and listing the valid keys."""
    hints = typing.get_type_hints(config_cls)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        valid = ", ".join(f"{name} ({getattr(hints[name], '__name__', hints[name])})" for name in sorted(fields))
        raise MMUBenchError(f"{owner}: unknown {noun}(s) {', '.join(unknown)}; valid: {valid}")
    typed = {k: coerce(v, hints[k], f"{owner} {noun} {k!r}") for k, v in values.items()}
    try:
        return config_cls(**typed)
    except (TypeError, ValueError) as exc:
        raise MMUBenchError(f"{owner}: invalid configuration: {exc}") from exc
