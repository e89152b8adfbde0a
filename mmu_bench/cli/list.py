"""`mmu-bench list`: every registered plugin of each kind with its origin, the tasks and the
protocols."""

from __future__ import annotations

import sys

HELP = "list methods, measures, attacks, benchmarks, models, tasks and protocols"


def add(sub) -> None:
    p = sub.add_parser("list", help=HELP)
    p.set_defaults(func=main)


def _suffix(kind: str, cls) -> str:
    """What a kind shows beside its origin: a benchmark's splits, how a model that takes a
    source is named."""
    if cls is None:
        return ""
    if kind == "benchmark" and cls.forget_ratios:
        return f"  (forget ratios {', '.join(f'{r:g}' for r in cls.forget_ratios)})"
    return ""


def main(args) -> int:
    import warnings

    from mmu_bench.spec import protocol, registry, tasks

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins = {kind.noun: registry.list_plugins(kind) for kind in registry.KINDS}
    for kind in registry.KINDS:
        print(f"{kind.noun}s:")
        for p in plugins[kind.noun]:
            status = f"  [broken: {p['error']}]" if p["error"] else ""
            name = f"{p['name']}:<name-or-path>" if getattr(p["cls"], "takes_source", False) else p["name"]
            print(f"  {name:18s} {p['origin']}{_suffix(kind.noun, p['cls'])}{status}")
            if p["description"]:
                print(f"  {'':18s}   {p['description']}")
    print("tasks:")
    for task in tasks.load_tasks():
        better = "higher" if task.higher_is_better else "lower"
        print(f"  {task.name:26s} v{task.version:6s} {task.dimension:18s} {better} is better; "
              f"measures {', '.join(task.measures)}")
    print("protocols (--protocol; auto: the benchmark's own):")
    for name in protocol.available():
        print(f"  {name:14s} {protocol.load(name).reference}")
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    return 0
