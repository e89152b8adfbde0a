"""Turn a canonical row into the user's words for a given format (templates from tasks/_base.yaml)."""

from __future__ import annotations

from .data.schema import LETTERS


def user_text(row: dict, prompts: dict, kind: str | None = None) -> str:
    """The text of the user turn. ``kind`` defaults to the row's format; ``option_loglik``
    asks the bare question (each option is then scored as the answer)."""
    kind = kind or row["format"]
    templates = prompts["prompts"]
    question = row["question"]
    if kind == "multiple_choice":
        lines = "\n".join(
            templates["option"].format(letter=letter, text=text) for letter, text in zip(LETTERS, row["options"])
        )
        return templates["multiple_choice"].format(question=question, options=lines)
    if kind == "cloze":
        return templates["cloze"].format(question=question.replace("__", prompts["blank"]))
    if kind in ("generation", "option_loglik"):
        return templates[kind].format(question=question)
    raise ValueError(f"unknown prompt kind {kind!r}")


def training_pairs(row: dict, prompts: dict) -> list[tuple[str, str]]:
    """(user text, answer) pairs a model is fine-tuned on for one canonical row. A
    multiple-choice row also teaches the bare question -> option text pair that option
    log-likelihood scoring asks about."""
    pairs = [(user_text(row, prompts), row["answer"])]
    if row["format"] == "multiple_choice":
        pairs.append((user_text(row, prompts, "option_loglik"), row["options"][LETTERS.index(row["answer"])]))
    return pairs
