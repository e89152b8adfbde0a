"""Does forget quality discriminate? Run by hand (trains reference models for extra seeds):

    python bench/forget_quality_check.py                 # recipe seeds 0, 1, 2; default MMU-Synth
    python bench/forget_quality_check.py --seeds 0 1

For each recipe seed s of the tiny model (the seed of its base, vanilla and visual oracle
training), the truth ratios of the vanilla and the visual-oracle models on the visual-forgetting
items, and the KS-test p-values (forget quality) the harness reports:

    vanilla_s vs visual_oracle_s    a model that learned the forget images against the gold one:
                                    should be far below 0.05
    visual_oracle_s vs visual_oracle_t (s != t)   the gold model against itself, another seed:
                                    should be high
    oracle_s vs visual_oracle_s     (--oracle) the old task's gold against the new one's

Also the Min-K%++ AUC (forget vs holdout people) of each model. Uses MMU_BENCH_HOME (trained
models are cached there and reused).
"""

from __future__ import annotations

import argparse
import itertools

from scipy.stats import ks_2samp

from mmu_bench.data import synth
from mmu_bench.harness.evaluate import EvalSettings, evaluate
from mmu_bench.measures.information import record_truth_ratio
from mmu_bench.measures.mia import ATTACKS, auc
from mmu_bench.models.tiny import TinyLlavaProvider
from mmu_bench.spec.tasks import load_tasks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--forget-ratio", type=float, default=10)
    parser.add_argument("--oracle", action="store_true", help="also train and compare the oracle of every seed")
    args = parser.parse_args()
    bench = synth.load(forget_ratio=args.forget_ratio)
    tasks = load_tasks(["visual_forgetting", "visual_holdout"])
    roles = ("vanilla", "visual_oracle", "oracle") if args.oracle else ("vanilla", "visual_oracle")
    truth, aucs = {}, {}
    for seed in args.seeds:
        provider = TinyLlavaProvider(progress=True, seed=seed)
        for role in roles:
            loaded = provider.load(role, bench)  # trained and cached first if missing
            rows = evaluate(loaded.model, loaded.processor, bench.eval, tasks, EvalSettings(progress=False))
            forget = [r for r in rows if r["task"] == "visual_forgetting"]
            holdout = [r for r in rows if r["task"] == "visual_holdout"]
            truth[(role, seed)] = [record_truth_ratio(r) for r in forget if r["format"] == "multiple_choice"]
            score = ATTACKS["min_k_pp"]
            aucs[(role, seed)] = auc([score(r) for r in forget], [score(r) for r in holdout])

    def p(a, b):
        return ks_2samp(truth[a], truth[b]).pvalue

    n = len(next(iter(truth.values())))
    print(f"visual forgetting, {n} multiple-choice items per model; forget quality = KS p-value of truth ratios\n")
    print("| recipe seed | vanilla vs visual_oracle | Min-K%++ AUC vanilla | visual_oracle |"
          + (" oracle vs visual_oracle | Min-K%++ AUC oracle |" if args.oracle else ""))
    print("|---|---|---|---|" + ("---|---|" if args.oracle else ""))
    for s in args.seeds:
        extra = (f" {p(('oracle', s), ('visual_oracle', s)):.3f} | {aucs[('oracle', s)]:.3f} |" if args.oracle else "")
        print(f"| {s} | {p(('vanilla', s), ('visual_oracle', s)):.2e} | {aucs[('vanilla', s)]:.3f} | "
              f"{aucs[('visual_oracle', s)]:.3f} |" + extra)
    print("\n| seeds | visual_oracle vs visual_oracle | vanilla vs vanilla |")
    print("|---|---|---|")
    for s, t in itertools.combinations(args.seeds, 2):
        print(f"| {s} vs {t} | {p(('visual_oracle', s), ('visual_oracle', t)):.3f} | "
              f"{p(('vanilla', s), ('vanilla', t)):.3f} |")


if __name__ == "__main__":
    main()
