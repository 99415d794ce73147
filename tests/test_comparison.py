"""Step 5: McNemar and bootstrap on hand-checked examples, and comparisons of evaluated artifacts and runs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scipy import stats
from test_evaluation import write_tiny_artifacts, write_tiny_evalset

from wldetect.errors import WLDetectError
from wldetect.steps.comparison import (
    SeedAwareComparison,
    compare_runs,
    mcnemar_test,
    paired_bootstrap_ci,
    seed_bootstrap_ci,
    seed_effect,
)
from wldetect.steps.evaluation import evaluate


def outcomes(both_correct: int, baseline_only: int, run_only: int, both_wrong: int) -> tuple[np.ndarray, np.ndarray]:
    baseline = np.array([1] * both_correct + [1] * baseline_only + [0] * run_only + [0] * both_wrong, dtype=bool)
    run = np.array([1] * both_correct + [0] * baseline_only + [1] * run_only + [0] * both_wrong, dtype=bool)
    return baseline, run


def test_mcnemar_exact_matches_the_binomial_by_hand():
    # 12 sentences changed, 10 for the worse: p = 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66) / 4096
    result = mcnemar_test(*outcomes(80, 10, 2, 8))
    assert (result.baseline_only, result.run_only, result.test) == (10, 2, "exact")
    assert result.p_value == pytest.approx(158 / 4096)


def test_mcnemar_chi_square_with_continuity_correction_by_hand():
    # 45 changed: chi2 = (|30 - 15| - 1)^2 / 45 = 196 / 45 on 1 degree of freedom
    result = mcnemar_test(*outcomes(900, 30, 15, 55))
    assert result.test == "chi2"
    assert result.statistic == pytest.approx(196 / 45)
    assert result.p_value == pytest.approx(stats.chi2.sf(196 / 45, df=1))


def test_paired_bootstrap_interval_by_hand():
    baseline, run = outcomes(80, 10, 2, 8)  # differences: ten -1, two +1, 88 zeros; mean -0.08
    difference, low, high = paired_bootstrap_ci(baseline, run, n_resamples=20_000, seed=1)
    assert difference == pytest.approx(-0.08)
    standard_error = np.sqrt((0.12 - 0.08**2) / 100)  # sqrt(Var(d) / n) with E[d^2] = 12/100
    assert low == pytest.approx(-0.08 - 1.96 * standard_error, abs=0.012)
    assert high == pytest.approx(-0.08 + 1.96 * standard_error, abs=0.012)
    # the same interval as scipy's index-resampling paired bootstrap (percentile method)
    reference = stats.bootstrap(
        (run.astype(float), baseline.astype(float)),
        lambda r, b, axis: (r - b).mean(axis=axis),
        paired=True,
        method="percentile",
        n_resamples=20_000,
        rng=np.random.default_rng(2),
    ).confidence_interval
    assert low == pytest.approx(reference.low, abs=0.011) and high == pytest.approx(reference.high, abs=0.011)
    assert paired_bootstrap_ci(baseline, baseline) == (0.0, 0.0, 0.0)


@pytest.fixture
def evaluated(tmp_path):
    """A baseline artifacts dir, a worse masked model as a run record (runs/<id>/artifacts), both evaluated."""
    evalset = write_tiny_evalset(tmp_path / "tiny-set", per_language=20)
    baseline = write_tiny_artifacts(tmp_path / "baseline")
    run_dir = tmp_path / "runs" / "20260101T000000Z-demo-t10"
    masked = write_tiny_artifacts(run_dir / "artifacts", misattributed={"cat": "fra_Latn", "hund": "eng_Latn"}, mask_threshold=10)
    for model in (baseline, masked):
        evaluate(model, dataset=str(evalset), verbose=False, heatmap=False)
    return {"baseline": baseline, "run": run_dir, "evalset": evalset, "tmp": tmp_path}


def test_comparing_a_run_with_itself_shows_no_difference(evaluated):
    comparison = compare_runs([evaluated["baseline"], evaluated["baseline"]], results="tiny-set", verbose=False)
    assert list(comparison.overall.index) == ["baseline", "baseline#2"]
    assert (comparison.overall.filter(like="_delta") == 0).all().all()
    row = comparison.significance.iloc[0]
    assert row["p_value"] == 1.0 and row["baseline_only"] == row["run_only"] == 0
    assert (row["ci_low"], row["ci_high"]) == (0.0, 0.0)
    assert (comparison.per_language["accuracy_delta"] == 0).all() and not comparison.per_language["flagged"].any()
    assert (comparison.per_language["p_mcnemar"] == 1.0).all()
    verdict = comparison.verdict()
    assert "baseline#2: accuracy" in verdict and ": no significant difference." in verdict
    assert verdict.endswith("No run differs significantly from the baseline baseline (McNemar, alpha 0.05).")


def test_comparison_of_an_artifacts_dir_and_a_run_record(evaluated):
    output = evaluated["tmp"] / "comparison"
    comparison = compare_runs([evaluated["baseline"], evaluated["run"]], results="tiny-set", output_dir=output, verbose=False)
    overall = comparison.overall
    assert list(overall.index) == ["baseline", "20260101T000000Z-demo-t10"]
    masked = overall.iloc[1]
    assert masked["accuracy_delta"] < 0 and masked["ci_low"] <= masked["accuracy_delta"] <= masked["ci_high"]
    assert masked["tokens_masked"] > 0 and np.isnan(overall.iloc[0]["tokens_masked"])
    significance = comparison.significance.iloc[0]
    assert significance["accuracy_delta"] == pytest.approx(masked["accuracy_delta"])
    assert significance["p_value"] == pytest.approx(masked["p_mcnemar"])

    per_language = comparison.per_language
    assert per_language["accuracy_delta"].is_monotonic_increasing  # largest drop first
    assert per_language["flagged"].tolist() == (per_language["accuracy_delta"] < -0.01).tolist()
    assert per_language.iloc[0]["language"] in {"eng_Latn", "deu_Latn"}
    for name in ("overall.csv", "per_language.csv", "significance.csv", "summary.txt", "accuracy_vs_threshold.png", "language_deltas.png"):
        assert (output / name).is_file(), name
    assert "baseline" in comparison.summary()
    # the verdict states what the tables hold: significant or not at 0.05, and the languages that lost significantly
    verdict = comparison.verdict()
    significant = masked["p_mcnemar"] < 0.05
    assert ("a significant loss" in verdict) == significant and ("no significant difference" in verdict) != significant
    assert f"masks {int(masked['tokens_masked']):,} tokens" in verdict
    losers = per_language[per_language["flagged"] & (per_language["p_mcnemar"] < 0.05)]["language"]
    assert all(code in verdict for code in losers) and ("Languages that lose significantly" in verdict) == (len(losers) > 0)
    assert comparison.verdict(alpha=1.01).endswith("1 of 1 runs differ significantly from the baseline baseline (McNemar, alpha 1.01): 20260101T000000Z-demo-t10.")
    summary = (output / "summary.txt").read_text(encoding="utf-8")
    assert verdict in summary and f"threshold_figure: {output / 'accuracy_vs_threshold.png'}" in summary
    assert "staging" not in summary  # the files are named where they are, not where they were written


def test_runs_on_different_sentences_cannot_be_compared(evaluated):
    other_set = write_tiny_evalset(evaluated["tmp"] / "other" / "tiny-set", per_language=10)  # same name, fewer lines
    other = evaluate(evaluated["baseline"], dataset=str(other_set), verbose=False, heatmap=False, output=evaluated["tmp"] / "x" / "tiny-set_results.json")
    with pytest.raises(WLDetectError, match="scored different sentences"):
        compare_runs([evaluated["baseline"], other.paths["results"]], results="tiny-set", verbose=False)


@pytest.mark.parametrize(
    "paths, message",
    [
        (lambda e: [e["baseline"]], "at least two runs"),
        (lambda e: [e["baseline"], e["tmp"] / "nowhere"], "no such directory"),
        (lambda e: [e["baseline"], e["evalset"]], "not an artifacts directory"),
    ],
)
def test_bad_comparison_inputs_are_one_line_errors(evaluated, paths, message):
    with pytest.raises(WLDetectError, match=message) as info:
        compare_runs(paths(evaluated), results="tiny-set", verbose=False)
    assert "\n" not in str(info.value)


def test_missing_results_file_names_the_command_to_run(evaluated):
    with pytest.raises(WLDetectError, match="run `wldetect eval --model-path"):
        compare_runs([evaluated["baseline"], evaluated["run"]], verbose=False)  # flores_dev was never evaluated


def test_a_directory_with_several_evaluations_names_them_and_the_choice(evaluated, tmp_path):
    from wldetect.steps.comparison import results_file

    model = tmp_path / "model"
    shutil.copytree(evaluated["baseline"], model)
    assert results_file(model, results=None).name == "tiny-set_results.json"  # the only one: taken
    shutil.copy(model / "tiny-set_results.json", model / "other-set_results.json")
    with pytest.raises(WLDetectError) as info:
        results_file(model, results=None)
    assert str(info.value) == f"{model}: 2 evaluations (other-set, tiny-set); choose one with --results NAME"


def test_the_summary_shows_the_references_scored_on_the_baselines_sentences(tmp_path):
    """The references of the baseline's `<set>_references.json` are rows of the comparison's summary (once)."""
    pytest.importorskip("py3langid")
    evalset = write_tiny_evalset(tmp_path / "tiny-set", per_language=20)
    baseline, run = write_tiny_artifacts(tmp_path / "baseline"), write_tiny_artifacts(tmp_path / "run", misattributed={"cat": "fra_Latn"})
    evaluate(baseline, dataset=str(evalset), verbose=False, heatmap=False, references=["py3langid"])
    evaluate(run, dataset=str(evalset), verbose=False, heatmap=False)
    summary = compare_runs([baseline, run], results="tiny-set", verbose=False).summary()
    assert summary.count("References on the same 60 sentences (one thread):") == 1
    assert [line.split()[:2] for line in summary.splitlines() if line.startswith("py3langid")] == [["py3langid", "open"], ["py3langid", "closed"]]


# --------------------------------------------------------------- what compare reads is checked first (issue 13)


def _edit_csv(path, row: int | None = None, column: str | None = None, value: str | None = None, drop: str | None = None):
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    if drop is not None:
        index = header.index(drop)
        rows = [r[:index] + r[index + 1 :] for r in rows]
    if row is not None:
        rows[row][header.index(column)] = value
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def _first_correct_row(path) -> int:
    lines = path.read_text(encoding="utf-8").split("\n")
    return next(i for i, line in enumerate(lines) if line.endswith(",True,True"))


PREDICTIONS = "tiny-set_predictions.csv"
TAMPERED = {
    "missing column": (
        lambda p: _edit_csv(p, drop="correct"),
        "{p}: missing column correct (a predictions file has id, language, predicted, confidence, correct, in_model)",
    ),
    "id not an integer": (lambda p: _edit_csv(p, 1, "id", "1.5"), "{p}: column 'id', line 2: expected a whole number, got '1.5'"),
    "correct not boolean": (
        lambda p: _edit_csv(p, 3, "correct", "yes"), "{p}: column 'correct', line 4: expected True or False, got 'yes'"
    ),
    "correct contradicts the languages": (
        lambda p: _edit_csv(p, _first_correct_row(p), "correct", "False"),
        "{p}: column 'correct', line {row}: expected True exactly where predicted is language, got 'False'",
    ),
    "language blank": (lambda p: _edit_csv(p, 2, "language", ""), "{p}: column 'language', line 3: expected a language code, got ''"),
    "confidence garbage": (
        lambda p: _edit_csv(p, 1, "confidence", "high"),
        "{p}: column 'confidence', line 2: expected a number from 0 to 1 (or nothing), got 'high'",
    ),
    "a garbage row": (
        lambda p: p.write_text(p.read_text(encoding="utf-8") + "\x00garbage\n", encoding="utf-8"),
        "{p}: column 'id', line {last}: expected a whole number, got '\\x00garbage'",
    ),
    "a row too many fields": (
        lambda p: p.write_text(p.read_text(encoding="utf-8") + "1,a,b,0.5,True,True,x,y\n", encoding="utf-8"),
        "{p}: not a predictions CSV (Error tokenizing data. C error: Expected 6 fields in line {last}, saw 8)",
    ),
    "a sentence twice": (
        lambda p: p.write_text(p.read_text(encoding="utf-8") + p.read_text(encoding="utf-8").split("\n")[1] + "\n", encoding="utf-8"),
        "{p}: columns 'language', 'id', line {last}: sentence {first_sentence} appears twice",
    ),
    "not UTF-8": (
        lambda p: p.write_bytes(p.read_bytes() + b"\xff\n"),
        "predictions file {p}: not UTF-8 text (invalid byte at offset {size})",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_compare_refuses_a_damaged_predictions_file_naming_file_and_column(evaluated, case):
    path = evaluated["run"] / "artifacts" / PREDICTIONS
    lines = path.read_text(encoding="utf-8").split("\n")
    facts = {
        "p": path, "row": _first_correct_row(path) + 1, "last": len(lines), "size": path.stat().st_size,
        "first_sentence": " ".join(reversed(lines[1].split(",")[:2])),
    }  # fmt: skip
    tamper, message = TAMPERED[case]
    tamper(path)
    with pytest.raises(WLDetectError) as raised:
        compare_runs([evaluated["baseline"], evaluated["run"]], results="tiny-set", verbose=False)
    assert str(raised.value) == message.format(**facts)


def _edit_json(path, change) -> None:
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


RESULTS = {
    "accuracy not a number": (
        lambda d: d["overall"].update(accuracy="high"), "{p}: 'overall.accuracy': expected a number from 0 to 1, got \"high\""
    ),
    "a boolean count": (
        lambda d: d["overall"].update(n_sentences=True), "{p}: 'overall.n_sentences': expected a whole number, got true"
    ),
    "per-language table missing": (lambda d: d.pop("per_language"), "{p}: 'per_language' is missing"),
    "model languages not strings": (
        lambda d: d["languages"].update(model=[1, 2]), "{p}: 'languages.model': expected a list of language codes, got [1, 2]"
    ),
    "support disagrees with the predictions": (
        lambda d: d["per_language"]["eng_Latn"].update(support=999),
        "{csv}: 20 scored sentences in eng_Latn, but tiny-set_results.json says per_language.eng_Latn.support 999",
    ),
}


@pytest.mark.parametrize("case", sorted(RESULTS))
def test_compare_refuses_a_damaged_results_file(evaluated, case):
    path = evaluated["run"] / "artifacts" / "tiny-set_results.json"
    change, message = RESULTS[case]
    _edit_json(path, change)
    with pytest.raises(WLDetectError) as raised:
        compare_runs([evaluated["baseline"], evaluated["run"]], results="tiny-set", verbose=False)
    assert str(raised.value) == message.format(p=path, csv=path.with_name(PREDICTIONS))


def test_compare_cli_on_a_damaged_predictions_file_is_one_line_exit_2_and_writes_nothing(evaluated):
    from test_robustness import wldetect

    path = evaluated["run"] / "artifacts" / PREDICTIONS
    _edit_csv(path, 1, "in_model", "maybe")
    output = evaluated["tmp"] / "comparison"
    result = wldetect("compare", str(evaluated["baseline"]), str(evaluated["run"]), "--results", "tiny-set", "--output", str(output))
    assert result.returncode == 2
    assert result.stderr.decode() == f"error: {path}: column 'in_model', line 2: expected True or False, got 'maybe'\n"
    assert not output.exists() and result.stdout == b""


def test_the_summary_names_a_share_threshold_and_puts_the_seed_and_its_validation_line_beside_the_runs(tmp_path):
    """A run asked as a share (`0.0025% -> threshold 3` in its mask record) is shown with both; the seed's row
    (threshold 10: 29.28 % of vocabulary, 0.0025 % of tokens) sits under the mask columns, and the runs are
    sorted by the seed's < 0.01 % validation line."""
    import json

    evalset = write_tiny_evalset(tmp_path / "tiny-set", per_language=20)
    baseline = write_tiny_artifacts(tmp_path / "baseline")
    runs = {}
    for name, share, fraction in (("share", "0.0025%", 0.00002), ("count", None, 0.05)):
        runs[name] = write_tiny_artifacts(tmp_path / name, misattributed={"cat": "fra_Latn"}, mask_threshold=3)
        record = {"threshold": 3, "threshold_share": share, "vocab_size": 40, "tokens_masked": 20,
                  "vocab_masked_fraction": 0.5, "occurrences_masked_fraction": fraction}  # fmt: skip
        (runs[name] / "mask_stats.json").write_text(json.dumps(record))
    for model in (baseline, *runs.values()):
        evaluate(model, dataset=str(evalset), verbose=False, heatmap=False)
    comparison = compare_runs([baseline, runs["share"], runs["count"]], results="tiny-set", verbose=False)
    assert comparison.overall.loc["share", "threshold_share"] == "0.0025%"
    lines = comparison.summary().splitlines()
    share_row = next(line for line in lines if line.startswith("share "))
    assert "0.0025% -> 3" in share_row and "0.0020%" in share_row
    count_row = next(line for line in lines if line.startswith("count "))
    assert "->" not in count_row and "5.0000%" in count_row
    seed_row = next(line for line in lines if line.startswith("seed (Gemma3-27B/OpenLID-v2) "))
    assert seed_row.split()[-11:-8] == ["10", "(29.28%)", "0.0025%"] and "not a run" in seed_row
    assert "The seed's validation line (masked tokens < 0.01 % of the training tokens): within: share; above: count" in lines


# ------------------------------------------------------------------------------------------------- seeds


def _seeded(effects: dict[int, int], n: int = 2000, accuracy: float = 0.9, noise: int = 0, rng_seed: int = 5):
    """Per-seed (baseline, run) outcomes: seed s's run gets `effects[s]` sentences wrong that its baseline had
    right (negative: right that it had wrong), plus `noise` sentences changed in each direction."""
    rng = np.random.default_rng(rng_seed)
    baseline, runs = {}, {}
    for s, effect in effects.items():
        base = rng.random(n) < accuracy
        run = base.copy()
        right, wrong = rng.permutation(np.flatnonzero(base)), rng.permutation(np.flatnonzero(~base))
        worse = max(effect, 0) + noise
        better = max(-effect, 0) + noise
        run[right[:worse]] = False
        run[wrong[:better]] = True
        baseline[s], runs[s] = base, run
    return baseline, runs


def test_seed_bootstrap_of_one_seed_is_the_paired_sentence_bootstrap():
    baseline, run = outcomes(80, 10, 2, 8)
    assert seed_bootstrap_ci([baseline], [run], n_resamples=20_000, seed=1) == pytest.approx(
        paired_bootstrap_ci(baseline, run, n_resamples=20_000, seed=1), abs=0.011
    )
    assert seed_bootstrap_ci([baseline, baseline], [baseline, baseline]) == (0.0, 0.0, 0.0)


def test_one_seed_with_a_big_effect_and_others_with_none_is_not_real():
    """Seed 0 loses 3 points, seeds 1 and 2 nothing: each seed's own test says seed 0 is highly significant,
    but over seeds the interval reaches 0 (a third of the seed draws leave seed 0 out), so not real."""
    baseline, runs = _seeded({0: 60, 1: 0, 2: 0}, noise=0)
    effect = seed_effect(baseline, runs)
    assert effect.differences == pytest.approx([-0.03, 0.0, 0.0])
    assert effect.difference == pytest.approx(-0.01)
    assert effect.p_values[0] < 1e-10 and effect.p_values[1:] == [1.0, 1.0]
    assert effect.ci_low < -0.02 and effect.ci_high >= 0 and not effect.real
    assert effect.same_sign == 1
    words = effect.words()
    assert "over seeds 0, 1, 2" in words and "lower in 1 of 3 seeds" in words
    assert words.endswith("not a real effect: the seed-aware interval includes 0")
    # the same data as one seed's comparison would have called it a highly significant loss
    single = seed_effect({0: baseline[0]}, {0: runs[0]})
    assert single.real and single.ci_high < -0.02


def test_a_consistent_effect_across_seeds_is_real():
    baseline, runs = _seeded({0: 30, 1: 24, 2: 36}, noise=5)
    effect = seed_effect(baseline, runs)
    assert effect.difference == pytest.approx(-0.015)
    assert effect.same_sign == 3 and effect.ci_high < 0 and effect.real
    assert effect.ci_low <= min(effect.differences) <= max(effect.differences) <= effect.ci_high
    assert effect.words().endswith("a real loss: the seed-aware interval excludes 0")


def test_seed_variation_widens_the_interval_beyond_the_sentence_noise():
    """The same mean effect, once equal in every seed and once spread over seeds: the spread one's interval is
    wider, so it holds seed-to-seed variation and not only the sentences'."""
    equal = seed_effect(*_seeded({0: 40, 1: 40, 2: 40}, noise=3))
    spread = seed_effect(*_seeded({0: 0, 1: 40, 2: 80}, noise=3))
    assert equal.difference == pytest.approx(spread.difference)
    assert spread.ci_high - spread.ci_low > 2 * (equal.ci_high - equal.ci_low)


def _seeded_run(root, name: str, threshold: int, seed: int, misattributed: dict[str, str], evalset, summary_seed: bool, share=None):
    """A 03_train run record holding tiny artifacts trained (as far as the records say) at `threshold` with
    `seed`: the seed in its training summary or, with `summary_seed` False, only in its manifest; with
    `share`, the threshold was asked for as that share of the training tokens (`1%`) and resolved to `threshold`."""
    import json

    from wldetect.workflow.runs import create_run

    asked = share or threshold
    run = create_run(name, kind="03_train", parameters={"threshold": asked}, threshold=asked, root=root, seed=seed)
    if share:
        run.record_threshold(threshold, share)
    artifacts = write_tiny_artifacts(run.artifacts_dir, misattributed=misattributed)
    summary = {"mask": None, "vocab_size": 64} if threshold == 0 else {"mask": {"threshold": threshold, "tokens_masked": 3, "vocab_size": 64}}
    if share:
        summary["mask"]["threshold_share"] = share
    if summary_seed:
        summary["config"] = {"training": {"seed": seed}}
    (artifacts / "training_summary.json").write_text(json.dumps(summary))
    evaluate(artifacts, dataset=str(evalset), verbose=False, heatmap=False)
    run.finish()
    return run


def test_runs_of_two_seeds_are_paired_with_their_own_seeds_baseline(tmp_path):
    """2 thresholds x 2 seeds given in any order: grouped by (threshold, seed) from the records, each masked run
    compared with its own seed's baseline, per-seed and across-seed rows, a verdict naming the seeds."""
    evalset = write_tiny_evalset(tmp_path / "tiny-set", per_language=20)
    root = tmp_path / "runs"
    b0 = _seeded_run(root, "s", 0, 0, {}, evalset, summary_seed=True)
    m0 = _seeded_run(root, "s", 10, 0, {"cat": "fra_Latn"}, evalset, summary_seed=True)
    b1 = _seeded_run(root, "s", 0, 1, {"hund": "eng_Latn"}, evalset, summary_seed=False)  # a worse baseline
    m1 = _seeded_run(root, "s", 10, 1, {"hund": "eng_Latn", "cat": "fra_Latn"}, evalset, summary_seed=False)
    assert m1.run_id.endswith("-s-t10-s1")
    output = tmp_path / "report"
    report = compare_runs([b0.path, m1.path, m0.path, b1.path], results="tiny-set", output_dir=output, verbose=False)
    assert isinstance(report, SeedAwareComparison) and report.seeds == [0, 1]
    assert report.baselines == {0: b0.run_id, 1: b1.run_id}

    overall = report.overall
    assert list(overall["seed"]) == [0, 0, 1, 1] and list(overall["sweep_threshold"]) == [0, 10, 0, 10]
    accuracy = {run.run_id: overall.at[run.run_id, "accuracy"] for run in (b0, m0, b1, m1)}
    own = {0: accuracy[m0.run_id] - accuracy[b0.run_id], 1: accuracy[m1.run_id] - accuracy[b1.run_id]}
    assert overall.at[m1.run_id, "accuracy_delta"] == pytest.approx(own[1])  # not against seed 0's baseline
    assert accuracy[b1.run_id] < accuracy[b0.run_id] and own[0] < 0 and own[1] < 0

    across = report.across_seeds
    assert list(across.index) == [10]
    row = across.loc[10]
    assert (row["n_seeds"], row["seeds"], row["same_sign"]) == (2, "0, 1", 2)
    assert row["accuracy_delta"] == pytest.approx((own[0] + own[1]) / 2)
    assert row["ci_low"] <= min(own.values()) and max(own.values()) <= row["ci_high"]
    assert row["real"] == (row["ci_high"] < 0 or row["ci_low"] > 0)
    for s, run in ((0, m0), (1, m1)):
        assert row[f"p_mcnemar_s{s}"] == pytest.approx(report.significance.at[run.run_id, "p_value"])

    languages = report.language_across_seeds
    assert set(languages["threshold"]) == {10} and len(languages) == 3
    eng = languages.set_index("language").loc["eng_Latn"]
    assert eng["n_seeds"] == 2 and eng["seeds_worse"] + eng["seeds_better"] <= 2
    assert list(report.flagged["language"]) == list(languages[languages["flagged"]]["language"])
    for r in languages.itertuples():  # flagged only when worse in every seed, beyond 1 point, interval below 0
        assert r.flagged == (r.seeds_worse == 2 and r.accuracy_delta < -0.01 and r.ci_high < 0)

    # by text length, over seeds: the same fragments for every seed, full sentences agreeing with the row above
    lengths = report.by_length_across_seeds
    assert list(lengths["length"]) == ["1", "2", "3", "5", "full"] and set(lengths["threshold"]) == {10}
    full_sentences = lengths[lengths["length"] == "full"].iloc[0]
    assert full_sentences["accuracy_delta"] == pytest.approx(row["accuracy_delta"])
    assert full_sentences["n_seeds"] == 2 and full_sentences["n"] == int(overall["n_sentences"].iloc[0])
    for r in lengths.itertuples():
        assert r.ci_low <= r.accuracy_delta <= r.ci_high and r.real == (r.ci_low > 0 or r.ci_high < 0)

    verdict = report.verdict()
    assert "threshold 10:" in verdict and "over seeds 0, 1" in verdict and "seed 1 " in verdict
    assert "By text length" in verdict
    assert verdict.splitlines()[-1].startswith("Across seeds 0, 1 (each run paired with its own seed's baseline, threshold 0)")
    assert ("a real loss" in verdict) == bool(row["real"]) and ("not a real effect" in verdict) != bool(row["real"])
    for name in ("overall", "per_language", "significance", "across_seeds", "language_across_seeds", "by_length_across_seeds"):
        assert (output / f"{name}.csv").is_file(), name
    summary = (output / "summary.txt").read_text(encoding="utf-8")
    assert summary.startswith("Across seeds 0, 1") and verdict in summary and "Seed 1:" in summary
    assert "Masking effect by text length across seeds" in summary
    assert (output / "accuracy_vs_threshold.png").read_bytes().startswith(b"\x89PNG")


def test_a_share_threshold_is_named_by_its_share_and_thresholds_are_in_count_order(tmp_path):
    """A sweep's runs arrive in run-id order (t10 before t1pct): the across-seed rows, the summary, the verdict
    and the figure place the thresholds by count (0, 4, 10) and name the share as asked for (`1% -> 4`)."""
    evalset = write_tiny_evalset(tmp_path / "tiny-set", per_language=20)
    root = tmp_path / "runs"
    runs = []
    for seed in (0, 1):
        runs.append(_seeded_run(root, "s", 0, seed, {}, evalset, summary_seed=True))
        runs.append(_seeded_run(root, "s", 10, seed, {"cat": "fra_Latn"}, evalset, summary_seed=True))
        runs.append(_seeded_run(root, "s", 4, seed, {"hund": "eng_Latn"}, evalset, summary_seed=True, share="1%"))
    output = tmp_path / "report"
    report = compare_runs([r.path for r in runs], results="tiny-set", output_dir=output, verbose=False)
    assert isinstance(report, SeedAwareComparison)
    assert list(report.across_seeds.index) == [4, 10]
    assert report.label(4) == "1% -> 4" and report.label(10) == "10"
    summary, verdict = report.summary(), report.verdict()
    assert "threshold 1% -> 4:" in verdict and "threshold 10:" in verdict
    assert [line.split()[:3] for line in summary.splitlines()[2:4]] == [["1%", "->", "4"], ["10", "2", "3"]]
    lengths = [line.strip() for line in summary.splitlines() if line.strip().startswith("1% -> 4 ")]
    assert len(lengths) >= 5  # the across-seed row and the by-length rows name the share
    assert (output / "accuracy_vs_threshold.png").read_bytes().startswith(b"\x89PNG")


def test_ordered_thresholds_keep_the_baseline_first_and_sort_the_rest_by_count():
    from wldetect.steps.comparison import ordered_thresholds, threshold_label

    assert ordered_thresholds([0, 10, 4, 10, 0, 4]) == [0, 4, 10]
    assert ordered_thresholds([5, 10, 1]) == [5, 1, 10]  # the baseline is whatever came first
    assert ordered_thresholds([0, "b", "a"]) == [0, "b", "a"]  # not numbers: the order given
    assert threshold_label(4, "1%") == "1% -> 4" and threshold_label(10, None) == "10" and threshold_label(10, float("nan")) == "10"


def test_a_single_seed_comparison_says_it_ignores_seed_variance(evaluated):
    verdict = compare_runs([evaluated["baseline"], evaluated["run"]], results="tiny-set", verbose=False).verdict()
    assert verdict.splitlines()[0].startswith("One seed: one training run per model (seeds not recorded), so this verdict ignores seed-to-seed variance")
    tables = compare_runs([evaluated["baseline"], evaluated["baseline"]], results="tiny-set", verbose=False)
    assert "seed" not in tables.verdict()  # one model's evaluations: no training seed differs
