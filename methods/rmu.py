"""RMU, Representation Misdirection for Unlearning (Li et al., 2024, "The WMDP Benchmark:
Measuring and Reducing Malicious Use With Unlearning", arXiv:2403.03218).

At one decoder layer ``l`` of the language model, with ``h(x)`` its output hidden states and
``h_frozen`` those of the frozen vanilla model:

    u = rand(d) / ||rand(d)||          (uniform [0, 1) entries, drawn once from the run's seed)
    loss = mean_t ||h(x_f)_t - c * u||^2 / d  +  alpha * mean_t ||h(x_r)_t - h_frozen(x_r)_t||^2 / d

with ``c`` = ``steering_coeff``, ``x_f`` a forget batch, ``x_r`` a retain batch and ``t`` the
token positions counted (``positions``). Only the MLP weights of layers ``l-2 .. l`` train.

Following the reference code (github.com/centerforaisafety/wmdp, rmu/unlearn.py and
rmu/utils.py; also locuslab/open-unlearning, src/trainer/unlearn/rmu.py, which borrows it):
the control vector is ``torch.rand(1, 1, d)`` normalised and scaled by ``c``; hidden states are
captured by a forward hook on the layer module (the output, or its first element if a tuple);
the forget term is an MSE against the control vector, the retain term an MSE against the frozen
model's activations times ``alpha``; the optimizer is AdamW over ``layers[l-2..l].mlp.down_proj``
(the reference's ``param_ids=[6]`` of a Llama/Mistral layer), a constant learning rate, no
gradient clipping. Its defaults (argparse) are used here: ``steering_coeff=20``, ``alpha=100``,
``lr=5e-5``, ``batch_size=4``; WMDP's published Zephyr-7B run uses 6.5 and 1200, 150 batches.

Adapted to MLLMs:
- batches are the harness's model-ready dicts (pixel values included), passed as they are, so
  the forget activations are those of the image-conditioned sequence (image tokens included);
- ``positions``: ``all`` (default) counts every non-padding position (the reference averages
  over every position of its text chunks, padding too; its chunks are rarely padded), ``answer``
  only those that predict an answer token (open-unlearning's masked variant);
- ``layer``: -1 (default) picks ``round(depth * 7 / 32)``, the reference's relative depth
  (layer 7 of Zephyr's 32): 7 on LLaVA-1.5-7B, 6 on Qwen2-VL-7B, 0 on the 2-layer tiny model;
- the frozen model is ``ctx.reference_model("vanilla")`` (a copy of the model when the run
  provides no references);
- which parameters train: the trainable parameters (``requires_grad``, as the model provider
  set them) of layers ``l - (num_layers - 1) .. l`` whose name contains ``params`` (default
  ``mlp.down_proj``; ``mlp.`` for every MLP weight). With a full-weight provider (tiny-llava)
  that is the down-projection weight itself; with a LoRA provider, the LoRA adapter of that
  projection (its ``lora_A`` / ``lora_B``), so the edit is low rank. The other trainable
  parameters are frozen for the run and their flags restored after it (in a multi-process run
  they keep their flag, for the distributed wrapper, and their gradients are dropped instead).
The hooks are removed when training ends, even on an error.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from mmu_bench.encoding import IGNORE
from mmu_bench.losses import model_inputs
from mmu_bench.method import MethodConfig, UnlearningMethod
from mmu_bench.saliency import side
from mmu_bench.train import run_loop

REFERENCE_DEPTH = 7 / 32  # WMDP's layer 7 of Zephyr-7B's 32


@dataclass
class RMUConfig(MethodConfig):
    lr: float = 5e-5
    batch_size: int = 4
    max_grad_norm: float = 0.0  # the reference does not clip
    schedule: str = "constant"  # the reference has no scheduler
    steering_coeff: float = 20.0
    alpha: float = 100.0
    layer: int = -1  # -1: round(depth * 7 / 32), the reference's relative depth
    num_layers: int = 3  # layers l-2 .. l train (the reference's layer_ids 5,6,7 for layer 7)
    params: str = "mlp.down_proj"  # name fragment of the parameters that train in those layers
    positions: str = "all"  # all (non-padding) | answer

    def __post_init__(self):
        super().__post_init__()
        if self.steering_coeff <= 0:
            raise ValueError(f"steering_coeff must be positive, got {self.steering_coeff}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        if self.layer < -1:
            raise ValueError(f"layer must be >= 0, or -1 for the default depth, got {self.layer}")
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        if not self.params:
            raise ValueError("params must name the parameters that train (e.g. mlp.down_proj)")
        if self.positions not in ("all", "answer"):
            raise ValueError(f"positions must be 'all' or 'answer', got {self.positions!r}")


def control_vector(dim: int, coeff: float, seed: int) -> torch.Tensor:
    """The fixed target of the forget activations: ``coeff * u``, ``u`` a uniform [0, 1) vector
    normalised to unit length (the reference's ``torch.rand(1, 1, d)``), shape [1, 1, d]."""
    u = torch.rand(1, 1, dim, generator=torch.Generator().manual_seed(seed))
    return u / u.norm() * coeff


def activation_mse(hidden: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Squared error averaged over the hidden size and over the positions of ``mask`` [B, T]
    (with every position counted: ``F.mse_loss(hidden, target.expand_as(hidden))``)."""
    per_position = (hidden.float() - target.float()).pow(2).mean(-1)
    mask = mask.to(per_position.dtype)
    return (per_position * mask).sum() / mask.sum().clamp(min=1)


def decoder_layers(model) -> tuple[str, torch.nn.ModuleList]:
    """The language model's decoder layers (the longest language-side ``...layers`` list)."""
    found = [(name, module) for name, module in model.named_modules()
             if isinstance(module, torch.nn.ModuleList) and name.split(".")[-1] == "layers" and side(name) == "language"]
    if not found:
        raise ValueError("rmu: found no language-model decoder layers (a ModuleList named `layers`)")
    return max(found, key=lambda item: len(item[1]))


class _Capture:
    """A forward hook on a module that keeps its last output hidden states."""

    def __init__(self, module: torch.nn.Module):
        self.hidden = None
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.hidden = output[0] if isinstance(output, tuple) else output

    def remove(self) -> None:
        self.handle.remove()


class RMU(UnlearningMethod):
    name = "rmu"
    Config = RMUConfig
    uses_retain = True

    def _layer(self, depth: int) -> int:
        layer = self.config.layer if self.config.layer >= 0 else round(depth * REFERENCE_DEPTH)
        if layer >= depth:
            raise ValueError(f"rmu: layer {layer} does not exist (the language model has {depth} layers)")
        return layer

    def setup(self, ctx):
        cfg = self.config
        model = ctx.unwrapped_model
        prefix, layers = decoder_layers(model)
        self.layer = self._layer(len(layers))
        trained = range(max(0, self.layer - cfg.num_layers + 1), self.layer + 1)
        starts = tuple(f"{prefix}.{i}." for i in trained)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.params = {n: p for n, p in named if n.startswith(starts) and cfg.params in n}
        if not self.params:
            raise ValueError(f"rmu: no trainable parameter of layers {list(trained)} matches {cfg.params!r}")
        self.others = [p for n, p in named if n not in self.params]
        try:
            self.frozen = ctx.reference_model("vanilla")
            frozen_from = "vanilla reference"
        except RuntimeError:  # the run provides no reference models
            self.frozen = copy.deepcopy(model).eval().requires_grad_(False)
            frozen_from = "copy of the model"
        self.modules = (layers[self.layer], decoder_layers(self.frozen)[1][self.layer])
        self.capture = self.frozen_capture = None  # the hooks live while ``unlearn`` runs
        self.control = None
        ctx.report(rmu_layer=self.layer, rmu_depth=len(layers), rmu_trained_layers=list(trained),
                   rmu_trained_params=sorted(self.params), rmu_frozen_model=frozen_from)

    def make_optimizer(self, ctx):
        return torch.optim.AdamW(list(self.params.values()), lr=self.config.lr, weight_decay=self.config.weight_decay)

    def _mask(self, batch: dict) -> torch.Tensor:
        if self.config.positions == "answer":  # positions that predict an answer token
            mask = torch.zeros_like(batch["labels"], dtype=torch.bool)
            mask[:, :-1] = batch["labels"][:, 1:] != IGNORE
            return mask
        return batch["attention_mask"].bool()

    def loss(self, ctx, batch):
        cfg = self.config
        ctx.model(**model_inputs(batch.forget))
        forget = self.capture.hidden
        if self.control is None:
            self.control = control_vector(forget.shape[-1], cfg.steering_coeff, ctx.seed)
        control = self.control.to(forget.device)
        forget_loss = activation_mse(forget, control, self._mask(batch.forget).to(forget.device))
        ctx.model(**model_inputs(batch.retain))
        retain = self.capture.hidden
        with torch.no_grad():
            self.frozen(**model_inputs(batch.retain))
        frozen = self.frozen_capture.hidden.to(retain.device)
        retain_loss = activation_mse(retain, frozen, self._mask(batch.retain).to(retain.device))
        self.capture.hidden = self.frozen_capture.hidden = None
        return forget_loss + cfg.alpha * retain_loss

    def after_backward(self, ctx):
        for p in self.others:  # kept trainable for a distributed wrapper: drop what they got
            p.grad = None

    def unlearn(self, ctx):
        flags = [p.requires_grad for p in self.others]
        if ctx.accelerator is None:
            for p in self.others:
                p.requires_grad_(False)
        self.capture, self.frozen_capture = _Capture(self.modules[0]), _Capture(self.modules[1])
        try:
            run_loop(self, ctx)
        finally:
            self.capture.remove()
            self.frozen_capture.remove()
            self.capture = self.frozen_capture = None
            for p, flag in zip(self.others, flags):
                p.requires_grad_(flag)
