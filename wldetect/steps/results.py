"""Step 4's files: the results JSON, predictions, by-length and references files of an evaluation, written
and read back checked (`EvaluationResult.save` / `.load`, `read_predictions`, `read_by_length`,
`read_references`).

Evaluation (`wldetect.steps.evaluation`) produces them; comparison (step 5), the sweep report and the
notebooks read them. Neither reader needs the evaluation's code (the detector, scikit-learn, the reference
detectors), so the file family has its own module.

Files (written atomically next to the artifacts unless `output_dir`/`output` say otherwise)
    `<set>_results.json`, `<set>_predictions.csv` and `<set>_confusion.png`, named after the set:
    `flores_<split>` for FLORES+ and FLORES-200 (the seed's `flores_dev_results.json`), `pud` for the shipped
    PUD sentences, `devset` for the shipped development set (`demo`), the directory name for a directory of
    `<code>.txt` files (`my-set`); plus `_<table>` when the table is not the default e3m4
    (`flores_dev_fp32_results.json`, `pud_fp32_results.json`).

Results JSON schema (`schema_version` 1; every rate is a fraction in [0, 1])
    {
      "schema_version": 1,
      "model_path": str, "table": "e3m4" | "e4m3fn" | "fp32",
      "dataset": {"name": str, "kind": "flores_plus" | "flores200" | "text_dir" | "demo" | "pud",
                  "source": str, "split": "dev" | "devtest" | null, "notes": [str]},
      "evaluated_at": "YYYY-MM-DDTHH:MM:SSZ",
      "overall": {"accuracy", "f1_macro", "f1_weighted", "precision_macro", "precision_weighted",
                  "recall_macro", "recall_weighted": float,
                  "n_sentences", "n_correct", "n_languages", "n_no_prediction": int},
      "per_language": {code: {"accuracy", "precision", "recall", "f1": float, "support": int}},
      "languages": {"model": [code], "evaluated": [code], "missing_from_dataset": [code],
                    "unknown_to_model": {code: {"sentences": int, "predicted_as": {code: int}}}},
      "confusion_matrix": {"gold": [code], "predicted": [code], "matrix": [[int]]},  # rows gold, cols predicted
      "top_confusions": [{"gold", "predicted": code, "count": int, "share_of_gold": float}],
      "mask": null | {"threshold", "vocab_size", "tokens_masked", "vocab_masked_fraction",
                      "occurrences_masked_fraction", ...} (see `wldetect.artifacts.read_mask_record`),
      "timing": {"seconds": float, "sentences_per_second": float},
      "by_length": {"1" | "2" | "3" | "5" | "full": {"accuracy": float, "sentences": int, "correct": int}},
      "files": {"predictions": filename, "heatmap": filename, "by_length": filename, "references": filename}
    }
    (`by_length`, `files.by_length`: absent from results written before the by-length view; they still load.)

Predictions CSV: one row per sentence of the set, in its order: `id, language, predicted, confidence,
correct, in_model` (`language` is the gold code; `(language, id)` is unique; `in_model` is false for languages
the model does not know, whose rows are not scored). The text is not copied: FLORES+ asks not to re-host it.

By-length CSV (`<set>_by_length.csv`): `id, language, length, predicted, confidence, correct, in_model`, the
scored sentences cut to their first 1, 2, 3, 5 words (`length_cuts`), paired with other runs by
`(language, id, length)`. References JSON (`<set>_references.json`): see
`wldetect.steps.evaluation.score_references`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wldetect.artifacts import EVALUATION_SUFFIXES
from wldetect.errors import WLDetectError
from wldetect.io import atomic_path, read_text, split_lines, write_text_atomic
from wldetect.sources.evalsets import output_set_stem
from wldetect.steps import plots

SCHEMA_VERSION = 1
DEFAULT_TABLE = "e3m4"  # the table whose files carry no `_<table>` in their names
# the names of an evaluation's files end in these (the artifacts directory knows them as its evaluations')
RESULTS_SUFFIX, PREDICTIONS_SUFFIX, HEATMAP_SUFFIX, BY_LENGTH_SUFFIX, REFERENCES_SUFFIX = EVALUATION_SUFFIXES
LENGTHS = (1, 2, 3, 5)  # first K words of each sentence, scored as the same sentence (`by_length`)
OVERALL_METRICS = (
    "accuracy", "f1_macro", "f1_weighted", "precision_macro", "precision_weighted", "recall_macro", "recall_weighted",
)  # fmt: skip


def by_length_summary(by_length: pd.DataFrame, n_sentences: int, n_correct: int) -> dict[str, dict[str, Any]]:
    """`{"1": {"accuracy", "sentences", "correct"}, ..., "full": {...}}` over the scored rows."""
    scored = by_length[by_length["in_model"]]
    summary: dict[str, dict[str, Any]] = {}
    for length, group in scored.groupby("length", sort=True):
        correct = int(group["correct"].sum())
        summary[str(int(length))] = {"accuracy": correct / len(group), "sentences": int(len(group)), "correct": correct}
    summary["full"] = {"accuracy": n_correct / n_sentences if n_sentences else 0.0, "sentences": int(n_sentences), "correct": int(n_correct)}
    return summary


# ------------------------------------------------------------------------------------------------ result


@dataclass
class EvaluationResult:
    """Everything one evaluation produced; `save` writes it, `load` reads it back for comparisons."""

    model_path: Path
    table: str
    dataset: dict[str, Any]  # name, kind, source, split, notes
    overall: dict[str, Any]
    per_language: pd.DataFrame  # index language; support, accuracy, precision, recall, f1
    predictions: pd.DataFrame  # id, language, predicted, confidence, correct, in_model
    confusion: pd.DataFrame  # rows gold, columns predicted
    top_confusions: pd.DataFrame  # gold, predicted, count, share_of_gold
    model_languages: list[str]
    unknown_languages: dict[str, dict[str, Any]]  # code -> sentences, predicted_as
    missing_languages: list[str]
    mask: dict[str, Any] | None = None
    seconds: float = 0.0
    evaluated_at: str = ""
    paths: dict[str, Path] = field(default_factory=dict)  # results, predictions, heatmap, by_length, references
    # id, language, length, predicted, confidence, correct, in_model: the scored sentences' first 1, 2, 3, 5
    # words (`length_cuts`); None for results written before the by-length view (or evaluated without it)
    by_length: pd.DataFrame | None = None
    references: dict[str, Any] | None = None  # the `<set>_references.json` record (`score_references`)

    @property
    def accuracy(self) -> float:
        return float(self.overall["accuracy"])

    @property
    def scored(self) -> pd.DataFrame:
        """The predictions that count: sentences in a language the model knows."""
        return self.predictions[self.predictions["in_model"]]

    @property
    def stem(self) -> str:
        dataset = self.dataset
        return output_stem(output_set_stem(dataset["name"], dataset.get("kind"), dataset.get("split")), None, self.table)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "model_path": str(self.model_path),
            "table": self.table,
            "dataset": self.dataset,
            "evaluated_at": self.evaluated_at,
            "overall": self.overall,
            "per_language": {
                code: {
                    "accuracy": float(row.accuracy),
                    "precision": float(row.precision),
                    "recall": float(row.recall),
                    "f1": float(row.f1),
                    "support": int(row.support),
                }
                for code, row in self.per_language.iterrows()
            },
            "languages": {
                "model": self.model_languages,
                "evaluated": list(self.per_language.index),
                "missing_from_dataset": self.missing_languages,
                "unknown_to_model": self.unknown_languages,
            },
            "confusion_matrix": {
                "gold": list(self.confusion.index),
                "predicted": list(self.confusion.columns),
                "matrix": self.confusion.to_numpy().tolist(),
            },
            "top_confusions": [
                {"gold": r.gold, "predicted": r.predicted, "count": int(r.count), "share_of_gold": float(r.share_of_gold)}
                for r in self.top_confusions.itertuples()
            ],
            "mask": self.mask,
            "timing": {
                "seconds": round(self.seconds, 3),
                "sentences_per_second": round(len(self.predictions) / self.seconds, 1) if self.seconds > 0 else None,
            },
            **({"by_length": self.by_length_summary} if self.by_length is not None else {}),
            "files": {k: Path(v).name for k, v in self.paths.items() if k != "results"},
        }

    @property
    def by_length_summary(self) -> dict[str, dict[str, Any]] | None:
        """`{"1": {"accuracy", "sentences", "correct"}, "2", "3", "5", "full"}`; None without the view."""
        if self.by_length is None:
            return None
        return by_length_summary(self.by_length, int(self.overall["n_sentences"]), int(self.overall["n_correct"]))

    def save(self, results_path: str | Path, heatmap: bool = True) -> dict[str, Path]:
        """Write `<stem>_results.json`, `<stem>_predictions.csv` and (optionally) `<stem>_confusion.png`."""
        results_path = Path(results_path)
        base = _stem_of(results_path)
        paths = {
            "results": results_path,
            "predictions": results_path.with_name(base + PREDICTIONS_SUFFIX),
        }
        if heatmap:
            paths["heatmap"] = results_path.with_name(base + HEATMAP_SUFFIX)
        if self.by_length is not None:
            paths["by_length"] = results_path.with_name(base + BY_LENGTH_SUFFIX)
        if self.references is not None:
            paths["references"] = results_path.with_name(base + REFERENCES_SUFFIX)
        self.paths = paths
        with atomic_path(paths["predictions"]) as tmp:
            self.predictions.to_csv(tmp, index=False, float_format="%.6g")
        if self.by_length is not None:
            with atomic_path(paths["by_length"]) as tmp:
                self.by_length.to_csv(tmp, index=False, float_format="%.6g")
        if self.references is not None:
            text = json.dumps(self.references, indent=2, ensure_ascii=False) + "\n"
            write_text_atomic(paths["references"], text)
        if heatmap:
            title = (
                f"{_model_label(self.model_path)} ({self.table} table) on {_dataset_label(self.dataset)}: "
                f"accuracy {self.overall['accuracy']:.1%}, macro F1 {self.overall['f1_macro']:.3f}, "
                f"{self.overall['n_sentences']:,} sentences"
            )
            plots.confusion_heatmap(self.confusion, self.per_language["accuracy"], paths["heatmap"], title=title)
        write_text_atomic(results_path, json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")
        return paths

    @classmethod
    def load(cls, results_path: str | Path) -> EvaluationResult:
        """Read a results JSON and its predictions file (named in `files.predictions`, next to it)."""
        results_path = Path(results_path)
        if not results_path.is_file():
            raise WLDetectError(f"{results_path}: results file not found")
        try:
            data = json.loads(read_text(results_path, "results file"))
        except ValueError:
            raise WLDetectError(f"{results_path}: not valid JSON") from None
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            raise WLDetectError(
                f"{results_path}: not a wldetect evaluation results file (schema_version {SCHEMA_VERSION} expected); "
                "re-run `wldetect eval`"
            )
        _check_results(data, results_path)
        predictions_name = data.get("files", {}).get("predictions") or _stem_of(results_path) + PREDICTIONS_SUFFIX
        predictions_path = results_path.with_name(predictions_name)
        if not predictions_path.is_file():
            raise WLDetectError(f"{predictions_path}: predictions file not found (needed to compare sentence by sentence)")
        predictions = read_predictions(predictions_path, data["languages"]["model"])
        _check_agreement(data, predictions, results_path, predictions_path)
        per_language = pd.DataFrame.from_dict(data["per_language"], orient="index")
        per_language.index.name = "language"
        per_language = per_language[["support", "accuracy", "precision", "recall", "f1"]]
        matrix = data["confusion_matrix"]
        confusion = pd.DataFrame(
            matrix["matrix"],
            index=pd.Index(matrix["gold"], name="gold"),
            columns=pd.Index(matrix["predicted"], name="predicted"),
        )
        languages = data["languages"]
        paths = {"results": results_path, "predictions": predictions_path}
        if data.get("files", {}).get("heatmap"):
            paths["heatmap"] = results_path.with_name(data["files"]["heatmap"])
        by_length = None
        if data.get("files", {}).get("by_length"):  # results written before the by-length view have none
            paths["by_length"] = results_path.with_name(data["files"]["by_length"])
            by_length = read_by_length(paths["by_length"], languages["model"])
            _check_by_length(data, predictions, by_length, results_path, paths["by_length"])
        references = None
        if data.get("files", {}).get("references"):
            paths["references"] = results_path.with_name(data["files"]["references"])
            references = read_references(paths["references"])
        return cls(
            model_path=Path(data["model_path"]),
            table=data["table"],
            dataset=data["dataset"],
            overall=data["overall"],
            per_language=per_language,
            predictions=predictions,
            confusion=confusion,
            top_confusions=pd.DataFrame(data["top_confusions"], columns=["gold", "predicted", "count", "share_of_gold"]),
            model_languages=languages["model"],
            unknown_languages=languages["unknown_to_model"],
            missing_languages=languages["missing_from_dataset"],
            mask=data.get("mask"),
            seconds=float(data.get("timing", {}).get("seconds") or 0.0),
            evaluated_at=data.get("evaluated_at", ""),
            paths=paths,
            by_length=by_length,
            references=references,
        )

    def summary(self, worst: int = 5, confusions: int = 5) -> str:
        o = self.overall
        split = f" {self.dataset['split']}" if self.dataset.get("split") else ""
        lines = [
            f"Evaluated {self.model_path} (table {self.table}) on {self.dataset['kind']} {self.dataset['source']}{split}",
            f"  {o['n_sentences']:,} sentences in {o['n_languages']} languages, "
            f"{self.seconds:.2f} s ({len(self.predictions) / max(self.seconds, 1e-9):,.0f} sentences/s)",
            f"  accuracy {o['accuracy']:.2%}   F1 macro {o['f1_macro']:.4f}   F1 weighted {o['f1_weighted']:.4f}   "
            f"precision macro {o['precision_macro']:.4f}   recall macro {o['recall_macro']:.4f}",
        ]
        if self.mask:
            lines.append("  Mask: " + describe_mask(self.mask))
        if self.by_length is not None:
            lines.append(
                "  Accuracy by length (first K words; CJK/Thai 2K characters): "
                + "   ".join(f"{k}: {v['accuracy']:.2%}" for k, v in self.by_length_summary.items())
            )
        if self.references is not None:
            lines.extend("  " + line for line in describe_references(self.references).splitlines())
        if o.get("n_no_prediction"):
            lines.append(f"  {o['n_no_prediction']} sentences got no prediction (counted as wrong)")
        for note in self.dataset.get("notes") or []:
            lines.append(f"  Note: {note}")
        if self.unknown_languages:
            parts = []
            for code, info in list(self.unknown_languages.items())[:_LISTED]:
                top = ", ".join(f"{p} {n}" for p, n in list(info["predicted_as"].items())[:2])
                parts.append(f"{code} ({info['sentences']} sentences; predicted as {top})")
            lines.append(
                f"  Not known to the model, excluded from the metrics ({len(self.unknown_languages)}): "
                + "; ".join(parts)
                + _more(len(self.unknown_languages))
            )
        if self.missing_languages:
            lines.append(
                f"  Model languages with no sentences in this set ({len(self.missing_languages)}): "
                + ", ".join(self.missing_languages[: 3 * _LISTED])
                + _more(len(self.missing_languages), 3 * _LISTED)
            )
        if worst:
            low = self.per_language.sort_values(["accuracy", "f1"]).head(worst)
            lines.append(
                "  Lowest accuracy: " + ", ".join(f"{code} {row.accuracy:.1%}" for code, row in low.iterrows())
            )
        if confusions and not self.top_confusions.empty:
            lines.append(
                "  Most frequent confusions: "
                + ", ".join(
                    f"{r.gold}->{r.predicted} {int(r.count)}" for r in self.top_confusions.head(confusions).itertuples()
                )
            )
        for key, path in self.paths.items():
            lines.append(f"  {key}: {path}")
        return "\n".join(lines)


_LISTED = 12  # languages named in a printed summary; the JSON lists all


# ------------------------------------------------------------------------- reading results back, checked

PREDICTION_COLUMNS = ("id", "language", "predicted", "confidence", "correct", "in_model")
BY_LENGTH_COLUMNS = ("id", "language", "length", "predicted", "confidence", "correct", "in_model")


def read_predictions(path: str | Path, model_languages: Sequence[str]) -> pd.DataFrame:
    """A `*_predictions.csv` file, checked before any statistic is computed from it.

    Every column must be there and hold what `save` writes: whole-number ids, language codes (no blanks),
    a confidence in [0, 1] or empty (no prediction), `True`/`False` flags; `correct` must say whether
    `predicted` is `language`, `in_model` whether the model knows `language`, and no sentence may appear
    twice. Anything else is a one-line error naming the file, the column and the line.
    """
    return _read_prediction_rows(Path(path), model_languages, PREDICTION_COLUMNS, "predictions")


def read_by_length(path: str | Path, model_languages: Sequence[str]) -> pd.DataFrame:
    """A `*_by_length.csv` file, checked as `read_predictions` checks predictions, plus a `length` column
    holding one of `LENGTHS`; `(language, id, length)` is unique."""
    return _read_prediction_rows(Path(path), model_languages, BY_LENGTH_COLUMNS, "by-length")


def _read_prediction_rows(path: Path, model_languages: Sequence[str], columns: tuple[str, ...], what: str) -> pd.DataFrame:
    text = read_text(path, f"{what} file")
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        first = (split_lines(str(err).strip()) or [type(err).__name__])[0]
        raise WLDetectError(f"{path}: not a {what} CSV ({first})") from None
    missing = [column for column in columns if column not in raw.columns]
    if missing:
        raise WLDetectError(
            f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(a {what} file has {', '.join(columns)})"
        )
    if raw.empty:
        raise WLDetectError(f"{path}: no predictions (header only)")
    raw = raw[list(columns)].fillna("")  # a short row's missing fields are empty

    def refuse(column: str, bad: np.ndarray, expected: str) -> None:
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise WLDetectError(
                f"{path}: column '{column}', line {row + 2}: expected {expected}, got {raw[column].iloc[row]!r}"
            )

    refuse("id", ~raw["id"].str.fullmatch(r"[+-]?\d{1,18}").to_numpy(bool), "a whole number")
    keys = ["language", "id"]
    if "length" in columns:
        refuse("length", ~raw["length"].isin([str(k) for k in LENGTHS]).to_numpy(bool), f"one of {', '.join(map(str, LENGTHS))}")
        keys.append("length")
    for column in ("language", "predicted"):
        refuse(column, ~raw[column].str.fullmatch(r"[^\s,]+").to_numpy(bool), "a language code")
    empty = raw["confidence"].isin(["", "nan", "NaN"]).to_numpy(bool)
    confidence = pd.to_numeric(raw["confidence"].where(~empty, "nan"), errors="coerce").to_numpy(np.float64)
    refuse("confidence", ~empty & ~((confidence >= 0) & (confidence <= 1)), "a number from 0 to 1 (or nothing)")
    flags = {}
    for column in ("correct", "in_model"):
        lowered = raw[column].str.lower()
        refuse(column, ~lowered.isin(["true", "false"]).to_numpy(bool), "True or False")
        flags[column] = lowered.eq("true").to_numpy(bool)
    language, predicted = raw["language"].to_numpy(object), raw["predicted"].to_numpy(object)
    refuse("correct", flags["correct"] != (language == predicted), "True exactly where predicted is language")
    known = set(model_languages)
    in_model = np.fromiter((code in known for code in language), dtype=bool, count=len(language))
    refuse("in_model", flags["in_model"] != in_model, "True exactly where the model knows the language")
    predictions = pd.DataFrame(
        {
            "id": raw["id"].astype(np.int64),
            "language": raw["language"],
            **({"length": raw["length"].astype(np.int64)} if "length" in columns else {}),
            "predicted": raw["predicted"],
            "confidence": confidence,
            "correct": flags["correct"],
            "in_model": flags["in_model"],
        }
    )
    repeated = predictions.duplicated(keys).to_numpy(bool)
    if repeated.any():
        row = int(np.flatnonzero(repeated)[0])
        at_length = f" at length {raw['length'].iloc[row]}" if "length" in columns else ""
        raise WLDetectError(
            f"{path}: columns {', '.join(repr(k) for k in keys)}, line {row + 2}: sentence {raw['language'].iloc[row]} "
            f"{raw['id'].iloc[row]}{at_length} appears twice"
        )
    return predictions


def _check_by_length(data: dict[str, Any], predictions: pd.DataFrame, by_length: pd.DataFrame, results_path: Path, path: Path) -> None:
    """The by-length rows must be fragments of the scored sentences, and agree with the JSON's counts."""
    scored = predictions.loc[predictions["in_model"], ["language", "id"]]
    sentences = pd.MultiIndex.from_frame(scored)
    rows = by_length[by_length["in_model"]]
    stray = ~pd.MultiIndex.from_frame(rows[["language", "id"]]).isin(sentences)
    if stray.any():
        row = rows.iloc[int(np.flatnonzero(stray)[0])]
        raise WLDetectError(
            f"{path}: sentence {row['language']} {row['id']} is not a scored sentence of {results_path.name}'s predictions"
        )
    recorded = data.get("by_length")
    if not isinstance(recorded, dict):
        raise WLDetectError(f"{results_path}: 'by_length' is missing though files.by_length names {path.name}")
    found = by_length_summary(by_length, int(data["overall"]["n_sentences"]), int(data["overall"]["n_correct"]))
    for length, values in found.items():
        entry = recorded.get(length)
        if not isinstance(entry, dict) or entry.get("sentences") != values["sentences"] or entry.get("correct") != values["correct"]:
            raise WLDetectError(
                f"{path}: {values['correct']:,} of {values['sentences']:,} fragments of length {length} correct, but "
                f"{results_path.name} says by_length.{length} {json.dumps(entry)[:60]}: the two files do not belong together"
            )


def read_references(path: str | Path) -> dict[str, Any]:
    """A `<set>_references.json` record, checked for what the reports read: each reference's open and closed
    set with accuracy, f1_macro, per_language and by_length, and its texts_per_s."""
    path = Path(path)
    try:
        data = json.loads(read_text(path, "references file"))
    except ValueError:
        raise WLDetectError(f"{path}: not valid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("references"), dict):
        raise WLDetectError(f"{path}: expected a JSON object with a 'references' mapping")
    for name, entry in data["references"].items():
        for side in ("open_set", "closed_set"):
            scores = entry.get(side) if isinstance(entry, dict) else None
            if not isinstance(scores, dict) or not all(
                _is_number(scores.get(key)) and 0 <= scores[key] <= 1 for key in ("accuracy", "f1_macro")
            ) or not isinstance(scores.get("per_language"), dict) or not isinstance(scores.get("by_length", {}), dict):
                raise WLDetectError(f"{path}: 'references.{name}.{side}': expected accuracy, f1_macro and per_language")
        if not (entry.get("texts_per_s") is None or _is_number(entry["texts_per_s"])):
            raise WLDetectError(f"{path}: 'references.{name}.texts_per_s': expected a number")
    return data


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _check_results(data: dict[str, Any], path: Path) -> None:
    """The parts of a results JSON that loading and `compare` use, each of the type `save` writes."""

    def get(dotted: str) -> Any:
        value: Any = data
        keys = dotted.split(".")
        if keys[0] == "per_language" and len(keys) > 3:  # a language code with a dot in it
            keys = [keys[0], ".".join(keys[1:-1]), keys[-1]]
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                raise WLDetectError(f"{path}: '{dotted}' is missing")
            value = value[key]
        return value

    def require(dotted: str, ok, expected: str) -> Any:
        value = get(dotted)
        if not ok(value):
            raise WLDetectError(f"{path}: '{dotted}': expected {expected}, got {json.dumps(value)[:60]}")
        return value

    require("model_path", lambda v: isinstance(v, str), "a path")
    require("table", lambda v: isinstance(v, str) and v, "a table name")
    for key in ("name", "kind", "source"):
        require(f"dataset.{key}", lambda v: isinstance(v, str), "a string")
    require("dataset.split", lambda v: v is None or isinstance(v, str), "a split name or null")
    for metric in OVERALL_METRICS:
        require(f"overall.{metric}", lambda v: _is_number(v) and 0 <= v <= 1, "a number from 0 to 1")
    require("overall.n_sentences", _is_count, "a whole number")
    per_language = require("per_language", lambda v: isinstance(v, dict) and v, "a mapping of languages")
    for code in per_language:
        require(f"per_language.{code}.support", _is_count, "a whole number")
        for metric in ("accuracy", "precision", "recall", "f1"):
            require(f"per_language.{code}.{metric}", lambda v: _is_number(v) and 0 <= v <= 1, "a number from 0 to 1")
    gold = require("confusion_matrix.gold", _is_strings, "a list of language codes")
    predicted = require("confusion_matrix.predicted", _is_strings, "a list of language codes")
    require(
        "confusion_matrix.matrix",
        lambda v: isinstance(v, list) and len(v) == len(gold)
        and all(isinstance(r, list) and len(r) == len(predicted) and all(_is_count(c) for c in r) for r in v),
        f"{len(gold)} rows of {len(predicted)} whole numbers",
    )  # fmt: skip
    require("languages.model", lambda v: _is_strings(v) and v, "a list of language codes")
    require("languages.missing_from_dataset", _is_strings, "a list of language codes")
    require("languages.unknown_to_model", lambda v: isinstance(v, dict), "a mapping")
    require(
        "top_confusions",
        lambda v: isinstance(v, list) and all(isinstance(r, dict) and {"gold", "predicted", "count", "share_of_gold"} <= set(r) for r in v),
        "a list of {gold, predicted, count, share_of_gold}",
    )  # fmt: skip
    for key in ("files", "timing"):
        if key in data:
            require(key, lambda v: isinstance(v, dict), "a mapping")
    if data.get("mask") is not None:
        require("mask", lambda v: isinstance(v, dict), "a mapping or null")


def _check_agreement(data: dict[str, Any], predictions: pd.DataFrame, results_path: Path, predictions_path: Path) -> None:
    """The results JSON and its predictions must describe the same scored sentences."""
    scored = predictions[predictions["in_model"]]
    if int(data["overall"]["n_sentences"]) != len(scored):
        raise WLDetectError(
            f"{predictions_path}: {len(scored):,} scored sentences, but {results_path.name} says "
            f"overall.n_sentences {data['overall']['n_sentences']:,}: the two files do not belong together"
        )
    support = scored["language"].value_counts()
    for code, values in data["per_language"].items():
        if int(support.get(code, 0)) != values["support"]:
            raise WLDetectError(
                f"{predictions_path}: {int(support.get(code, 0)):,} scored sentences in {code}, but "
                f"{results_path.name} says per_language.{code}.support {values['support']:,}"
            )
    extra = sorted(set(support.index) - set(data["per_language"]))
    if extra:
        raise WLDetectError(f"{predictions_path}: languages {', '.join(extra[:5])} are not in {results_path.name} per_language")


def _more(total: int, listed: int = _LISTED) -> str:
    return f" ... and {total - listed} more (all in the results JSON)" if total > listed else ""


def describe_mask(mask: dict[str, Any]) -> str:
    """`threshold 10: 23,649 of 30,522 tokens masked (77.5%), 0.83% of training token occurrences`; a threshold
    asked as a share of the training tokens reads `0.0025% -> threshold 1: ...`."""
    if not mask.get("tokens_masked"):
        return "none (no token masked)"
    threshold, share = mask.get("threshold"), mask.get("threshold_share")
    text = f"threshold {threshold}: " if threshold is not None else ""
    text = f"{share} -> {text}" if share and text else text
    vocab = f" of {mask['vocab_size']:,}" if mask.get("vocab_size") else ""
    text += f"{mask['tokens_masked']:,}{vocab} tokens masked ({mask.get('vocab_masked_fraction', float('nan')):.1%})"
    if mask.get("occurrences_masked_fraction") is not None:
        text += f", {mask['occurrences_masked_fraction']:.2%} of training token occurrences"
    return text


def _model_label(model_path: Path) -> str:
    path = Path(model_path)
    return path.parent.name if path.name == "artifacts" and path.parent.name else path.name


def _dataset_label(dataset: dict[str, Any]) -> str:
    """`FLORES+ dev`, `demo dev set`, `pud`: a short name for titles."""
    kind, split = dataset.get("kind"), dataset.get("split")
    if kind == "demo":
        return "the demo dev set"
    if kind == "flores_plus":
        return f"FLORES+ {split}"
    if kind == "flores200":
        return f"FLORES-200 {split}"
    return Path(str(dataset.get("source", dataset.get("name", "")))).name


def output_stem(name: str, split: str | None, table: str) -> str:
    """`flores_dev`, `flores_dev_fp32`, `pud`: the prefix of an evaluation's output files (`split`: given
    for FLORES only, see `sources.evalsets.output_set_stem`)."""
    stem = f"{name}_{split}" if split else name
    return stem if table == DEFAULT_TABLE else f"{stem}_{table}"


def _stem_of(results_path: Path) -> str:
    name = results_path.name
    if name.endswith(RESULTS_SUFFIX):
        return name[: -len(RESULTS_SUFFIX)]
    return results_path.stem


def describe_references(record: dict[str, Any]) -> str:
    """The references beside the model, one line each (open and closed set), for printed summaries."""
    table = references_table(record)
    lengths = [column for column in table.columns if column.startswith("acc_")]
    header = f"{'detector':<16} {'set':<6} {'accuracy':>8} {'F1 macro':>8} " + " ".join(
        f"{column[4:]:>6}" for column in lengths
    ) + f" {'texts/s':>9}"
    lines = [f"References on the same {record['n_sentences']:,} sentences (one thread):", header]
    for (detector, setting), row in table.iterrows():
        f1 = "" if pd.isna(row["f1_macro"]) else f"{row['f1_macro']:.4f}"
        rate = "" if pd.isna(row["texts_per_s"]) else f"{row['texts_per_s']:,.0f}"
        lines.append(
            f"{detector:<16} {setting:<6} {row['accuracy']:>8.2%} {f1:>8} "
            + " ".join(f"{row[column]:>6.1%}" for column in lengths)
            + f" {rate:>9}"
        )
    for name, reason in record.get("unavailable", {}).items():
        lines.append(f"{name}: not run ({reason})")
    return "\n".join(lines)


def references_table(record: dict[str, Any]) -> pd.DataFrame:
    """One row per detector (the model first, then each reference's open and closed set): accuracy on full
    sentences and at each length, macro F1, texts/s. What 04 and `wldetect eval` show beside the model."""
    lengths = [str(k) for k in record.get("lengths", LENGTHS)]

    def row(detector: str, setting: str, by_length: dict, accuracy: float, f1: float | None, rate) -> dict:
        values = {"detector": detector, "set": setting, "accuracy": accuracy, "f1_macro": f1}
        for length in lengths:
            values[f"acc_{length}w"] = by_length.get(length, {}).get("accuracy", np.nan)
        values["texts_per_s"] = np.nan if rate is None else rate
        return values

    model = record["model"]
    rows = [row("model", "own", model["by_length"], model["by_length"]["full"]["accuracy"], model.get("f1_macro"), model["texts_per_s"])]
    for name, entry in record["references"].items():
        for side, setting in (("open_set", "open"), ("closed_set", "closed")):
            scores = entry[side]
            rows.append(row(name, setting, scores["by_length"], scores["accuracy"], scores["f1_macro"], entry["texts_per_s"]))
    return pd.DataFrame(rows).set_index(["detector", "set"])
