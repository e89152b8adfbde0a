"""Through the real harness on the toy benchmark of test_plugin_doors: a method that changes no
weight is recorded as such, warned about at the end of the run and marked on the leaderboard;
a method that trains records how far it moved. The no-op run also asks for the memorisation
measures with ``--measure``: its model is the vanilla model, so it scores what vanilla does."""

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest

from mmu_bench.api import UnlearningMethod

HERE = Path(__file__).resolve()
DOORS = HERE.parent / "test_plugin_doors.py"
TOY = ["--benchmark", f"{DOORS}:ToyBench", "--model", f"{DOORS}:TinyToy", "--forget-ratio", "34",
       "--min-vanilla-mc", "0", "--quiet", "--trajectory", "0",
       "--model-arg", "finetune_steps=40"]  # long enough that the vanilla model predicts some answer tokens


class DoNothing(UnlearningMethod):
    name = "do-nothing"

    def unlearn(self, ctx):
        pass  # e.g. a training loop whose gradients never reach the weights


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from mmu_bench.cli import main

    assert main(["prepare", *TOY]) == 0
    out = tmp_path_factory.mktemp("weight-runs")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert main(["run", "--method", f"{HERE}:DoNothing", "--measure", "exact_memorization",
                     "--measure", "extraction_strength", *TOY, "--output-dir", str(out)]) == 0
    ascent = io.StringIO()
    with contextlib.redirect_stderr(ascent):
        assert main(["run", "--method", f"{DOORS}:ToyAscent", "--method-arg", "steps=2", *TOY,
                     "--output-dir", str(out)]) == 0
    folders = {p.parent.parent.name: p.parent for p in out.rglob("results.json")}
    return out, folders, stderr.getvalue(), ascent.getvalue()


def _result(folder):
    return json.loads((folder / "results.json").read_text())


@pytest.mark.slow
def test_a_run_that_changed_nothing_is_recorded_and_warned_about(runs):
    _, folders, stderr, ascent_stderr = runs
    change = _result(folders["do-nothing"])["provenance"]["weight_change"]
    assert change["unchanged"] is True and change["moved"] == 0 and change["elements"] > 0
    assert change["why"] == f"none of the {change['elements']} trained parameters changed"
    assert all(g["moved"] == 0 and g.get("relative_l2", g.get("l2")) == 0.0 for g in change["groups"].values())
    assert "mmu-bench: warning: unlearning changed nothing" in stderr and str(folders["do-nothing"]) in stderr
    assert "changed nothing" not in ascent_stderr


@pytest.mark.slow
def test_a_run_that_trained_records_how_far_the_weights_moved(runs):
    _, folders, _, _ = runs
    result = _result(folders["toy-ascent"])
    change = result["provenance"]["weight_change"]
    assert change["unchanged"] is False and 0 < change["moved"] <= change["elements"]
    assert sum(g["elements"] for g in change["groups"].values()) == change["elements"]
    assert sum(result["training"]["trainable"]["elements"].values()) == change["elements"]
    assert any(g["relative_l2"] > 0 for g in change["groups"].values())


@pytest.mark.slow
def test_the_leaderboard_marks_the_row_that_changed_nothing(runs, tmp_path):
    from mmu_bench.reporting.leaderboard import build

    out, _, _, _ = runs
    build([str(out)], str(tmp_path), with_plot=False)
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO((tmp_path / "toy-bench__tiny-toy.csv").read_text()))}
    assert rows["do-nothing"]["weights_unchanged"] == "1" and rows["toy-ascent"]["weights_unchanged"] == "0"
    board = (tmp_path / "toy-bench__tiny-toy.md").read_text()
    assert "| do-nothing † |" in board and "| toy-ascent |" in board
    assert "†: unlearning changed no trained weight in a run of this row" in board
    page = (tmp_path / "index.html").read_text()
    assert "do-nothing †" in page and "unlearning changed no trained weight" in page


@pytest.mark.slow
def test_memorisation_measures_asked_for_are_reported(runs):
    _, folders, _, _ = runs
    folder = folders["do-nothing"]
    scores = _result(folder)["scores"]
    records = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    for task, per in scores["unlearned"].items():
        hits = [r["answer_argmax_hits"][:-1] for r in records if r["task"] == task and len(r["answer_argmax_hits"]) > 1]
        em = sum(sum(h) / len(h) for h in hits) / len(hits)
        assert per["exact_memorization"]["mean"] == pytest.approx(em) and per["exact_memorization"]["n"] == len(hits)
        # The last n - k tokens are all hits, so an item's ES never exceeds its EM.
        assert 0 <= per["extraction_strength"]["mean"] <= per["exact_memorization"]["mean"] + 1e-12
        # Nothing changed: the unlearned model is the vanilla one, and scores what it does.
        for name in ("exact_memorization", "extraction_strength"):
            assert per[name]["mean"] == pytest.approx(scores["vanilla"][task][name]["mean"], abs=1e-9)
    assert any(0 < per["exact_memorization"]["mean"] < 1 for per in scores["unlearned"].values())
