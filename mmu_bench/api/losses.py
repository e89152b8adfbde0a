"""Log-likelihoods of the labelled tokens of a batch: the building blocks methods and
evaluation share. Labels follow the ``encoding`` convention (-100 = not a target)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmu_bench.api.encoding import IGNORE


def model_inputs(batch: dict) -> dict:
    """Everything but the labels goes to the model, untouched (never a whitelist of keys)."""
    return {k: v for k, v in batch.items() if k != "labels"}


def label_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position log-probability of the next labelled token, and the mask of positions that
    count. Shapes [B, T-1]."""
    targets = labels[:, 1:]
    mask = targets != IGNORE
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked * mask, mask


def sequence_nll(model, batch: dict) -> torch.Tensor:
    """Mean negative log-likelihood of each row's labelled tokens, shape [B]."""
    logits = model(**model_inputs(batch)).logits
    logp, mask = label_logprobs(logits, batch["labels"])
    return -(logp.sum(-1) / mask.sum(-1).clamp(min=1))


def nll(model, batch: dict) -> torch.Tensor:
    """Mean NLL over all labelled tokens of the batch (the usual fine-tuning loss)."""
    return nll_from_logits(model(**model_inputs(batch)).logits, batch["labels"])


def nll_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE
    )


def nll_sum(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed NLL of the labelled tokens of a batch, and how many there are."""
    logits = model(**model_inputs(batch)).logits
    targets = batch["labels"][:, 1:]
    total = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                            ignore_index=IGNORE, reduction="sum")
    return total, (targets != IGNORE).sum()


def joint_nll(model, batches: list[dict], weights: list[float] | None = None) -> torch.Tensor:
    """One token-weighted mean NLL over several batches, as if they were concatenated into one
    (TOFU's IDK loss over its IDK + retain batch): ``sum_k w_k * S_k / sum_k N_k`` with ``S_k``
    the summed NLL of batch k's ``N_k`` labelled tokens (all ``w_k`` = 1: the mean of the
    concatenation)."""
    weights = weights or [1.0] * len(batches)
    sums, counts = zip(*(nll_sum(model, batch) for batch in batches))
    return sum(w * s for w, s in zip(weights, sums)) / sum(counts).clamp(min=1)


KL_REDUCTIONS = ("mean", "sum")


def kl_from_reference(ref_logits: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean",
                      attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(p_ref || p_theta) of the full next-token distributions. The reference distribution
    weighs the terms: the model is pulled to cover everything the reference finds likely.

    Positions: those that predict a labelled token; with ``attention_mask``, every position
    that is not padding (MLLMU-Bench's KL_Min takes every position of the sequence, its
    padding too). ``reduction``: ``mean`` averages over those positions; ``sum`` sums over them
    and divides by the batch size (``F.kl_div(..., reduction="batchmean")`` on [B, T, V], as
    MLLMU-Bench's KL_Min)."""
    if reduction not in KL_REDUCTIONS:
        raise ValueError(f"reduction must be one of {KL_REDUCTIONS}, got {reduction!r}")
    if attention_mask is None:
        mask = (labels[:, 1:] != IGNORE).float()
        ref_logits, logits = ref_logits[:, :-1], logits[:, :-1]
    else:
        mask = attention_mask.float()
    ref = torch.log_softmax(ref_logits.float(), dim=-1)
    cur = torch.log_softmax(logits.float(), dim=-1)
    per_position = (ref.exp() * (ref - cur)).sum(-1)
    total = (per_position * mask).sum()
    return total / mask.sum().clamp(min=1) if reduction == "mean" else total / logits.shape[0]
