"""Step 5 by text length: the masking effect on each sentence's first 1, 2, 3, 5 words, with the same paired
statistics as on full sentences (McNemar, paired bootstrap), on a constructed case and on evaluated models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_comparison import outcomes
from test_evaluation import write_tiny_artifacts, write_tiny_evalset

from wldetect.errors import WLDetectError
from wldetect.steps.comparison import compare_runs
from wldetect.steps.evaluation import evaluate


def _hand_made(one_word_correct: np.ndarray):
    """40 sentences in languages a and b, every full sentence right; at length 1 right exactly where
    `one_word_correct` says, at lengths 2, 3, 5 always right."""
    import pandas as pd

    from wldetect.sources.evalsets import EvaluationSet
    from wldetect.steps.evaluation import length_cuts, score_fragments, score_predictions

    gold = ["a"] * 20 + ["b"] * 20
    sentences = pd.DataFrame({"id": list(range(1, 21)) * 2, "language": gold, "text": ["w x y z v u"] * 40})
    evaluation_set = EvaluationSet(sentences=sentences, name="hand", kind="text_dir", source="hand", split=None)
    result = score_predictions(evaluation_set, gold, [0.9] * 40, model_languages=["a", "b"])
    cuts = length_cuts(sentences)
    right = np.concatenate([one_word_correct, np.ones(120, dtype=bool)])
    wrong = {"a": "b", "b": "a"}
    predicted = [g if ok else wrong[g] for g, ok in zip(cuts["language"], right)]
    result.by_length = score_fragments(cuts, predicted, [0.5] * len(cuts), ["a", "b"])
    return result


def test_by_length_table_and_effect_on_a_constructed_case(tmp_path):
    from wldetect.steps.comparison import by_length_effect

    baseline_correct, run_correct = outcomes(18, 12, 2, 8)  # one-word fragments: 12 worsened, 2 improved
    baseline, run = _hand_made(baseline_correct), _hand_made(run_correct)
    effect = by_length_effect(baseline, run, n_resamples=5_000)
    assert effect["length"].tolist() == ["1", "2", "3", "5", "full"]
    one = effect.iloc[0]
    assert (one["n"], one["worsened"], one["improved"]) == (40, 12, 2)
    assert one["accuracy_baseline"] == pytest.approx(30 / 40) and one["accuracy"] == pytest.approx(20 / 40)
    assert one["accuracy_delta"] == pytest.approx(-0.25)
    assert one["p_mcnemar"] == pytest.approx(2 * (1 + 14 + 91) / 2**14)  # exact: P(X <= 2), X ~ Bin(14, 1/2)
    assert one["ci_high"] < 0 < 1 + one["ci_low"]
    unchanged = effect.iloc[1:]
    assert (unchanged["accuracy_delta"] == 0).all() and (unchanged["p_mcnemar"] == 1).all()
    assert (unchanged["n"] == 40).all()

    comparison = compare_runs([baseline, run], labels=["base", "masked"], output_dir=tmp_path / "report", verbose=False)
    assert comparison.by_length["run"].tolist() == ["masked"] * 5
    assert comparison.by_length.iloc[0]["accuracy_delta"] == pytest.approx(-0.25)
    assert (tmp_path / "report" / "by_length.csv").is_file()
    assert "Accuracy by text length" in comparison.summary() and "-25.00" in comparison.summary()

    run.by_length = run.by_length.iloc[1:]  # one fragment fewer: nothing to pair it with
    with pytest.raises(WLDetectError, match="1 fragments are not in both evaluations"):
        by_length_effect(baseline, run)


def test_results_without_by_length_compare_as_before(tmp_path):
    evalset = write_tiny_evalset(tmp_path / "tiny-set", per_language=6)
    baseline, masked = write_tiny_artifacts(tmp_path / "baseline"), write_tiny_artifacts(tmp_path / "masked", misattributed={"cat": "fra_Latn"})
    for model in (baseline, masked):
        evaluate(model, dataset=str(evalset), verbose=False, heatmap=False)
    path = baseline / "tiny-set_results.json"
    data = json.loads(path.read_text())
    data.pop("by_length")  # as written before the by-length view existed
    data["files"].pop("by_length")
    path.write_text(json.dumps(data))
    comparison = compare_runs([baseline, masked], results="tiny-set", verbose=False)
    assert comparison.by_length.empty and "Accuracy by text length" not in comparison.summary()
