"""Evaluation protocols: loading, overrides, what they change in tasks (and what the harness's
changes nothing), and that a run records its protocol."""

import textwrap

import pytest

from mmu_bench.core.errors import MMUBenchError
from mmu_bench.spec import protocol
from mmu_bench.spec.config import RunConfig
from mmu_bench.spec.plan import protocol_of as run_protocol
from mmu_bench.spec.plan import run_key
from mmu_bench.spec.tasks import load_tasks

METHOD = {"name": "npo", "source_sha256": "x", "config": {}}


def write(tmp_path, body: str):
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(body))
    return str(path)


PROTO = """
    protocol: mine
    version: 2
    reference: my lab's eval.py
    prompts: {generation: "{question} in ENGLISH.", shot_cloze: "Q: {prompt}\\nA: {answer}\\n\\n"}
    max_new_tokens: {cloze: 50, generation: 50}
    shots: {cloze: 2}
    add_measures: [rouge1, bleu]
"""


def test_the_harness_protocol_changes_nothing():
    tasks = load_tasks()
    assert protocol.load("harness").apply(tasks) == tasks
    assert protocol.load("harness").changes_nothing


def test_a_protocol_changes_prompts_budgets_shots_measures_and_versions(tmp_path):
    tasks = load_tasks()
    changed = protocol.load(write(tmp_path, PROTO)).apply(tasks)
    for old, new in zip(tasks, changed):
        assert new.prompts["prompts"]["generation"] == "{question} in ENGLISH."
        assert new.prompts["prompts"]["cloze"] == old.prompts["prompts"]["cloze"]  # not given: the task's
        assert new.max_new_tokens == {**old.max_new_tokens, "cloze": 50, "generation": 50}
        assert new.shots == {"cloze": 2}
        assert new.measures[-2:] == ("rouge1", "bleu") and new.score == old.score
        assert new.version.startswith(old.version + "+mine.2-") and new.version != old.version


def test_protocol_args_override_one_setting_and_change_the_version(tmp_path):
    path = write(tmp_path, PROTO)
    base = protocol.load(path)
    zero = protocol.load(path, {"shots.cloze": "0", "max_new_tokens.generation": 12})
    assert zero.shots == {"cloze": 0} and zero.max_new_tokens == {"cloze": 50, "generation": 12}
    assert zero.args == {"shots.cloze": 0, "max_new_tokens.generation": 12}  # typed as recorded
    task = load_tasks(["visual_forgetting"])
    assert base.apply(task)[0].version != zero.apply(task)[0].version


@pytest.mark.parametrize("args,message", [
    ({"shots": "1"}, "expected SETTING.FORMAT"),
    ({"shots.essay": "1"}, "expected SETTING.FORMAT"),
    ({"temperature.cloze": "1"}, "expected SETTING.FORMAT"),
    ({"shots.cloze": "two"}, "expected an integer"),
    ({"shots.cloze": "-1"}, "shots.cloze must be an integer >= 0"),
    ({"max_new_tokens.cloze": "0"}, "max_new_tokens.cloze must be an integer >= 1"),
])
def test_bad_protocol_args_are_named(tmp_path, args, message):
    with pytest.raises(MMUBenchError, match=message):
        protocol.load(write(tmp_path, PROTO), args)


@pytest.mark.parametrize("body,message", [
    ("version: 1\nreference: x\n", "field 'protocol' is missing"),
    ("protocol: p\nversion: 1\nreference: x\nshots: {cloze: 1}\n", "no .shot_cloze. template"),
    ("protocol: p\nversion: 1\nreference: x\nmax_new_tokens: {essay: 3}\n", "unknown format 'essay'"),
    ("protocol: p\nversion: 1\nreference: x\nprompts: [a]\n", "field 'prompts' must map"),
    ("protocol: p\nversion: 1\nreference: x\nadd_measures: rouge1\n", "'add_measures' must be a list"),
    ("protocol: p\nversion: 1\nreference: x\nmeasure_options: {cloze_acc: mllmu}\n", "'measure_options' must map"),
])
def test_bad_protocol_files_are_named(tmp_path, body, message):
    with pytest.raises(MMUBenchError, match=message):
        protocol.load(write(tmp_path, body))


def test_the_mllmu_protocol_scores_cloze_by_mllmu_benchs_rule_and_the_harness_by_its_own():
    from mmu_bench.spec import measures as spec_measures

    tasks = load_tasks(["visual_forgetting", "retained_vqa"])
    for name, rule in (("mllmu", "mllmu"), ("harness", "normalised"), ("clear", "normalised")):
        resolved, measures = spec_measures.resolve(protocol.load(name).apply(tasks))
        for task in resolved:
            assert measures.of(task, "cloze_acc").options["rule"] == rule, (name, task.name)
    mllmu = protocol.load("mllmu").apply(tasks)[0]
    # the options the task file sets are kept beside the protocol's
    assert mllmu.options["privleak_min_k_pp"] == tasks[0].options["privleak_min_k_pp"] == {
        "holdout": "visual_holdout", "against": "gold"}
    bad = protocol.Protocol("p", "1", "x", measure_options={"cloze_acc": {"rule": "loose"}}).apply(tasks)
    with pytest.raises(MMUBenchError, match="rule='loose' is not one of normalised, mllmu"):
        spec_measures.resolve(bad)


def test_unknown_protocol_and_missing_file():
    with pytest.raises(MMUBenchError, match="unknown protocol 'mlmu'. Did you mean 'mllmu'"):
        protocol.load("mlmu")
    with pytest.raises(MMUBenchError, match="protocol file nowhere/p.yaml does not exist"):
        protocol.load("nowhere/p.yaml")


def test_auto_follows_the_benchmark_and_keeps_synthetic_run_keys():
    assert run_protocol(RunConfig(benchmark="mmu-synth")).name == "harness"
    assert run_protocol(RunConfig(benchmark="mllmu")).name == "mllmu"
    assert run_protocol(RunConfig(benchmark="clear")).name == "clear"
    assert run_protocol(RunConfig(benchmark="mllmu", protocol="harness")).name == "harness"
    # MMU-Synth's protocol changes nothing: run keys stay those of earlier runs.
    plain = RunConfig(benchmark="mmu-synth")
    assert run_key(plain, METHOD) == run_key(RunConfig(benchmark="mmu-synth", protocol="harness"), METHOD)
    assert run_key(RunConfig(benchmark="mllmu"), METHOD) != run_key(
        RunConfig(benchmark="mllmu", protocol_args={"shots.cloze": 0}), METHOD)


# -- demonstrations and budgets on a small MLLMU-Bench in its real schema -------------------------

@pytest.fixture(scope="module")
def mllmu_bench(tmp_path_factory):
    from mmu_bench.data import mllmu
    from real_fixtures import write_mllmu

    root = write_mllmu(tmp_path_factory.mktemp("source"), "parquet")
    return mllmu.load(10, source=str(root), cache_dir=str(tmp_path_factory.mktemp("hf-cache")))


def rows_of(bench):
    return bench.eval.select_columns([c for c in bench.eval.column_names if c != "image"]).to_list()


def test_demonstrations_as_mllmu_bench_draws_them(mllmu_bench):
    from mmu_bench.api.prompts import user_text

    tasks = protocol.with_demonstrations(protocol.load("mllmu", {"shots.cloze": 1}).apply(load_tasks()),
                                         mllmu_bench.eval)
    by_name = {t.name: t for t in tasks}
    rows = {r["item_id"]: r for r in rows_of(mllmu_bench)}
    forget = by_name["visual_forgetting"]
    # One forget person's image questions of each format, and nothing else, are the examples.
    shown = [rows[i] for i in forget.exclude]
    assert {(r["format"], r["modality"]) for r in shown} == {("multiple_choice", "image"), ("cloze", "image")}
    for fmt in ("multiple_choice", "cloze"):
        people = {r["entity_id"] for r in shown if r["format"] == fmt}
        assert len(people) == 1
        everything = [r for r in rows.values() if forget.selects(r) is False and r["entity_id"] in people
                      and r["format"] == fmt and r["split"] == "forget" and r["view"] == "train"
                      and r["modality"] == "image"]
        assert {r["item_id"] for r in everything} == {r["item_id"] for r in shown if r["format"] == fmt}
    # Each example as eval.py writes it; every question of the format and modality gets them first.
    mc = next(r for r in shown if r["format"] == "multiple_choice")
    letters = "\n".join(f"{x}: {o}" for x, o in zip("ABCD", mc["options"]))
    assert f"Question: {mc['question']}\n{letters}\nCorrect Answer: {mc['answer']}\n" in \
        forget.prompts["demonstrations"]["multiple_choice/image"]
    scored = next(r for r in rows.values() if forget.selects(r) and r["format"] == "multiple_choice")
    text = user_text(scored, forget.prompts)
    assert text.startswith(forget.prompts["demonstrations"]["multiple_choice/image"])
    assert text.endswith("Just give ONE letter representing the answer directly.")
    # Text questions get text examples; celebrities (split general) none, as in eval.py.
    assert set(by_name["textual_retention"].prompts["demonstrations"]) == {"multiple_choice/text", "cloze/text"}
    assert not by_name["general_utility"].exclude and "demonstrations" not in by_name["general_utility"].prompts
    # Seeded: the same examples every time; another seed may draw the other person.
    again = protocol.with_demonstrations(protocol.load("mllmu", {"shots.cloze": 1}).apply(load_tasks()),
                                         mllmu_bench.eval)
    assert [t.exclude for t in again] == [t.exclude for t in tasks]
    # (each format draws on its own, as eval.py's functions do)
    drawn = {frozenset(rows[i]["entity_id"] for i in protocol.with_demonstrations(
        protocol.load("mllmu", {"shots.cloze": 1}).apply(load_tasks(["visual_forgetting"])),
        mllmu_bench.eval, seed)[0].exclude if rows[i]["format"] == "multiple_choice") for seed in range(8)}
    assert drawn == {frozenset({"101"}), frozenset({"102"})}


def test_demonstrations_need_people_left_to_score(mllmu_bench):
    # Two forget people at 10 %: eval.py's two cloze examples would leave none to score.
    with pytest.raises(MMUBenchError, match="lower them with --protocol-arg shots.cloze=N"):
        protocol.with_demonstrations(protocol.load("mllmu").apply(load_tasks(["visual_forgetting"])), mllmu_bench.eval)


class Words:
    """A whitespace tokenizer: budgets in words, to count by hand."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


def test_over_budget_counts_answers_longer_than_the_budget(mllmu_bench):
    from mmu_bench.harness.evaluate import over_budget

    rows = rows_of(mllmu_bench)
    tasks = protocol.load("mllmu", {"max_new_tokens.cloze": 1, "max_new_tokens.generation": 1}).apply(load_tasks())
    counts = over_budget(mllmu_bench.eval, tasks, Words())
    scored = {}
    for task in tasks:  # each scored item once per format, as over_budget counts them
        scored.update({(r["format"], r["item_id"]): r for r in rows if task.selects(r) and r["format"] in task.formats})
    items = {fmt: sum(f == fmt for f, _ in scored) for fmt in ("cloze", "generation")}
    # Cloze answers are one word ("Town101"); generation answers two ("Job 101."): all over a budget of 1.
    assert counts["cloze"] == {"budget": 1, "items": items["cloze"], "over": 0}
    assert counts["generation"] == {"budget": 1, "items": items["generation"], "over": items["generation"]}
    assert items["cloze"] > 0 and items["generation"] > 0
    assert "multiple_choice" not in counts  # a letter always fits
    # The reference's 50 new tokens: no fixture answer is longer.
    assert all(c["over"] == 0 for c in over_budget(mllmu_bench.eval, protocol.load("mllmu").apply(load_tasks()),
                                                   Words()).values())
