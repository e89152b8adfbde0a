"""MMUnlearner (Huo et al., 2025): forget what an entity *looks like*, keep what is known of it.

Stage 1, a saliency mask. On the vanilla model, the diagonal Fisher information of the forget
VQA data, F_f, and of a preserve set, F_r; M = (F_f + 1e-15) / (F_r + 1e-15) >= gamma,
element-wise, over the trainable parameters of one side of the model:
  language (default): language-model parameters (embeddings and head included); preserve set =
                      text-only QA of ALL entities (forget entities too) plus retain VQA;
  vision:             vision tower and projector; preserve set = retain VQA;
  both:               the union of the two masks.
``mask=random`` is the paper's ablation: a random mask with the same number of selected
elements in every tensor.

Stage 2, selective updates, interleaved: each forget step is gradient ascent on a forget batch
with the gradient multiplied by M, followed by ``retain_per_forget`` ordinary NLL steps on
retain VQA batches (0 = len(retain) // len(forget), the paper's schedule).

Decisions the public code leaves open (see the README):
- parameters outside the chosen side are masked out (M = 0): ascent never moves them;
- elements whose forget Fisher is exactly 0 are not selected (``require_forget_signal``): the
  eps terms alone would give them ratio 1; with a fresh LoRA adapter (B = 0) that would select
  every element of every ``A`` matrix, none of which the forget data has touched;
- ``strict=True`` (default) also undoes what optimizer momentum and weight decay would do to
  masked-out parameters during forget steps, so forgetting moves exactly the masked
  parameters; ``strict=False`` masks the gradient only, as the public code does.
"""

import contextlib
import time
from dataclasses import dataclass

from mmu_bench import saliency
from mmu_bench.encoding import to_device
from mmu_bench.losses import nll
from mmu_bench.method import MethodConfig, UnlearningMethod
from mmu_bench.train import Stepper, progress_bar, total_steps


@dataclass
class MMUnlearnerConfig(MethodConfig):
    variant: str = "language"  # language | vision | both
    mask: str = "saliency"  # saliency | random (same sparsity per tensor)
    gamma: float = 1.0
    strict: bool = True
    # Leave out elements with no forget gradient at all (the paper's eps would select them).
    require_forget_signal: bool = True
    retain_per_forget: int = 0  # retain steps after each forget step; 0 = len(retain) // len(forget)
    mask_batch_size: int = 4
    mask_batches: int = 0  # batches per Fisher estimate and set; 0 = one full pass

    def __post_init__(self):
        super().__post_init__()
        if self.variant not in saliency.VARIANTS:
            raise ValueError(f"variant must be one of {saliency.VARIANTS}, got {self.variant!r}")
        if self.mask not in ("saliency", "random"):
            raise ValueError(f"mask must be 'saliency' or 'random', got {self.mask!r}")
        if self.gamma <= 0:
            raise ValueError(f"gamma must be positive, got {self.gamma}")
        if self.retain_per_forget < 0 or self.mask_batches < 0 or self.mask_batch_size < 1:
            raise ValueError("retain_per_forget and mask_batches must be >= 0, mask_batch_size >= 1")


class MMUnlearner(UnlearningMethod):
    name = "mmunlearner"
    version = "1"
    Config = MMUnlearnerConfig
    uses_retain = True

    # -- stage 1 --------------------------------------------------------------------------
    def _batches(self, ctx, data, seed: int):
        cfg = self.config
        n = data.steps_per_epoch(cfg.mask_batch_size)
        n = min(n, cfg.mask_batches) if cfg.mask_batches else n
        stream = data.batches(cfg.mask_batch_size, seed=seed)
        for _ in range(n):
            yield to_device(next(stream), ctx.model)

    def _fisher(self, ctx, params, sets, desc):
        """Mean squared gradients over the batches of all ``sets`` together."""
        batches = (b for i, data in enumerate(sets) for b in self._batches(ctx, data, ctx.seed + 10 + i))
        return saliency.fisher_diagonal(ctx.model, params, batches, desc=desc, progress=ctx.progress)

    def _side_mask(self, ctx, variant: str):
        params = saliency.select(ctx.model, variant)
        if not params:
            raise ValueError(f"mmunlearner: the model has no trainable {variant} parameters to mask")
        preserve = [ctx.data.preserve_text, ctx.data.retain] if variant == "language" else [ctx.data.retain]
        forget = self._fisher(ctx, params, [ctx.data.forget], f"fisher forget ({variant})")
        keep = self._fisher(ctx, params, preserve, f"fisher preserve ({variant})")
        return saliency.ratio_mask(forget, keep, self.config.gamma, self.config.require_forget_signal)

    def setup(self, ctx):
        started = time.time()
        cfg = self.config
        sides = ("language", "vision") if cfg.variant == "both" else (cfg.variant,)
        mask = saliency.union(*(self._side_mask(ctx, side) for side in sides))
        if cfg.mask == "random":
            mask = saliency.random_like(mask, seed=ctx.seed)
        self.mask = saliency.complete(mask, ctx.model)
        ctx.report(mask_variant=cfg.variant, mask_kind=cfg.mask, strict=cfg.strict,
                   mask_sparsity=saliency.sparsity(self.mask), mask_seconds=round(time.time() - started, 2))

    # -- stage 2 --------------------------------------------------------------------------
    def unlearn(self, ctx):
        cfg = self.config
        forget_steps = total_steps(cfg, len(ctx.data.forget))
        per_forget = cfg.retain_per_forget or max(1, len(ctx.data.retain) // max(1, len(ctx.data.forget)))
        total = forget_steps * (1 + per_forget)
        ctx.report(forget_steps=forget_steps, retain_steps=forget_steps * per_forget)
        ctx.model.train()
        stepper = Stepper(self, ctx, total)
        forget = ctx.data.forget.batches(cfg.batch_size, seed=ctx.seed)
        retain = ctx.data.retain.batches(cfg.batch_size, seed=ctx.seed + 1)
        mask_grads = lambda _ctx: saliency.mask_gradients(ctx.model, self.mask)  # noqa: E731
        bar = progress_bar(total, "unlearning (mmunlearner)", progress=ctx.progress)
        step = 0
        for _ in range(forget_steps):
            loss = -nll(ctx.model, to_device(next(forget), ctx.model))
            guard = saliency.masked_out_fixed(ctx.model, self.mask) if cfg.strict else contextlib.nullcontext()
            with guard:
                stepper.step(loss, step, after_backward=mask_grads, kind="forget")
            step += 1
            bar.update()
            for _ in range(per_forget):
                stepper.step(nll(ctx.model, to_device(next(retain), ctx.model)), step, kind="retain")
                step += 1
                bar.update()
            ctx.step_done(step, total)  # a forget-retain cycle is this method's natural checkpoint
        bar.close()
        ctx.model.eval()
