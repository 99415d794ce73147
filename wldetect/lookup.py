"""The lookup table a trained model folds into, its FP8 formats, and their files (NumPy only: no torch).

After training, each token's language logits are fixed: `(E * w) @ W.T + b`, one row per token id, shape
`(vocab_size, n_languages)`. Inference is then a row gather and a pooling, so the table is the whole model.
The detector reads these files, so this module imports nothing of the package but `errors` and `io`; what
rewrites a trained directory (post-hoc masking, the quantisation report) is in `wldetect.steps.posthoc`.

On-disk format (safetensors; all three files have the same layout)
------------------------------------------------------------------
`lookup_table_fp32.safetensors`, `lookup_table_fp8_e4m3fn.safetensors`, `lookup_table_fp8_e3m4.safetensors`:

- tensor `lookup_table`: for fp32 the float32 values `(vocab_size, n_languages)`; for the FP8 formats the raw
  FP8 bytes as `uint8` of the same shape (safetensors has no E3M4 dtype, and this keeps both FP8 files alike);
- header metadata (strings): `format` (`float32`, `float8_e4m3fn` or `float8_e3m4`, the `ml_dtypes` name),
  `scale` (a float), `shape` (JSON list), `languages` (JSON list: column i is language i), `format_version`;
- for readers of the seed's files also the tensors `dtype` (uint8 `[0]` E4M3FN, `[26]` E3M4), `shape` (int64)
  and `scale` (float32); `load_lookup_table` reads those too when the metadata is missing.

The stored values are `table / scale`, rounded to nearest-even in the format; dequantise as
`bytes.view(ml_dtypes.<format>).astype(float32) * scale`. `scale` is the smallest power of two that brings
`max|table|` within the format's largest finite value (E3M4 ~ +-15.5, E4M3FN +-448). A power of two changes
only exponents, so scaling and unscaling are exact, and it may be below 1 (a small table is spread over the
whole range, away from the coarse subnormals). A plain cast of an out-of-range value would give inf (E3M4) or
NaN (E4M3FN); every file is checked to dequantise to finite values before it is written.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import ml_dtypes
import numpy as np

from wldetect.errors import WLDetectError
from wldetect.io import write_safetensors

FORMATS = ("e3m4", "e4m3fn", "fp32")
FORMAT_VERSION = "1"
FILE_NAMES = {
    "fp32": "lookup_table_fp32.safetensors",
    "e4m3fn": "lookup_table_fp8_e4m3fn.safetensors",
    "e3m4": "lookup_table_fp8_e3m4.safetensors",
}
_DTYPES = {"e4m3fn": ml_dtypes.float8_e4m3fn, "e3m4": ml_dtypes.float8_e3m4}
_FORMAT_NAMES = {"fp32": "float32", "e4m3fn": "float8_e4m3fn", "e3m4": "float8_e3m4"}
_SEED_DTYPE_IDS = {"e4m3fn": 0, "e3m4": 26}  # the seed's `dtype` tensor
_ROWS_PER_BLOCK = 16384


# ---------------------------------------------------------------------------------------------- building


def compute_lookup_table(
    embeddings: np.ndarray,
    token_weights: np.ndarray,
    projection_weight: np.ndarray,
    projection_bias: np.ndarray,
) -> np.ndarray:
    """`(embeddings * token_weights) @ projection_weight.T + projection_bias` as float32 (V, n_languages).

    Computed in blocks of rows, so a memory-mapped 262k x 5k matrix is never copied whole.
    """
    vocab_size = embeddings.shape[0]
    token_weights = np.asarray(token_weights, dtype=np.float32).reshape(vocab_size, 1)
    weight_t = np.ascontiguousarray(np.asarray(projection_weight, dtype=np.float32).T)
    bias = np.asarray(projection_bias, dtype=np.float32)
    table = np.empty((vocab_size, weight_t.shape[1]), dtype=np.float32)
    for start in range(0, vocab_size, _ROWS_PER_BLOCK):
        stop = min(start + _ROWS_PER_BLOCK, vocab_size)
        block = np.asarray(embeddings[start:stop], dtype=np.float32) * token_weights[start:stop]
        np.matmul(block, weight_t, out=table[start:stop])
        table[start:stop] += bias
    return table


def zero_token_rows(table: np.ndarray, projection_bias: np.ndarray, token_mask: np.ndarray) -> np.ndarray:
    """The table of the same model with the weight of every masked token (mask False) set to 0.

    A token's row is `w[t] * (E[t] @ W.T) + b`, so with `w[t] = 0` it is exactly the bias: post-hoc masking
    needs neither the embeddings nor retraining.
    """
    token_mask = np.asarray(token_mask, dtype=bool)
    if token_mask.shape != (table.shape[0],):
        raise WLDetectError(
            f"Token mask shape doesn't match vocab_size: mask has shape {token_mask.shape}, "
            f"the lookup table has {table.shape[0]} rows"
        )
    filtered = np.array(table, dtype=np.float32, copy=True)
    filtered[~token_mask] = np.asarray(projection_bias, dtype=np.float32)
    return filtered


# -------------------------------------------------------------------------------------------- quantising


@dataclass
class QuantizedTable:
    """One stored format of a lookup table: `stored` is what goes to disk (uint8 bytes or float32)."""

    format: str  # e3m4 | e4m3fn | fp32
    stored: np.ndarray
    scale: float

    def dequantized(self) -> np.ndarray:
        return dequantize(self.stored, self.format, self.scale)


def format_max(fmt: str) -> float:
    return float(ml_dtypes.finfo(_DTYPES[fmt]).max)


def choose_scale(table: np.ndarray, fmt: str) -> float:
    """The smallest power of two with `max|table| / scale <= largest finite value of the format`."""
    if fmt == "fp32":
        return 1.0
    max_abs = float(np.max(np.abs(table))) if table.size else 0.0
    if not math.isfinite(max_abs):
        raise WLDetectError("lookup table contains inf or NaN: the trained model diverged")
    if max_abs == 0.0:
        return 1.0
    return float(2.0 ** math.ceil(math.log2(max_abs / format_max(fmt))))


def quantize(table: np.ndarray, fmt: str) -> QuantizedTable:
    """Scale into the format's range and round to nearest-even; refuses to return inf or NaN."""
    if fmt not in FORMATS:
        raise WLDetectError(f"lookup table format {fmt!r}: expected one of {', '.join(FORMATS)}")
    table = np.asarray(table, dtype=np.float32)
    if fmt == "fp32":
        return QuantizedTable("fp32", np.ascontiguousarray(table), 1.0)
    scale = choose_scale(table, fmt)
    stored = (table / np.float32(scale)).astype(_DTYPES[fmt]).view(np.uint8)
    quantized = QuantizedTable(fmt, stored, scale)
    if not np.isfinite(quantized.dequantized()).all():  # cannot happen with the scale above; checked anyway
        raise WLDetectError(f"{fmt} quantisation produced inf or NaN (scale {scale})")
    return quantized


def dequantize(stored: np.ndarray, fmt: str, scale: float) -> np.ndarray:
    """float32 values of stored table entries (any shape): FP8 bytes through a 256-entry table of their values."""
    if fmt == "fp32":
        values = np.asarray(stored, dtype=np.float32)
        return values if scale == 1.0 else values * np.float32(scale)
    return np.take(_dequantization_values(fmt, scale), np.asarray(stored, dtype=np.uint8))


def _dequantization_values(fmt: str, scale: float) -> np.ndarray:
    """The float32 value of each of the 256 FP8 bytes: the same cast and multiply as element by element, so a
    gather from it is bit-identical to `bytes.view(format).astype(float32) * scale` and several times faster."""
    values = np.arange(256, dtype=np.uint8).view(_DTYPES[fmt]).astype(np.float32)
    if scale != 1.0:
        values *= np.float32(scale)
    return values


def quantization_error(reference: np.ndarray, dequantized: np.ndarray) -> dict[str, float]:
    """Mean and max absolute error and RMSE of a dequantised table against fp32."""
    total_abs = total_sq = 0.0
    max_abs = 0.0
    for start in range(0, reference.shape[0], _ROWS_PER_BLOCK):
        diff = np.abs(
            dequantized[start : start + _ROWS_PER_BLOCK].astype(np.float64)
            - reference[start : start + _ROWS_PER_BLOCK].astype(np.float64)
        )
        total_abs += float(diff.sum())
        total_sq += float(np.square(diff).sum())
        max_abs = max(max_abs, float(diff.max(initial=0.0)))
    n = max(reference.size, 1)
    return {"mean_abs_error": total_abs / n, "max_abs_error": max_abs, "rmse": math.sqrt(total_sq / n)}


# ------------------------------------------------------------------------------------------------ files


def save_lookup_table(
    quantized: QuantizedTable,
    path: str | Path,
    languages: list[str] | None = None,
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    """Write one format of the table atomically in the layout described in this module's docstring."""
    path = Path(path)
    shape = list(quantized.stored.shape)
    metadata = {
        "format": _FORMAT_NAMES[quantized.format],
        "scale": repr(float(quantized.scale)),
        "shape": json.dumps(shape),
        "format_version": FORMAT_VERSION,
    }
    if languages is not None:
        if len(languages) != shape[1]:
            raise WLDetectError(f"{path}: {len(languages)} languages for a table with {shape[1]} columns")
        metadata["languages"] = json.dumps(list(languages))
    metadata.update(extra_metadata or {})
    tensors = {"lookup_table": np.ascontiguousarray(quantized.stored)}
    if quantized.format in _SEED_DTYPE_IDS:
        tensors["dtype"] = np.array([_SEED_DTYPE_IDS[quantized.format]], dtype=np.uint8)
        tensors["shape"] = np.array(shape, dtype=np.int64)
        tensors["scale"] = np.array([quantized.scale], dtype=np.float32)
    return write_safetensors(path, tensors, metadata)  # byte-stable: equal tables, equal files


@dataclass
class LookupTable:
    """A table file opened for inference: its stored entries memory-mapped, dequantised only where needed.

    Mapping instead of reading keeps loading a 262k x 148 table to one pass over its bytes and lets the
    detector hold a single float32 array of its own; `values` and `rows` dequantise on demand.
    """

    stored: np.ndarray  # (vocab_size, n_languages): uint8 FP8 bytes or float32, memory-mapped read-only
    format: str
    scale: float
    path: Path
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def languages(self) -> list[str] | None:
        return json.loads(self.metadata["languages"]) if "languages" in self.metadata else None

    @property
    def shape(self) -> tuple[int, int]:
        return self.stored.shape

    @cached_property
    def values(self) -> np.ndarray:
        """The whole table as float32 (vocab_size, n_languages), checked to be finite."""
        self.column_max()
        values = np.empty(self.shape, dtype=np.float32)
        for start in range(0, self.shape[0], _ROWS_PER_BLOCK):
            values[start : start + _ROWS_PER_BLOCK] = self.rows(slice(start, start + _ROWS_PER_BLOCK))
        return values

    def rows(self, ids: np.ndarray | slice) -> np.ndarray:
        """float32 rows of the given token ids (or slice of them), dequantised from the stored entries."""
        return dequantize(self.stored[ids], self.format, self.scale)

    def column_max(self) -> np.ndarray:
        """Each language column's largest value, float32 (n_languages,), after checking that every entry is
        finite and that the table can tell languages apart; one pass over the stored table that dequantises
        nothing.

        A table whose rows are all equal (all-zero, a file of zeros, every token masked to the bias) or whose
        every row gives all languages one value is refused as damaged: it would answer the same language, or
        column 0 by a tie, for every text, and exit 0 doing so.

        FP8 bytes are sign-magnitude, so `byte ^ (0xFF if negative else 0x80)` orders them as their values
        are ordered, and their non-finite codes are the largest magnitudes: the table is finite exactly when
        each column's smallest and largest key decode to finite values. Byte reductions cost a fraction of a
        dequantisation. A float32 table's max and min propagate NaN and show any infinity the same way.
        """
        n_languages = self.shape[1]
        varies_across_languages = n_languages < 2  # one language: nothing to vary across
        if self.format == "fp32":
            high = np.full(n_languages, -np.inf, dtype=np.float32)
            low = np.full(n_languages, np.inf, dtype=np.float32)
        else:
            high = np.zeros(n_languages, dtype=np.uint8)
            low = np.full(n_languages, 255, dtype=np.uint8)
        for start in range(0, self.shape[0], _ROWS_PER_BLOCK):
            block = self.stored[start : start + _ROWS_PER_BLOCK]
            if self.format != "fp32":
                block = _fp8_order_keys(block)
            np.maximum(high, block.max(axis=0), out=high)
            np.minimum(low, block.min(axis=0), out=low)
            if not varies_across_languages:  # a healthy table shows it in its first block: one compare
                varies_across_languages = bool((block != block[:, :1]).any())
        rows_all_equal = self.shape[0] > 1 and bool((high == low).all())
        if self.format != "fp32":
            high, low = _FP8_BYTE_OF_KEY[high], _FP8_BYTE_OF_KEY[low]
        high, low = (dequantize(extreme, self.format, self.scale) for extreme in (high, low))
        if not (np.isfinite(high).all() and np.isfinite(low).all()):
            raise WLDetectError(f"{self.path}: the table contains inf or NaN")
        if rows_all_equal or (self.shape[0] and not varies_across_languages):
            how = "every row is the same" if rows_all_equal else "every row holds one value for all languages"
            raise WLDetectError(
                f"{self.path}: damaged lookup table: {how} ({self.format}, scale {self.scale:g}), so every text "
                "would get the same answer; re-export the model (or check that not every token was masked)"
            )
        return high


def _fp8_order_keys(stored: np.ndarray) -> np.ndarray:
    """uint8 keys that sort FP8 sign-magnitude bytes by value: positive bytes get the top bit set, negative
    ones are inverted."""
    keys = stored >> 7
    keys *= 0x7F
    keys |= 0x80
    keys ^= stored
    return keys


_FP8_BYTE_OF_KEY = np.argsort(_fp8_order_keys(np.arange(256, dtype=np.uint8))).astype(np.uint8)


_SAFETENSORS_DTYPES = {"U8": np.uint8, "F32": np.float32, "I64": np.int64}


def _map_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Memory-map every tensor of a safetensors file (read-only) and return them with the header metadata.

    The format is an 8-byte little-endian header length, a JSON header (name -> dtype, shape, data offsets;
    `__metadata__`) and the raw data. Each entry is checked against the file's size, so a truncated or
    damaged file is refused here in one line instead of failing later on whichever token reaches the bad part.
    """
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            header_length = int.from_bytes(handle.read(8), "little")
            if not 2 <= header_length <= size - 8:
                raise ValueError(f"header length {header_length} in a file of {size} bytes")
            header = json.loads(handle.read(header_length).decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        metadata = header.pop("__metadata__", None) or {}
        data_start = 8 + header_length
        tensors = {}
        for name, entry in header.items():
            dtype = np.dtype(_SAFETENSORS_DTYPES[entry["dtype"]])
            shape = tuple(int(n) for n in entry["shape"])
            begin, end = (int(n) for n in entry["data_offsets"])
            if end - begin != math.prod(shape) * dtype.itemsize or data_start + end > size or begin < 0:
                raise ValueError(f"tensor {name!r} needs bytes {begin}..{end} of {size - data_start} (truncated?)")
            tensors[name] = (
                np.memmap(path, dtype=dtype, mode="r", offset=data_start + begin, shape=shape)
                if math.prod(shape)
                else np.zeros(shape, dtype=dtype)
            )
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise WLDetectError(f"{path}: not a readable safetensors file ({err})") from None
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def load_lookup_table(path: str | Path) -> LookupTable:
    """Open a table file (this project's layout or the seed's): memory-mapped, checked, nothing dequantised."""
    path = Path(path)
    if not path.is_file():
        raise WLDetectError(f"{path}: lookup table not found")
    tensors, metadata = _map_safetensors(path)
    if "lookup_table" not in tensors:
        raise WLDetectError(f"{path}: no 'lookup_table' tensor (found {', '.join(sorted(tensors)) or 'none'})")
    stored = tensors["lookup_table"]
    seed_dtype = int(tensors["dtype"][0]) if "dtype" in tensors else None
    seed_scale = float(tensors["scale"].reshape(-1)[0]) if "scale" in tensors and tensors["scale"].size else None
    seed_shape = [int(x) for x in tensors["shape"]] if "shape" in tensors else None

    names = {v: k for k, v in _FORMAT_NAMES.items()}
    if "format" in metadata:
        if metadata["format"] not in names:
            raise WLDetectError(f"{path}: unknown format {metadata['format']!r}")
        fmt = names[metadata["format"]]
        if "scale" not in metadata and fmt != "fp32":  # an fp32 file stores the values themselves: scale 1
            raise WLDetectError(f"{path}: {fmt} table without 'scale' metadata: cannot tell what its bytes are worth")
        try:
            scale = float(metadata.get("scale", "1.0"))
            shape = json.loads(metadata["shape"]) if "shape" in metadata else list(stored.shape)
        except ValueError:
            raise WLDetectError(f"{path}: unreadable scale or shape metadata") from None
    elif seed_dtype is not None:
        by_id = {v: k for k, v in _SEED_DTYPE_IDS.items()}
        if seed_dtype not in by_id:
            raise WLDetectError(f"{path}: unknown dtype id {seed_dtype} (expected 0 = E4M3FN or 26 = E3M4)")
        if seed_scale is None:  # the seed's format has no default scale: its reader multiplies by this tensor
            raise WLDetectError(f"{path}: seed-format table without a 'scale' tensor (or 'scale' metadata)")
        fmt, scale, shape = by_id[seed_dtype], seed_scale, seed_shape or list(stored.shape)
    elif stored.dtype == np.float32:
        fmt, scale, shape = "fp32", 1.0, list(stored.shape)
    else:
        raise WLDetectError(f"{path}: no format metadata and a {stored.dtype} table; cannot tell how to read it")
    expected = np.uint8 if fmt != "fp32" else np.float32
    if stored.dtype != expected:
        raise WLDetectError(f"{path}: {fmt} table stored as {stored.dtype}, expected {np.dtype(expected).name}")
    if not math.isfinite(scale) or scale <= 0:
        raise WLDetectError(f"{path}: scale {scale}: expected a finite number > 0 (the stored values are table / scale)")
    if len(shape) != 2 or math.prod(shape) != stored.size:
        raise WLDetectError(f"{path}: shape {shape} does not describe its {stored.size} entries")
    return LookupTable(stored=stored.reshape(shape), format=fmt, scale=scale, path=path, metadata=metadata)


# ----------------------------------------------------------------------------------- writing a directory


def write_lookup_tables(
    table: np.ndarray,
    artifacts_dir: str | Path,
    languages: list[str],
    verbose: bool = True,
    extra_metadata: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Save the fp32 table and its two FP8 quantisations; print each file's size as the seed does."""
    say = print if verbose else (lambda *args, **kwargs: None)
    artifacts_dir = Path(artifacts_dir)
    files = {}
    for fmt, label in (("fp32", "FP32"), ("e4m3fn", "E4M3FN"), ("e3m4", "E3M4")):
        quantized = quantize(table, fmt)
        path = save_lookup_table(quantized, artifacts_dir / FILE_NAMES[fmt], languages, extra_metadata)
        say(f"  {label} saved: {path.name} ({path.stat().st_size / 1024**2:.1f} MB)")
        files[f"lookup_{fmt}"] = path
        del quantized
    return files
