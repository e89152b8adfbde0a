"""`mmu-bench sweep`: a grid of runs (methods x seeds x forget ratios) that resumes.

A grid cell whose results already exist (same run key in a ``results.json`` under the output
folder) is skipped, so an interrupted sweep picks up where it stopped. A failing cell does not
stop the grid: its error is recorded in its own run folder (``failure.json``, never a
``results.json``) and reported at the end; the next sweep tries it again. Where the points run
(here, N processes at once, SLURM jobs) is ``mmu_bench.launch``'s part; each runs ``run_point``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from mmu_bench.core import locks
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.harness.launch import LaunchOptions, PointJob, run_local, settings, submit_slurm
from mmu_bench.harness.run import prepare, run
from mmu_bench.runs import results
from mmu_bench.runs.folder import write_failure
from mmu_bench.spec.config import RunConfig
from mmu_bench.spec.plan import for_references, for_run


@dataclass
class CellOutcome:
    method: str
    seed: int
    forget_ratio: float
    status: str  # done | skipped | failed | elsewhere (another sweep holds its lock) | submitted (SLURM)
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
         method_args: dict[str, str], requests: list[int] | None = None) -> list[RunConfig]:
    """Every point of methods x forget ratios x seeds (x requests: continual streams of that many
    requests, 1 an ordinary run), in that order."""
    if not methods or not seeds or not ratios:
        raise MMUBenchError("a sweep needs at least one method, one seed and one forget ratio")
    targets = {key.rpartition(".")[0] for key in method_args if "." in key}
    unknown = sorted(targets - set(methods))
    if unknown:
        raise MMUBenchError(f"--method-arg names method(s) {', '.join(unknown)} that are not in --methods")
    if requests is not None and any(k < 1 for k in requests):
        raise MMUBenchError(f"--requests must be at least 1, got {requests}")
    streams = [dict(base.continual)] if requests is None else [with_requests(base.continual, k) for k in requests]
    return [
        dataclasses.replace(base, method=m, seed=s, forget_ratio=r, method_args=method_args_for(m, method_args),
                            continual=stream)
        for m in methods for r in ratios for stream in streams for s in seeds
    ]


def with_requests(block: dict, k: int) -> dict:
    """A config's continual block with ``k`` requests (1: none, an ordinary run)."""
    out = {key: value for key, value in block.items() if key != "requests"}
    return {**out, "requests": k} if k > 1 else out


def run_point(config: RunConfig, name: str, key: str, execute=None, plan=None) -> CellOutcome:
    """One grid point, under its lock (another sweep that holds it runs it), wherever it runs:
    ``execute()`` (default: ``run`` of ``plan``, or of the config's plan, here) returns the run
    folder; a failure is recorded in ``failure.json``."""
    lock = locks.lock_path(config.output_dir, key)
    if not locks.acquire(lock):
        return outcome(config, name, "elsewhere", str(lock))
    with locks.held(lock):
        finished = existing_keys(config.output_dir).get(key)  # by another sweep, since this one looked
        if finished:
            return outcome(config, name, "skipped", finished)
        try:
            folder = execute() if execute is not None else run(plan or for_run(config, progress=False), progress=False)
            return outcome(config, name, "done", str(folder))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one failing cell must not stop the grid
            return failed(config, name, key, exc)


def outcome(config: RunConfig, name: str, status: str, path: str = "", error: str = "") -> CellOutcome:
    return CellOutcome(method=name, seed=config.seed, forget_ratio=config.forget_ratio, status=status, path=path,
                       error=error)


def failed(config: RunConfig, name: str, key: str, exc: BaseException) -> CellOutcome:
    # A continual run's failed request has written its own failure.json (naming the request).
    folder = getattr(exc, "folder", None) or write_failure(config, name, key, exc)
    return outcome(config, name, "failed", str(folder), f"{type(exc).__name__}: {exc}")


def sweep(configs: list[RunConfig], progress: bool = True, launch: LaunchOptions | None = None) -> list[CellOutcome]:
    """Run the grid's unfinished points (``launch``: where; default here, one after another).
    On SLURM without ``launch.wait`` the points are submitted and reported as ``submitted``."""
    launch = launch or LaunchOptions()
    launch.validate()
    # Every cell is planned (its options, plugins and key checked) before the first run starts.
    points, plans = [], {}
    for config in configs:
        plan = for_run(config, progress=False)
        points.append(PointJob(config, plan.method["name"], plan.key))
        plans[plan.key] = plan
    done = existing_keys(configs[0].output_dir) if configs else {}
    outcomes: dict[int, CellOutcome] = {}
    for i, point in enumerate(points):
        if point.key in done:
            outcomes[i] = outcome(point.config, point.name, "skipped", done[point.key])
    pending = [p for i, p in enumerate(points) if i not in outcomes]
    index = {id(p): i for i, p in enumerate(points)}
    bar = tqdm(total=len(configs), initial=len(outcomes), desc="sweep", unit="run", disable=None if progress else True)

    def finish(point: PointJob, result) -> None:
        if isinstance(result, BaseException):
            result = failed(point.config, point.name, point.key, result)
        outcomes[index[id(point)]] = result
        bar.set_postfix_str(f"{point.name} ratio={point.config.forget_ratio:g} seed={point.config.seed}: {result.status}")
        bar.update(1)

    if launch.launcher == "inline":
        for point in pending:
            finish(point, run_point(point.config, point.name, point.key, plan=plans[point.key]))
    elif launch.launcher == "local":
        if pending:
            output_dir = pending[0].config.output_dir
            for config in settings([p.config for p in pending]):  # once, here, not in every job
                prepare(for_references(config, progress=False), progress=False)
            run_local(pending, launch, output_dir, finish)
    else:
        output_dir = configs[0].output_dir if configs else "runs"
        prepared, jobs = submit_slurm(pending, settings([p.config for p in pending]), launch, output_dir)
        if launch.wait:
            _wait(prepared, list(zip(pending, jobs)), finish)
        for point, job in zip(pending, jobs):
            if index[id(point)] not in outcomes:
                outcomes[index[id(point)]] = outcome(point.config, point.name, "submitted", f"SLURM job {job.job_id}")
    bar.close()
    return [outcomes[i] for i in range(len(points))]


def _wait(prepared: list, jobs: list, finish) -> None:
    """Follow submitted SLURM jobs until each has ended, reporting them as they do."""
    for job in prepared:
        job.wait()  # a failed preparation fails the grid's jobs (afterok): they are reported below
    waiting = list(jobs)
    while waiting:
        for point, job in [pj for pj in waiting if pj[1].done()]:
            waiting.remove((point, job))
            try:
                finish(point, job.result())
            except Exception as exc:  # cancelled, over time, never started
                finish(point, exc)
        time.sleep(5 if waiting else 0)
