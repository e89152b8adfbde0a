"""What the real-benchmark adapters (mllmu.py, clear.py) share: option checks, reading a
config from the hub or a local folder, naming a bad field, and writing canonical rows once to a
memory-mapped cache."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import datasets
import PIL.Image
from datasets.arrow_writer import ArrowWriter

from mmu_bench.api import is_local
from mmu_bench.api.schema import FEATURES, SchemaError, validate_row

# Real benchmarks' rows also carry, where the source has them, a paraphrased answer and
# perturbed answers (CLEAR's captions): the truth ratio scores them (measures/information.py).
ROW_FEATURES = datasets.Features({**FEATURES, "split": datasets.Value("string"),
                                  "paraphrased_answer": datasets.Value("string"),
                                  "perturbed_answers": datasets.Sequence(datasets.Value("string"))})

def check_ratio(ratio, valid: tuple, bench: str) -> int:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio not in valid:
        raise ValueError(f"{bench}: forget ratio {ratio!r} is not one of its splits {valid}")
    return int(ratio)


def check_options(options: dict, bench: str, valid: tuple) -> None:
    if options:
        raise ValueError(f"{bench}: unknown option(s) {', '.join(sorted(options))}; valid: {', '.join(valid)}")


def source_id(source: str) -> str:
    return str(Path(source).expanduser().resolve()) if is_local(source) else source


def read_config(source: str, config: str, bench: str, revision=None, cache_dir=None) -> datasets.Dataset:
    """One config of the hub dataset or of a local folder (layout in the module docstring),
    with images left as the source's bytes."""
    if is_local(source):
        if not Path(source).expanduser().is_dir():
            raise ValueError(f"{bench}: source folder {source} does not exist")
        folder = Path(source).expanduser() / config
        if not folder.is_dir():
            raise ValueError(f"{bench}: config {config!r} not found: no folder {folder}")
        if (folder / "dataset_dict.json").exists() or (folder / "state.json").exists():
            data = datasets.load_from_disk(str(folder))
        else:
            files = sorted(str(p) for p in folder.rglob("*.parquet"))
            if not files:
                raise ValueError(f"{bench}: {folder} holds neither parquet files nor a save_to_disk dataset")
            data = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=cache_dir)
    else:
        try:
            data = datasets.load_dataset(source, config, revision=revision, cache_dir=cache_dir)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{bench}: cannot load config {config!r} of {source!r} ({type(exc).__name__}: {exc}). "
                             "Offline? Pass source=<local folder> (see the adapter's docstring).") from exc
    if isinstance(data, datasets.DatasetDict):
        if "train" not in data and len(data) != 1:
            raise ValueError(f"{bench}: config {config!r} has splits {sorted(data)}; expected 'train' or a single split")
        data = data["train"] if "train" in data else next(iter(data.values()))
    return _undecoded(data)


def _undecoded(data: datasets.Dataset) -> datasets.Dataset:
    for column, feature in data.features.items():
        if isinstance(feature, datasets.Image):
            data = data.cast_column(column, datasets.Image(decode=False))
        elif isinstance(getattr(feature, "feature", None), datasets.Image):
            data = data.cast_column(column, type(feature)(datasets.Image(decode=False)))
    return data


def field_name(path: tuple) -> str:
    return repr(path[0]) + "".join(f"[{key!r}]" for key in path[1:])


def get(obj, where: str, *path, kind=str):
    """``obj[path[0]][path[1]]...``, checked: a SchemaError names ``where`` and the field."""
    value = obj
    for depth, key in enumerate(path):
        holder = dict if isinstance(key, str) else list
        if not isinstance(value, holder) or (key not in value if holder is dict else key >= len(value)) \
                or value[key] is None:
            raise SchemaError(f"{where}: field {field_name(path[: depth + 1])} is missing")
        value = value[key]
    if kind is str and (not isinstance(value, str) or not value.strip()):
        raise SchemaError(f"{where}: field {field_name(path)} must be a non-empty string, got {value!r:.80}")
    if kind is not str and not isinstance(value, kind):
        raise SchemaError(f"{where}: field {field_name(path)} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def get_image(obj, where: str, *path) -> dict:
    """An image field as {bytes, path}; the header is read to reject what is not an image."""
    value = get(obj, where, *path, kind=object)
    if isinstance(value, PIL.Image.Image):
        return value
    if isinstance(value, dict) and value.get("bytes"):
        try:
            PIL.Image.open(io.BytesIO(value["bytes"]))
        except (OSError, ValueError) as exc:
            raise SchemaError(f"{where}: field {field_name(path)} is not a readable image ({exc})") from exc
        return {"bytes": value["bytes"], "path": None}
    if isinstance(value, dict) and value.get("path"):
        return {"bytes": None, "path": value["path"]}
    raise SchemaError(f"{where}: field {field_name(path)} holds no image (no bytes, no path)")


def canonical(item_id, entity_id, split, modality, fmt, view, question, answer, image=None, options=(), fact="",
              paraphrased_answer="", perturbed_answers=()):
    return {"paraphrased_answer": paraphrased_answer, "perturbed_answers": list(perturbed_answers),
            "item_id": item_id, "entity_id": entity_id, "split": split, "modality": modality, "format": fmt,
            # A text row has no image view; one of a held-out question set keeps "heldout".
            "view": view if modality == "image" or view == "heldout" else "", "fact": fact,
            "image": image if modality == "image" else None, "question": question, "options": list(options), "answer": answer}


def cache_key(bench: str, source: str, revision, configs: dict, modules: tuple, **choices) -> str:
    """Names the cache folder: source, revision, each config's dataset fingerprint, the options
    and the adapter's code (a code change rebuilds)."""
    blob = json.dumps({"bench": bench, "source": source_id(source), "revision": revision, "choices": choices,
                       "configs": {name: data._fingerprint for name, data in configs.items()},
                       "code": [hashlib.sha256(Path(m).read_bytes()).hexdigest() for m in modules]},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_cached(name: str, key: str, parts: dict) -> tuple[dict, str, Path]:
    """Write each part (a callable yielding ``(where, row)``) to an Arrow file once, validating
    every row and the uniqueness of item ids. Returns the memory-mapped datasets, the content
    fingerprint and the folder.

    The fingerprint digests every row but its ``split``, in no particular order: the same data
    gives the same fingerprint whatever the forget ratio, so a vanilla model is shared by all
    ratios, and any change to what is trained or scored changes it."""
    from mmu_bench.api import home, seal, staging_dir, usable

    path = home() / "data" / name / key
    if not usable(path, f"converted {name} data"):
        try:
            with staging_dir(path) as tmp:
                digests = {part: _write(tmp / f"{part}.arrow", rows()) for part, rows in parts.items()}
                (tmp / "fingerprint.json").write_text(json.dumps(digests, sort_keys=True))
                seal(tmp)
        except FileExistsError:
            pass  # written meanwhile by another process: same key, same rows
    digests = json.loads((path / "fingerprint.json").read_text())
    fingerprint = hashlib.sha256(json.dumps({"benchmark": name, **digests}, sort_keys=True).encode()).hexdigest()[:16]
    return {part: datasets.Dataset.from_file(str(path / f"{part}.arrow")) for part in parts}, fingerprint, path


def _write(file: Path, rows) -> str:
    seen: dict[str, str] = {}
    digests = []
    # Small batches: rows carry full-size images.
    with ArrowWriter(features=ROW_FEATURES, path=str(file), writer_batch_size=64) as writer:
        for where, row in rows:
            validate_row(row, where)
            if row["item_id"] in seen:
                raise SchemaError(f"{where}: field 'item_id' {row['item_id']!r} repeats the id of {seen[row['item_id']]}")
            seen[row["item_id"]] = where
            digests.append(_digest(row))
            writer.write(ROW_FEATURES.encode_example(row))
        writer.finalize()
    return hashlib.sha256(b"".join(sorted(digests))).hexdigest()


def _digest(row: dict) -> bytes:
    text = {k: v for k, v in row.items() if k not in ("split", "image")}
    image = row["image"]
    if isinstance(image, PIL.Image.Image):
        image = image.tobytes()
    elif isinstance(image, dict):
        image = image["bytes"] or image["path"].encode()
    return hashlib.sha256(json.dumps(text, sort_keys=True).encode() + (image or b"")).digest()
