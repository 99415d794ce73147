"""Training data: local files and hub-layout directories through `datasets`, filtered exactly as documented."""

import json
from pathlib import Path

import pandas as pd
import pytest

from wldetect.config import DatasetConfig
from wldetect.errors import WLDetectError
from wldetect.sources.data import prepare_training_dataset

LANGUAGES = ["eng_Latn", "fra_Latn", "deu_Latn"]


def _rows() -> list[dict]:
    rows = [{"text": f"english sentence {i}", "language": "eng_Latn"} for i in range(50)]
    rows += [{"text": f"phrase française {i}", "language": "fra_Latn"} for i in range(20)]
    rows += [{"text": f"deutscher satz {i}", "language": "deu_Latn"} for i in range(5)]
    rows += [{"text": f"frase española {i}", "language": "spa_Latn"} for i in range(7)]  # not a model language
    rows += [{"text": "   ", "language": "eng_Latn"}, {"text": "", "language": "fra_Latn"}, {"text": None, "language": "eng_Latn"}]
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_filtering_invalid_texts_and_report(tmp_path, capsys):
    path = _write_jsonl(tmp_path / "train.jsonl", _rows())
    data = prepare_training_dataset(DatasetConfig(name=str(path)), LANGUAGES)
    report = data.report
    assert (report.loaded, report.invalid_texts, report.in_languages, report.final) == (85, 3, 75, 75)
    assert report.per_language == {"eng_Latn": 50, "fra_Latn": 20, "deu_Latn": 5}
    printed = capsys.readouterr().out
    assert "Kept 75 / 85 examples in the configured languages" in printed
    assert "Skipped 3 examples without usable text (1 null, 2 empty)" in printed
    assert "Dropped 7 examples in languages not in the model config (spa_Latn)" in printed
    assert (report.null_texts, report.non_string_texts, report.empty_texts) == (1, 0, 2)
    texts = data.texts(0, len(data))
    languages = data.dataset[:]["language"]
    assert all(LANGUAGES[label] == code for label, code in zip(data.labels, languages))
    assert all(t.strip() for t in texts)


def test_min_cap_balance_and_seeded_shuffle(tmp_path, capsys):
    path = _write_jsonl(tmp_path / "train.jsonl", _rows())
    config = DatasetConfig(name=str(path), min_samples_per_language=10, max_samples_per_language=30, shuffle_seed=5)
    data = prepare_training_dataset(config, LANGUAGES)
    assert data.report.per_language == {"eng_Latn": 30, "fra_Latn": 20}
    assert data.report.dropped_languages == {"deu_Latn": 5}
    assert "Warning: dropped deu_Latn: 5 examples < min_samples_per_language" in capsys.readouterr().out
    again = prepare_training_dataset(config, LANGUAGES, verbose=False)
    assert again.texts(0, len(again)) == data.texts(0, len(data))  # same seed, same order
    other = prepare_training_dataset(config.model_copy(update={"shuffle_seed": 6}), LANGUAGES, verbose=False)
    assert other.texts(0, len(other)) != data.texts(0, len(data))
    assert sorted(other.texts(0, len(other))) != sorted(data.texts(0, len(data)))  # a different English sample of 30

    balanced = prepare_training_dataset(config.model_copy(update={"balance_languages": True}), LANGUAGES, verbose=False)
    assert balanced.report.per_language == {"eng_Latn": 20, "fra_Latn": 20}


def test_unfiltered_unknown_languages_are_an_error(tmp_path):
    path = _write_jsonl(tmp_path / "train.jsonl", _rows())
    with pytest.raises(WLDetectError, match="languages not in the model config: spa_Latn"):
        prepare_training_dataset(DatasetConfig(name=str(path), filter_languages=False), LANGUAGES)


def test_parquet_csv_and_renamed_columns(tmp_path):
    frame = pd.DataFrame(_rows()[:75]).rename(columns={"text": "sentence", "language": "lang"})
    frame.to_parquet(tmp_path / "train.parquet")
    frame.to_csv(tmp_path / "train.csv", index=False)
    for name in ["train.parquet", "train.csv"]:
        config = DatasetConfig(name=str(tmp_path / name), text_column="sentence", language_column="lang")
        data = prepare_training_dataset(config, LANGUAGES, verbose=False)
        assert data.dataset.column_names == ["text", "language"]
        assert len(data) == 75
    with pytest.raises(WLDetectError, match="column 'text' not found \\(columns: sentence, lang\\)"):
        prepare_training_dataset(DatasetConfig(name=str(tmp_path / "train.parquet")), LANGUAGES)


def test_hub_layout_directory_with_splits_goes_through_load_dataset(tmp_path):
    """OpenLID-v2 on the hub is parquet under data/; a local copy of that layout loads the named split."""
    (tmp_path / "openlid" / "data").mkdir(parents=True)
    pd.DataFrame(_rows()[:75]).to_parquet(tmp_path / "openlid" / "data" / "train-00000-of-00001.parquet")
    pd.DataFrame(_rows()[:10]).to_parquet(tmp_path / "openlid" / "data" / "validation-00000-of-00001.parquet")
    data = prepare_training_dataset(DatasetConfig(name=str(tmp_path / "openlid")), LANGUAGES, verbose=False)
    assert len(data) == 75
    val = prepare_training_dataset(DatasetConfig(name=str(tmp_path / "openlid"), split="validation"), LANGUAGES, verbose=False)
    assert len(val) == 10
    with pytest.raises(WLDetectError, match="split test"):
        prepare_training_dataset(DatasetConfig(name=str(tmp_path / "openlid"), split="test"), LANGUAGES)


def test_unsupported_file_type(tmp_path):
    (tmp_path / "train.xlsx").write_text("x")
    with pytest.raises(WLDetectError, match="unsupported data file type"):
        prepare_training_dataset(DatasetConfig(name=str(tmp_path / "train.xlsx")), LANGUAGES)


# ------------------------------------------------------------------------------ bad rows, empty data (issue 13)


def test_one_non_string_text_drops_only_its_row(tmp_path, capsys):
    """A number or a list among the texts makes `datasets` store the column as JSON; only those rows go."""
    rows = _rows() + [{"text": 5, "language": "eng_Latn"}, {"text": ["a", "list"], "language": "fra_Latn"}]
    rows += [{"text": " \u00a0\u3000\n", "language": "eng_Latn"}, {"text": "中文 \"quoted\" \\", "language": "eng_Latn"}]
    path = _write_jsonl(tmp_path / "train.jsonl", rows)
    data = prepare_training_dataset(DatasetConfig(name=str(path)), LANGUAGES)
    report = data.report
    assert (report.null_texts, report.non_string_texts, report.empty_texts) == (1, 2, 3)
    assert (report.loaded, report.in_languages, report.final) == (89, 76, 76)
    assert report.per_language == {"eng_Latn": 51, "fra_Latn": 20, "deu_Latn": 5}
    assert "Skipped 6 examples without usable text (1 null, 2 non-string, 3 empty)" in capsys.readouterr().out
    texts = data.texts(0, len(data))
    assert all(isinstance(t, str) and t.strip() for t in texts)
    assert sorted(texts) == sorted([r["text"] for r in _rows()[:75]] + ['中文 "quoted" \\'])


def test_no_usable_examples_names_why_rows_were_dropped(tmp_path):
    rows = [{"text": None, "language": "eng_Latn"}] * 3 + [{"text": 7, "language": "eng_Latn"}] * 2
    rows += [{"text": "  ", "language": "fra_Latn"}]
    rows += [{"text": "some words", "language": "xx_Latn"}] * 30 + [{"text": "more words", "language": "yy_Latn"}] * 10
    path = _write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(WLDetectError) as raised:
        prepare_training_dataset(DatasetConfig(name=str(path)), LANGUAGES)
    assert str(raised.value) == (
        f"{path}: no usable examples of 46 rows: 3 rows with null text, 2 with non-string text, 1 with empty text, "
        "40 in languages not in the model config (xx_Latn, yy_Latn)"
    )


def test_no_language_with_enough_examples_is_an_error_naming_them(tmp_path):
    path = _write_jsonl(tmp_path / "train.jsonl", _rows())
    with pytest.raises(WLDetectError) as raised:
        prepare_training_dataset(DatasetConfig(name=str(path), min_samples_per_language=100), LANGUAGES)
    assert str(raised.value) == (
        f"{path}: no usable examples of 85 rows: 1 row with null text, 2 with empty text, 7 in languages not in the "
        "model config (spa_Latn), 75 in languages with fewer than min_samples_per_language examples "
        "(eng_Latn: 50, fra_Latn: 20, deu_Latn: 5)"
    )


@pytest.mark.parametrize("content", ["", "\n \n"])
def test_an_empty_jsonl_file_is_one_clear_line(tmp_path, content):
    path = tmp_path / "train.jsonl"
    path.write_text(content)
    with pytest.raises(WLDetectError) as raised:
        prepare_training_dataset(DatasetConfig(name=str(path)), LANGUAGES)
    assert str(raised.value) == f"{path}: empty file, no examples"


def test_a_header_only_csv_has_no_examples(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("text,language\n")
    with pytest.raises(WLDetectError, match="no examples"):
        prepare_training_dataset(DatasetConfig(name=str(path)), LANGUAGES)
    frame = pd.DataFrame({"text": pd.Series([], dtype=str), "language": pd.Series([], dtype=str)})
    frame.to_parquet(tmp_path / "train.parquet")
    with pytest.raises(WLDetectError) as raised:
        prepare_training_dataset(DatasetConfig(name=str(tmp_path / "train.parquet")), LANGUAGES)
    assert str(raised.value) == f"{tmp_path / 'train.parquet'}: no examples (the file has no rows)"


def test_language_codes_of_mixed_types_are_named_as_written(tmp_path):
    rows = _rows()[:75] + [{"text": "x y", "language": 3}, {"text": "z", "language": None}]
    path = _write_jsonl(tmp_path / "train.jsonl", rows)
    data = prepare_training_dataset(DatasetConfig(name=str(path)), LANGUAGES, verbose=False)
    assert len(data) == 75 and data.report.unknown_languages == ["3", "null"]
    with pytest.raises(WLDetectError, match="languages not in the model config: 3, null"):
        prepare_training_dataset(DatasetConfig(name=str(path), filter_languages=False), LANGUAGES)


def test_the_data_module_splits_no_user_text_with_splitlines():
    source = (Path(__file__).resolve().parents[1] / "wldetect" / "sources" / "data.py").read_text()
    assert ".splitlines(" not in source


def test_the_datasets_cache_is_the_tests_own_never_the_users(tmp_path, isolated_cache):
    import datasets

    path = _write_jsonl(tmp_path / "isolated.jsonl", _rows())
    loaded = datasets.load_dataset("json", data_files=str(path), split="train")
    assert loaded.cache_files and all(Path(f["filename"]).is_relative_to(isolated_cache) for f in loaded.cache_files)
    data = prepare_training_dataset(DatasetConfig(name=str(path)), LANGUAGES, verbose=False)
    assert all(Path(f["filename"]).is_relative_to(isolated_cache) for f in data.dataset.cache_files)


def _reference_selection(rows: list[dict], languages: list[str], caps_of, seed: int) -> list[int]:
    """The selection as it was computed before it was streamed (whole-column arrays, `Generator.permutation`):
    shuffle the usable rows, keep the first cap of each language in shuffled order."""
    import numpy as np

    labels = np.array([languages.index(r["language"]) if r["language"] in languages and isinstance(r["text"], str)
                       and r["text"].strip() else -1 for r in rows])  # fmt: skip
    candidates = np.flatnonzero(labels >= 0)
    shuffled = candidates[np.random.default_rng(seed).permutation(len(candidates))]
    caps = caps_of(np.bincount(labels[candidates], minlength=len(languages)))
    seen = np.zeros(len(languages), dtype=np.int64)
    kept = []
    for row in shuffled:
        if seen[labels[row]] < caps[labels[row]]:
            kept.append(int(row))
            seen[labels[row]] += 1
    return kept


@pytest.mark.parametrize(
    "settings, caps_of",
    [
        ({}, lambda n: n),
        ({"max_samples_per_language": 7}, lambda n: n.clip(max=7)),
        ({"balance_languages": True, "min_samples_per_language": 10}, lambda n: (n >= 10) * n[n >= 10].min()),
    ],
)
def test_the_selection_is_the_same_for_any_chunk_size_and_as_before_it_was_streamed(tmp_path, settings, caps_of):
    """Streaming the filtering, the shuffle and the caps in chunks changes memory only: every chunk size
    gives the examples, order and labels of one whole-column pass (the pre-streaming algorithm)."""
    rows = _rows() * 3 + [{"text": 5, "language": "eng_Latn"}]  # a non-string text: a JSON column
    path = _write_jsonl(tmp_path / "train.jsonl", rows)
    config = DatasetConfig(name=str(path), shuffle_seed=3, **settings)
    expected = _reference_selection(rows, LANGUAGES, caps_of, seed=3)
    results = [prepare_training_dataset(config, LANGUAGES, verbose=False, chunk_rows=size) for size in (1, 7, 64, 10**6)]
    for data in results:
        assert data.dataset["text"] == [rows[i]["text"] for i in expected]
        assert [LANGUAGES[label] for label in data.labels] == [rows[i]["language"] for i in expected]
        assert data.report == results[-1].report
    assert results[-1].report.null_texts == 3 and results[-1].report.non_string_texts == 1
    assert results[-1].report.unknown_languages == ["spa_Latn"] and results[-1].report.unknown_language_rows == 21


def test_the_selection_keeps_no_python_object_per_row(tmp_path):
    """What stays after the selection is one uint64 index per row in Arrow (the indices mapping) and one
    small integer label per row: `Dataset.select` held a Python list of every index on the way (~40 B/row)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 200_000
    codes = np.array(LANGUAGES)[np.arange(n) % 3]
    pq.write_table(pa.table({"text": [f"s {i}" for i in range(n)], "language": codes}), tmp_path / "t.parquet")
    data = prepare_training_dataset(DatasetConfig(name=str(tmp_path / "t.parquet")), LANGUAGES, verbose=False, chunk_rows=4096)
    assert data.labels.dtype == np.int8 and len(data) == n
    assert data.dataset._indices.column(0).type == pa.uint64()
    assert sorted(data.dataset._indices.column(0).to_numpy()) == list(range(n))  # every row once, shuffled
    assert data.dataset[:3]["language"] == [LANGUAGES[label] for label in data.labels[:3]]
