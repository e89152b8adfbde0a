"""Continual unlearning: a stream of deletion requests (``mmu_bench.spec.continual``), each
unlearned on top of the model the request before it left, and the model scored after each.

Request *j* is an ordinary request to the method: its forget set is the request's people; its
retain data is everyone not forgotten so far (people of later requests included: the model has
not been asked to forget them yet); text of everyone is kept (``preserve_text``). The method
runs with the same hyperparameters each time; a reference model it asks for as ``vanilla`` is
the model the request starts from. After each request the model is scored on every item of each
dimension's primary task (the passes its score measures read), and the per-person sums go to
``continual.jsonl`` with those of the gold reference of everyone forgotten so far (the visual
oracle of the cumulative forget set, trained and cached like the other references; the default
setting's ship). After the last request the model is evaluated and scored like any run, on the
whole forget set, against its gold reference: the final scores compare directly with the
one-shot run on the same people, whose run key results.json records.

The run folder is written once, at the end, like any run's; a request that fails writes
``failure.json`` (naming the request) and nothing else.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from pathlib import Path

from mmu_bench.api.benchmark import Benchmark
from mmu_bench.api.measure import GOLD_ROLES
from mmu_bench.api.provider import CachedProvider
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.processes import launched
from mmu_bench.harness import score as scoring
from mmu_bench.harness import tracking
from mmu_bench.harness.attacks import gold_role
from mmu_bench.harness.clock import Clock
from mmu_bench.harness.evaluate import Encodings, evaluate, needs_of
from mmu_bench.harness.references import role_records
from mmu_bench.harness.run import Request, Stream, finish, unlearn
from mmu_bench.harness.session import load_benchmark, open_session
from mmu_bench.runs import continual, results
from mmu_bench.runs.folder import write_failure
from mmu_bench.runs.stats import cluster_sums
from mmu_bench.spec.continual import given_requests, nested_requests, plain_ratio, split_people
from mmu_bench.spec.plan import Plan, one_shot_key

FORGOTTEN = "forgotten"  # the split label of people forgotten by an earlier request


class RequestFailed(MMUBenchError):
    """A request of a continual run failed; its ``failure.json`` is written (``folder``)."""

    def __init__(self, message: str, folder: Path):
        super().__init__(message)
        self.folder = folder


def requests_of(plan: Plan, benchmark: Benchmark) -> list[list[str]]:
    """The people of each request: the given ones, the benchmark's nested splits, or a seeded
    equal split of its forget set."""
    stream = plan.config.stream
    forget = list(benchmark.forget_entities)
    if stream.entities:
        return given_requests(stream.entities, forget)
    if stream.ratios:
        sets = []
        for ratio in stream.ratios[:-1]:
            try:
                sets.append(list(plan.benchmark.load(plain_ratio(ratio), **plan.config.benchmark_args).forget_entities))
            except (TypeError, ValueError) as exc:
                raise MMUBenchError(f"continual: benchmark {plan.config.benchmark!r} at forget ratio {ratio:g}: "
                                    f"{exc}") from exc
        return nested_requests([*sets, forget], [float(r) for r in stream.ratios])
    return split_people(forget, stream.count, stream.split_seed)


def relabel(benchmark: Benchmark, forget: list[str], forgotten: list[str], ratio: float) -> Benchmark:
    """``benchmark`` with ``forget`` as its forget people, ``forgotten`` out of the retain data
    (kept for text), every other person of its forget set retained. Its scored items (``eval``)
    are the whole benchmark's, unchanged."""
    label = {**{p: "retain" for p in benchmark.forget_entities}, **{p: FORGOTTEN for p in forgotten},
             **{p: "forget" for p in forget}}
    columns = benchmark.train.select_columns(["entity_id", "split"]).to_dict()
    splits = [label.get(e, s) if e else s for e, s in zip(columns["entity_id"], columns["split"])]
    train = benchmark.train.remove_columns("split").add_column("split", splits)
    gone = set(forget) | set(forgotten)
    return replace(benchmark, train=train, forget_ratio=ratio, forget_entities=tuple(sorted(forget)),
                   retain_entities=tuple(sorted((set(benchmark.retain_entities) | set(benchmark.forget_entities)) - gone)))


def gold_clusters(session, role: str | None, people: list[str], tasks, score: dict) -> dict | None:
    """The per-person sums of the gold reference of everyone forgotten so far (``people``):
    trained and cached like the other references, when the provider trains its own (a gold
    model given as a checkpoint serves its own forget set only: None for earlier requests).

    The gold is scored on the stream's items (the whole benchmark's, as the requests' models
    are), so its view keeps the whole benchmark's forget ratio: cached records are keyed by the
    model and the benchmark's key, and a view named by the cumulative forget ratio would find the
    records of the benchmark of that ratio (another forget split, other items in each task: a
    split's 10 % are not the people a 15 % stream forgot first)."""
    provider, benchmark = session.provider, session.benchmark
    if role is None:
        return None
    if set(people) == set(benchmark.forget_entities):
        records = session.refs[role].records
    else:
        view = relabel(benchmark, people, [], benchmark.forget_ratio)
        if not isinstance(provider, CachedProvider) or provider.path(role, view) != provider.cache_path(role, view):
            return None
        records = role_records(provider, role, view, session.all_tasks, session.settings, session.device).records
    wanted = {t.name for t in tasks}
    rows = [dict(r) for r in records if r["task"] in wanted]
    scoring.score({role: rows}, tasks, session.measures)
    return cluster_sums(rows, score)


@dataclass
class Planned:
    """A stream laid out: each request's people, everyone forgotten after each, a forget ratio
    naming each cumulative set, and its gold reference's per-person sums (None where there is
    none)."""

    people: list[list[str]]
    cumulative: list[list[str]]
    ratios: list[float]
    golds: list[dict | None]
    tasks: list
    score: dict
    role: str | None
    roles: list[str | None] | None = None  # each gold's role (None: no gold); default ``role`` where there is one

    def __post_init__(self):
        if self.roles is None:
            self.roles = [self.role if gold is not None else None for gold in self.golds]


def plan_stream(plan: Plan, session, people: list[list[str]] | None = None) -> Planned:
    """The requests of ``plan`` on the session's benchmark (``people``: found already), with the
    gold reference of each cumulative forget set (trained and cached on first use: ``mmu-bench
    prepare --requests K`` does it ahead)."""
    people = requests_of(plan, session.benchmark) if people is None else people
    tasks = scoring.primary_tasks(session.tasks)
    score = {t.name: list(t.score) for t in tasks}
    role = gold_role(session.refs)
    total = float(session.benchmark.forget_ratio)
    everyone = len(session.benchmark.forget_entities)
    cumulative = [sorted(set().union(*people[: j + 1])) for j in range(len(people))]
    ratios = [total * len(c) / everyone for c in cumulative]
    golds = [gold_clusters(session, role, c, tasks, score) for c in cumulative]
    roles = [role if gold is not None else None for gold in golds]
    floor = floor_role(session, tasks)
    if floor is not None and floor != roles[-1]:
        # The last request's gold is the one the final scores are normalised against (the run's
        # floor: the first gold reference below the vanilla model), so that its row and the
        # run's overall score agree.
        golds[-1], roles[-1] = gold_clusters(session, floor, cumulative[-1], tasks, score), floor
    return Planned(people, cumulative, ratios, golds, tasks, score, role, roles)


def floor_role(session, tasks) -> str | None:
    """The gold reference the run's forgetting score is normalised against (``results.normalisation``
    over the reference models' scores: the first gold role that scores below the vanilla model);
    None when none does (the floor is chance)."""
    infos = scoring.task_infos(tasks, session.measures)
    dims = {role: results.dimension_scores(scores, infos, session.ref_scores.get("vanilla"))
            for role, scores in session.ref_scores.items()}
    spec = results.normalisation(dims, infos, {})
    return next((s.floor for s in spec.values() if s.floor in GOLD_ROLES), None)


def run_continual(plan: Plan, progress: bool = True) -> Path | None:
    """Every request in turn, the model scored after each; then the final evaluation, the
    attacks and the run folder, as ``harness.run.run`` writes them."""
    if launched():
        raise MMUBenchError("a continual run (--requests) runs in a single process: run it without accelerate launch")
    if plan.method_class is None:
        raise MMUBenchError("a continual run needs a method (mmu-bench run --requests K)")
    clock = Clock()
    trackers = tracking.start(plan.config, plan.method, plan.key)
    try:
        with clock.phase("session"):
            # The requests first, from the benchmark alone: a stream that cannot be split (more
            # requests than forget people, splits that are not nested, unknown ids) fails before
            # any reference model is trained.
            asked = requests_of(plan, load_benchmark(plan))
            session = open_session(plan, progress)
            stream = plan_stream(plan, session, asked)
            people, cumulative, ratios, golds = stream.people, stream.cumulative, stream.ratios, stream.golds
            tasks, score, role, roles = stream.tasks, stream.score, stream.role, stream.roles
            vanilla = [dict(r) for r in session.refs["vanilla"].records if r["task"] in score]
            scoring.score({"vanilla": vanilla}, tasks, session.measures)
        lines = [{"request": 0, "people": [], "model": "vanilla", "clusters": cluster_sums(vanilla, score),
                  "gold": None, "steps": 0, "seconds": 0.0}]
        loaded = session.provider.load("vanilla", session.benchmark,
                                       sides=tuple(plan.method_class(plan.method_config).trainable_sides()))
        model, processor = loaded.model.to(session.device), loaded.processor
        encodings = Encodings(processor)
        needs = needs_of(tasks, session.measures)
        unlearned, trained = None, []
        for j, request in enumerate(people, 1):
            started = time.time()
            try:
                view = relabel(session.benchmark, request, cumulative[j - 2] if j > 1 else [], ratios[j - 1])
                unlearned = unlearn(session, progress, trackers, clock,
                                    Request(view, model, processor, encodings, _starting_point(model, session)))
                model = unlearned.model
                with clock.phase("requests"):
                    records = evaluate(model, processor, session.benchmark.eval, tasks, session.settings, None,
                                       encodings, needs)
                    scoring.score({results.UNLEARNED: records}, tasks, session.measures)
            except (KeyboardInterrupt, RequestFailed):
                raise
            except Exception as exc:
                folder = write_failure(plan.config, plan.method["name"], plan.key, exc,
                                       {"request": j, "requests": len(people), "people": request})
                raise RequestFailed(f"request {j} of {len(people)} failed: {type(exc).__name__}: {exc} "
                                    f"(recorded in {folder})", folder) from exc
            trained.append(unlearned.training)
            lines.append({"request": j, "people": request, "clusters": cluster_sums(records, score),
                          "gold": golds[j - 1], "gold_role": roles[j - 1],
                          "steps": unlearned.training["steps"], "seconds": round(time.time() - started, 2),
                          "weight_change": unlearned.weight_change})
        chance = scoring.chance(session.ref_scores["vanilla"], session.tasks, session.measures)
        infos = scoring.task_infos(tasks, session.measures)
        summary = {**continual.summary(lines, infos, chance),
                   "split": plan.config.stream.to_dict(), "one_shot_key": one_shot_key(plan.config, plan.method,
                                                                                      plan.protocol),
                   "gold_role": role}
        unlearned = replace(unlearned, training=_training(trained), clock=clock)
        return finish(session, unlearned, trackers, Stream(continual.to_jsonl(lines), summary))
    except BaseException:
        tracking.abort(trackers)
        raise


def _starting_point(model, session):
    """The ``vanilla`` reference of a request: a frozen copy of the model as the request found
    it (made on first use, from weights kept on the CPU); other roles are the provider's."""
    kept = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    def load(role: str):
        if role != "vanilla":
            return session.provider.load(role, session.benchmark).model.to(session.device)
        ref = copy.deepcopy(model)
        ref.load_state_dict(kept)
        return ref

    return load


def _training(per_request: list[dict]) -> dict:
    """The training record of the stream: the requests' steps and losses, each request's own."""
    steps = sum(t["steps"] for t in per_request)
    return {"steps": steps, "first_loss": per_request[0]["first_loss"], "last_loss": per_request[-1]["last_loss"],
            "method_report": per_request[-1]["method_report"], "trainable": per_request[0].get("trainable"),
            "seconds": round(sum(t["seconds"] for t in per_request), 2),
            "requests": [{k: t[k] for k in ("steps", "first_loss", "last_loss", "seconds", "method_report")}
                         for t in per_request],
            "log": [{**entry, "request": j} for j, t in enumerate(per_request, 1) for entry in t.get("log", [])]}
