"""The reference models' records (vanilla, oracle, ...): evaluated once, cached per item.

A reference model's records hold its raw signals on every item of every task (outputs,
log-probabilities; see ``mmu_bench.measure``), so any measure, old or new, is computed from the
cache in every run: no reference model is loaded again unless its records are missing. The
cache key is computed from the provider's declared path of the model, never by loading it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmu_bench.core import integrity, shipped
from mmu_bench.core.storage import home, json_digest
from mmu_bench.harness.evaluate import EvalSettings, evaluate
from mmu_bench.spec.tasks import Task

# Bump when what a record holds changes: cached records of an older form are then remade.
RECORDS_VERSION = 3


@dataclass
class Reference:
    role: str
    model_path: str
    recipe_hash: str
    records: list[dict]


def model_identity(provider, role: str, benchmark) -> str:
    """Where ``role``'s model lives, the same on every machine for a cached model (its folder
    under the cache, named by its recipe): so shipped records match a user's cache."""
    path = Path(provider.path(role, benchmark))
    try:
        return path.relative_to(home()).as_posix()
    except ValueError:
        return str(path)


def cache_path(provider, role: str, benchmark, tasks: list[Task], settings: EvalSettings) -> Path:
    key = {"records_version": RECORDS_VERSION, "model": model_identity(provider, role, benchmark),
           "tasks": {t.name: t.version for t in tasks}, "limit": settings.limit, "benchmark": benchmark.key()}
    return home() / "references" / provider.name / f"{role}-{json_digest(key)}.json"


def weights_digest(provider, role: str, benchmark) -> str | None:
    """The digest of a harness-trained model's weights (``CachedProvider.weights_digest``)."""
    return provider.weights_digest(role, benchmark) if hasattr(provider, "weights_digest") else None


def _cached_entry(provider, role: str, benchmark, path: Path, what: str, device,
                  make: Callable[[object], dict], shipped_name: str | None = None) -> dict:
    """``role``'s cached entry at ``path``, else the shipped one (``shipped_name``), else
    ``make(loaded model)`` once, sealed. A harness-trained model's entries are its weights'
    (None: an outside model, or one not trained yet): entries of other weights (a retrained
    model) are made again."""
    entry = integrity.read_sealed(path, what)
    weights = weights_digest(provider, role, benchmark)
    if entry is not None and weights is not None and entry.get("weights") not in (None, weights):
        entry = None
    if entry is None and weights is not None and shipped_name is not None:
        entry = shipped.records(provider.name, shipped_name, weights)
        if entry is not None:
            integrity.sealed_json(path, entry)
    if entry is None:
        loaded = provider.load(role, benchmark)
        loaded.model.to(device)
        entry = {**make(loaded), "weights": weights_digest(provider, role, benchmark)}  # known now that it is trained
        integrity.sealed_json(path, entry)
        del loaded
    return entry


def reference_records(provider, benchmark, tasks: list[Task], settings: EvalSettings, device) -> dict[str, Reference]:
    """Every reference role of ``provider`` that ``benchmark`` supports: its records on
    ``tasks``, from the cache, or by loading (training, if need be) and evaluating the model once."""
    return {role: role_records(provider, role, benchmark, tasks, settings, device)
            for role in provider.roles if benchmark.supports(role)}


def role_records(provider, role: str, benchmark, tasks: list[Task], settings: EvalSettings, device) -> Reference:
    """One role's records on ``tasks``, cached as ``reference_records`` caches them (the
    meta-evaluation's pools are references of other recipes: other seeds, other budgets)."""
    path = cache_path(provider, role, benchmark, tasks, settings)

    def make(loaded) -> dict:
        return {"role": role, "model_path": model_identity(provider, role, benchmark),
                "recipe_hash": loaded.recipe_hash, "records_version": RECORDS_VERSION,
                "records": evaluate(loaded.model, loaded.processor, benchmark.eval, tasks, settings)}

    entry = _cached_entry(provider, role, benchmark, path, f"cached records of the {role} model", device, make,
                          shipped_name=path.name)
    return Reference(role, str(provider.path(role, benchmark)), entry["recipe_hash"], entry["records"])


def cached_scores(provider, benchmark, kind: str, key: dict, score: Callable[[object, object], dict], device,
                  roles: list[str] | None = None) -> dict[str, dict]:
    """role -> ``score(model, processor)`` (a JSON-able dict) for each reference role, cached
    like the records under ``kind`` and ``key`` (what the scores depend on besides the model):
    e.g. the utility suites' scores (``mmu_bench.suites``)."""
    out = {}
    for role in roles if roles is not None else [r for r in provider.roles if benchmark.supports(r)]:
        digest = json_digest({**key, "model": model_identity(provider, role, benchmark), "benchmark": benchmark.key()})
        path = home() / "references" / provider.name / f"{role}-{kind}-{digest}.json"
        entry = _cached_entry(provider, role, benchmark, path, f"cached {kind} scores of the {role} model", device,
                              lambda loaded, role=role: {"role": role, "scores": score(loaded.model, loaded.processor)})
        out[role] = entry["scores"]
    return out
