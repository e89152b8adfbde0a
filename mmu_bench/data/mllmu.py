"""MLLMU-Bench (Hugging Face ``MLLMMU/MLLMU-Bench``) as a canonical Benchmark.

``source`` is a hub name, or a local folder with one sub-folder per config, named as on the
hub (``forget_5``, ``retain_95``, ``Test_Set``, ``Retain_Set``, ``ft_Data``, ...). A sub-folder
holds either the config's parquet files (any depth: a ``git clone`` or ``huggingface-cli
download`` of the dataset repo is such a folder) or a ``Dataset.save_to_disk`` /
``DatasetDict.save_to_disk`` folder (a DatasetDict gives its ``train`` split, or its only one).

Configs read for forget ratio r: ``forget_r``, ``retain_(100-r)``, ``Test_Set``, ``Retain_Set``
and ``train_config`` (``ft_Data`` by default, or ``Full_Set``).

Mapping, source -> split / modality / format / view of the canonical rows:

- ``forget_r`` rows -> forget, ``retain_(100-r)`` rows -> retain; of each row (its ``image``):
    Classification_Task.Image_Textual_Questions  -> image / multiple_choice / train
    Classification_Task.Pure_Text_Questions      -> text  / multiple_choice / ""
    Generation_Task, Type Image_Textual | Pure_Text  -> image | text / generation / train | ""
    Mask_Task, Type Image_Textual | Pure_Text        -> image | text / cloze / train | ""
- ``Test_Set`` rows of forget (retain) IDs -> forget (retain); the same three formats, view
  heldout, Image_Textual and Pure_Text questions alike (MLLMU-Bench's eval scores both). An
  image question is asked on one image of the row, drawn from ``seed`` (``test_images=row``,
  the reference's choice; it draws unseeded), or, with ``test_images=question``, question k on
  ``images[k % len(images)]``.
- ``Retain_Set`` (real celebrities) -> general, every question as above (image view "").
- training rows (``Benchmark.train``), all generation: the ``train_config`` pairs (``metadata``
  JSON list, or ``question`` / ``answer``) and the ``question`` / ``answer`` of the forget and
  retain configs -> image / view train (exact duplicates dropped); the same pairs with "this
  person" / "the individual" replaced by the ``biography`` name -> text (``derive_text``).

Multiple choice: ``Options`` {A..D} become a list in letter order, the answer stays the letter.
Cloze keeps the blank written ``__`` (the harness shows it as [Blank]). Celebrities keep their
``ID`` as entity_id. Item ids are ``<ID>/<profile|test|celebrity>/<kind>/<index in the source
list>`` for scored items and ``<ID>/train...`` for training rows: the same question has the same
id whatever the forget ratio.

Assumptions not checked against the full real data (only against the dataset card and public
code): Test_Set rows carry ``ID``, ``images`` and the three task fields;
Retain_Set rows carry ``image``, ``ID`` and the three task fields; ``biography`` is JSON with a
``Name`` key (rows without one get no derived text rows). The vanilla model of MLLMU-Bench is
fine-tuned on image QA only; the derived text rows exist so that text-only preservation sets
(MMUnlearner's language mask) are not empty without training on scored questions.

The canonical rows are written once to Arrow files under ``$MMU_BENCH_HOME/data/mllmu/<key>``
(the key digests the source, its configs' dataset fingerprints, the options and this code;
images keep the source's bytes, neither decoded nor re-encoded) and memory-mapped.
``Benchmark.fingerprint`` digests the canonical rows but their split: it is the same for every
forget ratio of the same data (the forget ratio is in ``Benchmark.key()``).
"""

from __future__ import annotations

import json
import random
import re

import datasets

from mmu_bench.api import LETTERS, Benchmark, BenchmarkAdapter, SchemaError
from mmu_bench.data.source import __file__ as source_module
from mmu_bench.data.source import (
    cache_key,
    canonical,
    check_options,
    check_ratio,
    field_name,
    get,
    get_image,
    read_config,
    source_id,
    write_cached,
)

BENCH = "MLLMU-Bench"
NAME = "mllmu"
FORGET_RATIOS = (5, 10, 15)
TRAIN_CONFIGS = ("ft_Data", "Full_Set")
OPTIONS = ("source", "train_config", "derive_text", "test_images", "seed", "revision", "cache_dir")
TYPES = {"Image_Textual": "image", "Pure_Text": "text"}
# Which Test_Set image a question is asked on: "row", one image per row for all its questions
# (drawn from the seed), as MLLMU-Bench's eval does (it draws unseeded); "question", image k of
# the row for its question k (cycling), so that every image is asked about.
TEST_IMAGES = ("row", "question")
PERSON = re.compile(r"\b(this|the) (person|individual)\b", re.IGNORECASE)

class MLLMUBench(BenchmarkAdapter):
    """``mllmu``: MLLMU-Bench (see the module docstring)."""

    name = NAME
    description = "MLLMU-Bench (Liu et al. 2024): fictitious profiles and real celebrities; hub or local folder"
    forget_ratios = FORGET_RATIOS
    protocol = "mllmu"
    hparams = "mllmu"

    def check(self, forget_ratio: float, **options) -> None:
        validate(forget_ratio, **options)

    def load(self, forget_ratio: float = 5, **options) -> Benchmark:
        return load(forget_ratio, **options)


def validate(forget_ratio=5, train_config: str = "ft_Data", test_images: str = "row", **options) -> int:
    """What ``load`` checks before reading anything: the options it knows, the forget ratio and the
    options' values; returns the forget ratio."""
    check_options({k: v for k, v in options.items() if k not in OPTIONS}, BENCH, OPTIONS)
    ratio = check_ratio(forget_ratio, FORGET_RATIOS, BENCH)
    if train_config not in TRAIN_CONFIGS:
        raise ValueError(f"{BENCH}: train_config must be one of {TRAIN_CONFIGS}, got {train_config!r}")
    if test_images not in TEST_IMAGES:
        raise ValueError(f"{BENCH}: test_images must be one of {TEST_IMAGES}, got {test_images!r}")
    return ratio


def load(forget_ratio=5, source: str = "MLLMMU/MLLMU-Bench", train_config: str = "ft_Data",
         derive_text: bool = True, test_images: str = "row", seed: int = 0, revision: str | None = None,
         cache_dir: str | None = None, **options):
    """MLLMU-Bench as a canonical Benchmark (see the module docstring)."""
    ratio = validate(forget_ratio, train_config=train_config, test_images=test_images, **options)
    names = {"forget": f"forget_{ratio}", "retain": f"retain_{100 - ratio}", "test": "Test_Set",
             "general": "Retain_Set", "train": train_config}
    data = {role: read_config(source, config, BENCH, revision, cache_dir) for role, config in names.items()}
    split_of = {eid: "forget" for eid in _ids(data["forget"], names["forget"])}
    for eid in _ids(data["retain"], names["retain"]):
        if eid in split_of:
            raise SchemaError(f"{BENCH}: ID {eid!r} is in both {names['forget']} and {names['retain']}")
        split_of[eid] = "retain"
    people = _names(data, names) if derive_text else {}

    key = cache_key(BENCH, source, revision, {names[r]: d for r, d in data.items()}, (__file__, source_module),
                    derive_text=derive_text, test_images=test_images, seed=seed)
    parts, fingerprint, path = write_cached(NAME, key, {
        "train": lambda: _train_rows(data, names, split_of, people),
        "eval": lambda: _eval_rows(data, names, split_of, test_images, seed),
    })
    forget = sorted(e for e, s in split_of.items() if s == "forget")
    return Benchmark(
        name=NAME, forget_ratio=ratio, train=parts["train"], eval=parts["eval"],
        forget_entities=tuple(forget), retain_entities=tuple(sorted(set(split_of) - set(forget))),
        fingerprint=fingerprint,
        info={"source": source_id(source), "revision": revision, "configs": names, "derive_text": derive_text,
              "train_config": train_config, "test_images": test_images, "seed": seed,
              "sizes": {part: len(d) for part, d in parts.items()}, "path": str(path), "holdout": HOLDOUT,
              "paraphrases": PARAPHRASES},
    )


# Membership inference needs people no model was trained on; MLLMU-Bench has none.
HOLDOUT = ("none: every fictitious profile is in the fine-tuning data (ft_Data), and the real celebrities of "
           "Retain_Set are known from pretraining; membership-inference measures are absent")

PARAPHRASES = "none: MLLMU-Bench ships no paraphrased questions; the prompt attack uses its other templates"


def _where(config: str, index: int) -> str:
    return f"{BENCH} config {config}, row {index}"


def _ids(data: datasets.Dataset, config: str) -> list[str]:
    if "ID" not in data.column_names or not len(data):
        raise SchemaError(f"{BENCH} config {config}: field 'ID' is missing (or the config has no rows)")
    ids, seen = [], set()
    for i, eid in enumerate(data.select_columns(["ID"]).to_dict()["ID"]):
        eid = _id({"ID": eid}, _where(config, i))
        if eid in seen:
            raise SchemaError(f"{_where(config, i)}: field 'ID' {eid!r} appears twice")
        seen.add(eid)
        ids.append(eid)
    return ids


def _id(row: dict, where: str) -> str:
    value = row.get("ID")
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else get(row, where, "ID")


def _names(data: dict, names: dict) -> dict[str, str]:
    """Entity id -> name, from the JSON ``biography`` of the forget and retain configs."""
    people = {}
    for role in ("forget", "retain"):
        if "biography" not in data[role].column_names:
            continue
        rows = data[role].select_columns(["ID", "biography"]).to_dict()
        for eid, bio in zip(rows["ID"], rows["biography"]):
            try:
                name = json.loads(bio).get("Name") if isinstance(bio, str) else None
            except (json.JSONDecodeError, AttributeError):
                name = None
            if isinstance(name, str) and name.strip():
                people[str(eid)] = name.strip()
    return people


def _qa_pairs(row: dict, where: str) -> list[tuple[str, str]]:
    """Training pairs of one row: the ``metadata`` JSON list and/or ``question`` + ``answer``."""
    pairs = []
    if row.get("metadata") is not None:
        try:
            items = json.loads(get(row, where, "metadata"))
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{where}: field 'metadata' is not valid JSON ({exc})") from exc
        holder = {"metadata": get({"metadata": items}, where, "metadata", kind=list)}
        pairs += [(get(holder, where, "metadata", k, "Question"), get(holder, where, "metadata", k, "Answer"))
                  for k in range(len(items))]
    if row.get("question") is not None or row.get("answer") is not None:
        pairs.append((get(row, where, "question"), get(row, where, "answer")))
    return pairs


def _train_rows(data: dict, names: dict, split_of: dict, people: dict):
    seen = set()
    for role in ("train", "forget", "retain"):
        config, tag = names[role], names[role] if role == "train" else "profile"
        for i, row in enumerate(data[role]):
            where = _where(config, i)
            eid = _id(row, where)
            if eid not in split_of:
                raise SchemaError(f"{where}: field 'ID' {eid!r} is in neither {names['forget']} nor {names['retain']}")
            pairs = [p for p in _qa_pairs(row, where) if (eid, *p) not in seen]
            image = get_image(row, where, "image") if pairs else None
            for k, (question, answer) in enumerate(pairs):
                seen.add((eid, question, answer))
                split = split_of[eid]
                yield where, canonical(f"{eid}/train/{tag}/{k}", eid, split, "image", "generation", "train",
                                       question, answer, image)
                if eid in people and PERSON.search(question):
                    text_q, text_a = (PERSON.sub(people[eid], s) for s in (question, answer))
                    yield where, canonical(f"{eid}/train-text/{tag}/{k}", eid, split, "text", "generation", "",
                                           text_q, text_a)


def _eval_rows(data: dict, names: dict, split_of: dict, test_images: str, seed: int):
    for role in ("forget", "retain"):
        for i, row in enumerate(data[role]):
            where = _where(names[role], i)
            image = get_image(row, where, "image")
            yield from _questions(row, where, _id(row, where), role, "train", "profile", lambda k, image=image: image)
    for i, row in enumerate(data["test"]):
        where = _where(names["test"], i)
        eid = _id(row, where)
        if eid not in split_of:
            continue  # a profile of neither split
        images = [get_image(row, where, "images", j) for j in range(len(get(row, where, "images", kind=list)))]
        if not images:
            raise SchemaError(f"{where}: field 'images' is empty")
        if test_images == "row":
            chosen = images[random.Random(f"{seed}/{eid}").randrange(len(images))]
            image_of = lambda k, chosen=chosen: chosen  # noqa: E731
        else:
            image_of = lambda k, images=images: images[k % len(images)]  # noqa: E731
        yield from _questions(row, where, eid, split_of[eid], "heldout", "test", image_of)
    for i, row in enumerate(data["general"]):
        where = _where(names["general"], i)
        image = get_image(row, where, "image")
        yield from _questions(row, where, _id(row, where), "general", "", "celebrity",
                              lambda k, image=image: image)


def _questions(row, where, eid, split, view, tag, image_of):
    """The scored items of one profile row: its three task fields."""
    for key, modality in (("Image_Textual_Questions", "image"), ("Pure_Text_Questions", "text")):
        for k in range(len(get(row, where, "Classification_Task", key, kind=list))):
            path = ("Classification_Task", key, k)
            options = _options(row, where, path)
            answer = get(row, where, *path, "Correct_Answer").strip()
            if answer not in LETTERS[: len(options)]:
                raise SchemaError(f"{where}: field {field_name((*path, 'Correct_Answer'))} is {answer!r}; "
                                  f"expected one of {', '.join(LETTERS[: len(options)])}")
            yield where, canonical(f"{eid}/{tag}/mc-{modality}/{k}", eid, split, modality, "multiple_choice", view,
                                   get(row, where, *path, "Question"), answer, image_of(k), options)
    for task, fmt, kind in (("Generation_Task", "generation", "gen"), ("Mask_Task", "cloze", "cloze")):
        for k in range(len(get(row, where, task, kind=list))):
            type_ = get(row, where, task, k, "Type")
            if type_ not in TYPES:
                raise SchemaError(f"{where}: field {field_name((task, k, 'Type'))} is {type_!r}; "
                                  f"expected one of {sorted(TYPES)}")
            modality = TYPES[type_]
            question = get(row, where, task, k, "Question")
            if fmt == "cloze" and "__" not in question:
                raise SchemaError(f"{where}: field {field_name((task, k, 'Question'))} has no blank '__'")
            image = image_of(k) if modality == "image" else None
            yield where, canonical(f"{eid}/{tag}/{kind}/{k}", eid, split, modality, fmt, view, question,
                                   get(row, where, task, k, "Ground_Truth"), image)


def _options(row, where, path) -> list[str]:
    """Options {A..D} as a list in letter order (a prefix of A-D; at least two)."""
    given = get(row, where, *path, "Options", kind=dict)
    present = [letter for letter in LETTERS if given.get(letter) is not None]
    if present != list(LETTERS[: len(present)]) or len(present) < 2:
        raise SchemaError(f"{where}: field {field_name((*path, 'Options'))} has options {present}; "
                          f"expected A, B and optionally C, D in order")
    return [get(row, where, *path, "Options", letter) for letter in present]
