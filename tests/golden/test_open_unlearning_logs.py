"""Golden tests against numbers we did not produce: open-unlearning's published per-item
evaluation logs of real models (TOFU: Llama-2-7b-chat-hf, Llama-3.1-8B-Instruct, Llama-3.2-1B- and
3B-Instruct, the full model on forget01/05/10 and the retain99/95/90 models; MUSE News and Books:
the target and retrained Llama-2-7b). We feed the logged inputs (mean token losses, generations
and ground truths, AUCs) into OUR functions and compare with the logged outputs.

Sources, pinned:

- the logs: github.com/nxZhai/BalDRO, commit 12a0b0cc35de70e20862ea5a97e87b62437a543f, files
  ``saves/eval/<log>/{TOFU,MUSE}_EVAL.json`` (unchanged there since that repository's first
  commit, 7b338ed92bc319dd684c7be18ce5c34cb5749606); the excerpt in
  ``tests/fixtures/golden/open_unlearning_logs.json`` is remade by ``scripts/golden_excerpt.py``
  (its README says what is kept).
- the code that computed them: github.com/locuslab/open-unlearning, commit
  8df291471d7a9549af7535facc4b2b22666c3091 (24 Apr 2025, "bunch of tokenization related
  bug-fixes (#101)"): it fixes the Llama-3 chat template's date to "10 Apr 2025", the date in
  every logged prompt, and updates community/leaderboard.md's forget_quality of the full
  Llama-3.2-1B on forget10 to 3.91e-22, the logged 3.9054713571083378e-22 (the number before it,
  1.66e-21, is not). ``src/evals/metrics/{memorization,privacy,utils}.py`` compute the numbers
  checked here identically up to 833ccae8a2644c96cce25a62377da51042c0a7d6; d3d7cf9e6b3c (24 Dec
  2025, "#163") changed the truth ratio: aggregator ``prob_mean`` with TR = P(correct) /
  (P(correct) + P(wrong)). The logs use TOFU's TR = P(wrong) / P(correct): their per-item values
  exceed 1 (e.g. 1.14 on item 1 of the full Llama-3.2-1B on forget10).

What open-unlearning computes at that commit (and what we compare with):

- truth ratio (``memorization.truth_ratio``): P(correct) = exp(-avg_loss of the paraphrased
  answer), P(wrong) = exp(-mean of the perturbed answers' avg_loss), TR = P(wrong) / (P(correct) +
  1e-10); ``forget_truth_ratio`` = mean(min(TR, 1 / (TR + 1e-10))) (``closer_to_1_better``).
  Ours has no 1e-10 guard: ours / theirs - 1 = 1e-10 / P(correct), at most 3.7e-8 over every
  forget-set item of the 24 TOFU logs (P(correct) >= 2.7e-3), so per-item truth ratios are
  compared with rel=1e-6: they span 1e-3 .. 1e2, where one absolute tolerance is loose on the
  small ones and tight on the large ones (the largest absolute gap, 7.2e-7 on a TR of 19.7, is
  not far from 1e-6). The aggregate lies in [0, 1]: abs=1e-6.
- forget_quality (``privacy.ks_test``): scipy's ``ks_2samp(...).pvalue`` of the full model's
  forget-set truth ratios against the retain model's on the same items. p-values of 1e-25 make an
  absolute tolerance vacuous: rel=1e-6 (they come out bitwise equal).
- ROUGE (``utils.eval_text_similarity``): ``rouge_scorer.RougeScorer(["rouge1", "rougeL"],
  use_stemmer=True).score(ground_truth, generation)``: rougeL_f1 = rougeL.fmeasure,
  rougeL_recall = rougeL.recall, rouge1_recall = rouge1.recall. abs=1e-6 (all 63,384 logged
  values of the 28 logs come out bitwise equal).
- privleak (``privacy.privleak``): with the logged AUCs s (model) and r (reference, the retain
  model's; 0.5, the config's ``ref_value``, for the retain models themselves) of ``mia_min_k``:
  ((1 - s) - (1 - r)) / ((1 - r) + 1e-10) x 100. In percent: abs=1e-6 (the 1e-10 guard moves it
  by at most 2.3e-8).
"""

import json
from pathlib import Path

import pytest

from mmu_bench.api import Records
from mmu_bench.api.metrics import rouge
from mmu_bench.measures.information import ForgetQuality, TruthRatioForget, record_truth_ratio, truth_ratio
from mmu_bench.measures.mia import auc, privleak

EXCERPT = Path(__file__).resolve().parent.parent / "fixtures" / "golden" / "open_unlearning_logs.json"
LOGS = json.loads(EXCERPT.read_text(encoding="utf-8"))
BALDRO_COMMIT = "12a0b0cc35de70e20862ea5a97e87b62437a543f"


def test_the_excerpt_is_the_pinned_one():
    assert LOGS["source"]["commit"] == BALDRO_COMMIT
    assert LOGS["source"]["produced_by"].endswith("8df291471d7a9549af7535facc4b2b22666c3091")


def records(log: str) -> list[dict]:
    """The log's forget-set items as our records: a generation item with its paraphrased and
    perturbed answers' mean token log-probabilities (minus open-unlearning's avg_loss)."""
    tr = LOGS["truth_ratio"][log]
    return [{"item_id": index, "format": "generation",
             "alternative_logprobs": {"paraphrased": -para, "perturbed": [-loss for loss in pert]}}
            for index, para, pert in zip(tr["index"], tr["paraphrased_avg_loss"], tr["perturbed_avg_loss"], strict=True)]


def scored(items: list[dict], reference: list[dict] | None = None) -> Records:
    """Our record set of one task: the scored model's items, and the gold reference's (the
    retain model, role ``oracle``) when given."""
    by_model = {"model": {"forget": items}}
    if reference is not None:
        by_model["oracle"] = {"forget": reference}
    return Records(task="forget", model="model", items=items, by_model=by_model)


@pytest.mark.parametrize("log", sorted(LOGS["truth_ratio"]))
def test_truth_ratio_of_every_item(log):
    logged = LOGS["truth_ratio"][log]["truth_ratio"]
    items = records(log)
    assert len(items) == len(logged) in (40, 400)
    for record, expected in zip(items, logged, strict=True):
        alternatives = record["alternative_logprobs"]
        ours = record_truth_ratio(record)
        assert ours == pytest.approx(expected, rel=1e-6), record["item_id"]
        # The same through the option form: the paraphrased answer as the correct option.
        assert truth_ratio([alternatives["paraphrased"], *alternatives["perturbed"]], correct=0) == ours


@pytest.mark.parametrize("log", sorted(LOGS["truth_ratio"]))
def test_truth_ratio_forget_is_the_logged_aggregate(log):
    value = TruthRatioForget().compute(scored(records(log)))
    assert value.n == len(LOGS["truth_ratio"][log]["index"])
    assert value.mean == pytest.approx(LOGS["truth_ratio"][log]["agg_value"], abs=1e-6)


@pytest.mark.parametrize("case", LOGS["forget_quality"], ids=lambda case: case["log"])
def test_forget_quality_is_the_logged_ks_p_value(case):
    value = ForgetQuality().compute(scored(records(case["log"]), records(case["reference_log"])))
    assert value.against == "oracle" and value.n == len(LOGS["truth_ratio"][case["log"]]["index"])
    assert value.mean == pytest.approx(case["forget_quality"], rel=1e-6)


ROUGE_CASES = [(log, metric, index, item) for log, metrics in LOGS["rouge"].items()
               for metric, items in metrics.items() for index, item in items.items()]


@pytest.mark.parametrize(("log", "metric", "index", "item"), ROUGE_CASES,
                         ids=[f"{log}:{metric}:{index}" for log, metric, index, _ in ROUGE_CASES])
def test_rouge_of_the_logged_generation(log, metric, index, item):
    generation, truth = item["generation"], item["ground_truth"]
    assert rouge(generation, truth, "rougeL", "fmeasure") == pytest.approx(item["rougeL_f1"], abs=1e-6)
    assert rouge(generation, truth, "rougeL", "recall") == pytest.approx(item["rougeL_recall"], abs=1e-6)
    assert rouge(generation, truth, "rouge1", "recall") == pytest.approx(item["rouge1_recall"], abs=1e-6)


def test_the_rouge_excerpt_has_partial_matches():
    # Not only verbatim answers (1.0) and misses (0.0): the comparison of recall with F1 means something.
    scores = [item["rougeL_f1"] for _, _, _, item in ROUGE_CASES]
    assert len(ROUGE_CASES) == 4 * 16 + 4 * (10 + 4)
    assert sum(0 < s < 1 for s in scores) > len(scores) / 2


@pytest.mark.parametrize("case", LOGS["privleak"], ids=lambda case: case["log"])
def test_privleak_from_the_logged_aucs(case):
    # Orientation: open-unlearning logs roc_auc_score with the holdout items labelled 1 and the
    # attack's score higher for less likely text, so its AUC is 1 when the forget items are
    # recognisable: ours (``auc``; test_mia_auc_from_the_logged_scores shows they agree). MUSE's
    # AUC is the reverse; open-unlearning turns it (1 - AUC) inside ``privleak``, ours too
    # (``measures/mia.py``). So the logged AUCs go in as they are, not as 1 - AUC.
    assert privleak(case["auc"], case["reference_auc"]) == pytest.approx(case["privleak"], abs=1e-6)


def test_privleak_cases_cover_both_benchmarks():
    logs = [case["log"] for case in LOGS["privleak"]]
    assert len(logs) == 4 * 3 * 2 + 2 * 2
    assert sum(case["reference_log"] is None and case["reference_auc"] == 0.5 for case in LOGS["privleak"]) == 14


@pytest.mark.parametrize("log", sorted(LOGS["mia_auc"]))
def test_mia_auc_from_the_logged_scores(log):
    case = LOGS["mia_auc"][log]
    assert auc(case["forget"], case["holdout"]) == pytest.approx(case["auc"], abs=1e-6)
