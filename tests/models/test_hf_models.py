"""Real-model providers (``mmu_bench.models.hf``) on tiny random-weight LLaVA, Qwen2-VL and
Qwen2.5-VL models saved like hub repositories and loaded by local path (``from_pretrained``,
the code path of a hub name), offline."""

import json

import pytest
import torch

from mmu_bench.cli import main
from mmu_bench.core.errors import MMUBenchError, UnknownNameError
from mmu_bench.models.hf import HFProvider, language_linear_names
from mmu_bench.spec import registry
from random_mllms import save_llava, save_qwen

BENCH = {"num_entities": 4, "train_views": 1, "heldout_views": 1, "text_variants": 1, "general_train_images": 4,
         "general_eval_images": 2, "general_eval_sums": 2}
# Fine-tune options every test shares, so that the cached reference models are reused.
FAST = {"dtype": "float32", "steps": 3, "lr": 1e-3, "batch_size": 4, "device": "cpu"}
# (saver, LoRA on?): LoRA for LLaVA and Qwen2.5-VL, full fine-tuning for Qwen2-VL.
KINDS = {"llava": (save_llava, True), "qwen2-vl": (lambda f: save_qwen(f, "2"), False),
         "qwen2.5-vl": (lambda f: save_qwen(f, "2.5"), True)}


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    """conftest's home, for this module's module-scoped fixtures too (they start before it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMU_BENCH_HOME", str(tmp_path_factory.getbasetemp() / "mmu-home"))
        yield


@pytest.fixture(scope="module")
def saved(tmp_path_factory, hf_home):
    root = tmp_path_factory.mktemp("hub")
    return {kind: saver(root / kind) for kind, (saver, _) in KINDS.items()}


def model_args(folder, lora: bool) -> list[str]:
    args = ["--model", f"hf:{folder}", "--min-vanilla-mc", "0", "--eval-limit", "1", "--eval-batch-size", "8",
            "--quiet", "--model-arg", f"lora={str(lora).lower()}"]
    return args + [a for k, v in FAST.items() for a in ("--model-arg", f"{k}={v}")]


def cli_args(folder, lora: bool) -> list[str]:
    return model_args(folder, lora) + ["--forget-ratio", "10"] + [
        a for k, v in BENCH.items() for a in ("--benchmark-arg", f"{k}={v}")]


def benchmark():
    from mmu_bench.data.synth import load

    return load(forget_ratio=10, **BENCH)


def provider(folder, **options) -> HFProvider:
    return registry.make_model(f"hf:{folder}", progress=False, **{**FAST, **options})


def params(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# -- names and options ------------------------------------------------------------------------


def test_named_models_point_at_their_hub_repositories():
    expected = {"llava-1.5-7b": "llava-hf/llava-1.5-7b-hf", "qwen2-vl-7b": "Qwen/Qwen2-VL-7B-Instruct",
                "qwen2.5-vl-7b": "Qwen/Qwen2.5-VL-7B-Instruct"}
    for name, path in expected.items():
        made = registry.make_model(name, progress=False)  # loads nothing yet
        assert (made.name, made.options.path, made.options.lora, made.options.dtype) == (name, path, True, "bfloat16")
        assert made.options.trust_remote_code is False
    assert registry.make_model("llava-1.5-7b", path="/mirror/llava").options.path == "/mirror/llava"


def test_hf_prefix_takes_any_name_or_path_and_unknown_names_mention_it():
    made = registry.make_model("hf:org/some-vlm", progress=False)
    assert made.options.path == "org/some-vlm" and made.name == "hf_org_some-vlm"
    with pytest.raises(UnknownNameError, match="hf:<name-or-path>"):
        registry.resolve_model("llava-7b")
    with pytest.raises(MMUBenchError, match="needs a hub name or local folder: --model hf:<name-or-path>"):
        registry.resolve_model("hf:")


def test_options_are_typed_from_command_line_strings_and_checked():
    made = registry.make_model("hf:x", lr="1e-5", lora="false", steps="7", lora_r=8)
    assert (made.options.lr, made.options.lora, made.options.steps, made.options.lora_r) == (1e-5, False, 7, 8)
    with pytest.raises(MMUBenchError, match="unknown option.*lora_rank.*valid: .*lora_r"):
        registry.make_model("hf:x", lora_rank=8)
    with pytest.raises(MMUBenchError, match="dtype"):
        registry.make_model("hf:x", dtype="int8")


def test_the_recipe_hash_follows_the_recipe_and_the_oracle_the_forget_set(tmp_path):
    bench = benchmark()
    a, b = provider(tmp_path), provider(tmp_path, lr=2e-3)
    assert a.path("vanilla", bench) == provider(tmp_path, gradient_checkpointing=True).path("vanilla", bench)
    assert a.path("vanilla", bench) != b.path("vanilla", bench)
    assert a.path("oracle", bench) != a.path("vanilla", bench)
    from mmu_bench.data.synth import load

    five, fifteen = (load(forget_ratio=r, **{**BENCH, "num_entities": 10}) for r in (5, 15))  # 1 and 2 forgotten
    assert a.path("oracle", five) != a.path("oracle", fifteen)
    assert a.path("vanilla", five) == a.path("vanilla", fifteen)
    assert provider(tmp_path, vanilla="/my/vanilla").path("vanilla", bench).as_posix() == "/my/vanilla"


# -- loading and LoRA -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_lora_trains_the_language_model_linear_layers_only(saved, kind):
    made = provider(saved[kind])
    base = made.base_model()
    targets = language_linear_names(base)
    assert targets and all(".language_model." in n for n in targets)
    model = made.trainable(base)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(trainable) == 2 * len(targets)  # lora_A and lora_B of each
    assert all(("lora_A" in n or "lora_B" in n) and ".language_model." in n for n in trainable)
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)


def test_the_fresh_adapter_follows_the_seed_option_not_the_global_random_state(saved):
    made = provider(saved["llava"])
    torch.manual_seed(1)
    first = params(made.trainable(made.base_model()))
    torch.manual_seed(2)
    again = params(made.trainable(made.base_model()))
    other = params(provider(saved["llava"], seed=1).trainable(made.base_model()))
    lora_a = [n for n in first if "lora_A" in n]
    assert lora_a and all(torch.equal(first[n], again[n]) for n in lora_a)
    assert not any(torch.equal(first[n], other[n]) for n in lora_a)


@pytest.mark.parametrize("kind", list(KINDS))
def test_processor_and_chat_template_are_the_models_own(saved, kind):
    processor = provider(saved[kind]).processor()
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Who ?"}]}],
        add_generation_prompt=True, tokenize=False)
    assert ("USER:" in prompt) if kind == "llava" else ("<|vision_start|><|image_pad|><|vision_end|>" in prompt)


# -- end to end: prepare, unlearn with NPO, evaluate --------------------------------------------


@pytest.fixture(scope="module")
def runs(saved, tmp_path_factory, hf_home):
    """Per model class: `prepare` (fine-tunes the vanilla, oracle and visual oracle models), then
    an NPO run; the run's results.json."""
    done = {}
    for kind, (_, lora) in KINDS.items():
        out = tmp_path_factory.mktemp(f"runs-{kind}")
        args = cli_args(saved[kind], lora)
        assert main(["prepare", *args]) == 0
        assert main(["run", "--method", "npo", "--method-arg", "steps=2", "--method-arg", "batch_size=2",
                     *args, "--output-dir", str(out)]) == 0
        [done[kind]] = out.rglob("results.json")
    return done


@pytest.mark.parametrize("kind", list(KINDS))
def test_npo_run_writes_scores_of_the_unlearned_and_reference_models(runs, saved, kind):
    result = json.loads(runs[kind].read_text())
    assert result["model"]["name"] == f"hf:{saved[kind]}"
    assert set(result["scores"]) == {"unlearned", "vanilla", "oracle", "visual_oracle"}
    assert set(result["dimensions"]["unlearned"]) == {"visual_forgetting", "textual_retention", "retained_vqa",
                                                      "general_utility"}
    assert result["training"]["steps"] == 2 and result["method"]["name"] == "npo"
    # One item per task and format (--eval-limit 1): too few for a KS test, said so; PrivLeak
    # compares with the gold reference, the visual oracle these models fine-tuned.
    image = result["scores"]["unlearned"]["visual_forgetting"]
    assert image["forget_quality"]["absent"].startswith("fewer than 2 items with a truth ratio")
    assert 0.0 <= image["mia_auc_min_k_pp"]["mean"] <= 1.0
    privleak = image["privleak_min_k_pp"]
    assert privleak.get("against") == "visual_oracle" or "visual_oracle" in privleak["absent"]
    for role in ("vanilla", "oracle", "visual_oracle"):
        assert f"{role}-" in result["model"]["references"][role]["path"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_prepare_caches_the_adapter_with_lora_and_the_full_model_without(runs, saved, kind):
    _, lora = KINDS[kind]
    result = json.loads(runs[kind].read_text())
    for role in ("vanilla", "oracle", "visual_oracle"):
        folder = type(runs[kind])(result["model"]["references"][role]["path"])
        recipe = json.loads((folder / "recipe.json").read_text())
        assert recipe["steps"] == 3 and recipe["options"]["lora"] is lora
        assert (folder / "adapter_config.json").exists() is lora
        assert (folder / "model.safetensors").exists() is not lora


def test_reference_models_are_trained_once(runs, saved):
    made = provider(saved["llava"], lora=True)
    folder = made.path("vanilla", benchmark())
    before = (folder / "recipe.json").stat().st_mtime
    assert main(["prepare", *cli_args(saved["llava"], True)]) == 0
    assert (folder / "recipe.json").stat().st_mtime == before
    assert len(list(folder.parent.glob("vanilla-*"))) == 1


def test_vanilla_differs_from_the_base_in_the_language_model_linear_layers_only(runs, saved):
    made = provider(saved["llava"], lora=True)
    base = params(made.base_model())
    vanilla = made.load("vanilla", benchmark()).model.merge_and_unload()  # drop the fresh adapter
    changed = {n for n, p in params(vanilla).items() if not torch.equal(p, base[n])}
    targets = {f"{n}.weight" for n in language_linear_names(vanilla)}
    assert changed == targets


def test_with_lora_unlearning_changes_only_lora_parameters(runs, saved):
    from mmu_bench.api import default_prompts
    from mmu_bench.api.context import EncodedSet, MethodData, UnlearningContext
    from mmu_bench.spec.registry import resolve_method

    bench = benchmark()
    made = provider(saved["qwen2.5-vl"], lora=True)
    vanilla = made.load("vanilla", bench)
    before = params(vanilla.model)
    npo = resolve_method("npo").cls
    config = npo.Config(lr=1e-2, steps=2, batch_size=2)
    prompts = default_prompts()
    data = MethodData(*(EncodedSet(rows, vanilla.processor, prompts)
                        for rows in (bench.forget_set(), bench.retain_set(), bench.preserve_text())))
    ctx = UnlearningContext(model=vanilla.model, processor=vanilla.processor, config=config, data=data, seed=0,
                            benchmark=bench.name, reference_loader=lambda role: made.load(role, bench).model)
    method = npo(config)
    method.setup(ctx)
    method.unlearn(ctx)
    changed = {n for n, p in params(vanilla.model).items() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)
    assert any("lora_B" in n for n in changed)


def test_given_checkpoints_are_used_instead_of_fine_tuning(saved, tmp_path):
    bench = benchmark()
    made = provider(saved["qwen2-vl"], lora=False, vanilla=str(saved["qwen2-vl"]), oracle=str(saved["llava"]))
    vanilla, oracle = made.load("vanilla", bench), made.load("oracle", bench)
    assert vanilla.path == str(saved["qwen2-vl"]) and type(vanilla.model).__name__ == "Qwen2VLForConditionalGeneration"
    assert type(oracle.processor).__name__ == "LlavaProcessor"  # a checkpoint's own processor wins
    assert not (made.path("vanilla", bench) / "recipe.json").exists()
    assert len(vanilla.recipe_hash) == 16 and vanilla.recipe_hash != oracle.recipe_hash


def test_a_lora_adapter_checkpoint_is_merged_into_the_vanilla_model(runs, saved, tmp_path):
    bench = benchmark()
    made = provider(saved["llava"], lora=True)
    unlearned = made.load("vanilla", bench).model
    for p in unlearned.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.1)  # an "unlearned" adapter
    unlearned.save_pretrained(str(tmp_path / "adapter"))
    loaded = made.load_checkpoint(str(tmp_path / "adapter"), bench)
    expected = params(unlearned.merge_and_unload())
    got = params(loaded.model)
    assert set(got) == set(expected)
    assert all(torch.allclose(got[n], expected[n], atol=1e-6) for n in got)


def test_mmunlearner_runs_on_a_lora_model(runs, saved, tmp_path):
    import importlib.util

    if importlib.util.find_spec("mmu_bench.methods.mmunlearner") is None:
        pytest.skip("no mmunlearner baseline")
    # By module path: an editable install made before the baseline existed lacks its entry point.
    spec = "mmunlearner" if "mmunlearner" in registry.method_entry_points() else "mmu_bench.methods.mmunlearner:MMUnlearner"
    args = cli_args(saved["llava"], True)
    code = main(["run", "--method", spec, "--method-arg", "steps=1", "--method-arg", "batch_size=2",
                 "--method-arg", "mask_batches=1", "--method-arg", "mask_batch_size=2", "--method-arg",
                 "retain_per_forget=1", *args, "--output-dir", str(tmp_path)])
    assert code == 0
    [path] = tmp_path.rglob("results.json")
    result = json.loads(path.read_text())
    assert result["method"]["name"] == "mmunlearner"
    sparsity = result["training"]["method_report"]["mask_sparsity"]
    assert set(sparsity) == {"all", "language_layers"}  # LoRA on the language model only
    assert 0.0 <= sparsity["all"]["fraction"] <= 1.0


# -- the real benchmarks under their own protocols ---------------------------------------------


# The fixtures have two forget people at 10 %: MLLMU-Bench's cloze demonstrations come from one
# of them (its eval draws two, which would leave none to score).
FEW_SHOTS = {"mllmu": ["--protocol-arg", "shots.cloze=1"], "clear": []}


@pytest.mark.parametrize("bench", ["mllmu", "clear"])
def test_real_benchmarks_run_under_their_own_protocol(saved, tmp_path, bench):
    """MLLMU-Bench and CLEAR fixtures scored as their reference code scores them: its prompt
    wording, budgets, demonstrations (not scored), extra generation metrics; all recorded."""
    from real_fixtures import write_clear, write_mllmu

    source = (write_mllmu if bench == "mllmu" else write_clear)(tmp_path / "source", "parquet")
    out = tmp_path / "runs"
    assert main(["run", "--method", "ga", "--method-arg", "steps=1", "--method-arg", "batch_size=2",
                 *model_args(saved["llava"], True), "--benchmark", bench, "--forget-ratio", "10",
                 "--benchmark-arg", f"source={source}", "--benchmark-arg", f"cache_dir={tmp_path / 'hf-cache'}",
                 *FEW_SHOTS[bench], "--trajectory", "0", "--output-dir", str(out)]) == 0
    [folder] = [p.parent for p in out.rglob("results.json")]
    result = json.loads((folder / "results.json").read_text())
    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    protocol = result["protocol"]
    assert protocol["name"] == bench and protocol["args"] == ({"shots.cloze": 1} if bench == "mllmu" else {})
    assert protocol["max_new_tokens"] == {"multiple_choice": 50, "cloze": 50, "generation": 50}
    assert all(entry["budget"] == 50 and 0 <= entry["over"] <= entry["items"] for entry in protocol["over_budget"].values())
    generation = result["scores"]["unlearned"]["visual_forgetting"]
    if bench == "mllmu":
        assert {"rouge1", "rouge2", "bleu"} <= set(generation) and protocol["shots"] == {"multiple_choice": 1, "cloze": 1}
        shown = {i for ids in protocol["demonstrations"].values() for i in ids}
        assert shown and not shown & {s["item_id"] for s in samples}  # demonstrations are not scored
        assert "general_utility" not in protocol["demonstrations"]  # celebrities get none, as in eval.py
        for s in samples:
            if s["format"] == "generation":
                end = "accurately in ENGLISH." if s["modality"] == "image" else "one sentence in ENGLISH."
                assert s["prompt"].endswith(end), s["prompt"]
            if s["format"] in ("multiple_choice", "cloze") and s["split"] in ("forget", "retain"):
                assert "Correct Answer: " in s["prompt"], s["prompt"]
            if s["format"] == "cloze":
                assert "Please **ONLY** provide" in s["prompt"]
    else:
        assert {"rougeL_recall", "rouge1", "bleu"} <= set(generation) and protocol["demonstrations"] == {}
        mc = [s for s in samples if s["format"] == "multiple_choice"]
        assert mc and all("\nA. " in s["prompt"] and s["prompt"].endswith("\n") for s in mc)
        captions = [s for s in samples if s["fact"] == "caption"]
        assert captions and all(s["alternative_logprobs"]["perturbed"] for s in captions
                                if s["entity_id"] in ("Jambo Mpendulo", "Nadia Nowak", "Youssef Al-Zahran"))
        assert generation["truth_ratio_forget"]["n"] >= 1


# -- the attack suite on the real benchmarks' code path ------------------------------------------


@pytest.mark.parametrize("bench", ["mllmu", "clear"])
def test_the_attack_suite_runs_on_real_benchmark_fixtures(saved, tmp_path, bench):
    """Every built-in attack on a LLaVA (LoRA) unlearned on a small MLLMU-Bench / CLEAR in the
    real Hugging Face schemas: numbers for the model and the gold reference, none failed, and
    the benchmark's lack of paraphrases said."""
    from real_fixtures import write_clear, write_mllmu

    source = (write_mllmu if bench == "mllmu" else write_clear)(tmp_path / "source", "parquet")
    args = [*model_args(saved["llava"], True), "--benchmark", bench, "--forget-ratio", "10",
            "--benchmark-arg", f"source={source}", "--benchmark-arg", f"cache_dir={tmp_path / 'hf-cache'}",
            *FEW_SHOTS[bench]]
    out = tmp_path / "runs"
    assert main(["run", "--method", "ga", "--method-arg", "steps=1", "--method-arg", "batch_size=2", *args,
                 "--attacks", "--attack-arg", "relearn.steps=1", "--output-dir", str(out)]) == 0
    [folder] = [p.parent for p in out.rglob("results.json")]
    report = json.loads((folder / "attacks.json").read_text())
    assert report["failed"] == {}
    assert set(report["attacks"]) == {"relearn", "image_rephrase", "prompt", "quantise"}
    assert report["gold"] in ("visual_oracle", "oracle")
    for entry in report["attacks"].values():
        assert entry["gold"] is not None
        numbers = {**entry["unlearned"], **entry["compared"]}
        for column in entry["columns"]:  # NaN (null) where a random model had nothing to recover
            assert column in numbers and (numbers[column] is None or isinstance(numbers[column], float)), column
    prompt = report["attacks"]["prompt"]["unlearned"]
    assert prompt["attack_prompt_budget"] == 3 and prompt["attack_prompt_paraphrase_note"].startswith("none:")
    assert report["attacks"]["quantise"]["unlearned"]["quant_scheme"] == "int8_dynamic"
    assert (folder / "model" / "adapter_config.json").exists()  # a LoRA run keeps its adapter
    # ... which `attack --run` merges into the vanilla model again: the same model, the same numbers.
    assert main(["attack", "--run", str(folder), "--attack", "quantise", "--quiet"]) == 0
    again = json.loads((folder / "attacks.json").read_text())
    assert again["score_before"] == pytest.approx(report["score_before"]) and "note" not in again
    assert again["attacks"]["quantise"]["unlearned"] == report["attacks"]["quantise"]["unlearned"]


def test_meta_eval_runs_on_a_real_benchmark_with_lora_pools(saved, tmp_path):
    """`mmu-bench meta-eval` on a small MLLMU-Bench with LLaVA (LoRA): the pools are LoRA fine-tunes
    of the base at seed 1, a GA model is relearned and quantised, every measure gets a row."""
    from real_fixtures import write_mllmu

    source = write_mllmu(tmp_path / "source", "parquet")
    args = [*model_args(saved["llava"], True), "--benchmark", "mllmu", "--forget-ratio", "10",
            "--benchmark-arg", f"source={source}", "--benchmark-arg", f"cache_dir={tmp_path / 'hf-cache'}",
            *FEW_SHOTS["mllmu"]]
    out = tmp_path / "board"
    assert main(["meta-eval", *args, "--seeds", "1", "--methods", "ga", "--attack-arg", "relearn.steps=1",
                 "--resamples", "100", "--no-plot", "--output", str(out)]) == 0
    [written] = list(out.glob("meta-eval__mllmu__*.json"))
    doc = json.loads(written.read_text())
    pools = doc["pools"]["visual_forgetting"]
    assert pools["knows"] == ["vanilla seed=1"] and "oracle seed=1" in pools["never"]
    assert all(doc["models"][m]["model_path"] for m in pools["knows"] + pools["never"])
    assert set(doc["models"]["unlearned ga"]["attacked"]) == {"relearn", "quantise"}
    assert written.with_suffix(".md").read_text().count("| mc_loglik_acc |") == 2  # both sides


# -- cache integrity ------------------------------------------------------------------------------


def test_a_corrupted_cached_model_is_detected_and_trained_again(runs, saved, capsys):
    from mmu_bench.core import integrity

    made = provider(saved["llava"], lora=True)
    folder = made.path("vanilla", benchmark())
    assert integrity.damage(folder) is None and (folder / integrity.DIGESTS).exists()
    weights = next(folder.glob("*.safetensors"))
    intact = weights.read_bytes()
    weights.write_bytes(intact[: len(intact) // 2])  # a truncated download or disk error
    integrity._verified.clear()  # as a new process would
    made.load("vanilla", benchmark())
    assert integrity.damage(folder) is None and weights.read_bytes() == intact  # the same recipe, trained again
    [aside] = folder.parent.glob(f"{folder.name}.damaged-*")
    assert len((aside / weights.name).read_bytes()) == len(intact) // 2
    assert f"cached vanilla model {folder} is damaged" in capsys.readouterr().err
