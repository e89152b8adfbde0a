import pytest

from mmu_bench.baselines.npo import NPO
from mmu_bench.cli import build_config, make_parser
from mmu_bench.config import RunConfig, method_config
from mmu_bench.errors import MMUBenchError


def test_method_config_layers_defaults_benchmark_defaults_and_overrides():
    plain = method_config(NPO, "other-benchmark", {})
    assert plain.beta == 0.4 and plain.lr == NPO.Config().lr
    tuned = method_config(NPO, "mmu-synth", {})
    assert tuned.lr == NPO.benchmark_defaults["mmu-synth"]["lr"]
    mine = method_config(NPO, "mmu-synth", {"beta": "0.2", "steps": "7"})
    assert mine.beta == 0.2 and mine.steps == 7 and isinstance(mine.steps, int)


def test_unknown_method_argument_lists_the_valid_ones():
    with pytest.raises(MMUBenchError, match=r"unknown argument\(s\) betta.*valid: .*beta \(float\)"):
        method_config(NPO, "mmu-synth", {"betta": "0.2"})


def test_ill_typed_method_argument_is_an_error():
    with pytest.raises(MMUBenchError, match="argument 'beta': expected float, got 'high'"):
        method_config(NPO, "mmu-synth", {"beta": "high"})
    with pytest.raises(MMUBenchError, match="beta must be positive"):
        method_config(NPO, "mmu-synth", {"beta": "-1"})


@pytest.mark.parametrize("field,value,message", [
    ("seed", -1, "seed must be an integer"),
    ("seed", 1.5, "seed must be an integer"),
    ("forget_ratio", 0, "forget ratio must be a percentage"),
    ("forget_ratio", 150, "forget ratio must be a percentage"),
    ("eval_limit", 0, "eval limit"),
])
def test_invalid_run_options_fail_before_any_work(field, value, message):
    with pytest.raises(MMUBenchError, match=message):
        RunConfig(**{field: value}).validate()


def test_cli_flags_override_the_yaml_file(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("method: ga\nseed: 3\nforget_ratio: 5\nmethod_args: {lr: 0.01}\n")
    args = make_parser().parse_args(["run", "--config", str(cfg), "--seed", "4", "--method-arg", "steps=2",
                                     "--benchmark-arg", "num_entities=20"])
    config = build_config(args)
    assert (config.method, config.seed, config.forget_ratio) == ("ga", 4, 5)
    assert config.method_args == {"lr": 0.01, "steps": "2"}
    assert config.benchmark_args == {"num_entities": 20}


def test_cli_rejects_bad_values_and_unknown_yaml_keys(tmp_path):
    with pytest.raises(MMUBenchError, match="--seed: expected int"):
        build_config(make_parser().parse_args(["run", "--seed", "abc"]))
    cfg = tmp_path / "run.yaml"
    cfg.write_text("metod: ga\n")
    with pytest.raises(MMUBenchError, match="unknown option.*metod"):
        build_config(make_parser().parse_args(["run", "--config", str(cfg)]))
    with pytest.raises(MMUBenchError, match="--method-arg expects KEY=VALUE"):
        build_config(make_parser().parse_args(["run", "--method-arg", "beta"]))


def test_builtin_methods_start_from_the_published_settings_on_real_benchmarks():
    from mmu_bench.config import method_config
    from mmu_bench.registry import resolve_method

    for name in ("ga", "ga_diff", "kl_min", "npo", "simnpo", "idk"):
        cfg = method_config(resolve_method(name).cls, "mllmu", {})
        assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.steps, cfg.schedule) == (2e-5, 4, 1.0, 0, "linear"), name
    mmu = method_config(resolve_method("mmunlearner").cls, "clear", {})
    assert (mmu.lr, mmu.batch_size, mmu.mask_batch_size, mmu.mask_batches) == (1e-5, 2, 2, 0)
    # The embedded benchmark keeps its tuned values; user arguments still win.
    assert method_config(resolve_method("npo").cls, "mmu-synth", {"lr": "1e-3"}).lr == 1e-3
