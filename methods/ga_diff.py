"""GA_Diff (gradient difference): ascent on the forget set, descent on the retain set.

loss = -NLL(forget) + retain_weight * NLL(retain)
"""

from dataclasses import dataclass

from mmu_bench.losses import nll
from mmu_bench.method import MethodConfig, UnlearningMethod


@dataclass
class GADiffConfig(MethodConfig):
    retain_weight: float = 1.0


class GADiff(UnlearningMethod):
    name = "ga_diff"
    Config = GADiffConfig
    uses_retain = True

    def loss(self, ctx, batch):
        return -nll(ctx.model, batch.forget) + self.config.retain_weight * nll(ctx.model, batch.retain)
