"""Turn a canonical row into the user's words for a given format (templates from tasks/_base.yaml)."""

from __future__ import annotations

from pathlib import Path

from mmu_bench.api.schema import LETTERS


def user_text(row: dict, prompts: dict, kind: str | None = None) -> str:
    """The text of the user turn. ``kind`` defaults to the row's format; ``option_loglik``
    asks the bare question (each option is then scored as the answer). A protocol's
    demonstrations of the format and modality (``prompts['demonstrations']``) come first."""
    kind = kind or row["format"]
    return prompts.get("demonstrations", {}).get(f"{kind}/{row['modality']}", "") + _question(row, prompts, kind)


def _template(templates: dict, kind: str, modality: str) -> str:
    """A template of ``kind``; ``<kind>_<modality>`` where a protocol words one modality apart."""
    return templates.get(f"{kind}_{modality}", templates[kind])


def _options(row: dict, templates: dict) -> str:
    return "\n".join(templates["option"].format(letter=letter, text=text) for letter, text in zip(LETTERS, row["options"]))


def _question(row: dict, prompts: dict, kind: str) -> str:
    templates = prompts["prompts"]
    template = _template(templates, kind, row["modality"])
    question = row["question"]
    if kind == "multiple_choice":
        return template.format(question=question, options=_options(row, templates))
    if kind == "cloze":
        return template.format(question=question.replace("__", prompts["blank"]))
    if kind in ("generation", "option_loglik"):
        return template.format(question=question)
    raise ValueError(f"unknown prompt kind {kind!r}")


def demonstration(row: dict, prompts: dict) -> str:
    """One solved example, as a protocol's ``shot_<format>`` template shows it: ``{question}``
    (bare), ``{options}`` (multiple choice), ``{prompt}`` (the question as it would be asked)
    and ``{answer}`` (the letter for multiple choice)."""
    templates = prompts["prompts"]
    options = _options(row, templates) if row["format"] == "multiple_choice" else ""
    return templates[f"shot_{row['format']}"].format(question=row["question"], options=options, answer=row["answer"],
                                                     prompt=_question(row, prompts, row["format"]))


def training_pairs(row: dict, prompts: dict) -> list[tuple[str, str]]:
    """(user text, answer) pairs a model is fine-tuned on for one canonical row. A
    multiple-choice row also teaches the bare question -> option text pair that option
    log-likelihood scoring asks about."""
    pairs = [(user_text(row, prompts), row["answer"])]
    if row["format"] == "multiple_choice":
        pairs.append((user_text(row, prompts, "option_loglik"), row["options"][LETTERS.index(row["answer"])]))
    return pairs


def default_prompts(directory: Path | None = None) -> dict:
    """The shared prompt block (from ``_base.yaml``), used to fine-tune models in the same format."""
    from importlib import resources

    from mmu_bench.core.storage import read_yaml_mapping

    folder = directory or Path(str(resources.files("mmu_bench._tasks")))
    spec = read_yaml_mapping(folder / "_base.yaml", "task file")
    return {key: spec[key] for key in ("prompt_version", "prompts", "blank", "formats")}
