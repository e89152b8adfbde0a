"""The module names plugins imported before the house had rooms (``mmu_bench.method``,
``mmu_bench.losses``, ...), kept as names of the api modules that replaced them.

A plugin's identity is the SHA-256 of its file (run keys, leaderboard rows, cached attack
numbers), so a plugin written against the old names, the built-in methods among them, keeps
working with the same bytes. New code imports ``mmu_bench.api``. Nothing is imported until an old
name is: the old name is then the very module object of the new one.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# old name -> new module (a package maps its submodules too: mmu_bench.baselines.npo -> mmu_bench.methods.npo)
NAMES = {
    "mmu_bench.method": "mmu_bench.api.method",
    "mmu_bench.context": "mmu_bench.api.context",
    "mmu_bench.train": "mmu_bench.api.train",
    "mmu_bench.losses": "mmu_bench.api.losses",
    "mmu_bench.measure": "mmu_bench.api.measure",
    "mmu_bench.attack": "mmu_bench.api.attack",
    "mmu_bench.encoding": "mmu_bench.api.encoding",
    "mmu_bench.saliency": "mmu_bench.api.saliency",
    "mmu_bench.prompts": "mmu_bench.api.prompts",
    "mmu_bench.refusals": "mmu_bench.api.refusals",
    "mmu_bench.metrics": "mmu_bench.api.metrics",
    "mmu_bench.errors": "mmu_bench.core.errors",
    "mmu_bench.data.schema": "mmu_bench.api.schema",
    "mmu_bench.baselines": "mmu_bench.methods",
}


def target(name: str) -> str | None:
    """The module an old name stands for (None: not an old name)."""
    if name in NAMES:
        return NAMES[name]
    package, _, rest = name.rpartition(".")
    while package:
        if package in NAMES:
            return f"{NAMES[package]}.{name[len(package) + 1:]}"
        package, _, _ = package.rpartition(".")
    return None


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self):
        self.own: dict = {}

    def find_spec(self, name, path=None, target_module=None):
        return importlib.util.spec_from_loader(name, self) if target(name) is not None else None

    def create_module(self, spec):
        module = importlib.import_module(target(spec.name))
        self.own[spec.name] = module.__spec__  # the import system is about to give it the old name's spec
        return module

    def exec_module(self, module):
        module.__spec__ = self.own.pop(module.__spec__.name)


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
