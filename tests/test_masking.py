"""Step 2: the mask and every statistic against hand-computed values; coverage tables, scripts, figure; errors."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import scipy.sparse
from conftest import TINY_EXTRA_ROWS, tiny_vocabulary, write_tokenizer_json

from wldetect.errors import WLDetectError
from wldetect.steps.count_files import load_token_counts
from wldetect.steps.masking import (
    create_mask,
    language_impact,
    mask_coverage,
    mask_from_counts,
    masked_token_sample,
    parse_threshold,
    script_breakdown,
    threshold_table,
)
from wldetect.vocab import BEYOND_TOKENIZER, SPECIAL, text_script

FORMS = "a non-negative integer or a share of the training tokens below 100% like 0.5%"
# Hand-checked example: threshold 10 keeps ids 2, 4, 5.
COUNTS = np.array([0, 3, 10, 9, 100, 10], dtype=np.int64)
TOTAL = 132


def test_mask_and_statistics_by_hand(tmp_path, capsys):
    path = tmp_path / "counts.npy"
    np.save(path, COUNTS.reshape(-1, 1))  # (V, 1) is accepted too
    result = create_mask(path, 10, tmp_path / "mask.npy")
    expected = np.array([False, False, True, False, True, True])
    np.testing.assert_array_equal(result.mask, expected)
    saved = np.load(tmp_path / "mask.npy")
    assert saved.dtype == np.bool_ and saved.shape == (6,)
    np.testing.assert_array_equal(saved, expected)
    np.testing.assert_array_equal(mask_from_counts(COUNTS, "10"), expected)

    s = result.statistics
    assert (s.vocab_size, s.total_tokens, s.threshold) == (6, TOTAL, 10)
    assert (s.kept_tokens, s.masked_tokens) == (3, 3) and s.kept_pct == s.masked_pct == 50.0
    assert (s.masked_occurrences, s.masked_max_count) == (12, 9) and s.masked_mean_count == 4.0
    assert (s.kept_occurrences, s.kept_min_count) == (120, 10) and s.kept_mean_count == 40.0
    assert s.masked_data_pct == pytest.approx(100 * 12 / 132) and s.kept_data_pct == pytest.approx(100 * 120 / 132)
    assert s.file_size == (tmp_path / "mask.npy").stat().st_size and not s.passes_validation

    out = capsys.readouterr().out
    for line in [
        "Vocabulary size:        6",
        "Total tokens in data:   132",
        "Threshold:              count >= 10",
        "Tokens kept:            3 (50.00%)",
        "Tokens masked:          3 (50.00%)",
        "Total occurrences:      12",
        "% of training data:     9.0909%",
        "Mean count:             4.00",
        "Max count:              9",
        "Total occurrences:      120",
        "% of training data:     90.9091%",
        "Mean count:             40.00",
        "Min count:              10",
        "Validation: masked tokens are 9.0909% of training data (limit < 0.01%): WARNING: above the limit",
        f"Mask file size: {s.file_size:,} bytes",
        f"Saved token mask to {tmp_path / 'mask.npy'} (shape=(6,), dtype=bool)",
    ]:
        assert line in out, line


def test_edge_thresholds():
    everything = create_mask(COUNTS, 0, verbose=False).statistics
    assert everything.masked_tokens == 0 and everything.masked_max_count is None and "Max count:              n/a" in everything.report()
    nothing = create_mask(COUNTS, 1000, verbose=False).statistics
    assert nothing.kept_tokens == 0 and nothing.masked_occurrences == TOTAL and nothing.kept_min_count is None
    assert create_mask(COUNTS, 1, verbose=False).statistics.passes_validation  # only the never-seen id 0


def test_threshold_table_by_hand():
    table = threshold_table(COUNTS)
    assert list(table["threshold"]) == [1, 5, 10, 50, 100]
    assert list(table["tokens_masked"]) == [1, 2, 3, 5, 5]
    assert list(table["occurrences_masked"]) == [0, 3, 12, 32, 32]
    np.testing.assert_allclose(table["tokens_masked_pct"], [100 / 6, 200 / 6, 50, 500 / 6, 500 / 6])
    np.testing.assert_allclose(table["training_data_masked_pct"], [0, 300 / 132, 1200 / 132, 3200 / 132, 3200 / 132])
    assert list(threshold_table(COUNTS, [3, "101"])["tokens_masked"]) == [1, 6]


def test_language_impact_by_hand_and_the_flag_rule():
    # Two languages over the 6 tokens. Masked ids (threshold 10): 0, 1, 3.
    per_language = np.array([[0, 0], [3, 0], [10, 0], [1, 8], [50, 50], [10, 0]])
    impact = language_impact(scipy.sparse.csr_matrix(per_language), ["aaa_Latn", "bbb_Cyrl"], mask_from_counts(COUNTS, 10))
    rows = impact.set_index("language")
    assert rows.loc["aaa_Latn", "occurrences"] == 74 and rows.loc["aaa_Latn", "masked_occurrences"] == 4
    assert rows.loc["bbb_Cyrl", "occurrences"] == 58 and rows.loc["bbb_Cyrl", "masked_occurrences"] == 8
    assert rows.loc["aaa_Latn", "distinct_tokens"] == 5 and rows.loc["aaa_Latn", "masked_distinct_tokens"] == 2
    assert rows.loc["bbb_Cyrl", "distinct_tokens"] == 2 and rows.loc["bbb_Cyrl", "masked_distinct_tokens"] == 1
    assert rows.loc["bbb_Cyrl", "masked_occurrences_pct"] == pytest.approx(800 / 58)
    assert rows.loc["aaa_Latn", "masked_distinct_pct"] == pytest.approx(40.0)
    assert impact.attrs["overall_masked_pct"] == pytest.approx(1200 / 132)
    assert list(impact["language"]) == ["bbb_Cyrl", "aaa_Latn"]  # most affected first
    assert not impact["flagged"].any()  # 13.8% is < 2 x 9.09%

    # One language with 2.5x the overall share is flagged; the others are not.
    per_language = np.zeros((6, 3), dtype=np.int64)
    per_language[4] = [1000, 1000, 1000]
    per_language[1, 2] = 30  # 30 masked of 1030 in ccc, 30 of 3030 overall
    impact = language_impact(per_language, ["aaa", "bbb", "ccc"], mask_from_counts(COUNTS, 10)).set_index("language")
    assert impact["flagged"].to_dict() == {"ccc": True, "aaa": False, "bbb": False}
    assert impact.loc["ccc", "ratio_to_overall"] == pytest.approx((30 / 1030) / (30 / 3030))

    # ... but not when its share is tiny in absolute terms (<= 0.01%).
    per_language[4] = [10**7, 10**7, 10**7]
    per_language[1, 2] = 3
    assert not language_impact(per_language, ["aaa", "bbb", "ccc"], mask_from_counts(COUNTS, 10))["flagged"].any()


def test_unicode_scripts():
    cases = {"cat": "LATIN", "Привет": "CYRILLIC", "中文": "CJK", "한국어": "HANGUL", "ー": "KATAKANA", "ひ": "HIRAGANA",
             "ＡＢ": "LATIN", "नमस्ते": "DEVANAGARI", "##ing": "LATIN", "123": "DIGIT", ".": "PUNCTUATION", "€": "SYMBOL",
             "\ufffd": "BYTE FRAGMENT", "µ": "GREEK", "ʼ": "MODIFIER", " ": "SPACE"}  # fmt: skip
    assert {text: text_script(text) for text in cases} == cases


@pytest.fixture
def tiny_tokenizer(tmp_path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(write_tokenizer_json(tmp_path / "tokenizer.json", tiny_vocabulary())))


def test_masked_tokens_are_decoded_with_their_script_and_rows_beyond_the_tokenizer_say_so(tiny_tokenizer):
    vocabulary = tiny_vocabulary()
    V = len(vocabulary) + TINY_EXTRA_ROWS
    counts = np.full(V, 100, dtype=np.int64)
    katze, chat = vocabulary.index("katze"), vocabulary.index("chat")
    counts[[1, 2, katze, chat, V - 1]] = [4, 0, 3, 0, 2]  # masked at 10: [UNK], [CLS], katze, chat, last row
    mask = mask_from_counts(counts, 10)

    sample = masked_token_sample(counts, mask, tiny_tokenizer, n=10)
    assert list(sample["token_id"]) == [1, katze, V - 1]  # seen masked tokens only, most frequent first
    assert list(sample["count"]) == [4, 3, 2]
    assert list(sample["token"]) == ["[UNK]", "katze", BEYOND_TOKENIZER]
    assert list(sample["script"]) == [SPECIAL, "LATIN", BEYOND_TOKENIZER]
    everything = masked_token_sample(counts, mask, tiny_tokenizer, n=10, include_unseen=True)
    assert sorted(everything["token_id"]) == sorted([1, 2, katze, chat, V - 1])

    scripts = script_breakdown(counts, mask, tiny_tokenizer).set_index("script")
    latin_words = len(vocabulary) - 4
    assert scripts.loc["LATIN", "vocab_tokens"] == latin_words
    assert scripts.loc["LATIN", "masked_tokens"] == 2 and scripts.loc["LATIN", "masked_seen_tokens"] == 1
    assert scripts.loc["LATIN", "masked_occurrences"] == 3
    assert scripts.loc["LATIN", "masked_seen_pct"] == pytest.approx(100 / (latin_words - 1))
    assert scripts.loc[SPECIAL, "vocab_tokens"] == 4 and scripts.loc[SPECIAL, "masked_tokens"] == 2
    assert scripts.loc[BEYOND_TOKENIZER, "vocab_tokens"] == TINY_EXTRA_ROWS
    assert scripts.loc[BEYOND_TOKENIZER, "masked_tokens"] == 1


def test_coverage_analysis_and_figure(tmp_path, tiny_tokenizer):
    from matplotlib.figure import Figure

    from wldetect.steps.count_files import save_token_counts

    V = len(tiny_vocabulary()) + TINY_EXTRA_ROWS
    rng = np.random.default_rng(0)
    per_language = scipy.sparse.csr_matrix(rng.integers(0, 4, size=(V, 3)) * (rng.random((V, 3)) < 0.5) * 20)
    counts = np.asarray(per_language.sum(axis=1)).ravel()
    counts_path, _, _ = save_token_counts(tmp_path / "token_counts.npy", counts, per_language, ["a", "b", "c"])
    create_mask(counts_path, 25, tmp_path / "mask.npy", verbose=False)

    coverage = mask_coverage(counts_path, tmp_path / "mask.npy", tmp_path / "coverage.png", tokenizer=tiny_tokenizer)
    assert isinstance(coverage.figure, Figure) and len(coverage.figure.axes) == 3
    assert (tmp_path / "coverage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert coverage.statistics.threshold == 40  # inferred from the mask: the smallest kept count (20 < 25 <= 40)
    table = coverage.threshold_table
    assert list(table["measured_on"]) == ["these counts"] * 6 + ["seed (Gemma3-27B on OpenLID-v2)"]
    assert list(table["threshold"]) == [1, 5, 10, 40, 50, 100, 10]
    assert table.iloc[-1][["tokens_masked_pct", "training_data_masked_pct", "below_0.01pct"]].tolist() == [29.28, 0.0025, True]
    assert list(coverage.language_impact["language"]) and coverage.language_impact["occurrences"].sum() == counts.sum()
    assert coverage.script_breakdown is not None and len(coverage.masked_sample) > 0
    stats, impact = coverage.statistics, coverage.language_impact
    verdict = coverage.verdict().splitlines()
    assert verdict[0] == (
        f"Threshold 40 masks {stats.masked_tokens:,} of {stats.vocab_size:,} tokens ({stats.masked_pct:.1f} % of the "
        f"vocabulary); they carry {stats.masked_data_pct:.4f} % of the training tokens, above the seed's 0.01 % validation line. "
        "The seed's own regime: seed (Gemma3-27B on OpenLID-v2), threshold 10: 29.28 % of vocabulary, 0.0025 % of tokens."
    )
    hardest = impact.iloc[0]
    assert verdict[1].startswith(f"Languages losing the largest share of their token occurrences: {hardest.language} ")
    assert f"{int(impact['flagged'].sum())} of 3 languages are flagged" in verdict[1]
    assert verdict[2].startswith("Masked tokens that training saw, by script, most occurrences first: ")


def test_visualize_mask_cli(tmp_path, monkeypatch, capsys):
    from wldetect.cli import main

    np.save(tmp_path / "counts.npy", COUNTS)
    np.save(tmp_path / "mask.npy", COUNTS >= 10)
    argv = ["wldetect", "visualize-mask", "--token-counts", str(tmp_path / "counts.npy"),
            "--token-mask", str(tmp_path / "mask.npy"), "--output", str(tmp_path / "coverage.png")]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and (tmp_path / "coverage.png").is_file()
    assert "Threshold:              count >= 10" in out and "Threshold table" in out
    assert "Per-language impact" not in out  # no per-language counts next to these counts


BAD_INPUTS = [
    ("threshold", -1, f"threshold must be {FORMS}, got -1 (negative)"),
    ("threshold", 2.5, f"threshold must be {FORMS}, got 2.5 (a share of the training tokens is written with %)"),
    ("threshold", "ten", f"threshold must be {FORMS}, got 'ten'"),
    ("threshold", True, f"threshold must be {FORMS}, got True"),
    ("threshold", "1%%", f"threshold must be {FORMS}, got '1%%'"),
    ("threshold", "-1%", f"threshold must be {FORMS}, got '-1%' (negative)"),
    ("threshold", "100%", f"threshold must be {FORMS}, got '100%' (a share must be below 100%"),
    ("missing", None, "{path}: token counts file not found"),
    ("floats", np.array([1.0, 2.0]), "{path}: token counts must be an integer array, got dtype float64"),
    ("bools", np.array([True, False]), "{path}: token counts must be an integer array, got dtype bool"),
    ("negative", np.array([4, -3, 2]), "{path}: token counts must be >= 0, found -3 at token id 1"),
    ("2-D", np.zeros((3, 4), dtype=np.int64), "{path}: token counts must have shape (vocab_size,) or (vocab_size, 1), got (3, 4)"),
    ("objects", np.array([1, "a"], dtype=object), "{path}: not a readable NumPy .npy array (ValueError)"),
    ("text", b"hello", "{path}: not a readable NumPy .npy array"),
]


@pytest.mark.parametrize("kind,value,message", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_inputs_are_one_line_errors_and_nothing_is_written(tmp_path, kind, value, message):
    path = tmp_path / "counts.npy"
    threshold = value if kind == "threshold" else 10
    if kind == "threshold":
        np.save(path, COUNTS)
    elif kind == "text":
        path.write_bytes(value)
    elif kind != "missing":
        np.save(path, value, allow_pickle=True)
    output = tmp_path / "out" / "mask.npy"
    with pytest.raises(WLDetectError) as error:
        create_mask(path, threshold, output)
    text = str(error.value)
    assert text.startswith(message.format(path=path)) and "\n" not in text
    assert not output.parent.exists()  # checked before anything is created
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if kind == "missing" else ["counts.npy"])


def test_create_mask_cli_error_is_one_line_with_nonzero_exit(tmp_path, monkeypatch, capsys):
    from wldetect.cli import main

    np.save(tmp_path / "counts.npy", COUNTS)
    output = tmp_path / "mask.npy"
    for threshold, message in [("-5", "got '-5' (negative)"), ("1.5", "got '1.5' (a share of the training tokens is written with %)"),
                               ("abc", "got 'abc'"), ("0.5%%", "got '0.5%%'")]:
        argv = ["wldetect", "create-mask", "--token-counts", str(tmp_path / "counts.npy"), "--threshold", threshold,
                "--output", str(output)]  # fmt: skip
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exit_info:
            main()
        captured = capsys.readouterr()
        assert exit_info.value.code == 2 and captured.out == ""
        assert captured.err == f"error: threshold must be {FORMS}, {message}\n"
        assert not output.exists()


def test_load_token_counts_and_parse_threshold_accept_the_good_forms(tmp_path):
    np.save(tmp_path / "c.npy", COUNTS.astype(np.uint32).reshape(-1, 1))
    loaded = load_token_counts(tmp_path / "c.npy")
    assert loaded.dtype == np.int64 and loaded.shape == (6,)
    assert [parse_threshold(t) for t in (10, 10.0, "10", np.int32(10), " 7 ")] == [10, 10, 10, 10, 7]


def test_a_mask_of_the_wrong_length_is_rejected(tmp_path):
    np.save(tmp_path / "counts.npy", COUNTS)
    np.save(tmp_path / "mask.npy", np.ones(4, dtype=bool))
    with pytest.raises(WLDetectError, match=r"mask\.npy: token mask has 4 entries but the vocab size is 6$"):
        mask_coverage(tmp_path / "counts.npy", tmp_path / "mask.npy")
    np.save(tmp_path / "mask.npy", np.ones(6, dtype=np.int8))
    with pytest.raises(WLDetectError, match=r"token mask must be a bool array, got dtype int8$"):
        mask_coverage(tmp_path / "counts.npy", tmp_path / "mask.npy")


@pytest.mark.parametrize("name, message", [("mask", "expected a file name ending in .npy"), ("adir", "is a directory")])
def test_an_output_that_numpy_would_rename_is_refused_before_writing(tmp_path, name, message):
    from wldetect.steps.masking import create_mask

    (tmp_path / "adir").mkdir()
    with pytest.raises(WLDetectError, match=message):
        create_mask(np.array([0, 3, 9]), 2, output=tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"]


def test_threshold_strings_must_be_whole_numbers():
    from wldetect.steps.masking import parse_threshold

    assert parse_threshold(" 7 ") == 7 and parse_threshold("10.0") == 10
    for bad in ("1e30", "inf", "0x10", "10 5"):
        with pytest.raises(WLDetectError, match="non-negative integer"):
            parse_threshold(bad)


# ----------------------------------------------------------------------------- thresholds as a share of the data

# 100 training tokens: values 0, 1, 2, 3, 10, 80 carry 0, 2, 2, 6, 10, 80 occurrences, so masking every count
# <= 0, 1, 2, 3, 10 masks 0 %, 2 %, 4 %, 10 %, 20 % of the data (thresholds 1, 2, 3, 4, 11).
SHARE_COUNTS = np.array([0, 1, 1, 2, 3, 3, 10, 80], dtype=np.int64)
SHARE_CASES = [
    ("0%", 1, 0.0),  # unseen tokens carry nothing: any share masks them, and nothing else
    ("1%", 1, 0.0),  # below the smallest nonzero step (the two count-1 tokens carry 2 %)
    ("0.0025%", 1, 0.0),
    ("2%", 2, 0.02),  # exact hit: the count-1 tokens carry exactly 2 %
    ("3.99%", 2, 0.02),
    ("4%", 3, 0.04),
    ("10%", 4, 0.10),  # exact: every count <= 3
    ("19.999%", 4, 0.10),
    ("20%", 11, 0.20),
    ("99.99%", 11, 0.20),  # more than all but the most frequent token carry: everything but it
    (5, 5, 0.10),  # a count is itself
    ("10", 10, 0.10),
]


@pytest.mark.parametrize("spec, count, data_share", SHARE_CASES, ids=[str(case[0]) for case in SHARE_CASES])
def test_a_share_resolves_to_the_count_that_masks_closest_without_exceeding_it(spec, count, data_share):
    from wldetect.steps.masking import resolve_threshold

    resolved = resolve_threshold(spec, SHARE_COUNTS)
    assert resolved.count == count and resolved.masked_data_share == pytest.approx(data_share)
    assert resolved.masked_vocab_share == pytest.approx(float((SHARE_COUNTS < count).mean()))
    assert resolved.share_spec == (spec if isinstance(spec, str) and spec.endswith("%") else None)
    # never above the share asked, and the next count value up would be
    if resolved.share_spec:
        asked = float(spec[:-1]) / 100
        assert resolved.masked_data_share <= asked
        larger = SHARE_COUNTS[SHARE_COUNTS >= count]
        assert SHARE_COUNTS[SHARE_COUNTS <= larger.min()].sum() / SHARE_COUNTS.sum() > asked
        assert resolved.label == f"{spec} -> threshold {count}"
    np.testing.assert_array_equal(mask_from_counts(SHARE_COUNTS, spec), SHARE_COUNTS >= count)


def test_a_share_on_counts_without_unseen_tokens_may_mask_nothing():
    from wldetect.steps.masking import resolve_threshold

    counts = np.array([5, 5, 90])
    assert [resolve_threshold(s, counts).count for s in ("0%", "9.99%", "10%", "99%")] == [0, 0, 6, 6]
    with pytest.raises(WLDetectError, match=r"^threshold 1%: the token counts hold no tokens"):
        resolve_threshold("1%", np.zeros(4, dtype=np.int64))


def test_share_specs_are_canonical_and_bad_ones_are_one_line_errors():
    assert [parse_threshold(t) for t in ("1%", " 1.50 % ", "0.0025%", "0%", ".5%", "10.0")] == ["1%", "1.5%", "0.0025%", "0%", "0.5%", 10]
    for bad, why in [("1%%", ""), ("-1%", " (negative)"), ("abc", ""), ("100%", " (a share must be below 100%"),
                     ("1e-3%", ""), ("%", ""), ("0.5", " (a share of the training tokens is written with %)")]:  # fmt: skip
        with pytest.raises(WLDetectError) as error:
            parse_threshold(bad)
        assert str(error.value).startswith(f"threshold must be {FORMS}, got {bad!r}{why}") and "\n" not in str(error.value)


def test_the_threshold_table_names_the_share_and_the_seed_row():
    table = threshold_table(SHARE_COUNTS, [1, "2%", 5], seed_row=True)
    assert list(table["measured_on"]) == ["these counts"] * 3 + ["seed (Gemma3-27B on OpenLID-v2)"]
    assert list(table["threshold"]) == [1, 2, 5, 10] and list(table["threshold_share"]) == ["", "2%", "", ""]
    assert list(table["training_data_masked_pct"]) == pytest.approx([0.0, 2.0, 10.0, 0.0025])
    assert list(table["tokens_masked_pct"])[-1] == 29.28 and list(table["below_0.01pct"]) == [True, False, False, True]


def test_create_mask_cli_with_a_share_writes_the_resolved_mask_and_a_record_naming_both(tmp_path, monkeypatch, capsys):
    import json

    from wldetect.cli import main

    np.save(tmp_path / "counts.npy", SHARE_COUNTS)
    for threshold, output in (("4%", "share.npy"), ("3", "count.npy")):
        argv = ["wldetect", "create-mask", "--token-counts", str(tmp_path / "counts.npy"), "--threshold", threshold,
                "--output", str(tmp_path / output)]  # fmt: skip
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 0
    out = capsys.readouterr().out
    np.testing.assert_array_equal(np.load(tmp_path / "share.npy"), np.load(tmp_path / "count.npy"))
    assert "Threshold:              count >= 3 (resolved from 4% of the training tokens)" in out
    assert "seed (Gemma3-27B on OpenLID-v2), threshold 10: 29.28 % of vocabulary, 0.0025 % of tokens" in out
    record = json.loads((tmp_path / "share.json").read_text())
    assert (record["threshold"], record["threshold_share"]) == (3, "4%")
    assert record["occurrences_masked_fraction"] == pytest.approx(0.04) and record["tokens_masked"] == 4
    assert json.loads((tmp_path / "count.json").read_text())["threshold_share"] is None


def test_a_mask_file_brings_its_threshold_and_share_into_the_training_record(tmp_path):
    """Training from step 2's mask file: the mask record (mask_stats.json) names `4% -> threshold 3` because the
    file's record says so, and only while that record describes these very bits."""
    from types import SimpleNamespace

    from wldetect.steps.masking import resolve_mask

    counts_path = tmp_path / "token_counts.npy"
    np.save(counts_path, SHARE_COUNTS)
    corpus = SimpleNamespace(token_counts_file=lambda: (counts_path, SHARE_COUNTS))
    config = SimpleNamespace(training=SimpleNamespace(token_mask_path=None))
    create_mask(counts_path, "4%", tmp_path / "token_mask.npy", verbose=False)
    record = resolve_mask(config, corpus, tmp_path / "token_mask.npy").record()
    assert (record["threshold"], record["threshold_share"], record["tokens_masked"]) == (3, "4%", 4)
    from_threshold = resolve_mask(config, corpus, threshold="4%")
    assert from_threshold.record()["threshold_share"] == "4%" and "4% -> threshold 3" in from_threshold.source
    np.save(tmp_path / "token_mask.npy", SHARE_COUNTS >= 4)  # another mask under the same name: its record is stale
    record = resolve_mask(config, corpus, tmp_path / "token_mask.npy").record()
    assert (record["threshold"], record["threshold_share"]) == (10, None)  # inferred from the bits, no share claimed


def test_one_decision_makes_the_mask_training_starts_from(tmp_path, capsys):
    """`resolve_mask` is the one rule `train`, notebook 03, `wldetect train` and a sweep follow: threshold 0 and
    None are one path (the config's `training.token_mask_path`, else no mask), a threshold above 0 makes the
    mask from step 1's counts (written with its record when `output` is given), and a mask file asked together
    with a threshold must be that threshold's mask."""
    import json
    from types import SimpleNamespace

    from wldetect.steps.count_files import TokenCounts
    from wldetect.steps.masking import MaskInfo, resolve_mask

    counts_path = tmp_path / "token_counts.npy"
    np.save(counts_path, SHARE_COUNTS)
    step1 = TokenCounts(SHARE_COUNTS, None, [], counts_path, None, None, tmp_path / "ids", 8, False)
    config = SimpleNamespace(training=SimpleNamespace(token_mask_path=None))
    assert resolve_mask(config, step1) is None and resolve_mask(config, step1, threshold=0) is None
    assert resolve_mask(config, step1, threshold="0") is None

    create_mask(counts_path, 3, tmp_path / "t3.npy", verbose=False)
    configured = SimpleNamespace(training=SimpleNamespace(token_mask_path=tmp_path / "t3.npy"))
    for asked in (None, 0):  # nothing asked: the config's mask, with its record's threshold
        mask = resolve_mask(configured, step1, threshold=asked)
        assert (mask.path, mask.threshold, mask.tokens_masked) == (tmp_path / "t3.npy", 3, 4)
    assert resolve_mask(configured, step1, threshold=2).threshold == 2  # asked: the threshold, not the config's

    made = resolve_mask(config, step1, threshold="4%", output=tmp_path / "run" / "token_mask.npy")
    assert "count >= 3 (resolved from 4% of the training tokens)" in capsys.readouterr().out  # step 2's report
    assert (made.path, made.threshold, made.share_spec) == (tmp_path / "run" / "token_mask.npy", 3, "4%")
    np.testing.assert_array_equal(np.load(made.path), SHARE_COUNTS >= 3)
    assert json.loads((tmp_path / "run" / "token_mask.json").read_text())["threshold_share"] == "4%"

    plain = tmp_path / "plain.npy"
    np.save(plain, SHARE_COUNTS >= 3)  # step 2's bits without a record: the threshold asked names them
    both = resolve_mask(config, step1, plain, "4%")
    assert (both.path, both.threshold, both.share_spec) == (plain, 3, "4%")
    assert resolve_mask(config, step1, plain, 0).threshold is None  # no threshold asked: inferred later
    with pytest.raises(WLDetectError, match=r"not the threshold 2 mask of these counts \(1 tokens differ\); .*not both"):
        resolve_mask(config, step1, plain, 2)
    decided = MaskInfo(SHARE_COUNTS >= 3, "(array)", SHARE_COUNTS)
    assert resolve_mask(config, step1, decided) is decided  # a mask decided already passes through
    with pytest.raises(WLDetectError, match="3 entries, but the vocab size is 8"):
        resolve_mask(config, step1, np.ones(3, dtype=bool))


@pytest.mark.parametrize("value", ["1%", "0.0025%", 10, "0"])
def test_p_threshold_accepts_a_share(value):
    from wldetect.workflow.notebooks import check_parameters

    check_parameters("03_train", {"threshold": value})
    check_parameters("02_create_mask", {"threshold": value, "thresholds": [1, value]})


@pytest.mark.parametrize("value", ["1%%", "-1%", "abc", "100%", "-3"])
def test_p_threshold_refuses_a_bad_share_before_any_run_record(tmp_path, monkeypatch, capsys, value):
    from wldetect.cli import main

    monkeypatch.setenv("WLDETECT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(sys, "argv", ["wldetect", "run", "03_train", "-p", "threshold", value])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    shown = repr(value) if value != "-3" else "-3"  # YAML reads -3 as the number
    assert err.startswith(f"error: -p threshold {shown}: expected a whole number >= 0 (0: no mask) or a share")
    assert not (tmp_path / "runs").exists()


def test_a_share_threshold_names_the_run_and_the_manifest_gets_its_count(tmp_path):
    from wldetect.workflow.runs import create_run, list_runs

    run = create_run("sweep", kind="03_train", parameters={"threshold": "0.0025%"}, threshold="0.0025%", root=tmp_path)
    assert run.run_id.endswith("-sweep-t0.0025pct")
    manifest = run.manifest()
    assert (manifest["threshold"], manifest["threshold_share"]) == (None, "0.0025%")
    run.record_threshold(1, "0.0025%")
    table = list_runs(tmp_path)
    assert (table.loc[0, "threshold"], table.loc[0, "threshold_share"]) == (1, "0.0025%")


def test_a_sweep_resolves_its_share_thresholds_on_the_count_run_before_training(tiny_training_config, tmp_path, monkeypatch, capsys):
    """`wldetect sweep --thresholds 0,11,<share>`: the share is resolved on the count run's counts before any
    training run starts (printed with the other threshold that masks the same tokens), and the training run
    is asked for the share itself, so its record names both; its run id reads `-t<share>pct`."""
    from wldetect.cli import main
    from wldetect.config import load_training_config
    from wldetect.steps.counting import count_tokens
    from wldetect.steps.masking import resolve_threshold
    from wldetect.workflow import notebooks
    from wldetect.workflow.runs import list_runs

    monkeypatch.setenv("WLDETECT_RUNS_DIR", str(tmp_path / "runs"))
    counts = count_tokens(load_training_config(tiny_training_config), verbose=False).counts
    total = int(counts.sum())
    carried = 100 * int(counts[counts < 11].sum()) / total  # the share threshold 11 masks, rounded up a little
    share = f"{math.ceil(carried * 1e6) / 1e6:.6f}%"
    assert 0 < carried and resolve_threshold(share, counts).count == 11
    executed = []

    def execute_without_a_kernel(run, name, parameters, *, raise_on_failure=True, env=None):
        """Step 1 really counts (its files are what the sweep resolves against); the kernels themselves are the
        slow tests' business."""
        executed.append((name, parameters))
        if name == "01_count_tokens":
            count_tokens(load_training_config(parameters["config"]), output=run.path / "token_counts.npy", verbose=False)
        run.finish()
        return run

    monkeypatch.setattr(notebooks, "execute_into_run", execute_without_a_kernel)
    argv = ["wldetect", "sweep", "--config", str(tiny_training_config), "--thresholds", f"0,11,{share}", "--name", "s"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as stopped:
        main()
    out = capsys.readouterr().out
    assert stopped.value.code == 0
    resolved = resolve_threshold(share, counts)
    expected = (
        f"sweep: {share} -> threshold 11: {100 * resolved.masked_vocab_share:.2f} % of vocabulary, "
        f"{100 * resolved.masked_data_share:.4f} % of tokens (the same mask as 11)"
    )
    assert expected in out.splitlines()
    assert [p["threshold"] for name, p in executed if name == "03_train"] == [0, 11, share]
    table = list_runs(tmp_path / "runs")
    trained = table[table["kind"] == "03_train"]
    assert sum(run_id.endswith(f"-s-t{share[:-1]}pct") for run_id in trained["run_id"]) == 1


@pytest.mark.slow
def test_steps_2_and_3_take_a_share_threshold_and_every_record_names_both(tmp_path_factory):
    """The notebooks end to end on the tiny project: step 2 with `threshold = "<share>%"` resolves it on step 1's
    counts (manifest, metrics, the mask's record, the threshold table beside the seed's row), and step 3 given
    step 2's mask and the same share checks the mask against it and trains a model whose mask_stats.json
    names both."""
    import json

    import nbformat
    from conftest import evaluate_on_text_directory, module_tiny_project

    from wldetect.steps.count_files import load_counts
    from wldetect.workflow import notebooks
    from wldetect.workflow.runs import project_root

    root = tmp_path_factory.mktemp("share-notebooks")
    with module_tiny_project(root) as (config_path, _, patch):
        evaluate_on_text_directory(root, config_path)
        patch.setenv("WLDETECT_RUNS_DIR", str(root / "runs"))
        patch.setenv("WLDETECT_PROJECT_ROOT", str(project_root()))
        config = str(config_path)
        counted = notebooks.run_notebook("01_count_tokens", {"config": config})
        counts = load_counts(counted.path).counts
        share = f"{math.ceil(100 * int(counts[counts < 11].sum()) / int(counts.sum()) * 1e6) / 1e6:.6f}%"
        common = {"config": config, "count_run": str(counted.path), "threshold": share}
        notebooks.check_parameters("02_create_mask", common)
        mask_run = notebooks.run_notebook("02_create_mask", common)
        trained = notebooks.run_notebook("03_train", {**common, "token_mask": str(mask_run.path / "token_mask.npy")})

    for run in (mask_run, trained):
        manifest = run.manifest()
        assert manifest["status"] == "completed" and (manifest["threshold"], manifest["threshold_share"]) == (11, share)
        assert run.run_id.endswith(f"-t{share[:-1]}pct")
    assert mask_run.manifest()["metrics"]["threshold_share"] == share
    assert json.loads((mask_run.path / "token_mask.json").read_text())["threshold_share"] == share
    record = json.loads((trained.artifacts_dir / "mask_stats.json").read_text())
    assert (record["threshold"], record["threshold_share"]) == (11, share)
    outputs = {}
    for run, name in ((mask_run, "02_create_mask"), (trained, "03_train")):
        book = nbformat.read(str(run.path / f"{name}.ipynb"), as_version=4)
        outputs[name] = json.dumps([o for c in book.cells if c.cell_type == "code" for o in c.outputs])
    assert f"count >= 11 (resolved from {share} of the training tokens)" in outputs["02_create_mask"]
    assert "seed (Gemma3-27B on OpenLID-v2)" in outputs["02_create_mask"]  # the threshold table's seed row
    assert f"{share} -> threshold 11" in outputs["03_train"]
