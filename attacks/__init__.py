"""The built-in attacks. Each is a plugin written only against the public contract
(``mmu_bench.attack``), installed as ``mmu_bench.attacks`` and registered under the
``mmu_bench.attacks`` entry-point group exactly as a third-party attack would be."""
