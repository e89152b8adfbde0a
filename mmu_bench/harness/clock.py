"""Where a run's time goes: wall seconds per phase, recorded in results.json's provenance (never
in the run key: two runs of one plan take different times and are the same run)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from mmu_bench.runs.results import PHASES


class Clock:
    """Wall time since the run began and per phase. A phase nested in another (the trajectory's
    points inside unlearning) is counted in its own phase only, so the phases add up to the
    time the run spent in any of them."""

    def __init__(self):
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self._open: list[tuple[str, float]] = []  # (phase, when it began), outermost first

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}; phases are {', '.join(PHASES)}")
        self._open.append((name, time.perf_counter()))
        try:
            yield
        finally:
            _close(self.seconds, self._open, time.perf_counter())

    def wall(self) -> float:
        return time.perf_counter() - self.started

    def to_dict(self) -> dict[str, float]:
        """Seconds per phase, in ``PHASES`` order, to the millisecond; a phase still open (the
        writing of results.json itself) counts up to now."""
        seconds, still_open, now = dict(self.seconds), list(self._open), time.perf_counter()
        while still_open:
            _close(seconds, still_open, now)
        return {name: round(seconds[name], 3) for name in PHASES if name in seconds}


def _close(seconds: dict[str, float], still_open: list[tuple[str, float]], now: float) -> None:
    """Close the innermost open phase at ``now``: its time is its own, not its enclosing phase's."""
    name, start = still_open.pop()
    spent = now - start
    seconds[name] = seconds.get(name, 0.0) + spent
    if still_open:
        outer = still_open[-1][0]
        seconds[outer] = seconds.get(outer, 0.0) - spent
