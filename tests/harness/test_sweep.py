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
    assert kinds == [["config.yaml", "information.csv", "model", "report.html", "results.json", "samples.jsonl",
                      "table.csv", "table.md", "thumbnails.json"],
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
    from mmu_bench.cli import make_parser
    from mmu_bench.cli.options import build_config
    from mmu_bench.harness.session import load_benchmark
    from mmu_bench.spec.plan import for_references

    plan = for_references(build_config(make_parser().parse_args(["run", *SMALL])), progress=False)
    loaded = plan.provider.load("vanilla", load_benchmark(plan))
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


def test_local_launcher_runs_two_points_at_once_and_resumes(tmp_path, capsys):
    args = ["sweep", "--methods", "ga,npo", "--seeds", "0", "--forget-ratios", "10", "--method-arg", "steps=2",
            *SMALL, "--output-dir", str(tmp_path), "--launcher", "local", "--jobs", "2"]
    assert main(args) == 0
    assert "2 runs: 2 done, 0 already had results, 0 failed" in capsys.readouterr().out
    runs = sorted(tmp_path.rglob("results.json"))
    assert len(runs) == 2
    # each point ran in a job process of its own, 2 at once (submitit's local executor)
    logs = list((tmp_path / ".submitit").glob("*_log.out"))
    assert len(logs) == 2
    assert len({json.loads(r.read_text())["run_key"] for r in runs}) == 2

    shutil.rmtree(folders(tmp_path, "npo")[0])
    assert main(args) == 0
    assert "2 runs: 1 done, 1 already had results, 0 failed" in capsys.readouterr().out
    assert len(list(tmp_path.rglob("results.json"))) == 2
    assert not list((tmp_path / ".locks").glob("*.lock"))


FAKE_SBATCH = """#!/bin/sh
n=$(( $(cat "$SBATCH_RECORD/counter" 2>/dev/null || echo 1000) + 1 ))
echo $n > "$SBATCH_RECORD/counter"
cp "$1" "$SBATCH_RECORD/$n.sh"
echo "Submitted batch job $n"
"""


def test_slurm_launcher_submits_a_prepare_job_then_the_grid_as_an_array(tmp_path, monkeypatch, capsys):
    import os

    bin_dir, record = tmp_path / "bin", tmp_path / "sbatch"
    bin_dir.mkdir()
    record.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SBATCH_RECORD", str(record))
    out = tmp_path / "runs"
    code = main(["sweep", "--methods", "ga,npo", "--seeds", "0,1", "--forget-ratios", "10", "--method-arg", "steps=2",
                 *SMALL, "--output-dir", str(out), "--launcher", "slurm", "--partition", "gpu", "--account", "lab",
                 "--gpus-per-job", "2", "--time-limit", "90", "--array-parallelism", "3", "--mem-gb", "40",
                 "--slurm-setup", "source venv/bin/activate"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "4 runs: 0 done, 0 already had results, 0 failed, 4 submitted to SLURM" in printed
    assert "job(s) 1002;" in printed
    prepare_script, array_script = (record / "1001.sh").read_text(), (record / "1002.sh").read_text()
    for script in (prepare_script, array_script):
        for flag in ("--partition=gpu", "--account=lab", "--gpus-per-node=2", "--time=90", "--mem=40GB",
                     "--ntasks-per-node=1", "--job-name=mmu-bench"):
            assert f"#SBATCH {flag}\n" in script, (flag, script)
        assert "source venv/bin/activate" in script
    assert "#SBATCH --array" not in prepare_script and "--dependency" not in prepare_script
    assert "#SBATCH --array=0-3%3\n" in array_script
    assert "#SBATCH --dependency=afterok:1001\n" in array_script
    assert not list(out.rglob("results.json"))  # nothing ran here

    # what each array task will run: one grid point, as `accelerate launch` of `mmu-bench run`
    from submitit.core.utils import DelayedSubmission

    pickles = sorted((out / ".submitit").glob("1002_*_submitted.pkl"))
    points = [DelayedSubmission.load(p).args[0] for p in pickles]
    assert sorted((p.name, p.config.seed) for p in points) == [("ga", 0), ("ga", 1), ("npo", 0), ("npo", 1)]
    assert {p.config.method_args["steps"] for p in points} == {"2"} and {p.gpus for p in points} == {2}
    command = points[0].command(tmp_path / "point.yaml")
    assert command[1:6] == ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    assert command[-5:] == ["mmu_bench", "run", "--config", str(tmp_path / "point.yaml"), "--quiet"]
    prepared = DelayedSubmission.load(out / ".submitit" / "1001_submitted.pkl").function
    assert prepared.config.forget_ratio == 10


def test_launcher_options_are_checked(tmp_path, capsys, monkeypatch):
    base = ["sweep", "--methods", "ga", *SMALL, "--output-dir", str(tmp_path)]
    assert main([*base, "--jobs", "2"]) == 2
    assert "--jobs" in capsys.readouterr().err
    assert main([*base, "--partition", "gpu"]) == 2
    assert "--partition: SLURM options, for --launcher slurm only" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun
    assert main([*base, "--launcher", "slurm"]) == 2
    assert "no SLURM here" in capsys.readouterr().err
