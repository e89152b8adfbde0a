"""Wall time of one `mmu-bench run` against another install of mmu-bench (an older commit), on
warm caches, alternating the two so that machine noise hits both alike. Run by hand:

    # an older commit in its own venv, e.g. before forget quality and privacy (#9):
    git clone . /tmp/old && git -C /tmp/old checkout 91c96a1
    python -m venv /tmp/venv-old && /tmp/venv-old/bin/pip install torch==2.13.0 -e /tmp/old
    python bench/run_cost.py --baseline /tmp/venv-old/bin/mmu-bench

Prints each run's wall time, the medians and their ratio (this install / the baseline). The
first run of each warms its caches (trains and scores the reference models if missing) and is
not counted. Uses MMU_BENCH_HOME as it is; run folders go to a temporary folder.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def alternate(commands: dict[str, list[str]], repeats: int) -> dict[str, list[float]]:
    """Each command's wall times, the commands taking turns so that machine noise hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(repeats):
        for name, cmd in commands.items():
            times[name].append(timed(cmd))
            print(f"run {i + 1} {name}: {times[name][-1]:.1f} s")
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", required=True, help="the other install's mmu-bench executable")
    parser.add_argument("--current", default=shutil.which("mmu-bench") or "mmu-bench")
    parser.add_argument("--method", default="npo")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    out = tempfile.mkdtemp(prefix="mmu-bench-cost-")
    commands = {name: [exe, "run", "--method", args.method, "--quiet", "--output-dir", out]
                for name, exe in (("baseline", args.baseline), ("current", args.current))}
    for name, cmd in commands.items():
        print(f"warming {name}: {timed(cmd):.1f} s")
    times = alternate(commands, args.repeats)
    base, cur = statistics.median(times["baseline"]), statistics.median(times["current"])
    print(f"median: baseline {base:.1f} s, current {cur:.1f} s; ratio {cur / base:.2f}x "
          f"({(cur / base - 1) * 100:+.0f} %)")


if __name__ == "__main__":
    main()
