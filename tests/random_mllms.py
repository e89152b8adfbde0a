"""Tiny random-weight LLaVA, Qwen2-VL and Qwen2.5-VL models with word-level tokenizers, saved
to a folder the way hub repositories are (config, weights, processor files): what the tests of
``mmu_bench.models.hf`` load through ``from_pretrained``, offline."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from mmu_bench.api import default_prompts
from mmu_bench.models import tiny
from mmu_bench.models.hf import _image_only

QWEN_SPECIAL = ["<|endoftext|>", "<unk>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
# The Qwen chat format over structured content (the real template adds a default system turn).
QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def words() -> list[str]:
    return list(dict.fromkeys(tiny.recipe_vocabulary(default_prompts()) + ["user", "assistant"]))


def save_llava(folder: Path, seed: int = 0) -> Path:
    arch = tiny.TinyArch(vision_hidden=32, vision_layers=1, vision_heads=2, text_hidden=64, text_layers=1,
                         text_heads=2, text_intermediate=128)
    processor = tiny.build_processor(words(), arch)
    tiny.build_model(processor, arch, seed=seed).save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return folder


def qwen_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(QWEN_SPECIAL + [w for w in words() if w not in QWEN_SPECIAL])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(behavior="isolated")]
    )
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<|endoftext|>", unk_token="<unk>", eos_token="<|im_end|>",
        additional_special_tokens=QWEN_SPECIAL[2:], model_input_names=["input_ids", "attention_mask"],
    )


def save_qwen(folder: Path, version: str = "2", seed: int = 0) -> Path:
    """Qwen2-VL (``version="2"``) or Qwen2.5-VL (``"2.5"``): 32x32 images, patch 8, 2x2 merge:
    4 image tokens."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    if version == "2":
        from transformers import Qwen2VLConfig as Config
        from transformers import Qwen2VLForConditionalGeneration as Model
        from transformers import Qwen2VLProcessor as Processor

        vision = {"depth": 1, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2}
    else:
        from transformers import Qwen2_5_VLConfig as Config
        from transformers import Qwen2_5_VLForConditionalGeneration as Model
        from transformers import Qwen2_5_VLProcessor as Processor

        vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
                  "window_size": 32, "fullatt_block_indexes": [1]}
    vision.update(patch_size=8, spatial_merge_size=2, temporal_patch_size=2)
    tok = qwen_tokenizer()
    ids = {name: tok.convert_tokens_to_ids(f"<|{name}|>") for name in ("image_pad", "video_pad", "vision_start", "vision_end")}
    text = {"vocab_size": len(tok), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 512,
            # head_dim 32: the three M-RoPE sections (time, height, width) must sum to 16
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
            "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id, "bos_token_id": None}
    config = Config(text_config=text, vision_config=vision, image_token_id=ids["image_pad"],
                    video_token_id=ids["video_pad"], vision_start_token_id=ids["vision_start"],
                    vision_end_token_id=ids["vision_end"])
    torch.manual_seed(seed)
    model = Model(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(str(folder))
    image_processor = Qwen2VLImageProcessorPil(size={"shortest_edge": 32 * 32, "longest_edge": 32 * 32}, patch_size=8,
                                               merge_size=2, temporal_patch_size=2)
    # Saved through the image-only variant (no torchvision here), then labelled as the real
    # processor class, as a hub repository is.
    processor = _image_only(Processor)(image_processor=image_processor, tokenizer=tok, chat_template=QWEN_TEMPLATE)
    processor.save_pretrained(str(folder))
    for name in ("processor_config.json", "tokenizer_config.json"):
        path = Path(folder) / name
        data = json.loads(path.read_text())
        data["processor_class"] = Processor.__name__
        path.write_text(json.dumps(data, indent=2))
    return folder
