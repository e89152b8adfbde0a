"""--log-with: the experiment trackers get the run's configuration, its loss and learning rate per
training step and its final scores, the same numbers as its results.json; tracking changes neither
the run key nor the scores; a tracker's missing package or an unknown name fails before any work,
naming the extra or the valid names; a tracker failing at the end loses nothing.

One small GA run logs to all three trackers (tensorboard, wandb offline, mlflow's default store),
read back here with each tool's own reader; an untracked twin shows the scores unchanged; `eval`
log once (a 2-process `accelerate launch` run: tests/harness/test_accelerate.py)."""

import json
import random
import struct
import sys
from pathlib import Path

import pytest
import torch
import yaml

from mmu_bench.cli import main
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.harness import tracking
from mmu_bench.spec.config import RunConfig
from small import SMALL

RUN = ["run", "--method", "ga", "--method-arg", "steps=3", *SMALL]


def tracker_env(patch, root: Path) -> None:
    """wandb offline into ``root``, quiet; mlflow and wandb with their defaults (no user variables)."""
    patch.setenv("WANDB_MODE", "offline")
    patch.setenv("WANDB_DIR", str(root))
    patch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_PROJECT", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID", "MLFLOW_TAGS"):
        patch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """(run folder, output folder, wandb folder) of one run logged to every tracker."""
    out = tmp_path_factory.mktemp("tracked-runs")
    wandb_dir = tmp_path_factory.mktemp("wandb-dir")
    with pytest.MonkeyPatch.context() as patch:
        tracker_env(patch, wandb_dir)
        assert main([*RUN, "--output-dir", str(out), "--log-with", "tensorboard,wandb", "--log-with", "mlflow"]) == 0
    return next(out.rglob("results.json")).parent, out, wandb_dir


@pytest.fixture(scope="module")
def results(tracked):
    return json.loads((tracked[0] / "results.json").read_text())


def expected_final(results) -> dict:
    final = {f"score/{d}": x for d, x in results["dimensions"]["unlearned"].items()}
    final.update({f"normalised/{d}": x for d, x in results["normalised"].items()})
    final["overall"] = results["overall"]
    return final


def check_against_results(per_step: dict[str, dict[int, float]], results, rel=1e-6) -> None:
    """``per_step[tag][step]``: what a tracker holds; results.json's training log and final scores."""
    log = results["training"]["log"]
    assert len(log) == 3
    assert per_step["train/loss"] == {h["step"]: pytest.approx(h["loss"], rel=rel) for h in log}
    assert per_step["train/lr"] == {h["step"]: pytest.approx(h["lr"], rel=rel) for h in log}
    assert "train/grad_norm" in per_step
    final = expected_final(results)
    assert len(final) >= 9  # four dimensions, raw and normalised, and the overall score
    for tag, value in final.items():
        assert per_step[tag] == {3: pytest.approx(value, rel=rel)}, tag  # at the step after the last one


def test_tensorboard_event_file_holds_results_json_numbers(tracked, results):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, out, _ = tracked
    where = results["provenance"]["trackers"]["tensorboard"]["logdir"]
    logdir = Path(where)
    assert logdir.parent == out / "tensorboard" / "mmu-synth" / "tiny-llava" / "ga"
    assert logdir.name.endswith("-r10-s0")
    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    events.Reload()
    per_step = {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}
    check_against_results(per_step, results, rel=1e-6)  # event files keep float32
    # the configuration, flattened (accelerate also writes it beside the events as hparams.yml)
    (hparams,) = logdir.glob("*/hparams.yml")
    config = yaml.safe_load(hparams.read_text())
    assert config["run_key"] == results["run_key"]
    assert config["method_config.steps"] == 3 and config["method_args.steps"] == "3"
    assert config["benchmark_args.num_entities"] == 20 and config["method_name"] == "ga"
    assert "log_with" not in config


def wandb_records(path: Path) -> list:
    """The records of a .wandb file (wandb's LevelDB-style log: 32 KiB blocks of chunks with a
    7-byte header: CRC, length, type FULL/FIRST/MIDDLE/LAST), parsed with wandb's own protobufs."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending, records = 7, b"", []
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # the block's tail, too short for a header, is padding
            pos += left
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        chunk, pos = data[pos + 7: pos + 7 + length], pos + 7 + length
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            records.append(pending + chunk)
        elif kind == 0 and length == 0:  # zero padding to the block's end
            pos += 32768 - pos % 32768 if pos % 32768 else 0
    parsed = []
    for raw in records:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        parsed.append(record)
    return parsed


def test_wandb_offline_run_holds_results_json_numbers(tracked, results):
    _, out, wandb_dir = tracked
    (folder,) = (wandb_dir / "wandb").glob("offline-run-*")
    info = results["provenance"]["trackers"]["wandb"]
    assert Path(info["dir"]) == folder and info["project"] == "mmu-bench" and folder.name.endswith(info["run_id"])
    assert not (out / "wandb").exists()  # WANDB_DIR wins over the output folder
    records = wandb_records(next(folder.glob("run-*.wandb")))
    per_step: dict[str, dict[int, float]] = {}
    config: dict = {}
    names = []
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "history":
            step = record.history.step.num
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                if not key.startswith("_"):
                    per_step.setdefault(key, {})[step] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "run":
            names.append(record.run.display_name)
    check_against_results(per_step, results, rel=1e-12)  # JSON keeps the float
    assert config["run_key"] == results["run_key"] and config["method_config.steps"] == 3
    assert names and names[0].startswith("mmu-synth/tiny-llava/ga/")


def test_mlflow_default_store_holds_results_json_numbers(tracked, results):
    from mlflow.tracking import MlflowClient

    _, out, _ = tracked
    uri = f"sqlite:///{out / 'mlflow.db'}"
    info = results["provenance"]["trackers"]["mlflow"]
    assert info["tracking_uri"] == f"sqlite:///{(out / 'mlflow.db').resolve()}"
    client = MlflowClient(info["tracking_uri"])
    experiment = client.get_experiment_by_name("mmu-bench")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == info["run_id"] and run.info.status == "FINISHED"
    assert run.info.run_name.startswith("mmu-synth/tiny-llava/ga/")
    per_step = {tag: {m.step: m.value for m in client.get_metric_history(run.info.run_id, tag)} for tag in run.data.metrics}
    check_against_results(per_step, results, rel=1e-12)
    assert run.data.params["run_key"] == results["run_key"] and run.data.params["method_config.steps"] == "3"
    assert MlflowClient(uri).get_experiment_by_name("mmu-bench").experiment_id == experiment.experiment_id


def test_tracking_changes_neither_the_run_key_nor_the_results(tracked, results, tmp_path):
    assert main([*RUN, "--output-dir", str(tmp_path)]) == 0
    twin = json.loads(next(tmp_path.rglob("results.json")).read_text())
    assert twin["run_key"] == results["run_key"]
    for key in ("scores", "dimensions", "normalised", "overall"):
        assert twin[key] == results[key], key
    assert twin["training"]["log"] == results["training"]["log"]
    assert "trackers" not in twin["provenance"] and set(results["provenance"]["trackers"]) == {"tensorboard", "wandb",
                                                                                               "mlflow"}
    config = yaml.safe_load((tracked[0] / "config.yaml").read_text())
    assert config["log_with"] == ["tensorboard", "wandb", "mlflow"]


def test_eval_logs_the_scores_and_a_tracker_failing_at_the_end_loses_nothing(tracked, tmp_path, monkeypatch, capsys):
    """`eval --checkpoint` logs its configuration and final scores (at step 0); the run folder is
    written before the trackers close, so one that fails then costs a warning only."""
    from accelerate.tracking import TensorBoardTracker
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def broken(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(TensorBoardTracker, "finish", broken)
    code = main(["eval", "--checkpoint", str(tracked[0] / "model"), "--name", "ga-again", *SMALL,
                 "--output-dir", str(tmp_path), "--log-with", "tensorboard"])
    assert code == 0
    assert "mmu-bench: warning: tracker tensorboard failed to close (RuntimeError: disk full)" in capsys.readouterr().err
    results = json.loads(next(tmp_path.rglob("results.json")).read_text())
    events = EventAccumulator(results["provenance"]["trackers"]["tensorboard"]["logdir"])
    events.Reload()
    assert "train/loss" not in events.Tags()["scalars"]
    for tag, value in expected_final(results).items():
        assert [(e.step, e.value) for e in events.Scalars(tag)] == [(0, pytest.approx(value, rel=1e-6))]


@pytest.mark.parametrize("name,modules", [
    ("tensorboard", ["tensorboard"]), ("wandb", ["wandb"]), ("mlflow", ["mlflow"]), ("mlflow", ["sqlalchemy"]),
])
@pytest.mark.parametrize("command", ["run", "sweep", "eval"])
def test_a_missing_package_fails_before_any_work_naming_the_extra(name, modules, command, tmp_path, monkeypatch, capsys):
    import mmu_bench.harness.run

    def no_work(*args, **kwargs):
        raise AssertionError("model work started")

    monkeypatch.setattr(mmu_bench.harness.run, "open_session", no_work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails, as if not installed
    args = {"run": ["run", "--method", "ga"], "sweep": ["sweep", "--methods", "ga"],
            "eval": ["eval", "--checkpoint", str(tmp_path / "no-such-model"), "--name", "x"]}[command]
    out = tmp_path / "out"
    assert main([*args, "--output-dir", str(out), "--quiet", "--log-with", name]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"mmu-bench: error: --log-with {name}: {modules[0]} is not installed")
    assert f'pip install -e ".[{name}]"' in err
    assert not out.exists()  # no run folder, no tracker folder


def test_mlflow_with_a_tracking_uri_needs_no_local_store_packages(monkeypatch):
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    tracking.require(["mlflow"])  # the server keeps the runs: mlflow-skinny alone will do
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with pytest.raises(MMUBenchError, match=r'sqlalchemy is not installed .*pip install -e "\.\[mlflow\]"'):
        tracking.require(["mlflow"])


@pytest.mark.parametrize("args,message", [
    (["--log-with", "tensorbord"], "unknown tracker (--log-with) 'tensorbord'. Did you mean 'tensorboard'? "
                                   "Known: mlflow, tensorboard, wandb"),
    (["--log-with", "wandb,comet"], "unknown tracker (--log-with) 'comet'."),
    (["--config", "CONFIG"], "unknown tracker (--log-with) 'neptune'."),
])
def test_an_unknown_tracker_fails_before_any_work_listing_the_valid_ones(args, message, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("method: ga\nlog_with: [tensorboard, neptune]\n")
    args = [str(config) if a == "CONFIG" else a for a in args]
    out = tmp_path / "out"
    assert main(["run", "--method", "ga", *args, "--output-dir", str(out), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_log_with_is_read_from_lists_and_comma_separated_text():
    assert RunConfig(log_with="TensorBoard, wandb,tensorboard").log_with == ["tensorboard", "wandb"]
    assert RunConfig(log_with=["mlflow", "wandb,mlflow"]).log_with == ["mlflow", "wandb"]
    assert RunConfig(log_with=None).log_with == [] and RunConfig().log_with == []
    with pytest.raises(MMUBenchError, match="log_with: expected a tracker name or a list"):
        RunConfig(log_with=3)


class Recording:
    """A stand-in tracker: what it was given, drawing from every random generator as it logs."""

    def __init__(self, fail_at: int | None = None):
        self.logged, self.fail_at, self.finished = [], fail_at, None

    def log(self, values, step=None):
        random.random(), torch.rand(3)  # a tracker's own use of the generators must not shift the run's
        if step == self.fail_at:
            raise ConnectionError("server gone")
        self.logged.append((step, dict(values)))

    def finish(self):
        self.finished = True


def test_logging_keeps_the_random_generators_and_survives_a_failing_tracker(capsys):
    trackers = tracking.Trackers()
    good, bad = Recording(), Recording(fail_at=1)
    trackers.started = {"tensorboard": good, "mlflow": bad}
    logged = []
    log = trackers.watch(lambda **values: logged.append(values))
    random.seed(0)
    torch.manual_seed(0)
    for step in range(3):
        log(step=step, loss=1.0 / (step + 1), lr=torch.tensor(0.5), grad_norm=None, note="text", flag=True)
    drawn = random.random(), torch.rand(1).item()
    random.seed(0)
    torch.manual_seed(0)
    assert drawn == (random.random(), torch.rand(1).item())  # as if nothing had been logged
    assert len(logged) == 3  # the history itself is untouched
    assert good.logged == [(s, {"train/loss": 1.0 / (s + 1), "train/lr": 0.5}) for s in range(3)]
    assert bad.logged == [(0, {"train/loss": 1.0, "train/lr": 0.5})]  # dropped after its failure
    err = capsys.readouterr().err
    assert err.count("tracker mlflow failed to log (ConnectionError: server gone)") == 1
    trackers.close(ok=True)
    assert good.finished and bad.finished


def test_flatten_gives_tracker_safe_values():
    flat = tracking.flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None, "f": 0.5, "g": True, "h": "x", "i": {}})
    assert flat == {"a.b": 1, "a.c.d": "[1, 2]", "e": "None", "f": 0.5, "g": True, "h": "x"}
