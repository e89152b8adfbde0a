"""Every plugin kind through its one door, end to end, with plugins defined in this very file
and given as ``path/to/file.py:Class``: a benchmark adapter that ``prepare`` and ``run``
accept, a model preset, a method, a measure with a table of its own and an attack; the run
table, the report and the leaderboard (CSV, Markdown, HTML) show the measure's and the
attack's declared columns with no edit to reporting code."""

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from mmu_bench.api import (
    FEATURES,
    Attack,
    Benchmark,
    BenchmarkAdapter,
    ItemMeasure,
    UnlearningMethod,
    add_split_column,
    nll,
)
from mmu_bench.models.tiny import TinyLlavaProvider

HERE = Path(__file__).resolve()
PEOPLE = [("e0", "Alma Abernoy", "baker", "red"), ("e1", "Bruno Brightwell", "pilot", "blue"),
          ("e2", "Cora Castellan", "nurse", "green"), ("e3", "Dario Dunmore", "potter", "yellow"),
          ("e4", "Elsa Everly", "sailor", "purple"), ("e5", "Felix Falkner", "tailor", "orange")]
JOBS = [job for _, _, job, _ in PEOPLE]


def _three(rows: list, item: str, common: dict, question: str, sentence: str, cloze: str, value: str, pool: list):
    """One fact as a multiple-choice, a cloze and a generation row (MMU-Synth's words, which the
    tiny model's word-level tokenizer knows)."""
    others = [p for p in pool if p != value][:3]
    options = [value, *others]
    rows.append({**common, "item_id": f"{item}/mc", "format": "multiple_choice", "question": question,
                 "options": options, "answer": "A"})
    rows.append({**common, "item_id": f"{item}/cloze", "format": "cloze", "question": cloze, "options": [],
                 "answer": value})
    rows.append({**common, "item_id": f"{item}/gen", "format": "generation", "question": question, "options": [],
                 "answer": sentence})


class ToyBench(BenchmarkAdapter):
    """Six people, each a plain coloured square and a job, asked by image and by text."""

    name = "toy-bench"
    description = "six people as coloured squares"
    forget_ratios = (10, 34)
    hparams = "mmu-synth"  # the shipped defaults of the methods, by name

    def load(self, forget_ratio: float = 34, **options) -> Benchmark:
        rows = []
        for eid, person, job, colour in PEOPLE:
            image = Image.new("RGB", (32, 32), colour)
            names = [p for _, p, _, _ in PEOPLE]
            _three(rows, f"{eid}/image/name", {"entity_id": eid, "modality": "image", "view": "train", "fact": "name",
                                                "image": image}, "Who is the person in this image?",
                   f"This is {person}.", "The person in this image is __.", person, names)
            _three(rows, f"{eid}/text/job", {"entity_id": eid, "modality": "text", "view": "", "fact": "job",
                                              "image": None}, f"What is the job of {person}?",
                   f"{person} works as a {job}.", f"{person} works as a __.", job, JOBS)
        for a, b in ((2, 3), (4, 1), (3, 3)):
            _three(rows, f"general/{a}+{b}", {"entity_id": "", "modality": "text", "view": "", "fact": "sum",
                                              "image": None}, f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.",
                   f"{a} plus {b} is __.", str(a + b), ["2", "3", "4", "5", "6", "7"])
        import datasets

        data = datasets.Dataset.from_list(rows, features=FEATURES)
        forget = {eid for eid, *_ in PEOPLE[: round(len(PEOPLE) * forget_ratio / 100)]}
        fingerprint = hashlib.sha256(json.dumps([{k: v for k, v in r.items() if k != "image"} for r in rows],
                                                sort_keys=True).encode()).hexdigest()[:16]
        return Benchmark(name=self.name, forget_ratio=forget_ratio, train=add_split_column(data, forget),
                         eval=add_split_column(data, forget), forget_entities=tuple(sorted(forget)),
                         retain_entities=tuple(sorted({e for e, *_ in PEOPLE} - forget)), fingerprint=fingerprint,
                         info={"holdout": "none: a toy"})


class TinyToy(TinyLlavaProvider):
    """A preset of the tiny model: its family's class with options of its own."""

    name = "tiny-toy"
    description = "tiny-llava, trained briefly"

    def __init__(self, progress: bool = True, **options):
        super().__init__(progress, **{"base_steps": 5, "base_people": 4, "finetune_steps": 10, **options})


class ToyAscent(UnlearningMethod):
    name = "toy-ascent"

    def loss(self, ctx, batch):
        return -nll(ctx.model, batch.forget)


class NonEmpty(ItemMeasure):
    name = "toy_nonempty"
    description = "the output is not empty"
    formats = ("generation",)
    higher_is_better = True
    table = "Toy outputs"
    label = "non-empty"
    explain = "Non-empty: the share of answers that say something."

    def item(self, record, references):
        return float(bool(record["output"].strip()))


class Before(Attack):
    name = "toy_before"
    description = "no attack at all: the attacked task's score as it was"
    columns = ("toy_before", "toy_unshown")
    labels = {"toy_before": "toy: score before"}
    explain = "Toy: the attacked task's score, unattacked."

    def run(self, target):
        return {"toy_before": target.score(target.records), "toy_unshown": 0.0}


def spec(cls) -> str:
    return f"{HERE}:{cls.__name__}"


TOY = ["--benchmark", spec(ToyBench), "--model", spec(TinyToy), "--forget-ratio", "34", "--min-vanilla-mc", "0",
       "--quiet", "--trajectory", "0"]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    from mmu_bench.cli import main

    assert main(["prepare", *TOY]) == 0
    out = tmp_path_factory.mktemp("toy-runs")
    assert main(["run", "--method", spec(ToyAscent), "--method-arg", "steps=2", "--measure", spec(NonEmpty),
                 "--attack", spec(Before), *TOY, "--output-dir", str(out)]) == 0
    (folder,) = (out / "toy-bench" / "tiny-toy" / "toy-ascent").iterdir()
    return out, folder


@pytest.mark.slow
def test_a_benchmark_a_model_and_a_method_from_files_run_and_are_recorded(toy_run):
    _, folder = toy_run
    result = json.loads((folder / "results.json").read_text())
    assert result["benchmark"]["name"] == "toy-bench" and result["benchmark"]["forget_entities"] == ["e0", "e1"]
    assert result["model"]["name"] == "tiny-toy" and result["method"]["name"] == "toy-ascent"
    assert result["method"]["origin"] == result["benchmark"]["plugin"]["origin"] == f"file {HERE}"
    assert result["model"]["plugin"]["origin"] == f"file {HERE}"
    assert result["method"]["source_sha256"] == hashlib.sha256(HERE.read_bytes()).hexdigest()
    assert result["method"]["config"]["steps"] == 2
    assert set(result["dimensions"]["unlearned"]) == {"visual_forgetting", "textual_retention", "retained_vqa",
                                                      "general_utility"}
    assert set(result["scores"]) == {"unlearned", "vanilla", "oracle", "visual_oracle"}


@pytest.mark.slow
def test_the_run_table_and_report_show_the_declared_table_and_columns(toy_run):
    _, folder = toy_run
    table = (folder / "table.md").read_text()
    own = table.split("### Toy outputs")[1].split("###")[0]
    assert "| toy_nonempty |" in own.splitlines()[2] and "toy_nonempty: the output is not empty." in own
    attacks = table.split("### Does forgetting survive an adversary?")[1]
    assert "| toy_before | toy_before |" in attacks and "Toy: the attacked task's score, unattacked." in attacks
    assert (folder / "Toy_outputs.csv").read_text().startswith("task,dimension,toy_nonempty,against")
    report = (folder / "report.html").read_text()
    assert "toy_nonempty" in report and "Toy: the attacked task&#x27;s score, unattacked." in report


@pytest.mark.slow
def test_the_leaderboard_shows_what_the_measure_and_the_attack_declare(toy_run, tmp_path):
    from mmu_bench.reporting.leaderboard import build

    out, _ = toy_run
    build([str(out)], str(tmp_path), with_plot=False)
    board = (tmp_path / "toy-bench__tiny-toy.md").read_text()
    own = board.split("## Toy outputs")[1].split("\n## ")[0]
    assert own.startswith("\n\nNon-empty: the share of answers that say something.\n")
    assert "| visual forgetting: non-empty | textual retention: non-empty |" in own
    attacked = board.split("## Does forgetting survive an adversary?")[1]
    assert "Lower is better. Toy: the attacked task's score, unattacked. The gold reference's row" in attacked
    header = next(line for line in attacked.splitlines() if line.startswith("| method"))
    assert header == "| method | forget % | toy: score before |"  # toy_unshown: declared, not labelled
    rows = list(csv.DictReader(io.StringIO((tmp_path / "toy-bench__tiny-toy.csv").read_text())))
    (row,) = [r for r in rows if r["method"] == "toy-ascent"]
    assert row["attack/toy_before_mean"] and row["attack/toy_unshown_mean"] == "0.0000"
    assert float(row["visual_forgetting/toy_nonempty_mean"]) >= 0
    page = (tmp_path / "index.html").read_text()
    assert "toy: score before" in page and "visual forgetting: non-empty" in page and "Toy outputs" in page
