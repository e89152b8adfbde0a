"""Third-party method plugins: an installed package found by name, broken ones kept apart."""

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from mmu_bench.cli import main
from mmu_bench.spec import registry
from mmu_bench.spec.registry import PluginError, resolve_method
from small import SMALL

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """pip-install examples/plugin into a folder of its own and put it on sys.path: the test
    environment sees the package and its entry point exactly as after `pip install`."""
    import shutil

    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / "plugin"
    shutil.copytree(EXAMPLE, source)  # setuptools builds in the source tree: keep the repo clean
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True)
    sys.path.insert(0, str(target))
    yield target
    sys.path.remove(str(target))


def test_installed_plugin_resolves_by_name(installed_example):
    resolved = resolve_method("anchored-ga")
    assert resolved.name == "anchored-ga"
    assert "entry point mmu_bench.methods:anchored-ga" in resolved.origin
    assert "mmu-bench-example-plugin 0.1.0" in resolved.origin
    assert resolved.source_file.startswith(str(installed_example))


def test_installed_plugin_is_listed_and_runs_by_name(installed_example, tmp_path, capsys):
    assert main(["list"]) == 0
    assert "anchored-ga" in capsys.readouterr().out
    code = main(["run", "--method", "anchored-ga", "--method-arg", "steps=3", "--method-arg", "retain_weight=0.5",
                 *SMALL, "--output-dir", str(tmp_path)])
    assert code == 0
    (folder,) = (tmp_path / "mmu-synth" / "tiny-llava" / "anchored-ga").iterdir()
    result = json.loads((folder / "results.json").read_text())
    assert result["method"]["config"]["retain_weight"] == 0.5
    assert result["method"]["version"] == "0.1.0"
    assert "mmu-bench-example-plugin" in result["method"]["origin"]


@pytest.fixture
def broken_entry_point(tmp_path):
    """A distribution whose entry point names a module that does not exist."""
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mmu_bench.methods]\nbroken = no_such_module_xyz:Method\n")
    sys.path.insert(0, str(tmp_path))
    yield
    sys.path.remove(str(tmp_path))


def test_a_broken_entry_point_warns_and_breaks_nothing_else(broken_entry_point, capsys):
    with pytest.warns(UserWarning, match="'broken'.*broken-plugin 1.0.*failed to import: ModuleNotFoundError"):
        listed = registry.list_methods()
    assert {m["name"] for m in listed} >= {"ga", "npo", "broken"}
    assert resolve_method("npo").name == "npo"  # other methods still resolve
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["list"]) == 0  # from the sources: its module is not found
        out = capsys.readouterr()
        assert "broken" in out.out and "npo" in out.out and "cannot find the source of module 'no_such_module_xyz'" in out.err
        assert main(["list", "--check"]) == 0  # imported: the import error itself
    out = capsys.readouterr()
    assert "broken" in out.out and "npo" in out.out and "failed to import" in out.err
    with pytest.raises(PluginError, match="'broken' .*no_such_module_xyz:Method.*failed to import"):
        resolve_method("broken")


def _plugin(tmp_path, body):
    path = tmp_path / "plugin.py"
    path.write_text("from dataclasses import dataclass, field\n"
                    "from mmu_bench.method import MethodConfig, UnlearningMethod\n" + textwrap.dedent(body))
    return path


@pytest.mark.parametrize("body,message", [
    ("""
     class M(UnlearningMethod):
         name = "m"
         Config = dict
         def loss(self, ctx, batch):
             return 0
     """, "`Config` must be a dataclass subclassing"),
    ("""
     @dataclass(kw_only=True)
     class C(MethodConfig):
         beta: float
     class M(UnlearningMethod):
         name = "m"
         Config = C
         def loss(self, ctx, batch):
             return 0
     """, "config field\\(s\\) beta have no default"),
    ("""
     class M(UnlearningMethod):
         name = "m"
         benchmark_defaults = {"mmu-synth": {"lr": 1e-3}}
         def loss(self, ctx, batch):
             return 0
     """, "defines `benchmark_defaults`, which is no longer part of the contract.*--method-arg.*method_args.*"
          "README, \"Hyperparameters\""),
    ("""
     @dataclass
     class C(MethodConfig):
         lr: float = -1.0
     class M(UnlearningMethod):
         name = "m"
         Config = C
         def loss(self, ctx, batch):
             return 0
     """, "its default config is invalid: lr must be positive"),
])
def test_bad_config_fields_are_named(tmp_path, body, message):
    with pytest.raises(PluginError, match=message):
        resolve_method(f"{_plugin(tmp_path, body)}:M")


def test_the_readme_example_method_is_a_valid_plugin(tmp_path):
    """The 'Write your own method' example, copied out of docs/guides/method.md, passes the contract
    checks and computes a loss that is its formula."""
    import re

    import torch

    readme = (Path(__file__).resolve().parents[2] / "docs" / "guides" / "method.md").read_text()
    (code,) = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "class CappedDiff" in block]
    path = tmp_path / "my_method.py"
    path.write_text(code)
    resolved = resolve_method(f"{path}:CappedDiff")
    assert resolved.name == "capped-diff" and resolved.cls.uses_retain
    method = resolved.cls(resolved.cls.Config(retain_weight=0.5, ceiling=2.0))

    module = sys.modules[resolved.cls.__module__]
    original = module.nll
    module.nll = lambda model, batch: torch.tensor(batch["nll"])  # the NLL each batch stands for
    try:
        from mmu_bench.api.method import Batches

        loss = method.loss(type("Ctx", (), {"model": None})(), Batches({"nll": 3.0}, {"nll": 1.0}, 0))
    finally:
        module.nll = original
    assert loss.item() == pytest.approx(-2.0 + 0.5 * 1.0)  # forget NLL capped at 2
    with pytest.raises(ValueError, match="retain_weight must be >= 0"):
        resolved.cls.Config(retain_weight=-1)
