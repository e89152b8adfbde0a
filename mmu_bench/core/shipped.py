"""Reference models and their records that ship with the package (``references/`` of the
repository, installed as ``mmu_bench._references``), so the embedded default runs without
training and every machine scores against the same weights.

A shipped model folder is named exactly as the cache names it (``<role>-<digest of its
recipe>``): a provider installs it into the cache when the names match, and trains only when
they do not (a changed recipe) or when asked to (``prepare --retrain``). Shipped records are
used only for the very weights they were computed from (the SHA-256 of ``model.safetensors``).
``scripts/train_references.py`` makes both.
"""

from __future__ import annotations

import gzip
import json
import shutil
from importlib import resources
from pathlib import Path

from mmu_bench.core import integrity
from mmu_bench.core.storage import home, staging_dir

WEIGHTS = "model.safetensors"


def root() -> Path:
    return Path(str(resources.files("mmu_bench._references")))


def model_folder(provider: str, name: str) -> Path | None:
    """The shipped folder of ``provider``'s model ``name`` (``<role>-<digest>``), if any."""
    folder = root() / "models" / provider / name
    return folder if (folder / "recipe.json").is_file() else None


def install_model(provider: str, cache_folder: Path) -> bool:
    """Copy the shipped model of the same name into ``cache_folder``; False when none ships
    (or the shipped copy is damaged: then the caller trains)."""
    source = model_folder(provider, Path(cache_folder).name)
    if source is None or integrity.damage(source) is not None:
        return False
    try:
        with staging_dir(Path(cache_folder)) as tmp:
            for item in source.iterdir():
                shutil.copy2(item, tmp / item.name)
    except FileExistsError:
        pass  # installed meanwhile by another process
    return True


def weights_digest(folder: Path) -> str | None:
    """The recorded SHA-256 of a sealed model folder's weights (None: not there, or unsealed)."""
    try:
        return json.loads((Path(folder) / integrity.DIGESTS).read_text()).get(WEIGHTS)
    except (OSError, ValueError):
        return None


def records(provider: str, name: str, weights: str | None) -> dict | None:
    """Shipped reference records of cache file ``name``, if they were computed from ``weights``."""
    path = root() / "records" / provider / f"{name}.gz"
    if weights is None or not path.is_file():
        return None
    try:
        entry = json.loads(gzip.decompress(path.read_bytes()))
    except (OSError, ValueError):
        return None
    return entry if entry.get("weights") == weights else None


def ship(provider: str, names: list[str], destination: Path | None = None) -> list[Path]:
    """Copy cached model folders (and the cached records of each) into the shipped set,
    replacing what shipped for ``provider`` before. Used by ``scripts/train_references.py``."""
    destination = Path(destination or root())
    models, recs = destination / "models" / provider, destination / "records" / provider
    for old in (models, recs):
        shutil.rmtree(old, ignore_errors=True)
        old.mkdir(parents=True)
    written = []
    for name in names:
        source = home() / "models" / provider / name
        if integrity.damage(source) is not None or not (source / integrity.DIGESTS).is_file():
            raise ValueError(f"{source} is not a sealed, intact model folder")
        shutil.copytree(source, models / name)
        written.append(models / name)
        digest = weights_digest(source)
        for cached in sorted((home() / "references" / provider).glob(f"{name.rsplit('-', 1)[0]}-*.json")):
            entry = integrity.read_sealed(cached, "cached records")
            if entry and entry.get("weights") == digest:
                target = recs / f"{cached.name}.gz"
                target.write_bytes(gzip.compress(json.dumps(entry, sort_keys=True).encode(), mtime=0))
                written.append(target)
    return written
