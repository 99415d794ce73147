"""The artifacts directory of a trained model: its layout, in one place.

Training (step 3) writes it, filter-lookup rewrites it, evaluation (step 4) and the detector read it. Every
file name of that directory is defined here, and so is what counts as "a previous run's output" when a new
run replaces it (the user's own files in the directory are kept).
"""

from __future__ import annotations

from pathlib import Path

from wldetect.lookup import FILE_NAMES as LOOKUP_FILES

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
