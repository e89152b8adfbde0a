"""`mmu-bench meta-eval`: which measure tells forgotten from not forgotten? Pools of models that
know and that never knew the forget people, unlearned models, attacks; faithfulness and
robustness of every measure (docs/meta-eval.md)."""

from __future__ import annotations

import argparse

from mmu_bench.cli.options import FLAGS, KV, build_config, list_of
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.runs.meta import DEFAULT_ATTACKS, DEFAULT_METHODS
from mmu_bench.spec.config import parse_assignment

HELP = ("rank every measure by faithfulness (does it tell models that know the forget people from models that never "
        "did?) and robustness (does its verdict survive relearning and quantisation?); writes "
        "leaderboards/meta-eval__<benchmark>__<model>.{json,csv,md,png}")
# The knowing pool's extra budgets when none are given, per model: half the reference recipe's
# fine-tuning (tiny-llava's finetune_steps is 1000).
DEFAULT_BUDGETS = {"tiny-llava": ["finetune_steps=500"]}

RUN_FLAGS = ("benchmark", "model", "forget_ratio", "eval_batch_size", "eval_limit", "min_vanilla_mc", "device",
             "protocol")


def add(sub) -> None:
    p = sub.add_parser("meta-eval", help=HELP, description=HELP)
    p.add_argument("--config", help="YAML file of run options (command-line flags override it)")
    for name in RUN_FLAGS:
        flag, help_text = FLAGS[name]
        p.add_argument(flag, dest=name, default=None, help=help_text)
    for name in ("benchmark_args", "model_args", "protocol_args", "attack_args"):
        flag, help_text = KV[name]
        p.add_argument(flag, dest=name, action="append", default=None, metavar="KEY=VALUE", help=help_text)
    p.add_argument("--measure", dest="measures", action="append", default=None, metavar="MEASURE",
                   help="a measure to meta-evaluate beside the tasks' own and exact_memorization and "
                        "extraction_strength (repeatable)")
    p.add_argument("--seeds", default="1,2", help="seeds of the pools' models, comma-separated (default 1,2; not 0, "
                                                   "the references' seed)")
    p.add_argument("--budget", action="append", default=None, metavar="KEY=VALUE[,KEY=VALUE]",
                   help="more models that know: the vanilla recipe with these --model-arg values, at every seed "
                        "(repeatable; default for tiny-llava finetune_steps=500; 'none' for none)")
    p.add_argument("--pool-arg", dest="pool_args", action="append", default=None, metavar="KEY=VALUE",
                   help="a --model-arg value of every pool model, not of the references (repeatable), e.g. a "
                        "cheaper recipe for the pools")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help=f"methods whose unlearned models (seed 0) are attacked, comma-separated (default "
                        f"{','.join(DEFAULT_METHODS)}; 'none' for none: no robustness)")
    p.add_argument("--attack", dest="attack_names", action="append", default=None, metavar="ATTACK",
                   help=f"an attack that makes a model (repeatable; default {', '.join(DEFAULT_ATTACKS)})")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples of the faithfulness AUC "
                                                               "(default 2000)")
    p.add_argument("--from", dest="from_json", default=None, metavar="FILE",
                   help="write the tables, the plot and the page's section again from a meta-eval JSON file (no "
                        "model is trained or run; the pools and options are the file's)")
    p.add_argument("--output", default="leaderboards", help="where the files go (default ./leaderboards)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=main)


def budgets(given: list[str] | None, model: str) -> tuple[dict, ...]:
    from mmu_bench.cli.options import _literal

    texts = DEFAULT_BUDGETS.get(model, []) if given is None else [g for g in given if g != "none"]
    out = []
    for text in texts:
        pairs = [parse_assignment(part.strip(), "--budget") for part in text.split(",") if part.strip()]
        out.append({key: _literal(value) for key, value in pairs})
    return tuple(out)


def meta_config(args: argparse.Namespace, model: str):
    from mmu_bench.harness.meta_eval import MetaConfig

    methods = () if args.methods.strip() == "none" else tuple(list_of(args.methods, str, "--methods"))
    from mmu_bench.cli.options import _literal

    pool_args = {k: _literal(v) for k, v in (parse_assignment(a, "--pool-arg") for a in args.pool_args or [])}
    return MetaConfig(seeds=tuple(list_of(args.seeds, int, "--seeds")), budgets=budgets(args.budget, model),
                      pool_args=pool_args,
                      methods=methods, attacks=tuple(args.attack_names or DEFAULT_ATTACKS), resamples=args.resamples)


def main(args) -> int:
    from mmu_bench.reporting.meta_eval import read, write

    if args.from_json:
        try:
            doc = read(args.from_json)
        except (OSError, ValueError) as exc:
            raise MMUBenchError(f"--from {args.from_json}: not a readable meta-eval JSON file ({exc})") from exc
        if doc.get("meta_eval_version") is None:
            raise MMUBenchError(f"--from {args.from_json}: no meta_eval_version: not a file `mmu-bench meta-eval` wrote")
        for path in write(doc, args.output, with_plot=not args.no_plot):
            print(f"wrote {path}")
        return 0
    from mmu_bench.harness.meta_eval import meta_evaluate

    config = build_config(args)
    meta = meta_config(args, config.model)
    if not meta.methods and meta.attacks:
        meta.attacks = ()
    try:
        doc = meta_evaluate(config, meta, progress=not args.quiet)
    except ValueError as exc:
        raise MMUBenchError(str(exc)) from exc
    for path in write(doc, args.output, with_plot=not args.no_plot):
        print(f"wrote {path}")
    seconds = doc["provenance"]["seconds"]
    print(f"meta-eval took {seconds['total']:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()
                                                             if k != "total") + ")")
    return 0
