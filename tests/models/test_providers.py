"""The model-provider interface: where a reference model lives and what identifies it, known
without loading or training anything."""

import pytest

from mmu_bench.api.provider import ModelProvider
from mmu_bench.core.errors import UnknownNameError
from mmu_bench.core.storage import json_digest
from mmu_bench.data.synth import load
from mmu_bench.models.tiny import TinyLlavaProvider
from mmu_bench.spec import registry


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MMU_BENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return load(forget_ratio=10, num_entities=6, train_views=1, heldout_views=1, text_variants=1,
                general_train_images=2, general_eval_images=2, general_eval_sums=2)


def files(root):
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_tiny_paths_and_hashes_without_training(home, bench):
    provider = TinyLlavaProvider(progress=False)
    assert isinstance(provider, ModelProvider)
    before = files(home)
    for role in ("vanilla", "oracle", "visual_oracle"):
        path = provider.path(role, bench)
        # The cache layout users' caches are keyed by: <home>/models/tiny-llava/<role>-<digest of the key>.
        assert path == home / "models" / "tiny-llava" / f"{role}-{json_digest(provider.key(role, bench))}"
        assert provider.recipe_hash(role, bench) == path.name.rsplit("-", 1)[-1]
    assert len({provider.path(role, bench) for role in ("vanilla", "oracle", "visual_oracle")}) == 3
    assert provider.key("visual_oracle", bench)["forget_entities"] == list(bench.forget_entities)
    assert provider.key("oracle", bench)["base"] == json_digest(provider.key("base", bench))
    assert files(home) == before  # nothing trained, nothing written
    with pytest.raises(UnknownNameError, match="unknown reference model 'orcale'"):
        provider.path("orcale", bench)


def test_hf_paths_and_hashes_without_loading(home, bench, tmp_path):
    provider = registry.make_model("hf:/no/such/model", progress=False, dtype="float32")
    assert isinstance(provider, ModelProvider)
    for role in ("vanilla", "oracle", "visual_oracle"):
        path = provider.path(role, bench)
        assert path == home / "models" / "hf__no_such_model" / f"{role}-{json_digest(provider.key(role, bench))}"
        assert provider.recipe_hash(role, bench) == path.name.rsplit("-", 1)[-1]
    given = registry.make_model("hf:/no/such/model", progress=False, vanilla=str(tmp_path))
    assert given.path("vanilla", bench) == tmp_path
    assert given.recipe_hash("vanilla", bench) == json_digest(str(tmp_path.resolve()))
    assert files(home) == []
    with pytest.raises(UnknownNameError, match="unknown reference model"):
        provider.recipe_hash("base", bench)


def test_tiny_llava_refuses_a_benchmark_whose_words_its_tokenizer_does_not_know():
    import datasets

    from mmu_bench.api import default_prompts
    from mmu_bench.models.tiny import build_processor, check_vocabulary, recipe_vocabulary

    processor = build_processor(recipe_vocabulary(default_prompts()))
    known = datasets.Dataset.from_list([{"question": "What is the job of Alma Abernoy?", "answer": "Alma Abernoy "
                                         "works as a baker.", "options": ["baker", "pilot"]}])
    check_vocabulary(known, processor, "mine")  # MMU-Synth's words: no error
    unknown = datasets.Dataset.from_list([{"question": "What is the job of Zyzzy Quux?", "answer": "A juggler.",
                                           "options": ["florist", "Wizard"]}])
    with pytest.raises(ValueError, match=r"benchmark 'mine' uses 4 others \(Quux, Wizard, Zyzzy, juggler\)"):
        check_vocabulary(unknown, processor, "mine")
