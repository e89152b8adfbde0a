"""What the commands share: the run options (flags that map onto RunConfig fields), building
the RunConfig from them (defaults <- --config YAML <- flags), and printing a finished run."""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.options import coerce
from mmu_bench.spec.config import RunConfig, load_yaml, parse_assignment

# Command-line flags that map onto RunConfig fields (None = not given: YAML or default wins).
FLAGS = {
    "method": ("--method", "method: a built-in or entry-point name, package.module:Class, or path/to/file.py:Class"),
    "benchmark": ("--benchmark", "benchmark: a registered name (`mmu-bench list`), package.module:Class or "
                                 "path/to/file.py:Class (default mmu-synth)"),
    "model": ("--model", "model: a registered name (`mmu-bench list`), <name>:<hub name or local folder> for one that "
                         "takes a source (hf:llava-hf/llava-1.5-7b-hf), package.module:Class or path/to/file.py:Class "
                         "(default tiny-llava)"),
    "forget_ratio": ("--forget-ratio", "percentage of entities to forget: one of the benchmark's splits "
                                       "(`mmu-bench list` shows them; default 10)"),
    "seed": ("--seed", "seed of the unlearning run (default 0)"),
    "output_dir": ("--output-dir", "where run folders go (default ./runs)"),
    "eval_batch_size": ("--eval-batch-size", "evaluation batch size (default 64)"),
    "eval_limit": ("--eval-limit", "score at most this many items per task and format (default: all)"),
    "min_vanilla_mc": ("--min-vanilla-mc", "refuse to report when the vanilla model's multiple-choice accuracy on "
                                          "the forget entities is under this (default 0.9)"),
    "device": ("--device", "auto, cpu, cuda or cuda:N (default auto)"),
    "trajectory": ("--trajectory", "score the model at this many evenly spaced points of unlearning, plus the "
                                   "start and the end, for trajectory.jsonl and matched-forgetting scores "
                                   "(default 8; 0: none)"),
    "trajectory_sample": ("--trajectory-sample", "items per task and format scored at each trajectory point "
                                                 "(a seeded sample, the same in every run; default 24)"),
    "protocol": ("--protocol", "evaluation protocol: auto (the benchmark's own, as its authors' code runs it), a "
                               "shipped protocol's name (`mmu-bench list`), or a protocol YAML file "
                               "(docs/benchmarks.md)"),
    "utility_limit": ("--utility-limit", "score at most this many items of each --utility-suite task (a seeded "
                                         "sample, the same for every model; default: all)"),
    "utility_tasks": ("--utility-tasks", "a folder of lmms-eval task YAMLs of one's own, for --utility-suite "
                                         "(lmms-eval's include_path; README, \"Utility suites\")"),
    "save_model": ("--save-model", "keep the unlearned weights in the run folder's model/ (what `mmu-bench attack "
                                   "--run` loads): auto (a LoRA adapter or a model under 100M parameters), yes or no"),
}
KV = {
    "method_args": ("--method-arg", "a method hyperparameter, KEY=VALUE (repeatable), e.g. beta=0.2"),
    "benchmark_args": ("--benchmark-arg", "a benchmark option, KEY=VALUE (repeatable), e.g. num_entities=40"),
    "model_args": ("--model-arg", "a model option, KEY=VALUE (repeatable), e.g. finetune_steps=2000 (tiny-llava); "
                                  "dtype=float16, lora=false, vanilla=PATH, oracle=PATH (real models)"),
    "protocol_args": ("--protocol-arg", "a protocol setting, SETTING.FORMAT=N (repeatable), e.g. shots.cloze=0 or "
                                        "max_new_tokens.generation=32"),
    "attack_args": ("--attack-arg", "an attack option, ATTACK.KEY=VALUE (repeatable), e.g. relearn.steps=20"),
}


def add_run_options(parser: argparse.ArgumentParser, with_method: bool) -> None:
    parser.add_argument("--config", help="YAML file of run options (command-line flags override it)")
    for name, (flag, help_text) in FLAGS.items():
        if name == "method" and not with_method:
            continue
        parser.add_argument(flag, dest=name, default=None, help=help_text)
    for name, (flag, help_text) in KV.items():
        if name == "method_args" and not with_method:
            continue
        parser.add_argument(flag, dest=name, action="append", default=None, metavar="KEY=VALUE", help=help_text)
    parser.add_argument("--tasks", default=None, help="comma-separated task names (default: all)")
    parser.add_argument("--measure", dest="measures", action="append", default=None, metavar="MEASURE",
                        help="a measure every task also reports: a registered name, package.module:Class or "
                             "path/to/file.py:Class (repeatable)")
    parser.add_argument("--utility-suite", default=None, metavar="TASKS",
                        help="also score general utility on these lmms-eval tasks, comma-separated, e.g. pope,mme "
                             "(pip install -e \".[utility]\"; README, \"Utility suites\")")
    parser.add_argument("--utility-in-overall", action="store_true", default=None,
                        help="the --utility-suite tasks join the general-utility dimension and so the overall "
                             "score (default: reported beside it)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_attack_options(parser)
    add_continual_options(parser)


def add_continual_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("continual unlearning (docs/continual.md)")
    group.add_argument("--requests", default=None, metavar="K",
                       help="unlearn the forget set as K deletion requests, one after another, each on the model "
                            "the last one left, and score the model after each (default 1: an ordinary run; "
                            "sweep: comma-separated, an axis of the grid)")
    group.add_argument("--request-ratios", default=None, metavar="R1,R2,...",
                       help="requests from the benchmark's nested forget splits, e.g. 5,10: request 1 is the 5 %% "
                            "split's people, request 2 the rest of the 10 %% split's")
    group.add_argument("--total-forget-ratio", type=float, default=None, metavar="R",
                       help="the forget set of the whole stream of requests (sets --forget-ratio)")


def continual_block(args: argparse.Namespace, values: dict) -> None:
    """--requests / --request-ratios / --total-forget-ratio into the config's ``continual`` block."""
    if not isinstance(values.get("continual") or {}, dict):  # the YAML's block: its own clear error
        from mmu_bench.spec.continual import Continual

        Continual.of(values["continual"])
    block = dict(values.get("continual") or {})
    if getattr(args, "requests", None) is not None:
        block["requests"] = coerce(args.requests, int, "--requests")
    if getattr(args, "request_ratios", None):
        try:
            block["ratios"] = [float(r) for r in args.request_ratios.split(",") if r.strip()]
        except ValueError:
            raise MMUBenchError(f"--request-ratios expects numbers separated by commas, got {args.request_ratios!r}") from None
    if getattr(args, "total_forget_ratio", None) is not None:
        block["total_forget_ratio"] = args.total_forget_ratio
    if block:
        values["continual"] = block


def add_attack_options(parser: argparse.ArgumentParser, flags: bool = True) -> None:
    if flags:
        parser.add_argument("--attacks", action="store_true",
                            help="after evaluation, run every registered attack (README, \"Attacks\")")
    when = "after evaluation" if flags else "(default: every registered attack)"
    parser.add_argument("--attack", dest="attack_names", action="append", default=None, metavar="ATTACK",
                        help=f"an attack to run {when}: a registered name, package.module:Class or "
                             "path/to/file.py:Class (repeatable)")


def add_tracker_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-with", dest="log_with", action="append", default=None, metavar="TRACKER",
                        help="also log the run to an experiment tracker: the configuration, the loss and learning rate "
                             "per training step, the final scores. tensorboard (pip install -e \".[tensorboard]\"), "
                             "wandb (.[wandb]) or mlflow (.[mlflow]); repeatable or comma-separated "
                             "(README, \"Experiment trackers\")")


def attack_specs(args: argparse.Namespace, values: dict) -> None:
    """--attacks / --attack NAME into the config's ``attacks`` list."""
    specs = list(values.get("attacks") or [])
    if getattr(args, "attacks", False) and "all" not in specs:
        specs.append("all")
    specs += [a for a in getattr(args, "attack_names", None) or [] if a not in specs]
    if specs:
        values["attacks"] = specs


def build_config(args: argparse.Namespace) -> RunConfig:
    """Defaults <- --config YAML <- flags given on the command line."""
    values: dict = load_yaml(args.config) if getattr(args, "config", None) else {}
    hints = typing.get_type_hints(RunConfig)
    for name, (flag, _) in FLAGS.items():
        given = getattr(args, name, None)
        if given is not None:
            values[name] = coerce(given, hints[name], flag)
    for name, (flag, _) in KV.items():
        for text in getattr(args, name, None) or []:
            key, value = parse_assignment(text, flag)
            values.setdefault(name, {})[key] = value if name in ("method_args", "attack_args") else _literal(value)
    attack_specs(args, values)
    continual_block(args, values)
    if getattr(args, "log_with", None):  # --log-with a --log-with b,c: replaces the YAML's list
        values["log_with"] = list(args.log_with)
    if getattr(args, "tasks", None):
        values["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if getattr(args, "utility_suite", None):
        values["utility_suite"] = [t.strip() for t in args.utility_suite.split(",") if t.strip()]
    if getattr(args, "utility_in_overall", None):
        values["utility_in_overall"] = True
    if getattr(args, "measures", None):
        values["measures"] = [*values.get("measures", []), *(m for m in args.measures if m not in values.get("measures", []))]
    for name, value in list(values.items()):
        if name in hints and name not in ("method_args", "benchmark_args", "model_args", "attack_args", "protocol_args",
                                          "tasks", "utility_suite",
                                          "measures", "attacks", "continual"):
            values[name] = coerce(value, hints[name], f"option {name!r}")
    if "forget_ratio" in values and float(values["forget_ratio"]).is_integer():
        values["forget_ratio"] = int(values["forget_ratio"])
    try:
        return RunConfig(**values)
    except TypeError as exc:
        raise MMUBenchError(str(exc)) from exc


def _literal(text: str):
    """Benchmark and model options are typed by their owner; YAML gives ints, floats, bools, lists."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def show_run(path: Path | None) -> int:
    """Print a finished run's table; 1 when one of its attacks failed (the run itself stands)."""
    if path is None:  # a secondary process of a multi-process run
        return 0
    from mmu_bench.runs.attacks import failures, read

    print((path / "table.md").read_text())
    print(f"run folder: {path}")
    failed = failures(read(path))
    for line in failed:
        print(f"mmu-bench: error: attack {line}", file=sys.stderr)
    return 1 if failed else 0



def list_of(text: str, kind, flag: str) -> list:
    try:
        return [kind(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise MMUBenchError(f"{flag} expects a comma-separated list of {kind.__name__} values, got {text!r}") from exc



def launch_options(args):
    from mmu_bench.harness.launch import LaunchOptions

    return LaunchOptions(
        launcher=args.launcher, jobs=args.jobs, gpus_per_job=args.gpus_per_job, partition=args.partition,
        account=args.account, qos=args.qos, time_min=args.time_limit, cpus_per_job=args.cpus_per_job,
        mem_gb=args.mem_gb, array_parallelism=args.array_parallelism, wait=args.wait, setup=args.slurm_setup or [],
    )


def add_launch_options(p: argparse.ArgumentParser) -> None:
    from mmu_bench.spec.config import LAUNCHERS

    g = p.add_argument_group("where the grid runs (README, \"Sweeps on a cluster\")")
    g.add_argument("--launcher", choices=LAUNCHERS, default="inline",
                   help="inline: here, one point after another (default); local: --jobs points at once as processes "
                        "of this machine; slurm: one SLURM job per point (a job array), through submitit")
    g.add_argument("--jobs", type=int, default=1, help="local: grid points run at once (default 1)")
    g.add_argument("--gpus-per-job", type=int, default=0,
                   help="GPUs per point (default 0; more than 1: the run goes through `accelerate launch`)")
    g.add_argument("--time-limit", type=int, default=24 * 60, metavar="MINUTES",
                   help="a point's time limit in minutes (default 1440)")
    g.add_argument("--cpus-per-job", type=int, default=None, help="slurm: CPUs per job")
    g.add_argument("--partition", default=None, help="slurm: the partition")
    g.add_argument("--account", default=None, help="slurm: the account charged")
    g.add_argument("--qos", default=None, help="slurm: the quality of service")
    g.add_argument("--mem-gb", type=int, default=None, help="slurm: memory per job in GB")
    g.add_argument("--array-parallelism", type=int, default=None,
                   help="slurm: jobs of the grid's array running at once (default: all)")
    g.add_argument("--slurm-setup", action="append", default=None, metavar="LINE",
                   help="slurm: a shell line run before each job, e.g. 'source venv/bin/activate' (repeatable)")
    g.add_argument("--wait", action="store_true",
                   help="slurm: stay until every job ended, with the grid's progress, and report as a local sweep does")
