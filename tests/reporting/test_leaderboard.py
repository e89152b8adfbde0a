"""`mmu-bench leaderboard`: from results.json files only; merges, never duplicates, idempotent."""

import csv
import io
import shutil
import uuid
from pathlib import Path

import pytest

from mmu_bench.api.measure import Value
from mmu_bench.cli import main
from mmu_bench.reporting import leaderboard
from mmu_bench.runs import results
from mmu_bench.runs.results import RunResult, TaskInfo

SCORE = ["mc_loglik_acc", "cloze_acc", "rougeL"]
MEASURES = ["mc_acc", "mc_loglik_acc", "cloze_acc", "rougeL"]
TASKS = {  # name: (dimension, higher is better, order)
    "visual_forgetting": ("visual_forgetting", False, 1),
    "textual_retention": ("textual_retention", True, 2),
    "retained_vqa": ("retained_vqa", True, 3),
    "general_utility": ("general_utility", True, 4),
}


def _scores(value, tasks=TASKS):
    return {task: {m: Value(value, 0.0, 10) for m in MEASURES} for task in tasks}


def fake_result(method="ga", seed=0, ratio=10, forget=0.5, keep=0.8, sha="a" * 64, config=None, version="1.1",
                benchmark="mmu-synth", model="tiny-llava", tasks=TASKS):
    """A results.json as a run writes it, through the results schema."""
    infos = {name: TaskInfo(version, dim, True, hib, MEASURES, {m: hib for m in MEASURES}, SCORE, order,
                            "retained VQA" if dim == "retained_vqa" else "")
             for name, (dim, hib, order) in tasks.items()}
    lower = {name for name, (_, hib, _) in tasks.items() if not hib}
    scores = {"unlearned": _scores(keep, tasks), "vanilla": _scores(0.9, tasks), "oracle": _scores(0.9, tasks)}
    for name in lower:
        scores["unlearned"][name] = _scores(forget, [name])[name]
        scores["oracle"][name] = _scores(0.3, [name])[name]
    dims = {who: results.dimension_scores(per, infos) for who, per in scores.items()}
    spec = results.normalisation(dims, infos, chance={infos[n].dimension: 0.25 / 3 for n in lower})
    normalised = results.normalise(dims["unlearned"], spec)
    return RunResult(
        run_uid=uuid.uuid4().hex, run_key="k", run_id=f"run-{method}-{seed}", seed=seed,
        benchmark={"name": benchmark, "forget_ratio": ratio, "fingerprint": "f"},
        model={"name": model, "references": {"vanilla": {"path": "v", "recipe_hash": "vh"},
                                             "oracle": {"path": "o", "recipe_hash": "oh"}}},
        method={"name": method, "version": "1", "source_sha256": sha, "config": config or {"lr": 1e-4}},
        tasks=infos, scores=scores, dimensions=dims, normalisation=spec, normalised=normalised,
        overall=results.overall(normalised, results.dimension_order(infos)),
    )


def write(root, result):
    folder = root / result.benchmark["name"] / result.model["name"] / result.method["name"] / result.run_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(result.to_json())
    return folder


def read_csv(path):
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_mean_and_std_over_seeds_by_hand_and_reference_rows(tmp_path):
    runs = tmp_path / "runs"
    write(runs, fake_result(seed=0, forget=0.4))
    write(runs, fake_result(seed=1, forget=0.6))
    write(runs, fake_result(method="npo", seed=0, forget=0.3))
    leaderboard.build([str(runs)], str(tmp_path / "lb"))
    rows = read_csv(tmp_path / "lb" / "mmu-synth__tiny-llava.csv")
    ga = next(r for r in rows if r["method"] == "ga")
    assert ga["n_seeds"] == "2" and ga["seeds"] == "0 1"
    assert float(ga["visual_forgetting/score_mean"]) == pytest.approx(0.5)
    assert float(ga["visual_forgetting/score_std"]) == pytest.approx(0.1414, abs=1e-4)  # stdev(0.4, 0.6)
    assert float(ga["visual_forgetting/mc_loglik_acc_mean"]) == pytest.approx(0.5)
    assert {r["method"] for r in rows} == {"ga", "npo", "vanilla (reference)", "oracle (reference)"}
    vanilla = next(r for r in rows if r["method"] == "vanilla (reference)")
    assert float(vanilla["visual_forgetting/normalised_mean"]) == 0.0 and float(vanilla["overall_mean"]) == 0.0
    overall = [float(r["overall_mean"]) for r in rows]
    assert overall == sorted(overall, reverse=True)  # sorted by the overall score
    assert (tmp_path / "lb" / "mmu-synth__tiny-llava.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| ga | 10 | 2 |" in (tmp_path / "lb" / "mmu-synth__tiny-llava.md").read_text()


def test_rebuilding_is_idempotent(tmp_path):
    runs = tmp_path / "runs"
    write(runs, fake_result(seed=0))
    write(runs, fake_result(seed=1, forget=0.2))
    leaderboard.build([str(runs)], str(tmp_path / "lb"))
    first = {p.name: p.read_bytes() for p in (tmp_path / "lb").iterdir()}
    leaderboard.build([str(runs)], str(tmp_path / "lb"))
    assert {p.name: p.read_bytes() for p in (tmp_path / "lb").iterdir()} == first


def test_merging_folders_neither_loses_nor_duplicates_a_run(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shared = write(a, fake_result(seed=0, forget=0.4))
    write(a, fake_result(seed=1, forget=0.6))
    write(b, fake_result(seed=2, forget=0.5))
    shutil.copytree(shared, b / "copy" / shared.name)  # the same run, found twice
    _, _, collected = leaderboard.build([str(a), str(b)], str(tmp_path / "lb"))
    assert len(collected.runs) == 3 and collected.duplicates == 1
    ga = next(r for r in read_csv(tmp_path / "lb" / "mmu-synth__tiny-llava.csv") if r["method"] == "ga")
    assert ga["n_seeds"] == "3" and ga["seeds"] == "0 1 2"


def test_different_task_versions_or_configs_never_share_a_row(tmp_path):
    runs = tmp_path / "runs"
    write(runs, fake_result(seed=0))
    write(runs, fake_result(seed=1, version="2.1"))
    write(runs, fake_result(seed=2, config={"lr": 1e-3}))
    _, notes, _ = leaderboard.build([str(runs)], str(tmp_path / "lb"))
    ga = [r for r in read_csv(tmp_path / "lb" / "mmu-synth__tiny-llava.csv") if r["method"] == "ga"]
    assert len(ga) == 3 and all(r["n_seeds"] == "1" for r in ga)
    assert any("different task versions" in n for n in notes)
    # The configurations that differ are named, so a reader sees what each row is.
    assert sorted(r["variant"] for r in ga) == ["lr=0.0001", "lr=0.0001", "lr=0.001"]


def test_variants_name_only_the_settings_that_differ(tmp_path):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        write(runs, fake_result(method="mmunlearner", seed=seed, config={"lr": 1e-4, "mask": "saliency"}))
        ablation = fake_result(method="mmunlearner", seed=seed, config={"lr": 1e-4, "mask": "random"}, forget=0.7)
        ablation.run_id += "-random"
        write(runs, ablation)
    write(runs, fake_result(method="npo", config={"lr": 1e-4}))
    leaderboard.build([str(runs)], str(tmp_path / "lb"))
    rows = {(r["method"], r["variant"]): r for r in read_csv(tmp_path / "lb" / "mmu-synth__tiny-llava.csv")}
    assert set(rows) >= {("mmunlearner", "mask=saliency"), ("mmunlearner", "mask=random"), ("npo", "")}
    assert rows[("mmunlearner", "mask=random")]["n_seeds"] == "2"
    assert "| mmunlearner (mask=random) | 10 | 2 |" in (tmp_path / "lb" / "mmu-synth__tiny-llava.md").read_text()


def test_spreadsheet_formulas_are_neutralised_and_names_in_paths_sanitised(tmp_path):
    runs = tmp_path / "runs"
    write(runs, fake_result(method="=HYPERLINK(x)", benchmark="bad/../name", model="m@1"))
    written, _, _ = leaderboard.build([str(runs)], str(tmp_path / "lb"))
    names = sorted(p.name for p in written)
    assert names[0] == "bad_.._name__m_1.csv" and all(p.parent == tmp_path / "lb" for p in written)
    rows = read_csv(tmp_path / "lb" / "bad_.._name__m_1.csv")
    assert any(r["method"] == "'=HYPERLINK(x)" for r in rows)
    assert not any(r["method"].startswith(("=", "+", "-", "@")) for r in rows)


def test_cli_reports_and_rejects_missing_folders(tmp_path, capsys):
    runs = tmp_path / "runs"
    write(runs, fake_result())
    assert main(["leaderboard", "--runs", str(runs), "--output", str(tmp_path / "lb"), "--no-plot"]) == 0
    assert "1 runs from" in capsys.readouterr().out
    assert main(["leaderboard", "--runs", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_schema_1_results_join_the_board_and_newer_ones_are_reported(tmp_path):
    runs = tmp_path / "runs"
    old = runs / "old" / "results.json"
    old.parent.mkdir(parents=True)
    shutil.copy(Path(__file__).parents[1] / "fixtures" / "results_v1.json", old)
    newer = runs / "newer" / "results.json"
    newer.parent.mkdir()
    newer.write_text('{"schema_version": 99}')
    _, _, collected = leaderboard.build([str(runs)], str(tmp_path / "lb"), with_plot=False)
    assert len(collected.runs) == 1
    assert any("schema_version 99" in bad and str(newer) in bad for bad in collected.unreadable)
    rows = {r["method"]: r for r in read_csv(tmp_path / "lb" / "mmu-synth__tiny-llava.csv")}
    # What the schema-1 leaderboard computed from the same file.
    assert float(rows["npo"]["overall_mean"]) == pytest.approx(0.7670, abs=1e-4)
    assert float(rows["oracle (reference)"]["overall_mean"]) == pytest.approx(0.6993, abs=1e-4)
    assert float(rows["oracle (reference)"]["textual_retention/normalised_mean"]) == pytest.approx(0.3676, abs=1e-4)


def test_any_number_of_dimensions_in_their_order(tmp_path):
    five = {**TASKS, "privacy": ("privacy", False, 0)}  # a fifth dimension, shown first, lower is better
    runs = tmp_path / "runs"
    write(runs, fake_result(tasks=five))
    leaderboard.build([str(runs)], str(tmp_path / "lb"))
    header = (tmp_path / "lb" / "mmu-synth__tiny-llava.csv").read_text().splitlines()[0].split(",")
    dims = [c[: -len("/score_mean")] for c in header if c.endswith("/score_mean")]
    assert dims == ["privacy", "visual_forgetting", "textual_retention", "retained_vqa", "general_utility"]
    md = (tmp_path / "lb" / "mmu-synth__tiny-llava.md").read_text()
    assert ("| overall | 95 % CI | p vs best | privacy ↓ | visual forgetting ↓ | textual retention ↑ | retained VQA ↑ "
            "| general utility ↑ |") in md
    assert (tmp_path / "lb" / "mmu-synth__tiny-llava.png").stat().st_size > 0


def test_the_information_table_shows_forget_quality_and_privleak_over_seeds(tmp_path):
    runs = tmp_path / "runs"
    for seed, quality in ((0, 0.2), (1, 0.4)):
        result = fake_result(seed=seed)
        for task in ("visual_forgetting", "textual_retention"):
            result.tasks[task].measures += ["forget_quality", "privleak_min_k_pp"]
            result.scores["unlearned"][task]["forget_quality"] = Value(quality, None, 10, against="oracle")
            result.scores["unlearned"][task]["privleak_min_k_pp"] = Value(-quality, None, 10, against="oracle")
            result.scores["oracle"][task]["privleak_min_k_pp"] = Value.missing("the oracle model is the reference")
        write(runs, result)
    leaderboard.build([str(runs)], str(tmp_path / "lb"), with_plot=False)
    ga = next(r for r in read_csv(tmp_path / "lb" / "mmu-synth__tiny-llava.csv") if r["method"] == "ga")
    assert float(ga["visual_forgetting/forget_quality_mean"]) == pytest.approx(0.3)
    assert float(ga["visual_forgetting/forget_quality_std"]) == pytest.approx(0.1414, abs=1e-4)
    text = (tmp_path / "lb" / "mmu-synth__tiny-llava.md").read_text().split("## Does the information remain?")[1]
    assert "| method | forget % | visual forgetting: forget quality | visual forgetting: PrivLeak Min-K%++ |" in text
    assert "| ga | 10 | 0.300 ± 0.141 | -0.300 ± 0.141 | 0.300 ± 0.141 | -0.300 ± 0.141 |" in text
    assert "| oracle (reference) | 10 | - | - | - | - |" in text  # compared with itself: no value


def test_matched_forgetting_is_averaged_over_the_seeds_that_reached_it(tmp_path):
    runs = tmp_path / "runs"
    for seed, (top, at_half, area) in enumerate([(0.9, 0.8, 0.6), (0.4, None, 0.3), (0.7, 0.6, 0.5)]):
        result = fake_result(seed=seed)
        result.trade_off = {"matched": {"0.5": {"textual_retention": at_half}}, "max_forgetting": top,
                            "auc": {"textual_retention": area}}
        write(runs, result)
    leaderboard.build([str(runs)], str(tmp_path / "lb"))
    (row,) = [r for r in read_csv(tmp_path / "lb" / "mmu-synth__tiny-llava.csv") if r["kind"] == "method"]
    assert float(row["matched/0.5/textual_retention_mean"]) == pytest.approx(0.7)  # (0.8 + 0.6) / 2
    assert float(row["matched/0.5/reached_mean"]) == pytest.approx(2 / 3, abs=1e-4)  # 4 decimals in the CSV
    assert float(row["auc/textual_retention_mean"]) == pytest.approx(1.4 / 3, abs=1e-4)
    md = (tmp_path / "lb" / "mmu-synth__tiny-llava.md").read_text()
    line = next(x for x in md.split("### Normalised forgetting 0.5")[1].splitlines() if x.startswith("| ga |"))
    assert "| 2/3 |" in line and "0.700 ± 0.141" in line


def test_the_page_holds_every_board_row_escaped_with_links_to_the_reports_present(tmp_path):
    import re

    runs = tmp_path / "runs"
    with_report = write(runs, fake_result(seed=0))
    write(runs, fake_result(seed=1, forget=0.6))
    write(runs, fake_result(method="npo", seed=0, forget=0.3, config={"note": "<script>alert(1)</script>"}))
    write(runs, fake_result(method="npo", seed=1, forget=0.3, config={"note": "plain"}))
    (with_report / "report.html").write_text("<p>a run's report</p>")
    # The runs are not under the page's folder: without --link-base nothing links to them.
    leaderboard.build([str(runs)], str(runs / "boards"), with_plot=False)
    assert "report.html" not in (runs / "boards" / "index.html").read_text()
    # Under the page's own folder: linked relatively.
    leaderboard.build([str(runs)], str(runs), with_plot=False)
    assert re.findall(r'<a href="([^"]+)">seed (\d+)</a>', (runs / "index.html").read_text()) == [
        (f"mmu-synth/tiny-llava/ga/{with_report.name}/report.html", "0")]
    # Published elsewhere: under the --link-base given.
    leaderboard.build([str(runs)], str(tmp_path / "site"), with_plot=False, link_base="https://example.org/runs/")
    assert re.findall(r'<a href="([^"]+)">seed', (tmp_path / "site" / "index.html").read_text()) == [
        f"https://example.org/runs/mmu-synth/tiny-llava/ga/{with_report.name}/report.html"]
    leaderboard.build([str(runs)], str(runs / "boards"), with_plot=False, link_base="..")
    page = (runs / "boards" / "index.html").read_text()
    rows = read_csv(runs / "boards" / "mmu-synth__tiny-llava.csv")
    main_table = re.search(r'<table class="sortable" id=mmu-synth__tiny-llava-0>(.*?)</table>', page, re.S).group(1)
    assert main_table.count("<tr") == len(rows) + 1  # the header and one row per CSV row
    assert main_table.count('<tr class="reference">') == sum(r["kind"] == "reference" for r in rows) == 2
    links = re.findall(r'<a href="([^"]+)">seed (\d+)</a>', page)
    assert links == [(f"../mmu-synth/tiny-llava/ga/{with_report.name}/report.html", "0")]  # seed 1 has no report
    assert (runs / "boards" / links[0][0]).resolve() == (with_report / "report.html").resolve()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    moved = tmp_path / "elsewhere"
    shutil.copytree(runs, moved)
    leaderboard.build([str(moved)], str(moved / "boards"), with_plot=False, link_base="..")
    assert (moved / "boards" / "index.html").read_text() == page  # relative links: the same page where it was copied
