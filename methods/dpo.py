"""DPO for unlearning, a.k.a. IdkDPO (Rafailov et al., 2023; as a TOFU baseline, Maini et al.,
2024; open-unlearning's ``DPO`` trainer with its ``unlearn/tofu/idk`` experiment): on each forget
item prefer a refusal (the winner, y_w) to the true answer (the loser, y_l), with the frozen
vanilla model as reference:

    loss = -(2 / beta) * mean_i logsigmoid(beta * ((log p_theta(y_w|x) - log p_ref(y_w|x))
                                                 - (log p_theta(y_l|x) - log p_ref(y_l|x))))
           + retain_weight * NLL(retain)

log p: the summed log-probability of an answer's tokens (open-unlearning's
``compute_batch_nll``, ``compute_dpo_loss`` in ``src/trainer/utils.py``). Defaults from
``configs/trainer/DPO.yaml``: beta = 0.1, retain NLL weight (alpha) 1, forget weight (gamma) 1.
TOFU's own DPO (``dataloader.py``, loss_type dpo) is -logsigmoid(beta * ...) with no retain
term: retain_weight=0 gives it up to the 2 / beta factor.

Refusals as ``idk`` (``mmu_bench.baselines.idk``): ``tofu`` (default; open-unlearning draws one of
TOFU's refusals per forget item, ``data/idk.jsonl``) picks one per item from the run's seed,
``single`` uses ``answer``. Multimodal: the refusal batch is the forget batch with the refusal
as its answer, the same rows with their images, drawn in step with the shared loop's forget
stream (same set size, batch size and seed: the same permutation), checked row by row.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from mmu_bench.baselines.idk import tofu_refusal

from mmu_bench.encoding import IGNORE, to_device
from mmu_bench.errors import MMUBenchError
from mmu_bench.losses import label_logprobs, model_inputs, nll
from mmu_bench.method import MethodConfig, UnlearningMethod


@dataclass
class DPOConfig(MethodConfig):
    beta: float = 0.1
    retain_weight: float = 1.0  # open-unlearning's alpha; 0: no retain term (TOFU's DPO)
    refusals: str = "tofu"  # tofu (one of TOFU's 100 per item, seeded) | single (``answer``)
    answer: str = "I do not know."  # the refusal of refusals=single
    reference: str = "vanilla"  # or "oracle"

    def __post_init__(self):
        super().__post_init__()
        if self.beta <= 0:
            raise ValueError(f"beta must be positive, got {self.beta}")
        if self.retain_weight < 0:
            raise ValueError(f"retain_weight must be >= 0, got {self.retain_weight}")
        if self.refusals not in ("single", "tofu"):
            raise ValueError(f"refusals must be 'single' or 'tofu', got {self.refusals!r}")
        if not self.answer.strip():
            raise ValueError("answer must be a non-empty refusal text")
        if self.reference not in ("oracle", "vanilla"):
            raise ValueError(f"reference must be 'oracle' or 'vanilla', got {self.reference!r}")


def dpo_loss(win: torch.Tensor, lose: torch.Tensor, ref_win: torch.Tensor, ref_lose: torch.Tensor,
             beta: float) -> torch.Tensor:
    """-(2 / beta) * mean logsigmoid(beta * ((win - ref_win) - (lose - ref_lose))), on summed
    log-probabilities of each row's winning and losing answers, shape [B]."""
    return -(2.0 / beta) * F.logsigmoid(beta * ((win - ref_win) - (lose - ref_lose))).mean()


def answer_logp(model, batch: dict) -> torch.Tensor:
    """Summed log-probability of each row's labelled tokens, shape [B]."""
    logp, _ = label_logprobs(model(**model_inputs(batch)).logits, batch["labels"])
    return logp.sum(-1)


def same_prompts(a: dict, b: dict) -> bool:
    """Whether two right-padded batches hold the same prompts (and so images), row by row."""
    if a["input_ids"].shape[0] != b["input_ids"].shape[0]:
        return False
    for ids_a, lab_a, ids_b, lab_b in zip(a["input_ids"], a["labels"], b["input_ids"], b["labels"]):
        n = int((lab_a != IGNORE).long().argmax())
        if n != int((lab_b != IGNORE).long().argmax()) or not torch.equal(ids_a[:n], ids_b[:n]):
            return False
    return True


class DPO(UnlearningMethod):
    name = "dpo"
    Config = DPOConfig

    @property
    def uses_retain(self) -> bool:  # a retain batch only when its term counts
        return self.config.retain_weight > 0

    def setup(self, ctx):
        cfg, seed = self.config, ctx.seed
        self.ref = ctx.reference_model(cfg.reference)
        if cfg.refusals == "tofu":
            refusals = ctx.data.forget.with_answer(lambda row: tofu_refusal(seed, row["item_id"]))
        else:
            refusals = ctx.data.forget.with_answer(lambda row: cfg.answer)
        self.refusals = refusals.batches(cfg.batch_size, seed=seed)

    def loss(self, ctx, batch):
        cfg, forget = self.config, batch.forget
        refusal = to_device(next(self.refusals), ctx.model)
        if not same_prompts(forget, refusal):
            raise MMUBenchError("dpo: the refusal batch does not pair with the forget batch (the shared loop's "
                                "forget stream is no longer drawn with the run's seed)")
        with torch.no_grad():
            ref_win, ref_lose = answer_logp(self.ref, refusal), answer_logp(self.ref, forget)
        loss = dpo_loss(answer_logp(ctx.model, refusal), answer_logp(ctx.model, forget), ref_win, ref_lose, cfg.beta)
        if cfg.retain_weight > 0:
            loss = loss + cfg.retain_weight * nll(ctx.model, batch.retain)
        return loss
