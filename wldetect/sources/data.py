"""Training data: a Hugging Face dataset (OpenLID-v2), a local parquet/jsonl/csv file or directory, or the demo.

Everything goes through `datasets`, so a 121M-sentence corpus stays memory-mapped Arrow; filtering, capping
and balancing are computed on Arrow/NumPy columns and applied with one `select`, never a Python loop over rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wldetect.config import DatasetConfig
from wldetect.errors import WLDetectError
from wldetect.sources import demo

_FILE_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}


@dataclass
class DatasetReport:
    """What happened between the raw dataset and the examples training sees."""

    source: str
    split: str
    loaded: int
    invalid_texts: int
    in_languages: int
    final: int
    per_language: dict[str, int]
    dropped_languages: dict[str, int] = field(default_factory=dict)
    missing_languages: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lines = [f"Loaded {self.loaded:,} examples from {self.source} (split={self.split})"]
        if self.invalid_texts:
            lines.append(f"Skipped {self.invalid_texts:,} empty or non-text examples")
        lines.append(f"Kept {self.in_languages} / {self.loaded} examples in the configured languages")
        for code, count in self.dropped_languages.items():
            lines.append(f"Warning: dropped {code}: {count} examples < min_samples_per_language")
        if self.missing_languages:
            lines.append(f"Warning: no training examples for {', '.join(self.missing_languages)}")
        lines.append(f"Using {self.final:,} examples in {len(self.per_language)} languages")
        return lines


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
            return load_dataset(builder, data_files=str(path), split="train")
        if path.is_dir():
            return load_dataset(str(path), split=config.split)
        return load_dataset(config.name, split=config.split)
    except WLDetectError:
        raise
    except Exception as err:
        message = str(err).splitlines()[0] if str(err) else ""
        raise WLDetectError(f"dataset {config.name} (split {config.split}): {type(err).__name__}: {message}") from None


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

    valid = _valid_text_mask(texts)
    codes = pc.cast(codes, pa.string())
    labels = pc.fill_null(pc.index_in(codes, value_set=pa.array(languages, pa.string())), -1)
    labels = labels.to_numpy(zero_copy_only=False).astype(np.int64)
    if not config.filter_languages:
        unknown = pc.unique(pc.filter(codes, pa.array(valid & (labels < 0)))).to_pylist()
        if unknown:
            raise WLDetectError(
                f"dataset {config.name}: languages not in the model config: {', '.join(map(str, sorted(unknown)[:10]))} "
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
        invalid_texts=int((~valid).sum()),
        in_languages=int(usable.sum()),
        final=len(indices),
        per_language={languages[i]: int(n) for i, n in enumerate(final) if n > 0},
        dropped_languages=dropped,
        missing_languages=missing,
    )
    if verbose:
        print("\n".join(report.lines()))
    return TrainingData(dataset=dataset, labels=labels[indices], languages=list(languages), report=report)


def _valid_text_mask(texts: pa.ChunkedArray) -> np.ndarray:
    """True where the example has a non-blank string; nulls, blanks and non-string values are invalid."""
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        return np.zeros(len(texts), dtype=bool)
    # A regex test allocates one bool per row; trimming would copy every string (tens of GB for OpenLID).
    nonblank = pc.match_substring_regex(texts, r"[^\s\p{Z}]")  # \p{Z}: Unicode spaces (NBSP, U+3000)
    return pc.fill_null(nonblank, False).to_numpy(zero_copy_only=False).astype(bool)


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
