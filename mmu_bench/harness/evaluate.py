"""Run a model on task definitions: canonical rows -> batched inference -> per-item records
carrying the model's raw signals (see ``mmu_bench.measure`` for what a record holds). Scoring
them is the measures' business (``mmu_bench.scoring``). Knows nothing of unlearning methods.

Inference is batched throughout: prompts are sorted by length and decoded greedily with left
padding; the options of a multiple-choice item are scored together in one forward pass, which
also gives the correct option's per-token log-probabilities; the reference answer of a cloze or
generation item is scored in one teacher-forced pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig

from mmu_bench.api.encoding import IGNORE, collate, encode_many, to_device, with_answer
from mmu_bench.api.losses import model_inputs
from mmu_bench.api.prompts import user_text
from mmu_bench.api.schema import LETTERS
from mmu_bench.core.processes import per_process
from mmu_bench.harness.distributed import sharded
from mmu_bench.spec.selection import EvalSettings, select_rows, text_rows
from mmu_bench.spec.tasks import Task

DEFAULT_BUDGET = 32  # new tokens for a format its task gives no budget
# What a record holds beyond the item's own fields, by the pass that gives it (``Measure.reads``).
ANSWER_SIGNALS = frozenset({"answer_logprobs", "answer_expected_logprobs", "answer_logprob_variances",
                            "answer_argmax_hits"})
OPTION_SIGNALS = frozenset({"option_logprobs"}) | ANSWER_SIGNALS  # multiple choice: its answer is the correct option
Needs = dict  # format -> frozenset of record fields; None (everywhere): every field


def needs_of(tasks: list[Task], measures) -> Needs | None:
    """Per format, the record fields the tasks' measures read (``Measure.reads``); None when
    one of them does not say (it may read anything)."""
    out: dict[str, set] = {}
    for task in tasks:
        for name in task.measures:
            measure = measures.of(task, name)
            if measure.reads is None:
                return None
            for fmt in measure.formats:
                out.setdefault(fmt, set()).update(measure.reads)
    return {fmt: frozenset(fields) for fmt, fields in out.items()}


def _wants(needs: Needs | None, fmt: str, fields: frozenset) -> bool:
    return needs is None or bool(needs.get(fmt, frozenset()) & fields)


def over_budget(dataset, tasks: list[Task], tokenizer) -> dict[str, dict]:
    """Per format of the scored items: how many ground truths have more tokens than the greedy
    budget allows (such a cloze answer can never be contained in the output), of how many."""
    counts: dict[str, dict] = {}
    seen = set()
    by_task = {t.name: t for t in tasks}
    for name, rows in text_rows(dataset, tasks).items():
        for row in rows:
            fmt = row["format"]
            if fmt == "multiple_choice" or (fmt, row["item_id"]) in seen:
                continue
            seen.add((fmt, row["item_id"]))
            budget = int(by_task[name].max_new_tokens.get(fmt, DEFAULT_BUDGET))
            entry = counts.setdefault(fmt, {"budget": budget, "over": 0, "items": 0})
            entry["items"] += 1
            entry["over"] += len(tokenizer(row["answer"], add_special_tokens=False)["input_ids"]) > budget
    return counts


class Encodings:
    """Encoded model inputs of one benchmark's items under one processor, kept for a run: the
    trajectory's points and the final evaluation score the same items again and again, and
    encoding (chat template, tokenizer, image processor) costs as much as a small model's
    forward pass. Keyed by (item id, user text, answer): an item id names one row, and so one
    image, of the benchmark. The encoded rows are never changed in place (``collate`` and
    ``with_answer`` on a copy make new tensors). Up to ``max_bytes`` of tensors are kept; past
    that, items are encoded afresh each time."""

    def __init__(self, processor, max_bytes: int = 2 * 1024**3):
        self.processor, self.max_bytes = processor, max_bytes
        self.kept: dict[Hashable, dict] = {}
        self.bytes = 0
        self.hits = self.misses = 0

    def get(self, processor, keyed: list[tuple[Hashable, tuple[str, object, str | None]]]) -> list[dict]:
        """The encodings of (key, (user, image, answer)) items, in order; each missing key encoded
        once (``encode_many``). Another processor than the cache's gets fresh encodings."""
        if processor is not self.processor:
            return encode_many(processor, [item for _, item in keyed])
        missing = {key: item for key, item in keyed if key not in self.kept}
        fresh = dict(zip(missing, encode_many(processor, list(missing.values())))) if missing else {}
        self.misses += len(missing)
        self.hits += len(keyed) - len(missing)
        for key, row in fresh.items():
            size = sum(t.numel() * t.element_size() for t in row.values())
            if self.bytes + size <= self.max_bytes:
                self.kept[key] = row
                self.bytes += size
        return [fresh[key] if key in fresh else self.kept[key] for key, _ in keyed]


def _encoder(processor, encodings: Encodings | None) -> Encodings:
    """The run's encodings, else ones for this call alone (an item's prompt is still encoded
    once for its generation, its answer and its alternative answers)."""
    return encodings if encodings is not None else Encodings(processor)


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


@dataclass
class AnswerSignals:
    """Per row of a batch: the mean log-probability of the labelled tokens and, per labelled
    token, its log-probability, the mean and variance of log p over the vocabulary under the
    model's own next-token distribution (Min-K%++'s normalisers) and whether it is the model's
    argmax prediction (1 or 0; exact memorisation and extraction strength read them)."""

    mean: list[float]
    tokens: list[list[float]]
    expected: list[list[float]]
    variance: list[list[float]]
    hits: list[list[int]]

    def row(self, i: int) -> dict:
        return {"answer_logprobs": self.tokens[i], "answer_expected_logprobs": self.expected[i],
                "answer_logprob_variances": self.variance[i], "answer_argmax_hits": self.hits[i]}


def _answer_signals(model, batch: dict) -> AnswerSignals:
    """``AnswerSignals`` of a right-padded batch with labels. The vocabulary-wide quantities are
    computed at the labelled positions only (a real model's vocabulary is large)."""
    logits = model(**model_inputs(batch)).logits
    targets = batch["labels"][:, 1:]
    mask = targets != IGNORE
    logp = torch.log_softmax(logits[:, :-1][mask].float(), dim=-1)  # [labelled tokens, vocab]
    picked = logp.gather(-1, targets[mask].unsqueeze(-1)).squeeze(-1)
    prob = logp.exp()
    expected = (prob * logp).sum(-1)
    variance = ((prob * logp.square()).sum(-1) - expected.square()).clamp(min=0)
    hits = (logp.argmax(-1) == targets[mask]).long()
    counts = mask.sum(-1).tolist()
    split = [part.tolist() for part in (picked, expected, variance, hits)]
    out = AnswerSignals([], [], [], [], [])
    start = 0
    for n in counts:
        tokens = split[0][start : start + n]
        out.mean.append(sum(tokens) / max(n, 1))
        out.tokens.append(tokens)
        out.expected.append(split[1][start : start + n])
        out.variance.append(split[2][start : start + n])
        out.hits.append(split[3][start : start + n])
        start += n
    return out


@torch.no_grad()
def option_logprobs(model, processor, rows: list[dict], prompts_of: list[dict], batch_size: int, bar=None,
                    encodings: Encodings | None = None):
    """Per row: the mean token log-probability of each option's text (then EOS) as the answer to
    the bare question, and the correct option's answer signals (``AnswerSignals.row``). All
    options of an item travel in the same batch."""
    tok = processor.tokenizer
    encodings = _encoder(processor, encodings)
    results: list[tuple[list[float], dict]] = []
    per_batch = max(1, batch_size // len(LETTERS))
    for start in range(0, len(rows), per_batch):
        chunk = list(range(start, min(start + per_batch, len(rows))))
        # Each item's prompt is encoded once, then each option appended to a copy of it: what
        # encoding (prompt, option) gives, without processing the image once per option.
        users = [user_text(rows[i], prompts_of[i], "option_loglik") for i in chunk]
        prompts = encodings.get(processor, [((rows[i]["item_id"], user, None), (user, rows[i]["image"], None))
                                            for i, user in zip(chunk, users)])
        feats, owners = [], []
        for i, prompt in zip(chunk, prompts):
            for k, option in enumerate(rows[i]["options"]):
                feats.append(with_answer(processor, dict(prompt), option))
                owners.append((i, LETTERS[k] == rows[i]["answer"]))
        batch = to_device(collate(feats, tok.pad_token_id, "right"), model)
        signals = _answer_signals(model, batch)
        scores: dict[int, list[float]] = defaultdict(list)
        correct: dict[int, dict] = {}
        for k, ((owner, is_answer), value) in enumerate(zip(owners, signals.mean)):
            scores[owner].append(value)
            if is_answer:
                correct[owner] = signals.row(k)
        results.extend((scores[i], correct[i]) for i in chunk)
        if bar is not None:
            bar.update(len(chunk))
    return results


@torch.no_grad()
def answer_logprobs(model, processor, prompts: list[dict], answers: list[str], batch_size: int,
                    bar=None) -> list[dict]:
    """Per encoded prompt and its answer: the answer's signals (then EOS; ``AnswerSignals.row``)."""
    tok = processor.tokenizer
    out: list[dict] = []
    for start in range(0, len(prompts), batch_size):
        part = [with_answer(processor, dict(p), a) for p, a in zip(prompts[start : start + batch_size],
                                                                    answers[start : start + batch_size])]
        batch = to_device(collate(part, tok.pad_token_id, "right"), model)
        signals = _answer_signals(model, batch)
        out.extend(signals.row(i) for i in range(len(part)))
        if bar is not None:
            bar.update(len(part))
    return out


def free_signals(model, processor, jobs: list[tuple[str, object, int | None, str | None]], batch_size: int,
                 bar=None, encoded: list[dict] | None = None) -> list[tuple[str | None, dict | None]]:
    """Per (user text, image, max_new_tokens or None, answer or None) job: the greedy output
    (None where the budget is None: not asked for) and, where an answer is given, its signals
    (``AnswerSignals.row``). The prompts are encoded once for both (``encoded``: already
    encoded, one per job)."""
    if encoded is None:
        encoded = encode_many(processor, [(user, image, None) for user, image, _, _ in jobs])
    asked = [i for i, job in enumerate(jobs) if job[2] is not None]
    texts = greedy_outputs(model, processor, [jobs[i][:3] for i in asked], batch_size, bar, [encoded[i] for i in asked])
    outputs: list[str | None] = [None] * len(jobs)
    for i, text in zip(asked, texts):
        outputs[i] = text
    scored = [i for i, job in enumerate(jobs) if job[3] is not None]
    logprobs = answer_logprobs(model, processor, [encoded[i] for i in scored], [jobs[i][3] for i in scored],
                               batch_size, bar)
    answers: list[dict | None] = [None] * len(jobs)
    for i, values in zip(scored, logprobs):
        answers[i] = values
    return list(zip(outputs, answers))


def evaluate(model, processor, dataset, tasks: list[Task], settings: EvalSettings | None = None,
             accelerator=None, encodings: Encodings | None = None, needs: Needs | None = None) -> list[dict]:
    """Run ``model`` on every task; one record per scored row. ``dataset`` holds canonical rows
    with a ``split`` column. With an ``accelerator`` (several processes), each process runs a
    share of the items and every process returns all the records. ``encodings``: the run's
    cache of encoded items (``Encodings``), for a model scored several times on the same items.
    ``needs`` (``needs_of``): only the passes that give these fields per format run (a
    trajectory point's score measures read the greedy output of cloze and generation items and
    the options of multiple choice); None, every pass. A pass gives the same values either way."""
    settings = settings or EvalSettings()
    encodings = _encoder(processor, encodings)
    was_training = model.training
    model.eval()
    try:
        chosen = select_rows(dataset, tasks, settings)
        task_of = {t.name: t for t in tasks}
        items = [(name, row) for name, rows in chosen.items() for row in rows]
        mc_items = [(name, row) for name, row in items if row["format"] == "multiple_choice"
                    and _wants(needs, "multiple_choice", OPTION_SIGNALS)]
        jobs, keys = [], []
        for name, row in items:
            task, fmt = task_of[name], row["format"]
            # Multiple choice scores its answer in the options' pass instead.
            answer = row["answer"] if fmt != "multiple_choice" and _wants(needs, fmt, ANSWER_SIGNALS) else None
            budget = int(task.max_new_tokens.get(fmt, DEFAULT_BUDGET)) if _wants(needs, fmt, frozenset({"output"})) else None
            jobs.append((user_text(row, task.prompts), row["image"], budget, answer))
            keys.append((row["item_id"], jobs[-1][0], None))
        busy = [i for i, job in enumerate(jobs) if job[2] is not None or job[3] is not None]
        # Items are generated; then multiple choice has its options' pass, the others an answer pass.
        total = per_process(sum(jobs[i][2] is not None for i in busy) + sum(jobs[i][3] is not None for i in busy)
                            + len(mc_items), accelerator)
        with tqdm(total=total, desc="evaluating", unit="item", disable=None if settings.progress else True, leave=False) as bar:

            def signals_of(part):  # (job, its prompt's key) pairs
                encoded = encodings.get(processor, [(key, (job[0], job[1], None)) for job, key in part])
                return free_signals(model, processor, [job for job, _ in part], settings.batch_size, bar, encoded)

            found = sharded(signals_of, [(jobs[i], keys[i]) for i in busy], accelerator)
            signals: list[tuple[str | None, dict | None]] = [(None, None)] * len(jobs)
            for i, value in zip(busy, found):
                signals[i] = value
            # Items with a paraphrased answer and perturbed ones (CLEAR's captions): each scored
            # as the answer to the item's own prompt, for the truth ratio.
            alt_items = [(i, [row["paraphrased_answer"], *row["perturbed_answers"]])
                         for i, (_, row) in enumerate(items) if row.get("perturbed_answers")
                         and _wants(needs, row["format"], frozenset({"alternative_logprobs"}))]
            alt_jobs = [(i, answer) for i, answers in alt_items for answer in answers]
            alt_means = sharded(lambda part: _alternative_means(model, processor, jobs, keys, items, part,
                                                                settings.batch_size, encodings),
                                alt_jobs, accelerator) if alt_jobs else []
            option_scores = sharded(lambda part: option_logprobs(
                model, processor, [r for _, r in part], [task_of[n].prompts for n, _ in part], settings.batch_size, bar,
                encodings,
            ), mc_items, accelerator)
    finally:
        model.train(was_training)

    options = {(name, row["item_id"]): s for (name, row), s in zip(mc_items, option_scores)}
    records = []
    for (name, row), (user, *_), (output, answer_signals) in zip(items, jobs, signals):
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
        }
        if output is not None:
            record["output"] = output
        if row["format"] == "multiple_choice":
            record["options"] = list(row["options"])
            if (name, row["item_id"]) in options:
                record["option_logprobs"], answer_signals = options[(name, row["item_id"])]
        record.update(answer_signals or {})
        records.append(record)
    start = 0
    for i, answers in alt_items:
        means = alt_means[start: start + len(answers)]
        records[i]["alternative_logprobs"] = {"paraphrased": means[0], "perturbed": means[1:]}
        start += len(answers)
    return records


def _alternative_means(model, processor, jobs, keys, items, part: list[tuple[int, str]], batch_size: int,
                       encodings: Encodings) -> list[float]:
    """Mean token log-probability of each (item index, alternative answer) under the item's
    prompt (encoded once, as for its generation)."""
    owners = sorted({i for i, _ in part})
    encoded = dict(zip(owners, encodings.get(processor, [(keys[i], (jobs[i][0], items[i][1]["image"], None))
                                                         for i in owners])))
    signals = answer_logprobs(model, processor, [encoded[i] for i, _ in part], [a for _, a in part], batch_size)
    return [sum(s["answer_logprobs"]) / max(len(s["answer_logprobs"]), 1) for s in signals]
