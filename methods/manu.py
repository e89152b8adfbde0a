"""MANU, Modality-Aware Neuron Unlearning (Liu et al., 2025, "Modality-Aware Neuron Pruning for
Unlearning in Multimodal Large Language Models", ACL 2025, arXiv:2502.15910).

Training-free: score every MLP neuron by how much more it fires on the forget data than on the
retain data, per modality, and zero the top ``prune_percent`` % of them.

For a neuron n (one output unit of an MLP linear layer) and a data set D, over the positions it
fires at, with a = its output clamped to [-1000, 1000]:

    I_abs = mean |a|     I_freq = mean 1[|a| > 0.1]     I_var = std a     I_rms = sqrt(mean a^2)
    S(n)  = sum_m w_m * (I_m(forget) / (I_m(retain) + 1e-5) - 1)      w = (abs 2, freq 0, var 2, rms 2)

Two modalities, two scorings, two masks (each a global top-k over its own neurons, k =
int(prune_percent / 100 * neurons), every neuron scoring >= the k-th score pruned):
- vision: the vision tower's MLP neurons (``mlp.fc1``, ``mlp.fc2``), scored on forget image QA
  against retain image QA (the full model's forward, images included);
- language: the language model's MLP neurons (``mlp.gate_proj``, ``up_proj``, ``down_proj``),
  scored on text-only QA about the forget entities against text-only QA about the others.
Pruning zeroes the neuron's row of its layer's weight (and bias). ``iterations`` > 1 rescores
the pruned model and prunes again.

Following the reference code (github.com/franciscoliu/MANU, ``prune/prune_incremental.py`` and
``prune/prune_utility.py``): the four importance functions, the clamp, the 0.1 threshold, the
weights (2, 0, 2, 2) and the epsilon of ``compute_combined_scores_incremental``; the global
threshold of ``compute_top_k_pruning_mask``; row zeroing (``apply_mask_to_layer``); forward
hooks on the MLP linears of the last three layers of each tower (CLIP's 21-23, the LLM's 29-31:
``last_layers=3``); the vision tower scored on the multimodal pass and the language model on
the text-only pass; the retain sets scored on as many batches as the forget set (batch 4);
``prune_percent=2``, ``iterations=1`` (its argparse defaults).

Where this departs from the reference, and why:
- the reference's hooks file the activations of *every* layer under the names of the last
  three, so each of those layers gets the same mask, scored on all layers pooled; here each
  layer is scored on its own activations;
- the reference averages over padded positions (its right padding and the zero padding its
  collector adds); here only real positions count (the attention mask; every patch of an image
  in the vision tower), and I_var is the standard deviation over all those positions (the
  reference's is over the batch at each position, then averaged, which depends on how batches
  are padded);
- text-only forget / retain data: MLLMU-Bench's reference strips the image from the same
  questions; the harness has no such rows, so it uses the text-only QA about the same entities
  (``preserve_text`` split by ``entity_id``: the forget entities' rows against the rest).
  ``modalities=vision`` prunes the vision side only (MANU's visual half, which leaves the text
  knowledge the harness also scores alone).

The loss log holds, per iteration, the forget image-QA NLL measured while scoring (before that
iteration's pruning). Full weights only: pruning zeroes rows of the model's own weights, which a
LoRA adapter can neither hold nor save (``--model-arg lora=false`` on the real models).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from mmu_bench.context import EncodedSet
from mmu_bench.encoding import to_device
from mmu_bench.method import MethodConfig, UnlearningMethod
from mmu_bench.saliency import lora_layers, side
from mmu_bench.train import progress_bar

PROJECTIONS = {"vision": ("mlp.fc1", "mlp.fc2"), "language": ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}
METRICS = ("abs", "freq", "var", "rms")
CLAMP = 1e3
EPS = 1e-5
_LAYER = re.compile(r"\.(\d+)\.mlp\.")


@dataclass
class MANUConfig(MethodConfig):
    batch_size: int = 4
    prune_percent: float = 2.0  # per modality, of that modality's scored neurons
    iterations: int = 1
    last_layers: int = 3  # the last N layers of each tower are scored and pruned (0: every layer)
    modalities: str = "both"  # both | vision | language
    w_abs: float = 2.0
    w_freq: float = 0.0
    w_var: float = 2.0
    w_rms: float = 2.0
    freq_threshold: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.prune_percent <= 100:
            raise ValueError(f"prune_percent must be in (0, 100], got {self.prune_percent}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if self.last_layers < 0:
            raise ValueError(f"last_layers must be >= 0, got {self.last_layers}")
        if self.modalities not in ("both", "vision", "language"):
            raise ValueError(f"modalities must be both, vision or language, got {self.modalities!r}")

    @property
    def weights(self) -> dict[str, float]:
        return {"abs": self.w_abs, "freq": self.w_freq, "var": self.w_var, "rms": self.w_rms}


def mlp_neurons(model, modality: str, last_layers: int) -> dict[str, torch.nn.Module]:
    """The MLP linear layers of one tower whose output units MANU scores, by module name."""
    found = {}
    for name, module in model.named_modules():
        if name.endswith(PROJECTIONS[modality]) and side(name + ".weight") == modality and hasattr(module, "weight"):
            found[name] = module
    if last_layers:
        depth = {n: int(m.group(1)) for n in found if (m := _LAYER.search(n + "."))}
        kept = sorted(set(depth.values()))[-last_layers:]
        found = {n: mod for n, mod in found.items() if depth.get(n) in kept}
    return found


class Stats:
    """Running sums per neuron of one module's outputs: count, sum |a|, count |a| > t, sum a,
    sum a^2 (over real positions), enough for the four importance functions."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.sums: dict[str, torch.Tensor] = {}

    def add(self, out: torch.Tensor, keep: torch.Tensor | None) -> None:
        a = out.detach().float().clamp(-CLAMP, CLAMP)
        a = a[keep] if keep is not None and keep.shape == a.shape[:-1] else a.reshape(-1, a.shape[-1])
        parts = {"n": a.new_full(a.shape[-1:], a.shape[0]), "abs": a.abs().sum(0),
                 "freq": (a.abs() > self.threshold).float().sum(0), "sum": a.sum(0), "sq": (a * a).sum(0)}
        for k, v in parts.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v

    def importance(self) -> dict[str, torch.Tensor]:
        s = self.sums
        n = s["n"].clamp(min=1)
        mean, mean_sq = s["sum"] / n, s["sq"] / n
        var = (mean_sq - mean * mean).clamp(min=0) * n / (n - 1).clamp(min=1)  # unbiased, as torch.std
        return {"abs": s["abs"] / n, "freq": s["freq"] / n, "var": var.sqrt(), "rms": mean_sq.sqrt()}


def combined(forget: dict[str, torch.Tensor], retain: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """S(n) = sum_m w_m * (I_m(forget) / (I_m(retain) + eps) - 1)."""
    return sum(w * (forget[m] / (retain[m] + EPS) - 1) for m, w in weights.items())


def top_percent(scores: dict[str, torch.Tensor], percent: float) -> dict[str, torch.Tensor]:
    """The pruning masks: every neuron scoring at least the k-th highest score of all the
    modules together, k = int(percent / 100 * neurons); all False when k = 0."""
    flat = torch.cat([s.flatten() for s in scores.values()])
    k = int(percent / 100 * flat.numel())
    if k == 0:
        return {n: torch.zeros_like(s, dtype=torch.bool) for n, s in scores.items()}
    threshold = torch.topk(flat, k).values[-1]
    return {n: s >= threshold for n, s in scores.items()}


@torch.no_grad()
def prune(modules: dict[str, torch.nn.Module], masks: dict[str, torch.Tensor]) -> int:
    """Zero the weight rows (and bias entries) of the masked output units; the count pruned."""
    total = 0
    for name, mask in masks.items():
        module = modules[name]
        keep = (~mask).to(module.weight.dtype).to(module.weight.device)
        module.weight.mul_(keep.view(-1, 1))
        if getattr(module, "bias", None) is not None:
            module.bias.mul_(keep)
        total += int(mask.sum())
    return total


def _column(rows, key: str) -> list:
    return list(rows[key]) if hasattr(rows, "column_names") else [row[key] for row in rows]


def _subset(rows, indices: list[int]):
    return rows.select(indices) if hasattr(rows, "select") else [rows[i] for i in indices]


class MANU(UnlearningMethod):
    name = "manu"
    Config = MANUConfig

    def trainable_sides(self):
        return ("language", "vision")

    def unlearn(self, ctx):
        cfg, model = self.config, ctx.unwrapped_model
        if lora_layers(model):
            raise ValueError("manu prunes the model's own weights, which a LoRA adapter cannot hold: "
                             "run it on full weights (--model-arg lora=false)")
        modalities = ("vision", "language") if cfg.modalities == "both" else (cfg.modalities,)
        modules = {m: mlp_neurons(model, m, cfg.last_layers) for m in modalities}
        for m, found in modules.items():
            if not found:
                raise ValueError(f"manu: no {m} MLP layers ({', '.join(PROJECTIONS[m])}) found in "
                                 f"{type(model).__name__}")
        data = self._data(ctx, modalities)
        was_training = model.training
        model.eval()
        pruned: dict[str, int] = dict.fromkeys(modalities, 0)
        for it in range(1, cfg.iterations + 1):
            nll = []
            for m in modalities:
                forget_set, retain_set = data[m]
                steps = forget_set.steps_per_epoch(cfg.batch_size)
                text = m == "language"
                forget = self._score(ctx, modules[m], forget_set, steps, f"{m} neurons, forget ({it})", nll, text)
                retain = self._score(ctx, modules[m], retain_set, steps, f"{m} neurons, retain ({it})", None, text)
                scores = {n: combined(forget[n], retain[n], cfg.weights) for n in modules[m]}
                pruned[m] += prune(modules[m], top_percent(scores, cfg.prune_percent))
            ctx.log(step=it, loss=sum(nll) / len(nll))
            ctx.step_done(it, cfg.iterations)
        model.train(was_training)
        neurons = {m: sum(mod.weight.shape[0] for mod in modules[m].values()) for m in modalities}
        ctx.report(pruned_neurons=pruned, scored_neurons=neurons,
                   pruned_layers={m: sorted(modules[m]) for m in modalities})

    def _data(self, ctx, modalities) -> dict[str, tuple[EncodedSet, EncodedSet]]:
        data = {}
        if "vision" in modalities:
            data["vision"] = (ctx.data.forget, ctx.data.retain)
        if "language" in modalities:
            text = ctx.data.preserve_text
            forgotten = set(_column(ctx.data.forget.rows, "entity_id"))
            ids = _column(text.rows, "entity_id")
            split = {f: [i for i, e in enumerate(ids) if (e in forgotten) == f] for f in (True, False)}
            if not split[True] or not split[False]:
                raise ValueError("manu: the language side needs text-only QA about both the forget entities and "
                                 f"the others (got {len(split[True])} and {len(split[False])} rows); "
                                 "use modalities=vision")
            data["language"] = tuple(EncodedSet(_subset(text.rows, split[f]), text.processor, text.prompts,
                                                part=text.part) for f in (True, False))
        return data

    @torch.no_grad()
    def _score(self, ctx, modules, dataset: EncodedSet, steps: int, desc: str, nll: list | None,
               text_positions: bool):
        """Per-module importance over ``steps`` batches of ``dataset`` (one pass over the forget set;
        as many retain batches, as the reference does), summed over processes."""
        cfg = self.config
        stats = {n: Stats(cfg.freq_threshold) for n in modules}
        keep: list[torch.Tensor | None] = [None]

        def hook(name):
            return lambda _module, _inputs, out: stats[name].add(out, keep[0])

        handles = [mod.register_forward_hook(hook(n)) for n, mod in modules.items()]
        try:
            batches = dataset.batches(cfg.batch_size, seed=ctx.seed)
            for _ in progress_bar(steps, f"scoring {desc} (manu)", ctx.progress):
                batch = to_device(next(batches), ctx.unwrapped_model)
                # language outputs: only real tokens count; vision outputs: every patch of every image
                keep[0] = batch["attention_mask"].bool() if text_positions and "attention_mask" in batch else None
                out = ctx.model(**batch)
                if nll is not None and getattr(out, "loss", None) is not None:
                    nll.append(float(out.loss))
        finally:
            for h in handles:
                h.remove()
        if ctx.accelerator is not None:
            for s in stats.values():
                s.sums = {k: ctx.accelerator.reduce(v, reduction="sum") for k, v in s.sums.items()}
        return {n: s.importance() for n, s in stats.items()}
