"""WLDetect: language identification from an artifacts directory with NumPy alone (no torch, no transformers).

A text is tokenised, each token's row of the lookup table is its language logits, and the rows are pooled
over the text as the model was trained to pool them (`logsumexp`, `max` or `average`). Texts go through in
chunks of 2,048: one `encode_batch` call, one row gather and one `np.*.reduceat` per pooling step each, with
no Python loop over tokens, and none over texts except to build the returned tuples.

    >>> from wldetect import WLDetect
    >>> wld = WLDetect.load("artifacts/demo")
    >>> wld.predict("Der Hund läuft nach Hause.")
    ('deu_Latn', 0.97...)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from tokenizers import Tokenizer

from wldetect.errors import WLDetectError
from wldetect.lookup import FILE_NAMES, FORMATS, load_lookup_table
from wldetect.tokenization import configure, encode_texts

MODEL_CONFIG_FILE = "model_config.yaml"
TOKENIZER_FILE = "tokenizer.json"
_TEXTS_PER_CHUNK = 2048  # texts per encode_batch + gather: the gathered rows stay cache-sized (measured best)


class TablePooler:
    """Pools lookup-table rows over texts given as flat token ids plus per-text lengths, fully vectorised.

    The table is kept transposed, (n_languages, vocab_size), so that the gather and `np.*.reduceat` run along
    the contiguous last axis: `reduceat` over axis 0 of a (tokens, languages) array is several times slower.

    `logsumexp` uses a table of `exp(table - column_max)` computed once, so pooling a batch is one gather, one
    `np.add.reduceat` and a log of the (languages, texts) result, with no per-token max, subtraction or exp.
    Those values lie in (0, 1], so a sum of <= max_sequence_length of them cannot overflow; a text whose sum
    comes near float32's underflow in some language (its tokens all ~70 below that language's best token
    anywhere in the vocabulary) is recomputed exactly, so the result equals the textbook max-shifted form.
    """

    _UNDERFLOW_GUARD = np.float32(1e-30)  # exp(-69): far above float32's smallest normal (1.2e-38)

    def __init__(self, table: np.ndarray, pooling: str):
        if pooling not in ("logsumexp", "max", "average"):
            raise WLDetectError(f"pooling {pooling!r}: expected logsumexp, max or average")
        self.pooling = pooling
        self.n_languages = table.shape[1]
        self.table_t = np.ascontiguousarray(np.asarray(table, dtype=np.float32).T)
        if pooling == "logsumexp":
            self.shift = self.table_t.max(axis=1, keepdims=True)
            self.exp_table_t = np.exp(self.table_t - self.shift)

    def __call__(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Pooled logits (n_texts, n_languages); a text with no tokens gets all-zero logits."""
        lengths = np.asarray(lengths, dtype=np.int64)
        pooled = np.zeros((len(lengths), self.n_languages), dtype=np.float32)
        nonempty = lengths > 0
        if not nonempty.any():
            return pooled
        kept_lengths = lengths[nonempty]
        starts = np.cumsum(lengths)[nonempty] - kept_lengths  # strictly increasing: empty texts left out
        if self.pooling == "max":
            result = np.maximum.reduceat(np.take(self.table_t, ids, axis=1), starts, axis=1)
        elif self.pooling == "average":
            result = np.add.reduceat(np.take(self.table_t, ids, axis=1), starts, axis=1) / kept_lengths
        else:
            sums = np.add.reduceat(np.take(self.exp_table_t, ids, axis=1), starts, axis=1)
            risky = (sums < self._UNDERFLOW_GUARD).any(axis=0)
            result = np.log(np.maximum(sums, np.float32(1e-45))) + self.shift
            if risky.any():
                result[:, risky] = self._exact_logsumexp(ids, starts[risky], kept_lengths[risky])
        pooled[nonempty] = result.T
        return pooled

    def _exact_logsumexp(self, ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """max-shifted logsumexp of the texts at `starts` (rare: only texts near underflow come here)."""
        positions = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(int(lengths.sum()))
        sub_starts = np.cumsum(lengths) - lengths
        logits = np.take(self.table_t, ids[positions], axis=1)
        peak = np.maximum.reduceat(logits, sub_starts, axis=1)
        shifted = np.exp(logits - np.repeat(peak, lengths, axis=1))
        return peak + np.log(np.add.reduceat(shifted, sub_starts, axis=1))


def pool_logits(table: np.ndarray, ids: np.ndarray, lengths: np.ndarray, pooling: str) -> np.ndarray:
    """Pooled logits (n_texts, n_languages) of texts given as flat token ids and per-text lengths."""
    return TablePooler(table, pooling)(ids, lengths)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=-1, keepdims=True)
    return shifted


class WLDetect:
    """A language identifier: a lookup table, its languages, a tokenizer and a pooling."""

    def __init__(
        self,
        table: np.ndarray,
        languages: list[str],
        tokenizer: Tokenizer,
        *,
        pooling: str = "logsumexp",
        max_sequence_length: int | None = 512,
        table_format: str = "fp32",
        path: Path | None = None,
    ):
        if table.ndim != 2 or table.shape[1] != len(languages):
            raise WLDetectError(f"lookup table of shape {table.shape} does not fit {len(languages)} languages")
        self.pooler = TablePooler(table, pooling)
        self.languages = list(languages)
        self.tokenizer = configure(tokenizer, max_sequence_length)
        self.pooling = pooling
        self.max_sequence_length = max_sequence_length
        self.table_format = table_format
        self.path = path
        self._language_array = np.asarray(self.languages, dtype=object)

    @property
    def table(self) -> np.ndarray:
        """The (dequantised) lookup table, (vocab_size, n_languages): a view of the pooler's transposed copy."""
        return self.pooler.table_t.T

    @classmethod
    def load(cls, path: str | Path, table: str = "e3m4") -> WLDetect:
        """Load an artifacts directory: `model_config.yaml`, `tokenizer.json` and one lookup table.

        `table` is `e3m4` (default), `e4m3fn` or `fp32`.
        """
        path = Path(path)
        if table not in FORMATS:
            raise WLDetectError(f"table {table!r}: expected one of {', '.join(FORMATS)}")
        if not path.is_dir():
            raise WLDetectError(f"{path}: not an artifacts directory")
        config_path = path / MODEL_CONFIG_FILE
        if not config_path.is_file():
            raise WLDetectError(f"{path}: {MODEL_CONFIG_FILE} not found")
        try:
            config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
            language_index = config["languages"]
            languages = sorted(language_index, key=language_index.__getitem__)
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
            raise WLDetectError(f"{config_path}: expected a model config with a 'languages' mapping") from None
        inference = config.get("inference") or {}
        tokenizer_path = path / TOKENIZER_FILE
        if not tokenizer_path.is_file():
            raise WLDetectError(f"{path}: {TOKENIZER_FILE} not found")
        lookup = load_lookup_table(path / FILE_NAMES[table])
        if lookup.languages is not None and lookup.languages != languages:
            raise WLDetectError(f"{lookup.path}: its languages differ from those of {config_path}")
        return cls(
            lookup.values,
            languages,
            Tokenizer.from_file(str(tokenizer_path)),
            pooling=inference.get("pooling", "logsumexp"),
            max_sequence_length=inference.get("max_sequence_length", 512),
            table_format=table,
            path=path,
        )

    def pooled_logits(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(n_texts, n_languages) pooled logits, and a bool array: True where the text had tokens."""
        logits = np.empty((len(texts), len(self.languages)), dtype=np.float32)
        has_tokens = np.empty(len(texts), dtype=bool)
        for start in range(0, len(texts), _TEXTS_PER_CHUNK):
            chunk = texts[start : start + _TEXTS_PER_CHUNK]
            encoded = encode_texts(self.tokenizer, chunk)
            logits[start : start + len(chunk)] = self.pooler(encoded.ids, encoded.lengths)
            has_tokens[start : start + len(chunk)] = encoded.lengths > 0
        return logits, has_tokens

    def predict_indices(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Index of the best language of each text (-1: no tokens) and its softmax probability."""
        logits, has_tokens = self.pooled_logits(texts)
        best = logits.argmax(axis=1)
        # softmax of the winner without materialising all probabilities: 1 / sum(exp(l - max))
        shifted = logits - logits[np.arange(len(best)), best][:, None]
        confidence = 1.0 / np.exp(shifted).sum(axis=1)
        return np.where(has_tokens, best, -1), np.where(has_tokens, confidence, 0.0)

    def predict(self, text: str | list[str], top_k: int | None = None):
        """`(language, confidence)` of a text, or a list of them for a list of texts (None for empty text).

        With `top_k`, each result is instead a list of the k best `(language, probability)` pairs.
        """
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        if top_k is None:
            best, confidence = self.predict_indices(texts)
            languages = self._language_array[np.maximum(best, 0)]
            results = [
                (lang, float(conf)) if idx >= 0 else None
                for lang, conf, idx in zip(languages.tolist(), confidence.tolist(), best.tolist())
            ]
        else:
            if top_k < 1:
                raise WLDetectError(f"top_k must be at least 1, got {top_k}")
            logits, has_tokens = self.pooled_logits(texts)
            probabilities = softmax(logits)
            k = min(top_k, len(self.languages))
            order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
            top = np.take_along_axis(probabilities, order, axis=1)
            results = [
                [(self.languages[i], float(p)) for i, p in zip(row_order, row_p)] if ok else None
                for row_order, row_p, ok in zip(order.tolist(), top.tolist(), has_tokens.tolist())
            ]
        return results[0] if single else results

    def __repr__(self) -> str:
        return (
            f"WLDetect({len(self.languages)} languages, vocab {self.table.shape[0]:,}, {self.table_format} table, "
            f"{self.pooling} pooling)"
        )
