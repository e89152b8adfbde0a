"""SimNPO (Fan et al., 2024): NPO without a reference model, on length-normalised likelihoods.

loss = -(2 / beta) * mean_i logsigmoid(beta * NLL_theta(y_i | x_i) - gamma), with NLL the mean
token loss of each answer (the length normalisation), plus an optional retain NLL term.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmu_bench.losses import nll, sequence_nll
from mmu_bench.method import MethodConfig, UnlearningMethod


@dataclass
class SimNPOConfig(MethodConfig):
    beta: float = 2.5
    gamma: float = 0.0  # reward margin
    retain_weight: float = 0.0  # 0: pure SimNPO, no retain term

    def __post_init__(self):
        super().__post_init__()
        if self.beta <= 0:
            raise ValueError(f"beta must be positive, got {self.beta}")
        if self.retain_weight < 0:
            raise ValueError(f"retain_weight must be >= 0, got {self.retain_weight}")


def simnpo_loss(sequence_nlls: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    return -(2.0 / beta) * F.logsigmoid(beta * sequence_nlls - gamma).mean()


class SimNPO(UnlearningMethod):
    name = "simnpo"
    Config = SimNPOConfig

    @property
    def uses_retain(self) -> bool:  # a retain batch only when its term counts
        return self.config.retain_weight > 0

    def loss(self, ctx, batch):
        loss = simnpo_loss(sequence_nll(ctx.model, batch.forget), self.config.beta, self.config.gamma)
        if self.config.retain_weight > 0:
            loss = loss + self.config.retain_weight * nll(ctx.model, batch.retain)
        return loss
