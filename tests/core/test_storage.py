import pytest

from mmu_bench.core.storage import atomic_write_text, staging_dir


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    atomic_write_text(target, "old")

    import os

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary left behind


def test_staging_dir_appears_whole_or_not_at_all(tmp_path):
    final = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with staging_dir(final) as tmp:
            (tmp / "results.json").write_text("{}")
            raise RuntimeError("crash mid-run")
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with staging_dir(final) as tmp:
        (tmp / "results.json").write_text("{}")
    assert (final / "results.json").read_text() == "{}"


def test_staging_dir_never_replaces_an_existing_folder(tmp_path):
    final = tmp_path / "run"
    final.mkdir()
    (final / "results.json").write_text("precious")
    with pytest.raises(FileExistsError):
        with staging_dir(final) as tmp:
            (tmp / "results.json").write_text("new")
    assert (final / "results.json").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_atomic_writes_and_run_folders_get_the_mode_the_umask_gives_not_owner_only(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "shared.json", "{}")
        os.umask(0o077)
        atomic_write_text(tmp_path / "private.json", "{}")
        os.umask(0o022)
        with staging_dir(tmp_path / "run"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared.json").stat().st_mode) == 0o644  # readable by a group on a shared disk
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o755  # a run folder too
