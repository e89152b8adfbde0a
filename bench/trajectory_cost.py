"""Wall time of `mmu-bench run` with its default trajectory against the same run without one
(`--trajectory 0`), on warm caches, alternating the two so that machine noise hits both alike.
Run by hand:

    python bench/trajectory_cost.py --method npo --repeats 3

Prints each run's wall time (the whole command), the medians and their ratio (with / without).
Extra arguments after ``--`` go to both runs (e.g. ``-- --trajectory-sample 50``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile

from run_cost import alternate, timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", default="npo")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("extra", nargs="*", help="more `mmu-bench run` options, for both runs")
    args = parser.parse_args()
    exe = shutil.which("mmu-bench") or "mmu-bench"
    out = tempfile.mkdtemp(prefix="mmu-bench-trajectory-")
    base = [exe, "run", "--method", args.method, "--quiet", "--output-dir", out, *args.extra]
    commands = {"without": [*base, "--trajectory", "0"], "with": base}
    print(f"warming: {timed(commands['without']):.1f} s")
    times = alternate(commands, args.repeats)
    without, with_ = statistics.median(times["without"]), statistics.median(times["with"])
    print(f"median: without {without:.1f} s, with {with_:.1f} s; ratio {with_ / without:.2f}x")


if __name__ == "__main__":
    main()
