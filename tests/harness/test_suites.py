"""General utility through lmms-eval (issue #16): how suite scores join a dimension, read by
hand; the seeded sample; the log-likelihoods lmms-eval's multiple-choice tasks get; without the
extra, a clear error before any work; and, with it, a local task in lmms-eval's format run on
the tiny model end to end, its scores checked against answers made from the vanilla model's own
outputs, in results.json, table.md and the leaderboard."""

import csv
import json
import os
import sys
from types import SimpleNamespace

import datasets
import pytest
from PIL import Image

from mmu_bench.api.measure import Value
from mmu_bench.cli import main, make_parser
from mmu_bench.cli.options import build_config
from mmu_bench.harness import suites
from mmu_bench.runs.results import TaskInfo, dimension_scores
from mmu_bench.spec import utility
from small import SMALL

HAS_LMMS = utility.version() != ""
needs_lmms = pytest.mark.skipif(not HAS_LMMS and not os.environ.get("MMU_BENCH_REQUIRE_UTILITY"),
                                reason=f"lmms-eval is not installed ({utility.EXTRA})")


def info(primary, joins=False, dim="general_utility"):
    return TaskInfo(version="1", dimension=dim, primary=primary, higher_is_better=True, score=["acc"], joins=joins)


def test_joining_tasks_make_the_dimension_the_mean_of_ratios_to_vanilla():
    tasks = {"gu": info(True), "suite/a": info(False, joins=True), "suite/b": info(False, joins=True),
             "vf": TaskInfo(version="1", dimension="visual_forgetting", primary=True, higher_is_better=False,
                            score=["acc"])}
    v = lambda x: {"acc": Value(x, None, 4)}  # noqa: E731
    vanilla = {"gu": v(0.8), "suite/a": v(0.5), "suite/b": v(0.25), "vf": v(0.9)}
    model = {"gu": v(0.4), "suite/a": v(0.5), "suite/b": v(0.5), "vf": v(0.3)}
    dims = dimension_scores(model, tasks, vanilla)
    assert dims["general_utility"] == pytest.approx((0.4 / 0.8 + 0.5 / 0.5 + 0.5 / 0.25) / 3)
    assert dims["visual_forgetting"] == 0.3  # other dimensions: their primary task, as before
    assert dimension_scores(vanilla, tasks, vanilla)["general_utility"] == pytest.approx(1.0)
    reported = {k: (info(False) if k.startswith("suite/") else t) for k, t in tasks.items()}
    assert dimension_scores(model, reported, vanilla)["general_utility"] == 0.4  # not joining: unchanged


def test_lmms_eval_results_are_read_into_tasks_and_metrics():
    found = {"results": {"t1": {"alias": "t1", "exact_match,none": 0.75, "exact_match_stderr,none": "N/A",
                                "anls,strip": 0.5},
                         "grp": {"alias": "grp", "acc,none": 0.1}},
             "higher_is_better": {"t1": {"exact_match": True, "anls": True}}}
    got = suites._read(found, {"t1": 4})
    assert list(got.scores) == ["suite/t1"]
    assert {m: (v.mean, v.n) for m, v in got.scores["suite/t1"].items()} == {"exact_match": (0.75, 4),
                                                                           "anls/strip": (0.5, 4)}
    infos = suites.task_infos(got, joins=False)
    assert infos["suite/t1"].score == ["exact_match", "anls/strip"] and infos["suite/t1"].suite == "lmms-eval"
    with pytest.raises(Exception, match="higher is better"):
        suites._read({"results": {"t": {"loss,none": 1.0}}, "higher_is_better": {"t": {"loss": False}}}, {"t": 1})


def test_the_sample_is_seeded_and_the_same_for_every_model():
    def task():
        data = datasets.Dataset.from_dict({"q": [str(i) for i in range(10)]})
        return SimpleNamespace(config=SimpleNamespace(test_split="test", validation_split=None, task="t"),
                               dataset={"test": data}, dataset_no_image={"test": data})

    a, b, c = task(), task(), task()
    assert suites.sample(a, 4, seed=0) == 4 and suites.sample(b, 4, seed=0) == 4 and suites.sample(c, 4, seed=1) == 4
    assert a.dataset["test"]["q"] == b.dataset["test"]["q"] == a.dataset_no_image["test"]["q"]
    assert a.dataset["test"]["q"] != c.dataset["test"]["q"]
    whole = task()
    assert suites.sample(whole, None, 0) == 10 and suites.sample(whole, 50, 0) == 10


def test_a_missing_lmms_eval_fails_before_any_work_naming_the_extra(tmp_path, monkeypatch, capsys):
    import mmu_bench.harness.run

    def no_work(*args, **kwargs):
        raise AssertionError("model work started")

    monkeypatch.setattr(mmu_bench.harness.run, "open_session", no_work)
    monkeypatch.setitem(sys.modules, "lmms_eval.evaluator", None)  # `import` now fails, as if not installed
    out = tmp_path / "out"
    for args in (["run", "--method", "ga"], ["sweep", "--methods", "ga"]):
        assert main([*args, "--output-dir", str(out), "--quiet", "--utility-suite", "pope"]) == 2
        err = capsys.readouterr().err
        assert "--utility-suite needs lmms-eval" in err and utility.EXTRA in err
    assert not out.exists()
    assert main(["run", "--utility-limit", "3", "--output-dir", str(out)]) == 2
    assert "need --utility-suite" in capsys.readouterr().err


def test_the_run_key_tells_suite_runs_apart_and_keeps_earlier_keys():
    from mmu_bench.spec.config import RunConfig
    from mmu_bench.spec.plan import run_key

    info = {"name": "ga", "source_sha256": "x", "config": {}}
    variants = ({}, {"utility_suite": ["pope"]}, {"utility_suite": ["pope"], "utility_in_overall": True},
                {"utility_suite": ["pope"], "utility_limit": 5}, {"utility_suite": "pope,mme"})
    assert len({run_key(RunConfig(**kw), info) for kw in variants}) == len(variants)
    assert run_key(RunConfig(), info) == run_key(RunConfig(utility_suite=[]), info)
    assert RunConfig(utility_suite="pope, mme").utility_suite == ["pope", "mme"]


# -- end to end, with lmms-eval ---------------------------------------------------------------

def small_session():
    from mmu_bench.harness.run import prepare
    from mmu_bench.spec.plan import for_references

    return prepare(for_references(build_config(make_parser().parse_args(["prepare", *SMALL])), progress=False),
                   progress=False)


def write_task(folder, vanilla, processor):
    """Four items whose answers are the vanilla model's own greedy outputs on the first two and
    wrong on the others (exact match 0.5 for it), and a multiple-choice twin whose right choice is
    the vanilla model's most likely one on the first two (accuracy 0.5)."""
    from mmu_bench.api.encoding import encode_many
    from mmu_bench.harness.evaluate import answer_logprobs, greedy_outputs

    images = [Image.new("RGB", (32, 32), colour) for colour in ("red", "green", "blue", "white")]
    questions = ["who is this person", "what is shown here", "name the person", "who is it"]
    outputs = greedy_outputs(vanilla, processor, [(q, im, 8) for q, im in zip(questions, images)], 4)
    answers = [outputs[0], outputs[1], "zzz wrong", "zzz wrong"]
    choices = ["alpha", "bravo", "charlie"]
    prompts = encode_many(processor, [(q, im, None) for q, im in zip(questions, images)])
    labels = []
    for i, prompt in enumerate(prompts):
        lps = answer_logprobs(vanilla, processor, [prompt] * 3, [" " + c for c in choices], 3)
        losses = [-sum(r["answer_logprobs"][:-1]) for r in lps]  # without the EOS the encoding appends
        best = min(range(3), key=losses.__getitem__)
        labels.append(best if i < 2 else (best + 1) % 3)
    data = folder / "data"
    data.mkdir(parents=True)
    features = datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"),
                                  "answer": datasets.Value("string"), "choices": datasets.Sequence(datasets.Value("string")),
                                  "label": datasets.Value("int64")})
    datasets.Dataset.from_dict({"image": images, "question": questions, "answer": answers,
                                "choices": [choices] * 4, "label": labels}, features=features).to_parquet(
        str(data / "items.parquet"))
    common = ("dataset_path: parquet\ndataset_kwargs:\n  data_files:\n    test: data/items.parquet\n"
              "test_split: test\ndoc_to_visual: image\ndoc_to_text: \"{{question}}\"\nmetadata:\n  version: 0.0\n")
    (folder / "gen.yaml").write_text(
        "task: mmu_test_local_gen\n" + common + "output_type: generate_until\ndoc_to_target: answer\n"
        "generation_kwargs:\n  max_new_tokens: 8\n  until: [\"\\n\"]\n"
        "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n")
    (folder / "mc.yaml").write_text(
        "task: mmu_test_local_mc\n" + common + "output_type: multiple_choice\ndoc_to_choice: choices\n"
        "doc_to_target: label\ntarget_delimiter: \" \"\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n")


@needs_lmms
def test_a_local_lmms_eval_task_end_to_end(tmp_path):
    session = small_session()
    loaded = session.provider.load("vanilla", session.benchmark)
    tasks = tmp_path / "tasks"
    write_task(tasks, loaded.model.eval(), loaded.processor)
    out = tmp_path / "runs"
    assert main(["run", "--method", "ga", "--method-arg", "steps=2", *SMALL, "--output-dir", str(out),
                 "--utility-suite", "mmu_test_local_gen,mmu_test_local_mc", "--utility-tasks", str(tasks),
                 "--utility-limit", "4", "--utility-in-overall"]) == 0
    [path] = out.glob("**/results.json")
    result = json.loads(path.read_text())
    gen, mc = "suite/mmu_test_local_gen", "suite/mmu_test_local_mc"
    assert result["scores"]["vanilla"][gen]["exact_match"] == {"mean": 0.5, "stderr": None, "n": 4}
    assert result["scores"]["vanilla"][mc]["acc"]["mean"] == 0.5
    for who in ("unlearned", "oracle", "visual_oracle"):
        assert result["scores"][who][gen]["exact_match"]["n"] == 4 and result["scores"][who][mc]["acc"]["n"] == 4
    assert result["tasks"][gen]["joins"] is True and result["tasks"][gen]["dimension"] == "general_utility"
    assert result["protocol"]["utility_suite"]["limit"] == 4 and result["protocol"]["utility_suite"]["joins_overall"]

    # --utility-in-overall: the dimension is the mean of each task's score over the vanilla model's
    def ratio(who, task, metric):
        return result["scores"][who][task][metric]["mean"] / result["scores"]["vanilla"][task][metric]["mean"]

    primary = [n for n, t in result["tasks"].items() if t["primary"] and t["dimension"] == "general_utility"][0]
    measures = result["tasks"][primary]["score"]
    prim = (sum(result["scores"]["unlearned"][primary][m]["mean"] for m in measures)
            / sum(result["scores"]["vanilla"][primary][m]["mean"] for m in measures))
    expected = (prim + ratio("unlearned", gen, "exact_match") + ratio("unlearned", mc, "acc")) / 3
    assert result["dimensions"]["unlearned"]["general_utility"] == pytest.approx(expected)
    assert result["dimensions"]["vanilla"]["general_utility"] == pytest.approx(1.0)
    assert "suite/mmu_test_local_gen" in (path.parent / "table.md").read_text()

    board = tmp_path / "board"
    assert main(["leaderboard", "--runs", str(out), "--output", str(board)]) == 0
    [table] = board.glob("*.csv")
    rows = list(csv.DictReader(table.open()))
    vanilla_row = next(r for r in rows if r["method"] == "vanilla (reference)")
    assert float(vanilla_row[f"{gen}/score_mean"]) == 0.5 and float(vanilla_row[f"{gen}/normalised_mean"]) == 1.0
    method_row = next(r for r in rows if r["method"] == "ga")
    assert float(method_row[f"{mc}/score_mean"]) == result["scores"]["unlearned"][mc]["acc"]["mean"]
    assert "General utility suites" in next(board.glob("*.md")).read_text()
