"""Post-hoc surgery on a trained model's tables: masking rare tokens without retraining, and the quantisation
report that says what the FP8 tables cost.

Both read and write a whole artifacts directory and need the step modules (counts, masks, pooling, the
evaluation sets); `wldetect.lookup` keeps the table math and the file formats alone, so the detector that
reads those files imports none of this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from wldetect.artifacts import (
    HISTORY_FILE,
    MASK_FILE,
    MASK_RECORD_FILE,
    MODEL_CONFIG_FILE,
    PROJECTION_FILE,
    QUANTIZATION_FILE,
    SUMMARY_FILE,
    TOKENIZER_FILE,
    outputs_to_replace,
    read_model_config,
    recorded_evaluation,
)
from wldetect.errors import WLDetectError
from wldetect.io import StagedDirectory, atomic_path, write_safetensors, write_text_atomic
from wldetect.lookup import (
    FILE_NAMES,
    load_lookup_table,
    quantization_error,
    write_lookup_tables,
    zero_token_rows,
)
from wldetect.pooling import TablePooler
from wldetect.sources.evalsets import load_evaluation_set
from wldetect.steps.count_files import load_token_counts
from wldetect.steps.masking import mask_statistics, parse_threshold, resolve_threshold
from wldetect.tokenization import configure, encode_texts

# ------------------------------------------------------------------------------------- quantisation report


def write_quantization_report(
    artifacts_dir: str | Path, tokenizer, pooling: str, texts: list[str], texts_source: str
) -> dict:
    """`quantization.json`: each FP8 table's error against fp32 (mean and max absolute error, RMSE, over every
    entry) and the share of `texts` whose predicted language is the same as with the fp32 table."""
    artifacts_dir = Path(artifacts_dir)
    encoded = encode_texts(tokenizer, texts) if texts else None

    def predictions(values: np.ndarray) -> np.ndarray:
        if encoded is None:
            return np.zeros(0, dtype=np.int64)
        best = TablePooler(values, pooling)(encoded.ids, encoded.lengths).argmax(axis=1)
        return np.where(encoded.lengths > 0, best, -1)

    reference = load_lookup_table(artifacts_dir / FILE_NAMES["fp32"]).values
    reference_predictions = predictions(reference)
    report: dict = {"reference": "fp32", "agreement_texts_source": texts_source, "formats": {}}
    for fmt in ("e4m3fn", "e3m4"):
        path = artifacts_dir / FILE_NAMES[fmt]
        table = load_lookup_table(path)
        entry: dict = quantization_error(reference, table.values)
        entry.update(
            scale=table.scale,
            file=path.name,
            file_bytes=path.stat().st_size,
            non_finite_values=0,  # `values` refuses a table with any
            agreement_texts=len(texts),
            prediction_agreement=(
                float((predictions(table.values) == reference_predictions).mean()) if len(texts) else None
            ),
        )
        report["formats"][fmt] = entry
        del table
    write_text_atomic(artifacts_dir / QUANTIZATION_FILE, json.dumps(report, indent=2) + "\n")
    return report


# ------------------------------------------------------------------------------------ post-hoc masking


@dataclass
class FilterResult:
    """What `filter_lookup` wrote."""

    output_dir: Path
    threshold: int
    tokens_masked: int
    vocab_size: int
    statistics: dict
    quantization: dict
    files: dict[str, Path] = field(default_factory=dict)


_COPIED_FILES = (MODEL_CONFIG_FILE, TOKENIZER_FILE, HISTORY_FILE, SUMMARY_FILE)


def filter_lookup(
    model_path: str | Path,
    token_counts: str | Path | np.ndarray,
    threshold: int | str,
    output_dir: str | Path,
    verbose: bool = True,
    overwrite: bool = False,
) -> FilterResult:
    """Zero the weight of every token seen fewer than `threshold` times in an already trained model (a share of
    the training tokens, `"1%"`, is resolved on `token_counts`: `masking.resolve_threshold`).

    The seed's `create_filtered_e3m4_model.py` without retraining and without the embeddings: a token's row is
    `w[t] * (E[t] @ W.T) + b`, so with `w[t] = 0` it is the projection bias. Writes a complete artifacts
    directory (tables in all three formats, projection with the zeroed weights, the mask, its statistics,
    and copies of the model config and tokenizer), so post-hoc masking can be evaluated like any trained
    model and compared with masking at initialisation.

    The directory is staged and swapped in when complete (`wldetect.io.StagedDirectory`); one that holds
    another model (not an earlier filter-lookup of this `model_path`), or files but no model, is refused
    unless `overwrite` (`wldetect.artifacts.outputs_to_replace` says what is replaced then).
    """
    say = print if verbose else (lambda *args, **kwargs: None)
    model_path, output_dir = Path(model_path), Path(output_dir)
    threshold = parse_threshold(threshold)
    if model_path.resolve() == output_dir.resolve():
        raise WLDetectError(f"--output-dir {output_dir}: must differ from --model-path (the source stays untouched)")
    origin = f"filter-lookup of {model_path.absolute()}"
    outputs_to_replace(output_dir, origin, overwrite)  # refused before any work
    for name in (MODEL_CONFIG_FILE, TOKENIZER_FILE, PROJECTION_FILE, FILE_NAMES["fp32"]):
        if not (model_path / name).is_file():
            raise WLDetectError(f"--model-path {model_path}: {name} not found (not a trained artifacts directory)")
    counts_source = "(array)" if isinstance(token_counts, np.ndarray) else str(token_counts)
    counts = load_token_counts(token_counts) if not isinstance(token_counts, np.ndarray) else token_counts
    table = load_lookup_table(model_path / FILE_NAMES["fp32"])
    if counts.shape[0] != table.values.shape[0]:
        raise WLDetectError(
            f"token counts {counts_source}: Token mask shape doesn't match vocab_size: the counts have "
            f"{counts.shape[0]} entries, the model's lookup table {table.values.shape[0]} rows"
        )
    resolved = resolve_threshold(threshold, counts)
    threshold = resolved.count
    mask = counts >= threshold
    projection = _load_projection(model_path / PROJECTION_FILE)
    asked = f" ({resolved.share_spec} of the training tokens)" if resolved.share_spec else ""
    say(f"Filtering {model_path} -> {output_dir}: zeroing the weights of tokens seen < {threshold} times{asked}")
    statistics = mask_statistics(counts, mask, threshold, resolved.share_spec).record()
    token_weights = projection["token_weights"].reshape(-1)
    statistics.update(
        mode="post-hoc",
        source=counts_source,
        source_model=str(model_path),
        weights_zeroed=int(((token_weights != 0) & ~mask).sum()),
    )
    say(
        f"  Tokens masked: {statistics['tokens_masked']:,} of {mask.size:,} ({statistics['vocab_masked_fraction']:.2%}); "
        f"non-zero weights zeroed: {statistics['weights_zeroed']:,}"
    )

    final_dir = output_dir
    with StagedDirectory(final_dir, swap=True, what="--output-dir") as staged:
        staging = staged.staging
        files: dict[str, Path] = {}
        languages = table.languages
        filtered = zero_token_rows(table.values, projection["projection.bias"], mask)
        files.update(write_lookup_tables(filtered, staging, languages, verbose=verbose))
        del filtered, table
        projection["token_weights"] = np.where(
            mask[:, None], projection["token_weights"].reshape(-1, 1), 0.0
        ).astype(np.float32)
        files["projection"] = staging / PROJECTION_FILE
        write_safetensors(files["projection"], projection)
        for name in _COPIED_FILES:
            if (model_path / name).is_file():
                with atomic_path(staging / name) as tmp:
                    tmp.write_bytes((model_path / name).read_bytes())
                files[name] = staging / name
        files["token_mask"] = staging / MASK_FILE
        with atomic_path(files["token_mask"]) as tmp:
            np.save(tmp, mask)
        files["mask_stats"] = write_text_atomic(staging / MASK_RECORD_FILE, json.dumps(statistics, indent=2) + "\n")

        quantization = quantization_report(staging, verbose=verbose).report
        files["quantization"] = staging / QUANTIZATION_FILE
        replaced = staged.commit(replaced=outputs_to_replace(final_dir, origin, overwrite))
    files = {key: final_dir / path.name for key, path in files.items()}
    if replaced:
        say(f"  Replaced in {final_dir}: {', '.join(replaced)}")
    return FilterResult(
        output_dir, threshold, statistics["tokens_masked"], int(mask.size), statistics, quantization, files
    )


def _load_projection(path: Path) -> dict[str, np.ndarray]:
    """A trained projection file, or one line saying why it cannot be used."""
    try:
        projection = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for damaged headers and data
        raise WLDetectError(f"{path}: not a readable safetensors file ({str(err).splitlines()[0]})") from None
    missing = {"projection.weight", "projection.bias", "token_weights"} - set(projection)
    if missing:
        raise WLDetectError(f"{path}: missing tensors {', '.join(sorted(missing))} (not a trained projection)")
    return projection


@dataclass
class QuantizationReport:
    """`quantization.json`, read: per FP8 format its error against fp32 and its prediction agreement."""

    report: dict
    path: Path

    def table(self):
        """One row per format: scale, mean/max absolute error, RMSE, share of texts predicted alike."""
        import pandas as pd

        columns = ("scale", "mean_abs_error", "max_abs_error", "rmse", "prediction_agreement", "agreement_texts")
        rows = {fmt: {k: entry.get(k) for k in columns} for fmt, entry in self.report["formats"].items()}
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("table")


def quantization_report(artifacts_dir: str | Path, config=None, verbose: bool = True) -> QuantizationReport:
    """Write `quantization.json` for the tables in `artifacts_dir`: their errors against fp32, and prediction
    agreement on the evaluation set (`config.evaluation` of a training config, else the one the directory's
    training summary records; up to 20,000 sentences) where it can be loaded here, else errors only."""
    artifacts_dir = Path(artifacts_dir)
    inference = read_model_config(artifacts_dir)[0].get("inference") or {}
    tokenizer = configure(Tokenizer.from_file(str(artifacts_dir / TOKENIZER_FILE)), inference.get("max_sequence_length"))
    evaluation = config.evaluation.model_dump(mode="json") if config is not None else recorded_evaluation(artifacts_dir)
    texts, source = [], "none"
    try:
        evaluation_set = load_evaluation_set(evaluation.get("dataset", "demo"), evaluation.get("split", "dev"))
        texts, source = evaluation_set.sentences["text"].tolist()[:20_000], "evaluation"
    except WLDetectError as err:
        if verbose:
            print(f"  No prediction agreement: the evaluation set is not available here ({err})")
    report = write_quantization_report(artifacts_dir, tokenizer, inference.get("pooling", "logsumexp"), texts, source)
    if verbose:
        for fmt, entry in report["formats"].items():
            agreement = entry["prediction_agreement"]
            agreement_text = f", predictions agreeing {agreement:.2%} ({len(texts):,} {source} texts)" if agreement is not None else ""
            print(
                f"  {fmt.upper()} vs fp32: mean |err| {entry['mean_abs_error']:.4g}, RMSE {entry['rmse']:.4g}{agreement_text}"
            )
    return QuantizationReport(report, artifacts_dir / QUANTIZATION_FILE)
