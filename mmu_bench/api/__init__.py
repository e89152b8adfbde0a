"""What plugins import: the one public module of mmu-bench.

Every plugin kind has the same door: a class in one file, registered under an entry-point group
(or given as ``package.module:Class`` or ``path/to/file.py:Class``), that imports from here:

- a method: ``UnlearningMethod`` and its ``MethodConfig``, over the shared training loop
  (``run_loop``, ``Stepper``) and the losses (``nll``, ``kl_from_reference``, ...); group
  ``mmu_bench.methods``;
- a measure: ``Measure`` or ``ItemMeasure`` over ``Records``, giving a ``Value``; group
  ``mmu_bench.measures``;
- an attack: ``Attack`` and its ``AttackConfig``, run on a ``Target``; group ``mmu_bench.attacks``;
- a benchmark adapter: ``BenchmarkAdapter``, whose ``load`` gives a ``Benchmark`` of canonical
  rows (``FEATURES``, ``validate_row``); group ``mmu_bench.benchmarks``;
- a model provider (a preset): ``ModelProvider`` or ``CachedProvider``, whose ``load`` gives a
  ``LoadedModel``; group ``mmu_bench.models``.

Each kind also declares what the harness and its reports show of it (a name, a description, a
version; a measure's and an attack's table, columns and labels): see each class. The helpers
below are the ones the built-in plugins use. Names are imported on first use, so that importing
``mmu_bench.api`` loads no model library.
"""

from __future__ import annotations

import importlib

# public name -> the module of this package (or of mmu_bench.core) that defines it
_NAMES = {
    # methods
    "UnlearningMethod": "method", "MethodConfig": "method", "Batches": "method",
    "UnlearningContext": "context", "EncodedSet": "context", "MethodData": "context",
    "run_loop": "train", "Stepper": "train", "progress_bar": "train", "total_steps": "train",
    "make_optimizer": "train", "lr_lambda": "train",
    "nll": "losses", "nll_sum": "losses", "joint_nll": "losses", "sequence_nll": "losses",
    "nll_from_logits": "losses", "label_logprobs": "losses", "model_inputs": "losses",
    "kl_from_reference": "losses", "KL_REDUCTIONS": "losses",
    "finetune": "finetune",
    # measures
    "Measure": "measure", "ItemMeasure": "measure", "Records": "measure", "Value": "measure",
    "NotApplicable": "measure", "GOLD_ROLES": "measure",
    # attacks
    "Attack": "attack", "AttackConfig": "attack", "Target": "attack", "AnyOf": "attack", "right": "attack",
    "rate": "attack", "recovery": "attack", "number": "attack", "of_entities": "attack", "MIN_GAP": "attack",
    # benchmark adapters and the canonical schema
    "BenchmarkAdapter": "benchmark", "Benchmark": "benchmark", "add_split_column": "benchmark",
    "QA_FORMAT": "benchmark",
    "FEATURES": "schema", "FORMATS": "schema", "MODALITIES": "schema", "LETTERS": "schema",
    "SchemaError": "schema", "validate_row": "schema",
    # model providers
    "ModelProvider": "provider", "CachedProvider": "provider", "LoadedModel": "provider",
    # encoding, prompts, metrics
    "IGNORE": "encoding", "encode": "encoding", "encode_many": "encoding", "with_answer": "encoding",
    "collate": "encoding", "to_device": "encoding", "chat_prompt": "encoding",
    "user_text": "prompts", "training_pairs": "prompts", "demonstration": "prompts", "default_prompts": "prompts",
    "mc_correct": "metrics", "cloze_correct": "metrics", "CLOZE_RULES": "metrics", "loglik_choice": "metrics", "rouge": "metrics",
    "bleu": "metrics", "mean_and_stderr": "metrics", "normalise": "metrics",
    # utilities of the house the built-in plugins use
    "MMUBenchError": "mmu_bench.core.errors", "typed_dataclass": "mmu_bench.core.options",
    "coerce": "mmu_bench.core.options", "home": "mmu_bench.core.storage", "json_digest": "mmu_bench.core.storage",
    "staging_dir": "mmu_bench.core.storage", "atomic_write_json": "mmu_bench.core.storage",
    "is_local": "mmu_bench.core.storage", "safe_name": "mmu_bench.core.names",
    "seal": "mmu_bench.core.integrity", "usable": "mmu_bench.core.integrity",
}
# modules of this package a plugin may import whole (``from mmu_bench.api import saliency``)
_MODULES = ("method", "context", "train", "losses", "finetune", "measure", "attack", "benchmark", "schema",
            "provider", "encoding", "prompts", "metrics", "saliency", "refusals")

__all__ = sorted(_NAMES) + list(_MODULES)


def __getattr__(name: str):
    if name in _NAMES:
        where = _NAMES[name]
        module = importlib.import_module(where if "." in where else f"{__name__}.{where}")
        value = getattr(module, name)
    elif name in _MODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
