"""GA: gradient ascent on the forget set (loss = -NLL)."""

from dataclasses import dataclass

from mmu_bench.losses import nll
from mmu_bench.method import PUBLISHED_SETTINGS, MethodConfig, UnlearningMethod


@dataclass
class GAConfig(MethodConfig):
    pass


class GA(UnlearningMethod):
    name = "ga"
    Config = GAConfig
    # Tuned by scripts/tune.py (README, "Comparison on MMU-Synth").
    benchmark_defaults = {**PUBLISHED_SETTINGS, "mmu-synth": {"lr": 5e-5, "steps": 40, "batch_size": 32, "schedule": "constant"}}

    def loss(self, ctx, batch):
        return -nll(ctx.model, batch.forget)
