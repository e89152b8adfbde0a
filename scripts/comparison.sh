#!/usr/bin/env bash
# Regenerates leaderboards/mmu-synth__tiny-llava.{csv,md,png} and its trade-off plot: every
# built-in method, 5 seeds, forget 10 %, the default MMU-Synth,
#  1. each with its tuned mmu-synth defaults (scripts/tune.py), plus MMUnlearner's random-mask
#     ablation, each with the default trajectory and the attack suite (README, "Attacks");
#  2. the same methods run longer and harder, the same budget for each (lr 2e-4, 120 forget
#     steps, 16 trajectory points), so that they reach high forgetting where they can: the rows
#     that answer "at equal forgetting, which method keeps the most?" (docs/equal-forgetting.md).
#     MANU has no learning rate nor steps: its harder run is 16 rounds of pruning (iterations=16,
#     one trajectory point each) at its tuned percentage;
#  3. every method at its tuned setting as a continual stream of 5 requests (docs/continual.md).
# Resumes: finished runs are skipped.
set -euo pipefail
runs="${1:-runs/comparison}"
methods=ga,ga_diff,kl_min,npo,simnpo,idk,mmunlearner,undial,scrub,dpo,rmu,salun,task_vector,manu
seeds=0,1,2,3,4
mmu-bench sweep --methods "$methods" --seeds "$seeds" --forget-ratios 10 --attacks --output-dir "$runs" --quiet
mmu-bench sweep --methods mmunlearner --method-arg mask=random --seeds "$seeds" --forget-ratios 10 --attacks \
  --output-dir "$runs" --quiet
long=(--method-arg lr=2e-4 --method-arg steps=120 --trajectory 16 --seeds "$seeds" --forget-ratios 10
      --output-dir "$runs" --quiet)
mmu-bench sweep --methods "${methods%,manu}" "${long[@]}"
mmu-bench sweep --methods manu --method-arg iterations=16 --trajectory 16 --seeds "$seeds" --forget-ratios 10 \
  --output-dir "$runs" --quiet
mmu-bench sweep --methods mmunlearner --method-arg mask=random "${long[@]}"
# 3. continual: every method at its tuned setting, the forget set as 5 requests of 2 % (docs/continual.md);
#    each stream pairs with the one-shot run of step 1 of the same method, configuration and seed
mmu-bench sweep --methods "$methods" --seeds "$seeds" --forget-ratios 10 --requests 5 --output-dir "$runs" --quiet
mmu-bench leaderboard --runs "$runs" --output leaderboards
