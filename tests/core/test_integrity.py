"""Digests of cached artefacts: a damaged folder or file is found, named, moved aside (never
deleted) and reported for rebuilding; caches written before digests are used as they are."""

import json

from mmu_bench.core import integrity


def make(folder):
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 10)
    (folder / "sub" / "config.json").write_text('{"a": 1}')
    return folder


def test_a_sealed_folder_is_intact_until_a_file_changes_or_goes(tmp_path):
    folder = make(tmp_path / "model")
    assert integrity.damage(folder) is None  # not sealed: written before digests, used as it is
    integrity.seal(folder)
    assert json.loads((folder / integrity.DIGESTS).read_text()).keys() == {"weights.bin", "sub/config.json"}
    assert integrity.damage(folder) is None
    data = bytearray((folder / "weights.bin").read_bytes())
    data[100] ^= 1  # one flipped bit
    (folder / "weights.bin").write_bytes(bytes(data))
    assert integrity.damage(folder) == "weights.bin does not match the digest recorded when it was written"
    (folder / "weights.bin").unlink()
    assert integrity.damage(folder) == "weights.bin is missing"
    (folder / integrity.DIGESTS).write_text("{trunc")
    assert integrity.damage(folder) == "digests.json is unreadable"


def test_a_damaged_folder_is_moved_aside_and_named(tmp_path, capsys):
    folder = make(tmp_path / "vanilla-abc")
    integrity.seal(folder)
    assert integrity.usable(folder, "cached vanilla model")
    (folder / "weights.bin").write_bytes(b"truncated")
    integrity._verified.discard(folder)  # as a new process would
    assert not integrity.usable(folder, "cached vanilla model")
    assert not folder.exists()
    [aside] = tmp_path.glob("vanilla-abc.damaged-*")
    assert (aside / "weights.bin").read_bytes() == b"truncated"  # kept, not deleted
    err = capsys.readouterr().err
    assert f"cached vanilla model {folder} is damaged (weights.bin does not match" in err and "rebuilding" in err
    assert not integrity.usable(tmp_path / "absent", "x")


def test_sealed_json_round_trips_and_damage_is_found(tmp_path, capsys):
    path = tmp_path / "records.json"
    payload = {"role": "vanilla", "records": [{"item": "a", "lp": -0.25}, {"item": "b", "lp": float("nan")}]}
    integrity.sealed_json(path, payload)
    read = integrity.read_sealed(path, "cached records")
    assert read["role"] == "vanilla" and read["records"][0] == {"item": "a", "lp": -0.25}
    # A changed number: the digest no longer matches.
    path.write_text(path.read_text().replace("-0.25", "-0.75"))
    assert integrity.read_sealed(path, "cached records") is None and not path.exists()
    assert "cached records" in capsys.readouterr().err
    # A truncated file.
    integrity.sealed_json(path, payload)
    path.write_text(path.read_text()[:40])
    assert integrity.read_sealed(path, "cached records") is None
    assert len(list(tmp_path.glob("records.json.damaged-*"))) == 2  # each damaged copy kept
    # Written before digests: used as it is.
    path.write_text(json.dumps({"role": "oracle"}))
    assert integrity.read_sealed(path, "cached records") == {"role": "oracle"}
    assert integrity.read_sealed(tmp_path / "none.json", "cached records") is None
