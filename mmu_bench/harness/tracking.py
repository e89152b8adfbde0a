"""Experiment trackers (``--log-with tensorboard|wandb|mlflow``), through accelerate's tracker classes.

None is a dependency: each comes with an extra (``pip install -e ".[wandb]"``), and asking for one
that is not installed fails before any work, with an error that names the extra. A run logs, from
the main process only:

- its configuration, flattened (``method_args.steps``, ``method_config.lr``, ``run_key``, ...),
  every value a string, a number or a boolean;
- at each training step, every number the loop and the method log (``train/loss``, ``train/lr``,
  ``train/grad_norm``, ...), at that step: what results.json keeps in ``training.log``;
- at the end, at the step after the last one: each dimension's score (``score/<dimension>``),
  its normalised score (``normalised/<dimension>``) and the overall score (``overall``), as in
  results.json.

Where: tensorboard under ``<output-dir>/tensorboard/<benchmark>/<model>/<method>/<start>-r<ratio>-s<seed>``;
wandb as its WANDB_* variables say (WANDB_MODE=offline needs no network), by default under
``<output-dir>/wandb/``, project WANDB_PROJECT or ``mmu-bench``; mlflow to MLFLOW_TRACKING_URI,
else to a SQLite store ``<output-dir>/mlflow.db`` (experiment MLFLOW_EXPERIMENT_NAME or
``mmu-bench``). results.json records where, under ``provenance.trackers``.

Tracking never changes a run: not its key (``log_with`` is not part of it), not its scores (the
trackers' calls leave the random generators as they found them). A tracker that fails while
logging is dropped with a warning; the final scores are logged after the run folder is written,
so a tracker failing at the end loses nothing.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import random
import sys
from datetime import datetime, timezone
from pathlib import Path

from mmu_bench.core.errors import MMUBenchError, UnknownNameError
from mmu_bench.core.processes import is_main
from mmu_bench.spec.trackers import TRACKERS, names, require

PROJECT = "mmu-bench"  # wandb's project and mlflow's experiment unless WANDB_PROJECT / MLFLOW_EXPERIMENT_NAME


def flatten(values: dict, prefix: str = "") -> dict:
    """Nested mappings as ``a.b`` keys; values a tracker takes: str, int, float, bool (None and
    lists become their text)."""
    out = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


@contextlib.contextmanager
def rng_kept():
    """The global random generators (python, numpy, torch CPU) as they were, whatever runs inside."""
    import numpy as np
    import torch

    state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.set_rng_state(state[2])


def warn(message: str) -> None:
    print(f"mmu-bench: warning: {message}", file=sys.stderr)


class Trackers:
    """The trackers of one run (started and given the configuration by ``start``)."""

    def __init__(self):
        self.started: dict[str, object] = {}  # name -> accelerate GeneralTracker
        self.broken: set[str] = set()
        self.where: dict[str, dict] = {}  # what results.json records under provenance.trackers
        self.closed = False
        self.last_step = -1

    # -- during the run ----------------------------------------------------------------------
    def watch(self, log):
        """``log`` (a context's ``log``) that also sends each entry's numbers to the trackers."""

        def logged(**values):
            log(**values)
            self.log_entry(values)

        return logged

    def log_entry(self, values: dict) -> None:
        step = values.get("step")
        step = int(step) if isinstance(step, numbers.Integral) else self.last_step + 1
        metrics = {f"train/{k}": number for k, v in values.items() if k != "step" and (number := _number(v)) is not None}
        if metrics:
            self.log(metrics, step)

    def log(self, values: dict, step: int) -> None:
        self.last_step = max(self.last_step, step)
        for name, tracker in self.started.items():
            if name in self.broken:
                continue
            try:
                with rng_kept():
                    tracker.log(values, step=step)
            except Exception as exc:  # tracking must never stop a run
                self.broken.add(name)
                warn(f"tracker {name} failed to log ({type(exc).__name__}: {exc}); it logs nothing more for this run")

    # -- at the end --------------------------------------------------------------------------
    def end(self, result, steps: int) -> None:
        """The final scores (at step ``steps``, after the last training step), then close."""
        try:
            self.log(final_scores(result), max(steps, self.last_step + 1))
        except Exception as exc:
            warn(f"the trackers did not get the final scores ({type(exc).__name__}: {exc}); results.json has them")
        self.close(ok=True)

    def close(self, ok: bool) -> None:
        """Finish every started tracker (``ok`` False: mark the tracker's run as failed where it can)."""
        if self.closed:
            return
        self.closed = True
        for name, tracker in self.started.items():
            try:
                with rng_kept():
                    _finish(name, tracker, ok)
            except Exception as exc:
                warn(f"tracker {name} failed to close ({type(exc).__name__}: {exc})")


def final_scores(result) -> dict[str, float]:
    """What a run logs at the end: ``score/<dimension>``, ``normalised/<dimension>``, ``overall``."""
    from mmu_bench.runs.results import UNLEARNED

    final = {f"score/{dim}": x for dim, x in result.dimensions.get(UNLEARNED, {}).items()}
    final.update({f"normalised/{dim}": x for dim, x in result.normalised.items()})
    final["overall"] = result.overall
    return {k: number for k, v in final.items() if (number := _number(v)) is not None}


def start(config, info: dict, key: str) -> Trackers | None:
    """The run's trackers, started, with its configuration logged; None when it asks for none,
    and on the processes of a multi-process run other than the main one. Fails (MMUBenchError)
    when a package is missing or a tracker cannot start (e.g. wandb online without a login)."""
    from mmu_bench.harness import distributed

    wanted = names(config.log_with)
    if not wanted:
        return None
    require(wanted)
    # accelerate's trackers log through its logger, which wants its state set up: under a launcher
    # the Accelerator's (made first, on every process, with our process-group options), else a
    # single process's
    distributed.accelerator()
    if not is_main():
        return None
    from accelerate import PartialState

    PartialState()
    label = run_label(config, info["name"])
    values = flatten({**{k: v for k, v in config.to_dict().items() if k != "log_with"},
                      "method_name": info["name"], "method_version": info.get("version", ""),
                      "method_origin": info.get("origin", ""), "method_source_sha256": info.get("source_sha256", ""),
                      "method_config": info.get("config", {}), "run_key": key})
    trackers = Trackers()
    output, fresh = Path(config.output_dir), not Path(config.output_dir).exists()
    for name in wanted:
        try:
            with rng_kept():
                tracker, where = _make(name, config, label)
                tracker.start()
                trackers.started[name] = tracker
                tracker.store_init_configuration(values)
                trackers.where[name] = where(tracker)
        except Exception as exc:
            trackers.close(ok=False)
            if fresh:  # leave no empty output folder behind
                with contextlib.suppress(OSError):
                    output.rmdir()
            hint = " (without an account or a network: WANDB_MODE=offline)" if name == "wandb" else ""
            message = " ".join(f"{type(exc).__name__}: {exc}".split())  # one line
            raise MMUBenchError(f"--log-with {name}: the tracker could not start: {message}{hint}") from exc
    return trackers


def abort(trackers: Trackers | None) -> None:
    if trackers is not None:
        trackers.close(ok=False)


def run_label(config, method: str) -> str:
    """``<benchmark>/<model>/<method>/<start>-r<ratio>-s<seed>``: the run folder's layout, stamped at the start."""
    from mmu_bench.core.names import safe_name

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    label = "/".join(safe_name(x) for x in (config.benchmark, config.model, method))
    base = f"{label}/{stamp}-r{config.forget_ratio:g}-s{config.seed}"
    candidate, n = base, 1
    while (Path(config.output_dir) / "tensorboard" / candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _make(name: str, config, label: str):
    """(the accelerate tracker, a function of it giving where it writes)."""
    from accelerate import tracking

    output = Path(config.output_dir)
    if name == "tensorboard":
        logdir = output / "tensorboard"
        return tracking.TensorBoardTracker(label, str(logdir)), lambda t: {"logdir": str(logdir / label)}
    if name == "wandb":
        options = {"name": label, "tags": [t[:64] for t in (config.benchmark, config.model, label.split("/")[2])]}
        if not os.environ.get("WANDB_DIR"):
            output.mkdir(parents=True, exist_ok=True)
            options["dir"] = str(output)
        project = os.environ.get("WANDB_PROJECT") or PROJECT
        return tracking.WandBTracker(project, **options), lambda t: {
            "project": project, "run_id": t.run.id, "dir": str(Path(t.run.dir).parent),
            **({"url": t.run.url} if t.run.url else {})}
    if name == "mlflow":
        import mlflow

        artifacts = None
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            output.mkdir(parents=True, exist_ok=True)
            mlflow.set_tracking_uri(f"sqlite:///{(output / 'mlflow.db').resolve()}")
            artifacts = (output / "mlflow-artifacts").resolve().as_uri()
        tracker = tracking.MLflowTracker(PROJECT, logging_dir=artifacts, run_name=label)
        return tracker, lambda t: {"tracking_uri": mlflow.get_tracking_uri(), "experiment": t.experiment_name or PROJECT,
                                   "run_id": t.active_run.info.run_id}
    raise UnknownNameError("tracker (--log-with)", name, TRACKERS)


def _finish(name: str, tracker, ok: bool) -> None:
    if ok:
        tracker.finish()
    elif name == "wandb":
        tracker.run.finish(exit_code=1)
    elif name == "mlflow":
        import mlflow

        mlflow.end_run(status="FAILED")
    else:
        tracker.finish()


def _number(value) -> float | None:
    """A finite or non-finite real number as a float; None for anything else (text, None, bools)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # a 0-d tensor or array
        item = value.item()
        return float(item) if isinstance(item, numbers.Real) and not isinstance(item, bool) else None
    return None
