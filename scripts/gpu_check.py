"""GPU check of the real-benchmark path: the MLLMU-Bench and CLEAR protocols and the method
options that follow their reference code (MMUnlearner's vision / both masks with full-weight
saliency under LoRA, KL_Min's and IDK's reductions), on CUDA in bf16, with tiny random LLaVA and
Qwen2.5-VL models (LoRA) and the test fixtures in the benchmarks' real schemas. Prints one line
per run and writes $OUT/gpu12.json (or ./gpu12.json).

Run from the repository root on a machine with a GPU and the package installed:
    python scripts/gpu_check.py
Not part of the test suite (CI has no GPU). Written for issue #12; not run yet: the session had
no GPU machine.
"""
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
root = Path(tempfile.mkdtemp())
os.environ["MMU_BENCH_HOME"] = str(root / "home")

import torch  # noqa: E402
import transformers  # noqa: E402

from mmu_bench.cli import main  # noqa: E402
from random_mllms import save_llava, save_qwen  # noqa: E402
from real_fixtures import write_clear, write_mllmu  # noqa: E402

out = Path(os.environ.get("OUT", "."))
report = {"torch": torch.__version__, "transformers": transformers.__version__,
          "cuda": torch.cuda.is_available(), "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
          "runs": []}
models = {"llava": save_llava(root / "llava")}
try:
    models["qwen2.5-vl"] = save_qwen(root / "qwen25", "2.5")
except Exception as exc:  # noqa: BLE001
    report["qwen_error"] = f"{type(exc).__name__}: {exc}"
sources = {"mllmu": write_mllmu(root / "mllmu", "parquet"), "clear": write_clear(root / "clear", "parquet")}
SHOTS = {"mllmu": ["--protocol-arg", "shots.cloze=1"], "clear": []}
SMALL = ["steps=2", "batch_size=2"]
MASK = ["mask_batches=2", "retain_per_forget=1"]
plan = [
    ("mllmu", "llava", "mmunlearner", SMALL + MASK + ["variant=both"]),
    ("mllmu", "llava", "mmunlearner", SMALL + MASK + ["variant=vision", "mask=random"]),
    ("mllmu", "llava", "kl_min", SMALL),
    ("mllmu", "llava", "idk", SMALL),
    ("clear", "llava", "npo", SMALL),
    ("mllmu", "qwen2.5-vl", "mmunlearner", SMALL + MASK + ["variant=language"]),
    ("clear", "qwen2.5-vl", "kl_min", SMALL),
]
for i, (bench, kind, method, margs) in enumerate(plan):
    entry = {"bench": bench, "model": kind, "method": method, "args": margs}
    report["runs"].append(entry)
    if kind not in models:
        entry["skipped"] = "model not built"
        continue
    runs = root / "runs" / str(i)
    args = ["run", "--method", method, *[a for m in margs for a in ("--method-arg", m)],
            "--model", f"hf:{models[kind]}", "--benchmark", bench, "--forget-ratio", "10",
            "--benchmark-arg", f"source={sources[bench]}", "--benchmark-arg", f"cache_dir={root / 'hf-cache'}",
            "--min-vanilla-mc", "0", "--eval-batch-size", "8", "--quiet", "--device", "cuda", "--trajectory", "2",
            "--model-arg", "dtype=bfloat16", "--model-arg", "steps=3", "--model-arg", "lr=1e-3",
            "--model-arg", "batch_size=4", "--model-arg", "device=cuda", *SHOTS[bench], "--output-dir", str(runs)]
    started = time.time()
    try:
        entry["rc"] = main(args)
    except BaseException:  # noqa: BLE001
        entry["rc"] = "exception"
        entry["error"] = traceback.format_exc()[-3000:]
    entry["seconds"] = round(time.time() - started, 1)
    found = list(runs.rglob("results.json"))
    if not found:
        continue
    result = json.loads(found[0].read_text())
    vf = result["scores"]["unlearned"]["visual_forgetting"]
    report_m = result["training"].get("method_report", {})
    entry.update(
        overall=result["overall"], protocol=result["protocol"]["name"],
        over_budget=result["protocol"]["over_budget"],
        demonstrations={k: len(v) for k, v in result["protocol"]["demonstrations"].items()},
        extra_metrics={k: vf[k].get("mean") for k in ("rouge1", "rouge2", "bleu", "rougeL_recall") if k in vf},
        truth_ratio=vf.get("truth_ratio_forget"), config=result["method"]["config"],
        trainable=result["training"].get("trainable"),
        method_report={k: report_m[k] for k in ("mask_scored_on", "full_weight_saliency", "mask_sparsity",
                                               "preserve_rows") if k in report_m},
        trade_off_points=len((found[0].parent / "trajectory.jsonl").read_text().splitlines()),
        peak_gb=round(torch.cuda.max_memory_allocated() / 2**30, 3) if torch.cuda.is_available() else None,
    )
(out / "gpu12.json").write_text(json.dumps(report, indent=1, default=str))
print(json.dumps([{k: e.get(k) for k in ("bench", "model", "method", "rc", "seconds", "overall")} for e in report["runs"]]))
print("qwen_error", report.get("qwen_error"))
for e in report["runs"]:
    if e.get("error"):
        print(e["method"], e["error"][-1500:])
