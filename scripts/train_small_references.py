"""Train the small benchmark's reference models (``tests/small.py``: the models most end-to-end
tests run on) and write them, with their records, into ``tests/fixtures/small-home/``, so that
a test session copies them instead of training them (about 5 minutes of CPU).

    python scripts/train_small_references.py

It also trains the meta-evaluation's small pools (``small.SMALL_POOLS``) and keeps their
weights. Rerun it when the recipe, the generator, the prompts or the tasks change: the folders are
named by their recipe's hash, so stale ones are not used (the session trains the models
itself) and ``tests/models/test_small_fixture.py`` says so.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "small-home"
KEPT = ("models", "references")  # the data are generated again in seconds


def main() -> int:
    made = Path(tempfile.mkdtemp(prefix="mmu-small-"))
    os.environ["MMU_BENCH_HOME"] = str(made)
    sys.path.insert(0, str(ROOT / "tests"))
    from mmu_bench.cli import main as cli
    from small import SMALL, SMALL_POOLS

    if cli(["prepare", *SMALL]) != 0:
        return 1
    shutil.rmtree(FIXTURE, ignore_errors=True)
    for part in KEPT:
        shutil.copytree(made / part, FIXTURE / part)
    # The meta-evaluation's pool models (tests/harness/test_meta_eval.py): their weights are kept,
    # not their records nor the bases they were trained from.
    models = made / "models" / "tiny-llava"
    before = {p.name for p in models.iterdir()}
    meta = [a for a in SMALL if a not in ("--trajectory", "0")]
    if cli(["meta-eval", *meta, *SMALL_POOLS, "--methods", "none", "--output", str(made / "unused"), "--no-plot"]) != 0:
        return 1
    for model in models.iterdir():
        if model.name not in before and not model.name.startswith("base-"):
            shutil.copytree(model, FIXTURE / "models" / "tiny-llava" / model.name)
    size = sum(f.stat().st_size for f in FIXTURE.rglob("*") if f.is_file())
    print(f"wrote {FIXTURE.relative_to(ROOT)}: {size / 2**20:.1f} MiB")
    shutil.rmtree(made, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
