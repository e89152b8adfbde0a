"""Shipped reference models: installed (not trained) when their recipe hash matches, trained
anew when the recipe changed or under `prepare --retrain`; shipped records only for their weights."""

import gzip
import json
import os
from pathlib import Path

import pytest

from mmu_bench.cli import main
from mmu_bench.core import shipped
from mmu_bench.harness import references
from mmu_bench.models.tiny import TinyLlavaProvider
from small import SMALL


def _never(*args, **kwargs):
    raise AssertionError("called although shipped references match")


@pytest.fixture
def shipped_small(tmp_path, monkeypatch):
    """The small test references, trained in this session's cache, shipped into a temporary
    shipped set; then a fresh, empty cache."""
    assert main(["prepare", *SMALL]) == 0
    models = Path(os.environ["MMU_BENCH_HOME"]) / "models" / "tiny-llava"
    names = [p.name for p in models.iterdir() if (p / "recipe.json").is_file()]
    root = tmp_path / "shipped"
    monkeypatch.setattr(shipped, "root", lambda: root)
    written = shipped.ship("tiny-llava", names, root)
    assert any(p.suffix == ".gz" for p in written)  # the records came along
    monkeypatch.setenv("MMU_BENCH_HOME", str(tmp_path / "fresh"))
    return root


def test_matching_shipped_references_are_installed_and_nothing_is_trained(shipped_small, tmp_path, monkeypatch):
    monkeypatch.setattr(TinyLlavaProvider, "train", _never)
    monkeypatch.setattr(references, "evaluate", _never)
    assert main(["prepare", *SMALL]) == 0
    installed = sorted((tmp_path / "fresh" / "models" / "tiny-llava").iterdir())
    assert {p.name.split("-")[0] for p in installed} >= {"vanilla", "oracle", "visual_oracle"}
    for folder in installed:
        source = shipped_small / "models" / "tiny-llava" / folder.name
        assert shipped.weights_digest(folder) == shipped.weights_digest(source) is not None
    records = list((tmp_path / "fresh" / "references" / "tiny-llava").glob("*.json"))
    assert len(records) == 3 and all(json.loads(r.read_text())["weights"] for r in records)
    # and a run on them: unlearning and evaluation, no reference trained or scored
    assert main(["run", "--method", "ga", "--method-arg", "steps=2", *SMALL, "--output-dir", str(tmp_path / "runs")]) == 0


def test_a_changed_recipe_trains_anew_and_retrain_trains_again(shipped_small, tmp_path):
    from mmu_bench.core import integrity

    args = [*SMALL, "--model-arg", "finetune_steps=5", "--min-vanilla-mc", "0", "--eval-limit", "2"]
    assert main(["prepare", *args]) == 0
    models = tmp_path / "fresh" / "models" / "tiny-llava"
    shipped_names = {p.name for p in (shipped_small / "models" / "tiny-llava").iterdir()}
    trained = {p.name for p in models.iterdir()} - shipped_names
    assert {name.split("-")[0] for name in trained} == {"vanilla", "oracle", "visual_oracle"}
    for name in trained:
        assert json.loads((models / name / "recipe.json").read_text())["recipe"]["finetune_steps"] == 5
    # the base does not depend on finetune_steps: it came from the shipped set
    assert {p.name for p in models.iterdir() if p.name.startswith("base-")} <= shipped_names

    # --retrain: every model of the setting trained again (base included), stale records remade
    before = {p.name: (p / "recipe.json").stat().st_mtime_ns for p in models.iterdir()}
    recs = tmp_path / "fresh" / "references" / "tiny-llava"
    for path in recs.glob("*.json"):  # as if made from other weights
        entry = json.loads(path.read_text())
        entry.pop("sha256")
        entry["weights"] = "0" * 64
        integrity.sealed_json(path, entry)
    assert main(["prepare", "--retrain", *args]) == 0
    after = {p.name: (p / "recipe.json").stat().st_mtime_ns for p in models.iterdir()}
    assert set(after) == set(before)  # same recipes, same folders, nothing left aside
    assert all(after[name] > before[name] for name in before)
    for path in recs.glob("*.json"):
        entry = json.loads(path.read_text())
        assert entry["weights"] == shipped.weights_digest(tmp_path / "fresh" / entry["model_path"])


def test_shipped_records_are_used_only_for_their_own_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "root", lambda: tmp_path)
    (tmp_path / "records" / "tiny-llava").mkdir(parents=True)
    entry = {"role": "vanilla", "records": [], "weights": "ab" * 32}
    (tmp_path / "records" / "tiny-llava" / "vanilla-x.json.gz").write_bytes(gzip.compress(json.dumps(entry).encode()))
    assert shipped.records("tiny-llava", "vanilla-x.json", "ab" * 32) == entry
    assert shipped.records("tiny-llava", "vanilla-x.json", "cd" * 32) is None
    assert shipped.records("tiny-llava", "vanilla-x.json", None) is None
    assert shipped.records("tiny-llava", "oracle-x.json", "ab" * 32) is None


def test_a_damaged_shipped_model_is_not_installed(tmp_path, monkeypatch):
    from mmu_bench.core import integrity

    monkeypatch.setattr(shipped, "root", lambda: tmp_path)
    folder = tmp_path / "models" / "tiny-llava" / "vanilla-abc"
    folder.mkdir(parents=True)
    (folder / "recipe.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    integrity.seal(folder)
    (folder / "model.safetensors").write_bytes(b"weight")  # truncated
    assert not shipped.install_model("tiny-llava", tmp_path / "cache" / "vanilla-abc")
    assert not (tmp_path / "cache" / "vanilla-abc").exists()


def test_the_shipped_set_is_the_current_recipes_and_intact():
    """Fails after a change of the recipe, the prompts or MMU-Synth's generator until
    scripts/train_references.py has been rerun (else every user trains the references)."""
    from mmu_bench.core import integrity
    from mmu_bench.data.synth import load

    benchmark = load()
    provider = TinyLlavaProvider(progress=False)
    for role in ("base", *provider.roles):
        name = provider.path(role, benchmark).name
        folder = shipped.model_folder("tiny-llava", name)
        assert folder is not None, f"no shipped {role} model named {name}: rerun scripts/train_references.py"
        assert integrity.damage(folder) is None
        assert shipped.weights_digest(folder) == integrity.file_digest(folder / shipped.WEIGHTS)
    # The default continual stream's gold references (5 requests: everyone forgotten after
    # requests 1-4; the fifth is the visual oracle above) ship too, each with its records.
    from mmu_bench.harness.continual import relabel
    from mmu_bench.spec.continual import split_people

    requests = split_people(list(benchmark.forget_entities), 5, 0)
    for j in range(1, 5):
        view = relabel(benchmark, sorted(set().union(*requests[:j])), [], benchmark.forget_ratio)
        name = provider.path("visual_oracle", view).name
        assert shipped.model_folder("tiny-llava", name) is not None, f"no shipped gold of requests 1-{j}: {name}"
    assert len(list((shipped.root() / "records" / "tiny-llava").glob("*.json.gz"))) == len(provider.roles) + 4
