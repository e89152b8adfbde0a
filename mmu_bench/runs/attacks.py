"""``attacks.json``: what the attacks found, beside ``results.json`` (which attacks never change).

Written when a run's attacks finish (``run --attacks``) and merged into by ``mmu-bench attack
--run DIR`` (an attack run again replaces its entry; the others are kept). Per attack: its
version, origin, source hash, description, options, declared columns, the unlearned model's
numbers, the gold reference's and the numbers that compare both (``compared``).
"""

from __future__ import annotations

import json
from pathlib import Path

from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.storage import atomic_write_json

ATTACKS_FILE = "attacks.json"


ATTACKS_VERSION = 1


def read(run_dir: Path) -> dict | None:
    """A run folder's attacks.json, or None when it has none."""
    path = Path(run_dir) / ATTACKS_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MMUBenchError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or "attacks" not in data:
        raise MMUBenchError(f"{path}: not an attacks file (no 'attacks' key)")
    return data


def write(run_dir: Path, report: dict) -> None:
    """``report`` as the run folder's attacks.json (atomically; keys sorted, as it is merged into)."""
    atomic_write_json(Path(run_dir) / ATTACKS_FILE, report)


def merge(old: dict | None, new: dict) -> dict:
    """``new`` over ``old``: attacks run again replace their entries; the others are kept."""
    if not old:
        return new
    merged = dict(new)
    merged["attacks"] = {**old.get("attacks", {}), **new["attacks"]}
    failed = {k: v for k, v in old.get("failed", {}).items() if k not in new["attacks"]}
    merged["failed"] = {**failed, **new["failed"]}
    merged["seconds"] = round(old.get("seconds", 0) + new.get("seconds", 0), 2)
    return merged


def headline(report: dict | None, who: str = "unlearned") -> dict[str, float]:
    """The attacks' columns for ``who`` ("unlearned" or "gold"): flat name -> value."""
    out: dict[str, float] = {}
    for entry in (report or {}).get("attacks", {}).values():
        numbers = {**(entry.get(who) or {}), **(entry.get("compared", {}) if who == "unlearned" else {})}
        for column in entry.get("columns", []):
            value = numbers.get(column)
            if isinstance(value, (int, float)):
                out[column] = float(value)
    return out


def rows(report: dict) -> list[dict]:
    """table.md's attack table: per attack and column, the unlearned model's value and the gold
    reference's."""
    out = []
    for name, entry in report.get("attacks", {}).items():
        gold = entry.get("gold") or {}
        numbers = {**entry.get("unlearned", {}), **entry.get("compared", {})}
        for column in entry.get("columns", []):
            out.append({"attack": name, "measure": column, "unlearned": _num(numbers.get(column)),
                        report.get("gold") or "gold": _num(gold.get(column))})
    return out


def _num(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def failures(report: dict | None) -> list[str]:
    return [f"{name}: {error}" for name, error in (report or {}).get("failed", {}).items()]
