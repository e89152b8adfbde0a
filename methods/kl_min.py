"""KL_Min: ascent on the forget set; on the retain set, NLL plus KL(p_vanilla || p_theta) of
the full next-token distributions, keeping the model close to the vanilla model where it
should not change.

loss = -NLL(forget) + NLL(retain) + kl_weight * KL(p_vanilla || p_theta)(retain)

The KL's reduction is an option (``mmu_bench.losses.kl_from_reference``):
  kl_reduction  mean (default): averaged over positions; sum: summed over positions and divided
                by the batch size, as MLLMU-Bench's KL_Min (``F.kl_div(..., "batchmean")``);
  kl_positions  answer (default): the positions that predict an answer token; all: every
                position that is not padding, as MLLMU-Bench's KL_Min (padding aside).
hparams/mllmu.yaml and clear.yaml set the reference's (sum, all); MMU-Synth keeps mean, answer.
"""

from dataclasses import dataclass

import torch

from mmu_bench.losses import KL_REDUCTIONS, kl_from_reference, model_inputs, nll, nll_from_logits
from mmu_bench.method import MethodConfig, UnlearningMethod


@dataclass
class KLMinConfig(MethodConfig):
    kl_weight: float = 1.0
    kl_reduction: str = "mean"  # mean | sum (over positions, / batch size: MLLMU-Bench)
    kl_positions: str = "answer"  # answer | all (every non-padding position: MLLMU-Bench)

    def __post_init__(self):
        super().__post_init__()
        if self.kl_reduction not in KL_REDUCTIONS:
            raise ValueError(f"kl_reduction must be one of {KL_REDUCTIONS}, got {self.kl_reduction!r}")
        if self.kl_positions not in ("answer", "all"):
            raise ValueError(f"kl_positions must be 'answer' or 'all', got {self.kl_positions!r}")


class KLMin(UnlearningMethod):
    name = "kl_min"
    Config = KLMinConfig
    uses_retain = True

    def setup(self, ctx):
        self.ref = ctx.reference_model("vanilla")

    def loss(self, ctx, batch):
        cfg, retain = self.config, batch.retain
        logits = ctx.model(**model_inputs(retain)).logits
        with torch.no_grad():
            ref_logits = self.ref(**model_inputs(retain)).logits
        retain_nll = nll_from_logits(logits, retain["labels"])
        positions = retain["attention_mask"] if cfg.kl_positions == "all" else None
        kl = kl_from_reference(ref_logits, logits, retain["labels"], cfg.kl_reduction, positions)
        return -nll(ctx.model, batch.forget) + retain_nll + cfg.kl_weight * kl
