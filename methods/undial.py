"""UNDIAL (Dong et al., 2024, "UNDIAL: Self-Distillation with Adjusted Logits for Robust
Unlearning in Large Language Models"): self-distillation towards the frozen vanilla model's own
logits with the logit of each forget token lowered by a fixed amount.

At every forget position t with target token y_t, the teacher's logits z_t (vanilla model, no
gradient) are adjusted, z'_t = z_t - beta * onehot(y_t), and the student is trained towards
their softmax:

    loss = mean_t CE(softmax(z'_t), p_theta(. | x, y_<t)) + retain_weight * NLL(retain)

Cross-entropy to a fixed soft target = KL + a constant: the gradient of the KL. As in
open-unlearning (``src/trainer/utils.py:compute_undial_loss``, ``configs/trainer/UNDIAL.yaml``):
beta = 10, no retain term by default (alpha = 0: the paper aims to keep everything, not only a
retain set; ``retain_weight`` > 0 adds its GradDiff-style retain NLL). Multimodal: the forget
batches carry their images, and student and teacher see them as they are.

  positions  answer (default): the answer tokens (the forget tokens) alone;
             all: every non-padding position, the others distilled to the unchanged teacher.
             open-unlearning averages over every position, padding included, and its label
             -100 (prompt, padding) indexes the vocabulary from the end, lowering token V-100
             there; ``all`` is its intent without that slip.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmu_bench.encoding import IGNORE
from mmu_bench.losses import model_inputs, nll
from mmu_bench.method import MethodConfig, UnlearningMethod


@dataclass
class UNDIALConfig(MethodConfig):
    beta: float = 10.0  # how far the forget token's logit is lowered (open-unlearning; paper grid 3, 10, 30)
    retain_weight: float = 0.0  # 0: pure UNDIAL (open-unlearning's alpha = 0)
    positions: str = "answer"  # answer | all (every non-padding position)

    def __post_init__(self):
        super().__post_init__()
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if self.retain_weight < 0:
            raise ValueError(f"retain_weight must be >= 0, got {self.retain_weight}")
        if self.positions not in ("answer", "all"):
            raise ValueError(f"positions must be 'answer' or 'all', got {self.positions!r}")


def adjusted_logits(teacher_logits: torch.Tensor, targets: torch.Tensor, beta: float) -> torch.Tensor:
    """``teacher_logits`` [.., V] with the logit of each position's target lowered by ``beta``;
    positions whose target is IGNORE are left as they are."""
    counted = targets != IGNORE
    drop = F.one_hot(targets.clamp(min=0), teacher_logits.shape[-1]).to(teacher_logits.dtype)
    return teacher_logits - beta * drop * counted.unsqueeze(-1).to(teacher_logits.dtype)


def undial_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, beta: float,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of the student's next-token distributions to the adjusted teacher's,
    over the positions that predict a labelled token (``mask`` [B, T-1]: other positions)."""
    targets = labels[:, 1:]
    mask = (targets != IGNORE) if mask is None else mask.bool()
    soft = torch.softmax(adjusted_logits(teacher_logits[:, :-1].float(), targets, beta), dim=-1)
    per_position = -(soft * torch.log_softmax(logits[:, :-1].float(), dim=-1)).sum(-1)
    return (per_position * mask).sum() / mask.sum().clamp(min=1)


class UNDIAL(UnlearningMethod):
    name = "undial"
    Config = UNDIALConfig

    @property
    def uses_retain(self) -> bool:  # a retain batch only when its term counts
        return self.config.retain_weight > 0

    def setup(self, ctx):
        self.ref = ctx.reference_model("vanilla")

    def loss(self, ctx, batch):
        cfg, forget = self.config, batch.forget
        logits = ctx.model(**model_inputs(forget)).logits
        with torch.no_grad():
            teacher = self.ref(**model_inputs(forget)).logits
        mask = forget["attention_mask"][:, 1:] if cfg.positions == "all" else None
        loss = undial_loss(logits, teacher, forget["labels"], cfg.beta, mask)
        if cfg.retain_weight > 0:
            loss = loss + cfg.retain_weight * nll(ctx.model, batch.retain)
        return loss
