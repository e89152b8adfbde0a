"""The house's rules, read from the code: which room imports which (arrows down the data flow,
no circles between rooms), plugins through mmu_bench.api only, and reading files loads no
model library."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# a room -> the rooms its modules may import (besides its own)
MAY_IMPORT = {
    "core": set(),
    "api": {"core"},
    "spec": {"core", "api"},
    "runs": {"core", "api", "spec"},
    "reporting": {"core", "api", "spec", "runs"},
    "harness": {"core", "api", "spec", "runs", "reporting"},
    "cli": {"core", "api", "spec", "runs", "reporting", "harness"},
    "data": {"api"},
    "models": {"api", "data"},  # tiny-llava's closed vocabulary is MMU-Synth's
}
PLUGIN_FOLDERS = {"methods": "methods", "measures": "measures", "attacks": "attacks"}


def _imports(path: Path, package: str) -> set[str]:
    """Every mmu_bench module ``path`` imports, at its top or inside a function."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mmu_bench")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("mmu_bench"):
                found |= {f"{module}.{a.name}" for a in node.names} if module == "mmu_bench" else {module}
    return found


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in MAY_IMPORT else None


def _package_modules():
    for path in sorted((ROOT / "mmu_bench").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        package = module if rel.name == "__init__" else module.rpartition(".")[0]
        yield path, module, package


def test_rooms_import_only_the_rooms_below_them():
    wrong = []
    for path, module, package in _package_modules():
        room = _room(module)
        if room is None:
            continue
        for imported in _imports(path, package):
            other = _room(imported)
            if other is not None and other != room and other not in MAY_IMPORT[room]:
                wrong.append(f"{module} -> {imported}")
    assert not wrong, "imports against the flow:\n" + "\n".join(wrong)


def test_no_circles_between_rooms():
    arrows = {room: set() for room in MAY_IMPORT}
    for path, module, package in _package_modules():
        room = _room(module)
        for imported in _imports(path, package) if room else ():
            other = _room(imported)
            if other and other != room:
                arrows[room].add(other)

    def reaches(start, goal, seen=()):
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, (*seen, nxt))) for nxt in arrows[start])

    assert not [room for room in arrows if reaches(room, room)]


def test_built_in_plugins_import_only_the_api_or_its_legacy_names():
    from mmu_bench import _legacy

    wrong = []
    for folder, package in PLUGIN_FOLDERS.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            for imported in _imports(path, f"mmu_bench.{package}"):
                target = _legacy.target(imported) or imported
                # a built-in method may use another's helper through its own package (dpo: idk's refusals)
                if not (target == "mmu_bench.api" or target.startswith(("mmu_bench.api.", f"mmu_bench.{package}."))
                        or target == "mmu_bench.core.errors"):
                    wrong.append(f"{path.relative_to(ROOT)} -> {imported}")
    assert not wrong, "\n".join(wrong)


def test_legacy_names_are_the_api_modules_themselves():
    from mmu_bench.baselines.npo import NPO

    import mmu_bench.api.losses
    import mmu_bench.losses
    from mmu_bench.methods.npo import NPO as Same

    assert mmu_bench.losses is mmu_bench.api.losses and NPO is Same
    assert mmu_bench.api.losses.__spec__.name == "mmu_bench.api.losses"


@pytest.mark.slow
def test_the_leaderboard_of_real_run_folders_loads_no_model_library(report_run, tmp_path):
    code = ("import json, sys\nfrom mmu_bench.cli import main\n"
            f"code = main(['leaderboard', '--runs', {str(report_run.parent)!r}, '--output', {str(tmp_path)!r}])\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'accelerate', 'peft')"
            " or m.startswith('mmu_bench.harness'))\n"
            "print(json.dumps([code, loaded]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    code, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert code == 0 and (tmp_path / "index.html").is_file() and (tmp_path / "mmu-synth__tiny-llava.md").is_file()
    assert loaded == []
