"""Where mmu-bench keeps things, and how it writes them without ever leaving half a file."""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path


def json_digest(obj, length: int = 16) -> str:
    """A short, stable hash of a JSON-able description (cache keys, run keys, config ids)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:length]


def home() -> Path:
    """Cache root for generated data, trained tiny models and reference scores.
    ``MMU_BENCH_HOME`` overrides ``~/.cache/mmu-bench``."""
    root = os.environ.get("MMU_BENCH_HOME") or Path.home() / ".cache" / "mmu-bench"
    return Path(root)


def is_local(source: str) -> bool:
    """Whether a source name (a dataset, a model) means a local path rather than a hub name."""
    return Path(source).expanduser().exists() or source.startswith((".", "/", "~"))


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename over it: readers see the old
    file or the new one, never a mix, and a crash leaves the old one intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it owner-only; a shared results folder needs the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def staging_dir(final: Path):
    """Yield a temporary folder beside ``final``; on success it is renamed to ``final`` in one
    step, on any error (Ctrl-C included) it is removed. An existing ``final`` is never touched:
    if it appears meanwhile, the rename fails with FileExistsError and the staged copy is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            raise FileExistsError(f"{final} already exists")
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it owner-only
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_yaml_mapping(path: Path, what: str) -> dict:
    """A YAML file that must hold a mapping (empty: {}); errors name ``what`` and the file. The
    same text is parsed once per process (task files are read by every step of a run); each
    caller gets its own copy."""
    return copy.deepcopy(_parsed(Path(path).read_text(), str(path), what))


@functools.lru_cache(maxsize=256)
def _parsed(text: str, path: str, what: str) -> dict:
    import yaml

    from mmu_bench.core.errors import MMUBenchError

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise MMUBenchError(f"{what} {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise MMUBenchError(f"{what} {path} must hold a mapping, got {type(data).__name__}")
    return data
