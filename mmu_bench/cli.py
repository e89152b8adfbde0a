"""The `mmu-bench` command line. Thin: parses, builds a RunConfig, calls the runner."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing

from . import __version__
from .config import RunConfig, coerce, load_yaml, parse_assignment
from .errors import MMUBenchError

# Command-line flags that map onto RunConfig fields (None = not given: YAML or default wins).
_FLAGS = {
    "method": ("--method", "method: a built-in or entry-point name, package.module:Class, or path/to/file.py:Class"),
    "benchmark": ("--benchmark", "benchmark name (default mmu-synth)"),
    "model": ("--model", "model name (default tiny-llava)"),
    "forget_ratio": ("--forget-ratio", "percentage of entities to forget (MMU-Synth: 5, 10 or 15; default 10)"),
    "seed": ("--seed", "seed of the unlearning run (default 0)"),
    "output_dir": ("--output-dir", "where run folders go (default ./runs)"),
    "eval_batch_size": ("--eval-batch-size", "evaluation batch size (default 64)"),
    "eval_limit": ("--eval-limit", "score at most this many items per task and format (default: all)"),
    "min_vanilla_mc": ("--min-vanilla-mc", "refuse to report when the vanilla model's multiple-choice accuracy on "
                                          "the forget entities is under this (default 0.9)"),
    "device": ("--device", "auto, cpu, cuda or cuda:N (default auto)"),
}
_KV = {
    "method_args": ("--method-arg", "a method hyperparameter, KEY=VALUE (repeatable), e.g. beta=0.2"),
    "benchmark_args": ("--benchmark-arg", "a benchmark option, KEY=VALUE (repeatable), e.g. num_entities=40"),
    "model_args": ("--model-arg", "a model option, KEY=VALUE (repeatable), e.g. finetune_steps=2000"),
}


def _add_run_options(parser: argparse.ArgumentParser, with_method: bool) -> None:
    parser.add_argument("--config", help="YAML file of run options (command-line flags override it)")
    for name, (flag, help_text) in _FLAGS.items():
        if name == "method" and not with_method:
            continue
        parser.add_argument(flag, dest=name, default=None, help=help_text)
    for name, (flag, help_text) in _KV.items():
        if name == "method_args" and not with_method:
            continue
        parser.add_argument(flag, dest=name, action="append", default=None, metavar="KEY=VALUE", help=help_text)
    parser.add_argument("--tasks", default=None, help="comma-separated task names (default: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def build_config(args: argparse.Namespace) -> RunConfig:
    """Defaults <- --config YAML <- flags given on the command line."""
    values: dict = load_yaml(args.config) if getattr(args, "config", None) else {}
    hints = typing.get_type_hints(RunConfig)
    for name, (flag, _) in _FLAGS.items():
        given = getattr(args, name, None)
        if given is not None:
            values[name] = coerce(given, hints[name], flag)
    for name, (flag, _) in _KV.items():
        for text in getattr(args, name, None) or []:
            key, value = parse_assignment(text, flag)
            values.setdefault(name, {})[key] = value if name == "method_args" else _literal(value)
    if getattr(args, "tasks", None):
        values["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for name, value in list(values.items()):
        if name in hints and name not in ("method_args", "benchmark_args", "model_args", "tasks"):
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


def cmd_run(args) -> int:
    from .runner import run

    config = build_config(args)
    path = run(config, progress=not args.quiet)
    print((path / "table.md").read_text())
    print(f"run folder: {path}")
    return 0


def cmd_prepare(args) -> int:
    from .metrics import KNOWLEDGE_METRIC
    from .results import task_score
    from .runner import KNOWLEDGE_TASKS, prepare

    config = build_config(args)
    out = prepare(config, progress=not args.quiet)
    benchmark, refs = out["benchmark"], out["references"]
    print(f"benchmark {benchmark.name} ({benchmark.fingerprint}), forget {benchmark.forget_ratio:g}%: "
          f"{len(benchmark.forget_entities)} forget / {len(benchmark.retain_entities)} retained entities")
    print(f"multiple choice: greedy letter (mc) / option log-likelihood (ll); score: task score")
    print(f"{'task':26s} {'vanilla mc':>10s} {'ll':>6s} {'score':>6s}   {'oracle mc':>9s} {'ll':>6s} {'score':>6s}")
    for task in out["tasks"]:
        cells = []
        for role in ("vanilla", "oracle"):
            per = refs[role]["scores"].get(task.name, {})
            cells += [per.get(m, {}).get("mean", float("nan")) for m in ("mc_acc", "mc_loglik_acc")] + [task_score(per)]
        print(f"{task.name:26s} {cells[0]:10.3f} {cells[1]:6.3f} {cells[2]:6.3f}   {cells[3]:9.3f} {cells[4]:6.3f} {cells[5]:6.3f}")
    weak = [t for t in KNOWLEDGE_TASKS
            if refs["vanilla"]["scores"][t][KNOWLEDGE_METRIC]["mean"] < config.min_vanilla_mc]
    for role in ("vanilla", "oracle"):
        print(f"{role}: {refs[role]['model_path']}")
    if weak:
        print(f"warning: the vanilla model is under {config.min_vanilla_mc} multiple-choice accuracy on {', '.join(weak)}")
        return 1
    return 0


def cmd_list(args) -> int:
    import warnings

    from . import registry, tasks

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        methods = registry.list_methods()
    print("methods:")
    for m in methods:
        status = f"  [broken: {m['error']}]" if m["error"] else ""
        print(f"  {m['name']:14s} {m['origin']}{status}")
    print("benchmarks:")
    for name in registry.BENCHMARKS:
        print(f"  {name}")
    print("models:")
    for name in registry.MODELS:
        print(f"  {name}")
    print("tasks:")
    for task in tasks.load_tasks():
        better = "higher" if task.higher_is_better else "lower"
        print(f"  {task.name:26s} v{task.version:6s} {task.dimension:18s} {better} is better")
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmu-bench", description="Benchmark multimodal machine unlearning.")
    parser.add_argument("--version", action="version", version=f"mmu-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="unlearn with a method, evaluate the four dimensions, write a run folder")
    _add_run_options(p, with_method=True)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("prepare", help="generate the benchmark and train/score the vanilla and oracle models")
    _add_run_options(p, with_method=False)
    p.set_defaults(func=cmd_prepare)
    p = sub.add_parser("list", help="list methods, benchmarks, models and tasks")
    p.set_defaults(func=cmd_list)
    return parser


def quiet_libraries() -> None:
    """Library progress bars (dataset saving, weight loading) are noise next to ours."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    quiet_libraries()
    try:
        return args.func(args)
    except MMUBenchError as exc:
        print(f"mmu-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmu-bench: interrupted; no results were written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
