"""Digests of what the harness caches (trained models, generated and converted data, reference
records, attack numbers): a truncated or corrupt file is found when the cache is read, named,
moved aside and rebuilt, instead of failing deep inside a reader.

A cached folder is sealed last, inside its staging folder (``seal``: ``digests.json``, the
SHA-256 of every file); a cached JSON file carries the SHA-256 of its payload
(``sealed_json`` / ``read_sealed``). Caches written before digests were recorded are used as
they are. Nothing is deleted: a damaged folder or file is renamed ``<name>.damaged-<time>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

from mmu_bench.core.storage import atomic_write_json

DIGESTS = "digests.json"
_verified: set[Path] = set()  # folders checked in this process: a large model is hashed once per run


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def seal(folder: Path) -> None:
    """Record the SHA-256 of every file under ``folder`` (call it when the folder is complete)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != DIGESTS)
    atomic_write_json(folder / DIGESTS, {p.relative_to(folder).as_posix(): file_digest(p) for p in files})


def damage(folder: Path) -> str | None:
    """What is wrong with a sealed folder, or None (intact, or written before digests)."""
    folder = Path(folder)
    index = folder / DIGESTS
    if not index.exists():
        return None
    try:
        expected = json.loads(index.read_text())
    except (OSError, ValueError):
        return f"{DIGESTS} is unreadable"
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if file_digest(path) != digest:
            return f"{name} does not match the digest recorded when it was written"
    return None


def _move_aside(path: Path, what: str, problem: str) -> None:
    stamp, n = time.strftime("%Y%m%d-%H%M%S"), 1
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    while aside.exists():  # never over an earlier damaged copy
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    os.rename(path, aside)
    print(f"mmu-bench: {what} {path} is damaged ({problem}); moved to {aside}, rebuilding it", file=sys.stderr)


def usable(folder: Path, what: str) -> bool:
    """Whether the cached ``folder`` exists and is intact. A damaged one is moved aside (the
    caller then rebuilds it) with a message naming it."""
    folder = Path(folder)
    if not folder.exists():
        return False
    if folder in _verified:
        return True
    problem = damage(folder)
    if problem is None:
        _verified.add(folder)
        return True
    _move_aside(folder, what, problem)
    return False


def _payload_digest(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def sealed_json(path: Path, payload: dict) -> None:
    """Write ``payload`` (a mapping) atomically with the SHA-256 of its content."""
    atomic_write_json(path, {**payload, "sha256": _payload_digest(payload)})


def read_sealed(path: Path, what: str) -> dict | None:
    """A cached JSON file's payload, or None when it is missing or damaged (then moved aside,
    with a message naming it, for the caller to rebuild)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        _move_aside(path, what, f"not readable JSON: {exc}")
        return None
    digest = data.pop("sha256", None) if isinstance(data, dict) else None
    if not isinstance(data, dict) or (digest is not None and digest != _payload_digest(data)):
        _move_aside(path, what, "its content does not match the digest recorded when it was written")
        return None
    return data
