"""What the step notebooks call around their step: one setup call, the verdicts in words, the closing metrics.

The workflow's steps, everywhere in the project: 1 count tokens (`01_count_tokens`), 2 create mask
(`02_create_mask`), 3 train, which also writes the artifacts (`03_train`), 4 evaluate (`04_evaluate`),
5 compare (`05_compare`), and the analysis of the learned weights (`06_weight_analysis`).

A notebook's setup cell is its imports and `run = notebook_run(...)`; its closing cell is `run.close(metrics,
inputs=...)` (`wldetect.workflow.runs.Run.close`; the training data and embeddings a step read come from
`training_inputs`, step 5's inputs keyed by run from `compared_inputs`). Each report ends with its verdict in
words: `counts_verdict` (step 1), `training_verdict` (step 3) and `weights_verdict` (analysis) here; step 2's mask coverage
(`masking.MaskCoverage.verdict`) and the comparisons of steps 4 and 5 (`comparison.Comparison.verdict`)
carry their own.

This module may import `wldetect.workflow.runs`; `runs` never imports it. The verdicts read only the public fields
of the results they describe, and import nothing heavy.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from wldetect.errors import WLDetectError
from wldetect.records import owning_run
from wldetect.workflow.runs import Run, project_root, start_run


def notebook_run(
    name: str,
    *,
    kind: str,
    parameters: dict[str, Any],
    threshold: int | str | None = None,
    run_dir: str | Path | None = None,
    seed: int | None = None,
) -> Run:
    """The setup of a step notebook, in one call: work from the project root (so relative paths mean the same
    from notebooks/ in JupyterLab and from the root under papermill), silence tqdm's "no ipywidgets" warning
    (text progress bars suffice), check the parameters' values (`check_parameter_values`: a bad one leaves no
    run record behind), start the run record (`runs.start_run`: reuse `run_dir`, made by
    `wldetect run`, or make a new `runs/<run-id>/`) and print where it is."""
    from tqdm import TqdmWarning

    check_parameter_values(kind, {**parameters, "run_dir": run_dir})  # raw papermill / JupyterLab: before any record
    os.chdir(project_root())
    warnings.filterwarnings("ignore", category=TqdmWarning)
    run = start_run(name, kind=kind, parameters=parameters, threshold=threshold, run_dir=run_dir, seed=seed)
    print(f"Run record: {run.path}")
    return run


def training_inputs(training_config, training_data: bool = True, model=None) -> dict[str, Any]:
    """What a step that read the training data and the embeddings hands its run record (`run.close(inputs=...)`):
    the training data (the demo corpus file, a local data path, or a hub dataset's id and split: hashing 121M
    rows is not worth it), unless `training_data` is False (a step that read step 1's token ids instead), then
    each embeddings source's float32 cache. `model`: the config's model when the notebook has it loaded already.

    Here and not in `workflow.runs`, so that run records hash what they are given and never load a model."""
    from wldetect.sources import demo
    from wldetect.sources.models import load_model

    inputs: dict[str, Any] = {}
    dataset = training_config.dataset
    if training_data and dataset.name == "demo":
        inputs["training_data"] = demo.demo_corpus_path(dataset.demo_examples_per_language, dataset.shuffle_seed)
    elif training_data and Path(dataset.name).exists():
        inputs["training_data"] = dataset.name
    elif training_data:
        inputs["training_data"] = {"hub_dataset": dataset.name, "split": dataset.split, "sha256": None}
    for index, source in enumerate((model or load_model(training_config.model)).sources):
        inputs["embeddings" if index == 0 else f"embeddings_{index}"] = source.cache_path
    return inputs


# Parameters whose value is a path or a name when given (None: the notebook's default applies).
_PATHS_OR_NAMES = {
    "config", "token_mask", "count_run", "model_path", "baseline_path", "token_counts", "compare_with", "dataset",
    "split", "name", "results", "run_dir",
}  # fmt: skip


def check_parameter_values(notebook: str, parameters: dict[str, Any]) -> None:
    """Refuse a notebook parameter whose value the step cannot use, in one line naming it, before a run record
    is made: `wldetect run` calls it (through `workflow.check_parameters`) before it makes the record, and
    `notebook_run` before the notebook makes or reopens one, so raw papermill and JupyterLab are held to the
    same rules.

    The rules are the CLI's: `batch_size` a whole number >= 1 (`count-tokens --batch-size`), `num_workers`
    None or >= 0, `epochs` None (the config's `training.epochs`) or >= 1 and not contradicting
    `overrides['training.epochs']`, `sample_size` >= 0, `tables` distinct table names, `overrides` and
    `failed_runs` mappings, `runs_to_compare` a list of paths, and the paths and names (`_PATHS_OR_NAMES`)
    strings. Every value is thus used as given or refused here: none is silently replaced by a default.
    (`threshold` is `masking.parse_threshold`'s to read.) `notebook` (e.g. `03_train`) names the step."""
    from wldetect.lookup import FORMATS

    def refuse(key: str, expected: str) -> None:
        from wldetect.errors import WLDetectError

        raise WLDetectError(f"-p {key} {parameters[key]!r}: {notebook} expects {expected}")

    def whole(value: Any, minimum: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= minimum

    for key, value in parameters.items():
        if key == "batch_size" and not whole(value, 1):
            refuse(key, "a whole number >= 1 (texts per encode_batch call)")
        elif key == "num_workers" and value is not None and not whole(value, 0):
            refuse(key, "a whole number >= 0 (0: tokenise on the calling thread), or null for the default")
        elif key == "epochs" and value is not None and not whole(value, 1):
            refuse(key, "a whole number >= 1, or null for the config's training.epochs")
        elif key == "sample_size" and not whole(value, 0):
            refuse(key, "a whole number >= 0 (masked tokens shown decoded)")
        elif key in ("overrides", "failed_runs") and not isinstance(value, dict):
            refuse(key, "a mapping like {training.seed: 1}" if key == "overrides" else "a mapping of run id to error")
        elif key == "runs_to_compare" and not (
            isinstance(value, list) and all(isinstance(v, (str, os.PathLike)) for v in value)
        ):
            refuse(key, "a list of run or artifacts directories")
        elif key == "tables" and not (
            isinstance(value, list) and value and all(v in FORMATS for v in value) and len(set(value)) == len(value)
        ):
            refuse(key, f"a list of distinct table names from {', '.join(FORMATS)}, e.g. [fp32, e3m4]")
        elif key in _PATHS_OR_NAMES and value is not None and not isinstance(value, (str, os.PathLike)):
            refuse(key, "a path or name (a string), or null for the default")
    overrides = parameters.get("overrides")
    epochs = parameters.get("epochs")
    if epochs is not None and isinstance(overrides, dict) and overrides.get("training.epochs", epochs) != epochs:
        refuse("epochs", f"one number of epochs: -p overrides gives training.epochs {overrides['training.epochs']!r}")


def training_overrides(overrides: dict[str, Any] | None, epochs: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """Step 3's config overrides with its `epochs` and `seed` parameters folded in (`training.epochs`,
    `training.seed`). A `seed` parameter and an `overrides` seed that disagree are refused: the run id and
    manifest name one seed, and it must be the one training used."""
    merged = dict(overrides or {})
    if epochs is not None:  # 0 is refused by check_parameter_values, never read as "unset"
        merged["training.epochs"] = epochs
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise WLDetectError(f"-p seed {seed!r}: expected a whole number >= 0")
        if "training.seed" in merged and merged["training.seed"] != seed:
            raise WLDetectError(f"-p seed {seed} and -p overrides training.seed {merged['training.seed']!r} disagree: give one")
        merged["training.seed"] = seed
    return merged


def compared_inputs(paths: list[str | Path], results: str | None = None) -> dict[str, Path]:
    """The results files a comparison (step 5) read, for its `run.close(inputs=...)`: each `paths` entry (a run
    or artifacts directory, or a results file) resolved as `comparison.compare_runs` resolves it, keyed by
    the id of the run record that wrote it, else by the entry's own name; a key already taken gets `#2`,
    `#3`. Keyed by the entry's name alone, `runs/A/artifacts` and `runs/B/artifacts` were both `artifacts`:
    the manifest kept one, and `wldetect runs --lineage` lost the other run."""
    from wldetect.steps.comparison import results_file

    inputs: dict[str, Path] = {}
    for path in paths:
        found = results_file(path, results)
        producer = owning_run(found)
        base = producer.name if producer is not None else Path(path).name
        key, n = base, 1
        while key in inputs:
            n += 1
            key = f"{base}#{n}"
        inputs[key] = found
    return inputs


def evaluation_set_parameters(config: str | Path | None, dataset: str | None, split: str | None) -> tuple[str, str]:
    """Step 4's evaluation set from its notebook parameters: `dataset` and `split` as given; where None, the
    `evaluation` section of the training parameter file `config` (so `-p config` evaluates a model on the set
    its training was configured for, FLORES+ for the Gemma3 parameters), else `pud` and `dev`, which are
    shipped with the package and need no network."""
    if config is not None and (dataset is None or split is None):
        from wldetect.config import load_training_config

        section = load_training_config(config).evaluation
        dataset = section.dataset if dataset is None else dataset
        split = section.split if split is None else split
    return (dataset if dataset is not None else "pud"), (split if split is not None else "dev")


# --------------------------------------------------------------------------------------- step 1: counts


def count_metrics(token_counts) -> dict[str, Any]:
    """The manifest metrics of a token count (`count_files.TokenCounts`)."""
    counts = np.asarray(token_counts.counts)
    return {
        "vocab_size": int(counts.shape[0]),
        "total_tokens": int(counts.sum()),
        "distinct_tokens": int((counts > 0).sum()),
        "examples": int(token_counts.n_examples),
    }


def counts_verdict(token_counts) -> str:
    """What a token count shows, in words: tokens seen, the share of the vocabulary never seen (what any mask
    removes first), tokens seen once, and the most and least represented languages.

    Reads the public fields of `count_files.TokenCounts`: `counts`, `per_language`, `languages`, `n_examples`,
    `examples_per_language`."""
    counts = np.asarray(token_counts.counts)
    vocab = int(counts.shape[0])
    total = int(counts.sum())
    seen = int((counts > 0).sum())
    once = int((counts == 1).sum())
    languages = list(token_counts.languages)
    lines = [
        f"{total:,} token occurrences in {int(token_counts.n_examples):,} examples of {len(languages)} languages.",
        f"{seen:,} of the {vocab:,} vocabulary rows ({_share(seen, vocab)}) occur at least once; "
        f"{vocab - seen:,} ({_share(vocab - seen, vocab)}) never occur, so every mask with threshold >= 1 "
        f"masks at least those (and no gradient ever reaches their weights).",
    ]
    if seen:
        lines.append(
            f"{once:,} tokens ({_share(once, seen)} of those seen) occur exactly once; the 1% most frequent "
            f"tokens carry {_share(_top_share(counts, 0.01), 1.0)} of all occurrences."
        )
    if languages and total:
        per_language = np.asarray(token_counts.per_language.sum(axis=0), dtype=np.int64).reshape(-1)
        examples = token_counts.examples_per_language or {}
        order = sorted(range(len(languages)), key=lambda i: (-per_language[i], languages[i]))

        def describe(i: int) -> str:
            n_examples = int(examples.get(languages[i], 0))
            per_example = f", {per_language[i] / n_examples:.1f} per example" if n_examples else ""
            return f"{languages[i]} ({int(per_language[i]):,} tokens, {_share(int(per_language[i]), total)}{per_example})"

        most, least = order[0], order[-1]
        lines.append(f"Most represented: {describe(most)}; least represented: {describe(least)}.")
        if per_language[least] > 0:
            lines.append(f"The most represented language has {per_language[most] / per_language[least]:.1f}x the tokens of the least.")
        empty = [languages[i] for i in order if per_language[i] == 0]
        if empty:
            lines.append(f"No tokens at all for {len(empty)} language(s): {', '.join(empty[:10])}.")
    return "\n".join(lines)


def _top_share(counts: np.ndarray, fraction: float) -> float:
    """Share of all occurrences carried by the `fraction` most frequent tokens (at least one token)."""
    n = max(1, int(round(fraction * counts.shape[0])))
    total = counts.sum()
    if not total:
        return 0.0
    top = np.partition(counts, counts.shape[0] - n)[counts.shape[0] - n :]
    return float(top.sum() / total)


# ------------------------------------------------------------------------------------- step 3: training


def training_metrics(result, evaluation=None) -> dict[str, Any]:
    """The manifest metrics of a training run (`training.TrainingResult`) and its evaluation (step 4's
    `EvaluationResult`, None when none ran)."""
    metrics: dict[str, Any] = {
        "examples_per_s": result.examples_per_second,
        "train_seconds": result.seconds,
        "final_loss": result.final_loss,
    }
    if evaluation is not None:
        metrics.update(accuracy=evaluation.overall["accuracy"], f1_macro=evaluation.overall["f1_macro"])
    mask = result.mask or {}
    metrics.update(
        tokens_masked=mask.get("tokens_masked", 0), occurrences_masked_fraction=mask.get("occurrences_masked_fraction", 0.0)
    )
    return metrics


def training_verdict(result, evaluation=None) -> str:
    """What a training run did, in words: steps and final loss, the evaluation if one ran, and the mask: how
    many tokens started at weight 0 and how many of them learned a non-zero weight.

    Reads `training.TrainingResult`'s `steps`, `epochs`, `seconds`, `device`, `final_loss`, `mask` (the
    `mask_stats.json` record), and the `overall` of step 4's `evaluation` of the artifacts (None: none ran)."""
    loss = result.final_loss
    lines = [
        f"Trained {result.steps:,} steps ({result.epochs} epoch{'s' if result.epochs != 1 else ''}) on {result.device} "
        f"in {result.seconds:.1f} s; final loss {loss:.4f}." if loss is not None else
        f"Trained {result.steps:,} steps on {result.device} in {result.seconds:.1f} s; no loss was recorded."
    ]  # fmt: skip
    if not getattr(result, "completed", True):
        lines.append(f"Training stopped before the end ({result.steps:,} of {result.total_steps:,} steps).")
    if evaluation is not None:
        overall = evaluation.overall
        lines.append(
            f"Evaluated on {_evaluation_name(evaluation)}: accuracy {overall['accuracy']:.2%}, macro F1 "
            f"{overall['f1_macro']:.4f} ({int(overall.get('n_sentences', 0)):,} sentences, "
            f"{int(overall.get('n_languages', 0))} languages)."
        )
    else:
        lines.append("No evaluation ran (the evaluation set could not be loaded here): see the training log above.")
    mask = result.mask or {}
    masked = int(mask.get("tokens_masked") or 0)
    if not masked:
        lines.append("No mask: every token weight started at 1.0 (the baseline).")
        return "\n".join(lines)
    vocab = int(mask.get("vocab_size") or 0)
    threshold = mask.get("threshold")
    share = mask.get("occurrences_masked_fraction")
    asked = mask.get("threshold_share")
    named = f"{asked} -> threshold {threshold}" if asked else f"threshold {threshold}"
    text = f"Mask{f' ({named})' if threshold is not None else ''}: {masked:,}"
    text += f" of {vocab:,} tokens ({_share(masked, vocab)})" if vocab else " tokens"
    text += " started at weight 0.0"
    if share is not None:
        text += f"; they carry {share:.2%} of the training token occurrences"
    lines.append(text + ".")
    seen = mask.get("masked_tokens_seen_in_training")
    nonzero = mask.get("masked_weights_nonzero_after_training")
    if nonzero is not None:
        text = f"{int(nonzero):,} of the {masked:,} masked tokens learned a non-zero weight"
        if seen is not None:
            text += f"; {int(seen):,} of the {masked:,} occur in the training data, the other {masked - int(seen):,} get no gradient"
        largest = mask.get("masked_weights_max_abs_after_training")
        if largest is not None and int(nonzero):
            text += f"; the largest |weight| among them is {float(largest):.4f}"
        lines.append(text + ".")
    elif seen is not None:
        lines.append(f"{int(seen):,} of the masked tokens occur in the training data.")
    return "\n".join(lines)


def _evaluation_name(evaluation) -> str:
    """`pud`, `devset`, `flores_dev`, `my-set`: the set as its result files name it."""
    from wldetect.sources.evalsets import output_set_stem

    dataset = getattr(evaluation, "dataset", None) or {}
    if not dataset.get("name"):
        return "the evaluation set"
    return output_set_stem(str(dataset["name"]), dataset.get("kind"), dataset.get("split"))


# ---------------------------------------------------------------------------------- analysis: weights


def weights_metrics(analysis) -> dict[str, Any]:
    """The manifest metrics of a weight analysis (`weight_analysis.WeightAnalysis`)."""
    summary = analysis.summary
    return {"masked_tokens_changed": int(summary.loc["masked", "changed"]) if "masked" in summary.index else 0}


def weights_verdict(analysis) -> str:
    """What training did to the per-token weights, in words, from `weight_analysis.WeightAnalysis`: how many
    kept tokens moved from 1.0, how many masked tokens learned a non-zero weight (and how many of those occur
    in the training counts), and, with a baseline, how closely the kept tokens' weights follow it."""
    summary = analysis.summary
    lines = []
    if "kept" in summary.index:
        kept = summary.loc["kept"]
        lines.append(
            f"Kept tokens: {int(kept['changed']):,} of {int(kept['tokens']):,} ({kept['changed_pct']:.1f}%) moved "
            f"from their initial 1.0; their weights now average {kept['mean']:.3f} (range {kept['min']:.3f} to "
            f"{kept['max']:.3f}, {int(kept['negative']):,} negative)."
        )
    if "masked" in summary.index and summary.loc["masked", "tokens"] > 0:
        masked = summary.loc["masked"]
        stayed = int(masked["tokens"]) - int(masked["changed"])
        text = (
            f"Masked tokens: {int(masked['changed']):,} of {int(masked['tokens']):,} ({masked['changed_pct']:.1f}%) "
            f"learned a non-zero weight ({int(masked['above_0.01']):,} with |w| > 0.01, largest {max(abs(masked['min']), abs(masked['max'])):.3f}); "
            f"{stayed:,} stayed exactly at 0.0"
        )
        if analysis.counts is not None:
            seen = int(((np.asarray(analysis.counts) > 0) & ~analysis.mask).sum())
            text += f". {seen:,} of the masked tokens occur in the training counts"
        lines.append(text + ".")
        if masked["changed"] > 0:
            lines.append("Masking here is an initialisation, not a freeze: training brought masked tokens back.")
    else:
        lines.append("No token was masked: this is an unmasked (baseline) model.")
    comparison = analysis.baseline_comparison
    if comparison is not None and "kept" in comparison.index:
        row = comparison.loc["kept"]
        lines.append(
            f"Against the baseline, the kept tokens' weights correlate at r = {row['pearson_r']:.3f} "
            f"(mean |difference| {row['mean_abs_difference']:.4f}; mean {row['baseline_mean']:.3f} there, "
            f"{row['this_mean']:.3f} here)."
        )
    return "\n".join(lines)


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "n/a"
