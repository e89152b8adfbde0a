#!/usr/bin/env bash
# Regenerates leaderboards/mmu-synth__tiny-llava.{csv,md,png}: every built-in method, 3 seeds,
# forget 10 %, the default MMU-Synth, each with its tuned mmu-synth defaults (scripts/tune.py),
# plus MMUnlearner's random-mask ablation, each with the attack suite (README, "Attacks").
# Resumes: finished runs are skipped.
set -euo pipefail
runs="${1:-runs/comparison}"
mmu-bench sweep --methods ga,ga_diff,kl_min,npo,simnpo,idk,mmunlearner --seeds 0,1,2 --forget-ratios 10 \
  --attacks --output-dir "$runs" --quiet
mmu-bench sweep --methods mmunlearner --method-arg mask=random --seeds 0,1,2 --forget-ratios 10 \
  --attacks --output-dir "$runs" --quiet
mmu-bench leaderboard --runs "$runs" --output leaderboards
