"""Batch tokenisation shared by counting, training and detection (NumPy only: the detector imports it).

Texts go to the Rust tokenizer in one `encode_batch_fast` call and come back as one flat int64 array of ids
plus per-text lengths: the layout `np.bincount` (counting) and `np.add.reduceat`-style pooling (detection)
work on without a Python loop per token.

The tokenizer spreads a batch call over its own (Rayon) thread pool unless `TOKENIZERS_PARALLELISM` says
off; it reads that variable at every batch call, not once. Counting and training leave it as the user set
it; the detector, which runs its own `num_threads` threads, encodes inside `tokenizer_parallelism_off()`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain

import numpy as np
from tokenizers import Tokenizer


@dataclass
class EncodedBatch:
    ids: np.ndarray  # int64 (total_tokens,), all texts back to back
    lengths: np.ndarray  # int64 (n_texts,)

    @property
    def offsets(self) -> np.ndarray:
        """Start of each text in `ids` (n_texts + 1 entries, the last is total_tokens)."""
        return np.concatenate([[0], np.cumsum(self.lengths)])


def configure(tokenizer: Tokenizer, max_length: int | None) -> Tokenizer:
    """No padding ever; truncation only where `max_sequence_length` says so."""
    tokenizer.no_padding()
    if max_length is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_length)
    return tokenizer


def encode_texts(tokenizer: Tokenizer, texts: list[str]) -> EncodedBatch:
    """Token ids of each text with no special tokens added ([CLS], [SEP], <bos> never reach the model)."""
    # encode_batch_fast skips character offsets, which nothing here uses; `.ids` is read once per text
    # because each access converts a Rust vector into a new Python list.
    id_lists = [encoding.ids for encoding in tokenizer.encode_batch_fast(texts, add_special_tokens=False)]
    lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
    ids = np.fromiter(chain.from_iterable(id_lists), dtype=np.int64, count=int(lengths.sum()))
    return EncodedBatch(ids=ids, lengths=lengths)


PARALLELISM_VARIABLE = "TOKENIZERS_PARALLELISM"
_OFF_VALUES = ("", "off", "false", "f", "no", "n", "0")  # what the Rust library reads as off
_parallelism_lock = threading.Lock()
_parallelism_holders = 0
_parallelism_saved: str | None = None


def _says_off(value: str | None) -> bool:
    return value is not None and value.lower() in _OFF_VALUES


@contextmanager
def tokenizer_parallelism_off() -> Iterator[None]:
    """Batch calls made inside (from any thread) run on the calling thread only, not on the tokenizer's pool.

    Sets `TOKENIZERS_PARALLELISM=false` while at least one caller is inside and then puts back what was
    there (unset stays unset, so the library's own fork-safety default is untouched); a variable that
    already says off is left alone. Batch calls that other threads make meanwhile run serially too. A
    program whose other threads tokenise at the same time should set the variable to false at start-up:
    `setenv` racing a `getenv` in the Rust library is not safe, and with the variable off nothing is set here.
    """
    global _parallelism_holders, _parallelism_saved
    with _parallelism_lock:
        if _parallelism_holders == 0:
            _parallelism_saved = os.environ.get(PARALLELISM_VARIABLE)
            if not _says_off(_parallelism_saved):
                os.environ[PARALLELISM_VARIABLE] = "false"
        _parallelism_holders += 1
    try:
        yield
    finally:
        with _parallelism_lock:
            _parallelism_holders -= 1
            if _parallelism_holders == 0 and not _says_off(_parallelism_saved):
                if os.environ.get(PARALLELISM_VARIABLE) == "false":  # not changed by someone else meanwhile
                    if _parallelism_saved is None:
                        del os.environ[PARALLELISM_VARIABLE]
                    else:
                        os.environ[PARALLELISM_VARIABLE] = _parallelism_saved
