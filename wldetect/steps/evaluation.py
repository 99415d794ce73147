"""Step 4: evaluate a trained detector on FLORES+ (or a stand-in) and save metrics, predictions and a heatmap.

`evaluate(model_path, ...)` loads the artifacts with the NumPy-only `WLDetect`, predicts every sentence of the
evaluation set, and computes the seed's metrics with scikit-learn. `evaluate_tables(...)` does it for the
fp32, E4M3FN and E3M4 lookup tables of one model and compares them (step 5's `compare_runs`).

Which sentences count
    Sentences whose gold language the model knows are scored. Languages of the evaluation set that the model
    does not know are excluded from the metrics and reported by name (with what the model called them);
    model languages with no sentences in the set are reported too. A sentence the detector returns no
    prediction for counts as wrong (predicted label `<none>`).

Metric definitions (scikit-learn, `zero_division=0`)
    Labels are the evaluated languages (in the set and in the model). `accuracy` is the share of scored
    sentences predicted correctly; `precision/recall/f1_{macro,weighted}` come from
    `precision_recall_fscore_support(y_true, y_pred, labels=evaluated, average=...)`. Predictions of a model
    language absent from the set are errors (they lower the gold language's recall) but get no row of their
    own. A language's `accuracy` is its correct share of its own sentences (equal to its recall, as the seed
    reports it).

Files: `<set>_results.json`, `<set>_predictions.csv`, `<set>_confusion.png`, `<set>_by_length.csv` and
`<set>_references.json`, next to the artifacts unless `output_dir`/`output` say otherwise. Their format,
writing and reading back (`EvaluationResult.save` / `.load`) are `wldetect.steps.results`'s: comparison and
the reports read them without running an evaluation.
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wldetect.artifacts import MODEL_CONFIG_FILE, read_mask_record, read_model_config, recorded_evaluation
from wldetect.detect import WLDetect
from wldetect.errors import WLDetectError
from wldetect.io import (
    StagedDirectory,
    check_output_directory,
)
from wldetect.records import refuse_finished_run_record
from wldetect.sources.evalsets import EvaluationSet, load_evaluation_set
from wldetect.steps.results import (
    DEFAULT_TABLE,
    LENGTHS,
    OVERALL_METRICS,
    RESULTS_SUFFIX,
    EvaluationResult,
    by_length_summary,
)

TABLES = ("e3m4", "e4m3fn", "fp32")
NO_PREDICTION = "<none>"
CHARACTERS_PER_WORD = 2  # scripts written without spaces are cut at 2K characters
# Scripts written without spaces between words (CJK, Thai, Lao, Khmer): "the first K words" is 2K characters.
UNSPACED_SCRIPTS = frozenset({"Hans", "Hant", "Hani", "Jpan", "Thai", "Laoo", "Khmr"})
TOP_CONFUSIONS = 50
_PREDICT_BATCH = 4096


# --------------------------------------------------------------------------------------------- metrics


def compute_metrics(
    gold: Sequence[str], predicted: Sequence[str | None], labels: Sequence[str]
) -> tuple[dict[str, float], pd.DataFrame]:
    """Overall and per-language metrics of scored sentences; `labels` are the evaluated languages.

    Returns the overall dict (the seed's keys plus counts) and a DataFrame indexed by language with
    columns support, accuracy, precision, recall, f1.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    y_true = np.asarray(gold, dtype=object)
    y_pred = np.asarray([NO_PREDICTION if p is None else p for p in predicted], dtype=object)
    labels = list(labels)
    if len(y_true) == 0:
        raise WLDetectError("no sentences to score: the evaluation set shares no language with the model")
    overall: dict[str, Any] = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        overall[f"precision_{average}"] = float(precision)
        overall[f"recall_{average}"] = float(recall)
        overall[f"f1_{average}"] = float(f1)
    correct = y_true == y_pred
    overall.update(
        n_sentences=int(len(y_true)),
        n_correct=int(correct.sum()),
        n_languages=len(labels),
        n_no_prediction=int((y_pred == NO_PREDICTION).sum()),
    )
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    per_gold_correct = pd.Series(correct).groupby(y_true).sum()
    per_language = pd.DataFrame(
        {
            "support": support.astype(np.int64),
            "accuracy": [per_gold_correct.get(code, 0) / n if n else 0.0 for code, n in zip(labels, support)],
            "precision": precision,
            "recall": recall,
            "f1": f1,
        },
        index=pd.Index(labels, name="language"),
    )
    order = (*OVERALL_METRICS, "n_sentences", "n_correct", "n_languages", "n_no_prediction")
    return {key: overall[key] for key in order}, per_language


def confusion_table(gold: Sequence[str], predicted: Sequence[str | None], labels: Sequence[str]) -> pd.DataFrame:
    """Counts with gold languages as rows (`labels`) and predicted labels as columns: `labels` first, then any
    other language predicted (a model language absent from the set), then `<none>` if it occurred."""
    from sklearn.metrics import confusion_matrix

    y_pred = [NO_PREDICTION if p is None else p for p in predicted]
    labels = list(labels)
    known = set(labels)
    extra = sorted({p for p in y_pred if p not in known and p != NO_PREDICTION})
    columns = labels + extra + ([NO_PREDICTION] if NO_PREDICTION in set(y_pred) else [])
    matrix = confusion_matrix(list(gold), y_pred, labels=columns)[: len(labels)]
    return pd.DataFrame(
        matrix, index=pd.Index(labels, name="gold"), columns=pd.Index(columns, name="predicted")
    )


def top_confusions(confusion: pd.DataFrame, n: int = TOP_CONFUSIONS) -> pd.DataFrame:
    """The most frequent (gold, predicted) errors with their share of the gold language's sentences."""
    long = confusion.stack().rename("count").reset_index()
    long = long[(long["gold"] != long["predicted"]) & (long["count"] > 0)]
    totals = confusion.sum(axis=1)
    long["share_of_gold"] = long["count"].to_numpy(np.float64) / totals.reindex(long["gold"]).to_numpy(np.float64)
    long = long.sort_values(["count", "gold", "predicted"], ascending=[False, True, True]).head(n)
    return long.reset_index(drop=True)


# ----------------------------------------------------------------------------------------- by length


def is_unspaced(language: str) -> bool:
    """Whether a code's script is written without spaces between words (`cmn_Hant`, `tha_Thai`, `jpn_Jpan`)."""
    return language.rpartition("_")[2] in UNSPACED_SCRIPTS


def cut_text(text: str, words: int, unspaced: bool) -> str:
    """The first `words` whitespace-separated words of `text`, or its first 2 x `words` characters in a script
    written without spaces. A sentence shorter than that is kept whole."""
    if unspaced:
        return text.strip()[: CHARACTERS_PER_WORD * words]
    return " ".join(text.split()[:words])


def length_cuts(sentences: pd.DataFrame, lengths: Sequence[int] = LENGTHS) -> pd.DataFrame:
    """`id, language, length, text`: every sentence cut to each length, length by length in the sentences'
    order. The ids are the sentences' own, so a fragment pairs with the same fragment of another run (and of
    a reference) by `(language, id, length)`: short texts are where a few rare tokens carry the decision."""
    languages = sentences["language"].astype(str).tolist()
    texts = sentences["text"].astype(str).tolist()
    unspaced = [is_unspaced(code) for code in languages]
    frames = [
        pd.DataFrame(
            {
                "id": sentences["id"].to_numpy(np.int64),
                "language": languages,
                "length": np.full(len(texts), k, dtype=np.int64),
                "text": [cut_text(text, k, flag) for text, flag in zip(texts, unspaced)],
            }
        )
        for k in lengths
    ]
    if not frames:
        return pd.DataFrame({"id": [], "language": [], "length": [], "text": []})
    return pd.concat(frames, ignore_index=True)


def score_fragments(
    cuts: pd.DataFrame, predicted: Sequence[str | None], confidence: Sequence[float], model_languages: Sequence[str]
) -> pd.DataFrame:
    """The by-length table `id, language, length, predicted, confidence, correct, in_model` of `length_cuts`."""
    labels = np.asarray([NO_PREDICTION if p is None else str(p) for p in predicted], dtype=object)
    gold = cuts["language"].to_numpy(dtype=object)
    known = set(model_languages)
    return pd.DataFrame(
        {
            "id": cuts["id"].to_numpy(np.int64),
            "language": gold,
            "length": cuts["length"].to_numpy(np.int64),
            "predicted": labels,
            "confidence": np.asarray(confidence, dtype=np.float64),
            "correct": gold == labels,
            "in_model": np.fromiter((g in known for g in gold), dtype=bool, count=len(gold)),
        }
    )


def length_accuracy(gold: np.ndarray, predicted: Sequence[str | None], lengths: np.ndarray) -> dict[str, dict[str, Any]]:
    """`by_length_summary` of plain arrays (references: gold codes, answers, the length of each fragment;
    length 0 marks a full sentence)."""
    correct = np.asarray(gold, dtype=object) == np.asarray([NO_PREDICTION if p is None else p for p in predicted], dtype=object)
    summary: dict[str, dict[str, Any]] = {}
    for length in sorted(set(lengths.tolist()) - {0}) + [0]:
        chosen = lengths == length
        n, right = int(chosen.sum()), int(correct[chosen].sum())
        summary["full" if length == 0 else str(length)] = {"accuracy": right / n if n else 0.0, "sentences": n, "correct": right}
    return summary


def configured_dataset(model_path: str | Path) -> str | None:
    """The evaluation set the model was trained to be evaluated on (`training_summary.json`), if recorded."""
    dataset = recorded_evaluation(model_path).get("dataset")
    return str(dataset) if dataset else None


def score_predictions(
    evaluation_set: EvaluationSet,
    predicted: Sequence[str | None],
    confidence: Sequence[float],
    model_languages: Sequence[str],
    *,
    model_path: str | Path = ".",
    table: str = DEFAULT_TABLE,
    mask: dict[str, Any] | None = None,
    seconds: float = 0.0,
) -> EvaluationResult:
    """Metrics, confusions and language bookkeeping for predictions of every sentence of `evaluation_set`."""
    sentences = evaluation_set.sentences
    if len(predicted) != len(sentences) or len(confidence) != len(sentences):
        raise ValueError("one prediction and one confidence per sentence expected")
    model_languages = list(model_languages)
    known = set(model_languages)
    predicted_labels = np.asarray([NO_PREDICTION if p is None else str(p) for p in predicted], dtype=object)
    gold = sentences["language"].to_numpy(dtype=object)
    in_model = np.fromiter((g in known for g in gold), dtype=bool, count=len(gold))
    predictions = pd.DataFrame(
        {
            "id": sentences["id"].to_numpy(np.int64),
            "language": gold,
            "predicted": predicted_labels,
            "confidence": np.asarray(confidence, dtype=np.float64),
            "correct": gold == predicted_labels,
            "in_model": in_model,
        }
    )
    present = set(gold[in_model])
    evaluated = [code for code in model_languages if code in present]  # the model's order
    missing = [code for code in model_languages if code not in present]
    unknown: dict[str, dict[str, Any]] = {}
    outside = predictions[~in_model]
    for code, group in outside.groupby("language", sort=True):
        counts = group["predicted"].value_counts()
        unknown[str(code)] = {
            "sentences": int(len(group)),
            "predicted_as": {str(k): int(v) for k, v in counts.head(5).items()},
        }
    if not evaluated:
        raise WLDetectError(
            f"evaluation set {evaluation_set.source}: none of its {len(unknown)} languages is known to the model "
            f"({', '.join(list(unknown)[:5])}...)"
        )
    scored = predictions[in_model]
    overall, per_language = compute_metrics(scored["language"], scored["predicted"], evaluated)
    confusion = confusion_table(scored["language"], scored["predicted"], evaluated)
    dataset = {
        "name": evaluation_set.name,
        "kind": evaluation_set.kind,
        "source": evaluation_set.source,
        "split": evaluation_set.split,
        "notes": list(evaluation_set.notes),
    }
    return EvaluationResult(
        model_path=Path(model_path),
        table=table,
        dataset=dataset,
        overall=overall,
        per_language=per_language,
        predictions=predictions,
        confusion=confusion,
        top_confusions=top_confusions(confusion),
        model_languages=model_languages,
        unknown_languages=unknown,
        missing_languages=missing,
        mask=mask,
        seconds=seconds,
        evaluated_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


# ------------------------------------------------------------------------------------------- evaluate


def _check_model_dir(model_path: str | Path) -> Path:
    model_path = Path(model_path).expanduser()
    if not model_path.is_dir():
        raise WLDetectError(f"--model-path {model_path}: no such directory")
    if not (model_path / MODEL_CONFIG_FILE).is_file():
        if (model_path / "artifacts" / MODEL_CONFIG_FILE).is_file():  # a run record: its artifacts/ subdirectory
            return model_path / "artifacts"
        raise WLDetectError(f"--model-path {model_path}: no {MODEL_CONFIG_FILE} here (not a trained artifacts directory)")
    return model_path


def _check_table(table: str) -> str:
    if table not in TABLES:
        raise WLDetectError(f"table {table!r}: expected one of {', '.join(TABLES)}")
    return table


def load_detector(model_path: Path, table: str):
    return WLDetect.load(model_path, table=table)


def predict_all(detector, texts: list[str], batch_size: int = _PREDICT_BATCH) -> tuple[list[str | None], np.ndarray]:
    """Top-1 language (None: no tokens) and confidence of every text, in batches so memory stays flat.

    Uses the detector's vectorised `predict_indices` when it has one, else `predict` (any object whose
    `predict(list)` returns `(language, confidence)` or None per text works).
    """
    labels: list[str | None] = []
    confidence = np.full(len(texts), np.nan)
    fast = getattr(detector, "predict_indices", None)
    languages = np.asarray(getattr(detector, "languages", []) + [None], dtype=object)
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        if fast is not None:
            best, conf = fast(batch)
            labels.extend(languages[np.where(best >= 0, best, -1)].tolist())
            confidence[start : start + len(batch)] = np.where(best >= 0, conf, np.nan)
            continue
        for offset, item in enumerate(detector.predict(batch)):
            if isinstance(item, list):  # top_k shape: a ranked list of pairs
                item = item[0] if item else None
            if item is None:
                labels.append(None)
            else:
                labels.append(str(item[0]))
                confidence[start + offset] = float(item[1])
    return labels, confidence


def _resolve_outputs(model_path: Path, stem: str, output_dir: str | Path | None, output: str | Path | None) -> Path:
    if output is not None:
        output = Path(output)
        if output.is_dir():
            raise WLDetectError(f"--output {output} is a directory; give a results file path ending in .json")
        if output.suffix != ".json":
            raise WLDetectError(f"--output {output}: expected a .json path for the results")
        return output
    directory = Path(output_dir) if output_dir is not None else model_path
    return directory / (stem + RESULTS_SUFFIX)


def evaluate(
    model_path: str | Path,
    dataset: str | Path | None = None,
    split: str = "dev",
    table: str = DEFAULT_TABLE,
    output_dir: str | Path | None = None,
    verbose: bool = True,
    *,
    output: str | Path | None = None,
    evaluation_set: EvaluationSet | None = None,
    heatmap: bool = True,
    by_length: bool = True,
    references: str | Sequence[str] | None = None,
) -> EvaluationResult:
    """Evaluate the artifacts in `model_path` on an evaluation set and save results, predictions and heatmap.

    `dataset`: `flores_plus`/a hub id, a local FLORES+ or FLORES-200 directory, a directory of `<code>.txt`
    files, or `demo`; None means the set recorded in the model's training_summary.json, else `demo` (the
    shipped development set). `output` overrides the results JSON path (its
    predictions and heatmap go next to it). Pass an already loaded `evaluation_set` to skip loading.

    `by_length` (default on) also scores each scored sentence's first 1, 2, 3 and 5 words (`length_cuts`)
    into `<set>_by_length.csv` and the results' `by_length`. `references` (`"fasttext,py3langid"`, a list,
    `"all"`) scores reference detectors on the same sentences and fragments into `<set>_references.json`
    (`score_references`); one that cannot run here is reported in one line and left out.

    The three files are written to a staging directory and moved into place together when all are complete
    (`wldetect.io.StagedDirectory`), so a failure (full disk, unwritable directory) leaves no mix of old and
    new files.
    """
    model_path = _check_model_dir(model_path)
    table = _check_table(table)
    # before any work: the directory the files will go to must be writable, and not a finished run record's
    results_dir = _resolve_outputs(model_path, "results", output_dir, output).parent
    check_output_directory(results_dir, "--output" if output is not None else "evaluation output directory")
    refuse_finished_run_record(results_dir, "evaluation output directory")
    reference_names = _parse_references(references)  # a misspelt name fails before any work
    languages = read_model_config(model_path)[1]
    if evaluation_set is None:
        evaluation_set = load_evaluation_set(dataset if dataset is not None else configured_dataset(model_path), split)
    detector = load_detector(model_path, table)
    texts = evaluation_set.sentences["text"].tolist()
    start = time.perf_counter()
    predicted, confidence = predict_all(detector, texts)
    seconds = time.perf_counter() - start
    result = score_predictions(
        evaluation_set,
        predicted,
        confidence,
        languages,
        model_path=model_path,
        table=table,
        mask=read_mask_record(model_path),
        seconds=seconds,
    )
    cuts = None
    if by_length or reference_names:
        in_model = result.predictions["in_model"].to_numpy(bool)
        cuts = length_cuts(evaluation_set.sentences[in_model])
    if by_length:
        fragment_predicted, fragment_confidence = predict_all(detector, cuts["text"].tolist())
        result.by_length = score_fragments(cuts, fragment_predicted, fragment_confidence, languages)
    if reference_names:
        result.references = score_references(reference_names, evaluation_set, result, cuts, verbose=verbose, detector=detector)
    results_path = _resolve_outputs(model_path, result.stem, output_dir, output)
    with StagedDirectory(results_path.parent, swap=False, what="evaluation output directory") as staged:
        paths = result.save(staged.staging / results_path.name, heatmap=heatmap)
        staged.commit(order=[results_path.name])  # the results JSON last: it marks a complete set
    result.paths = {key: results_path.parent / path.name for key, path in paths.items()}
    if verbose:
        print(result.summary())
    return result


def evaluate_tables(
    model_path: str | Path,
    tables: Iterable[str] = ("fp32", "e4m3fn", "e3m4"),
    dataset: str | Path | None = None,
    split: str = "dev",
    output_dir: str | Path | None = None,
    verbose: bool = True,
    **compare_options: Any,
):
    """Evaluate several lookup tables of one model on the same sentences and compare them (first = baseline).

    Returns the step-5 `Comparison` (overall metrics, per-language deltas, McNemar and bootstrap against the
    first table); each table's results are saved as by `evaluate`. Step 4's own command (`wldetect eval
    --table all`), so it lives with `evaluate`; the comparison is step 5's, called on what was just written
    (imported here: evaluating one table never loads step 5).
    """
    from wldetect.steps.comparison import compare_runs

    model_path = _check_model_dir(model_path)
    tables = [_check_table(t) for t in tables]
    if len(set(tables)) != len(tables) or not tables:
        raise WLDetectError(f"tables {tables}: give each table once")
    evaluation_set = load_evaluation_set(dataset if dataset is not None else configured_dataset(model_path), split)
    results = []
    for table in tables:
        results.append(
            evaluate(model_path, split=split, table=table, output_dir=output_dir, verbose=verbose, evaluation_set=evaluation_set)
        )
    return compare_runs(results, labels=tables, verbose=verbose, **compare_options)


def evaluate_configured(model_path: str | Path, config, verbose: bool = True) -> EvaluationResult | None:
    """Step 4 as training's parameter file configures it (`evaluation.dataset`, `.split`, `.table`,
    `.references`), on the artifacts training just wrote. Where the set cannot be loaded here (FLORES+
    offline, gated), None and one line saying how to run it later: the model is complete without its
    evaluation."""
    section = config.evaluation
    try:
        evaluation_set = load_evaluation_set(section.dataset, section.split)
    except WLDetectError as err:
        print(f"Evaluation skipped ({err}); run `wldetect eval --model-path {model_path}` where the set is available")
        return None
    return evaluate(
        model_path, section.dataset, section.split, section.table, verbose=verbose, evaluation_set=evaluation_set,
        references=section.references or None,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ references


def _parse_references(references: str | Sequence[str] | None) -> list[str]:
    if not references:
        return []
    from wldetect.steps.references import parse_references

    return parse_references(references)


_WARM_UP_TEXTS = 256


def _texts_per_second(predict, texts: list[str]) -> tuple[Any, float | None]:
    """`predict(texts)` and its texts/s, after an untimed warm-up on the first texts (first-call costs such as
    allocating buffers are not throughput)."""
    predict(texts[:_WARM_UP_TEXTS])
    start = time.perf_counter()
    answers = predict(texts)
    seconds = time.perf_counter() - start
    return answers, (round(len(texts) / seconds, 1) if seconds > 0 else None)


def score_references(
    names: Sequence[str],
    evaluation_set: EvaluationSet,
    result: EvaluationResult,
    cuts: pd.DataFrame,
    verbose: bool = True,
    detector: WLDetect | None = None,
) -> dict[str, Any]:
    """Score reference detectors on exactly the sentences `result` scored (and their `cuts`): the
    `<set>_references.json` record.

    {"schema_version": 1, "dataset": {...}, "lengths": [1, 2, 3, 5], "n_sentences": int,
     "model": {"path", "table", "languages": [evaluated], "texts_per_s" (one thread), "by_length"},
     "references": {name: {"description", "texts_per_s" (one thread, open set, full sentences),
                           "open_set" | "closed_set": {"accuracy", "f1_macro", "n_correct", "per_language":
                               {code: {"accuracy", "f1", "support"}}, "languages": {"count", "missing"},
                               "by_length": {"1" .. "5", "full": {"accuracy", "sentences", "correct"}}}}},
     "unavailable": {name: "one line"}}

    Open set: every language the reference knows; closed set: restricted to the model's languages.
    `languages.count` is how many set codes it can answer in that setting, `missing` the evaluated languages
    it cannot name (their sentences count as wrong). Throughput is measured here, in the same process and on
    one thread, for the model too (`detector`, the evaluated `WLDetect`, run with `num_threads=1`), each after
    an untimed warm-up on the first 256 texts.
    """
    from wldetect.steps.references import ReferenceUnavailable, cached_scores, load_reference, scores_key, store_scores

    in_model = result.predictions["in_model"].to_numpy(bool)
    full = evaluation_set.sentences[in_model]
    full_texts = full["text"].astype(str).tolist()
    texts = full_texts + cuts["text"].tolist()
    gold = np.concatenate([full["language"].to_numpy(dtype=object), cuts["language"].to_numpy(dtype=object)])
    lengths = np.concatenate([np.zeros(len(full), dtype=np.int64), cuts["length"].to_numpy(np.int64)])
    evaluated = list(result.per_language.index)
    model_languages = list(result.model_languages)
    targets = set(evaluated) | set(model_languages)

    if detector is None:
        single = WLDetect.load(result.model_path, table=result.table, num_threads=1)
    else:  # the same loaded model on one thread: num_threads is all the parallelism WLDetect uses
        single = copy.copy(detector)
        single.num_threads = 1
    _, model_rate = _texts_per_second(single.predict_indices, full_texts)
    fragments = result.by_length
    if fragments is None:  # evaluated without the by-length view: the model's fragments are scored here
        predicted, confidence = predict_all(single, cuts["text"].tolist())
        fragments = score_fragments(cuts, predicted, confidence, model_languages)
    model_by_length = by_length_summary(fragments, int(result.overall["n_sentences"]), int(result.overall["n_correct"]))
    record: dict[str, Any] = {
        "schema_version": 1,
        "dataset": dict(result.dataset),
        "lengths": list(LENGTHS),
        "n_sentences": len(full),
        "model": {
            "path": str(result.model_path), "table": result.table, "languages": evaluated, "texts_per_s": model_rate,
            "accuracy": result.accuracy, "f1_macro": float(result.overall["f1_macro"]), "by_length": model_by_length,
        },  # fmt: skip
        "references": {},
        "unavailable": {},
    }
    say = print if verbose else (lambda *a, **k: None)
    for name in names:
        key = scores_key(name, texts, gold, lengths, model_languages, targets, result.model_path)
        cached = cached_scores(key)
        if cached is not None:  # the same sentences and languages scored before (another run of a sweep)
            record["references"][name] = {**cached, "reused": True}
            say(f"Reference {name}: the scores of an earlier evaluation of these sentences, reused (cache {key})")
            continue
        try:
            reference = load_reference(name, targets, result.model_path)
        except ReferenceUnavailable as err:
            record["unavailable"][name] = str(err)
            say(f"Reference {name} skipped: {err}")
            continue
        open_answers, rate = _texts_per_second(reference.predict, full_texts)
        open_answers = open_answers + reference.predict(texts[len(full_texts) :])
        closed_answers = reference.predict_closed(texts, model_languages)
        known = set(reference.known_languages)
        entry: dict[str, Any] = {"description": reference.description, "texts_per_s": rate}
        for side, answers, count in (
            ("open_set", open_answers, len(known)),
            ("closed_set", closed_answers, len(known & set(model_languages))),
        ):
            overall, per_language = compute_metrics(gold[: len(full)], answers[: len(full)], evaluated)
            entry[side] = {
                "accuracy": overall["accuracy"],
                "f1_macro": overall["f1_macro"],
                "n_correct": overall["n_correct"],
                "per_language": {
                    code: {"accuracy": float(row.accuracy), "f1": float(row.f1), "support": int(row.support)}
                    for code, row in per_language.iterrows()
                },
                "languages": {"count": count, "missing": [code for code in evaluated if code not in known]},
                "by_length": length_accuracy(gold, answers, lengths),
            }
        store_scores(key, entry)
        record["references"][name] = entry
    return record
