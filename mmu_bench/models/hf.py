"""Real MLLMs by hub name or local folder: LLaVA-1.5, Qwen2-VL, Qwen2.5-VL, or any
``AutoModelForImageTextToText`` model (``--model hf:<name-or-path>``).

The model's own processor and chat template are used. With ``lora`` (the default), a fresh LoRA
adapter (MLLMU-Bench's settings: r=16, alpha=16, dropout 0.05, Gaussian init, every linear layer
of the language model, not the vision tower, projector or lm_head) is the only trainable part of
every model ``load`` returns, so methods and saliency masks act on the LoRA parameters. A
method that needs the vision side trainable (``UnlearningMethod.trainable_sides``, e.g.
MMUnlearner's vision mask) gets the adapter on the linear layers of the vision tower and the
projector too (``load(..., sides=("language", "vision"))``).

Reference models: the vanilla model, the oracle and the visual oracle are the base fine-tuned on
``benchmark.training_rows(role)`` (the shared loop in ``finetune.py``; MMUnlearner's vanilla
recipe by default: AdamW, lr 1e-5, 1 epoch, batch 4, linear decay, no warmup, clip 1.0). With
LoRA only the adapter is saved, under ``home()/models/<provider>/<role>-<hash>``, and merged into
the base on load, as MLLMU-Bench merges before unlearning. ``vanilla=PATH`` / ``oracle=PATH`` /
``visual_oracle=PATH`` use existing checkpoints instead: a full model (folder or hub name) or a LoRA adapter folder over
the base.
"""

from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mmu_bench.api import is_local, json_digest
from mmu_bench.api.provider import CachedProvider, LoadedModel

RECIPE_VERSION = "1"  # bump whenever training code changes what a recipe produces
DTYPES = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16",
          "float32": "float32", "fp32": "float32", "auto": "auto"}


@dataclass(frozen=True)
class HFOptions:
    """What ``--model-arg KEY=VALUE`` can set."""

    path: str  # hub name or local folder of the base model
    revision: str | None = None
    dtype: str = "bfloat16"  # bfloat16 | float16 | float32 | auto (the checkpoint's)
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    vanilla: str | None = None  # an existing vanilla checkpoint instead of fine-tuning one
    oracle: str | None = None  # an existing oracle checkpoint instead of fine-tuning one
    visual_oracle: str | None = None  # an existing visual oracle checkpoint instead of fine-tuning one
    # The vanilla / oracle fine-tuning recipe.
    lr: float = 1e-5
    epochs: float = 1.0
    steps: int = 0  # 0 = ``epochs`` passes over the training pairs
    batch_size: int = 4
    warmup_steps: int = 0
    schedule: str = "linear"
    seed: int = 0
    device: str = "auto"  # where the reference models are fine-tuned: auto | cpu | cuda | cuda:N

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.lora_r < 1 or self.batch_size < 1 or self.steps < 0 or self.epochs <= 0 or self.lr <= 0:
            raise ValueError("lora_r and batch_size must be >= 1, steps >= 0, epochs and lr > 0")
        if self.schedule not in ("linear", "cosine", "constant"):
            raise ValueError(f"schedule must be linear, cosine or constant, got {self.schedule!r}")

    def recipe(self) -> dict:
        """What decides the weights of a fine-tuned reference model."""
        keys = ["path", "revision", "dtype", "lr", "epochs", "steps", "batch_size", "warmup_steps", "schedule", "seed"]
        if self.lora:
            keys += ["lora_r", "lora_alpha", "lora_dropout"]
        return {"lora": self.lora, **{k: getattr(self, k) for k in keys}}


def parse_options(name: str, values: dict) -> HFOptions:
    """Command-line strings (or YAML values) -> typed options; unknown keys list the valid ones."""
    from mmu_bench.api import typed_dataclass

    return typed_dataclass(HFOptions, values, f"model {name!r}", "option")


# --------------------------------------------------------------------------------------------
# Loading


def torch_dtype(name: str):
    import torch

    name = DTYPES[name]
    return name if name == "auto" else getattr(torch, name)


def language_linear_names(model) -> list[str]:
    """Full names of the linear layers inside the language model (``get_decoder()``): the
    LoRA targets. Full names, not suffixes: a suffix such as ``q_proj`` also matches the
    vision tower's layers, which MLLMU-Bench's scripts adapt by accident."""
    import torch

    decoder = model.get_decoder()
    prefix = next((n for n, m in model.named_modules() if m is decoder), "")
    if not prefix or decoder is model:
        raise ValueError(f"cannot find the language model inside {type(model).__name__}; use lora=false")
    names = [n for n, m in decoder.named_modules() if isinstance(m, torch.nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__}'s language model has no linear layers for LoRA")
    return [f"{prefix}.{n}" for n in names]


def vision_linear_names(model) -> list[str]:
    """Full names of the linear layers outside the language model and the output head: the
    vision tower and the projector (LLaVA's ``vision_tower`` and ``multi_modal_projector``,
    Qwen2-VL's ``visual`` with its merger)."""
    import torch

    language = set(language_linear_names(model))
    head = model.get_output_embeddings()
    names = [n for n, m in model.named_modules()
             if isinstance(m, torch.nn.Linear) and m is not head and n not in language]
    if not names:
        raise ValueError(f"{type(model).__name__} has no linear layers outside its language model for LoRA")
    return names


SIDES = ("language", "vision")
LORA_TARGETS = {"language": language_linear_names, "vision": vision_linear_names}


# Without torchvision, transformers cannot build the video processor of Qwen2-VL / Qwen2.5-VL
# processors, so AutoProcessor fails; image-only subclasses (no video processor) work.
def _image_only(base):
    class ImageOnly(base):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            base.__init__(self, image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    ImageOnly.__name__ = ImageOnly.__qualname__ = f"ImageOnly{base.__name__}"
    return ImageOnly


def _image_only_processor(model_type: str):
    if importlib.util.find_spec("torchvision") is not None:
        return None
    if model_type == "qwen2_vl":
        from transformers import Qwen2VLProcessor

        return _image_only(Qwen2VLProcessor)
    if model_type == "qwen2_5_vl":
        from transformers import Qwen2_5_VLProcessor

        return _image_only(Qwen2_5_VLProcessor)
    return None


def _has_processor(source: str) -> bool:
    folder = Path(source)
    return folder.is_dir() and any((folder / f).exists() for f in ("tokenizer_config.json", "processor_config.json"))


def _has_adapter(source: str) -> bool:
    return (Path(source) / "adapter_config.json").is_file()


def pick_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# --------------------------------------------------------------------------------------------
# Training pairs, encoded one at a time: a real benchmark's images do not all fit in memory.


class TrainingPairs:
    """The (prompt, answer) pairs of ``rows`` (``prompts.training_pairs``), encoded on access."""

    def __init__(self, rows, processor, prompts: dict):
        from mmu_bench.api.prompts import training_pairs

        self.rows, self.processor = rows, processor
        text_only = rows.remove_columns("image") if "image" in rows.column_names else rows
        self.pairs = [(i, user, answer) for i, row in enumerate(text_only)
                      for user, answer in training_pairs(row, prompts)]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        from mmu_bench.api.encoding import encode

        i, user, answer = self.pairs[index]
        return encode(self.processor, user, self.rows[i]["image"], answer)


# --------------------------------------------------------------------------------------------


class HFProvider(CachedProvider):
    """``hf:<name-or-path>``: any image-text-to-text model of transformers. Subclasses fix the
    path of the named models (``llava-1.5-7b``, ...); ``path=`` still overrides it (a local copy)."""

    name = "hf"
    description = "any image-text-to-text model of transformers, from the hub or a local folder"
    takes_source = True
    default_path: str | None = None
    roles = ("vanilla", "oracle", "visual_oracle")

    def __init__(self, progress: bool = True, name: str | None = None, **options):
        from mmu_bench.api import safe_name

        label = name or self.name
        options.setdefault("path", self.default_path)
        if not options["path"]:
            from mmu_bench.api import MMUBenchError

            raise MMUBenchError(f"model {label!r} needs a hub name or local folder: --model hf:<name-or-path>")
        self.options = parse_options(label, options)
        self.label = label
        self.name = safe_name(label)  # a path component: caches live under it
        self.progress = progress
        self._processor = None

    def check_sources(self) -> None:
        """A model path or checkpoint given as a local folder must exist: a clear error before
        any work (the runner asks), rather than a hub lookup of a folder name."""
        from mmu_bench.api import MMUBenchError

        for field in ("path", *self.roles):
            value = getattr(self.options, field, None)
            if value and is_local(str(value)) and not Path(str(value)).expanduser().is_dir():
                what = "model folder" if field == "path" else f"{field} checkpoint folder ({field}=)"
                raise MMUBenchError(f"model {self.label!r}: {what} {value} does not exist")

    # -- identities --------------------------------------------------------------------------
    def key(self, role: str, benchmark) -> dict:
        from mmu_bench.api import default_prompts

        self.check_role(role)
        key = {"recipe_version": RECIPE_VERSION, "recipe": self.options.recipe(), "role": role,
               "prompts": default_prompts(), "benchmark": benchmark.name, "data": benchmark.fingerprint}
        if role != "vanilla":
            key["forget_entities"] = list(benchmark.forget_entities)
        return key

    def _given(self, role: str) -> str | None:
        """The checkpoint given for ``role`` (``vanilla=PATH``), if any."""
        self.check_role(role)
        return getattr(self.options, role)

    def path(self, role: str, benchmark) -> Path:
        """Where the fine-tuned ``role`` model lives (or the checkpoint given for it)."""
        given = self._given(role)
        return Path(given) if given else self.cache_path(role, benchmark)

    def recipe_hash(self, role: str, benchmark) -> str:
        if self._given(role):
            return json_digest(str(self.path(role, benchmark).resolve()))
        return super().recipe_hash(role, benchmark)

    # -- loading -----------------------------------------------------------------------------
    def _from_pretrained(self, cls, source: str, **extra):
        from mmu_bench.api import MMUBenchError

        o = self.options
        try:
            return cls.from_pretrained(source, revision=o.revision if source == o.path else None,
                                       trust_remote_code=o.trust_remote_code, **extra)
        except OSError as exc:  # missing files, no network, a truncated weights file
            raise MMUBenchError(f"model {source}: cannot load it ({type(exc).__name__}: {str(exc).splitlines()[0]}). "
                                "A local folder needs the model's files (config, weights, processor); a hub name "
                                "needs network access or a local copy (--model hf:<folder>)") from exc

    def _load_processor(self, source: str):
        from transformers import AutoConfig, AutoProcessor

        model_type = self._from_pretrained(AutoConfig, source).model_type
        processor = self._from_pretrained(_image_only_processor(model_type) or AutoProcessor, source)
        tok = processor.tokenizer
        if tok.pad_token is None:  # batches need one; padded positions are masked anyway
            tok.pad_token = tok.eos_token
        return processor

    def processor(self):
        """The base model's processor (chat template included), loaded once."""
        if self._processor is None:
            self._processor = self._load_processor(self.options.path)
        return self._processor

    def base_model(self):
        return self._full_model(self.options.path)

    def _full_model(self, source: str):
        from transformers import AutoModelForImageTextToText

        return self._from_pretrained(AutoModelForImageTextToText, source, dtype=torch_dtype(self.options.dtype))

    def _weights(self, source: str):
        """A full model from ``source``, or the LoRA adapter in ``source`` merged into the base
        model, as MLLMU-Bench merges its vanilla adapter before unlearning."""
        if not _has_adapter(source):
            return self._full_model(source)
        from peft import PeftModel

        return PeftModel.from_pretrained(self.base_model(), source).merge_and_unload()

    def trainable(self, model, sides: tuple[str, ...] = ("language",)):
        """Only a fresh LoRA adapter trains (``lora``), else every parameter. The adapter covers
        the linear layers of the ``sides`` asked for: ``language`` (the language model) and/or
        ``vision`` (the vision tower and projector). Its initialisation follows the ``seed``
        option, whatever the global random state."""
        import torch

        unknown = set(sides) - set(SIDES)
        if unknown or not sides:
            raise ValueError(f"trainable sides must be some of {SIDES}, got {sides!r}")
        o = self.options
        if o.gradient_checkpointing:
            # Non-reentrant: the frozen base needs no inputs that require grad.
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if not o.lora:
            model.requires_grad_(True)
            return model
        from peft import LoraConfig, get_peft_model

        targets = [name for side in SIDES if side in sides for name in LORA_TARGETS[side](model)]
        config = LoraConfig(r=o.lora_r, lora_alpha=o.lora_alpha, lora_dropout=o.lora_dropout,
                            target_modules=targets, init_lora_weights="gaussian")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(o.seed)
            return get_peft_model(model, config)

    def load(self, role: str, benchmark=None, sides: tuple[str, ...] = ("language",)) -> LoadedModel:
        """``role``'s model with a fresh adapter over ``sides`` (see ``trainable``)."""
        path = self.path(role, benchmark) if self._given(role) else self.ensure(role, benchmark)
        model = self.trainable(self._weights(str(path)), sides)
        model.eval()
        processor = self._load_processor(str(path)) if _has_processor(str(path)) else self.processor()
        return LoadedModel(model, processor, role, str(path), self.recipe_hash(role, benchmark))

    def load_checkpoint(self, path: str, benchmark) -> LoadedModel:
        """A model unlearned elsewhere: a full model, or a LoRA adapter over the vanilla model
        (unlearning starts from the vanilla model)."""
        from mmu_bench.api import MMUBenchError

        try:
            if _has_adapter(path):
                from peft import PeftModel

                vanilla = self._weights(str(self.path("vanilla", benchmark)))
                model = PeftModel.from_pretrained(vanilla, path).merge_and_unload()
            else:
                model = self._full_model(path)
        except (OSError, ValueError) as exc:
            raise MMUBenchError(f"--checkpoint {path}: cannot load it as a {self.options.path} model ({exc})") from exc
        # A processor saved beside full weights is read from there; an adapter folder has no
        # model config to read one with, and unlearning never changes the base model's.
        own = _has_processor(path) and (Path(path) / "config.json").is_file()
        processor = self._load_processor(path) if own else self.processor()
        model.eval()
        return LoadedModel(model, processor, "checkpoint", str(path), "")

    # -- fine-tuning the reference models ----------------------------------------------------
    def train(self, role: str, benchmark) -> None:
        import torch

        from mmu_bench.api import default_prompts
        from mmu_bench.api.finetune import finetune

        o = self.options
        started = time.time()
        rows = benchmark.training_rows(role)
        processor = self.processor()
        pairs = TrainingPairs(rows, processor, default_prompts())
        steps = o.steps or max(1, math.ceil(o.epochs * len(pairs) / o.batch_size))
        torch.manual_seed(o.seed)
        model = self.trainable(self.base_model()).to(pick_device(o.device))
        losses = finetune(
            model, pairs, processor.tokenizer.pad_token_id, steps=steps, lr=o.lr, batch_size=o.batch_size,
            seed=o.seed, warmup_steps=o.warmup_steps, schedule=o.schedule, desc=f"fine-tuning {role} ({self.name})",
            progress=self.progress,
        )
        # With LoRA, save_pretrained writes the adapter alone; the base processor is not saved.
        self.save(role, benchmark, model, None, {
            "key": self.key(role, benchmark), "options": asdict(o), "train_rows": len(rows),
            "train_pairs": len(pairs), "steps": steps, "final_loss": sum(losses[-20:]) / max(1, len(losses[-20:])),
            "seconds": round(time.time() - started, 1),
        })


class Llava15_7B(HFProvider):
    name = "llava-1.5-7b"
    default_path = "llava-hf/llava-1.5-7b-hf"
    description = "LLaVA-1.5-7B (llava-hf/llava-1.5-7b-hf), the field's MLLMU-Bench and CLEAR model"
    takes_source = False


class Qwen2VL_7B(HFProvider):
    name = "qwen2-vl-7b"
    default_path = "Qwen/Qwen2-VL-7B-Instruct"
    description = "Qwen2-VL-7B-Instruct"
    takes_source = False


class Qwen25VL_7B(HFProvider):
    name = "qwen2.5-vl-7b"
    default_path = "Qwen/Qwen2.5-VL-7B-Instruct"
    description = "Qwen2.5-VL-7B-Instruct"
    takes_source = False
