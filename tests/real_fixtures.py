"""Small MLLMU-Bench and CLEAR fixtures in the exact Hugging Face schemas, written to disk.

``mllmu_rows()`` / ``clear_rows()`` give the rows of every config as Python dicts (PIL images),
so that a test can break one before writing; ``write_mllmu`` / ``write_clear`` write them as a
folder with one sub-folder per config, either parquet files (``layout="parquet"``, as in the
hub repositories) or ``save_to_disk`` folders (``layout="disk"``).
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
from PIL import Image

STR = datasets.Value("string")

# ---- MLLMU-Bench: 6 fictitious profiles, 3 real celebrities ----

PROFILES = {"101": "Alma Brightwell", "102": "Bruno Castellan", "103": "Cora Dunmore",
            "104": "Dario Everly", "105": "Elsa Falkner", "106": "Felix Grimsby"}
CELEBRITIES = {"c1": "Real Celebrity One", "c2": "Real Celebrity Two", "c3": "Real Celebrity Three"}
MLLMU_FORGET = {5: ["101"], 10: ["101", "102"], 15: ["101", "102", "103"]}

MC_ITEM = {"Correct_Answer": STR, "Options": {letter: STR for letter in "ABCD"}, "Question": STR}
TASK_ITEM = {"Ground_Truth": STR, "Question": STR, "Type": STR}
TASKS = {
    "Classification_Task": {"Image_Textual_Questions": datasets.List(MC_ITEM),
                            "Pure_Text_Questions": datasets.List(MC_ITEM)},
    "Generation_Task": datasets.List(TASK_ITEM),
    "Mask_Task": datasets.List(TASK_ITEM),
}
MLLMU_FEATURES = {
    "profile": datasets.Features({"image": datasets.Image(), "ID": STR, "biography": STR, "question": STR,
                                  "answer": STR, **TASKS}),
    "Test_Set": datasets.Features({"ID": STR, "images": datasets.List(datasets.Image()), **TASKS}),
    "Retain_Set": datasets.Features({"image": datasets.Image(), "ID": STR, "biography": STR, **TASKS}),
    "ft_Data": datasets.Features({"image": datasets.Image(), "ID": STR, "metadata": STR}),
}


def picture(seed: int) -> Image.Image:
    return Image.new("RGB", (8, 8), ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))


def _mc(pid: str, tag: str, k: int) -> dict:
    """A multiple-choice item whose correct option reads "right ..." and sits at a varying letter."""
    letter = "ABCD"[(int(pid[-1]) + k) % 4]
    options = {x: (f"right {pid} {tag} {k}" if x == letter else f"wrong {pid} {tag} {k} {x}") for x in "ABCD"}
    return {"Correct_Answer": letter, "Options": options, "Question": f"Question {tag} {k} about {pid}?"}


def _tasks(pid: str, name: str, tag: str) -> dict:
    return {
        "Classification_Task": {"Image_Textual_Questions": [_mc(pid, f"{tag}-image", k) for k in range(2)],
                                "Pure_Text_Questions": [_mc(pid, f"{tag}-text", k) for k in range(2)]},
        "Generation_Task": [
            {"Question": f"What does this person do ({tag})?", "Ground_Truth": f"Job {pid}.", "Type": "Image_Textual"},
            {"Question": f"What does {name} do ({tag})?", "Ground_Truth": f"Job {pid}.", "Type": "Pure_Text"},
            {"Question": f"Where does this person live ({tag})?", "Ground_Truth": f"Town {pid}.", "Type": "Image_Textual"},
        ],
        "Mask_Task": [
            {"Question": f"This person was born in __ ({tag}).", "Ground_Truth": f"Town{pid}", "Type": "Image_Textual"},
            {"Question": f"{name} was born in __ ({tag}).", "Ground_Truth": f"Town{pid}", "Type": "Pure_Text"},
        ],
    }


def _profile(pid: str, name: str) -> dict:
    return {"image": picture(int(pid)), "ID": pid, "biography": json.dumps({"Name": name, "Job": f"job {pid}"}),
            "question": "What is this person's job?", "answer": f"This person works as job {pid}.",
            **_tasks(pid, name, "profile")}


def mllmu_rows() -> dict[str, list[dict]]:
    profiles = {pid: _profile(pid, name) for pid, name in PROFILES.items()}
    rows = {"Full_Set": list(profiles.values())}
    for ratio, forget in MLLMU_FORGET.items():
        rows[f"forget_{ratio}"] = [profiles[p] for p in forget]
        rows[f"retain_{100 - ratio}"] = [profiles[p] for p in PROFILES if p not in forget]
    rows["Test_Set"] = [{"ID": pid, "images": [picture(100 + int(pid)), picture(200 + int(pid))],
                         **_tasks(pid, name, "test")} for pid, name in PROFILES.items()]
    rows["Retain_Set"] = [{"image": picture(300 + k), "ID": cid, "biography": json.dumps({"Name": name}),
                           **_tasks(cid, name, "celebrity")} for k, (cid, name) in enumerate(CELEBRITIES.items())]
    rows["ft_Data"] = [{"image": picture(int(pid)), "ID": pid, "metadata": json.dumps([
        {"Question": "Where was this individual born?", "Answer": f"This individual was born in Town{pid}."},
        {"Question": "What is shown in the picture?", "Answer": f"A portrait of profile {pid}."},
    ])} for pid in PROFILES]
    return rows


def _features_of(config: str, rows: list[dict], all_features: dict) -> datasets.Features:
    base = all_features.get(config) or all_features["profile"]
    return datasets.Features({k: v for k, v in base.items() if k in rows[0]})


def write_mllmu(root: Path, layout: str = "parquet", rows: dict | None = None) -> Path:
    rows = rows or mllmu_rows()
    return _write(Path(root), {c: datasets.Dataset.from_list(r, features=_features_of(c, r, MLLMU_FEATURES))
                               for c, r in rows.items()}, layout, as_dict={"Test_Set"})


# ---- CLEAR: 6 fictitious persons with 2 images and 20 TOFU QA each ----

PERSONS = ["Jambo Mpendulo", "Nadia Nowak", "Youssef Al-Zahran", "Adetoun Davis", "Alex Melbourne", "Zeynab Nazirova"]
CLEAR_FORGET = {1: PERSONS[:1], 5: PERSONS[:2], 10: PERSONS[:3]}
IMAGES_PER_PERSON = 2
TOFU_PER_PERSON = 20
REAL_FACES = ["Real Face A", "Real Face B", "Real Face C", "Real Face D", "Real Face E"]

CLEAR_FEATURES = {
    "image": datasets.Features({"image": datasets.Image(), "caption": STR, "name": STR}),
    "tofu": datasets.Features({"image": datasets.Image(), "caption": STR, "question": STR, "answer": STR}),
    "perturbed": datasets.Features({"image": datasets.Image(), "caption": STR, "name": STR,
                                    "paraphrased_caption": STR, "perturbed_captions": datasets.List(STR),
                                    "perturbed_names": datasets.List(STR)}),
    "real_faces": datasets.Features({"image": datasets.Image(), "answer": STR, "options": datasets.List(STR)}),
    "real_world": datasets.Features({"question": STR, "answer": STR, "image": datasets.Image(), "prompt": STR,
                                     "options": datasets.List(STR)}),
}


def _images(persons: list[str]) -> list[dict]:
    return [{"image": picture(10 * PERSONS.index(p) + j), "caption": f"{p} stands by window {j}.", "name": p}
            for p in persons for j in range(IMAGES_PER_PERSON)]


# retain_perturbed covers a subset of the retained persons (those of no forget split), as on the hub.
RETAIN_PERTURBED = PERSONS[-2:]


def _perturbed(persons: list[str]) -> list[dict]:
    """Image rows with CLEAR's perturbed columns: a paraphrase, three perturbed captions, and
    perturbed names (four, one of them repeated, to check that at most three are used)."""
    return [{**row, "paraphrased_caption": f"By window {j} stands {row['name']}.",
             "perturbed_captions": [f"{row['name']} sits by door {j}.", f"{row['name']} runs past wall {j}.",
                                    f"{row['name']} sleeps under tree {j}."],
             "perturbed_names": [f"Other {row['name']} {k}" for k in (1, 2, 1, 3)]}
            for j, row in enumerate(_images(persons))]


def tofu_qa(person: str) -> list[dict]:
    """TOFU-like QA; the first names nobody (it is matched through its block of 20)."""
    city = f"City{PERSONS.index(person)}"
    return [{"question": f"What genre does the author born in {city} write?", "answer": "Mostly quiet fantasy."}] + [
        {"question": f"What is fact {k} about {person}?", "answer": f"{person} has fact {k}."}
        for k in range(1, TOFU_PER_PERSON)]


def _with_tofu(persons: list[str]) -> list[dict]:
    images = [{"image": r["image"], "caption": r["caption"], "question": None, "answer": None} for r in _images(persons)]
    return images + [{"image": None, "caption": None, **qa} for p in persons for qa in tofu_qa(p)]


def clear_rows() -> dict[str, list[dict]]:
    rows = {}
    for ratio, forget in CLEAR_FORGET.items():
        retain = [p for p in PERSONS if p not in forget]
        for config, persons in ((f"forget{ratio:02d}", forget), (f"retain{100 - ratio}", retain)):
            rows[config] = _images(persons)
            rows[f"{config}+tofu"] = _with_tofu(persons)
        rows[f"forget{ratio:02d}_perturbed"] = _perturbed(forget)
    rows["retain_perturbed"] = _perturbed(RETAIN_PERTURBED)
    rows["real_faces"] = [{"image": picture(400 + k), "answer": REAL_FACES[k],
                           "options": [n for n in REAL_FACES if n != REAL_FACES[k]][:3]} for k in range(3)]
    rows["real_world"] = [{"question": f"What colour is object {k}?", "answer": f"colour {k}",
                           "image": picture(500 + k), "prompt": f"What colour is object {k}? (prompt)",
                           "options": [f"colour {k + j}" for j in (1, 2, 3)]} for k in range(3)]
    return rows


def _clear_features(config: str) -> dict:
    kind = "tofu" if config.endswith("+tofu") else "perturbed" if config.endswith("_perturbed") else "image"
    return CLEAR_FEATURES.get(config) or CLEAR_FEATURES[kind]


def write_clear(root: Path, layout: str = "parquet", rows: dict | None = None) -> Path:
    rows = rows or clear_rows()
    return _write(Path(root), {c: datasets.Dataset.from_list(r, features=_features_of(c, r, {c: _clear_features(c)}))
                               for c, r in rows.items()}, layout, as_dict={"real_world"})


def _write(root: Path, configs: dict, layout: str, as_dict: set) -> Path:
    """One sub-folder per config; in the disk layout some configs are saved as a DatasetDict."""
    for config, data in configs.items():
        folder = root / config
        if layout == "parquet":
            folder.mkdir(parents=True, exist_ok=True)
            data.to_parquet(str(folder / "train-00000-of-00001.parquet"))
        elif layout == "disk":
            (datasets.DatasetDict({"train": data}) if config in as_dict else data).save_to_disk(str(folder))
        else:
            raise ValueError(f"unknown layout {layout!r}")
    return root
