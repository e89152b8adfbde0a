"""`mmu-bench report`: (re)build a run folder's report.html from its files."""

from __future__ import annotations

HELP = "(re)build a run folder's report.html from its files"


def add(sub) -> None:
    p = sub.add_parser("report", help=HELP)
    p.add_argument("run", metavar="RUN_DIR", help="the run folder")
    p.set_defaults(func=main)


def main(args) -> int:
    from mmu_bench.reporting import report
    from mmu_bench.runs.folder import run_folder

    print(f"wrote {report.write(run_folder(args.run))}")
    return 0
