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
