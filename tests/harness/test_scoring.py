"""The scoring layer: built-in measures against hand-computed values, measures that read other
models' records, corpus-level measures, task directions, and the checks made before any work."""

import math

import pytest

from mmu_bench.api.measure import ItemMeasure, Measure, Value
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.harness import score as scoring
from mmu_bench.spec import measures as spec_measures
from mmu_bench.spec import registry
from mmu_bench.spec.registry import PluginError, resolve_measure
from mmu_bench.spec.tasks import load_tasks
from task_files import write_base


def record(item, fmt, answer, output, task="t", **extra):
    return {"task": task, "item_id": item, "format": fmt, "answer": answer, "output": output, **extra}


def mc(item, answer, output, option_logprobs, task="t"):
    return record(item, "multiple_choice", answer, output, task, options=["w", "x", "y", "z"],
                  option_logprobs=option_logprobs)


@pytest.fixture
def task(tmp_path):
    write_base(tmp_path, ["mc_acc", "mc_loglik_acc", "cloze_acc", "rougeL"], ["mc_loglik_acc", "cloze_acc", "rougeL"])
    (tmp_path / "t.yaml").write_text("include: _base.yaml\ntask: t\nversion: 1\ndimension: d\nhigher_is_better: true\n"
                                     "data: {split: forget}\n")
    return load_tasks(directory=tmp_path)


def test_built_in_measures_by_hand(task):
    tasks, measures = spec_measures.resolve(task)
    records = {"unlearned": [
        mc("a", "B", "B) yes", [-3.0, -1.0, -2.0, -4.0]),  # letter right, likeliest right
        mc("b", "A", "the answer", [-2.0, -1.0, -3.0, -3.0]),  # letter: none; likeliest B, wrong
        mc("c", "C", "c", [-1.0, -1.0, -1.0, -1.0]),  # letter right; a four-way tie goes to A: wrong
        record("d", "cloze", "Baker", "a BAKER ."),
        record("e", "cloze", "baker", "bake"),
        record("f", "generation", "the cat sat on the mat", "the cat lay on the mat"),  # ROUGE-L 5/6
    ]}
    scores = scoring.score(records, tasks, measures)["unlearned"]["t"]
    assert scores["mc_acc"].mean == pytest.approx(2 / 3) and scores["mc_acc"].n == 3
    assert scores["mc_loglik_acc"].mean == pytest.approx(1 / 3)
    # sample std of (1, 0, 0) = sqrt(1/3); stderr = that / sqrt(3)
    assert scores["mc_loglik_acc"].stderr == pytest.approx(math.sqrt(1 / 3) / math.sqrt(3))
    assert scores["cloze_acc"] == Value(0.5, pytest.approx(0.5), 2)
    assert scores["rougeL"].mean == pytest.approx(5 / 6) and scores["rougeL"].n == 1
    # Per-item values are kept in the records (samples.jsonl), under the measure's name.
    assert [r.get("mc_acc") for r in records["unlearned"][:3]] == [1.0, 0.0, 1.0]
    assert records["unlearned"][3]["cloze_acc"] == 1.0 and "rougeL" not in records["unlearned"][3]


class Drop(ItemMeasure):
    """The answer's mean log-probability minus the vanilla model's, per item."""

    name = "drop"
    higher_is_better = False
    references = ("vanilla",)

    def item(self, record, references):
        mine, theirs = record["answer_logprobs"], references["vanilla"]["answer_logprobs"]
        return sum(mine) / len(mine) - sum(theirs) / len(theirs)


class Count(Measure):
    """A corpus-level value: how many items share the oracle's output."""

    name = "same_as_oracle"
    references = ("oracle",)

    def compute(self, records):
        return Value(float(sum(a["output"] == b["output"] for a, b in zip(records.items, records.reference("oracle")))),
                     None, len(records.items))


def measures_of(*classes):
    """The built-in measures, and ``classes``."""
    found = {name: resolve_measure(name).cls for name in ("mc_acc", "mc_loglik_acc", "cloze_acc", "rougeL")}
    return spec_measures.Measures({**found, **{c.name: c for c in classes}}, {})


def test_a_measure_reads_the_reference_records_of_the_same_items(task):
    records = {
        "unlearned": [record("x", "cloze", "a", "a", answer_logprobs=[-2.0, -4.0]),
                      record("y", "cloze", "b", "q", answer_logprobs=[-1.0])],
        # Another order, and an item the unlearned model was not scored on.
        "vanilla": [record("z", "cloze", "c", "c", answer_logprobs=[0.0]),
                    record("y", "cloze", "b", "b", answer_logprobs=[-0.5]),
                    record("x", "cloze", "a", "a", answer_logprobs=[-1.0, -1.0])],
        "oracle": [record("y", "cloze", "b", "q"), record("x", "cloze", "a", "no")],
    }
    tasks = [t.with_measures(["drop", "same_as_oracle"]) for t in task]
    measures = measures_of(Drop, Count)
    scores = scoring.score(records, tasks, measures, models=["unlearned"])["unlearned"]["t"]
    # x: mean(-2, -4) - mean(-1, -1) = -2; y: -1 - (-0.5) = -0.5
    assert scores["drop"].mean == pytest.approx(-1.25) and scores["drop"].n == 2
    assert scores["same_as_oracle"] == Value(1.0, None, 2)  # y only
    assert tasks[0].direction(Drop) is False and tasks[0].direction(measures["cloze_acc"]) is True


def test_a_missing_reference_record_is_an_error_not_a_silent_none(task):
    tasks = [t.with_measures(["drop"]) for t in task]
    records = {"unlearned": [record("x", "cloze", "a", "a", answer_logprobs=[-1.0])],
               "vanilla": [record("other", "cloze", "a", "a", answer_logprobs=[-1.0])]}
    with pytest.raises(MMUBenchError, match="task 't': model 'vanilla' has no record of item\\(s\\) x"):
        scoring.score(records, tasks, measures_of(Drop), models=["unlearned"])


def test_needs_are_checked_before_any_work(task):
    measures = measures_of(Drop)
    tasks = [t.with_measures(["drop"]) for t in task]
    with pytest.raises(MMUBenchError, match="'drop' .*reference model\\(s\\) vanilla, which this model provider "
                                            "does not have \\(it has oracle\\)"):
        spec_measures.check_needs(tasks, measures, ("oracle",))
    spec_measures.check_needs(tasks, measures, ("vanilla", "oracle"))

    class Holdout(Count):
        name = "holdout"
        references = ()
        other_tasks = ("holdout_vqa",)

    with pytest.raises(MMUBenchError, match="reads the records of task\\(s\\) holdout_vqa: add them to --tasks"):
        spec_measures.check_needs([t.with_measures(["holdout"]) for t in task], measures_of(Holdout), ("vanilla",))


def test_a_failing_measure_plugin_is_named(task):
    class Broken(ItemMeasure):
        name = "broken"

        def item(self, record, references):
            return 1 / 0

    with pytest.raises(MMUBenchError, match="measure 'broken' failed on task 't' \\(unlearned model\\): "
                                            "ZeroDivisionError"):
        scoring.score({"unlearned": [record("x", "cloze", "a", "a")]}, [task[0].with_measures(["broken"])],
                      measures_of(Broken))


def test_chance_of_a_task_score_follows_its_measures(task):
    tasks, measures = spec_measures.resolve(task)
    scores = {"t": {"mc_loglik_acc": Value(0.5), "rougeL": Value(0.2)}}  # no cloze item scored
    assert scoring.chance(scores, tasks, measures) == {"d": pytest.approx((0.25 + 0.0) / 2)}


def test_measure_plugins_resolve_by_name_module_and_file(tmp_path):
    assert resolve_measure("mc_loglik_acc").cls.formats == ("multiple_choice",)
    assert "entry point mmu_bench.measures:rougeL" in resolve_measure("rougeL").origin
    assert resolve_measure("mmu_bench.measures.cloze:ClozeAccuracy").name == "cloze_acc"
    path = tmp_path / "m.py"
    path.write_text("from mmu_bench.measure import ItemMeasure\n"
                    "class Length(ItemMeasure):\n    name = 'length'\n"
                    "    def item(self, record, references):\n        return float(len(record['output']))\n")
    resolved = resolve_measure(f"{path}:Length")
    assert resolved.name == "length" and resolved.origin == f"file {path}" and len(resolved.source_sha256) == 64
    names = {m["name"] for m in registry.list_plugins(registry.MEASURES)}
    assert names >= {"mc_acc", "mc_loglik_acc", "cloze_acc", "rougeL"}


@pytest.mark.parametrize("body,message", [
    ("class M:\n    name = 'm'\n", "is not a subclass of mmu_bench.api.Measure"),
    ("class M(ItemMeasure):\n    name = 'm'\n", "an ItemMeasure must implement item\\(\\)"),
    ("class M(Measure):\n    name = 'm'\n", "implements neither compute\\(\\) nor"),
    ("class M(ItemMeasure):\n    item = lambda self, r, refs: 1.0\n", "sets no `name`"),
    ("class M(ItemMeasure):\n    name = 'm'\n    formats = ('essay',)\n    item = lambda self, r, refs: 1.0\n",
     "`formats` must name formats"),
    ("class M(ItemMeasure):\n    name = 'm'\n    references = 'vanilla'\n    item = lambda self, r, refs: 1.0\n",
     "`references` must be a tuple of names"),
])
def test_bad_measure_plugins_are_named(tmp_path, body, message):
    path = tmp_path / "bad.py"
    path.write_text("from mmu_bench.measure import ItemMeasure, Measure\n" + body)
    with pytest.raises(PluginError, match=f"measure plugin .{path}:M. \\(file {path}\\): .*{message}"):
        resolve_measure(f"{path}:M")


def test_a_task_naming_an_unknown_measure_names_the_task(task):
    with pytest.raises(MMUBenchError, match="task 't' .*unknown measure 'rogueL'.*Did you mean 'rougeL'"):
        spec_measures.resolve([task[0].with_measures(["rogueL"])])
