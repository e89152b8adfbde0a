"""Where a sweep's grid points run: here, one after another (``inline``), N at once as
processes of this machine (``local``), or as SLURM jobs (``slurm``); the last two through
submitit's executors.

Every point, wherever it runs, is ``sweep.run_point``: under its lock, skipped when a finished
run has its key, an ordinary ``mmu-bench run`` (``accelerate launch`` of one when a job has
several GPUs), ``failure.json`` when it fails. The reference models are prepared once before
the grid: by this process (``local``), or by a first SLURM job the grid's array waits for.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mmu_bench.core.errors import MMUBenchError
from mmu_bench.spec.config import LAUNCHERS, RunConfig


@dataclass
class LaunchOptions:
    launcher: str = "inline"
    jobs: int = 1  # local: grid points at once
    gpus_per_job: int = 0  # several: the job runs `accelerate launch --num_processes N`
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = 24 * 60
    cpus_per_job: int | None = None
    mem_gb: int | None = None
    array_parallelism: int | None = None  # SLURM jobs of the grid running at once (default: all)
    wait: bool = False  # slurm: stay and show the grid's progress until every job ended
    setup: list[str] = field(default_factory=list)  # slurm: shell lines before the job (module load, venv)

    def validate(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise MMUBenchError(f"--launcher must be one of {', '.join(LAUNCHERS)}, got {self.launcher!r}")
        if self.jobs < 1 or self.gpus_per_job < 0 or self.time_min < 1:
            raise MMUBenchError("--jobs and --time-limit must be at least 1 and --gpus-per-job at least 0")
        if self.jobs > 1 and self.launcher != "local":
            raise MMUBenchError("--jobs runs grid points at once on this machine: it needs --launcher local "
                                "(on SLURM, --array-parallelism)")
        slurm_only = {"--partition": self.partition, "--account": self.account, "--qos": self.qos,
                      "--array-parallelism": self.array_parallelism, "--mem-gb": self.mem_gb, "--wait": self.wait or None,
                      "--slurm-setup": self.setup or None}
        given = [flag for flag, value in slurm_only.items() if value is not None]
        if given and self.launcher != "slurm":
            raise MMUBenchError(f"{', '.join(given)}: SLURM options, for --launcher slurm only")

    def folder(self, output_dir: str) -> Path:
        """Where submitit keeps its job files and the jobs' logs."""
        return Path(output_dir) / ".submitit"


@dataclass
class PointJob:
    """One grid point as a job: what submitit pickles and runs."""

    config: RunConfig
    name: str
    key: str
    gpus: int = 0
    threads: int = 0  # CPU threads of this job (0: torch's default)

    def __call__(self):
        from mmu_bench.harness.sweep import run_point

        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        return run_point(self.config, self.name, self.key, execute=self.execute)

    def command(self, config_file: Path) -> list[str]:
        run = ["-m", "mmu_bench", "run", "--config", str(config_file), "--quiet"]
        if self.gpus > 1:
            return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(self.gpus),
                    "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", *run]
        return [sys.executable, *run]

    def execute(self) -> Path:
        from mmu_bench.harness.run import run
        from mmu_bench.spec.plan import for_run

        if self.gpus <= 1:
            return run(for_run(self.config, progress=False), progress=False)
        config_file = Path(self.config.output_dir) / ".submitit" / "points" / f"{self.key}.yaml"
        config_file.parent.mkdir(parents=True, exist_ok=True)
        config_file.write_text(yaml.safe_dump(self.config.to_dict(), sort_keys=True))
        proc = subprocess.run(self.command(config_file), capture_output=True, text=True)
        if proc.returncode:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise MMUBenchError(f"`{' '.join(self.command(config_file))}` exited with {proc.returncode}: "
                                + " / ".join(tail))
        from mmu_bench.harness.sweep import existing_keys

        found = existing_keys(self.config.output_dir).get(self.key)
        if not found:
            raise MMUBenchError(f"the run of {self.name} (key {self.key}) ended without writing results.json")
        return Path(found)


@dataclass
class PrepareJob:
    """The reference models and their records for a grid's setting, before any point runs."""

    config: RunConfig

    def __call__(self) -> str:
        from mmu_bench.harness.run import prepare
        from mmu_bench.spec.plan import for_references

        prepare(for_references(self.config, progress=False), progress=False)
        return "prepared"


def settings(configs: list[RunConfig]) -> list[RunConfig]:
    """One config per distinct setting the grid's points need references for (its forget ratios)."""
    seen, out = set(), []
    for config in configs:
        if config.forget_ratio not in seen:
            seen.add(config.forget_ratio)
            out.append(config)
    return out


def _submitit():
    # submitit binds its log handlers to the sys.stdout/sys.stderr of the moment it is first
    # imported; left unconfigured, its messages go through logging's own handler to wherever
    # stderr is when they are written (and only warnings and errors are shown).
    os.environ.setdefault("SUBMITIT_LOG_LEVEL", "NOCONFIG")
    try:
        import submitit
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise MMUBenchError("--launcher local/slurm needs submitit: pip install submitit") from exc
    return submitit


# -- local -----------------------------------------------------------------------------------

def gpu_slots(jobs: int, gpus_per_job: int, available: int) -> list[list[int]]:
    """The GPUs each of ``jobs`` concurrent local jobs gets (none on a CPU machine)."""
    if gpus_per_job == 0:
        return [[] for _ in range(jobs)]
    if jobs * gpus_per_job > available:
        raise MMUBenchError(f"--jobs {jobs} x --gpus-per-job {gpus_per_job} needs {jobs * gpus_per_job} GPUs; "
                            f"this machine has {available}")
    return [list(range(k * gpus_per_job, (k + 1) * gpus_per_job)) for k in range(jobs)]


def run_local(points: list[PointJob], options: LaunchOptions, output_dir: str, on_done) -> None:
    """Run ``points`` as subprocesses, ``options.jobs`` at once; ``on_done(point, outcome or
    exception)`` as each ends."""
    submitit = _submitit()
    import torch

    gpus = options.gpus_per_job
    slots = gpu_slots(options.jobs, gpus, torch.cuda.device_count() if gpus else 0)
    threads = 0 if gpus else max(1, (os.cpu_count() or 1) // options.jobs)
    executor = submitit.LocalExecutor(folder=str(options.folder(output_dir)))
    for point in points:
        point.gpus, point.threads = gpus, threads
    free, running, queue = list(range(options.jobs)), {}, list(points)
    try:
        _drain(executor, slots, options, free, running, queue, on_done)
    except BaseException:  # Ctrl-C: no job is left running unseen
        for job in running:
            job.cancel(check=False)
        raise


def _drain(executor, slots, options, free, running, queue, on_done) -> None:
    while queue or running:
        while queue and free:
            slot, point = free.pop(0), queue.pop(0)
            executor.update_parameters(timeout_min=options.time_min, gpus_per_node=len(slots[slot]),
                                       visible_gpus=slots[slot], tasks_per_node=1)
            running[executor.submit(point)] = (slot, point)
        ended = [job for job in running if job.done()]
        if not ended:
            time.sleep(0.5)
            continue
        for job in ended:
            slot, point = running.pop(job)
            free.append(slot)
            try:
                outcome = job.result()
            except Exception as exc:  # killed, out of memory, over the time limit: the job wrote nothing
                outcome = exc
            on_done(point, outcome)


# -- slurm -----------------------------------------------------------------------------------

def slurm_executor(options: LaunchOptions, output_dir: str):
    submitit = _submitit()
    try:
        executor = submitit.SlurmExecutor(folder=str(options.folder(output_dir)))
    except RuntimeError as exc:  # no srun on PATH
        raise MMUBenchError("--launcher slurm: no SLURM here (`srun` is not on PATH); run the sweep on the "
                            "cluster's login node") from exc
    params = dict(time=options.time_min, nodes=1, ntasks_per_node=1, gpus_per_node=options.gpus_per_job or None,
                  partition=options.partition, account=options.account, qos=options.qos,
                  cpus_per_task=options.cpus_per_job, mem=f"{options.mem_gb}GB" if options.mem_gb else None,
                  job_name="mmu-bench", setup=options.setup or None)
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor


def submit_slurm(points: list[PointJob], prepare_configs: list[RunConfig], options: LaunchOptions,
                 output_dir: str) -> tuple[list, list]:
    """Submit one job per setting that prepares its references, then the grid as a job array
    that starts after they succeed. Returns (prepare jobs, point jobs)."""
    executor = slurm_executor(options, output_dir)
    for point in points:
        point.gpus = options.gpus_per_job
    prepared = [executor.submit(PrepareJob(config)) for config in prepare_configs]
    if prepared:
        executor.update_parameters(dependency="afterok:" + ":".join(job.job_id for job in prepared))
    executor.update_parameters(array_parallelism=options.array_parallelism or len(points))
    jobs = executor.map_array(_call, points) if points else []
    return prepared, jobs


def _call(point: PointJob):
    return point()
