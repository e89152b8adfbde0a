"""Statistics for leaderboards: bootstrap confidence intervals over seeds and people, and a
paired test of two methods over the same seeds.

The bootstrap resamples at two levels, as the data were produced: the runs (seeds) with
replacement, then, within each drawn run, the clusters of every task (a cluster is a person, or
an item that has none; ``cluster_of``) with replacement. Tasks over the
same people (visual forgetting and textual retention: the forget people) share one draw, so
what a statistic pairs stays paired. The reference models' scores that normalise a dimension
are held fixed: they are the scale, not a sampled quantity. The interval is the percentile
interval of the statistic's mean over the drawn runs.
"""

from __future__ import annotations

import math

import numpy as np

Clusters = dict  # task -> cluster -> measure -> [sum, count]

RESAMPLES = 2000
LEVEL = 0.95


def draw_weights(ids: dict[str, tuple], n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` resamples of each task's clusters (``ids``: task -> its cluster ids), as how many
    times each is drawn, [n, clusters]. Tasks with the same clusters share the draws."""
    drawn: dict[tuple, np.ndarray] = {}
    out = {}
    for task in sorted(ids):
        key = ids[task]
        if key not in drawn:
            k = len(key)
            drawn[key] = rng.multinomial(k, [1 / k] * k, size=n) if k else np.zeros((n, 0))
        out[task] = drawn[key]
    return out


def task_scores(snapshots: list[Clusters], score: dict[str, list[str]], n: int = 0,
                rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """task -> its score at each snapshot (a trajectory point, or the final evaluation) under
    ``n`` resamples of its clusters, [n, snapshots]; ``n = 0``: every cluster once, [1,
    snapshots]. A task's score is the mean over its score measures (``score``: task -> names) of
    each measure's mean over the drawn clusters' items: ``results.task_score``, recomputed."""
    tasks = sorted({t for snap in snapshots for t in snap})
    ids = {t: tuple(sorted({c for snap in snapshots for c in snap.get(t, {})})) for t in tasks}
    weights = draw_weights(ids, n, rng) if n else {t: np.ones((1, len(ids[t]))) for t in tasks}
    out = {}
    for task in tasks:
        measures = score.get(task, [])
        sums = np.zeros((len(snapshots), len(ids[task]), len(measures)))
        counts = np.zeros_like(sums)
        for p, snap in enumerate(snapshots):
            for c, cid in enumerate(ids[task]):
                for m, measure in enumerate(measures):
                    sums[p, c, m], counts[p, c, m] = snap.get(task, {}).get(cid, {}).get(measure, (0.0, 0))
        total = np.einsum("nc,pcm->npm", weights[task], sums)
        count = np.einsum("nc,pcm->npm", weights[task], counts)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(count > 0, total / count, np.nan)
        present = (~np.isnan(means)).sum(-1)
        with np.errstate(invalid="ignore"):
            out[task] = np.where(present > 0, np.nansum(means, axis=-1) / np.maximum(present, 1), np.nan)
    return out


def interval(banks: list[np.ndarray], resamples: int = RESAMPLES, seed: int = 0,
             level: float = LEVEL) -> tuple[float, float]:
    """The percentile bootstrap interval of a statistic's mean over runs (seeds). ``banks[k]``:
    run k's statistic under ``resamples`` x len(banks) independent draws of its clusters,
    shaped [resamples, len(banks)] (NaN: no value, e.g. a level not reached). Each resample
    draws the runs with replacement, the r-th drawn run under its draw (b, r), and averages the
    values it has. A resample with none is left out; (nan, nan) with no runs, or when fewer than
    half the resamples have a value."""
    if not banks:
        return float("nan"), float("nan")
    k = len(banks)
    stacked = np.stack(banks)  # [runs, resamples, k]
    which = np.random.default_rng(seed).integers(0, k, size=(resamples, k))
    picked = stacked[which, np.arange(resamples)[:, None], np.arange(k)[None, :]]
    kept = picked[~np.isnan(picked).all(axis=1)]
    if len(kept) < resamples / 2:
        return float("nan"), float("nan")
    means = np.nanmean(kept, axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def paired_test(a: dict[int, float], b: dict[int, float]) -> tuple[float, int]:
    """Two-sided paired t-test of ``a`` against ``b`` (seed -> value) over the seeds where both
    have a value: (p-value, number of pairs). NaN with fewer than two pairs; 1 when every pair
    is equal, 0 when every difference is the same non-zero number. A t-test, not a sign or
    signed-rank test: with 5 seeds those cannot go below p = 0.0625."""
    seeds = sorted(s for s in set(a) & set(b) if _finite(a[s]) and _finite(b[s]))
    if len(seeds) < 2:
        return float("nan"), len(seeds)
    diffs = [a[s] - b[s] for s in seeds]
    if max(diffs) - min(diffs) < 1e-12:
        return (1.0 if abs(diffs[0]) < 1e-12 else 0.0), len(seeds)
    from scipy import stats

    return float(stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue), len(seeds)


def _finite(v) -> bool:
    return v is not None and not math.isnan(v)


def cluster_of(record: dict) -> str:
    """What a bootstrap resamples: the record's entity (a person); an item without one (general
    utility) is its own cluster."""
    return record.get("entity_id") or f"item:{record['item_id']}"


def cluster_sums(records: list[dict], score: dict[str, list[str]]) -> dict:
    """task -> cluster -> measure -> [sum, count] of the per-item values of each task's score
    measures (``score``: task -> its score measures); what a bootstrap over people needs."""
    out: dict = {}
    for record in records:
        for measure in score.get(record["task"], ()):
            value = record.get(measure)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            cell = out.setdefault(record["task"], {}).setdefault(cluster_of(record), {}).setdefault(measure, [0.0, 0])
            cell[0] += float(value)
            cell[1] += 1
    return out
