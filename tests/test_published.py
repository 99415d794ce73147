"""The published WordLlamaDetect layout (wldetect 0.1.2 on PyPI), both ways: this detector reads it with the
published loader's numbers, and `wldetect export` writes it for the published runtime.

The reference is `published_reference`, the published loader's algorithm restated in NumPy from the wheel's
`wldetect/api.py`: the exp table expanded as it expands it, rows summed over the tokens, `log(max(sum,
1e-12))`, softmax, argmax. The real published model comes from the wheel pip downloads into pytest's cache
(the one test that needs PyPI: it skips with the reason when the wheel is neither there nor fetchable); the
last test runs the published package itself in a throw-away venv of a Python >= 3.12 interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import (
    EMBEDDED_DEFAULT_MODEL,
    TINY_LANGUAGES,
    counted_token_ids,
    module_tiny_project,
    tiny_sentences,
    tiny_vocabulary,
)
from safetensors import safe_open
from safetensors.numpy import save_file
from tokenizers import Tokenizer
from typer.testing import CliRunner

from wldetect.cli import app
from wldetect.detect import WLDetect
from wldetect.errors import WLDetectError
from wldetect.published import PUBLISHED_WHEEL, published_model_dir

REPO = Path(__file__).resolve().parent.parent
PUD = REPO / "wldetect" / "data" / "pud"


def published_reference(model_dir: Path, tokenizer_path: Path, texts: list[str]) -> list[tuple[str, float, np.ndarray] | None]:
    """`wldetect.api.WLDetect(model_dir).predict(texts)` of wldetect 0.1.2, in NumPy, plus each text's pooled
    logits; the tokenizer read from a file instead of the hub."""
    with safe_open(str(model_dir / "lookup_table_exp.safetensors"), framework="numpy") as handle:
        dtype_id = handle.get_tensor("dtype")[0]
        if dtype_id == 32:
            table = handle.get_tensor("lookup_table").astype(np.float32)
        else:
            assert dtype_id == 33
            table = np.zeros(tuple(handle.get_tensor("shape")), dtype=np.float32)
            table[handle.get_tensor("row").astype(np.int32), handle.get_tensor("col").astype(np.int32)] = (
                handle.get_tensor("data").astype(np.float32)
            )
    config = yaml.safe_load((model_dir / "model_config.yaml").read_text())
    index_to_language = {i: code for code, i in config["languages"].items()}
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.enable_truncation(max_length=config["inference"]["max_sequence_length"])
    results = []
    for encoding in tokenizer.encode_batch(texts, add_special_tokens=False):
        token_ids = np.array(encoding.ids, dtype=np.int64)
        if len(token_ids) == 0:
            results.append(None)
            continue
        pooled = np.log(np.maximum(np.sum(table[token_ids], axis=0), 1e-12))
        shifted = np.exp(pooled - np.max(pooled, axis=-1, keepdims=True))
        probs = shifted / np.sum(shifted, axis=-1, keepdims=True)
        top = int(np.argmax(probs))
        results.append((index_to_language[top], float(probs[top]), pooled))
    return results


def assert_same_as_published(detector: WLDetect, reference: list, texts: list[str]) -> int:
    """Every text with language evidence here gets the published loader's language, confidence and pooled
    logits, bit for bit, alone and in a batch; returns how many texts had evidence."""
    predictions = detector.predict(texts)
    logits, has_evidence = detector.pooled_logits(texts)
    assert len(predictions) == len(reference) == len(texts)
    for index, (ours, theirs) in enumerate(zip(predictions, reference)):
        if ours is None:
            assert not has_evidence[index]
            continue
        assert ours == theirs[:2], texts[index]
        np.testing.assert_array_equal(logits[index], theirs[2])
    for index in range(0, len(texts), max(1, len(texts) // 25)):  # a text alone: the single-text path
        assert detector.predict(texts[index]) == predictions[index]
    return int(has_evidence.sum())


# ------------------------------------------------------------------------------ constructed directories


def write_published_dir(directory: Path, exp_table: np.ndarray, *, sparse_threshold: float | None, multi: bool) -> Path:
    """A directory as the published trainer writes it (its `save_lookup_table_exp` tensors and config keys)."""
    directory.mkdir(parents=True)
    if sparse_threshold is None:
        tensors = {
            "lookup_table": exp_table.astype(np.float32),
            "dtype": np.array([32], dtype=np.uint8),
            "shape": np.array(exp_table.shape, dtype=np.int64),
        }
    else:
        row, col = np.nonzero(exp_table >= sparse_threshold)
        tensors = {
            "data": exp_table[row, col].astype(np.float32),
            "row": row.astype(np.int32),
            "col": col.astype(np.int32),
            "shape": np.array(exp_table.shape, dtype=np.int64),
            "threshold": np.array([sparse_threshold], dtype=np.float32),
            "dtype": np.array([33], dtype=np.uint8),
        }
    save_file(tensors, str(directory / "lookup_table_exp.safetensors"))
    spec = {"type": "tiny", "hidden_dim": 8, "embedding_layer_name": "model.embed_tokens.weight"}
    models = {"models": [{"name": "a/big", **spec}, {"name": "a/small", **spec}]} if multi else {"model": {"name": "a/m", **spec}}
    config = {
        **models,
        "languages": {code: i for i, code in enumerate(TINY_LANGUAGES)},
        "inference": {"tokenizer": "nobody/no-such-tokenizer", "max_sequence_length": 6, "pooling": "logsumexp"},
    }
    (directory / "model_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return directory


def plain_tokenizer(path: Path) -> Path:
    """The tiny word-level vocabulary without stored padding (the published loader never turns padding off)."""
    from conftest import write_tokenizer_json

    return write_tokenizer_json(path, tiny_vocabulary(), pad_to=None)


def tiny_exp_table(seed: int) -> np.ndarray:
    """exp of random logits, one language favoured per word, 5 rows more than the tokenizer has ids."""
    vocabulary = tiny_vocabulary()
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1, size=(len(vocabulary) + 5, len(TINY_LANGUAGES))).astype(np.float32)
    from conftest import TINY_WORDS

    for column, code in enumerate(TINY_LANGUAGES):
        for word in TINY_WORDS[code]:
            logits[vocabulary.index(word), column] += 3.0
    return np.exp(logits)


def texts_for_tiny(n_per_language: int = 40) -> list[str]:
    texts = [t for code in TINY_LANGUAGES for t in tiny_sentences(code, n_per_language, seed=5)]
    return texts + ["", "!!!", "zzz qqq", "le cat the chien der hund maison katze mat", "the " * 20]


@pytest.mark.parametrize("sparse_threshold", [None, 6.0], ids=["dense", "sparse"])
@pytest.mark.parametrize("multi", [False, True], ids=["model", "models"])
def test_a_constructed_published_directory_gives_the_published_loaders_answers(tmp_path, sparse_threshold, multi):
    """Dense and sparse COO tables, one model or a `models:` list: the published loader's languages,
    confidences and pooled logits, bit for bit; truncation at max_sequence_length (6 here) included."""
    exp_table = tiny_exp_table(1)
    directory = write_published_dir(tmp_path / "published", exp_table, sparse_threshold=sparse_threshold, multi=multi)
    tokenizer = plain_tokenizer(directory / "tokenizer.json")
    texts = texts_for_tiny()
    detector = WLDetect.load(directory)
    assert detector.table_format == ("exp" if sparse_threshold is None else "exp-sparse")
    assert detector.languages == TINY_LANGUAGES
    assert detector.max_sequence_length == 6
    expanded = exp_table if sparse_threshold is None else np.where(exp_table >= sparse_threshold, exp_table, 0)
    np.testing.assert_array_equal(detector.pooler.source.exp, expanded.astype(np.float32))
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(detector.table, np.log(expanded.astype(np.float32)))
    with_evidence = assert_same_as_published(detector, published_reference(directory, tokenizer, texts), texts)
    assert with_evidence >= len(texts) - 3
    # an empty text, and one of punctuation or unknown words only, has no language here
    assert detector.predict(["", "!!!", "zzz qqq"]) == [None, None, None]
    # truncation: the 7th word onwards changes nothing
    assert detector.predict("the the the the the the le le le le") == detector.predict("the the the the the the")


def test_a_sparse_table_token_without_any_stored_entry_is_no_evidence(tmp_path):
    """A row the sparse file stores nothing of adds 0 to every language: a text of only such tokens gets
    None here (the published loader would answer its first language at 1/3), one with another token its
    language as the published loader gives it."""
    exp_table = tiny_exp_table(2)
    vocabulary = tiny_vocabulary()
    cat = vocabulary.index("cat")
    exp_table[cat] = 1.0  # below the threshold in every language
    directory = write_published_dir(tmp_path / "published", exp_table, sparse_threshold=6.0, multi=False)
    tokenizer = plain_tokenizer(tmp_path / "tokenizer.json")
    detector = WLDetect.load(directory, tokenizer=tokenizer)
    assert detector.predict("cat cat") is None
    assert published_reference(directory, tokenizer, ["cat cat"])[0][:2] == ("eng_Latn", pytest.approx(1 / 3))
    texts = ["cat sat", "cat chat", "cat katze"]
    assert_same_as_published(detector, published_reference(directory, tokenizer, texts), texts)


def test_the_tokenizer_comes_from_the_directory_the_argument_or_the_hub(tmp_path):
    """The directory's tokenizer.json, else `tokenizer=` (which also overrides it); without either the hub
    repo of `inference.tokenizer` is tried, and offline that is one line saying to pass a tokenizer file."""
    directory = write_published_dir(tmp_path / "published", tiny_exp_table(3), sparse_threshold=None, multi=False)
    with pytest.raises(WLDetectError, match=r"nobody/no-such-tokenizer.*pass a tokenizer file") as error:
        WLDetect.load(directory)
    assert "\n" not in str(error.value)
    tokenizer = plain_tokenizer(tmp_path / "elsewhere.json")
    assert WLDetect.load(directory, tokenizer=tokenizer).predict("le chat est sur tapis")[0] == "fra_Latn"
    with pytest.raises(WLDetectError, match="no-such.json: file not found"):
        WLDetect.load(directory, tokenizer=tmp_path / "no-such.json")
    result = CliRunner().invoke(
        app, ["detect", "--model-path", str(directory), "--tokenizer", str(tokenizer), "--text", "die katze sitzt"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("deu_Latn\t")
    result = CliRunner().invoke(app, ["detect", "--model-path", str(directory), "--text", "die katze sitzt"])
    assert isinstance(result.exception, WLDetectError) and "pass a tokenizer file" in str(result.exception)


@pytest.mark.parametrize(
    "damage, message",
    [
        ({"dtype": np.array([34], dtype=np.uint8)}, "dtype 34, expected 32"),
        ({"row": np.array([0, 99], dtype=np.int32)}, "outside the shape"),
        ({"data": np.array([1.0, -2.0], dtype=np.float32)}, "negative, inf or NaN"),
    ],
)
def test_a_damaged_exp_table_fails_at_load_in_one_line(tmp_path, damage, message):
    directory = write_published_dir(tmp_path / "published", tiny_exp_table(4), sparse_threshold=None, multi=False)
    plain_tokenizer(directory / "tokenizer.json")
    shape = tiny_exp_table(4).shape
    tensors = {
        "data": np.array([1.0, 2.0], dtype=np.float32),
        "row": np.array([0, 1], dtype=np.int32),
        "col": np.array([0, 1], dtype=np.int32),
        "shape": np.array(shape, dtype=np.int64),
        "threshold": np.array([1.0], dtype=np.float32),
        "dtype": np.array([33], dtype=np.uint8),
    }
    save_file({**tensors, **damage}, str(directory / "lookup_table_exp.safetensors"))
    with pytest.raises(WLDetectError, match=message):
        WLDetect.load(directory)


def test_a_published_layout_from_the_hub_cache_offline(trained, tmp_path):
    """`from_pretrained` of a hub repo in the published layout, and a published directory without
    tokenizer.json whose `inference.tokenizer` repo is in the hub cache: both load offline through
    huggingface_hub (a fresh process, so that HF_HUB_CACHE takes effect)."""
    from wldetect.artifacts import export_wordllamadetect

    export_wordllamadetect(trained, tmp_path / "exported", tokenizer_repo="someone/tok")
    cache = tmp_path / "hub"
    revision = "0123456789abcdef0123456789abcdef01234567"
    for repo, names in (("someone/model", ["model_config.yaml", "lookup_table_exp.safetensors", "tokenizer.json"]), ("someone/tok", ["tokenizer.json"])):
        root = cache / ("models--" + repo.replace("/", "--"))
        (root / "snapshots" / revision).mkdir(parents=True)
        for name in names:
            shutil.copy(tmp_path / "exported" / name, root / "snapshots" / revision / name)
        (root / "refs").mkdir()
        (root / "refs" / "main").write_text(revision)
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("model_config.yaml", "lookup_table_exp.safetensors"):
        shutil.copy(tmp_path / "exported" / name, bare / name)
    texts = held_out()[::10]
    code = (
        "import json, sys\n"
        "from wldetect import WLDetect\n"
        "texts = json.loads(sys.argv[2])\n"
        "print(json.dumps([WLDetect.from_pretrained('someone/model').predict(texts), WLDetect.load(sys.argv[1]).predict(texts)]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(bare), json.dumps(texts)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    expected = [list(r) if r else None for r in WLDetect.load(tmp_path / "exported").predict(texts)]
    assert json.loads(result.stdout) == [expected, expected]


# ---------------------------------------------------------------------------------- the published model


def wheel_cache(request, tmp_path_factory) -> Path:
    """Where the published wheel (and the venv of its runtime) are kept between test sessions: pytest's
    cache directory (a temporary one when the cache plugin is off)."""
    cache = getattr(request.config, "cache", None)
    return Path(cache.mkdir("wldetect-published")) if cache is not None else tmp_path_factory.mktemp("wldetect-published")


@pytest.fixture(scope="module")
def published_dir(request, tmp_path_factory) -> Path:
    """The published model from the wldetect 0.1.2 wheel, which pip downloads into pytest's cache once (the
    only test input fetched from the network; PyPI)."""
    cache = wheel_cache(request, tmp_path_factory)
    try:
        return published_model_dir(cache)
    except WLDetectError as err:
        pytest.skip(f"{PUBLISHED_WHEEL} is not in {cache} and pip cannot fetch it: {err}")


def pud_sentences() -> list[str]:
    texts = []
    for path in sorted(PUD.glob("*.txt")):
        texts += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return texts


@pytest.mark.network
def test_the_published_model_predicts_as_the_published_loader_on_pud(published_dir, embedded_default):
    """The real published model (148 languages, sparse: 1,105,863 entries of 262,208 x 148) with the embedded
    default's Gemma3 tokenizer (the same 262,144-token text vocabulary): on all shipped PUD sentences the
    published loader's answers, bit for bit, and the shape the reference detectors use."""
    from wldetect.config import load_model_config
    from wldetect.sources.models import load_tokenizer_file

    tokenizer = load_tokenizer_file(load_model_config(EMBEDDED_DEFAULT_MODEL).model_specs[0])[1]
    detector = WLDetect.load(published_dir, tokenizer=tokenizer)
    assert len(detector.languages) == 148 and detector.table_format == "exp-sparse"
    assert detector.pooler.source.shape == (262208, 148) and detector.pooler.source.stored_entries == 1_105_863
    texts = pud_sentences()
    assert len(texts) >= 10_000
    with_evidence = assert_same_as_published(detector, published_reference(published_dir, tokenizer, texts), texts)
    assert with_evidence == len(texts)
    logits, has_evidence = detector.pooled_logits(texts[:5])
    assert logits.shape == (5, 148) and has_evidence.all()


# ---------------------------------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained without a mask, its tokenizer storing padding (as MiniLM's does)."""
    from wldetect.config import load_training_config
    from wldetect.steps.training import train

    root = tmp_path_factory.mktemp("published-project")
    with module_tiny_project(root) as (config, _, _):
        config = load_training_config(config, {"training.epochs": 8})
        yield train(config, output_dir=root / "artifacts", token_ids=counted_token_ids(config), verbose=False).artifacts_dir


def held_out() -> list[str]:
    return [t for code in TINY_LANGUAGES for t in tiny_sentences(code, 100, seed=13)] + ["", "!!!", "le cat"]


def test_export_round_trip_dense_and_sparse(trained, tmp_path):
    """Export, load back here: the dense export answers as the trained model does (same languages, logits
    within float32 rounding), a sparse one as the published loader does on the exported files; the files
    are those the published runtime reads."""
    from wldetect.artifacts import export_wordllamadetect

    original = WLDetect.load(trained, table="fp32")
    texts = held_out()
    dense = export_wordllamadetect(trained, tmp_path / "dense", tokenizer_repo="someone/tok")
    assert sorted(p.name for p in (tmp_path / "dense").iterdir()) == [
        "lookup_table_exp.safetensors",
        "model_config.yaml",
        "tokenizer.json",
    ]
    exported = WLDetect.load(tmp_path / "dense")
    assert exported.table_format == "exp" and dense["stored_entries"] == dense["entries"]
    ours, theirs = original.predict(texts), exported.predict(texts)
    assert [r and r[0] for r in ours] == [r and r[0] for r in theirs]
    np.testing.assert_allclose(exported.pooled_logits(texts)[0], original.pooled_logits(texts)[0], rtol=1e-5, atol=1e-5)
    config = yaml.safe_load((tmp_path / "dense" / "model_config.yaml").read_text())
    assert config["inference"] == {"tokenizer": "someone/tok", "max_sequence_length": 32, "pooling": "logsumexp"}
    assert config["languages"] == {code: i for i, code in enumerate(TINY_LANGUAGES)}
    assert {"name", "type", "hidden_dim"} <= set(config["model"])
    stored = json.loads((tmp_path / "dense" / "tokenizer.json").read_text())
    assert stored["padding"] is None and stored["truncation"]["max_length"] == 32  # the trained one pads to 16
    assert_same_as_published(exported, published_reference(tmp_path / "dense", tmp_path / "dense" / "tokenizer.json", texts), texts)

    threshold = float(np.median(np.exp(original.table)))
    sparse = export_wordllamadetect(trained, tmp_path / "sparse", sparse_threshold=threshold, tokenizer_repo="someone/tok")
    assert 0 < sparse["stored_entries"] < sparse["entries"]
    loaded = WLDetect.load(tmp_path / "sparse")
    assert loaded.table_format == "exp-sparse"
    reference = published_reference(tmp_path / "sparse", tmp_path / "sparse" / "tokenizer.json", texts)
    assert_same_as_published(loaded, reference, texts)


def test_export_refuses_what_the_published_format_cannot_hold(trained, tmp_path):
    from wldetect.artifacts import export_wordllamadetect

    with pytest.raises(WLDetectError, match="not a hub repo; give --tokenizer-repo"):
        export_wordllamadetect(trained, tmp_path / "out")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(WLDetectError, match="not empty"):
        export_wordllamadetect(trained, tmp_path / "busy", tokenizer_repo="a/b")
    export_wordllamadetect(trained, tmp_path / "busy", tokenizer_repo="a/b", overwrite=True)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"  # the user's file is kept
    assert WLDetect.load(tmp_path / "busy").predict("die katze sitzt auf der matte")[0] == "deu_Latn"
    max_pooled = tmp_path / "max-pooled"
    shutil.copytree(trained, max_pooled)
    config = yaml.safe_load((max_pooled / "model_config.yaml").read_text())
    config["inference"]["pooling"] = "max"
    (max_pooled / "model_config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(WLDetectError, match="logsumexp pooling only"):
        export_wordllamadetect(max_pooled, tmp_path / "out", tokenizer_repo="a/b")
    with pytest.raises(WLDetectError, match="positive number"):
        export_wordllamadetect(trained, tmp_path / "out", tokenizer_repo="a/b", sparse_threshold=0.0)
    assert not (tmp_path / "out").exists()


def test_the_export_command(trained, tmp_path):
    runner = CliRunner()
    out = tmp_path / "exported"
    arguments = ["export", "--model-path", str(trained), "--format", "wordllamadetect", "--output", str(out)]
    result = runner.invoke(app, [*arguments, "--tokenizer-repo", "a/b", "--sparse-threshold", "2"])
    assert result.exit_code == 0, result.output
    assert "lookup_table_exp.safetensors" in result.output and "entries" in result.output
    assert WLDetect.load(out).table_format == "exp-sparse"
    result = runner.invoke(app, [*arguments[:-4], "--format", "onnx", "--output", str(tmp_path / "x")])
    assert isinstance(result.exception, WLDetectError) and "expected wordllamadetect" in str(result.exception)


# ----------------------------------------------------------------------------- the published runtime itself


def python_312_or_later() -> str | None:
    """A Python >= 3.12 interpreter (the published package requires it): this one, one on PATH, or pyenv's."""
    candidates = [sys.executable, shutil.which("python3.13"), shutil.which("python3.12")]
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.1[2-9]*/bin/python3"))
    for candidate in filter(None, candidates):
        try:
            version = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if version.returncode == 0 and version.stdout.strip() == "True":
            return candidate
    return None


PUBLISHED_RUNTIME_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from tokenizers import Tokenizer
    import wldetect.api
    assert "site-packages" in wldetect.api.__file__, wldetect.api.__file__  # the published package, not ours
    model_dir, texts_file = Path(sys.argv[1]), Path(sys.argv[2])
    # the config names a hub repo; the exported tokenizer.json beside the table is the same tokenizer
    Tokenizer.from_pretrained = staticmethod(lambda name: Tokenizer.from_file(str(model_dir / "tokenizer.json")))
    detector = wldetect.api.WLDetect(model_dir)
    texts = json.loads(texts_file.read_text(encoding="utf-8"))
    print(json.dumps({"batch": detector.predict(texts), "single": [detector.predict(t) for t in texts[:50]]}))
    """
)


@pytest.mark.network
@pytest.mark.slow
def test_the_published_runtime_reads_an_exported_model(trained, tmp_path, request, tmp_path_factory):
    """wldetect 0.1.2 itself, in a throw-away venv of a Python >= 3.12 (its wheel and dependencies from PyPI,
    cached in pytest's cache; nothing of it enters this environment), loads dense and sparse exports with
    `WLDetect(dir)` and answers as this detector does on 300 texts: language and confidence, wherever this
    detector sees language evidence."""
    python = python_312_or_later()
    if python is None:
        pytest.skip("no Python >= 3.12 interpreter here (the published wldetect 0.1.2 requires one)")
    cache = wheel_cache(request, tmp_path_factory)
    try:
        published_model_dir(cache)
    except WLDetectError as err:
        pytest.skip(f"{PUBLISHED_WHEEL} is not in {cache} and pip cannot fetch it: {err}")
    venv = cache / f"venv-{Path(python).resolve().parent.parent.name}"
    runtime = venv / "bin" / "python"
    if not (venv / "installed").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        made = subprocess.run([python, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=300)
        if made.returncode != 0:
            pytest.skip(f"{python} -m venv failed: {made.stderr.strip()[-300:]}")
        install = subprocess.run(
            [str(runtime), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(cache / "published" / PUBLISHED_WHEEL)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if install.returncode != 0:
            pytest.skip(f"pip could not install wldetect 0.1.2's dependencies from PyPI: {install.stderr.strip()[-300:]}")
        (venv / "installed").write_text("wldetect==0.1.2\n")

    from wldetect.artifacts import export_wordllamadetect

    texts = held_out()[:297] + ["", "!!!", "le cat"]
    (tmp_path / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for name, threshold in (("dense", None), ("sparse", 2.0)):
        export_wordllamadetect(trained, tmp_path / name, sparse_threshold=threshold, tokenizer_repo="someone/tok")
        run = subprocess.run(
            [str(runtime), "-I", "-c", PUBLISHED_RUNTIME_SCRIPT, str(tmp_path / name), str(tmp_path / "texts.json")],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env=environment,
        )
        assert run.returncode == 0, run.stderr
        answers = json.loads(run.stdout)
        ours = WLDetect.load(tmp_path / name).predict(texts)
        compared = 0
        for text, mine, theirs, single in zip(texts, ours, answers["batch"], answers["single"] + [None] * len(texts)):
            if mine is not None:
                assert tuple(theirs) == mine
                compared += 1
            elif name == "sparse" and text not in ("", "!!!"):  # no token with a stored entry: theirs is uniform
                assert theirs[1] == pytest.approx(1 / len(TINY_LANGUAGES))
            if single is not None:
                assert single == theirs
        assert compared == 298 if name == "dense" else compared >= 250  # dense: all but "" and "!!!"
        assert answers["batch"][-3] is None and ours[-3] is None  # the empty text: None in both
