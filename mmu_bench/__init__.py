"""mmu-bench: a benchmark and evaluation harness for multimodal machine unlearning.

The public API for method authors is ``mmu_bench.method`` (the plugin contract) and the
helpers in ``mmu_bench.losses``; everything else is the harness's own business.
"""

__version__ = "0.1.0"
