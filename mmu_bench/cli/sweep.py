"""`mmu-bench sweep`: a grid of methods x seeds x forget ratios (x requests); resumes, continues past failures."""

from __future__ import annotations

from pathlib import Path

from mmu_bench.cli.options import add_launch_options, add_run_options, add_tracker_option, build_config, launch_options, list_of
from mmu_bench.spec.config import parse_assignment

HELP = "run a grid of methods x seeds x forget ratios; resumes, continues past failures"


def add(sub) -> None:
    p = sub.add_parser("sweep", help=HELP)
    p.add_argument("--methods", required=True, help="comma-separated methods, e.g. ga,npo")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--forget-ratios", default="10", help="comma-separated forget ratios (default 10)")
    add_run_options(p, with_method=False)
    p.add_argument("--method-arg", dest="method_args", action="append", default=None, metavar="[METHOD.]KEY=VALUE",
                   help="a hyperparameter for every method, or for one with METHOD.KEY=VALUE (repeatable)")
    add_tracker_option(p)
    add_launch_options(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from mmu_bench.harness.sweep import grid, sweep
    from mmu_bench.runs.attacks import failures, read

    requests = list_of(args.requests, int, "--requests") if args.requests else None
    args.requests = None  # an axis of the grid, not one value for every point
    base = build_config(args)
    scoped = dict(parse_assignment(a, "--method-arg") for a in args.method_args or [])
    methods = list_of(args.methods, str, "--methods")
    seeds = list_of(args.seeds, int, "--seeds")
    ratios = [int(r) if float(r).is_integer() else r for r in list_of(args.forget_ratios, float, "--forget-ratios")]
    configs = grid(base, methods, seeds, ratios, scoped, requests)
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
