"""The NumPy-only detector: same answers as the torch model, vectorised pooling, API, CLI, no torch import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    TINY_EXTRA_ROWS,
    TINY_LANGUAGES,
    counted_token_ids,
    module_tiny_project,
    tiny_sentences,
    tiny_vocabulary,
)
from safetensors.numpy import load_file
from typer.testing import CliRunner

from wldetect.cli import app
from wldetect.detect import TablePooler, WLDetect
from wldetect.errors import WLDetectError
from wldetect.steps.model import LanguageDetectionModel, pool_padded

REPO = Path(__file__).resolve().parent.parent
V = len(tiny_vocabulary()) + TINY_EXTRA_ROWS


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained without a mask (module-scoped: one ~1 s training run for all tests here)."""
    from wldetect.config import load_training_config
    from wldetect.steps.training import train

    root = tmp_path_factory.mktemp("detect-project")
    with module_tiny_project(root) as (config, embeddings, _):
        config = load_training_config(config, {"training.epochs": 8})  # well trained: the answers below are clear
        result = train(config, output_dir=root / "artifacts", token_ids=counted_token_ids(config), verbose=False)
        yield {"root": root, "artifacts": result.artifacts_dir, "embeddings": embeddings}


def held_out_texts():
    return [text for code in TINY_LANGUAGES for text in tiny_sentences(code, 30, seed=7)] + [
        "the chat sur der matte",  # mixed languages: close calls
        "le cat",
    ]


def torch_model_from_artifacts(directory: Path, embeddings: np.ndarray, pooling: str = "logsumexp"):
    projection = load_file(str(directory / "projection.safetensors"))
    model = LanguageDetectionModel(torch.from_numpy(embeddings), 3, dropout=0.1, pooling=pooling)
    model.load_state_dict({key: torch.from_numpy(value) for key, value in projection.items()})
    return model.eval()


def load_with_pooling(directory: Path, table: str, pooling: str) -> WLDetect:
    """The detector of `directory` with `pooling` instead of the one its model config names."""
    loaded = WLDetect.load(directory, table=table)
    return WLDetect(
        loaded.pooler.source,
        loaded.languages,
        loaded.tokenizer,
        pooling=pooling,
        max_sequence_length=loaded.max_sequence_length,
        table_format=table,
    )


@pytest.mark.parametrize("pooling", ["logsumexp", "max", "average"])
def test_detector_agrees_with_the_torch_model(trained, pooling):
    """The trained artifacts' table pooled by the detector equals the torch model's logits, for every pooling
    (the model is trained with logsumexp; the table is per-token logits, so any pooling can be applied to it,
    and the demo ships `average`)."""
    texts = held_out_texts()
    detector = load_with_pooling(trained["artifacts"], "fp32", pooling)
    encoded_ids = [detector.tokenizer.encode(t, add_special_tokens=False).ids for t in texts]
    longest = max(map(len, encoded_ids))
    ids = torch.zeros(len(texts), longest, dtype=torch.long)
    mask = torch.zeros(len(texts), longest, dtype=torch.bool)
    for i, row in enumerate(encoded_ids):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = True
    model = torch_model_from_artifacts(trained["artifacts"], trained["embeddings"], pooling)
    with torch.no_grad():
        torch_logits = model(ids, mask).numpy()
    logits, has_tokens = detector.pooled_logits(texts)
    assert has_tokens.all()
    np.testing.assert_allclose(logits, torch_logits, rtol=1e-4, atol=1e-4)
    torch_languages = [TINY_LANGUAGES[i] for i in torch_logits.argmax(axis=1)]
    assert [p[0] for p in detector.predict(texts)] == torch_languages
    e3m4 = load_with_pooling(trained["artifacts"], "e3m4", pooling)
    agreement = np.mean([p[0] == q for p, q in zip(e3m4.predict(texts), torch_languages)])
    assert agreement >= 0.95
    accuracy = np.mean([p[0] == code for p, code in zip(e3m4.predict(texts[:90]), np.repeat(TINY_LANGUAGES, 30))])
    assert accuracy > 0.9


@pytest.mark.parametrize("pooling", ["logsumexp", "max", "average"])
def test_vectorised_pooling_equals_the_torch_pooling(pooling):
    rng = np.random.default_rng(0)
    table = (rng.standard_normal((40, 5)) * 6).astype(np.float32)
    table[7] = -150.0  # a token far below every other: the logsumexp fast path must fall back, not underflow
    lengths = np.array([4, 0, 1, 7, 3, 0, 2])
    ids = rng.integers(0, 40, lengths.sum())
    ids[5:12] = 7  # one text made only of that token
    pooled = TablePooler(table, pooling)(ids, lengths)
    padded = np.zeros((len(lengths), lengths.max()), dtype=np.int64)
    mask = np.arange(lengths.max())[None, :] < lengths[:, None]
    padded[mask] = ids
    expected = pool_padded(torch.from_numpy(table)[torch.from_numpy(ids)], torch.from_numpy(mask), pooling).numpy()
    np.testing.assert_allclose(pooled, expected, rtol=1e-5, atol=1e-4)
    assert np.all(pooled[[1, 5]] == 0) and np.isfinite(pooled).all()


def test_predict_single_list_empty_and_top_k(trained):
    detector = WLDetect.load(trained["artifacts"])
    language, confidence = detector.predict("the cat sat on the mat with a big red ball")
    assert language == "eng_Latn" and 0 < confidence <= 1
    results = detector.predict(["le chat est sur le tapis", "", "   ", "die katze sitzt auf der matte"])
    assert results[0][0] == "fra_Latn" and results[1] is None and results[2] is None
    assert results[3][0] == "deu_Latn"
    top = detector.predict("le chien court", top_k=2)
    assert len(top) == 2 and top[0][0] == "fra_Latn" and top[0][1] >= top[1][1]
    assert detector.predict("le chien court", top_k=10)[0] == top[0] and len(detector.predict("le y", top_k=10)) == 3
    assert detector.predict(["", "the dog"], top_k=1)[0] is None
    assert detector.predict([]) == []
    with pytest.raises(WLDetectError, match="top_k"):
        detector.predict("the dog", top_k=0)
    for table in ("e4m3fn", "fp32"):
        assert WLDetect.load(trained["artifacts"], table=table).predict("the dog ran home")[0] == "eng_Latn"


def test_load_errors_name_what_is_wrong(trained, tmp_path):
    with pytest.raises(WLDetectError, match="not an artifacts directory"):
        WLDetect.load(tmp_path / "nothing")
    with pytest.raises(WLDetectError, match="table 'fp16'"):
        WLDetect.load(trained["artifacts"], table="fp16")
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "model_config.yaml").write_text((trained["artifacts"] / "model_config.yaml").read_text())
    with pytest.raises(WLDetectError, match="tokenizer.json not found"):
        WLDetect.load(tmp_path / "partial")


def test_detection_never_imports_torch(trained):
    code = (
        "import sys, wldetect\n"
        "from wldetect import WLDetect\n"
        f"wld = WLDetect.load({str(trained['artifacts'])!r})\n"
        "print(wld.predict('the cat sat on the mat')[0], wld.predict(['le chat', ''], top_k=2)[1])\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'pandas', 'pydantic') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["eng_Latn", "None"]


def test_cli_detect_text_file_and_stdin(trained, tmp_path):
    runner = CliRunner()
    base = ["detect", "--model-path", str(trained["artifacts"])]
    result = runner.invoke(app, base + ["--text", "die katze sitzt auf der matte"])
    assert result.exit_code == 0, result.output
    language, confidence = result.output.strip().split("\t")
    assert language == "deu_Latn" and 0 < float(confidence) <= 1
    lines = tmp_path / "input.txt"
    lines.write_text("the dog ran home\n\nle chien court\n", encoding="utf-8")
    result = runner.invoke(app, base + ["--file", str(lines)])
    assert [line.split("\t")[0] for line in result.output.splitlines()] == ["eng_Latn", "und", "fra_Latn"]
    result = runner.invoke(app, base + ["--file", "-", "--top-k", "2"], input="le chat\n")
    assert result.output.split("\t")[0] == "fra_Latn" and len(result.output.split("\t")) == 4
    assert runner.invoke(app, base).exit_code != 0  # neither --text nor --file


def test_filter_lookup_zeroes_rare_tokens_without_retraining(trained, tmp_path):
    from wldetect.lookup import load_lookup_table

    artifacts = trained["artifacts"]
    counts = np.zeros(V, dtype=np.int64)
    counts[4:30] = 5
    counts[10:20] = 1
    counts_path = tmp_path / "token_counts.npy"
    np.save(counts_path, counts)
    output = tmp_path / "filtered"
    result = CliRunner().invoke(
        app,
        ["filter-lookup", "--model-path", str(artifacts), "--token-counts", str(counts_path), "--threshold", "2",
         "--output-dir", str(output)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    masked = counts < 2
    before = load_lookup_table(artifacts / "lookup_table_fp32.safetensors").values
    after = load_lookup_table(output / "lookup_table_fp32.safetensors").values
    bias = load_file(str(artifacts / "projection.safetensors"))["projection.bias"]
    np.testing.assert_array_equal(after[masked], np.tile(bias, (int(masked.sum()), 1)))
    np.testing.assert_array_equal(after[~masked], before[~masked])
    weights = load_file(str(output / "projection.safetensors"))["token_weights"].reshape(-1)
    assert np.all(weights[masked] == 0)
    np.testing.assert_array_equal(np.load(output / "token_mask.npy"), ~masked)
    stats = json.loads((output / "mask_stats.json").read_text())
    assert stats["mode"] == "post-hoc" and stats["threshold"] == 2 and stats["tokens_masked"] == int(masked.sum())
    quantization = json.loads((output / "quantization.json").read_text())
    assert quantization["formats"]["e3m4"]["non_finite_values"] == 0
    assert WLDetect.load(output).predict("the cat sat on the mat")[0] == "eng_Latn"
    assert not (artifacts / "token_mask.npy").exists()  # the source directory is left as it was

    np.save(counts_path, counts[:-1])
    bad = CliRunner().invoke(
        app,
        ["filter-lookup", "--model-path", str(artifacts), "--token-counts", str(counts_path), "--threshold", "2",
         "--output-dir", str(tmp_path / "bad")],
    )  # fmt: skip
    assert isinstance(bad.exception, WLDetectError) and "Token mask shape doesn't match vocab_size" in str(
        bad.exception
    )


# ------------------------------------------------------------------ one answer per text, whatever the path


def agreement_texts() -> list[str]:
    """A few hundred texts: sentences of every language, mixed ones, and texts without language evidence."""
    texts = [text for code in TINY_LANGUAGES for text in tiny_sentences(code, 100, seed=11)]
    texts += ["the chat sur der matte", "le cat", "der , . !", "", "   ", "!!! ???", "12 34", "🙂🙂", "[UNK]"]
    return texts * 2  # > 2 chunks of _MIN_TEXTS_PER_THREAD per thread below, and a group boundary inside


@pytest.mark.parametrize("pooling", ["logsumexp", "max", "average"])
def test_single_batch_one_and_many_threads_agree(trained, pooling):
    from tokenizers import Tokenizer

    from wldetect.lookup import load_lookup_table

    texts = agreement_texts()
    directory = trained["artifacts"]

    def detector(num_threads):
        table = load_lookup_table(directory / "lookup_table_fp8_e3m4.safetensors")
        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        return WLDetect(table, TINY_LANGUAGES, tokenizer, pooling=pooling, num_threads=num_threads)

    one, many = detector(1), detector(4)
    batch_one, batch_many = one.predict(texts), many.predict(texts)
    singles = [one.predict(text) for text in texts]
    for results in (batch_many, singles):
        assert [r and r[0] for r in results] == [r and r[0] for r in batch_one]
        np.testing.assert_allclose([r[1] for r in results if r], [r[1] for r in batch_one if r], rtol=1e-6, atol=0)
    assert sum(r is None for r in batch_one) == 2 * 6  # "", "   " and the four texts without evidence
    assert [one.predict(t, top_k=2) for t in texts[:50]] == one.predict(texts[:50], top_k=2)
    # the logits themselves are the same bits: alone, in a batch, on one thread or four
    logits, has_evidence = one.pooled_logits(texts)
    logits_many, has_evidence_many = many.pooled_logits(texts)
    np.testing.assert_array_equal(logits_many, logits)
    np.testing.assert_array_equal(has_evidence_many, has_evidence)
    for text, row, evidence in zip(texts, logits, has_evidence):
        alone = one._pooled_logits_of_one(text)
        assert (alone is not None) == evidence, text
        if evidence:
            np.testing.assert_array_equal(alone, row)
    # truncation at max_sequence_length is the same for one text and for a list
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    table = load_lookup_table(directory / "lookup_table_fp8_e3m4.safetensors")
    short = WLDetect(table, TINY_LANGUAGES, tokenizer, pooling=pooling, max_sequence_length=4, num_threads=2)
    long_texts = [" ".join(texts[i : i + 6]) for i in range(0, 300, 6)]  # sentences only: evidence in any 4 tokens
    np.testing.assert_array_equal(
        np.stack([short._pooled_logits_of_one(text) for text in long_texts]), short.pooled_logits(long_texts)[0]
    )
    first_four = [" ".join(tokenizer.encode(text, add_special_tokens=False).tokens[:4]) for text in long_texts]
    assert [r[0] for r in short.predict(long_texts)] == [r[0] for r in short.predict(first_four)]


@pytest.mark.parametrize("pooling", ["logsumexp", "max", "average"])
@pytest.mark.parametrize("n_languages", [1, 3, 149])
def test_a_text_pools_to_the_same_bits_alone_and_in_any_batch(pooling, n_languages):
    """`pool_one` and `pool_in_groups` (sorted, padded groups) give every text the same bits, whatever the
    batch, its order and the group the text lands in; one language (two columns) and 149 included."""
    rng = np.random.default_rng(n_languages)
    table = (rng.standard_normal((300, n_languages)) * 8).astype(np.float32)
    table[7] = -150.0  # logsumexp: a text made of this token only goes the exact way, alone and in a batch
    evidence = rng.random(300) > 0.2
    evidence[7] = True
    pooler = TablePooler(table, pooling, evidence)
    lengths = np.concatenate([rng.integers(1, 40, 300), rng.integers(200, 900, 6), [1, 2, 5]])
    ids = rng.integers(0, 300, int(lengths.sum()))
    starts = np.cumsum(lengths) - lengths
    ids[starts[-1] : starts[-1] + 5] = 7
    logits, has_evidence = pooler.pool_in_groups(ids, starts, lengths)
    order = rng.permutation(len(lengths))
    shuffled, shuffled_evidence = pooler.pool_in_groups(ids, starts[order], lengths[order])
    np.testing.assert_array_equal(shuffled, logits[order])
    np.testing.assert_array_equal(shuffled_evidence, has_evidence[order])
    some = pooler.pool_in_groups(ids, starts[::7], lengths[::7])[0]
    np.testing.assert_array_equal(some, logits[::7])
    for start, length, row, found in zip(starts, lengths, logits, has_evidence):
        alone = pooler.pool_one(ids[start : start + length].tolist())
        assert (alone is not None) == (found > 0)
        if alone is not None:
            np.testing.assert_array_equal(alone, row)
    assert np.isfinite(logits).all()


@pytest.mark.parametrize("setting", [None, "true", "false"])
def test_a_list_runs_without_the_tokenizers_own_threads_and_leaves_the_setting_alone(trained, monkeypatch, setting):
    """Each chunk is encoded with TOKENIZERS_PARALLELISM=false (num_threads is all the parallelism), and the
    variable is as the user left it afterwards: unset stays unset."""
    import wldetect.detect as detect_module

    if setting is None:
        monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    else:
        monkeypatch.setenv("TOKENIZERS_PARALLELISM", setting)
    seen = []
    original = detect_module.encode_texts

    def recording(tokenizer, texts):
        seen.append(os.environ.get("TOKENIZERS_PARALLELISM"))
        return original(tokenizer, texts)

    monkeypatch.setattr(detect_module, "encode_texts", recording)
    texts = agreement_texts()
    for num_threads in (1, 3):
        detector = WLDetect.load(trained["artifacts"], num_threads=num_threads)
        detector.predict(texts)
        with pytest.raises(WLDetectError, match="expected str"):
            detector.predict(texts + [7])
    assert len(seen) > 2 and set(seen) == {"false"}
    assert os.environ.get("TOKENIZERS_PARALLELISM") == setting


def test_num_threads_defaults_to_the_available_cores(trained):
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert WLDetect.load(trained["artifacts"]).num_threads == expected
    assert WLDetect.load(trained["artifacts"], num_threads=1).num_threads == 1
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(WLDetectError, match="num_threads must be a positive integer"):
            WLDetect.load(trained["artifacts"], num_threads=bad)


def test_no_answer_without_language_evidence(trained):
    detector = WLDetect.load(trained["artifacts"])
    for text in ("", "   \t ", "!!! ???", "12 34 56", "🙂 🎉", "[UNK]", "[CLS] [SEP]", "= + ( )"):
        assert detector.predict(text) is None, text
    for text in ("the cat sat on the mat", "le chien court !!!", "die katze 🙂", "12 chien"):
        assert detector.predict(text) is not None, text
    runner = CliRunner()
    lines = "\n".join(["the dog ran home", "🙂 !!!", "le chien court"]) + "\n"
    result = runner.invoke(app, ["detect", "--model-path", str(trained["artifacts"]), "--file", "-"], input=lines)
    assert [line.split("\t")[0] for line in result.output.splitlines()] == ["eng_Latn", "und", "fra_Latn"]


def test_evidence_rule_on_a_byte_fallback_sentencepiece_vocabulary():
    from tokenizers import AddedToken, Tokenizer, models

    from wldetect.detect import evidence_tokens

    vocabulary = ["<unk>", "<bos>", "<0xF0>", "<0x41>", "▁", "▁the", "##ing", "!", "42", "🙂", "é", "▁²"]
    vocabulary.append("<start>")
    bpe = models.BPE({t: i for i, t in enumerate(vocabulary)}, [], unk_token="<unk>", byte_fallback=True)
    tokenizer = Tokenizer(bpe)
    tokenizer.add_special_tokens([AddedToken("<bos>", special=True), AddedToken("<start>", special=True)])
    evidence = evidence_tokens(tokenizer, len(vocabulary) + 2)
    expected = {"▁the", "##ing", "é", "▁²"}  # a letter of some script (² is a word character, not a digit)
    assert {vocabulary[i] for i in np.flatnonzero(evidence)} == expected
    assert not evidence[len(vocabulary) :].any()
    with pytest.raises(WLDetectError, match="the tokenizer has 13 token ids but the lookup table only 12 rows"):
        evidence_tokens(tokenizer, 12)


def test_evidence_mask_is_the_letter_rule_token_by_token(monkeypatch):
    """The vectorised mask (code points, each distinct one tested once, blocks of tokens) says what a
    regular-expression search per token says, on tokens of many scripts, and across block boundaries."""
    import re

    from tokenizers import Tokenizer, models

    import wldetect.detect as detect_module

    tokens = ["<unk>", "▁", "▁the", "##ing", "!", "42", "٣", "½", "²", "🙂", "é", "中文", "ن", "Ω", "_", "a_b"]
    tokens += ["ǅ", "\u0301", "x\u0301", "\t", "·", "ⅷ", "𝒳", "e\u200d", "--", "๑", "ก", "ᄀ", "ー", "〇"]
    rng = np.random.default_rng(0)
    alphabet = [chr(c) for c in rng.integers(0x20, 0x2FFFF, 400) if not 0xD800 <= c < 0xE000]
    tokens += sorted({"".join(rng.choice(alphabet, int(rng.integers(1, 4)))) for _ in range(300)} - set(tokens))
    tokenizer = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="<unk>"))
    monkeypatch.setattr(detect_module, "_TOKENS_PER_EVIDENCE_BLOCK", 7)
    evidence = detect_module.evidence_tokens(tokenizer, len(tokens) + 3)
    expected = [bool(re.search(r"[^\W\d_]", t)) and t != "<unk>" for t in tokens] + [False] * 3
    assert evidence.tolist() == expected


# ------------------------------------------------------------------------------- bad input, one line each


def assert_one_line(error: pytest.ExceptionInfo, expected: str) -> None:
    assert str(error.value) == expected and "\n" not in str(error.value)


def test_bad_texts_are_one_line_errors(trained):
    detector = WLDetect.load(trained["artifacts"])
    for value, name in ((None, "NoneType"), (5, "int"), (b"le chat", "bytes"), (2.5, "float")):
        with pytest.raises(WLDetectError) as error:
            detector.predict(value)
        assert_one_line(error, f"predict expects a str or a list of str, got {name}")
    with pytest.raises(WLDetectError) as error:
        detector.predict(["the cat", 7])
    assert_one_line(error, "text 1: expected str, got int")
    with pytest.raises(WLDetectError) as error:
        detector.predict("\ud800")
    assert_one_line(error, "text 0: not valid Unicode (lone surrogate '\\ud800' at character 0)")
    with pytest.raises(WLDetectError) as error:
        detector.predict(["le chat", "the dog \udcff ran"])
    assert_one_line(error, "text 1: not valid Unicode (lone surrogate '\\udcff' at character 8)")
    with pytest.raises(WLDetectError) as error:
        detector.predict("the dog", top_k=True)
    assert_one_line(error, "top_k must be a positive integer, got True")
    command = [sys.executable, "-c", "from wldetect.cli import main; main()", "detect", "--model-path"]
    result = subprocess.run(  # argv that is not UTF-8 reaches Python as lone surrogates
        [*command, str(trained["artifacts"]).encode(), "--text", b"le chat \xff"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: text 0: not valid Unicode (lone surrogate '\\udcff' at character 8)"
    ]


def damaged_copy(trained, tmp_path, name: str, damage) -> Path:
    import shutil

    directory = tmp_path / name
    shutil.copytree(trained["artifacts"], directory, ignore=shutil.ignore_patterns("checkpoints"))
    damage(directory)
    return directory


def edit_inference(key, value):
    import yaml

    def damage(directory):
        config = yaml.safe_load((directory / "model_config.yaml").read_text())
        config["inference"][key] = value
        (directory / "model_config.yaml").write_text(yaml.safe_dump(config))

    return damage


def test_damaged_artifacts_fail_at_load_in_one_line(trained, tmp_path):
    from conftest import write_tokenizer_json

    table = "lookup_table_fp8_e3m4.safetensors"

    def truncate(directory):
        data = (directory / table).read_bytes()
        (directory / table).write_bytes(data[:-100])

    def bigger_vocabulary(directory):
        write_tokenizer_json(directory / "tokenizer.json", tiny_vocabulary() + [f"extra{i}" for i in range(9)])

    cases = {
        "corrupt-tokenizer": (
            lambda d: (d / "tokenizer.json").write_text("{not json"),
            "tokenizer.json: not a readable tokenizer (",
        ),
        "length-text": (edit_inference("max_sequence_length", "abc"),
                        "model_config.yaml: inference.max_sequence_length 'abc': expected a positive integer or null"),
        "length-zero": (edit_inference("max_sequence_length", 0),
                        "model_config.yaml: inference.max_sequence_length 0: expected a positive integer or null"),
        "length-bool": (edit_inference("max_sequence_length", True),
                        "model_config.yaml: inference.max_sequence_length True: expected a positive integer or null"),
        "pooling": (edit_inference("pooling", "median"),
                    "model_config.yaml: inference.pooling 'median': expected logsumexp, max or average"),
        "truncated-table": (truncate, f"{table}: not a readable safetensors file (tensor 'lookup_table' needs bytes"),
        "garbage-table": (lambda d: (d / table).write_bytes(b"\x00" * 64),
                          f"{table}: not a readable safetensors file (header length 0 in a file of 64 bytes)"),
        "bigger-vocabulary": (bigger_vocabulary,
                              f"the tokenizer has {V + 4} token ids but the lookup table only {V} rows"),
    }  # fmt: skip
    for name, (damage, expected) in cases.items():
        directory = damaged_copy(trained, tmp_path, name, damage)
        with pytest.raises(WLDetectError) as error:
            WLDetect.load(directory)
        assert expected in str(error.value) and "\n" not in str(error.value), (name, str(error.value))
        result = CliRunner().invoke(app, ["detect", "--model-path", str(directory), "--text", "the cat"])
        assert isinstance(result.exception, WLDetectError) and str(result.exception) == str(error.value)


def test_filter_lookup_takes_a_share_threshold(trained, tmp_path):
    """`--threshold 12%` on counts where the count-1 tokens carry 10 of 90 occurrences: threshold 2's mask, and
    the post-hoc record names both."""
    counts = np.zeros(V, dtype=np.int64)
    counts[4:30] = 5
    counts[10:20] = 1
    np.save(tmp_path / "token_counts.npy", counts)
    output = tmp_path / "filtered"
    result = CliRunner().invoke(
        app,
        ["filter-lookup", "--model-path", str(trained["artifacts"]), "--token-counts", str(tmp_path / "token_counts.npy"),
         "--threshold", "12%", "--output-dir", str(output)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(output / "token_mask.npy"), counts >= 2)
    stats = json.loads((output / "mask_stats.json").read_text())
    assert (stats["mode"], stats["threshold"], stats["threshold_share"]) == ("post-hoc", 2, "12%")


def test_corrupt_projection_is_one_line_in_filter_lookup(trained, tmp_path):
    directory = damaged_copy(
        trained, tmp_path, "bad-projection", lambda d: (d / "projection.safetensors").write_bytes(b"\x10" * 40)
    )
    counts = tmp_path / "counts.npy"
    np.save(counts, np.ones(V, dtype=np.int64))
    result = CliRunner().invoke(
        app,
        ["filter-lookup", "--model-path", str(directory), "--token-counts", str(counts), "--threshold", "1",
         "--output-dir", str(tmp_path / "out")],
    )  # fmt: skip
    assert isinstance(result.exception, WLDetectError), result.output
    assert "projection.safetensors: not a readable safetensors file (" in str(result.exception)
    assert "\n" not in str(result.exception)


def test_load_keeps_one_float32_copy_of_the_table(trained):
    detector = WLDetect.load(trained["artifacts"])
    float32_arrays = [a for a in vars(detector.pooler).values() if isinstance(a, np.ndarray) and a.ndim == 2]
    # one row per token and the padding row; a column per language and the evidence column
    assert [a.shape for a in float32_arrays] == [(V + 1, len(TINY_LANGUAGES) + 1)]
    assert isinstance(detector.pooler.source.stored, np.memmap)  # the stored table stays on disk
    # that one array holds what pooling needs, computed here from the file without the package's reader:
    # the E3M4 bytes as ml_dtypes floats times the stored scale, shifted by each column's max and
    # exponentiated (the fixture's pooling is logsumexp), plus the evidence column and the padding row
    import ml_dtypes
    from safetensors import safe_open

    with safe_open(str(trained["artifacts"] / "lookup_table_fp8_e3m4.safetensors"), "np") as table_file:
        scale = float(table_file.metadata()["scale"])
        stored = table_file.get_tensor("lookup_table")
    table = stored.view(ml_dtypes.float8_e3m4).astype(np.float32) * np.float32(scale)
    np.testing.assert_array_equal(detector.pooler.shift, table.max(axis=0))
    np.testing.assert_allclose(detector.pooler.rows[:-1, :-1], np.exp(table - table.max(axis=0)), rtol=1e-6)
    assert set(np.unique(detector.pooler.rows[:-1, -1])) <= {0.0, 1.0}
    np.testing.assert_array_equal(detector.pooler.rows[-1], np.zeros(len(TINY_LANGUAGES) + 1))


# ---------------------------------------------------------------------------------------- from_pretrained

REVISION = "0123456789abcdef0123456789abcdef01234567"


def write_hub_cache(artifacts: Path, cache: Path, repo: str = "owner/name") -> Path:
    """A Hugging Face hub cache holding the model's files as `snapshot_download` leaves them."""
    import shutil

    from wldetect.artifacts import MODEL_CONFIG_FILE, TOKENIZER_FILE
    from wldetect.lookup import FILE_NAMES

    root = cache / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    for name in (MODEL_CONFIG_FILE, TOKENIZER_FILE, FILE_NAMES["e3m4"], FILE_NAMES["fp32"]):
        shutil.copy(artifacts / name, snapshot / name)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(REVISION)
    return cache


def test_from_pretrained_reads_a_hub_cache_offline(trained, tmp_path):
    cache = write_hub_cache(trained["artifacts"], tmp_path / "hub")
    texts = agreement_texts()
    (tmp_path / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    code = (
        "import json, sys\n"
        "from wldetect import WLDetect\n"
        "from wldetect.errors import WLDetectError\n"
        "texts = json.loads(open(sys.argv[1], encoding='utf-8').read())\n"
        "out = {'e3m4': WLDetect.from_pretrained('owner/name').predict(texts),\n"
        "       'fp32': WLDetect.from_pretrained('owner/name', table='fp32', revision=sys.argv[2]).predict(texts)}\n"
        "try:\n"
        "    WLDetect.from_pretrained('owner/absent')\n"
        "except WLDetectError as error:\n"
        "    out['error'] = str(error)\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "texts.json"), REVISION],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    for table in ("e3m4", "fp32"):
        expected = WLDetect.load(trained["artifacts"], table=table).predict(texts)
        assert [r and r[0] for r in out[table]] == [r and r[0] for r in expected]
        np.testing.assert_allclose([r[1] for r in out[table] if r], [r[1] for r in expected if r], rtol=1e-6)
    assert out["error"].startswith("owner/absent: could not fetch the model from the hub (")
    assert "\n" not in out["error"]


def test_from_pretrained_local_directories_and_one_line_errors(trained, tmp_path, monkeypatch):
    texts = agreement_texts()[:40]
    expected = WLDetect.load(trained["artifacts"]).predict(texts)
    assert WLDetect.from_pretrained(trained["artifacts"]).predict(texts) == expected
    assert WLDetect.from_pretrained(str(trained["artifacts"]), num_threads=1).predict(texts) == expected
    for name in ("no-such-dir", "./owner/name", "a/b/c", tmp_path / "absent"):
        with pytest.raises(WLDetectError) as error:
            WLDetect.from_pretrained(name)
        assert_one_line(error, f"{name}: not a local directory and not a hub repo id (owner/name)")
    with pytest.raises(WLDetectError) as error:
        WLDetect.from_pretrained("owner/name", table="fp16")
    assert_one_line(error, "table 'fp16': expected one of e3m4, e4m3fn, fp32")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if the [hub] extra were not installed
    with pytest.raises(WLDetectError) as error:
        WLDetect.from_pretrained("owner/name")
    assert_one_line(error, "owner/name: loading from the hub needs huggingface_hub: pip install 'wldetect[hub]'")


# ------------------------------------------------------------- what people pass to predict, and how long


def test_predict_takes_any_iterable_of_texts_in_its_order(trained):
    import pandas as pd

    detector = WLDetect.load(trained["artifacts"])
    texts = held_out_texts()[:12]
    expected = detector.predict(texts)
    assert detector.predict(tuple(texts)) == expected
    assert detector.predict(text for text in texts) == expected  # a generator
    assert detector.predict(np.array(texts)) == expected  # numpy str_ entries
    assert detector.predict(np.array(texts, dtype=object)) == expected
    series = pd.Series(texts, index=range(100, 112), name="text")  # an index that is not 0..n-1
    assert detector.predict(series) == expected
    assert detector.predict(pd.DataFrame({"text": texts})["text"]) == expected
    assert detector.predict(series, top_k=2) == detector.predict(texts, top_k=2)


def test_predict_refuses_a_mapping_or_a_dataframe_in_one_line_naming_what_to_pass(trained):
    """Iterating a dict gives its keys and a DataFrame its column names: both used to be classified."""
    from collections import OrderedDict, UserDict

    import pandas as pd

    from wldetect.detect import InputTypeError

    detector = WLDetect.load(trained["artifacts"])
    for mapping in ({"a": "le chat est sur la table"}, OrderedDict(a="der Hund"), UserDict(a="the cat")):
        with pytest.raises(TypeError) as error:
            detector.predict(mapping)
        assert isinstance(error.value, WLDetectError) and isinstance(error.value, InputTypeError)
        assert_one_line(
            error,
            f"predict got a {type(mapping).__name__}: iterating it gives its keys, not texts; pass its texts, e.g. list(d.values())",
        )
    frame = pd.DataFrame({"text": ["le chat est sur la table", "der Hund ist im Haus"]})
    with pytest.raises(TypeError) as error:
        detector.predict(frame)
    assert_one_line(error, 'predict got a DataFrame: iterating it gives its column names; pass one column, e.g. df["text"]')
    with pytest.raises(TypeError, match="no order"):
        detector.predict({"le chat", "der Hund"})
    with pytest.raises(TypeError, match="2-dimensional ndarray: pass a 1-D array"):
        detector.predict(np.array([["le chat", "der Hund"]]))
    with pytest.raises(TypeError, match="0-dimensional ndarray"):
        detector.predict(np.array(["le chat"])[0, ...])


def test_a_20_mb_line_is_detected_as_its_prefix_quickly(trained):
    """The model reads `max_sequence_length` (32) tokens; a 20 MB line used to be tokenised whole first. Now
    it is cut at `max_characters` before tokenising: the answer is the prefix's, the same as truncating the
    tokens of the whole text, and it takes milliseconds."""
    import time

    detector = WLDetect.load(trained["artifacts"])
    french = " ".join(tiny_sentences("fra_Latn", 20, seed=3))  # well over 32 tokens of French
    german = " " + " ".join(tiny_sentences("deu_Latn", 200, seed=4))
    line = french + german * (20_000_000 // len(german))
    assert len(line) > 19_000_000 and 0 < detector.max_characters < 100_000
    prefix = line[: detector.max_characters]
    started = time.perf_counter()
    result = detector.predict(line)
    in_a_list = detector.predict([line, "der Hund ist im Haus"])
    seconds = time.perf_counter() - started
    assert result == detector.predict(prefix) and result[0] == "fra_Latn"
    assert in_a_list == detector.predict([prefix, "der Hund ist im Haus"])
    assert detector.predict(line, top_k=2) == detector.predict(prefix, top_k=2)
    assert seconds < 5.0, f"{seconds:.1f} s for a 20 MB line"
    # the tokens the model reads are those of the whole text, as the training's truncation gives them
    full = detector.tokenizer.encode(line[:1_000_000], add_special_tokens=False).ids
    assert detector.tokenizer.encode(prefix, add_special_tokens=False).ids == full[:32]


def test_a_model_that_reads_every_token_reads_every_character(trained):
    from wldetect.detect import character_bound

    detector = WLDetect.load(trained["artifacts"])
    unbounded = WLDetect(
        detector.pooler.source, detector.languages, detector.tokenizer, max_sequence_length=None, table_format="e3m4"
    )
    assert unbounded.max_characters == sys.maxsize and character_bound(512, 31) == 512 * 31 * 2
