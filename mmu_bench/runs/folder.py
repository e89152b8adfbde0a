"""A run folder: made whole in a staging folder and renamed into place, so that a crash or Ctrl-C
leaves no partial run and an existing run folder is never touched.

``<output_dir>/<benchmark>/<model>/<method>/<UTC time>-r<forget ratio>-s<seed>`` holds, for a
finished run, ``results.json`` (``mmu_bench.runs.results``), ``samples.jsonl`` and
``thumbnails.json`` (``mmu_bench.runs.samples``), ``trajectory.jsonl``
(``mmu_bench.runs.trajectory``), ``attacks.json`` (``mmu_bench.runs.attacks``), ``config.yaml``,
the tables and ``report.html`` (``mmu_bench.reporting``) and, where kept, the unlearned weights
(``model/``); a failed one holds ``failure.json`` only.
"""

from __future__ import annotations

import json
import traceback
from datetime import datetime, timezone
from pathlib import Path

from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.names import safe_name
from mmu_bench.core.storage import staging_dir
from mmu_bench.runs import results
from mmu_bench.runs.results import ResultsError

RESULTS_FILE = "results.json"
CONFIG_FILE = "config.yaml"
FAILURE_FILE = "failure.json"
MODEL_DIR = "model"  # the unlearned weights (what `mmu-bench attack --run` loads)


def run_folder(path: str | Path, option: str = "") -> Path:
    """A finished run folder (it holds results.json); ResultsError naming ``option`` otherwise."""
    folder = Path(path)
    if not (folder / RESULTS_FILE).is_file():
        raise ResultsError(f"{option}{path}: no results.json there; not a finished run folder")
    return folder


def new_run_dir(output_dir: str, benchmark: str, model: str, method: str, forget_ratio: float, seed: int) -> Path:
    """A folder name no run has taken yet."""
    root = Path(output_dir) / safe_name(benchmark) / safe_name(model) / safe_name(method)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-r{forget_ratio:g}-s{seed}"
    candidate, n = root / base, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{base}-{n}"
    return candidate


def write_new(output_dir: str, names: tuple[str, str, str], forget_ratio: float, seed: int, fill) -> Path:
    """``fill(tmp, run_id)`` writes a staging folder that is renamed to a new run folder of
    ``names`` (benchmark, model, method)."""
    for _ in range(100):
        final = new_run_dir(output_dir, *names, forget_ratio, seed)
        try:
            with staging_dir(final) as tmp:
                fill(tmp, final.name)
            return final
        except FileExistsError:
            continue  # another run took this id meanwhile: take the next one
    raise MMUBenchError(f"could not find a free run folder under {output_dir}")


def write_failure(config, method_name: str, key: str | None, error: BaseException, where: dict | None = None) -> Path:
    """Record a failed run (``config``: its RunConfig) in its own folder (``failure.json``, never
    ``results.json``); ``where``: where in the run it failed (a continual run's request)."""
    record = {"run_key": key, "config": config.to_dict(), "error": f"{type(error).__name__}: {error}",
              "traceback": "".join(traceback.format_exception(error)),
              "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **(where or {})}

    def fill(tmp: Path, run_id: str) -> None:
        (tmp / FAILURE_FILE).write_text(json.dumps(results.json_safe(record), indent=2, default=str) + "\n")

    return write_new(config.output_dir, (config.benchmark, config.model, method_name), config.forget_ratio, config.seed,
                     fill)
