"""Multi-process runs (``accelerate launch``) against the single-process run, on CPUs.

The equivalence tested: 2 processes, each training on its half of every batch of 8 rows,
against 1 process training on the whole batch, same seed, same steps. Both see the same rows
at every step; they differ only in how the gradient weighs them: DDP averages the two halves'
token-mean gradients, one process takes the token mean over all 8 rows (the same when both
halves hold as many answer tokens). Evaluation sharding alone changes nothing beyond float
noise (measured: identical outputs, option log-probabilities within 2e-6). So we require:
the same items scored in the same order; the reference columns identical; every metric of
the unlearned model within 1/4 (at most one of the four items per task and format scored
differently; measured: no difference); the first step's loss within 10 % (measured 3 %).

``accelerate launch --cpu --num_processes 2`` starts *one* process unless MPI is installed,
so the test launches through torchrun, as on GPUs, and tells accelerate to stay on the CPU.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmu_bench.api.context import EncodedSet
from mmu_bench.cli import main
from mmu_bench.harness.distributed import deal
from small import SMALL

GA = ["--method", "ga", "--method-arg", "steps=4", "--method-arg", "batch_size=8", "--method-arg", "lr=3e-4"]
EVAL = ["--eval-limit", "4", "--trajectory", "2"]
METRICS = ("mc_acc", "mc_loglik_acc", "cloze_acc", "rougeL", "score")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args, tmp_path, cpu=True):
    """``mmu-bench`` over 2 CPU processes; the caches come from MMU_BENCH_HOME (conftest)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HOME": str(tmp_path / "hf")}  # HF_HOME: no user config
    env.pop("ACCELERATE_USE_CPU", None)
    if cpu:
        env["ACCELERATE_USE_CPU"] = "true"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), "-m", "mmu_bench", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def only_run(out, method):
    folders = list((out / "mmu-synth" / "tiny-llava" / method).iterdir())
    assert len(folders) == 1, folders
    return folders[0]


def table(folder):
    lines = (folder / "table.csv").read_text().splitlines()
    header = lines[0].split(",")
    return {line.split(",")[0]: dict(zip(header, line.split(","))) for line in lines[1:]}


def samples(folder):
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


def files(folder) -> set:
    return {p for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same GA run in one process (which also fills the caches) and in two (logging to
    tensorboard: tracking changes no score, tests/harness/test_trackers.py)."""
    single, multi = tmp_path_factory.mktemp("single"), tmp_path_factory.mktemp("multi")
    assert main(["run", *GA, *SMALL, *EVAL, "--output-dir", str(single)]) == 0
    home = Path(os.environ["MMU_BENCH_HOME"])  # set for the whole session by conftest
    cached = files(home)
    done = launch(["run", *GA, *SMALL, *EVAL, "--output-dir", str(multi), "--log-with", "tensorboard"],
                  tmp_path_factory.mktemp("launch"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert files(home) == cached  # the caches were ready: no process wrote to them
    return only_run(single, "ga"), multi, done


def test_two_processes_write_one_run_folder(runs):
    _, multi, done = runs
    folder = only_run(multi, "ga")
    assert {p.relative_to(multi).parts[0] for p in files(multi)} == {"mmu-synth", "tensorboard"}
    assert {p.relative_to(folder).parts[0] for p in files(folder)} == {
        "config.yaml", "information.csv", "results.json", "samples.jsonl", "table.csv", "table.md", "model",
        "trajectory.jsonl", "report.html", "thumbnails.json"}
    assert (folder / "model" / "model.safetensors").is_file()  # the unwrapped model's weights, once
    assert json.loads((folder / "results.json").read_text())["provenance"]["processes"] == 2
    assert done.stdout.count("run folder:") == 1  # only the main process reports


def test_only_the_main_process_logs_to_a_tracker(runs):
    """One tracker run, with the loss the processes agreed on (their mean), as results.json has it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, multi, _ = runs
    results = json.loads((only_run(multi, "ga") / "results.json").read_text())
    logs = multi / "tensorboard"
    (events,) = logs.rglob("*-r10-s0/events.out.tfevents.*")  # one writer, not one per process
    assert len(list(logs.rglob("hparams.yml"))) == 1
    logged = EventAccumulator(str(events.parent))
    logged.Reload()
    assert {e.step: e.value for e in logged.Scalars("train/loss")} == {
        h["step"]: pytest.approx(h["loss"], rel=1e-6) for h in results["training"]["log"]}


def test_two_processes_give_the_single_process_table(runs):
    single, multi, _ = runs
    multi = only_run(multi, "ga")
    assert [(s["task"], s["item_id"]) for s in samples(single)] == [(s["task"], s["item_id"]) for s in samples(multi)]
    one, two = table(single), table(multi)
    assert one.keys() == two.keys()
    for task in one:
        assert (one[task]["vanilla"], one[task]["oracle"]) == (two[task]["vanilla"], two[task]["oracle"])
        for metric in METRICS:
            assert abs(float(one[task][metric]) - float(two[task][metric])) <= 0.25 + 1e-9, (task, metric)


def test_two_processes_score_the_same_trajectory(runs):
    """Every process scores its share of each point's items; the main one writes every point."""
    single, multi, _ = runs
    one, two = ([json.loads(line) for line in (folder / "trajectory.jsonl").read_text().splitlines()]
                for folder in (single, only_run(multi, "ga")))
    assert [p["step"] for p in one] == [p["step"] for p in two] == [0, 2, 4]
    for a, b in zip(one, two):
        assert a["dimensions"].keys() == b["dimensions"].keys()
        for dim in a["dimensions"]:
            assert abs(a["dimensions"][dim] - b["dimensions"][dim]) <= 0.25 + 1e-9, dim
    assert one[0]["dimensions"] == two[0]["dimensions"]  # before any step: the same model


def test_two_processes_train_on_the_same_rows(runs):
    single, multi, _ = runs
    a = json.loads((single / "results.json").read_text())
    b = json.loads((only_run(multi, "ga") / "results.json").read_text())
    assert a["training"]["steps"] == b["training"]["steps"] == 4
    assert b["training"]["first_loss"] == pytest.approx(a["training"]["first_loss"], rel=0.10)
    # Both really unlearned: the forget set's likelihood fell (GA's loss is -NLL).
    for result in (a, b):
        assert result["training"]["last_loss"] < 2 * result["training"]["first_loss"]
    assert a["dimensions"]["unlearned"]["visual_forgetting"] < a["dimensions"]["vanilla"]["visual_forgetting"]


def test_a_method_that_desynchronises_the_processes_is_refused(runs, tmp_path):
    plugin = tmp_path / "drift.py"
    plugin.write_text(
        "import torch\n"
        "from mmu_bench.method import UnlearningMethod\n\n"
        "class Drift(UnlearningMethod):\n"
        "    name = 'drift'\n\n"
        "    def unlearn(self, ctx):  # edits weights from this process's slice of the images\n"
        "        batch = next(ctx.data.forget.batches(2, seed=0))\n"
        "        with torch.no_grad():\n"
        "            next(ctx.unwrapped_model.parameters()).add_(batch['pixel_values'].mean() * 1e-3)\n"
    )
    done = launch(["run", "--method", f"{plugin}:Drift", *SMALL, *EVAL, "--output-dir", str(tmp_path / "runs")], tmp_path)
    assert done.returncode != 0
    assert "the processes' models differ after unlearning" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_processes_that_accelerate_does_not_join_are_refused(tmp_path):
    # Without ACCELERATE_USE_CPU accelerate sees no GPU and runs each process on its own.
    done = launch(["run", "--method", "ga", "--quiet", "--output-dir", str(tmp_path / "runs")], tmp_path, cpu=False)
    assert done.returncode != 0
    assert "the launcher started 2 processes but accelerate set up 1" in done.stderr
    assert not (tmp_path / "runs").exists()


# -- the pieces, in one process -------------------------------------------------------------


class _Processor:
    class tokenizer:
        pad_token_id = 0


def _encoded(n: int, part=None) -> EncodedSet:
    data = EncodedSet(list(range(n)), _Processor(), {}, part=part)
    data._features = [{"input_ids": torch.tensor([i + 1] * (1 + i % 3)), "labels": torch.tensor([i + 1] * (1 + i % 3))}
                      for i in range(n)]
    return data


def _rows(batch) -> list[int]:
    return batch["input_ids"][:, 0].tolist()


def test_each_process_trains_on_its_slice_of_the_single_process_batch():
    whole = _encoded(11).batches(4, seed=3)
    halves = [_encoded(11, part=(i, 2)).batches(4, seed=3) for i in range(2)]
    for _ in range(6):  # over an epoch boundary
        expected = _rows(next(whole))
        got = [_rows(next(h)) for h in halves]
        assert got[0] + got[1] == expected and len(got[0]) == len(got[1]) == 2
    odd = [_rows(next(_encoded(11, part=(i, 3)).batches(4, seed=3))) for i in range(3)]
    assert sum(odd, []) == _rows(next(_encoded(11).batches(4, seed=3))) and sorted(map(len, odd)) == [1, 1, 2]


def test_a_batch_smaller_than_the_process_count_is_refused():
    with pytest.raises(ValueError, match="cannot be split over 4 processes"):
        next(_encoded(11, part=(0, 4)).batches(3, seed=0))


def test_evaluation_items_are_dealt_round_robin_in_equal_shares():
    shares = [deal(7, i, 3) for i in range(3)]
    assert [mine for mine, _ in shares] == [[0, 3, 6], [1, 4], [2, 5]]
    assert [padded for _, padded in shares] == [[0, 3, 6], [1, 4, 4], [2, 5, 5]]
    assert deal(1, 1, 2) == ([], [0])  # more processes than items: still one batch each
    assert deal(0, 0, 2) == ([], [])


def test_a_single_process_run_does_not_import_accelerate():
    code = "import sys, mmu_bench.cli, mmu_bench.harness.run; assert 'accelerate' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
