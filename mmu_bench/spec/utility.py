"""What general utility on lmms-eval's suites (``--utility-suite``) needs before any work: lmms-eval
installed, and what its scores depend on besides the model (scoring: ``mmu_bench.harness.suites``)."""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import warnings
from pathlib import Path

from mmu_bench.core.errors import MMUBenchError

EXTRA = 'pip install -e ".[utility]" && pip install --no-deps lmms-eval==0.7.3'



def version() -> str:
    """lmms-eval's version ("" when it is not installed)."""
    try:
        return importlib.metadata.version("lmms-eval")
    except importlib.metadata.PackageNotFoundError:
        return ""



@functools.lru_cache(maxsize=8)
def folder_digest(folder: str | None) -> str | None:
    """A digest of a folder of task files (their names and bytes): cached scores of other tasks
    are not reused. Once per folder and process: a run asks for it for its key, the cache key
    and the results, and the folder may hold a suite's data."""
    if not folder:
        return None
    digest = hashlib.sha256()
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:20]



def require(names: list[str]) -> None:
    """Fail before any work when suites are asked for and lmms-eval is missing."""
    if names:
        lmms()


def lmms():
    """lmms-eval's modules. Its import silences every warning of the process and replaces
    loguru's sinks: the warning filters are restored afterwards."""
    try:
        with warnings.catch_warnings():
            evaluator = importlib.import_module("lmms_eval.evaluator")
            tasks = importlib.import_module("lmms_eval.tasks")
            model = importlib.import_module("lmms_eval.api.model")
            instance = importlib.import_module("lmms_eval.api.instance")
    except ImportError as exc:
        raise MMUBenchError(f"--utility-suite needs lmms-eval, which is not installed ({exc}). Install the "
                            f"extra: {EXTRA}") from exc
    # lmms-eval 0.7.3 patches filelock's private API for multi-rank caches; filelock 4 removed it.
    # One process here: the patch is not needed.
    reentrant = getattr(evaluator, "_enable_reentrant_filelocks", None)
    if reentrant is not None:
        reentrant._patched = True
    return evaluator, tasks, model, instance



def key(config) -> dict:
    """What the utility suites' scores depend on besides the model (``config``: a RunConfig)."""
    return {"suite": list(config.utility_suite), "limit": config.utility_limit,
            "tasks": folder_digest(config.utility_tasks), "lmms_eval": version()}
