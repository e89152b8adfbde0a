"""The `mmu-bench` command line. Thin: parses, builds a RunConfig, calls the runner."""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

from mmu_bench import __version__
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.spec.config import RunConfig, coerce, load_yaml, parse_assignment

# Command-line flags that map onto RunConfig fields (None = not given: YAML or default wins).
_FLAGS = {
    "method": ("--method", "method: a built-in or entry-point name, package.module:Class, or path/to/file.py:Class"),
    "benchmark": ("--benchmark", "benchmark name (default mmu-synth)"),
    "model": ("--model", "model name (default tiny-llava; see `mmu-bench list`), or hf:<hub name or local folder>"),
    "forget_ratio": ("--forget-ratio", "percentage of entities to forget (MMU-Synth and MLLMU-Bench: 5, 10 or 15; "
                                       "CLEAR: 1, 5 or 10; default 10)"),
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
    "protocol": ("--protocol", "evaluation protocol: auto (the benchmark's own: MLLMU-Bench's and CLEAR's as their "
                               "code runs them, the harness's on MMU-Synth), harness, mllmu, clear, or a protocol "
                               "YAML file (README, \"Fidelity\")"),
    "utility_limit": ("--utility-limit", "score at most this many items of each --utility-suite task (a seeded "
                                         "sample, the same for every model; default: all)"),
    "utility_tasks": ("--utility-tasks", "a folder of lmms-eval task YAMLs of one's own, for --utility-suite "
                                         "(lmms-eval's include_path; README, \"Utility suites\")"),
    "save_model": ("--save-model", "keep the unlearned weights in the run folder's model/ (what `mmu-bench attack "
                                   "--run` loads): auto (a LoRA adapter or a model under 100M parameters), yes or no"),
}
_KV = {
    "method_args": ("--method-arg", "a method hyperparameter, KEY=VALUE (repeatable), e.g. beta=0.2"),
    "benchmark_args": ("--benchmark-arg", "a benchmark option, KEY=VALUE (repeatable), e.g. num_entities=40"),
    "model_args": ("--model-arg", "a model option, KEY=VALUE (repeatable), e.g. finetune_steps=2000 (tiny-llava); "
                                  "dtype=float16, lora=false, vanilla=PATH, oracle=PATH (real models)"),
    "protocol_args": ("--protocol-arg", "a protocol setting, SETTING.FORMAT=N (repeatable), e.g. shots.cloze=0 or "
                                        "max_new_tokens.generation=32"),
    "attack_args": ("--attack-arg", "an attack option, ATTACK.KEY=VALUE (repeatable), e.g. relearn.steps=20"),
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
    _add_attack_options(parser)


def _add_attack_options(parser: argparse.ArgumentParser, flags: bool = True) -> None:
    if flags:
        parser.add_argument("--attacks", action="store_true",
                            help="after evaluation, run every registered attack (README, \"Attacks\")")
    when = "after evaluation" if flags else "(default: every registered attack)"
    parser.add_argument("--attack", dest="attack_names", action="append", default=None, metavar="ATTACK",
                        help=f"an attack to run {when}: a registered name, package.module:Class or "
                             "path/to/file.py:Class (repeatable)")


def _add_tracker_option(parser: argparse.ArgumentParser) -> None:
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
    for name, (flag, _) in _FLAGS.items():
        given = getattr(args, name, None)
        if given is not None:
            values[name] = coerce(given, hints[name], flag)
    for name, (flag, _) in _KV.items():
        for text in getattr(args, name, None) or []:
            key, value = parse_assignment(text, flag)
            values.setdefault(name, {})[key] = value if name in ("method_args", "attack_args") else _literal(value)
    attack_specs(args, values)
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
                                          "measures", "attacks"):
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
    from mmu_bench.harness.attacks import failures, read

    print((path / "table.md").read_text())
    print(f"run folder: {path}")
    failed = failures(read(path))
    for line in failed:
        print(f"mmu-bench: error: attack {line}", file=sys.stderr)
    return 1 if failed else 0


def cmd_run(args) -> int:
    from mmu_bench.harness.run import run

    config = build_config(args)
    return show_run(run(config, progress=not args.quiet))


def cmd_eval(args) -> int:
    from mmu_bench.harness.run import evaluate_checkpoint

    config = build_config(args)
    config.method = args.name
    return show_run(evaluate_checkpoint(config, args.checkpoint, args.name, progress=not args.quiet))


def cmd_attack(args) -> int:
    from mmu_bench.harness.run import attack_folder

    specs = list(args.attack_names or []) or ["all"]
    attack_args = dict(parse_assignment(a, "--attack-arg") for a in args.attack_args or [])
    folder, _ = attack_folder(args.run, specs, attack_args, progress=not args.quiet)
    return show_run(folder)


def _list_of(text: str, kind, flag: str) -> list:
    try:
        return [kind(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise MMUBenchError(f"{flag} expects a comma-separated list of {kind.__name__} values, got {text!r}") from exc


def cmd_sweep(args) -> int:
    from mmu_bench.harness.attacks import failures, read
    from mmu_bench.harness.sweep import grid, sweep

    base = build_config(args)
    from mmu_bench.harness.tracking import require

    require(base.log_with)  # a tracker's package missing: fail before the grid starts
    from mmu_bench.harness.run import require_suites

    require_suites(base)  # --utility-suite without lmms-eval: likewise
    scoped = dict(parse_assignment(a, "--method-arg") for a in args.method_args or [])
    methods = _list_of(args.methods, str, "--methods")
    seeds = _list_of(args.seeds, int, "--seeds")
    ratios = [int(r) if float(r).is_integer() else r for r in _list_of(args.forget_ratios, float, "--forget-ratios")]
    configs = grid(base, methods, seeds, ratios, scoped)
    outcomes = sweep(configs, progress=not args.quiet, launch=launch_options(args))
    counts = {status: sum(o.status == status for o in outcomes)
              for status in ("done", "skipped", "failed", "elsewhere", "submitted")}
    print(f"sweep of {len(outcomes)} runs: {counts['done']} done, {counts['skipped']} already had results, "
          f"{counts['failed']} failed" + (f", {counts['elsewhere']} running in another sweep" if counts["elsewhere"] else "")
          + (f", {counts['submitted']} submitted to SLURM" if counts["submitted"] else ""))
    if counts["submitted"]:
        jobs = sorted({o.path.split()[-1].split("_")[0] for o in outcomes if o.status == "submitted"})
        print(f"  job(s) {', '.join(jobs)}; logs in {Path(base.output_dir) / '.submitit'}. Run the same command "
              "again to see what finished (finished points are skipped, running ones left to their job), "
              "then `mmu-bench leaderboard`.")
    attack_failed = 0
    for o in outcomes:
        if o.status == "failed":
            print(f"  FAILED {o.method} forget={o.forget_ratio:g} seed={o.seed}: {o.error}\n         see {o.path}")
        elif o.status == "done" and o.path:
            for line in failures(read(o.path)):
                attack_failed += 1
                print(f"  ATTACK FAILED {o.method} forget={o.forget_ratio:g} seed={o.seed}: {line}\n         see {o.path}")
    return 1 if counts["failed"] or attack_failed else 0


def cmd_report(args) -> int:
    from mmu_bench.reporting import report
    from mmu_bench.runs import results

    print(f"wrote {report.write(results.run_folder(args.run))}")
    return 0


def launch_options(args):
    from mmu_bench.harness.launch import LaunchOptions

    return LaunchOptions(
        launcher=args.launcher, jobs=args.jobs, gpus_per_job=args.gpus_per_job, partition=args.partition,
        account=args.account, qos=args.qos, time_min=args.time_limit, cpus_per_job=args.cpus_per_job,
        mem_gb=args.mem_gb, array_parallelism=args.array_parallelism, wait=args.wait, setup=args.slurm_setup or [],
    )


def _add_launch_options(p: argparse.ArgumentParser) -> None:
    from mmu_bench.harness.launch import LAUNCHERS

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


def cmd_leaderboard(args) -> int:
    from mmu_bench.reporting.leaderboard import build

    roots = args.runs or ["runs"]
    missing = [r for r in roots if not Path(r).is_dir()]
    if missing:
        raise MMUBenchError(f"--runs: no such folder {', '.join(missing)}")
    written, notes, collected = build(roots, args.output, with_plot=not args.no_plot)
    print(f"{len(collected.runs)} runs from {', '.join(roots)}"
          + (f" ({collected.duplicates} duplicates counted once)" if collected.duplicates else ""))
    for note in notes:
        print(f"note: {note}")
    for bad in collected.unreadable:
        print(f"warning: skipped unreadable {bad}", file=sys.stderr)
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_prepare(args) -> int:
    from mmu_bench.harness.distributed import is_main
    from mmu_bench.harness.run import prepare
    from mmu_bench.runs.results import task_score

    config = build_config(args)
    session = prepare(config, progress=not args.quiet, retrain=args.retrain)
    if not is_main():
        return 0  # a secondary process of a multi-process run: the main one reports
    benchmark, refs, scores = session.benchmark, session.refs, session.ref_scores
    print(f"benchmark {benchmark.name} ({benchmark.fingerprint}), forget {benchmark.forget_ratio:g}%: "
          f"{len(benchmark.forget_entities)} forget / {len(benchmark.retain_entities)} retained / "
          f"{len(benchmark.holdout_entities)} holdout entities")
    print("multiple choice: greedy letter (mc) / option log-likelihood (ll); score: task score")
    roles = list(refs)
    print(f"{'task':26s} " + "   ".join(f"{role + ' mc':>14s} {'ll':>6s} {'score':>6s}" for role in roles))
    for task in session.all_tasks:
        cells = []
        for role in roles:
            per = scores[role].get(task.name, {})
            nan = float("nan")
            cells.append(f"{per['mc_acc'].mean if 'mc_acc' in per else nan:14.3f} "
                         f"{per['mc_loglik_acc'].mean if 'mc_loglik_acc' in per else nan:6.3f} "
                         f"{task_score(per, list(task.score)):6.3f}")
        print(f"{task.name:26s} " + "   ".join(cells))
    for role in roles:
        print(f"{role}: {refs[role].model_path}")
    weak = [t for t, v in session.knowledge.items() if v < config.min_vanilla_mc]
    if weak:
        print(f"warning: the vanilla model is under {config.min_vanilla_mc} on {', '.join(weak)} "
              "(its knowledge measure; see --min-vanilla-mc)")
        return 1
    return 0


def cmd_list(args) -> int:
    import warnings

    from mmu_bench.spec import protocol, registry, tasks

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins = {kind.noun: registry.list_plugins(kind)
                   for kind in (registry.METHODS, registry.MEASURES, registry.ATTACKS)}

    def show(noun: str) -> None:
        print(f"{noun}s:")
        for m in plugins[noun]:
            status = f"  [broken: {m['error']}]" if m["error"] else ""
            print(f"  {m['name']:14s} {m['origin']}{status}")

    show("method")
    print("benchmarks:")
    for name in registry.BENCHMARKS:
        print(f"  {name}")
    print("models:")
    for name in registry.MODELS:
        print(f"  {name}")
    print(f"  {registry.HF_PREFIX}<name-or-path>  (any image-text-to-text model of transformers)")
    show("measure")
    show("attack")
    print("tasks:")
    for task in tasks.load_tasks():
        better = "higher" if task.higher_is_better else "lower"
        print(f"  {task.name:26s} v{task.version:6s} {task.dimension:18s} {better} is better; "
              f"measures {', '.join(task.measures)}")
    print("protocols (--protocol; auto: the benchmark's own):")
    for name in protocol.available():
        print(f"  {name:14s} {protocol.load(name).reference}")
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmu-bench", description="Benchmark multimodal machine unlearning.")
    parser.add_argument("--version", action="version", version=f"mmu-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="unlearn with a method, evaluate the four dimensions, write a run folder")
    _add_run_options(p, with_method=True)
    _add_tracker_option(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("prepare", help="generate the benchmark and train/score the vanilla and oracle models")
    _add_run_options(p, with_method=False)
    p.add_argument("--retrain", action="store_true",
                   help="train the reference models anew even when they are cached or ship with mmu-bench")
    p.set_defaults(func=cmd_prepare)
    p = sub.add_parser("eval", help="score a model unlearned elsewhere, writing the same run folder as `run`")
    p.add_argument("--checkpoint", required=True, help="folder of the unlearned model (save_pretrained format)")
    p.add_argument("--name", required=True, help="the method name it gets in results and leaderboards")
    _add_run_options(p, with_method=False)
    _add_tracker_option(p)
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("attack", help="run attacks on a finished run folder (no unlearning again; every registered attack "
                                         "unless --attack names some); adds to its attacks.json")
    p.add_argument("--run", required=True, metavar="DIR", help="the run folder (it needs model/ or an eval checkpoint)")
    _add_attack_options(p, flags=False)
    flag, help_text = _KV["attack_args"]
    p.add_argument(flag, dest="attack_args", action="append", default=None, metavar="KEY=VALUE", help=help_text)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_attack)
    p = sub.add_parser("sweep", help="run a grid of methods x seeds x forget ratios; resumes, continues past failures")
    p.add_argument("--methods", required=True, help="comma-separated methods, e.g. ga,npo")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--forget-ratios", default="10", help="comma-separated forget ratios (default 10)")
    _add_run_options(p, with_method=False)
    p.add_argument("--method-arg", dest="method_args", action="append", default=None, metavar="[METHOD.]KEY=VALUE",
                   help="a hyperparameter for every method, or for one with METHOD.KEY=VALUE (repeatable)")
    _add_tracker_option(p)
    _add_launch_options(p)
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("leaderboard", help="build leaderboards/<benchmark>__<model>.csv/.md/.png from results.json files")
    p.add_argument("--runs", action="append", default=None, metavar="DIR",
                   help="a folder of run results (repeatable; default ./runs)")
    p.add_argument("--output", default="leaderboards", help="where the leaderboard files go (default ./leaderboards)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    p.set_defaults(func=cmd_leaderboard)
    p = sub.add_parser("report", help="(re)build a run folder's report.html from its files")
    p.add_argument("run", metavar="RUN_DIR", help="the run folder")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("list", help="list methods, measures, benchmarks, models and tasks")
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
