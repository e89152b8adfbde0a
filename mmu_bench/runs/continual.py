"""``continual.jsonl``, and what a stream of deletion requests says.

A continual run (``mmu_bench.harness.continual``) scores the model before the first request
(the vanilla model, line 0) and after each request *j* on every item of each dimension's primary
task, and keeps per person the sums of the score measures (``stats.cluster_sums``), with those
of the gold reference of everyone forgotten so far (the visual oracle trained without their
images), where there is one. From those sums alone, for any set of people:

- the **matrix**: rows are the requests (0 = before any), columns the evaluation sets: the
  forgetting dimension on each request's people (``<dimension>:<i>``), each other dimension
  over the forget people on each request's people too (textual retention), and every other
  dimension over all its items;
- **after** each request: the dimensions over everyone forgotten so far (and the others over
  all), normalised against the vanilla model and that request's gold reference, and overall;
- **reversal** of request *i*: the largest rise of its forgetting score after it was
  unlearned (0 when it only fell; forgetting that came back);
- **erosion**: the least-squares slope over requests 0..K of each retention dimension, per
  request (textual retention over the whole forget set: everyone's text is to be kept);
- **early forgetting** after request *j* < K: the drop of the forgetting score on the people not
  yet requested, from the vanilla model's (forgetting before it was asked for).

Every figure is a float, or under resampled people (``weights``) a numpy array, one value per
resample: the leaderboard's intervals come from it (``mmu_bench.runs.stats``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmu_bench.runs import results
from mmu_bench.runs.stats import draw_weights
from mmu_bench.runs.trajectory import roles

CONTINUAL_FILE = "continual.jsonl"


def to_jsonl(lines: list[dict]) -> str:
    return "".join(json.dumps(results.json_safe(line), sort_keys=True) + "\n" for line in lines)


def read(folder: str | Path) -> list[dict]:
    """The lines of a run folder's continual.jsonl ([] when it has none); a damaged line is an
    error naming the file and line."""
    path = Path(folder) / CONTINUAL_FILE
    if not path.exists():
        return []
    out = []
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            out.append(json.loads(text))
        except json.JSONDecodeError as exc:
            raise results.ResultsError(f"{path}, line {n}: not JSON ({exc})") from exc
    return out


class Bank:
    """Per primary task, the per-person sums of its score measures at every snapshot (a line's
    model, or its gold reference), as arrays: [snapshots, people, measures]."""

    def __init__(self, snapshots: list[dict], score: dict[str, list[str]]):
        self.score = score
        self.ids: dict[str, list[str]] = {}
        self.sums: dict[str, np.ndarray] = {}
        self.counts: dict[str, np.ndarray] = {}
        for task, measures in score.items():
            ids = sorted({c for snap in snapshots if snap for c in snap.get(task, {})})
            sums = np.zeros((len(snapshots), len(ids), len(measures)))
            counts = np.zeros_like(sums)
            for p, snap in enumerate(snapshots):
                per = (snap or {}).get(task, {})
                for c, cid in enumerate(ids):
                    for m, measure in enumerate(measures):
                        sums[p, c, m], counts[p, c, m] = per.get(cid, {}).get(measure, (0.0, 0))
            self.ids[task], self.sums[task], self.counts[task] = ids, sums, counts

    def value(self, task: str, snapshot: int, people: set | None = None, weights: dict | None = None):
        """``task``'s score at ``snapshot`` over ``people`` (None: all its clusters): the mean
        over its score measures of each measure's mean over the (drawn) people's items. A float,
        or with ``weights`` (task -> [resamples, people] draw counts) an array per resample."""
        ids = self.ids.get(task, [])
        mask = np.array([people is None or cid in people for cid in ids], dtype=float)
        w = (weights[task] if weights is not None else np.ones((1, len(ids)))) * mask
        with np.errstate(invalid="ignore", divide="ignore"):
            total = w @ self.sums[task][snapshot]  # [n, measures]
            count = w @ self.counts[task][snapshot]
            means = np.where(count > 0, total / np.maximum(count, 1e-300), np.nan)
            present = (~np.isnan(means)).sum(-1)
            out = np.where(present > 0, np.nansum(means, axis=-1) / np.maximum(present, 1), np.nan)
        return out if weights is not None else float(out[0])


def primary(infos: dict[str, results.TaskInfo]) -> dict[str, results.TaskInfo]:
    return {name: info for name, info in infos.items() if info.primary}


def figures(lines: list[dict], infos: dict[str, results.TaskInfo], chance: dict[str, float],
            weights: dict | None = None) -> dict:
    """Everything the stream says (see the module docstring), from its lines: ``infos`` the
    run's tasks (results.json ``tasks``), ``chance`` the chance level per dimension (the
    forgetting floor where a request has no gold reference)."""
    tasks = primary(infos)
    score = {name: list(info.score) for name, info in tasks.items()}
    snapshots = [line.get("clusters") for line in lines] + [line.get("gold") for line in lines]
    bank = Bank(snapshots, score)
    gold_at = {j: len(lines) + j for j, line in enumerate(lines) if line.get("gold")}
    requests = [set(line["people"]) for line in lines[1:]]
    everyone = set().union(*requests) if requests else set()
    forgetting, retention = roles(tasks)
    task_of = {info.dimension: name for name, info in tasks.items()}
    per_person = [d for d in [forgetting, *retention]
                  if d is not None and everyone & set(bank.ids.get(task_of[d], []))]

    def at(dim: str, snapshot: int, people: set | None, w=weights):
        return bank.value(task_of[dim], snapshot, people, w)

    matrix: dict[str, list] = {}
    for dim in [forgetting, *retention]:
        if dim is None:
            continue
        if dim in per_person:
            for i, people in enumerate(requests, 1):
                matrix[f"{dim}:{i}"] = [at(dim, r, people) for r in range(len(lines))]
        else:
            matrix[dim] = [at(dim, r, None) for r in range(len(lines))]

    after = []
    forgotten: set = set()
    for j, people in enumerate(requests, 1):
        forgotten = forgotten | people
        sets = {dim: (forgotten if dim in per_person else None) for dim in task_of}
        dims = {dim: at(dim, j, sets[dim]) for dim in task_of}
        refs = {"vanilla": {dim: at(dim, 0, sets[dim], None) for dim in task_of}}
        if j in gold_at:
            refs[lines[j].get("gold_role") or "visual_oracle"] = {dim: at(dim, gold_at[j], sets[dim], None)
                                                                  for dim in task_of}
        spec = results.normalisation(refs, tasks, chance)
        normalised = results.normalise(dims, spec)
        order = results.dimension_order(tasks)
        after.append({"request": j, "dimensions": dims, "normalised": normalised,
                      "overall": results.harmonic_mean([normalised[d] for d in order if d in normalised]),
                      "gold": j in gold_at})

    reversal = []
    if forgetting in per_person:
        for i in range(1, len(requests)):
            series = matrix[f"{forgetting}:{i}"]
            rises = [series[r] - series[i] for r in range(i + 1, len(lines))]
            reversal.append(np.maximum(np.max(np.stack(rises), axis=0), 0) if weights is not None
                            else max(0.0, max(rises)))
    early = []
    if forgetting in per_person:
        for j in range(1, len(requests)):
            later = set().union(*requests[j:])
            early.append(at(forgetting, 0, later) - at(forgetting, j, later))
    erosion = {}
    for dim in retention:
        series = [at(dim, r, everyone if dim in per_person else None) for r in range(len(lines))]
        erosion[dim] = slope(series)
    return {"matrix": matrix, "after": after, "reversal": reversal, "early_forgetting": early, "erosion": erosion,
            "per_person": per_person, "forgetting": forgetting}


def slope(series: list):
    """Least-squares slope of ``series`` against 0, 1, ... (floats or arrays per resample)."""
    y = np.stack([np.asarray(v, dtype=float) for v in series])  # [rows, ...]
    x = np.arange(len(series), dtype=float)
    x = (x - x.mean()).reshape((-1,) + (1,) * (y.ndim - 1))
    with np.errstate(invalid="ignore"):
        out = (x * (y - y.mean(axis=0))).sum(axis=0) / (x**2).sum() if len(series) > 1 else y[0] * np.nan
    return float(out) if np.ndim(out) == 0 else out


def mean(values: list):
    """The mean of floats (NaN for none), or element-wise of arrays."""
    if not values:
        return float("nan")
    stacked = np.stack([np.asarray(v, dtype=float) for v in values])
    with np.errstate(invalid="ignore"):
        out = np.nanmean(stacked, axis=0) if not np.isnan(stacked).all() else stacked[0]
    return float(out) if np.ndim(out) == 0 else out


def summary(lines: list[dict], infos: dict[str, results.TaskInfo], chance: dict[str, float]) -> dict:
    """The figures results.json keeps (``continual``), as plain numbers."""
    found = figures(lines, infos, chance)
    return {
        "requests": [line["people"] for line in lines[1:]],
        "chance": chance,
        "matrix": found["matrix"],
        "after": found["after"],
        "overall_after": [a["overall"] for a in found["after"]],
        "reversal": {"per_request": found["reversal"], "mean": mean(found["reversal"])},
        "early_forgetting": {"per_request": found["early_forgetting"], "mean": mean(found["early_forgetting"])},
        "erosion": found["erosion"],
        "forgetting": found["forgetting"],
        "per_person": found["per_person"],
    }



# -- for reports: resampling, the erosion curves, the one-shot run under the same draws ----------
def _snapshots(lines: list[dict]) -> list:
    """The snapshots ``figures`` banks, in its order: each line's model, then each line's gold."""
    return [line.get("clusters") for line in lines] + [line.get("gold") for line in lines]


def cluster_ids(lines: list[dict], infos: dict[str, results.TaskInfo]) -> dict[str, tuple]:
    """Per primary task, the clusters (people, or items without one) ``figures`` resamples, in
    its order: what ``stats.draw_weights`` takes to make its ``weights``."""
    snapshots = _snapshots(lines)
    return {name: tuple(sorted({c for snap in snapshots if snap for c in snap.get(name, {})}))
            for name in primary(infos)}


def resampled(lines: list[dict], infos: dict[str, results.TaskInfo], chance: dict[str, float], n: int,
              rng: np.random.Generator) -> tuple[dict, dict]:
    """``figures`` under ``n`` resamples of the stream's people (``stats.draw_weights``: tasks
    over the same people share a draw), and the draws (task -> [n, clusters])."""
    weights = draw_weights(cluster_ids(lines, infos), n, rng)
    return figures(lines, infos, chance, weights), weights


def retention_series(lines: list[dict], infos: dict[str, results.TaskInfo]) -> dict[str, list[float]]:
    """Each retention dimension's score before any request and after each (0..K): the series
    whose least-squares slope is its ``erosion`` (a dimension scored per person over the whole
    forget set, the others over all their items)."""
    tasks = primary(infos)
    bank = Bank(_snapshots(lines), {name: list(info.score) for name, info in tasks.items()})
    requests = [set(line["people"]) for line in lines[1:]]
    everyone = set().union(*requests) if requests else set()
    _, retention = roles(tasks)
    task_of = {info.dimension: name for name, info in tasks.items()}
    out = {}
    for dim in retention:
        people = everyone if everyone & set(bank.ids.get(task_of[dim], [])) else None
        out[dim] = [bank.value(task_of[dim], r, people) for r in range(len(lines))]
    return out


def overall_under(result: results.RunResult, weights: dict | None = None):
    """An ordinary run's overall score from its per-person sums (``clusters``), under
    ``weights`` (task -> [resamples, clusters] over its clusters in sorted order; None: each
    once, a float): the one-shot side of a continual gap, drawn with the stream's people. None
    without the sums (runs written before they were kept)."""
    tasks = primary(result.tasks)
    if not result.clusters or any(name not in result.clusters for name in tasks):
        return None
    bank = Bank([result.clusters], {name: list(info.score) for name, info in tasks.items()})
    normalised = {info.dimension: result.normalisation[info.dimension].apply(bank.value(name, 0, None, weights))
                  for name, info in tasks.items()}
    return results.harmonic_mean([normalised[d] for d in result.dimension_order()])
