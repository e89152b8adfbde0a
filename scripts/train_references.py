"""Train the tiny reference models that ship with mmu-bench (``references/``), report what the
vanilla model can do, and ship them with their records.

    python scripts/train_references.py              # train in a fresh cache, report, ship
    python scripts/train_references.py --no-ship    # train and report only
    python scripts/train_references.py --home ~/.cache/mmu-bench --reuse   # ship what is cached there

Rerun it whenever the recipe changes (``TinyRecipe``, ``RECIPE_VERSION``, the prompts, MMU-Synth's
generator): the shipped folders are named by the recipe's hash, so after a change they no
longer match and every user would train the references again. It trains the base model and
the default setting's vanilla, oracle and visual oracle (MMU-Synth, forget 10 %), the gold
references of the default continual stream (5 requests of 2 %: the visual oracle of everyone
forgotten after requests 1-4; docs/continual.md), and checks
the issue-15 goal: the vanilla model answers the forget people's multiple-choice questions with
the option letter (``mc_acc``) at 0.8 or more, on their images and in text.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 0.8
CHECKED = ("visual_forgetting", "textual_retention")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="cache folder to train in (default: a fresh temporary one)")
    parser.add_argument("--no-ship", action="store_true", help="do not copy the models into references/")
    parser.add_argument("--requests", type=int, default=5,
                        help="also the gold references of the default continual stream of this many requests "
                             "(docs/continual.md; default 5, 0: none)")
    parser.add_argument("--reuse", action="store_true",
                        help="ship the models of the current recipe already cached in --home instead of training anew")
    args = parser.parse_args()
    os.environ["MMU_BENCH_HOME"] = args.home or tempfile.mkdtemp(prefix="mmu-references-")

    from mmu_bench.cli import quiet_libraries
    from mmu_bench.core import shipped
    from mmu_bench.core.storage import home
    from mmu_bench.harness.run import prepare
    from mmu_bench.spec.config import RunConfig
    from mmu_bench.spec.plan import for_references

    quiet_libraries()
    started = time.time()
    session = prepare(for_references(RunConfig(), progress=True), progress=True, retrain=not args.reuse)
    print(f"trained and scored in {time.time() - started:.0f} s (cache {home()})")
    scores = session.ref_scores
    print(f"{'task':26s} " + " ".join(f"{role + ' mc_acc':>20s} {'ll':>5s}" for role in scores))
    for task in session.all_tasks:
        cells = []
        for role in scores:
            per = scores[role].get(task.name, {})
            cells.append(" ".join(f"{per[m].mean:{w}.3f}" if m in per else f"{'-':>{w}s}"
                                  for m, w in (("mc_acc", 20), ("mc_loglik_acc", 5))))
        print(f"{task.name:26s} " + " ".join(cells))
    reached = {t: scores["vanilla"][t]["mc_acc"].mean for t in CHECKED}
    verdict = "reached" if min(reached.values()) >= GOAL else "NOT reached"
    print(f"goal mc_acc >= {GOAL} for the vanilla model on {', '.join(CHECKED)}: {verdict} "
          f"({', '.join(f'{t} {v:.3f}' for t, v in reached.items())})")
    if args.no_ship:
        return 0
    provider, benchmark = session.provider, session.benchmark
    names = [provider.path("base", benchmark).name, *(provider.path(r, benchmark).name for r in provider.roles)]
    names += continual_golds(args.requests)
    written = shipped.ship(provider.name, names, ROOT / "references")
    size = sum(f.stat().st_size for p in written for f in ([p] if p.is_file() else p.rglob("*")))
    print(f"shipped {len(written)} files and folders into {ROOT / 'references'}: {size / 2**20:.1f} MiB")
    return 0


def continual_golds(requests: int) -> list[str]:
    """The cache folders of the gold reference of everyone forgotten after each request of the
    default stream (the last one is the visual oracle itself), trained (or found) now."""
    if requests < 2:
        return []
    from mmu_bench.harness.continual import plan_stream, relabel
    from mmu_bench.harness.run import prepare
    from mmu_bench.spec.config import RunConfig
    from mmu_bench.spec.plan import for_references

    plan = for_references(RunConfig(continual={"requests": requests}), progress=True)
    session = prepare(plan, progress=True)
    stream = plan_stream(plan, session)
    views = [relabel(session.benchmark, people, [], ratio) for people, ratio in zip(stream.cumulative[:-1], stream.ratios)]
    return [session.provider.path(stream.role, view).name for view in views]


if __name__ == "__main__":
    sys.exit(main())
