"""Score a model on task definitions: canonical rows -> batched inference -> per-item records
-> per-task aggregates. Knows nothing of unlearning methods.

Inference is batched throughout: prompts are sorted by length and decoded greedily with left
padding; the options of a multiple-choice item are scored together in one forward pass.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig

from . import metrics
from .data.schema import LETTERS
from .distributed import per_process, sharded
from .encoding import collate, encode_many
from .losses import label_logprobs, model_inputs
from .prompts import user_text
from .tasks import Task


@dataclass
class EvalSettings:
    batch_size: int = 64
    limit: int | None = None  # at most this many rows per task and format (seeded sample); None = all
    seed: int = 0
    progress: bool = True


@dataclass
class Evaluation:
    records: list[dict]  # one per scored row, with the model's output
    scores: dict[str, dict[str, dict]] = field(default_factory=dict)  # task -> metric -> {mean, stderr, n}


def to_device(batch: dict, model) -> dict:
    """Move a batch to the model's device; floating inputs (pixels) take the model's dtype."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module  # the wrapper has neither a device nor a dtype
    device, dtype = model.device, model.dtype
    return {k: v.to(device, dtype=dtype if v.is_floating_point() else None) for k, v in batch.items()}


def select_rows(dataset, tasks: list[Task], settings: EvalSettings) -> dict[str, list[dict]]:
    """Rows each task scores, in a stable order (a seeded sample per format under ``limit``)."""
    wanted: dict[str, list[dict]] = {t.name: [] for t in tasks}
    for row in dataset:
        for task in tasks:
            if row["format"] in task.formats and task.selects(row):
                wanted[task.name].append(row)
    if settings.limit is not None:
        for name, rows in wanted.items():
            by_format = defaultdict(list)
            for row in rows:
                by_format[row["format"]].append(row)
            kept = []
            for fmt in sorted(by_format):
                group = by_format[fmt]
                if len(group) > settings.limit:
                    rng = random.Random(f"{settings.seed}/{name}/{fmt}")
                    group = [group[i] for i in sorted(rng.sample(range(len(group)), settings.limit))]
                kept.extend(group)
            wanted[name] = kept
    return wanted


@torch.no_grad()
def greedy_outputs(model, processor, jobs: list[tuple[str, object, int]], batch_size: int, bar=None) -> list[str]:
    """Greedy continuations for (user text, image, max_new_tokens) jobs, in input order."""
    tok = processor.tokenizer
    encoded = encode_many(processor, [(user, image, None) for user, image, _ in jobs])
    order = sorted(range(len(jobs)), key=lambda i: (jobs[i][2], encoded[i]["input_ids"].shape[0]))
    outputs: list[str] = [""] * len(jobs)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = to_device(collate([encoded[i] for i in idx], tok.pad_token_id, "left"), model)
        config = GenerationConfig(
            max_new_tokens=max(jobs[i][2] for i in idx),
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        generated = model.generate(**batch, generation_config=config)
        new = generated[:, batch["input_ids"].shape[1] :]
        # Each job keeps its own budget: a batch may mix budgets; greedy decoding is per row.
        texts = tok.batch_decode([row[: jobs[i][2]] for i, row in zip(idx, new)], skip_special_tokens=True)
        for i, text in zip(idx, texts):
            outputs[i] = text.strip()
        if bar is not None:
            bar.update(len(idx))
    return outputs


@torch.no_grad()
def option_logprobs(model, processor, rows: list[dict], prompts_of: list[dict], batch_size: int, bar=None):
    """Mean token log-probability of each option's text (then EOS) as the answer to the bare
    question, per row. All options of an item travel in the same batch."""
    tok = processor.tokenizer
    results: list[list[float]] = []
    per_batch = max(1, batch_size // len(LETTERS))
    for start in range(0, len(rows), per_batch):
        chunk = list(range(start, min(start + per_batch, len(rows))))
        items, owners = [], []
        for i in chunk:
            user = user_text(rows[i], prompts_of[i], "option_loglik")
            for option in rows[i]["options"]:
                items.append((user, rows[i]["image"], option))
                owners.append(i)
        feats = encode_many(processor, items)
        batch = to_device(collate(feats, tok.pad_token_id, "right"), model)
        logits = model(**model_inputs(batch)).logits
        logp, mask = label_logprobs(logits, batch["labels"])
        mean = (logp.sum(-1) / mask.sum(-1).clamp(min=1)).tolist()
        scores: dict[int, list[float]] = defaultdict(list)
        for owner, value in zip(owners, mean):
            scores[owner].append(value)
        results.extend(scores[i] for i in chunk)
        if bar is not None:
            bar.update(len(chunk))
    return results


def evaluate(model, processor, dataset, tasks: list[Task], settings: EvalSettings = EvalSettings(),
             accelerator=None) -> Evaluation:
    """Score ``model`` on every task. ``dataset`` holds canonical rows with a ``split`` column.
    With an ``accelerator`` (several processes), each process scores a share of the items and
    every process returns the whole evaluation."""
    was_training = model.training
    model.eval()
    try:
        chosen = select_rows(dataset, tasks, settings)
        task_of = {t.name: t for t in tasks}
        items = [(name, row) for name, rows in chosen.items() for row in rows]
        mc_items = [(name, row) for name, row in items if row["format"] == "multiple_choice"]
        total = per_process(len(items), accelerator) + per_process(len(mc_items), accelerator)
        with tqdm(total=total, desc="evaluating", unit="item", disable=None if settings.progress else True, leave=False) as bar:
            jobs = []
            for name, row in items:
                task = task_of[name]
                jobs.append((user_text(row, task.prompts), row["image"], int(task.max_new_tokens.get(row["format"], 32))))
            outputs = sharded(lambda part: greedy_outputs(model, processor, part, settings.batch_size, bar),
                              jobs, accelerator)
            option_scores = sharded(lambda part: option_logprobs(
                model, processor, [r for _, r in part], [task_of[n].prompts for n, _ in part], settings.batch_size, bar,
            ), mc_items, accelerator)
    finally:
        model.train(was_training)

    records = []
    loglik = {(name, row["item_id"]): s for (name, row), s in zip(mc_items, option_scores)}
    for (name, row), (user, _, _), output in zip(items, jobs, outputs):
        record = {
            "task": name,
            "dimension": task_of[name].dimension,
            "item_id": row["item_id"],
            "entity_id": row["entity_id"],
            "split": row.get("split", ""),
            "modality": row["modality"],
            "view": row["view"],
            "fact": row["fact"],
            "format": row["format"],
            "prompt": user,
            "answer": row["answer"],
            "output": output,
        }
        if row["format"] == "multiple_choice":
            scores = loglik[(name, row["item_id"])]
            record["options"] = list(row["options"])
            record["mc_acc"] = float(metrics.mc_correct(output, row["answer"], len(row["options"])))
            record["option_logprobs"] = [round(s, 6) for s in scores]
            record["mc_loglik_acc"] = float(LETTERS[metrics.loglik_choice(scores)] == row["answer"])
        elif row["format"] == "cloze":
            record["cloze_acc"] = float(metrics.cloze_correct(output, row["answer"]))
        else:
            record["rougeL"] = metrics.rouge_l(output, row["answer"])
        records.append(record)
    return Evaluation(records=records, scores=aggregate(records))


def aggregate(records: list[dict]) -> dict[str, dict[str, dict]]:
    """task -> metric -> {mean, stderr, n}."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        for metric in metrics.METRICS:
            if metric in record:
                values[record["task"]][metric].append(record[metric])
    out: dict[str, dict[str, dict]] = {}
    for task, per_metric in values.items():
        out[task] = {}
        for metric, vals in per_metric.items():
            mean, stderr = metrics.mean_and_stderr(vals)
            out[task][metric] = {"mean": mean, "stderr": stderr, "n": len(vals)}
    return out
