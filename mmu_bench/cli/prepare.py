"""`mmu-bench prepare`: generate the benchmark, train (or install) and score the reference models."""

from __future__ import annotations

from mmu_bench.cli.options import add_run_options, build_config

HELP = "generate the benchmark and train/score the vanilla and oracle models"


def add(sub) -> None:
    p = sub.add_parser("prepare", help=HELP)
    add_run_options(p, with_method=False)
    p.add_argument("--retrain", action="store_true",
                   help="train the reference models anew even when they are cached or ship with mmu-bench")
    p.set_defaults(func=main)


def main(args) -> int:
    from mmu_bench.core.processes import is_main
    from mmu_bench.harness.run import prepare
    from mmu_bench.runs.results import task_score
    from mmu_bench.spec.plan import for_references

    config = build_config(args)
    progress = not args.quiet
    session = prepare(for_references(config, progress), progress=progress, retrain=args.retrain)
    if not is_main():
        return 0  # a secondary process of a multi-process run: the main one reports
    benchmark, refs, scores = session.benchmark, session.refs, session.ref_scores
    print(f"benchmark {benchmark.name} ({benchmark.fingerprint}), forget {benchmark.forget_ratio:g}%: "
          f"{len(benchmark.forget_entities)} forget / {len(benchmark.retain_entities)} retained / "
          f"{len(benchmark.holdout_entities)} holdout entities")
    print("multiple choice: greedy letter (mc) / option log-likelihood (ll); score: task score")
    roles = list(refs)
    print(f"{'task':26s} " + "   ".join(f"{role + ' mc':>14s} {'ll':>6s} {'score':>6s}" for role in roles))
    for task in session.all_tasks:
        cells = []
        for role in roles:
            per = scores[role].get(task.name, {})
            nan = float("nan")
            cells.append(f"{per['mc_acc'].mean if 'mc_acc' in per else nan:14.3f} "
                         f"{per['mc_loglik_acc'].mean if 'mc_loglik_acc' in per else nan:6.3f} "
                         f"{task_score(per, list(task.score)):6.3f}")
        print(f"{task.name:26s} " + "   ".join(cells))
    for role in roles:
        print(f"{role}: {refs[role].model_path}")
    if config.stream.active:  # the gold reference of everyone forgotten after each request
        from mmu_bench.harness.continual import plan_stream

        stream = plan_stream(session.plan, session)
        for j, (people, gold) in enumerate(zip(stream.people, stream.golds), 1):
            state = f"{stream.role} of the first {j} requests ready" if gold is not None else "no gold reference"
            print(f"request {j}: {len(people)} people ({', '.join(people[:4])}{' ...' if len(people) > 4 else ''}); "
                  f"{state}")
    weak = [t for t, v in session.knowledge.items() if v < config.min_vanilla_mc]
    if weak:
        print(f"warning: the vanilla model is under {config.min_vanilla_mc} on {', '.join(weak)} "
              "(its knowledge measure; see --min-vanilla-mc)")
        return 1
    return 0

