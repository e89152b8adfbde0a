"""The typed run configuration: defaults <- YAML file <- command-line options."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

from mmu_bench.api.method import MethodConfig, UnlearningMethod
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.options import coerce, typed_dataclass
from mmu_bench.core.storage import read_yaml_mapping
from mmu_bench.spec import hparams
from mmu_bench.spec import trackers as tracking
from mmu_bench.spec.continual import Continual

LAUNCHERS = ("inline", "local", "slurm")  # where a sweep's grid points run (mmu_bench.harness.launch)


@dataclass
class RunConfig:
    method: str = "npo"
    benchmark: str = "mmu-synth"
    model: str = "tiny-llava"
    forget_ratio: float = 10
    seed: int = 0
    method_args: dict = field(default_factory=dict)  # overrides of the method's Config
    benchmark_args: dict = field(default_factory=dict)  # e.g. num_entities, data_seed (MMU-Synth)
    model_args: dict = field(default_factory=dict)  # e.g. path, dtype (real models)
    tasks: list[str] | None = None  # None = every task
    measures: list[str] = field(default_factory=list)  # measures every task also reports (--measure)
    output_dir: str = "runs"
    eval_batch_size: int = 64
    eval_limit: int | None = None  # score at most this many items per task and format
    min_vanilla_mc: float = 0.9  # refuse to report when the vanilla model knows less than this
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    attacks: list[str] = field(default_factory=list)  # attacks after evaluation ("all": every registered one)
    attack_args: dict = field(default_factory=dict)  # "<attack>.<option>" -> value
    save_model: str = "auto"  # keep the unlearned weights in the run folder: auto (small ones) | yes | no
    protocol: str = "auto"  # evaluation protocol (mmu_bench.protocol): auto = the benchmark's own
    protocol_args: dict = field(default_factory=dict)  # "SETTING.FORMAT" -> value, e.g. shots.cloze=0
    trajectory: int = 8  # score the model at this many evenly spaced points of unlearning (0: none)
    trajectory_sample: int = 24  # ... on this many items per task and format (a seeded sample)
    # experiment trackers that follow the run (mmu_bench.tracking): tensorboard, wandb, mlflow; not in the run key
    log_with: list[str] = field(default_factory=list)
    # general utility on lmms-eval's suites (mmu_bench.suites): its task names, items per task (a
    # seeded sample), whether they join the general-utility dimension (and so the overall score),
    # a folder of one's own lmms-eval task YAMLs
    utility_suite: list[str] = field(default_factory=list)
    utility_limit: int | None = None
    utility_in_overall: bool = False
    utility_tasks: str | None = None
    # a stream of deletion requests (mmu_bench.spec.continual): requests, split_seed, ratios,
    # entities, total_forget_ratio; empty: one request, an ordinary run
    continual: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.log_with = tracking.names(self.log_with)  # also "tensorboard,wandb" (YAML, a command line)
        if isinstance(self.utility_suite, str):  # "pope,mme" in a YAML file
            self.utility_suite = [t.strip() for t in self.utility_suite.split(",") if t.strip()]
        if self.continual:  # the stream's whole forget set is the run's forget ratio
            stream = self.stream
            self.forget_ratio = stream.total_ratio(self.forget_ratio)

    @property
    def stream(self) -> Continual:
        """The run's requests (``continual``), checked."""
        return Continual.of(self.continual)

    def validate(self) -> None:
        """Checks that need no data or model: run before any work is done."""
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**32:
            raise MMUBenchError(f"seed must be an integer in [0, 2**32), got {self.seed!r}")
        if not isinstance(self.forget_ratio, (int, float)) or not 0 < self.forget_ratio < 100:
            raise MMUBenchError(f"forget ratio must be a percentage in (0, 100), got {self.forget_ratio!r}")
        if self.eval_batch_size < 1:
            raise MMUBenchError(f"eval batch size must be at least 1, got {self.eval_batch_size}")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise MMUBenchError(f"eval limit must be at least 1, got {self.eval_limit}")
        if not 0 <= self.min_vanilla_mc <= 1:
            raise MMUBenchError(f"min vanilla accuracy must be in [0, 1], got {self.min_vanilla_mc}")
        if self.trajectory < 0 or self.trajectory_sample < 1:
            raise MMUBenchError(f"trajectory must be >= 0 points and trajectory sample >= 1 item, got "
                                f"{self.trajectory} and {self.trajectory_sample}")
        if self.save_model not in ("auto", "yes", "no"):
            raise MMUBenchError(f"save model must be auto, yes or no, got {self.save_model!r}")
        bad = [k for k in self.attack_args if "." not in str(k)]
        if bad:
            raise MMUBenchError(f"attack argument(s) {', '.join(map(str, bad))}: write ATTACK.OPTION=VALUE, "
                                "e.g. relearn.steps=20")
        tracking.check_names(self.log_with)
        self.stream.validate()
        if not self.utility_suite and (self.utility_limit is not None or self.utility_in_overall or self.utility_tasks):
            raise MMUBenchError("--utility-limit, --utility-in-overall and --utility-tasks need --utility-suite TASKS")
        if self.utility_limit is not None and self.utility_limit < 1:
            raise MMUBenchError(f"utility limit must be at least 1 item per task, got {self.utility_limit}")
        if self.utility_tasks and not Path(self.utility_tasks).is_dir():
            raise MMUBenchError(f"--utility-tasks {self.utility_tasks}: no such folder")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MMUBenchError(f"config file {path} does not exist")
    data = read_yaml_mapping(path, "config file")
    known = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise MMUBenchError(f"config file {path}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return data


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise MMUBenchError(f"{option} expects KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def method_config(cls: type[UnlearningMethod], benchmark: str | Path | None, overrides: dict) -> MethodConfig:
    """The method's Config: dataclass defaults <- its defaults in the benchmark's hyperparameter
    file (``benchmark``: what the adapter declares, a shipped file's name or a path;
    ``mmu_bench.spec.hparams``) <- ``overrides``. Unknown or ill-typed keys are errors that list
    the valid ones (and, for the file's, name it)."""
    hints = typing.get_type_hints(cls.Config)
    values, path = hparams.defaults(benchmark, cls.name, {f.name for f in dataclasses.fields(cls.Config)})
    typed = {k: coerce(v, hints[k], f"hyperparameter file {path}, method {cls.name!r}: {k!r}") for k, v in values.items()}
    return typed_dataclass(cls.Config, {**typed, **overrides}, f"method {cls.name!r}", "argument")


