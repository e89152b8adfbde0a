"""Run a model on task definitions: canonical rows -> batched inference -> per-item records
carrying the model's raw signals (see ``mmu_bench.measure`` for what a record holds). Scoring
them is the measures' business (``mmu_bench.scoring``). Knows nothing of unlearning methods.

Inference is batched throughout: prompts are sorted by length and decoded greedily with left
padding; the options of a multiple-choice item are scored together in one forward pass, which
also gives the correct option's per-token log-probabilities; the reference answer of a cloze or
generation item is scored in one teacher-forced pass.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig

from .data.schema import LETTERS
from .distributed import per_process, sharded
from .encoding import collate, encode_many, to_device, with_answer
from .losses import label_logprobs, model_inputs
from .prompts import user_text
from .tasks import Task


@dataclass
class EvalSettings:
    batch_size: int = 64
    limit: int | None = None  # at most this many rows per task and format (seeded sample); None = all
    seed: int = 0
    progress: bool = True


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
def greedy_outputs(model, processor, jobs: list[tuple[str, object, int]], batch_size: int, bar=None,
                   encoded: list[dict] | None = None) -> list[str]:
    """Greedy continuations for (user text, image, max_new_tokens) jobs, in input order
    (``encoded``: the jobs' prompts, already encoded)."""
    tok = processor.tokenizer
    if encoded is None:
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


def _answer_logprobs(model, batch: dict) -> tuple[list[float], list[list[float]]]:
    """Per row of a right-padded batch with labels: the mean log-probability of the labelled
    tokens, and each of their log-probabilities."""
    logits = model(**model_inputs(batch)).logits
    logp, mask = label_logprobs(logits, batch["labels"])
    mean = (logp.sum(-1) / mask.sum(-1).clamp(min=1)).tolist()
    tokens = [row[keep].tolist() for row, keep in zip(logp, mask)]
    return mean, tokens


@torch.no_grad()
def option_logprobs(model, processor, rows: list[dict], prompts_of: list[dict], batch_size: int, bar=None):
    """Per row: the mean token log-probability of each option's text (then EOS) as the answer to
    the bare question, and the correct option's per-token log-probabilities. All options of an
    item travel in the same batch."""
    tok = processor.tokenizer
    results: list[tuple[list[float], list[float]]] = []
    per_batch = max(1, batch_size // len(LETTERS))
    for start in range(0, len(rows), per_batch):
        chunk = list(range(start, min(start + per_batch, len(rows))))
        items, owners = [], []
        for i in chunk:
            user = user_text(rows[i], prompts_of[i], "option_loglik")
            for k, option in enumerate(rows[i]["options"]):
                items.append((user, rows[i]["image"], option))
                owners.append((i, LETTERS[k] == rows[i]["answer"]))
        feats = encode_many(processor, items)
        batch = to_device(collate(feats, tok.pad_token_id, "right"), model)
        mean, tokens = _answer_logprobs(model, batch)
        scores: dict[int, list[float]] = defaultdict(list)
        correct: dict[int, list[float]] = {}
        for (owner, is_answer), value, per_token in zip(owners, mean, tokens):
            scores[owner].append(value)
            if is_answer:
                correct[owner] = per_token
        results.extend((scores[i], correct[i]) for i in chunk)
        if bar is not None:
            bar.update(len(chunk))
    return results


@torch.no_grad()
def answer_logprobs(model, processor, prompts: list[dict], answers: list[str], batch_size: int,
                    bar=None) -> list[list[float]]:
    """Per encoded prompt and its answer: the answer's per-token log-probabilities (then EOS)."""
    tok = processor.tokenizer
    out: list[list[float]] = []
    for start in range(0, len(prompts), batch_size):
        part = [with_answer(processor, dict(p), a) for p, a in zip(prompts[start : start + batch_size],
                                                                    answers[start : start + batch_size])]
        batch = to_device(collate(part, tok.pad_token_id, "right"), model)
        out.extend(_answer_logprobs(model, batch)[1])
        if bar is not None:
            bar.update(len(part))
    return out


def free_signals(model, processor, jobs: list[tuple[str, object, int, str | None]], batch_size: int,
                 bar=None) -> list[tuple[str, list[float] | None]]:
    """Per (user text, image, max_new_tokens, answer or None) job: the greedy output and, where
    an answer is given, its per-token log-probabilities. The prompts are encoded once for both."""
    encoded = encode_many(processor, [(user, image, None) for user, image, _, _ in jobs])
    outputs = greedy_outputs(model, processor, [job[:3] for job in jobs], batch_size, bar, encoded)
    scored = [i for i, job in enumerate(jobs) if job[3] is not None]
    logprobs = answer_logprobs(model, processor, [encoded[i] for i in scored], [jobs[i][3] for i in scored],
                               batch_size, bar)
    answers: list[list[float] | None] = [None] * len(jobs)
    for i, values in zip(scored, logprobs):
        answers[i] = values
    return list(zip(outputs, answers))


def evaluate(model, processor, dataset, tasks: list[Task], settings: EvalSettings | None = None,
             accelerator=None) -> list[dict]:
    """Run ``model`` on every task; one record per scored row. ``dataset`` holds canonical rows
    with a ``split`` column. With an ``accelerator`` (several processes), each process runs a
    share of the items and every process returns all the records."""
    settings = settings or EvalSettings()
    was_training = model.training
    model.eval()
    try:
        chosen = select_rows(dataset, tasks, settings)
        task_of = {t.name: t for t in tasks}
        items = [(name, row) for name, rows in chosen.items() for row in rows]
        mc_items = [(name, row) for name, row in items if row["format"] == "multiple_choice"]
        # Every item is generated; then multiple choice has its options' pass, the others an answer pass.
        total = 2 * per_process(len(items), accelerator)
        with tqdm(total=total, desc="evaluating", unit="item", disable=None if settings.progress else True, leave=False) as bar:
            jobs = []
            for name, row in items:
                task = task_of[name]
                # Multiple choice scores its answer in the options' pass instead.
                answer = None if row["format"] == "multiple_choice" else row["answer"]
                jobs.append((user_text(row, task.prompts), row["image"],
                             int(task.max_new_tokens.get(row["format"], 32)), answer))
            signals = sharded(lambda part: free_signals(model, processor, part, settings.batch_size, bar),
                              jobs, accelerator)
            option_scores = sharded(lambda part: option_logprobs(
                model, processor, [r for _, r in part], [task_of[n].prompts for n, _ in part], settings.batch_size, bar,
            ), mc_items, accelerator)
    finally:
        model.train(was_training)

    options = {(name, row["item_id"]): s for (name, row), s in zip(mc_items, option_scores)}
    records = []
    for (name, row), (user, *_), (output, answer_logprobs) in zip(items, jobs, signals):
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
            record["options"] = list(row["options"])
            record["option_logprobs"], record["answer_logprobs"] = options[(name, row["item_id"])]
        else:
            record["answer_logprobs"] = answer_logprobs
        records.append(record)
    return records
