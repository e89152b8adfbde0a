import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test writes its caches under a temporary MMU_BENCH_HOME, never the user's."""
    home = tmp_path_factory.getbasetemp() / "mmu-home"
    monkeypatch.setenv("MMU_BENCH_HOME", str(home))
    return home
