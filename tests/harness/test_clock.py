"""The run's clock: wall seconds per phase, a nested phase counted in its own phase only."""

import pytest

from mmu_bench.harness import clock as clock_module
from mmu_bench.harness.clock import Clock
from mmu_bench.reporting.report import time_rows


class FakeTime:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def fake(monkeypatch):
    now = FakeTime()
    monkeypatch.setattr(clock_module.time, "perf_counter", now)
    return now


def test_nested_phases_count_once_and_add_up_to_the_wall_time(fake):
    clock = Clock()
    with clock.phase("session"):
        fake.now += 2.0
    with clock.phase("unlearning"):
        fake.now += 1.0
        with clock.phase("trajectory"):
            fake.now += 3.0
        fake.now += 0.5
        with clock.phase("trajectory"):
            fake.now += 1.5
    fake.now += 0.25  # between phases: in the wall time only
    assert clock.to_dict() == {"session": 2.0, "unlearning": 1.5, "trajectory": 4.5}
    assert clock.wall() == pytest.approx(8.25)


def test_an_open_phase_counts_up_to_now(fake):
    clock = Clock()
    with clock.phase("writing"):
        fake.now += 0.75
        assert clock.to_dict() == {"writing": 0.75}
        fake.now += 0.25
    assert clock.to_dict() == {"writing": 1.0}


def test_phases_come_in_the_order_a_run_passes_them(fake):
    clock = Clock()
    for name in ("writing", "evaluation", "session"):
        with clock.phase(name):
            fake.now += 1.0
    assert list(clock.to_dict()) == ["session", "evaluation", "writing"]


def test_an_unknown_phase_is_refused():
    with pytest.raises(ValueError, match="unknown phase 'lunch'"):
        with Clock().phase("lunch"):
            pass


def test_the_report_shows_each_phase_its_share_and_the_rest():
    rows = time_rows({"phases": {"writing": 1.0, "session": 2.0, "evaluation": 5.0}, "wall_seconds": 10.0})
    assert rows == [{"phase": "session", "seconds": 2.0, "share": "20%"},
                    {"phase": "evaluation", "seconds": 5.0, "share": "50%"},
                    {"phase": "writing", "seconds": 1.0, "share": "10%"},
                    {"phase": "other", "seconds": 2.0, "share": "20%"},
                    {"phase": "run (wall)", "seconds": 10.0, "share": "100%"}]
    assert time_rows({"wall_seconds": 3.0}) == []  # an older run: no phases recorded
