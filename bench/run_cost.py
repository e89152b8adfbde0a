"""What a user waits for, this install against another (an older commit), side by side: a warm
`mmu-bench run`, a cold one (empty cache), `mmu-bench list`, `--help` and `leaderboard`. The two
installs take turns in every repeat, so machine noise hits both alike. Run by hand:

    git worktree add --detach /tmp/old 7e1b48b     # e.g. the flat house, before issue 28
    python -m venv /tmp/venv-old && /tmp/venv-old/bin/pip install torch==2.13.0 -e /tmp/old
    python bench/run_cost.py --baseline /tmp/venv-old/bin/mmu-bench [--repeats 3] [--json out.json]

Each install gets its own cache folder (MMU_BENCH_HOME), warmed by one untimed run; a cold run
starts from an empty one each time. Prints min / median / max per command and install, and the
ratio of the medians (this install / the baseline); ``--json`` also writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], home: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "MMU_BENCH_HOME": str(home)})
    return time.perf_counter() - start


def commands(exe: str, out: Path, method: str) -> dict[str, list[str]]:
    run = [exe, "run", "--method", method, "--quiet", "--output-dir", str(out)]
    return {"run (warm)": run, "run (cold)": run, "list": [exe, "list"], "--help": [exe, "--help"],
            "leaderboard": [exe, "leaderboard", "--runs", str(out), "--output", str(out.parent / "board")]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="the other install's mmu-bench executable")
    parser.add_argument("--current", default=shutil.which("mmu-bench") or "mmu-bench")
    parser.add_argument("--method", default="npo")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", action="append", default=[], help="a command to leave out, e.g. 'run (cold)'")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="mmu-bench-cost-"))
    installs = {"baseline": args.baseline, "current": args.current}
    homes = {name: scratch / name / "home" for name in installs}
    plans = {name: commands(exe, scratch / name / "runs", args.method) for name, exe in installs.items()}
    for name in installs:  # warm each install's cache; the leaderboard then has a run to show
        print(f"warming {name}: {timed(plans[name]['run (warm)'], homes[name]):.1f} s", flush=True)
    times: dict[str, dict[str, list[float]]] = {}
    for what in plans["current"]:
        if what in args.skip:
            continue
        times[what] = {name: [] for name in installs}
        for i in range(args.repeats):
            for name in installs:
                home = homes[name]
                if what == "run (cold)":
                    home = scratch / name / f"cold-{i}"
                times[what][name].append(timed(plans[name][what], home))
                print(f"{what} {i + 1} {name}: {times[what][name][-1]:.2f} s", flush=True)
                if what == "run (cold)":
                    shutil.rmtree(home)
    print(f"\n{'command':12s} {'install':9s} {'min':>8s} {'median':>8s} {'max':>8s}")
    summary = {}
    for what, per in times.items():
        for name, values in per.items():
            print(f"{what:12s} {name:9s} {min(values):8.2f} {statistics.median(values):8.2f} {max(values):8.2f}")
        ratio = statistics.median(per["current"]) / statistics.median(per["baseline"])
        print(f"{what:12s} ratio of medians (current / baseline): {ratio:.2f}x")
        summary[what] = {**{name: {"min": min(v), "median": statistics.median(v), "max": max(v), "seconds": v}
                            for name, v in per.items()}, "ratio": ratio}
    if args.json:
        Path(args.json).write_text(json.dumps({"repeats": args.repeats, "method": args.method,
                                               "installs": installs, "commands": summary}, indent=2) + "\n")
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
