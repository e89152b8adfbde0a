"""`mmu-bench run --requests K` end to end on the small MMU-Synth (20 people; at a 15 % forget
ratio 3 forget people, so 3 requests of one each): what each request starts from and trains on,
continual.jsonl and results.json's continual section, one request as today's run, and a request
that fails."""

import json
import textwrap

import pytest

from mmu_bench.cli import main, make_parser
from mmu_bench.cli.options import build_config
from mmu_bench.spec.plan import for_run
from small import SMALL

DIGEST = textwrap.dedent("""
    import hashlib


    def digest(model):
        h = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()
""")

# A GA that reports, for each request, the digest of the weights it starts from, of its
# ``vanilla`` reference and of the weights it leaves, and the people of its data.
RECORDER = DIGEST + textwrap.dedent("""
    from mmu_bench.api import UnlearningMethod, nll


    def people(encoded):
        return sorted(set(encoded.rows["entity_id"]))


    class Recorder(UnlearningMethod):
        name = "recorder"

        def setup(self, ctx):
            ctx.report(start=digest(ctx.unwrapped_model), reference=digest(ctx.reference_model("vanilla")),
                       forget=people(ctx.data.forget), retain=people(ctx.data.retain),
                       preserve=people(ctx.data.preserve_text))

        def loss(self, ctx, batch):
            return -nll(ctx.model, batch.forget)

        def unlearn(self, ctx):
            super().unlearn(ctx)
            ctx.report(end=digest(ctx.unwrapped_model))
""")

# A GA that fails on the request whose forget set is PEOPLE.
FAILING = textwrap.dedent("""
    from mmu_bench.api import UnlearningMethod, nll


    class Failing(UnlearningMethod):
        name = "failing"

        def setup(self, ctx):
            if sorted(set(ctx.data.forget.rows["entity_id"])) == PEOPLE:
                raise RuntimeError(f"refusing to forget {PEOPLE}")

        def loss(self, ctx, batch):
            return -nll(ctx.model, batch.forget)
""")

STREAM = ["--forget-ratio", "15", "--requests", "3"]
GA = ["--method-arg", "steps=2", "--method-arg", "lr=1e-3"]


def run_cli(args, out) -> int:
    return main(["run", *args, *SMALL, "--output-dir", str(out)])


def only_run(out):
    [path] = list(out.rglob("results.json"))
    return path.parent


@pytest.fixture(scope="module")
def plugins(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugins")
    (folder / "recorder.py").write_text(RECORDER)
    return folder


@pytest.fixture(scope="module")
def stream(tmp_path_factory, plugins):
    """One continual run of three requests with the recording method."""
    out = tmp_path_factory.mktemp("stream")
    args = ["--method", f"{plugins / 'recorder.py'}:Recorder", *GA, *STREAM]
    assert run_cli(args, out) == 0
    folder = only_run(out)
    lines = [json.loads(line) for line in (folder / "continual.jsonl").read_text().splitlines()]
    return {"args": args, "folder": folder, "result": json.loads((folder / "results.json").read_text()),
            "lines": lines}


def test_continual_jsonl_holds_a_line_before_the_requests_and_after_each(stream):
    lines, result = stream["lines"], stream["result"]
    assert [line["request"] for line in lines] == [0, 1, 2, 3]
    assert lines[0]["model"] == "vanilla" and lines[0]["people"] == [] and lines[0]["gold"] is None
    requests = [line["people"] for line in lines[1:]]
    assert all(len(people) == 1 for people in requests)  # 3 people in 3 requests
    assert sorted(p for people in requests for p in people) == sorted(result["benchmark"]["forget_entities"])
    for line in lines[1:]:
        assert line["steps"] == 2 and line["gold"] is not None and line["gold_role"] == "visual_oracle"
        # scored on each dimension's primary task, per person (and per item where there is none)
        assert set(line["clusters"]) == {"visual_forgetting", "textual_retention", "retained_vqa",
                                         "general_utility"}
        assert set(line["people"]) <= set(line["clusters"]["visual_forgetting"])
        for task, per in line["clusters"].items():  # the gold is scored on the stream's items, as the model
            assert set(line["gold"][task]) == set(per) == set(lines[0]["clusters"][task]), task
    assert sorted(f.name for f in stream["folder"].iterdir()) == [
        "config.yaml", "continual.jsonl", "information.csv", "model", "report.html", "results.json",
        "samples.jsonl", "table.csv", "table.md", "thumbnails.json"]


def test_results_hold_the_continual_section_and_the_final_overall_is_the_last_one_after(stream):
    result, lines = stream["result"], stream["lines"]
    section = result["continual"]
    assert section["requests"] == [line["people"] for line in lines[1:]]
    assert section["split"] == {"requests": 3, "split_seed": 0} and section["gold_role"] == "visual_oracle"
    assert len(section["overall_after"]) == 3 and [a["request"] for a in section["after"]] == [1, 2, 3]
    assert all(a["gold"] for a in section["after"])
    assert all(isinstance(x, float) for x in section["overall_after"])  # every dimension scored after each
    assert result["overall"] == pytest.approx(section["overall_after"][-1], rel=1e-9, abs=1e-12)
    matrix = section["matrix"]
    assert set(matrix) == {"visual_forgetting:1", "visual_forgetting:2", "visual_forgetting:3", "textual_retention:1",
                           "textual_retention:2", "textual_retention:3", "retained_vqa", "general_utility"}
    assert all(len(row) == 4 for row in matrix.values())
    assert len(section["reversal"]["per_request"]) == 2 and len(section["early_forgetting"]["per_request"]) == 2
    assert set(section["erosion"]) == {"textual_retention", "retained_vqa", "general_utility"}
    # the last row scores the same model as the final evaluation, on the same items
    for dim, value in section["after"][-1]["dimensions"].items():
        assert value == pytest.approx(result["dimensions"]["unlearned"][dim], rel=1e-9), dim
    training = result["training"]
    assert [r["steps"] for r in training["requests"]] == [2, 2, 2] and training["steps"] == 6
    assert "requests" in result["provenance"]["phases"]


def test_the_run_key_is_a_streams_and_it_names_the_one_shot_run(stream):
    result = stream["result"]
    plain_args = [a for a in stream["args"] if a not in ("--requests", "3")]
    one_shot = for_run(build_config(make_parser().parse_args(["run", *plain_args, *SMALL])), progress=False).key
    assert result["continual"]["one_shot_key"] == one_shot
    assert result["run_key"] != one_shot
    assert result["run_key"] == for_run(build_config(make_parser().parse_args(["run", *stream["args"], *SMALL])),
                                         progress=False).key


def test_each_request_starts_from_the_model_the_one_before_left(stream):
    from mmu_bench.harness.session import load_benchmark
    from mmu_bench.spec.plan import for_references

    reports = [r["method_report"] for r in stream["result"]["training"]["requests"]]
    scope: dict = {}
    exec(DIGEST, scope)
    plan = for_references(build_config(make_parser().parse_args(["prepare", *SMALL, "--forget-ratio", "15"])), False)
    vanilla = scope["digest"](plan.provider.load("vanilla", load_benchmark(plan)).model)
    assert reports[0]["start"] == vanilla
    for before, report in zip(reports, reports[1:]):
        assert report["start"] == before["end"]  # the weights the last request left
        assert report["start"] != vanilla
        assert report["start"] != before["start"]  # unlearning moved them
    for report in reports:  # a request's "vanilla" reference is the model it started from
        assert report["reference"] == report["start"]
    # ... and the run folder keeps the weights the last request left
    from transformers import LlavaForConditionalGeneration

    saved = LlavaForConditionalGeneration.from_pretrained(str(stream["folder"] / "model"))
    assert scope["digest"](saved) == reports[-1]["end"]


def test_each_request_forgets_its_people_and_retains_nobody_forgotten_so_far(stream):
    reports = [r["method_report"] for r in stream["result"]["training"]["requests"]]
    requests = stream["result"]["continual"]["requests"]
    everyone = set(stream["result"]["benchmark"]["forget_entities"])
    retained = set(reports[0]["retain"]) - everyone  # the people no request names: 20 - 3
    assert len(retained) == 17
    forgotten: set = set()
    for j, (report, people) in enumerate(zip(reports, requests)):
        assert report["forget"] == people
        later = set().union(*map(set, requests[j + 1:]))
        assert set(report["retain"]) == retained | later  # people of later requests are still retained
        assert not set(report["retain"]) & (forgotten | set(people))
        assert everyone <= set(report["preserve"])  # everyone's text is kept, the forgotten's too
        forgotten |= set(people)


@pytest.fixture(scope="module")
def one_request(tmp_path_factory):
    """The same GA run without --requests and with --requests 1."""
    out = tmp_path_factory.mktemp("one-request")
    runs = []
    for extra in ([], ["--requests", "1"]):
        before = set(out.rglob("results.json"))
        assert run_cli(["--method", "ga", *GA, "--forget-ratio", "10", *extra], out) == 0
        [path] = set(out.rglob("results.json")) - before
        runs.append(path.parent)
    return runs


def test_one_request_is_todays_run(one_request):
    plain, one = (json.loads((folder / "results.json").read_text()) for folder in one_request)
    assert one["run_key"] == plain["run_key"]
    assert one["scores"] == plain["scores"] and one["overall"] == plain["overall"]
    assert one["dimensions"] == plain["dimensions"] and one["normalised"] == plain["normalised"]
    assert not one.get("continual") and not plain.get("continual")
    assert not (one_request[1] / "continual.jsonl").exists()
    assert "requests" not in one["training"]


def test_a_failing_request_is_recorded_and_leaves_no_run(stream, tmp_path, capsys):
    third = stream["result"]["continual"]["requests"][2]
    plugin = tmp_path / "failing.py"
    plugin.write_text(f"PEOPLE = {third!r}\n" + FAILING)
    out = tmp_path / "runs"
    assert run_cli(["--method", f"{plugin}:Failing", *GA, *STREAM], out) == 2
    assert "request 3 of 3 failed: RuntimeError: refusing to forget" in capsys.readouterr().err
    files = [p.relative_to(out) for p in out.rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].name == "failure.json"  # nothing else: no results, no staging folder
    failure = json.loads((out / files[0]).read_text())
    assert failure["request"] == 3 and failure["requests"] == 3 and failure["people"] == third
    assert "RuntimeError: refusing to forget" in failure["error"]
    assert failure["config"]["continual"] == {"requests": 3}


# -- the pieces, without models ------------------------------------------------------------------


def toy_benchmark():
    import datasets

    from mmu_bench.api.benchmark import Benchmark

    rows = [(person, split, modality, view) for person, split in (("a", "forget"), ("b", "forget"), ("c", "forget"),
                                                                 ("r", "retain"), ("", "general"))
            for modality, view in (("image", "train"), ("text", ""))]
    train = datasets.Dataset.from_dict({
        "entity_id": [r[0] for r in rows], "split": [r[1] for r in rows], "modality": [r[2] for r in rows],
        "view": [r[3] for r in rows], "format": ["generation"] * len(rows),
        "item_id": [f"{r[0] or 'general'}/{r[2]}" for r in rows]})
    evals = datasets.Dataset.from_dict({"entity_id": ["a"], "split": ["forget"], "item_id": ["a/q"]})
    return Benchmark(name="toy", forget_ratio=15, train=train, eval=evals, forget_entities=("a", "b", "c"),
                     retain_entities=("r",), fingerprint="f00")


def test_a_requests_benchmark_forgets_its_people_and_keeps_the_forgotten_out_of_the_retain_data():
    from mmu_bench.harness.continual import relabel

    toy = toy_benchmark()
    view = relabel(toy, ["b"], ["a"], 10)
    splits = dict(zip(view.train["item_id"], view.train["split"]))
    assert splits == {"a/image": "forgotten", "a/text": "forgotten", "b/image": "forget", "b/text": "forget",
                      "c/image": "retain", "c/text": "retain", "r/image": "retain", "r/text": "retain",
                      "general/image": "general", "general/text": "general"}
    assert view.forget_entities == ("b",) and view.retain_entities == ("c", "r") and view.forget_ratio == 10
    assert view.eval is toy.eval and view.fingerprint == toy.fingerprint  # scored items: the whole benchmark's
    assert set(view.forget_set()["entity_id"]) == {"b"}
    assert set(view.retain_set()["entity_id"]) == {"c", "r"}
    assert set(view.preserve_text()["entity_id"]) == {"a", "b", "c", "r"}  # everyone's text is kept
    first = relabel(toy, ["c"], [], 5)  # the first request: nobody forgotten yet
    assert set(first.retain_set()["entity_id"]) == {"a", "b", "r"}
    assert toy.train["split"][:2] == ["forget", "forget"]  # the benchmark itself is untouched


@pytest.mark.parametrize("below,floor", [
    ({"visual_oracle": True, "oracle": True}, "visual_oracle"),
    ({"visual_oracle": False, "oracle": True}, "oracle"),
    ({"visual_oracle": False, "oracle": False}, None),
])
def test_the_last_requests_gold_is_the_one_the_run_normalises_against(monkeypatch, below, floor):
    """The run's forgetting floor is the first gold reference under the vanilla model (visual
    oracle, then oracle, else chance): the last request's gold is that one, so that its row and
    the run's overall score agree; the earlier ones are the stream's (the visual oracle)."""
    from types import SimpleNamespace

    from mmu_bench.api.measure import Value
    from mmu_bench.harness import continual
    from mmu_bench.spec.config import RunConfig

    plan = for_run(RunConfig(method="ga", continual={"requests": 2}), progress=False)
    scores = {}
    for role in ("vanilla", "oracle", "visual_oracle"):
        value = 0.9 if role == "vanilla" else (0.2 if below[role] else 0.95)
        scores[role] = {t.name: {m: Value(value if not t.higher_is_better else 0.8, n=1) for m in t.score}
                        for t in plan.tasks if t.primary}
    session = SimpleNamespace(plan=plan, tasks=plan.tasks, measures=plan.measures, ref_scores=scores,
                              refs=dict.fromkeys(scores), benchmark=SimpleNamespace(forget_entities=("a", "b"),
                                                                                   forget_ratio=10))
    monkeypatch.setattr(continual, "gold_clusters", lambda s, role, people, *_: {"of": role, "people": people})
    assert continual.floor_role(session, continual.scoring.primary_tasks(plan.tasks)) == floor
    planned = continual.plan_stream(plan, session, [["a"], ["b"]])
    assert planned.role == "visual_oracle"
    assert planned.roles == ["visual_oracle", floor or "visual_oracle"]
    assert planned.golds == [{"of": "visual_oracle", "people": ["a"]},
                             {"of": floor or "visual_oracle", "people": ["a", "b"]}]
    assert planned.ratios == [5.0, 10.0] and planned.cumulative == [["a"], ["a", "b"]]
