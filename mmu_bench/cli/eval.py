"""`mmu-bench eval`: score a model unlearned elsewhere, writing the same run folder as `run`."""

from __future__ import annotations

from mmu_bench.cli.options import add_run_options, add_tracker_option, build_config, show_run

HELP = "score a model unlearned elsewhere, writing the same run folder as `run`"


def add(sub) -> None:
    p = sub.add_parser("eval", help=HELP)
    p.add_argument("--checkpoint", required=True, help="folder of the unlearned model (save_pretrained format)")
    p.add_argument("--name", required=True, help="the method name it gets in results and leaderboards")
    add_run_options(p, with_method=False)
    add_tracker_option(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from mmu_bench.harness.run import evaluate_checkpoint
    from mmu_bench.spec.plan import for_checkpoint

    config = build_config(args)
    config.method = args.name
    progress = not args.quiet
    return show_run(evaluate_checkpoint(for_checkpoint(config, args.checkpoint, args.name, progress), progress))
