import fcntl
import os
import shutil
from pathlib import Path

import pytest


def pytest_configure(config):
    # Under pytest-xdist every worker is a process of its own on a core of its own: one torch
    # thread each (two workers of two threads on two cores only fight over them).
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def _small(item) -> bool:
    return hasattr(getattr(item, "module", None), "SMALL")


def pytest_collection_modifyitems(config, items):
    """A test of a module that runs on the small benchmark (it imports ``small.SMALL``) starts
    from the small reference models (``small_references``), trained once for the whole session,
    and is slow; a browser test is marked so. The others come first: under pytest-xdist, workers
    run them while the first one to need the small models trains them."""
    for item in items:
        if _small(item):
            item.fixturenames.insert(0, "small_references")
            item.add_marker(pytest.mark.slow)
        if item.path.name == "test_browser.py":
            item.add_marker(pytest.mark.browser)
    items.sort(key=_small)  # stable: the order within each group stays


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory):
    """Every test writes its caches under a temporary MMU_BENCH_HOME, never the user's.
    Session-scoped so that it is in place before module-scoped fixtures (trained models) run."""
    home = tmp_path_factory.getbasetemp() / "mmu-home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMU_BENCH_HOME", str(home))
        yield home


def _shared_folder(tmp_path_factory) -> Path:
    """A folder the session's workers share: the run's own base folder, under pytest-xdist the
    one above the workers' (named by the run's id, so that no other session reads it)."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    base = tmp_path_factory.getbasetemp()
    return base.parent / f"shared-{run}" if run else base / "shared"


@pytest.fixture(scope="session")
def small_references(_isolated_home, tmp_path_factory):
    """The small benchmark and its reference models (``small.SMALL``: generated, trained and
    scored), made once for the session, by the first worker that needs them, and copied into
    each worker's own cache: tests change their own copies only."""
    from mmu_bench.cli import main
    from small import SMALL

    shared = _shared_folder(tmp_path_factory)
    shared.mkdir(parents=True, exist_ok=True)
    made = shared / "small-home"
    with open(shared / "small-home.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the others wait while the first one trains
        if not (made / "READY").is_file():
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("MMU_BENCH_HOME", str(made))
                assert main(["prepare", *SMALL]) == 0
            (made / "READY").write_text("")
    shutil.copytree(made, _isolated_home, dirs_exist_ok=True, ignore=shutil.ignore_patterns("READY"))
    return _isolated_home


@pytest.fixture(scope="session")
def report_run(tmp_path_factory, small_references):
    """A small GA run with a trajectory, whose report.html the report and browser tests read
    (they change copies only)."""
    from mmu_bench.cli import main
    from small import SMALL

    out = tmp_path_factory.mktemp("report-runs")
    assert main(["run", "--method", "ga", "--method-arg", "steps=3", *SMALL, "--trajectory", "2",
                 "--output-dir", str(out)]) == 0
    return next(out.rglob("results.json")).parent
