"""mmu-bench: a benchmark and evaluation harness for multimodal machine unlearning.

``mmu_bench.api`` is what plugins (methods, measures, attacks, benchmark adapters, model
providers) import, and the only public module. The rest is the harness's own house, one room per
step of the data flow: ``spec`` (what a run is), ``harness`` (runs models), ``runs`` (the run
folder's files), ``reporting`` (tables, pages, plots), ``core`` (storage and other utilities),
``cli``; and the built-in plugins: ``data`` (benchmark adapters), ``models`` (model providers),
``methods``, ``measures``, ``attacks``.
"""

from mmu_bench import _legacy

__version__ = "0.1.0"

_legacy.install()
