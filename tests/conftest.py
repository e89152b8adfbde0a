import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory):
    """Every test writes its caches under a temporary MMU_BENCH_HOME, never the user's.
    Session-scoped so that it is in place before module-scoped fixtures (trained models) run."""
    home = tmp_path_factory.getbasetemp() / "mmu-home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMU_BENCH_HOME", str(home))
        yield home
