"""Step 4: metrics against scikit-learn, language bookkeeping, and `evaluate` on real (hand-built) artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import TINY_EXTRA_ROWS, TINY_LANGUAGES, TINY_WORDS, tiny_sentences, tiny_vocabulary, write_tokenizer_json
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from wldetect.errors import WLDetectError
from wldetect.lookup import FILE_NAMES, quantize, save_lookup_table
from wldetect.sources.evalsets import EvaluationSet
from wldetect.steps.evaluation import (
    compute_metrics,
    confusion_table,
    cut_text,
    evaluate,
    length_cuts,
    score_predictions,
)
from wldetect.steps.results import EvaluationResult

MODEL_LANGUAGES = TINY_LANGUAGES + ["ita_Latn"]  # ita_Latn: a model language absent from the evaluation set


def write_tiny_artifacts(directory: Path, misattributed: dict[str, str] | None = None, mask_threshold: int | None = None) -> Path:
    """A real artifacts directory for WLDetect: each word's row votes for its language.

    `misattributed` moves words to another language's column (a worse model); `mask_threshold` also writes
    a token mask (the first half of the vocabulary masked) and the mask statistics a trainer would record.
    """
    directory.mkdir(parents=True, exist_ok=True)
    vocabulary = tiny_vocabulary()
    write_tokenizer_json(directory / "tokenizer.json", vocabulary)
    table = np.zeros((len(vocabulary) + TINY_EXTRA_ROWS, len(MODEL_LANGUAGES)), dtype=np.float32)
    for code in TINY_LANGUAGES:
        for word in TINY_WORDS[code]:
            table[vocabulary.index(word), MODEL_LANGUAGES.index(code)] += 3.0
    for word, code in (misattributed or {}).items():
        table[vocabulary.index(word)] = 0.0
        table[vocabulary.index(word), MODEL_LANGUAGES.index(code)] = 12.0
    config = {
        "model": {"name": "tiny", "type": "tiny", "hidden_dim": 8, "embedding_layer_name": "e"},
        "languages": {code: i for i, code in enumerate(MODEL_LANGUAGES)},
        "inference": {"max_sequence_length": 32, "pooling": "average"},
    }
    (directory / "model_config.yaml").write_text(yaml.safe_dump(config))
    for fmt, name in FILE_NAMES.items():
        save_lookup_table(quantize(table, fmt), directory / name, languages=MODEL_LANGUAGES)
    if mask_threshold is not None:
        mask = np.ones(table.shape[0], dtype=bool)
        mask[: table.shape[0] // 2] = False
        np.save(directory / "token_mask.npy", mask)
    return directory


def write_tiny_evalset(directory: Path, per_language: int = 20) -> Path:
    """<code>.txt files for the three tiny languages plus glg_Latn, which the tiny model does not know."""
    directory.mkdir(parents=True, exist_ok=True)
    for code in TINY_LANGUAGES:
        (directory / f"{code}.txt").write_text("\n".join(tiny_sentences(code, per_language, seed=7)) + "\n")
    (directory / "glg_Latn.txt").write_text("\n".join(tiny_sentences("fra_Latn", 5, seed=8)) + "\n")
    return directory


# ------------------------------------------------------------------------------------------------ metrics

GOLD = ["a", "a", "a", "a", "b", "b", "b", "c", "c", "c", "c", "c"]
PRED = ["a", "a", "b", "a", "b", "c", "b", "c", "c", "a", "d", None]  # d: a label outside the set; None: no prediction


def test_metrics_equal_scikit_learn_on_a_known_prediction_set():
    overall, per_language = compute_metrics(GOLD, PRED, ["a", "b", "c"])
    y_pred = ["<none>" if p is None else p for p in PRED]
    assert overall["accuracy"] == pytest.approx(accuracy_score(GOLD, y_pred)) == pytest.approx(7 / 12)
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(GOLD, y_pred, labels=["a", "b", "c"], average=average, zero_division=0)
        assert overall[f"precision_{average}"] == pytest.approx(p)
        assert overall[f"recall_{average}"] == pytest.approx(r)
        assert overall[f"f1_{average}"] == pytest.approx(f)
    assert overall["f1_macro"] == pytest.approx(f1_score(GOLD, y_pred, labels=["a", "b", "c"], average="macro"))
    p, r, f, s = precision_recall_fscore_support(GOLD, y_pred, labels=["a", "b", "c"], zero_division=0)
    np.testing.assert_allclose(per_language["precision"], p)
    np.testing.assert_allclose(per_language["recall"], r)
    np.testing.assert_allclose(per_language["f1"], f)
    assert per_language["support"].tolist() == s.tolist() == [4, 3, 5]
    # a language's accuracy is its share of its own sentences right: 3/4, 2/3, 2/5
    np.testing.assert_allclose(per_language["accuracy"], [3 / 4, 2 / 3, 2 / 5])
    assert overall["n_no_prediction"] == 1 and overall["n_correct"] == 7

    confusion = confusion_table(GOLD, PRED, ["a", "b", "c"])
    assert list(confusion.columns) == ["a", "b", "c", "d", "<none>"]
    expected = confusion_matrix(GOLD, y_pred, labels=["a", "b", "c", "d", "<none>"])[:3]
    np.testing.assert_array_equal(confusion.to_numpy(), expected)


def _evaluation_set(frame: pd.DataFrame) -> EvaluationSet:
    return EvaluationSet(sentences=frame, name="toy", kind="text_dir", source="toy", split=None)


def test_unknown_and_missing_languages_are_reported_not_dropped():
    sentences = pd.DataFrame(
        {"id": [1, 2, 1, 2, 1, 2], "language": ["a", "a", "b", "b", "zzz", "zzz"], "text": list("uvwxyz")}
    )
    result = score_predictions(
        _evaluation_set(sentences), ["a", "b", "b", "b", "a", None], [0.9] * 6, model_languages=["a", "b", "m"]
    )
    assert result.unknown_languages == {"zzz": {"sentences": 2, "predicted_as": {"a": 1, "<none>": 1}}}
    assert result.missing_languages == ["m"]
    assert result.overall["n_sentences"] == 4 and result.overall["accuracy"] == pytest.approx(3 / 4)
    assert result.predictions["in_model"].tolist() == [True, True, True, True, False, False]
    summary = result.summary()
    assert "zzz (2 sentences" in summary and "no sentences in this set (1): m" in summary


def test_no_shared_language_is_an_error():
    sentences = pd.DataFrame({"id": [1], "language": ["zzz"], "text": ["x"]})
    with pytest.raises(WLDetectError, match="none of its 1 languages"):
        score_predictions(_evaluation_set(sentences), ["a"], [0.5], model_languages=["a"])


# --------------------------------------------------------------------------------------------- evaluate


def test_evaluate_writes_results_predictions_and_heatmap(tmp_path):
    model = write_tiny_artifacts(tmp_path / "model", misattributed={"cat": "fra_Latn"})
    evalset = write_tiny_evalset(tmp_path / "tiny-set")
    result = evaluate(model, dataset=str(evalset), verbose=False)

    assert set(result.paths) == {"results", "predictions", "heatmap", "by_length"}
    assert result.paths["results"] == model / "tiny-set_results.json"
    assert all(path.is_file() for path in result.paths.values())
    data = json.loads(result.paths["results"].read_text())
    assert data["schema_version"] == 1 and data["table"] == "e3m4"
    assert data["languages"]["unknown_to_model"]["glg_Latn"]["sentences"] == 5
    assert data["languages"]["missing_from_dataset"] == ["ita_Latn"]
    assert set(data["per_language"]) == set(TINY_LANGUAGES)
    assert set(data["overall"]) >= {"accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro"}
    assert 0.5 < data["overall"]["accuracy"] < 1.0  # "cat" drags some English sentences to French
    assert data["top_confusions"][0]["gold"] == "eng_Latn" and data["top_confusions"][0]["predicted"] == "fra_Latn"

    predictions = pd.read_csv(result.paths["predictions"])
    assert list(predictions.columns) == ["id", "language", "predicted", "confidence", "correct", "in_model"]
    assert len(predictions) == 65 and (~predictions["in_model"]).sum() == 5

    loaded = EvaluationResult.load(result.paths["results"])
    assert loaded.overall == result.overall
    pd.testing.assert_frame_equal(loaded.predictions, result.predictions, check_dtype=False)
    pd.testing.assert_frame_equal(loaded.per_language, result.per_language, check_dtype=False)


def test_evaluate_on_a_flores_plus_hub_layout_uses_the_seed_file_name(tmp_path):
    from test_evalsets import write_flores_plus

    model = write_tiny_artifacts(tmp_path / "model")
    flores = write_flores_plus(tmp_path / "flores_plus")
    result = evaluate(model, dataset=str(flores), split="devtest", verbose=False, heatmap=False)
    assert result.paths["results"].name == "flores_devtest_results.json"
    assert list(result.unknown_languages) == ["cmn_Hant"]
    assert result.overall["n_languages"] == 2


def test_the_shipped_sets_results_are_named_after_the_set_without_a_split(tmp_path):
    model = write_tiny_artifacts(tmp_path / "model")
    pud = evaluate(model, dataset="pud", verbose=False, heatmap=False)
    assert pud.paths["results"].name == "pud_results.json" and pud.paths["predictions"].name == "pud_predictions.csv"
    devset = evaluate(model, dataset="demo", table="fp32", verbose=False, heatmap=False)
    assert devset.paths["results"].name == "devset_fp32_results.json"
    assert sorted(p.name for p in model.glob("*_results.json")) == ["devset_fp32_results.json", "pud_results.json"]


def test_evaluate_tables_side_by_side_in_one_call(tmp_path):
    from wldetect.steps.evaluation import evaluate_tables

    model = write_tiny_artifacts(tmp_path / "model")
    evalset = write_tiny_evalset(tmp_path / "tiny-set", per_language=8)
    comparison = evaluate_tables(model, dataset=str(evalset), verbose=False)
    assert list(comparison.overall.index) == ["fp32", "e4m3fn", "e3m4"]
    assert (model / "tiny-set_fp32_results.json").is_file() and (model / "tiny-set_results.json").is_file()
    assert comparison.overall["accuracy"].notna().all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model_path": "missing-dir"}, "no such directory"),
        ({"table": "fp16"}, "expected one of e3m4, e4m3fn, fp32"),
        ({"output": "results.txt"}, "expected a .json path"),
    ],
)
def test_bad_inputs_are_one_line_errors(tmp_path, kwargs, message):
    model = write_tiny_artifacts(tmp_path / "model")
    evalset = write_tiny_evalset(tmp_path / "set", per_language=2)
    arguments = {"model_path": model, "dataset": str(evalset), "verbose": False, **kwargs}
    if arguments["model_path"] == "missing-dir":
        arguments["model_path"] = tmp_path / "missing-dir"
    with pytest.raises(WLDetectError, match=message) as info:
        evaluate(**arguments)
    assert "\n" not in str(info.value)


# -------------------------------------------------------------------------------------------- by length


def test_sentences_are_cut_to_their_first_words_or_two_characters_a_word_without_spaces():
    assert cut_text("  The cat sat\non the mat. ", 2, unspaced=False) == "The cat"
    assert cut_text("Short.", 5, unspaced=False) == "Short."  # a shorter sentence stays whole
    sentences = pd.DataFrame(
        {"id": [4, 9], "language": ["eng_Latn", "cmn_Hant"], "text": ["one two three four five six", "我們今天去了台北的市場"]}
    )
    cuts = length_cuts(sentences)
    assert list(cuts.columns) == ["id", "language", "length", "text"]
    assert cuts["length"].tolist() == [1, 1, 2, 2, 3, 3, 5, 5]
    assert cuts["id"].tolist() == [4, 9] * 4  # the sentences' own ids at every length
    assert cuts["text"].tolist() == [
        "one", "我們", "one two", "我們今天", "one two three", "我們今天去了", "one two three four five", "我們今天去了台北的市",
    ]  # fmt: skip


def test_length_cut_evaluation_keeps_sentence_ids_paired_across_runs(tmp_path):
    evalset = write_tiny_evalset(tmp_path / "tiny-set")
    good = evaluate(write_tiny_artifacts(tmp_path / "good"), dataset=str(evalset), verbose=False, heatmap=False)
    worse = evaluate(
        write_tiny_artifacts(tmp_path / "worse", misattributed={"the": "fra_Latn"}), dataset=str(evalset), verbose=False, heatmap=False
    )
    keys = ["language", "id", "length"]
    for result in (good, worse):
        frame = EvaluationResult.load(result.paths["results"]).by_length
        assert result.paths["by_length"].name == "tiny-set_by_length.csv"
        assert list(frame.columns) == ["id", "language", "length", "predicted", "confidence", "correct", "in_model"]
        assert not frame.duplicated(keys).any() and frame["in_model"].all()
        for length in (1, 2, 3, 5):  # every scored sentence once at every length, under its own id
            at = frame[frame["length"] == length][["language", "id"]].reset_index(drop=True)
            pd.testing.assert_frame_equal(at, result.scored[["language", "id"]].reset_index(drop=True))
    pd.testing.assert_frame_equal(good.by_length[keys], worse.by_length[keys])
    summary = json.loads(worse.paths["results"].read_text())["by_length"]
    assert list(summary) == ["1", "2", "3", "5", "full"]
    assert summary["full"]["correct"] == worse.overall["n_correct"]
    one_word = worse.by_length[worse.by_length["length"] == 1]
    assert summary["1"] == {"accuracy": pytest.approx(one_word["correct"].mean()), "sentences": 60, "correct": int(one_word["correct"].sum())}
    # "the" now votes French: English one-word fragments starting with it are wrong in the worse run only
    assert summary["1"]["correct"] < json.loads(good.paths["results"].read_text())["by_length"]["1"]["correct"]


def test_results_without_the_by_length_view_still_load_and_a_tampered_one_is_refused(tmp_path):
    model = write_tiny_artifacts(tmp_path / "model")
    result = evaluate(model, dataset=str(write_tiny_evalset(tmp_path / "set", per_language=6)), verbose=False, heatmap=False)
    path = result.paths["results"]
    data = json.loads(path.read_text())

    old = {key: value for key, value in data.items() if key != "by_length"}  # as written before the view existed
    old["files"] = {"predictions": data["files"]["predictions"]}
    path.write_text(json.dumps(old))
    assert EvaluationResult.load(path).by_length is None

    data["by_length"]["2"]["correct"] += 1
    path.write_text(json.dumps(data))
    with pytest.raises(WLDetectError, match="fragments of length 2 correct"):
        EvaluationResult.load(path)
    data["by_length"]["2"]["correct"] -= 1
    path.write_text(json.dumps(data))
    csv = result.paths["by_length"]
    csv.write_text(csv.read_text().replace(",1,", ",4,", 1))
    with pytest.raises(WLDetectError, match="column 'length', line 2: expected one of 1, 2, 3, 5"):
        EvaluationResult.load(path)


def test_a_retrained_directory_clears_the_by_length_and_references_files_of_its_evaluation(tmp_path):
    from wldetect.artifacts import previous_outputs

    model = write_tiny_artifacts(tmp_path / "model")
    result = evaluate(model, dataset=str(write_tiny_evalset(tmp_path / "set", per_language=3)), verbose=False, heatmap=False)
    result.references = {"references": {}}  # as `--references` leaves it, written beside the results
    result.save(result.paths["results"], heatmap=False)
    listed = {path.name for path in previous_outputs(model)}
    assert {"set_results.json", "set_predictions.csv", "set_by_length.csv", "set_references.json"} <= listed
