"""`mmu-bench meta-eval` end to end on the small benchmark: pools of seed-1 models trained on a
cheaper recipe (their weights come with the committed small references: else this trains them,
about 90 s of CPU), one unlearned model, relearning and quantisation, the files and the page."""

import csv
import json
from pathlib import Path

import pytest

from mmu_bench.cli import main
from mmu_bench.runs import meta
from small import SMALL, SMALL_FIXTURE, SMALL_POOLS

BASE = [a for a in SMALL if a not in ("--trajectory", "0")]  # meta-eval runs no trajectory
POOLS = [*SMALL_POOLS, "--methods", "ga", "--resamples", "200"]
STEM = "meta-eval__mmu-synth__tiny-llava"


@pytest.fixture(scope="module")
def board(tmp_path_factory, report_run):
    out = tmp_path_factory.mktemp("meta-board")
    # a leaderboard page first: meta-eval adds its section to the page it finds
    runs = next(p for p in report_run.parents if p.name.startswith("report-runs"))
    assert main(["leaderboard", "--runs", str(runs), "--output", str(out), "--no-plot"]) == 0
    assert main(["meta-eval", *BASE, *POOLS, "--output", str(out)]) == 0
    return out


def test_meta_eval_writes_every_measure_of_both_sides(board):
    doc = json.loads((board / f"{STEM}.json").read_text())
    assert doc["pools"]["visual_forgetting"] == {
        "knows": ["vanilla finetune_steps=150 seed=1"],
        "never": ["visual_oracle finetune_steps=150 seed=1", "oracle finetune_steps=150 seed=1"]}
    assert doc["pools"]["textual_retention"]["never"] == ["oracle finetune_steps=150 seed=1"]
    assert set(doc["attacks"]) == {"relearn", "quantise"}
    unlearned = doc["models"]["unlearned ga"]
    assert set(unlearned["attacked"]) == {"relearn", "quantise"}
    # the never-knew models of the visual side are attacked too, the knowing ones are not
    assert set(doc["models"]["oracle finetune_steps=150 seed=1"]["attacked"]) == {"relearn", "quantise"}
    assert doc["models"]["vanilla finetune_steps=150 seed=1"]["attacked"] == {}
    rows = list(csv.DictReader((board / f"{STEM}.csv").open()))
    expected = sum(len(m) for m in doc["measures"].values())
    assert len(rows) == expected
    assert {"exact_memorization", "extraction_strength", "forget_quality", "privleak_loss"} <= {
        r["measure"] for r in rows if r["side"] == "visual_forgetting"}
    for row in rows:
        if row["faithfulness"]:
            assert 0 <= float(row["faithfulness"]) <= 1
    assert "relearn_robustness" in rows[0] and (board / f"{STEM}.png").stat().st_size > 0
    text = (board / f"{STEM}.md").read_text()
    assert "## Visual forgetting" in text and "## Textual retention" in text and "| mc_loglik_acc |" in text


def test_the_pools_read_as_the_models_were_made(board):
    """A vanilla-recipe model knows the forget people's faces, the visual oracle never saw them:
    the measure the harness scores multiple choice by reads them apart."""
    doc = json.loads((board / f"{STEM}.json").read_text())
    rows = {(r["side"], r["measure"]): r for r in meta.summarise(doc)}
    assert rows["visual_forgetting", "mc_loglik_acc"]["faithfulness"] == 1.0
    assert rows["visual_forgetting", "mc_loglik_acc"]["gap"] > 0


def _cached(home):
    """The trained models and the cached records, with their modification times."""
    return {(p, p.stat().st_mtime_ns) for folder in ("models", "references", "meta-eval")
            for p in (home / folder).rglob("*") if p.is_file()}


def test_a_second_meta_eval_reuses_the_caches_and_gives_the_same_values(board, small_references):
    page = (board / "index.html").read_text()
    assert page.count(f'<section id="{STEM}">') == 1
    first = json.loads((board / f"{STEM}.json").read_text())
    cached = _cached(small_references)
    assert any("meta-eval" in str(p) for p, _ in cached)
    assert main(["meta-eval", *BASE, *POOLS, "--output", str(board)]) == 0
    again = json.loads((board / f"{STEM}.json").read_text())
    assert again["models"] == first["models"]
    assert _cached(small_references) == cached  # nothing trained, evaluated or cached anew
    assert (board / "index.html").read_text().count(f'<section id="{STEM}">') == 1  # replaced, not added


def test_meta_eval_refuses_seed_0_and_an_attack_that_makes_no_model(capsys):
    assert main(["meta-eval", *BASE, "--seeds", "0,1", "--output", "unused"]) == 2
    assert "0 is the references' seed" in capsys.readouterr().err
    assert main(["meta-eval", *BASE, "--seeds", "1", "--attack", "prompt", "--output", "unused"]) == 2
    assert "--attack prompt: makes no model" in capsys.readouterr().err


def test_the_pool_models_came_with_the_small_references(board):
    doc = json.loads((board / f"{STEM}.json").read_text())
    made = {Path(m["model_path"]).name for m in doc["models"].values() if m["kind"] == "pool"}
    committed = {p.name for p in (SMALL_FIXTURE / "models" / "tiny-llava").iterdir()}
    assert made <= committed, (f"this session trained the pool models {sorted(made - committed)}, which "
                               f"{SMALL_FIXTURE} lacks: run python scripts/train_small_references.py and commit it")
