"""Trajectories, matched-forgetting scores, the trade-off area, and the statistics leaderboards
report with them (bootstrap intervals over seeds and people, paired tests)."""

import csv
import io
import json
import math
import textwrap

import numpy as np
import pytest

from mmu_bench.cli import main
from mmu_bench.harness.trajectory import Recorder
from mmu_bench.reporting import leaderboard
from mmu_bench.runs import results, stats, trajectory
from small import SMALL

NAN = float("nan")


# -- matched forgetting on hand-made curves ----------------------------------------------------
def test_retention_at_a_level_is_interpolated_between_the_points_around_it():
    xs, ys = [0.0, 0.4, 0.6, 1.0], [1.0, 0.9, 0.7, 0.5]
    got = trajectory.at_levels(xs, ys, [0.5, 0.8, 0.95, 0.3, 0.0])
    # 0.5 is half way from 0.4 (0.9) to 0.6 (0.7); 0.8 half way from 0.6 (0.7) to 1.0 (0.5);
    # 0.95 seven eighths of that; 0.3 three quarters from 0 (1.0) to 0.4 (0.9); 0 the first point.
    assert got.tolist() == pytest.approx([0.8, 0.6, 0.525, 0.925, 1.0])


def test_a_level_never_reached_is_not_reached_never_extrapolated():
    got = trajectory.at_levels([0.0, 0.5, 0.79], [1.0, 0.9, 0.8], [0.5, 0.8, 0.95])
    assert got[0] == pytest.approx(0.9)
    assert math.isnan(got[1]) and math.isnan(got[2])


def test_a_non_monotone_curve_counts_where_forgetting_first_reaches_the_level():
    # Forgetting goes up to 0.6, back to 0.3, then up to 0.9.
    got = trajectory.at_levels([0.0, 0.6, 0.3, 0.9], [1.0, 0.8, 0.9, 0.4], [0.5, 0.7])
    assert got[0] == pytest.approx(1.0 + (0.5 / 0.6) * (0.8 - 1.0))  # first crossing: 0 -> 0.6
    assert got[1] == pytest.approx(0.9 + (0.4 / 0.6) * (0.4 - 0.9))  # 0.7 first reached on 0.3 -> 0.9


def test_a_point_without_a_forgetting_score_never_reaches_a_level():
    got = trajectory.at_levels([0.0, NAN, 1.0], [1.0, 0.2, 0.6], [0.5])
    assert math.isnan(got[0])  # the crossing is from the unscored point: no value, not a guess


def test_levels_on_many_trajectories_at_once_match_one_at_a_time():
    rng = np.random.default_rng(0)
    xs, ys = np.cumsum(rng.random((5, 6)) / 3, axis=1), rng.random((5, 6))
    together = trajectory.at_levels(xs, ys, trajectory.LEVELS)
    for i in range(5):
        np.testing.assert_array_equal(together[i], trajectory.at_levels(xs[i], ys[i], trajectory.LEVELS))


def test_trade_off_area_by_hand():
    assert trajectory.area([0.0, 1.0], [1.0, 1.0]) == pytest.approx(1.0)  # forgets all, keeps all
    assert trajectory.area([0.0, 1.0], [1.0, 0.0]) == pytest.approx(0.5)  # loses it as it forgets
    assert trajectory.area([0.0, 0.5], [1.0, 1.0]) == pytest.approx(0.5)  # reaches 0.5 only: 0 beyond
    assert trajectory.area([0.0, 0.0], [1.0, 1.0]) == pytest.approx(0.0)  # never forgets: no area
    # Non-monotone: 0 -> 0.6 (1 -> 0.4), back to 0.2, then to 1.0 (0.2 -> 0). Levels up to 0.6
    # come from the first segment: 0.6 * (1 + 0.4) / 2 = 0.42. Levels 0.6 to 1 from the last
    # segment, where retention at 0.6 is 0.2 + (0.4 / 0.8) * (0 - 0.2) = 0.1: 0.4 * 0.1 / 2 = 0.02.
    assert trajectory.area([0.0, 0.6, 0.2, 1.0], [1.0, 0.4, 0.2, 0.0]) == pytest.approx(0.44)
    # The area agrees with the retention at levels on a fine grid.
    xs, ys = [0.1, 0.3, 0.25, 0.7, 0.9], [1.0, 0.8, 0.9, 0.5, 0.45]
    grid = np.linspace(0, 1, 100001)
    values = np.nan_to_num(trajectory.at_levels(xs, ys, grid), nan=0.0)
    assert trajectory.area(xs, ys) == pytest.approx(np.trapezoid(values, grid), abs=1e-4)


def test_trade_off_summary_records_not_reached_as_none():
    points = [{"f": 0.0, "t": 1.0, "r": 1.0}, {"f": 0.6, "t": 0.8, "r": 0.5}]
    out = trajectory.trade_off(points, "f", ["t", "r"])
    assert out["matched"]["0.5"]["t"] == pytest.approx(1.0 + (0.5 / 0.6) * -0.2)
    assert out["matched"]["0.8"] == {"t": None, "r": None, "harmonic": None}
    assert out["max_forgetting"] == pytest.approx(0.6)
    harmonic = out["matched"]["0.5"]["harmonic"]
    assert harmonic == pytest.approx(1.0 + (0.5 / 0.6) * (2 / (1 / 0.8 + 1 / 0.5) - 1.0))


# -- when points are scored --------------------------------------------------------------------
def schedule(points, reports, end):
    """The steps a Recorder scores at, given the steps a method reports (recording replaced by
    noting the step: what is tested here is when, not what)."""
    recorder = Recorder.__new__(Recorder)
    recorder.points, recorder.lines, recorder.total = points, [], None
    recorder._next, recorder._reported, recorder._at_end = 0, 0, False
    recorder.record = lambda model, processor, step: recorder.lines.append({"step": step})
    recorder.record(None, None, 0)
    for step, total in reports:
        recorder.step_done(None, None, step, total)
    recorder.finish(None, None, end)
    return [line["step"] for line in recorder.lines]


def test_points_are_evenly_spaced_and_the_last_is_the_end():
    assert schedule(4, [(s, 10) for s in range(1, 11)], 10) == [0, 3, 5, 8, 10]


def test_a_method_reporting_now_and_then_is_scored_once_per_report_that_passes_a_point():
    # MMUnlearner-like: reports after each cycle of 3 steps; 6 points over 12 steps are due at 2,
    # 4, 6, 8, 10, 12: the reports at 3, 6, 9, 12 each pass at least one.
    assert schedule(6, [(3, 12), (6, 12), (9, 12), (12, 12)], 12) == [0, 3, 6, 9, 12]


def test_a_method_that_never_reports_is_scored_at_its_start_and_end():
    assert schedule(8, [], 40) == [0, 40]
    assert schedule(8, [], 0) == [0, 1]  # no steps at all (not gradient based): the end follows the start


def test_a_method_that_goes_on_after_its_last_report_gets_an_end_point():
    assert schedule(2, [(5, 10), (10, 10)], 12) == [0, 5, 10, 12]


# -- statistics ---------------------------------------------------------------------------------
def test_paired_t_test_by_hand():
    # differences 1, 2, 2: mean 5/3, sd sqrt(1/3), t = (5/3) / (sd / sqrt(3)) = 5 on 2 degrees of
    # freedom; the t(2) CDF is 1/2 + t / (2 sqrt(t^2 + 2)), so p = 1 - 5 / sqrt(27).
    p, n = stats.paired_test({0: 1.0, 1: 2.0, 2: 3.0}, {0: 0.0, 1: 0.0, 2: 1.0})
    assert n == 3 and p == pytest.approx(1 - 5 / math.sqrt(27))


def test_paired_test_pairs_only_the_seeds_both_have():
    p, n = stats.paired_test({0: 1.0, 1: 2.0, 2: 3.0, 7: 9.0}, {0: 0.0, 1: 0.0, 2: 1.0, 3: 5.0, 7: None})
    assert n == 3 and p == pytest.approx(1 - 5 / math.sqrt(27))
    assert math.isnan(stats.paired_test({0: 1.0}, {0: 2.0})[0])  # one pair: no test
    assert stats.paired_test({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0})[0] == 1.0  # identical


def test_task_scores_by_hand_and_shared_draws():
    clusters = {"t": {"a": {"m1": [1.0, 2], "m2": [0.5, 1]}, "b": {"m1": [0.0, 2]}},
                "u": {"a": {"m1": [1.0, 1]}, "b": {"m1": [0.0, 1]}}}
    plain = stats.task_scores([clusters], {"t": ["m1", "m2"], "u": ["m1"]})
    # t: m1 = (1 + 0) / (2 + 2) = 0.25, m2 = 0.5 / 1 (only a has it); mean 0.375. u: 1/2.
    assert plain["t"][0, 0] == pytest.approx(0.375) and plain["u"][0, 0] == pytest.approx(0.5)
    drawn = stats.task_scores([clusters], {"t": ["m1", "m2"], "u": ["m1"]}, 200, np.random.default_rng(1))
    # The same people drawn for both tasks: where t drew only a (m1 = 0.5, m2 = 0.5), u drew only a too.
    only_a = np.isclose(drawn["t"][:, 0], 0.5)
    assert only_a.any() and np.allclose(drawn["u"][only_a, 0], 1.0)


def test_bootstrap_interval_is_deterministic_and_by_hand_when_nothing_varies():
    rng = np.random.default_rng(3)
    banks = [rng.random((stats.RESAMPLES, 3)) for _ in range(3)]
    assert stats.interval(banks) == stats.interval(banks)
    low, high = stats.interval(banks)
    assert 0 < low < 0.5 < high < 1
    # Every run, every draw the same value: the interval is that value.
    assert stats.interval([np.full((stats.RESAMPLES, 2), 0.7)] * 2) == pytest.approx((0.7, 0.7))
    # Never a value (a level no run reaches): no interval.
    assert all(math.isnan(v) for v in stats.interval([np.full((stats.RESAMPLES, 1), NAN)]))


# -- end to end ---------------------------------------------------------------------------------
def run(out, *args):
    return main(["run", *SMALL, "--forget-ratio", "10", "--output-dir", str(out), *args])


def only(out, method):
    (folder,) = (out / "mmu-synth" / "tiny-llava" / method).iterdir()
    return folder


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """GA and NPO, seeds 0 and 1, with a 3-point trajectory (and GA seed 0 without one)."""
    out = tmp_path_factory.mktemp("swept")
    assert main(["sweep", "--methods", "ga,npo", "--seeds", "0,1", *SMALL, "--method-arg", "steps=6",
                 "--method-arg", "lr=1e-3", "--trajectory", "3", "--output-dir", str(out)]) == 0
    plain = tmp_path_factory.mktemp("plain")
    assert run(plain, "--method", "ga", "--method-arg", "steps=6", "--method-arg", "lr=1e-3") == 0
    return out, only(plain, "ga")


def folders(out, method):
    return sorted((out / "mmu-synth" / "tiny-llava" / method).iterdir())


def points(folder):
    return [json.loads(line) for line in (folder / trajectory.TRAJECTORY_FILE).read_text().splitlines()]


def test_shared_loop_trajectory_points_and_an_unchanged_final_evaluation(swept):
    out, plain = swept
    folder = folders(out, "ga")[0]
    lines = points(folder)
    assert [p["step"] for p in lines] == [0, 2, 4, 6]
    assert lines[0]["normalised"]["textual_retention"] == pytest.approx(1.0, abs=0.2)  # the vanilla model
    for p in lines:
        assert set(p["dimensions"]) == {"visual_forgetting", "textual_retention", "retained_vqa", "general_utility"}
        assert set(p["clusters"]) == {"visual_forgetting", "textual_retention", "retained_vqa", "general_utility"}
    result = results.read(folder / "results.json")
    assert set(result.trade_off["matched"]) == {"0.5", "0.8", "0.95"}
    assert result.trade_off["points"] == 3 and result.trade_off["sample"] == 24
    # Scoring during training moved nothing: the run without a trajectory has the same scores.
    scores = [json.loads((f / "results.json").read_text())["scores"] for f in (plain, folder)]
    assert scores[0] == scores[1]  # as written (read back, an absent value is NaN, never equal to itself)
    assert not (plain / trajectory.TRAJECTORY_FILE).exists() and results.read(plain / "results.json").trade_off == {}


def test_per_person_sums_reproduce_the_run_scores(swept):
    out, _ = swept
    result = results.read(folders(out, "npo")[0] / "results.json")
    primary = {name: t for name, t in result.tasks.items() if t.primary}
    scores = stats.task_scores([result.clusters], {name: t.score for name, t in primary.items()})
    for name, task in primary.items():
        assert scores[name][0, 0] == pytest.approx(result.dimensions["unlearned"][task.dimension])
    bank = leaderboard._overall_bank(result, 0, None)  # noqa: SLF001 - n = 0: every person once
    assert float(bank[0]) == pytest.approx(result.overall)


def test_mmunlearner_reports_after_each_cycle(tmp_path):
    assert run(tmp_path, "--method", "mmunlearner", "--method-arg", "steps=3", "--method-arg", "retain_per_forget=1",
               "--method-arg", "mask_batches=1", "--trajectory", "3") == 0
    # 3 forget steps, each followed by one retain step: 6 steps; it reports at 2, 4 and 6.
    assert [p["step"] for p in points(only(tmp_path, "mmunlearner"))] == [0, 2, 4, 6]


def test_a_method_that_never_reports_gets_its_start_and_end(tmp_path):
    plugin = tmp_path / "shrink.py"
    plugin.write_text(textwrap.dedent("""
        import torch
        from mmu_bench.method import UnlearningMethod

        class Shrink(UnlearningMethod):
            name = "shrink"

            def unlearn(self, ctx):  # not gradient based: scales the language model's head
                with torch.no_grad():
                    ctx.model.lm_head.weight.mul_(0.5)
    """))
    assert run(tmp_path / "runs", "--method", f"{plugin}:Shrink", "--trajectory", "4") == 0
    lines = points(only(tmp_path / "runs", "shrink"))
    assert [p["step"] for p in lines] == [0, 1]
    assert lines[0]["dimensions"] != lines[1]["dimensions"]  # the end point scored the changed model


def test_leaderboard_columns_intervals_tests_and_plot_idempotent(swept, tmp_path):
    out, _ = swept
    board = tmp_path / "board"
    assert main(["leaderboard", "--runs", str(out), "--output", str(board)]) == 0
    first = {p.name: p.read_bytes() for p in board.iterdir()}
    assert "mmu-synth__tiny-llava__trade_off.png" in first
    assert main(["leaderboard", "--runs", str(out), "--output", str(board)]) == 0
    assert {p.name: p.read_bytes() for p in board.iterdir()} == first  # the bootstrap is seeded
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO(first["mmu-synth__tiny-llava.csv"].decode()))}
    for method in ("ga", "npo"):
        row = rows[method]
        low, high, mean = (float(row[k]) for k in ("overall_ci_low", "overall_ci_high", "overall_mean"))
        assert low <= mean <= high
        for column in ("matched/0.5/textual_retention_mean", "matched/0.5/reached_mean", "auc/harmonic_mean",
                       "auc/textual_retention_std", "max_forgetting_mean"):
            assert column in row
    assert {rows["ga"]["overall_p_vs_best"], rows["npo"]["overall_p_vs_best"]} - {"best"} != set()
    assert "best" in {rows["ga"]["overall_p_vs_best"], rows["npo"]["overall_p_vs_best"]}
    text = first["mmu-synth__tiny-llava.md"].decode()
    assert "## At equal forgetting" in text and "### Normalised forgetting 0.95" in text
    assert "### Trade-off area" in text
