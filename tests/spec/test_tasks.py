"""Task files: measures, score and direction are data; bad files are named with the field at fault."""

import textwrap

import pytest

from mmu_bench.core.errors import MMUBenchError
from mmu_bench.spec.tasks import load_tasks

BASE = """
prompt_version: 1
prompts: {}
formats: [cloze]
measures: [cloze_acc]
score: [cloze_acc]
"""


def write(folder, name, body, base=BASE):
    (folder / "_base.yaml").write_text(textwrap.dedent(base))
    (folder / f"{name}.yaml").write_text("include: _base.yaml\n" + textwrap.dedent(body))
    return folder / f"{name}.yaml"


TASK = """
task: t
version: 2
dimension: d
higher_is_better: false
data: {split: forget}
"""


def test_the_shipped_tasks_name_their_measures_and_order():
    tasks = {t.name: t for t in load_tasks()}
    accuracy = ("mc_acc", "mc_loglik_acc", "cloze_acc", "rougeL")
    attacks = ("loss", "zlib", "min_k", "min_k_pp")
    assert tasks["visual_forgetting"].measures == (*accuracy, "truth_ratio_forget", "forget_quality",
                                                   *(f"mia_auc_{a}" for a in attacks), *(f"privleak_{a}" for a in attacks))
    assert tasks["visual_holdout"].measures == accuracy and not tasks["visual_holdout"].primary
    # The image side is compared with the gold reference, the text side with the vanilla model.
    assert tasks["visual_forgetting"].options["privleak_min_k_pp"] == {"holdout": "visual_holdout", "against": "gold"}
    assert tasks["textual_retention"].options["forget_quality"] == {"against": "vanilla"}
    assert tasks["textual_retention"].options["mia_auc_loss"] == {"holdout": "textual_holdout"}
    assert tasks["visual_forgetting"].score == ("mc_loglik_acc", "cloze_acc", "rougeL")
    assert not tasks["visual_forgetting"].higher_is_better and tasks["textual_retention"].higher_is_better
    assert {n for n, t in tasks.items() if t.knowledge_check} == {"visual_forgetting", "textual_retention"}
    primaries = sorted((t for t in tasks.values() if t.primary), key=lambda t: t.order)
    assert [t.dimension for t in primaries] == ["visual_forgetting", "textual_retention", "retained_vqa",
                                                "general_utility"]


def test_a_direction_set_in_the_yaml_wins(tmp_path):
    write(tmp_path, "t", TASK + "measures: [cloze_acc, {measure: rougeL, higher_is_better: true}]\n")
    (task,) = load_tasks(directory=tmp_path)
    assert task.measures == ("cloze_acc", "rougeL") and task.directions == {"rougeL": True}

    class Knowledge:
        name, higher_is_better = "cloze_acc", None

    class Rouge:
        name, higher_is_better = "rougeL", False

    assert task.direction(Knowledge) is False  # the task's direction
    assert task.direction(Rouge) is True  # the YAML's


@pytest.mark.parametrize("extra,message", [
    ("score: [rougeL]\n", "field 'score' names rougeL, not in 'measures'"),
    ("measures: [cloze_acc, cloze_acc]\n", "field 'measures' names 'cloze_acc' twice"),
    ("measures: [{measure: rougeL, higher_is_better: maybe}]\nscore: []\n",
     "higher_is_better of 'rougeL' must be true or false"),
    ("measures: [{metric: rougeL}]\nscore: []\n", "an entry must be a name or a mapping with 'measure'"),
    ("knowledge_check: true\nknowledge_measure: mc_acc\n", "'knowledge_measure' must name one of its measures"),
    ("higher_is_better: lower\n", "field 'higher_is_better' must be true or false"),
])
def test_bad_task_files_name_the_field(tmp_path, extra, message):
    path = write(tmp_path, "t", TASK + extra)
    with pytest.raises(MMUBenchError, match=f"{path}: .*{message}"):
        load_tasks(directory=tmp_path)


def test_each_dimension_needs_exactly_one_primary_task(tmp_path):
    write(tmp_path, "t", TASK)
    write(tmp_path, "u", TASK.replace("task: t", "task: u"))
    with pytest.raises(MMUBenchError, match="dimension 'd' needs exactly one primary task, found t, u"):
        load_tasks(directory=tmp_path)
    assert len(load_tasks(["t"], directory=tmp_path)) == 1  # a chosen subset is not checked


def test_a_task_file_that_is_not_a_mapping_is_named(tmp_path):
    write(tmp_path, "t", TASK)
    (tmp_path / "t.yaml").write_text("- just\n- a list\n")
    with pytest.raises(MMUBenchError, match=f"task file {tmp_path / 't.yaml'} must hold a mapping, got list"):
        load_tasks(directory=tmp_path)
    (tmp_path / "t.yaml").write_text("task: [unclosed\n")
    with pytest.raises(MMUBenchError, match="task file .*t.yaml is not valid YAML"):
        load_tasks(directory=tmp_path)
