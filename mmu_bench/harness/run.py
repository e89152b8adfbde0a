"""Carrying out a plan (``mmu_bench.spec.plan``): the session, unlearning, evaluation, scoring,
the utility suites and the attacks, each a step that returns what it found; the result is
composed once, from the plan and those returns, and the run folder written at once
(``mmu_bench.runs.folder``)."""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import yaml

from mmu_bench.api import saliency
from mmu_bench.api.context import EncodedSet, MethodData, UnlearningContext
from mmu_bench.api.measure import Value
from mmu_bench.api.prompts import default_prompts
from mmu_bench.core.errors import MMUBenchError
from mmu_bench.core.processes import is_main
from mmu_bench.core.storage import atomic_write_text
from mmu_bench.harness import distributed, suites, tracking
from mmu_bench.harness.attacks import ATTACKED_DIMENSION, run_suite
from mmu_bench.harness.clock import Clock
from mmu_bench.harness.evaluate import Encodings, evaluate, over_budget
from mmu_bench.harness.movement import movement, snapshot
from mmu_bench.harness.provenance import environment, git_state, package_versions
from mmu_bench.harness.references import cached_scores
from mmu_bench.harness.score import chance, score, task_infos
from mmu_bench.harness.session import Session, open_session, seed_everything
from mmu_bench.harness.trajectory import Recorder
from mmu_bench.reporting import report, tables
from mmu_bench.runs import attacks as attack_file
from mmu_bench.runs import results, samples
from mmu_bench.runs.continual import CONTINUAL_FILE
from mmu_bench.runs.folder import CONFIG_FILE, MODEL_DIR, RESULTS_FILE, run_folder, write_new
from mmu_bench.runs.stats import cluster_sums
from mmu_bench.runs.trajectory import TRAJECTORY_FILE
from mmu_bench.spec import utility as utility_spec
from mmu_bench.spec.config import RunConfig, load_yaml
from mmu_bench.spec.plan import CHECKPOINT, Plan, folder_sha256, for_references


@dataclass
class Unlearned:
    """What unlearning returns: the model, its processor, the training record, the trajectory
    (None without one), the items encoded so far (for the final evaluation to reuse) and how
    far the trained weights moved (``movement.movement``; None for a checkpoint scored as is)."""

    model: object
    processor: object
    training: dict
    recorder: Recorder | None = None
    encodings: Encodings | None = None
    clock: Clock = field(default_factory=Clock)
    weight_change: dict | None = None


def run(plan: Plan, progress: bool = True) -> Path | None:
    """Unlearn, evaluate, write the run folder; returns its path (None on the processes of a
    multi-process run other than the main one: they write nothing)."""
    if plan.config.stream.active:
        from mmu_bench.harness.continual import run_continual

        return run_continual(plan, progress)
    clock = Clock()
    trackers = tracking.start(plan.config, plan.method, plan.key)  # --log-with; None when none
    try:
        with clock.phase("session"):
            session = open_session(plan, progress)
        unlearned = unlearn(session, progress, trackers, clock)
        try:
            return finish(session, unlearned, trackers)
        finally:
            distributed.release(distributed.accelerator())
    except BaseException:
        tracking.abort(trackers)
        raise


def unlearn(session: Session, progress: bool, trackers: tracking.Trackers | None = None,
            clock: Clock | None = None, request: Request | None = None) -> Unlearned:
    """The plan's method on the vanilla model, through the shared context (and the trajectory's
    points, when the plan asks for them); ``request``: one request of a continual run, on the
    model the one before it left."""
    clock = clock or Clock()
    with clock.phase("unlearning"):
        return _unlearn(session, progress, trackers, clock, request)


def _unlearn(session: Session, progress: bool, trackers: tracking.Trackers | None, clock: Clock,
             request: Request | None = None) -> Unlearned:
    plan, provider, device = session.plan, session.provider, session.device
    config = plan.config
    benchmark = request.benchmark if request is not None else session.benchmark
    acc = distributed.accelerator()
    method = plan.method_class(plan.method_config)
    sides = tuple(method.trainable_sides())  # what the provider makes trainable (LoRA targets)
    if request is None:
        vanilla = provider.load("vanilla", benchmark, sides=sides)
        model, processor = vanilla.model.to(device), vanilla.processor
    else:
        model, processor = request.model, request.processor
    trains = saliency.trainable_summary(model, sides)
    if acc is not None:
        # Wrapped before setup(): a method's masks and parameter names then come from the
        # same model object its training steps use.
        model = distributed.prepare_model(acc, model)
    part = (acc.process_index, acc.num_processes) if acc is not None else None
    prompts = default_prompts()
    data = MethodData(
        forget=EncodedSet(benchmark.forget_set(), processor, prompts, part=part),
        retain=EncodedSet(benchmark.retain_set(), processor, prompts, part=part),
        preserve_text=EncodedSet(benchmark.preserve_text(), processor, prompts, part=part),
    )
    ctx = UnlearningContext(
        model=model, processor=processor, config=plan.method_config, data=data, seed=config.seed,
        benchmark=benchmark.name,
        reference_loader=(request.reference if request is not None
                          else lambda role: provider.load(role, benchmark).model.to(device)),
        accelerator=acc, progress=progress and is_main(),
    )
    # The trajectory's points and the final evaluation share the encodings (a continual run's
    # requests too).
    encodings = request.encodings if request is not None else Encodings(processor)
    recorder = None
    if config.trajectory and request is None:
        recorder = Recorder(session, config.trajectory, config.trajectory_sample, acc, encodings, clock)
    if recorder is not None:
        ctx.on_step = lambda step, total: recorder.step_done(ctx.unwrapped_model, processor, step, total)
    if trackers is not None:  # every entry of the history (training.log) also goes to the trackers
        ctx.log = trackers.watch(ctx.log)
    seed_everything(config.seed)
    train_started = time.time()
    before = snapshot(ctx.unwrapped_model)
    method.setup(ctx)
    if recorder is not None:
        recorder.record(ctx.unwrapped_model, processor, 0)
    method.unlearn(ctx)
    distributed.check_in_sync(acc, ctx.unwrapped_model)
    moved = movement(before, ctx.unwrapped_model)
    del before
    losses = [h["loss"] for h in ctx.history if "loss" in h]
    if recorder is not None:
        recorder.finish(ctx.unwrapped_model, processor, len(losses))
    training = {"steps": len(losses), "first_loss": losses[0] if losses else None,
                "last_loss": losses[-1] if losses else None, "method_report": ctx.extras, "trainable": trains,
                "seconds": round(time.time() - train_started, 2),
                "log": [{k: h[k] for k in ("step", "loss", "lr") if k in h} for h in ctx.history if "loss" in h]}
    return Unlearned(ctx.unwrapped_model, processor, training, recorder, encodings, clock, moved)


@dataclass
class Stream:
    """What a continual run's requests found: continual.jsonl's text and results.json's
    ``continual`` section (``mmu_bench.runs.continual``)."""

    lines: str
    summary: dict


@dataclass
class Request:
    """One request of a continual run (``mmu_bench.harness.continual``): its benchmark (the
    request's forget people; everyone forgotten before it out of the retain data), the model it
    starts from, and the reference models its method may ask for (``vanilla``: the model the
    request starts from)."""

    benchmark: object
    model: object
    processor: object
    encodings: Encodings
    reference: object  # role -> a model


def evaluate_checkpoint(plan: Plan, progress: bool = True) -> Path | None:
    """Score a model unlearned elsewhere (any method, any code; the plan of
    ``spec.plan.for_checkpoint``) exactly like a run, so that it can join a leaderboard."""
    clock = Clock()
    with clock.phase("session"):
        session = open_session(plan, progress)
        loaded = plan.provider.load_checkpoint(plan.method["source_file"], session.benchmark)
    training = {"steps": 0, "first_loss": None, "last_loss": None, "method_report": {}, "seconds": 0.0}
    trackers = tracking.start(plan.config, plan.method, plan.key)  # --log-with: the configuration and scores
    try:
        return finish(session, Unlearned(loaded.model.to(session.device), loaded.processor, training, clock=clock),
                      trackers)
    except BaseException:
        tracking.abort(trackers)
        raise


def prepare(plan: Plan, progress: bool = True, retrain: bool = False) -> Session:
    """Generate the benchmark, find (cached or shipped) or train the reference models, evaluate
    them once; ``retrain``: train them anew even when cached or shipped."""
    return open_session(plan, progress, strict=False, retrain=retrain)


def finish(session: Session, unlearned: Unlearned, trackers: tracking.Trackers | None = None,
           stream: Stream | None = None) -> Path | None:
    """Evaluate and score the unlearned model, compose the result, run the attacks, write the
    run folder (``stream``: what a continual run's requests found, for results.json and
    continual.jsonl)."""
    plan, clock = session.plan, unlearned.clock
    acc = distributed.accelerator()
    model, processor = unlearned.model, unlearned.processor
    with clock.phase("evaluation"):
        records = evaluate(model, processor, session.benchmark.eval, session.tasks, session.settings, acc,
                           unlearned.encodings)
    if not is_main():
        return None  # every process holds all the records; the main one writes them
    with clock.phase("utility") if session.config.utility_suite else contextlib.nullcontext():
        suite = utility(session, model, processor)
    with clock.phase("scoring"):
        everyone = {results.UNLEARNED: records, **{role: ref.records for role, ref in session.refs.items()}}
        scores = score(everyone, session.tasks, session.measures, models=[results.UNLEARNED])[results.UNLEARNED]
        result = compose(session, scores, records, unlearned, processor, suite, trackers)
        if stream is not None:
            result = replace(result, continual=stream.summary)
    attacks = None
    if plan.attacks:
        with clock.phase("attacks"):
            attacks = run_suite(session, model, processor, records, plan.config.seed, plan.attacks,
                                session.settings.progress, stream.summary["requests"] if stream is not None else None)
    with clock.phase("writing"):
        weights = (model, processor) if keep_weights(plan.config.save_model, model, plan.method) else None
        scored = samples.with_vanilla(records, session.refs.get("vanilla"))
        thumbs = samples.thumbnails(session.benchmark.eval, records)
        points = unlearned.recorder.to_jsonl() if unlearned.recorder is not None else None
        folder = write_run(plan, result, scored, attacks, weights, points, thumbs, clock,
                           stream.lines if stream is not None else None)
    if trackers is not None:  # after the folder is written: a tracker failing here loses nothing
        trackers.end(result, unlearned.training["steps"])
    warn_if_unchanged(unlearned.weight_change, folder)
    return folder


def warn_if_unchanged(change: dict | None, folder: Path) -> None:
    """Said last, where it is seen: a run whose method changed no weight scores the vanilla model."""
    if change is not None and change.get("unchanged"):
        print(f"mmu-bench: warning: unlearning changed nothing: {change['why']}; the run scores the model as it was "
              f"before (results.json provenance.weight_change; the leaderboard marks the row). {folder}",
              file=sys.stderr)


def utility(session: Session, model, processor) -> dict[str, suites.SuiteScores] | None:
    """The unlearned model's and the reference models' (cached) scores on the utility suites;
    None without --utility-suite."""
    config = session.config
    if not config.utility_suite:
        return None

    def scores_of(m, p) -> dict:
        return suites.evaluate(m, p, config.utility_suite, config.utility_limit, session.settings.seed,
                               config.utility_tasks, config.eval_batch_size).to_dict()

    key = {**utility_spec.key(config), "sample_seed": session.settings.seed}
    refs = cached_scores(session.provider, session.benchmark, "utility", key, scores_of, session.device,
                         roles=list(session.refs))
    found = {role: suites.SuiteScores.from_dict(v) for role, v in refs.items()}
    found[results.UNLEARNED] = suites.SuiteScores.from_dict(scores_of(model, processor))
    return found


SMALL_MODEL = 100_000_000  # parameters: ``save_model: auto`` keeps weights up to this size (400 MB in fp32)


def keep_weights(choice: str, model, info: dict) -> bool:
    """Whether the run folder keeps the unlearned weights (``model/``, what `mmu-bench attack
    --run` loads): ``auto`` keeps a LoRA adapter or a small model, never a copy of a checkpoint
    scored with ``eval`` (its folder is recorded instead)."""
    if choice != "auto":
        return choice == "yes"
    if info["spec"].startswith(CHECKPOINT):
        return False
    if hasattr(model, "peft_config"):
        return True
    return sum(p.numel() for p in model.parameters()) <= SMALL_MODEL


def compose(session: Session, unlearned_scores: dict[str, dict[str, Value]], records: list[dict],
            unlearned: Unlearned, processor, suite: dict[str, suites.SuiteScores] | None,
            trackers: tracking.Trackers | None = None) -> results.RunResult:
    """The run's result, whole: from the plan, the session and what the steps returned."""
    plan, benchmark, refs = session.plan, session.benchmark, session.refs
    config = plan.config
    # A task with no items on this benchmark (MLLMU-Bench has no never-trained people, MMU-Synth
    # no held-out text set) is left out of the results: it has nothing to show.
    tasks = task_infos([t for t in session.tasks if t.name in unlearned_scores], session.measures)
    scores = {results.UNLEARNED: unlearned_scores, **session.ref_scores}
    protocol = {}
    if suite is not None:  # the utility suites' tasks join the results as general-utility tasks
        tasks.update(suites.task_infos(suite[results.UNLEARNED], config.utility_in_overall))
        scores = {who: {**per, **suite[who].scores} if who in suite else per for who, per in scores.items()}
        protocol["utility_suite"] = {**utility_spec.key(config), "sample_seed": session.settings.seed,
                                     "joins_overall": config.utility_in_overall}
    dims = {who: results.dimension_scores(s, tasks, scores.get("vanilla")) for who, s in scores.items()}
    spec = results.normalisation(dims, tasks, chance(unlearned_scores, session.tasks, session.measures))
    normalised = results.normalise(dims[results.UNLEARNED], spec)
    acc = distributed.accelerator()
    provenance = {"git": git_state(), "packages": package_versions(), **environment(),
                  "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "wall_seconds": round(unlearned.clock.wall(), 2)}
    if trackers is not None:
        provenance["trackers"] = trackers.where
    if unlearned.weight_change is not None:
        provenance["weight_change"] = unlearned.weight_change
    if acc is not None:
        provenance["processes"] = acc.num_processes
    return results.RunResult(
        run_uid=uuid.uuid4().hex,
        benchmark={"name": benchmark.name, "fingerprint": benchmark.fingerprint,
                   "forget_ratio": benchmark.forget_ratio, "forget_entities": list(benchmark.forget_entities),
                   "info": benchmark.info, "plugin": plan.plugins["benchmark"]},
        model={"name": plan.model_name,
               "references": {role: {"path": refs[role].model_path, "recipe_hash": refs[role].recipe_hash}
                              for role in refs}, "plugin": plan.plugins["model"]},
        method=plan.method,
        seed=config.seed,
        tasks=tasks,
        measures=session.measures.info,
        scores=scores,
        dimensions=dims,
        normalisation=spec,
        normalised=normalised,
        overall=results.overall(normalised, results.dimension_order(tasks)),
        vanilla_knowledge=session.knowledge,
        training=unlearned.training,
        protocol={**plan.protocol.to_dict(),
                  "demonstrations": {t.name: sorted(t.exclude) for t in session.tasks if t.exclude},
                  "over_budget": over_budget(benchmark.eval, session.tasks, processor.tokenizer), **protocol},
        provenance=provenance,
        clusters=cluster_sums(records, {t.name: list(t.score) for t in session.tasks if t.primary}),
        trade_off=unlearned.recorder.summary() if unlearned.recorder is not None else {},
        run_key=plan.key,
    )


def write_run(plan: Plan, result: results.RunResult, records: list[dict], attacks: dict | None = None,
              weights: tuple | None = None, points: str | None = None, thumbs: dict | None = None,
              clock: Clock | None = None, requests: str | None = None) -> Path:
    """Everything is written into a staging folder renamed into place at the end: a crash or
    Ctrl-C leaves no partial run, and an existing run folder is never touched. ``attacks``: the
    contents of attacks.json; ``weights``: (model, processor) saved under ``model/``;
    ``points``: the contents of trajectory.jsonl; ``clock``: the run's, whose phases (writing up
    to results.json itself) and wall time results.json records; ``requests``: the contents of
    continual.jsonl."""
    config = plan.config

    def fill(tmp: Path, run_id: str) -> None:
        (tmp / CONFIG_FILE).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        (tmp / samples.SAMPLES_FILE).write_text(samples.to_jsonl(records), encoding="utf-8")
        for name, text in tables.files(result, attacks).items():
            (tmp / name).write_text(text)
        if points is not None:
            (tmp / TRAJECTORY_FILE).write_text(points)
        if requests is not None:
            (tmp / CONTINUAL_FILE).write_text(requests)
        if attacks is not None:
            attack_file.write(tmp, attacks)
        if weights is not None:
            model, processor = weights
            model.save_pretrained(str(tmp / MODEL_DIR))
            processor.save_pretrained(str(tmp / MODEL_DIR))
        final = replace(result, run_id=run_id)  # the folder's name: known now
        if clock is not None:  # the time is known once all but results.json and the report are written
            final = replace(final, provenance={**result.provenance, "wall_seconds": round(clock.wall(), 2),
                                               "phases": clock.to_dict()})
        (tmp / RESULTS_FILE).write_text(final.to_json())
        if thumbs is not None:
            (tmp / samples.THUMBNAILS_FILE).write_text(samples.thumbnails_json(thumbs))
        report.write(tmp)  # from the files above, as `mmu-bench report` rebuilds it

    return write_new(config.output_dir, plan.folder_names(), config.forget_ratio, config.seed, fill)


def attack_folder(run_dir: str, specs: list[str], attack_args: dict, progress: bool = True) -> tuple[Path, dict]:
    """Run attacks on a finished run folder without unlearning again: its unlearned model comes
    from ``model/`` (or the checkpoint an ``eval`` run scored). attacks.json gains their numbers
    (replaced atomically, earlier attacks kept) and table.md is rebuilt; results.json is never
    touched; report.html is rebuilt. Returns the folder and the merged attacks report."""
    folder = run_folder(run_dir, "--run ")
    result = results.read(folder / RESULTS_FILE)
    saved = load_yaml(folder / CONFIG_FILE)
    plan = for_references(RunConfig(**{**saved, "attacks": list(specs), "attack_args": dict(attack_args)}), progress)
    session = open_session(plan, progress)
    loaded = load_unlearned(folder, result, session)
    attacked = run_suite(session, loaded.model.to(session.device), loaded.processor, [], result.seed, plan.attacks,
                         progress, result.continual.get("requests") or None)
    recorded = result.dimensions.get(results.UNLEARNED, {}).get(ATTACKED_DIMENSION)
    if recorded is not None and abs(attacked["score_before"] - recorded) > 1e-6:
        attacked["note"] = (f"the loaded model scores {attacked['score_before']:.4f} on {attacked['task']} where results.json "
                            f"says {recorded:.4f} (another machine or library version?)")
    merged = attack_file.merge(attack_file.read(folder), attacked)
    attack_file.write(folder, merged)
    atomic_write_text(folder / tables.MARKDOWN_FILE, tables.write_markdown(result, merged))
    report.write(folder)
    return folder, merged


def load_unlearned(folder: Path, result: results.RunResult, session: Session):
    """The run's unlearned model: ``model/`` in its folder, else the checkpoint an `eval` run
    scored (unchanged since: its hash is checked)."""
    if (folder / MODEL_DIR).is_dir():
        return session.provider.load_checkpoint(str(folder / MODEL_DIR), session.benchmark)
    spec = result.method.get("spec", "")
    if spec.startswith(CHECKPOINT):
        path = Path(spec[len(CHECKPOINT):])
        if not path.is_dir():
            raise MMUBenchError(f"{folder}: the checkpoint it scored, {path}, is gone")
        if folder_sha256(path) != result.method.get("source_sha256"):
            raise MMUBenchError(f"{folder}: the checkpoint it scored, {path}, has changed since (its hash differs)")
        return session.provider.load_checkpoint(str(path), session.benchmark)
    raise MMUBenchError(f"{folder} keeps no unlearned weights (no {MODEL_DIR}/ folder; the run had save_model="
                        f"{session.config.save_model}). Re-run it with --save-model yes, or with --attacks")
