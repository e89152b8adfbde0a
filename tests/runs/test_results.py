import json
import math
import textwrap
from pathlib import Path

import pytest

from mmu_bench.api.measure import Value
from mmu_bench.harness import score as scoring
from mmu_bench.runs import results
from mmu_bench.runs.results import Normalisation, TaskInfo
from mmu_bench.spec import measures as spec_measures
from mmu_bench.spec.tasks import load_tasks

FIXTURE = Path(__file__).parents[1] / "fixtures" / "results_v1.json"


def _m(**values):
    return {k: Value(v, 0.0, 10) for k, v in values.items()}


def _tasks(**directions):
    return {dim: TaskInfo("1.1", dim, True, hib, score=["mc_loglik_acc", "cloze_acc", "rougeL"], order=i)
            for i, (dim, hib) in enumerate(directions.items())}


FOUR = dict(visual_forgetting=False, textual_retention=True, retained_vqa=True, general_utility=True)


def test_task_score_is_the_mean_of_the_score_measures():
    per = _m(mc_acc=0.1, mc_loglik_acc=0.9, cloze_acc=0.6, rougeL=0.3)
    assert results.task_score(per, ["mc_loglik_acc", "cloze_acc", "rougeL"]) == pytest.approx(0.6)
    assert results.task_score(per, ["mc_acc"]) == pytest.approx(0.1)
    assert math.isnan(results.task_score(per, ["missing"]))


def test_normalisation_by_hand():
    tasks = _tasks(**FOUR)
    dims = {
        "vanilla": {"visual_forgetting": 0.9, "textual_retention": 0.8, "retained_vqa": 0.8, "general_utility": 0.5},
        "oracle": {"visual_forgetting": 0.3, "textual_retention": 0.8, "retained_vqa": 0.8, "general_utility": 0.5},
    }
    spec = results.normalisation(dims, tasks, chance={"visual_forgetting": 0.1})
    assert spec["visual_forgetting"] == Normalisation(False, 0.9, "oracle", 0.3)
    unlearned = {"visual_forgetting": 0.45, "textual_retention": 0.4, "retained_vqa": 0.88, "general_utility": 0.25}
    norm = results.normalise(unlearned, spec)
    assert norm["visual_forgetting"] == pytest.approx((0.9 - 0.45) / (0.9 - 0.3))  # 0.75
    assert norm["textual_retention"] == pytest.approx(0.5)
    assert norm["retained_vqa"] == 1.0  # clipped
    assert norm["general_utility"] == pytest.approx(0.5)
    # harmonic mean of 0.75, 0.5, 1, 0.5 = 4 / (4/3 + 2 + 1 + 2)
    assert results.overall(norm, list(FOUR)) == pytest.approx(4 / (4 / 3 + 2 + 1 + 2))


def test_forgetting_falls_back_to_chance_without_a_useful_oracle():
    tasks = _tasks(visual_forgetting=False)
    for dims in ({"vanilla": {"visual_forgetting": 0.9}},
                 {"vanilla": {"visual_forgetting": 0.9}, "oracle": {"visual_forgetting": 0.95}}):
        spec = results.normalisation(dims, tasks, chance={"visual_forgetting": 0.1})
        assert spec["visual_forgetting"].floor == "chance"
        assert results.normalise({"visual_forgetting": 0.5}, spec)["visual_forgetting"] == pytest.approx(0.5)


def test_a_task_whose_yaml_says_lower_is_better_is_normalised_that_way(tmp_path):
    """Direction comes from the task file, whatever the dimension is called."""
    (tmp_path / "_base.yaml").write_text("prompt_version: 1\nprompts: {}\nformats: [cloze]\n"
                                         "measures: [cloze_acc]\nscore: [cloze_acc]\n")
    for name, hib in (("keep_text", "true"), ("forget_text", "false")):
        (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(f"""
            include: _base.yaml
            task: {name}
            version: 1
            dimension: {name}
            higher_is_better: {hib}
            data: {{split: forget}}
        """))
    tasks, measures = spec_measures.resolve(load_tasks(directory=tmp_path))
    infos = scoring.task_infos(tasks, measures)
    assert infos["forget_text"].directions == {"cloze_acc": False}  # a measure of knowledge follows its task
    dims = {"vanilla": {"keep_text": 0.8, "forget_text": 0.8}}
    spec = results.normalisation(dims, infos, chance={"forget_text": 0.0})
    norm = results.normalise({"keep_text": 0.2, "forget_text": 0.2}, spec)
    assert norm["keep_text"] == pytest.approx(0.25)  # 0.2 / 0.8
    assert norm["forget_text"] == pytest.approx(0.75)  # (0.8 - 0.2) / (0.8 - 0)


def test_collapse_anywhere_zeroes_the_overall_score():
    assert results.harmonic_mean([1.0, 1.0, 0.0, 1.0]) == 0.0
    assert math.isnan(results.harmonic_mean([1.0, float("nan")]))


def test_a_schema_1_file_loads_and_normalises_as_it_did():
    """A results.json written by mmu-bench before measures were plugins. The expected reference
    values are what that version's leaderboard computed from this very file."""
    result = results.read(FIXTURE)
    assert json.loads(FIXTURE.read_text())["schema_version"] == 1
    assert result.schema_version == results.SCHEMA_VERSION  # upgraded on reading
    assert result.dimension_order() == ["visual_forgetting", "textual_retention", "retained_vqa", "general_utility"]
    assert result.scores["unlearned"]["visual_forgetting"]["mc_loglik_acc"].n == 50
    assert result.overall == pytest.approx(0.7670477835145538)
    assert result.overall_of("vanilla") == 0.0
    assert result.overall_of("oracle") == pytest.approx(0.6992836457857033)
    assert result.normalised_of("oracle")["textual_retention"] == pytest.approx(0.3676282051282051)
    assert result.normalisation["visual_forgetting"].floor == "oracle"
    assert result.tasks["visual_forgetting"].directions["mc_acc"] is False


def test_round_trip_and_versions(tmp_path):
    result = results.read(FIXTURE)
    path = tmp_path / "results.json"
    path.write_text(result.to_json())
    again = results.read(path)
    assert again.scores == result.scores and again.normalisation == result.normalisation
    assert json.loads(path.read_text())["schema_version"] == results.SCHEMA_VERSION
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(results.ResultsError, match=f"{path}: schema_version 99 is not one this mmu-bench reads.*upgrade"):
        results.read(path)
    del data["schema_version"]
    path.write_text(json.dumps(data))
    with pytest.raises(results.ResultsError, match="schema_version None"):
        results.read(path)
    data["schema_version"] = results.SCHEMA_VERSION
    del data["tasks"]
    path.write_text(json.dumps(data))
    with pytest.raises(results.ResultsError, match="not a valid results file.*KeyError: 'tasks'"):
        results.read(path)
