"""Step 1: how often each token id occurs in exactly the examples training will see.

The counts decide which tokens the mask (step 2) zeroes, so they must match what training feeds the model:
the same filtered, capped, balanced examples, the same truncation, no padding and no special tokens. The
vocab size is the number of embedding rows (Gemma3 has more rows than its tokenizer has tokens), so an id the
tokenizer can never produce still gets a (zero) count and every array in the project has the same length.

Outputs (all int64):
- `<name>.npy`: total counts, shape (vocab_size,);
- `<name>_per_language.npz`: scipy.sparse CSR (vocab_size x n_languages), written by `scipy.sparse.save_npz`;
- `<name>_per_language.json`: the column order (`languages`) and what was counted.

Reading and checking these files (`load_token_counts`, `validate_counts`, `load_per_language_counts`) is here
too: the mask (step 2), post-hoc masking and the weight analysis read counts through this module.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
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
from wldetect.executors import check_executor, init_ray
from wldetect.io import atomic_path, check_output_path, load_npy
from wldetect.sources import demo
from wldetect.sources.data import prepare_training_dataset
from wldetect.sources.models import load_model
from wldetect.tokenization import configure, encode_texts
from wldetect.vocab import describe_tokens

if TYPE_CHECKING:  # pandas is imported where tables are built, not at import time
    import pandas as pd

COUNTS_FILE = "token_counts.npy"
_CACHE_VERSION = 2  # bump when what is counted changes, so stale caches are not reused
DEFAULT_NUM_WORKERS = 2


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

    def summary(self) -> str:
        return (
            f"Saved token counts to {self.counts_path} (shape={self.counts.shape}, dtype={self.counts.dtype}, "
            f"total_tokens={self.total_tokens:,})"
        )


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
) -> tuple[np.ndarray, np.ndarray]:
    """Examples `start:stop` (texts from a `text`-column dataset, `labels` their language indices) reduced to
    sorted unique keys `label * vocab_size + id` and their counts: one block of a distributed count, a few
    hundred KB whatever the block's size, where a dense per-block table would be languages x vocab."""
    parts = []
    for first in range(start, stop, batch_size):
        last = min(first + batch_size, stop)
        encoded = encode_texts(tokenizer, texts_dataset[first:last]["text"])
        if encoded.ids.size:
            parts.append(token_keys(encoded.ids, encoded.lengths, labels[first:last], vocab_size, model_name))
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
) -> TokenCounter:
    """Tokenise every example of `data` (a `TrainingData`) and count its ids, per language.

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
    }


def _cache_path(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "token_counts" / digest


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


def _load_cached(path: Path) -> tuple[np.ndarray, scipy.sparse.csr_matrix, list[str], dict] | None:
    counts_path = path / COUNTS_FILE
    _, json_path = per_language_paths(counts_path)
    if not json_path.is_file():
        return None
    try:
        counts = np.load(counts_path, allow_pickle=False)
        per_language, languages = load_per_language_counts(counts_path)
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, WLDetectError):
        return None  # a damaged cache entry is recomputed, never trusted
    return counts, per_language, languages, meta


def _store_in_cache(path: Path, counts, per_language, languages, metadata) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    save_token_counts(tmp / COUNTS_FILE, counts, per_language, languages, metadata)
    shutil.rmtree(path, ignore_errors=True)  # an incomplete or damaged entry
    try:
        os.replace(tmp, path)
    except OSError:  # another process stored the same counts first
        shutil.rmtree(tmp, ignore_errors=True)


def _copy_set(source: Path, destination: Path) -> tuple[Path, Path, Path]:
    pairs = list(zip((source, *per_language_paths(source)), (destination, *per_language_paths(destination))))
    for src, dst in pairs:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
    return tuple(dst for _, dst in pairs)  # type: ignore[return-value]


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
) -> TokenCounts:
    """Step 1: count every token id of the training examples; cached by dataset, tokenizer, V and truncation.

    `output` (e.g. `runs/x/token_counts.npy`) receives a copy of the counts and the per-language files; without
    it the result points into the cache. `executor="ray"` tokenises and counts on a Ray cluster (`address`;
    None: a local Ray instance): the same examples, the same counts bit for bit, the same cache entry.
    """
    if output is None and not use_cache:
        raise WLDetectError("count_tokens: give an output path when use_cache is False")
    if output is not None:
        check_output_path(output, (".npy",), "token counts")

    check_executor(executor, address)
    if not isinstance(config, TrainingConfig):
        config = load_training_config(config)
    say = print if verbose else (lambda *args, **kwargs: None)
    model = load_model(config.model)
    say(model.summary())
    vocab_size = model.vocab_size
    key = cache_key(config, model.tokenizer_path, vocab_size)
    cache_path = _cache_path(key)
    cached = _load_cached(cache_path) if use_cache else None

    if cached is not None:
        counts, per_language, languages, meta = cached
        n_examples = int(meta.get("n_examples", 0))
        examples_per_language = meta.get("examples_per_language")
        say(
            f"Reusing cached token counts from {cache_path} (same dataset, tokenizer, vocab_size={vocab_size} and "
            f"max_sequence_length={config.model.inference.max_sequence_length}); nothing re-tokenised"
        )
    else:
        data = prepare_training_dataset(config.dataset, config.model.language_codes, verbose=verbose)
        tokenizer = configure(model.tokenizer, config.model.inference.max_sequence_length)
        names = " + ".join(spec.name for spec in config.model.model_specs)
        if executor == "ray":

            counter = ray_count_dataset(data, tokenizer, vocab_size, batch_size, address=address, progress=verbose, model_name=names)
        else:
            counter = count_dataset(data, tokenizer, vocab_size, batch_size, num_workers, progress=verbose, model_name=names)
        counts, per_language, languages = counter.counts, counter.per_language(), list(data.languages)
        n_examples = len(data)
        examples_per_language = dict(data.report.per_language)
        metadata = {"n_examples": n_examples, "examples_per_language": examples_per_language, "cache_key": key}
        if use_cache and counts.any():
            _store_in_cache(cache_path, counts, per_language, languages, metadata)

    if not counts.any():  # never an all-zero counts file: every mask built from it would remove every token
        where = f"; nothing written to {output}" if output is not None else ""
        raise WLDetectError(
            f"dataset {config.dataset.name}: no token counted in {n_examples:,} usable examples{where}"
        )
    if output is not None:
        output = Path(output)
        if cached is not None or use_cache:
            paths = _copy_set(cache_path / COUNTS_FILE, output)
        else:
            paths = save_token_counts(output, counts, per_language, languages, metadata)
    else:
        paths = (cache_path / COUNTS_FILE, *per_language_paths(cache_path / COUNTS_FILE))
    result = TokenCounts(
        counts=counts,
        per_language=per_language,
        languages=languages,
        counts_path=paths[0],
        per_language_path=paths[1],
        languages_path=paths[2],
        n_examples=n_examples,
        from_cache=cached is not None,
        cache_path=cache_path if use_cache else None,
        examples_per_language=examples_per_language,
    )
    say(result.summary())
    if verbose and output is not None:
        say(f"Saved per-language counts to {result.per_language_path} ({len(languages)} languages in {result.languages_path.name})")
    return result


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


DEFAULT_BLOCK_EXAMPLES = 65_536  # ~2.6 M tokens of OpenLID text: seconds of work per task, ~1,850 tasks


class _BlockCounter:
    """A Ray Data actor: holds the examples, labels and tokenizer once; counts blocks of examples."""

    shared: list = []  # [ObjectRef of (texts, labels, tokenizer JSON, vocab size, model name, batch size)]

    def __init__(self):
        import ray

        texts, labels, tokenizer_json, vocab_size, model_name, batch_size = ray.get(self.shared[0])
        self.texts, self.labels = texts, labels
        self.tokenizer = Tokenizer.from_str(tokenizer_json)  # with the driver's truncation, no padding
        self.vocab_size, self.model_name, self.batch_size = vocab_size, model_name, batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keys, counts = [], []
        for start, stop in zip(batch["start"].tolist(), batch["stop"].tolist()):
            block_keys, block_counts = count_block(
                self.tokenizer, self.texts, self.labels, start, stop, self.vocab_size, self.batch_size, self.model_name
            )
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
) -> TokenCounter:
    """`count_dataset` on Ray Data: the examples (a `TrainingData`, selected by the same code as the
    single-process count) are cut into blocks of `block_examples`; actors tokenise each block and reduce it to
    (language x vocab key, count) pairs with `count_block`; the driver sums them into a `TokenCounter`.
    Integer sums in any order: the result is the single-process count, bit for bit."""
    block_examples = DEFAULT_BLOCK_EXAMPLES if block_examples is None else int(block_examples)
    if block_examples <= 0:
        raise WLDetectError(f"block size must be positive, got {block_examples}")
    ray = init_ray(address)
    from ray.data import ActorPoolStrategy

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # a summary line below, not a log line a second
    counter = TokenCounter(vocab_size, len(data.languages), model_name)
    n = len(data)
    if n == 0:
        return counter
    blocks = [{"start": s, "stop": min(s + block_examples, n)} for s in range(0, n, block_examples)]
    texts = data.dataset.select_columns(["text"])
    shared = ray.put((texts, np.asarray(data.labels), tokenizer.to_str(), int(vocab_size), model_name, int(batch_size)))
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
