"""`mmu-bench list`: every registered plugin of each kind with its origin, the tasks and the
protocols. The plugins are described from their entry points and sources, without importing them
(no model library is loaded: it answers at once); ``--check`` imports each and checks it against
its contract."""

from __future__ import annotations

import sys

HELP = "list methods, measures, attacks, benchmarks, models, tasks and protocols"


def add(sub) -> None:
    p = sub.add_parser("list", help=HELP)
    p.add_argument("--check", action="store_true",
                   help="import every plugin and check it against its contract (slower: loads the model libraries)")
    p.set_defaults(func=main)


def _suffix(kind: str, known: dict) -> str:
    """What a kind shows beside its origin: a benchmark's forget ratios."""
    ratios = known.get("forget_ratios") or ()
    if kind == "benchmark" and isinstance(ratios, tuple) and ratios:
        return f"  (forget ratios {', '.join(f'{r:g}' for r in ratios)})"
    return ""


def _known(p: dict) -> dict:
    """A listed plugin's attributes: imported (``--check``) or read from its source."""
    if "declared" in p:
        return p["declared"]
    cls = p["cls"]
    return {} if cls is None else {"takes_source": getattr(cls, "takes_source", False),
                                   "forget_ratios": getattr(cls, "forget_ratios", ())}


def main(args) -> int:
    import warnings

    from mmu_bench.spec import protocol, registry, tasks

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        listing = registry.list_plugins if args.check else registry.described
        plugins = {kind.noun: listing(kind) for kind in registry.KINDS}
    for kind in registry.KINDS:
        print(f"{kind.noun}s:")
        for p in plugins[kind.noun]:
            known = _known(p)
            status = f"  [broken: {p['error']}]" if p["error"] else ""
            name = f"{p['name']}:<name-or-path>" if known.get("takes_source") is True else p["name"]
            print(f"  {name:18s} {p['origin']}{_suffix(kind.noun, known)}{status}")
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
