"""Wall time of the attack suite against a plain run (the target: the suite within 2x of a
plain run), on warm caches, in one process tree and one sitting. Run by hand:

    python bench/attack_cost.py [--method npo] [--repeats 3]

For each repeat (alternating, so that machine noise hits both alike): a plain `mmu-bench run`
and the same run with `--attacks`. Prints each wall time, the suite's own seconds (from
attacks.json: the unlearned model's attacks, and the gold reference's when not yet cached), the
medians, and the ratios suite / plain run and (run with attacks) / plain run. The first pair
warms the caches (reference models, the gold reference's attack numbers for the seed) and is
reported but not counted. Uses MMU_BENCH_HOME as it is; run folders go to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def newest_report(out: Path) -> dict:
    path = max(out.rglob("attacks.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", default="npo")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--exe", default=shutil.which("mmu-bench") or "mmu-bench")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="mmu-bench-attack-cost-"))
    plain = [args.exe, "run", "--method", args.method, "--quiet", "--output-dir", str(out / "plain")]
    attacked = [args.exe, "run", "--method", args.method, "--quiet", "--attacks", "--output-dir", str(out / "attacked")]
    times: dict[str, list[float]] = {"plain": [], "attacked": [], "suite": []}
    for i in range(args.repeats + 1):
        t_plain, t_attacked = timed(plain), timed(attacked)
        report = newest_report(out / "attacked")
        gold = sum(v for e in report["attacks"].values() for v in [e["seconds"]["gold"]] if isinstance(v, (int, float)))
        print(f"{'warm-up' if i == 0 else f'repeat {i}'}: plain {t_plain:.1f} s, with attacks {t_attacked:.1f} s, "
              f"suite {report['seconds']:.1f} s (of which gold reference {gold:.1f} s)")
        if i:
            times["plain"].append(t_plain)
            times["attacked"].append(t_attacked)
            times["suite"].append(report["seconds"])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"median: plain {med['plain']:.1f} s, with attacks {med['attacked']:.1f} s, suite {med['suite']:.1f} s")
    print(f"suite / plain run: {med['suite'] / med['plain']:.2f}x (target: within 2x); "
          f"run with attacks / plain run: {med['attacked'] / med['plain']:.2f}x")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
