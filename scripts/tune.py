"""The tuning budget every method gets on MMU-Synth, and the rule that picks its defaults.

Budget: a grid of learning rates x steps (4 runs per method), every other hyperparameter at
its default. Validation: a *different* MMU-Synth (``data_seed=1``: other people, another
forget split), run seed 0, forget 10 %, every task scored on a seeded sample of ``EVAL_LIMIT`` items
per format (a fixed subsample, to fit the budget of a 2-core machine): never the data the
comparison reports. Rule (fixed before any run): the highest overall score; ties go to fewer
steps, then the lower lr.

    python scripts/tune.py [--output-dir runs/tuning] [--methods ga,npo,...]

Resumes (finished grid points are skipped) and prints, per method, every grid point's
overall and dimension scores and the chosen values, which belong in ``hparams/mmu-synth.yaml``
under the method's name (data, not the method's source: README, "Hyperparameters").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmu_bench import results
from mmu_bench.config import RunConfig
from mmu_bench.sweep import grid, sweep

METHODS = "ga,ga_diff,kl_min,npo,simnpo,idk,mmunlearner,mmunlearner_random"
LRS = ("5e-5", "2e-4")
STEPS = ("15", "40")
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
    for lr in LRS:
        for steps in STEPS:
            for method in methods:
                name, extra = spec(method)
                base = RunConfig(method=name, benchmark_args=dict(VALIDATION), eval_limit=EVAL_LIMIT,
                                 output_dir=args.output_dir)
                configs += grid(base, [name], [0], [10], {"lr": lr, "steps": steps, **extra})
    failed = [o for o in sweep(configs) if o.status == "failed"]
    for outcome in failed:
        print(f"FAILED {outcome.method}: {outcome.error}")
    report(Path(args.output_dir), methods)


def report(folder: Path, methods: list[str]) -> None:
    rows: dict[str, list[dict]] = {m: [] for m in methods}
    for path in sorted(folder.rglob("results.json")):
        result = results.read(path)
        cfg = result.method["config"]
        if result.benchmark["info"]["config"]["seed"] != VALIDATION["data_seed"]:
            continue  # not a validation run
        label = "mmunlearner_random" if cfg.get("mask") == "random" else result.method["name"]
        if label in rows:
            rows[label].append({"lr": cfg["lr"], "steps": cfg["steps"], "overall": result.overall,
                                **result.normalised})
    for method, points in rows.items():
        points.sort(key=lambda p: (-p["overall"], p["steps"], p["lr"]))
        print(f"\n{method}")
        for p in points:
            dims = " ".join(f"{k[:12]}={v:.3f}" for k, v in p.items() if k not in ("lr", "steps", "overall"))
            print(f"  lr={p['lr']:<8g} steps={p['steps']:<3} overall={p['overall']:.3f}  {dims}")
        if points:
            print(f"  chosen: lr={points[0]['lr']:g} steps={points[0]['steps']}  (hparams/mmu-synth.yaml)")


if __name__ == "__main__":
    main()
