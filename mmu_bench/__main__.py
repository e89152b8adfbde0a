from mmu_bench.cli import entry

entry()
