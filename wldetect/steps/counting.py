"""Step 1: tokenise the training examples once, store their token ids, and count how often each id occurs.

The counts decide which tokens the mask (step 2) zeroes, so they must match what training feeds the model:
the same filtered, capped, balanced examples, the same truncation, no padding and no special tokens. The
vocab size is the number of embedding rows (Gemma3 has more rows than its tokenizer has tokens), so an id the
tokenizer can never produce still gets a (zero) count and every array in the project has the same length.

Outputs:
- `<name>.npy`: total counts, int64, shape (vocab_size,);
- `<name>_per_language.npz`: scipy.sparse CSR int64 (vocab_size x n_languages), by `scipy.sparse.save_npz`;
- `<name>_per_language.json`: the column order (`languages`) and what was counted;
- `<name>_token_ids/`: the ids of every example (int32 chunks, `TokenIdsWriter`), what training reads.

Reading and checking these files (`load_token_counts`, `validate_counts`, `load_per_language_counts`) is here
too: the mask (step 2), post-hoc masking and the weight analysis read counts through this module.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse
from tokenizers import Tokenizer
from tqdm import tqdm  # the text bar: papermill and logs record it (tqdm.auto needs ipywidgets)

from wldetect.config import TrainingConfig, cache_dir, load_training_config
from wldetect.errors import WLDetectError
from wldetect.io import atomic_path, check_output_path, load_npy, write_text_atomic
from wldetect.sources import demo
from wldetect.sources.data import prepare_training_dataset
from wldetect.sources.models import load_model
from wldetect.tokenization import configure, encode_texts
from wldetect.vocab import describe_tokens
from wldetect.workflow.executors import check_executor, init_ray

if TYPE_CHECKING:  # pandas is imported where tables are built, not at import time
    import pandas as pd

COUNTS_FILE = "token_counts.npy"
TOKEN_IDS_RECORD = "token_ids.json"
CHUNK_EXAMPLES = 65_536  # examples per token-ids chunk file (and per Ray block)
_CACHE_VERSION = 3  # bump when what is counted changes, so stale caches are not reused
DEFAULT_NUM_WORKERS = 2


def default_counts_path(config: TrainingConfig) -> Path:
    """Where `wldetect count-tokens` writes without `--output`: `<output.artifacts_dir>-counts/token_counts.npy`,
    beside the config's artifacts directory and never inside it. That directory belongs to the model: a
    training run into it replaces the files named like a model's (`token_mask.npy`, which `create-mask` puts
    next to the counts) and refuses to start while it holds files but no model."""
    artifacts_dir = Path(config.output.artifacts_dir).resolve()  # `.` and `..` name the directory they mean
    if not artifacts_dir.name:
        raise WLDetectError(
            f"output.artifacts_dir {config.output.artifacts_dir}: the file system root has no place beside it "
            "for the counts; give --output"
        )
    return artifacts_dir.with_name(f"{artifacts_dir.name}-counts") / COUNTS_FILE


def per_language_paths(counts_path: str | Path) -> tuple[Path, Path]:
    """The per-language matrix and its metadata live next to the counts: `X.npy` -> `X_per_language.{npz,json}`."""
    counts_path = Path(counts_path)
    stem = counts_path.name[: -len(".npy")] if counts_path.name.endswith(".npy") else counts_path.name
    return counts_path.with_name(f"{stem}_per_language.npz"), counts_path.with_name(f"{stem}_per_language.json")


@dataclass
class TokenCounts:
    """What step 1 produced: totals, the token x language matrix, and where they were written."""

    counts: np.ndarray  # int64 (vocab_size,)
    per_language: scipy.sparse.csr_matrix  # int64 (vocab_size, n_languages), columns ordered as `languages`
    languages: list[str]
    counts_path: Path
    per_language_path: Path
    languages_path: Path
    token_ids_path: Path
    n_examples: int
    from_cache: bool
    cache_path: Path | None = None
    examples_per_language: dict[str, int] | None = None

    @property
    def vocab_size(self) -> int:
        return int(self.counts.shape[0])

    @property
    def total_tokens(self) -> int:
        return int(self.counts.sum())

    def corpus(self) -> TokenizedCorpus:
        """The token ids step 1 stored with these counts (what training reads)."""
        return TokenizedCorpus(self.token_ids_path)

    def summary(self) -> str:
        """One line: where the counts are, and whether this call counted them or reused a cached count."""
        what = f"(shape={self.counts.shape}, dtype={self.counts.dtype}, total_tokens={self.total_tokens:,})"
        if not self.from_cache:
            return f"Saved token counts to {self.counts_path} {what}"
        if self.cache_path is not None and self.counts_path.parent == self.cache_path:
            return f"Reused the cached token counts {self.counts_path} {what}"
        return f"Reused the cached token counts, linked to {self.counts_path} {what}"


# ------------------------------------------------------------------------------------- token ids on disk


class TokenIdsWriter:
    """Writes the token ids of every example, in example order, as chunks of `chunk_examples` examples.

    A chunk is `chunk_NNNNNN_ids.npy` (int32: every id is an embedding row, < 2^31) and
    `chunk_NNNNNN_offsets.npy` (int64, n + 1 entries: example i is ids[offsets[i]:offsets[i + 1]]). Training
    memory-maps them (nanoGPT's prepare.py idea: tokenise once into files, train from the files).
    `finish_token_ids` then writes `labels.npy` and, last, `token_ids.json`: its presence marks a complete
    directory.
    """

    def __init__(self, directory: Path, chunk_examples: int = CHUNK_EXAMPLES):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.chunk_examples = int(chunk_examples)
        self.n_chunks = 0
        self.n_tokens = 0
        self._ids: list[np.ndarray] = []
        self._lengths: list[np.ndarray] = []
        self._pending = 0
        self.records: list[dict[str, Any]] = []  # what `finish_token_ids` records of each chunk

    def add(self, ids: np.ndarray, lengths: np.ndarray) -> None:
        """Append a batch (ids back to back, `lengths[i]` of example i); full chunks are written at once."""
        first = 0
        while first < len(lengths):
            take = min(len(lengths) - first, self.chunk_examples - self._pending)
            begin = int(lengths[:first].sum())
            end = begin + int(lengths[first : first + take].sum())
            self._ids.append(ids[begin:end])
            self._lengths.append(lengths[first : first + take])
            self._pending += take
            first += take
            if self._pending == self.chunk_examples:
                self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        lengths = np.concatenate(self._lengths)
        self.records.append(write_chunk(self.directory, self.n_chunks, np.concatenate(self._ids), lengths))
        self.n_tokens += int(lengths.sum())
        self.n_chunks += 1
        self._ids, self._lengths, self._pending = [], [], 0

    def close(self) -> int:
        """Write the last, partial chunk; returns the number of chunks (`finish_token_ids` completes the set)."""
        self._flush()
        return self.n_chunks


def chunk_paths(directory: Path, chunk: int) -> tuple[Path, Path]:
    return directory / f"chunk_{chunk:06d}_ids.npy", directory / f"chunk_{chunk:06d}_offsets.npy"


def write_chunk(directory: Path, chunk: int, ids: np.ndarray, lengths: np.ndarray) -> dict[str, Any]:
    """One chunk's two files, each written to a temporary name and renamed; returns its record (`chunk_record`)."""
    ids_path, offsets_path = chunk_paths(Path(directory), chunk)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    with atomic_path(ids_path) as tmp:
        np.save(tmp, np.asarray(ids, dtype=np.int32))
    with atomic_path(offsets_path) as tmp:
        np.save(tmp, offsets)
    return chunk_record(Path(directory), chunk)


def _file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def chunk_record(directory: Path, chunk: int) -> dict[str, Any]:
    """What a reader checks a chunk against: its examples and tokens, and the size and sha256 of both files
    (hashed right after writing, from the page cache: ~1% of tokenising them)."""
    ids_path, offsets_path = chunk_paths(Path(directory), chunk)
    offsets = np.load(offsets_path, mmap_mode="r", allow_pickle=False)
    return {
        "examples": int(len(offsets) - 1),
        "tokens": int(offsets[-1]),
        "ids_bytes": ids_path.stat().st_size,
        "offsets_bytes": offsets_path.stat().st_size,
        "ids_sha256": _file_sha256(ids_path),
        "offsets_sha256": _file_sha256(offsets_path),
    }


def finish_token_ids(
    directory: Path,
    labels: np.ndarray,
    chunk_examples: int,
    n_chunks: int,
    n_tokens: int,
    metadata: dict[str, Any],
    chunks: list[dict[str, Any]] | None = None,
) -> Path:
    """`labels.npy` and the `token_ids.json` that marks the directory complete. `chunks`: each chunk's
    `chunk_record` as its writer returned it; None (chunks written by Ray actors) reads them from the files."""
    directory = Path(directory)
    with atomic_path(directory / "labels.npy") as tmp:  # int64 on disk, written in slices: no int64 copy in memory
        stored = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int64, shape=(len(labels),))
        for start in range(0, len(labels), 1 << 20):
            stored[start : start + (1 << 20)] = labels[start : start + (1 << 20)]
        stored.flush()
        del stored
    if chunks is None:
        chunks = [chunk_record(directory, c) for c in range(n_chunks)]
    if len(chunks) != n_chunks:
        raise WLDetectError(f"{directory}: {len(chunks)} chunk record(s) for {n_chunks} chunks")
    record = {
        "format": "token ids of every training example, in training-data order; chunk_NNNNNN_ids.npy int32, "
        "chunk_NNNNNN_offsets.npy int64 (n+1), labels.npy int64 (index into languages)",
        "n_examples": int(len(labels)),
        "chunk_examples": int(chunk_examples),
        "n_chunks": int(n_chunks),
        "n_tokens": int(n_tokens),
        **metadata,
        "labels_bytes": (directory / "labels.npy").stat().st_size,
        "labels_sha256": _file_sha256(directory / "labels.npy"),
        "chunks": chunks,
    }
    return write_text_atomic(directory / TOKEN_IDS_RECORD, json.dumps(record, indent=2, ensure_ascii=False) + "\n")


class TokenizedCorpus:
    """Step 1's token ids, read back: what training trains on (memory-mapped chunk by chunk).

    `labels[i]` is example i's index into `languages`; `chunk(c)` is (ids, offsets) of chunk c.
    """

    def __init__(self, directory: str | Path, check_sizes: bool = True):
        self.directory = Path(directory)
        record_path = self.directory / TOKEN_IDS_RECORD
        if not record_path.is_file():
            raise WLDetectError(
                f"{self.directory}: not a complete token-ids directory (no {TOKEN_IDS_RECORD}; run step 1, "
                "`wldetect count-tokens`, to write it)"
            )
        try:
            self.record = json.loads(record_path.read_text(encoding="utf-8"))
            self.n_examples = int(self.record["n_examples"])
            self.chunk_examples = int(self.record["chunk_examples"])
            self.n_chunks = int(self.record["n_chunks"])
            self.vocab_size = int(self.record["vocab_size"])
            self.languages = list(self.record["languages"])
        except (ValueError, KeyError, TypeError) as err:
            raise WLDetectError(f"{record_path}: not a readable token-ids record ({type(err).__name__}: {err})") from None
        self.labels = _load_array(self.directory / "labels.npy", (self.n_examples,), mmap=True)
        missing = [p.name for c in range(self.n_chunks) for p in chunk_paths(self.directory, c) if not p.is_file()]
        if missing:
            raise WLDetectError(f"{self.directory}: {len(missing)} chunk file(s) missing, e.g. {missing[0]}")
        problem = self.verify(digests=False) if check_sizes else None
        if problem:
            raise WLDetectError(f"{self.directory}: damaged token ids: {problem} (run step 1 again)")

    def verify(self, digests: bool = True) -> str | None:
        """The first disagreement between the files and what `token_ids.json` recorded of them, or None.

        Always: each chunk's two file sizes and labels.npy's size (one `stat` each: a truncated or replaced
        file). With `digests`, also every file's sha256 (reads them all: ~3 s per GB here). Directories
        written before chunks were recorded are checked by their .npy headers and last offsets instead.
        """
        chunks = self.record.get("chunks")
        if not isinstance(chunks, list):
            return self._verify_unrecorded()
        if len(chunks) != self.n_chunks:
            return f"{len(chunks)} chunk records for {self.n_chunks} chunks"
        labels = self.directory / "labels.npy"
        if "labels_bytes" in self.record and labels.stat().st_size != self.record["labels_bytes"]:
            return f"labels.npy has {labels.stat().st_size:,} bytes, {self.record['labels_bytes']:,} recorded"
        for chunk, recorded in enumerate(chunks):
            for path, kind in zip(chunk_paths(self.directory, chunk), ("ids", "offsets")):
                size = path.stat().st_size
                if size != recorded.get(f"{kind}_bytes"):
                    return f"{path.name} has {size:,} bytes, {recorded.get(f'{kind}_bytes'):,} recorded"
        if not digests:
            return None
        if "labels_sha256" in self.record and _file_sha256(labels) != self.record["labels_sha256"]:
            return "labels.npy differs from its recorded sha256"
        for chunk, recorded in enumerate(chunks):
            for path, kind in zip(chunk_paths(self.directory, chunk), ("ids", "offsets")):
                if _file_sha256(path) != recorded.get(f"{kind}_sha256"):
                    return f"{path.name} differs from its recorded sha256"
        return None

    def _verify_unrecorded(self) -> str | None:
        for chunk in range(self.n_chunks):
            start, stop = self.chunk_bounds(chunk)
            ids_path, offsets_path = chunk_paths(self.directory, chunk)
            try:
                offsets = np.load(offsets_path, mmap_mode="r", allow_pickle=False)
                ids = np.load(ids_path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as err:
                return f"{ids_path.name} or {offsets_path.name} is not a readable .npy file ({err})"
            if offsets.shape != (stop - start + 1,) or ids.shape != (int(offsets[-1]),):
                return f"chunk {chunk}'s files disagree with each other or with the record (truncated?)"
        return None

    def __len__(self) -> int:
        return self.n_examples

    @property
    def identity(self) -> str:
        """What identifies these ids: the inputs they were made from (the counting cache key's digest)."""
        return str(self.record.get("digest") or json.dumps(self.record, sort_keys=True))

    def chunk_bounds(self, chunk: int) -> tuple[int, int]:
        start = chunk * self.chunk_examples
        return start, min(start + self.chunk_examples, self.n_examples)

    def chunk(self, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids int32, offsets int64 of n + 1) of one chunk; the ids memory-mapped."""
        start, stop = self.chunk_bounds(chunk)
        ids_path, offsets_path = chunk_paths(self.directory, chunk)
        offsets = _load_array(offsets_path, (stop - start + 1,))
        ids = _load_array(ids_path, (int(offsets[-1]),), mmap=True)
        return ids, offsets

    def token_counts(self) -> np.ndarray:
        """Occurrences of each id over every chunk (the same numbers as step 1's counts, recomputed from ids)."""
        counts = np.zeros(self.vocab_size, dtype=np.int64)
        for chunk in range(self.n_chunks):
            counts += np.bincount(self.chunk(chunk)[0], minlength=self.vocab_size)
        return counts

    def token_counts_file(self) -> tuple[Path | None, np.ndarray]:
        """Step 1's counts written with these ids (`X.npy` next to `X_token_ids/`), or, where that file is
        gone, the counts recomputed from the ids (path None)."""
        stem = self.directory.name.removesuffix("_token_ids")
        path = self.directory.with_name(f"{stem}.npy")
        if path.is_file():
            counts = _load_array(path, (self.vocab_size,))
            _same_counting(self.directory, path)
            return path, np.asarray(counts, dtype=np.int64)
        return None, self.token_counts()


def _same_counting(ids_dir: Path, counts_path: Path) -> None:
    """Token ids and counts read together must come from the same count (the same `digest`)."""
    try:
        counted = json.loads(per_language_paths(counts_path)[1].read_text(encoding="utf-8")).get("digest")
        tokenised = json.loads((ids_dir / TOKEN_IDS_RECORD).read_text(encoding="utf-8")).get("digest")
    except (OSError, ValueError, AttributeError):
        return  # a counts file without its metadata: nothing to compare
    if counted and tokenised and counted != tokenised:
        raise WLDetectError(f"{counts_path} and {ids_dir} come from two different counts (run step 1 again)")


def resolve_token_ids(path: str | Path) -> Path:
    """Step 1's token-ids directory from itself, its counts file (`X.npy` -> `X_token_ids/`) or its run
    directory (`<run>/token_counts_token_ids/`)."""
    path = Path(path)
    if path.suffix == ".npy":
        return token_ids_path(path)
    if path.is_dir() and not (path / TOKEN_IDS_RECORD).exists() and (path / COUNTS_FILE).exists():
        return token_ids_path(path / COUNTS_FILE)
    return path


def _load_array(path: Path, shape: tuple[int, ...], mmap: bool = False) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise WLDetectError(f"{path}: not a readable .npy file ({type(err).__name__}: {err})") from None
    if array.shape != shape:
        raise WLDetectError(f"{path}: expected shape {shape}, found {array.shape} (a truncated or foreign file)")
    return array


# ------------------------------------------------------------------------------------------------ counting


def token_keys(ids: np.ndarray, lengths: np.ndarray, labels: np.ndarray, vocab_size: int, model_name: str = "the model") -> np.ndarray:
    """`label * vocab_size + id` for every token of a batch, after checking every id is an embedding row."""
    largest = int(ids.max())
    if largest >= vocab_size or int(ids.min()) < 0:
        bad = largest if largest >= vocab_size else int(ids.min())
        raise WLDetectError(
            f"token id {bad} is outside the embedding rows of {model_name} (vocab_size={vocab_size}): "
            "the tokenizer does not match the embeddings"
        )
    keys = np.repeat(np.asarray(labels, dtype=np.int64) * vocab_size, lengths)
    keys += ids
    return keys


def count_block(
    tokenizer: Tokenizer,
    texts_dataset,
    labels: np.ndarray,
    start: int,
    stop: int,
    vocab_size: int,
    batch_size: int = 512,
    model_name: str = "the model",
    ids_dir: Path | None = None,
    chunk: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Examples `start:stop` (texts from a `text`-column dataset, `labels` their language indices) reduced to
    sorted unique keys `label * vocab_size + id` and their counts: one block of a distributed count, a few
    hundred KB whatever the block's size, where a dense per-block table would be languages x vocab. With
    `ids_dir`, the block's ids are also written there as token-ids chunk `chunk`."""
    parts, ids, lengths = [], [], []
    for first in range(start, stop, batch_size):
        last = min(first + batch_size, stop)
        encoded = encode_texts(tokenizer, texts_dataset[first:last]["text"])
        if encoded.ids.size:
            parts.append(token_keys(encoded.ids, encoded.lengths, labels[first:last], vocab_size, model_name))
        ids.append(encoded.ids)
        lengths.append(encoded.lengths)
    if ids_dir is not None:
        write_chunk(ids_dir, int(chunk), np.concatenate(ids or [np.zeros(0, np.int64)]), np.concatenate(lengths or [np.zeros(0, np.int64)]))
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    keys, inverse = np.unique(np.concatenate(parts), return_inverse=True)
    return keys.astype(np.int64), np.bincount(inverse, minlength=len(keys)).astype(np.int64)


class TokenCounter:
    """Accumulates token ids per language with one vectorised `np.add.at` per batch.

    One dense int64 (n_languages x vocab_size) table: `add.at` on `label * V + id` costs a few ns per token
    whatever the batch mix, where a per-batch `bincount(minlength=L*V)` would allocate the whole table each
    time. (Gemma3 x 200 OpenLID languages: 52M cells, 420 MB, allocated once.)
    """

    def __init__(self, vocab_size: int, n_languages: int, model_name: str = "the model"):
        self.vocab_size = int(vocab_size)
        self.n_languages = int(n_languages)
        self.model_name = model_name
        self._table = np.zeros(self.n_languages * self.vocab_size, dtype=np.int64)

    def add(self, ids: np.ndarray, lengths: np.ndarray, labels: np.ndarray) -> None:
        """Count one batch: `ids` of all texts back to back, `lengths[i]` tokens of text i in language `labels[i]`."""
        if ids.size == 0:
            return
        np.add.at(self._table, token_keys(ids, lengths, labels, self.vocab_size, self.model_name), 1)

    def add_counts(self, keys: np.ndarray, counts: np.ndarray) -> None:
        """Add counts already reduced elsewhere (`count_block`): `counts[i]` occurrences of key `label * V + id`."""
        np.add.at(self._table, np.asarray(keys, dtype=np.int64), np.asarray(counts, dtype=np.int64))

    @property
    def counts(self) -> np.ndarray:
        return self._table.reshape(self.n_languages, self.vocab_size).sum(axis=0)

    def per_language(self) -> scipy.sparse.csr_matrix:
        table = self._table.reshape(self.n_languages, self.vocab_size)
        language, token = np.nonzero(table)
        return scipy.sparse.csr_matrix(
            (table[language, token], (token, language)), shape=(self.vocab_size, self.n_languages), dtype=np.int64
        )


def count_dataset(
    data,
    tokenizer: Tokenizer,
    vocab_size: int,
    batch_size: int = 512,
    num_workers: int | None = None,
    progress: bool = True,
    model_name: str = "the model",
    writer: TokenIdsWriter | None = None,
) -> TokenCounter:
    """Tokenise every example of `data` (a `TrainingData`) and count its ids, per language; with a `writer`,
    also store the ids (in example order) for training, so the corpus is tokenised once.

    `encode_batch` releases the GIL while the Rust tokenizer works, so `num_workers` threads keep batches in
    flight: while one is tokenised, the main thread fetches the next texts from Arrow and counts the last.
    Texts are fetched in the main thread only (Arrow slicing is not worth sharing), in order.
    """
    if batch_size <= 0:
        raise WLDetectError(f"batch size must be positive, got {batch_size}")
    num_workers = DEFAULT_NUM_WORKERS if num_workers is None else num_workers
    if num_workers < 0:
        raise WLDetectError(f"num_workers must be >= 0, got {num_workers}")
    counter = TokenCounter(vocab_size, len(data.languages), model_name)
    texts_only = data.dataset.select_columns(["text"])
    labels = data.labels
    starts = range(0, len(data), batch_size)
    bar = tqdm(total=len(data), unit="ex", unit_scale=True, desc="Counting tokens", disable=not progress)

    def consume(start: int, encoded) -> None:
        counter.add(encoded.ids, encoded.lengths, labels[start : start + batch_size])
        if writer is not None:
            writer.add(encoded.ids, encoded.lengths)
        bar.update(len(encoded.lengths))

    try:
        if num_workers == 0:
            for start in starts:
                consume(start, encode_texts(tokenizer, texts_only[start : start + batch_size]["text"]))
        else:
            with ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="wldetect-count") as pool:
                in_flight: deque = deque()
                for start in starts:
                    texts = texts_only[start : start + batch_size]["text"]
                    in_flight.append((start, pool.submit(encode_texts, tokenizer, texts)))
                    if len(in_flight) > num_workers:
                        start_done, future = in_flight.popleft()
                        consume(start_done, future.result())
                while in_flight:
                    start_done, future = in_flight.popleft()
                    consume(start_done, future.result())
    finally:
        bar.close()
    return counter


# --------------------------------------------------------------------------------------------------- cache


def _dataset_fingerprint(name: str) -> Any:
    """Local data files by size and mtime, so editing the corpus invalidates its counts; hub ids by name."""
    path = Path(name)
    if name == "demo" or not path.exists():
        return None
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files[:10_000]]


def cache_key(config: TrainingConfig, tokenizer_path: Path, vocab_size: int) -> dict[str, Any]:
    """Everything the counts depend on: dataset spec (and local files), languages, tokenizer, V, truncation."""
    dataset = config.dataset.model_dump(mode="json")
    return {
        "version": _CACHE_VERSION,
        "dataset": dataset,
        "dataset_files": _dataset_fingerprint(config.dataset.name),
        "demo_corpus_version": getattr(demo, "_CORPUS_VERSION", None) if config.dataset.name == "demo" else None,
        "languages": config.model.language_codes,
        "tokenizer_sha256": hashlib.sha256(Path(tokenizer_path).read_bytes()).hexdigest(),
        "vocab_size": int(vocab_size),
        "max_sequence_length": config.model.inference.max_sequence_length,
        "chunk_examples": CHUNK_EXAMPLES,
    }


def _cache_path(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "tokenized" / digest


def token_ids_path(counts_path: str | Path) -> Path:
    """Step 1's token ids live next to its counts: `X.npy` -> `X_token_ids/`."""
    counts_path = Path(counts_path)
    stem = counts_path.name[: -len(".npy")] if counts_path.name.endswith(".npy") else counts_path.name
    return counts_path.with_name(f"{stem}_token_ids")


# --------------------------------------------------------------------------------------------- count files


def validate_counts(counts: Any, source: str = "token counts") -> np.ndarray:
    """Integer, non-negative, shape (V,) or (V, 1): returned as int64 (V,). `source` names the file in messages."""
    counts = np.asarray(counts)
    if counts.dtype == np.bool_ or not np.issubdtype(counts.dtype, np.integer):
        raise WLDetectError(f"{source}: token counts must be an integer array, got dtype {counts.dtype}")
    if not (counts.ndim == 1 or (counts.ndim == 2 and counts.shape[1] == 1)) or counts.shape[0] == 0:
        raise WLDetectError(f"{source}: token counts must have shape (vocab_size,) or (vocab_size, 1), got {counts.shape}")
    counts = counts.reshape(-1)
    if counts.size and np.issubdtype(counts.dtype, np.signedinteger) and counts.min() < 0:
        first = int(np.flatnonzero(counts < 0)[0])
        raise WLDetectError(f"{source}: token counts must be >= 0, found {int(counts[first])} at token id {first}")
    if counts.dtype == np.uint64 and counts.size and counts.max() > np.iinfo(np.int64).max:
        raise WLDetectError(f"{source}: token counts too large for int64")
    return counts.astype(np.int64, copy=False)


def load_token_counts(path: str | Path) -> np.ndarray:
    """Counts from `count-tokens` (or any integer .npy of shape (V,) or (V, 1)), validated, as int64 (V,)."""
    path, counts = load_npy(path, "token counts")
    return validate_counts(counts, str(path))


def save_token_counts(
    path: str | Path,
    counts: np.ndarray,
    per_language: scipy.sparse.csr_matrix,
    languages: list[str],
    metadata: dict[str, Any] | None = None,
) -> tuple[Path, Path, Path]:
    """Write the three count files atomically; the metadata JSON is written last, so it marks a complete set."""
    path = Path(path)
    npz_path, json_path = per_language_paths(path)
    with atomic_path(path) as tmp:
        np.save(tmp, np.asarray(counts, dtype=np.int64))
    with atomic_path(npz_path) as tmp:
        scipy.sparse.save_npz(tmp, per_language.tocsr().astype(np.int64))
    meta = {
        "languages": list(languages),
        "vocab_size": int(counts.shape[0]),
        "total_tokens": int(counts.sum()),
        "per_language_format": "scipy.sparse CSR int64 (vocab_size x n_languages), columns in 'languages' order",
        **(metadata or {}),
    }
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path, npz_path, json_path


def load_per_language_counts(counts_path: str | Path) -> tuple[scipy.sparse.csr_matrix, list[str]]:
    """The token x language matrix and its column order saved next to `counts_path`."""
    npz_path, json_path = per_language_paths(counts_path)
    for path in (npz_path, json_path):
        if not path.is_file():
            raise WLDetectError(f"{path}: per-language token counts not found (re-run `wldetect count-tokens`)")
    try:
        matrix = scipy.sparse.load_npz(npz_path).tocsr()
        languages = json.loads(json_path.read_text(encoding="utf-8"))["languages"]
    except Exception as err:
        raise WLDetectError(f"{npz_path}: not readable per-language token counts ({type(err).__name__})") from None
    if matrix.ndim != 2 or matrix.shape[1] != len(languages):
        raise WLDetectError(f"{npz_path}: shape {matrix.shape} does not match {len(languages)} languages in {json_path}")
    return matrix, list(languages)


VERIFY_DIGESTS_BYTES = 1 << 30  # a cached entry up to this size has every file's sha256 checked on reuse


def _load_cached(path: Path, digests: bool = True) -> tuple[tuple[np.ndarray, scipy.sparse.csr_matrix, list[str], dict] | None, str | None]:
    """(a complete, verified cache entry: counts, per-language counts, languages, metadata; or None, and why
    not where an entry is there but damaged). A damaged entry is recomputed, never trusted: the token ids are
    checked against the sizes recorded of every file and, for entries up to `VERIFY_DIGESTS_BYTES` (the
    demo's: a few MB; OpenLID's 13 GB would take a minute), their sha256 digests."""
    counts_path = path / COUNTS_FILE
    _, json_path = per_language_paths(counts_path)
    if not path.exists():
        return None, None
    if not json_path.is_file() or not (token_ids_path(counts_path) / TOKEN_IDS_RECORD).is_file():
        return None, "incomplete: no " + (json_path.name if not json_path.is_file() else f"{TOKEN_IDS_RECORD}")
    try:
        counts = np.load(counts_path, allow_pickle=False)
        per_language, languages = load_per_language_counts(counts_path)
        meta = json.loads(json_path.read_text(encoding="utf-8"))
        corpus = TokenizedCorpus(token_ids_path(counts_path), check_sizes=False)
        size = sum(int(c.get("ids_bytes", 0)) + int(c.get("offsets_bytes", 0)) for c in corpus.record.get("chunks") or [])
        problem = corpus.verify(digests=digests and size <= VERIFY_DIGESTS_BYTES)
    except (OSError, ValueError, WLDetectError) as err:
        return None, str(err).removeprefix(f"{token_ids_path(counts_path)}: ")
    if problem:
        return None, problem
    if counts.shape != (corpus.vocab_size,) or int(counts.sum()) != int(corpus.record.get("n_tokens", -1)):
        return None, f"{COUNTS_FILE} does not add up to the {corpus.record.get('n_tokens')} tokens of its token ids"
    if not counts.any():  # never served: every mask built from all-zero counts would remove every token
        return None, "all counts are zero"
    return (counts, per_language, languages, meta), None


_BUILD_NAME = re.compile(r"^(?P<entry>[0-9a-f]{16})\.(?:tmp|damaged)(?P<pid>\d+)$")
_OWNER_FILE = ".owner.json"  # in a build folder: which host and process is writing it


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_builds(directory: Path) -> list[Path]:
    """Remove the `<entry>.tmp<pid>` (and `.damaged<pid>`) folders that a killed process left in the cache's
    `tokenized/` directory: those whose process is gone from this host. A folder whose owner record names
    another host (a cache on a shared filesystem) is left to that host. Returns what was removed."""
    removed = []
    if not directory.is_dir():
        return removed
    host = socket.gethostname()
    for path in sorted(directory.iterdir()):
        match = _BUILD_NAME.match(path.name)
        if match is None or not path.is_dir():
            continue
        try:
            owner = json.loads((path / _OWNER_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            owner = {}  # killed before writing it, or an earlier version's folder: a process of this host
        if owner.get("host", host) != host or _pid_alive(int(match["pid"])):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    return removed


def _store_in_cache(build: Path, cache_path: Path) -> None:
    """Make the complete set in `build` the cache entry. A complete entry already there (another process
    counted the same inputs meanwhile, and may be reading it) is kept and `build` dropped; only an
    incomplete or damaged entry is moved aside, then deleted, never removed under a reader."""
    if _load_cached(cache_path)[0] is not None:
        shutil.rmtree(build, ignore_errors=True)
        return
    if cache_path.exists():
        aside = cache_path.with_name(f"{cache_path.name}.damaged{os.getpid()}")
        os.replace(cache_path, aside)
        shutil.rmtree(aside, ignore_errors=True)
    try:
        os.replace(build, cache_path)
    except OSError:  # another process stored the same counts first
        shutil.rmtree(build, ignore_errors=True)


def _link_or_copy(source: Path, destination: Path) -> None:
    """`destination` becomes the same file as `source`: a hard link (no copy of OpenLID's gigabytes of ids;
    cache files are never modified in place, only replaced) or, across filesystems, a copy."""
    with atomic_path(destination) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def publish_counts(source: Path, destination: Path) -> tuple[Path, Path, Path, Path]:
    """Put the set at `source` (counts .npy, per-language files, token ids) at `destination`: the token ids
    directory swapped in whole, then the counts files, the per-language JSON last. Both records carry the
    same `digest`, so readers refuse ids and counts of two different counts (an interrupted overwrite)."""
    destination = Path(destination)
    ids_source, ids_destination = token_ids_path(source), token_ids_path(destination)
    staging = ids_destination.with_name(f".{ids_destination.name}.tmp{os.getpid()}")
    replaced = False
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for file in sorted(ids_source.iterdir()):
            if file.name != TOKEN_IDS_RECORD:
                _link_or_copy(file, staging / file.name)
        _link_or_copy(ids_source / TOKEN_IDS_RECORD, staging / TOKEN_IDS_RECORD)  # last: marks it complete
        shutil.rmtree(ids_destination, ignore_errors=True)
        os.replace(staging, ids_destination)
        replaced = True
        for src, dst in zip((source, *per_language_paths(source)), (destination, *per_language_paths(destination))):
            _link_or_copy(src, dst)
    except OSError as err:
        # A copy's error names the file it copied from (the cache's); the user needs the one being written.
        shutil.rmtree(staging, ignore_errors=True)
        state = (
            f"{ids_destination.name}/ is new but the counts files are not: run count-tokens again"
            if replaced else "nothing there was changed"
        )  # fmt: skip
        raise WLDetectError(f"{destination}: cannot write the token counts there ({err.strerror or err}); {state}") from None
    return (destination, *per_language_paths(destination), ids_destination)  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------- the step


def count_tokens(
    config: TrainingConfig | str | Path,
    output: str | Path | None = None,
    batch_size: int = 512,
    num_workers: int | None = None,
    use_cache: bool = True,
    verbose: bool = True,
    executor: str = "local",
    address: str | None = None,
    model=None,
) -> TokenCounts:
    """Step 1: tokenise every training example once, store the ids, and count every token id.

    The ids (for training, step 3) and the counts (for the mask, step 2) are written together and cached by
    dataset, tokenizer, V and truncation. `output` (e.g. `runs/x/token_counts.npy`) receives the set: the
    counts, the per-language files and `<stem>_token_ids/`, hard-linked from the cache where the filesystem
    allows; without it the result points into the cache. `executor="ray"` tokenises and counts on a Ray
    cluster (`address`; None: a local Ray instance): the same ids and counts bit for bit, the same cache entry.
    `model`: the config's model, when the caller has loaded it already.
    """
    if output is None and not use_cache:
        raise WLDetectError("count_tokens: give an output path when use_cache is False")
    if output is not None:
        check_output_path(output, (".npy",), "token counts")

    check_executor(executor, address)
    if not isinstance(config, TrainingConfig):
        config = load_training_config(config)
    say = print if verbose else (lambda *args, **kwargs: None)
    if model is None:
        model = load_model(config.model)
        say(model.summary())
    vocab_size = model.vocab_size
    key = cache_key(config, model.tokenizer_path, vocab_size)
    cache_path = _cache_path(key)
    cached, damage = _load_cached(cache_path) if use_cache else (None, None)
    build = None
    if damage:
        say(f"The cached token ids and counts in {cache_path} are damaged ({damage}); counting again to rebuild them")

    if cached is not None:
        counts, per_language, languages, meta = cached
        say(
            f"Reusing the token ids and counts cached in {cache_path} (same dataset, tokenizer, vocab_size={vocab_size} "
            f"and max_sequence_length={config.model.inference.max_sequence_length}); nothing re-tokenised"
        )
    else:
        target = cache_path if use_cache else Path(output).with_name(f".{Path(output).stem}.counting")
        build = target.with_name(f"{target.name}.tmp{os.getpid()}")
        if use_cache:
            stale = remove_stale_builds(cache_path.parent)
            if stale:
                say(f"Removed {len(stale)} unfinished cache folder(s) of processes that no longer run: {', '.join(p.name for p in stale)}")
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir(parents=True)
        write_text_atomic(build / _OWNER_FILE, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}) + "\n")
        try:
            counts, per_language, languages, meta = _count_into(
                build, config, model, key, batch_size, num_workers, executor, address, verbose
            )
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        if not counts.any():  # never an all-zero counts file: every mask built from it would remove every token
            shutil.rmtree(build, ignore_errors=True)
            where = f"; nothing written to {output}" if output is not None else ""
            raise WLDetectError(
                f"dataset {config.dataset.name}: no token counted in {meta['n_examples']:,} usable examples{where}"
            )
        if use_cache:
            _store_in_cache(build, cache_path)
            build = None
    source = (build or cache_path) / COUNTS_FILE
    try:
        paths = publish_counts(source, Path(output)) if output is not None else (
            source, *per_language_paths(source), token_ids_path(source)
        )  # fmt: skip
    finally:
        if build is not None:
            shutil.rmtree(build, ignore_errors=True)
    result = TokenCounts(
        counts=counts,
        per_language=per_language,
        languages=languages,
        counts_path=paths[0],
        per_language_path=paths[1],
        languages_path=paths[2],
        token_ids_path=paths[3],
        n_examples=int(meta.get("n_examples", 0)),
        from_cache=cached is not None,
        cache_path=cache_path if use_cache else None,
        examples_per_language=meta.get("examples_per_language"),
    )
    say(result.summary())
    if verbose and output is not None:
        say(f"Saved per-language counts to {result.per_language_path} ({len(languages)} languages in {result.languages_path.name})")
        say(f"Saved the token ids of every example to {result.token_ids_path}/ (training reads them)")
    return result


def _count_into(build: Path, config: TrainingConfig, model, key, batch_size, num_workers, executor, address, verbose):
    """Tokenise and count the training examples into the directory `build`: counts files and token ids."""

    data = prepare_training_dataset(config.dataset, config.model.language_codes, verbose=verbose)
    tokenizer = configure(model.tokenizer, config.model.inference.max_sequence_length)
    names = " + ".join(spec.name for spec in config.model.model_specs)
    ids_dir = token_ids_path(build / COUNTS_FILE)
    ids_dir.mkdir(parents=True)
    if executor == "ray":
        counter = ray_count_dataset(
            data, tokenizer, model.vocab_size, batch_size, address=address, progress=verbose, model_name=names, ids_dir=ids_dir
        )
        n_chunks = -(-len(data) // CHUNK_EXAMPLES)
        chunk_records = None  # written by the actors: recorded from the files
    else:
        writer = TokenIdsWriter(ids_dir, CHUNK_EXAMPLES)
        counter = count_dataset(data, tokenizer, model.vocab_size, batch_size, num_workers, progress=verbose, model_name=names, writer=writer)
        n_chunks = writer.close()
        chunk_records = writer.records
    counts, per_language = counter.counts, counter.per_language()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    metadata = {
        "n_examples": len(data),
        "examples_per_language": dict(data.report.per_language),
        "cache_key": key,
        "digest": digest,
    }
    save_token_counts(build / COUNTS_FILE, counts, per_language, list(data.languages), metadata)
    finish_token_ids(
        ids_dir, data.labels, CHUNK_EXAMPLES, n_chunks, int(counts.sum()),
        {"vocab_size": int(model.vocab_size), "languages": list(data.languages), "digest": digest, "cache_key": key},
        chunk_records,
    )  # fmt: skip
    corpus = TokenizedCorpus(ids_dir)  # every chunk arrived (a Ray node without the shared filesystem loses them)
    if int(sum(int(corpus.chunk(c)[1][-1]) for c in range(corpus.n_chunks))) != int(counts.sum()):
        raise WLDetectError(f"{ids_dir}: the token ids written do not add up to the {int(counts.sum()):,} tokens counted")
    return counts, per_language, list(data.languages), metadata


def load_counts(path: str | Path) -> TokenCounts:
    """Step 1's output, read back: from its counts file or its run directory (`<run>/token_counts.npy`).

    What the later steps use to consume a step 1 run's files instead of counting again."""
    path = Path(path)
    counts_path = path / COUNTS_FILE if path.is_dir() else path
    if not counts_path.is_file():
        raise WLDetectError(f"{path}: no token counts ({COUNTS_FILE}) of step 1 there")
    counts = _load_array(counts_path, _shape_of(counts_path))
    per_language, languages = load_per_language_counts(counts_path)
    meta = json.loads(per_language_paths(counts_path)[1].read_text(encoding="utf-8"))
    ids_path = token_ids_path(counts_path)
    TokenizedCorpus(ids_path)  # complete and readable, or a one-line error now rather than in training
    _same_counting(ids_path, counts_path)
    return TokenCounts(
        counts=np.asarray(counts, dtype=np.int64),
        per_language=per_language,
        languages=languages,
        counts_path=counts_path,
        per_language_path=per_language_paths(counts_path)[0],
        languages_path=per_language_paths(counts_path)[1],
        token_ids_path=ids_path,
        n_examples=int(meta.get("n_examples", 0)),
        from_cache=False,
        examples_per_language=meta.get("examples_per_language"),
    )


def _shape_of(path: Path) -> tuple[int, ...]:
    try:
        return tuple(np.load(path, mmap_mode="r").shape)
    except (OSError, ValueError) as err:
        raise WLDetectError(f"{path}: not a readable .npy file ({type(err).__name__}: {err})") from None


# ------------------------------------------------------------------------------------------------- views


def language_summary(token_counts: TokenCounts) -> pd.DataFrame:
    """Per language: examples, token occurrences, tokens per example, distinct tokens, and distinct tokens no
    other language uses (the ones a language identifier can rely on most)."""
    import pandas as pd

    matrix = token_counts.per_language.tocsr(copy=True)
    matrix.eliminate_zeros()
    occurrences = np.asarray(matrix.sum(axis=0), dtype=np.int64).reshape(-1)
    distinct = np.bincount(matrix.indices, minlength=len(token_counts.languages))
    languages_per_token = np.diff(matrix.indptr)
    exclusive_rows = np.repeat(languages_per_token == 1, languages_per_token)  # per stored entry
    exclusive = np.bincount(matrix.indices[exclusive_rows], minlength=len(token_counts.languages))
    examples = [int((token_counts.examples_per_language or {}).get(code, 0)) for code in token_counts.languages]
    total = max(int(occurrences.sum()), 1)
    table = pd.DataFrame(
        {
            "language": token_counts.languages,
            "examples": examples,
            "tokens": occurrences,
            "tokens_pct": 100.0 * occurrences / total,
            "tokens_per_example": np.divide(occurrences, examples, out=np.zeros(len(examples)), where=np.array(examples) > 0),
            "distinct_tokens": distinct,
            "exclusive_tokens": exclusive,
        }
    )
    return table.sort_values(["tokens", "language"], ascending=[False, True]).reset_index(drop=True)


def top_tokens(token_counts: TokenCounts | np.ndarray, tokenizer: Tokenizer, n: int = 25) -> pd.DataFrame:
    """The `n` most frequent tokens, decoded, with their share (and running share) of all occurrences."""
    import pandas as pd

    counts = token_counts.counts if isinstance(token_counts, TokenCounts) else np.asarray(token_counts).reshape(-1)
    order = np.argsort(-counts, kind="stable")[: max(int(n), 0)]
    order = order[counts[order] > 0]
    tokens, texts, scripts = describe_tokens(tokenizer, order)
    total = max(int(counts.sum()), 1)
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(order) + 1),
            "token_id": order.astype(np.int64),
            "count": counts[order],
            "tokens_pct": 100.0 * counts[order] / total,
            "cumulative_pct": 100.0 * np.cumsum(counts[order]) / total,
            "token": tokens,
            "text": texts,
            "script": scripts,
        }
    )


# ----------------------------------------------------------------------------------------- ray: counting


# A Ray block is one token-ids chunk (CHUNK_EXAMPLES): ~2.6 M tokens of OpenLID text, seconds of work per task.


class _BlockCounter:
    """A Ray Data actor: holds the examples, labels and tokenizer once; counts blocks of examples."""

    shared: list = []  # [ObjectRef of (texts, labels, tokenizer JSON, vocab size, model name, batch size, ids dir)]

    def __init__(self):
        import ray

        texts, labels, tokenizer_json, vocab_size, model_name, batch_size, ids_dir = ray.get(self.shared[0])
        self.ids_dir = Path(ids_dir) if ids_dir else None
        self.texts, self.labels = texts, labels
        self.tokenizer = Tokenizer.from_str(tokenizer_json)  # with the driver's truncation, no padding
        self.vocab_size, self.model_name, self.batch_size = vocab_size, model_name, batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keys, counts = [], []
        for start, stop, chunk in zip(batch["start"].tolist(), batch["stop"].tolist(), batch["chunk"].tolist()):
            block_keys, block_counts = count_block(
                self.tokenizer, self.texts, self.labels, start, stop, self.vocab_size, self.batch_size,
                self.model_name, self.ids_dir, chunk,
            )  # fmt: skip
            keys.append(block_keys)
            counts.append(block_counts)
        return {"key": np.concatenate(keys), "count": np.concatenate(counts)}


def ray_count_dataset(
    data,
    tokenizer: Tokenizer,
    vocab_size: int,
    batch_size: int = 512,
    *,
    address: str | None = None,
    block_examples: int | None = None,
    actors: int | None = None,
    progress: bool = True,
    model_name: str = "the model",
    ids_dir: Path | None = None,
) -> TokenCounter:
    """`count_dataset` on Ray Data: the examples (a `TrainingData`, selected by the same code as the
    single-process count) are cut into blocks of `block_examples`; actors tokenise each block and reduce it to
    (language x vocab key, count) pairs with `count_block`; the driver sums them into a `TokenCounter`.
    Integer sums in any order: the result is the single-process count, bit for bit. With `ids_dir` (on a
    filesystem every node mounts), each actor writes its block's ids there as token-ids chunk `start //
    block_examples`: the same files `TokenIdsWriter` writes for the same chunk size."""
    block_examples = CHUNK_EXAMPLES if block_examples is None else int(block_examples)
    if block_examples <= 0:
        raise WLDetectError(f"block size must be positive, got {block_examples}")
    if ids_dir is not None and block_examples != CHUNK_EXAMPLES:
        raise WLDetectError(f"writing token ids needs blocks of {CHUNK_EXAMPLES:,} examples (one chunk each), got {block_examples:,}")
    ray = init_ray(address)
    from ray.data import ActorPoolStrategy

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # a summary line below, not a log line a second
    counter = TokenCounter(vocab_size, len(data.languages), model_name)
    n = len(data)
    if n == 0:
        return counter
    blocks = [{"start": s, "stop": min(s + block_examples, n), "chunk": s // block_examples} for s in range(0, n, block_examples)]
    texts = data.dataset.select_columns(["text"])
    shared = ray.put((texts, np.asarray(data.labels), tokenizer.to_str(), int(vocab_size), model_name, int(batch_size), str(ids_dir) if ids_dir else None))
    actors = actors or max(1, min(len(blocks), int(ray.cluster_resources().get("CPU", 1))))
    started = time.perf_counter()
    pairs = ray.data.from_items(blocks, override_num_blocks=len(blocks)).map_batches(
        type("BlockCounter", (_BlockCounter,), {"shared": [shared]}),  # the data travel by reference, once
        batch_size=1,
        compute=ActorPoolStrategy(size=actors),
        num_cpus=1,
    )
    for batch in pairs.iter_batches(batch_size=None, batch_format="numpy"):
        counter.add_counts(batch["key"], batch["count"])
    if progress:
        print(f"Counted {n:,} examples in {len(blocks)} Ray blocks on {actors} actor(s) in {time.perf_counter() - started:.1f} s")
    return counter
