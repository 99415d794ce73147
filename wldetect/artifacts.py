"""The artifacts directory of a trained model: its layout, in one place.

Training (step 3) writes it, filter-lookup rewrites it, evaluation (step 4) and the detector read it. Every
file name of that directory is defined here, and so is what counts as "a previous run's output" when a new
run replaces it (the user's own files in the directory are kept).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from wldetect.io import atomic_path, write_safetensors, write_text_atomic
from wldetect.lookup import FILE_NAMES as LOOKUP_FILES
from wldetect.lookup import compute_lookup_table, write_lookup_tables

if TYPE_CHECKING:
    from wldetect.config import ModelConfig
    from wldetect.masking import MaskInfo

PROJECTION_FILE = "projection.safetensors"
MODEL_CONFIG_FILE = "model_config.yaml"
TOKENIZER_FILE = "tokenizer.json"
HISTORY_FILE = "training_history.csv"
SUMMARY_FILE = "training_summary.json"
MASK_FILE = "token_mask.npy"
MASK_RECORD_FILE = "mask_stats.json"
QUANTIZATION_FILE = "quantization.json"
CHECKPOINT_DIR = "checkpoints"
# What evaluation writes next to the artifacts (`<set>_results.json`, ...; see wldetect.evaluation).
EVALUATION_SUFFIXES = ("_results.json", "_predictions.csv", "_confusion.png")
MODEL_FILES = (PROJECTION_FILE, *LOOKUP_FILES.values(), MODEL_CONFIG_FILE, TOKENIZER_FILE)


def previous_outputs(artifacts_dir: str | Path) -> list[Path]:
    """What an earlier training run (and its evaluation) wrote to `artifacts_dir`; other files are not listed.

    The model files, history, summary, mask files, quantisation report, `<set>_results.json` /
    `_predictions.csv` / `_confusion.png`, and the checkpoints.
    """
    artifacts_dir = Path(artifacts_dir)
    if not artifacts_dir.is_dir():
        return []
    names = (*MODEL_FILES, HISTORY_FILE, SUMMARY_FILE, MASK_FILE, MASK_RECORD_FILE, QUANTIZATION_FILE)
    found = [artifacts_dir / name for name in names if (artifacts_dir / name).is_file()]
    found += sorted(p for suffix in EVALUATION_SUFFIXES for p in artifacts_dir.glob(f"*{suffix}") if p.is_file())
    checkpoint_dir = artifacts_dir / CHECKPOINT_DIR
    if checkpoint_dir.is_dir():
        found += sorted(p for p in checkpoint_dir.glob("checkpoint_step_*.pt") if p.is_file())
    return found


def previous_output_names(artifacts_dir: str | Path) -> set[str]:
    """Top-level names in `artifacts_dir` that a new run replaces: `previous_outputs` and the checkpoints
    directory (the user's own files are kept across the swap)."""
    names = {p.name for p in previous_outputs(artifacts_dir) if p.parent == Path(artifacts_dir)}
    return names | {CHECKPOINT_DIR}


def no_mask_record(vocab_size: int) -> dict[str, Any]:
    """The mask record of a model trained without a mask: nothing masked, no threshold."""
    return {
        "threshold": None,
        "vocab_size": int(vocab_size),
        "tokens_masked": 0,
        "vocab_masked_fraction": 0.0,
        "occurrences_masked_fraction": 0.0,
        "source": "no mask",
    }


def write_artifacts(
    directory: Path,
    model_config: ModelConfig,
    *,
    embeddings: np.ndarray,
    projection_weight: np.ndarray,
    projection_bias: np.ndarray,
    token_weights: np.ndarray,
    tokenizer_path: Path,
    mask: MaskInfo | None = None,
    verbose: bool = True,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write a trained model's artifacts: projection (with the token weights), lookup tables (fp32, E4M3FN,
    E3M4), model config, tokenizer, and the mask record (with `token_mask.npy` when there is a mask).

    Returns the files written and the mask record. The record is written once, here; training's summary and
    evaluation results repeat it from this file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    languages = list(model_config.language_codes)
    files["projection"] = write_safetensors(
        directory / PROJECTION_FILE,
        {"projection.weight": projection_weight, "projection.bias": projection_bias, "token_weights": token_weights},
        metadata={"languages": json.dumps(languages), "pooling": model_config.inference.pooling},
    )
    table = compute_lookup_table(embeddings, token_weights, projection_weight, projection_bias)
    files.update(write_lookup_tables(table, directory, languages, verbose=verbose))
    del table
    files["model_config"] = write_text_atomic(
        directory / MODEL_CONFIG_FILE,
        yaml.safe_dump(model_config.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True),
    )
    files["tokenizer"] = directory / TOKENIZER_FILE
    with atomic_path(files["tokenizer"]) as tmp:
        shutil.copyfile(tokenizer_path, tmp)
    if mask is not None:
        files["token_mask"] = directory / MASK_FILE
        with atomic_path(files["token_mask"]) as tmp:
            np.save(tmp, mask.mask)
        record = mask.record(token_weights)
    else:  # "no mask" is written down, and no mask file of another run can contradict it
        (directory / MASK_FILE).unlink(missing_ok=True)
        record = no_mask_record(int(np.asarray(token_weights).shape[0]))
    files["mask_record"] = write_text_atomic(directory / MASK_RECORD_FILE, json.dumps(record, indent=2) + "\n")
    return files, record
