"""report.html: written with every run folder, rebuilt identically from the folder alone (also
after it is copied elsewhere), sample text escaped, a failed rebuild leaves the old page."""

import json
import re
import shutil

import pytest

from mmu_bench.cli import main

HOSTILE = '</script><script>alert(1)</script><img src=x onerror="alert(2)"> & <!--'


def embedded(page: str, name: str):
    return json.loads(re.search(rf'<script type="application/json" id={name}>(.*?)</script>', page, re.S).group(1))


@pytest.fixture
def run_dir(report_run):
    return report_run


def test_every_run_folder_has_a_report_of_every_scored_item(run_dir):
    page = (run_dir / "report.html").read_text()
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    rows, images = embedded(page, "rows-data"), embedded(page, "images-data")
    assert len(rows) == len(samples) > 0
    assert all(r["vanilla"] is not None for r in rows)  # the vanilla model's output beside each
    with_image = [r for r, s in zip(rows, samples) if s["modality"] == "image"]
    assert with_image and all(r["image"] in images for r in with_image)
    assert all(uri.startswith("data:image/png;base64,") for uri in images.values())
    changed = sum(s["output"].strip() != s["vanilla_output"].strip() for s in samples)
    assert sum(r["changed"] for r in rows) == changed
    results = json.loads((run_dir / "results.json").read_text())
    assert f"<b id=overall>{results['overall']:.3f}</b>" in page
    assert len(results["training"]["log"]) == 3 and "training loss per step" in page
    assert page.count("<tr>") >= len(results["tasks"]) + 1  # the dimension table, one row per task


def test_rebuilt_identically_also_from_a_copy_elsewhere(run_dir, tmp_path, capsys):
    before = (run_dir / "report.html").read_bytes()
    copy = tmp_path / "moved" / run_dir.name
    shutil.copytree(run_dir, copy)
    (copy / "report.html").unlink()
    assert main(["report", str(copy)]) == 0
    assert (copy / "report.html").read_bytes() == before
    assert str(run_dir) not in before.decode() and "file:" not in before.decode()


def test_sample_text_is_escaped_and_runs_nothing(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    lines = (copy / "samples.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["output"], first["prompt"] = HOSTILE, HOSTILE
    (copy / "samples.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    assert main(["report", str(copy)]) == 0
    page = (copy / "report.html").read_text()
    assert "<script>alert(1)" not in page and "<img src=x" not in page and "<!--" not in page
    assert page.count("</script>") == 4  # the two data blocks and the page's own two scripts
    row = embedded(page, "rows-data")[0]
    assert row["output"] == HOSTILE and row["prompt"] == HOSTILE  # shown as this text


def test_a_failed_rebuild_keeps_the_old_report(run_dir, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    before = (copy / "report.html").read_bytes()
    (copy / "results.json").write_text('{"truncated": ')
    assert main(["report", str(copy)]) == 2
    assert "results.json" in capsys.readouterr().err
    assert (copy / "report.html").read_bytes() == before
    assert main(["report", str(tmp_path / "nothing")]) == 2
