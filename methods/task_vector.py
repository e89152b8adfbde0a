"""Task-vector negation (Ilharco et al., 2023, "Editing Models with Task Arithmetic", ICLR 2023).

Fine-tune the model on the forget set (NLL descent), take the task vector and subtract it:

    theta_ft = finetune(theta_0, forget)      tau = theta_ft - theta_0      theta = theta_0 - alpha * tau

Following the reference code (github.com/mlfoundations/task_vectors, ``src/task_vectors.py``):
``TaskVector`` is the element-wise difference of the fine-tuned and the pre-trained state dicts
(integer buffers skipped), ``-tau`` its negation and ``apply_to(theta_0, scaling_coef)``
adds ``scaling_coef * (-tau)``; the paper picks ``scaling_coef`` on held-out data from
{0, 0.05, ..., 1} (its README negates with 0.5). ``alpha`` defaults to 1, the LLM-unlearning
use of task vectors (e.g. MUSE's baseline: theta_0 - (theta_ft - theta_0)); tune it.

Adapted to the harness: not loss-based, so ``unlearn`` is overridden. The fine-tuning runs on
``ctx.model`` itself (the shared ``Stepper``: AdamW, schedule, clipping, one process or many)
from a saved copy of theta_0, then the negation is written into ``ctx.model``: the same result
as fine-tuning a copy, and the extra memory is one copy of the trainable parameters (a whole
model with a full-weight provider; only the adapter under LoRA). Parameters that do not train
have tau = 0. Batches are the harness's model-ready dicts (the forget images included).
``ctx.step_done`` is called once, after the negation: the fine-tuned model in between is not an
unlearned model, so no trajectory point scores it. The loss log holds the fine-tuning NLL.

Under a LoRA provider the task vector of the adapter's A and B matrices would not negate the
weight update B A (it is bilinear). For a fresh adapter (B_0 = 0, the providers' default) the
negation is done on the update itself, exactly: A = A_ft, B = -alpha * B_ft gives
W_0 - alpha * B_ft A_ft = theta_0 - alpha * tau on the merged weights. An adapter with B_0 != 0
is negated element-wise (reported as ``lora_negation: elementwise``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmu_bench.encoding import to_device
from mmu_bench.losses import nll
from mmu_bench.method import MethodConfig, UnlearningMethod
from mmu_bench.saliency import lora_layers, trainable
from mmu_bench.train import Stepper, progress_bar, total_steps


@dataclass
class TaskVectorConfig(MethodConfig):
    alpha: float = 1.0  # scaling of the negated task vector

    def __post_init__(self):
        super().__post_init__()
        if self.alpha <= 0:
            raise ValueError(f"alpha must be positive, got {self.alpha}")


@torch.no_grad()
def negate(params: dict[str, torch.nn.Parameter], theta_0: dict[str, torch.Tensor], alpha: float,
           exact_lora: dict[str, str] | None = None) -> None:
    """In place: each parameter becomes ``theta_0 - alpha * (theta_ft - theta_0)``. ``exact_lora``
    (B name -> A name, for adapters with B_0 = 0): B becomes ``-alpha * B_ft`` and A keeps A_ft,
    which negates the update B A itself."""
    exact_lora = exact_lora or {}
    keep = set(exact_lora.values())
    for name, p in params.items():
        if name in keep:
            continue
        if name in exact_lora:
            p.mul_(-alpha)
        else:
            p.copy_(theta_0[name] - alpha * (p - theta_0[name]))


class TaskVector(UnlearningMethod):
    name = "task_vector"
    Config = TaskVectorConfig

    def unlearn(self, ctx):
        cfg, model = self.config, ctx.model
        params = trainable(ctx.unwrapped_model)
        theta_0 = {n: p.detach().clone() for n, p in params.items()}
        layers = lora_layers(ctx.unwrapped_model, params).values()
        exact = {layer.b: layer.a for layer in layers if layer.a in params and not theta_0[layer.b].any()}
        if layers:
            ctx.report(lora_negation="update (B_0 = 0)" if len(exact) == len(layers) else "elementwise")
        total = total_steps(cfg, len(ctx.data.forget))
        model.train()
        stepper = Stepper(self, ctx, total)
        forget = ctx.data.forget.batches(cfg.batch_size, seed=ctx.seed)
        bar = progress_bar(total, "fine-tuning on the forget set (task_vector)", ctx.progress)
        for step in bar:
            loss = nll(model, to_device(next(forget), model))
            stepper.step(loss, step, kind="finetune")
            bar.set_postfix(loss=f"{loss.item():.3f}")
        stepper.optimizer.zero_grad(set_to_none=True)
        del stepper  # the optimizer's state: not needed for the negation
        negate(params, theta_0, cfg.alpha, exact)
        tau_norm = sum(float((params[n].detach().float() - theta_0[n].float()).pow(2).sum()) for n in params) ** 0.5
        ctx.report(finetune_steps=total, task_vector_alpha=cfg.alpha, distance_from_start=round(tau_norm, 6))
        model.eval()
        ctx.step_done(total, total)
