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
  parameters; ``strict=False`` masks the gradient only, as the public code does;
- a language mask with no text-only rows to preserve (a benchmark without them) is an error
  naming the way out (``variant=vision``, or ``empty_text_ok=true``: go on with retain VQA
  alone, with a warning recorded in results.json as ``preserve_warning``).

Under LoRA (the real models' default) the public code scores the Fisher on the full vanilla
weights; the harness trains a fresh adapter (B = 0, A Gaussian). ``saliency_on`` says where
the mask is scored:
  full (default): on each adapted layer's base weight W (frozen weights take a gradient for
           stage 1 only), the paper's quantity, then mapped onto the adapter: B's row i is
           selected when at least ``adapter_share`` (0.5) of W's row i is, A's column j when
           at least that share of W's column j is (``saliency.lines``). A LoRA update can only
           move whole rows (through B) and columns (through A) of W, so this is the adapter
           mask closest to the paper's; results.json records the Jaccard overlap between W's
           mask and the rows and columns it maps to (``full_weight_saliency``), and the one
           the adapter's own saliency would give. Parameters that are not LoRA layers (every
           parameter without an adapter, as on tiny-llava) are scored as they are.
  adapter: on the adapter's own parameters. A has no gradient while B = 0, so only B's
           elements can be selected, and B's Fisher is W's row gradient seen through r random
           directions (dL/dB = s * dL/dW @ A^T): a sketch of the paper's row saliency.
``full`` is the default because it scores what the paper scores, and costs one gradient of the
adapted weights per Fisher batch plus two float32 buffers of their size during stage 1.
``mask=random`` keeps the count per tensor (``adapter``) or the number of rows and columns per
layer (``full`` under LoRA), drawn at random.

Stage 2 follows the public code where ``clip_before_mask=true`` (the default on MLLMU-Bench
and CLEAR, hparams/): the whole gradient is clipped, then masked; with ``false`` the masked
gradient is clipped. Its learning rate is constant within its single epoch (its scheduler
steps once per epoch): ``schedule: constant`` in the same hparams files.
"""

import contextlib
import time
import warnings
from dataclasses import dataclass

from mmu_bench import saliency
from mmu_bench.encoding import to_device
from mmu_bench.errors import MMUBenchError
from mmu_bench.losses import nll
from mmu_bench.method import MethodConfig, UnlearningMethod
from mmu_bench.train import Stepper, progress_bar, total_steps


@dataclass
class MMUnlearnerConfig(MethodConfig):
    variant: str = "language"  # language | vision | both
    mask: str = "saliency"  # saliency | random (as many elements per tensor / lines per LoRA layer)
    saliency_on: str = "full"  # full | adapter: under LoRA, the Fisher of W mapped onto A, B, or of A, B
    adapter_share: float = 0.5  # saliency_on=full: share of a row / column of W that selects B's row / A's column
    gamma: float = 1.0
    strict: bool = True
    # Leave out elements with no forget gradient at all (the paper's eps would select them).
    require_forget_signal: bool = True
    clip_before_mask: bool = False  # True: clip the whole gradient, then mask it (the public code)
    empty_text_ok: bool = False  # language mask without text-only rows: error (False), or warn and go on
    retain_per_forget: int = 0  # retain steps after each forget step; 0 = len(retain) // len(forget)
    mask_batch_size: int = 4
    mask_batches: int = 0  # batches per Fisher estimate and set; 0 = one full pass

    def __post_init__(self):
        super().__post_init__()
        if self.variant not in saliency.VARIANTS:
            raise ValueError(f"variant must be one of {saliency.VARIANTS}, got {self.variant!r}")
        if self.mask not in ("saliency", "random"):
            raise ValueError(f"mask must be 'saliency' or 'random', got {self.mask!r}")
        if self.saliency_on not in ("full", "adapter"):
            raise ValueError(f"saliency_on must be 'full' or 'adapter', got {self.saliency_on!r}")
        if not 0.0 <= self.adapter_share <= 1.0:
            raise ValueError(f"adapter_share must be in [0, 1], got {self.adapter_share}")
        if self.gamma <= 0:
            raise ValueError(f"gamma must be positive, got {self.gamma}")
        if self.retain_per_forget < 0 or self.mask_batches < 0 or self.mask_batch_size < 1:
            raise ValueError("retain_per_forget and mask_batches must be >= 0, mask_batch_size >= 1")


class MMUnlearner(UnlearningMethod):
    name = "mmunlearner"
    version = "2"  # 2: Fisher on the full weights mapped onto a LoRA adapter; vision sides adapted
    Config = MMUnlearnerConfig
    uses_retain = True

    def trainable_sides(self):
        # A vision mask needs the vision tower and projector trainable (with LoRA: adapted).
        return ("language",) if self.config.variant == "language" else ("language", "vision")

    # -- stage 1 --------------------------------------------------------------------------
    def _batches(self, ctx, data, seed: int):
        cfg = self.config
        n = data.steps_per_epoch(cfg.mask_batch_size)
        n = min(n, cfg.mask_batches) if cfg.mask_batches else n
        stream = data.batches(cfg.mask_batch_size, seed=seed)
        for _ in range(n):
            yield to_device(next(stream), ctx.model)

    def _fisher(self, ctx, params, sets, desc, synced=()):
        """Mean squared gradients over the batches of all ``sets`` together."""
        batches = (b for i, data in enumerate(sets) for b in self._batches(ctx, data, ctx.seed + 10 + i))
        # Frozen base weights are not averaged over processes by the distributed wrapper.
        sync = (lambda g: ctx.accelerator.reduce(g.clone(), reduction="mean")) if ctx.accelerator else None  # noqa: E731
        return saliency.fisher_diagonal(ctx.model, params, batches, desc=desc, progress=ctx.progress,
                                        sync=sync, synced=synced)

    def _preserve(self, ctx, side: str):
        if side != "language":
            return [ctx.data.retain]
        if len(ctx.data.preserve_text) == 0:
            message = ("mmunlearner: the benchmark has no text-only QA rows, so the language mask's preserve set "
                       "would be the retain VQA alone (the paper's holds the text QA of every entity)")
            if not self.config.empty_text_ok:
                raise MMUBenchError(f"{message}. Use variant=vision, or --method-arg empty_text_ok=true to go on")
            warnings.warn(message, stacklevel=2)
            ctx.report(preserve_warning=message)
        return [ctx.data.preserve_text, ctx.data.retain]

    def _side_mask(self, ctx, side: str):
        """The ratio mask over ``side``'s trainable parameters and, with ``saliency_on=full``,
        the base weights of its LoRA layers (returned too)."""
        cfg = self.config
        params = saliency.select(ctx.model, side)
        if not params:
            raise ValueError(f"mmunlearner: the model has no trainable {side} parameters to mask")
        preserve = self._preserve(ctx, side)
        layers = saliency.lora_layers(ctx.model, params) if cfg.saliency_on == "full" else {}
        named = dict(ctx.model.named_parameters())
        weights = {layer.weight: named[layer.weight] for layer in layers.values()}
        with saliency.requiring_grad(weights.values()):
            targets = {**params, **weights}
            forget = self._fisher(ctx, targets, [ctx.data.forget], f"fisher forget ({side})", weights)
            keep = self._fisher(ctx, targets, preserve, f"fisher preserve ({side})", weights)
        return saliency.ratio_mask(forget, keep, cfg.gamma, cfg.require_forget_signal), layers

    def setup(self, ctx):
        started = time.time()
        cfg = self.config
        sides = ("language", "vision") if cfg.variant == "both" else (cfg.variant,)
        ctx.report(preserve_rows={"text": len(ctx.data.preserve_text), "retain_vqa": len(ctx.data.retain)})
        masks, layers = zip(*(self._side_mask(ctx, side) for side in sides))
        mask, layers = saliency.union(*masks), {k: v for found in layers for k, v in found.items()}
        seed = ctx.seed if cfg.mask == "random" else None
        if layers:  # the full weights' saliency, mapped onto the adapter
            mask, facts = saliency.onto_adapter(mask, layers, cfg.adapter_share, seed)
            ctx.report(mask_scored_on="full weights of the LoRA layers, mapped onto the adapter",
                       full_weight_saliency=facts)
        else:
            on = "adapter" if cfg.saliency_on == "adapter" and saliency.lora_layers(ctx.model) else "trained weights"
            ctx.report(mask_scored_on=on)
            mask = saliency.random_like(mask, seed=seed) if seed is not None else mask
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
        masking = {"after_clip" if cfg.clip_before_mask else "after_backward": mask_grads}
        bar = progress_bar(total, "unlearning (mmunlearner)", progress=ctx.progress)
        step = 0
        for _ in range(forget_steps):
            loss = -nll(ctx.model, to_device(next(forget), ctx.model))
            guard = saliency.masked_out_fixed(ctx.model, self.mask) if cfg.strict else contextlib.nullcontext()
            with guard:
                stepper.step(loss, step, kind="forget", **masking)
            step += 1
            bar.update()
            for _ in range(per_forget):
                stepper.step(nll(ctx.model, to_device(next(retain), ctx.model)), step, kind="retain")
                step += 1
                bar.update()
            ctx.step_done(step, total)  # a forget-retain cycle is this method's natural checkpoint
        bar.close()
        ctx.model.eval()
