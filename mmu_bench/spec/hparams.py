"""Default hyperparameters of methods per benchmark: data, not code.

A benchmark adapter names its file (``BenchmarkAdapter.hparams``): a shipped one by name
(``hparams/<name>.yaml``, installed as ``mmu_bench._hparams``) or any YAML file by path. It maps a
method's name to the values of its ``Config`` it starts from on that benchmark; the key ``"*"``
holds values every method starts from (``MethodConfig`` fields, e.g. the settings published for
7B models). A method's defaults on a benchmark are ``"*"`` <- its own entry; a benchmark without
a file has none. ``config.method_config`` layers them: Config defaults <- these <- user arguments.

An attack's defaults on a benchmark sit under ``attack:<name>`` in the same file (the
``"*"`` entry is for methods only).

They are data so that re-tuning a method never changes its source (whose SHA-256 identifies
it on leaderboards), and so that a method never names a benchmark.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.storage import read_yaml_mapping

EVERY_METHOD = "*"  # the key of the values every method starts from


def hparams_dir() -> Path:
    return Path(str(resources.files("mmu_bench._hparams")))


def hparams_file(name: str | Path | None, directory: Path | None = None) -> Path | None:
    """A benchmark's file of defaults: ``name`` a shipped file's name (in ``directory``, by default
    the shipped ones; None when there is no such file), or a YAML file's path (which must exist);
    None for None."""
    if name is None:
        return None
    if isinstance(name, Path) or str(name).endswith((".yaml", ".yml")) or "/" in str(name):
        path = Path(name).expanduser()
        if not path.is_file():
            raise MMUBenchError(f"hyperparameter file {path} does not exist")
        return path
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        return None
    path = (directory or hparams_dir()) / f"{name}.yaml"
    return path if path.is_file() else None


def load(path: Path) -> dict[str, dict]:
    """One benchmark's file: ``{method name or "*": {config field: value}}``."""
    data = read_yaml_mapping(path, "hyperparameter file")
    for method, values in data.items():
        if not isinstance(method, str) or not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
            raise MMUBenchError(f"hyperparameter file {path}: entry {method!r} must map config field names to "
                                f"values, got {values!r}")
    return data


def defaults(benchmark: str | Path | None, method: str, fields: set[str] | None = None,
             directory: Path | None = None) -> tuple[dict, Path | None]:
    """``method``'s defaults on ``benchmark`` (``"*"`` <- the method's entry) and the file they
    come from. With ``fields`` (the method's Config fields), a key that is not one of them is an
    error naming the file, the method and the key."""
    path = hparams_file(benchmark, directory)
    if path is None:
        return {}, None
    data = load(path)
    shared, own = data.get(EVERY_METHOD, {}), data.get(method, {})
    if fields is not None:
        for entry, values in ((EVERY_METHOD, shared), (method, own)):
            which = "every method" if entry == EVERY_METHOD else f"method {method!r}"
            check_fields(path, f"{entry!r} ({which})", values, fields, f"method {method!r}")
    return {**shared, **own}, path


def check_fields(path: Path, entry: str, values: dict, fields: set[str], owner: str) -> None:
    """An entry's keys must be fields of ``owner``'s Config: else an error naming the file,
    the entry and the keys."""
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise MMUBenchError(f"hyperparameter file {path}: entry {entry} sets {', '.join(unknown)}, which the Config "
                            f"of {owner} does not have; its fields: {', '.join(sorted(fields))}")


ATTACK_PREFIX = "attack:"


def attack_defaults(benchmark: str | Path | None, attack: str, fields: set[str],
                    directory: Path | None = None) -> tuple[dict, Path | None]:
    """Attack ``attack``'s defaults on ``benchmark`` (entry ``attack:<name>``) and their file; a
    key that is not one of ``fields`` (its Config's) is an error naming the file and the key."""
    path = hparams_file(benchmark, directory)
    if path is None:
        return {}, None
    entry = ATTACK_PREFIX + attack
    values = load(path).get(entry, {})
    check_fields(path, repr(entry), values, fields, f"attack {attack!r}")
    return values, path
