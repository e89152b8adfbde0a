"""`mmu-bench list` describes every plugin from its entry point and source: no model library is
imported, and what it says is what importing the plugins says (`list --check`)."""

import json
import subprocess
import sys
import warnings

import pytest

from mmu_bench.cli import main

PROBE = """
import json, sys
from mmu_bench.cli import main
try:
    code = main({args!r})
except SystemExit as exc:  # --help exits once it has printed
    code = exc.code
print(json.dumps({{"code": code, "loaded": sorted(m for m in ("torch", "transformers", "datasets") if m in sys.modules)}}),
      file=sys.stderr)
"""


def probe(args: list[str]) -> tuple[dict, str]:
    """Run the CLI in a fresh interpreter; what it printed and which heavy libraries it loaded."""
    done = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, check=True)
    return json.loads(done.stderr.strip().splitlines()[-1]), done.stdout


@pytest.mark.parametrize("args", [["list"], ["--help"], ["run", "--help"]])
def test_list_and_help_load_no_model_library(args):
    seen, out = probe(args)
    assert seen == {"code": 0, "loaded": []}
    if args == ["list"]:
        for name in ("npo", "mmunlearner", "rougeL", "forget_quality", "relearn", "mmu-synth", "mllmu",
                     "tiny-llava", "hf:<name-or-path>", "visual_forgetting", "protocols"):
            assert name in out, name
        assert "(forget ratios 5, 10, 15)" in out  # a benchmark's splits, read from its source


def test_list_says_what_importing_the_plugins_says(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["list"]) == 0
        quick = capsys.readouterr().out
        assert main(["list", "--check"]) == 0
        checked = capsys.readouterr().out
    assert quick == checked


@pytest.fixture
def broken_class(tmp_path):
    """A distribution whose entry point names a class its module does not define."""
    (tmp_path / "half_plugin.py").write_text("class Other:\n    pass\n")
    dist = tmp_path / "half_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: half-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mmu_bench.measures]\nhalf = half_plugin:Missing\n")
    sys.path.insert(0, str(tmp_path))
    yield
    sys.path.remove(str(tmp_path))
    sys.modules.pop("half_plugin", None)


def test_a_plugin_whose_class_is_missing_is_listed_as_broken(broken_class, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr()
    line = next(line for line in out.out.splitlines() if line.strip().startswith("half "))
    assert "[broken:" in line and "defines no class 'Missing'" in line
    assert "warning: measure plugin 'half'" in out.err
    assert "rougeL" in out.out  # the others are listed as ever
    assert main(["list", "--check"]) == 0
    out = capsys.readouterr()
    assert "[broken:" in next(line for line in out.out.splitlines() if line.strip().startswith("half "))
    assert "failed to import: AttributeError: module 'half_plugin' has no attribute 'Missing'" in out.err
