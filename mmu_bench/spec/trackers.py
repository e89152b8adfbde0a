"""The experiment trackers ``--log-with`` may name, and the packages each needs: checked before any
work (logging to them: ``mmu_bench.harness.tracking``)."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

from mmu_bench.core.errors import MMUBenchError, UnknownNameError


@dataclass(frozen=True)
class Spec:
    extra: str  # pip install -e ".[extra]"
    modules: tuple[str, ...]  # what the tracker imports



TRACKERS = {
    "tensorboard": Spec("tensorboard", ("tensorboard", "torch.utils.tensorboard")),
    "wandb": Spec("wandb", ("wandb",)),
    "mlflow": Spec("mlflow", ("mlflow",)),
}



# the default local store of mlflow (SQLite: mlflow 3 refuses its plain-file store) needs these too
MLFLOW_SQLITE = ("sqlalchemy", "alembic")



def names(value) -> list[str]:
    """``log_with`` as a list of names: from a list, a string, and comma-separated ones (YAML, the command line)."""
    if value is None:
        return []
    if not isinstance(value, (str, list, tuple)):
        raise MMUBenchError(f"log_with: expected a tracker name or a list of them, got {value!r}")
    out: list[str] = []
    for item in [value] if isinstance(value, str) else value:
        for name in str(item).split(","):
            name = name.strip().lower()
            if name and name not in out:
                out.append(name)
    return out



def check_names(value) -> None:
    """Unknown tracker names fail with the valid ones (no import: any time, cheaply)."""
    for name in names(value):
        if name not in TRACKERS:
            raise UnknownNameError("tracker (--log-with)", name, TRACKERS)



def require(value) -> None:
    """Fail, before any work, when a tracker's package is not installed: the error names the extra."""
    check_names(value)
    for name in names(value):
        needed = TRACKERS[name].modules
        if name == "mlflow" and not os.environ.get("MLFLOW_TRACKING_URI"):
            needed = needed + MLFLOW_SQLITE
        for module in needed:
            try:
                importlib.import_module(module)
            except Exception as exc:  # not installed, or broken (e.g. a clashing protobuf)
                state = "is not installed" if isinstance(exc, ImportError) else "cannot be imported"
                why = " ".join(f"{type(exc).__name__}: {exc}".split())  # one line
                raise MMUBenchError(f"--log-with {name}: {module} {state} ({why}); install it with: "
                                    f'pip install -e ".[{TRACKERS[name].extra}]"') from exc
