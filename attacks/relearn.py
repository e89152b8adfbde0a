"""Relearning (Hu et al. 2024; Lynch et al. 2024; Open-MMunlearning's relearning stress test):
fine-tune a copy of the model on the image QA of a seeded part of the forget entities (the
"leaked" ones; after a continual run, the first request's people), then score the attacked task
on the leaked entities and on the others.

Per part, recovery = (score_after - score_before) / (score_vanilla - score_before): 0 = nothing
came back, 1 = as the vanilla model (none where the model is less than 0.1 below the vanilla
model: it forgot next to nothing there; ``mmu_bench.attack.recovery``). Recovery of the
*other* entities is the real test: training on some people that brings back other people shows
the knowledge was hidden, not removed. The gold reference (never trained on the forget entities)
is attacked the same way, and ``relearn_recovery_excess_*`` = the model's recovery minus the gold
reference's: ordinary learning from the leaked data is not residual knowledge.

Defaults are the reference setting for 7B models (lr 2e-5, one epoch, batch 4);
``hparams/mmu-synth.yaml`` holds the embedded default's (README, "Attacks").
"""

import math
from dataclasses import dataclass

from mmu_bench.api import Attack, AttackConfig, number, of_entities, recovery


@dataclass
class RelearnConfig(AttackConfig):
    lr: float = 2e-5
    epochs: float = 1.0
    steps: int = 0  # 0 = ``epochs`` passes over the leaked entities' image QA
    batch_size: int = 4
    schedule: str = "constant"
    leaked_fraction: float = 0.5

    def __post_init__(self):
        if self.lr <= 0 or self.epochs <= 0 or self.steps < 0 or self.batch_size < 1:
            raise ValueError("lr and epochs must be positive, steps >= 0 and batch_size >= 1")
        if not 0 < self.leaked_fraction < 1:
            raise ValueError(f"leaked_fraction must be in (0, 1), got {self.leaked_fraction}")


class Relearn(Attack):
    name = "relearn"
    description = "fine-tune on half the forget people's images, then re-score both halves"
    Config = RelearnConfig
    columns = ("relearn_recovery_excess_other", "relearn_recovery_excess_leaked", "relearn_recovery_other")
    labels = {"relearn_recovery_excess_other": "relearn: other half, excess",
              "relearn_recovery_excess_leaked": "relearn: leaked half, excess",
              "relearn_recovery_other": "relearn: other half"}
    explain = ("Relearning: fine-tuning on half the forget people's image QA; recovery = the share of the way back to "
               "the vanilla model's score on the other (or leaked) half; excess = minus the gold reference's recovery.")
    order = 1

    def relearned(self, target, entities):
        """A copy of the target's model fine-tuned on these forget entities' image QA; with the
        steps taken and the losses."""
        c = self.config
        features = target.forget_features(entities)
        steps = c.steps or max(1, math.ceil(c.epochs * len(features) / c.batch_size))
        model = target.copy_model()
        losses = target.finetune(model, features, steps=steps, lr=c.lr, batch_size=c.batch_size, schedule=c.schedule)
        return model, steps, losses

    def attacked_model(self, target):
        """Relearned on every forget entity, as OpenUnlearning's relearning stress test fine-tunes
        on the whole forget set."""
        return self.relearned(target, sorted(target.benchmark.forget_entities))[0]

    def run(self, target):
        leaked, other = target.leaked_entities(self.config.leaked_fraction, "relearn")
        model, steps, losses = self.relearned(target, leaked)
        after = target.evaluate(model)
        del model
        out = {"relearn_steps": steps, "relearn_first_loss": losses[0], "relearn_last_loss": losses[-1],
               "relearn_leaked_entities": len(leaked), "relearn_other_entities": len(other)}
        for part, entities in (("leaked", leaked), ("other", other)):
            if not entities:
                out[f"relearn_recovery_{part}"] = float("nan")
                continue
            before = target.score(of_entities(target.records, entities))
            vanilla = target.score(of_entities(target.vanilla_records, entities))
            now = target.score(of_entities(after, entities))
            out.update({f"relearn_before_{part}": before, f"relearn_after_{part}": now,
                        f"relearn_vanilla_{part}": vanilla,
                        f"relearn_recovery_{part}": recovery(now, before, vanilla)})
        return out

    def compare(self, unlearned, gold):
        if not gold:
            return {}
        return {f"relearn_recovery_excess_{part}": number(unlearned.get(f"relearn_recovery_{part}"))
                - number(gold.get(f"relearn_recovery_{part}")) for part in ("leaked", "other")}
