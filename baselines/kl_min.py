"""KL_Min: ascent on the forget set; on the retain set, NLL plus KL(p_vanilla || p_theta) of
the full next-token distributions (at the answer positions), keeping the model close to the
vanilla model where it should not change.

loss = -NLL(forget) + NLL(retain) + kl_weight * KL(p_vanilla || p_theta)(retain)
"""

from dataclasses import dataclass

import torch

from mmu_bench.losses import kl_from_reference, model_inputs, nll, nll_from_logits
from mmu_bench.method import MethodConfig, UnlearningMethod


@dataclass
class KLMinConfig(MethodConfig):
    kl_weight: float = 1.0


class KLMin(UnlearningMethod):
    name = "kl_min"
    Config = KLMinConfig
    uses_retain = True

    def setup(self, ctx):
        self.ref = ctx.reference_model("vanilla")

    def loss(self, ctx, batch):
        retain = batch.retain
        logits = ctx.model(**model_inputs(retain)).logits
        with torch.no_grad():
            ref_logits = self.ref(**model_inputs(retain)).logits
        retain_nll = nll_from_logits(logits, retain["labels"])
        kl = kl_from_reference(ref_logits, logits, retain["labels"])
        return -nll(ctx.model, batch.forget) + retain_nll + self.config.kl_weight * kl
