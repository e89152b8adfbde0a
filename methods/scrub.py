"""SCRUB (Kurmanji et al., 2023, "Towards Unbounded Machine Unlearning"): a student (the model)
moves away from a frozen teacher (the vanilla model) on the forget set and stays with it on the
retain set, in alternating max and min steps.

    max step (forget batch):  loss = -KL_T(p_teacher || p_theta)
    min step (retain batch):  loss = nll_weight * NLL(retain) + kl_weight * KL_T(p_teacher || p_theta)

KL_T is the reference code's ``DistillKL``: KL of the temperature-T softmaxes times T^2, here
averaged over the positions that predict an answer token (the reference: over the samples of
a batch). The schedule follows the reference code's outer loop (``small_scale_unlearning.ipynb``,
``large_scale_unlearning.ipynb``; ``thirdparty/repdistiller/helper/loops.py:train_distill``):
for each of ``epochs`` epochs, a max phase if the epoch is among the first ``msteps``, then a
min phase. A max phase is one pass over the forget set and a min phase one pass over the retain
set, unless ``max_steps_per_epoch`` / ``min_steps_per_epoch`` set their number of steps.
``steps`` > 0 cuts the schedule (continued past ``epochs`` with min-only epochs if needed) to
that many optimizer steps. Defaults: the small-scale notebook's (alpha 0.5, gamma 1, msteps 3,
kd_T 2, 10 epochs); its optimizer and step decay are the harness's (AdamW, ``schedule``), one
optimizer across both phases as in the reference. Multimodal: batches carry their images, and
student and teacher see them as they are.

Note: the student starts as the teacher, where the KL has a zero gradient, so max steps move
the model only once it differs from the teacher (after min steps, or through dropout; the
reference's student trains in train mode, its teacher in eval mode). With a fresh LoRA adapter
(B = 0) the first max phase is a no-op: give SCRUB at least two epochs.
"""

from dataclasses import dataclass

import torch

from mmu_bench.encoding import to_device
from mmu_bench.losses import kl_from_reference, model_inputs, nll_from_logits
from mmu_bench.method import MethodConfig, UnlearningMethod
from mmu_bench.train import Stepper, progress_bar


@dataclass
class SCRUBConfig(MethodConfig):
    epochs: float = 10.0  # SCRUB epochs (the reference's sgda_epochs); whole numbers
    msteps: int = 3  # the first msteps epochs have a max phase
    kd_T: float = 2.0  # distillation temperature
    kl_weight: float = 0.5  # the reference's alpha (min steps)
    nll_weight: float = 1.0  # the reference's gamma (min steps)
    max_steps_per_epoch: int = 0  # 0: one pass over the forget set
    min_steps_per_epoch: int = 0  # 0: one pass over the retain set

    def __post_init__(self):
        super().__post_init__()
        if self.epochs != int(self.epochs):
            raise ValueError(f"epochs must be a whole number for scrub, got {self.epochs}")
        if self.msteps < 0 or self.max_steps_per_epoch < 0 or self.min_steps_per_epoch < 0:
            raise ValueError("msteps, max_steps_per_epoch and min_steps_per_epoch must be >= 0")
        if self.kd_T <= 0:
            raise ValueError(f"kd_T must be positive, got {self.kd_T}")
        if self.kl_weight < 0 or self.nll_weight < 0:
            raise ValueError("kl_weight and nll_weight must be >= 0")


def schedule(epochs: int, msteps: int, max_steps: int, min_steps: int, total: int = 0) -> list[tuple[int, str]]:
    """(epoch, "max" | "min") of every optimizer step, epochs counted from 1: ``max_steps`` max
    steps in each of the first ``msteps`` epochs, then ``min_steps`` min steps, for ``epochs``
    epochs; with ``total`` > 0, exactly ``total`` steps (cut, or continued with later epochs)."""
    if total and min_steps < 1:
        raise ValueError("scrub: `steps` needs at least one min step per epoch")
    out, epoch = [], 0
    while len(out) < total if total else epoch < epochs:
        epoch += 1
        out += [(epoch, "max")] * (max_steps if epoch <= msteps else 0) + [(epoch, "min")] * min_steps
    return out[:total] if total else out


def distill_kl(ref_logits: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(p_ref^T || p_theta^T) * T^2 over the positions that predict an answer token (mean)."""
    return kl_from_reference(ref_logits / temperature, logits / temperature, labels) * temperature**2


def scrub_loss(kind: str, logits, ref_logits, labels, cfg: SCRUBConfig) -> torch.Tensor:
    kl = distill_kl(ref_logits, logits, labels, cfg.kd_T)
    if kind == "max":
        return -kl
    return cfg.nll_weight * nll_from_logits(logits, labels) + cfg.kl_weight * kl


class SCRUB(UnlearningMethod):
    name = "scrub"
    Config = SCRUBConfig
    uses_retain = True

    def setup(self, ctx):
        self.ref = ctx.reference_model("vanilla")

    def phase_loss(self, ctx, kind: str, inputs: dict) -> torch.Tensor:
        """The loss of a ``max`` step (``inputs``: a forget batch) or a ``min`` step (a retain batch)."""
        logits = ctx.model(**model_inputs(inputs)).logits
        with torch.no_grad():
            ref_logits = self.ref(**model_inputs(inputs)).logits
        return scrub_loss(kind, logits, ref_logits, inputs["labels"], self.config)

    def unlearn(self, ctx):
        cfg, model = self.config, ctx.model
        n_max = cfg.max_steps_per_epoch or ctx.data.forget.steps_per_epoch(cfg.batch_size)
        n_min = cfg.min_steps_per_epoch or ctx.data.retain.steps_per_epoch(cfg.batch_size)
        plan = schedule(int(cfg.epochs), cfg.msteps, n_max, n_min, cfg.steps)
        total = len(plan)
        ctx.report(max_steps=sum(kind == "max" for _, kind in plan), min_steps=sum(kind == "min" for _, kind in plan))
        model.train()
        stepper = Stepper(self, ctx, total)
        forget = ctx.data.forget.batches(cfg.batch_size, seed=ctx.seed)
        retain = ctx.data.retain.batches(cfg.batch_size, seed=ctx.seed + 1)
        bar = progress_bar(total, "unlearning (scrub)", ctx.progress)
        for step, (epoch, kind) in zip(bar, plan):
            loss = self.phase_loss(ctx, kind, to_device(next(forget if kind == "max" else retain), model))
            stepper.step(loss, step, kind=kind, epoch=epoch)
            if step + 1 == total or plan[step + 1][0] != epoch:
                ctx.step_done(step + 1, total)  # an epoch (max then min phase) is SCRUB's checkpoint
        model.eval()
