"""The canonical schema every benchmark adapter maps its source to.

One row is one question about one entity (or a general question), in one modality and one
format. Training rows (the question-answer pairs models are fine-tuned or unlearned on) and
evaluation rows use the same columns.
"""

from __future__ import annotations

MODALITIES = ("image", "text")
FORMATS = ("multiple_choice", "cloze", "generation")
LETTERS = ("A", "B", "C", "D")


def __getattr__(name: str):
    # FEATURES is built on first use: reading a results file or listing plugins needs the
    # constants above, not the datasets library.
    if name != "FEATURES":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import datasets

    globals()["FEATURES"] = features = datasets.Features(
    {
        "item_id": datasets.Value("string"),
        "entity_id": datasets.Value("string"),  # "" for entity-free general questions (real celebrities keep theirs)
        "modality": datasets.Value("string"),
        "format": datasets.Value("string"),
        "view": datasets.Value("string"),  # "train" | "heldout" | "" (text rows; a held-out set's: "heldout")
        "fact": datasets.Value("string"),
        "image": datasets.Image(),
        "question": datasets.Value("string"),
        "options": datasets.Sequence(datasets.Value("string")),  # letters A.. by position
        "answer": datasets.Value("string"),  # a letter for multiple choice
    })
    return features



class SchemaError(ValueError):
    """A source row that does not fit the canonical schema."""


def validate_row(row: dict, where: str) -> None:
    """Raise SchemaError naming ``where`` (source, row) and the field at fault."""
    for field in ("item_id", "question", "answer", "modality", "format"):
        if not isinstance(row.get(field), str) or not row[field].strip():
            raise SchemaError(f"{where}: field {field!r} must be a non-empty string, got {row.get(field)!r}")
    if row["modality"] not in MODALITIES:
        raise SchemaError(f"{where}: field 'modality' is {row['modality']!r}; expected one of {MODALITIES}")
    if row["format"] not in FORMATS:
        raise SchemaError(f"{where}: field 'format' is {row['format']!r}; expected one of {FORMATS}")
    if row["modality"] == "image" and row.get("image") is None:
        raise SchemaError(f"{where}: field 'image' is missing on an image question")
    if row["format"] == "multiple_choice":
        options = row.get("options") or []
        if not 2 <= len(options) <= len(LETTERS):
            raise SchemaError(f"{where}: field 'options' needs 2 to {len(LETTERS)} options, got {len(options)}")
        if row["answer"] not in LETTERS[: len(options)]:
            raise SchemaError(
                f"{where}: field 'answer' is {row['answer']!r}; expected a letter in {LETTERS[: len(options)]}"
            )
