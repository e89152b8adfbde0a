"""``trajectory.jsonl``, and what a trajectory says: each retention dimension at a matched amount
of forgetting and the trade-off areas.

A run scores the model at evenly spaced points of unlearning (``mmu_bench.harness.trajectory``);
each point is one line of ``trajectory.jsonl`` (its step, dimension scores, normalised scores and
per-person sums). From the points' normalised scores: where forgetting first reaches each of
``LEVELS`` (linear between points, never extrapolated), what each retention dimension is there,
and the area under retention against forgetting. The run's summary goes to results.json
(``trade_off``); the leaderboard resamples people for its intervals (``resampled``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from mmu_bench.runs import results, stats

TRAJECTORY_FILE = "trajectory.jsonl"


LEVELS = (0.5, 0.8, 0.95)  # normalised forgetting at which retention is compared


def roles(infos: dict[str, results.TaskInfo]) -> tuple[str | None, list[str]]:
    """(the forgetting dimension, the retention dimensions): the first primary task where lower
    is better, and every primary task where higher is."""
    primary = sorted((t for t in infos.values() if t.primary), key=lambda t: (t.order, t.dimension))
    forgetting = next((t.dimension for t in primary if not t.higher_is_better), None)
    return forgetting, [t.dimension for t in primary if t.higher_is_better]


# -- matched forgetting -------------------------------------------------------------------------
def at_levels(xs, ys, levels) -> np.ndarray:
    """``y`` where ``x`` first reaches each level along the trajectory, linear between that
    point and the one before it; NaN where it never does (never extrapolated). ``xs``, ``ys``:
    [..., points] in step order (a point without ``x`` never reaches a level); returns [...,
    levels]."""
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    lv = np.asarray(levels, dtype=float)
    shape = x.shape[:-1] + (len(lv), x.shape[-1])
    xb, yb = np.broadcast_to(x[..., None, :], shape), np.broadcast_to(y[..., None, :], shape)
    hit = np.nan_to_num(xb, nan=-np.inf) >= lv[:, None]
    first = hit.argmax(-1)[..., None]
    before = np.maximum(first - 1, 0)
    x1, y1 = np.take_along_axis(xb, first, -1)[..., 0], np.take_along_axis(yb, first, -1)[..., 0]
    x0, y0 = np.take_along_axis(xb, before, -1)[..., 0], np.take_along_axis(yb, before, -1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        between = y0 + (lv - x0) / (x1 - x0) * (y1 - y0)
    value = np.where(first[..., 0] == 0, y1, between)
    return np.where(hit.any(-1), value, np.nan)


def area(xs, ys) -> float:
    """The area under retention against forgetting: the integral over levels f in [0, 1] of
    the retention where forgetting first reaches f (``at_levels``), counted 0 where the run
    never reaches f. Exact: levels up to the first point's forgetting take its retention; each
    later segment that raises the highest forgetting so far adds its new levels' trapezoid.
    NaN when a point has no forgetting score."""
    total, top, before = 0.0, 0.0, None
    for x, y in zip(np.asarray(xs, dtype=float).tolist(), np.asarray(ys, dtype=float).tolist()):
        if math.isnan(x):
            return float("nan")
        if before is None:
            total, top = x * y, x
        elif x > top:
            x0, y0 = before
            at_top = y0 + (top - x0) / (x - x0) * (y - y0)
            total += (x - top) * (at_top + y) / 2
            top = x
        before = (x, y)
    return total


def curves(normalised: dict[str, np.ndarray], forgetting: str, retention: list[str]):
    """(x, {curve: y}): the normalised forgetting and each retention dimension, and their
    harmonic mean (``harmonic``), arrays [..., points]."""
    ys = {dim: normalised[dim] for dim in retention}
    ys["harmonic"] = results.harmonic_mean([normalised[d] for d in retention])
    return normalised[forgetting], ys


def trade_off(normalised: list[dict[str, float]], forgetting: str | None, retention: list[str]) -> dict:
    """From the points' normalised dimension scores (in step order): each retention dimension
    (and their harmonic mean) at each of ``LEVELS`` (None: not reached), the highest forgetting
    reached, and the area under each curve."""
    if forgetting is None or not normalised:
        return {"matched": {}, "max_forgetting": None, "auc": {}}
    dims = {d: np.array([n.get(d, np.nan) for n in normalised], dtype=float) for d in [forgetting, *retention]}
    x, ys = curves(dims, forgetting, retention)
    matched = {dim: at_levels(x, y, LEVELS) for dim, y in ys.items()}
    return {
        "matched": {f"{level:g}": {dim: _number(v[i]) for dim, v in matched.items()} for i, level in enumerate(LEVELS)},
        "max_forgetting": _number(np.nanmax(x)) if not np.isnan(x).all() else None,
        "auc": {dim: _number(area(x, y)) for dim, y in ys.items()},
    }


def _number(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


def resampled(lines: list[dict], summary: dict, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The run's matched-forgetting values under ``n`` resamples of its people
    (``mmu_bench.stats``): "<level>/<curve>" -> [n] (NaN: not reached in that resample)."""
    spec = {d: results.Normalisation(**v) for d, v in summary["normalisation"].items()}
    scores = stats.task_scores([line["clusters"] for line in lines], summary["score"], n, rng)
    normalised = {summary["tasks"][t]: spec[summary["tasks"][t]].apply(v) for t, v in scores.items()}
    x, ys = curves(normalised, summary["forgetting"], summary["retention"])
    out = {}
    for dim, y in ys.items():
        values = at_levels(x, y, LEVELS)
        for i, level in enumerate(LEVELS):
            out[f"{level:g}/{dim}"] = values[:, i]
    return out


def read(folder: Path) -> list[dict]:
    """A run folder's trajectory points (empty when it has none)."""
    path = Path(folder) / TRAJECTORY_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def to_jsonl(lines: list[dict]) -> str:
    """The points as ``trajectory.jsonl``: one JSON object per line, keys sorted, NaN as null."""
    return "".join(json.dumps(results.json_safe(line), sort_keys=True) + "\n" for line in lines)
