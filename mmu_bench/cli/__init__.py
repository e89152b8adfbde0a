"""The `mmu-bench` command line: one module per command, each with ``add(subparsers)`` and
``main(args)``. Commands parse, build a plan (``mmu_bench.spec.plan``) and call the harness or the
reporting; they keep no rules of their own. Heavy libraries are imported only by the command that
needs them."""

from __future__ import annotations

import argparse
import gc
import importlib
import sys

from mmu_bench import __version__
from mmu_bench.core.errors import MMUBenchError

COMMANDS = ("run", "prepare", "eval", "attack", "sweep", "meta-eval", "leaderboard", "report", "list")
READS_FILES_ONLY = ("leaderboard", "report", "list")  # no model library is loaded for these


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmu-bench", description="Benchmark multimodal machine unlearning.")
    parser.add_argument("--version", action="version", version=f"mmu-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name.replace('-', '_')}").add(sub)
    return parser


def quiet_libraries() -> None:
    """Library progress bars (dataset saving, weight loading) are noise next to ours."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


_WHOLE_PROCESS = False  # set by ``entry``: the command is the process, not a call from Python


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        if args.command not in READS_FILES_ONLY:
            quiet_libraries()
            if _WHOLE_PROCESS:
                # The libraries' own objects (torch, transformers, datasets: millions) live as
                # long as the process: frozen, the collector's passes skip them. It cost a run
                # seconds of collections (bench/run_cost.py).
                gc.freeze()
        return args.func(args)
    except MMUBenchError as exc:
        print(f"mmu-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmu-bench: interrupted; no results were written", file=sys.stderr)
        return 130


def entry() -> None:
    """The `mmu-bench` program: ``main``, then exit. Every object the command made is frozen out
    of the garbage collector first: the process ends next, and the collector's passes over a
    run's millions of objects cost a second of the exit (the files are written and closed)."""
    global _WHOLE_PROCESS
    _WHOLE_PROCESS = True
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
