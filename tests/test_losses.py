import math

import pytest
import torch

from mmu_bench.baselines.npo import npo_loss
from mmu_bench.encoding import IGNORE
from mmu_bench.losses import label_logprobs


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
