"""Evaluation protocols (see mmu_bench.protocol): data, installed as mmu_bench._protocols."""
