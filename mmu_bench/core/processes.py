"""Which process of a run this is, and its share of the work, without importing a distributed
library: a plain run is one process (accelerate itself: ``mmu_bench.harness.distributed``)."""

from __future__ import annotations

import os


def launched() -> bool:
    """Started by ``accelerate launch`` / ``torchrun`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1



def is_main() -> bool:
    """Whether this process shows progress and writes results (rank 0, or not launched)."""
    return not launched() or int(os.environ.get("RANK", "0")) == 0



def slice_of(rows: list, part: tuple[int, int]) -> list:
    """Process ``part[0]``'s contiguous share of ``rows`` out of ``part[1]`` near-equal ones."""
    index, count = part
    if len(rows) < count:
        raise ValueError(f"a batch of {len(rows)} rows cannot be split over {count} processes: "
                         f"use a batch size of at least {count}")
    return rows[len(rows) * index // count : len(rows) * (index + 1) // count]



def per_process(total: int, acc) -> int:
    """How many of ``total`` evaluation items each process scores (padding included)."""
    return total if acc is None else -(-total // acc.num_processes)



def deal(total: int, index: int, count: int) -> tuple[list[int], list[int]]:
    """Process ``index``'s items out of ``total`` dealt round-robin over ``count`` processes:
    (its own, the same padded to the common length by repeating its last one).

    Equal lengths because under FSDP every forward pass is collective: all processes must run
    the same number of batches."""
    mine = list(range(index, total, count))
    length = -(-total // count)
    return mine, mine + [mine[-1] if mine else 0] * (length - len(mine))
