"""Speed of the embedded pipeline on this machine. Run by hand:

    python bench/speed.py            # cold prepare + one NPO run + batched vs unbatched evaluation
    python bench/speed.py --skip-prepare

Prints wall times and the ratios that matter (measured in this one run): the issue's targets
are prepare (vanilla + oracle, cold) within 300 s, one `run --method npo` after it within 60 s.
It uses a fresh MMU_BENCH_HOME, so the user's cache is neither used nor touched.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-prepare", action="store_true", help="reuse MMU_BENCH_HOME as it is")
    parser.add_argument("--eval-items", type=int, default=40, help="items per task and format for the eval ratio")
    args = parser.parse_args()
    env = dict(os.environ)
    if not args.skip_prepare:
        env["MMU_BENCH_HOME"] = tempfile.mkdtemp(prefix="mmu-bench-speed-")
    os.environ.update(env)
    exe = [sys.executable, "-m", "mmu_bench"]
    out = tempfile.mkdtemp(prefix="mmu-bench-runs-")
    if not args.skip_prepare:
        t = timed([*exe, "prepare", "--quiet"], env)
        print(f"prepare (cold: data, base, vanilla, oracle, reference scores): {t:7.1f} s  (target 300 s: {t / 300:.2f}x)")
    t = timed([*exe, "run", "--method", "npo", "--quiet", "--output-dir", out], env)
    print(f"run --method npo (after prepare):                               {t:7.1f} s  (target 60 s: {t / 60:.2f}x)")

    # Batched against one-at-a-time evaluation of the same items with the vanilla model.
    from mmu_bench.harness.evaluate import EvalSettings, evaluate
    from mmu_bench.harness.session import load_benchmark
    from mmu_bench.spec.config import RunConfig
    from mmu_bench.spec.plan import for_references
    from mmu_bench.spec.tasks import load_tasks

    plan = for_references(RunConfig(), progress=False)
    benchmark = load_benchmark(plan)
    loaded = plan.provider.load("vanilla", benchmark)
    tasks = load_tasks()
    timings = {}
    for batch_size in (64, 1):
        settings = EvalSettings(batch_size=batch_size, limit=args.eval_items, progress=False)
        start = time.perf_counter()
        records = evaluate(loaded.model, loaded.processor, benchmark.eval, tasks, settings)
        timings[batch_size] = time.perf_counter() - start
        n = len(records)
    print(f"evaluation of {n} items: batch 64 {timings[64]:.1f} s, batch 1 {timings[1]:.1f} s "
          f"-> batching is {timings[1] / timings[64]:.1f}x faster")
    print(f"run folders under {out}; cache under {env['MMU_BENCH_HOME']}")


if __name__ == "__main__":
    main()
