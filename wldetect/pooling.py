"""Pooling lookup-table rows over texts, vectorised over a whole batch: the detector and the reports share it.

The model (`wldetect.steps.model`) pools per-token logits in torch while training; after training the table holds
those per-token logits, and `TablePooler` pools them the same way with NumPy, so a text gets the same
language from the torch model, the detector, the quantisation report and the evaluation.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from wldetect.errors import WLDetectError
from wldetect.lookup import LookupTable

POOLINGS = ("logsumexp", "max", "average")
GATHER_BYTES = 1 << 21  # padded rows gathered per reduction (2 MiB: measured best for 42 and 149 columns)
MAX_TEXTS_PER_GATHER = 512


class TablePooler:
    """Pools lookup-table rows over texts given as flat token ids plus where each text starts.

    The pooler holds one float32 array, `rows`, (vocab_size + 1, n_languages + 1), built in one blockwise pass
    over the stored table. Its language columns are the dequantised table for `max`/`average`, and
    `exp(table - column_max)` for `logsumexp`, so that pooling is one gather, one reduction and a log, with no
    per-token max or exp. Those values lie in (0, 1], so a sum of <= max_sequence_length of them cannot
    overflow; a text whose sum comes near float32's underflow in some language (its tokens all ~70 below that
    language's best token anywhere in the vocabulary) is recomputed exactly from the stored table, so the
    result equals the textbook max-shifted form.

    The last column is 1.0 for tokens that are language evidence and 0.0 for the others: the same reduction
    that pools a text's logits tells whether it has evidence, at no extra NumPy call. The last row,
    `pad_id`, is no token: 0 (`max`: -inf) with no evidence, so padding a text with it changes nothing.

    One order of addition for every path. A text's rows are reduced over the token axis with `np.add.reduce`
    (`np.maximum.reduce`), which for rows of two or more columns adds them one after the other, token 0
    first, element-wise across the row (pairwise summation is only used along the contiguous axis). A batch
    is sorted by length and cut into groups whose padded gather (texts x longest x columns, ~GATHER_BYTES)
    stays in cache; a group's reduction over its token axis adds each text's rows in the same order, then
    zeros (x + 0 = x, -0 aside), so a text gets the same logits alone (`pool_one`) and in any batch
    (`pool_in_groups`), whatever its neighbours. This is also the fast way round: `np.add.reduceat` over axis
    0 runs one strided loop per column and per text (149 per text for a 148-language table), the reduction
    here one vectorised add per token.
    """

    _UNDERFLOW_GUARD = np.float32(1e-30)  # exp(-69): far above float32's smallest normal (1.2e-38)
    _ROWS_PER_BLOCK = 1024  # a cache-sized block for the passes over the table (and small scratch per thread)

    def __init__(
        self,
        table: np.ndarray | LookupTable,
        pooling: str,
        evidence: np.ndarray | None = None,
        num_threads: int = 1,
    ):
        """`evidence`: bool per token id (default: every token is evidence); `num_threads` fill the rows."""
        if pooling not in POOLINGS:
            raise WLDetectError(f"pooling {pooling!r}: expected logsumexp, max or average")
        if not isinstance(table, LookupTable):
            table = LookupTable(np.asarray(table, dtype=np.float32), "fp32", 1.0, Path("(array)"))
        self.pooling = pooling
        self._reduce = np.maximum.reduce if pooling == "max" else np.add.reduce
        self.source = table
        self.n_languages = table.shape[1]
        self.shift = table.column_max()  # also refuses a table with inf or NaN
        self.pad_id = table.shape[0]
        self.rows = np.empty((table.shape[0] + 1, self.n_languages + 1), dtype=np.float32)
        self.rows[:-1, -1] = 1.0 if evidence is None else evidence
        self.rows[-1] = -np.inf if pooling == "max" else 0.0
        self.rows[-1, -1] = 0.0
        self._rows_per_gather = max(1, GATHER_BYTES // self.rows[0].nbytes)  # padded rows per group

        def fill(start: int) -> None:  # dequantise (and exponentiate) one cache-sized block
            block = table.rows(slice(start, start + self._ROWS_PER_BLOCK))  # may be a view of the caller's array
            destination = self.rows[start : start + len(block), :-1]
            if pooling == "logsumexp":
                np.exp(np.subtract(block, self.shift, out=destination), out=destination)
            else:
                destination[...] = block

        starts = range(0, table.shape[0], self._ROWS_PER_BLOCK)
        if num_threads > 1 and len(starts) > 1:  # NumPy releases the GIL on blocks this size
            with ThreadPoolExecutor(num_threads) as executor:
                for _ in executor.map(fill, starts):
                    pass
        else:
            for start in starts:
                fill(start)

    def pool_one(self, ids: list[int]) -> np.ndarray | None:
        """Pooled logits (n_languages,) of one text's token ids (at least one), or None when none of its tokens
        is evidence: what `pool_in_groups` gives the text in any batch, in three NumPy calls for `average` (the
        gather, the reduction, the division)."""
        reduced = self._reduce(self.rows.take(ids, axis=0), axis=0)
        if not reduced[-1]:
            return None
        sums = reduced[:-1]
        if self.pooling == "average":
            return np.divide(sums, len(ids), dtype=np.float32)
        if self.pooling == "max":
            return sums
        if sums[sums.argmin()] < self._UNDERFLOW_GUARD:  # near underflow (rare); argmin: a cheap call
            return self._exact_logsumexp(np.asarray(ids), np.zeros(1, np.intp), np.array([len(ids)]))[0]
        np.log(sums, out=sums)  # in place: `reduced` is this call's own array
        sums += self.shift
        return sums

    def pool_in_groups(self, ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pooled logits (n_texts, n_languages) of texts that each have at least one token, and per text
        a float that is 0 when none of its tokens is evidence.

        Text i is `ids[starts[i] : starts[i] + lengths[i]]`. The texts are pooled shortest first, in groups
        padded to their longest text with `pad_id`, each group's gather of about GATHER_BYTES.
        """
        ids, n = np.asarray(ids), len(lengths)
        order = np.argsort(lengths, kind="stable")
        sorted_lengths, sorted_starts = lengths[order], starts[order]
        logits = np.empty((n, self.n_languages), dtype=np.float32)
        evidence = np.empty(n, dtype=np.float32)
        positions = np.arange(int(sorted_lengths[-1]) if n else 0)
        first = 0
        while first < n:
            last = min(n, first + MAX_TEXTS_PER_GATHER)
            longest = int(sorted_lengths[last - 1])
            if (last - first) * longest > self._rows_per_gather:
                last = first + max(1, self._rows_per_gather // longest)
                longest = int(sorted_lengths[last - 1])
            group_lengths = sorted_lengths[first:last, None]
            group_ids = ids.take(sorted_starts[first:last, None] + positions[:longest], mode="clip")
            group_ids[positions[:longest] >= group_lengths] = self.pad_id
            reduced = self._reduce(self.rows.take(group_ids, axis=0), axis=1)
            evidence[first:last] = reduced[:, -1]
            logits[first:last] = self._finish(
                reduced[:, :-1], group_lengths, ids, sorted_starts[first:last], sorted_lengths[first:last]
            )
            first = last
        unsorted_logits, unsorted_evidence = np.empty_like(logits), np.empty_like(evidence)
        unsorted_logits[order], unsorted_evidence[order] = logits, evidence
        return unsorted_logits, unsorted_evidence

    def _finish(self, sums, counts, ids, starts, lengths) -> np.ndarray:
        """Pooled logits from a group's reduced rows (element-wise, so the same as `pool_one` per text)."""
        if self.pooling == "average":
            return np.divide(sums, counts, dtype=np.float32)
        if self.pooling == "max":
            return sums
        if np.minimum.reduce(sums, axis=None) >= self._UNDERFLOW_GUARD:  # the common case: one test per group
            result = np.log(sums, out=sums)  # in place: `reduced` is this call's own array
            result += self.shift
            return result
        risky = sums.min(axis=1) < self._UNDERFLOW_GUARD
        result = np.log(np.maximum(sums, self._UNDERFLOW_GUARD)) + self.shift
        result[risky] = self._exact_logsumexp(ids, starts[risky], lengths[risky])
        return result

    def __call__(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Pooled logits (n_texts, n_languages); a text with no tokens gets all-zero logits."""
        lengths = np.asarray(lengths, dtype=np.int64)
        pooled = np.zeros((len(lengths), self.n_languages), dtype=np.float32)
        nonempty = lengths > 0
        if nonempty.any():
            starts = (np.cumsum(lengths) - lengths)[nonempty]  # strictly increasing: empty texts left out
            pooled[nonempty] = self.pool_in_groups(ids, starts, lengths[nonempty])[0]
        return pooled

    def _exact_logsumexp(self, ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """max-shifted logsumexp of the texts at `starts` (rare: only texts near underflow come here)."""
        positions = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(int(lengths.sum()))
        sub_starts = np.cumsum(lengths) - lengths
        logits = self.source.rows(np.asarray(ids)[positions])
        peak = np.maximum.reduceat(logits, sub_starts, axis=0)
        shifted = np.exp(logits - np.repeat(peak, lengths, axis=0))
        return peak + np.log(np.add.reduceat(shifted, sub_starts, axis=0))
