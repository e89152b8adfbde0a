"""MMUnlearner's wall time against GA_Diff's on the same data and steps.

MMUnlearner = saliency stage (Fisher on forget and preserve batches) + interleaved updates.
With ``retain_per_forget=1`` its second stage does the work of GA_Diff (one forget and one
retain forward/backward per forget step), so the ratio measures what the mask costs.

    python bench/mmunlearner_cost.py [--steps 25] [--repeats 3]

Runs ``mmu-bench run`` for both methods on the default MMU-Synth (the tiny models must be
prepared; a run prepares them otherwise), alternating the two to spread machine noise, and
reads the training time each run records (``training.seconds``: setup + unlearning, without
evaluation). Prints the medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from mmu_bench.cli import main as cli


def timed(method: str, steps: int, out: Path, extra: list[str]) -> tuple[float, dict]:
    before = set(out.rglob("results.json"))
    args = ["run", "--method", method, "--method-arg", f"steps={steps}", *extra,
            "--tasks", "general_utility", "--eval-limit", "4", "--output-dir", str(out), "--quiet"]
    if cli(args) != 0:
        raise SystemExit(f"mmu-bench {' '.join(args)} failed")
    (path,) = set(out.rglob("results.json")) - before
    training = json.loads(path.read_text())["training"]
    return training["seconds"], training["method_report"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"ga_diff": [], "mmunlearner": []}
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for _ in range(args.repeats):
            times["ga_diff"].append(timed("ga_diff", args.steps, out, [])[0])
            seconds, report = timed("mmunlearner", args.steps, out, ["--method-arg", "retain_per_forget=1"])
            times["mmunlearner"].append(seconds)
    ga, mmu = statistics.median(times["ga_diff"]), statistics.median(times["mmunlearner"])
    print(f"steps={args.steps} repeats={args.repeats}")
    print(f"ga_diff      median {ga:6.2f} s  {times['ga_diff']}")
    print(f"mmunlearner  median {mmu:6.2f} s  {times['mmunlearner']}  (mask stage {report.get('mask_seconds')} s)")
    print(f"ratio mmunlearner / ga_diff = {mmu / ga:.2f}  (goal <= 1.5)")


if __name__ == "__main__":
    main()
