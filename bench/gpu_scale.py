"""The real 7B path on one GPU: evaluation throughput, unlearning cost, multi-GPU scaling.

Random-weight models of the real configurations (LLaVA-1.5-7B, Qwen2.5-VL-7B; nothing is
downloaded) on an MLLMU-Bench fixture in the real schema, with the real per-image token counts
(576 for LLaVA-1.5 at 336 px). Run by hand on an H100/H200; sized to finish within 8 minutes
(an estimate: not yet timed on a GPU):

    python bench/gpu_scale.py                      # both models, bf16, writes bench/gpu_scale.json
    python bench/gpu_scale.py --models llava --steps 5 --out /tmp/scale.json
    python bench/gpu_scale.py --scale tiny         # tiny configs of the same classes: CPU, seconds

Measured, per model:
1. evaluation items/s through the harness (``harness.evaluate``) batched (``--batch-size``) and
   one item at a time (MLLMU-Bench's reference eval style), peak GPU memory, and the projected
   time of the full forget-10 evaluation (items/s applied to its real item count);
2. unlearning with LoRA (the harness's adapter): GA_Diff, NPO and MMUnlearner seconds per step
   after ``--warmup`` steps, MMUnlearner's saliency pass, the MMUnlearner/GA_Diff ratio, peak
   memory. A step is one forget batch and one retain batch (MMUnlearner: retain_per_forget=1;
   NPO: one forget batch and its oracle's forward). MMUnlearner's full-weight Fisher (its default
   ``saliency_on=full``) holds two float32 copies of the adapted weights: on an 80 GB card it may
   run out of memory, recorded as an error (``--saliency-on adapter`` avoids it);
3. a 2-GPU DDP run of GA_Diff (``accelerate launch`` of this script) when 2 GPUs are visible,
   else recorded as skipped.

Writes one JSON (``--out``) and prints a table. A fresh MMU_BENCH_HOME is used.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent

# MLLMU-Bench's rows (the hub dataset viewer: Full_Set 500, forget_10 50, retain_90 450,
# Test_Set 500, Retain_Set 153) and questions per row. The per-row split is assumed: the
# dataset card says each profile has "over 14" question-answer pairs; the exact counts need
# the hub data (not reachable here). The harness scores each row's questions once per task.
REAL_ROWS = {"forget/profile": 50, "retain/profile": 450, "forget/test": 50, "retain/test": 450,
             "general/celebrity": 153}
PER_ROW = {"mc_image": 4, "mc_text": 4, "gen_image": 2, "gen_text": 1, "cloze_image": 2, "cloze_text": 1}
COUNT_SOURCE = ("rows: huggingface.co/datasets/MLLMMU/MLLMU-Bench (viewer: forget_10 50, retain_90 450, "
                "Test_Set 500, Retain_Set 153 rows); questions per row: assumed from the card's 'over 14 "
                "question-answer pairs' per profile (PER_ROW); items = the harness's records: per task, the rows "
                "it selects. forget-10 eval items = sum over (split, source) of items per fixture row x real rows")

# Sizes per scale. real: the models' published configs; tiny: the same classes, small.
SCALES = {
    "real": {"profiles": 20, "celebrities": 4, "image_size": 512, "eval_limit": 8, "single_limit": 2,
             "batch_size": 64, "steps": 3, "warmup": 1, "train_batch": 4, "mask_batches": 2},
    "tiny": {"profiles": 10, "celebrities": 2, "image_size": 32, "eval_limit": 2, "single_limit": 1,
             "batch_size": 16, "steps": 2, "warmup": 1, "train_batch": 2, "mask_batches": 1},
}
MODELS = {"llava": "llava-1.5-7b", "qwen2.5-vl": "qwen2.5-vl-7b"}
METHODS = ("ga_diff", "npo", "mmunlearner")

# Qwen's chat format over structured content (the real template adds a default system turn).
QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Real token ids, where the configs refer to them.
LLAVA_SPECIAL = {"<unk>": 0, "<s>": 1, "</s>": 2, "<image>": 32000, "<pad>": 32001}
QWEN_SPECIAL = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<unk>": 151646,
                "<|vision_start|>": 151652, "<|vision_end|>": 151653, "<|image_pad|>": 151655,
                "<|video_pad|>": 151656}


# ---- the fixture: MLLMU-Bench's schema (tests/real_fixtures.py writes it), real-size images ----

WORDS = ("the person in this picture is known for working as a skilled engineer who lives near the old river "
         "and enjoys painting quiet landscapes on long summer evenings with friends from school").split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def image(rng: random.Random, size: int):
    from PIL import Image

    return Image.frombytes("RGB", (size, size), rng.randbytes(size * size * 3))


def tasks_of(rng: random.Random, name: str) -> dict:
    """One row's questions, PER_ROW of each kind, about as long as MLLMU-Bench's."""
    def mc(k):
        options = {x: sentence(rng, 4) for x in "ABCD"}
        return {"Correct_Answer": "ABCD"[k % 4], "Options": options, "Question": sentence(rng, 12) + " ?"}

    def task(kind, k, blank=False):
        subject = "this person" if kind == "Image_Textual" else name
        question = f"{subject} {sentence(rng, 10)} " + ("__ ." if blank else "?")
        return {"Question": question, "Ground_Truth": sentence(rng, 2 if blank else 16), "Type": kind}

    types = {"image": "Image_Textual", "text": "Pure_Text"}
    return {
        "Classification_Task": {"Image_Textual_Questions": [mc(k) for k in range(PER_ROW["mc_image"])],
                                "Pure_Text_Questions": [mc(k) for k in range(PER_ROW["mc_text"])]},
        "Generation_Task": [task(types[m], k) for m in types for k in range(PER_ROW[f"gen_{m}"])],
        "Mask_Task": [task(types[m], k, blank=True) for m in types for k in range(PER_ROW[f"cloze_{m}"])],
    }


def fixture_rows(profiles: int, celebrities: int, size: int) -> tuple[dict, dict]:
    """The configs forget-10 reads (forget_10, retain_90, Test_Set, Retain_Set, ft_Data) and the
    fixture's row counts per (split, source)."""
    rng = random.Random(0)
    ids = [f"{i:03d}" for i in range(1, profiles + 1)]
    forget = ids[: max(1, profiles // 10)]
    names = {pid: f"Name{pid} Surname{pid}" for pid in ids}
    rows = {pid: {"image": image(rng, size), "ID": pid, "biography": json.dumps({"Name": names[pid]}),
                  "question": "What is this person's job ?", "answer": sentence(rng, 16), **tasks_of(rng, names[pid])}
            for pid in ids}
    configs = {
        "forget_10": [rows[p] for p in forget],
        "retain_90": [rows[p] for p in ids if p not in forget],
        "Test_Set": [{"ID": p, "images": [image(rng, size), image(rng, size)], **tasks_of(rng, names[p])} for p in ids],
        "Retain_Set": [{"image": image(rng, size), "ID": f"c{k}", "biography": json.dumps({"Name": f"Celebrity{k}"}),
                        **tasks_of(rng, f"Celebrity{k}")} for k in range(celebrities)],
        "ft_Data": [{"image": rows[p]["image"], "ID": p, "metadata": json.dumps(
            [{"Question": f"{sentence(rng, 8)} this individual ?", "Answer": sentence(rng, 16)} for _ in range(3)])}
            for p in ids],
    }
    counts = {"forget/profile": len(forget), "retain/profile": profiles - len(forget), "forget/test": len(forget),
              "retain/test": profiles - len(forget), "general/celebrity": celebrities}
    return configs, counts


def load_benchmark(folder: Path, profiles: int, celebrities: int, size: int):
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    from mmu_bench.data import mllmu
    from real_fixtures import write_mllmu  # the schema the adapter's tests use

    configs, counts = fixture_rows(profiles, celebrities, size)
    if not (folder / "ft_Data").exists():
        write_mllmu(folder, rows=configs)
    return mllmu.load(10, source=str(folder), cache_dir=str(folder / "hf-cache")), counts, configs


def fixture_words(configs: dict) -> list[str]:
    from mmu_bench.api import default_prompts
    from mmu_bench.models import tiny

    words = set(tiny.prompt_words(default_prompts())) | {"USER", "ASSISTANT", ":", "user", "assistant"}

    def walk(value):
        if isinstance(value, str):
            words.update(re.findall(r"\w+|[^\w\s]", value))
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(configs)
    return sorted(words)


# ---- processors and models ----


def word_tokenizer(words: list[str], special: dict[str, int], size: int, **roles):
    """Word-level tokenizer with ``special`` tokens at their ids and fillers up to ``size``, so
    that every id a random model generates decodes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = dict(special)
    free = iter(i for i in range(size) if i not in set(special.values()))
    for word in words:
        if word not in vocab:
            vocab[word] = next(free)
    vocab.update({f"<x{i}>": i for i in free})
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                  pre_tokenizers.Punctuation(behavior="isolated")])
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>",
                                   model_input_names=["input_ids", "attention_mask"], **roles)


def tail_ids(names: list[str], words: list[str]) -> tuple[dict[str, int], int]:
    """Tiny scale: the special tokens after the words; the vocabulary's size."""
    size = len(words) + len(names)
    return {name: len(words) + k for k, name in enumerate(names)}, size


def llava(scale: str, words: list[str]):
    """(config, processor) of LLaVA-1.5-7B, or of a tiny LLaVA."""
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaProcessor

    from mmu_bench.models.tiny import CHAT_TEMPLATE

    if scale == "real":
        special, size = LLAVA_SPECIAL, 32064
        vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                                  image_size=336, patch_size=14, projection_dim=768, hidden_act="quick_gelu")
        text = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
                "num_key_value_heads": 32, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5}
    else:
        special, size = tail_ids(list(LLAVA_SPECIAL), words)
        vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                  image_size=28, patch_size=14, projection_dim=32)
        text = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
                "num_key_value_heads": 2, "max_position_embeddings": 512}
    tok = word_tokenizer(words, special, size, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                         extra_special_tokens={"image_token": "<image>"})
    text = LlamaConfig(vocab_size=size, pad_token_id=special["<pad>"], bos_token_id=special["<s>"],
                       eos_token_id=special["</s>"], **text)
    patches = (vision.image_size // vision.patch_size) ** 2
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=special["<image>"],
                         image_seq_length=patches, projector_hidden_act="gelu", vision_feature_layer=-2,
                         vision_feature_select_strategy="default")
    side = vision.image_size
    images = CLIPImageProcessorPil(size={"shortest_edge": side}, crop_size={"height": side, "width": side},
                                   do_resize=True, do_center_crop=True)
    processor = LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=vision.patch_size,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=CHAT_TEMPLATE, image_token="<image>")
    return config, processor


def qwen25(scale: str, words: list[str]):
    """(config, processor) of Qwen2.5-VL-7B, or of a tiny Qwen2.5-VL."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from mmu_bench.models.hf import _image_only

    if scale == "real":
        special, size = QWEN_SPECIAL, 152064
        vision = {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584,
                  "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31], "patch_size": 14, "tokens_per_second": 2}
        text = {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
                "num_key_value_heads": 4, "max_position_embeddings": 128000, "rms_norm_eps": 1e-6,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}}
        pixels = {"shortest_edge": 3136, "longest_edge": 12845056}  # the real preprocessor's min / max pixels
    else:
        special, size = tail_ids(list(QWEN_SPECIAL), words)
        vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
                  "window_size": 32, "fullatt_block_indexes": [1], "patch_size": 8}
        text = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
                "num_key_value_heads": 2, "max_position_embeddings": 512,
                # head_dim 32: the three M-RoPE sections (time, height, width) must sum to 16
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]}}
        pixels = {"shortest_edge": 32 * 32, "longest_edge": 32 * 32}
    vision.update(spatial_merge_size=2, temporal_patch_size=2)
    tok = word_tokenizer(words, special, size, pad_token="<|endoftext|>", eos_token="<|im_end|>",
                         additional_special_tokens=[t for t in special if t not in ("<|endoftext|>", "<unk>")])
    text.update(vocab_size=size, pad_token_id=special["<|endoftext|>"], eos_token_id=special["<|im_end|>"],
                bos_token_id=None)
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=special["<|image_pad|>"],
                              video_token_id=special["<|video_pad|>"], vision_start_token_id=special["<|vision_start|>"],
                              vision_end_token_id=special["<|vision_end|>"])
    images = Qwen2VLImageProcessorPil(size=pixels, patch_size=vision["patch_size"], merge_size=2, temporal_patch_size=2)
    processor = _image_only(Qwen2_5_VLProcessor)(image_processor=images, tokenizer=tok, chat_template=QWEN_TEMPLATE)
    return config, processor


def build_model(kind: str, config, processor, device, dtype, seed: int = 0):
    """Random weights, initialised where they live (on the GPU: seconds for 7B)."""
    from transformers import LlavaForConditionalGeneration, Qwen2_5_VLForConditionalGeneration

    cls = LlavaForConditionalGeneration if kind == "llava" else Qwen2_5_VLForConditionalGeneration
    torch.manual_seed(seed)
    with torch.device(device):
        model = cls._from_config(config, dtype=dtype)
    tok = processor.tokenizer
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return model.eval()


def image_tokens(processor, rows) -> int:
    """Image tokens of one fixture image in the prompt (what the model attends over)."""
    from mmu_bench.api.encoding import encode

    row = next(r for r in rows if r["image"] is not None)
    ids = encode(processor, "x", row["image"])["input_ids"]
    image_id = processor.tokenizer.convert_tokens_to_ids(getattr(processor, "image_token", "<image>"))
    return int((ids == image_id).sum())


# ---- measurements ----


def clock(device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def reset_peak(device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def free(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def forget10_items(bench, tasks, fixture_counts: dict) -> dict:
    """The forget-10 evaluation's item count on the real data, from the fixture's items per row."""
    from mmu_bench.spec.selection import text_rows

    per_group: dict[str, int] = {}
    for rows in text_rows(bench.eval, tasks).values():
        for row in rows:
            group = f"{row['split']}/{row['item_id'].split('/')[1]}"
            per_group[group] = per_group.get(group, 0) + 1
    per_row = {g: per_group.get(g, 0) / n for g, n in fixture_counts.items() if n}
    return {"items": round(sum(per_row[g] * REAL_ROWS[g] for g in per_row)), "items_per_row": per_row,
            "real_rows": REAL_ROWS, "per_row_questions": PER_ROW, "source": COUNT_SOURCE}


def eval_cost(model, processor, bench, tasks, device, batch_size: int, limit: int) -> dict:
    from mmu_bench.harness.evaluate import evaluate
    from mmu_bench.spec.selection import EvalSettings

    reset_peak(device)
    start = clock(device)
    records = evaluate(model, processor, bench.eval, tasks, EvalSettings(batch_size=batch_size, limit=limit, progress=False))
    seconds = clock(device) - start
    return {"batch_size": batch_size, "limit_per_task_format": limit, "items": len(records),
            "seconds": round(seconds, 3), "items_per_s": round(len(records) / seconds, 3), "peak_gpu_mb": peak_mb(device)}


def evaluation(model, processor, bench, tasks, device, args, real_items: int) -> dict:
    from mmu_bench.harness.evaluate import evaluate
    from mmu_bench.spec.selection import EvalSettings

    # Warm-up (CUDA context, kernels, caches): one item per task and format, not timed.
    evaluate(model, processor, bench.eval, tasks, EvalSettings(batch_size=args.batch_size, limit=1, progress=False))
    batched = eval_cost(model, processor, bench, tasks, device, args.batch_size, args.eval_limit)
    single = eval_cost(model, processor, bench, tasks, device, 1, args.single_limit)
    return {"batched": batched, "one_at_a_time": single,
            "batched_over_single": round(batched["items_per_s"] / single["items_per_s"], 2),
            "forget10_items": real_items,
            "projected_forget10_seconds": {"batched": round(real_items / batched["items_per_s"], 1),
                                           "one_at_a_time": round(real_items / single["items_per_s"], 1)}}


def unlearn_cost(name: str, base, processor, bench, device, args, make_reference, accelerator=None) -> tuple[dict, object]:
    """One method with a fresh LoRA adapter over ``base``, as the harness runs it (``run.unlearn``);
    returns its figures and ``base`` without the adapter."""
    from mmu_bench.api.context import EncodedSet, MethodData, UnlearningContext
    from mmu_bench.api.prompts import default_prompts
    from mmu_bench.harness import distributed
    from mmu_bench.models.hf import HFProvider
    from mmu_bench.spec import registry
    from mmu_bench.spec.config import method_config

    cls = registry.resolve_method(name).cls
    overrides = {"steps": args.warmup + args.steps, "batch_size": args.train_batch}
    if name == "mmunlearner":  # one retain step per forget step (GA_Diff's work), a few Fisher batches
        overrides.update(retain_per_forget=1, mask_batches=args.mask_batches, saliency_on=args.saliency_on)
    config = method_config(cls, "mllmu", overrides)  # MLLMU-Bench's hyperparameters (hparams/mllmu.yaml)
    method = cls(config)
    model = HFProvider(path="random-init", progress=False).trainable(base, tuple(method.trainable_sides()))
    if accelerator is not None:
        model = distributed.prepare_model(accelerator, model)
    part = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else None
    prompts = default_prompts()
    data = MethodData(*(EncodedSet(rows, processor, prompts, part=part)
                        for rows in (bench.forget_set(), bench.retain_set(), bench.preserve_text())))
    for encoded in (data.forget, data.retain, data.preserve_text):
        encoded.features  # noqa: B018  encoded before the clock starts: not a step's cost
    ctx = UnlearningContext(model=model, processor=processor, config=config, data=data, seed=0, benchmark="mllmu",
                            reference_loader=make_reference, accelerator=accelerator, progress=False)
    marks: list[float] = []
    ctx.on_step = lambda step, total: marks.append(clock(device))
    torch.manual_seed(0)
    reset_peak(device)
    figures: dict = {"steps_timed": args.steps, "warmup_steps": args.warmup, "batch_size": args.train_batch}
    try:
        start = clock(device)
        method.setup(ctx)
        ready = clock(device)
        method.unlearn(ctx)
        first = marks[args.warmup - 1] if args.warmup else ready
        figures.update(setup_seconds=round(ready - start, 3), seconds_per_step=round((marks[-1] - first) / args.steps, 5),
                       peak_gpu_mb=peak_mb(device))
        if name == "mmunlearner":
            figures.update(saliency_seconds=figures["setup_seconds"], fisher_batches=3 * args.mask_batches,
                           saliency_on=args.saliency_on)
    except torch.OutOfMemoryError as exc:  # e.g. MMUnlearner's full-weight Fisher on an 80 GB card
        figures.update(error=f"out of memory: {str(exc).splitlines()[0]}", peak_gpu_mb=peak_mb(device))
    ctx._references.clear()
    model = ctx.unwrapped_model
    del ctx, method, data
    base = model.unload()  # the base model without the adapter, for the next method
    base.zero_grad(set_to_none=True)  # an out-of-memory error can leave the Fisher pass's gradients
    free(device)
    return figures, base


def unlearning(base, processor, bench, device, args, make_reference) -> tuple[dict, object]:
    methods = {}
    for name in METHODS:
        methods[name], base = unlearn_cost(name, base, processor, bench, device, args, make_reference)
    ga, mm = methods["ga_diff"].get("seconds_per_step"), methods["mmunlearner"].get("seconds_per_step")
    return {"methods": methods, "mmunlearner_over_ga_diff": round(mm / ga, 3) if ga and mm else None}, base


def scaling(args, device, data_dir: Path, single: dict | None) -> dict:
    """GA_Diff over 2 GPUs (DDP, the same global batch) against one."""
    gpus = torch.cuda.device_count()
    if device.type != "cuda" or gpus < 2:
        return {"skipped": True, "reason": f"needs 2 CUDA devices; this run is on {device.type}, {gpus} visible"}
    out = data_dir / "ddp.json"
    forwarded = ["--scale", args.scale, "--models", args.models[0], "--data", str(data_dir), "--out", str(out)]
    for key in ("profiles", "celebrities", "image_size", "steps", "warmup", "train_batch"):
        forwarded += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               str(Path(__file__).resolve()), "--ddp-worker", *forwarded]
    try:
        done = subprocess.run(command, env=dict(os.environ), capture_output=True, text=True, timeout=args.ddp_timeout)
    except subprocess.TimeoutExpired:
        return {"skipped": False, "error": f"timed out after {args.ddp_timeout} s", "command": " ".join(command)}
    if done.returncode != 0:
        return {"skipped": False, "error": done.stderr[-2000:], "command": " ".join(command)}
    found = json.loads(out.read_text())
    one = (single or {}).get("seconds_per_step")
    found.update(skipped=False, single_gpu_seconds_per_step=one,
                 speedup=round(one / found["seconds_per_step"], 3) if one and found.get("seconds_per_step") else None)
    return found


def ddp_worker(args) -> None:
    """Under ``accelerate launch``: GA_Diff's steps over the processes; rank 0 writes ``--out``."""
    from mmu_bench.harness import distributed

    acc = distributed.accelerator()
    kind = args.models[0]
    bench, _, configs = load_benchmark(Path(args.data), args.profiles, args.celebrities, args.image_size)
    words = fixture_words(configs)
    config, processor = (llava if kind == "llava" else qwen25)(args.scale, words)
    dtype = torch.bfloat16 if acc.device.type == "cuda" else torch.float32
    model = build_model(kind, config, processor, acc.device, dtype)
    figures, _ = unlearn_cost("ga_diff", model, processor, bench, acc.device, args, None, acc)
    if acc.is_main_process:
        Path(args.out).write_text(json.dumps({"processes": acc.num_processes, "method": "ga_diff", "model": MODELS[kind],
                                              **figures}, indent=2))


# ---- the run ----


def measure_model(kind: str, bench, tasks, words, device, dtype, args, real_items: int) -> dict:
    config, processor = (llava if kind == "llava" else qwen25)(args.scale, words)
    start = clock(device)
    model = build_model(kind, config, processor, device, dtype)
    built = clock(device) - start
    found = {"build_seconds": round(built, 2), "parameters": sum(p.numel() for p in model.parameters()),
             "image_tokens": image_tokens(processor, bench.eval.select(range(min(50, len(bench.eval))))),
             "text": {k: getattr(config.text_config, k) for k in
                      ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                       "intermediate_size", "vocab_size")}}
    # Evaluated with a fresh LoRA adapter on, as the harness evaluates an unlearned model.
    from mmu_bench.models.hf import HFProvider

    model = HFProvider(path="random-init", progress=False).trainable(model)
    found["evaluation"] = evaluation(model, processor, bench, tasks, device, args, real_items)
    model = model.unload()
    free(device)

    def reference(role):  # NPO's oracle: a second model of the same size, as the harness loads one
        return build_model(kind, config, processor, device, dtype, seed=1)

    found["unlearning"], model = unlearning(model, processor, bench, device, args, reference)
    del model
    free(device)
    return found


def table(result: dict) -> str:
    lines = [f"device: {result['device']}  (scale {result['scale']}, {result['dtype']}; torch {result['torch']}, "
             f"transformers {result['transformers']})",
             f"forget-10 evaluation on the real data: {result['mllmu']['items']} items",
             f"{'model':16} {'eval items/s':>13} {'1-at-a-time':>12} {'ratio':>6} {'forget-10 s':>12} {'peak MB':>9} "
             f"{'GA_Diff s/step':>15} {'NPO s/step':>11} {'MMU s/step':>11} {'saliency s':>11} {'MMU/GA':>7}"]
    for name, m in result["models"].items():
        e, u = m["evaluation"], m["unlearning"]["methods"]
        step = {k: v.get("seconds_per_step", "OOM") for k, v in u.items()}
        lines.append(f"{name:16} {e['batched']['items_per_s']:>13} {e['one_at_a_time']['items_per_s']:>12} "
                     f"{e['batched_over_single']:>6} {e['projected_forget10_seconds']['batched']:>12} "
                     f"{str(e['batched']['peak_gpu_mb']):>9} {step['ga_diff']:>15} {step['npo']:>11} "
                     f"{step['mmunlearner']:>11} {u['mmunlearner'].get('saliency_seconds', 'OOM'):>11} "
                     f"{str(m['unlearning']['mmunlearner_over_ga_diff']):>7}")
    s = result["scaling"]
    lines.append("2-GPU DDP: " + (f"skipped ({s['reason']})" if s.get("skipped") else
                                  f"{s.get('seconds_per_step')} s/step, speedup {s.get('speedup')}" if "error" not in s
                                  else f"failed ({s['error'][-200:]})"))
    return "\n".join(lines)


def parse(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=list(SCALES), default="real")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--out", default=str(ROOT / "bench" / "gpu_scale.json"))
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    for key, help_ in (("profiles", "fictitious profiles in the fixture (10%% forgotten)"),
                       ("celebrities", "celebrity rows"), ("image_size", "fixture image side, px"),
                       ("eval_limit", "batched evaluation: items per task and format"),
                       ("single_limit", "one-at-a-time evaluation: items per task and format"),
                       ("batch_size", "evaluation batch size"), ("steps", "timed unlearning steps per method"),
                       ("warmup", "unlearning steps before the clock starts"), ("train_batch", "unlearning batch size"),
                       ("mask_batches", "MMUnlearner: Fisher batches per set")):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, help=f"{help_} (default: per --scale)")
    parser.add_argument("--saliency-on", choices=["full", "adapter"], default="full", help="MMUnlearner's saliency_on")
    parser.add_argument("--ddp-timeout", type=int, default=240, help="seconds for the 2-GPU run")
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for key, value in SCALES[args.scale].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> dict | None:
    args = parse(argv)
    if args.ddp_worker:
        ddp_worker(args)
        return None
    import peft
    import transformers

    from mmu_bench.harness.session import pick_device
    from mmu_bench.spec.tasks import load_tasks

    device = pick_device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with tempfile.TemporaryDirectory(prefix="mmu-gpu-scale-") as tmp, _home(Path(tmp) / "home"):
        data_dir = Path(tmp) / "mllmu"
        bench, counts, configs = load_benchmark(data_dir, args.profiles, args.celebrities, args.image_size)
        tasks = load_tasks()
        mllmu = forget10_items(bench, tasks, counts)
        words = fixture_words(configs)
        result = {"scale": args.scale, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                  "dtype": str(dtype).removeprefix("torch."), "torch": torch.__version__,
                  "transformers": transformers.__version__, "peft": peft.__version__,
                  "settings": {k: v for k, v in vars(args).items() if k not in ("ddp_worker", "data")},
                  "fixture": {"rows": counts, "eval_items": len(bench.eval), "train_rows": len(bench.train)},
                  "mllmu": mllmu, "models": {}}
        for kind in args.models:
            result["models"][MODELS[kind]] = measure_model(kind, bench, tasks, words, device, dtype, args, mllmu["items"])
        first = result["models"][MODELS[args.models[0]]]["unlearning"]["methods"]["ga_diff"]
        result["scaling"] = scaling(args, device, data_dir, first)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"wrote {args.out}")
    return result


@contextlib.contextmanager
def _home(path: Path):
    """A fresh MMU_BENCH_HOME (the benchmark's cache), never the user's; kept for DDP workers."""
    before = os.environ.get("MMU_BENCH_HOME")
    os.environ["MMU_BENCH_HOME"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MMU_BENCH_HOME")
        else:
            os.environ["MMU_BENCH_HOME"] = before


if __name__ == "__main__":
    main()
