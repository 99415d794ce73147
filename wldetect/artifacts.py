"""The artifacts directory of a trained model: its layout, in one place.

Training (step 3) writes it, filter-lookup rewrites it, evaluation (step 4) and the detector read it. Every
file name of that directory is defined here, and so is what counts as "a previous run's output" when a new
run replaces it (the user's own files in the directory are kept), and which directories a run may write a
model into at all (`outputs_to_replace`).

It is also the one reader of the directory's records: the languages of `model_config.yaml`
(`read_model_config`), the training summary (`training_summary`, `recorded_evaluation`), the mask and its
record (`read_token_mask`, `read_mask_record`) and what produced the model (`model_origin`). The detector,
evaluation, the weight analysis, post-hoc masking and comparison ask these functions instead of opening the
files, so a change to a file's format or name is made here once.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import yaml

from wldetect.errors import WLDetectError
from wldetect.io import (
    StagedDirectory,
    atomic_path,
    is_wldetect_internal,
    write_safetensors,
    write_text_atomic,
)
from wldetect.lookup import FILE_NAMES as LOOKUP_FILES
from wldetect.lookup import compute_lookup_table, write_lookup_tables

if TYPE_CHECKING:
    from wldetect.config import ModelConfig

PROJECTION_FILE = "projection.safetensors"
MODEL_CONFIG_FILE = "model_config.yaml"
TOKENIZER_FILE = "tokenizer.json"
HISTORY_FILE = "training_history.csv"
SUMMARY_FILE = "training_summary.json"
MASK_FILE = "token_mask.npy"
MASK_RECORD_FILE = "mask_stats.json"
QUANTIZATION_FILE = "quantization.json"
CHECKPOINT_DIR = "checkpoints"
# What evaluation writes next to the artifacts (`<set>_results.json`, ...; see wldetect.steps.evaluation).
EVALUATION_SUFFIXES = ("_results.json", "_predictions.csv", "_confusion.png", "_by_length.csv", "_references.json")
MODEL_FILES = (PROJECTION_FILE, *LOOKUP_FILES.values(), MODEL_CONFIG_FILE, TOKENIZER_FILE)
# Every top-level file that describes the model of the directory: what its readers take for part of it.
MODEL_RECORD_FILES = (*MODEL_FILES, HISTORY_FILE, SUMMARY_FILE, MASK_FILE, MASK_RECORD_FILE, QUANTIZATION_FILE)


# ------------------------------------------------------------------------------ reading a model directory


def read_model_config(directory: str | Path) -> tuple[dict[str, Any], list[str]]:
    """`model_config.yaml` of `directory`, parsed, and its language codes in column order (the `languages`
    mapping gives each code its output column); a missing file or one without that mapping is a one-line
    error."""
    config_path = Path(directory) / MODEL_CONFIG_FILE
    if not config_path.is_file():
        raise WLDetectError(f"{directory}: {MODEL_CONFIG_FILE} not found")
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        index = config["languages"]
        return config, sorted(index, key=index.__getitem__)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError):
        raise WLDetectError(f"{config_path}: expected a model config with a 'languages' mapping") from None


def _json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object file's content; None when it is missing, unreadable or not an object (a record that
    cannot be read tells nothing, and its readers fall back to what else they know)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def training_summary(directory: str | Path) -> dict[str, Any] | None:
    """`training_summary.json` of `directory` (what training wrote of its run: config, mask record, token ids,
    seed); None when there is none or it cannot be read."""
    return _json_object(Path(directory) / SUMMARY_FILE)


def recorded_evaluation(directory: str | Path) -> dict[str, Any]:
    """The `evaluation` section of the training config the summary records (`dataset`, `split`, ...): the set
    the model was trained to be evaluated on; {} when the summary does not say."""
    config = (training_summary(directory) or {}).get("config")
    section = config.get("evaluation") if isinstance(config, dict) else None
    return section if isinstance(section, dict) else {}


def read_token_mask(directory: str | Path) -> np.ndarray | None:
    """`token_mask.npy` of `directory` (bool (V,), False = masked), memory-mapped; None without one (a model
    trained without a mask)."""
    path = Path(directory) / MASK_FILE
    return np.load(path, mmap_mode="r", allow_pickle=False) if path.is_file() else None


def read_mask_record(directory: str | Path) -> dict[str, Any] | None:
    """What masking did to the model in `directory`: threshold, tokens masked, share of training data.

    Read from `mask_stats.json` (the trainer's record: threshold, vocab_size, tokens_masked,
    vocab_masked_fraction, occurrences_masked_fraction = share of training token occurrences whose token is
    masked, ...; for a model trained without a mask tokens_masked 0 and threshold null). Without it: counted
    from `token_mask.npy` (False = masked; threshold and occurrence share unknown). The training summary's
    `mask` record (`training_summary.json`; `mask: null` = no mask) is the word of the run that wrote the
    artifacts: where the mask files disagree with it they are left over from another run, and the summary
    wins. A post-hoc record (`mode: post-hoc`, written by `filter-lookup`, which copies the source model's
    summary) describes a change made after training and stands. None when nothing tells.
    """
    directory = Path(directory)
    recorded = _read_mask_files(directory)
    trained = _training_mask_record(directory)
    if recorded is None:
        return trained
    if trained is None or recorded.get("mode") == "post-hoc" or _same_mask(recorded, trained):
        return recorded
    return trained


def _read_mask_files(directory: Path) -> dict[str, Any] | None:
    """The mask record of `mask_stats.json`, else one counted from `token_mask.npy`; None without either."""
    stats_path = directory / MASK_RECORD_FILE
    if stats_path.is_file():
        try:
            stats = json.loads(stats_path.read_text(encoding="utf-8"))
        except ValueError:
            raise WLDetectError(f"{stats_path}: not valid JSON") from None
        if isinstance(stats, dict):
            return _current_names(stats)
        raise WLDetectError(f"{stats_path}: expected a JSON object")
    mask = read_token_mask(directory)
    if mask is None:
        return None
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    masked = int((~mask).sum())
    return {
        "threshold": None,
        "source": str(directory / MASK_FILE),
        "vocab_size": int(mask.shape[0]),
        "tokens_masked": masked,
        "vocab_masked_fraction": masked / max(int(mask.shape[0]), 1),
        "occurrences_masked_fraction": None,
    }


def _training_mask_record(directory: Path) -> dict[str, Any] | None:
    """The `mask` record of `training_summary.json` (all zeros for `mask: null`); None when it has none."""
    summary = training_summary(directory)
    if summary is None or "mask" not in summary:
        return None
    if isinstance(summary["mask"], dict):
        return _current_names(summary["mask"])
    if summary["mask"] is None and isinstance(summary.get("vocab_size"), int):  # written before the record existed
        return no_mask_record(summary["vocab_size"])
    return None


_OLD_NAMES = {"tokens_masked_share": "vocab_masked_fraction", "masked_occurrence_share": "occurrences_masked_fraction"}


def _current_names(record: dict[str, Any]) -> dict[str, Any]:
    """A mask record with this version's key names: artifacts written before the record had one name per
    quantity (`tokens_masked_share`, `masked_occurrence_share`) read the same as new ones."""
    renamed = {_OLD_NAMES.get(key, key): value for key, value in record.items() if key != "masked_share"}
    if "occurrences_masked_fraction" not in renamed and "masked_share" in record:
        renamed["occurrences_masked_fraction"] = record["masked_share"]
    return renamed


def _same_mask(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two mask records describe the same mask: tokens masked, threshold and vocabulary size agree.

    No threshold and threshold 0 both mean "none" when nothing is masked; a field one record lacks is not
    compared.
    """
    masked_a, masked_b = int(a.get("tokens_masked") or 0), int(b.get("tokens_masked") or 0)
    if masked_a != masked_b:
        return False
    if masked_a and "threshold" in a and "threshold" in b and a["threshold"] is not None and b["threshold"] is not None:
        if a["threshold"] != b["threshold"]:
            return False
    vocab_a, vocab_b = a.get("vocab_size"), b.get("vocab_size")
    return vocab_a is None or vocab_b is None or vocab_a == vocab_b


def model_origin(directory: str | Path) -> str | None:
    """What produced the model in `directory`, as recorded in its files; None when it holds no model.

    `training <config>` (training_summary.json), `filter-lookup of <model>` (mask_stats.json of a post-hoc
    mask) or `unknown` (model files without either record). Commands refuse to replace a model of another
    origin without --overwrite (`outputs_to_replace`).
    """
    directory = Path(directory)
    if not any((directory / name).is_file() for name in (PROJECTION_FILE, MODEL_CONFIG_FILE)):
        return None
    stats = _json_object(directory / MASK_RECORD_FILE)
    if stats is not None and stats.get("mode") == "post-hoc":
        return f"filter-lookup of {Path(str(stats.get('source_model'))).absolute()}"
    summary = training_summary(directory)
    if summary is not None and summary.get("config_path"):
        return f"training with {Path(str(summary['config_path'])).absolute()}"
    return "unknown"


# ------------------------------------------------------------------------------ writing a model directory


class TrainingMask(Protocol):
    """What `write_artifacts` needs of the mask a run trained with (`wldetect.steps.masking.MaskInfo` is one): the
    bool mask (True = keep) and its record given the learned weights. A protocol, so that this module, which
    step 2 reads for the model directory's file names, does not depend on step 2 in turn."""

    mask: np.ndarray

    def record(self, token_weights: np.ndarray | None = None) -> dict[str, Any]: ...


def previous_outputs(artifacts_dir: str | Path) -> list[Path]:
    """What an earlier training run (and its evaluation) wrote to `artifacts_dir`; other files are not listed.

    The model files, history, summary, mask files, quantisation report, the checkpoints
    (`checkpoints/checkpoint_step_*.pt`), and each evaluation's `<set>_results.json` with the
    `_predictions.csv` / `_confusion.png` it names. A `*_results.json` that is not an evaluation's (a JSON
    object with `schema_version` and `overall`, see `wldetect.steps.evaluation`) is a file of the user's, and so are
    the predictions and figure of its name.
    """
    artifacts_dir = Path(artifacts_dir)
    if not artifacts_dir.is_dir():
        return []
    found = [artifacts_dir / name for name in MODEL_RECORD_FILES if (artifacts_dir / name).is_file()]
    found += _evaluation_outputs(artifacts_dir)
    checkpoint_dir = artifacts_dir / CHECKPOINT_DIR
    if checkpoint_dir.is_dir():
        found += sorted(p for p in checkpoint_dir.glob("checkpoint_step_*.pt") if p.is_file())
    return found


def _evaluation_outputs(directory: Path) -> list[Path]:
    """The files of the evaluations in `directory`: each results JSON that `wldetect eval` wrote, with the
    predictions and heatmap it names (else those of its stem), and predictions or heatmaps whose stem has no
    results file (an evaluation's remains). Those beside a results file of the user's are the user's."""
    found: list[Path] = []
    for results in sorted(directory.glob(f"*{EVALUATION_SUFFIXES[0]}")):
        try:
            data = json.loads(results.read_text(encoding="utf-8")) if results.is_file() else None
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or "schema_version" not in data or "overall" not in data:
            continue
        stem = results.name.removesuffix(EVALUATION_SUFFIXES[0])
        named = data.get("files") if isinstance(data.get("files"), dict) else {}
        others = [named.get(key) for key in ("predictions", "heatmap", "by_length", "references")]
        others += [stem + suffix for suffix in EVALUATION_SUFFIXES[1:]]
        found.append(results)
        for name in others:
            if isinstance(name, str) and Path(name).name == name and (directory / name).is_file():
                found.append(directory / name)
    # predictions and heatmaps with no results file of their stem at all: an evaluation interrupted before
    # its results file (written last) moved in, or whose results file was deleted; left, they would sit
    # beside the next model as if they were its evaluation's
    for suffix in EVALUATION_SUFFIXES[1:]:
        for path in directory.glob(f"*{suffix}"):
            if path.is_file() and not (directory / (path.name.removesuffix(suffix) + EVALUATION_SUFFIXES[0])).exists():
                found.append(path)
    return sorted(set(found))


def previous_output_names(artifacts_dir: str | Path) -> set[str]:
    """`previous_outputs` as paths relative to `artifacts_dir` (`checkpoints/checkpoint_step_....pt`), the
    form `StagedDirectory.commit(replaced=...)` takes: the checkpoints are named one by one, so a file of the
    user's own in `checkpoints/` is kept across the swap like any other."""
    return {p.relative_to(artifacts_dir).as_posix() for p in previous_outputs(artifacts_dir)}


def outputs_to_replace(directory: str | Path, origin: str, overwrite: bool, what: str = "--output-dir") -> set[str]:
    """What a command writing a model (train, filter-lookup) may replace in `directory`, as paths for
    `StagedDirectory.commit(replaced=...)`; a one-line error where it may not write there at all.

    A missing or empty directory: nothing. One holding a model (see `model_origin`) of this
    `origin`: that model's outputs (`previous_output_names`: its files, its evaluations, its checkpoints),
    which describe the model being replaced; the user's other files are kept. A model of another origin is
    refused unless `overwrite`, then replaced the same way.

    A directory holding files but no model is refused unless `overwrite`: nothing says wldetect wrote any of
    them (`checkpoints/` of another tool, an experiment's `*_results.json`), so none may go unasked. With
    `overwrite` the model is added to it and only the names that make up a model (`MODEL_RECORD_FILES`, which
    the directory's readers would take for part of the new model: a stale `token_mask.npy` would be read as
    its mask) are replaced, besides whatever the run writes under the same name (its own checkpoints); every
    other file is kept, `*_results.json` and the rest of `checkpoints/` included.

    Called before the run, to fail before any work, and again at its commit, under the directory's lock.
    """
    directory = Path(directory)
    found = model_origin(directory)
    if found is not None:
        if found != origin and not overwrite:
            raise WLDetectError(
                f"{what} {directory} holds a different model ({found}); give --overwrite to replace it, or "
                "choose another directory"
            )
        return previous_output_names(directory)
    entries = sorted(
        entry for entry in (directory.iterdir() if directory.is_dir() else ()) if not is_wldetect_internal(entry)
    )
    if not entries:
        return set()
    if not overwrite:
        names = [entry.name + ("/" if entry.is_dir() else "") for entry in entries]
        listed = ", ".join(names[:4]) + (f", ... ({len(names) - 4} more)" if len(names) > 4 else "")
        raise WLDetectError(
            f"{what} {directory} holds files but no wldetect model ({listed}); give --overwrite to add the model "
            "to it (only files named like the model's are replaced, the others kept), or choose an empty directory"
        )
    return {name for name in MODEL_RECORD_FILES if (directory / name).exists()}


def refuse_model_file(path: str | Path, what: str = "--output") -> None:
    """Refuse to write `path` when it is one of the files that make up the model in its directory
    (`token_mask.npy` next to a trained model): the next training run or filter-lookup there replaces it as
    that model's file, and meanwhile the model's readers (evaluation, the weight analysis) would take it for
    the mask the model was trained with."""
    path = Path(path)
    if path.name in MODEL_RECORD_FILES and model_origin(path.parent) is not None:
        raise WLDetectError(
            f"{what} {path}: {path.name} of the model in {path.parent}, which training and filter-lookup replace; "
            "write it outside that directory"
        )


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
    mask: TrainingMask | None = None,
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


# ------------------------------------------------------------------------- the published WordLlamaDetect layout

EXPORT_FORMATS = ("wordllamadetect",)


def export_wordllamadetect(
    model_dir: str | Path,
    output: str | Path,
    *,
    sparse_threshold: float | None = None,
    table: str = "fp32",
    tokenizer_repo: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write a trained model in the published WordLlamaDetect layout, for users of its runtime
    (`pip install wldetect==0.1.2`, `WLDetect("OUT")`): `model_config.yaml`, `lookup_table_exp.safetensors`
    (exp of the `table` asked for: dense, or with `sparse_threshold` T the entries >= T as sparse COO, as the
    published trainer writes them) and `tokenizer.json` (padding off, truncation at max_sequence_length, so
    the published loader, which only sets truncation, tokenises as this detector does).

    The published runtime fetches its tokenizer from the hub repo `inference.tokenizer` names:
    `tokenizer_repo`, by default the model's own name when that is a hub repo id. Only logsumexp pooling has
    an exp table (a sum of exp rows is logsumexp); a model pooled otherwise is refused. Written into a staged
    sibling and swapped in, so a crash leaves no half-written directory. Returns what was written, with the
    table's entry counts.
    """
    from tokenizers import Tokenizer

    from wldetect.lookup import FILE_NAMES, load_lookup_table
    from wldetect.published import EXP_TABLE_FILE, exp_table_tensors
    from wldetect.tokenization import configure

    model_dir, output = Path(model_dir), Path(output)
    config_path = model_dir / MODEL_CONFIG_FILE
    if not config_path.is_file():
        raise WLDetectError(f"--model-path {model_dir}: no {MODEL_CONFIG_FILE} (not a trained artifacts directory)")
    if table not in FILE_NAMES:
        raise WLDetectError(f"--table {table!r}: expected one of {', '.join(FILE_NAMES)}")
    config, language_order = read_model_config(model_dir)
    languages = dict(config["languages"])
    inference = config.get("inference") or {}
    pooling = inference.get("pooling", "logsumexp")
    if pooling != "logsumexp":
        raise WLDetectError(
            f"{config_path}: inference.pooling {pooling!r}: the published format stores exp(logits) and sums them, "
            "which is logsumexp pooling only"
        )
    max_length = inference.get("max_sequence_length", 512)
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise WLDetectError(
            f"{config_path}: inference.max_sequence_length {max_length!r}: the published format needs a positive integer"
        )
    models = [config["model"]] if config.get("model") is not None else list(config.get("models") or [])
    if not models or not all(isinstance(m, dict) and {"name", "type", "hidden_dim"} <= set(m) for m in models):
        raise WLDetectError(f"{config_path}: expected 'model' or 'models' with name, type and hidden_dim")
    if tokenizer_repo is None:
        name = str(models[0]["name"])
        if name.count("/") == 1 and not name.startswith((".", "/", "~")) and not (model_dir / name).exists():
            tokenizer_repo = name
        else:
            raise WLDetectError(
                f"{config_path}: model {name!r} is not a hub repo; give --tokenizer-repo OWNER/NAME, the hub repo the "
                "published runtime fetches tokenizer.json from (Gemma3 models: the published model's "
                "dleemiller/WordLlamaDetect); tokenizer.json is written beside the table either way"
            )
    tokenizer_file = model_dir / TOKENIZER_FILE
    try:
        tokenizer = configure(Tokenizer.from_file(str(tokenizer_file)), max_length)
    except Exception as err:  # a missing or malformed file: the Rust side raises plain Exception
        raise WLDetectError(f"{tokenizer_file}: not a readable tokenizer ({str(err).splitlines()[0]})") from None
    lookup = load_lookup_table(model_dir / FILE_NAMES[table])
    if lookup.languages is not None and lookup.languages != language_order:
        raise WLDetectError(f"{lookup.path}: its languages differ from those of {config_path}")
    tensors = exp_table_tensors(lookup.values, sparse_threshold)

    published_config = {
        **({"model": models[0]} if config.get("model") is not None else {"models": models}),
        "languages": languages,
        "inference": {"tokenizer": tokenizer_repo, "max_sequence_length": max_length, "pooling": "logsumexp"},
    }
    files = (MODEL_CONFIG_FILE, EXP_TABLE_FILE, TOKENIZER_FILE)
    if output.resolve() == model_dir.resolve():
        raise WLDetectError(f"--output {output}: that is the model's own directory; export into another one")
    existing = [e.name for e in output.iterdir() if not is_wldetect_internal(e)] if output.is_dir() else []
    if existing and not overwrite:
        raise WLDetectError(
            f"--output {output} is not empty ({', '.join(sorted(existing)[:4])}); give --overwrite to replace "
            f"{', '.join(files)} there, or choose a new directory"
        )
    with StagedDirectory(output, swap=True, what="--output") as staged:
        write_safetensors(staged.staging / EXP_TABLE_FILE, tensors)
        write_text_atomic(staged.staging / TOKENIZER_FILE, tokenizer.to_str(pretty=True))
        write_text_atomic(
            staged.staging / MODEL_CONFIG_FILE,
            yaml.safe_dump(published_config, sort_keys=False, allow_unicode=True),
        )
        staged.commit(replaced=set(files))
    n_entries = int(np.prod(lookup.shape))
    stored = int(len(tensors["data"])) if "data" in tensors else n_entries
    return {
        "output": output,
        "files": {name: output / name for name in files},
        "table": table,
        "sparse_threshold": sparse_threshold,
        "stored_entries": stored,
        "entries": n_entries,
        "size_bytes": (output / EXP_TABLE_FILE).stat().st_size,
        "tokenizer_repo": tokenizer_repo,
    }
