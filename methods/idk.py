"""IDK: fine-tune the forget questions towards a refusal instead of pushing their answers down,
with the retain NLL alongside so that only the forget entities get the refusal.

  refusals   single (default): every forget answer becomes ``answer`` ("I do not know.");
             tofu: one of TOFU's 100 refusals per forget item (``mmu_bench.refusals.TOFU``),
             drawn from the run's seed and the item's id (TOFU draws one per access, i.e.
             one per item in a single epoch);
  reduction  separate (default): NLL(forget -> refusal) + retain_weight * NLL(retain), each a
             mean over its own batch's answer tokens;
             joint: one token-weighted mean over both batches, as TOFU's loss over its
             concatenated IDK + retain batch: (S_f + retain_weight * S_r) / (N_f + N_r).
hparams/mllmu.yaml and clear.yaml set TOFU's (tofu, joint); MMU-Synth keeps single, separate.
"""

import random
from dataclasses import dataclass

from mmu_bench.losses import joint_nll, nll
from mmu_bench.method import MethodConfig, UnlearningMethod
from mmu_bench.refusals import TOFU


@dataclass
class IDKConfig(MethodConfig):
    answer: str = "I do not know."  # the refusal of refusals=single
    refusals: str = "single"  # single | tofu (one of TOFU's 100 per item, seeded)
    reduction: str = "separate"  # separate | joint (one token mean over forget + retain: TOFU)
    retain_weight: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if not self.answer.strip():
            raise ValueError("answer must be a non-empty refusal text")
        if self.refusals not in ("single", "tofu"):
            raise ValueError(f"refusals must be 'single' or 'tofu', got {self.refusals!r}")
        if self.reduction not in ("separate", "joint"):
            raise ValueError(f"reduction must be 'separate' or 'joint', got {self.reduction!r}")


def tofu_refusal(seed: int, item_id: str) -> str:
    """The TOFU refusal of one forget item: the same for the same seed and item, on any machine."""
    return random.Random(f"{seed}:{item_id}").choice(TOFU)


class IDK(UnlearningMethod):
    name = "idk"
    Config = IDKConfig
    uses_retain = True

    def setup(self, ctx):
        answer, seed = self.config.answer, ctx.seed
        if self.config.refusals == "tofu":
            ctx.data.forget = ctx.data.forget.with_answer(lambda row: tofu_refusal(seed, row["item_id"]))
        else:
            ctx.data.forget = ctx.data.forget.with_answer(lambda row: answer)

    def loss(self, ctx, batch):
        w = self.config.retain_weight
        if self.config.reduction == "joint":
            return joint_nll(ctx.model, [batch.forget, batch.retain], [1.0, w])
        return nll(ctx.model, batch.forget) + w * nll(ctx.model, batch.retain)
