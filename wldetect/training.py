"""Step 3: train the model (optionally with a token mask), then write the artifacts of step 4.

`train(config)` is the whole step: load the frozen embeddings and the training data, tokenise every example
once, train with AdamW, a warmup + cosine schedule and gradient clipping, checkpoint every
`checkpoint_interval` steps, and finally write a self-contained artifacts directory (projection, FP8 lookup
tables, model config, tokenizer) and evaluate it on the configured evaluation set.

The data path, in order of cost:
- every example is tokenised exactly once, chunk by chunk when training first needs it (`TokenizedCorpus`);
  small corpora stay in memory, large ones (OpenLID: 121M sentences) go to `.npy` files in the cache;
- an epoch visits the chunks in a seeded random order and each chunk in a seeded random order, so the
  order of any epoch, and therefore the data position of a checkpoint, is a pure function of (seed, epoch,
  step): resuming needs the step number only;
- `training.num_workers` (default 0): with N > 0, N threads (a `ThreadPoolExecutor`) tokenise the next N
  chunks of the epoch, whose order is known in advance, while the current chunk trains (`encode_batch`
  releases the GIL); 0 tokenises each chunk in the training loop when it is reached. Only the timing
  differs: the ids, the order and therefore the weights are bitwise the same for any N (N is not part of
  the checkpoint fingerprint, so it may change on resume);
- a batch is padded to its own longest sequence, and the model gathers and projects real tokens only.

The artifacts directory belongs to one run, and is written then swapped (`wldetect.io.StagedDirectory`):
the run writes checkpoints, artifacts and its evaluation to `.<name>.staging/` next to it and swaps that in
when complete, replacing what an earlier run and its evaluation wrote (artifacts, mask files, history,
summary, quantisation report, `*_results.json`/`*_predictions.csv`/`*_confusion.png`, `checkpoints/`; other
files are kept) and saying so in one line. Until then the earlier model is untouched, so a failed run loses
nothing; an interrupted run's checkpoints stay in the staging directory for `resume=True`. `mask_stats.json` is always written
(`tokens_masked: 0`, `threshold: null` without a mask). Checkpoints carry a fingerprint of the run; only
checkpoints with the current fingerprint are pruned (the latest two kept) or resumed from.

Same seed, same inputs: the same weights on CPU, also across an interruption and `resume=True`.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import re
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from wldetect.artifacts import (
    CHECKPOINT_DIR,
    HISTORY_FILE,
    MASK_FILE,
    MASK_RECORD_FILE,
    MODEL_CONFIG_FILE,
    PROJECTION_FILE,
    QUANTIZATION_FILE,
    SUMMARY_FILE,
    TOKENIZER_FILE,
    previous_output_names,
)
from wldetect.config import TrainingConfig, TrainingSection, cache_dir, load_training_config
from wldetect.errors import WLDetectError
from wldetect.io import StagedDirectory, atomic_path, refuse_other_model, write_safetensors, write_text_atomic
from wldetect.lookup import compute_lookup_table, write_lookup_tables
from wldetect.model import LanguageDetectionModel
from wldetect.posthoc import write_quantization_report

CHECKPOINT_VERSION = 1
KEEP_CHECKPOINTS = 2
_CHECKPOINT_NAME = re.compile(r"checkpoint_step_\d+\.pt")
_CHUNK_TARGET = 65536  # examples tokenised per encode_batch call (and per cache file)
_IN_MEMORY_EXAMPLES = 4_000_000  # above this the token ids are cached on disk
_AGREEMENT_TEXTS = 20_000  # at most this many evaluation sentences for the fp8-vs-fp32 agreement


# ------------------------------------------------------------------------------------------- tokenised data


class TokenizedCorpus:
    """Token ids of every training example, tokenised once, in chunks of `chunk_size` examples.

    A chunk is tokenised the first time it is needed (one `encode_batch` call) and kept: in memory for a small
    corpus, as `ids.npy`/`offsets.npy` pairs under the cache directory for a large one (memory-mapped, and
    reused by later runs with the same data and tokenizer).
    """

    def __init__(
        self,
        data,
        tokenizer,
        chunk_size: int,
        *,
        vocab_size: int,
        in_memory_examples: int = _IN_MEMORY_EXAMPLES,
        cache_key: str | None = None,
    ):
        self.data = data
        self.tokenizer = tokenizer
        self.chunk_size = int(chunk_size)
        self.n_examples = len(data)
        self.n_chunks = max(1, math.ceil(self.n_examples / self.chunk_size))
        self.vocab_size = vocab_size
        self.token_counts = np.zeros(vocab_size, dtype=np.int64)  # filled as chunks are first materialised
        self._counted: set[int] = set()
        self._memory: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._in_flight: dict[int, Future] = {}  # chunks being tokenised in a thread pool (`prefetch`)
        self.disk_dir: Path | None = None
        if self.n_examples > in_memory_examples:
            key = cache_key or "uncached"
            self.disk_dir = cache_dir() / "token_ids" / key
            self.disk_dir.mkdir(parents=True, exist_ok=True)

    def chunk_bounds(self, chunk: int) -> tuple[int, int]:
        start = chunk * self.chunk_size
        return start, min(start + self.chunk_size, self.n_examples)

    def chunk(self, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids int32 flat, offsets int64 of len+1) of one chunk."""
        if chunk in self._memory:
            return self._memory[chunk]
        result = None
        future = self._in_flight.pop(chunk, None)
        if future is not None and not future.cancel():  # running or done in the background: wait for it
            result = future.result()
        if result is None and self.disk_dir is not None:
            result = self._load_from_disk(chunk)
        if result is None:
            result = self._tokenise_and_store(chunk, self.data.texts(*self.chunk_bounds(chunk)))
        if chunk not in self._counted:
            self.token_counts += np.bincount(result[0], minlength=self.vocab_size)[: self.vocab_size]
            self._counted.add(chunk)
        if self.disk_dir is None:
            self._memory[chunk] = result
        else:  # keep only the chunk in use
            self._memory = {chunk: result}
        return result

    def prefetch(self, chunk: int, pool: Executor) -> None:
        """Start tokenising `chunk` in `pool`, unless it is ready, cached on disk or already under way.

        The texts are read here, in the calling thread (as counting does); only `encode_batch`, which releases
        the GIL, and the cache write run in the pool. `chunk(chunk)` then takes the result, or cancels a task
        that has not started and tokenises in the caller, so a chunk is never tokenised twice at once.
        """
        if chunk in self._memory or chunk in self._in_flight:
            return
        if self.disk_dir is not None and self._paths(chunk)[1].is_file():
            return  # a memory-mapped load: nothing to gain in the background
        texts = self.data.texts(*self.chunk_bounds(chunk))
        self._in_flight[chunk] = pool.submit(self._tokenise_and_store, chunk, texts)

    def chunks(
        self, order: list[int], pool: Executor | None = None, ahead: int = 0
    ) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray]]]:
        """(chunk, chunk(chunk)) for each chunk of `order`, in that order.

        With a `pool`, the `ahead` chunks after the current one are tokenised in the background while the caller
        works on it; the ids are the same either way, and so is everything computed from them.
        """
        order = [int(c) for c in order]
        for i, chunk in enumerate(order):
            if pool is not None:
                for upcoming in order[i + 1 : i + 1 + ahead]:
                    self.prefetch(upcoming, pool)
            yield chunk, self.chunk(chunk)

    def _tokenise_and_store(self, chunk: int, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Tokenise the texts of `chunk` (safe in a worker thread: touches no state of the corpus but its files)."""
        from wldetect.tokenization import encode_texts

        encoded = encode_texts(self.tokenizer, texts)
        if len(encoded.ids) and int(encoded.ids.max()) >= self.vocab_size:
            raise WLDetectError(
                f"the tokenizer produced id {int(encoded.ids.max())} but the embeddings have {self.vocab_size} rows"
            )
        result = encoded.ids.astype(np.int32), encoded.offsets.astype(np.int64)
        if self.disk_dir is not None:
            self._save_to_disk(chunk, *result)
        return result

    def _paths(self, chunk: int) -> tuple[Path, Path]:
        assert self.disk_dir is not None
        return self.disk_dir / f"chunk{chunk:06d}_ids.npy", self.disk_dir / f"chunk{chunk:06d}_offsets.npy"

    def _load_from_disk(self, chunk: int):
        ids_path, offsets_path = self._paths(chunk)
        if not offsets_path.is_file():  # written last: its presence means the pair is complete
            return None
        return np.load(ids_path, mmap_mode="r"), np.load(offsets_path)

    def _save_to_disk(self, chunk: int, ids: np.ndarray, offsets: np.ndarray) -> None:
        ids_path, offsets_path = self._paths(chunk)
        with atomic_path(ids_path) as tmp:
            np.save(tmp, ids)
        with atomic_path(offsets_path) as tmp:
            np.save(tmp, offsets)

    # ------------------------------------------------------------------------------------- epoch order

    def steps_per_epoch(self, batch_size: int) -> int:
        return sum(
            math.ceil((stop - start) / batch_size) for start, stop in map(self.chunk_bounds, range(self.n_chunks))
        )

    def batches(
        self,
        epoch: int,
        seed: int,
        batch_size: int,
        skip: int = 0,
        *,
        pool: Executor | None = None,
        ahead: int = 0,
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(token_ids (B, L) int64, attention_mask (B, L) bool, example indices (B,)) of one epoch.

        The order is a function of (seed, epoch) only; `skip` batches are passed over without tokenising.
        With a thread `pool`, the next `ahead` chunks of the epoch are tokenised while this one is used.
        """
        chunk_order = np.random.default_rng([seed % 2**32, epoch]).permutation(self.n_chunks)
        first_batch: dict[int, int] = {}  # the chunks this epoch still needs, in order, and where each starts
        for chunk in map(int, chunk_order):
            start, stop = self.chunk_bounds(chunk)
            n_batches = math.ceil((stop - start) / batch_size)
            if skip >= n_batches:
                skip -= n_batches
                continue
            first_batch[chunk] = skip
            skip = 0
        for chunk, (ids, offsets) in self.chunks(list(first_batch), pool, ahead):
            start, stop = self.chunk_bounds(chunk)
            n_batches = math.ceil((stop - start) / batch_size)
            rows = np.random.default_rng([seed % 2**32, epoch, chunk]).permutation(stop - start)
            for b in range(first_batch[chunk], n_batches):
                batch_rows = rows[b * batch_size : (b + 1) * batch_size]
                token_ids, attention_mask = padded_batch(ids, offsets, batch_rows)
                yield token_ids, attention_mask, start + batch_rows


def padded_batch(ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Examples `rows` of a chunk padded (with id 0, masked out) to the longest of them."""
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    positions = np.arange(int(lengths.max(initial=0)))
    attention_mask = positions[None, :] < lengths[:, None]
    gather = np.where(attention_mask, starts[:, None] + positions[None, :], 0)
    token_ids = np.where(attention_mask, np.asarray(ids)[gather], 0).astype(np.int64)
    return token_ids, attention_mask


# ------------------------------------------------------------------------------------------ optimisation


def lr_factor(step: int, total_steps: int, warmup_steps: int, scheduler: str, min_lr_ratio: float) -> float:
    """Multiplier of the learning rate at optimiser step `step` (0-based): linear warmup, then cosine/constant."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if scheduler == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def warmup_steps_for(section: TrainingSection, total_steps: int) -> int:
    if section.warmup_steps is not None:
        return min(section.warmup_steps, total_steps)
    return round(section.warmup_ratio * total_steps)


def class_weights_for(section: TrainingSection, labels: np.ndarray, n_languages: int) -> torch.Tensor | None:
    """`balanced`: n / (k * n_c) for each language c present in the data (sklearn's definition)."""
    if section.class_weights == "none":
        return None
    counts = np.bincount(labels, minlength=n_languages).astype(np.float64)
    present = counts > 0
    weights = np.ones(n_languages)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def make_loss(section: TrainingSection, class_weights: torch.Tensor | None):
    """loss(logits, labels) -> scalar: cross-entropy or focal, with optional class weights and label smoothing."""
    smoothing = section.label_smoothing

    if section.loss == "cross_entropy":

        def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(logits, labels, weight=class_weights, label_smoothing=smoothing)

        return cross_entropy

    gamma = section.focal_gamma

    def focal(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_true)^gamma, weighted mean over the batch."""
        log_probs = F.log_softmax(logits, dim=1)
        n_classes = logits.shape[1]
        target = torch.zeros_like(log_probs).scatter_(1, labels[:, None], 1.0)
        if smoothing > 0 and n_classes > 1:
            target = target * (1.0 - smoothing) + (1.0 - target) * (smoothing / (n_classes - 1))
        p_true = (log_probs.exp() * target).sum(dim=1)
        loss = (1.0 - p_true).clamp(min=0).pow(gamma) * -(target * log_probs).sum(dim=1)
        if class_weights is None:
            return loss.mean()
        weights = class_weights.to(logits.device)[labels]
        return (weights * loss).sum() / weights.sum()

    return focal


def build_optimizer(model: LanguageDetectionModel, section: TrainingSection) -> torch.optim.AdamW:
    """AdamW with weight decay on the projection weight only.

    Not on the bias, and not on the token weights: decay would pull every token weight, rare ones most,
    towards 0, which is what masking does deliberately; masking must stay the only thing that zeroes them.
    """
    groups = [
        {"params": [model.projection.weight], "weight_decay": section.weight_decay},
        {"params": [model.projection.bias, model.token_weights], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=section.learning_rate)


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise WLDetectError("training.device: cuda requested but no CUDA device is available (use auto or cpu)")
    return torch.device(name)


# --------------------------------------------------------------------------------------------- the mask


@dataclass
class MaskInfo:
    """Which tokens start at weight 0, and where that choice came from."""

    mask: np.ndarray  # bool (vocab_size,), True = keep
    source: str  # the mask file, or the counts file it was built from
    threshold: int | None = None

    @property
    def vocab_size(self) -> int:
        return int(self.mask.shape[0])

    @property
    def tokens_masked(self) -> int:
        return int((~self.mask).sum())

    def statistics(self, token_counts: np.ndarray, token_weights: np.ndarray | None = None) -> dict[str, Any]:
        """Step 2's statistics on the tokens as trained, plus what the masked weights did during training.

        Keys read by evaluation: threshold, vocab_size, tokens_masked, tokens_masked_share, masked_occurrence_share.
        """
        from wldetect.masking import infer_threshold, mask_statistics

        # A mask given as a file does not say its threshold; a threshold mask's is its smallest kept count.
        threshold = self.threshold if self.threshold is not None else infer_threshold(token_counts, self.mask)
        stats = mask_statistics(token_counts, self.mask, threshold).as_dict()
        stats.update(
            source=self.source,
            tokens_masked=self.tokens_masked,
            masked_occurrence_share=stats["masked_share"],
            masked_tokens_seen_in_training=int(((token_counts > 0) & ~self.mask).sum()),
        )
        if token_weights is not None:
            masked_weights = np.asarray(token_weights).reshape(-1)[~self.mask]
            stats["masked_weights_nonzero_after_training"] = int((masked_weights != 0).sum())
            stats["masked_weights_max_abs_after_training"] = float(np.abs(masked_weights).max(initial=0.0))
        return stats


def resolve_mask(
    config: TrainingConfig, token_mask: str | Path | np.ndarray | None, threshold: int | None
) -> MaskInfo | None:
    """The mask from the argument, else built from the counts at `threshold`, else from the config."""
    from wldetect.masking import load_token_mask

    if token_mask is not None and threshold is not None:
        raise WLDetectError("give a token mask or a threshold, not both")
    if isinstance(token_mask, np.ndarray):
        if token_mask.dtype != bool:
            raise WLDetectError(f"token mask array: expected dtype bool (True = keep), got {token_mask.dtype}")
        return MaskInfo(token_mask.reshape(-1) if token_mask.ndim == 2 else token_mask, source="(array)")
    if token_mask is not None:
        return MaskInfo(load_token_mask(token_mask), source=str(Path(token_mask)))
    if threshold is not None:
        return mask_from_threshold(config, threshold)
    if config.training.token_mask_path is not None:
        path = config.training.token_mask_path
        return MaskInfo(load_token_mask(path), source=str(path))
    return None


def mask_from_threshold(config: TrainingConfig, threshold: int) -> MaskInfo:
    """Count the training tokens of this config (step 1, reused from its cache) and keep tokens seen >= threshold."""
    from wldetect.counting import count_tokens
    from wldetect.masking import mask_from_counts, parse_threshold

    threshold = parse_threshold(threshold)
    counted = count_tokens(config, verbose=False)
    return MaskInfo(mask_from_counts(counted.counts, threshold), source=str(counted.counts_path), threshold=threshold)


# ---------------------------------------------------------------------------------------------- results


@dataclass
class TrainingResult:
    """What `train` produced. `history` has one dict per optimiser step (a notebook plots it)."""

    artifacts_dir: Path
    history: list[dict[str, float]]
    steps: int
    total_steps: int
    epochs: int
    seconds: float
    device: str
    mask: dict[str, Any] | None = None
    files: dict[str, Path] = field(default_factory=dict)
    quantization: dict[str, Any] = field(default_factory=dict)
    evaluation: Any = None
    resumed_from_step: int | None = None
    completed: bool = True

    @property
    def final_loss(self) -> float | None:
        return self.history[-1]["loss"] if self.history else None

    @property
    def examples_per_second(self) -> float:
        """Median over the steps of this process (the first few include warm-up costs)."""
        rates = [h["examples_per_s"] for h in self.history if h.get("examples_per_s")]
        return float(np.median(rates)) if rates else 0.0

    def history_frame(self):
        import pandas as pd

        return pd.DataFrame(self.history)


# ------------------------------------------------------------------------------------------ checkpoints


def _fingerprint(config: TrainingConfig, n_examples: int, vocab_size: int, mask: MaskInfo | None) -> dict[str, str]:
    """What must not change between a checkpoint and the run resuming from it."""
    section = config.training.model_dump(
        mode="json", exclude={"device", "num_workers", "save_checkpoints", "checkpoint_interval", "token_mask_path"}
    )
    mask_digest = hashlib.sha256(np.packbits(mask.mask).tobytes()).hexdigest()[:16] if mask else "none"
    return {
        "training": json.dumps(section, sort_keys=True),
        "dataset": json.dumps(config.dataset.model_dump(mode="json"), sort_keys=True),
        "model": json.dumps(config.model.model_dump(mode="json"), sort_keys=True) if config.model else "",
        "examples": str(n_examples),
        "vocab_size": str(vocab_size),
        "mask": mask_digest,
    }


def checkpoint_paths(directory: Path) -> list[Path]:
    """The checkpoints in `directory`, oldest step first (not the temporary files of an interrupted write)."""
    return sorted(p for p in directory.glob("checkpoint_step_*.pt") if _CHECKPOINT_NAME.fullmatch(p.name))


def checkpoint_fingerprint(path: Path) -> dict[str, str] | None:
    """The fingerprint a checkpoint was written with (None when unreadable); the tensors are not read."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None
    fingerprint = state.get("fingerprint") if isinstance(state, dict) else None
    return fingerprint if isinstance(fingerprint, dict) else None


def save_checkpoint(directory: Path, state: dict[str, Any]) -> Path:
    """Write `state` as `checkpoint_step_<step>.pt` and keep the latest `KEEP_CHECKPOINTS` of this run.

    Only checkpoints with this state's fingerprint count as this run's: another run's checkpoint (say a longer
    one, with higher step numbers) is neither pruned by this run nor makes it delete its own.
    """
    path = directory / f"checkpoint_step_{state['step']:08d}.pt"
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    fingerprint = state.get("fingerprint")
    this_run = [p for p in checkpoint_paths(directory) if p == path or checkpoint_fingerprint(p) == fingerprint]
    for old in this_run[:-KEEP_CHECKPOINTS]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise WLDetectError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None


def _matching_checkpoint(
    directories: list[Path], fingerprint: dict[str, str]
) -> tuple[dict[str, Any] | None, Path | None]:
    """The latest checkpoint written with `fingerprint` (and its path) in the first of `directories` that has
    one (an interrupted run's staging directory, then the completed run's); (None, None) if none has.

    Checkpoints with another fingerprint are passed over; when they are all there is, resuming would continue
    some other run, so that is an error naming what differs.
    """
    for directory in directories:
        for path in reversed(checkpoint_paths(directory)):
            if checkpoint_fingerprint(path) == fingerprint:
                return load_checkpoint(path), path
    existing = [p for directory in directories for p in checkpoint_paths(directory)]
    if existing:
        state = load_checkpoint(existing[-1])
        differing = [k for k, v in fingerprint.items() if state.get("fingerprint", {}).get(k) != v]
        raise WLDetectError(
            f"{existing[-1]}: written by a different run (differs in: {', '.join(differing) or 'fingerprint'}); "
            "resume with the same configuration and mask, or use another --output-dir"
        )
    return None, None


# ------------------------------------------------------------------------------------------------ train


def train(
    config: TrainingConfig | str | Path,
    output_dir: str | Path | None = None,
    token_mask: str | Path | np.ndarray | None = None,
    threshold: int | None = None,
    resume: bool = False,
    verbose: bool = True,
    *,
    run_evaluation: bool = True,
    stop_after_steps: int | None = None,
    overwrite: bool = False,
) -> TrainingResult:
    """Train on `config` and write the artifacts; see the module docstring.

    `token_mask` (a .npy path or a bool array) or `threshold` (a mask built from the counted training tokens)
    override `training.token_mask_path`. `resume` continues from the latest checkpoint of this run (same
    fingerprint) in the staging directory `.<name>.staging/checkpoints/` next to the artifacts directory (an
    interrupted run's) or in `<artifacts_dir>/checkpoints/` (a completed run's); without `resume` the run
    starts fresh. `stop_after_steps` stops after that many optimiser steps without writing artifacts, exactly
    as an interruption would (for tests and benchmarks); the schedule still spans the full run.

    Everything is written to the staging directory and swapped in when complete (`StagedDirectory`): until
    then the artifacts directory holds the earlier model unchanged, and a failure says so. A directory
    holding a model trained from another parameter file (or made by filter-lookup) is refused unless
    `overwrite`; a second run into the same directory at the same time is refused (lock file).
    """
    if not isinstance(config, TrainingConfig):
        config = load_training_config(config)
    artifacts_dir = Path(output_dir) if output_dir is not None else Path(config.output.artifacts_dir)
    origin = f"training with {Path(config.source_path).absolute()}" if config.source_path else "training"
    refuse_other_model(artifacts_dir, origin, overwrite)
    staged = StagedDirectory(artifacts_dir, swap=True, what="--output-dir", keep_on_failure=_holds_checkpoints)
    try:
        with staged:
            return _train_staged(
                config, staged, token_mask, threshold, resume, verbose, run_evaluation, stop_after_steps
            )
    except WLDetectError as err:
        raise WLDetectError(f"{err}{_unchanged_note(staged)}") from None
    except BaseException:  # Ctrl-C, out of memory, a full disk: the same promise, on stderr
        if staged.committed is False and staged._lock is not None:
            print(f"Training failed{_unchanged_note(staged)}", file=sys.stderr)
        raise


def _holds_checkpoints(staging: Path) -> bool:
    """An interrupted run's staging directory is kept (for --resume) when it holds a checkpoint."""
    return bool(checkpoint_paths(staging / CHECKPOINT_DIR)) if (staging / CHECKPOINT_DIR).is_dir() else False


def _unchanged_note(staged: StagedDirectory) -> str:
    """The end of a failed run's message: what is left where (one line)."""
    if staged._lock is None:  # refused before anything was staged (a lock, a bad path): nothing to report
        return ""
    note = f"; {staged.target} is unchanged" if staged.target.exists() else f"; nothing written to {staged.target}"
    if _holds_checkpoints(staged.staging):
        note += f" (checkpoints of this run in {staged.staging / CHECKPOINT_DIR}: continue with --resume)"
    return note


def _train_staged(
    config: TrainingConfig,
    staged: StagedDirectory,
    token_mask,
    threshold: int | None,
    resume: bool,
    verbose: bool,
    run_evaluation: bool,
    stop_after_steps: int | None,
) -> TrainingResult:
    """`train` with the output directory staged and locked: writes to `staged.staging`, commits at the end."""
    from wldetect.sources.data import prepare_training_dataset
    from wldetect.sources.models import load_model
    from wldetect.tokenization import configure

    say = print if verbose else (lambda *args, **kwargs: None)
    section = config.training
    model_config = config.model
    final_dir = staged.target
    artifacts_dir = staged.staging  # everything is written here first
    checkpoint_dir = artifacts_dir / CHECKPOINT_DIR
    started = time.perf_counter()

    say("Step 1-2: Load embeddings and tokenizer")
    loaded = load_model(model_config)
    say(loaded.summary())
    mask = resolve_mask(config, token_mask, threshold)
    if mask is not None and mask.mask.shape != (loaded.vocab_size,):
        raise WLDetectError(
            f"token mask {mask.source}: Token mask shape doesn't match vocab_size: mask has shape "
            f"{mask.mask.shape}, vocab_size is {loaded.vocab_size} (the embeddings' rows)"
        )

    say("\nStep 3: Prepare dataset")
    data = prepare_training_dataset(config.dataset, model_config.language_codes, verbose=verbose)
    if len(data) == 0:
        raise WLDetectError(f"dataset {config.dataset.name}: no training examples in the configured languages")

    say("\nStep 4: Create training batches (each example tokenised once, when training first reaches it)")
    tokenizer = configure(loaded.tokenizer, model_config.inference.max_sequence_length)
    chunk_size = section.batch_size * max(1, _CHUNK_TARGET // section.batch_size)
    cache_key = hashlib.sha256(
        json.dumps([getattr(data.dataset, "_fingerprint", None), tokenizer.to_str(), len(data), chunk_size]).encode()
    ).hexdigest()[:20]
    corpus = TokenizedCorpus(data, tokenizer, chunk_size, vocab_size=loaded.vocab_size, cache_key=cache_key)
    steps_per_epoch = corpus.steps_per_epoch(section.batch_size)
    total_steps = steps_per_epoch * section.epochs
    warmup = warmup_steps_for(section, total_steps)
    say(
        f"  {len(data):,} examples in {corpus.n_chunks} chunk(s); {steps_per_epoch:,} steps per epoch, "
        f"{total_steps:,} steps in {section.epochs} epoch(s) (warmup {warmup})"
        + (f"; token ids cached in {corpus.disk_dir}" if corpus.disk_dir else "")
    )

    device = select_device(section.device)
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    # a notebook's own RNG state is left as it was; with num_workers > 0, the pool tokenises chunks ahead
    with torch.random.fork_rng(devices=fork_devices), _tokenising_pool(section.num_workers) as pool:
        torch.manual_seed(section.seed)
        say("\nStep 5: Initialize model")
        with warnings.catch_warnings():  # the memory-mapped cache is read-only; the buffer is never written
            warnings.simplefilter("ignore", UserWarning)
            embeddings = torch.from_numpy(loaded.embeddings)
        say(
            f"  Embeddings tensor: {embeddings.shape}, {embeddings.element_size() * embeddings.nelement() / 1024**3:.2f} GB"
        )
        mask_tensor = None
        if mask is not None:
            say(
                f"  Loading token mask from {mask.source}"
                + (f" (threshold {mask.threshold})" if mask.threshold else "")
                + "..."
            )
            mask_tensor = torch.from_numpy(np.ascontiguousarray(mask.mask))
            say(f"    Mask shape: {mask_tensor.shape}")
            say(f"    Tokens to zero: {mask.tokens_masked:,} ({mask.tokens_masked / mask.vocab_size * 100:.2f}%)")
            say(f"    Tokens to train: {mask.vocab_size - mask.tokens_masked:,}")
        model = LanguageDetectionModel(
            embeddings,
            model_config.n_languages,
            dropout=section.projection.dropout,
            pooling=model_config.inference.pooling,
            token_mask=mask_tensor,
        )
        say(f"  Model parameters: {model.parameter_count():,}")
        model.to(device)
        optimizer = build_optimizer(model, section)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, total_steps, warmup, section.scheduler, section.min_lr_ratio)
        )
        weights = class_weights_for(section, data.labels, model_config.n_languages)
        loss_fn = make_loss(section, weights.to(device) if weights is not None else None)
        labels_all = torch.from_numpy(data.labels)

        fingerprint = _fingerprint(config, len(data), loaded.vocab_size, mask)
        step, history, resumed_from = 0, [], None
        if resume:
            state, path = _matching_checkpoint([checkpoint_dir, final_dir / CHECKPOINT_DIR], fingerprint)
            if state is not None:
                model.load_state_dict(state["model"], strict=True)
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
                torch.set_rng_state(state["rng"]["torch"])
                if device.type == "cuda" and state["rng"].get("cuda") is not None:
                    torch.cuda.set_rng_state(state["rng"]["cuda"], device)
                step, history, resumed_from = int(state["step"]), list(state["history"]), int(state["step"])
                say(f"\nResuming from {path} (step {step:,} of {total_steps:,})")
            else:
                say(f"\nNo checkpoint of this run in {checkpoint_dir} or {final_dir / CHECKPOINT_DIR}; starting from scratch")
        if resumed_from is None:  # a fresh run: an interrupted run's staged checkpoints are not continued
            if _holds_checkpoints(artifacts_dir):
                say(f"\nDiscarding the checkpoints of an interrupted run in {checkpoint_dir} (not --resume)")
            staged.discard()

        say(f"\nStep 6: Train on {device}")
        if section.save_checkpoints:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
        end_step = total_steps if stop_after_steps is None else min(total_steps, stop_after_steps)
        progress = _progress_bar(verbose, total_steps, step)
        model.train()
        last_time = time.perf_counter()
        while step < end_step:
            epoch, in_epoch = divmod(step, steps_per_epoch)
            for token_ids, attention_mask, rows in corpus.batches(
                epoch, section.seed, section.batch_size, skip=in_epoch, pool=pool, ahead=section.num_workers
            ):
                token_ids_t = torch.from_numpy(token_ids).to(device, non_blocking=True)
                attention_t = torch.from_numpy(attention_mask).to(device, non_blocking=True)
                labels = labels_all[torch.from_numpy(rows)].to(device, non_blocking=True)
                lr = optimizer.param_groups[0]["lr"]
                loss = loss_fn(model(token_ids_t, attention_t), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = (
                    torch.nn.utils.clip_grad_norm_(model.parameters(), section.gradient_clip)
                    if section.gradient_clip
                    else None
                )
                optimizer.step()
                scheduler.step()
                step += 1
                loss_value = loss.detach().item()
                now = time.perf_counter()
                record = {
                    "step": step,
                    "epoch": epoch + (in_epoch + 1) / steps_per_epoch,
                    "loss": loss_value,
                    "lr": lr,
                    "grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
                    "examples": len(rows),
                    "tokens": int(attention_mask.sum()),
                    "examples_per_s": len(rows) / max(now - last_time, 1e-9),
                }
                history.append(record)
                in_epoch += 1
                last_time = now
                if not math.isfinite(loss_value):
                    raise WLDetectError(
                        f"training diverged at step {step} (loss {loss_value}); lower training.learning_rate"
                    )
                progress.update(1)
                if step % 10 == 0 or step == end_step:
                    recent = history[-10:]
                    progress.set_postfix(
                        loss=f"{np.mean([h['loss'] for h in recent]):.4f}",
                        ex_s=f"{np.median([h['examples_per_s'] for h in recent]):,.0f}",
                        lr=f"{lr:.2e}",
                    )
                if section.save_checkpoints and (step % section.checkpoint_interval == 0 or step == total_steps):
                    save_checkpoint(
                        checkpoint_dir,
                        {
                            "format_version": CHECKPOINT_VERSION,
                            "step": step,
                            "epoch": epoch,
                            "batch_in_epoch": in_epoch,
                            "total_steps": total_steps,
                            "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "rng": {
                                "torch": torch.get_rng_state(),
                                "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                            },
                            "history": history,
                            "fingerprint": fingerprint,
                        },
                    )
                    last_time = time.perf_counter()  # the checkpoint's write is not training throughput
                if step >= end_step:
                    break
        progress.close()

    result = TrainingResult(
        artifacts_dir=final_dir,
        history=history,
        steps=step,
        total_steps=total_steps,
        epochs=section.epochs,
        seconds=0.0,
        device=str(device),
        resumed_from_step=resumed_from,
        completed=step >= total_steps,
    )
    if not result.completed:
        result.seconds = time.perf_counter() - started
        say(
            f"Stopped after step {step:,} of {total_steps:,}; {final_dir} is unchanged; resume with resume=True / "
            f"--resume (checkpoints in {checkpoint_dir})"
        )
        return result

    model.eval()
    mask_stats = None  # the summary's `mask: null` (and mask_stats.json's no-mask record) say: no mask
    if mask is not None:
        mask_stats = mask.statistics(
            _token_counts(corpus, section.num_workers), model.token_weights.detach().cpu().numpy()
        )
    result.mask = mask_stats
    say("\nStep 7: Save artifacts")
    result.files = export_artifacts(
        model, loaded, config, artifacts_dir, mask=mask, mask_stats=mask_stats, history=history, verbose=verbose
    )
    evaluation_set = _evaluation_set(config, say)
    texts, texts_source = _agreement_texts(evaluation_set, data)
    result.quantization = write_quantization_report(
        artifacts_dir, tokenizer, model_config.inference.pooling, texts, texts_source
    )
    result.files["quantization"] = artifacts_dir / QUANTIZATION_FILE
    for fmt in ("e4m3fn", "e3m4"):
        q = result.quantization["formats"][fmt]
        say(
            f"  {fmt.upper()} (scale {q['scale']:g}) vs fp32: mean |err| {q['mean_abs_error']:.4g}, "
            f"max |err| {q['max_abs_error']:.4g}, "
            f"RMSE {q['rmse']:.4g}, predictions agreeing {q['prediction_agreement']:.2%} "
            f"({q['agreement_texts']:,} {texts_source} texts)"
        )
    result.seconds = time.perf_counter() - started
    _write_summary(artifacts_dir, config, result, loaded.vocab_size, len(data))
    result.files["summary"] = artifacts_dir / SUMMARY_FILE
    if run_evaluation:  # evaluated before the swap: its files are part of the new directory, never the old one's
        result.evaluation = _run_evaluation(artifacts_dir, config, evaluation_set, verbose, say, final_dir)
    replaced = staged.commit(replaced=previous_output_names(final_dir))
    result.files = {key: final_dir / path.relative_to(artifacts_dir) for key, path in result.files.items()}
    if result.evaluation is not None:
        result.evaluation.paths = {k: final_dir / Path(p).name for k, p in result.evaluation.paths.items()}
    if replaced:
        say(f"Replaced the previous run's outputs in {final_dir}: {', '.join(replaced)}")
    say(f"Artifacts saved to: {final_dir} ({result.seconds:.1f} s in all)")
    return result


def _progress_bar(verbose: bool, total: int, initial: int):
    from tqdm import tqdm  # the text bar: papermill and logs record it (tqdm.auto needs ipywidgets)

    return tqdm(total=total, initial=initial, disable=not verbose, unit="step", dynamic_ncols=True, mininterval=0.5)


def _token_counts(corpus: TokenizedCorpus, num_workers: int = 0) -> np.ndarray:
    """Occurrences of each token id in the training data as trained (the same ids as step 1 counts)."""
    # a resumed run may not have needed every chunk in this process
    missing = [chunk for chunk in range(corpus.n_chunks) if chunk not in corpus._counted]
    if missing:
        with _tokenising_pool(num_workers) as pool:
            for _ in corpus.chunks(missing, pool, num_workers):
                pass
    return corpus.token_counts


@contextlib.contextmanager
def _tokenising_pool(num_workers: int) -> Iterator[ThreadPoolExecutor | None]:
    """`num_workers` threads that tokenise chunks ahead of training (None for 0: tokenise in the loop).

    On the way out, chunks still queued are cancelled rather than tokenised for nothing.
    """
    if not num_workers:
        yield None
        return
    pool = ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="wldetect-tokenise")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------------------- artifacts


def export_artifacts(
    model: LanguageDetectionModel,
    loaded,
    config: TrainingConfig,
    artifacts_dir: Path,
    *,
    mask: MaskInfo | None = None,
    mask_stats: dict[str, Any] | None = None,
    history: list[dict[str, float]] | None = None,
    verbose: bool = True,
) -> dict[str, Path]:
    """Write projection, lookup tables (fp32, E4M3FN, E3M4), model config, tokenizer, history and mask files.

    `mask_stats.json` always (without a mask: `no_mask_statistics`), `token_mask.npy` only with a mask.
    """
    say = print if verbose else (lambda *args, **kwargs: None)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    token_weights = model.token_weights.detach().float().cpu().numpy()
    projection_weight = model.projection.weight.detach().float().cpu().numpy()
    projection_bias = model.projection.bias.detach().float().cpu().numpy()

    files["projection"] = write_safetensors(
        artifacts_dir / PROJECTION_FILE,
        {"projection.weight": projection_weight, "projection.bias": projection_bias, "token_weights": token_weights},
        metadata={"languages": json.dumps(config.model.language_codes), "pooling": config.model.inference.pooling},
    )

    say("Step 7b: Generate fp8 lookup tables")
    table = compute_lookup_table(loaded.embeddings, token_weights, projection_weight, projection_bias)
    files.update(write_lookup_tables(table, artifacts_dir, config.model.language_codes, verbose=verbose))
    del table

    files["model_config"] = write_text_atomic(
        artifacts_dir / MODEL_CONFIG_FILE,
        yaml.safe_dump(config.model.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True),
    )
    files["tokenizer"] = artifacts_dir / TOKENIZER_FILE
    with atomic_path(files["tokenizer"]) as tmp:
        shutil.copyfile(loaded.tokenizer_path, tmp)
    if history is not None:
        files["history"] = write_history(artifacts_dir / HISTORY_FILE, history)
    if mask is not None:
        files["token_mask"] = artifacts_dir / MASK_FILE
        with atomic_path(files["token_mask"]) as tmp:
            np.save(tmp, mask.mask)
    else:  # "no mask" is written down, and no mask file of another run can contradict it
        (artifacts_dir / MASK_FILE).unlink(missing_ok=True)
        mask_stats = no_mask_statistics(int(token_weights.shape[0]))
    files["mask_stats"] = write_text_atomic(artifacts_dir / MASK_RECORD_FILE, json.dumps(mask_stats, indent=2) + "\n")
    return files


def no_mask_statistics(vocab_size: int) -> dict[str, Any]:
    """`mask_stats.json` of a model trained without a mask: nothing masked, no threshold."""
    return {
        "threshold": None,
        "source": "no mask",
        "vocab_size": vocab_size,
        "tokens_masked": 0,
        "tokens_masked_share": 0.0,
        "masked_occurrence_share": 0.0,
    }


def write_history(path: Path, history: list[dict[str, float]]) -> Path:
    buffer = io.StringIO()
    if history:
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    return write_text_atomic(path, buffer.getvalue())


def _evaluation_set(config: TrainingConfig, say):
    """The configured evaluation set, or None where it cannot be loaded here (e.g. FLORES+ offline)."""
    from wldetect.sources.evalsets import load_evaluation_set

    try:
        return load_evaluation_set(config.evaluation.dataset, config.evaluation.split)
    except WLDetectError as err:
        say(f"  Evaluation set not available ({err}); quantisation agreement uses training texts")
        return None


def _agreement_texts(evaluation_set, data) -> tuple[list[str], str]:
    if evaluation_set is not None and len(evaluation_set):
        texts = evaluation_set.sentences["text"].tolist()[:_AGREEMENT_TEXTS]
        return texts, "evaluation"
    n = min(len(data), _AGREEMENT_TEXTS)
    return data.texts(len(data) - n, len(data)), "training"


def _run_evaluation(artifacts_dir: Path, config: TrainingConfig, evaluation_set, verbose: bool, say, final_dir: Path):
    """Step 8: the configured evaluation of the artifacts just written."""
    from wldetect.evaluation import evaluate

    say("\nStep 8: Evaluate")
    kwargs = {"evaluation_set": evaluation_set} if evaluation_set is not None else {}
    try:
        return evaluate(
            artifacts_dir,
            dataset=config.evaluation.dataset,
            split=config.evaluation.split,
            table=config.evaluation.table,
            verbose=verbose,
            recorded_model_path=final_dir,
            **kwargs,
        )
    except WLDetectError as err:  # the artifacts are complete; evaluation can be run again on its own
        print(f"Warning: evaluation skipped ({err}); run `wldetect eval --model-path {final_dir}` when it can run")
        return None


def _write_summary(
    artifacts_dir: Path, config: TrainingConfig, result: TrainingResult, vocab_size: int, n_examples: int
) -> None:
    rates = [h["examples_per_s"] for h in result.history if h.get("examples_per_s")]
    summary = {
        "config": config.model_dump(mode="json", exclude={"model", "source_path"}),
        "config_path": str(config.source_path) if config.source_path else None,
        "vocab_size": vocab_size,
        "n_languages": config.model.n_languages,
        "n_examples": n_examples,
        "steps": result.steps,
        "total_steps": result.total_steps,
        "final_loss": result.final_loss,
        "median_examples_per_second": float(np.median(rates)) if rates else None,
        "device": result.device,
        "torch_version": torch.__version__,
        "seconds": round(result.seconds, 2),
        "resumed_from_step": result.resumed_from_step,
        "mask": result.mask,
        "quantization": {
            fmt: {k: v for k, v in q.items()} for fmt, q in result.quantization.get("formats", {}).items()
        },
    }
    write_text_atomic(artifacts_dir / SUMMARY_FILE, json.dumps(summary, indent=2, default=str) + "\n")
