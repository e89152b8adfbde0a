"""Canonical rows -> model inputs, through the model's own processor and chat template.

Every row is encoded on its own (prompt through the processor, answer tokens appended), then
``collate`` pads token-aligned keys and concatenates image keys. This works for any processor
(LLaVA, Qwen2-VL, ...) without knowing its keys: a key whose per-row tensor is as long as
``input_ids`` is token-aligned; every other key (``pixel_values``, ``image_grid_thw``, ...)
belongs to the row's images and is concatenated along its first dimension.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

IGNORE = -100
_PAD_VALUES = {"attention_mask": 0, "labels": IGNORE}


def chat_prompt(processor, user: str, has_image: bool) -> str:
    content = ([{"type": "image"}] if has_image else []) + [{"type": "text", "text": user}]
    return processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )


def encode(processor, user: str, image=None, answer: str | None = None) -> dict[str, torch.Tensor]:
    """One row. With ``answer``, the answer tokens and EOS follow the prompt and ``labels``
    cover them alone (the prompt and the image are context, not targets)."""
    prompt = chat_prompt(processor, user, image is not None)
    enc = processor(text=[prompt], images=[image] if image is not None else None, return_tensors="pt")
    length = enc["input_ids"].shape[1]
    row = {}
    for key, value in enc.items():
        value = torch.as_tensor(value)
        row[key] = value[0] if value.dim() >= 2 and value.shape[0] == 1 and value.shape[1] == length else value
    return with_answer(processor, row, answer)


def encode_many(processor, items: list[tuple[str, object, str | None]], chunk: int = 256) -> list[dict]:
    """``encode`` for many (user, image, answer) items, calling the processor once per chunk.
    Used where every image-related output has one entry per image (as LLaVA's pixel_values);
    otherwise (Qwen2-VL's flattened patches, say) it falls back to one call per row. Either way
    the result equals ``encode`` row by row."""
    out: list[dict] = []
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        prompts = [chat_prompt(processor, user, image is not None) for user, image, _ in part]
        images = [image for _, image, _ in part if image is not None]
        enc = processor(text=prompts, images=images or None, padding=True, padding_side="right", return_tensors="pt")
        width = enc["input_ids"].shape[1]
        per_token = {k for k, v in enc.items() if v.dim() == 2 and v.shape == (len(part), width)}
        per_image = {k for k in enc if k not in per_token}
        if any(torch.as_tensor(enc[k]).shape[0] != len(images) for k in per_image):
            out.extend(encode(processor, user, image, answer) for user, image, answer in part)
            continue
        lengths = enc["attention_mask"].sum(-1).tolist()
        k = 0
        for i, (_, image, answer) in enumerate(part):
            row = {key: enc[key][i, : lengths[i]].clone() for key in per_token}
            if image is not None:
                row.update({key: enc[key][k : k + 1].clone() for key in per_image})
                k += 1
            out.append(with_answer(processor, row, answer))
    return out


def with_answer(processor, row: dict[str, torch.Tensor], answer: str | None) -> dict[str, torch.Tensor]:
    """``row`` (an encoded prompt) followed by ``answer``'s tokens and EOS, with labels on them.
    Sets keys of ``row`` itself: pass a copy to keep the prompt."""
    if answer is None:
        return row
    length = row["input_ids"].shape[0]
    tok = processor.tokenizer
    ids = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    extra = torch.tensor(ids, dtype=row["input_ids"].dtype)
    for key in token_keys(row):
        fill = extra if key == "input_ids" else torch.full_like(extra, 1 if key == "attention_mask" else 0)
        row[key] = torch.cat([row[key], fill.to(row[key].dtype)])
    row["labels"] = torch.cat([torch.full((length,), IGNORE, dtype=torch.long), extra.long()])
    return row


def token_keys(row: dict[str, torch.Tensor]) -> list[str]:
    length = row["input_ids"].shape[0]
    return [k for k, v in row.items() if v.dim() == 1 and v.shape[0] == length]


def collate(rows: Sequence[dict[str, torch.Tensor]], pad_token_id: int, padding_side: str = "right") -> dict:
    """Pad token-aligned keys to the longest row; concatenate the image keys of rows with images."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    width = max(r["input_ids"].shape[0] for r in rows)
    batch: dict[str, torch.Tensor] = {}
    seq_keys = token_keys(rows[0])
    for key in seq_keys:
        pad = pad_token_id if key == "input_ids" else _PAD_VALUES.get(key, 0)
        out = torch.full((len(rows), width), pad, dtype=rows[0][key].dtype)
        for i, r in enumerate(rows):
            n = r[key].shape[0]
            if padding_side == "right":
                out[i, :n] = r[key]
            else:
                out[i, width - n :] = r[key]
        batch[key] = out
    other = {k for r in rows for k in r if k not in seq_keys}
    for key in sorted(other):
        parts = [r[key] for r in rows if key in r]
        batch[key] = torch.cat(parts) if parts[0].dim() > 0 else torch.stack(parts)
    return batch


def to_device(batch: dict, model) -> dict:
    """Move a batch to the model's device; floating inputs (pixels) take the model's dtype."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module  # the wrapper has neither a device nor a dtype
    device, dtype = model.device, model.dtype
    return {k: v.to(device, dtype=dtype if v.is_floating_point() else None) for k, v in batch.items()}
