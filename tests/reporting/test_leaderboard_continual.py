"""The leaderboard's continual rows and section, its "Forget-set size" section, and a continual
run's table.md and report.html, on hand-built runs whose every expected number is worked out by
hand below (a stream of two requests: person a, then person b; one item each, measure ``acc``)."""

import csv
import io
import json
import re
import uuid

import pytest

from mmu_bench.api.measure import Value
from mmu_bench.reporting import leaderboard, report, tables
from mmu_bench.runs import continual as stream
from mmu_bench.runs import results
from mmu_bench.runs.results import Normalisation, RunResult, TaskInfo

TASKS = {"visual_forgetting": (False, 1), "textual_retention": (True, 2), "general_utility": (True, 3)}
INFOS = {name: TaskInfo("1", name, True, hib, ["acc"], {"acc": hib}, ["acc"], order)
         for name, (hib, order) in TASKS.items()}
ORDER = list(TASKS)
CHANCE = {name: 0.25 for name in TASKS}
# Every normalisation here: the vanilla model scores 1 everywhere, the gold reference 0 on forgetting.
NORM = {"visual_forgetting": Normalisation(False, 1.0, "visual_oracle", 0.0),
        "textual_retention": Normalisation(True, 1.0), "general_utility": Normalisation(True, 1.0)}


def clusters(vf: dict, tr: dict, gu: dict) -> dict:
    return {"visual_forgetting": {p: {"acc": [v, 1]} for p, v in vf.items()},
            "textual_retention": {p: {"acc": [v, 1]} for p, v in tr.items()},
            "general_utility": {f"item:{i}": {"acc": [v, 1]} for i, v in gu.items()}}


VANILLA = clusters({"a": 1.0, "b": 1.0}, {"a": 1.0, "b": 1.0}, {"g1": 1.0, "g2": 1.0})
GOLD = clusters({"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 1.0}, {"g1": 1.0, "g2": 1.0})
# After request 1 (a): a forgotten, b's images at 0.6 (early forgetting 1 - 0.6 = 0.4), g2 at half:
# over a, forgetting 1, textual 1, general 0.75: overall 3 / (1 + 1 + 4/3) = 0.9.
AFTER_1 = clusters({"a": 0.0, "b": 0.6}, {"a": 1.0, "b": 1.0}, {"g1": 1.0, "g2": 0.5})
# The final models. Seed 0: forgetting (0.2 + 0) / 2 = 0.1 -> 0.9, textual 0.75, general 0.5: 3 / (10/9 + 4/3 + 2)
# = 0.675; a's forgetting rose 0 -> 0.2 (reversal 0.2). Seed 1: 1, 1, 0.5 -> 0.75; reversal 0.
FINAL = {0: clusters({"a": 0.2, "b": 0.0}, {"a": 0.5, "b": 1.0}, {"g1": 1.0, "g2": 0.0}),
         1: clusters({"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 1.0}, {"g1": 1.0, "g2": 0.0})}
# The one-shot runs: forgetting 1, textual 0.75, general 1 -> 3 / (1 + 4/3 + 1) = 0.9.
ONE_SHOT = clusters({"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 0.5}, {"g1": 1.0, "g2": 1.0})


def _scores(sums: dict) -> dict:
    """Each task's mean over its items, as results.json holds it."""
    return {task: {"acc": Value(sum(v["acc"][0] for v in per.values()) / len(per), 0.0, len(per))}
            for task, per in sums.items()}


def _result(seed: int, sums: dict, method: str = "ga", run_key: str = "", ratio: int = 10, **fields) -> RunResult:
    scores = {"unlearned": _scores(sums), "vanilla": _scores(VANILLA), "visual_oracle": _scores(GOLD)}
    dims = {who: results.dimension_scores(per, INFOS) for who, per in scores.items()}
    normalised = results.normalise(dims["unlearned"], NORM)
    return RunResult(
        run_uid=uuid.uuid4().hex, run_key=run_key or f"{method}-{seed}", run_id=f"run-{method}-{seed}-{uuid.uuid4().hex[:6]}",
        seed=seed, benchmark={"name": "mmu-synth", "forget_ratio": ratio, "fingerprint": "f"},
        model={"name": "tiny-llava", "references": {"vanilla": {"path": "v", "recipe_hash": "vh"},
                                                    "visual_oracle": {"path": "o", "recipe_hash": "oh"}}},
        method={"name": method, "version": "1", "source_sha256": "a" * 64, "config": {"lr": 1e-4}},
        tasks=INFOS, scores=scores, dimensions=dims, normalisation=NORM, normalised=normalised,
        overall=results.overall(normalised, ORDER), clusters=sums, **fields)


def one_shot_run(seed: int, sums: dict = ONE_SHOT, key: str = "", **kw) -> RunResult:
    return _result(seed, sums, run_key=key or f"one-shot-{seed}", **kw)


def stream_lines(final: dict) -> list[dict]:
    return [{"request": 0, "people": [], "model": "vanilla", "clusters": VANILLA},
            {"request": 1, "people": ["a"], "clusters": AFTER_1, "gold": GOLD, "gold_role": "visual_oracle"},
            {"request": 2, "people": ["b"], "clusters": final, "gold": GOLD, "gold_role": "visual_oracle"}]


def continual_run(seed: int, final: dict | None = None, key: str = "", **kw) -> tuple[RunResult, list[dict]]:
    """A stream of two requests whose final model is ``final`` (its one-shot run's key: ``key``)."""
    lines = stream_lines(final or FINAL[seed])
    section = {**stream.summary(lines, INFOS, CHANCE), "one_shot_key": key or f"one-shot-{seed}",
               "split": {"requests": 2, "split_seed": 0}, "gold_role": "visual_oracle"}
    return _result(seed, final or FINAL[seed], run_key=f"stream-{seed}", continual=section, **kw), lines


def write(root, result: RunResult, lines: list[dict] | None = None):
    folder = root / result.method["name"] / result.run_id
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(result.to_json())
    if lines:
        (folder / stream.CONTINUAL_FILE).write_text(stream.to_jsonl(lines))
    return folder


def board(tmp_path, runs, plot=False):
    root = tmp_path / "runs"
    for run in runs:
        write(root, *run) if isinstance(run, tuple) else write(root, run)
    _, notes, _ = leaderboard.build([str(root)], str(tmp_path / "lb"), with_plot=plot)
    text = (tmp_path / "lb" / "mmu-synth__tiny-llava.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    return rows, (tmp_path / "lb" / "mmu-synth__tiny-llava.md").read_text(), notes


def section_lines(md: str, title: str) -> list[str]:
    text = md.split(f"## {title}\n")[1].split("\n## ")[0]
    return [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| method")]


def test_continual_rows_never_share_a_row_with_one_shot_runs_and_show_the_stream_by_hand(tmp_path):
    rows, md, notes = board(tmp_path, [one_shot_run(0), one_shot_run(1), continual_run(0), continual_run(1)],
                            plot=True)
    one, = [r for r in rows if r["kind"] == "method"]
    row, = [r for r in rows if r["kind"] == "continual"]
    assert one["n_seeds"] == "2" and float(one["overall_mean"]) == pytest.approx(0.9, abs=1e-4)
    assert one["requests"] == "" and row["requests"] == "2" and row["seeds"] == "0 1"
    assert float(row["overall_mean"]) == pytest.approx((0.675 + 0.75) / 2, abs=1e-4)
    assert float(row["visual_forgetting/normalised_mean"]) == pytest.approx(0.95, abs=1e-4)  # (0.9 + 1) / 2
    assert float(row["reversal_mean"]) == pytest.approx(0.1, abs=1e-4)  # (0.2 + 0) / 2
    assert float(row["early_forgetting_mean"]) == pytest.approx(0.4, abs=1e-4)
    # textual retention over a and b: 1, 1, 0.75 (seed 0; slope -0.125) and 1, 1, 1 (seed 1)
    assert float(row["erosion/textual_retention_mean"]) == pytest.approx(-0.0625, abs=1e-4)
    assert float(row["erosion/general_utility_mean"]) == pytest.approx(-0.25, abs=1e-4)  # 1, 0.75, 0.5
    assert float(row["after/1/overall_mean"]) == pytest.approx(0.9, abs=1e-4)
    # the gap: 0.675 - 0.9 and 0.75 - 0.9
    assert float(row["continual_gap_mean"]) == pytest.approx(-0.1875, abs=1e-4)
    assert float(row["continual_gap_std"]) == pytest.approx(0.0530, abs=1e-4)
    assert row["one_shot_pairs"] == "2" and not notes
    for key in ("overall", "continual_gap", "reversal", "early_forgetting", "erosion/textual_retention",
                "textual_retention/normalised"):
        low, mean, high = (float(row[f"{key}_{part}"]) for part in ("ci_low", "mean", "ci_high"))
        assert low <= mean <= high, key
    assert float(row["overall_ci_low"]) < float(row["overall_ci_high"])  # people and seeds vary
    # the main table holds the one-shot row only; the continual section, the stream
    main = md.split("\n## ")[0]
    assert "| ga | 10 | 2 |" in main and main.count("| ga |") == 1
    line, = section_lines(md, "Continual")
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:4] == ["ga", "10", "2", "2"]
    assert re.fullmatch(r"0\.71[23] ± 0\.053 \[[-.0-9]+, [-.0-9]+\]", cells[4])  # 0.7125, std of 0.675 and 0.75
    assert re.fullmatch(r"-0\.18[78] ± 0\.053 \[[-.0-9]+, [-.0-9]+\]", cells[5])
    assert (tmp_path / "lb" / "mmu-synth__tiny-llava__continual.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "lb" / "index.html").read_text()
    assert "<h3>Continual</h3>" in page and 'src="mmu-synth__tiny-llava__continual.png"' in page


def test_the_gap_pairs_each_seed_with_the_one_shot_run_its_stream_names(tmp_path):
    # Each stream ends where its one-shot run is, the two seeds elsewhere: paired by seed and by the
    # people drawn, the gap is 0 in every resample. Decoys: the right key at another seed, and the
    # right seed under another key, both far off.
    far = clusters({"a": 1.0, "b": 1.0}, {"a": 0.0, "b": 0.0}, {"g1": 0.0, "g2": 0.0})
    runs = [continual_run(0, ONE_SHOT), continual_run(1, FINAL[1]), one_shot_run(0), one_shot_run(1, FINAL[1]),
            one_shot_run(7, far, key="one-shot-0"), one_shot_run(0, far, key="another-run")]
    rows, _, notes = board(tmp_path, runs)
    row, = [r for r in rows if r["kind"] == "continual"]
    assert row["one_shot_pairs"] == "2" and not notes
    assert float(row["continual_gap_mean"]) == 0.0 and float(row["continual_gap_std"]) == 0.0
    assert float(row["continual_gap_ci_low"]) == 0.0 and float(row["continual_gap_ci_high"]) == 0.0
    assert float(row["overall_ci_low"]) < float(row["overall_ci_high"])  # while the scores themselves vary


def test_a_stream_without_its_one_shot_run_leaves_the_gap_blank_and_says_so(tmp_path):
    rows, md, notes = board(tmp_path, [continual_run(0), continual_run(1), one_shot_run(1)])
    row, = [r for r in rows if r["kind"] == "continual"]
    assert row["one_shot_pairs"] == "1"
    assert float(row["continual_gap_mean"]) == pytest.approx(0.75 - 0.9, abs=1e-4)  # seed 1 only
    assert any("seed(s) 0" in n and "gap" in n for n in notes)
    line, = section_lines(md, "Continual")
    assert "(1/2 seeds)" in line and "seed 0" in md.split("## Continual")[1]
    rows, md, notes = board(tmp_path / "none", [continual_run(0)])
    row, = rows
    assert row["continual_gap_mean"] == "" and row["one_shot_pairs"] == "0"
    assert [c.strip() for c in section_lines(md, "Continual")[0].strip("|").split("|")][5] == "-"


def test_no_continual_or_forget_set_size_section_without_such_runs(tmp_path):
    rows, md, _ = board(tmp_path, [one_shot_run(0), one_shot_run(1), one_shot_run(0, method="npo")], plot=True)
    assert {r["kind"] for r in rows} == {"method", "reference"}
    header = (tmp_path / "lb" / "mmu-synth__tiny-llava.csv").read_text().splitlines()[0].split(",")
    assert not {"requests", "split", "one_shot_pairs", "continual_gap_mean"} & set(header)
    assert "## Continual" not in md and "## Forget-set size" not in md
    assert sorted(p.name for p in (tmp_path / "lb").glob("*.png")) == ["mmu-synth__tiny-llava.png"]


def test_forget_set_size_shows_the_methods_run_at_two_or_more_ratios(tmp_path):
    half = clusters({"a": 0.5, "b": 0.5}, {"a": 1.0, "b": 1.0}, {"g1": 1.0, "g2": 1.0})  # forgetting 0.5
    runs = [one_shot_run(0), one_shot_run(1), one_shot_run(0, half, ratio=5), one_shot_run(0, method="npo")]
    _, md, _ = board(tmp_path, runs, plot=True)
    lines = section_lines(md, "Forget-set size")
    assert [line.split(" | ")[:2] for line in lines] == [["| ga", "5"], ["| ga", "10"]]  # npo ran at one ratio
    # at 5 %: forgetting 0.5, textual 1, general 1 -> 3 / (2 + 1 + 1) = 0.75; at 10 %: 0.9 (two seeds)
    assert lines[0] == "| ga | 5 | 1 | 0.750 | 0.500 | 1.000 | 1.000 |"
    assert lines[1] == "| ga | 10 | 2 | 0.900 ± 0.000 | 1.000 ± 0.000 | 0.750 ± 0.000 | 1.000 ± 0.000 |"
    assert (tmp_path / "lb" / "mmu-synth__tiny-llava__forget_ratio.png").read_bytes()[:4] == b"\x89PNG"
    assert 'src="mmu-synth__tiny-llava__forget_ratio.png"' in (tmp_path / "lb" / "index.html").read_text()


def test_table_md_of_a_continual_run_holds_its_matrix_and_figures(tmp_path):
    result, _ = continual_run(0)
    text = tables.write_markdown(result).split("### Continual: 2 requests\n")[1]
    assert ("| request | visual_forgetting:1 | visual_forgetting:2 | textual_retention:1 | textual_retention:2 "
            "| general_utility |") in text
    # rows: vanilla; after a (a 0, b 0.6; general 0.75); the end (a 0.2, b 0; a's text 0.5; general 0.5)
    assert "| 0 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |" in text
    assert "| 1 | 0.000 | 0.600 | 1.000 | 1.000 | 0.750 |" in text
    assert "| 2 | 0.200 | 0.000 | 0.500 | 1.000 | 0.500 |" in text
    assert "| 2 | 1 | 0.900 | 0.750 | 0.500 | 0.675 | yes |" in text  # after request 2: b alone, then everyone
    assert "Reversal" in text and "mean **0.200**" in text and "textual retention -0.125" in text
    assert "run key `one-shot-0`" in text
    plain = tables.write_markdown(one_shot_run(0))
    assert "Continual" not in plain and plain == tables.write_markdown(one_shot_run(0))


def test_report_html_of_a_continual_run_draws_its_matrix_as_a_heatmap(tmp_path):
    result, lines = continual_run(0)
    folder = write(tmp_path, result, lines)
    page = report.render(folder)
    matrix = re.search(r'<table class="sortable" id=continual-matrix>(.*?)</table>', page, re.S).group(1)
    assert matrix.count("<tr>") == 4  # the header and requests 0, 1, 2
    # a score of 1 is the pages' blue, 0 is white; request 1's people framed after request 1
    assert 'style="background:rgb(42,111,219);color:#fff">1.000</td>' in matrix
    assert re.search(r'title="visual_forgetting:1 after request 1[^"]*" style="background:rgb\(255,255,255\);'
                     r'color:#222;outline:2px solid #222;outline-offset:-2px">0.000</td>', matrix)
    curves = re.findall(r'<polyline class="erosion" data-name="([^"]+)"[^>]*points="([^"]+)"', page)
    assert [name for name, _ in curves] == ["textual retention", "general utility"]
    # general utility 1, 0.75, 0.5 over x 40, 220, 400: y = 150 - 130 * score
    assert curves[1][1] == "40.0,20.0 220.0,52.5 400.0,85.0"
    plain = write(tmp_path / "plain", one_shot_run(0))
    assert "continual" not in report.render(plain)


def test_the_ordinary_runs_csv_and_json_stay_as_they_were(tmp_path):
    # an ordinary run writes no continual section (results.json, table.csv unchanged by streams)
    run = one_shot_run(0)
    assert "continual" not in json.loads(run.to_json())
    assert "requests" not in tables.files(run)[tables.CSV_FILE]


def test_a_stream_whose_named_run_is_absent_pairs_with_the_same_method_configuration_and_seed(tmp_path):
    # The one-shot runs were made with --attacks (another key, the same scores): the stream pairs
    # with the run of its method, configuration and seed; one of another configuration never.
    other = one_shot_run(0, key="with-attacks-0")
    other.method = {**other.method, "config": {"lr": 9e-4}}
    rows, _, notes = board(tmp_path, [continual_run(0, key="absent"), one_shot_run(0, key="with-attacks"), other])
    row, = [r for r in rows if r["kind"] == "continual"]
    assert row["one_shot_pairs"] == "1" and not notes
    assert float(row["continual_gap_mean"]) == pytest.approx(0.675 - 0.9, abs=1e-4)  # by hand, above
