"""Lookup tables: the formula, FP8 quantisation that never stores inf/NaN, the file format, post-hoc masking."""

import json

import ml_dtypes
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from wldetect import lookup
from wldetect.errors import WLDetectError


def random_model(V=50, H=8, C=5, seed=0):
    rng = np.random.default_rng(seed)
    embeddings = rng.standard_normal((V, H)).astype(np.float32)
    weights = rng.uniform(-1, 2, (V, 1)).astype(np.float32)
    projection = (rng.standard_normal((C, H)) * 3).astype(np.float32)
    bias = rng.standard_normal(C).astype(np.float32)
    return embeddings, weights, projection, bias


def test_lookup_table_equals_the_formula_across_row_blocks(monkeypatch):
    monkeypatch.setattr(lookup, "_ROWS_PER_BLOCK", 7)  # several blocks and a ragged last one
    embeddings, weights, projection, bias = random_model()
    table = lookup.compute_lookup_table(embeddings, weights, projection, bias)
    expected = (embeddings.astype(np.float64) * weights) @ projection.T.astype(np.float64) + bias
    assert table.dtype == np.float32 and table.shape == (50, 5)
    np.testing.assert_allclose(table, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fmt, largest", [("e3m4", 15.5), ("e4m3fn", 448.0)])
def test_out_of_range_tables_are_scaled_into_range_with_no_inf_or_nan(fmt, largest, tmp_path):
    rng = np.random.default_rng(1)
    table = (rng.standard_normal((40, 6)) * largest).astype(np.float32)
    table[3, 2] = 3.7 * largest  # far beyond the format's range
    dtype = ml_dtypes.float8_e3m4 if fmt == "e3m4" else ml_dtypes.float8_e4m3fn
    plain = table.astype(dtype).astype(np.float32)
    assert not np.isfinite(plain).all()  # what a plain cast would have stored

    quantized = lookup.quantize(table, fmt)
    assert quantized.scale == 4.0  # the smallest power of two that fits 3.7 x the range
    assert quantized.stored.dtype == np.uint8 and quantized.stored.shape == table.shape
    values = quantized.dequantized()
    assert np.isfinite(values).all()
    assert np.abs(values - table).max() <= np.abs(table).max() * 2.0**-3  # a few mantissa bits of error

    path = lookup.save_lookup_table(quantized, tmp_path / lookup.FILE_NAMES[fmt], languages=list("abcdef"))
    loaded = lookup.load_lookup_table(path)
    assert loaded.format == fmt and loaded.scale == 4.0 and loaded.languages == list("abcdef")
    np.testing.assert_array_equal(loaded.values, values)  # the file round-trips exactly
    assert np.isfinite(loaded.values).all()
    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata()
        assert metadata["format"] == f"float8_{fmt}"
        assert float(metadata["scale"]) == 4.0 and json.loads(metadata["shape"]) == [40, 6]
        assert set(handle.keys()) == {"lookup_table", "dtype", "shape", "scale"}  # the seed's tensors too
        np.testing.assert_array_equal(handle.get_tensor("lookup_table"), quantized.stored)


def test_small_tables_are_spread_over_the_range_and_zero_tables_stay_zero():
    table = np.array([[0.01, -0.02], [0.03, 0.0]], dtype=np.float32)
    quantized = lookup.quantize(table, "e3m4")
    assert quantized.scale < 1 and np.abs(table / quantized.scale).max() <= 15.5
    np.testing.assert_allclose(quantized.dequantized(), table, rtol=2.0**-5)
    assert lookup.quantize(np.zeros((3, 2), np.float32), "e3m4").scale == 1.0


def test_a_diverged_table_is_refused():
    with pytest.raises(WLDetectError, match="inf or NaN"):
        lookup.quantize(np.array([[1.0, np.inf]], dtype=np.float32), "e3m4")


def test_quantization_error_metrics():
    reference = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    approx = reference + np.array([[0.5, -0.5], [0.0, 1.0]], dtype=np.float32)
    errors = lookup.quantization_error(reference, approx)
    assert errors["mean_abs_error"] == pytest.approx(0.5)
    assert errors["max_abs_error"] == pytest.approx(1.0)
    assert errors["rmse"] == pytest.approx(np.sqrt((0.25 + 0.25 + 1.0) / 4))


def test_fp32_file_and_a_seed_format_file_load(tmp_path):
    table = np.arange(12, dtype=np.float32).reshape(4, 3) - 5
    path = lookup.save_lookup_table(lookup.quantize(table, "fp32"), tmp_path / "t.safetensors")
    np.testing.assert_array_equal(lookup.load_lookup_table(path).values, table)
    # the seed's layout: raw bytes plus dtype/shape/scale tensors and no header metadata
    seed_file = tmp_path / "seed.safetensors"
    raw = (table / 2).astype(ml_dtypes.float8_e3m4).view(np.uint8)
    save_file(
        {
            "lookup_table": raw,
            "dtype": np.array([26], np.uint8),
            "shape": np.array(table.shape, np.int64),
            "scale": np.array([2.0], np.float32),
        },
        str(seed_file),
    )
    loaded = lookup.load_lookup_table(seed_file)
    assert loaded.format == "e3m4" and loaded.scale == 2.0
    np.testing.assert_allclose(loaded.values, table, rtol=2.0**-4)


def test_zeroing_token_rows_is_the_formula_with_zero_weights():
    embeddings, weights, projection, bias = random_model()
    table = lookup.compute_lookup_table(embeddings, weights, projection, bias)
    mask = np.ones(50, dtype=bool)
    mask[[2, 9, 40]] = False
    filtered = lookup.zero_token_rows(table, bias, mask)
    expected = lookup.compute_lookup_table(embeddings, np.where(mask[:, None], weights, 0), projection, bias)
    np.testing.assert_allclose(filtered, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(filtered[2], bias)
    with pytest.raises(WLDetectError, match="Token mask shape doesn't match vocab_size"):
        lookup.zero_token_rows(table, bias, mask[:-1])


# ------------------------------------------------------------------- scale and damage, never defaulted


def _seed_file(path, table, scale=2.0, with_scale=True):
    """A table in the seed's layout (no header metadata): raw E3M4 bytes, dtype/shape tensors, and `scale`."""
    tensors = {
        "lookup_table": (np.asarray(table, np.float32) / (scale or 1.0)).astype(ml_dtypes.float8_e3m4).view(np.uint8),
        "dtype": np.array([26], np.uint8),
        "shape": np.array(np.shape(table), np.int64),
    }
    if with_scale:
        tensors["scale"] = np.array([scale], np.float32)
    save_file(tensors, str(path))
    return path


def _one_line(error) -> str:
    assert "\n" not in str(error.value)
    return str(error.value)


@pytest.mark.parametrize("scale", [0.0, -2.0, float("nan"), float("inf")])
def test_a_seed_format_table_with_a_scale_of_zero_negative_or_non_finite_is_refused(tmp_path, scale):
    """`seed_scale or 1.0` read a scale of 0 as 1: a damaged table detected quietly wrong languages."""
    table = np.arange(12, dtype=np.float32).reshape(4, 3) - 5
    path = _seed_file(tmp_path / "seed.safetensors", table, scale=scale)
    with pytest.raises(WLDetectError) as error:
        lookup.load_lookup_table(path)
    assert _one_line(error) == f"{path}: scale {np.float32(scale)}: expected a finite number > 0 (the stored values are table / scale)"


def test_a_seed_format_table_without_a_scale_is_refused(tmp_path):
    path = _seed_file(tmp_path / "seed.safetensors", np.eye(3, dtype=np.float32), with_scale=False)
    with pytest.raises(WLDetectError) as error:
        lookup.load_lookup_table(path)
    assert _one_line(error) == f"{path}: seed-format table without a 'scale' tensor (or 'scale' metadata)"


@pytest.mark.parametrize("scale", ["0", "0.0", "-1", "nan", "inf"])
def test_a_table_whose_scale_metadata_is_zero_negative_or_non_finite_is_refused(tmp_path, scale):
    quantized = lookup.quantize(np.eye(3, dtype=np.float32) * 3, "e3m4")
    path = lookup.save_lookup_table(quantized, tmp_path / "t.safetensors", extra_metadata={"scale": scale})
    with pytest.raises(WLDetectError, match="expected a finite number > 0"):
        lookup.load_lookup_table(path)


def test_an_fp8_table_without_scale_metadata_is_refused_an_fp32_one_is_its_values(tmp_path):
    table = np.eye(3, dtype=np.float32) * 3
    for fmt in ("e3m4", "fp32"):
        quantized = lookup.quantize(table, fmt)
        path = tmp_path / f"{fmt}.safetensors"
        save_file({"lookup_table": quantized.stored}, str(path), metadata={"format": lookup._FORMAT_NAMES[fmt], "shape": "[3, 3]"})
        if fmt == "fp32":
            np.testing.assert_array_equal(lookup.load_lookup_table(path).values, table)
        else:
            with pytest.raises(WLDetectError, match="e3m4 table without 'scale' metadata"):
                lookup.load_lookup_table(path)


@pytest.mark.parametrize("fmt", ["e3m4", "e4m3fn", "fp32"])
@pytest.mark.parametrize(
    "damage", ["all-zero", "every-row-the-bias", "one-value-per-row"],
)
def test_a_table_that_cannot_tell_languages_apart_is_refused_as_damaged(tmp_path, monkeypatch, fmt, damage):
    """An all-zero E3M4 table answered `arb_Arab 0.0244` for every text, exit 0; every row equal (each token's
    weight 0: the bias alone) answers one language for everything; a row with one value for all languages
    says nothing either. Checked in the one pass that finds each column's maximum, across row blocks."""
    monkeypatch.setattr(lookup, "_ROWS_PER_BLOCK", 7)
    rows = 40
    if damage == "all-zero":
        table = np.zeros((rows, 5), np.float32)
    elif damage == "every-row-the-bias":
        table = np.tile(np.array([0.5, -1.0, 2.0, 0.0, 1.5], np.float32), (rows, 1))
    else:
        table = np.repeat(np.linspace(-3, 3, rows, dtype=np.float32)[:, None], 5, axis=1)
    path = lookup.save_lookup_table(lookup.quantize(table, fmt), tmp_path / "t.safetensors", languages=list("abcde"))
    loaded = lookup.load_lookup_table(path)  # opening maps the file; the check reads it
    with pytest.raises(WLDetectError) as error:
        loaded.column_max()
    assert _one_line(error).startswith(f"{path}: damaged lookup table: ")
    with pytest.raises(WLDetectError, match="damaged lookup table"):
        _ = loaded.values
    healthy = table.copy()
    healthy[rows - 1, 2] += 1.0  # one entry in the last block is enough to tell languages apart
    path = lookup.save_lookup_table(lookup.quantize(healthy, fmt), tmp_path / "ok.safetensors", languages=list("abcde"))
    assert lookup.load_lookup_table(path).column_max().shape == (5,)


def test_a_damaged_table_is_refused_when_the_detector_loads_it(tmp_path):
    """Through `WLDetect` (the pooler's column maximum), not only when read directly."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    from wldetect.detect import WLDetect

    tokenizer = Tokenizer(WordLevel({"[UNK]": 0, "chat": 1, "hund": 2}, unk_token="[UNK]"))
    with pytest.raises(WLDetectError, match="damaged lookup table: every row is the same"):
        WLDetect(np.zeros((3, 2), np.float32), ["fra_Latn", "deu_Latn"], tokenizer)
    assert WLDetect(np.eye(3, 2, dtype=np.float32), ["fra_Latn", "deu_Latn"], tokenizer).languages == ["fra_Latn", "deu_Latn"]
