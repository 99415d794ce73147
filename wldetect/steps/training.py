"""Step 3: train a projection and per-token weights over frozen embeddings, from the files of steps 1 and 2.

`train(config, token_ids=..., token_mask=...)` reads step 1's token ids (`count_files.TokenizedCorpus`, every
example tokenised once, memory-mapped chunk by chunk) and step 2's mask (the one `masking.resolve_mask`
decides), and writes the artifacts directory (`wldetect.artifacts`). It consumes steps 1 and 2 and never runs
them: counting is a step of its own (an hour on OpenLID), which `wldetect train` and notebook 03 show as such
before they call this. The pieces, in the order a reader meets them:

- `prepare`: the model's embeddings, the token ids, the mask and the schedule (`TrainingInputs`);
- `TrainState`: model, optimiser, schedule, step and history, with one `checkpoint()` / `restore()` pair;
- `fit`: the loop, nanoGPT-style: forward, backward, clip, step; it syncs with the device only when it logs
  (every `LOG_INTERVAL` steps, at checkpoints and at the end);
- `artifacts.write_artifacts`: projection, lookup tables, model config, tokenizer, history and mask record.

The quantisation report (`posthoc.quantization_report`) and the evaluation (step 4, `evaluation.evaluate`)
are separate calls on the finished artifacts: the notebook and `wldetect train` show them as steps.

An epoch visits the chunks in a seeded random order and each chunk in a seeded random order, so the order of
any epoch, and therefore the data position of a checkpoint, is a pure function of (seed, epoch, step):
resuming needs the step number only. Same seed, same inputs: the same weights on CPU, also across an
interruption and `resume=True`.

The artifacts directory belongs to one run and is written then swapped (`wldetect.io.StagedDirectory`): the
run writes checkpoints and artifacts to `.<name>.staging/` next to it and swaps that in when complete; until
then the earlier model is untouched, so a failed run loses nothing, and an interrupted run's checkpoints stay
in the staging directory for `resume=True`. Checkpoints carry a fingerprint of the run (training
settings, token ids, model config, mask); only checkpoints with the current fingerprint are pruned (the latest two kept) or
resumed from.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm  # the text bar: papermill and logs record it (tqdm.auto needs ipywidgets)

from wldetect.artifacts import CHECKPOINT_DIR, HISTORY_FILE, SUMMARY_FILE, outputs_to_replace, write_artifacts
from wldetect.config import TrainingConfig, TrainingSection, load_training_config
from wldetect.errors import WLDetectError
from wldetect.io import StagedDirectory, atomic_path, write_text_atomic
from wldetect.sources.models import LoadedModel, load_model
from wldetect.steps.count_files import TokenizedCorpus, resolve_token_ids
from wldetect.steps.counting import cache_key
from wldetect.steps.masking import MaskInfo, resolve_mask
from wldetect.steps.model import LanguageDetectionModel

CHECKPOINT_VERSION = 2
KEEP_CHECKPOINTS = 2
LOG_INTERVAL = 10  # optimiser steps per history entry: the loop reads the loss back from the device this often
_CHECKPOINT_NAME = re.compile(r"checkpoint_step_\d+\.pt")


# ------------------------------------------------------------------------------------------ the batches


def epoch_batches(
    corpus: TokenizedCorpus, epoch: int, seed: int, batch_size: int, skip: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(token_ids (B, L) int64, attention_mask (B, L) bool, example indices (B,)) of one epoch.

    The order is a function of (seed, epoch) only; `skip` batches are passed over without reading them.
    """
    chunk_order = np.random.default_rng([seed % 2**32, epoch]).permutation(corpus.n_chunks)
    for chunk in map(int, chunk_order):
        start, stop = corpus.chunk_bounds(chunk)
        n_batches = math.ceil((stop - start) / batch_size)
        if skip >= n_batches:
            skip -= n_batches
            continue
        ids, offsets = corpus.chunk(chunk)
        rows = np.random.default_rng([seed % 2**32, epoch, chunk]).permutation(stop - start)
        for b in range(skip, n_batches):
            batch_rows = rows[b * batch_size : (b + 1) * batch_size]
            token_ids, attention_mask = padded_batch(ids, offsets, batch_rows)
            yield token_ids, attention_mask, start + batch_rows
        skip = 0


def steps_per_epoch(corpus: TokenizedCorpus, batch_size: int) -> int:
    return sum(math.ceil((stop - start) / batch_size) for start, stop in map(corpus.chunk_bounds, range(corpus.n_chunks)))


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


def class_weights_for(
    section: TrainingSection, labels: np.ndarray, n_languages: int, device: torch.device | None = None
) -> torch.Tensor | None:
    """`balanced`: n / (k * n_c) for each language c present in the data (sklearn's definition)."""
    if section.class_weights == "none":
        return None
    counts = np.bincount(labels, minlength=n_languages).astype(np.float64)
    present = counts > 0
    weights = np.ones(n_languages)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32, device=device)


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


# ----------------------------------------------------------------------------------------- preparation


@dataclass
class TrainingInputs:
    """Everything `fit` needs that is not the state: the files of steps 1 and 2, read, and the schedule."""

    config: TrainingConfig
    model: LoadedModel
    corpus: TokenizedCorpus
    mask: MaskInfo | None
    device: torch.device
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int

    @property
    def fingerprint(self) -> dict[str, str]:
        """What must not change between a checkpoint and the run resuming from it."""
        section = self.config.training.model_dump(
            mode="json", exclude={"device", "num_workers", "save_checkpoints", "checkpoint_interval", "token_mask_path"}
        )
        return {
            "training": json.dumps(section, sort_keys=True),
            "token_ids": self.corpus.identity,
            "model": json.dumps(self.config.model.model_dump(mode="json"), sort_keys=True),
            "examples": str(len(self.corpus)),
            "vocab_size": str(self.model.vocab_size),
            "mask": self.mask.digest if self.mask else "none",
        }

    def batches(self, epoch: int, skip: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]:
        """One epoch's batches from `skip` on, on the device: (token ids, attention mask, labels, real tokens)."""
        section, device = self.config.training, self.device
        for token_ids, attention_mask, rows in epoch_batches(self.corpus, epoch, section.seed, section.batch_size, skip):
            yield (
                torch.from_numpy(token_ids).to(device, non_blocking=True),
                torch.from_numpy(attention_mask).to(device, non_blocking=True),
                torch.from_numpy(np.asarray(self.corpus.labels[rows], dtype=np.int64)).to(device, non_blocking=True),
                int(attention_mask.sum()),
            )


def step1_token_ids(token_ids: str | Path | None, config: TrainingConfig) -> Path:
    """Step 1's token-ids directory from what `resolve_token_ids` accepts; training never counts, so without
    them it stops here, saying how to get them (a count on OpenLID takes an hour: it is a step of its own)."""
    if token_ids is None:
        source = config.source_path or "X.yaml"
        raise WLDetectError(
            f"training reads step 1's token ids and none were given: run `wldetect count-tokens --training-config "
            f"{source}` (or notebook 01) and pass its counts file, run directory or token-ids directory as token_ids= "
            "(`wldetect train` counts first by itself)"
        )
    return resolve_token_ids(token_ids)


def prepare(
    config: TrainingConfig,
    token_ids: str | Path | None,
    token_mask: str | Path | np.ndarray | MaskInfo | None = None,
    threshold: int | str | None = None,
    verbose: bool = True,
) -> TrainingInputs:
    """Read what training consumes: the model, the token ids (step 1) and the mask (step 2).

    `token_ids`: step 1's token-ids directory, its counts file or its run directory (required: `step1_token_ids`).
    The mask is `masking.resolve_mask`'s decision on `token_mask` (a .npy path, a bool array or a mask decided
    already), `threshold` (0 and None: none) and the config's `training.token_mask_path`.
    """
    say = print if verbose else (lambda *args, **kwargs: None)
    section = config.training
    corpus = TokenizedCorpus(step1_token_ids(token_ids, config))
    say("Step 3a: read the model, the token ids (step 1) and the mask (step 2)")
    loaded = load_model(config.model)
    say(loaded.summary())
    if corpus.vocab_size != loaded.vocab_size:
        raise WLDetectError(
            f"{corpus.directory}: token ids counted for vocab_size {corpus.vocab_size:,}, but the embeddings of "
            f"{' + '.join(s.name for s in config.model.model_specs)} have {loaded.vocab_size:,} rows (count the tokens again with this model)"
        )
    expected, recorded = cache_key(config, loaded.tokenizer_path, loaded.vocab_size), corpus.record.get("cache_key")
    recorded = recorded if isinstance(recorded, dict) else {}
    differing = sorted(k for k in expected if k != "version" and recorded.get(k) != expected[k])
    if differing:
        raise WLDetectError(
            f"{corpus.directory}: token ids of other inputs than this config's (differ in: {', '.join(differing)}); "
            "run step 1 with this config"
        )
    if len(corpus) == 0:
        raise WLDetectError(f"{corpus.directory}: no training examples")
    say(f"  Token ids: {corpus.directory} ({len(corpus):,} examples, {corpus.record.get('n_tokens', 0):,} tokens)")
    mask = resolve_mask(config, corpus, token_mask, threshold)
    for line in mask.seed_lines() if mask is not None else ["No token mask: every token weight starts at 1.0"]:
        say(f"  {line}")
    per_epoch = steps_per_epoch(corpus, section.batch_size)
    total = per_epoch * section.epochs
    warmup = warmup_steps_for(section, total)
    say(f"  {per_epoch:,} steps per epoch, {total:,} steps in {section.epochs} epoch(s) (warmup {warmup})")
    return TrainingInputs(config, loaded, corpus, mask, select_device(section.device), per_epoch, total, warmup)


# ------------------------------------------------------------------------------------------ train state


@dataclass
class TrainState:
    """The model, its optimiser and schedule, and where training is: what a checkpoint holds."""

    model: LanguageDetectionModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def create(cls, inputs: TrainingInputs) -> TrainState:
        """A fresh model (masked token weights at 0), AdamW and the warmup + cosine schedule."""
        config = inputs.config
        with warnings.catch_warnings():  # the memory-mapped cache is read-only; the buffer is never written
            warnings.simplefilter("ignore", UserWarning)
            embeddings = torch.from_numpy(inputs.model.embeddings)
        mask = torch.from_numpy(np.ascontiguousarray(inputs.mask.mask)) if inputs.mask is not None else None
        model = LanguageDetectionModel(
            embeddings,
            config.model.n_languages,
            dropout=config.training.projection.dropout,
            pooling=config.model.inference.pooling,
            token_mask=mask,
        ).to(inputs.device)
        optimizer = build_optimizer(model, config.training)
        section = config.training
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: lr_factor(s, inputs.total_steps, inputs.warmup_steps, section.scheduler, section.min_lr_ratio),
        )
        return cls(model, optimizer, scheduler)

    def checkpoint(self, fingerprint: dict[str, str]) -> dict[str, Any]:
        device = next(self.model.parameters()).device
        return {
            "format_version": CHECKPOINT_VERSION,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            },
            "history": self.history,
            "fingerprint": fingerprint,
        }

    def restore(self, checkpoint: dict[str, Any]) -> None:
        if checkpoint.get("format_version") != CHECKPOINT_VERSION:
            raise WLDetectError(
                f"checkpoint format {checkpoint.get('format_version')} (this version reads {CHECKPOINT_VERSION}); "
                "start without --resume"
            )
        self.model.load_state_dict(checkpoint["model"], strict=True)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        device = next(self.model.parameters()).device
        if device.type == "cuda" and checkpoint["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(checkpoint["rng"]["cuda"], device)
        self.step, self.history = int(checkpoint["step"]), list(checkpoint["history"])


# ---------------------------------------------------------------------------------------------- the loop


def fit(
    state: TrainState,
    inputs: TrainingInputs,
    *,
    end_step: int,
    save_checkpoint: Callable[[TrainState], None] | None = None,
    progress=None,
) -> None:
    """Train from `state.step` to `end_step` (in place). The loss and gradient norm stay on the device and
    are read back once per history entry: every `LOG_INTERVAL` steps, at a checkpoint and at the end."""
    section = inputs.config.training
    model, optimizer, scheduler = state.model, state.optimizer, state.scheduler
    loss_fn = make_loss(section, class_weights_for(section, inputs.corpus.labels, inputs.config.model.n_languages, inputs.device))
    window = _LogWindow(inputs.device)
    model.train()
    while state.step < end_step:
        epoch, in_epoch = divmod(state.step, inputs.steps_per_epoch)
        for token_ids, attention_mask, labels, n_tokens in inputs.batches(epoch, in_epoch):
            lr = optimizer.param_groups[0]["lr"]
            loss = loss_fn(model(token_ids, attention_mask), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), section.gradient_clip) if section.gradient_clip else None
            optimizer.step()
            scheduler.step()
            state.step += 1
            window.add(loss.detach(), grad_norm, len(labels), n_tokens)
            checkpoint_now = save_checkpoint is not None and (
                state.step % section.checkpoint_interval == 0 or state.step == inputs.total_steps
            )
            if state.step % LOG_INTERVAL == 0 or checkpoint_now or state.step == end_step:
                state.history.append(window.flush(state.step, state.step / inputs.steps_per_epoch, lr))
                if progress is not None:
                    progress.update(state.step - progress.n)
                    progress.set_postfix(loss=f"{state.history[-1]['loss']:.4f}", ex_s=f"{state.history[-1]['examples_per_s']:,.0f}", lr=f"{lr:.2e}")
            if checkpoint_now:
                save_checkpoint(state)
                window.restart_clock()  # writing the checkpoint is not training throughput
            if state.step >= end_step:
                break


class _LogWindow:
    """Sums of the steps since the last history entry; the loss and gradient norm as device tensors."""

    def __init__(self, device: torch.device):
        self.device = device
        self._reset()

    def _reset(self) -> None:
        self.loss = torch.zeros((), device=self.device)
        self.grad_norm = torch.zeros((), device=self.device)
        self.steps = self.examples = self.tokens = 0
        self.restart_clock()

    def restart_clock(self) -> None:
        self.started = time.perf_counter()

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor | None, examples: int, tokens: int) -> None:
        self.loss += loss
        self.grad_norm += grad_norm if grad_norm is not None else float("nan")
        self.steps += 1
        self.examples += examples
        self.tokens += tokens

    def flush(self, step: int, epoch: float, lr: float) -> dict[str, float]:
        """The mean loss and gradient norm of the window (one device sync), as one history entry."""
        loss, grad_norm = (torch.stack([self.loss, self.grad_norm]) / self.steps).tolist()
        seconds = max(time.perf_counter() - self.started, 1e-9)
        if not math.isfinite(loss):
            raise WLDetectError(f"training diverged by step {step} (mean loss {loss}); lower training.learning_rate")
        entry = {
            "step": step, "epoch": epoch, "loss": loss, "lr": lr, "grad_norm": grad_norm, "steps": self.steps,
            "examples": self.examples, "tokens": self.tokens, "examples_per_s": self.examples / seconds,
        }  # fmt: skip
        self._reset()
        return entry


# ------------------------------------------------------------------------------------------ checkpoints


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


# ---------------------------------------------------------------------------------------------- results


@dataclass
class TrainingResult:
    """What `train` produced. `history` has one entry per `LOG_INTERVAL` steps (a notebook plots it)."""

    artifacts_dir: Path
    history: list[dict[str, float]]
    steps: int
    total_steps: int
    epochs: int
    seconds: float
    device: str
    mask: dict[str, Any] | None = None
    files: dict[str, Path] = field(default_factory=dict)
    resumed_from_step: int | None = None
    completed: bool = True
    consumed: dict[str, Path] = field(default_factory=dict)  # the files of steps 1 and 2 it read

    @property
    def final_loss(self) -> float | None:
        return self.history[-1]["loss"] if self.history else None

    @property
    def examples_per_second(self) -> float:
        """Median over the history entries of this process (the first includes warm-up costs)."""
        rates = [h["examples_per_s"] for h in self.history if h.get("examples_per_s")]
        return float(np.median(rates)) if rates else 0.0

    def history_frame(self):
        import pandas as pd

        return pd.DataFrame(self.history)


# ------------------------------------------------------------------------------------------------ train


def train(
    config: TrainingConfig | str | Path,
    output_dir: str | Path | None = None,
    token_mask: str | Path | np.ndarray | MaskInfo | None = None,
    threshold: int | str | None = None,
    resume: bool = False,
    verbose: bool = True,
    *,
    token_ids: str | Path | None = None,
    stop_after_steps: int | None = None,
    overwrite: bool = False,
) -> TrainingResult:
    """Step 3: `prepare`, `fit`, then write the artifacts; see the module docstring.

    `token_ids` is step 1's output (required: training consumes step 1, it never runs it); `token_mask` and
    `threshold` are handed to `masking.resolve_mask`, the one place that decides the mask.

    `resume` continues from the latest checkpoint of this run (same fingerprint) in the staging directory
    `.<name>.staging/checkpoints/` (an interrupted run's) or in `<artifacts_dir>/checkpoints/` (a completed
    run's); without it the run starts fresh. `stop_after_steps` stops after that many optimiser steps without
    writing artifacts, exactly as an interruption would (for tests and benchmarks).

    A directory holding a model trained from another parameter file (or made by filter-lookup), or files but
    no model, is refused unless `overwrite`, and what the run may replace there is decided by
    `wldetect.artifacts.outputs_to_replace` (again at the commit, under the lock); a second run into the same
    directory at the same time is refused (lock file).
    """
    if not isinstance(config, TrainingConfig):
        config = load_training_config(config)
    step1_token_ids(token_ids, config)
    artifacts_dir, origin = training_output(config, output_dir, overwrite)

    def replacing() -> set[str]:
        return outputs_to_replace(artifacts_dir, origin, overwrite)

    staged = StagedDirectory(artifacts_dir, swap=True, what="--output-dir", keep_on_failure=_holds_checkpoints)
    try:
        with staged:
            inputs = prepare(config, token_ids, token_mask, threshold, verbose)
            return _train_staged(inputs, staged, resume, verbose, stop_after_steps, replacing)
    except WLDetectError as err:
        raise WLDetectError(f"{err}{_unchanged_note(staged)}") from None
    except BaseException:  # Ctrl-C, out of memory, a full disk: the same promise, on stderr
        if staged.committed is False and staged._lock is not None:
            print(f"Training failed{_unchanged_note(staged)}", file=sys.stderr)
        raise


def training_output(config: TrainingConfig, output_dir: str | Path | None = None, overwrite: bool = False) -> tuple[Path, str]:
    """The artifacts directory a run of `config` writes and the origin it records there, refused now
    (`outputs_to_replace`) when the run could not commit into it: `train` asks before any work, and `wldetect
    train` before it counts step 1, so that a refused run costs nothing."""
    artifacts_dir = Path(output_dir) if output_dir is not None else Path(config.output.artifacts_dir)
    origin = f"training with {Path(config.source_path).absolute()}" if config.source_path else "training"
    outputs_to_replace(artifacts_dir, origin, overwrite)
    return artifacts_dir, origin


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
    inputs: TrainingInputs,
    staged: StagedDirectory,
    resume: bool,
    verbose: bool,
    stop_after_steps: int | None,
    replacing: Callable[[], set[str]],
) -> TrainingResult:
    """`train` with the output directory staged and locked: writes to `staged.staging`, commits at the end,
    replacing what `replacing()` names then (the directory may have changed while the run trained)."""
    say = print if verbose else (lambda *args, **kwargs: None)
    section, started = inputs.config.training, time.perf_counter()
    checkpoint_dir = staged.staging / CHECKPOINT_DIR
    fork_devices = [inputs.device.index or 0] if inputs.device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):  # a notebook's own RNG state is left as it was
        torch.manual_seed(section.seed)
        state = TrainState.create(inputs)
        say(f"  Model parameters: {state.model.parameter_count():,} (trainable, on {inputs.device})")
        resumed_from = _resume(state, inputs, staged, say) if resume else None
        if resumed_from is None:  # a fresh run: an interrupted run's staged checkpoints are not continued
            if _holds_checkpoints(staged.staging):
                say(f"Discarding the checkpoints of an interrupted run in {checkpoint_dir} (not --resume)")
            staged.discard()

        def save(current: TrainState) -> None:
            save_checkpoint(checkpoint_dir, current.checkpoint(inputs.fingerprint))

        say(f"Step 3b: fit on {inputs.device}")
        end_step = inputs.total_steps if stop_after_steps is None else min(inputs.total_steps, stop_after_steps)
        with _progress_bar(verbose, inputs.total_steps, state.step) as progress:
            fit(state, inputs, end_step=end_step, save_checkpoint=save if section.save_checkpoints else None, progress=progress)

    result = TrainingResult(
        artifacts_dir=staged.target, history=state.history, steps=state.step, total_steps=inputs.total_steps,
        epochs=section.epochs, seconds=time.perf_counter() - started, device=str(inputs.device),
        resumed_from_step=resumed_from, completed=state.step >= inputs.total_steps,
        consumed={"token_ids": inputs.corpus.directory, **({"token_mask": inputs.mask.path} if inputs.mask and inputs.mask.path else {})},
    )  # fmt: skip
    if not result.completed:
        say(
            f"Stopped after step {state.step:,} of {inputs.total_steps:,}; {staged.target} is unchanged; resume with "
            f"resume=True / --resume (checkpoints in {checkpoint_dir})"
        )
        return result

    say("Step 3c: write the artifacts")
    state.model.eval()
    token_weights = state.model.token_weights.detach().float().cpu().numpy()
    result.files, result.mask = write_artifacts(
        staged.staging,
        inputs.config.model,
        embeddings=inputs.model.embeddings,
        projection_weight=state.model.projection.weight.detach().float().cpu().numpy(),
        projection_bias=state.model.projection.bias.detach().float().cpu().numpy(),
        token_weights=token_weights,
        tokenizer_path=inputs.model.tokenizer_path,
        mask=inputs.mask,
        verbose=verbose,
    )
    result.files["history"] = write_history(staged.staging / HISTORY_FILE, state.history)
    result.seconds = time.perf_counter() - started
    result.files["summary"] = _write_summary(staged.staging, inputs, result)
    replaced = staged.commit(replaced=replacing())
    result.files = {key: staged.target / path.relative_to(staged.staging) for key, path in result.files.items()}
    if replaced:
        say(f"Replaced the previous run's outputs in {staged.target}: {', '.join(replaced)}")
    say(f"Artifacts saved to: {staged.target} ({result.seconds:.1f} s in all)")
    return result


def _resume(state: TrainState, inputs: TrainingInputs, staged: StagedDirectory, say) -> int | None:
    """Restore the latest checkpoint of this run; its step, or None when there is none."""
    directories = [staged.staging / CHECKPOINT_DIR, staged.target / CHECKPOINT_DIR]
    checkpoint, path = _matching_checkpoint(directories, inputs.fingerprint)
    if checkpoint is None:
        say(f"No checkpoint of this run in {' or '.join(map(str, directories))}; starting from scratch")
        return None
    state.restore(checkpoint)
    say(f"Resuming from {path} (step {state.step:,} of {inputs.total_steps:,})")
    return state.step


def _progress_bar(verbose: bool, total: int, initial: int):
    return tqdm(total=total, initial=initial, disable=not verbose, unit="step", dynamic_ncols=True, mininterval=0.5)


def write_history(path: Path, history: list[dict[str, float]]) -> Path:
    buffer = io.StringIO()
    if history:
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    return write_text_atomic(path, buffer.getvalue())


def _write_summary(directory: Path, inputs: TrainingInputs, result: TrainingResult) -> Path:
    config = inputs.config
    rates = [h["examples_per_s"] for h in result.history if h.get("examples_per_s")]
    summary = {
        "config": config.model_dump(mode="json", exclude={"model", "source_path"}),
        "config_path": str(config.source_path) if config.source_path else None,
        "token_ids": str(inputs.corpus.directory),
        "vocab_size": inputs.model.vocab_size,
        "n_languages": config.model.n_languages,
        "n_examples": len(inputs.corpus),
        "steps": result.steps,
        "total_steps": result.total_steps,
        "final_loss": result.final_loss,
        "median_examples_per_second": float(np.median(rates)) if rates else None,
        "device": result.device,
        "torch_version": torch.__version__,
        "seconds": round(result.seconds, 2),
        "resumed_from_step": result.resumed_from_step,
        "mask": result.mask,
    }
    return write_text_atomic(directory / SUMMARY_FILE, json.dumps(summary, indent=2, default=str) + "\n")
