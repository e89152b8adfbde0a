"""`mmu-bench sweep`: a grid of runs (methods x seeds x forget ratios) that resumes.

A grid cell whose results already exist (same run key in a ``results.json`` under the output
folder) is skipped, so an interrupted sweep picks up where it stopped. A failing cell does not
stop the grid: its error is recorded in its own run folder (``failure.json``, never a
``results.json``) and reported at the end; the next sweep tries it again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from . import locks, results
from .config import RunConfig
from .errors import MMUBenchError
from .runner import method_info, run, run_key, write_failure


@dataclass
class CellOutcome:
    method: str
    seed: int
    forget_ratio: float
    status: str  # done | skipped | failed | elsewhere (another sweep holds its lock)
    path: str = ""
    error: str = ""


def existing_keys(output_dir: str) -> dict[str, str]:
    """run key -> run folder, for every finished run under ``output_dir``."""
    found = {}
    for path in sorted(Path(output_dir).rglob("results.json")):
        try:
            key = results.read(path).run_key
        except results.ResultsError:
            continue  # unreadable here: the cell runs again
        if key:
            found[key] = str(path.parent)
    return found


def method_args_for(method: str, scoped: dict[str, str]) -> dict[str, str]:
    """``--method-arg npo.beta=0.2`` applies to npo only; ``--method-arg lr=1e-4`` to every method."""
    out = {}
    for key, value in scoped.items():
        target, dot, name = key.rpartition(".")
        if not dot:
            out[key] = value
        elif target == method:
            out[name] = value
    return out


def grid(base: RunConfig, methods: list[str], seeds: list[int], ratios: list[float],
         method_args: dict[str, str]) -> list[RunConfig]:
    if not methods or not seeds or not ratios:
        raise MMUBenchError("a sweep needs at least one method, one seed and one forget ratio")
    targets = {key.rpartition(".")[0] for key in method_args if "." in key}
    unknown = sorted(targets - set(methods))
    if unknown:
        raise MMUBenchError(f"--method-arg names method(s) {', '.join(unknown)} that are not in --methods")
    return [
        dataclasses.replace(base, method=m, seed=s, forget_ratio=r, method_args=method_args_for(m, method_args))
        for m in methods for r in ratios for s in seeds
    ]


def _run_point(config: RunConfig, name: str, key: str, cell: dict) -> CellOutcome:
    """One grid point, under its lock: another sweep on the same grid that holds it runs it."""
    lock = locks.lock_path(config.output_dir, key)
    if not locks.acquire(lock):
        return CellOutcome(**cell, status="elsewhere", path=str(lock))
    with locks.held(lock):
        finished = existing_keys(config.output_dir).get(key)  # by another sweep, since this one looked
        if finished:
            return CellOutcome(**cell, status="skipped", path=finished)
        try:
            return CellOutcome(**cell, status="done", path=str(run(config, progress=False)))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one failing cell must not stop the grid
            folder = write_failure(config, name, key, exc)
            return CellOutcome(**cell, status="failed", path=str(folder), error=f"{type(exc).__name__}: {exc}")


def sweep(configs: list[RunConfig], progress: bool = True) -> list[CellOutcome]:
    # Every cell's method and arguments are checked before the first run starts.
    keys = []
    for config in configs:
        config.validate()
        _, _, info = method_info(config)
        keys.append((info["name"], run_key(config, info)))
    done = existing_keys(configs[0].output_dir) if configs else {}
    outcomes = []
    bar = tqdm(total=len(configs), desc="sweep", unit="run", disable=None if progress else True)
    for config, (name, key) in zip(configs, keys):
        bar.set_postfix_str(f"{name} ratio={config.forget_ratio:g} seed={config.seed}")
        cell = dict(method=name, seed=config.seed, forget_ratio=config.forget_ratio)
        if key in done:
            outcomes.append(CellOutcome(**cell, status="skipped", path=done[key]))
        else:
            outcomes.append(_run_point(config, name, key, cell))
        bar.update(1)
    bar.close()
    return outcomes
