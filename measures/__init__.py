"""The built-in measures. Each is a plugin written only against the public contract
(``mmu_bench.measure``), installed as ``mmu_bench.measures`` and registered under the
``mmu_bench.measures`` entry-point group exactly as a third-party measure would be."""
