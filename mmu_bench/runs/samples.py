"""A run's scored items: ``samples.jsonl`` (one record per item, with the unlearned and the
vanilla model's outputs and every measure's per-item value) and ``thumbnails.json`` (the items'
images, small, each stored once), what the run's report shows."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

SAMPLES_FILE = "samples.jsonl"
THUMB_PX = 64
THUMBNAILS_FILE = "thumbnails.json"


def with_vanilla(records: list[dict], vanilla) -> list[dict]:
    """``records`` with the vanilla model's output on the same item (``vanilla_output``)."""
    if vanilla is None:
        return records
    outputs = {(r["task"], r["item_id"]): r.get("output") for r in vanilla.records}
    return [{**r, "vanilla_output": outputs.get((r["task"], r["item_id"]))} for r in records]


def thumbnails(dataset, records: list[dict]) -> dict:
    """Small PNG data URIs of the images of the scored items: ``{"items": {item_id: key},
    "images": {key: uri}}`` (an image shared by several items is stored, and made, once)."""
    import datasets
    import PIL.Image

    wanted = {r["item_id"] for r in records if r.get("modality") == "image"}
    items, images = {}, {}
    if not wanted or "image" not in dataset.column_names:
        return {"items": items, "images": images}
    ids = dataset.select_columns(["item_id"]).to_dict()["item_id"]
    rows = [i for i, item in enumerate(ids) if item in wanted]
    chosen = dataset.select(rows)
    stored = chosen.cast_column("image", datasets.Image(decode=False))["image"]  # the bytes, not yet decoded
    made: dict[bytes, str] = {}  # an image's bytes -> its thumbnail's key
    for n, (item_id, source) in enumerate(zip((ids[i] for i in rows), stored)):
        if source is None:
            continue
        raw = source.get("bytes")
        if raw is not None and raw in made:
            items[item_id] = made[raw]
            continue
        image = PIL.Image.open(io.BytesIO(raw)) if raw is not None else chosen[n]["image"]
        image = image.convert("RGB")
        image.thumbnail((THUMB_PX, THUMB_PX))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        data = buffer.getvalue()
        key = hashlib.sha1(data).hexdigest()[:16]
        images[key] = "data:image/png;base64," + base64.b64encode(data).decode()
        items[item_id] = key
        if raw is not None:
            made[raw] = key
    return {"items": items, "images": images}


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def to_jsonl(records: list[dict]) -> str:
    """The records as ``samples.jsonl``."""
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def thumbnails_json(thumbs: dict) -> str:
    """``thumbnails`` as ``thumbnails.json``."""
    return json.dumps(thumbs, sort_keys=True)


def read_thumbnails(run_dir: Path) -> dict:
    path = Path(run_dir) / THUMBNAILS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
