"""WLDetect: language identification from an artifacts directory with NumPy alone (no torch, no transformers).

A text is tokenised, each token's row of the lookup table is its language logits, and the rows are pooled
over the text as the model was trained to pool them (`logsumexp`, `max` or `average`).

- One text: `encode_batch_fast([text])`, one row gather, one reduction, then argmax and confidence on the
  1-D row: seven NumPy calls for `average` pooling, inline in `predict`. A one-text batch is the cheapest
  exact way to the ids: `encode` also converts every token's offsets to character offsets (~20% of its
  time), and the tokenizer's thread pool never gets a batch of one (Rayon splits only batches of two or
  more), so it runs on the calling thread whatever `TOKENIZERS_PARALLELISM` says.
- A list: chunks of up to 2,048 texts, at least four per thread so that the threads finish together, each one
  `encode_batch_fast` call, then `TablePooler.pool_in_groups` (a padded gather and a reduction per group of
  texts of similar length). Chunks run on `num_threads` threads (the tokenizer releases the GIL, and so
  does NumPy on arrays this size), with the tokenizer's own thread pool switched off for the call
  (`tokenizer_parallelism_off`): `num_threads` is all the parallelism there is, and `num_threads=1` is one
  core.

Both pool with the same float operations in the same order (`TablePooler.pool_one`, `pool_in_groups`), so a
text gets the same logits and language alone or in any batch, on any number of threads. A text without
language evidence (no token with a letter in it, see `evidence_tokens`) gets None.

    >>> from wldetect import WLDetect
    >>> wld = WLDetect.load("artifacts/demo")
    >>> wld.predict("Der Hund läuft nach Hause.")
    ('deu_Latn', 0.97...)
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from wldetect.artifacts import MODEL_CONFIG_FILE, TOKENIZER_FILE, read_model_config
from wldetect.errors import WLDetectError
from wldetect.lookup import FILE_NAMES, FORMATS, LookupTable, load_lookup_table
from wldetect.pooling import POOLINGS, TablePooler
from wldetect.published import (
    EXP_TABLE_FILE,
    ExpTable,
    ExpTablePooler,
    hub_tokenizer_file,
    is_published_layout,
    load_exp_table,
    published_settings,
)
from wldetect.tokenization import configure, encode_texts, tokenizer_parallelism_off

_TEXTS_PER_CHUNK = 2048  # texts per encode_batch_fast call at most
_CHUNKS_PER_THREAD = 4  # at least, so that threads given texts of unequal lengths finish together
_MIN_TEXTS_PER_THREAD = 64  # below this a chunk costs more to hand to a thread than to pool in place
_LETTER = re.compile(r"[^\W\d_]")  # a letter of any script: a word character that is not a digit or "_"
_TOKENS_PER_EVIDENCE_BLOCK = 1 << 16  # token strings held at once while computing the evidence mask
_UNICODE_SIZE = 0x110000
# Characters per token kept before tokenising, as a multiple of the vocabulary's longest token: 2, because a
# normaliser that composes characters (NFKC: "e" + U+0301 -> "é") can shrink the text before tokens are cut
_CHARACTER_BOUND_MARGIN = 2


class InputTypeError(WLDetectError, TypeError):
    """`predict` was given something that is not a text or texts (a dict, a DataFrame, bytes, a number).

    A `TypeError`, as Python code expects of a wrong argument type, and a `WLDetectError`, so the CLI prints
    it in one line like every other user error."""


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform has one, else every core)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def evidence_tokens(tokenizer: Tokenizer, n_rows: int) -> np.ndarray:
    """Which token ids are language evidence: bool (n_rows,), True where the token's string has a letter.

    A token without a letter of any script says nothing about the language: punctuation, digits, symbols,
    emoji, whitespace and markers (WordPiece "##", SentencePiece "▁"). Special tokens ([CLS], <bos>), the
    unknown token ([UNK], <unk>) and byte-fallback pieces (<0xF0>) are never evidence either, whatever they
    spell. Rows beyond the tokenizer's ids are never produced. Byte-level BPE vocabularies (GPT-2 style) spell
    bytes as Latin-1 letters, so there every token that is not special counts as evidence.

    The vocabulary strings are read (one `id_to_token` per id, the cheapest way out of the tokenizer: ~0.17 s
    for 262k tokens, where `get_vocab` takes ~0.3 s), and tested with NumPy: each block's strings become one
    array of code points, each distinct code point is tested against `_LETTER` once, and a cumulative count
    says which strings hold one (~0.04 s for 262k tokens, where a regular-expression search per token took
    ~0.06-0.2 s).
    """
    return _scan_vocabulary(tokenizer, n_rows)[0]


def _scan_vocabulary(tokenizer: Tokenizer, n_rows: int) -> tuple[np.ndarray, int]:
    """`evidence_tokens`, and the length in characters of the longest token string (the one pass over the
    vocabulary's strings gives both; the detector bounds the characters of a text it tokenises by it)."""
    added = tokenizer.get_added_tokens_decoder()  # id -> AddedToken
    n_ids = max(tokenizer.get_vocab_size(with_added_tokens=False), max(added, default=-1) + 1)
    if n_ids > n_rows:
        raise WLDetectError(f"the tokenizer has {n_ids:,} token ids but the lookup table only {n_rows:,} rows")
    evidence = np.zeros(n_rows, dtype=bool)
    letters = _LetterTest()
    id_to_token = tokenizer.id_to_token
    for start in range(0, n_ids, _TOKENS_PER_EVIDENCE_BLOCK):
        stop = min(start + _TOKENS_PER_EVIDENCE_BLOCK, n_ids)
        evidence[start:stop] = letters.any_in([token or "" for token in map(id_to_token, range(start, stop))])
    model = tokenizer.model
    unknown = getattr(model, "unk_token", None)
    byte_pieces = [f"<0x{byte:02X}>" for byte in range(256)] if getattr(model, "byte_fallback", False) else []
    for token in [unknown, *byte_pieces]:
        if token is not None and tokenizer.token_to_id(token) is not None:
            evidence[tokenizer.token_to_id(token)] = False
    evidence[[i for i, token in added.items() if token.special]] = False
    return evidence, letters.longest


class _LetterTest:
    """`bool(_LETTER.search(string))` for many strings at once; each distinct character is tested once."""

    def __init__(self):
        self.tested = np.zeros(_UNICODE_SIZE, dtype=bool)
        self.is_letter = np.zeros(_UNICODE_SIZE, dtype=bool)
        self.longest = 0  # code points of the longest string seen

    def any_in(self, strings: list[str]) -> np.ndarray:
        lengths = np.fromiter(map(len, strings), dtype=np.intp, count=len(strings))  # in code points
        self.longest = max(self.longest, int(lengths.max(initial=0)))
        codes = np.frombuffer("".join(strings).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        new = np.unique(codes[~self.tested[codes]])
        if len(new):
            self.is_letter[new] = [_LETTER.match(chr(code)) is not None for code in new.tolist()]
            self.tested[new] = True
        letters_before = np.zeros(len(codes) + 1, dtype=np.intp)  # letters among the first i code points
        np.cumsum(self.is_letter[codes], out=letters_before[1:])
        ends = np.cumsum(lengths)
        return letters_before[ends] > letters_before[ends - lengths]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=-1, keepdims=True)
    return shifted


def _best_with_confidence(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's best language and its softmax probability, 1 / sum(exp(l - max)), without
    materialising all probabilities."""
    # ufunc methods straight, not `.max()`/`.sum()` (a Python frame each)
    shifted = np.subtract(logits, np.maximum.reduce(logits, axis=1, keepdims=True))
    return logits.argmax(axis=1), 1.0 / np.add.reduce(np.exp(shifted, out=shifted), axis=1)


def _text_error(texts: list, error: Exception) -> WLDetectError:
    """The one-line error for the first text the tokenizer cannot take (found only once it has failed)."""
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            return WLDetectError(f"text {index}: expected str, got {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            return WLDetectError(
                f"text {index}: not valid Unicode (lone surrogate {text[err.start]!r} at character {err.start})"
            )
    return WLDetectError(f"the tokenizer refused the texts: {str(error).splitlines()[0]}")


class WLDetect:
    """A language identifier: a lookup table, its languages, a tokenizer and a pooling.

    `num_threads` (default: every core this process may use) is all the parallelism a list of texts gets:
    that many threads, each tokenising its own chunks with the tokenizer's own thread pool switched off for
    the call. `num_threads=1` stays on one core, whatever `TOKENIZERS_PARALLELISM` or `RAYON_NUM_THREADS`
    say; a single text always runs on the calling thread.
    """

    def __init__(
        self,
        table: np.ndarray | LookupTable | ExpTable,
        languages: list[str],
        tokenizer: Tokenizer,
        *,
        pooling: str = "logsumexp",
        max_sequence_length: int | None = 512,
        table_format: str = "fp32",
        path: Path | None = None,
        num_threads: int | None = None,
    ):
        if len(table.shape) != 2 or table.shape[1] != len(languages):
            raise WLDetectError(f"lookup table of shape {table.shape} does not fit {len(languages)} languages")
        positive = isinstance(num_threads, int) and not isinstance(num_threads, bool) and num_threads > 0
        if num_threads is not None and not positive:
            raise WLDetectError(f"num_threads must be a positive integer, got {num_threads!r}")
        self.num_threads = num_threads or available_cores()
        evidence, longest_token = _scan_vocabulary(tokenizer, table.shape[0])
        pooler = ExpTablePooler if isinstance(table, ExpTable) else TablePooler  # exp table: the published layout
        self.pooler = pooler(table, pooling, evidence, self.num_threads)
        self.max_characters = character_bound(max_sequence_length, longest_token)
        self.languages = list(languages)
        self.tokenizer = configure(tokenizer, max_sequence_length)
        self._encode_batch = self.tokenizer.encode_batch_fast  # bound once each: the single-text path calls
        self._pool_one = self.pooler.pool_one
        self.pooling = pooling
        self.max_sequence_length = max_sequence_length
        self.table_format = table_format
        self.path = path
        self._executor: ThreadPoolExecutor | None = None

    @property
    def table(self) -> np.ndarray:
        """The (dequantised) lookup table, (vocab_size, n_languages), computed from the stored table on access."""
        return self.pooler.source.values

    @classmethod
    def load(
        cls,
        path: str | Path,
        table: str = "e3m4",
        num_threads: int | None = None,
        tokenizer: str | Path | None = None,
    ) -> WLDetect:
        """Load a model directory: this project's artifacts (`model_config.yaml`, `tokenizer.json`, one lookup
        table) or the published WordLlamaDetect layout (`model_config.yaml`, `lookup_table_exp.safetensors`).

        `table` is `e3m4` (default), `e4m3fn` or `fp32`; a published-layout directory has its one exp table,
        dense or sparse (see `wldetect.published`). `tokenizer`: a `tokenizer.json` to use instead of the
        directory's; a published directory without one falls back to the hub repo its `inference.tokenizer`
        names (needs huggingface_hub and network or its cache). `num_threads`: see the class. Every file is
        checked here, so a damaged directory fails at load in one line rather than on the first text that
        reaches the damage.
        """
        path = Path(path)
        if table not in FORMATS:
            raise WLDetectError(f"table {table!r}: expected one of {', '.join(FORMATS)}")
        if not path.is_dir():
            raise WLDetectError(f"{path}: not an artifacts directory")
        config_path = path / MODEL_CONFIG_FILE
        config, languages = read_model_config(path)
        pooling, max_sequence_length = _inference_settings(config, config_path)
        published = is_published_layout(path, tuple(FILE_NAMES.values()))
        tokenizer_path = Path(tokenizer) if tokenizer is not None else path / TOKENIZER_FILE
        if tokenizer is not None and not tokenizer_path.is_file():
            raise WLDetectError(f"tokenizer {tokenizer_path}: file not found")
        if published:
            hub_repo = published_settings(config, config_path)
            if not tokenizer_path.is_file():
                tokenizer_path = hub_tokenizer_file(hub_repo, config_path, path)
        if not tokenizer_path.is_file():
            raise WLDetectError(f"{path}: {TOKENIZER_FILE} not found")
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as err:  # the Rust side raises plain Exception for any malformed file
            raise WLDetectError(f"{tokenizer_path}: not a readable tokenizer ({str(err).splitlines()[0]})") from None
        if published:
            if pooling != "logsumexp":
                raise WLDetectError(
                    f"{config_path}: inference.pooling {pooling!r}: an exp table is pooled with logsumexp"
                )
            lookup = load_exp_table(path / EXP_TABLE_FILE)
            table = lookup.format
        else:
            lookup = load_lookup_table(path / FILE_NAMES[table])
        if lookup.languages is not None and lookup.languages != languages:
            raise WLDetectError(f"{lookup.path}: its languages differ from those of {config_path}")
        return cls(
            lookup,
            languages,
            tokenizer,
            pooling=pooling,
            max_sequence_length=max_sequence_length,
            table_format=table,
            path=path,
            num_threads=num_threads,
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        table: str = "e3m4",
        num_threads: int | None = None,
        revision: str | None = None,
    ) -> WLDetect:
        """Load a model from a local artifacts directory (as `load`) or from a Hugging Face hub repository.

        A repo id (`owner/name`) is fetched with `huggingface_hub.snapshot_download`, the model's files only
        (`model_config.yaml`, `tokenizer.json` and the `table` asked for, or the published layout's
        `lookup_table_exp.safetensors`, at `revision`), into the hub cache;
        offline (`HF_HUB_OFFLINE=1`) the cached snapshot is used. Needs `huggingface_hub`
        (`pip install 'wldetect[hub]'`); a local directory does not.
        """
        if table not in FORMATS:
            raise WLDetectError(f"table {table!r}: expected one of {', '.join(FORMATS)}")
        name = str(name_or_path)
        local = Path(os.path.expanduser(name))
        if local.is_dir():
            return cls.load(local, table=table, num_threads=num_threads)
        if isinstance(name_or_path, Path) or name.startswith((".", "/", "~")) or name.count("/") != 1:
            raise WLDetectError(f"{name}: not a local directory and not a hub repo id (owner/name)")
        try:
            from huggingface_hub import snapshot_download
        except ImportError:
            raise WLDetectError(
                f"{name}: loading from the hub needs huggingface_hub: pip install 'wldetect[hub]'"
            ) from None
        files = [MODEL_CONFIG_FILE, TOKENIZER_FILE, FILE_NAMES[table], EXP_TABLE_FILE]  # exp: the published layout
        try:
            directory = snapshot_download(name, revision=revision, allow_patterns=files)
        except Exception as err:  # offline and not cached, unknown repo or revision, network, gated repo
            first_line = (str(err).strip().splitlines() or [""])[0]
            raise WLDetectError(
                f"{name}: could not fetch the model from the hub ({type(err).__name__}: {first_line})"
            ) from None
        return cls.load(directory, table=table, num_threads=num_threads)

    def pooled_logits(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(n_texts, n_languages) pooled logits, and a bool array: True where the text has language evidence
        (logits of texts without are left at 0). Each text is read up to `max_characters` (see
        `character_bound`)."""
        logits = np.zeros((len(texts), len(self.languages)), dtype=np.float32)
        has_evidence = np.zeros(len(texts), dtype=bool)

        def pool_chunk(start: int) -> None:
            chunk = [
                text[:limit] if isinstance(text, str) and len(text) > limit else text
                for text in texts[start : start + texts_per_chunk]
            ]
            try:
                encoded = encode_texts(self.tokenizer, chunk)
            except Exception as err:  # a non-string or a lone surrogate: the tokenizer refuses the whole chunk
                raise _text_error(chunk, err) from None
            nonempty = np.flatnonzero(encoded.lengths)
            if len(nonempty):
                pooled, evidence = self.pooler.pool_in_groups(
                    encoded.ids, encoded.offsets[nonempty], encoded.lengths[nonempty]
                )
                with_evidence = evidence > 0
                found = start + nonempty[with_evidence]
                logits[found] = pooled[with_evidence]
                has_evidence[found] = True

        limit = self.max_characters
        threads = min(self.num_threads, max(1, len(texts) // _MIN_TEXTS_PER_THREAD))
        per_chunk = -(-len(texts) // (threads * _CHUNKS_PER_THREAD)) if threads > 1 else len(texts)
        texts_per_chunk = max(1, min(_TEXTS_PER_CHUNK, max(_MIN_TEXTS_PER_THREAD, per_chunk)))
        starts = range(0, len(texts), texts_per_chunk)
        with tokenizer_parallelism_off():  # the threads here are all the parallelism: one thread, one core
            if threads == 1:
                for start in starts:
                    pool_chunk(start)
            else:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(self.num_threads, thread_name_prefix="wldetect")
                for _ in self._executor.map(pool_chunk, starts):
                    pass
        return logits, has_evidence

    def predict_indices(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Index of the best language of each text (-1: no language evidence) and its softmax probability."""
        logits, has_evidence = self.pooled_logits(texts)
        best, confidence = _best_with_confidence(logits)
        return np.where(has_evidence, best, -1), np.where(has_evidence, confidence, 0.0)

    def predict(self, text: str | list[str], top_k: int | None = None):
        """`(language, confidence)` of a text, or a list of them for a list of texts; None for a text
        without language evidence (empty, or only symbols, digits, punctuation, emoji or unknown tokens).

        With `top_k`, each result is instead a list of the k best `(language, probability)` pairs.

        Texts: a str, or any iterable of str (list, tuple, generator, 1-D NumPy array, pandas Series), whose
        results come back as a list in its order. A mapping (dict) or a DataFrame is refused
        (`InputTypeError`, a TypeError): iterating one gives its keys or column names, not its texts. A text
        is read up to `max_characters` characters, enough for the model's `max_sequence_length` tokens.
        """
        if top_k is None and isinstance(text, str):  # one text: inline, one Python frame (pool_one) below this
            if len(text) > self.max_characters:  # a 20 MB line: only the tokens the model reads are made
                text = text[: self.max_characters]
            try:
                ids = self._encode_batch([text], False, False)[0].ids  # (is_pretokenized, add_special_tokens)
            except Exception as err:  # a lone surrogate: the tokenizer cannot take the string at all
                raise _text_error([text], err) from None
            logits = self._pool_one(ids) if ids else None
            if logits is None:
                return None
            # `_best_with_confidence` of the 1-D row: the same float operations (the max is the best entry,
            # and a row's sum is the same pairwise sum alone as in a 2-D array)
            best = logits.argmax()
            shifted = np.subtract(logits, logits[best])
            return self.languages[best], float(1.0 / np.add.reduce(np.exp(shifted, out=shifted)))
        if isinstance(text, str):
            _check_top_k(top_k)
            logits = self._pooled_logits_of_one(text)
            return None if logits is None else self._results(logits[None], [True], top_k)[0]
        if top_k is not None:
            _check_top_k(top_k)
        texts = texts_of(text)
        logits, has_evidence = self.pooled_logits(texts)
        return self._results(logits, has_evidence.tolist(), top_k)

    def _pooled_logits_of_one(self, text: str) -> np.ndarray | None:
        """(n_languages,) logits of one text, or None without evidence: what `pooled_logits` gives it in any
        batch, minus everything a batch needs (chunks, threads, flat ids, offsets, result arrays)."""
        if len(text) > self.max_characters:
            text = text[: self.max_characters]
        try:
            ids = self._encode_batch([text], False, False)[0].ids  # (is_pretokenized, add_special_tokens)
        except Exception as err:  # a lone surrogate: the tokenizer cannot take the string at all
            raise _text_error([text], err) from None
        return self.pooler.pool_one(ids) if ids else None

    def _results(self, logits: np.ndarray, has_evidence: list[bool], top_k: int | None) -> list:
        if top_k is None:
            best, confidence = _best_with_confidence(logits)
            return [
                (self.languages[index], conf) if ok else None
                for index, conf, ok in zip(best.tolist(), confidence.tolist(), has_evidence)
            ]
        probabilities = softmax(logits)
        k = min(top_k, len(self.languages))
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(probabilities, order, axis=1)
        return [
            [(self.languages[i], p) for i, p in zip(row_order, row_p)] if ok else None
            for row_order, row_p, ok in zip(order.tolist(), top.tolist(), has_evidence)
        ]

    def __repr__(self) -> str:
        return (
            f"WLDetect({len(self.languages)} languages, vocab {self.pooler.source.shape[0]:,}, {self.table_format} "
            f"table, {self.pooling} pooling, num_threads={self.num_threads})"
        )


def character_bound(max_sequence_length: int | None, longest_token: int) -> int:
    """How many characters of a text the detector tokenises: `max_sequence_length` tokens of at most
    `longest_token` characters each, times `_CHARACTER_BOUND_MARGIN`; unbounded (sys.maxsize) when the model
    reads every token (`max_sequence_length: null`).

    The tokenizer truncates to `max_sequence_length` tokens only after tokenising the whole text, so a 20 MB
    line cost ~20 s and ~1.4 GB before its first 512 tokens were kept. Cut to this many characters first, a
    text still yields at least `max_sequence_length` tokens (no token covers more characters than the longest
    token string), and the tokens the cut changes, at its end, are beyond those the model reads. Whatever the
    tokenizer, the result is that of the text's prefix: `predict(text) == predict(text[:max_characters])`."""
    if max_sequence_length is None:
        return sys.maxsize
    return max_sequence_length * max(longest_token, 1) * _CHARACTER_BOUND_MARGIN


def texts_of(texts) -> list:
    """The texts of `predict`'s argument as a list: any iterable of them, in its order. Mappings, DataFrames,
    sets, bytes, arrays of more than one dimension and non-iterables are refused in one line naming what to
    pass instead (duck-typed: the core imports no pandas)."""
    kind = type(texts).__name__
    if isinstance(texts, Mapping):  # iterating gives the keys: `predict({"a": "Bonjour"})` classified "a"
        raise InputTypeError(
            f"predict got a {kind}: iterating it gives its keys, not texts; pass its texts, e.g. list(d.values())"
        )
    if hasattr(texts, "columns"):  # a pandas (or polars) DataFrame: iterating gives the column names
        raise InputTypeError(f'predict got a {kind}: iterating it gives its column names; pass one column, e.g. df["text"]')
    if isinstance(texts, (set, frozenset)):
        raise InputTypeError(f"predict got a {kind}: it has no order for the results to follow; pass a list, e.g. sorted(s)")
    if isinstance(texts, (bytes, bytearray, memoryview)) or not hasattr(texts, "__iter__"):
        raise InputTypeError(f"predict expects a str or a list of str, got {kind}")
    if getattr(texts, "ndim", 1) != 1:  # a 2-D array iterates over rows, a 0-d one not at all
        raise InputTypeError(f"predict got a {texts.ndim}-dimensional {kind}: pass a 1-D array of texts, e.g. array.ravel()")
    return list(texts)


def _check_top_k(top_k) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise WLDetectError(f"top_k must be a positive integer, got {top_k!r}")


def _inference_settings(config: dict, config_path: Path) -> tuple[str, int | None]:
    """`inference.pooling` and `inference.max_sequence_length` of a model config, checked."""
    inference = config.get("inference") or {}
    if not isinstance(inference, dict):
        raise WLDetectError(f"{config_path}: 'inference' must be a mapping, got {type(inference).__name__}")
    pooling = inference.get("pooling", "logsumexp")
    if pooling not in POOLINGS:
        raise WLDetectError(f"{config_path}: inference.pooling {pooling!r}: expected logsumexp, max or average")
    length = inference.get("max_sequence_length", 512)
    if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 1):
        raise WLDetectError(
            f"{config_path}: inference.max_sequence_length {length!r}: expected a positive integer or null"
        )
    return pooling, length
