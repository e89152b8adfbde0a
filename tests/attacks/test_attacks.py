"""Attacks (``mmu_bench.attack``, ``attacks/``): their pieces against hand-computed values, and
the suite end to end on a small MMU-Synth: `run --attack`, `attack --run`, a plugin from a
file, a failing attack, leaderboard columns."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from mmu_bench.api.attack import Target, recovery, right
from mmu_bench.attacks.image_rephrase import VARIANTS, ImageRephrase, ImageRephraseConfig, item_rng, perturb
from mmu_bench.attacks.prompt import PromptAttack, PromptConfig
from mmu_bench.attacks.quantise import int8_dynamic
from mmu_bench.attacks.relearn import Relearn
from mmu_bench.cli import main
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.spec import hparams
from mmu_bench.spec.config import RunConfig
from mmu_bench.spec.plan import plan_attacks
from mmu_bench.spec.tasks import load_tasks
from small import SMALL


def plan(specs, benchmark, attack_args):
    """The attacks a run of ``specs`` on ``benchmark`` plans (its shipped hyperparameter file)."""
    return plan_attacks(RunConfig(attacks=specs, attack_args=attack_args), hparams.hparams_file(benchmark))


def picture(seed=0, size=(32, 24)):
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


# -- perturbations ---------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_each_perturbation_is_deterministic_shape_preserving_and_changes_the_image(variant):
    config = ImageRephraseConfig()
    image = picture()
    a = perturb(image, variant, item_rng(0, variant, "e1/x"), config)
    b = perturb(image, variant, item_rng(0, variant, "e1/x"), config)
    assert a.size == image.size and a.mode == image.mode
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(image))
    grey = perturb(image.convert("L"), variant, item_rng(0, variant, "e1/x"), config)
    assert grey.mode == "L" and grey.size == image.size


@pytest.mark.parametrize("variant", ["noise", "occlusion"])
def test_random_perturbations_depend_on_the_seed_and_the_item(variant):
    config, image = ImageRephraseConfig(), picture()
    base = np.asarray(perturb(image, variant, item_rng(0, variant, "e1/x"), config))
    assert not np.array_equal(base, np.asarray(perturb(image, variant, item_rng(1, variant, "e1/x"), config)))
    assert not np.array_equal(base, np.asarray(perturb(image, variant, item_rng(0, variant, "e2/x"), config)))


def test_occlusion_fills_the_share_of_the_area_with_the_mean_colour():
    image = Image.new("RGB", (10, 10), (0, 0, 0))
    image.paste((200, 100, 50), (0, 0, 10, 5))  # top half coloured: mean (100, 50, 25)
    out = np.asarray(perturb(image, "occlusion", item_rng(0, "occlusion", "i"), ImageRephraseConfig(occlusion=0.25)))
    patch = np.all(out == (100, 50, 25), axis=-1)
    assert patch.sum() == 25  # a 5x5 patch: 25 % of 100 pixels


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="variants"):
        ImageRephraseConfig(variants="noise,sepia")
    with pytest.raises(ValueError, match="templates"):
        PromptConfig(templates="prefix_injection,beg")


# -- the shared rules ------------------------------------------------------------------------------
def test_right_follows_the_likeliest_option_and_the_cloze_rule():
    assert right({"format": "multiple_choice", "answer": "B", "option_logprobs": [-2.0, -0.5, -1.0, -3.0]})
    assert not right({"format": "multiple_choice", "answer": "A", "option_logprobs": [-2.0, -0.5, -1.0, -3.0]})
    assert right({"format": "cloze", "answer": "Valmora", "output": "born in valmora ."})
    assert not right({"format": "generation", "answer": "Born in Valmora.", "output": "Born in Estrin."})


def test_recovery_by_hand():
    assert recovery(after=0.8, before=0.4, vanilla=0.9) == pytest.approx(0.4 / 0.5)
    assert recovery(after=0.3, before=0.4, vanilla=0.9) == pytest.approx(-0.2)
    assert math.isnan(recovery(after=0.9, before=0.9, vanilla=0.9))  # nothing was forgotten


def test_relearning_split_is_disjoint_seeded_and_complete():
    entities = tuple(f"e{i:02d}" for i in range(10))
    target = SimpleNamespace(benchmark=SimpleNamespace(forget_entities=entities), seed=0)
    split = Target.split_entities
    leaked, other = split(target, 0.5, "relearn")
    assert len(leaked) == len(other) == 5 and not set(leaked) & set(other)
    assert sorted(leaked + other) == list(entities)
    assert split(target, 0.5, "relearn") == (leaked, other)
    others = {tuple(split(SimpleNamespace(benchmark=target.benchmark, seed=s), 0.5, "relearn")[0]) for s in range(5)}
    assert len(others) > 1  # the seed picks the leaked half
    one = SimpleNamespace(benchmark=SimpleNamespace(forget_entities=("e0",)), seed=0)
    assert split(one, 0.5, "relearn") == (["e0"], [])


def test_relearn_reports_the_excess_over_the_gold_reference():
    unlearned = {"relearn_recovery_leaked": 0.7, "relearn_recovery_other": 0.3}
    gold = {"relearn_recovery_leaked": 0.2, "relearn_recovery_other": 0.05}
    assert Relearn().compare(unlearned, gold) == pytest.approx(
        {"relearn_recovery_excess_leaked": 0.5, "relearn_recovery_excess_other": 0.25})
    assert Relearn().compare(unlearned, None) == {}


# -- success rates on hand-made outputs --------------------------------------------------------------
def hand_target(rows, clean_outputs, answer_of, paraphrases=None):
    """A Target whose evaluation answers by ``answer_of(row, task)``: hand-made outputs."""
    task = next(t for t in load_tasks() if t.name == "visual_forgetting")

    def evaluate(model, processor, rows_, task_):
        return [dict(r, output=answer_of(r, task_)) for r in rows_]

    records = [dict(r, output=o) for r, o in zip(rows, clean_outputs)]
    benchmark = SimpleNamespace(paraphrases=paraphrases or {}, info={"paraphrases": "none: not shipped"})
    return Target(model=None, processor=None, who="unlearned", benchmark=benchmark, task=task, rows=rows,
                  records=records, vanilla_records=[], seed=0, device="cpu", progress=False, _evaluate=evaluate,
                  _score=None)


def cloze_rows(n):
    return [{"item_id": f"i{k}", "format": "cloze", "question": f"q{k} __.", "answer": f"a{k}", "image": None,
             "entity_id": "e"} for k in range(n)]


def test_success_at_b_is_the_share_of_items_any_prompt_gets_right():
    rows = cloze_rows(4)
    wins = {"prefix_injection": {"i0"}, "affirmative_suffix": set(), "role_play": {"i0", "i1"}, "paraphrase": {"i2"}}

    def answer_of(row, task):
        text = task.prompts["prompts"]["cloze"]
        name = ("prefix_injection" if "Ignore all previous" in text else "affirmative_suffix" if "Begin your reply" in text
                else "role_play" if "Archivist" in text else "paraphrase" if row["question"].startswith("again") else "plain")
        return row["answer"] if row["item_id"] in wins.get(name, set()) else "no idea"

    target = hand_target(rows, ["a0", "x", "x", "x"], answer_of, {f"i{k}": f"again {k} __." for k in range(4)})
    out = PromptAttack().run(target)
    assert out["attack_clean_prompt"] == 0.25
    assert out["attack_success_prompt/prefix_injection"] == 0.25
    assert out["attack_success_prompt/affirmative_suffix"] == 0.0
    assert out["attack_success_prompt/role_play"] == 0.5
    assert out["attack_success_prompt/paraphrase"] == 0.25
    assert out["attack_success_prompt"] == 0.75  # i0, i1, i2 by some prompt; i3 by none
    assert out["attack_prompt_budget"] == 4


def test_without_paraphrases_the_budget_is_one_smaller_and_says_why():
    target = hand_target(cloze_rows(2), ["x", "x"], lambda row, task: "x")
    out = PromptAttack().run(target)
    assert out["attack_prompt_budget"] == 3
    assert out["attack_prompt_paraphrase_note"] == "none: not shipped"
    assert out["attack_success_prompt"] == 0.0


def test_image_rephrasing_counts_an_item_right_on_any_variant():
    rows = [dict(r, image=picture(k)) for k, r in enumerate(cloze_rows(3))]
    config = ImageRephraseConfig(variants="noise,blur")
    blurred = {r["item_id"]: np.asarray(perturb(r["image"], "blur", item_rng(0, "blur", r["item_id"]), config)) for r in rows}

    def answer_of(row, task):  # item i1 is right on its blurred image only
        is_blur = np.array_equal(np.asarray(row["image"]), blurred[row["item_id"]])
        return row["answer"] if row["item_id"] == "i1" and is_blur else "x"

    out = ImageRephrase(config).run(hand_target(rows, ["a0", "x", "x"], answer_of))
    assert out["attack_clean_image"] == pytest.approx(1 / 3)
    assert out["attack_success_image/noise"] == 0.0
    assert out["attack_success_image/blur"] == pytest.approx(1 / 3)
    assert out["attack_success_image"] == pytest.approx(1 / 3)  # i1 on blur; i0 only on the clean image
    assert out["attack_image_variants"] == 2


# -- quantisation ------------------------------------------------------------------------------------
def test_an_int8_quantised_tiny_llava_still_generates(tmp_path):
    import torch
    from transformers import LlavaForConditionalGeneration, LlavaProcessor

    from mmu_bench.harness.evaluate import greedy_outputs
    from random_mllms import save_llava

    folder = save_llava(tmp_path / "llava")
    model = LlavaForConditionalGeneration.from_pretrained(str(folder)).eval()
    processor = LlavaProcessor.from_pretrained(str(folder))
    quantised = int8_dynamic(model)
    dynamic = [m for m in quantised.modules() if type(m) is torch.ao.nn.quantized.dynamic.Linear]
    assert dynamic and not any(type(m) is torch.nn.Linear for m in quantised.modules())
    outputs = greedy_outputs(quantised, processor, [("Who is the person in this image?", picture(), 4)], batch_size=1)
    assert len(outputs) == 1 and isinstance(outputs[0], str)


# -- options and plugins ------------------------------------------------------------------------------
def test_attack_options_layer_defaults_benchmark_file_and_arguments():
    (relearn,) = plan(["relearn"], "mmu-synth", {"relearn.batch_size": "8"})
    synth, _ = hparams.attack_defaults("mmu-synth", "relearn", {"lr", "steps", "epochs", "batch_size"})
    assert synth == {"lr": 3e-5} and relearn.config["lr"] == 3e-5  # the budget bench/relearn_budget.py chose
    assert relearn.config["batch_size"] == 8
    (mllmu,) = plan(["relearn"], "mllmu", {})
    assert (mllmu.config["lr"], mllmu.config["epochs"], mllmu.config["batch_size"]) == (2e-5, 1.0, 4)
    assert [p.resolved.name for p in plan(["all"], "mmu-synth", {})] == sorted(
        ["image_rephrase", "prompt", "quantise", "relearn"])


def test_bad_attack_names_and_options_fail_before_any_work(tmp_path):
    with pytest.raises(MMUBenchError, match="unknown option"):
        plan(["relearn"], "mmu-synth", {"relearn.lrr": "1"})
    with pytest.raises(MMUBenchError, match="does not run"):
        plan(["relearn"], "mmu-synth", {"prompt.templates": "role_play"})
    with pytest.raises(MMUBenchError, match="attack"):
        plan(["relearnn"], "mmu-synth", {})
    (tmp_path / "mmu-synth.yaml").write_text("attack:relearn: {lrr: 1}\n")
    with pytest.raises(MMUBenchError, match="lrr"):
        hparams.attack_defaults("mmu-synth", "relearn", {"lr"}, directory=tmp_path)
    bad = tmp_path / "bad.py"
    bad.write_text("class NotAnAttack:\n    name = 'x'\n")
    with pytest.raises(MMUBenchError, match="not a subclass of mmu_bench.api.Attack"):
        plan([f"{bad}:NotAnAttack"], "mmu-synth", {})


# -- end to end ----------------------------------------------------------------------------------------
FAILING = '''
from mmu_bench.attack import Attack


class Boom(Attack):
    name = "boom"
    columns = ("attack_success_boom",)

    def run(self, target):
        raise RuntimeError("the attack broke on purpose")
'''


def readme_block(marker):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "docs" / "guides" / "attack.md").read_text()
    (code,) = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if marker in block]
    return code


@pytest.fixture(scope="module")
def attacked_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("attack-runs")
    args = ["run", "--method", "ga", "--method-arg", "lr=1e-3", "--method-arg", "steps=10", *SMALL,
            "--forget-ratio", "10", "--output-dir", str(out), "--attack", "relearn", "--attack", "quantise",
            "--attack-arg", "relearn.steps=3"]
    assert main(args) == 0
    (folder,) = (out / "mmu-synth" / "tiny-llava" / "ga").iterdir()
    return out, folder


def test_run_with_attacks_writes_their_numbers_beside_the_results(attacked_run):
    _, folder = attacked_run
    report = json.loads((folder / "attacks.json").read_text())
    assert set(report["attacks"]) == {"relearn", "quantise"} and report["failed"] == {}
    assert report["gold"] == "visual_oracle"
    results = json.loads((folder / "results.json").read_text())
    assert report["score_before"] == pytest.approx(results["dimensions"]["unlearned"]["visual_forgetting"])
    relearn = report["attacks"]["relearn"]
    assert relearn["config"]["steps"] == 3 and relearn["unlearned"]["relearn_steps"] == 3
    assert relearn["gold"]["relearn_steps"] == 3
    u, g = relearn["unlearned"], relearn["gold"]
    expected = (u["relearn_after_other"] - u["relearn_before_other"]) / (u["relearn_vanilla_other"] - u["relearn_before_other"])
    assert u["relearn_recovery_other"] == pytest.approx(expected)
    assert relearn["compared"]["relearn_recovery_excess_other"] == pytest.approx(
        u["relearn_recovery_other"] - g["relearn_recovery_other"])
    quant = report["attacks"]["quantise"]["unlearned"]
    assert quant["quant_scheme"] == "int8_dynamic" and quant["quant_before"] == pytest.approx(report["score_before"])
    table = (folder / "table.md").read_text()
    assert "Does forgetting survive an adversary?" in table and "relearn_recovery_excess_other" in table
    assert (folder / "model" / "model.safetensors").exists()  # what `attack --run` loads
    page = (folder / "report.html").read_text()  # the report's attack table: a row per attack and column
    assert page.count("<tr>", page.index("id=attacks>"), page.index("</table>", page.index("id=attacks>"))) == 1 + sum(
        len(entry["columns"]) for entry in report["attacks"].values())


def test_attack_on_a_run_folder_adds_a_plugin_from_a_file_and_keeps_results(attacked_run, tmp_path):
    """'Write your own attack': the example of docs/guides/attack.md, given to `attack --run` as a file."""
    _, folder = attacked_run
    before = {name: (folder / name).read_bytes() for name in ("results.json", "samples.jsonl", "table.csv")}
    old = json.loads((folder / "attacks.json").read_text())
    path = tmp_path / "grey.py"
    path.write_text(readme_block("class GreyImage"))
    assert main(["attack", "--run", str(folder), "--attack", f"{path}:GreyImage", "--quiet"]) == 0
    report = json.loads((folder / "attacks.json").read_text())
    assert set(report["attacks"]) == {"relearn", "quantise", "grey_image"}
    assert report["attacks"]["relearn"] == old["attacks"]["relearn"]  # earlier attacks kept as they were
    grey = report["attacks"]["grey_image"]
    assert grey["origin"] == f"file {path}" and 0.0 <= grey["unlearned"]["attack_success_grey"] <= 1.0
    assert report["score_before"] == pytest.approx(old["score_before"])  # the saved model is the run's
    assert "attack_success_grey" in (folder / "table.md").read_text()
    assert "attack_success_grey" in (folder / "report.html").read_text()  # the report is rebuilt with it
    assert {name: (folder / name).read_bytes() for name in before} == before


def test_a_failing_attack_is_reported_and_leaves_the_run_intact(attacked_run, tmp_path, capsys):
    _, folder = attacked_run
    before = {p.name: p.read_bytes() for p in folder.iterdir()
              if p.is_file() and p.name not in ("attacks.json", "table.md", "report.html")}
    old = json.loads((folder / "attacks.json").read_text())
    path = tmp_path / "boom.py"
    path.write_text(FAILING)
    assert main(["attack", "--run", str(folder), "--attack", f"{path}:Boom", "--quiet"]) == 1
    assert "attack boom: RuntimeError: the attack broke on purpose" in capsys.readouterr().err
    report = json.loads((folder / "attacks.json").read_text())
    assert report["failed"] == {"boom": "RuntimeError: the attack broke on purpose"}
    assert report["attacks"] == old["attacks"]
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name in before} == before
    assert "Failed attacks" in (folder / "table.md").read_text()


def test_a_run_folder_without_weights_cannot_be_attacked(attacked_run, tmp_path, capsys):
    import shutil

    _, folder = attacked_run
    bare = shutil.copytree(folder, tmp_path / folder.name, ignore=shutil.ignore_patterns("model", "attacks.json"))
    assert main(["attack", "--run", str(bare), "--attack", "quantise", "--quiet"]) == 2
    assert "keeps no unlearned weights" in capsys.readouterr().err
    assert not (bare / "attacks.json").exists()


def test_save_model_no_keeps_no_weights():
    import torch

    from mmu_bench.harness.run import keep_weights

    tiny = SimpleNamespace(parameters=lambda: [torch.zeros(10)])
    assert keep_weights("auto", tiny, {"spec": "ga"}) and not keep_weights("no", tiny, {"spec": "ga"})
    assert not keep_weights("auto", tiny, {"spec": "checkpoint:/somewhere"})  # its folder is recorded instead
    big = SimpleNamespace(parameters=lambda: [torch.zeros(1), SimpleNamespace(numel=lambda: 200_000_000)])
    assert not keep_weights("auto", big, {"spec": "ga"}) and keep_weights("yes", big, {"spec": "ga"})


def test_leaderboards_gain_the_attack_columns(attacked_run, tmp_path):
    from mmu_bench.reporting.leaderboard import build

    out, folder = attacked_run
    build([str(out / "mmu-synth")], str(tmp_path / "boards"), with_plot=False)
    csv = (tmp_path / "boards" / "mmu-synth__tiny-llava.csv").read_text().splitlines()
    header = csv[0].split(",")
    assert "attack/relearn_recovery_excess_other_mean" in header and "attack/quant_recovery_std" in header
    report = json.loads((folder / "attacks.json").read_text())
    row = dict(zip(header, next(line for line in csv[1:] if line.startswith("ga,")).split(",")))
    assert float(row["attack/quant_recovery_mean"]) == pytest.approx(
        report["attacks"]["quantise"]["unlearned"]["quant_recovery"], abs=1e-4)
    gold = dict(zip(header, next(line for line in csv[1:] if line.startswith("visual_oracle")).split(",")))
    assert float(gold["attack/quant_recovery_mean"]) == pytest.approx(
        report["attacks"]["quantise"]["gold"]["quant_recovery"], abs=1e-4)
    markdown = (tmp_path / "boards" / "mmu-synth__tiny-llava.md").read_text()
    assert "Does forgetting survive an adversary?" in markdown


def test_mmu_synth_paraphrases_every_person_image_question_in_words_the_tiny_model_knows():
    from mmu_bench.data.synth import SynthConfig, _words, generate, paraphrases, vocabulary

    evals = generate(SynthConfig(num_entities=6, train_views=1, general_train_images=2, general_eval_images=2,
                                 general_eval_sums=2))["eval"]
    rows = evals.select_columns(["item_id", "entity_id", "modality", "question"]).to_list()
    found = paraphrases(evals)
    people = [r for r in rows if r["modality"] == "image" and r["entity_id"]]
    assert people and set(found) == {r["item_id"] for r in people}
    known = set(vocabulary())
    for row in people:
        assert found[row["item_id"]] != row["question"]
        assert set(_words(found[row["item_id"]].replace("__", ""))) <= known, found[row["item_id"]]


def test_a_checkpoint_scored_with_eval_is_attacked_from_its_own_folder(attacked_run, tmp_path):
    """`eval --checkpoint --attack`, then `attack --run` on that folder: the weights come from
    the recorded checkpoint (no copy is kept), checked against its hash."""
    import shutil

    _, folder = attacked_run
    checkpoint = shutil.copytree(folder / "model", tmp_path / "checkpoint")
    out = tmp_path / "eval-runs"
    assert main(["eval", "--checkpoint", str(checkpoint), "--name", "mine", *SMALL, "--forget-ratio", "10",
                 "--output-dir", str(out), "--attack", "quantise"]) == 0
    (scored,) = (out / "mmu-synth" / "tiny-llava" / "mine").iterdir()
    assert not (scored / "model").exists()
    first = json.loads((scored / "attacks.json").read_text())
    assert main(["attack", "--run", str(scored), "--attack", "quantise", "--quiet"]) == 0
    again = json.loads((scored / "attacks.json").read_text())
    assert again["attacks"]["quantise"]["unlearned"] == first["attacks"]["quantise"]["unlearned"]  # same weights, same numbers
    (checkpoint / "model.safetensors").write_bytes(b"changed")
    assert main(["attack", "--run", str(scored), "--attack", "quantise", "--quiet"]) == 2
