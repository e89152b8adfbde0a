"""The tuning budget every method gets on MMU-Synth, and the rule that picks its defaults.

Budget: a grid of learning rates x steps (4 runs per method), every other hyperparameter at
its default. MANU trains nothing (no learning rate, no steps): its 4 points are the percentage
of neurons it prunes, {2, 5, 10, 20}. Validation: a *different* MMU-Synth (``data_seed=1``:
other people, another forget split), run seed 0, forget 10 %, every task scored on a seeded sample of ``EVAL_LIMIT`` items
per format (a fixed subsample, to fit the budget of a 2-core machine): never the data the
comparison reports. Rule (fixed before any run): the highest overall score; ties go to fewer
steps, then the lower lr (for MANU, the smaller percentage).

    python scripts/tune.py [--output-dir runs/tuning] [--methods ga,npo,...]

Resumes (finished grid points are skipped) and prints, per method, every grid point's
overall and dimension scores and the chosen values, which belong in ``hparams/mmu-synth.yaml``
under the method's name (data, not the method's source: README, "Hyperparameters").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmu_bench.harness.sweep import grid, sweep
from mmu_bench.runs import results
from mmu_bench.spec.config import RunConfig

METHODS = ("ga,ga_diff,kl_min,npo,simnpo,idk,mmunlearner,mmunlearner_random,"
           "undial,scrub,dpo,rmu,salun,task_vector,manu")
LRS = ("5e-5", "2e-4")
STEPS = ("15", "40")
LR_STEPS = [{"lr": lr, "steps": steps} for lr in LRS for steps in STEPS]
# A method whose knobs are not lr x steps: its own 4 points. Ties go to the smaller values, the
# knobs compared in the order given (lr x steps: fewer steps, then the lower lr).
GRIDS = {"manu": [{"prune_percent": p} for p in ("2", "5", "10", "20")]}
VALIDATION = {"data_seed": 1}
EVAL_LIMIT = 60


def spec(method: str) -> tuple[str, dict]:
    """``mmunlearner_random`` is MMUnlearner's random-mask ablation, tuned on its own."""
    return ("mmunlearner", {"mask": "random"}) if method == "mmunlearner_random" else (method, {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="runs/tuning")
    parser.add_argument("--methods", default=METHODS)
    args = parser.parse_args()
    methods = args.methods.split(",")
    configs = []
    for method in methods:
        name, extra = spec(method)
        base = RunConfig(method=name, benchmark_args=dict(VALIDATION), eval_limit=EVAL_LIMIT,
                         output_dir=args.output_dir)
        for values in GRIDS.get(method, LR_STEPS):
            configs += grid(base, [name], [0], [10], {**values, **extra})
    failed = [o for o in sweep(configs) if o.status == "failed"]
    for outcome in failed:
        print(f"FAILED {outcome.method}: {outcome.error}")
    report(Path(args.output_dir), methods)


def knobs(method: str) -> list[str]:
    """The grid's knobs, in tie-break order."""
    return list(GRIDS[method][0]) if method in GRIDS else ["steps", "lr"]


def report(folder: Path, methods: list[str]) -> None:
    rows: dict[str, list[dict]] = {m: [] for m in methods}
    for path in sorted(folder.rglob("results.json")):
        result = results.read(path)
        cfg = result.method["config"]
        if result.benchmark["info"]["config"]["seed"] != VALIDATION["data_seed"]:
            continue  # not a validation run
        label = "mmunlearner_random" if cfg.get("mask") == "random" else result.method["name"]
        if label in rows:
            rows[label].append({"knobs": {k: cfg[k] for k in knobs(label)}, "overall": result.overall,
                                "dims": result.normalised})
    for method, points in rows.items():
        points.sort(key=lambda p: (-p["overall"], *p["knobs"].values()))
        print(f"\n{method}")
        for p in points:
            dims = " ".join(f"{k[:12]}={v:.3f}" for k, v in p["dims"].items())
            print(f"  {_knobs(p)}  overall={p['overall']:.3f}  {dims}")
        if points:
            print(f"  chosen: {_knobs(points[0])}  (hparams/mmu-synth.yaml)")


def _knobs(point: dict) -> str:
    return " ".join(f"{k}={v:<8g}" for k, v in point["knobs"].items())


if __name__ == "__main__":
    main()
