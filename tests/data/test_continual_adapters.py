"""Continual unlearning on the real benchmarks' adapters (MLLMU-Bench, CLEAR), on their small
fixtures in the Hugging Face schemas: requests from their nested forget splits (as PULSE splits
MLLMU-Bench: forget_5 first, then the rest of forget_10), and whole streams run end to end with
a tiny random-weight LLaVA (LoRA)."""

import json
import math

import pytest

from mmu_bench.cli import main, make_parser
from mmu_bench.cli.options import build_config
from mmu_bench.data import clear, mllmu
from mmu_bench.harness.continual import relabel, requests_of
from mmu_bench.harness.session import load_benchmark
from mmu_bench.spec import registry
from mmu_bench.spec.continual import split_people
from mmu_bench.spec.plan import for_run
from random_mllms import save_llava
from real_fixtures import CLEAR_FORGET, MLLMU_FORGET, mllmu_rows, write_clear, write_mllmu

LOADERS = {"mllmu": mllmu.load, "clear": clear.load}
SPLITS = {"mllmu": MLLMU_FORGET, "clear": CLEAR_FORGET}
# The fixtures have two forget people at 10 %: MLLMU-Bench's cloze demonstrations come from one
# of them (its eval draws two, which would leave none to score).
FEW_SHOTS = {"mllmu": ["--protocol-arg", "shots.cloze=1"], "clear": []}
FAST = {"dtype": "float32", "steps": 3, "lr": 1e-3, "batch_size": 4, "device": "cpu", "lora": "true"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    base = tmp_path_factory.mktemp("sources")
    return {"mllmu": write_mllmu(base / "mllmu"), "clear": write_clear(base / "clear"),
            "cache": base / "hf-cache"}


@pytest.fixture(scope="module")
def llava(tmp_path_factory, _isolated_home):
    return save_llava(tmp_path_factory.mktemp("hub") / "llava")


def bench_args(sources, bench) -> list[str]:
    return ["--benchmark", bench, "--benchmark-arg", f"source={sources[bench]}",
            "--benchmark-arg", f"cache_dir={sources['cache']}", *FEW_SHOTS[bench]]


def model_args(folder, **extra) -> list[str]:
    args = ["--model", f"hf:{folder}", "--min-vanilla-mc", "0", "--eval-limit", "1", "--eval-batch-size", "8",
            "--quiet", "--trajectory", "0"]
    return args + [a for k, v in {**FAST, **extra}.items() for a in ("--model-arg", f"{k}={v}")]


def plan_of(sources, bench, *flags):
    return for_run(build_config(make_parser().parse_args(["run", "--method", "ga", *bench_args(sources, bench),
                                                          *flags])), progress=False)


# -- the requests, from the benchmarks alone --------------------------------------------------------


@pytest.mark.parametrize("bench", ["mllmu", "clear"])
def test_the_fixtures_forget_splits_are_nested(sources, bench):
    ratios = sorted(SPLITS[bench])
    loaded = [LOADERS[bench](r, source=str(sources[bench]), cache_dir=str(sources["cache"])) for r in ratios]
    for ratio, benchmark in zip(ratios, loaded):
        assert sorted(benchmark.forget_entities) == sorted(SPLITS[bench][ratio])
    for smaller, larger in zip(loaded, loaded[1:]):
        assert set(smaller.forget_entities) < set(larger.forget_entities)


def test_mllmu_request_ratios_are_forget_5_then_the_rest_of_forget_10(sources):
    plan = plan_of(sources, "mllmu", "--request-ratios", "5,10")
    assert plan.config.forget_ratio == 10
    assert requests_of(plan, load_benchmark(plan)) == [["101"], ["102"]]
    # the three splits: forget_5, then what forget_10 adds, then what forget_15 adds
    plan = plan_of(sources, "mllmu", "--request-ratios", "5,10,15")
    assert requests_of(plan, load_benchmark(plan)) == [["101"], ["102"], ["103"]]


def test_clear_request_ratios_follow_its_splits_1_5_10(sources):
    plan = plan_of(sources, "clear", "--request-ratios", "1,5,10")
    assert requests_of(plan, load_benchmark(plan)) == [["Jambo Mpendulo"], ["Nadia Nowak"], ["Youssef Al-Zahran"]]
    plan = plan_of(sources, "clear", "--request-ratios", "5,10")
    assert requests_of(plan, load_benchmark(plan)) == [["Jambo Mpendulo", "Nadia Nowak"], ["Youssef Al-Zahran"]]


@pytest.mark.parametrize("bench,ratio", [("mllmu", 10), ("clear", 10)])
def test_requests_k_split_the_forget_set_with_the_split_seed(sources, bench, ratio):
    plan = plan_of(sources, bench, "--requests", "2", "--forget-ratio", str(ratio))
    people = requests_of(plan, load_benchmark(plan))
    assert people == split_people(SPLITS[bench][ratio], 2, 0)
    assert sorted(p for request in people for p in request) == sorted(SPLITS[bench][ratio])


@pytest.mark.parametrize("bench,small,large", [("mllmu", 5, 10), ("clear", 1, 5), ("clear", 5, 10)])
def test_the_first_requests_of_a_nested_stream_are_the_smaller_split(sources, bench, small, large):
    """The benchmark a request's gold reference is trained on (the larger split, its earlier
    people as the forget set) is the smaller split's own: the same training rows, in the same
    splits, so the same cached gold model."""
    load = LOADERS[bench]
    smaller, larger = (load(r, source=str(sources[bench]), cache_dir=str(sources["cache"])) for r in (small, large))
    view = relabel(larger, list(smaller.forget_entities), [], small)
    columns = ["item_id", "entity_id", "split", "modality", "format", "view", "question", "answer"]

    def rows(benchmark):
        table = benchmark.train.select_columns(columns).to_dict()
        return sorted(zip(*(table[c] for c in columns)))

    assert rows(view) == rows(smaller)
    assert (view.forget_entities, view.retain_entities) == (smaller.forget_entities, smaller.retain_entities)
    provider = registry.make_model("hf:/some/llava", progress=False, **FAST)
    assert provider.cache_path("visual_oracle", view) == provider.cache_path("visual_oracle", smaller)


def test_splits_that_are_not_nested_fail_before_any_model_is_trained(tmp_path, monkeypatch, llava, capsys):
    rows = mllmu_rows()
    profiles = {row["ID"]: row for row in rows["Full_Set"]}
    rows["forget_5"] = [profiles["103"]]  # not among forget_10's 101, 102
    rows["retain_95"] = [row for pid, row in profiles.items() if pid != "103"]
    source = write_mllmu(tmp_path / "broken", rows=rows)
    home = tmp_path / "home"
    monkeypatch.setenv("MMU_BENCH_HOME", str(home))
    code = main(["run", "--method", "ga", *model_args(llava), "--benchmark", "mllmu", "--benchmark-arg",
                 f"source={source}", "--benchmark-arg", f"cache_dir={tmp_path / 'hf-cache'}", "--request-ratios",
                 "5,10", "--output-dir", str(tmp_path / "runs")])
    assert code == 2
    err = capsys.readouterr().err
    assert "the 10 % forget split does not hold the people of the one before it (103" in err and "not nested" in err
    assert not (home / "models").exists() and not (home / "references").exists()  # nothing was trained
    assert not (tmp_path / "runs").exists()


# -- whole streams ----------------------------------------------------------------------------------


def same(a, b) -> bool:
    """Equal numbers, or both absent (NaN is null in JSON: a random model may score nothing)."""
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def stream_run(tmp_path, llava, sources, bench, *flags, **model):
    out = tmp_path / "runs"
    assert main(["run", "--method", "ga", "--method-arg", "steps=1", "--method-arg", "batch_size=2",
                 *model_args(llava, **model), *bench_args(sources, bench), *flags, "--output-dir", str(out)]) == 0
    [path] = list(out.rglob("results.json"))
    lines = [json.loads(line) for line in (path.parent / "continual.jsonl").read_text().splitlines()]
    return json.loads(path.read_text()), lines


def check_stream(result, lines, requests):
    section = result["continual"]
    assert [line["request"] for line in lines] == list(range(len(requests) + 1))
    assert [line["people"] for line in lines[1:]] == requests == section["requests"]
    assert len(section["overall_after"]) == len(requests)
    assert same(result["overall"], section["overall_after"][-1])
    assert [r["steps"] for r in result["training"]["requests"]] == [1] * len(requests)
    for line in lines[1:]:  # a gold is scored on the stream's items, as the models are
        for task, per in (line["gold"] or {}).items():
            assert set(per) == set(line["clusters"][task]) == set(lines[0]["clusters"][task]), (line["request"], task)
    # the last request's gold is the run's own: the final row normalises like the run
    assert lines[-1]["gold"] is not None and section["after"][-1]["gold"] is True
    for dim, value in section["after"][-1]["normalised"].items():
        assert same(value, result["normalised"][dim]), dim


@pytest.mark.slow
def test_mllmu_through_two_requests(tmp_path, llava, sources):
    result, lines = stream_run(tmp_path, llava, sources, "mllmu", "--forget-ratio", "10", "--requests", "2")
    check_stream(result, lines, split_people(MLLMU_FORGET[10], 2, 0))
    assert result["continual"]["split"] == {"requests": 2, "split_seed": 0}
    assert all(line["gold"] is not None for line in lines[1:])  # each cumulative gold trained and cached


@pytest.mark.slow
def test_mllmu_through_its_nested_splits_as_pulse_does(tmp_path, llava, sources, _isolated_home):
    result, lines = stream_run(tmp_path, llava, sources, "mllmu", "--request-ratios", "5,10")
    check_stream(result, lines, [MLLMU_FORGET[5], sorted(set(MLLMU_FORGET[10]) - set(MLLMU_FORGET[5]))])
    assert result["continual"]["split"]["ratios"] == [5.0, 10.0] and result["benchmark"]["forget_ratio"] == 10
    assert all(line["gold"] is not None for line in lines[1:])
    # request 1's gold is the forget_5 split's own visual oracle, cached where a 5 % run finds it
    five = mllmu.load(5, source=str(sources["mllmu"]), cache_dir=str(sources["cache"]))
    provider = registry.make_model(f"hf:{llava}", progress=False, **FAST)
    assert provider.trained(provider.path("visual_oracle", five))


@pytest.mark.slow
def test_clear_through_its_nested_splits_1_5_10(tmp_path, llava, sources):
    result, lines = stream_run(tmp_path, llava, sources, "clear", "--request-ratios", "1,5,10")
    check_stream(result, lines, [[p] for p in CLEAR_FORGET[10]])
    assert all(line["gold"] is not None for line in lines[1:])


@pytest.mark.slow
def test_clear_with_a_given_gold_has_none_for_the_earlier_requests(tmp_path, llava, sources):
    """A visual oracle given as a checkpoint serves its own forget set only: the earlier
    requests have no gold (their forgetting floor is chance), the last is normalised against it."""
    result, lines = stream_run(tmp_path, llava, sources, "clear", "--forget-ratio", "10", "--requests", "2",
                               visual_oracle=llava)
    check_stream(result, lines, split_people(CLEAR_FORGET[10], 2, 0))
    assert lines[1]["gold"] is None and lines[1]["gold_role"] is None
    assert lines[2]["gold_role"] == "visual_oracle"
    after = result["continual"]["after"]
    assert [a["gold"] for a in after] == [False, True]
    assert result["normalisation"]["visual_forgetting"]["floor"] in ("visual_oracle", "oracle", "chance")
