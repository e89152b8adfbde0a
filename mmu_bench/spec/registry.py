"""Names -> methods, measures, benchmarks and model providers, with "did you mean" errors.

``--method X`` (and ``--measure X``, ``--attack X``) resolves, in order: an entry point named X
in the group ``mmu_bench.methods`` (``mmu_bench.measures``, ``mmu_bench.attacks``; the built-in
ones are registered there too),
``package.module:Class``, then ``path/to/file.py:Class``. A broken third-party entry point only
warns, so it cannot break ``mmu-bench list`` or other plugins.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import inspect
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from mmu_bench.api.attack import Attack, AttackConfig
from mmu_bench.api.measure import ItemMeasure, Measure
from mmu_bench.api.method import MethodConfig, UnlearningMethod
from mmu_bench.api.schema import FORMATS
from mmu_bench.core.errors import MMUBenchError, UnknownNameError
from mmu_bench.core.storage import json_digest

METHOD_GROUP = "mmu_bench.methods"
MEASURE_GROUP = "mmu_bench.measures"
ATTACK_GROUP = "mmu_bench.attacks"


class PluginError(MMUBenchError):
    """A plugin that cannot be used; the message names the plugin, its origin and why."""


@dataclass(frozen=True)
class Resolved:
    """A resolved plugin (a method or a measure): its class and where it came from."""

    cls: type
    name: str
    origin: str  # "entry point mmu_bench.methods:npo (mmu-bench 0.1.0)", "module x.y:Z", "file ..."
    source_file: str
    source_sha256: str


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _check(obj, spec: str, origin: str) -> type[UnlearningMethod]:
    if not (inspect.isclass(obj) and issubclass(obj, UnlearningMethod)):
        raise PluginError(f"method plugin {spec!r} ({origin}): {obj!r} is not a subclass of mmu_bench.method.UnlearningMethod")
    if obj.loss is UnlearningMethod.loss and obj.unlearn is UnlearningMethod.unlearn:
        raise PluginError(f"method plugin {spec!r} ({origin}): implements neither loss() nor unlearn()")
    if not obj.name:
        raise PluginError(f"method plugin {spec!r} ({origin}): the class sets no `name`")
    config = obj.Config
    if not (inspect.isclass(config) and issubclass(config, MethodConfig) and dataclasses.is_dataclass(config)):
        raise PluginError(f"method plugin {spec!r} ({origin}): `Config` must be a dataclass subclassing "
                          f"mmu_bench.method.MethodConfig, got {config!r}")
    missing = [f.name for f in dataclasses.fields(config)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise PluginError(f"method plugin {spec!r} ({origin}): config field(s) {', '.join(missing)} have no default")
    if hasattr(obj, "benchmark_defaults"):
        raise PluginError(f"method plugin {spec!r} ({origin}): defines `benchmark_defaults`, which is no longer part "
                          "of the contract: a method names no benchmark, and re-tuning must not change its source "
                          "hash. Remove it; pass tuned values with --method-arg KEY=VALUE or a --config file's "
                          "`method_args` (README, \"Hyperparameters\")")
    try:
        config()
    except Exception as exc:
        raise PluginError(f"method plugin {spec!r} ({origin}): its default config is invalid: {exc}") from exc
    return obj


def _check_measure(obj, spec: str, origin: str) -> type[Measure]:
    if not (inspect.isclass(obj) and issubclass(obj, Measure)):
        raise PluginError(f"measure plugin {spec!r} ({origin}): {obj!r} is not a subclass of mmu_bench.measure.Measure")
    if not obj.name:
        raise PluginError(f"measure plugin {spec!r} ({origin}): the class sets no `name`")
    if issubclass(obj, ItemMeasure):
        if obj.item is ItemMeasure.item:
            raise PluginError(f"measure plugin {spec!r} ({origin}): an ItemMeasure must implement item()")
    elif obj.compute is Measure.compute:
        raise PluginError(f"measure plugin {spec!r} ({origin}): implements neither compute() nor, as an "
                          "ItemMeasure, item()")
    bad = [f for f in obj.formats if f not in FORMATS]
    if not obj.formats or bad:
        raise PluginError(f"measure plugin {spec!r} ({origin}): `formats` must name formats among {FORMATS}, "
                          f"got {obj.formats!r}")
    if obj.higher_is_better not in (None, True, False):
        raise PluginError(f"measure plugin {spec!r} ({origin}): `higher_is_better` must be True, False or None")
    for attr in ("references", "other_tasks"):
        value = getattr(obj, attr)
        if not isinstance(value, tuple) or not all(isinstance(x, str) for x in value):
            raise PluginError(f"measure plugin {spec!r} ({origin}): `{attr}` must be a tuple of names, got {value!r}")
    return obj


def _check_attack(obj, spec: str, origin: str) -> type[Attack]:
    if not (inspect.isclass(obj) and issubclass(obj, Attack)):
        raise PluginError(f"attack plugin {spec!r} ({origin}): {obj!r} is not a subclass of mmu_bench.attack.Attack")
    if not obj.name:
        raise PluginError(f"attack plugin {spec!r} ({origin}): the class sets no `name`")
    if obj.run is Attack.run:
        raise PluginError(f"attack plugin {spec!r} ({origin}): implements no run()")
    config = obj.Config
    if not (inspect.isclass(config) and issubclass(config, AttackConfig) and dataclasses.is_dataclass(config)):
        raise PluginError(f"attack plugin {spec!r} ({origin}): `Config` must be a dataclass subclassing "
                          f"mmu_bench.attack.AttackConfig, got {config!r}")
    if not isinstance(obj.columns, tuple) or not all(isinstance(c, str) for c in obj.columns):
        raise PluginError(f"attack plugin {spec!r} ({origin}): `columns` must be a tuple of names, got {obj.columns!r}")
    try:
        config()
    except Exception as exc:
        raise PluginError(f"attack plugin {spec!r} ({origin}): its default config is invalid: {exc}") from exc
    return obj


@dataclass(frozen=True)
class PluginKind:
    """A kind of plugin: its noun in messages, its entry-point group and its contract check."""

    noun: str
    group: str
    check: Callable[[object, str, str], type]


METHODS = PluginKind("method", METHOD_GROUP, _check)
MEASURES = PluginKind("measure", MEASURE_GROUP, _check_measure)
ATTACKS = PluginKind("attack", ATTACK_GROUP, _check_attack)


def _resolved(cls: type, origin: str) -> Resolved:
    source = inspect.getsourcefile(cls) or ""
    return Resolved(cls, cls.name, origin, source, _sha256(source) if source else "")


def entry_points_of(kind: PluginKind) -> dict:
    return {ep.name: ep for ep in entry_points(group=kind.group)}


def method_entry_points() -> dict:
    return entry_points_of(METHODS)


def _load_entry_point(kind: PluginKind, ep) -> Resolved:
    dist = f" ({ep.dist.name} {ep.dist.version})" if getattr(ep, "dist", None) else ""
    origin = f"entry point {kind.group}:{ep.name} -> {ep.value}{dist}"
    try:
        obj = ep.load()
    except Exception as exc:  # any import-time failure of a plugin
        raise PluginError(f"{kind.noun} plugin {ep.name!r} ({origin}) failed to import: {type(exc).__name__}: {exc}") from exc
    return _resolved(kind.check(obj, ep.name, origin), origin)


def _load_file(kind: PluginKind, spec: str) -> Resolved:
    path_text, _, attr = spec.rpartition(":")
    path = Path(path_text).expanduser().resolve()
    origin = f"file {path}"
    if not path.is_file():
        raise PluginError(f"{kind.noun} plugin {spec!r}: no such file {path}")
    module_name = f"mmu_bench_plugin_{json_digest(str(path), 12)}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None:
        raise PluginError(f"{kind.noun} plugin {spec!r} ({origin}): not a Python source file (expected a .py file)")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module  # dataclasses need their module registered
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise PluginError(f"{kind.noun} plugin {spec!r} ({origin}) failed to import: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, attr):
        raise PluginError(f"{kind.noun} plugin {spec!r} ({origin}): the file defines no {attr!r}")
    return _resolved(kind.check(getattr(module, attr), spec, origin), origin)


def _load_module(kind: PluginKind, spec: str) -> Resolved:
    module_name, _, attr = spec.partition(":")
    origin = f"module {module_name}"
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise PluginError(f"{kind.noun} plugin {spec!r} ({origin}) failed to import: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, attr):
        raise PluginError(f"{kind.noun} plugin {spec!r} ({origin}): the module defines no {attr!r}")
    return _resolved(kind.check(getattr(module, attr), spec, origin), origin)


def resolve(kind: PluginKind, spec: str) -> Resolved:
    """A plugin by entry-point name, ``package.module:Class`` or ``path/to/file.py:Class``."""
    if ":" in spec:
        where = spec.rpartition(":")[0]
        if where.endswith(".py") or "/" in spec or "\\" in spec or Path(where).is_file():
            return _load_file(kind, spec)
        return _load_module(kind, spec)
    eps = entry_points_of(kind)
    if spec in eps:
        return _load_entry_point(kind, eps[spec])
    raise UnknownNameError(kind.noun, spec, eps)


def resolve_method(spec: str) -> Resolved:
    return resolve(METHODS, spec)


def resolve_measure(spec: str) -> Resolved:
    return resolve(MEASURES, spec)


def resolve_attack(spec: str) -> Resolved:
    return resolve(ATTACKS, spec)


def list_plugins(kind: PluginKind) -> list[dict]:
    """Every registered plugin of ``kind`` with its origin; broken ones are listed with their error and warn."""
    out = []
    for name, ep in sorted(entry_points_of(kind).items()):
        try:
            resolved = _load_entry_point(kind, ep)
            out.append({"name": name, "origin": resolved.origin, "version": resolved.cls.version, "error": ""})
        except PluginError as exc:
            warnings.warn(str(exc), stacklevel=2)
            out.append({"name": name, "origin": ep.value, "version": "", "error": str(exc)})
    return out


def list_methods() -> list[dict]:
    return list_plugins(METHODS)


# Benchmarks and model providers: name -> "module:function" (imported lazily).
BENCHMARKS = {
    "mmu-synth": "mmu_bench.data.synth:load",
    "mllmu": "mmu_bench.data.mllmu:load",
    "clear": "mmu_bench.data.clear:load",
}
MODELS = {
    "tiny-llava": "mmu_bench.models.tiny:TinyLlavaProvider",
    "llava-1.5-7b": "mmu_bench.models.hf:Llava15_7B",
    "qwen2-vl-7b": "mmu_bench.models.hf:Qwen2VL_7B",
    "qwen2.5-vl-7b": "mmu_bench.models.hf:Qwen25VL_7B",
}
# ``hf:<hub name or local folder>``: any image-text-to-text model of transformers.
HF_PREFIX = "hf:"


def _import(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def benchmark_loader(name: str):
    if name not in BENCHMARKS:
        raise UnknownNameError("benchmark", name, BENCHMARKS)
    return _import(BENCHMARKS[name])


def model_provider(name: str):
    """A provider class (or factory), called with ``progress=`` and the model options."""
    if name.startswith(HF_PREFIX) and name[len(HF_PREFIX):].strip():
        return functools.partial(_import("mmu_bench.models.hf:HFProvider"), path=name[len(HF_PREFIX):], name=name)
    if name not in MODELS:
        raise UnknownNameError("model", name, [*MODELS, f"{HF_PREFIX}<name-or-path>"])
    return _import(MODELS[name])
