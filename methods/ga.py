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

    def loss(self, ctx, batch):
        return -nll(ctx.model, batch.forget)
