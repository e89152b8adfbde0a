"""`mmu-bench leaderboard`: from results.json files only; merges, never duplicates, idempotent."""

import csv
import io
import json
import shutil
import uuid

import pytest

from mmu_bench import leaderboard
from mmu_bench.cli import main

TASKS = {
    "visual_forgetting": {"version": "1.1", "dimension": "visual_forgetting", "primary": True, "higher_is_better": False},
    "textual_retention": {"version": "1.1", "dimension": "textual_retention", "primary": True, "higher_is_better": True},
    "retained_vqa": {"version": "1.1", "dimension": "retained_vqa", "primary": True, "higher_is_better": True},
    "general_utility": {"version": "1.1", "dimension": "general_utility", "primary": True, "higher_is_better": True},
}


def _scores(value):
    m = {"mean": value, "stderr": 0.0, "n": 10}
    return {task: {"mc_acc": m, "mc_loglik_acc": m, "cloze_acc": m, "rougeL": m} for task in TASKS}


def fake_result(method="ga", seed=0, ratio=10, forget=0.5, keep=0.8, sha="a" * 64, config=None, version="1.1",
                benchmark="mmu-synth", model="tiny-llava"):
    unlearned = _scores(keep)
    unlearned["visual_forgetting"] = _scores(forget)["visual_forgetting"]
    dims = {"unlearned": {t: (forget if t == "visual_forgetting" else keep) for t in TASKS},
            "vanilla": {t: 0.9 for t in TASKS}, "oracle": {t: (0.3 if t == "visual_forgetting" else 0.9) for t in TASKS}}
    normalised = {"visual_forgetting": (0.9 - forget) / 0.6, **{t: keep / 0.9 for t in TASKS if t != "visual_forgetting"}}
    from mmu_bench.results import overall

    oracle = _scores(0.9)
    oracle["visual_forgetting"] = _scores(0.3)["visual_forgetting"]
    return {
        "run_uid": uuid.uuid4().hex, "run_key": "k", "run_id": f"run-{method}-{seed}", "seed": seed,
        "benchmark": {"name": benchmark, "forget_ratio": ratio, "fingerprint": "f"},
        "model": {"name": model, "references": {"vanilla": {"path": "v", "recipe_hash": "vh"},
                                                "oracle": {"path": "o", "recipe_hash": "oh"}}},
        "method": {"name": method, "version": "1", "source_sha256": sha, "config": config or {"lr": 1e-4}},
        "tasks": {k: {**v, "version": version} for k, v in TASKS.items()},
        "scores": {"unlearned": unlearned, "vanilla": _scores(0.9), "oracle": oracle},
        "dimensions": dims, "normalised": normalised, "overall": overall(normalised),
    }


def write(root, result):
    folder = root / result["benchmark"]["name"] / result["model"]["name"] / result["method"]["name"] / result["run_id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(result))
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
        ablation["run_id"] += "-random"
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
