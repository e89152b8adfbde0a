"""The results schema: what a run's ``results.json`` holds, written and read here only.

Scores: ``scores[model][task][measure] = Value`` for the unlearned model and every reference
model. A task's score is the mean of its ``score`` measures' values. Each dimension's score is
its primary task's score, normalised to [0, 1] against the reference models
(``normalisation``), the direction read from the task:

- lower is better (forgetting): (vanilla - x) / (vanilla - floor): 1 = forgotten as thoroughly
  as a model that never saw the forget entities. The floor is the gold reference model's score
  (``oracle``); without one, or when it scores as high as the vanilla model, chance level (the
  mean of the score measures' ``chance``);
- higher is better: x / vanilla: 1 = as good as before unlearning.

Each is clipped to [0, 1]; the overall score is their harmonic mean, so a method must do well
on every dimension (a collapse anywhere drives it towards 0).

Old files: schema version 1 (before measures were plugins) is read and upgraded; a newer
version than this code knows is refused with a message naming it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mmu_bench.api.measure import GOLD_ROLES, Value
from mmu_bench.core.errors import MMUBenchError

SCHEMA_VERSION = 2
UNLEARNED = "unlearned"
SUITE_PREFIX = "suite/"  # a utility-suite task is "suite/<its lmms-eval name>" (mmu_bench.harness.suites)
OPTIONAL_TASK_FIELDS = {"suite": "", "joins": False}


class ResultsError(MMUBenchError):
    """A results.json this code cannot read; the message names the file and why."""


# The phases of a run whose wall seconds ``provenance.phases`` records (``harness.clock``), in
# the order a run passes through them; a phase a run skips is left out.
PHASES = ("session", "unlearning", "trajectory", "requests", "evaluation", "scoring", "utility", "attacks", "writing")

@dataclass
class TaskInfo:
    version: str
    dimension: str
    primary: bool
    higher_is_better: bool
    measures: list[str] = field(default_factory=list)  # what is reported, in order
    # measure -> higher is better on this task (None: best in between, e.g. PrivLeak near 0)
    directions: dict[str, bool | None] = field(default_factory=dict)
    score: list[str] = field(default_factory=list)  # measures whose mean is the task score
    order: int = 0
    label: str = ""
    options: dict[str, dict] = field(default_factory=dict)  # measure -> its options on this task
    suite: str = ""  # the harness that scored it, for a utility-suite task ("lmms-eval"; mmu_bench.suites)
    joins: bool = False  # a non-primary task that joins its dimension's score (--utility-in-overall)

    @property
    def dimension_label(self) -> str:
        return self.label or self.dimension.replace("_", " ")


@dataclass
class Normalisation:
    """How one dimension's score becomes [0, 1]: its direction and, when lower is better, the floor."""

    higher_is_better: bool
    vanilla: float
    floor: str | None = None  # a gold reference role, "chance", or None (higher is better)
    floor_value: float | None = None

    def apply(self, x):
        """``x`` normalised: a float, or a numpy array element-wise (a bootstrap's resamples)."""
        v = self.vanilla
        if self.higher_is_better:
            return _clip(x / v) if v > 1e-9 else x * float("nan")
        f = float("nan") if self.floor_value is None else self.floor_value
        return _clip((v - x) / (v - f)) if v - f > 1e-9 else x * float("nan")


@dataclass
class RunResult:
    benchmark: dict  # name, fingerprint, forget_ratio, forget_entities, info, plugin (origin, version, source_sha256)
    model: dict  # name, references: role -> {path, recipe_hash}, plugin
    method: dict  # name, spec, version, origin, source_file, source_sha256, config
    seed: int
    tasks: dict[str, TaskInfo]
    scores: dict[str, dict[str, dict[str, Value]]]  # model -> task -> measure -> value
    dimensions: dict[str, dict[str, float]]  # model -> dimension -> score
    normalisation: dict[str, Normalisation]
    normalised: dict[str, float]  # the unlearned model's
    overall: float
    measures: dict[str, dict] = field(default_factory=dict)  # name -> version, origin, source_sha256, description
    vanilla_knowledge: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    # The unlearned model's per-person sums of each primary task's score measures (task ->
    # cluster -> measure -> [sum, count]; ``mmu_bench.trajectory.cluster_sums``): what a
    # bootstrap over people resamples.
    clusters: dict = field(default_factory=dict)
    # From the run's trajectory (``mmu_bench.trajectory``): retention at matched forgetting, the
    # trade-off areas, and the sample's normalisation. Empty without a trajectory.
    trade_off: dict = field(default_factory=dict)
    # The evaluation protocol the run followed (``mmu_bench.protocol``: name, version, prompts,
    # budgets, shots, added measures, overrides) and what it implies on this benchmark (answers
    # longer than the budget). The benchmark's own choices are in ``benchmark.info``.
    protocol: dict = field(default_factory=dict)
    # A continual run's stream (``mmu_bench.runs.continual``): its requests, the one-shot run it
    # compares with, reversal, erosion, early forgetting. Empty for an ordinary run.
    continual: dict = field(default_factory=dict)
    run_uid: str = ""
    run_id: str = ""
    run_key: str = ""
    schema_version: int = SCHEMA_VERSION

    # -- derived -------------------------------------------------------------------------------
    def dimension_order(self) -> list[str]:
        return dimension_order(self.tasks)

    def dimension_labels(self) -> dict[str, str]:
        return {t.dimension: t.dimension_label for t in self.tasks.values() if t.primary}

    def reference_roles(self) -> list[str]:
        """The reference models scored, vanilla first."""
        roles = [m for m in self.scores if m != UNLEARNED]
        return sorted(roles, key=lambda r: (r != "vanilla", r))

    def normalised_of(self, model: str) -> dict[str, float]:
        """``model``'s normalised dimension scores (the stored ones for the unlearned model)."""
        if model == UNLEARNED:
            return self.normalised
        return normalise(self.dimensions.get(model, {}), self.normalisation)

    def overall_of(self, model: str) -> float:
        if model == UNLEARNED:
            return self.overall
        return overall(self.normalised_of(model), self.dimension_order())

    # -- I/O -----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        out = asdict(self)
        for task in out["tasks"].values():  # written only where set: other runs' files stay as they were
            for key, default in OPTIONAL_TASK_FIELDS.items():
                if task.get(key) == default:
                    task.pop(key, None)
        if not out["continual"]:  # an ordinary run's file stays as it was
            del out["continual"]
        out["scores"] = {m: {t: {k: v.to_dict() for k, v in per.items()} for t, per in tasks.items()}
                         for m, tasks in self.scores.items()}
        return json_safe(out)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict, where: str = "results") -> RunResult:
        version = data.get("schema_version")
        if version == 1:
            data = _upgrade_v1(data)
        elif version != SCHEMA_VERSION:
            newer = isinstance(version, int) and version > SCHEMA_VERSION
            raise ResultsError(f"{where}: schema_version {version!r} is not one this mmu-bench reads (1 or "
                               f"{SCHEMA_VERSION}){'; upgrade mmu-bench' if newer else ''}")
        try:
            return cls(
                benchmark=data["benchmark"], model=data["model"], method=data["method"], seed=data["seed"],
                tasks={name: TaskInfo(**spec) for name, spec in data["tasks"].items()},
                scores={m: {t: {k: Value.from_dict(v) for k, v in per.items()} for t, per in tasks.items()}
                        for m, tasks in data["scores"].items()},
                dimensions={m: {d: _float(x) for d, x in dims.items()} for m, dims in data["dimensions"].items()},
                normalisation={d: Normalisation(**spec) for d, spec in data["normalisation"].items()},
                normalised={d: _float(x) for d, x in data["normalised"].items()},
                overall=_float(data["overall"]),
                measures=data.get("measures", {}), vanilla_knowledge=data.get("vanilla_knowledge", {}),
                training=data.get("training", {}), provenance=data.get("provenance", {}),
                clusters=data.get("clusters", {}), trade_off=data.get("trade_off", {}),
                protocol=data.get("protocol", {}), continual=data.get("continual", {}),
                run_uid=data.get("run_uid", ""), run_id=data.get("run_id", ""), run_key=data.get("run_key", ""),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ResultsError(f"{where}: not a valid results file (schema_version {version}): "
                               f"{type(exc).__name__}: {exc}") from exc


def read(path: str | Path) -> RunResult:
    """A run's results.json; ResultsError (naming the file) when it cannot be read."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: not a results file (a JSON object is expected)")
    return RunResult.from_dict(data, str(path))


# -- scores -> dimensions -> normalised -> overall ------------------------------------------------
def dimension_order(tasks: dict[str, TaskInfo]) -> list[str]:
    """The dimensions, in display order (their primary task's ``order``, then name)."""
    return [t.dimension for t in sorted((t for t in tasks.values() if t.primary), key=lambda t: (t.order, t.dimension))]


def present(per_measure: dict[str, Value], measure: str) -> bool:
    """Whether ``measure`` has a value (not absent)."""
    return measure in per_measure and per_measure[measure].absent is None


def task_score(per_measure: dict[str, Value], score: list[str]) -> float:
    """Mean of the score measures present (a task scoring fewer formats averages fewer)."""
    values = [per_measure[m].mean for m in score if present(per_measure, m)]
    return sum(values) / len(values) if values else float("nan")


def dimension_scores(scores: dict[str, dict[str, Value]], tasks: dict[str, TaskInfo],
                     vanilla: dict[str, dict[str, Value]] | None = None) -> dict[str, float]:
    """dimension -> score of its primary task. Where tasks join a dimension (``joins``), its
    score is instead the mean over its primary task and those tasks of each one's score
    relative to the vanilla model's (``vanilla``: its scores; the vanilla model's is then 1)."""
    out = {t.dimension: task_score(scores[name], t.score) for name, t in tasks.items()
           if t.primary and name in scores}
    joining = {t.dimension for t in tasks.values() if t.joins}
    for dim in joining & set(out):
        ratios = []
        for name, t in tasks.items():
            if t.dimension == dim and (t.primary or t.joins):
                base = task_score(vanilla.get(name, {}), t.score) if vanilla else float("nan")
                score = task_score(scores.get(name, {}), t.score)
                ratios.append(score / base if base > 1e-9 else float("nan"))
        out[dim] = sum(ratios) / len(ratios)
    return out


def normalisation(dims: dict[str, dict[str, float]], tasks: dict[str, TaskInfo],
                  chance: dict[str, float]) -> dict[str, Normalisation]:
    """Per dimension: direction, the vanilla model's score and, when lower is better, the floor:
    the first gold reference that scores below the vanilla model, else ``chance``."""
    out = {}
    vanilla = dims.get("vanilla", {})
    for task in tasks.values():
        if not task.primary:
            continue
        dim = task.dimension
        v = vanilla.get(dim, float("nan"))
        if task.higher_is_better:
            out[dim] = Normalisation(True, v)
            continue
        floor, value = "chance", chance.get(dim)
        for role in GOLD_ROLES:
            o = dims.get(role, {}).get(dim)
            if o is not None and v - o > 1e-9:
                floor, value = role, o
                break
        out[dim] = Normalisation(False, v, floor, value)
    return out


def normalise(dims: dict[str, float], spec: dict[str, Normalisation]) -> dict[str, float]:
    return {dim: spec[dim].apply(x) for dim, x in dims.items() if dim in spec}


def harmonic_mean(values: list):
    """Of values in [0, 1]: 0 when one is 0, NaN when one is NaN. Floats, or numpy arrays of one
    shape (element-wise)."""
    if not len(values):
        return float("nan")
    stacked = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore"):
        out = len(values) / np.sum(1 / np.maximum(stacked, 0), axis=0)
    return float(out) if out.ndim == 0 else out


def overall(normalised: dict[str, float], order: list[str]) -> float:
    return harmonic_mean([normalised[d] for d in order if d in normalised])


# -- helpers and old files -------------------------------------------------------------------------
def _clip(x):
    clipped = np.clip(x, 0.0, 1.0)  # NaN stays NaN
    return float(clipped) if np.ndim(clipped) == 0 else clipped


def _float(x) -> float:
    return float("nan") if x is None else float(x)


def json_safe(obj):
    """NaN is not JSON: write null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


# Schema 1 had the four dimensions and four metrics built in.
_V1_MEASURES = ("mc_acc", "mc_loglik_acc", "cloze_acc", "rougeL")
_V1_SCORE = ["mc_loglik_acc", "cloze_acc", "rougeL"]
_V1_CHANCE = {"mc_loglik_acc": 0.25, "cloze_acc": 0.0, "rougeL": 0.0}
_V1_ORDER = {"visual_forgetting": 1, "textual_retention": 2, "retained_vqa": 3, "general_utility": 4}


def _upgrade_v1(data: dict) -> dict:
    """A schema-1 result in schema 2's form, normalised exactly as schema 1 did."""
    data = dict(data)
    tasks = {}
    for name, spec in data["tasks"].items():
        hib = spec["higher_is_better"]
        tasks[name] = {**spec, "measures": list(_V1_MEASURES), "directions": {m: hib for m in _V1_MEASURES},
                       "score": list(_V1_SCORE),
                       "order": _V1_ORDER.get(spec["dimension"], 0) if spec["primary"] else 0,
                       "label": "retained VQA" if spec["dimension"] == "retained_vqa" else ""}
    infos = {name: TaskInfo(**spec) for name, spec in tasks.items()}
    dims = {m: {d: _float(x) for d, x in per.items()} for m, per in data["dimensions"].items()}
    chance = {}
    for name, task in infos.items():
        scored = [m for m in _V1_SCORE if m in data["scores"][UNLEARNED].get(name, {})]
        if task.primary:
            chance[task.dimension] = sum(_V1_CHANCE[m] for m in scored) / len(scored) if scored else float("nan")
    data["tasks"] = tasks
    data["normalisation"] = {d: asdict(n) for d, n in normalisation(dims, infos, chance).items()}
    data["measures"] = {m: {"version": "1", "origin": "built in (schema 1)", "description": ""} for m in _V1_MEASURES}
    return data
