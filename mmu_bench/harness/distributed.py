"""Runs over several processes (GPUs) through ``accelerate launch``.

A plain ``mmu-bench run`` is one process: nothing here imports accelerate then, and every
caller takes its single-process path unchanged (``accelerator()`` is None). Under a launcher
with several processes:

- a method's ``batch_size`` stays the *global* batch: every process draws the same batches
  (same seed) and trains on its own slice of each (``EncodedSet``); DDP averages the
  gradients. 2 processes x b/2 rows see the rows of 1 process x b, so hyperparameters mean
  the same on any number of GPUs;
- evaluation items are dealt out round-robin, scored where they landed, and gathered;
- only the main process fills the caches (benchmark, reference models, their scores) while
  the others wait, and only it writes the run folder.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from datetime import timedelta

import torch

from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.processes import deal, launched

_accelerator = None


def accelerator():
    """This process's ``Accelerator`` when launched over several processes, else None."""
    global _accelerator
    if _accelerator is None and launched():
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs

        acc = Accelerator(kwargs_handlers=[
            # Text-only batches leave the vision tower without gradients, and LLaVA never uses
            # its last vision layer: DDP must accept parameters that got no gradient.
            DistributedDataParallelKwargs(find_unused_parameters=True),
            # The other processes wait while the main one fine-tunes and scores the reference
            # models on first use: hours for a 7B model, far beyond the 30-minute default.
            InitProcessGroupKwargs(timeout=timedelta(hours=24)),
        ])
        _check_supported(acc)
        _accelerator = acc
    return _accelerator


def _check_supported(acc) -> None:
    from accelerate.utils import DistributedType

    if acc.num_processes != int(os.environ["WORLD_SIZE"]):
        # e.g. CPUs without ACCELERATE_USE_CPU=true: every process would run the whole job alone
        raise MMUBenchError(f"the launcher started {os.environ['WORLD_SIZE']} processes but accelerate set up "
                            f"{acc.num_processes} (on CPUs set ACCELERATE_USE_CPU=true; see README, Multi-GPU)")
    if acc.distributed_type == DistributedType.DEEPSPEED:
        raise MMUBenchError("DeepSpeed is not supported: use DDP (the default) or FSDP with fsdp_version: 2")
    if acc.distributed_type == DistributedType.FSDP and not acc.is_fsdp2:
        raise MMUBenchError("FSDP version 1 is not supported (evaluation generates text): set fsdp_version: 2 "
                            "in the accelerate config")
    if acc.gradient_accumulation_steps != 1:
        raise MMUBenchError("gradient accumulation is not supported: a method's batch_size is its global batch")


def main_first(acc):
    """The main process runs the block first (filling caches); the others then find them."""
    return acc.main_process_first() if acc is not None else contextlib.nullcontext()


def prepare_model(acc, model):
    """``model`` wrapped for training over the processes (DDP, or sharded by FSDP2)."""
    if acc.is_fsdp2:
        # accelerate shards a model only together with an optimizer, whose parameters it swaps
        # for the sharded ones. The method makes its own optimizer later, from the sharded
        # parameters; this placeholder only satisfies that call.
        placeholder = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
        model, _ = acc.prepare(model, placeholder)
        return model
    return acc.prepare_model(model)


def release(acc) -> None:
    """Forget the models and optimizers of a finished run (a sweep runs many in one process)."""
    if acc is not None:
        acc.free_memory()


def sharded(fn: Callable[[list], list], items: list, acc) -> list:
    """``fn(items)`` with the items dealt out over the processes; every process gets every
    result, in item order."""
    if acc is None:
        return fn(items)
    mine, padded = deal(len(items), acc.process_index, acc.num_processes)
    results = fn([items[i] for i in padded])
    from accelerate.utils import gather_object

    out: list = [None] * len(items)
    for i, result in gather_object(list(zip(mine, results))):  # zip drops the padding
        out[i] = result
    return out


def check_in_sync(acc, model) -> None:
    """Raise when the processes' copies of ``model`` differ. DDP keeps them identical, bit for
    bit, as long as every change is a gradient step through the wrapped model; a method that
    edits weights by other means from its own slice of the data would silently give each
    process a different model (and evaluation would mix them)."""
    if acc is None or acc.is_fsdp2:  # FSDP2 holds shards, not copies: nothing to compare
        return
    sums = torch.stack([p.detach().sum(dtype=torch.float64) for p in model.parameters()])
    every = acc.gather(sums[None])
    if not bool((every == every[0]).all()):
        raise MMUBenchError("the processes' models differ after unlearning: with several processes a method must "
                            "change the model only through gradient steps on ctx.model (see README, Multi-GPU)")
