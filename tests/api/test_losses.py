import math

import pytest
import torch

from mmu_bench.api.encoding import IGNORE
from mmu_bench.api.losses import label_logprobs
from mmu_bench.methods.npo import npo_loss


def test_label_logprobs_by_hand():
    # Vocabulary of 2; position 0 predicts token 1 with logits [0, ln 3] -> p = 3/4.
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0], [5.0, 5.0]]])
    labels = torch.tensor([[IGNORE, 1, 0]])
    logp, mask = label_logprobs(logits, labels)
    assert mask.tolist() == [[True, True]]
    assert logp[0, 0].item() == pytest.approx(math.log(0.75))
    assert logp[0, 1].item() == pytest.approx(math.log(0.5))


def test_npo_loss_equals_its_formula():
    beta = 0.4
    nll_theta, nll_ref = torch.tensor(2.0), torch.tensor(1.5)
    expected = -(2 / beta) * math.log(1 / (1 + math.exp(-beta * (2.0 - 1.5))))
    assert npo_loss(nll_theta, nll_ref, beta).item() == pytest.approx(expected)
    # At equal likelihoods the loss is (2 / beta) * ln 2, and it shrinks as the model forgets.
    assert npo_loss(torch.tensor(1.0), torch.tensor(1.0), beta).item() == pytest.approx(2 / beta * math.log(2))
    assert npo_loss(torch.tensor(9.0), torch.tensor(1.0), beta) < npo_loss(torch.tensor(2.0), torch.tensor(1.0), beta)


def test_simnpo_loss_equals_its_formula_on_length_normalised_nlls():
    from mmu_bench.methods.simnpo import simnpo_loss

    # Two answers: 2 tokens with log-probs ln 1/2, ln 1/4 and 1 token with ln 1/8.
    per_row = torch.tensor([-(math.log(0.5) + math.log(0.25)) / 2, -math.log(0.125)])
    beta, gamma = 2.5, 0.5
    expected = sum(-(2 / beta) * math.log(1 / (1 + math.exp(-(beta * x - gamma)))) for x in per_row.tolist()) / 2
    assert simnpo_loss(per_row, beta, gamma).item() == pytest.approx(expected)


def test_sequence_nll_is_the_mean_over_each_rows_answer_tokens():
    from mmu_bench.api.losses import sequence_nll

    class Fixed(torch.nn.Module):
        def forward(self, input_ids, **_):
            logits = torch.zeros(1, 4, 2)
            logits[0, 0] = torch.tensor([0.0, math.log(3.0)])  # predicts token 1 with p 3/4
            return type("Out", (), {"logits": logits})()

    labels = torch.tensor([[IGNORE, 1, 0, IGNORE]])  # two answer tokens: p 3/4, then p 1/2
    value = sequence_nll(Fixed(), {"input_ids": torch.zeros(1, 4, dtype=torch.long), "labels": labels})
    assert value.item() == pytest.approx(-(math.log(0.75) + math.log(0.5)) / 2)


def test_kl_from_reference_is_kl_of_reference_to_model():
    from mmu_bench.api.losses import kl_from_reference

    p_ref, p_model = [0.9, 0.1], [0.5, 0.5]
    ref_logits = torch.log(torch.tensor([[p_ref, p_ref]]))
    logits = torch.log(torch.tensor([[p_model, p_model]]))
    labels = torch.tensor([[IGNORE, 0]])  # one scored position (position 0 predicts token 1's slot)
    forward = sum(a * math.log(a / b) for a, b in zip(p_ref, p_model))  # KL(ref || model)
    reverse = sum(b * math.log(b / a) for a, b in zip(p_ref, p_model))  # KL(model || ref)
    value = kl_from_reference(ref_logits, logits, labels).item()
    assert value == pytest.approx(forward)
    assert abs(value - reverse) > 0.05  # the two directions differ here, so the test tells them apart
    assert kl_from_reference(logits, logits, labels).item() == pytest.approx(0.0, abs=1e-7)
