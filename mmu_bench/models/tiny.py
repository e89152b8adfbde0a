"""The tiny offline MLLM: a real ``LlavaForConditionalGeneration`` built from small CLIP-vision
and Llama configs, a word-level tokenizer and a ``LlavaProcessor``, all made without a hub."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from mmu_bench.api import json_digest
from mmu_bench.api.provider import CachedProvider, LoadedModel

SPECIAL = {"pad": "<pad>", "unk": "<unk>", "bos": "<s>", "eos": "</s>", "image": "<image>"}
# LLaVA-1.5's conversation format, written as a Jinja chat template over structured content.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %} "
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


@dataclass(frozen=True)
class TinyArch:
    """Sizes of the tiny LLaVA (about half a million parameters at the defaults)."""

    image_size: int = 32
    patch_size: int = 8
    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_intermediate: int = 256
    max_positions: int = 256

    def as_dict(self) -> dict:
        return asdict(self)


def build_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """Word-level tokenizer over a closed vocabulary (case kept); splits off punctuation."""
    specials = list(SPECIAL.values())
    vocab = {tok: i for i, tok in enumerate(specials + [w for w in words if w not in specials])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL["unk"]))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(behavior="isolated")]
    )
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins with spaces, tidies " ."
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=SPECIAL["pad"],
        unk_token=SPECIAL["unk"],
        bos_token=SPECIAL["bos"],
        eos_token=SPECIAL["eos"],
        extra_special_tokens={"image_token": SPECIAL["image"]},
        model_input_names=["input_ids", "attention_mask"],
    )
    return tokenizer


def build_processor(words: list[str], arch: TinyArch = TinyArch()) -> LlavaProcessor:
    size = arch.image_size
    # The PIL backend explicitly: the same pixels whether or not torchvision is installed.
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        do_resize=True,
        do_center_crop=True,
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=build_tokenizer(words),
        patch_size=arch.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, dropped by the "default" strategy
        chat_template=CHAT_TEMPLATE,
        image_token=SPECIAL["image"],
    )


def build_model(processor: LlavaProcessor, arch: TinyArch = TinyArch(), seed: int = 0) -> LlavaForConditionalGeneration:
    """A randomly initialised tiny LLaVA whose vocabulary matches ``processor``."""
    import torch

    tok = processor.tokenizer
    vision = CLIPVisionConfig(
        hidden_size=arch.vision_hidden,
        intermediate_size=arch.vision_hidden * 2,
        num_hidden_layers=arch.vision_layers,
        num_attention_heads=arch.vision_heads,
        image_size=arch.image_size,
        patch_size=arch.patch_size,
        projection_dim=arch.vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=arch.text_hidden,
        intermediate_size=arch.text_intermediate,
        num_hidden_layers=arch.text_layers,
        num_attention_heads=arch.text_heads,
        num_key_value_heads=arch.text_heads,
        max_position_embeddings=arch.max_positions,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        # Tied: the direction that makes the model *say* a word is the one the word *reads* as,
        # which lets a recalled answer match its option in a multiple-choice prompt.
        tie_word_embeddings=True,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids(SPECIAL["image"]),
        image_seq_length=(arch.image_size // arch.patch_size) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.bos_token_id = tok.bos_token_id
    return model


# --------------------------------------------------------------------------------------------
# The cached reference models for MMU-Synth: base -> vanilla (all entities), oracle (retained),
# visual oracle (all but the forget entities' images).

RECIPE_VERSION = "3"  # bump whenever training code changes what a recipe produces


@dataclass(frozen=True)
class TinyRecipe:
    """How the tiny reference models are trained. Its hash (with the data's fingerprint and the
    prompts) names the cache folder, so changing any of it trains new models."""

    arch: TinyArch = field(default_factory=TinyArch)
    seed: int = 0
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 50
    base_steps: int = 500  # general skills (and other people), before any benchmark entity
    base_people: int = 20
    finetune_steps: int = 1000  # vanilla / oracle, each from the base (general rows replayed)
    # Letter answers to multiple-choice prompts, per pass. 0 by default: a model this small does
    # not learn to name the option letter in a few thousand steps (see README), so the steps go
    # to knowledge; multiple choice is scored by option log-likelihood.
    mc_weight: int = 0
    # Text questions about entities are few next to image questions (one text row per fact and
    # variant, one image row per fact and view): seen this many times per pass.
    text_weight: int = 2

    def as_dict(self) -> dict:
        return asdict(self)


def prompt_words(prompts: dict) -> set[str]:
    words: set[str] = set()
    for text in prompts["prompts"].values():
        words.update(re.findall(r"\w+|[^\w\s]", text.format(question="", options="", letter="", text="")))
    words.update(re.findall(r"\w+|[^\w\s]", prompts["blank"]))
    return words


def recipe_vocabulary(prompts: dict) -> list[str]:
    from mmu_bench.data.synth import case_variants, vocabulary

    return case_variants(set(vocabulary()) | prompt_words(prompts) | {"USER", "ASSISTANT", ":"})


def training_features(rows, processor, prompts: dict, mc_weight: int) -> list[list[dict]]:
    """Per row, its encoded (prompt, answer) pairs. The letter answer of a multiple-choice row
    is included ``mc_weight`` times (0: never; its option-text pair always is)."""
    from mmu_bench.api.encoding import encode_many
    from mmu_bench.api.prompts import training_pairs

    items, owners = [], []
    for i, row in enumerate(rows):
        for k, (user, answer) in enumerate(training_pairs(row, prompts)):
            copies = mc_weight if row["format"] == "multiple_choice" and k == 0 else 1
            if copies:
                items.append((user, row["image"], answer))
                owners.append((i, copies))
    per_row: list[list[dict]] = [[] for _ in rows]
    for (i, copies), feature in zip(owners, encode_many(processor, items)):
        per_row[i].extend([feature] * copies)
    return per_row


def check_vocabulary(rows, processor, benchmark: str) -> None:
    """The tiny model's tokenizer knows MMU-Synth's words only (a closed vocabulary): a benchmark
    whose rows use other words would train on unknown tokens, so it is refused, naming them."""
    known = processor.tokenizer.get_vocab()
    texts = rows.select_columns(["question", "answer", "options"]).to_dict()
    words = {w for column in ("question", "answer") for text in texts[column] for w in re.findall(r"\w+|[^\w\s]", text)}
    words |= {w for options in texts["options"] for text in options for w in re.findall(r"\w+|[^\w\s]", text)}
    unknown = sorted(w for w in words if w not in known)
    if unknown:
        raise ValueError(f"tiny-llava's tokenizer knows MMU-Synth's words only; benchmark {benchmark!r} uses "
                         f"{len(unknown)} others ({', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''}): "
                         "run it with a real model (--model hf:...)")


class TinyLlavaProvider(CachedProvider):
    """``tiny-llava``: the embedded default model. ``load(role, benchmark)`` returns the cached
    vanilla, oracle or visual oracle model for that benchmark (``Benchmark.training_rows``),
    training it (and the shared base, role ``base``) if missing."""

    name = "tiny-llava"
    description = "the embedded default: a LLaVA of half a million parameters, trained on CPU (references ship)"
    roles = ("vanilla", "oracle", "visual_oracle")

    def __init__(self, progress: bool = True, **overrides):
        self._features: dict[tuple[str, str], list] = {}  # (data, item_id) -> encoded pairs
        from mmu_bench.api import typed_dataclass

        arch = overrides.pop("arch", None)
        recipe = typed_dataclass(TinyRecipe, overrides, "model 'tiny-llava'", "--model-arg")
        if isinstance(arch, dict):
            arch = typed_dataclass(TinyArch, arch, "model 'tiny-llava' --model-arg arch", "size")
        if arch is not None:
            recipe = replace(recipe, arch=arch)
        self.recipe = recipe
        self.progress = progress

    # -- identities --------------------------------------------------------------------------
    def _prompts(self) -> dict:
        from mmu_bench.api import default_prompts

        return default_prompts()

    def _base_key(self) -> dict:
        from mmu_bench.data.synth import GENERATOR_VERSION

        r = self.recipe
        return {
            "recipe_version": RECIPE_VERSION,
            "generator_version": GENERATOR_VERSION,
            "arch": r.arch.as_dict(),
            "prompts": self._prompts(),
            **{k: getattr(r, k) for k in ("seed", "batch_size", "lr", "warmup_steps", "base_steps", "base_people", "mc_weight",
                                           "text_weight")},
        }

    def key(self, role: str, benchmark) -> dict:
        if role == "base":  # the stage every benchmark's models start from
            return self._base_key()
        self.check_role(role)
        key = {"base": json_digest(self._base_key()), "role": role, "benchmark": benchmark.name,
               "data": benchmark.fingerprint, "finetune_steps": self.recipe.finetune_steps}
        if role != "vanilla":
            key["forget_entities"] = list(benchmark.forget_entities)
        return key

    # -- loading and training ----------------------------------------------------------------
    def _encode(self, rows, processor, prompts, source: str) -> list[dict]:
        """Encoded training pairs of ``rows`` (from the data set ``source``), reusing those
        already encoded in this process: the oracle's rows are a subset of the vanilla model's."""
        rows = list(rows)  # decode once
        missing = [row for row in rows if (source, row["item_id"]) not in self._features]
        for row, encoded in zip(missing, training_features(missing, processor, prompts, self.recipe.mc_weight)):
            self._features[(source, row["item_id"])] = encoded
        weight = {True: self.recipe.text_weight, False: 1}
        return [feature for row in rows
                for _ in range(weight[row["modality"] == "text" and row["entity_id"] != ""])
                for feature in self._features[(source, row["item_id"])]]

    def load(self, role: str, benchmark=None, sides: tuple[str, ...] = ("language",)) -> LoadedModel:
        """``role``'s model; every parameter trains, so every ``sides`` is covered."""
        path = self.ensure(role, benchmark)
        processor = LlavaProcessor.from_pretrained(str(path))
        model = LlavaForConditionalGeneration.from_pretrained(str(path))
        model.eval()
        return LoadedModel(model, processor, role, str(path), self.recipe_hash(role, benchmark))

    def load_checkpoint(self, path: str, benchmark) -> LoadedModel:
        """A tiny-llava unlearned elsewhere: its weights from ``path``, its processor from there
        too when saved, else the vanilla model's (unlearning does not change the vocabulary)."""
        from mmu_bench.api import MMUBenchError

        folder = Path(path)
        try:
            model = LlavaForConditionalGeneration.from_pretrained(str(folder))
        except (OSError, ValueError) as exc:
            raise MMUBenchError(f"--checkpoint {path}: not a LLaVA checkpoint ({exc})") from exc
        if (folder / "tokenizer.json").exists():
            processor = LlavaProcessor.from_pretrained(str(folder))
        else:
            processor = self.load("vanilla", benchmark).processor
        if model.config.text_config.vocab_size != len(processor.tokenizer):
            raise MMUBenchError(
                f"--checkpoint {path}: its vocabulary ({model.config.text_config.vocab_size} tokens) does not match "
                f"the processor's ({len(processor.tokenizer)}); was it made from this benchmark's vanilla model?"
            )
        model.eval()
        return LoadedModel(model, processor, "checkpoint", str(folder), "")

    def train(self, role: str, benchmark) -> None:
        import torch

        from mmu_bench.data.synth import SynthConfig, generate

        r = self.recipe
        prompts = self._prompts()
        started = time.time()
        if role == "base":
            processor = build_processor(recipe_vocabulary(prompts), r.arch)
            model = build_model(processor, r.arch, seed=r.seed)
            people = generate(SynthConfig(num_entities=r.base_people, seed=10_000 + r.seed, name_pool="pretrain"))
            rows = [*people["train"], *people["general_train"]]
            source = "base"
            steps, desc = r.base_steps, "training tiny-llava base"
        else:
            base = self.load("base")
            processor, model = base.processor, base.model
            rows = benchmark.training_rows(role)
            check_vocabulary(rows, processor, benchmark.name)
            source = benchmark.fingerprint
            steps, desc = r.finetune_steps, f"training tiny-llava {role}"
        torch.manual_seed(r.seed)
        features = self._encode(rows, processor, prompts, source)
        from mmu_bench.api.finetune import finetune

        losses = finetune(
            model, features, processor.tokenizer.pad_token_id, steps=steps, lr=r.lr, batch_size=r.batch_size,
            seed=r.seed, warmup_steps=r.warmup_steps, schedule="cosine", desc=desc, progress=self.progress,
        )
        self.save(role, benchmark, model, processor, {
            "key": self.key(role, benchmark), "recipe": r.as_dict(), "train_rows": len(rows),
            "train_pairs": len(features), "final_loss": sum(losses[-20:]) / max(1, len(losses[-20:])),
            "seconds": round(time.time() - started, 1),
        })
