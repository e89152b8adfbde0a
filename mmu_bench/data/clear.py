"""CLEAR (Hugging Face ``therem/CLEAR``) as a canonical Benchmark.

``source`` is a hub name or a local folder with one sub-folder per config, named as on the hub
(``forget05``, ``retain95+tofu``, ``real_faces``, ...), each holding parquet files or a
``save_to_disk`` folder: the same layout as for MLLMU-Bench (see ``mllmu.py``).

Configs read for forget ratio r (1, 5 or 10): ``forget<r:02>``, ``retain<100-r>``, their
``+tofu`` variants, ``real_faces``, ``real_world`` and (``perturbed=True``, the default) every
``forget<r:02>_perturbed`` and ``retain_perturbed`` (all of them, so that an item's answers
do not depend on the ratio).

Mapping, source -> split / modality / format / view of the canonical rows:

- ``forget<r>`` rows -> forget, ``retain<100-r>`` rows -> retain; of each (image, caption, name):
    a caption question -> caption                          image / generation / train
      (one of CLEAR's nine caption questions, drawn per item from the seed, as CLEAR's and
      MMUnlearner's code draw them; the row's ``paraphrased_caption`` and
      ``perturbed_captions`` from the perturbed configs, where it has them, are the
      item's paraphrased and perturbed answers, which the truth ratio scores)
    "What is the name of the person in the image?" -> name  image / generation / train
    "The name of the person in the image is __." -> name    image / cloze / train
    the name question with options: the name and the row's ``perturbed_names`` (at most
    three), or, for a row the perturbed configs do not cover, three other persons' names
    drawn per item from the seed; the answer letter balanced per person
                                                            image / multiple_choice / train
  A perturbed config's row belongs to the image row with the same ``name`` and ``caption``.
- ``+tofu`` rows with a ``question`` (TOFU QA, no image) -> forget | retain / text / generation / ""
- ``real_faces`` (image, answer: a name, options) and ``real_world`` (image, question, answer,
  options) -> general / image / multiple_choice / "" (the question of real_faces: the name one)
- training rows (``Benchmark.train``): the captions (image / generation / train, a caption
  question drawn per item) and the TOFU QA (text / generation).

Entities are persons, identified by their ``name``. Every image of a person is a training
image in CLEAR, so there is no held-out view (``visual_forgetting_heldout`` selects nothing).
The TOFU QA are free-form answers: there is no honest multiple-choice or cloze form of them,
so the text cells of those formats are empty; the name cloze above is derived from the name,
which is the fact being asked.

Facts confirmed from the dataset card and CLEAR's public code: ``+tofu`` configs hold the
image rows (image, caption) and the TOFU rows (question, answer, no image) but no ``name``, so
captions and names are read from the configs without ``+tofu``; in ``real_faces`` and
``real_world`` ``options`` lists the *wrong* answers only (CLEAR scores them as perturbed
answers; the answer is inserted among them), ``real_world`` now has a single ``train`` split
(formerly ``test``).

Assumptions (not checked against the full real data): a ``+tofu`` row is a TOFU QA exactly
when its ``question`` is set; it belongs to the person whose full name appears in its question
or answer, and rows naming nobody (or several) take the person named most often in their block
of 20 rows (TOFU lists 20 QA per author, in order); rows still unmatched keep an empty entity
id (counted in ``info['unmatched_tofu_rows']``), their split still comes from their config.
``options`` holds at least one wrong answer; beyond three, the first three are used (at most
four options per item). ``real_world``'s ``prompt`` is not used.

Item ids do not depend on the forget ratio, and neither does ``fingerprint`` (a digest of the
canonical rows, see ``source.write_cached``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from collections import Counter

import numpy as np

from mmu_bench.api import LETTERS, Benchmark, BenchmarkAdapter, SchemaError
from mmu_bench.data import source as shared
from mmu_bench.data.source import (
    cache_key,
    canonical,
    check_options,
    check_ratio,
    get,
    get_image,
    read_config,
    source_id,
    write_cached,
)

BENCH = "CLEAR"
NAME = "clear"
FORGET_RATIOS = (1, 5, 10)
OPTIONS = ("source", "seed", "perturbed", "revision", "cache_dir")
# The caption questions of CLEAR's code (mm/dataset.py, IMAGE_CAPTION_QUESTIONS; MMUnlearner's
# CLEAR_process.py has the same nine): each caption item asks one, drawn from the seed.
CAPTION_QUESTIONS = (
    "What can you see in this picture?",
    "Tell me about the content of this image",
    "Can you give a description of the image?",
    "What is depicted in the image?",
    "Explain what you observe in the picture.",
    "Describe the image in detail.",
    "What is the main subject of this image?",
    "Can you describe the scene or objects in the image?",
    "What is happening in this image?",
)
NAME_QUESTION = "What is the name of the person in the image?"
NAME_CLOZE = "The name of the person in the image is __."
TOFU_BLOCK = 20


class CLEAR(BenchmarkAdapter):
    """``clear``: CLEAR (see the module docstring)."""

    name = NAME
    description = "CLEAR (Dontsov et al. 2024): fictitious authors, their faces and TOFU texts; hub or local folder"
    forget_ratios = FORGET_RATIOS
    protocol = "clear"
    hparams = "clear"

    def check(self, forget_ratio: float, **options) -> None:
        validate(forget_ratio, **options)

    def load(self, forget_ratio: float = 5, **options) -> Benchmark:
        return load(forget_ratio, **options)


def validate(forget_ratio=5, **options) -> int:
    """What ``load`` checks before reading anything (the options it knows, the forget ratio);
    returns the forget ratio."""
    check_options({k: v for k, v in options.items() if k not in OPTIONS}, BENCH, OPTIONS)
    return check_ratio(forget_ratio, FORGET_RATIOS, BENCH)


def load(forget_ratio=5, source: str = "therem/CLEAR", seed: int = 0, perturbed: bool = True,
         revision: str | None = None, cache_dir: str | None = None, **options):
    """CLEAR as a canonical Benchmark (see the module docstring)."""
    ratio = validate(forget_ratio, **options)
    names = {"forget": f"forget{ratio:02d}", "retain": f"retain{100 - ratio}"}
    names.update({f"{role}_text": f"{names[role]}+tofu" for role in ("forget", "retain")})
    names.update(real_faces="real_faces", real_world="real_world")
    if perturbed:  # all of them, whatever the ratio: an item is the same in every split
        names.update({f"perturbed{r}": f"forget{r:02d}_perturbed" for r in FORGET_RATIOS},
                     retain_perturbed="retain_perturbed")
    data = {role: read_config(source, config, BENCH, revision, cache_dir) for role, config in names.items()}
    extras = _perturbations(data, names) if perturbed else {}

    persons = {role: _persons(data[role], names[role]) for role in ("forget", "retain")}
    both = set(persons["forget"]) & set(persons["retain"])
    if both:
        raise SchemaError(f"{BENCH}: person(s) {sorted(both)} are in both {names['forget']} and {names['retain']}")
    tofu = {role: _tofu(data[f"{role}_text"], names[f"{role}_text"], persons[role]) for role in ("forget", "retain")}
    unmatched = sum(1 for role in tofu for _, row in tofu[role] if not row["entity_id"])

    key = cache_key(BENCH, source, revision, {names[r]: d for r, d in data.items()},
                    (__file__, shared.__file__), seed=seed, perturbed=perturbed)
    pool = sorted(set(persons["forget"]) | set(persons["retain"]))
    parts, fingerprint, path = write_cached(NAME, key, {
        "train": lambda: _train_rows(data, names, tofu, seed),
        "eval": lambda: _eval_rows(data, names, tofu, pool, seed, extras),
    })
    return Benchmark(
        name=NAME, forget_ratio=ratio, train=parts["train"], eval=parts["eval"],
        forget_entities=tuple(sorted(persons["forget"])), retain_entities=tuple(sorted(persons["retain"])),
        fingerprint=fingerprint,
        info={"source": source_id(source), "revision": revision, "configs": names, "seed": seed,
              "perturbed": perturbed, "perturbed_rows": len(extras),
              "unmatched_tofu_rows": unmatched, "sizes": {part: len(d) for part, d in parts.items()},
              "path": str(path), "holdout": HOLDOUT,
              "paraphrases": PARAPHRASES},
    )


# Membership inference needs people no model was trained on; CLEAR has none.
HOLDOUT = ("none: all 200 persons are in the fine-tuning data (full / full+tofu), and the real_faces / real_world "
           "items are known from pretraining; membership-inference measures are absent")

PARAPHRASES = ("none: CLEAR's paraphrased_caption rewords an answer, not a question (the truth ratio scores it); the "
               "prompt attack uses its other templates")


def _where(config: str, index: int) -> str:
    return f"{BENCH} config {config}, row {index}"


def _persons(data, config: str) -> list[str]:
    """Names of the persons of an image config, in order of first appearance."""
    if "name" not in data.column_names:
        raise SchemaError(f"{BENCH} config {config}: field 'name' is missing (needed to identify persons)")
    found = {}
    for i, name in enumerate(data.select_columns(["name"]).to_dict()["name"]):
        found.setdefault(get({"name": name}, _where(config, i), "name").strip(), None)
    if not found:
        raise SchemaError(f"{BENCH} config {config}: no rows")
    return list(found)


def _normal(text: str) -> str:
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " " + " ".join(re.findall(r"[a-z0-9]+", text.casefold())) + " "


def _perturbations(data, names) -> dict[tuple[str, str], dict]:
    """(name, caption) -> the row's ``paraphrased_caption``, ``perturbed_captions`` and
    ``perturbed_names``, from the ``*_perturbed`` configs (image rows of each forget split and of
    a retain subset, with those three columns added)."""
    out = {}
    for role in (*(f"perturbed{r}" for r in FORGET_RATIOS), "retain_perturbed"):
        config = names[role]
        missing = [c for c in PERTURBED_COLUMNS if c not in data[role].column_names]
        if missing:
            raise SchemaError(f"{BENCH} config {config}: field {missing[0]!r} is missing")
        for i, row in enumerate(data[role].select_columns(list(PERTURBED_COLUMNS)).to_list()):
            where = _where(config, i)
            key = (get(row, where, "name").strip(), get(row, where, "caption"))
            out.setdefault(key, {
                "paraphrased": get(row, where, "paraphrased_caption"),
                "captions": [get(row, where, "perturbed_captions", j)
                             for j in range(len(get(row, where, "perturbed_captions", kind=list)))],
                "names": [get(row, where, "perturbed_names", j).strip()
                          for j in range(len(get(row, where, "perturbed_names", kind=list)))],
            })
    return out


PERTURBED_COLUMNS = ("name", "caption", "paraphrased_caption", "perturbed_captions", "perturbed_names")


def _rng(seed: int, salt: str) -> np.random.Generator:
    """A generator for one item or person: its draws do not depend on what else is drawn."""
    return np.random.default_rng([seed, zlib.crc32(salt.encode())])


def _caption_question(seed: int, item: str) -> str:
    return CAPTION_QUESTIONS[int(_rng(seed, item).integers(len(CAPTION_QUESTIONS)))]


def _tofu(data, config: str, persons: list[str]) -> list[tuple[str, dict]]:
    """The TOFU QA of a +tofu config (rows with a question), each given to its person."""
    for column in ("question", "answer"):
        if column not in data.column_names:
            raise SchemaError(f"{BENCH} config {config}: field {column!r} is missing")
    split = "forget" if config.startswith("forget") else "retain"
    keys = [(p, _normal(p)) for p in persons]
    columns = data.select_columns(["question", "answer"]).to_dict()
    rows = []  # (where, question, answer, person or "")
    for i, (question, answer) in enumerate(zip(columns["question"], columns["answer"])):
        if question is None:
            continue  # an image row: its caption is read from the config without +tofu
        where = _where(config, i)
        record = {"question": question, "answer": answer}
        question, answer = get(record, where, "question"), get(record, where, "answer")
        text = _normal(f"{question} {answer}")
        named = [p for p, k in keys if k in text]
        rows.append((where, question, answer, named[0] if len(named) == 1 else ""))
    for start in range(0, len(rows), TOFU_BLOCK):
        block = rows[start: start + TOFU_BLOCK]
        votes = Counter(p for *_, p in block if p).most_common(2)
        if votes and (len(votes) == 1 or votes[0][1] > votes[1][1]):
            rows[start: start + TOFU_BLOCK] = [(w, q, a, p or votes[0][0]) for w, q, a, p in block]
    out, count = [], Counter()
    for where, question, answer, person in rows:
        # Ids that do not depend on the config, so an item keeps its id whatever the ratio.
        group = person or "tofu/unmatched/" + hashlib.sha1(f"{question}\n{answer}".encode()).hexdigest()[:12]
        item = f"{group}/tofu/{count[group]}"
        count[group] += 1
        out.append((where, canonical(item, person, split, "text", "generation", "", question, answer, fact="tofu")))
    return out


def _train_rows(data, names, tofu, seed):
    for role in ("forget", "retain"):
        count = Counter()
        for i, row in enumerate(data[role]):
            where = _where(names[role], i)
            person = get(row, where, "name").strip()
            item = f"{person}/train/img{count[person]}"
            yield where, canonical(item, person, role, "image", "generation", "train", _caption_question(seed, item),
                                   get(row, where, "caption"), get_image(row, where, "image"), fact="caption")
            count[person] += 1
        for where, row in tofu[role]:
            yield where, {**row, "item_id": f"train/{row['item_id']}"}


class _Positions:
    """Where the correct option goes: each of the four letters once per four items."""

    def __init__(self, seed: int, salt: str):
        self.rng = _rng(seed, salt)
        self.block: list[int] = []

    def next(self, n: int) -> int:
        if n != len(LETTERS):
            return int(self.rng.integers(n))
        if not self.block:
            self.block = [int(i) for i in self.rng.permutation(n)]
        return self.block.pop()


def _with_answer(answer: str, wrong: list[str], position: int) -> list[str]:
    return wrong[:position] + [answer] + wrong[position:]


def _eval_rows(data, names, tofu, pool, seed, extras):
    for role in ("forget", "retain"):
        positions, count = {}, Counter()
        for i, row in enumerate(data[role]):
            where = _where(names[role], i)
            person = get(row, where, "name").strip()
            image = get_image(row, where, "image")
            base = f"{person}/img{count[person]}"
            count[person] += 1
            common = dict(entity_id=person, split=role, modality="image", view="train", image=image)
            caption = get(row, where, "caption")
            extra = extras.get((person, caption))
            truth = dict(paraphrased_answer=extra["paraphrased"], perturbed_answers=extra["captions"]) \
                if extra and extra["captions"] else {}
            yield where, canonical(f"{base}/caption", fmt="generation", question=_caption_question(seed, base),
                                   answer=caption, fact="caption", **truth, **common)
            yield where, canonical(f"{base}/name", fmt="generation", question=NAME_QUESTION, answer=person,
                                   fact="name", **common)
            yield where, canonical(f"{base}/name-cloze", fmt="cloze", question=NAME_CLOZE, answer=person,
                                   fact="name", **common)
            others = [p for p in pool if p != person]
            # The row's perturbed names where CLEAR gives them, else distractors drawn per item;
            # letters balanced per person: an item keeps its options whatever the forget ratio.
            given = list(dict.fromkeys(n for n in (extra or {}).get("names", []) if n != person))[:3]
            if given or others:
                rng = _rng(seed, base)
                wrong = given or [others[j] for j in rng.choice(len(others), size=min(3, len(others)), replace=False)]
                at = positions.setdefault(person, _Positions(seed, person)).next(len(wrong) + 1)
                yield where, canonical(f"{base}/name-mc", fmt="multiple_choice", question=NAME_QUESTION,
                                       answer=LETTERS[at], options=_with_answer(person, wrong, at), fact="name",
                                       **common)
        yield from tofu[role]
    positions = _Positions(seed, "general")
    for role in ("real_faces", "real_world"):
        for i, row in enumerate(data[role]):
            where = _where(names[role], i)
            answer = get(row, where, "answer").strip()
            given = get(row, where, "options", kind=list)
            wrong = [o for o in (get(row, where, "options", j).strip() for j in range(len(given))) if o != answer][:3]
            if not wrong:
                raise SchemaError(f"{where}: field 'options' has no wrong answer besides {answer!r}")
            question = NAME_QUESTION if role == "real_faces" else get(row, where, "question")
            at = positions.next(len(wrong) + 1)
            yield where, canonical(f"{role}/{i}", "", "general", "image", "multiple_choice", "", question,
                                   LETTERS[at], get_image(row, where, "image"), _with_answer(answer, wrong, at),
                                   fact=role)
