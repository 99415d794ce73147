"""Step 1's files, written and read back: the counts and the token ids every later step consumes.

In a directory (a run record, `--output`'s, or the cache entry):
- `<name>.npy`: total counts, int64, shape (vocab_size,);
- `<name>_per_language.npz`: scipy.sparse CSR int64 (vocab_size x n_languages), by `scipy.sparse.save_npz`;
- `<name>_per_language.json`: the column order (`languages`) and what was counted (its `digest`);
- `<name>_token_ids/`: the ids of every example (int32 chunks, `TokenIdsWriter`), labels, and
  `token_ids.json`, written last, which records every file's size and sha256 and marks the set complete.

Counting (`wldetect.steps.counting`) writes them; the mask (step 2), training (step 3), post-hoc masking and
the weight analysis read them through this module. It imports no tokenizer, dataset library or Ray: a step
that only reads step 1's files does not load what it took to write them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from wldetect.errors import WLDetectError
from wldetect.io import atomic_path, load_npy, write_text_atomic

COUNTS_FILE = "token_counts.npy"
TOKEN_IDS_RECORD = "token_ids.json"
CHUNK_EXAMPLES = 65_536  # examples per token-ids chunk file (and per Ray block)


def per_language_paths(counts_path: str | Path) -> tuple[Path, Path]:
    """The per-language matrix and its metadata live next to the counts: `X.npy` -> `X_per_language.{npz,json}`."""
    counts_path = Path(counts_path)
    stem = counts_path.name[: -len(".npy")] if counts_path.name.endswith(".npy") else counts_path.name
    return counts_path.with_name(f"{stem}_per_language.npz"), counts_path.with_name(f"{stem}_per_language.json")


def token_ids_path(counts_path: str | Path) -> Path:
    """Step 1's token ids live next to its counts: `X.npy` -> `X_token_ids/`."""
    counts_path = Path(counts_path)
    stem = counts_path.name[: -len(".npy")] if counts_path.name.endswith(".npy") else counts_path.name
    return counts_path.with_name(f"{stem}_token_ids")


def resolve_token_ids(path: str | Path) -> Path:
    """Step 1's token-ids directory from itself, its counts file (`X.npy` -> `X_token_ids/`) or its run
    directory (`<run>/token_counts_token_ids/`)."""
    path = Path(path)
    if path.suffix == ".npy":
        return token_ids_path(path)
    if path.is_dir() and not (path / TOKEN_IDS_RECORD).exists() and (path / COUNTS_FILE).exists():
        return token_ids_path(path / COUNTS_FILE)
    return path


# ------------------------------------------------------------------------------------------ token ids on disk


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


def _load_array(path: Path, shape: tuple[int, ...], mmap: bool = False) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise WLDetectError(f"{path}: not a readable .npy file ({type(err).__name__}: {err})") from None
    if array.shape != shape:
        raise WLDetectError(f"{path}: expected shape {shape}, found {array.shape} (a truncated or foreign file)")
    return array


# ------------------------------------------------------------------------------------------------ count files


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
