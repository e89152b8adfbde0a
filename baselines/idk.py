"""IDK: fine-tune the forget questions towards a refusal ("I do not know.") instead of
pushing their answers down, with the retain NLL alongside so that only the forget entities
get the refusal.

loss = NLL(forget questions -> refusal) + retain_weight * NLL(retain)
"""

from dataclasses import dataclass

from mmu_bench.losses import nll
from mmu_bench.method import MethodConfig, UnlearningMethod


@dataclass
class IDKConfig(MethodConfig):
    answer: str = "I do not know."
    retain_weight: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if not self.answer.strip():
            raise ValueError("answer must be a non-empty refusal text")


class IDK(UnlearningMethod):
    name = "idk"
    Config = IDKConfig
    uses_retain = True

    def setup(self, ctx):
        answer = self.config.answer
        ctx.data.forget = ctx.data.forget.with_answer(lambda row: answer)

    def loss(self, ctx, batch):
        return nll(ctx.model, batch.forget) + self.config.retain_weight * nll(ctx.model, batch.retain)
