"""Step 2: the weight mask (keep tokens seen at least `threshold` times) and what it costs.

A token seen only a handful of times in training gets an embedding weight fitted to noise; the seed zeroes
those weights. This module makes the mask and answers the questions a researcher asks before trusting it:
how much training data do the masked tokens carry (the seed's check: < 0.01%), how does that change with the
threshold, which languages lose more than their share, and which tokens (in which scripts) are masked.

Counts and masks are NumPy files: `token_counts.npy` int64 (V,) and `token_mask.npy` bool (V,), True = keep.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse

from wldetect.artifacts import refuse_model_file
from wldetect.errors import WLDetectError
from wldetect.io import atomic_path, check_output_path, load_npy, write_text_atomic
from wldetect.steps.count_files import (
    TokenCounts,
    load_per_language_counts,
    load_token_counts,
    per_language_paths,
    validate_counts,
)
from wldetect.steps.plots import mask_coverage_figure, save_figure
from wldetect.vocab import TokenTexts, token_texts

if TYPE_CHECKING:
    from wldetect.steps.count_files import TokenizedCorpus

DEFAULT_THRESHOLDS = (1, 5, 10, 50, 100)
VALIDATION_LIMIT_PCT = 0.01  # the seed's check: masked tokens are < 0.01% of the training data
FLAG_RATIO = 2.0  # a language is flagged when it loses > 2x the overall masked share ...
FLAG_MIN_PCT = 0.01  # ... and more than 0.01% of its token occurrences


# ------------------------------------------------------------------------------------------------ inputs


_SHARE = re.compile(r"\s*(-?)\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*")
_THRESHOLD_FORMS = "a non-negative integer or a share of the training tokens below 100% like 0.5%"


def _bad_threshold(threshold: Any, why: str = "") -> WLDetectError:
    return WLDetectError(f"threshold must be {_THRESHOLD_FORMS}, got {threshold!r}" + (f" ({why})" if why else ""))


def parse_threshold(threshold: Any) -> int | str:
    """A threshold as a person writes it: a count (`10`, `10.0`, `"10"` all mean 10) or a share of the training
    tokens to mask (`"0.0025%"`), returned as an int or as the share's canonical text (`" 1.50 %"` -> `"1.5%"`).

    The seed's threshold 10 meant "tokens carrying 0.0025 % of the data" on its corpus; on another corpus the
    same count masks a very different share, so a share is what carries over. It stays plain text (papermill
    parameters, manifests, run ids) until `resolve_threshold` turns it into a count on step 1's counts."""
    value = threshold
    if isinstance(value, str):
        share = _SHARE.fullmatch(value)
        if share:
            if share.group(1):
                raise _bad_threshold(threshold, "negative")
            percent = Decimal(share.group(2))
            if percent >= 100:
                raise _bad_threshold(threshold, "a share must be below 100%: masking every token leaves nothing")
            return f"{percent.normalize():f}%"
        if "%" in value:
            raise _bad_threshold(threshold)
        match = re.fullmatch(r"\s*(-?\d+)(?:\.0*)?\s*", value)  # digits only: "1e30" or "inf" are not counts
        if not match and re.fullmatch(r"\s*\d*\.\d+\s*", value):
            raise _bad_threshold(threshold, "a share of the training tokens is written with %")
        value = int(match.group(1)) if match else None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _bad_threshold(threshold)
    if not math.isfinite(value) or value != int(value):
        raise _bad_threshold(threshold, "a share of the training tokens is written with %" if 0 < value < 100 else "")
    if value < 0:
        raise _bad_threshold(threshold, "negative")
    return int(value)


def _share_percent(spec: int | str) -> Fraction | None:
    """The percentage of a canonical share spec (`"0.0025%"` -> 1/400), exact; None for a count."""
    return Fraction(Decimal(spec[:-1])) if isinstance(spec, str) else None


@dataclass(frozen=True)
class ResolvedThreshold:
    """A threshold as a count on step 1's counts, the share it was asked as (if any), and what it masks."""

    count: int  # tokens with count < `count` are masked
    share_spec: str | None  # "0.0025%" when the threshold was given as a share of the training tokens
    masked_data_share: float  # fraction (0..1) of training token occurrences the masked tokens carry
    masked_vocab_share: float  # fraction (0..1) of the vocabulary masked

    @property
    def label(self) -> str:
        """`0.0025% -> threshold 1`, or `threshold 10`: how every record names a threshold."""
        return threshold_label(self.count, self.share_spec)


def threshold_label(count: int | None, share_spec: str | None = None) -> str:
    """`0.0025% -> threshold 1` for a share, `threshold 10` for a count."""
    return f"{share_spec} -> threshold {count}" if share_spec else f"threshold {count}"


def resolve_threshold(spec: Any, counts: Any) -> ResolvedThreshold:
    """The count threshold a spec means on these counts (step 1's `token_counts.npy`).

    A count is itself. A share s of the training tokens is the threshold whose masked share (tokens with
    count < threshold; their occurrences over all occurrences) comes closest to s without exceeding it: the
    tokens are masked from the rarest up, whole count values at a time, as long as they carry at most s; the
    threshold named is the smallest one that masks exactly those (the largest masked count + 1, or 0 when
    even the rarest tokens carry more than s). Tokens never seen carry nothing, so any share masks them
    (threshold >= 1 when the vocabulary has unseen tokens). The comparison is exact (integers and the share's
    decimal value), so a share that a set of tokens carries exactly masks that set."""
    spec = parse_threshold(spec)
    counts = validate_counts(counts)
    total = int(counts.sum())
    percent = _share_percent(spec)
    if percent is None:
        count = spec
    else:
        if total == 0:
            raise WLDetectError(f"threshold {spec}: the token counts hold no tokens, so no share of them can be masked")
        values, frequency = np.unique(counts, return_counts=True)
        carried = np.cumsum(values * frequency)  # occurrences masked when every count <= values[k] is masked
        allowed = (percent.numerator * total) // (percent.denominator * 100)  # an integer occurrence budget
        k = int(np.searchsorted(carried, allowed, side="right")) - 1
        count = int(values[k]) + 1 if k >= 0 else 0
    masked = counts < count
    return ResolvedThreshold(
        count=count,
        share_spec=spec if percent is not None else None,
        masked_data_share=int(counts[masked].sum()) / total if total else 0.0,
        masked_vocab_share=int(masked.sum()) / counts.size if counts.size else 0.0,
    )


@dataclass(frozen=True)
class SeedRegime:
    """Where the seed's threshold sits: Gemma3-27B's vocabulary counted on OpenLID-v2, threshold 10 masks 29.28 %
    of the vocabulary carrying 0.0025 % of the training tokens. Reports put every threshold beside it, since the
    same count masks a different share on another corpus (the demo's threshold 10: 83.5 % carrying 6.11 %)."""

    name: str = "seed (Gemma3-27B on OpenLID-v2)"
    short_name: str = "seed (Gemma3-27B/OpenLID-v2)"  # 28 characters: a table's run column
    threshold: int = 10
    vocab_masked_pct: float = 29.28
    data_masked_pct: float = 0.0025

    def line(self) -> str:
        return (
            f"{self.name}, threshold {self.threshold}: {self.vocab_masked_pct:.2f} % of vocabulary, "
            f"{self.data_masked_pct:.4f} % of tokens"
        )


SEED_REGIME = SeedRegime()


def load_token_mask(path: str | Path, vocab_size: int | None = None) -> np.ndarray:
    """A mask from `create-mask`: bool (V,), True = keep; `vocab_size` checks it against the counts or embeddings."""
    path, mask = load_npy(path, "token mask")
    if mask.dtype != np.bool_:
        raise WLDetectError(f"{path}: token mask must be a bool array, got dtype {mask.dtype}")
    if mask.ndim == 2 and mask.shape[1] == 1:
        mask = mask.reshape(-1)
    if mask.ndim != 1:
        raise WLDetectError(f"{path}: token mask must have shape (vocab_size,), got {mask.shape}")
    if vocab_size is not None and mask.shape[0] != vocab_size:
        raise WLDetectError(f"{path}: token mask has {mask.shape[0]} entries but the vocab size is {vocab_size}")
    return mask


# -------------------------------------------------------------------------------------------------- mask


def mask_from_counts(counts: Any, threshold: Any) -> np.ndarray:
    """bool (V,): True where the token occurs at least `threshold` times (kept), False where its weight is zeroed;
    a share threshold (`"1%"`) is resolved on these counts first."""
    counts = validate_counts(counts)
    return counts >= resolve_threshold(threshold, counts).count


@dataclass
class MaskStatistics:
    """The numbers the seed's create_token_mask prints, computed from the real counts."""

    vocab_size: int
    total_tokens: int
    threshold: int | None
    kept_tokens: int
    masked_tokens: int
    kept_occurrences: int
    masked_occurrences: int
    masked_mean_count: float | None
    masked_max_count: int | None
    kept_mean_count: float | None
    kept_min_count: int | None
    file_size: int | None = None  # bytes of the saved mask, once saved
    share_spec: str | None = None  # the share of training tokens the threshold was asked as ("0.0025%"), if any

    @property
    def kept_pct(self) -> float:
        return 100.0 * self.kept_tokens / self.vocab_size

    @property
    def masked_pct(self) -> float:
        return 100.0 * self.masked_tokens / self.vocab_size

    @property
    def masked_data_pct(self) -> float:
        """Share of training token occurrences that masked tokens carry (the seed checks it is < 0.01%)."""
        return 100.0 * self.masked_occurrences / self.total_tokens if self.total_tokens else 0.0

    @property
    def kept_data_pct(self) -> float:
        return 100.0 * self.kept_occurrences / self.total_tokens if self.total_tokens else 0.0

    @property
    def masked_share(self) -> float:
        """Fraction (0..1) of training token occurrences whose token is masked: the value run records keep."""
        return self.masked_occurrences / self.total_tokens if self.total_tokens else 0.0

    @property
    def tokens_masked_share(self) -> float:
        """Fraction (0..1) of the vocabulary masked."""
        return self.masked_tokens / self.vocab_size

    def record(self) -> dict[str, Any]:
        """The mask record's statistics (`mask_stats.json`, run manifests, evaluation results): one name per
        quantity; fractions are 0..1."""
        return {
            "threshold": self.threshold,
            "threshold_share": self.share_spec,
            "vocab_size": self.vocab_size,
            "tokens_kept": self.kept_tokens,
            "tokens_masked": self.masked_tokens,
            "vocab_masked_fraction": self.tokens_masked_share,
            "occurrences_total": self.total_tokens,
            "occurrences_kept": self.kept_occurrences,
            "occurrences_masked": self.masked_occurrences,
            "occurrences_masked_fraction": self.masked_share,
            "masked_mean_count": self.masked_mean_count,
            "masked_max_count": self.masked_max_count,
            "kept_mean_count": self.kept_mean_count,
            "kept_min_count": self.kept_min_count,
        }

    @property
    def passes_validation(self) -> bool:
        return self.masked_data_pct < VALIDATION_LIMIT_PCT

    def validation_line(self) -> str:
        verdict = "OK" if self.passes_validation else "WARNING: above the limit"
        return (
            f"Validation: masked tokens are {self.masked_data_pct:.4f}% of training data "
            f"(limit < {VALIDATION_LIMIT_PCT}%): {verdict}"
        )

    def seed_line(self) -> str:
        """This mask beside the seed's: vocabulary and data shares, the seed's figures at its threshold 10."""
        return (
            f"Beside the seed: this mask, {self.masked_pct:.2f} % of vocabulary, {self.masked_data_pct:.4f} % of tokens; "
            f"{SEED_REGIME.line()}"
        )

    def report(self) -> str:
        def mean(value: float | None) -> str:
            return "n/a" if value is None else f"{value:,.2f}"

        def whole(value: int | None) -> str:
            return "n/a" if value is None else f"{value:,}"

        lines = [
            "Token mask statistics",
            f"  Vocabulary size:        {self.vocab_size:,}",
            f"  Total tokens in data:   {self.total_tokens:,}",
            f"  Threshold:              {'n/a (custom mask)' if self.threshold is None else f'count >= {self.threshold}'}"
            + (f" (resolved from {self.share_spec} of the training tokens)" if self.share_spec else ""),
            f"  Tokens kept:            {self.kept_tokens:,} ({self.kept_pct:.2f}%)",
            f"  Tokens masked:          {self.masked_tokens:,} ({self.masked_pct:.2f}%)",
            "Masked tokens",
            f"  Total occurrences:      {self.masked_occurrences:,}",
            f"  % of training data:     {self.masked_data_pct:.4f}%",
            f"  Mean count:             {mean(self.masked_mean_count)}",
            f"  Max count:              {whole(self.masked_max_count)}",
            "Kept tokens",
            f"  Total occurrences:      {self.kept_occurrences:,}",
            f"  % of training data:     {self.kept_data_pct:.4f}%",
            f"  Mean count:             {mean(self.kept_mean_count)}",
            f"  Min count:              {whole(self.kept_min_count)}",
            self.validation_line(),
            self.seed_line(),
        ]
        if self.file_size is not None:
            lines.append(f"Mask file size: {self.file_size:,} bytes ({self.file_size / 1024:.1f} KiB)")
        return "\n".join(lines)


def mask_statistics(
    counts: Any, mask: np.ndarray, threshold: int | None = None, share_spec: str | None = None
) -> MaskStatistics:
    counts = validate_counts(counts)
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    if mask.shape != counts.shape:
        raise WLDetectError(f"token mask has {mask.shape[0]} entries but the counts have {counts.shape[0]}")
    kept, masked = counts[mask], counts[~mask]
    return MaskStatistics(
        vocab_size=int(counts.size),
        total_tokens=int(counts.sum()),
        threshold=threshold,
        kept_tokens=int(kept.size),
        masked_tokens=int(masked.size),
        kept_occurrences=int(kept.sum()),
        masked_occurrences=int(masked.sum()),
        masked_mean_count=float(masked.mean()) if masked.size else None,
        masked_max_count=int(masked.max()) if masked.size else None,
        kept_mean_count=float(kept.mean()) if kept.size else None,
        kept_min_count=int(kept.min()) if kept.size else None,
        share_spec=share_spec,
    )


def save_mask(mask: np.ndarray, path: str | Path) -> Path:
    """Write a bool (V,) mask atomically (the file training reads as `token_mask_path`)."""
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.ndim != 1:
        raise WLDetectError(f"{path}: a token mask must be bool with shape (vocab_size,), got {mask.dtype} {mask.shape}")
    check_output_path(path, (".npy",), "token mask")
    with atomic_path(path) as tmp:
        np.save(tmp, mask)
    return Path(path)


def mask_digest(mask: np.ndarray) -> str:
    """A short fingerprint of a mask's bits (checkpoints, mask records)."""
    return hashlib.sha256(np.packbits(np.asarray(mask, dtype=bool)).tobytes()).hexdigest()[:16]


def mask_record_path(mask_path: str | Path) -> Path:
    """Where `create_mask` writes a mask's record: `token_mask.npy` -> `token_mask.json`."""
    return Path(mask_path).with_suffix(".json")


def read_mask_record(mask_path: str | Path, mask: np.ndarray) -> dict[str, Any] | None:
    """The record `create_mask` wrote beside `mask_path`, if it describes this very mask (same bits); else None.

    A mask file alone says which tokens are masked but not what was asked for (`1%` or `threshold 3`); the
    record keeps that, so a model trained from the file names both. A record left from another mask under the
    same name is ignored rather than believed."""
    path = mask_record_path(mask_path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("mask_digest") != mask_digest(mask):
        return None
    return record


@dataclass
class MaskResult:
    mask: np.ndarray  # bool (V,), True = keep
    statistics: MaskStatistics
    path: Path | None
    record_path: Path | None = None  # the mask's record (`token_mask.json`): statistics, threshold and share


def create_mask(
    token_counts: str | Path | np.ndarray, threshold: Any, output: str | Path | None = None, verbose: bool = True
) -> MaskResult:
    """Step 2: mask tokens seen fewer than `threshold` times; every input is checked before anything is written.

    `output` may not be a trained model's own mask file (`wldetect.artifacts.refuse_model_file`): the next
    run into that model's directory would replace it."""
    threshold = parse_threshold(threshold)
    if output is not None:
        check_output_path(output, (".npy",), "token mask")
        refuse_model_file(output, "token mask")
    if isinstance(token_counts, (str, Path)):
        counts = load_token_counts(token_counts)
    else:
        counts = validate_counts(token_counts)
    resolved = resolve_threshold(threshold, counts)
    mask = counts >= resolved.count
    statistics = mask_statistics(counts, mask, resolved.count, resolved.share_spec)
    path = record_path = None
    if output is not None:
        path = save_mask(mask, output)
        statistics.file_size = path.stat().st_size
        source = str(token_counts) if isinstance(token_counts, (str, Path)) else "(array)"
        record = {**statistics.record(), "source": source, "mask_digest": mask_digest(mask)}
        record_path = write_text_atomic(mask_record_path(path), json.dumps(record, indent=2) + "\n")
    if verbose:
        print(statistics.report())
        if path is not None:
            print(f"Saved token mask to {path} (shape={mask.shape}, dtype=bool), its record to {record_path}")
    return MaskResult(mask, statistics, path, record_path)


# --------------------------------------------------------------------------------------------- coverage


def threshold_table(counts: Any, thresholds: Sequence[Any] = DEFAULT_THRESHOLDS, seed_row: bool = False) -> pd.DataFrame:
    """What each threshold would mask: tokens (count, % of vocabulary) and share of training data. A share
    threshold (`"0.0025%"`) is a row at the count it resolves to, its share in `threshold_share`.

    `seed_row` adds the seed's own figures (`SEED_REGIME`: threshold 10 masks 29.28 % of Gemma3-27B's
    vocabulary carrying 0.0025 % of OpenLID-v2's tokens) as a last row, `measured_on` telling the rows apart:
    a reader sees at once which of these thresholds is in the seed's regime."""
    counts = validate_counts(counts)
    total = int(counts.sum())
    rows = []
    resolved = {resolve_threshold(t, counts) for t in thresholds}
    for threshold in sorted(resolved, key=lambda r: (r.count, r.share_spec or "")):
        masked = counts < threshold.count
        occurrences = int(counts[masked].sum())
        rows.append(
            {
                "threshold": threshold.count,
                "threshold_share": threshold.share_spec or "",
                "tokens_masked": int(masked.sum()),
                "tokens_masked_pct": 100.0 * masked.sum() / counts.size,
                "tokens_kept": int((~masked).sum()),
                "occurrences_masked": occurrences,
                "training_data_masked_pct": 100.0 * occurrences / total if total else 0.0,
                f"below_{VALIDATION_LIMIT_PCT}pct": (100.0 * occurrences / total if total else 0.0) < VALIDATION_LIMIT_PCT,
            }
        )
    table = pd.DataFrame(rows)
    if seed_row:
        table.insert(0, "measured_on", "these counts")
        seed = {
            "measured_on": SEED_REGIME.name, "threshold": SEED_REGIME.threshold, "threshold_share": "",
            "tokens_masked_pct": SEED_REGIME.vocab_masked_pct, "training_data_masked_pct": SEED_REGIME.data_masked_pct,
            f"below_{VALIDATION_LIMIT_PCT}pct": SEED_REGIME.data_masked_pct < VALIDATION_LIMIT_PCT,
        }  # fmt: skip
        table = pd.concat([table, pd.DataFrame([seed])], ignore_index=True)
        for column in ("tokens_masked", "tokens_kept", "occurrences_masked"):  # counts stay whole numbers
            table[column] = table[column].astype("Int64")
    return table


def language_impact(per_language, languages: Sequence[str], mask: np.ndarray) -> pd.DataFrame:
    """Per language: the share of its token occurrences and of its distinct tokens that the mask removes.

    Flag rule (`flagged`): a language loses more than FLAG_RATIO (2x) the overall masked share of occurrences
    AND more than FLAG_MIN_PCT (0.01%) of its own occurrences. The first part finds languages hit harder than
    the corpus as a whole; the second keeps ratios of tiny numbers (0.0001% vs 0.00003%) from raising alarms.
    Sorted by masked occurrence share, most affected first.
    """
    matrix = scipy.sparse.csr_matrix(per_language, copy=True)
    matrix.eliminate_zeros()
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    if matrix.shape != (mask.size, len(languages)):
        raise WLDetectError(
            f"per-language counts have shape {matrix.shape}, expected ({mask.size}, {len(languages)}) for this mask"
        )
    n_languages = len(languages)
    masked_rows = matrix[np.flatnonzero(~mask)]
    occurrences = np.asarray(matrix.sum(axis=0), dtype=np.int64).reshape(-1)
    masked_occurrences = np.asarray(masked_rows.sum(axis=0), dtype=np.int64).reshape(-1)
    distinct = np.bincount(matrix.indices, minlength=n_languages)  # tokens with a nonzero count per language
    masked_distinct = np.bincount(masked_rows.indices, minlength=n_languages)
    with np.errstate(divide="ignore", invalid="ignore"):
        occurrence_pct = np.where(occurrences > 0, 100.0 * masked_occurrences / occurrences, 0.0)
        distinct_pct = np.where(distinct > 0, 100.0 * masked_distinct / distinct, 0.0)
    total = occurrences.sum()
    overall_pct = 100.0 * masked_occurrences.sum() / total if total else 0.0
    table = pd.DataFrame(
        {
            "language": list(languages),
            "occurrences": occurrences.astype(np.int64),
            "masked_occurrences": masked_occurrences.astype(np.int64),
            "masked_occurrences_pct": occurrence_pct,
            "distinct_tokens": distinct.astype(np.int64),
            "masked_distinct_tokens": masked_distinct.astype(np.int64),
            "masked_distinct_pct": distinct_pct,
        }
    )
    table["ratio_to_overall"] = table["masked_occurrences_pct"] / overall_pct if overall_pct else 0.0
    table["flagged"] = (table["masked_occurrences_pct"] > FLAG_RATIO * overall_pct) & (
        table["masked_occurrences_pct"] > FLAG_MIN_PCT
    )
    table.attrs["overall_masked_pct"] = overall_pct
    table.attrs["flag_rule"] = (
        f"masked share of occurrences > {FLAG_RATIO:g}x the overall {overall_pct:.4f}% and > {FLAG_MIN_PCT}%"
    )
    return table.sort_values(["masked_occurrences_pct", "language"], ascending=[False, True]).reset_index(drop=True)


def masked_token_sample(
    counts: Any, mask: np.ndarray, tokenizer, n: int = 40, seed: int = 0, include_unseen: bool = False,
    texts: TokenTexts | None = None,
) -> pd.DataFrame:
    """A seeded random sample of masked tokens, decoded, with counts and scripts, most frequent first.

    By default only masked tokens that do occur in the training data (count >= 1): the never-seen ones are the
    bulk of any mask and say nothing about what the data loses.
    """
    counts = validate_counts(counts)
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    texts = texts or token_texts(tokenizer, counts.size)
    candidates = np.flatnonzero(~mask if include_unseen else (~mask & (counts > 0)))
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(candidates, size=min(n, candidates.size), replace=False))
    table = pd.DataFrame(
        {
            "token_id": chosen.astype(np.int64),
            "count": counts[chosen],
            "token": [texts.tokens[i] for i in chosen],
            "text": [texts.texts[i] for i in chosen],
            "script": [texts.scripts[i] for i in chosen],
        }
    )
    return table.sort_values(["count", "token_id"], ascending=[False, True]).reset_index(drop=True)


def script_breakdown(counts: Any, mask: np.ndarray, tokenizer, texts: TokenTexts | None = None) -> pd.DataFrame:
    """Per script: vocabulary tokens, how many are kept and masked (and masked although seen), and occurrences.

    A script whose seen tokens are mostly masked points at a language whose characters the mask removes.
    """
    counts = validate_counts(counts)
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    texts = texts or token_texts(tokenizer, counts.size)
    frame = pd.DataFrame({"script": texts.scripts, "count": counts, "kept": mask})
    frame["masked"] = ~frame["kept"]
    frame["seen"] = frame["count"] > 0
    frame["masked_seen"] = frame["masked"] & frame["seen"]
    frame["masked_count"] = np.where(frame["masked"], frame["count"], 0)
    table = frame.groupby("script").agg(
        vocab_tokens=("count", "size"),
        seen_tokens=("seen", "sum"),
        kept_tokens=("kept", "sum"),
        masked_tokens=("masked", "sum"),
        masked_seen_tokens=("masked_seen", "sum"),
        occurrences=("count", "sum"),
        masked_occurrences=("masked_count", "sum"),
    )
    table["masked_seen_pct"] = np.where(
        table["seen_tokens"] > 0, 100.0 * table["masked_seen_tokens"] / table["seen_tokens"].clip(lower=1), 0.0
    )
    return table.sort_values("vocab_tokens", ascending=False).reset_index()


# ------------------------------------------------------------------------------- the mask training reads


@dataclass
class MaskInfo:
    """The mask a training run starts from, where it came from, and the counts it is measured against."""

    mask: np.ndarray  # bool (vocab_size,), True = keep
    source: str  # the mask file, or how the mask was made
    counts: np.ndarray  # int64 (vocab_size,): step 1's counts of the training tokens
    path: Path | None = None  # the mask file read (step 2's), if any
    threshold: int | None = None
    share_spec: str | None = None  # the share of training tokens `threshold` was resolved from ("1%"), if any

    @property
    def tokens_masked(self) -> int:
        return int((~self.mask).sum())

    @property
    def digest(self) -> str:
        return mask_digest(self.mask)

    def seed_lines(self) -> list[str]:
        """The mask block of the seed's training output, in its words and order: users who follow the seed grep
        for these lines (`Tokens to zero: 76,776 (29.28%)` on Gemma3-27B at threshold 10)."""
        asked = f" ({threshold_label(self.threshold, self.share_spec)})" if self.share_spec else ""
        return [
            f"Loading token mask from {self.source}{asked}...",
            f"  Mask shape: ({self.mask.size},)",
            f"  Tokens to zero: {self.tokens_masked:,} ({self.tokens_masked / max(self.mask.size, 1) * 100:.2f}%)",
            f"  Tokens to train: {self.mask.size - self.tokens_masked:,}",
        ]

    def record(self, token_weights: np.ndarray | None = None) -> dict[str, Any]:
        """The mask record: step 2's statistics on these counts, the source, and (after training) what the
        masked weights became."""
        threshold = self.threshold if self.threshold is not None else infer_threshold(self.counts, self.mask)
        record = {**mask_statistics(self.counts, self.mask, threshold, self.share_spec).record(), "source": self.source}
        record["masked_tokens_seen_in_training"] = int(((self.counts > 0) & ~self.mask).sum())
        if token_weights is not None:
            masked_weights = np.asarray(token_weights).reshape(-1)[~self.mask]
            record["masked_weights_nonzero_after_training"] = int((masked_weights != 0).sum())
            record["masked_weights_max_abs_after_training"] = float(np.abs(masked_weights).max(initial=0.0))
        return record


def resolve_mask(
    config,
    step1: TokenCounts | TokenizedCorpus,
    token_mask: str | Path | np.ndarray | MaskInfo | None = None,
    threshold: Any = None,
    *,
    output: str | Path | None = None,
    verbose: bool = True,
) -> MaskInfo | None:
    """The mask training starts from, decided here alone: `training.train`, notebook 03, `wldetect train` and
    a sweep all ask this function, so one rule holds everywhere.

    `step1` is step 1's output (its `TokenCounts`, or the `TokenizedCorpus` training reads), whose counts a
    threshold is resolved on. `threshold`: a count, or a share of the training tokens (`"1%"`); 0 and None
    both ask for no threshold mask. `token_mask`: step 2's file, a bool array, or a mask decided already;
    asked together with a threshold above 0 it must be that threshold's mask (a sweep names the run by its
    threshold and hands it step 2's file). Neither asked: the config's `training.token_mask_path`, else no
    mask (None). A mask made from a threshold is step 2's work: with `output` it is written there with its
    record (`create_mask`, which reports it when `verbose`), as a run record keeps it."""
    counts_path, counts = (step1.counts_path, step1.counts) if isinstance(step1, TokenCounts) else step1.token_counts_file()
    resolved = resolve_threshold(threshold, counts) if threshold is not None else None
    count = resolved.count if resolved is not None else 0
    if token_mask is None and count == 0:
        token_mask = config.training.token_mask_path
    if token_mask is not None:
        mask = _given_mask(token_mask, counts)
        if count == 0:
            return mask
        differ = int((mask.mask != (counts >= count)).sum())
        if differ:
            raise WLDetectError(
                f"token mask {mask.source}: not the {resolved.label} mask of these counts ({differ:,} tokens differ); "
                "give the mask or the threshold, not both"
            )
        return replace(mask, threshold=count, share_spec=resolved.share_spec)
    if count == 0:
        return None
    if output is not None:
        made = create_mask(counts if counts_path is None else counts_path, threshold, output, verbose=verbose)
        return MaskInfo(made.mask, str(made.path), counts, path=made.path, threshold=count, share_spec=resolved.share_spec)
    return MaskInfo(counts >= count, f"{counts_path} at {resolved.label}", counts, threshold=count, share_spec=resolved.share_spec)


def _given_mask(token_mask: str | Path | np.ndarray | MaskInfo, counts: np.ndarray) -> MaskInfo:
    """A mask given as such, checked against step 1's counts (one entry per embedding row); a mask file's
    threshold and share come from its record (`read_mask_record`), when it has one for these bits."""
    vocab_size = counts.size
    if isinstance(token_mask, MaskInfo):
        if token_mask.mask.shape != (vocab_size,):
            raise WLDetectError(f"token mask {token_mask.source}: {token_mask.mask.size} entries, but the vocab size is {vocab_size}")
        return token_mask
    if isinstance(token_mask, np.ndarray):
        if token_mask.dtype != bool:
            raise WLDetectError(f"token mask array: expected dtype bool (True = keep), got {token_mask.dtype}")
        mask = token_mask.reshape(-1)
        if mask.shape != (vocab_size,):
            raise WLDetectError(f"token mask array: {mask.shape[0]} entries, but the vocab size is {vocab_size}")
        return MaskInfo(mask, "(array)", counts)
    path = Path(token_mask)
    mask = load_token_mask(path)
    if mask.shape != (vocab_size,):
        raise WLDetectError(
            f"token mask {path}: Token mask shape doesn't match vocab_size: mask has shape {mask.shape}, "
            f"vocab_size is {vocab_size} (the embeddings' rows)"
        )
    record = read_mask_record(path, mask) or {}
    recorded = record.get("threshold")
    if not isinstance(recorded, int) or isinstance(recorded, bool) or not np.array_equal(mask, counts >= recorded):
        return MaskInfo(mask, str(path), counts, path=path)  # its threshold is inferred from these counts
    share = record.get("threshold_share") if isinstance(record.get("threshold_share"), str) else None
    return MaskInfo(mask, str(path), counts, path=path, threshold=recorded, share_spec=share)


# --------------------------------------------------------------------------------------- whole analysis


def infer_threshold(counts: np.ndarray, mask: np.ndarray) -> int | None:
    """The threshold a mask was made with (the smallest kept count), or None if it is not a threshold mask."""
    if not mask.any():
        return None
    threshold = int(counts[mask].min())
    return threshold if np.array_equal(mask, counts >= threshold) else None


@dataclass
class MaskCoverage:
    """Everything the coverage notebook shows: statistics, tables and the figure."""

    statistics: MaskStatistics
    threshold_table: Any  # pandas.DataFrame
    language_impact: Any | None  # pandas.DataFrame, when per-language counts are available
    script_breakdown: Any | None  # pandas.DataFrame, when a tokenizer is given
    masked_sample: Any | None
    figure: Any  # matplotlib.figure.Figure
    figure_path: Path | None

    def verdict(self, languages_named: int = 5, scripts_named: int = 4) -> str:
        """What the mask does, in words: how much of the vocabulary and of the training data it removes,
        against the seed's validation line, which languages lose the largest share of their tokens, and in
        which scripts the masked tokens that training did see are written."""
        stats = self.statistics
        threshold = "This mask"
        if stats.threshold is not None:
            threshold = threshold_label(stats.threshold, stats.share_spec)
            threshold = threshold[0].upper() + threshold[1:]
        validation = "below" if stats.masked_data_pct < VALIDATION_LIMIT_PCT else "above"
        lines = [
            f"{threshold} masks {stats.masked_tokens:,} of {stats.vocab_size:,} tokens ({stats.masked_pct:.1f} % of the "
            f"vocabulary); they carry {stats.masked_data_pct:.4f} % of the training tokens, {validation} the seed's "
            f"{VALIDATION_LIMIT_PCT:g} % validation line. The seed's own regime: {SEED_REGIME.line()}."
        ]
        if self.language_impact is not None and not self.language_impact.empty:
            top = self.language_impact.head(languages_named)
            named = ", ".join(f"{r.language} {r.masked_occurrences_pct:.1f} %" for r in top.itertuples())
            flagged = int(self.language_impact["flagged"].sum())
            lines.append(
                f"Languages losing the largest share of their token occurrences: {named}; {flagged} of "
                f"{len(self.language_impact)} languages are flagged ({self.language_impact.attrs.get('flag_rule', '')})."
            )
        if self.script_breakdown is not None and not self.script_breakdown.empty:
            seen = self.script_breakdown[self.script_breakdown["masked_seen_tokens"] > 0]
            seen = seen.sort_values("masked_occurrences", ascending=False).head(scripts_named)
            named = ", ".join(
                f"{r.script} ({int(r.masked_seen_tokens):,} tokens, {int(r.masked_occurrences):,} occurrences)"
                for r in seen.itertuples()
            )
            if named:
                lines.append(f"Masked tokens that training saw, by script, most occurrences first: {named}.")
        return "\n".join(lines)


def mask_coverage(
    token_counts: str | Path | np.ndarray,
    token_mask: str | Path | np.ndarray,
    output: str | Path | None = None,
    *,
    threshold: Any = None,
    thresholds: Sequence[Any] = DEFAULT_THRESHOLDS,
    per_language=None,
    languages: Sequence[str] | None = None,
    tokenizer=None,
    sample_size: int = 40,
) -> MaskCoverage:
    """The mask's coverage analysis and figure. Given a counts *path*, per-language counts saved next to it
    (by count-tokens) are used automatically."""
    if isinstance(token_counts, (str, Path)):
        counts = load_token_counts(token_counts)
        if per_language is None:
            if all(p.is_file() for p in per_language_paths(token_counts)):
                per_language, languages = load_per_language_counts(token_counts)
    else:
        counts = validate_counts(token_counts)
    if isinstance(token_mask, (str, Path)):
        mask = load_token_mask(token_mask, counts.size)
    else:
        mask = np.asarray(token_mask)
        if mask.dtype != np.bool_ or mask.shape != counts.shape:
            raise WLDetectError(f"token mask must be bool with shape {counts.shape}, got {mask.dtype} {mask.shape}")
    share = None
    if threshold is not None:
        resolved = resolve_threshold(threshold, counts)
        threshold, share = resolved.count, resolved.share_spec
    else:
        threshold = infer_threshold(counts, mask)
    statistics = mask_statistics(counts, mask, threshold, share)
    asked = [share or threshold] if threshold is not None else []
    table = threshold_table(counts, list(thresholds) + asked, seed_row=True)
    impact = language_impact(per_language, languages, mask) if per_language is not None and languages else None
    scripts = sample = None
    if tokenizer is not None:
        texts = token_texts(tokenizer, counts.size)
        scripts = script_breakdown(counts, mask, tokenizer, texts)
        sample = masked_token_sample(counts, mask, tokenizer, n=sample_size, texts=texts)
    figure = mask_coverage_figure(counts, mask, threshold=threshold, language_impact=impact)
    path = save_figure(figure, output) if output is not None else None
    return MaskCoverage(statistics, table, impact, scripts, sample, figure, path)
