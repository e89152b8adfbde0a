"""The meta-evaluation's files and its section of the leaderboard page (no model: a document
written by hand)."""

import csv
import json

from mmu_bench.reporting import meta_eval
from mmu_bench.runs import meta


def _doc(knows=(0.9, 0.7), never=(0.3, 0.1)):
    how = {"higher_is_better": False, "best": None, "task_higher_is_better": False, "label": "acc", "table": "main",
           "description": "accuracy"}
    keeps = {**how, "higher_is_better": True, "task_higher_is_better": True}
    models = {f"k{i}": {"kind": "pool", "values": {"vf": {"acc": v, "mia": 0.5}, "tr": {"acc": 0.8}}, "attacked": {}}
              for i, v in enumerate(knows)}
    models.update({f"n{i}": {"kind": "pool", "values": {"vf": {"acc": v, "mia": 0.5}, "tr": {"acc": 0.1}},
                             "attacked": {"relearn": {"vf": {"acc": v, "mia": 0.5}}}} for i, v in enumerate(never)})
    models["unlearned ga"] = {"kind": "unlearned", "method": "ga", "values": {"vf": {"acc": 0.2, "mia": 0.5}},
                              "attacked": {"relearn": {"vf": {"acc": 0.8, "mia": 0.5}}}}
    return meta.document(benchmark="mmu-synth", model="tiny-llava",
                         meta_config={"resamples": 200, "seeds": [1, 2], "budgets": [], "methods": ["ga"]},
                         sides={meta.VISUAL: "vf", meta.TEXT: "tr"},
                         pools={"vf": {"knows": ["k0", "k1"], "never": ["n0", "n1"]},
                                "tr": {"knows": ["k0", "k1"], "never": ["n0", "n1"]}},
                         measures={"vf": {"acc": how, "mia": {**how, "label": "MIA"}}, "tr": {"acc": keeps}},
                         models=models, attacks={"relearn": {"lr": 3e-05}})


def test_the_files_rank_the_measures(tmp_path):
    written = meta_eval.write(_doc(), tmp_path, with_plot=False)
    stem = "meta-eval__mmu-synth__tiny-llava"
    assert sorted(p.name for p in written) == [f"{stem}.csv", f"{stem}.json", f"{stem}.md"]
    rows = list(csv.DictReader((tmp_path / f"{stem}.csv").open()))
    assert [(r["side"], r["measure"]) for r in rows] == [("visual_forgetting", "acc"), ("visual_forgetting", "mia"),
                                                          ("textual_retention", "acc")]
    by = {(r["side"], r["measure"]): r for r in rows}
    # acc separates the pools (AUC 1) but relearning brings the unlearned model back by 1 gap:
    # R = 0.05 / 1.0; mia reads every model alike: AUC 0.5, no gap, no robustness
    assert float(by["visual_forgetting", "acc"]["faithfulness"]) == 1.0
    assert float(by["visual_forgetting", "acc"]["relearn_robustness"]) == 0.05
    assert float(by["visual_forgetting", "mia"]["faithfulness"]) == 0.5
    assert by["visual_forgetting", "mia"]["robustness"] == ""
    text = (tmp_path / f"{stem}.md").read_text()
    assert text.index("| acc | 1.000 |") < text.index("| mia | 0.500 |")  # ranked by overall
    assert json.loads((tmp_path / f"{stem}.json").read_text())["models"]["unlearned ga"]["method"] == "ga"


def test_the_section_goes_into_the_page_once_and_is_replaced(tmp_path):
    page = tmp_path / "index.html"
    page.write_text("<html><body>\n<h1>boards</h1>\n<script>sort()</script>\n</body></html>\n")
    meta_eval.write(_doc(), tmp_path, with_plot=False)
    first = page.read_text()
    assert first.count('<section id="meta-eval__mmu-synth__tiny-llava">') == 1
    assert first.index("meta-eval__mmu-synth__tiny-llava") < first.index("<script>")
    meta_eval.write(_doc(never=(0.8, 0.95)), tmp_path, with_plot=False)
    second = page.read_text()
    assert second.count('<section id="meta-eval__mmu-synth__tiny-llava">') == 1 and second != first
    # the page the leaderboard writes carries the same section, read back from the JSON
    [(stem, title, section)] = meta_eval.sections_in(tmp_path)
    assert section in second and title == "Meta-evaluation: mmu-synth / tiny-llava"
