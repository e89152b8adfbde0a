"""Log-likelihoods of the labelled tokens of a batch: the building blocks methods and
evaluation share. Labels follow the ``encoding`` convention (-100 = not a target)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .encoding import IGNORE


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


def kl_from_reference(ref_logits: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """KL(p_ref || p_theta) of the full next-token distributions, averaged over the positions
    that predict a labelled token. The reference distribution weighs the terms: the model is
    pulled to cover everything the reference finds likely."""
    mask = (labels[:, 1:] != IGNORE).float()
    ref = torch.log_softmax(ref_logits[:, :-1].float(), dim=-1)
    cur = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    per_position = (ref.exp() * (ref - cur)).sum(-1)
    return (per_position * mask).sum() / mask.sum().clamp(min=1)
