"""Training data: a Hugging Face dataset (OpenLID-v2), a local parquet/jsonl/csv file or directory, or the demo.

Everything goes through `datasets`, so a 121M-sentence corpus stays memory-mapped Arrow; filtering, capping
and balancing are computed on Arrow/NumPy columns, slice by slice, in a few bytes per row (never a Python
object per row), and applied as one indices mapping over the memory-mapped table.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wldetect.config import DatasetConfig
from wldetect.errors import WLDetectError
from wldetect.io import split_lines
from wldetect.sources import demo

_FILE_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}


@dataclass
class DatasetReport:
    """What happened between the raw dataset and the examples training sees."""

    source: str
    split: str
    loaded: int
    null_texts: int
    non_string_texts: int
    empty_texts: int
    in_languages: int
    final: int
    per_language: dict[str, int]
    dropped_languages: dict[str, int] = field(default_factory=dict)
    missing_languages: list[str] = field(default_factory=list)
    unknown_language_rows: int = 0  # valid text, language not configured (or null)
    unknown_languages: list[str] = field(default_factory=list)  # their codes, sorted ("null" for a missing code)

    @property
    def invalid_texts(self) -> int:
        return self.null_texts + self.non_string_texts + self.empty_texts

    def dropped(self) -> str:
        """Why rows were dropped, counted separately: "3 rows with null text, 2 with non-string text, ..."."""
        parts = []
        for count, why in (
            (self.null_texts, "with null text"),
            (self.non_string_texts, "with non-string text"),
            (self.empty_texts, "with empty text"),
            (self.unknown_language_rows, f"in languages not in the model config ({_listed(self.unknown_languages)})"),
        ):
            if count:
                parts.append(f"{count:,} {_rows(count) if not parts else ''}{why}")
        dropped = sum(self.dropped_languages.values())
        if dropped:
            listed = _listed([f"{code}: {n}" for code, n in self.dropped_languages.items()])
            parts.append(
                f"{dropped:,} {_rows(dropped) if not parts else ''}in languages with fewer than min_samples_per_language "
                f"examples ({listed})"
            )
        return ", ".join(parts)

    def lines(self) -> list[str]:
        lines = [f"Loaded {self.loaded:,} examples from {self.source} (split={self.split})"]
        invalid = [
            f"{count:,} {why}"
            for count, why in ((self.null_texts, "null"), (self.non_string_texts, "non-string"), (self.empty_texts, "empty"))
            if count
        ]
        if invalid:
            lines.append(f"Skipped {self.invalid_texts:,} examples without usable text ({', '.join(invalid)})")
        if self.unknown_language_rows:
            lines.append(
                f"Dropped {self.unknown_language_rows:,} examples in languages not in the model config "
                f"({_listed(self.unknown_languages)})"
            )
        lines.append(f"Kept {self.in_languages} / {self.loaded} examples in the configured languages")
        for code, count in self.dropped_languages.items():
            lines.append(f"Warning: dropped {code}: {count} examples < min_samples_per_language")
        if self.missing_languages:
            lines.append(f"Warning: no training examples for {', '.join(self.missing_languages)}")
        lines.append(f"Using {self.final:,} examples in {len(self.per_language)} languages")
        return lines


def _rows(count: int) -> str:
    return "row " if count == 1 else "rows "


def _listed(items: list[str], most: int = 10) -> str:
    shown = ", ".join(items[:most])
    return shown + (f", ... ({len(items) - most} more)" if len(items) > most else "")


def load_raw_dataset(config: DatasetConfig):
    """The dataset as `datasets` gives it, before any filtering."""
    from datasets import load_dataset

    if config.name == "demo":
        return demo.demo_corpus(config.demo_examples_per_language, seed=config.shuffle_seed)
    path = Path(config.name)
    try:
        if path.is_file():
            builder = _FILE_BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise WLDetectError(f"{path}: unsupported data file type (expected {', '.join(_FILE_BUILDERS)})")
            if builder != "parquet" and _blank_file(path):
                raise WLDetectError(f"{path}: empty file, no examples")
            if builder == "parquet" and _parquet_rows(path) == 0:
                raise WLDetectError(f"{path}: no examples (the file has no rows)")
            return load_dataset(builder, data_files=str(path), split="train")
        if path.is_dir():
            return load_dataset(str(path), split=config.split)
        return load_dataset(config.name, split=config.split)
    except WLDetectError:
        raise
    except StopIteration:  # `datasets` reading a file with no records
        raise WLDetectError(f"dataset {config.name}: no examples (the data holds no records)") from None
    except Exception as err:
        if type(err).__name__ == "DatasetGenerationError" and err.__cause__ is not None:
            err = err.__cause__  # "An error occurred while generating the dataset" says less than its cause
        message = (split_lines(str(err)) or [""])[0]
        if "corresponds to no data" in message:
            raise WLDetectError(f"dataset {config.name} (split {config.split}): no examples (only a header?)") from None
        raise WLDetectError(f"dataset {config.name} (split {config.split}): {type(err).__name__}: {message}") from None


def _parquet_rows(path: Path) -> int | None:
    """The row count in a parquet file's footer (None: not readable as parquet; `datasets` then says why)."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # noqa: BLE001 (reported by load_dataset)
        return None


def _blank_file(path: Path, probe: int = 1 << 16) -> bool:
    """True for a text data file with nothing but whitespace (`datasets` answers those with StopIteration)."""
    with path.open("rb") as handle:
        head = handle.read(probe)
    return not head.strip() and path.stat().st_size <= probe


@dataclass
class TrainingData:
    """The examples training sees, in training order.

    `dataset` is a lazy selection of the raw Arrow data (columns `text` and `language`; nothing is copied,
    which matters at 121M rows); `labels[i]` is example i's index into `languages`.
    """

    dataset: object  # datasets.Dataset
    labels: np.ndarray  # (n_examples,) the smallest signed integer type holding the language indices
    languages: list[str]
    report: DatasetReport

    def __len__(self) -> int:
        return len(self.labels)

    def texts(self, start: int, stop: int) -> list[str]:
        return self.dataset[start:stop]["text"]


def prepare_training_dataset(
    config: DatasetConfig, languages: list[str], verbose: bool = True, chunk_rows: int | None = None
) -> TrainingData:
    """Exactly the examples training will see: valid text, configured languages, capped, balanced, shuffled.

    In memory that grows with the corpus by a few bytes per row (OpenLID-v2 has 121.8 M rows): the text and
    language columns are classified `chunk_rows` rows at a time (Arrow compute on a slice, never on the whole
    column) into one small integer per row; the shuffle, the caps and the selection run on those and on one
    index array, in place and chunk by chunk; `datasets` gets the result as its indices mapping directly
    (`Dataset.select` would first make a Python list of the indices, ~40 bytes a row). `chunk_rows` changes
    memory only: the same examples in the same order for any chunk size.
    """
    chunk_rows = CHUNK_ROWS if chunk_rows is None else int(chunk_rows)
    if chunk_rows <= 0:
        raise WLDetectError(f"chunk_rows must be positive, got {chunk_rows}")
    raw = load_raw_dataset(config)
    for column in (config.text_column, config.language_column):
        if column not in raw.column_names:
            raise WLDetectError(
                f"dataset {config.name}: column {column!r} not found (columns: {', '.join(raw.column_names)})"
            )
    if raw._indices is not None:  # a dataset that is itself a selection: materialise the view's rows
        raw = raw.flatten_indices()
    table = raw.data.table
    rows = _classify_rows(
        table.column(config.text_column), table.column(config.language_column), languages, chunk_rows,
        f"dataset {config.name}: column {config.language_column!r}",
    )  # fmt: skip
    if not config.filter_languages and rows.unknown:
        raise WLDetectError(
            f"dataset {config.name}: languages not in the model config: {', '.join(rows.unknown[:10])} "
            "(set dataset.filter_languages: true to drop them)"
        )
    per_language = rows.per_language

    dropped = {languages[i]: int(n) for i, n in enumerate(per_language) if 0 < n < config.min_samples_per_language}
    missing = [languages[i] for i, n in enumerate(per_language) if n == 0]
    caps = per_language.copy()
    caps[[languages.index(c) for c in dropped]] = 0
    if config.balance_languages and (caps > 0).any():
        caps[caps > 0] = caps[caps > 0].min()
    if config.max_samples_per_language is not None:
        caps = np.minimum(caps, config.max_samples_per_language)

    indices = _shuffled_capped_indices(rows.codes, per_language, caps, config.shuffle_seed, chunk_rows)
    labels = rows.codes[indices]  # the selection's labels, in the codes' small integer type
    report = DatasetReport(
        source=config.name,
        split=config.split,
        loaded=len(rows.codes),
        null_texts=rows.null_texts,
        non_string_texts=rows.non_string_texts,
        empty_texts=rows.empty_texts,
        in_languages=int(per_language.sum()),
        final=len(indices),
        per_language={languages[i]: int(n) for i, n in enumerate(np.bincount(labels, minlength=len(languages))) if n > 0},
        dropped_languages=dropped,
        missing_languages=missing,
        unknown_language_rows=rows.unknown_rows,
        unknown_languages=rows.unknown,
    )
    del rows  # one small integer per row of the raw data: only the selection's indices and labels stay
    if report.final == 0:
        if report.loaded == 0:
            raise WLDetectError(f"{config.name}: no examples (split {config.split} is empty)")
        raise WLDetectError(f"{config.name}: no usable examples of {report.loaded:,} rows: {report.dropped()}")
    dataset = _with_indices(raw, indices, [config.model_dump(mode="json"), languages])
    del indices
    if config.text_column != "text" or config.language_column != "language":
        dataset = dataset.select_columns([config.text_column, config.language_column]).rename_columns(
            {config.text_column: "text", config.language_column: "language"}
        )
    else:
        dataset = dataset.select_columns(["text", "language"])
    if verbose:
        print("\n".join(report.lines()))
    return TrainingData(dataset=dataset, labels=labels, languages=list(languages), report=report)


CHUNK_ROWS = 1 << 20  # rows classified per Arrow slice: a few MB of temporaries whatever the corpus
UNKNOWN_LANGUAGE = -1  # row code: a usable text in a language that is not configured (or a null code)
UNUSABLE_TEXT = -2  # row code: null, non-string or blank text


@dataclass
class _RowCodes:
    """Every raw row reduced to one small integer (its language index, or why it is not usable) and counts."""

    codes: np.ndarray  # int8/int16/int32 (n_rows,): >= 0 the language index; UNKNOWN_LANGUAGE; UNUSABLE_TEXT
    per_language: np.ndarray  # int64 (n_languages,): usable rows per language
    null_texts: int
    non_string_texts: int
    empty_texts: int
    unknown_rows: int
    unknown: list[str]


def _classify_rows(texts: pa.ChunkedArray, codes: pa.ChunkedArray, languages: list[str], chunk_rows: int, what: str) -> _RowCodes:
    """`_text_validity` and `_language_labels` on `chunk_rows` rows at a time, into one code per row."""
    n = len(texts)
    dtype = next(t for t in (np.int8, np.int16, np.int32, np.int64) if len(languages) <= np.iinfo(t).max)
    row_codes = np.empty(n, dtype=dtype)
    per_language = np.zeros(len(languages), dtype=np.int64)
    null_texts = non_string_texts = empty_texts = unknown_rows = 0
    unknown: set[str] = set()
    is_json = _json_storage(codes) is not None
    for start in range(0, n, chunk_rows):
        valid, null, non_string, empty = _text_validity(texts.slice(start, chunk_rows))
        labels, codes_text = _language_labels(codes.slice(start, chunk_rows), languages, what)
        unknown_here = valid & (labels < 0)
        unknown.update(_code_names(codes_text, unknown_here, is_json))
        labels[~valid] = UNUSABLE_TEXT
        row_codes[start : start + len(labels)] = labels
        per_language += np.bincount(labels[labels >= 0], minlength=len(languages))
        null_texts, non_string_texts, empty_texts = null_texts + null, non_string_texts + non_string, empty_texts + empty
        unknown_rows += int(unknown_here.sum())
    return _RowCodes(row_codes, per_language, null_texts, non_string_texts, empty_texts, unknown_rows, sorted(unknown))


def _with_indices(raw, indices: np.ndarray, selected_by: object):
    """`raw.select(indices)` without its Python list of every index: the same dataset (an indices mapping
    over the memory-mapped table), built from the NumPy array as an Arrow uint64 column. Its `datasets`
    fingerprint is derived from the raw data's and `selected_by` (what the selection is a function of):
    left to `datasets`, it would pickle the whole indices table to hash it (two more copies of it)."""
    from datasets import Dataset
    from datasets.table import InMemoryTable

    column = pa.array(np.asarray(indices, dtype=np.uint64))
    mapping = InMemoryTable(pa.table({"indices": column}))
    key = json.dumps([raw._fingerprint, len(indices), selected_by], sort_keys=True, default=str)
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Dataset(raw.data, info=raw.info.copy(), split=raw.split, indices_table=mapping, fingerprint=fingerprint)


# A JSON string holding only whitespace: RE2's \s ([\t\n\f\r ]) and Unicode spaces (\p{Z}), raw or escaped.
_BLANK_JSON_STRING = (
    r'^"(?:[\s\p{Z}]|\\[tnfr]|\\u(?i:000[9acd]|0020|00a0|1680|200[0-9a]|202[89f]|205f|3000))*"$'
)


def _text_validity(texts: pa.ChunkedArray) -> tuple[np.ndarray, int, int, int]:
    """(valid mask, null rows, non-string rows, empty rows) of the text column, computed on the Arrow column.

    A valid text is a string with a character that is not whitespace. A column of strings is tested as it is;
    a JSON file mixing strings with numbers or lists gives an Arrow JSON column (each value's JSON text), whose
    string rows are told apart by their quote and tested on that text, so one bad row costs only that row.
    """
    n = len(texts)
    null = pc.is_null(texts).to_numpy(zero_copy_only=False).astype(bool) if n else np.zeros(0, dtype=bool)
    json_storage = _json_storage(texts)
    if pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type):
        is_string = ~null
        # A regex test allocates one bool per row; trimming would copy every string (tens of GB for OpenLID).
        nonblank = _bools(pc.match_substring_regex(texts, r"[^\s\p{Z}]"))  # \p{Z}: Unicode spaces (NBSP, U+3000)
    elif json_storage is not None:
        null |= _bools(pc.equal(json_storage, "null"))
        is_string = _bools(pc.starts_with(json_storage, '"'))
        nonblank = is_string & ~_bools(pc.match_substring_regex(json_storage, _BLANK_JSON_STRING))
    else:  # numbers, lists, structs: no row is text
        is_string = np.zeros(n, dtype=bool)
        nonblank = is_string
    valid = is_string & nonblank
    return valid, int(null.sum()), int((~null & ~is_string).sum()), int((is_string & ~nonblank).sum())


def _json_storage(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """The JSON text behind an Arrow JSON extension column (what `datasets` makes of mixed types), else None."""
    kind = column.type
    if isinstance(kind, pa.BaseExtensionType) and "json" in kind.extension_name and pa.types.is_string(kind.storage_type):
        return pa.chunked_array([chunk.storage for chunk in column.chunks], type=kind.storage_type)
    return None


def _bools(array) -> np.ndarray:
    return pc.fill_null(array, False).to_numpy(zero_copy_only=False).astype(bool)


def _language_labels(codes: pa.ChunkedArray, languages: list[str], what: str) -> tuple[np.ndarray, pa.ChunkedArray]:
    """Each row's index into `languages` (-1: not configured, or null), and the codes as text (JSON text for
    a JSON column: a configured code is then its JSON string), for naming the unknown ones."""
    json_storage = _json_storage(codes)
    if json_storage is not None:
        as_text, value_set = json_storage, [json.dumps(code) for code in languages]
    else:
        try:
            as_text = pc.cast(codes, pa.string())  # a string column is not copied
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise WLDetectError(f"{what} holds {codes.type}, not language codes") from None
        value_set = languages
    index = pc.index_in(as_text, value_set=pa.array(value_set, pa.string()))
    return pc.fill_null(index, -1).to_numpy(zero_copy_only=False).astype(np.int64), as_text


def _code_names(as_text: pa.ChunkedArray, rows: np.ndarray, is_json: bool) -> list[str]:
    """The distinct codes of `rows`, sorted, as a user wrote them ("null" for a missing one)."""
    if not rows.any():
        return []
    distinct = pc.unique(pc.filter(as_text, pa.array(rows))).to_pylist()
    names = {"null" if v is None else str(json.loads(v)) if is_json else v for v in distinct}
    return sorted(names)


def _shuffled_capped_indices(
    codes: np.ndarray, per_language: np.ndarray, caps: np.ndarray, seed: int, chunk_rows: int = CHUNK_ROWS
) -> np.ndarray:
    """Shuffle the usable rows (code >= 0) with the seed, then keep the first `caps[label]` of each language,
    in shuffled order. The same as indexing the usable rows with `default_rng(seed).permutation(n_usable)`
    and ranking each row within its language, in one index array of 4 bytes a row (8 beyond 2^32 rows): the
    permutation is built in place (`Generator.shuffle` of `arange(n)` is `Generator.permutation(n)`, for
    any integer type), turned into row numbers chunk by chunk, and the kept rows are packed to its front."""
    n_rows, n_usable = len(codes), int(per_language.sum())
    dtype = np.uint32 if n_rows < 2**32 else np.int64
    order = np.arange(n_usable, dtype=dtype)
    np.random.default_rng(seed).shuffle(order)
    usable = np.empty(n_usable, dtype=dtype)  # row number of the k-th usable row
    filled = 0
    for start in range(0, n_rows, chunk_rows):
        rows = np.flatnonzero(codes[start : start + chunk_rows] >= 0)
        usable[filled : filled + len(rows)] = rows + start
        filled += len(rows)
    for start in range(0, n_usable, chunk_rows):
        order[start : start + chunk_rows] = usable[order[start : start + chunk_rows]]
    del usable
    caps = np.minimum(np.asarray(caps, dtype=np.int64), per_language)
    if (caps == per_language).all():
        return order  # no cap binds: every usable row, shuffled
    seen = np.zeros(len(per_language), dtype=np.int64)
    kept = 0
    for start in range(0, n_usable, chunk_rows):
        rows = order[start : start + chunk_rows]
        labels = codes[rows].astype(np.int64)
        by_label = np.argsort(labels, kind="stable")
        group_start = np.searchsorted(labels[by_label], labels[by_label], side="left")
        rank = np.empty(len(rows), dtype=np.int64)
        rank[by_label] = np.arange(len(rows)) - group_start
        keep = rows[rank + seen[labels] < caps[labels]]  # a copy: safe to write over `order` below
        order[kept : kept + len(keep)] = keep
        kept += len(keep)
        seen += np.bincount(labels, minlength=len(seen))
        if (seen >= caps).all():
            break
    del rows
    order.resize(kept, refcheck=False)  # shrinks in place; nothing else views `order`
    return order
