"""`mmu-bench attack`: attacks on a finished run folder, without unlearning again."""

from __future__ import annotations

from mmu_bench.cli.options import KV, add_attack_options, show_run
from mmu_bench.spec.config import parse_assignment

HELP = ("run attacks on a finished run folder (no unlearning again; every registered attack unless --attack names "
        "some); adds to its attacks.json")


def add(sub) -> None:
    p = sub.add_parser("attack", help=HELP)
    p.add_argument("--run", required=True, metavar="DIR", help="the run folder (it needs model/ or an eval checkpoint)")
    add_attack_options(p, flags=False)
    flag, help_text = KV["attack_args"]
    p.add_argument(flag, dest="attack_args", action="append", default=None, metavar="KEY=VALUE", help=help_text)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=main)


def main(args) -> int:
    from mmu_bench.harness.run import attack_folder

    specs = list(args.attack_names or []) or ["all"]
    attack_args = dict(parse_assignment(a, "--attack-arg") for a in args.attack_args or [])
    folder, _ = attack_folder(args.run, specs, attack_args, progress=not args.quiet)
    return show_run(folder)
