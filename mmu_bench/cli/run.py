"""`mmu-bench run`: unlearn with a method, evaluate the four dimensions, write a run folder."""

from __future__ import annotations

from mmu_bench.cli.options import add_run_options, add_tracker_option, build_config, show_run

HELP = "unlearn with a method, evaluate the four dimensions, write a run folder"


def add(sub) -> None:
    p = sub.add_parser("run", help=HELP)
    add_run_options(p, with_method=True)
    add_tracker_option(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from mmu_bench.harness.run import run
    from mmu_bench.spec.plan import for_run

    progress = not args.quiet
    return show_run(run(for_run(build_config(args), progress), progress))
