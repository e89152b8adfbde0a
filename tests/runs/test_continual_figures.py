"""What a stream of deletion requests says (``mmu_bench.runs.continual``), from hand-built
continual.jsonl lines whose every figure is worked out by hand below."""

import json

import numpy as np
import pytest

from mmu_bench.runs import continual
from mmu_bench.runs.results import ResultsError, TaskInfo

VF, TR, GU = "visual_forgetting", "textual_retention", "general_utility"

INFOS = {
    "vf": TaskInfo("1", VF, primary=True, higher_is_better=False, score=["mc", "cl"], order=1),
    "tr": TaskInfo("1", TR, primary=True, higher_is_better=True, score=["mc"], order=2),
    "gu": TaskInfo("1", GU, primary=True, higher_is_better=True, score=["mc"], order=4),
    # not primary: read by nobody here, though its sums are in the lines
    "vf_heldout": TaskInfo("1", VF, primary=False, higher_is_better=False, score=["mc"], order=0),
}
CHANCE = {VF: 0.1, TR: 0.25, GU: 0.25}
REQUESTS = [["a"], ["b"], ["c"]]


def vf(a, b, c):
    """Per person: (mc sum over 2 items, cl sum over 1 item); cl None: no cl item scored."""
    out = {}
    for person, (mc, cl) in zip("abc", (a, b, c)):
        out[person] = {"mc": [mc, 2]} | ({"cl": [cl, 1]} if cl is not None else {})
    return out


def tr(a, b, c, r1):
    """Per person: the mc sum over 4 items (r1: a retained person)."""
    return {p: {"mc": [s, 4]} for p, s in zip(["a", "b", "c", "r1"], (a, b, c, r1))}


def gu(one, two):
    return {"item:1": {"mc": [one, 1]}, "item:2": {"mc": [two, 1]}}


#                    vf: (mc/2, cl/1) of a, b, c       tr: of a, b, c, r1 (/4)   gu: items 1, 2
MODELS = [
    {"vf": vf((2, 1), (2, 1), (2, 0)), "tr": tr(4, 4, 4, 4), "gu": gu(1, 1)},  # 0: vanilla
    {"vf": vf((0, 0), (1, 1), (2, 0)), "tr": tr(3, 4, 4, 0), "gu": gu(1, 0)},  # after request 1
    {"vf": vf((1, 0), (1, 0), (1, 0)), "tr": tr(2, 3, 4, 0), "gu": gu(1, 1)},  # after request 2
    {"vf": vf((1, 1), (0, 0), (0, None)), "tr": tr(2, 2, 3, 0), "gu": gu(1, 0)},  # after request 3
]
GOLDS = [
    None,
    {"vf": vf((0, 0), (2, 1), (2, 1)), "tr": tr(4, 4, 4, 4), "gu": gu(1, 1)},  # gold of {a}
    None,  # request 2: no gold reference (floor: chance)
    {"vf": vf((1, 0), (0, 0), (0, 0)), "tr": tr(4, 4, 4, 4), "gu": gu(1, 1)},  # gold of {a, b, c}
]


def lines(models=MODELS, golds=GOLDS, requests=REQUESTS):
    out = [{"request": 0, "people": [], "model": "vanilla", "clusters": models[0], "gold": None}]
    for j, people in enumerate(requests, 1):
        out.append({"request": j, "people": people, "clusters": models[j], "gold": golds[j],
                    "gold_role": "visual_oracle" if golds[j] is not None else None})
    for line in out:  # the non-primary task's sums ride along
        line["clusters"] = {**line["clusters"], "vf_heldout": {"a": {"mc": [0.0, 1]}}}
    return out


def test_the_matrix_has_a_cell_for_every_request_and_every_evaluation_set():
    matrix = continual.figures(lines(), INFOS, CHANCE)["matrix"]
    assert set(matrix) == {f"{VF}:1", f"{VF}:2", f"{VF}:3", f"{TR}:1", f"{TR}:2", f"{TR}:3", GU}
    assert all(len(row) == 4 for row in matrix.values())  # before any request, then after each
    # visual forgetting on each request's people: mean of (mc mean, cl mean) over its items
    assert matrix[f"{VF}:1"] == pytest.approx([(1 + 1) / 2, (0 + 0) / 2, (0.5 + 0) / 2, (0.5 + 1) / 2])
    assert matrix[f"{VF}:2"] == pytest.approx([(1 + 1) / 2, (0.5 + 1) / 2, (0.5 + 0) / 2, (0 + 0) / 2])
    # c has no cl item after request 3: its score is its mc mean alone
    assert matrix[f"{VF}:3"] == pytest.approx([(1 + 0) / 2, (1 + 0) / 2, (0.5 + 0) / 2, 0.0])
    # textual retention on each request's people (r1, retained, is in no request)
    assert matrix[f"{TR}:1"] == pytest.approx([1, 3 / 4, 2 / 4, 2 / 4])
    assert matrix[f"{TR}:2"] == pytest.approx([1, 1, 3 / 4, 2 / 4])
    assert matrix[f"{TR}:3"] == pytest.approx([1, 1, 1, 3 / 4])
    # general utility has no people: all its items
    assert matrix[GU] == pytest.approx([1, 0.5, 1, 0.5])


def test_reversal_is_the_largest_rise_after_the_request_and_zero_when_it_only_falls():
    found = continual.figures(lines(), INFOS, CHANCE)
    # request 1's score after it: 0, then 0.25, 0.75: rose by 0.75 at most
    # request 2's: 0.25, then 0: it only fell
    assert found["reversal"] == pytest.approx([0.75, 0.0])
    reversal = continual.summary(lines(), INFOS, CHANCE)["reversal"]
    assert reversal["per_request"] == pytest.approx([0.75, 0.0]) and reversal["mean"] == pytest.approx(0.375)


def test_early_forgetting_is_the_drop_on_people_not_yet_requested():
    found = continual.figures(lines(), INFOS, CHANCE)
    # after request 1, on b and c (items pooled): vanilla mc 4/4, cl 1/2 -> 0.75;
    #   after: mc 3/4, cl 1/2 -> 0.625; drop 0.125
    # after request 2, on c: vanilla (1 + 0) / 2 = 0.5; after: (0.5 + 0) / 2 = 0.25; drop 0.25
    assert found["early_forgetting"] == pytest.approx([0.125, 0.25])
    assert continual.summary(lines(), INFOS, CHANCE)["early_forgetting"]["mean"] == pytest.approx(0.1875)


def test_erosion_is_the_least_squares_slope_of_each_retention_dimension():
    found = continual.figures(lines(), INFOS, CHANCE)
    # x = 0..3, x - mean = -1.5, -0.5, 0.5, 1.5, sum of squares 5.
    # textual retention over the whole forget set (a, b, c; not r1): 12/12, 11/12, 9/12, 7/12
    #   slope = (-1.5*12 - 0.5*11 + 0.5*9 + 1.5*7) / 12 / 5 = -8.5 / 60
    # general utility over all items: 1, 0.5, 1, 0.5: slope = (-1.5 - 0.25 + 0.5 + 0.75) / 5 = -0.1
    assert found["erosion"] == pytest.approx({TR: -8.5 / 60, GU: -0.1})
    assert set(found["erosion"]) == {TR, GU}  # forgetting does not erode
    series = continual.retention_series(lines(), INFOS)
    assert set(series) == {TR, GU}
    assert series[TR] == pytest.approx([12 / 12, 11 / 12, 9 / 12, 7 / 12]) and series[GU] == pytest.approx([1, 0.5, 1, 0.5])


def test_after_each_request_the_scores_are_normalised_against_vanilla_and_that_requests_gold():
    after = continual.figures(lines(), INFOS, CHANCE)["after"]
    assert [a["request"] for a in after] == [1, 2, 3] and [a["gold"] for a in after] == [True, False, True]
    # 1: everyone forgotten is a. forgetting 0 (vanilla 1, gold 0: floor gold) -> (1 - 0) / (1 - 0) = 1;
    #    textual retention on a 3/4 (vanilla 1); general utility 0.5 (vanilla 1)
    one = after[0]
    assert one["dimensions"] == pytest.approx({VF: 0.0, TR: 0.75, GU: 0.5})
    assert one["normalised"] == pytest.approx({VF: 1.0, TR: 0.75, GU: 0.5})
    assert one["overall"] == pytest.approx(3 / (1 / 1 + 1 / 0.75 + 1 / 0.5))  # = 9/13
    # 2: a and b. forgetting: mc 2/4, cl 0/2 -> 0.25; vanilla 1; no gold: chance 0.1 is the floor
    #    -> (1 - 0.25) / (1 - 0.1); textual retention (2 + 3) / 8; general utility 1
    two = after[1]
    assert two["dimensions"] == pytest.approx({VF: 0.25, TR: 5 / 8, GU: 1.0})
    assert two["normalised"] == pytest.approx({VF: 0.75 / 0.9, TR: 5 / 8, GU: 1.0})
    assert two["overall"] == pytest.approx(3 / (0.9 / 0.75 + 8 / 5 + 1))
    # 3: a, b, c. forgetting: mc 1/6, cl 1/2 (c has none) -> 1/3; vanilla mc 6/6, cl 2/3 -> 5/6;
    #    gold mc 1/6, cl 0/3 -> 1/12: (5/6 - 1/3) / (5/6 - 1/12) = 2/3. textual 7/12, utility 0.5
    three = after[2]
    assert three["dimensions"] == pytest.approx({VF: 1 / 3, TR: 7 / 12, GU: 0.5})
    assert three["normalised"] == pytest.approx({VF: 2 / 3, TR: 7 / 12, GU: 0.5})
    assert three["overall"] == pytest.approx(42 / 73)  # 3 / (3/2 + 12/7 + 2)
    summary = continual.summary(lines(), INFOS, CHANCE)
    assert summary["overall_after"] == pytest.approx([9 / 13, 3 / (1.2 + 1.6 + 1), 42 / 73])
    assert summary["requests"] == REQUESTS and summary["chance"] == CHANCE
    assert summary["forgetting"] == VF and summary["per_person"] == [VF, TR]


def test_a_gold_that_does_not_score_below_vanilla_falls_back_to_chance():
    golds = [None, GOLDS[1], None, {**GOLDS[3], "vf": MODELS[0]["vf"]}]  # the last gold scores as vanilla
    after = continual.figures(lines(golds=golds), INFOS, CHANCE)["after"]
    assert after[2]["gold"] is True
    # forgetting 1/3 against vanilla 5/6 and chance 0.1 (not the gold's 5/6)
    assert after[2]["normalised"][VF] == pytest.approx((5 / 6 - 1 / 3) / (5 / 6 - 0.1))
    # normalised scores are clipped to [0, 1]: request 1's forgetting (0 on a) is under chance
    golds = [None, {**GOLDS[1], "vf": MODELS[0]["vf"]}, None, GOLDS[3]]
    assert continual.figures(lines(golds=golds), INFOS, CHANCE)["after"][0]["normalised"][VF] == 1.0


def test_a_stream_without_any_gold_normalises_every_row_against_chance():
    after = continual.figures(lines(golds=[None] * 4), INFOS, CHANCE)["after"]
    assert [a["gold"] for a in after] == [False, False, False]
    # the last: forgetting 1/3 against vanilla 5/6 and chance 0.1
    assert after[2]["normalised"][VF] == pytest.approx((5 / 6 - 1 / 3) / (5 / 6 - 0.1))


def test_resampled_figures_under_unit_weights_are_the_plain_ones():
    plain = continual.figures(lines(), INFOS, CHANCE)
    ids = continual.cluster_ids(lines(), INFOS)
    assert ids == {"vf": ("a", "b", "c"), "tr": ("a", "b", "c", "r1"), "gu": ("item:1", "item:2")}
    ones = {task: np.ones((2, len(people))) for task, people in ids.items()}
    drawn = continual.figures(lines(), INFOS, CHANCE, ones)
    for key, row in plain["matrix"].items():
        assert np.allclose(np.stack(drawn["matrix"][key]), np.array(row)[:, None])
    assert np.allclose(np.stack(drawn["reversal"]), np.array(plain["reversal"])[:, None])
    assert np.allclose(drawn["after"][2]["overall"], plain["after"][2]["overall"])
    # a draw of a twice, b and c not at all: the forgetting score after request 3 is a's alone
    twice = {**ones, "vf": np.array([[2.0, 0.0, 0.0], [1.0, 1.0, 1.0]])}
    value = continual.figures(lines(), INFOS, CHANCE, twice)["after"][2]["dimensions"][VF]
    assert value == pytest.approx([(0.5 + 1) / 2, 1 / 3])


def test_continual_jsonl_round_trips_and_names_a_damaged_line(tmp_path):
    written = lines()
    written[2]["seconds"] = float("nan")
    (tmp_path / continual.CONTINUAL_FILE).write_text(continual.to_jsonl(written))
    back = continual.read(tmp_path)
    assert len(back) == 4 and back[2]["seconds"] is None and back[3]["clusters"]["vf"]["c"] == {"mc": [0, 2]}
    assert continual.read(tmp_path / "elsewhere") == []
    (tmp_path / continual.CONTINUAL_FILE).write_text(json.dumps(written[0]) + "\n{broken\n")
    with pytest.raises(ResultsError, match=r"continual.jsonl, line 2: not JSON"):
        continual.read(tmp_path)
