"""`mmu-bench sweep` resumes, continues past failures; `mmu-bench eval` scores outside checkpoints."""

import json
import shutil
import textwrap

import pytest

from mmu_bench.cli import main
from small import SMALL


def folders(out, method):
    root = out / "mmu-synth" / "tiny-llava" / method
    return sorted(root.iterdir()) if root.exists() else []


def test_sweep_runs_the_grid_then_resumes_after_a_deleted_run(tmp_path, capsys):
    args = ["sweep", "--methods", "ga,npo", "--seeds", "0,1", "--forget-ratios", "10",
            "--method-arg", "steps=2", "--method-arg", "npo.beta=0.2", *SMALL, "--output-dir", str(tmp_path)]
    assert main(args) == 0
    assert "4 runs: 4 done, 0 already had results, 0 failed" in capsys.readouterr().out
    npo = [json.loads((f / "results.json").read_text()) for f in folders(tmp_path, "npo")]
    assert sorted(r["seed"] for r in npo) == [0, 1]
    assert {r["method"]["config"]["beta"] for r in npo} == {0.2}
    ga = [json.loads((f / "results.json").read_text()) for f in folders(tmp_path, "ga")]
    assert all("beta" not in r["method"]["config"] for r in ga)

    shutil.rmtree(folders(tmp_path, "ga")[0])  # as if interrupted before this run finished
    assert main(args) == 0
    assert "4 runs: 1 done, 3 already had results, 0 failed" in capsys.readouterr().out
    assert len(folders(tmp_path, "ga")) == 2 and len(folders(tmp_path, "npo")) == 2


def test_sweep_continues_past_a_failing_run_and_records_it(tmp_path, capsys):
    plugin = tmp_path / "flaky.py"
    plugin.write_text(textwrap.dedent("""
        from mmu_bench.losses import nll
        from mmu_bench.method import UnlearningMethod

        class Flaky(UnlearningMethod):
            name = "flaky"
            def loss(self, ctx, batch):
                if ctx.seed == 1:
                    raise RuntimeError("diverged on purpose")
                return -nll(ctx.model, batch.forget)
    """))
    out = tmp_path / "runs"
    code = main(["sweep", "--methods", f"{plugin}:Flaky", "--seeds", "0,1", "--method-arg", "steps=2",
                 *SMALL, "--output-dir", str(out)])
    assert code == 1
    text = capsys.readouterr().out
    assert "1 done, 0 already had results, 1 failed" in text and "diverged on purpose" in text
    runs = folders(out, "flaky")
    kinds = sorted(sorted(p.name for p in f.iterdir()) for f in runs)
    assert kinds == [["config.yaml", "information.csv", "model", "results.json", "samples.jsonl", "table.csv", "table.md"],
                     ["failure.json"]]
    failure = next(json.loads((f / "failure.json").read_text()) for f in runs if (f / "failure.json").exists())
    assert "RuntimeError: diverged on purpose" in failure["error"] and failure["config"]["seed"] == 1


def test_sweep_checks_every_method_before_running(tmp_path, capsys):
    code = main(["sweep", "--methods", "ga,npoo", *SMALL, "--output-dir", str(tmp_path)])
    assert code == 2
    assert "unknown method 'npoo'" in capsys.readouterr().err
    assert not tmp_path.joinpath("mmu-synth").exists()


def test_eval_scores_a_checkpoint_made_elsewhere(tmp_path, capsys):
    # The vanilla model, saved elsewhere and given a name, stands in for an outside method.
    from mmu_bench.cli import build_config, make_parser
    from mmu_bench.runner import load_benchmark, make_provider

    config = build_config(make_parser().parse_args(["run", *SMALL]))
    loaded = make_provider(config, progress=False).load("vanilla", load_benchmark(config))
    loaded.model.save_pretrained(tmp_path / "ckpt")
    code = main(["eval", "--checkpoint", str(tmp_path / "ckpt"), "--name", "outside", *SMALL,
                 "--output-dir", str(tmp_path / "runs")])
    assert code == 0
    (folder,) = folders(tmp_path / "runs", "outside")
    result = json.loads((folder / "results.json").read_text())
    assert result["method"]["name"] == "outside" and result["method"]["origin"].startswith("checkpoint ")
    # An unchanged vanilla model scores exactly as the vanilla reference.
    assert result["dimensions"]["unlearned"] == pytest.approx(result["dimensions"]["vanilla"])
    assert main(["eval", "--checkpoint", str(tmp_path / "nope"), "--name", "x", *SMALL]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_two_sweeps_on_the_same_grid_at_once_run_each_point_once(tmp_path):
    import os
    import re
    import subprocess
    import sys

    assert main(["prepare", *SMALL]) == 0  # the reference models, once, before the grid
    args = [sys.executable, "-m", "mmu_bench", "sweep", "--methods", "ga", "--seeds", "0,1", "--forget-ratios", "10",
            "--method-arg", "steps=2", *SMALL, "--output-dir", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert len(list(tmp_path.rglob("results.json"))) == 2  # each point once, not twice
    assert sum(int(re.search(r"(\d+) done", out).group(1)) for out in outs) == 2, outs
    assert not list((tmp_path / ".locks").glob("*.lock"))  # released
