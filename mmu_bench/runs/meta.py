"""The meta-evaluation's file (``meta-eval__<benchmark>__<model>.json``) and its statistics: how
faithful and how robust each measure is (OpenUnlearning, arXiv 2506.12618, Section 5). No torch.

Every measure is first read on one scale, the **knowledge reading**: larger = the measure says
the knowledge is there. On a forgetting task (visual forgetting) that is the measure's *worse*
direction, on a retention task (textual retention) its *better* one; a measure whose best value
lies in between (PrivLeak: 0) reads its distance from that value on a forgetting task and minus
it on a retention task.

- **Faithfulness**: the AUC of the knowledge reading at telling the pool that has the knowledge
  from the pool that never had it: P(reading of a knowing model > reading of a never-knew
  model), ties counted half, over every pair of models (1: every knowing model reads higher;
  0.5: no better than a coin; under 0.5: the measure points the wrong way). Its 95 % interval is
  the percentile interval over bootstrap resamples of the models of each pool.
- **Robustness** to an attack (OpenUnlearning's relearning test, R = min(Δ_retain / Δ_unlearned,
  1)): the attack is applied to the never-knew models and to unlearned models, and each
  measure's reading is taken again. A measure is robust when the attack moves its reading of an
  unlearned model no further towards "known" than it moves a never-knew model's: knowledge the
  measure called gone that an attack brings back was hidden, and the measure was fooled.
  Per unlearned model u, with Δ = reading after - reading before, in units of the gap between
  the pools (mean reading of the knowing pool - of the never-knew pool, before any attack),

      R_u = 1                                    if Δ_u <= max(Δ_never, 0) + tolerance
      R_u = (max(Δ_never, 0) + tolerance) / Δ_u  otherwise

  with Δ_never the mean over the never-knew models and a tolerance of 0.05 of the gap (moves
  smaller than that are noise on a few dozen items). R is the mean over the unlearned models;
  the same rule for quantisation, whose OpenUnlearning form min(m_after / m_before, 1) divides
  levels, which signed measures (PrivLeak, a p-value's reading) do not have. Robustness is the
  harmonic mean over the attacks, and a measure's **overall** the harmonic mean of its
  faithfulness and robustness, as OpenUnlearning ranks them.
- **Where the unlearned models sit** (``unlearned_at``): their mean reading before any attack,
  0 at the never-knew pool's mean and 1 at the knowing pool's. A measure that puts them near 1
  never called them forgotten, so no attack can fool it: its robustness says little.
"""

from __future__ import annotations

import math
import statistics

VERSION = 1
VISUAL, TEXT = "visual_forgetting", "textual_retention"
SIDES = (VISUAL, TEXT)  # dimensions; the file names each one's primary task
# What `mmu-bench meta-eval` unlearns and attacks unless told otherwise.
DEFAULT_METHODS = ("ga", "ga_diff", "kl_min", "npo", "mmunlearner")
DEFAULT_ATTACKS = ("relearn", "quantise")
TOLERANCE = 0.05  # of the gap between the pools: a move under it is noise
LEVEL = 0.95


def orientation(task, measure) -> dict:
    """How ``measure`` reads knowledge on ``task`` (what ``reading`` needs), with its names."""
    return {"higher_is_better": task.direction(measure), "best": getattr(measure, "best", None),
            "task_higher_is_better": task.higher_is_better, "label": measure.label or measure.name,
            "table": measure.table, "description": measure.description}


def reading(value: float | None, how: dict) -> float | None:
    """The knowledge reading of a measure's value (larger = the knowledge is there)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if how["higher_is_better"] is None:
        good = -abs(value - (how["best"] or 0.0))
    else:
        good = value if how["higher_is_better"] else -value
    return good if how["task_higher_is_better"] else -good


def document(**fields) -> dict:
    return {"meta_eval_version": VERSION, **fields}


def auc(knows: list[float], never: list[float]) -> float:
    """P(a knowing model reads higher than a never-knew one), ties half."""
    if not knows or not never:
        return float("nan")
    wins = sum((k > n) + 0.5 * (k == n) for k in knows for n in never)
    return wins / (len(knows) * len(never))


def auc_interval(knows: list[float], never: list[float], resamples: int, seed: int = 0) -> tuple[float, float]:
    """The percentile interval of the AUC over bootstrap resamples of each pool's models."""
    if not knows or not never:
        return float("nan"), float("nan")
    import numpy as np  # here: the command line reads this module's defaults and must start fast

    rng = np.random.default_rng(seed)
    k, n = np.asarray(knows, float), np.asarray(never, float)
    ki = rng.integers(0, len(k), size=(resamples, len(k)))
    ni = rng.integers(0, len(n), size=(resamples, len(n)))
    a, b = k[ki][:, :, None], n[ni][:, None, :]
    drawn = ((a > b) + 0.5 * (a == b)).mean(axis=(1, 2))
    lo, hi = np.quantile(drawn, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(lo), float(hi)


def robustness_of(moved_unlearned: list[float], moved_never: list[float], tolerance: float = TOLERANCE) -> float:
    """Mean over unlearned models of min(1, (max(Δ_never, 0) + tolerance) / Δ_u) (1 when the
    attack moved the unlearned model no further than that); moves in units of the pools' gap."""
    if not moved_unlearned or not moved_never:
        return float("nan")
    allowed = max(statistics.fmean(moved_never), 0.0) + tolerance
    return statistics.fmean(1.0 if d <= allowed else allowed / d for d in moved_unlearned)


def harmonic(values: list[float]) -> float:
    if not values or any(v is None or math.isnan(v) for v in values):
        return float("nan")
    if any(v <= 0 for v in values):
        return 0.0
    return len(values) / sum(1 / v for v in values)


def _readings(doc: dict, task: str, name: str, ids: list[str], attack: str | None = None) -> dict[str, float]:
    how = doc["measures"][task][name]
    out = {}
    for model_id in ids:
        entry = doc["models"].get(model_id, {})
        values = entry.get("attacked", {}).get(attack, {}) if attack else entry.get("values", {})
        r = reading(values.get(task, {}).get(name), how)
        if r is not None:
            out[model_id] = r
    return out


def summarise(doc: dict) -> list[dict]:
    """One row per side and measure: faithfulness with its interval and the pools' sizes; per
    attack the mean moves (in units of the pools' gap) and R; robustness; overall."""
    resamples = int(doc.get("meta_config", {}).get("resamples", 2000))
    unlearned = [i for i, m in doc["models"].items() if m.get("kind") == "unlearned"]
    rows = []
    for dim in SIDES:
        task = doc["sides"][dim]
        pools = doc["pools"][task]
        for k, name in enumerate(sorted(doc["measures"][task])):  # sorted: the file keeps keys sorted
            how = doc["measures"][task][name]
            knows, never = (_readings(doc, task, name, pools[g]) for g in ("knows", "never"))
            row = {"side": dim, "task": task, "measure": name, "label": how["label"], "table": how["table"],
                   "n_knows": len(knows), "n_never": len(never),
                   "faithfulness": auc(list(knows.values()), list(never.values()))}
            row["faithfulness_low"], row["faithfulness_high"] = auc_interval(
                list(knows.values()), list(never.values()), resamples, seed=k)
            gap = (statistics.fmean(knows.values()) - statistics.fmean(never.values())) if knows and never else 0.0
            row["gap"] = gap
            # Where the measure puts the unlearned models before any attack: 0 = with the never-knew
            # pool, 1 = with the knowing pool. A measure that never calls them forgotten (near 1)
            # cannot be fooled by an attack either: read robustness next to it.
            placed = _readings(doc, task, name, unlearned)
            row["unlearned_at"] = (statistics.fmean((v - statistics.fmean(never.values())) / gap for v in placed.values())
                                   if placed and gap else math.nan)
            scores = []
            for attack in doc.get("attacks", {}) if dim == VISUAL else ():
                moved = {}
                for group, ids in (("never", pools["never"]), ("unlearned", unlearned)):
                    before, after = _readings(doc, task, name, ids), _readings(doc, task, name, ids, attack)
                    moved[group] = [(after[i] - before[i]) / abs(gap) for i in before if i in after] if gap else []
                r = robustness_of(moved["unlearned"], moved["never"])
                row[f"{attack}_moved_unlearned"] = statistics.fmean(moved["unlearned"]) if moved["unlearned"] else math.nan
                row[f"{attack}_moved_never"] = statistics.fmean(moved["never"]) if moved["never"] else math.nan
                row[f"{attack}_robustness"] = r
                scores.append(r)
            row["robustness"] = harmonic(scores) if scores else math.nan
            row["overall"] = harmonic([row["faithfulness"], row["robustness"]]) if scores else math.nan
            rows.append(row)
    return rows
