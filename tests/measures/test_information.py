"""Does the information remain? Truth ratio, forget quality (KS), membership-inference scores,
AUC and PrivLeak against values computed by hand; absent values carry their reason."""

import itertools
import math
import random
import textwrap

import pytest

from mmu_bench.api import NotApplicable
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.harness import score as scoring
from mmu_bench.measures.information import ForgetQuality, TruthRatioForget, TruthRatioRetain, truth_ratio
from mmu_bench.measures.mia import (
    ATTACKS,
    MinKPlusPlusAUC,
    MinKPlusPlusPrivLeak,
    auc,
    loss_score,
    min_k_pp_score,
    min_k_score,
    privleak,
    zlib_score,
)
from mmu_bench.spec import measures as spec_measures
from mmu_bench.spec.tasks import load_tasks
from task_files import write_base


def mc(item, option_logprobs, answer="A", task="t", **extra):
    return {"task": task, "item_id": item, "format": "multiple_choice", "answer": answer, "output": "",
            "options": ["baker", "pilot", "nurse", "tailor"][: len(option_logprobs)],
            "option_logprobs": option_logprobs, "answer_logprobs": [option_logprobs[0]],
            "answer_expected_logprobs": [-1.0], "answer_logprob_variances": [1.0], **extra}


def gen(item, logprobs, task="t", answer="baker"):
    return {"task": task, "item_id": item, "format": "generation", "answer": answer, "output": "",
            "answer_logprobs": logprobs, "answer_expected_logprobs": [-1.0] * len(logprobs),
            "answer_logprob_variances": [4.0] * len(logprobs)}


@pytest.fixture
def tasks(tmp_path):
    write_base(tmp_path, [], [])
    (tmp_path / "t.yaml").write_text(textwrap.dedent("""
        include: _base.yaml
        task: t
        version: 1
        dimension: d
        higher_is_better: false
        data: {split: forget}
        add_measures:
          - truth_ratio_forget
          - truth_ratio_retain
          - {measure: forget_quality, against: gold}
          - {measure: mia_auc_min_k_pp, holdout: h}
          - {measure: privleak_min_k_pp, holdout: h, against: gold}
    """))
    (tmp_path / "h.yaml").write_text("include: _base.yaml\ntask: h\nversion: 1\ndimension: d\nprimary: false\n"
                                     "higher_is_better: false\ndata: {split: holdout}\n")
    return load_tasks(["t", "h"], directory=tmp_path)


def test_truth_ratio_by_hand():
    # Wrong options' mean log-probability: (-2 - 3 - 0.5) / 3 = -11/6; correct: -1.
    tr = truth_ratio([-1.0, -2.0, -3.0, -0.5], correct=0)
    assert tr == pytest.approx(math.exp(-11 / 6 + 1))  # 0.4346
    record = mc("a", [-1.0, -2.0, -3.0, -0.5])
    assert TruthRatioForget().item(record, {}) == pytest.approx(0.434598, abs=1e-6)  # min(TR, 1/TR)
    assert TruthRatioRetain().item(record, {}) == pytest.approx(1 - 0.434598, abs=1e-6)  # max(0, 1 - TR)
    # A model preferring a wrong answer: TR = e^1 > 1, so the forget statistic is 1/TR and the retain one 0.
    wrong = mc("b", [-2.0, -1.0, -1.0, -1.0])
    assert TruthRatioForget().item(wrong, {}) == pytest.approx(math.exp(-1))
    assert TruthRatioRetain().item(wrong, {}) == 0.0


def test_truth_ratio_of_paraphrased_and_perturbed_answers_by_hand(tasks):
    # CLEAR's captions: TR = exp(mean of the perturbed captions' mean log-probabilities - the
    # paraphrased caption's): perturbed -2 and -4 (mean -3), paraphrased -1 -> TR = e^-2.
    caption = {**gen("c", [-1.0]), "alternative_logprobs": {"paraphrased": -1.0, "perturbed": [-2.0, -4.0]}}
    assert TruthRatioForget().item(caption, {}) == pytest.approx(math.exp(-2))
    assert TruthRatioRetain().item(caption, {}) == pytest.approx(1 - math.exp(-2))
    # A generation item without them has no truth ratio: skipped, not zero.
    assert TruthRatioForget().item(gen("g", [-1.0]), {}) is None
    # Forget quality reads both kinds of item and skips the others.
    items = lambda shift: [mc("m", [0.0, shift, shift, shift]), gen("g", [-1.0]),  # noqa: E731
                           {**gen("c", [-1.0]), "alternative_logprobs": {"paraphrased": 0.0, "perturbed": [2 * shift]}}]
    records = {"unlearned": items(-1.0), "visual_oracle": items(-1.0)}
    tasks, measures = spec_measures.resolve(tasks)
    value = scoring.score(records, tasks, measures, models=["unlearned"])["unlearned"]["t"]["forget_quality"]
    assert value.n == 2 and value.mean == pytest.approx(1.0)


def test_forget_quality_is_the_ks_p_value_by_hand(tasks):
    # Truth ratios e^-1, e^-2, e^-3 (unlearned) and e^1, e^2, e^3 (gold): the samples do not
    # overlap, so D = 1 and the exact two-sided p-value is 2 / C(6, 3) = 0.1.
    def items(shifts):
        return [mc(f"i{k}", [0.0, s, s, s]) for k, s in enumerate(shifts)]

    records = {"unlearned": items([-1.0, -2.0, -3.0]), "visual_oracle": items([1.0, 2.0, 3.0]),
               "oracle": items([-1.0, -2.0, -3.0])}
    tasks, measures = spec_measures.resolve(tasks)
    value = scoring.score(records, tasks, measures, models=["unlearned"])["unlearned"]["t"]["forget_quality"]
    assert value.mean == pytest.approx(0.1) and value.against == "visual_oracle" and value.n == 3
    # Without a visual oracle the oracle is the gold reference; identical truth ratios: p = 1.
    del records["visual_oracle"]
    value = scoring.score(records, tasks, measures, models=["unlearned"])["unlearned"]["t"]["forget_quality"]
    assert value.mean == pytest.approx(1.0) and value.against == "oracle"


def test_attack_scores_by_hand():
    logprobs = [-0.1, -2.0, -0.5, -1.0, -3.0]
    assert loss_score(logprobs) == pytest.approx(1.32)  # 6.6 / 5
    assert zlib_score(logprobs, "baker") == pytest.approx(1.32 / 13)  # zlib.compress(b"baker") is 13 bytes
    # k = 0.4 of 5 tokens: the 2 lowest, -3 and -2.
    assert min_k_score(logprobs) == pytest.approx(2.5)
    # Standardised by mean -1 and variance 4: z = (lp + 1) / 2 = 0.45, -0.5, 0.25, 0, -1; lowest two -1, -0.5.
    assert min_k_pp_score(logprobs, [-1.0] * 5, [4.0] * 5) == pytest.approx(0.75)
    assert min_k_score([-0.7]) == pytest.approx(0.7)  # at least one token


def test_auc_matches_a_brute_force_pair_count():
    rng = random.Random(0)
    for _ in range(20):
        members = [rng.choice([0.1, 0.5, 1.0, 1.5, 2.0]) for _ in range(rng.randint(1, 12))]
        holdout = [rng.choice([0.5, 1.0, 2.0, 3.0]) for _ in range(rng.randint(1, 12))]
        pairs = [(h > m) + 0.5 * (h == m) for h, m in itertools.product(holdout, members)]
        assert auc(members, holdout) == pytest.approx(sum(pairs) / len(pairs))
    assert auc([0.1, 0.2], [1.0, 2.0]) == 1.0  # every trained item is likelier: recognisable
    assert auc([1.0, 2.0], [1.0, 2.0]) == 0.5


def test_privleak_is_muses_in_percent():
    # MUSE's AUC is 1 - ours: (0.1 - 0.4) / 0.4 x 100. More recognisable than the gold model: negative.
    assert privleak(0.9, 0.6) == pytest.approx(-75.0)
    assert privleak(0.45, 0.6) == pytest.approx(37.5)  # (0.55 - 0.4) / 0.4: less, over-unlearned
    assert privleak(0.6, 0.6) == 0.0
    # open-unlearning's Llama-3.2-1B TOFU forget10 log: Min-K AUC 0.99665, retain model's 0.38261.
    assert privleak(0.99665, 0.38261) == pytest.approx(-99.45739, abs=1e-5)
    with pytest.raises(NotApplicable, match="AUC is 1"):
        privleak(0.7, 1.0)


def test_min_k_attacks_leave_out_the_end_of_answer_token_and_loss_keeps_it():
    # The last log-probability is the end-of-answer token's, here the lowest.
    record = gen("f0", [-0.1, -0.3, -6.0])
    record["answer_expected_logprobs"], record["answer_logprob_variances"] = [-1.0, -1.0, -1.0], [4.0, 4.0, 4.0]
    assert ATTACKS["min_k"](record) == pytest.approx(0.3)  # k = 0.4 of 2 tokens: the lowest one, -0.3
    assert ATTACKS["min_k_pp"](record) == pytest.approx(-0.35)  # z = (-0.3 + 1) / 2
    assert ATTACKS["loss"](record) == pytest.approx(6.4 / 3)
    assert ATTACKS["zlib"](record) == pytest.approx(6.4 / 3 / 13)
    assert ATTACKS["min_k"](gen("f1", [-2.0])) == pytest.approx(2.0)  # an answer of the end token alone keeps it


def test_mia_measures_compare_task_items_with_holdout_items(tasks):
    def model(member_lp, holdout_lp):
        return ([gen(f"f{k}", [lp] * 5) for k, lp in enumerate(member_lp)]
                + [gen(f"h{k}", [lp] * 5, task="h") for k, lp in enumerate(holdout_lp)])

    # Min-K%++ score = -(lp + 1) / 2: the unlearned model separates 3 of 4 pairs; gold 2 of 4.
    records = {"unlearned": model([-0.5, -2.0], [-1.0, -3.0]), "visual_oracle": model([-1.0, -2.0], [-1.5, -1.5])}
    tasks, measures = spec_measures.resolve(tasks)
    scores = scoring.score(records, tasks, measures)
    assert scores["unlearned"]["t"]["mia_auc_min_k_pp"].mean == pytest.approx(0.75)
    assert scores["visual_oracle"]["t"]["mia_auc_min_k_pp"].mean == pytest.approx(0.5)
    leak = scores["unlearned"]["t"]["privleak_min_k_pp"]
    assert leak.mean == pytest.approx(-50.0) and leak.against == "visual_oracle"  # (0.5 - 0.75) / 0.5 x 100
    # The gold model compared with itself has no value, and says why.
    assert "is the reference" in scores["visual_oracle"]["t"]["privleak_min_k_pp"].absent
    assert math.isnan(scores["visual_oracle"]["t"]["privleak_min_k_pp"].mean)


def test_a_measure_without_its_data_is_absent_with_a_reason(tasks):
    tasks, measures = spec_measures.resolve(tasks)
    # No holdout items, no gold model, no multiple-choice items.
    records = {"unlearned": [gen("f0", [-1.0]), gen("f1", [-2.0])], "vanilla": [gen("f0", [-1.0]), gen("f1", [-2.0])]}
    scores = scoring.score(records, tasks, measures, models=["unlearned"])["unlearned"]["t"]
    assert "no holdout items" in scores["mia_auc_min_k_pp"].absent
    assert "no holdout items" in scores["privleak_min_k_pp"].absent or "no gold" in scores["privleak_min_k_pp"].absent
    assert scores["forget_quality"].absent.startswith("fewer than 2 items with a truth ratio")
    assert "truth_ratio_forget" not in scores  # no item it applies to
    cloze = {m: [{**r, "format": "cloze"} for r in rs] for m, rs in records.items()}
    only_cloze = scoring.score(cloze, tasks, measures, models=["unlearned"])["unlearned"]["t"]
    assert only_cloze["truth_ratio_forget"].absent == "no multiple_choice or generation items"
    assert all(math.isnan(v.mean) for v in scores.values())
    records["unlearned"] += [mc("m0", [-1.0, -2.0]), mc("m1", [-1.0, -3.0])]
    records["vanilla"] += [mc("m0", [-1.0, -2.0]), mc("m1", [-1.0, -3.0])]
    scores = scoring.score(records, tasks, measures, models=["unlearned"])["unlearned"]["t"]
    assert scores["forget_quality"].absent == "no gold reference model (visual_oracle or oracle) in this run"
    assert scores["truth_ratio_forget"].absent is None and scores["truth_ratio_forget"].n == 2


def test_measure_options_come_from_the_task_file_and_are_checked(tasks, tmp_path):
    t = next(x for x in tasks if x.name == "t")
    assert t.options["mia_auc_min_k_pp"] == {"holdout": "h"}
    _, measures = spec_measures.resolve([t])
    assert measures.of(t, "mia_auc_min_k_pp").other_tasks == ("h",)
    assert measures.of(t, "forget_quality").references == ()  # "gold": whichever gold model is at hand
    assert spec_measures.needed([t], measures, tasks) == tasks  # the holdout task is evaluated too
    assert isinstance(measures.of(t, "privleak_min_k_pp"), MinKPlusPlusPrivLeak)
    assert isinstance(measures.make("mia_auc_min_k_pp", {"holdout": "x"}), MinKPlusPlusAUC)
    with pytest.raises(MMUBenchError, match="'forget_quality' has no option\\(s\\) holdot \\(its options: against\\)"):
        ForgetQuality(holdot="h")
    (tmp_path / "t.yaml").write_text((tmp_path / "t.yaml").read_text().replace("holdout: h}", "holdot: h}", 1))
    with pytest.raises(MMUBenchError, match="t.yaml.*'mia_auc_min_k_pp' has no option\\(s\\) holdot"):
        spec_measures.resolve(load_tasks(["t"], directory=tmp_path))


def test_privleak_is_absent_when_the_reference_auc_is_one(tasks):
    # The gold model finds every forget item likelier than every holdout item: AUC 1 (MUSE's 0),
    # PrivLeak undefined.
    records = {"unlearned": [gen("f0", [-1.0]), gen("h0", [-2.0], task="h")],
               "visual_oracle": [gen("f0", [-0.5]), gen("h0", [-3.0], task="h")]}
    tasks, measures = spec_measures.resolve(tasks)
    value = scoring.score(records, tasks, measures, models=["unlearned"])["unlearned"]["t"]["privleak_min_k_pp"]
    assert value.absent == "the visual_oracle model's AUC is 1 (MUSE's AUC 0): PrivLeak is undefined"
