"""GA: gradient ascent on the forget set (loss = -NLL)."""

from dataclasses import dataclass

from mmu_bench.losses import nll
from mmu_bench.method import MethodConfig, UnlearningMethod


@dataclass
class GAConfig(MethodConfig):
    pass


class GA(UnlearningMethod):
    name = "ga"
    Config = GAConfig
    benchmark_defaults = {"mmu-synth": {"lr": 1e-4, "steps": 25, "batch_size": 32, "schedule": "constant"}}

    def loss(self, ctx, batch):
        return -nll(ctx.model, batch.forget)
