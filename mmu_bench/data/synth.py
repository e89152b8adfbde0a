"""MMU-Synth: the embedded benchmark, generated deterministically from a seed.

Fictitious people, each with a name, four profile facts and a procedural visual identity
(see ``render.py``). From them:

- ``train``: the question-answer rows a vanilla model is fine-tuned on (every entity, image
  questions on training views and text-only questions, in all three formats; multiple-choice
  rows get fresh distractors and letter positions per view / variant so the letter itself
  carries no information);
- ``eval``: the scored items (image questions on a training view and on a held-out view,
  text-only questions, general-utility questions), with fixed distractors from the same fact
  category and balanced answer positions;
- ``general_train``: general skills (naming shapes and colours of images, small sums) that
  involve no entity;
- ``entities``: the profile table, with ``forget_rank``: the forget set of ratio r is the
  entities with ``forget_rank < n_forget(r)``, so the 5 % set lies inside the 10 % set;
- holdout people (``holdout_rank``, ids ``h0000``...): as many as the largest forget split, drawn
  by the same generator (other names, other looks) from a random stream of their own, so the
  rows of every other person are the same with or without them. They have scored items only
  (image questions on their first rendering, view "train", and text questions) and are never
  in any training set: membership inference compares the forget people with them. The holdout
  split of ratio r is the holdout people with ``holdout_rank < n_forget(r)`` (as many as the
  forget split, nested like it).

Stored as Hugging Face ``datasets`` in the canonical schema (``schema.FEATURES``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass

import datasets
import numpy as np

from mmu_bench.api import (
    LETTERS,
    Benchmark,
    BenchmarkAdapter,
    add_split_column,
    coerce,
    home,
    seal,
    staging_dir,
    typed_dataclass,
    usable,
)
from mmu_bench.api.schema import FEATURES
from mmu_bench.data.render import COLOURS, SHAPES, TEXTURES, Identity, render

GENERATOR_VERSION = "2"  # 2: holdout people
FORGET_RATIOS = (5, 10, 15)

FIRST_NAMES = (
    "alma", "bruno", "cora", "dario", "elsa", "felix", "greta", "hugo", "ines", "jonas",
    "kira", "lars", "mila", "nico", "olga", "pavel", "quinn", "rosa", "silas", "tara",
    "ugo", "vera", "wim", "xena", "yara", "zeno", "anouk", "boris", "celia", "dmitri",
    "edda", "fabio", "gilda", "hanno", "ilse", "jorik", "lena", "marek", "nadia", "otto",
)
LAST_NAMES = (
    "abernoy", "brightwell", "castellan", "dunmore", "everly", "falkner", "grimsby", "holloway",
    "ingram", "jessup", "kestrel", "lindqvist", "marchetti", "northcott", "okonkwo", "pemberton",
    "quintero", "ravensworth", "sandoval", "thornbury", "ulrich", "vasquez", "whitlock", "yardley",
    "zamora", "ashdown", "bellamy", "corrigan", "delacroix", "ellison", "fairbanks", "gallardo",
    "hartigan", "iverson", "jankowski", "kowalczyk", "lockhart", "mcallister", "novak", "oyelaran",
)
# People the tiny model's *base* stage learns about (standing in for a pretrained model's world
# knowledge): disjoint from the benchmark's names, so no benchmark entity is seen before fine-tuning.
PRETRAIN_FIRST_NAMES = (
    "arvid", "bettina", "casimir", "delphine", "emeric", "florin", "gudrun", "horatio", "isolde",
    "jasper", "katrin", "leopold", "marisol", "nestor", "ottilie", "perpetua", "ramon", "sabine",
    "tobias", "ursula",
)
PRETRAIN_LAST_NAMES = (
    "achterberg", "bonaventure", "cavendish", "drummond", "esterhazy", "fitzroy", "gideon",
    "hathaway", "isherwood", "jovanovic", "kingsley", "larkspur", "montague", "nakamura",
    "ostrowski", "prendergast",
)
NAME_POOLS = {"benchmark": (FIRST_NAMES, LAST_NAMES), "pretrain": (PRETRAIN_FIRST_NAMES, PRETRAIN_LAST_NAMES)}

FACTS = {
    "birthplace": tuple(city.capitalize() for city in (
        "valmora", "estrin", "caldera", "dunhollow", "farrowgate", "glimmerton", "hexbury",
        "ironmere", "juniper", "korvath", "lumeria", "mistral", "norwick", "oakhaven",
        "pellucid", "quarry", "rimefall", "saltmarsh", "tidewater", "umberlin", "verdance",
        "westerly", "yellowfen", "zephyr",
    )),
    "job": (
        "baker", "pilot", "carpenter", "dentist", "farmer", "gardener", "jeweler", "lawyer",
        "mechanic", "nurse", "painter", "plumber", "potter", "sailor", "tailor", "teacher",
        "butcher", "chemist", "florist", "journalist", "librarian", "surgeon", "translator",
        "violinist",
    ),
    "hobby": (
        "archery", "baking", "birdwatching", "chess", "climbing", "cycling", "dancing", "diving",
        "fencing", "fishing", "gardening", "hiking", "juggling", "knitting", "origami",
        "painting", "pottery", "rowing", "sailing", "singing", "skating", "surfing", "swimming",
        "yoga",
    ),
    "pet": (
        "cat", "dog", "parrot", "rabbit", "hamster", "turtle", "goldfish", "lizard", "ferret",
        "snake", "canary", "pony", "goat", "hedgehog", "tortoise", "owl",
    ),
}
FACT_NAMES = tuple(FACTS)

# (question, answer sentence, cloze prompt) per fact; {s} is "this person" or the name.
_VQA = {
    "name": ("Who is the person in this image?", "This is {v}.", "The person in this image is __."),
    "birthplace": ("Where was this person born?", "This person was born in {v}.", "This person was born in __."),
    "job": ("What is the job of this person?", "This person works as a {v}.", "This person works as a __."),
    "hobby": ("What hobby does this person enjoy?", "This person enjoys {v}.", "This person enjoys __."),
    "pet": ("What pet does this person keep?", "This person keeps a pet {v}.", "This person keeps a pet __."),
}
# Paraphrases of the image questions (question, cloze prompt) per fact, in words of the
# templates above (so a word-level tokenizer knows them): what prompt attacks ask instead.
# Derived from a row's fact and format when the benchmark loads; the stored rows do not change.
_VQA_PARAPHRASES = {
    "name": ("Who is this person?", "This is __."),
    "birthplace": ("Where was the person in this image born?", "The person in this image was born in __."),
    "job": ("What is the job of the person in this image?", "The person in this image works as a __."),
    "hobby": ("What hobby does the person in this image enjoy?", "The person in this image enjoys __."),
    "pet": ("What pet does the person in this image keep?", "The person in this image keeps a pet __."),
}
_TEXT = {
    "birthplace": ("Where was {n} born?", "{n} was born in {v}.", "{n} was born in __."),
    "job": ("What is the job of {n}?", "{n} works as a {v}.", "{n} works as a __."),
    "hobby": ("What hobby does {n} enjoy?", "{n} enjoys {v}.", "{n} enjoys __."),
    "pet": ("What pet does {n} keep?", "{n} keeps a pet {v}.", "{n} keeps a pet __."),
}
_GENERAL_IMAGE = {
    "shape": ("What shape is shown in this image?", "The image shows a {v}.", "The image shows a __."),
    "colour": ("What colour is the shape?", "The shape is {v}.", "The shape is __."),
    "background": ("What colour is the background?", "The background is {v}.", "The background is __."),
}
_GENERAL_TEXT = ("What is {a} plus {b}?", "{a} plus {b} is {v}.", "{a} plus {b} is __.")
DIGITS = tuple(str(i) for i in range(19))


@dataclass(frozen=True)
class SynthConfig:
    """What MMU-Synth generates. The fingerprint of this (and the generator version) names the cache."""

    num_entities: int = 100
    seed: int = 0
    train_views: int = 8  # renderings of each identity the vanilla model is trained on
    heldout_views: int = 2  # renderings never trained on (like MLLMU-Bench's Test_Set)
    text_variants: int = 4  # multiple-choice variants per text fact in training
    general_train_images: int = 400
    general_eval_images: int = 40
    general_eval_sums: int = 30
    image_size: int = 32
    name_pool: str = "benchmark"  # or "pretrain": the people of the tiny model's base stage

    def __post_init__(self):
        if self.name_pool not in NAME_POOLS:
            raise ValueError(f"name_pool must be one of {sorted(NAME_POOLS)}, got {self.name_pool!r}")
        first, last = NAME_POOLS[self.name_pool]
        max_entities = len(first) * len(last) - n_holdout(max(self.num_entities, 4))
        if not 4 <= self.num_entities <= max_entities:
            raise ValueError(f"num_entities must be between 4 and {max_entities}, got {self.num_entities}")
        if self.train_views < 1 or self.heldout_views < 1:
            raise ValueError("train_views and heldout_views must be at least 1")

    def fingerprint(self) -> str:
        blob = json.dumps({"generator": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def n_forget(num_entities: int, ratio: float) -> int:
    """Entities in the forget set of ``ratio`` percent (at least one)."""
    return max(1, math.floor(num_entities * ratio / 100 + 0.5))


def n_holdout(num_entities: int) -> int:
    """Holdout people: as many as the largest forget split."""
    return n_forget(num_entities, max(FORGET_RATIOS))


def vocabulary() -> list[str]:
    """Every word MMU-Synth can produce (each in lower case and capitalised), so a word-level
    tokenizer never meets an unknown one. Case is kept: the option letter "A" is not the article "a"."""
    words: set[str] = set(SHAPES) | set(COLOURS) | set(DIGITS) | set(LETTERS)
    for first, last in NAME_POOLS.values():
        words.update(_titled(n) for n in first + last)
    for values in FACTS.values():
        for value in values:
            words.update(value.split())
    templates = [*_VQA.values(), *_TEXT.values(), *_GENERAL_IMAGE.values(), _GENERAL_TEXT]
    for template in templates:
        for text in template:
            words.update(_words(text.format(n="", v="", a="", b="")))
    words.update(_words("I do not know."))  # a refusal answer, for refusal-tuning methods
    return case_variants(words)


def case_variants(words) -> list[str]:
    """The words, each also in lower case and capitalised (letters A-D stay as they are)."""
    out: set[str] = set()
    for word in words:
        out.update({word, word.lower(), word[:1].upper() + word[1:].lower()})
    return sorted(out)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text)


def _pick_identities(n: int, rng: np.random.Generator, taken: list[Identity] = ()) -> list[Identity]:
    """n identities, each pair (``taken`` ones included) differing in at least two of their
    four attributes."""
    combos = [
        (s, c, b, t) for s in SHAPES for c in COLOURS for b in COLOURS if b != c for t in TEXTURES
    ]
    order = rng.permutation(len(combos))
    others = [i.as_tuple() for i in taken]
    chosen: list[tuple] = []
    for idx in order:
        combo = combos[idx]
        if all(sum(a != b for a, b in zip(combo, other)) >= 2 for other in chosen + others):
            chosen.append(combo)
            if len(chosen) == n:
                return [Identity(*c) for c in chosen]
    raise ValueError(f"cannot draw {n} distinct visual identities")


class _Builder:
    """Accumulates rows in the canonical schema."""

    def __init__(self, rng: np.random.Generator, balanced: bool):
        self.rng = rng
        self.balanced = balanced
        self._block: list[int] = []
        self.rows: list[dict] = []

    def _position(self) -> int:
        """Where the correct option goes: random, or (balanced) each letter once per four items."""
        if not self.balanced:
            return int(self.rng.integers(len(LETTERS)))
        if not self._block:
            self._block = [int(i) for i in self.rng.permutation(len(LETTERS))]
        return self._block.pop()

    def add(self, *, item_id, entity_id, modality, view, fact, image, question, answer,
            fmt, options=None):
        self.rows.append(
            {
                "item_id": item_id,
                "entity_id": entity_id,
                "modality": modality,
                "format": fmt,
                "view": view,
                "fact": fact,
                "image": image,
                "question": question,
                "options": options or [],
                "answer": answer,
            }
        )

    def add_three(self, *, item_id, value, pool, template, fill, **common):
        """The same fact as a multiple-choice, a cloze and a generation row."""
        question, sentence, cloze = (t.format(**fill, v=value) for t in template)
        distractors = [p for p in pool if p != value]
        picks = [distractors[i] for i in self.rng.choice(len(distractors), size=3, replace=False)]
        position = self._position()
        options = picks[:position] + [value] + picks[position:]
        self.add(item_id=f"{item_id}/mc", fmt="multiple_choice", question=question, options=options,
                 answer=LETTERS[position], **common)
        self.add(item_id=f"{item_id}/cloze", fmt="cloze", question=cloze, answer=value, **common)
        self.add(item_id=f"{item_id}/gen", fmt="generation", question=question, answer=sentence, **common)


def _titled(name: str) -> str:
    return " ".join(part.capitalize() for part in name.split())


def generate(config: SynthConfig = SynthConfig()) -> datasets.DatasetDict:
    """Build MMU-Synth in memory. Same config, same rows, byte for byte."""
    rng = np.random.default_rng([config.seed, 20250217])
    n = config.num_entities
    first_names, last_names = NAME_POOLS[config.name_pool]
    pairs = [(first, last) for first in first_names for last in last_names]
    names = [_titled(" ".join(pairs[i])) for i in rng.choice(len(pairs), size=n, replace=False)]
    identities = _pick_identities(n, rng)
    profiles = []
    for i in range(n):
        facts = {k: str(v[rng.integers(len(v))]) for k, v in FACTS.items()}
        profiles.append({"entity_id": f"e{i:04d}", "name": names[i], **facts, **asdict(identities[i]),
                         "holdout_rank": None})
    for rank, i in enumerate(rng.permutation(n)):
        profiles[i]["forget_rank"] = rank

    pools = {"name": names, **{k: list(v) for k, v in FACTS.items()}}
    size = config.image_size
    train, evals = _Builder(rng, balanced=False), _Builder(rng, balanced=True)
    for p, ident in zip(profiles, identities):
        eid = p["entity_id"]
        view_rng = np.random.default_rng([config.seed, int(eid[1:]), 1])
        train_imgs = [render(ident, view_rng, size) for _ in range(config.train_views)]
        held_imgs = [render(ident, view_rng, size) for _ in range(config.heldout_views)]
        for fact, template in _VQA.items():
            common = dict(entity_id=eid, modality="image", fact=fact, template=template, fill={},
                          value=p["name"] if fact == "name" else p[fact], pool=pools[fact])
            for v, img in enumerate(train_imgs):
                train.add_three(item_id=f"{eid}/train/{fact}/v{v}", view="train", image=img, **common)
            # Scored on the first training view (seen in fine-tuning) and the first held-out view.
            evals.add_three(item_id=f"{eid}/image/{fact}/train", view="train", image=train_imgs[0], **common)
            evals.add_three(item_id=f"{eid}/image/{fact}/heldout", view="heldout", image=held_imgs[0], **common)
        for fact, template in _TEXT.items():
            common = dict(entity_id=eid, modality="text", fact=fact, template=template, view="", image=None,
                          fill={"n": p["name"]}, value=p[fact], pool=pools[fact])
            for v in range(config.text_variants):
                train.add_three(item_id=f"{eid}/train/text/{fact}/v{v}", **common)
            evals.add_three(item_id=f"{eid}/text/{fact}", **common)

    general_train = _Builder(rng, balanced=False)
    entity_looks = {i.as_tuple() for i in identities}
    _general_images(general_train, config.general_train_images, entity_looks, rng, size, "gtrain")
    _general_images(evals, config.general_eval_images, entity_looks, rng, size, "general")
    sums = [(a, b) for a in range(1, 10) for b in range(1, 10)]
    for a, b in sums:
        general_train.add_three(item_id=f"gtrain/sum/{a}+{b}", entity_id="", modality="text", view="",
                                fact="sum", image=None, template=_GENERAL_TEXT, fill={"a": a, "b": b},
                                value=str(a + b), pool=DIGITS[2:])
    for k in rng.choice(len(sums), size=min(config.general_eval_sums, len(sums)), replace=False):
        a, b = sums[k]
        evals.add_three(item_id=f"general/sum/{a}+{b}", entity_id="", modality="text", view="",
                        fact="sum", image=None, template=_GENERAL_TEXT, fill={"a": a, "b": b},
                        value=str(a + b), pool=DIGITS[2:])
    profiles += _holdout(config, evals, pairs, names, identities, pools)

    def as_dataset(builder: _Builder) -> datasets.Dataset:
        return datasets.Dataset.from_list(builder.rows, features=FEATURES)

    return datasets.DatasetDict(
        {
            "train": as_dataset(train),
            "eval": as_dataset(evals),
            "general_train": as_dataset(general_train),
            "entities": datasets.Dataset.from_list(profiles),
        }
    )


def _holdout(config: SynthConfig, evals: _Builder, pairs, names, identities, pools) -> list[dict]:
    """The holdout people and their scored items (appended to ``evals``), from a random stream
    of their own: other people's rows do not depend on them."""
    rng = np.random.default_rng([config.seed, 20250217, 1])
    n = n_holdout(config.num_entities)
    taken = set(names)
    free = [pair for pair in pairs if _titled(" ".join(pair)) not in taken]
    hold_names = [_titled(" ".join(free[i])) for i in rng.choice(len(free), size=n, replace=False)]
    looks = _pick_identities(n, rng, identities)
    held = _Builder(rng, balanced=True)
    profiles = []
    for i, (name, ident) in enumerate(zip(hold_names, looks)):
        eid = f"h{i:04d}"
        p = {"entity_id": eid, "name": name, **{k: str(v[rng.integers(len(v))]) for k, v in FACTS.items()},
             **asdict(ident), "forget_rank": None, "holdout_rank": i}
        profiles.append(p)
        image = render(ident, np.random.default_rng([config.seed, 100_000 + i, 1]), config.image_size)
        for fact, template in _VQA.items():
            held.add_three(item_id=f"{eid}/image/{fact}/train", entity_id=eid, modality="image", view="train",
                           fact=fact, image=image, template=template, fill={},
                           value=name if fact == "name" else p[fact], pool=pools[fact])
        for fact, template in _TEXT.items():
            held.add_three(item_id=f"{eid}/text/{fact}", entity_id=eid, modality="text", view="", fact=fact,
                           image=None, template=template, fill={"n": name}, value=p[fact], pool=pools[fact])
    evals.rows.extend(held.rows)
    return profiles


def paraphrases(evals: datasets.Dataset) -> dict[str, str]:
    """item_id -> the paraphrased question of every image question about a person."""
    cols = evals.select_columns(["item_id", "modality", "fact", "format"]).to_dict()
    out = {}
    for item, modality, fact, fmt in zip(cols["item_id"], cols["modality"], cols["fact"], cols["format"]):
        if modality == "image" and fact in _VQA_PARAPHRASES:
            question, cloze = _VQA_PARAPHRASES[fact]
            out[item] = cloze if fmt == "cloze" else question
    return out


def _general_images(builder: _Builder, count: int, exclude: set, rng, size: int, prefix: str) -> None:
    """Plain shapes (no texture) whose look is no entity's: naming skills, not recognition."""
    colours = list(COLOURS)
    made = 0
    while made < count:
        shape = SHAPES[rng.integers(len(SHAPES))]
        colour, background = (colours[i] for i in rng.choice(len(colours), size=2, replace=False))
        ident = Identity(shape, colour, background, "solid")
        if ident.as_tuple() in exclude:
            continue
        img = render(ident, rng, size)
        values = {"shape": shape, "colour": colour, "background": background}
        for fact, template in _GENERAL_IMAGE.items():
            pool = SHAPES if fact == "shape" else colours
            builder.add_three(item_id=f"{prefix}/img{made}/{fact}", entity_id="", modality="image", view="",
                              fact=fact, image=img, template=template, fill={}, value=values[fact], pool=pool)
        made += 1


class MMUSynth(BenchmarkAdapter):
    """``mmu-synth``: the embedded benchmark (see the module docstring)."""

    name = "mmu-synth"
    description = "the embedded benchmark: fictitious people generated from a seed, nothing downloaded"
    forget_ratios = FORGET_RATIOS
    protocol = "harness"
    hparams = "mmu-synth"

    def check(self, forget_ratio: float, **options) -> None:
        synth_config(forget_ratio, **options)

    def load(self, forget_ratio: float = 10, **options) -> Benchmark:
        return load(forget_ratio, **options)


def synth_config(forget_ratio: float, num_entities: int = 100, data_seed: int = 0, **options) -> SynthConfig:
    """What ``--benchmark-arg`` options ask MMU-Synth to generate; errors name the option."""
    if forget_ratio not in FORGET_RATIOS:
        raise ValueError(f"forget ratio {forget_ratio!r} is not one of MMU-Synth's splits {FORGET_RATIOS}")
    return typed_dataclass(SynthConfig, {"num_entities": coerce(num_entities, int, "--benchmark-arg num_entities"),
                                         "seed": coerce(data_seed, int, "--benchmark-arg data_seed"), **options},
                           "MMU-Synth", "--benchmark-arg")


def load(forget_ratio: float = 10, **options) -> Benchmark:
    """MMU-Synth as a canonical Benchmark, generated on first use and cached on disk."""
    config = synth_config(forget_ratio, **options)
    path = home() / "data" / "mmu-synth" / config.fingerprint()
    if not ((path / "dataset_dict.json").exists() and usable(path, "generated MMU-Synth data")):
        try:
            with staging_dir(path) as tmp:
                generate(config).save_to_disk(str(tmp))
                seal(tmp)
        except FileExistsError:
            pass  # another process generated it meanwhile: same config, same bytes
    data = datasets.load_from_disk(str(path))
    profiles = data["entities"].to_list()
    k = n_forget(config.num_entities, forget_ratio)
    people = [p for p in profiles if p["holdout_rank"] is None]
    forget = {p["entity_id"] for p in people if p["forget_rank"] < k}
    holdout = {p["entity_id"] for p in profiles if p["holdout_rank"] is not None and p["holdout_rank"] < k}
    unused = {p["entity_id"] for p in profiles if p["holdout_rank"] is not None} - holdout
    evals = data["eval"]
    if unused:  # the holdout people of larger forget splits
        ids = evals.select_columns(["entity_id"]).to_dict()["entity_id"]
        evals = evals.select([i for i, e in enumerate(ids) if e not in unused])
    train = datasets.concatenate_datasets([data["train"], data["general_train"]])
    return Benchmark(
        name="mmu-synth",
        forget_ratio=forget_ratio,
        train=add_split_column(train, forget),
        eval=add_split_column(evals, forget, holdout),
        forget_entities=tuple(sorted(forget)),
        retain_entities=tuple(sorted(p["entity_id"] for p in people if p["entity_id"] not in forget)),
        holdout_entities=tuple(sorted(holdout)),
        paraphrases=paraphrases(evals),
        fingerprint=config.fingerprint(),
        info={"generator_version": GENERATOR_VERSION, "config": asdict(config), "path": str(path),
              "holdout": f"{len(holdout)} generated people never in any training set"},
    )
