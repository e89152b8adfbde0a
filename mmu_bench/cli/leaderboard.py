"""`mmu-bench leaderboard`: run folders -> per benchmark and model a CSV, Markdown and plots, and
one HTML page of them all. Reads files only: no model library is loaded."""

from __future__ import annotations

import sys
from pathlib import Path

from mmu_bench.core.errors import MMUBenchError

HELP = "build leaderboards/<benchmark>__<model>.csv/.md/.png and index.html from results.json files"


def add(sub) -> None:
    p = sub.add_parser("leaderboard", help=HELP)
    p.add_argument("--runs", action="append", default=None, metavar="DIR",
                   help="a folder of run results (repeatable; default ./runs)")
    p.add_argument("--output", default="leaderboards", help="where the leaderboard files go (default ./leaderboards)")
    p.add_argument("--link-base", default=None, metavar="BASE",
                   help="where the run folders are published: each row of index.html links to BASE/<the run's folder "
                        "under its --runs folder>/report.html (a URL, or a path relative to the page). Without it, "
                        "only runs whose folders sit under --output are linked (relatively)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    p.set_defaults(func=main)


def main(args) -> int:
    from mmu_bench.reporting.leaderboard import build

    roots = args.runs or ["runs"]
    missing = [r for r in roots if not Path(r).is_dir()]
    if missing:
        raise MMUBenchError(f"--runs: no such folder {', '.join(missing)}")
    written, notes, collected = build(roots, args.output, with_plot=not args.no_plot, link_base=args.link_base)
    print(f"{len(collected.runs)} runs from {', '.join(roots)}"
          + (f" ({collected.duplicates} duplicates counted once)" if collected.duplicates else ""))
    for note in notes:
        print(f"note: {note}")
    for bad in collected.unreadable:
        print(f"warning: skipped unreadable {bad}", file=sys.stderr)
    for path in written:
        print(f"wrote {path}")
    return 0
