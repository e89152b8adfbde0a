"""A small MMU-Synth and a briefly trained tiny model: what the end-to-end tests run on.
A test session makes them once (``conftest.small_made``), from the committed ``SMALL_FIXTURE``
when it is the current recipe's (``scripts/train_small_references.py`` remakes it)."""

from pathlib import Path

SMALL_FIXTURE = Path(__file__).parent / "fixtures" / "small-home"

SMALL = [
    "--benchmark-arg", "num_entities=20", "--benchmark-arg", "train_views=3",
    "--benchmark-arg", "general_train_images=40", "--benchmark-arg", "general_eval_images=8",
    "--benchmark-arg", "general_eval_sums=8",
    "--model-arg", "base_steps=60", "--model-arg", "base_people=4", "--model-arg", "finetune_steps=300",
    "--min-vanilla-mc", "0.5", "--quiet",
    "--trajectory", "0",  # tests that want one ask for it (after these options)
]

# The meta-evaluation's pools on the small benchmark (tests/harness/test_meta_eval.py): seed-1
# models on a cheaper recipe. Their weights are committed with the small references (their bases
# are not: nothing is trained from them).
SMALL_POOLS = ["--seeds", "1", "--budget", "none", "--pool-arg", "finetune_steps=150"]
