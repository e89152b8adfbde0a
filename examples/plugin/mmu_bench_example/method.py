"""Anchored gradient ascent: push the forget answers down, hold the retain answers up, and
stop pushing once a forget batch is already unlikely (a hinge on its NLL)."""

from dataclasses import dataclass

import torch

from mmu_bench.api import MethodConfig, UnlearningMethod, nll


@dataclass
class AnchoredGAConfig(MethodConfig):
    retain_weight: float = 1.0  # weight of the retain-set NLL
    forget_ceiling: float = 6.0  # no more ascent once the forget NLL exceeds this


class AnchoredGA(UnlearningMethod):
    name = "anchored-ga"
    version = "0.1.0"
    Config = AnchoredGAConfig
    uses_retain = True

    def loss(self, ctx, batch):
        forget = nll(ctx.model, batch.forget)
        ascent = -torch.clamp(forget, max=self.config.forget_ceiling)
        return ascent + self.config.retain_weight * nll(ctx.model, batch.retain)
