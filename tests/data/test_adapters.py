"""The MLLMU-Bench and CLEAR adapters on small fixtures in the real Hugging Face schemas,
read through the same code as hub data (parquet via load_dataset, or load_from_disk)."""

import copy
import json
import re
from collections import Counter

import pytest

from mmu_bench.api.schema import LETTERS, SchemaError, validate_row
from mmu_bench.data import clear, mllmu
from mmu_bench.spec import registry
from mmu_bench.spec.tasks import load_tasks
from real_fixtures import (
    CELEBRITIES,
    CLEAR_FORGET,
    MLLMU_FORGET,
    PERSONS,
    PROFILES,
    RETAIN_PERTURBED,
    TOFU_PER_PERSON,
    clear_rows,
    mllmu_rows,
    picture,
    write_clear,
    write_mllmu,
)

WRITERS = {"mllmu": write_mllmu, "clear": write_clear}
LOADERS = {"mllmu": mllmu.load, "clear": clear.load}


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("sources")
    return {(bench, layout): write(base / f"{bench}-{layout}", layout)
            for bench, write in WRITERS.items() for layout in ("parquet", "disk")}


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("hf-cache"))


@pytest.fixture
def load(roots, hf_cache):
    def _load(bench, ratio=5, layout="parquet", source=None, **options):
        return LOADERS[bench](ratio, source=str(source or roots[(bench, layout)]), cache_dir=hf_cache, **options)
    return _load


def keys(dataset, *columns):
    return Counter(tuple(row[c] for c in columns) for row in dataset.select_columns(list(columns)))


# ---- expected sizes, computed from the fixture rows ----

def expected_mllmu(rows, ratio):
    forget = set(MLLMU_FORGET[ratio])
    counts = Counter()

    def add(row, split, view):
        tasks = row["Classification_Task"]
        # Text rows have no image view; those of Test_Set (a held-out set) keep "heldout".
        text_view = "heldout" if view == "heldout" else ""
        counts[(split, "image", "multiple_choice", view)] += len(tasks["Image_Textual_Questions"])
        counts[(split, "text", "multiple_choice", text_view)] += len(tasks["Pure_Text_Questions"])
        for task, fmt in (("Generation_Task", "generation"), ("Mask_Task", "cloze")):
            for item in row[task]:
                if item["Type"] == "Image_Textual":
                    counts[(split, "image", fmt, view)] += 1
                else:
                    counts[(split, "text", fmt, text_view)] += 1

    for row in rows[f"forget_{ratio}"]:
        add(row, "forget", "train")
    for row in rows[f"retain_{100 - ratio}"]:
        add(row, "retain", "train")
    for row in rows["Test_Set"]:
        add(row, "forget" if row["ID"] in forget else "retain", "heldout")
    for row in rows["Retain_Set"]:
        add(row, "general", "")
    return counts


def expected_mllmu_train(rows, ratio):
    forget = set(MLLMU_FORGET[ratio])
    counts = Counter()
    for row in rows["ft_Data"]:
        split = "forget" if row["ID"] in forget else "retain"
        questions = [qa["Question"] for qa in json.loads(row["metadata"])]
        questions.append(next(p for p in rows["Full_Set"] if p["ID"] == row["ID"])["question"])
        counts[(split, "image")] += len(questions)
        counts[(split, "text")] += sum(bool(re.search(r"this (person|individual)", q, re.I)) for q in questions)
    return counts


def expected_clear(rows, ratio):
    counts = Counter()
    for split, config in (("forget", f"forget{ratio:02d}"), ("retain", f"retain{100 - ratio}")):
        images = len(rows[config])
        counts[(split, "image", "generation", "train")] += 2 * images  # caption and name
        counts[(split, "image", "cloze", "train")] += images
        counts[(split, "image", "multiple_choice", "train")] += images
        counts[(split, "text", "generation", "")] += sum(r["question"] is not None for r in rows[f"{config}+tofu"])
    counts[("general", "image", "multiple_choice", "")] += len(rows["real_faces"]) + len(rows["real_world"])
    return counts


# ---- sizes and splits ----

@pytest.mark.parametrize("layout", ["parquet", "disk"])
def test_mllmu_rows_per_split_modality_format(load, layout):
    bench = load("mllmu", 5, layout)
    assert keys(bench.eval, "split", "modality", "format", "view") == expected_mllmu(mllmu_rows(), 5)
    assert keys(bench.train, "split", "modality") == expected_mllmu_train(mllmu_rows(), 5)
    assert set(keys(bench.train, "format")) == {("generation",)}


@pytest.mark.parametrize("layout", ["parquet", "disk"])
def test_clear_rows_per_split_modality_format(load, layout):
    bench = load("clear", 5, layout)
    rows = clear_rows()
    assert keys(bench.eval, "split", "modality", "format", "view") == expected_clear(rows, 5)
    assert keys(bench.train, "split", "modality", "format") == {
        ("forget", "image", "generation"): len(rows["forget05"]),
        ("retain", "image", "generation"): len(rows["retain95"]),
        ("forget", "text", "generation"): TOFU_PER_PERSON * len(CLEAR_FORGET[5]),
        ("retain", "text", "generation"): TOFU_PER_PERSON * (len(PERSONS) - len(CLEAR_FORGET[5])),
    }


@pytest.mark.parametrize("bench,ratio,forget,everyone", [
    *[("mllmu", r, f, list(PROFILES)) for r, f in MLLMU_FORGET.items()],
    *[("clear", r, f, PERSONS) for r, f in CLEAR_FORGET.items()],
])
def test_forget_and_retain_are_disjoint_and_match_the_config(load, bench, ratio, forget, everyone):
    b = load(bench, ratio)
    assert b.forget_ratio == ratio
    assert set(b.forget_entities) == set(forget)
    assert set(b.retain_entities) == set(everyone) - set(forget)
    assert not set(b.forget_entities) & set(b.retain_entities)
    for part in (b.train, b.eval):
        for entity, split in keys(part, "entity_id", "split"):
            if split == "general":
                assert entity not in everyone
            else:
                assert split == ("forget" if entity in forget else "retain"), (entity, split)


def test_celebrities_keep_their_ids_in_the_general_split(load):
    bench = load("mllmu")
    general = {e for e, s in keys(bench.eval, "entity_id", "split") if s == "general"}
    assert general == set(CELEBRITIES)


@pytest.mark.parametrize("bench", ["mllmu", "clear"])
def test_every_row_is_valid_and_ids_are_unique(load, bench):
    b = load(bench)
    for part in (b.train, b.eval):
        for i, row in enumerate(part):
            validate_row(row, f"{bench} row {i}")
        ids = part["item_id"]
        assert len(set(ids)) == len(ids) > 0


@pytest.mark.parametrize("bench", ["mllmu", "clear"])
def test_each_dimension_selects_items(load, bench):
    b = load(bench)
    rows = list(b.eval.select_columns(["split", "modality", "view"]))
    tasks = load_tasks()
    for dimension in ("visual_forgetting", "textual_retention", "retained_vqa", "general_utility"):
        primary = [t for t in tasks if t.dimension == dimension and t.primary]
        assert primary and all(sum(map(t.selects, rows)) > 0 for t in primary), dimension
    heldout = next(t for t in tasks if t.name == "visual_forgetting_heldout")
    # MLLMU-Bench has other images of the same people; CLEAR has none (documented).
    assert (sum(map(heldout.selects, rows)) > 0) == (bench == "mllmu")


@pytest.mark.parametrize("bench", ["mllmu", "clear"])
def test_training_sets_for_methods(load, bench):
    b = load(bench)
    forget_set, retain_set, preserve = b.forget_set(), b.retain_set(), b.preserve_text()
    assert len(forget_set) and len(retain_set) and len(preserve)
    assert set(forget_set["entity_id"]) == set(b.forget_entities)
    assert set(forget_set["modality"]) == {"image"} and set(forget_set["view"]) == {"train"}
    assert set(b.forget_entities) <= set(preserve["entity_id"])  # text of forget entities is kept
    assert not set(b.training_rows("oracle")["entity_id"]) & set(b.forget_entities)
    # The visual oracle keeps the forget entities' text rows only: possible (and distinct) here.
    visual = b.training_rows("visual_oracle")
    assert {m for e, m in zip(visual["entity_id"], visual["modality"]) if e in b.forget_entities} == {"text"}
    assert b.supports("visual_oracle")
    # No holdout people: the adapter says so, and no row is in a holdout split.
    assert b.holdout_entities == () and b.info["holdout"].startswith("none: ")
    assert "holdout" not in set(b.eval["split"])


def test_mllmu_text_training_rows_name_the_person(load):
    bench = load("mllmu")
    text = bench.train.filter(lambda r: r["modality"] == "text")
    for row in text:
        assert PROFILES[row["entity_id"]] in row["question"] and "this person" not in row["question"].lower()
    assert not load("mllmu", derive_text=False).preserve_text()


def test_mllmu_train_config_full_set(load):
    bench = load("mllmu", train_config="Full_Set")
    ids = bench.train.filter(lambda r: r["modality"] == "image")["item_id"]
    # Full_Set holds the profiles' own question and answer: one pair each, duplicates dropped.
    assert len(ids) == len(PROFILES) and all("/train/Full_Set/" in i for i in ids)


# ---- content ----

def test_mllmu_multiple_choice_answers_map_to_the_right_option(load):
    mc = load("mllmu").eval.filter(lambda r: r["format"] == "multiple_choice")
    assert len(mc) > 0
    for row in mc:
        assert row["options"][LETTERS.index(row["answer"])].startswith("right "), row["item_id"]
        assert sum(o.startswith("right ") for o in row["options"]) == 1


def _images_by_view(bench):
    seen = {}
    for row in bench.eval.filter(lambda r: r["modality"] == "image" and r["split"] != "general"):
        seen.setdefault((int(row["entity_id"]), row["view"]), set()).add(row["image"].convert("RGB").getpixel((0, 0)))
    return seen


def test_mllmu_images_train_view_and_heldout_view(load):
    test_images = {pid: {picture(100 + pid).getpixel((0, 0)), picture(200 + pid).getpixel((0, 0))}
                   for pid in map(int, PROFILES)}
    by_row = {seed: _images_by_view(load("mllmu", seed=seed)) for seed in (0, 1, 2)}
    for pid in map(int, PROFILES):
        assert by_row[0][(pid, "train")] == {picture(pid).getpixel((0, 0))}
        # As MLLMU-Bench's eval: one of the row's images for all its questions (drawn from the seed).
        for seen in by_row.values():
            assert len(seen[(pid, "heldout")]) == 1 and seen[(pid, "heldout")] <= test_images[pid]
    assert len({tuple(sorted(s[(pid, "heldout")].pop() for pid in map(int, PROFILES))) for s in by_row.values()}) > 1
    # test_images=question: held-out questions go round the row's images: each is used.
    each = _images_by_view(load("mllmu", test_images="question"))
    assert all(each[(pid, "heldout")] == test_images[pid] for pid in map(int, PROFILES))
    with pytest.raises(ValueError, match="test_images must be one of"):
        load("mllmu", test_images="all")


def test_mllmu_test_set_text_questions_are_scored_as_held_out(load):
    bench = load("mllmu")
    tasks = {t.name: t for t in load_tasks(["textual_retention", "textual_retention_heldout"])}
    rows = bench.eval.select_columns(["item_id", "split", "modality", "view", "format"]).to_list()
    heldout = [r for r in rows if tasks["textual_retention_heldout"].selects(r)]
    profile = [r for r in rows if tasks["textual_retention"].selects(r)]
    test_rows = [r for r in mllmu_rows()["Test_Set"] if r["ID"] in MLLMU_FORGET[5]]
    expected = sum(len(r["Classification_Task"]["Pure_Text_Questions"])
                   + sum(q["Type"] == "Pure_Text" for task in ("Generation_Task", "Mask_Task") for q in r[task])
                   for r in test_rows)
    assert len(heldout) == expected > 0
    assert all("/test/" in r["item_id"] for r in heldout)
    assert profile and all("/profile/" in r["item_id"] for r in profile)


def test_mllmu_cloze_keeps_the_blank(load):
    cloze = load("mllmu").eval.filter(lambda r: r["format"] == "cloze")
    assert len(cloze) and all("__" in q for q in cloze["question"])


def test_clear_multiple_choice_answers_and_balance(load):
    bench = load("clear")
    mc = bench.eval.filter(lambda r: r["format"] == "multiple_choice")
    truth = {f"real_faces/{i}": r["answer"] for i, r in enumerate(clear_rows()["real_faces"])}
    truth.update({f"real_world/{i}": r["answer"] for i, r in enumerate(clear_rows()["real_world"])})
    letters = {}
    for row in mc:
        chosen = row["options"][LETTERS.index(row["answer"])]
        assert len(row["options"]) == 4 and len(set(row["options"])) == 4
        assert chosen == (row["entity_id"] or truth[row["item_id"]]), row["item_id"]
        letters.setdefault(row["entity_id"], []).append(row["answer"])
    for person in PERSONS:  # a fresh block of the four letters per person
        assert len(set(letters[person])) == len(letters[person]) == 2


def test_clear_uses_its_perturbed_configs(load):
    bench = load("clear")
    covered = set(CLEAR_FORGET[10]) | set(RETAIN_PERTURBED)  # every forget split's and retain_perturbed's persons
    assert covered != set(PERSONS)  # one person the perturbed configs do not cover
    rows = bench.eval.select_columns(["item_id", "entity_id", "format", "fact", "question", "options",
                                      "paraphrased_answer", "perturbed_answers"]).to_list()
    for row in (r for r in rows if r["entity_id"] and r["fact"] == "name" and r["format"] == "multiple_choice"):
        wrong = {o for o in row["options"] if o != row["entity_id"]}
        # The perturbed names (first three distinct) where CLEAR gives them, else other persons.
        expected = {f"Other {row['entity_id']} {k}" for k in (1, 2, 3)}
        assert (wrong == expected) if row["entity_id"] in covered else (wrong <= set(PERSONS)), row["item_id"]
    captions = [r for r in rows if r["fact"] == "caption"]
    for row in captions:
        has = row["entity_id"] in covered
        assert bool(row["perturbed_answers"]) == has and bool(row["paraphrased_answer"]) == has
        if has:
            assert row["paraphrased_answer"].startswith("By window") and len(row["perturbed_answers"]) == 3
    # Caption questions: CLEAR's nine, drawn per item (seeded), in training rows too.
    assert {r["question"] for r in captions} <= set(clear.CAPTION_QUESTIONS)
    assert len({r["question"] for r in captions}) > 1
    assert {q for q, f in zip(bench.train["question"], bench.train["fact"]) if f == "caption"} <= set(clear.CAPTION_QUESTIONS)
    assert bench.info["perturbed"] and bench.info["perturbed_rows"] == 2 * len(covered)


def test_clear_without_perturbed_configs(load, tmp_path):
    rows = {c: r for c, r in clear_rows().items() if not c.endswith("_perturbed")}
    with pytest.raises(ValueError, match="config 'forget01_perturbed' not found"):
        load("clear", source=write_clear(tmp_path / "plain", rows=rows))
    bench = load("clear", source=tmp_path / "plain", perturbed=False)
    assert not any(bench.eval["perturbed_answers"]) and bench.info["perturbed_rows"] == 0
    broken = clear_rows()
    for row in broken["retain_perturbed"]:
        del row["perturbed_names"]
    with pytest.raises(SchemaError, match="config retain_perturbed: field 'perturbed_names' is missing"):
        load("clear", source=write_clear(tmp_path / "broken", rows=broken))


def test_clear_tofu_rows_belong_to_their_person(load):
    bench = load("clear")
    assert bench.info["unmatched_tofu_rows"] == 0
    text = bench.eval.filter(lambda r: r["modality"] == "text")
    by_person = Counter(text["entity_id"])
    assert by_person == {p: TOFU_PER_PERSON for p in PERSONS}
    for row in text:  # the first QA names nobody: it was given through its block of 20
        assert row["entity_id"] in row["answer"] or row["answer"] == "Mostly quiet fantasy."


def test_same_seed_same_options_other_seed_other_options(load):
    def options(**kw):
        name_mc = load("clear", **kw).eval.filter(lambda r: r["fact"] == "name" and r["format"] == "multiple_choice")
        return name_mc["options"]
    assert options() == options()
    assert options() != options(seed=1)


# ---- identity ----

@pytest.mark.parametrize("bench", ["mllmu", "clear"])
def test_item_ids_and_fingerprint_are_stable(load, bench):
    first = load(bench, 5)
    other_layout = load(bench, 5, layout="disk")
    other_ratio = load(bench, 10)
    assert sorted(first.eval["item_id"]) == sorted(other_layout.eval["item_id"]) == sorted(other_ratio.eval["item_id"])
    assert sorted(first.train["item_id"]) == sorted(other_ratio.train["item_id"])
    # Same data: one fingerprint for every ratio (the ratio is in key()); a vanilla model is shared.
    assert first.fingerprint == other_layout.fingerprint == other_ratio.fingerprint
    assert first.key() != other_ratio.key()


def test_fingerprint_changes_with_the_data_and_the_options(load, tmp_path):
    rows = mllmu_rows()
    rows["Retain_Set"][0]["Generation_Task"][0]["Ground_Truth"] = "Something else."
    changed = load("mllmu", source=write_mllmu(tmp_path / "changed", rows=rows))
    assert len({load("mllmu").fingerprint, changed.fingerprint, load("mllmu", derive_text=False).fingerprint}) == 3


# ---- errors ----

def _drop(config, column):
    def change(rows):
        for row in rows[config]:
            del row[column]
    return change


def _set(config, index, value, *path):
    def change(rows):
        target = rows[config][index]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


FIRST_TOFU = len(clear_rows()["forget05"])  # +tofu configs list image rows first
BAD_ROWS = [
    ("mllmu", _drop("forget_5", "Generation_Task"), "MLLMU-Bench config forget_5, row 0: field 'Generation_Task'"),
    ("mllmu", _set("retain_95", 2, "E", "Classification_Task", "Image_Textual_Questions", 1, "Correct_Answer"),
     "MLLMU-Bench config retain_95, row 2: field 'Classification_Task'['Image_Textual_Questions'][1]['Correct_Answer']"),
    ("mllmu", _set("retain_95", 3, None, "image"), "MLLMU-Bench config retain_95, row 3: field 'image'"),
    ("mllmu", _set("Test_Set", 1, [None], "images"), "MLLMU-Bench config Test_Set, row 1: field 'images'[0]"),
    ("mllmu", _set("Retain_Set", 2, None, "Mask_Task", 1, "Ground_Truth"),
     "MLLMU-Bench config Retain_Set, row 2: field 'Mask_Task'[1]['Ground_Truth']"),
    ("mllmu", _set("ft_Data", 4, "not json", "metadata"), "MLLMU-Bench config ft_Data, row 4: field 'metadata'"),
    ("mllmu", _set("forget_5", 0, "Bogus", "Generation_Task", 1, "Type"),
     "MLLMU-Bench config forget_5, row 0: field 'Generation_Task'[1]['Type']"),
    ("clear", _set("forget05", 1, None, "image"), "CLEAR config forget05, row 1: field 'image'"),
    ("clear", _drop("retain95", "caption"), "CLEAR config retain95, row 0: field 'caption'"),
    ("clear", _set("forget05+tofu", FIRST_TOFU + 3, None, "answer"),
     f"CLEAR config forget05+tofu, row {FIRST_TOFU + 3}: field 'answer'"),
    ("clear", _set("real_world", 2, [], "options"), "CLEAR config real_world, row 2: field 'options'"),
    ("clear", _set("real_faces", 1, None, "image"), "CLEAR config real_faces, row 1: field 'image'"),
]


@pytest.mark.parametrize("bench,change,message", BAD_ROWS, ids=[m.split(": ", 1)[1] for *_, m in BAD_ROWS])
def test_a_bad_source_row_names_config_row_and_field(load, tmp_path, bench, change, message):
    rows = copy.deepcopy(mllmu_rows() if bench == "mllmu" else clear_rows())
    change(rows)
    source = WRITERS[bench](tmp_path / "bad", rows=rows)
    with pytest.raises(SchemaError, match=re.escape(message)):
        load(bench, source=source)


def test_an_id_in_both_forget_and_retain_is_refused(load, tmp_path):
    rows = mllmu_rows()
    rows["retain_95"].append(rows["forget_5"][0])
    with pytest.raises(SchemaError, match="'101' is in both forget_5 and retain_95"):
        load("mllmu", source=write_mllmu(tmp_path / "overlap", rows=rows))


@pytest.mark.parametrize("bench,ratio,valid", [("mllmu", 7, "(5, 10, 15)"), ("mllmu", True, "(5, 10, 15)"),
                                               ("clear", 15, "(1, 5, 10)"), ("clear", "5", "(1, 5, 10)")])
def test_unknown_forget_ratio(bench, ratio, valid):
    with pytest.raises(ValueError, match=re.escape(f"forget ratio {ratio!r} is not one of its splits {valid}")):
        LOADERS[bench](ratio, source="/nonexistent")


def test_float_ratio_from_the_command_line_is_accepted(load):
    assert load("clear", 10.0).forget_ratio == 10


@pytest.mark.parametrize("bench", ["mllmu", "clear"])
def test_unknown_option_and_missing_config(load, tmp_path, bench):
    with pytest.raises(ValueError, match="unknown option.*num_entities"):
        load(bench, num_entities=40)
    with pytest.raises(ValueError, match="config .* not found: no folder"):
        load(bench, source=tmp_path)


def test_registered():
    assert registry.resolve_benchmark("mllmu").cls is mllmu.MLLMUBench
    assert registry.resolve_benchmark("clear").cls is clear.CLEAR
    assert registry.resolve_benchmark("mmu-synth").origin.startswith("entry point mmu_bench.benchmarks:mmu-synth")


def test_hub_sources_go_through_load_dataset(roots, monkeypatch, tmp_path):
    """Hub names are read with datasets.load_dataset(source, config, revision=...): stubbed here
    with the save_to_disk fixture, a config per call, in the hub's one-split DatasetDict shape."""
    import datasets

    asked = []

    def hub(path, name=None, revision=None, cache_dir=None, **kwargs):
        asked.append((path, name, revision))
        data = datasets.load_from_disk(str(roots[("clear", "disk")] / name))
        return data if isinstance(data, datasets.DatasetDict) else datasets.DatasetDict({"train": data})

    monkeypatch.setattr(datasets, "load_dataset", hub)
    bench = clear.load(5, source="therem/CLEAR", revision="abc123")
    assert sorted(asked) == sorted(("therem/CLEAR", c, "abc123") for c in (
        "forget05", "retain95", "forget05+tofu", "retain95+tofu", "real_faces", "real_world",
        "forget01_perturbed", "forget05_perturbed", "forget10_perturbed", "retain_perturbed"))
    assert bench.info["source"] == "therem/CLEAR" and len(bench.eval) == sum(expected_clear(clear_rows(), 5).values())

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ValueError, match=r"cannot load config 'forget_5' of 'MLLMMU/MLLMU-Bench'.*Offline\?"):
        mllmu.load(5)
