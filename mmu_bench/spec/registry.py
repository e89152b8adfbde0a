"""Names -> plugins (methods, measures, attacks, benchmark adapters, model providers), with "did
you mean" errors.

Every kind has the same door. ``--method X`` (``--measure X``, ``--attack X``, ``--benchmark X``,
``--model X``) resolves, in order: an entry point named X in the kind's group
(``mmu_bench.methods``, ``.measures``, ``.attacks``, ``.benchmarks``, ``.models``; the built-in
plugins are registered there too), ``package.module:Class``, then ``path/to/file.py:Class``. The
class is checked against its contract, and its origin and source SHA-256 are recorded. A model
provider that ``takes_source`` is also named ``<name>:<hub name or folder>`` (``hf:org/model``).
A broken third-party entry point only warns, so it cannot break ``mmu-bench list`` or other
plugins.
"""

from __future__ import annotations

import ast
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
from mmu_bench.api.benchmark import BenchmarkAdapter
from mmu_bench.api.measure import ItemMeasure, Measure
from mmu_bench.api.method import MethodConfig, UnlearningMethod
from mmu_bench.api.provider import ModelProvider
from mmu_bench.api.schema import FORMATS
from mmu_bench.core.errors import MMUBenchError, UnknownNameError
from mmu_bench.core.storage import json_digest

METHOD_GROUP = "mmu_bench.methods"
MEASURE_GROUP = "mmu_bench.measures"
ATTACK_GROUP = "mmu_bench.attacks"
BENCHMARK_GROUP = "mmu_bench.benchmarks"
MODEL_GROUP = "mmu_bench.models"


class PluginError(MMUBenchError):
    """A plugin that cannot be used; the message names the plugin, its origin and why."""


@dataclass(frozen=True)
class Resolved:
    """A resolved plugin: its class and where it came from."""

    cls: type
    name: str
    origin: str  # "entry point mmu_bench.methods:npo (mmu-bench 0.1.0)", "module x.y:Z", "file ..."
    source_file: str
    source_sha256: str


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _check(obj, spec: str, origin: str) -> type[UnlearningMethod]:
    if not (inspect.isclass(obj) and issubclass(obj, UnlearningMethod)):
        raise PluginError(f"method plugin {spec!r} ({origin}): {obj!r} is not a subclass of mmu_bench.api.UnlearningMethod")
    if obj.loss is UnlearningMethod.loss and obj.unlearn is UnlearningMethod.unlearn:
        raise PluginError(f"method plugin {spec!r} ({origin}): implements neither loss() nor unlearn()")
    if not obj.name:
        raise PluginError(f"method plugin {spec!r} ({origin}): the class sets no `name`")
    config = obj.Config
    if not (inspect.isclass(config) and issubclass(config, MethodConfig) and dataclasses.is_dataclass(config)):
        raise PluginError(f"method plugin {spec!r} ({origin}): `Config` must be a dataclass subclassing "
                          f"mmu_bench.api.MethodConfig, got {config!r}")
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
        raise PluginError(f"measure plugin {spec!r} ({origin}): {obj!r} is not a subclass of mmu_bench.api.Measure")
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
    if not all(isinstance(getattr(obj, a), str) for a in ("table", "label", "explain")) or not obj.table:
        raise PluginError(f"measure plugin {spec!r} ({origin}): `table`, `label` and `explain` must be text "
                          "(and `table` not empty)")
    if obj.higher_is_better not in (None, True, False):
        raise PluginError(f"measure plugin {spec!r} ({origin}): `higher_is_better` must be True, False or None")
    for attr in ("references", "other_tasks"):
        value = getattr(obj, attr)
        if not isinstance(value, tuple) or not all(isinstance(x, str) for x in value):
            raise PluginError(f"measure plugin {spec!r} ({origin}): `{attr}` must be a tuple of names, got {value!r}")
    return obj


def _check_attack(obj, spec: str, origin: str) -> type[Attack]:
    if not (inspect.isclass(obj) and issubclass(obj, Attack)):
        raise PluginError(f"attack plugin {spec!r} ({origin}): {obj!r} is not a subclass of mmu_bench.api.Attack")
    if not obj.name:
        raise PluginError(f"attack plugin {spec!r} ({origin}): the class sets no `name`")
    if obj.run is Attack.run:
        raise PluginError(f"attack plugin {spec!r} ({origin}): implements no run()")
    config = obj.Config
    if not (inspect.isclass(config) and issubclass(config, AttackConfig) and dataclasses.is_dataclass(config)):
        raise PluginError(f"attack plugin {spec!r} ({origin}): `Config` must be a dataclass subclassing "
                          f"mmu_bench.api.AttackConfig, got {config!r}")
    if not isinstance(obj.columns, tuple) or not all(isinstance(c, str) for c in obj.columns):
        raise PluginError(f"attack plugin {spec!r} ({origin}): `columns` must be a tuple of names, got {obj.columns!r}")
    stray = [c for c in obj.labels if c not in obj.columns] if isinstance(obj.labels, dict) else None
    if stray is None or stray or not all(isinstance(v, str) for v in obj.labels.values()):
        raise PluginError(f"attack plugin {spec!r} ({origin}): `labels` must map some of its columns to headers, got "
                          f"{obj.labels!r}")
    try:
        config()
    except Exception as exc:
        raise PluginError(f"attack plugin {spec!r} ({origin}): its default config is invalid: {exc}") from exc
    return obj


def _named_subclass(obj, base: type, where: str) -> None:
    if not (inspect.isclass(obj) and issubclass(obj, base)):
        raise PluginError(f"{where}: {obj!r} is not a subclass of mmu_bench.api.{base.__name__}")
    if not obj.name:
        raise PluginError(f"{where}: the class sets no `name`")


def _check_benchmark(obj, spec: str, origin: str) -> type[BenchmarkAdapter]:
    where = f"benchmark plugin {spec!r} ({origin})"
    _named_subclass(obj, BenchmarkAdapter, where)
    if obj.load is BenchmarkAdapter.load:
        raise PluginError(f"{where}: implements no load()")
    ratios = obj.forget_ratios
    if not isinstance(ratios, tuple) or not all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in ratios):
        raise PluginError(f"{where}: `forget_ratios` must be a tuple of percentages, got {ratios!r}")
    if not isinstance(obj.protocol, str) or not obj.protocol.strip():
        raise PluginError(f"{where}: `protocol` must name a protocol or a protocol file, got {obj.protocol!r}")
    if obj.hparams is not None and (not isinstance(obj.hparams, str) or not obj.hparams.strip()):
        raise PluginError(f"{where}: `hparams` must name a hyperparameter file or be None, got {obj.hparams!r}")
    return obj


def _check_model(obj, spec: str, origin: str) -> type[ModelProvider]:
    where = f"model plugin {spec!r} ({origin})"
    _named_subclass(obj, ModelProvider, where)
    missing = [m for m in ("path", "recipe_hash", "load", "load_checkpoint")
               if getattr(obj, m) is getattr(ModelProvider, m)]
    if missing:
        raise PluginError(f"{where}: implements no {', '.join(f'{m}()' for m in missing)}")
    roles = obj.roles
    if not isinstance(roles, tuple) or not roles or not all(isinstance(r, str) for r in roles) or roles[0] != "vanilla":
        raise PluginError(f"{where}: `roles` must be a tuple of reference model names, vanilla first, got {roles!r}")
    return obj


@dataclass(frozen=True)
class PluginKind:
    """A kind of plugin: its noun in messages, its entry-point group and its contract check."""

    noun: str
    group: str
    check: Callable[[object, str, str], type]
    base: type  # the class every plugin of the kind subclasses: its defaults stand where a plugin declares none


METHODS = PluginKind("method", METHOD_GROUP, _check, UnlearningMethod)
MEASURES = PluginKind("measure", MEASURE_GROUP, _check_measure, Measure)
ATTACKS = PluginKind("attack", ATTACK_GROUP, _check_attack, Attack)
BENCHMARKS = PluginKind("benchmark", BENCHMARK_GROUP, _check_benchmark, BenchmarkAdapter)
MODELS = PluginKind("model", MODEL_GROUP, _check_model, ModelProvider)
KINDS = (METHODS, MEASURES, ATTACKS, BENCHMARKS, MODELS)


def _resolved(cls: type, origin: str) -> Resolved:
    source = inspect.getsourcefile(cls) or ""
    return Resolved(cls, cls.name, origin, source, _sha256(source) if source else "")


def entry_points_of(kind: PluginKind) -> dict:
    """The kind's entry points, by name. Reading the installed distributions is slow, so they are
    read once per set of paths they are found on (a package installed into a path added later is
    found)."""
    return dict(_entry_points(kind.group, tuple(sys.path)))


@functools.lru_cache(maxsize=32)
def _entry_points(group: str, paths: tuple[str, ...]) -> tuple:
    return tuple((ep.name, ep) for ep in entry_points(group=group))


def method_entry_points() -> dict:
    return entry_points_of(METHODS)


def _origin(kind: PluginKind, ep) -> str:
    dist = f" ({ep.dist.name} {ep.dist.version})" if getattr(ep, "dist", None) else ""
    return f"entry point {kind.group}:{ep.name} -> {ep.value}{dist}"


def _load_entry_point(kind: PluginKind, ep) -> Resolved:
    origin = _origin(kind, ep)
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


def resolve_benchmark(spec: str) -> Resolved:
    return resolve(BENCHMARKS, spec)


def resolve_model(spec: str) -> tuple[Resolved, dict]:
    """A model provider and the options its name implies: ``<name>:<source>`` names a provider
    that ``takes_source`` (``hf:org/model``), which gets ``path=<source>`` and ``name=spec``."""
    prefix, colon, source = spec.partition(":")
    eps = entry_points_of(MODELS)
    if colon and prefix in eps:
        resolved = _load_entry_point(MODELS, eps[prefix])
        if resolved.cls.takes_source:
            if not source.strip():
                raise PluginError(f"model {spec!r} needs a hub name or local folder: --model {prefix}:<name-or-path>")
            return resolved, {"path": source, "name": spec}
    if not colon and spec in eps and _is_source_provider(eps[spec]):
        raise PluginError(f"model {spec!r} needs a hub name or local folder: --model {spec}:<name-or-path>")
    try:
        return resolve(MODELS, spec), {}
    except UnknownNameError:
        raise UnknownNameError("model", spec, [*(f"{n}:<name-or-path>" if _is_source_provider(ep) else n
                                                 for n, ep in eps.items())]) from None


def make_model(spec: str, progress: bool = True, **options):
    """The model provider ``spec`` names, made with ``options`` (its ``--model-arg`` options)."""
    resolved, implied = resolve_model(spec)
    return resolved.cls(progress=progress, **implied, **options)


def _is_source_provider(ep) -> bool:
    try:
        return bool(getattr(ep.load(), "takes_source", False))
    except Exception:  # a broken plugin is reported when it is resolved, not here
        return False


def list_plugins(kind: PluginKind) -> list[dict]:
    """Every registered plugin of ``kind`` with its origin; broken ones are listed with their error and warn."""
    out = []
    for name, ep in sorted(entry_points_of(kind).items()):
        try:
            resolved = _load_entry_point(kind, ep)
            out.append({"name": name, "origin": resolved.origin, "version": resolved.cls.version,
                        "description": getattr(resolved.cls, "description", ""), "error": "", "cls": resolved.cls})
        except PluginError as exc:
            warnings.warn(str(exc), stacklevel=2)
            out.append({"name": name, "origin": ep.value, "version": "", "description": "", "error": str(exc),
                        "cls": None})
    return out


def list_methods() -> list[dict]:
    return list_plugins(METHODS)


def declared(kind: PluginKind, name: str) -> dict:
    """What the plugin registered as ``name`` declares in its class body (its literal class
    attributes, and those of its bases in the same file), read from its source without importing
    it: reports describe plugins without loading a model library. Empty when no such entry point
    is installed or its source cannot be read."""
    ep = entry_points_of(kind).get(name)
    if ep is None:
        return {}
    found = _declared(ep)
    return found if isinstance(found, dict) else {}


def described(kind: PluginKind) -> list[dict]:
    """Every registered plugin of ``kind``, as ``list_plugins`` gives it, from its entry point and
    its source alone (``declared``): nothing is imported, so `mmu-bench list` answers at once. A
    plugin whose module or class cannot be found is listed with that error and warns; one that
    is found but fails on import or breaks its contract shows only under ``list_plugins``."""
    out = []
    for name, ep in sorted(entry_points_of(kind).items()):
        found = _declared(ep)
        if isinstance(found, str):
            error = f"{kind.noun} plugin {name!r} ({ep.value}): {found}"
            warnings.warn(error, stacklevel=2)
            out.append({"name": name, "origin": ep.value, "version": "", "description": "", "error": error,
                        "declared": {}})
            continue
        # Where the class declares nothing literal in its own file, the kind's defaults stand.
        known = {a: getattr(kind.base, a) for a in ("version", "description", "takes_source", "forget_ratios")
                 if hasattr(kind.base, a)}
        known.update(found)
        out.append({"name": name, "origin": _origin(kind, ep), "version": known.get("version", ""),
                    "description": known.get("description", ""), "error": "", "declared": known})
    return out


def _declared(ep) -> dict | str:
    """The literal class attributes of ``ep``'s class (``declared``), or why they cannot be read."""
    module, _, attr = ep.value.partition(":")
    try:
        spec = importlib.util.find_spec(module)  # imports its parent packages, not the module
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        return f"cannot find module {module!r}: {exc}"
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return f"cannot find the source of module {module!r}"
    try:
        tree = ast.parse(Path(spec.origin).read_text())
    except (OSError, SyntaxError, ValueError) as exc:
        return f"cannot read {spec.origin}: {type(exc).__name__}: {exc}"
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    if attr not in classes:
        return f"{spec.origin} defines no class {attr!r}"
    constants = {}  # the module's literal constants, which a class attribute may name (forget_ratios = RATIOS)
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass

    def attributes(cls: str, seen: frozenset) -> dict:
        node = classes.get(cls)
        if node is None or cls in seen:
            return {}
        out: dict = {}
        for base in node.bases:  # bases first: the class's own values win
            if isinstance(base, ast.Name):
                out.update(attributes(base.id, seen | {cls}))
        for stmt in node.body:
            pairs = []
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target = stmt.targets[0]
                if isinstance(target, ast.Name):
                    pairs = [(target, stmt.value)]
                elif isinstance(target, ast.Tuple) and isinstance(stmt.value, ast.Tuple) \
                        and len(target.elts) == len(stmt.value.elts):
                    pairs = list(zip(target.elts, stmt.value.elts))
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                pairs = [(stmt.target, stmt.value)]
            for target, value in pairs:
                if not isinstance(target, ast.Name):
                    continue
                if isinstance(value, ast.Name) and value.id in constants:
                    out[target.id] = constants[value.id]
                    continue
                try:
                    out[target.id] = ast.literal_eval(value)
                except ValueError:
                    out.pop(target.id, None)  # not a literal: not known without running the code
        return out

    return attributes(attr, frozenset())
