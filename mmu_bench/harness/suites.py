"""General utility on the field's MLLM suites (MME, POPE, MMBench, GQA, ...) through lmms-eval.

``--utility-suite pope,mme`` scores the unlearned model and the reference models on those
lmms-eval tasks, through lmms-eval's Python API (``simple_evaluate``) with the model object the
harness already holds: ``HarnessLMM`` answers lmms-eval's requests with the harness's own
prompting (the chat template, greedy decoding) and log-likelihoods. Nothing is saved or loaded
again. Each task joins results.json as a ``general_utility`` task named ``suite/<task>`` whose
measures are lmms-eval's metrics; its score is the mean of the metrics where higher is better.
The reference models' scores are cached like their records (``references.py``).

lmms-eval is an optional extra: ``pip install -e ".[utility]"`` then ``pip install --no-deps
lmms-eval==0.7.3`` (its declared dependencies pin wandb 0.25 and pull a CUDA torchvision that
the scoring path never imports; the extra lists what that path needs).

Sampling: ``--utility-limit N`` scores N items per task, a seeded sample (the same for every
model and run of a seed), drawn here; lmms-eval's own ``limit`` takes the first N.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import torch

from mmu_bench.api.encoding import IGNORE, collate, encode_many, to_device, with_answer
from mmu_bench.api.measure import Value
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.harness.evaluate import greedy_outputs
from mmu_bench.runs.results import SUITE_PREFIX as PREFIX
from mmu_bench.runs.results import TaskInfo
from mmu_bench.spec.utility import folder_digest, lmms, version

DIMENSION = "general_utility"
DEFAULT_MAX_NEW_TOKENS = 32  # where a task's generation_kwargs set none


@dataclass
class SuiteScores:
    """What the suites gave one model: task -> metric -> value, and the items scored."""

    scores: dict[str, dict[str, Value]]
    higher_is_better: dict[str, dict[str, bool]]

    def to_dict(self) -> dict:
        return {"scores": {t: {m: v.to_dict() for m, v in per.items()} for t, per in self.scores.items()},
                "higher_is_better": self.higher_is_better}

    @classmethod
    def from_dict(cls, data: dict) -> SuiteScores:
        return cls({t: {m: Value.from_dict(v) for m, v in per.items()} for t, per in data["scores"].items()},
                   data["higher_is_better"])


def task_infos(found: SuiteScores, joins: bool) -> dict[str, TaskInfo]:
    """The results' entries of the suite tasks: general utility, not primary; ``joins``: they
    join the dimension's score (``--utility-in-overall``)."""
    out = {}
    for task, per_metric in found.scores.items():
        directions = found.higher_is_better[task]
        score = [m for m in per_metric if directions.get(m) is True]
        # The version names whether it joins the overall score: leaderboards keep such runs apart.
        tag = f"lmms-eval {version()}" + (" in overall" if joins else "")
        out[task] = TaskInfo(version=tag, dimension=DIMENSION, primary=False, higher_is_better=True,
                             measures=list(per_metric), directions=dict(directions), score=score,
                             order=99, label="", suite="lmms-eval", joins=joins)
    return out


def make_model(model, processor, batch_size: int):
    """An lmms-eval model (``lmms``) answering with ``model``: built here because the base class
    comes from the optional package."""
    _, _, api, instance = lmms()

    class HarnessLMM(api.lmms):
        """lmms-eval's requests answered by the harness's model: the task's context as the user
        turn of the chat template, the task's first image with it."""

        def __init__(self):
            super().__init__()
            self.held = (model, processor)  # a tuple: lmms.clean() deletes nn.Module attributes
            self.batch_size_per_gpu = batch_size

        def _image(self, doc_to_visual, doc_id, task, split):
            if doc_to_visual is None:
                return None
            visuals = doc_to_visual(self.task_dict[task][split][doc_id]) or []
            return visuals[0].convert("RGB") if visuals else None

        def generate_until(self, requests):
            jobs, stops = [], []
            for req in requests:
                context, kwargs, doc_to_visual, doc_id, task, split = req.args
                budget = int(kwargs.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)
                jobs.append((context, self._image(doc_to_visual, doc_id, task, split), budget))
                until = kwargs.get("until") or []
                stops.append([until] if isinstance(until, str) else list(until))
            outputs = greedy_outputs(model, processor, jobs, batch_size)
            return [_cut(text, until) for text, until in zip(outputs, stops)]

        def loglikelihood(self, requests):
            items = []
            for req in requests:
                context, continuation, doc_to_visual, doc_id, task, split = req.args
                items.append((context, self._image(doc_to_visual, doc_id, task, split), continuation))
            return [instance.GenerationResult(text=(loss, greedy))
                    for loss, greedy in continuation_scores(model, processor, items, batch_size)]

        def generate_until_multi_round(self, requests):
            raise MMUBenchError("multi-round lmms-eval tasks are not supported by --utility-suite")

        def clean(self):
            """lmms-eval's default deletes the model: the harness still needs it."""

    return HarnessLMM()


def _cut(text: str, until: list[str]) -> str:
    for stop in until:
        if stop:
            text = text.split(stop)[0]
    return text


@torch.no_grad()
def continuation_scores(model, processor, items: list[tuple[str, object, str]], batch_size: int
                        ) -> list[tuple[float, bool]]:
    """Per (context, image, continuation): the continuation's negative log-likelihood (summed
    over its tokens, the EOS the encoding appends left out) and whether greedy decoding would
    produce it: what lmms-eval's loglikelihood requests want (it picks the lowest loss)."""
    prompts = encode_many(processor, [(context, image, None) for context, image, _ in items])
    tok = processor.tokenizer
    out = []
    for start in range(0, len(items), batch_size):
        rows = [with_answer(processor, dict(p), cont) for p, (_, _, cont) in
                zip(prompts[start : start + batch_size], items[start : start + batch_size])]
        batch = to_device(collate(rows, tok.pad_token_id, "right"), model)
        targets = batch.pop("labels")[:, 1:]  # position p's logits predict token p + 1
        logits = model(**batch).logits
        for i in range(len(rows)):
            positions = (targets[i] != IGNORE).nonzero().flatten()[:-1]  # the answer tokens, not EOS
            wanted = targets[i, positions]
            rows_logits = logits[i, positions].float()  # only these rows: (tokens, vocabulary)
            nll = -float(torch.log_softmax(rows_logits, -1).gather(-1, wanted[:, None]).sum())
            out.append((nll, bool((rows_logits.argmax(-1) == wanted).all())))
    return out


def sample(task, limit: int | None, seed: int) -> int:
    """Keep a seeded sample of ``limit`` items of the task's scored split (all when None or
    more); the items kept."""
    split = task.config.test_split or task.config.validation_split
    if split is None:
        raise MMUBenchError(f"lmms-eval task {task.config.task!r} has no test or validation split to score")
    docs = task.dataset[split]
    n = len(docs)
    if limit is None or limit >= n:
        return n
    keep = sorted(random.Random(f"{seed}/{task.config.task}").sample(range(n), limit))
    task.dataset[split] = docs.select(keep)
    if getattr(task, "dataset_no_image", None) is not None and task.dataset_no_image is not task.dataset:
        task.dataset_no_image[split] = task.dataset_no_image[split].select(keep)
    return limit


def leaf_tasks(tree: dict) -> dict:
    """lmms-eval's task dict, groups flattened: task name -> task object."""
    out = {}
    for value in tree.values():
        if isinstance(value, dict):
            out.update(leaf_tasks(value))
        else:
            out[value.config.task] = value
    return out


def task_manager(tasks_dir: str | None):
    """lmms-eval's index of its tasks and of ``tasks_dir``'s, once per process and folder
    contents: building one parses every task YAML lmms-eval ships (thousands, about 12 s), and a
    run scores four models."""
    return _task_manager(tasks_dir, folder_digest(tasks_dir))


@functools.lru_cache(maxsize=4)
def _task_manager(tasks_dir: str | None, digest: str | None):  # digest: the key (the folder changed)
    _, tasks_module, _, _ = lmms()
    return tasks_module.TaskManager(include_path=tasks_dir, include_defaults=True, verbosity="ERROR")


def evaluate(model, processor, names: list[str], limit: int | None, seed: int, tasks_dir: str | None,
             batch_size: int) -> SuiteScores:
    """Score ``model`` on the lmms-eval tasks ``names`` (``tasks_dir``: a folder of task YAMLs
    of one's own, lmms-eval's ``include_path``)."""
    evaluator, tasks_module, _, _ = lmms()
    model.eval()
    manager = task_manager(tasks_dir)
    unknown = [n for n in names if n not in manager.all_tasks]
    if unknown:
        raise MMUBenchError(f"--utility-suite: unknown lmms-eval task(s) {', '.join(unknown)}"
                            + (f" (nor in --utility-tasks {tasks_dir})" if tasks_dir else ""))
    # lmms-eval draws its own progress bars (tqdm reads TQDM_DISABLE at import, so --quiet cannot
    # reach them).
    built = leaf_tasks(tasks_module.get_task_dict(names, manager))
    counts = {name: sample(task, limit, seed) for name, task in built.items()}
    found = evaluator.simple_evaluate(
        model=make_model(model, processor, batch_size), tasks=list(built.values()), limit=None,
        batch_size=batch_size, log_samples=False, bootstrap_iters=0, random_seed=seed, task_manager=manager,
        numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed, verbosity="ERROR")
    return _read(found, counts)


def _read(found: dict, counts: dict[str, int]) -> SuiteScores:
    scores, directions = {}, {}
    for task, values in found["results"].items():
        if task not in counts:
            continue  # a group's summary row
        better = found.get("higher_is_better", {}).get(task, {})
        per_metric = {}
        for key, value in values.items():
            metric, _, _filter = key.partition(",")
            if not _filter or "_stderr" in metric or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            name = metric if _filter == "none" else f"{metric}/{_filter}"
            per_metric[name] = Value(float(value), None, counts[task])
            directions.setdefault(task, {})[name] = better.get(metric)
        if not any(v is True for v in directions.get(task, {}).values()):
            raise MMUBenchError(f"lmms-eval task {task!r} gave no metric where higher is better: {sorted(values)}")
        scores[PREFIX + task] = per_metric
        directions[PREFIX + task] = directions.pop(task)
    return SuiteScores(scores, directions)

