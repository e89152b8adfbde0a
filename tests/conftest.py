import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory):
    """Every test writes its caches under a temporary MMU_BENCH_HOME, never the user's.
    Session-scoped so that it is in place before module-scoped fixtures (trained models) run."""
    home = tmp_path_factory.getbasetemp() / "mmu-home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMU_BENCH_HOME", str(home))
        yield home


@pytest.fixture(scope="session")
def report_run(tmp_path_factory):
    """A small GA run with a trajectory, whose report.html the report and browser tests read
    (they change copies only)."""
    from mmu_bench.cli import main
    from small import SMALL

    out = tmp_path_factory.mktemp("report-runs")
    assert main(["run", "--method", "ga", "--method-arg", "steps=3", *SMALL, "--trajectory", "2",
                 "--output-dir", str(out)]) == 0
    return next(out.rglob("results.json")).parent
