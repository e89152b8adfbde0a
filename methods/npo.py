"""NPO (Zhang et al., 2024): a bounded, reference-anchored form of gradient ascent.

loss = -(2 / beta) * logsigmoid(beta * (NLL_theta(forget) - NLL_ref(forget))), with NLL the
mean token loss of the batch. As in MLLMU-Bench, the reference is the *oracle* (the model
fine-tuned without the forget entities), not the vanilla model.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmu_bench.losses import nll
from mmu_bench.method import MethodConfig, UnlearningMethod


@dataclass
class NPOConfig(MethodConfig):
    beta: float = 0.4
    reference: str = "oracle"  # or "vanilla"

    def __post_init__(self):
        super().__post_init__()
        if self.beta <= 0:
            raise ValueError(f"beta must be positive, got {self.beta}")
        if self.reference not in ("oracle", "vanilla"):
            raise ValueError(f"reference must be 'oracle' or 'vanilla', got {self.reference!r}")


def npo_loss(nll_theta: torch.Tensor, nll_ref: torch.Tensor, beta: float) -> torch.Tensor:
    return -(2.0 / beta) * F.logsigmoid(beta * (nll_theta - nll_ref)).mean()


class NPO(UnlearningMethod):
    name = "npo"
    Config = NPOConfig

    def setup(self, ctx):
        self.ref = ctx.reference_model(self.config.reference)

    def loss(self, ctx, batch):
        with torch.no_grad():
            ref = nll(self.ref, batch.forget)
        return npo_loss(nll(ctx.model, batch.forget), ref, self.config.beta)
