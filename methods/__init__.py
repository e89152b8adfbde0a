"""The built-in unlearning methods. Each is a plugin written only against the public contract
(``mmu_bench.method``), installed as ``mmu_bench.baselines`` and registered under the
``mmu_bench.methods`` entry-point group exactly as a third-party plugin would be."""
