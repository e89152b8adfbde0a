"""Choose MMU-Synth's relearning budget (README, "Attacks"): the gold reference (the visual
oracle, which never saw the forget people's images) should *not* learn the leaked people from
the attack's data, or relearning measures ordinary learning rather than residual knowledge.

Prints, per budget (lr x steps, batch 4), the leaked and other halves' recovery of the gold
reference and of the unlearned models in the given run folders (their model/), over seeds.

    MMU_BENCH_HOME=... python bench/relearn_budget.py [RUN_DIR ...] [--seeds 0,1,2] [--lrs 2e-5,5e-5]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from mmu_bench.attacks.relearn import Relearn, RelearnConfig
from mmu_bench.harness import attacks as attacking
from mmu_bench.harness.run import load_unlearned, open_session
from mmu_bench.runs import results
from mmu_bench.spec.config import RunConfig

LRS = "2e-5,3e-5,5e-5,1e-4,2e-4"  # each for one epoch (batch 4)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="*")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--lrs", default=LRS)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    budgets = [(float(lr), 0) for lr in args.lrs.split(",")]
    table: dict[tuple, list[tuple[float, float]]] = {}
    for seed in seeds:
        session = open_session(RunConfig(seed=seed), progress=False)
        role = attacking.gold_role(session.refs)
        models = {}
        for run in args.runs:
            folder = Path(run)
            result = results.read(folder / "results.json")
            if result.seed != seed:
                continue
            loaded = load_unlearned(folder, result, session)
            mask = result.method["config"].get("mask")  # MMUnlearner's saliency and random-mask runs apart
            name = result.method["name"] + (f" ({mask})" if mask else "")
            models[name] = attacking.targets(session, loaded.model, loaded.processor, [], seed, False)[0]
        _, gold = attacking.targets(session, None, None, [], seed, False)
        models[role] = gold.target()
        for lr, steps in budgets:
            attack = Relearn(RelearnConfig(lr=lr, steps=steps))
            for who, target in models.items():
                out = attack.run(target)
                table.setdefault((lr, steps, who), []).append((out["relearn_recovery_leaked"], out["relearn_recovery_other"]))
    print(f"{'lr':>8s} {'steps':>5s} {'model':24s} {'leaked':>14s} {'other':>14s}   (recovery, mean ± std over seeds)")
    for (lr, steps, who), values in sorted(table.items()):
        cells = []
        for i in (0, 1):
            xs = [v[i] for v in values]
            cells.append(f"{statistics.fmean(xs):6.3f} ± {statistics.pstdev(xs):5.3f}")
        print(f"{lr:8.0e} {steps or 'epoch':>5} {who:24s} {cells[0]:>14s} {cells[1]:>14s}")


if __name__ == "__main__":
    main()
