import textwrap

import pytest

from mmu_bench.core.errors import UnknownNameError
from mmu_bench.spec import registry
from mmu_bench.spec.registry import PluginError, resolve_method


def test_builtin_methods_resolve_through_their_entry_points():
    resolved = resolve_method("npo")
    assert resolved.cls.name == "npo"
    assert resolved.origin.startswith("entry point mmu_bench.methods:npo")
    assert len(resolved.source_sha256) == 64


def test_unknown_method_lists_what_exists_and_suggests_the_nearest():
    with pytest.raises(UnknownNameError) as err:
        resolve_method("npoo")
    message = str(err.value)
    assert "Did you mean 'npo'?" in message and "ga" in message


def test_unknown_benchmark_and_model_suggest_names():
    with pytest.raises(UnknownNameError, match="Did you mean 'mmu-synth'"):
        registry.resolve_benchmark("mmu-synht")
    with pytest.raises(UnknownNameError, match="Did you mean 'tiny-llava'"):
        registry.resolve_model("tiny-lava")


def test_unknown_task_suggests_the_nearest():
    from mmu_bench.spec.tasks import load_tasks

    with pytest.raises(UnknownNameError, match="Did you mean 'retained_vqa'"):
        load_tasks(["retain_vqa"])


def _plugin(tmp_path, body: str):
    path = tmp_path / "my_method.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_method_from_a_file(tmp_path):
    path = _plugin(tmp_path, """
        from mmu_bench.method import UnlearningMethod
        from mmu_bench.losses import nll

        class Mine(UnlearningMethod):
            name = "mine"
            def loss(self, ctx, batch):
                return -nll(ctx.model, batch.forget)
    """)
    resolved = resolve_method(f"{path}:Mine")
    assert resolved.name == "mine" and resolved.origin == f"file {path.resolve()}"
    import hashlib

    assert resolved.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_method_from_a_module():
    resolved = resolve_method("mmu_bench.methods.ga:GA")
    assert resolved.name == "ga" and resolved.origin == "module mmu_bench.methods.ga"


@pytest.mark.parametrize("body,message", [
    ("import not_a_module_anywhere\n", "failed to import: ModuleNotFoundError"),
    ("class Mine:\n    name = 'x'\n", "is not a subclass of mmu_bench.api.UnlearningMethod"),
    ("from mmu_bench.method import UnlearningMethod\nclass Mine(UnlearningMethod):\n    name = 'x'\n",
     "implements neither loss\\(\\) nor unlearn\\(\\)"),
    ("from mmu_bench.method import UnlearningMethod\nclass Mine(UnlearningMethod):\n"
     "    def loss(self, ctx, batch):\n        return 0\n", "sets no `name`"),
])
def test_broken_plugins_name_the_plugin_origin_and_problem(tmp_path, body, message):
    path = _plugin(tmp_path, body)
    with pytest.raises(PluginError, match=message) as err:
        resolve_method(f"{path}:Mine")
    assert str(path.resolve()) in str(err.value)


def test_missing_file_and_attribute(tmp_path):
    with pytest.raises(PluginError, match="no such file"):
        resolve_method(f"{tmp_path}/nope.py:X")
    path = _plugin(tmp_path, "x = 1\n")
    with pytest.raises(PluginError, match="defines no 'Mine'"):
        resolve_method(f"{path}:Mine")
