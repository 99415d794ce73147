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
    tiny_sentences,
    module_tiny_project,
    tiny_vocabulary,
)
from safetensors.numpy import load_file
from typer.testing import CliRunner

from wldetect.cli import app
from wldetect.detect import TablePooler, WLDetect
from wldetect.errors import WLDetectError
from wldetect.model import LanguageDetectionModel, pool_padded

REPO = Path(__file__).resolve().parent.parent
V = len(tiny_vocabulary()) + TINY_EXTRA_ROWS


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained without a mask (module-scoped: one ~1 s training run for all tests here)."""
    from wldetect.config import load_training_config
    from wldetect.training import train

    root = tmp_path_factory.mktemp("detect-project")
    with module_tiny_project(root) as (config, embeddings, _):
        config = load_training_config(config, {"training.epochs": 8})  # well trained: the answers below are clear
        result = train(config, output_dir=root / "artifacts", verbose=False, run_evaluation=False)
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


def test_detector_agrees_with_the_torch_model(trained):
    texts = held_out_texts()
    detector = WLDetect.load(trained["artifacts"], table="fp32")
    encoded_ids = [detector.tokenizer.encode(t, add_special_tokens=False).ids for t in texts]
    longest = max(map(len, encoded_ids))
    ids = torch.zeros(len(texts), longest, dtype=torch.long)
    mask = torch.zeros(len(texts), longest, dtype=torch.bool)
    for i, row in enumerate(encoded_ids):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = True
    model = torch_model_from_artifacts(trained["artifacts"], trained["embeddings"])
    with torch.no_grad():
        torch_logits = model(ids, mask).numpy()
    logits, has_tokens = detector.pooled_logits(texts)
    assert has_tokens.all()
    np.testing.assert_allclose(logits, torch_logits, rtol=1e-4, atol=1e-4)
    torch_languages = [TINY_LANGUAGES[i] for i in torch_logits.argmax(axis=1)]
    assert [p[0] for p in detector.predict(texts)] == torch_languages
    e3m4 = WLDetect.load(trained["artifacts"])  # the default table
    assert e3m4.table_format == "e3m4"
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
