import contextlib
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
        os.environ["OMP_NUM_THREADS"] = "1"  # and the processes the tests start (sweep jobs, launches)


def _small(item) -> bool:
    return hasattr(getattr(item, "module", None), "SMALL")


def pytest_collection_modifyitems(config, items):
    """A test of a module that runs on the small benchmark (it imports ``small.SMALL``) starts
    from the small reference models (``small_references``), made once for the whole session,
    and is slow; a browser test is marked so. The others come first: under pytest-xdist, workers
    run them while the small models are made (trained, when the committed ones are stale)."""
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


@contextlib.contextmanager
def _locked(path: Path, wait: bool = True):
    """An exclusive lock on ``path`` (yields False when ``wait`` is off and another holds it)."""
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


@pytest.fixture(scope="session")
def small_made(tmp_path_factory) -> Path:
    """The session's one cache of the small benchmark (``small.SMALL``): its data, its reference
    models and their records. The models and records come from ``SMALL_FIXTURE`` when it holds
    the current recipe's (else they are trained here: about 5 minutes of CPU). Under
    pytest-xdist the workers share the work: each trains the reference models no other is
    training, then waits for the rest."""
    from mmu_bench.cli import main, make_parser
    from mmu_bench.cli.options import build_config
    from mmu_bench.harness.session import load_benchmark
    from mmu_bench.spec.plan import for_references
    from small import SMALL, SMALL_FIXTURE

    shared = _shared_folder(tmp_path_factory)
    shared.mkdir(parents=True, exist_ok=True)
    made = shared / "small-home"
    if (made / "READY").is_file():
        return made
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMU_BENCH_HOME", str(made))
        plan = for_references(build_config(make_parser().parse_args(["prepare", *SMALL])), progress=False)
        benchmark = load_benchmark(plan)
        with _locked(shared / "base.lock"):
            if SMALL_FIXTURE.is_dir() and not (made / "models").is_dir():
                shutil.copytree(SMALL_FIXTURE, made, dirs_exist_ok=True)
            plan.provider.ensure("base", benchmark)  # what every role is trained from
        roles = list(plan.provider.roles)
        worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
        roles = roles[worker % len(roles):] + roles[: worker % len(roles)]
        for wait in (False, True):  # first the roles nobody is training, then the others' (waiting)
            for role in roles:
                with _locked(shared / f"{role}.lock", wait) as mine:
                    if mine:
                        plan.provider.ensure(role, benchmark)
        with _locked(shared / "records.lock"):
            if not (made / "READY").is_file():
                assert main(["prepare", *SMALL]) == 0  # the records, from the models trained above
                (made / "READY").write_text("")
    return made


@pytest.fixture(scope="session")
def small_references(_isolated_home, small_made):
    """The small benchmark and its reference models, copied into this worker's own cache (tests
    change their own copies only)."""
    shutil.copytree(small_made, _isolated_home, dirs_exist_ok=True, ignore=shutil.ignore_patterns("READY"))
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
