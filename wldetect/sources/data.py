"""Training data: a Hugging Face dataset (OpenLID-v2), a local parquet/jsonl/csv file or directory, or the demo.

Everything goes through `datasets`, so a 121M-sentence corpus stays memory-mapped Arrow; filtering, capping
and balancing are computed on Arrow/NumPy columns and applied with one `select`, never a Python loop over rows.
"""

from __future__ import annotations

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
    labels: np.ndarray  # int64 (n_examples,)
    languages: list[str]
    report: DatasetReport

    def __len__(self) -> int:
        return len(self.labels)

    def texts(self, start: int, stop: int) -> list[str]:
        return self.dataset[start:stop]["text"]


def prepare_training_dataset(config: DatasetConfig, languages: list[str], verbose: bool = True) -> TrainingData:
    """Exactly the examples training will see: valid text, configured languages, capped, balanced, shuffled."""
    raw = load_raw_dataset(config)
    for column in (config.text_column, config.language_column):
        if column not in raw.column_names:
            raise WLDetectError(
                f"dataset {config.name}: column {column!r} not found (columns: {', '.join(raw.column_names)})"
            )
    if raw._indices is not None:  # a dataset that is itself a selection: materialise the view's rows
        raw = raw.flatten_indices()
    table = raw.data.table
    texts = table.column(config.text_column)
    codes = table.column(config.language_column)

    valid, null_texts, non_string_texts, empty_texts = _text_validity(texts)
    labels, codes_text = _language_labels(codes, languages, f"dataset {config.name}: column {config.language_column!r}")
    unknown_rows = valid & (labels < 0)
    unknown = _code_names(codes_text, unknown_rows, _json_storage(codes) is not None)
    if not config.filter_languages and unknown:
        raise WLDetectError(
            f"dataset {config.name}: languages not in the model config: {', '.join(unknown[:10])} "
            "(set dataset.filter_languages: true to drop them)"
        )
    usable = valid & (labels >= 0)
    per_language = np.bincount(labels[usable], minlength=len(languages))

    dropped = {languages[i]: int(n) for i, n in enumerate(per_language) if 0 < n < config.min_samples_per_language}
    missing = [languages[i] for i, n in enumerate(per_language) if n == 0]
    caps = per_language.copy()
    caps[[languages.index(c) for c in dropped]] = 0
    if config.balance_languages and (caps > 0).any():
        caps[caps > 0] = caps[caps > 0].min()
    if config.max_samples_per_language is not None:
        caps = np.minimum(caps, config.max_samples_per_language)

    indices = _shuffled_capped_indices(np.flatnonzero(usable), labels, caps, config.shuffle_seed)
    dataset = raw.select(indices)
    if config.text_column != "text" or config.language_column != "language":
        dataset = dataset.select_columns([config.text_column, config.language_column]).rename_columns(
            {config.text_column: "text", config.language_column: "language"}
        )
    else:
        dataset = dataset.select_columns(["text", "language"])
    final = np.bincount(labels[indices], minlength=len(languages))
    report = DatasetReport(
        source=config.name,
        split=config.split,
        loaded=len(labels),
        null_texts=null_texts,
        non_string_texts=non_string_texts,
        empty_texts=empty_texts,
        in_languages=int(usable.sum()),
        final=len(indices),
        per_language={languages[i]: int(n) for i, n in enumerate(final) if n > 0},
        dropped_languages=dropped,
        missing_languages=missing,
        unknown_language_rows=int(unknown_rows.sum()),
        unknown_languages=unknown,
    )
    if report.final == 0:
        if report.loaded == 0:
            raise WLDetectError(f"{config.name}: no examples (split {config.split} is empty)")
        raise WLDetectError(f"{config.name}: no usable examples of {report.loaded:,} rows: {report.dropped()}")
    if verbose:
        print("\n".join(report.lines()))
    return TrainingData(dataset=dataset, labels=labels[indices], languages=list(languages), report=report)


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


def _shuffled_capped_indices(candidates: np.ndarray, labels: np.ndarray, caps: np.ndarray, seed: int) -> np.ndarray:
    """Shuffle with the seed, then keep the first `caps[label]` examples of each language, in shuffled order."""
    rng = np.random.default_rng(seed)
    shuffled = candidates[rng.permutation(len(candidates))]
    shuffled_labels = labels[shuffled]
    order = np.argsort(shuffled_labels, kind="stable")
    group_start = np.searchsorted(shuffled_labels[order], shuffled_labels[order], side="left")
    rank = np.empty(len(shuffled), dtype=np.int64)
    rank[order] = np.arange(len(shuffled)) - group_start
    return shuffled[rank < caps[shuffled_labels]]
