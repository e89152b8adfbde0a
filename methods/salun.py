"""SalUn, saliency unlearning (Fan et al., 2024, "SalUn: Empowering Machine Unlearning via
Gradient-based Weight Saliency in Both Image Classification and Generation", ICLR 2024).

Stage 1, the weight saliency mask, from the gradient of the forget loss at the model being
unlearned:

    g = | sum_b grad_theta l(theta; forget batch b) |        m = 1[g in the top `fraction` of g]

the top fraction taken over all the masked parameters together (one global threshold).
Stage 2, masked unlearning: theta <- theta - lr * m * grad, with the loss

    rl (default): NLL(forget, random answers) + retain_weight * NLL(retain) as one token mean
                  over the two batches together (SalUn's random labelling)
    ga:           -NLL(forget) + retain_weight * NLL(retain) (masked gradient ascent)

Following the reference code (github.com/OPTML-Group/Unlearn-Saliency): ``Classification/
generate_mask.py`` sums the gradients of the forget loss over the forget loader, takes their
absolute values, ranks all elements of all parameters together and keeps the first
``int(N * fraction)`` (``ranks < threshold_index``, exactly that many); its README uses
``with_0.5.pt`` (fraction 0.5). ``Classification/unlearn/RL.py`` relabels the forget set at
random and trains it with the retain set (CIFAR-100: one shuffled loader over both), the mask
applied to the gradients after backward and masked-out weights restored after each step.

Adapted to MLLMs: batches are the harness's model-ready dicts, images included; the forget
loss of stage 1 is the NLL of the forget answers (the reference's negated cross-entropy: the
sign does not matter under |.|). A random label becomes a random answer: each forget row's
answer is replaced, once per run, by the answer of another forget or retain row of the same
question format (a different text), drawn from the run's seed and the row's id; the forget and
retain batches are trained as one concatenated batch (``mmu_bench.losses.joint_nll``). The
mask ranges over the trainable parameters of ``variant``'s side (``mmu_bench.saliency``); the
others are masked out. Masked-out elements never move: their gradient is zeroed after every
backward (``after_backward``), so AdamW's moments stay zero for them; with ``weight_decay`` > 0
they are restored after each optimizer step as in the reference. Under a LoRA provider the mask
is over the adapter's own parameters: with a fresh adapter (B = 0) A has no gradient, so the
saliency selects among B's elements first (MMUnlearner's ``saliency_on=adapter`` case).
Memory: the gradient sum (one float32 buffer per trained parameter) and, for the global
threshold, one concatenated copy of it during stage 1.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from mmu_bench import saliency
from mmu_bench.encoding import to_device
from mmu_bench.losses import joint_nll, nll
from mmu_bench.method import MethodConfig, UnlearningMethod
from mmu_bench.train import make_optimizer


@dataclass
class SalUnConfig(MethodConfig):
    fraction: float = 0.5  # share of the masked parameters' elements kept (the reference's with_0.5.pt)
    forget_loss: str = "rl"  # rl (random answers) | ga (gradient ascent)
    retain_weight: float = 1.0
    variant: str = "language"  # language | vision | both: the side(s) the mask ranges over
    mask_batch_size: int = 4
    mask_batches: int = 0  # forget batches summed for the saliency; 0 = one full pass

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        if self.forget_loss not in ("rl", "ga"):
            raise ValueError(f"forget_loss must be 'rl' or 'ga', got {self.forget_loss!r}")
        if self.retain_weight < 0:
            raise ValueError(f"retain_weight must be >= 0, got {self.retain_weight}")
        if self.variant not in saliency.VARIANTS:
            raise ValueError(f"variant must be one of {saliency.VARIANTS}, got {self.variant!r}")
        if self.mask_batches < 0 or self.mask_batch_size < 1:
            raise ValueError("mask_batches must be >= 0 and mask_batch_size >= 1")


def gradient_magnitude(model, params: dict[str, torch.nn.Parameter], batches, progress: bool = True) -> dict[str, torch.Tensor]:
    """``|sum_b grad NLL(batch b)|`` per element of ``params`` (no optimizer step; gradients
    cleared afterwards)."""
    was_training = model.training
    model.train()
    sums = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    count = 0
    for batch in tqdm(batches, desc="salun saliency", unit="batch", leave=False, disable=None if progress else True):
        model.zero_grad(set_to_none=True)
        nll(model, batch).backward()
        for n, p in params.items():
            if p.grad is not None:
                sums[n] += p.grad.detach().float()
        count += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    if count == 0:
        raise ValueError("salun: no forget batches to compute the saliency from")
    return {n: s.abs_() for n, s in sums.items()}


def top_fraction(scores: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """The mask of the ``int(N * fraction)`` largest elements of all ``scores`` together (N all
    their elements; ties broken by position, so exactly that many are kept, as the reference)."""
    names = list(scores)
    flat = torch.cat([scores[n].flatten().float().cpu() for n in names])
    k = int(flat.numel() * fraction)
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    if k:
        # a stable sort: among equal scores the earlier element ranks first, as argsort-of-ranks
        keep[torch.sort(flat, descending=True, stable=True).indices[:k]] = True
    out, start = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = keep[start : start + size].view(scores[n].shape).to(scores[n].device)
        start += size
    return out


def random_answers(rows, pool_rows, seed: int) -> dict[str, str]:
    """A different answer for each row (by ``item_id``): that of another row of ``pool_rows``
    with the same ``format``, drawn from ``seed`` and the row's id."""
    pool: dict[str, set[str]] = {}
    for row in pool_rows:
        pool.setdefault(row.get("format", ""), set()).add(row["answer"])
    ordered = {fmt: sorted(answers) for fmt, answers in pool.items()}
    out = {}
    for row in rows:
        others = [a for a in ordered.get(row.get("format", ""), []) if a != row["answer"]]
        if not others:
            raise ValueError(f"salun: no other answer of format {row.get('format')!r} to relabel item {row['item_id']!r} with")
        out[row["item_id"]] = random.Random(f"{seed}:{row['item_id']}").choice(others)
    return out


def _text_columns(rows) -> list[dict]:
    """The rows' ``item_id``, ``format`` and ``answer`` (a ``datasets.Dataset``'s without
    decoding its images)."""
    if hasattr(rows, "select_columns"):
        rows = rows.select_columns([c for c in ("item_id", "format", "answer") if c in rows.column_names])
    return [{k: row[k] for k in ("item_id", "format", "answer") if k in row} for row in rows]


class SalUn(UnlearningMethod):
    name = "salun"
    Config = SalUnConfig
    uses_retain = True

    def trainable_sides(self):
        return ("language",) if self.config.variant == "language" else ("language", "vision")

    def _mask_batches(self, ctx):
        cfg, data = self.config, ctx.data.forget
        n = data.steps_per_epoch(cfg.mask_batch_size)
        n = min(n, cfg.mask_batches) if cfg.mask_batches else n
        stream = data.batches(cfg.mask_batch_size, seed=ctx.seed + 10)
        for _ in range(n):
            yield to_device(next(stream), ctx.model)

    def setup(self, ctx):
        started, cfg = time.time(), self.config
        params = saliency.select(ctx.unwrapped_model, cfg.variant)
        if not params:
            raise ValueError(f"salun: the model has no trainable {cfg.variant} parameters to mask")
        scores = gradient_magnitude(ctx.model, params, self._mask_batches(ctx), ctx.progress)
        self.mask = saliency.complete(top_fraction(scores, cfg.fraction), ctx.unwrapped_model)
        ctx.report(mask_variant=cfg.variant, mask_fraction=cfg.fraction, mask_sparsity=saliency.sparsity(self.mask),
                   mask_seconds=round(time.time() - started, 2))
        if cfg.forget_loss == "rl":
            rows = _text_columns(ctx.data.forget.rows)
            answers = random_answers(rows, rows + _text_columns(ctx.data.retain.rows), ctx.seed)
            ctx.data.forget = ctx.data.forget.with_answer(lambda row: answers[row["item_id"]])

    def loss(self, ctx, batch):
        w = self.config.retain_weight
        if self.config.forget_loss == "rl":
            return joint_nll(ctx.model, [batch.forget, batch.retain], [1.0, w])
        return -nll(ctx.model, batch.forget) + w * nll(ctx.model, batch.retain)

    def after_backward(self, ctx):
        saliency.mask_gradients(ctx.unwrapped_model, self.mask)

    def make_optimizer(self, ctx):
        optimizer = make_optimizer(ctx.model, self.config)
        if self.config.weight_decay > 0:  # decay would move masked-out elements: restore them after each step
            step, model, mask = optimizer.step, ctx.unwrapped_model, self.mask

            def masked_step(*args, **kwargs):
                with saliency.masked_out_fixed(model, mask):
                    return step(*args, **kwargs)

            optimizer.step = masked_step
        return optimizer
