"""`mmu-bench run` end to end on a small MMU-Synth and a briefly trained tiny model."""

import json
import textwrap

import pytest

from mmu_bench.cli import main
from small import SMALL

DIMENSIONS = {"visual_forgetting", "textual_retention", "retained_vqa", "general_utility"}


def run_cli(args, out_dir):
    return main(["run", *args, *SMALL, "--forget-ratio", "10", "--output-dir", str(out_dir)])


def latest(out_dir, method):
    folders = sorted((out_dir / "mmu-synth" / "tiny-llava" / method).iterdir())
    return folders[-1]


@pytest.fixture(scope="module")
def ga_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert run_cli(["--method", "ga", "--method-arg", "lr=1e-3", "--method-arg", "steps=10"], out) == 0
    return out, latest(out, "ga")


def test_run_folder_holds_every_file(ga_run):
    _, folder = ga_run
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "information.csv", "model", "report.html",
                                                        "results.json", "samples.jsonl", "table.csv", "table.md",
                                                        "thumbnails.json"]


def test_table_has_a_row_per_task_and_the_metric_columns(ga_run):
    _, folder = ga_run
    lines = (folder / "table.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert header[:3] == ["task", "dimension", "better"]
    for column in ("mc_acc", "mc_loglik_acc", "cloze_acc", "rougeL", "score", "vanilla", "oracle", "visual_oracle",
                   "normalised"):
        assert column in header
    tasks = {line.split(",")[0] for line in lines[1:]}
    assert tasks == {"visual_forgetting", "visual_forgetting_heldout", "textual_retention", "retained_vqa",
                     "general_utility", "visual_holdout", "textual_holdout"}
    text = (folder / "table.md").read_text()
    assert "| visual_forgetting | visual_forgetting | lower |" in text
    # The second table: does the information remain? Each row says which reference it compares with.
    second = text.split("### Does the information remain?")[1]
    assert "forget_quality" in second and "privleak_min_k_pp" in second
    assert next(line for line in second.splitlines() if line.startswith("| visual_forgetting |")).endswith(
        "| visual_oracle |")
    assert next(line for line in second.splitlines() if line.startswith("| textual_retention |")).endswith("| vanilla |")


def test_results_record_scores_references_and_provenance(ga_run):
    _, folder = ga_run
    result = json.loads((folder / "results.json").read_text())
    assert set(result["dimensions"]["unlearned"]) == DIMENSIONS
    assert set(result["scores"]) == {"unlearned", "vanilla", "oracle", "visual_oracle"}
    assert result["normalisation"]["visual_forgetting"]["floor"] in ("visual_oracle", "oracle", "chance")
    assert result["seed"] == 0 and result["method"]["name"] == "ga"
    assert len(result["method"]["source_sha256"]) == 64
    assert result["method"]["config"]["steps"] == 10
    assert result["tasks"]["visual_forgetting"]["version"] == "1.1"
    assert result["provenance"]["packages"]["torch"]
    assert "commit" in result["provenance"]["git"]
    assert result["provenance"]["wall_seconds"] > 0
    # Where the time went: every phase the run passed through, adding up to its wall time.
    phases = result["provenance"]["phases"]
    assert {"session", "unlearning", "evaluation", "scoring", "writing"} <= set(phases)
    assert ("trajectory" in phases) == bool(result["trade_off"])
    assert all(seconds >= 0 for seconds in phases.values())
    assert sum(phases.values()) == pytest.approx(result["provenance"]["wall_seconds"], rel=0.10)
    assert "Where the time went" in (folder / "report.html").read_text()
    assert 0.0 <= result["overall"] <= 1.0
    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    n = sum(v["n"] for task in result["scores"]["unlearned"].values() for k, v in task.items()
            if k in ("mc_acc", "cloze_acc", "rougeL"))
    assert len(samples) == n
    assert {"task", "item_id", "prompt", "answer", "output"} <= set(samples[0])


def test_results_say_whether_the_information_remains(ga_run):
    _, folder = ga_run
    result = json.loads((folder / "results.json").read_text())
    image, text = result["scores"]["unlearned"]["visual_forgetting"], result["scores"]["unlearned"]["textual_retention"]
    assert image["forget_quality"]["against"] in ("visual_oracle", "oracle") and text["forget_quality"]["against"] == "vanilla"
    for per_task in (image, text):
        assert 0.0 <= per_task["forget_quality"]["mean"] <= 1.0
        for attack in ("loss", "zlib", "min_k", "min_k_pp"):
            assert 0.0 <= per_task[f"mia_auc_{attack}"]["mean"] <= 1.0
            leak = per_task[f"privleak_{attack}"]
            # MUSE's PrivLeak: a number, or absent when the reference separates perfectly (AUC 1)
            assert leak["mean"] is not None or "AUC is 1 (MUSE's AUC 0)" in leak["absent"], leak
    # The vanilla model knew the forget people: its Min-K%++ AUC against holdout people is high.
    assert result["scores"]["vanilla"]["visual_forgetting"]["mia_auc_min_k_pp"]["mean"] > 0.7
    # A reference compared with itself has no value, and says why.
    assert "is the reference" in result["scores"]["vanilla"]["textual_retention"]["forget_quality"]["absent"]
    assert result["benchmark"]["info"]["holdout"].endswith("never in any training set")


def test_gradient_ascent_makes_the_model_forget(ga_run):
    _, folder = ga_run
    result = json.loads((folder / "results.json").read_text())
    vanilla = result["scores"]["vanilla"]["visual_forgetting"]
    after = result["scores"]["unlearned"]["visual_forgetting"]
    assert vanilla["mc_loglik_acc"]["mean"] >= 0.5  # the small vanilla model knew them
    assert after["mc_loglik_acc"]["mean"] < vanilla["mc_loglik_acc"]["mean"]
    assert result["dimensions"]["unlearned"]["visual_forgetting"] < result["dimensions"]["vanilla"]["visual_forgetting"]


def test_same_seed_same_scores_and_a_new_folder(ga_run):
    out, first = ga_run
    assert run_cli(["--method", "ga", "--method-arg", "lr=1e-3", "--method-arg", "steps=10"], out) == 0
    second = latest(out, "ga")
    assert second != first  # never overwritten
    a = json.loads((first / "results.json").read_text())["scores"]
    b = json.loads((second / "results.json").read_text())["scores"]
    assert a == b


def test_npo_runs_end_to_end(ga_run):
    out, _ = ga_run
    assert run_cli(["--method", "npo", "--method-arg", "steps=3"], out) == 0
    result = json.loads((latest(out, "npo") / "results.json").read_text())
    assert result["method"]["config"]["beta"] == 0.4
    assert result["training"]["steps"] == 3


def test_interrupted_run_leaves_nothing(ga_run, tmp_path):
    out, _ = ga_run
    plugin = tmp_path / "interrupt.py"
    plugin.write_text(textwrap.dedent("""
        from mmu_bench.method import UnlearningMethod

        class Interrupt(UnlearningMethod):
            name = "interrupt"
            def loss(self, ctx, batch):
                raise KeyboardInterrupt
    """))
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert run_cli(["--method", f"{plugin}:Interrupt"], out) == 130
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # nothing new, nothing partial


def test_a_vanilla_model_that_does_not_know_the_benchmark_is_refused(tmp_path, capsys):
    untrained = [a if a != "finetune_steps=300" else "finetune_steps=1" for a in SMALL]
    code = main(["run", "--method", "ga", *untrained, "--output-dir", str(tmp_path)])
    assert code == 2
    assert "the vanilla model does not know the benchmark" in capsys.readouterr().err
    assert not (tmp_path / "mmu-synth").exists()


@pytest.mark.parametrize("method,args", [
    ("ga_diff", []),
    ("kl_min", []),
    ("simnpo", ["--method-arg", "retain_weight=0.5"]),
    ("idk", []),
    ("mmunlearner", ["--method-arg", "mask_batches=2"]),
    ("mmunlearner", ["--method-arg", "mask=random", "--method-arg", "variant=both", "--method-arg", "mask_batches=2"]),
])
def test_every_baseline_runs_end_to_end(ga_run, method, args):
    out, _ = ga_run
    assert run_cli(["--method", method, "--method-arg", "steps=2", "--method-arg", "lr=1e-3", *args], out) == 0
    result = json.loads((latest(out, method) / "results.json").read_text())
    assert set(result["dimensions"]["unlearned"]) == DIMENSIONS
    assert result["training"]["steps"] >= 2 and result["training"]["last_loss"] is not None
    # Something was unlearned: the forget answers are less likely than before.
    assert result["training"]["first_loss"] != result["training"]["last_loss"]


def test_mmunlearner_reports_its_mask_and_random_keeps_its_sparsity(ga_run):
    out, _ = ga_run
    folders = sorted((out / "mmu-synth" / "tiny-llava" / "mmunlearner").iterdir())
    reports = [json.loads((f / "results.json").read_text())["training"]["method_report"] for f in folders]
    saliency_run = next(r for r in reports if r["mask_kind"] == "saliency" and r["mask_variant"] == "language")
    sparsity = saliency_run["mask_sparsity"]
    assert sparsity["vision_tower"]["selected"] == 0 and sparsity["projector"]["selected"] == 0
    assert 0 < sparsity["language_layers"]["fraction"] < 1
    assert saliency_run["strict"] is True
    assert saliency_run["forget_steps"] == 2 and saliency_run["retain_steps"] == 2
    random_run = next(r for r in reports if r["mask_kind"] == "random")
    assert random_run["mask_variant"] == "both" and random_run["mask_sparsity"]["vision_tower"]["total"] > 0


def readme_block(marker):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "docs" / "guides" / "measure.md").read_text()
    (code,) = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if marker in block]
    return code


def test_the_readme_measure_runs_from_a_file_end_to_end(ga_run, tmp_path):
    """'Write your own measure': the example, copied out of docs/guides/measure.md, given to --measure as a
    file. It reads the vanilla model's cached records of the same items."""
    out, first = ga_run
    path = tmp_path / "my_measure.py"
    path.write_text(readme_block("class LikelihoodKept"))
    args = ["--method", "ga", "--method-arg", "lr=1e-3", "--method-arg", "steps=10"]
    assert run_cli([*args, "--measure", f"{path}:LikelihoodKept"], out) == 0
    folder = latest(out, "ga")
    result = json.loads((folder / "results.json").read_text())
    assert result["measures"]["likelihood_kept"]["origin"] == f"file {path}"
    assert result["tasks"]["visual_forgetting"]["directions"]["likelihood_kept"] is False  # the task's direction
    assert result["tasks"]["textual_retention"]["directions"]["likelihood_kept"] is True
    for task, per_measure in result["scores"]["unlearned"].items():
        assert 0.0 < per_measure["likelihood_kept"]["mean"] <= 1.0, task
        assert result["scores"]["vanilla"][task]["likelihood_kept"]["mean"] == 1.0  # itself: exp(0)
    # Gradient ascent on the forget images lowered their answers' likelihood.
    assert result["scores"]["unlearned"]["visual_forgetting"]["likelihood_kept"]["mean"] < 0.9
    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    values = [s["likelihood_kept"] for s in samples if s["task"] == "visual_forgetting"]
    mean = result["scores"]["unlearned"]["visual_forgetting"]["likelihood_kept"]["mean"]
    assert sum(values) / len(values) == pytest.approx(mean)
    assert "likelihood_kept" in (folder / "table.csv").read_text().splitlines()[0].split(",")
    # The other measures are untouched by the extra one.
    before = json.loads((first / "results.json").read_text())["scores"]
    for who, tasks in before.items():
        for task, per_measure in tasks.items():
            after = {k: v for k, v in result["scores"][who][task].items() if k != "likelihood_kept"}
            assert after == per_measure, (who, task)
    assert result["run_key"] != json.loads((first / "results.json").read_text())["run_key"]


def test_a_measure_that_reads_reference_records_never_reloads_a_reference(ga_run, tmp_path, monkeypatch):
    from mmu_bench.cli import make_parser
    from mmu_bench.cli.options import build_config
    from mmu_bench.harness.session import load_benchmark
    from mmu_bench.models.tiny import TinyLlavaProvider
    from mmu_bench.spec.plan import for_references

    out, _ = ga_run
    plan = for_references(build_config(make_parser().parse_args(["run", *SMALL])), progress=False)
    vanilla = plan.provider.load("vanilla", load_benchmark(plan))
    vanilla.model.save_pretrained(tmp_path / "ckpt")
    vanilla.processor.save_pretrained(tmp_path / "ckpt")
    path = tmp_path / "both.py"
    path.write_text(
        "from mmu_bench.measure import Measure, Value\n"
        "class SameOutputs(Measure):\n"
        "    name = 'same_outputs'\n"
        "    references = ('vanilla', 'oracle')\n"
        "    def compute(self, records):\n"
        "        pairs = zip(records.items, records.reference('vanilla'))\n"
        "        return Value(sum(a['output'] == b['output'] for a, b in pairs) / len(records.items))\n")
    loads = []
    original = TinyLlavaProvider.load
    monkeypatch.setattr(TinyLlavaProvider, "load", lambda self, role, benchmark=None: loads.append(role)
                        or original(self, role, benchmark))
    code = main(["eval", "--checkpoint", str(tmp_path / "ckpt"), "--name", "vanilla-copy", *SMALL,
                 "--measure", f"{path}:SameOutputs", "--output-dir", str(out)])
    assert code == 0
    assert loads == []  # neither reference model was loaded: their records came from the cache
    result = json.loads((latest(out, "vanilla-copy") / "results.json").read_text())
    for task, per_measure in result["scores"]["unlearned"].items():
        assert per_measure["same_outputs"]["mean"] == 1.0, task  # the vanilla model itself
