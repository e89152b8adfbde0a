"""A small MMU-Synth and a briefly trained tiny model: what the end-to-end tests run on.
Every test session trains these once (the cache lives under the session's MMU_BENCH_HOME)."""

SMALL = [
    "--benchmark-arg", "num_entities=20", "--benchmark-arg", "train_views=3",
    "--benchmark-arg", "general_train_images=40", "--benchmark-arg", "general_eval_images=8",
    "--benchmark-arg", "general_eval_sums=8",
    "--model-arg", "base_steps=60", "--model-arg", "base_people=4", "--model-arg", "finetune_steps=300",
    "--min-vanilla-mc", "0.5", "--quiet",
    "--trajectory", "0",  # tests that want one ask for it (after these options)
]
