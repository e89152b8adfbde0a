"""Task files written by tests: a ``_base.yaml`` with every format and a one-word prompt each,
which the tests' own task files include."""

from pathlib import Path


def write_base(folder: Path, measures: list[str], score: list[str] = ()) -> None:
    """``folder/_base.yaml``: every format, prompts that are the question itself, these measures."""
    (folder / "_base.yaml").write_text(
        "prompt_version: 1\n"
        'prompts: {multiple_choice: "{question}", option: "{letter}", cloze: "{question}", generation: "{question}",\n'
        '          option_loglik: "{question}"}\n'
        "formats: [multiple_choice, cloze, generation]\n"
        f"measures: [{', '.join(measures)}]\n"
        f"score: [{', '.join(score)}]\n"
    )
