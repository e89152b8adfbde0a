import pytest
import yaml

from mmu_bench.cli import make_parser
from mmu_bench.cli.options import build_config
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.methods.npo import NPO
from mmu_bench.spec import hparams
from mmu_bench.spec.config import RunConfig, method_config


def test_method_config_layers_defaults_hparams_and_overrides():
    plain = method_config(NPO, "other-benchmark", {})  # no hparams file: the Config defaults
    assert plain == NPO.Config()
    tuned = method_config(NPO, "mmu-synth", {})
    synth = yaml.safe_load((hparams.hparams_dir() / "mmu-synth.yaml").read_text())
    assert {k: getattr(tuned, k) for k in synth["npo"]} == synth["npo"]
    assert tuned.beta == NPO.Config().beta  # what the file does not set keeps its default
    mine = method_config(NPO, "mmu-synth", {"beta": "0.2", "steps": "7"})
    assert mine.beta == 0.2 and mine.steps == 7 and isinstance(mine.steps, int)
    assert mine.lr == tuned.lr


def test_the_tuned_values_are_pinned():
    """hparams/*.yaml hold exactly the values the methods had in their source before they
    became data (the published comparison was run with them)."""
    from mmu_bench.spec.registry import resolve_method

    def cfg(name, bench):
        c = method_config(resolve_method(name).cls, bench, {})
        return (c.lr, c.steps, c.batch_size, c.schedule, c.epochs)

    assert cfg("ga", "mmu-synth") == (5e-5, 40, 32, "constant", 1.0)
    assert cfg("kl_min", "mmu-synth") == (2e-4, 40, 32, "constant", 1.0)
    assert cfg("simnpo", "mmu-synth") == (2e-4, 15, 32, "constant", 1.0)
    assert cfg("idk", "mmu-synth") == (2e-4, 15, 32, "constant", 1.0)
    mmu = method_config(resolve_method("mmunlearner").cls, "mmu-synth", {})
    assert (mmu.lr, mmu.steps, mmu.retain_per_forget, mmu.mask_batch_size, mmu.mask_batches) == (2e-4, 40, 1, 16, 8)
    mllmu = method_config(resolve_method("mmunlearner").cls, "mllmu", {})
    assert (mllmu.lr, mllmu.batch_size, mllmu.epochs, mllmu.schedule, mllmu.mask_batch_size) == (1e-5, 4, 1.0, "constant", 4)
    assert cfg("npo", "no-such-benchmark") == (1e-4, 0, 8, "linear", 1.0)


def test_every_method_entry_applies_to_third_party_methods_too():
    from dataclasses import dataclass

    from mmu_bench.api.method import MethodConfig, UnlearningMethod

    @dataclass
    class C(MethodConfig):
        alpha: float = 1.0

    class Mine(UnlearningMethod):
        name = "mine"
        Config = C

    assert method_config(Mine, "clear", {}) == C(lr=2e-5, epochs=1.0, steps=0, batch_size=4, schedule="linear")
    assert method_config(Mine, "mmu-synth", {}) == C()


@pytest.fixture
def hparams_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(hparams, "hparams_dir", lambda: tmp_path)
    return tmp_path


def test_a_hparams_key_the_config_lacks_names_file_method_and_key(hparams_dir):
    (hparams_dir / "bench.yaml").write_text("npo: {lr: 1.0e-3, betta: 0.2}\n")
    with pytest.raises(MMUBenchError, match=r"bench\.yaml: entry 'npo' \(method 'npo'\) sets betta, which the Config "
                                             r"of method 'npo' does not have"):
        method_config(NPO, "bench", {})
    (hparams_dir / "bench.yaml").write_text("'*': {lrr: 1.0e-3}\n")
    with pytest.raises(MMUBenchError, match=r"bench\.yaml: entry '\*' \(every method\) sets lrr, which the Config "
                                             r"of method 'npo' does not have"):
        method_config(NPO, "bench", {})


def test_hparams_layering_and_bad_values(hparams_dir):
    (hparams_dir / "bench.yaml").write_text("'*': {lr: 1.0e-3, steps: 5}\nnpo: {steps: 9, beta: 0.1}\nga: {lr: 1}\n")
    cfg = method_config(NPO, "bench", {"beta": "0.3"})
    assert (cfg.lr, cfg.steps, cfg.beta) == (1e-3, 9, 0.3)  # "*" <- the method's entry <- the user
    (hparams_dir / "bench.yaml").write_text("npo: {steps: many}\n")
    with pytest.raises(MMUBenchError, match=r"bench\.yaml, method 'npo': 'steps': expected int, got 'many'"):
        method_config(NPO, "bench", {})
    (hparams_dir / "bench.yaml").write_text("npo: [1, 2]\n")
    with pytest.raises(MMUBenchError, match=r"bench\.yaml: entry 'npo' must map config field names to values"):
        method_config(NPO, "bench", {})


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
    from mmu_bench.spec.config import method_config
    from mmu_bench.spec.registry import resolve_method

    for name in ("ga", "ga_diff", "kl_min", "npo", "simnpo", "idk"):
        cfg = method_config(resolve_method(name).cls, "mllmu", {})
        assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.steps, cfg.schedule) == (2e-5, 4, 1.0, 0, "linear"), name
    mmu = method_config(resolve_method("mmunlearner").cls, "clear", {})
    assert (mmu.lr, mmu.batch_size, mmu.mask_batch_size, mmu.mask_batches) == (1e-5, 2, 2, 0)
    # The embedded benchmark keeps its tuned values; user arguments still win.
    assert method_config(resolve_method("npo").cls, "mmu-synth", {"lr": "1e-3"}).lr == 1e-3
