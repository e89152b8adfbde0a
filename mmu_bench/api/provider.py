"""What a model provider is: the interface the harness uses, and the caching code providers share.

A provider names the reference models it has (``roles``: vanilla, oracle, ...), says where each
lives and what identifies it *without loading it* (``path``, ``recipe_hash``: cache keys of
reference records are computed from them), and loads one on request, training and caching it
first when it is missing.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mmu_bench.core import integrity, shipped
from mmu_bench.core.errors import UnknownNameError
from mmu_bench.core.storage import atomic_write_json, home, json_digest, staging_dir


@dataclass
class LoadedModel:
    """A loaded model with its processor, and where it came from."""

    model: Any
    processor: Any
    role: str  # "vanilla", "oracle", ... or "checkpoint"
    path: str
    recipe_hash: str  # identifies the weights ("" for a checkpoint)


class ModelProvider:
    """THE PUBLIC PLUGIN CONTRACT for models (``--model``): a model family or preset, its
    reference models by role, and checkpoints unlearned elsewhere.

    What a provider declares: ``name`` (on the command line and in results), ``description`` (for
    ``mmu-bench list``), ``version``, ``roles`` (the reference models it has: ``vanilla`` first,
    then models that never learned the forget people, ``oracle``, ``visual_oracle``) and
    ``takes_source`` (True: named ``<name>:<hub name or folder>`` on the command line; the source
    reaches ``__init__`` as ``path``). ``--model-arg KEY=VALUE`` options reach ``__init__`` as
    keyword arguments (with ``progress``): reject unknown or ill-typed ones there, naming them.
    Register a provider under the entry-point group ``mmu_bench.models``, or give
    ``package.module:Class`` or ``path/to/file.py:Class`` to ``--model``. ``CachedProvider``
    trains and caches its reference models the way the built-in ones do."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    roles: ClassVar[tuple[str, ...]] = ("vanilla", "oracle")
    takes_source: ClassVar[bool] = False

    def __init__(self, progress: bool = True, **options):
        if options:
            raise ValueError(f"unknown option(s) {', '.join(sorted(options))}")
        self.progress = progress

    def check_sources(self) -> None:
        """Raise MMUBenchError when a local folder the provider was given does not exist (asked
        before any work)."""

    def path(self, role: str, benchmark) -> Path:
        """Where ``role``'s weights live for ``benchmark``; never loads or trains anything."""
        raise NotImplementedError

    def recipe_hash(self, role: str, benchmark) -> str:
        """A short identity of ``role``'s weights, computed without loading or training."""
        raise NotImplementedError

    def load(self, role: str, benchmark=None, sides: tuple[str, ...] = ("language",)) -> LoadedModel:
        """``role``'s model for ``benchmark``, trained and cached first when missing. ``sides``:
        the parts of the model the caller will train (``language``, ``vision``: the vision
        tower and projector; ``UnlearningMethod.trainable_sides``). A provider that trains part
        of the model (a LoRA adapter) must make at least these trainable; one that trains every
        parameter may ignore it."""
        raise NotImplementedError

    def load_checkpoint(self, path: str, benchmark) -> LoadedModel:
        """A model unlearned elsewhere (``mmu-bench eval --checkpoint``)."""
        raise NotImplementedError


class CachedProvider(ModelProvider):
    """Reference models trained by the harness and cached under
    ``home()/models/<name>/<role>-<digest of key(role, benchmark)>``, with a ``recipe.json``
    written last (a folder without one was never finished) and the digests of its files
    (``integrity``: a damaged folder is moved aside and trained again)."""

    def key(self, role: str, benchmark) -> dict:
        """What decides ``role``'s weights (recipe, data, prompts): its digest names the folder."""
        raise NotImplementedError

    def check_role(self, role: str) -> None:
        if role not in self.roles:
            raise UnknownNameError("reference model", role, self.roles)

    def cache_path(self, role: str, benchmark) -> Path:
        return home() / "models" / self.name / f"{role}-{json_digest(self.key(role, benchmark))}"

    def path(self, role: str, benchmark) -> Path:
        return self.cache_path(role, benchmark)

    def recipe_hash(self, role: str, benchmark) -> str:
        return self.path(role, benchmark).name.rsplit("-", 1)[-1]

    @staticmethod
    def trained(path: Path) -> bool:
        return (Path(path) / "recipe.json").exists()

    retrain: bool = False  # train every reference anew once, cached or shipped (``prepare --retrain``)

    def ensure(self, role: str, benchmark) -> Path:
        """``role``'s folder: cached, else installed from the shipped references when one of
        the same recipe ships (``mmu_bench.shipped``), else trained (also when the cached files
        are damaged: ``integrity``; and once per process under ``retrain``)."""
        path = self.path(role, benchmark)
        if self.retrain and path not in self._retrained():
            self._retrain(role, benchmark, path)
        elif not (self.trained(path) and integrity.usable(path, f"cached {role} model")):
            if not shipped.install_model(self.name, path):
                self.train(role, benchmark)
        return path

    def _retrained(self) -> set:
        if "_retrained_paths" not in self.__dict__:
            self._retrained_paths = set()
        return self._retrained_paths

    def _retrain(self, role: str, benchmark, path: Path) -> None:
        """Train ``role`` again; the folder it replaces is kept aside until the new one is
        written (and put back if training fails)."""
        aside = path.with_name(f"{path.name}.replaced") if path.exists() else None
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
            os.rename(path, aside)
        try:
            self.train(role, benchmark)
        except BaseException:
            if aside is not None and not path.exists():
                os.rename(aside, path)
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        self._retrained().add(path)

    def weights_digest(self, role: str, benchmark) -> str | None:
        """The recorded SHA-256 of ``role``'s weights when they are cached or ship (then
        installed; under ``retrain``, trained anew first); None when they are still to be
        trained. Reference records are kept per weights."""
        path = self.path(role, benchmark)
        if path != self.cache_path(role, benchmark):
            return None  # a checkpoint the user gave: not the harness's to train or ship
        if self.retrain:
            self.ensure(role, benchmark)
        elif not self.trained(path):
            shipped.install_model(self.name, path)
        return shipped.weights_digest(path) if self.trained(path) else None

    def train(self, role: str, benchmark) -> None:
        raise NotImplementedError

    def save(self, role: str, benchmark, model, processor, record: dict) -> None:
        """Write a trained model (and its processor, when given) into its cache folder at once:
        staged, then renamed, ``recipe.json`` last."""
        try:
            with staging_dir(self.cache_path(role, benchmark)) as tmp:
                model.save_pretrained(str(tmp))
                if processor is not None:
                    processor.save_pretrained(str(tmp))
                atomic_write_json(tmp / "recipe.json", record)
                integrity.seal(tmp)
        except FileExistsError:
            pass  # trained meanwhile by another process: same recipe, same model
