"""Step 1: tokenise the training examples once, store their token ids, and count how often each id occurs.

The counts decide which tokens the mask (step 2) zeroes, so they must match what training feeds the model:
the same filtered, capped, balanced examples, the same truncation, no padding and no special tokens. The
vocab size is the number of embedding rows (Gemma3 has more rows than its tokenizer has tokens), so an id the
tokenizer can never produce still gets a (zero) count and every array in the project has the same length.

It writes step 1's files (`wldetect.steps.count_files`: the counts, per-language counts and the token ids
of every example), caches them by dataset, tokenizer, V and truncation, and shows what was counted
(`language_summary`, `top_tokens`). The later steps read those files through `count_files`, never through
this module, which needs the tokenizer, the dataset libraries and, optionally, Ray.
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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse
from tokenizers import Tokenizer
from tqdm import tqdm  # the text bar: papermill and logs record it (tqdm.auto needs ipywidgets)

from wldetect.config import TrainingConfig, cache_dir, load_training_config
from wldetect.errors import WLDetectError
from wldetect.io import atomic_path, check_output_path, write_text_atomic
from wldetect.sources import demo
from wldetect.sources.data import prepare_training_dataset
from wldetect.sources.models import load_model
from wldetect.steps.count_files import (
    CHUNK_EXAMPLES,
    COUNTS_FILE,
    TOKEN_IDS_RECORD,
    TokenCounts,
    TokenIdsWriter,
    TokenizedCorpus,
    finish_token_ids,
    load_per_language_counts,
    per_language_paths,
    save_token_counts,
    token_ids_path,
    write_chunk,
)
from wldetect.tokenization import configure, encode_texts
from wldetect.vocab import describe_tokens
from wldetect.workflow.executors import check_executor, init_ray

if TYPE_CHECKING:  # pandas is imported where tables are built, not at import time
    import pandas as pd

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
