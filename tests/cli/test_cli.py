"""Command-line errors: clear, early, and with the nearest valid name."""

import pytest

from mmu_bench.cli import main


def run(capsys, *args):
    code = main(list(args))
    return code, capsys.readouterr()


def test_list_shows_methods_with_origin_benchmarks_models_and_tasks(capsys):
    code, out = run(capsys, "list")
    assert code == 0
    assert "npo" in out.out and "entry point mmu_bench.methods:npo" in out.out
    for name in ("mmu-synth", "tiny-llava", "visual_forgetting", "general_utility"):
        assert name in out.out


@pytest.mark.parametrize("args,message", [
    (["--method", "nop"], "unknown method 'nop'. Did you mean 'npo'?"),
    (["--benchmark", "mmu-synthh"], "unknown benchmark 'mmu-synthh'. Did you mean 'mmu-synth'?"),
    (["--model", "tiny-lava"], "unknown model 'tiny-lava'. Did you mean 'tiny-llava'?"),
    (["--tasks", "visual_forgeting"], "unknown task 'visual_forgeting'. Did you mean 'visual_forgetting'?"),
    (["--forget-ratio", "7"], "forget ratio 7 is not one of MMU-Synth's splits (5, 10, 15)"),
    (["--forget-ratio", "-5"], "forget ratio must be a percentage"),
    (["--seed", "-1"], "seed must be an integer"),
    (["--seed", "one"], "--seed: expected int"),
    (["--method-arg", "betta=1"], "unknown argument(s) betta"),
    (["--model", "hf:/no/such/model-folder"], "model folder /no/such/model-folder does not exist"),
    (["--model", "hf:org/m", "--model-arg", "vanilla=./no-such-ckpt"],
     "vanilla checkpoint folder (vanilla=) ./no-such-ckpt does not exist"),
    (["--method", "NOTES.txt:Method"], "not a Python source file (expected a .py file)"),
    (["--method", "./NOTES.txt:Method"], "not a Python source file (expected a .py file)"),
    (["--protocol", "mlmu"], "unknown protocol 'mlmu'. Did you mean 'mllmu'?"),
    (["--protocol-arg", "shots.cloze=two"], "--protocol-arg shots.cloze: expected an integer"),
    (["--model-arg", "finetune_steps=many"], "model 'tiny-llava' --model-arg 'finetune_steps': expected int, got 'many'"),
    (["--model-arg", "steps=9"], "model 'tiny-llava': unknown --model-arg(s) steps; valid: arch (TinyArch)"),
    (["--benchmark-arg", "num_entities=lots"], "--benchmark-arg num_entities: expected int, got 'lots'"),
    (["--benchmark-arg", "train_views=x"], "MMU-Synth --benchmark-arg 'train_views': expected int, got 'x'"),
])
def test_bad_input_fails_fast_with_a_clear_error(capsys, tmp_path, monkeypatch, args, message):
    (tmp_path / "NOTES.txt").write_text("not Python at all\n")
    monkeypatch.chdir(tmp_path)
    out_dir = tmp_path / "out"
    code, out = run(capsys, "run", *args, "--output-dir", str(out_dir), "--quiet")
    assert code == 2
    assert message in out.err
    assert not out_dir.exists()  # no work was done, nothing written
