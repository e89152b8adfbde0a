import pytest
import torch

from mmu_bench.api import default_prompts
from mmu_bench.api.encoding import IGNORE, collate, encode
from mmu_bench.api.losses import nll, sequence_nll
from mmu_bench.data.synth import SynthConfig, generate
from mmu_bench.models.tiny import (
    LlavaForConditionalGeneration,
    LlavaProcessor,
    build_model,
    build_processor,
    recipe_vocabulary,
)


@pytest.fixture(scope="module")
def processor():
    return build_processor(recipe_vocabulary(default_prompts()))


@pytest.fixture(scope="module")
def image():
    data = generate(SynthConfig(num_entities=4, train_views=1, heldout_views=1, text_variants=1,
                                general_train_images=1, general_eval_images=1, general_eval_sums=1))
    return data["eval"][0]["image"]


def test_labels_cover_the_answer_and_eos_only(processor, image):
    row = encode(processor, "Who is the person in this image?", image, "This is Alma Novak.")
    answer_ids = processor.tokenizer("This is Alma Novak.", add_special_tokens=False)["input_ids"]
    labelled = row["labels"][row["labels"] != IGNORE].tolist()
    assert labelled == answer_ids + [processor.tokenizer.eos_token_id]
    assert row["input_ids"][-len(labelled):].tolist() == labelled
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert (row["input_ids"] == image_id).sum().item() == 16  # 32x32 / patch 8
    assert row["pixel_values"].shape == (1, 3, 32, 32)


def test_collate_pads_token_keys_and_stacks_images(processor, image):
    rows = [encode(processor, "Who is the person in this image?", image, "This is Alma Novak."),
            encode(processor, "What is 2 plus 3?", None, "5")]
    right = collate(rows, processor.tokenizer.pad_token_id, "right")
    left = collate(rows, processor.tokenizer.pad_token_id, "left")
    n_text = rows[1]["input_ids"].shape[0]
    width = rows[0]["input_ids"].shape[0]
    assert right["input_ids"].shape == (2, width)
    assert right["pixel_values"].shape == (1, 3, 32, 32)  # only the image row has pixels
    assert right["attention_mask"][1].tolist() == [1] * n_text + [0] * (width - n_text)
    assert left["attention_mask"][1].tolist() == [0] * (width - n_text) + [1] * n_text
    assert (right["labels"][1, n_text:] == IGNORE).all()
    with pytest.raises(ValueError, match="padding_side"):
        collate(rows, 0, "middle")


def test_padding_does_not_change_the_loss(processor, image):
    model = build_model(processor)
    rows = [encode(processor, "Who is the person in this image?", image, "This is Alma Novak."),
            encode(processor, "What is 2 plus 3?", None, "5")]
    batched = sequence_nll(model, collate(rows, processor.tokenizer.pad_token_id))
    alone = torch.stack([sequence_nll(model, collate([r], processor.tokenizer.pad_token_id))[0] for r in rows])
    assert torch.allclose(batched, alone, atol=1e-5)
    # The batch loss is the mean over all labelled tokens.
    batch = collate(rows, processor.tokenizer.pad_token_id)
    counts = (batch["labels"][:, 1:] != IGNORE).sum(-1).float()
    assert torch.allclose(nll(model, batch), (batched * counts).sum() / counts.sum(), atol=1e-5)


def test_tiny_model_round_trips_save_and_load(processor, image, tmp_path):
    model = build_model(processor, seed=3)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    again_model = LlavaForConditionalGeneration.from_pretrained(tmp_path)
    again_processor = LlavaProcessor.from_pretrained(tmp_path)
    row = encode(processor, "Who is the person in this image?", image, "This is Alma Novak.")
    row2 = encode(again_processor, "Who is the person in this image?", image, "This is Alma Novak.")
    for key in row:
        assert torch.equal(row[key], row2[key]), key
    batch = collate([row], processor.tokenizer.pad_token_id)
    with torch.no_grad():
        assert torch.equal(model(**{k: v for k, v in batch.items() if k != "labels"}).logits,
                           again_model(**{k: v for k, v in batch.items() if k != "labels"}).logits)
    assert again_processor.tokenizer.decode(row["input_ids"][-4:]) == processor.tokenizer.decode(row["input_ids"][-4:])


def test_an_answer_appended_to_an_encoded_prompt_is_the_encoded_pair(processor, image):
    """Evaluation encodes a multiple-choice item's prompt once and appends each option to a copy:
    that must be exactly what encoding (prompt, option) gives."""
    from mmu_bench.api.encoding import encode_many, with_answer

    users = ["Who is the person in this image?", "What does this person do for a living?"]
    options = ["This is Alma Novak.", "a baker", "pilot"]
    prompts = encode_many(processor, [(u, image, None) for u in users] + [(users[0], None, None)])
    pairs = encode_many(processor, [(u, image, o) for u in users for o in options]
                        + [(users[0], None, o) for o in options])
    appended = [with_answer(processor, dict(p), o) for p in prompts for o in options]
    for got, want in zip(appended, pairs, strict=True):
        assert got.keys() == want.keys()
        for key in want:
            assert torch.equal(got[key], want[key]), key
    assert torch.equal(prompts[0]["input_ids"], encode(processor, users[0], image)["input_ids"])  # the copy kept it
