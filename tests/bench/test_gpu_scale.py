"""bench/gpu_scale.py at its tiny scale on the CPU: every section of its JSON and its table.
Figures are checked for sense, never for speed."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def gpu_scale():
    spec = importlib.util.spec_from_file_location("gpu_scale", ROOT / "bench" / "gpu_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from threads, and two threads on two busy cores crawl."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_tiny_scale_writes_every_section_and_prints_a_table(tmp_path, capsys, one_thread):
    bench = gpu_scale()
    out = tmp_path / "scale.json"
    bench.main(["--scale", "tiny", "--device", "cpu", "--out", str(out)])
    result = json.loads(out.read_text())

    assert (result["scale"], result["device"], result["dtype"]) == ("tiny", "cpu", "float32")
    assert result["torch"] == torch.__version__ and result["transformers"] and result["peft"]

    counts = result["mllmu"]
    assert counts["items"] == round(sum(n * counts["real_rows"][g] for g, n in counts["items_per_row"].items()))
    assert counts["items"] > 0 and counts["source"]

    assert set(result["models"]) == {"llava-1.5-7b", "qwen2.5-vl-7b"}
    for name, model in result["models"].items():
        assert model["parameters"] > 0 and model["image_tokens"] > 0, name
        evaluation = model["evaluation"]
        for mode, batch_size in (("batched", 16), ("one_at_a_time", 1)):
            figures = evaluation[mode]
            assert figures["batch_size"] == batch_size and figures["items"] > 0 and figures["items_per_s"] > 0
            assert figures["peak_gpu_mb"] is None  # no GPU: no figure
            assert evaluation["projected_forget10_seconds"][mode] == pytest.approx(
                counts["items"] / figures["items_per_s"], abs=0.1)
        assert evaluation["forget10_items"] == counts["items"]

        methods = model["unlearning"]["methods"]
        assert set(methods) == {"ga_diff", "npo", "mmunlearner"}
        for method, figures in methods.items():
            assert "error" not in figures, (name, method)
            assert figures["seconds_per_step"] > 0 and figures["steps_timed"] == 2 and figures["peak_gpu_mb"] is None
        assert methods["mmunlearner"]["saliency_seconds"] > 0 and methods["mmunlearner"]["fisher_batches"] == 3
        ratio = methods["mmunlearner"]["seconds_per_step"] / methods["ga_diff"]["seconds_per_step"]
        assert model["unlearning"]["mmunlearner_over_ga_diff"] == round(ratio, 3)

    assert result["scaling"]["skipped"] is True and "2 CUDA devices" in result["scaling"]["reason"]

    printed = capsys.readouterr().out
    assert "GA_Diff s/step" in printed and "2-GPU DDP: skipped" in printed and f"wrote {out}" in printed
    assert all(name in printed for name in result["models"])
