"""Embeddings and tokenizers from hub-layout directories the tests build themselves (no network)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_vocabulary, write_hub_model

from wldetect.config import ModelConfig, ModelSpec
from wldetect.errors import WLDetectError
from wldetect.sources.models import extract_embeddings, load_model

ROWS, HIDDEN = 60, 8


def _config(*specs: ModelSpec) -> ModelConfig:
    languages = {"eng_Latn": 0, "fra_Latn": 1}
    if len(specs) == 1:
        return ModelConfig(model=specs[0], languages=languages)
    return ModelConfig(models=list(specs), languages=languages)


def _spec(directory: Path, hidden: int = HIDDEN, layer: str = "model.embed_tokens", type_: str = "tiny") -> ModelSpec:
    return ModelSpec(name=str(directory), type=type_, hidden_dim=hidden, embedding_layer_name=layer)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_single_file_model_in_each_dtype_loads_exactly(tmp_path, dtype):
    reference = write_hub_model(tmp_path / "m", ROWS, HIDDEN, dtype=dtype)
    model = load_model(_config(_spec(tmp_path / "m")))
    assert model.embeddings.dtype == np.float32
    np.testing.assert_array_equal(model.embeddings, reference)  # bf16/fp16 -> fp32 is exact
    assert model.sources[0].source_dtype == {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}[dtype]


def test_sharded_model_reads_only_the_shard_named_by_the_index(tmp_path):
    # Shard 3 of the fixture is garbage: touching it would raise, so passing proves it was never opened.
    reference = write_hub_model(tmp_path / "m", ROWS, HIDDEN, dtype="bfloat16", sharded=True)
    model = load_model(_config(_spec(tmp_path / "m", layer="model.embed_tokens.weight")))
    np.testing.assert_array_equal(model.embeddings, reference)
    assert [p.name for p in model.sources[0].files_opened] == ["model-00002-of-00003.safetensors"]


def test_shard_pattern_is_used_when_there_is_no_index(tmp_path):
    reference = write_hub_model(tmp_path / "m", ROWS, HIDDEN, sharded=True)
    (tmp_path / "m" / "model.safetensors.index.json").unlink()
    spec = _spec(tmp_path / "m").model_copy(update={"shard_pattern": "model-0000[12]-of-*.safetensors"})
    matrix, source = extract_embeddings(spec)
    np.testing.assert_array_equal(matrix, reference)
    assert [p.name for p in source.files_opened][-1] == "model-00002-of-00003.safetensors"


def test_the_float32_cache_is_memory_mapped_and_reused(tmp_path, isolated_cache):
    write_hub_model(tmp_path / "m", ROWS, HIDDEN, dtype="bfloat16")
    first, source = extract_embeddings(_spec(tmp_path / "m"))
    assert not source.from_cache and source.cache_path.parent == isolated_cache / "embeddings"
    second, source_again = extract_embeddings(_spec(tmp_path / "m"))
    assert source_again.from_cache and isinstance(second, np.memmap)
    np.testing.assert_array_equal(first, second)
    # A changed model file is a different key: the stale cache is not served.
    reference = write_hub_model(tmp_path / "m", ROWS, HIDDEN, dtype="bfloat16", seed=7)
    third, source_third = extract_embeddings(_spec(tmp_path / "m"))
    assert not source_third.from_cache
    np.testing.assert_array_equal(third, reference)


def test_vocab_size_is_the_embedding_rows_not_the_tokenizer_size(tmp_path):
    write_hub_model(tmp_path / "m", ROWS, HIDDEN)
    model = load_model(_config(_spec(tmp_path / "m")))
    assert model.vocab_size == ROWS
    assert model.tokenizer_vocab_size == len(tiny_vocabulary()) < ROWS
    assert f"Using vocab_size={ROWS} from embeddings (tokenizer reports {len(tiny_vocabulary())})" in model.summary()


def test_stored_padding_and_truncation_are_switched_off(tmp_path):
    write_hub_model(tmp_path / "m", ROWS, HIDDEN)  # its tokenizer.json pads and truncates to 16
    model = load_model(_config(_spec(tmp_path / "m")))
    long_text = " ".join(["cat"] * 40)
    assert len(model.tokenizer.encode("the cat", add_special_tokens=False).ids) == 2
    assert len(model.tokenizer.encode(long_text, add_special_tokens=False).ids) == 40


def test_concatenation_joins_widths_and_caches(tmp_path):
    a = write_hub_model(tmp_path / "a", ROWS, 8, seed=1)
    b = write_hub_model(tmp_path / "b", ROWS, 4, dtype="float16", sharded=True, seed=2)
    config = _config(_spec(tmp_path / "a", 8), _spec(tmp_path / "b", 4))
    model = load_model(config)
    assert model.embeddings.shape == (ROWS, 12) and config.hidden_dim == 12
    np.testing.assert_array_equal(model.embeddings, np.concatenate([a, b], axis=1))
    assert isinstance(load_model(config).embeddings, np.memmap)


def test_concatenation_rules_each_have_their_message(tmp_path):
    write_hub_model(tmp_path / "a", ROWS, 8)
    write_hub_model(tmp_path / "rows", ROWS + 1, 8)
    write_hub_model(tmp_path / "tok", ROWS, 8, vocabulary=tiny_vocabulary()[:-1] + ["zebra"])
    with pytest.raises(WLDetectError, match="must share 'type', got bert, tiny"):
        load_model(_config(_spec(tmp_path / "a"), _spec(tmp_path / "rows", type_="bert")))
    with pytest.raises(WLDetectError, match=r"same number of embedding rows \(.*: 60, .*: 61\)"):
        load_model(_config(_spec(tmp_path / "a"), _spec(tmp_path / "rows")))
    with pytest.raises(WLDetectError, match=r"different tokenizers \(47 vs 47 tokens, 2 token/id pairs differ\)"):
        load_model(_config(_spec(tmp_path / "a"), _spec(tmp_path / "tok")))


def test_model_validation_errors(tmp_path):
    write_hub_model(tmp_path / "m", ROWS, HIDDEN)
    with pytest.raises(WLDetectError, match="hidden_dim is 16 in the config but the embeddings are 8 wide"):
        load_model(_config(_spec(tmp_path / "m", hidden=16)))
    with pytest.raises(WLDetectError, match="'model.embed' not found in model.safetensors; tensors with 'embed'"):
        load_model(_config(_spec(tmp_path / "m", layer="model.embed")))
    with pytest.raises(WLDetectError, match="not a local directory and not a hub repo id"):
        load_model(_config(_spec(tmp_path / "absent")))
    (tmp_path / "m" / "tokenizer.json").unlink()
    with pytest.raises(WLDetectError, match="tokenizer.json not found"):
        load_model(_config(_spec(tmp_path / "m")))
    write_hub_model(tmp_path / "small", 10, HIDDEN)  # fewer rows than the tokenizer has tokens
    with pytest.raises(WLDetectError, match="tokenizer has 47 tokens but the embeddings only 10 rows"):
        load_model(_config(_spec(tmp_path / "small")))


def _hub_cache_snapshot(cache: Path, repo_id: str) -> Path:
    """The Hugging Face cache layout hf_hub_download resolves from: refs/main -> snapshots/<commit>/."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    return snapshot


def test_hub_repo_id_goes_through_hf_hub_download_and_fetches_one_shard(tmp_path, monkeypatch):
    """The real huggingface_hub path, served offline from a hub cache the test writes: only the index and
    the shard holding the embeddings are present, so any other download would fail."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    reference = write_hub_model(tmp_path / "src", ROWS, HIDDEN, dtype="bfloat16", sharded=True)
    snapshot = _hub_cache_snapshot(tmp_path / "hub", "test-org/tiny-lm")
    for name in ["model.safetensors.index.json", "model-00002-of-00003.safetensors", "tokenizer.json"]:
        shutil.copy(tmp_path / "src" / name, snapshot / name)
    spec = ModelSpec(name="test-org/tiny-lm", type="tiny", hidden_dim=HIDDEN, embedding_layer_name="model.embed_tokens")
    model = load_model(_config(spec))
    np.testing.assert_array_equal(model.embeddings, reference)
    assert model.sources[0].files_opened == [snapshot / "model-00002-of-00003.safetensors"]
    # The cache key of a hub repo needs no network: with the snapshot gone, the cached matrix still loads.
    shutil.rmtree(tmp_path / "hub")
    again, source = extract_embeddings(spec)
    assert source.from_cache
    np.testing.assert_array_equal(again, reference)


def test_a_model_shipped_in_a_python_package_is_found_through_the_local_directory_path():
    from wldetect.config import load_model_config
    from wldetect.sources.hub import local_model_dir

    minilm = load_model_config(Path(__file__).resolve().parents[1] / "params" / "models" / "minilm-l6-demo.yaml")
    directory = local_model_dir(minilm.model.name)
    assert (directory / "model.safetensors").is_file() and (directory / "tokenizer.json").is_file()
    with pytest.raises(WLDetectError, match="Python package 'no_such_pkg' is not installed"):
        local_model_dir("python-package:no_such_pkg/model")


def test_a_moved_hub_revision_is_re_extracted(tmp_path, monkeypatch):
    """Online, the cached matrix is checked against the commit the revision points to now (the network call
    itself is replaced: no test touches the hub)."""
    from huggingface_hub import constants

    from wldetect.sources import hub

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    write_hub_model(tmp_path / "src", ROWS, HIDDEN, sharded=True)
    snapshot = _hub_cache_snapshot(tmp_path / "hub", "test-org/tiny-lm")
    for name in ["model.safetensors.index.json", "model-00002-of-00003.safetensors", "tokenizer.json"]:
        shutil.copy(tmp_path / "src" / name, snapshot / name)
    spec = ModelSpec(name="test-org/tiny-lm", type="tiny", hidden_dim=HIDDEN, embedding_layer_name="model.embed_tokens")
    _, first = extract_embeddings(spec)
    assert json.loads(first.cache_path.with_suffix(".json").read_text())["commit"] == snapshot.name
    monkeypatch.setattr(hub, "_remote_commit", lambda spec: snapshot.name)
    assert extract_embeddings(spec)[1].from_cache  # same commit: reused
    monkeypatch.setattr(hub, "_remote_commit", lambda spec: "f" * 40)
    assert not extract_embeddings(spec)[1].from_cache  # the revision moved: extracted again
