"""Shared fixtures: isolated caches, and small hub-layout model directories built on the spot.

The tiny model uses a word-level tokenizer whose tokenizer.json stores padding and truncation (as MiniLM's
does), with fewer tokens than embedding rows (as Gemma3 has), so every test sees those traps.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

TINY_LANGUAGES = ["eng_Latn", "fra_Latn", "deu_Latn"]
TINY_WORDS = {
    "eng_Latn": "the cat sat on mat and dog ran home with a big red ball today".split(),
    "fra_Latn": "le chat est sur tapis et chien court maison avec une grande balle rouge".split(),
    "deu_Latn": "die katze sitzt auf der matte und hund läuft nach hause mit einem roten".split(),
}
TINY_EXTRA_ROWS = 5  # embedding rows beyond the tokenizer's vocabulary, like Gemma3's 262,208 vs 262,145


HF_DATASETS_SUBDIR = "hf-datasets"


def use_cache(patch: pytest.MonkeyPatch, directory: Path) -> Path:
    """Make `directory` the wldetect cache ($WLDETECT_CACHE_DIR) and put the Hugging Face `datasets` cache
    ($HF_DATASETS_CACHE: the Arrow files `load_dataset` makes of a jsonl or parquet corpus) under it, for
    this process and the kernels and commands it starts, so that no test reads or fills ~/.cache."""
    directory = Path(directory)
    datasets_cache = directory / HF_DATASETS_SUBDIR
    patch.setenv("WLDETECT_CACHE_DIR", str(directory))
    patch.setenv("HF_DATASETS_CACHE", str(datasets_cache))
    config = sys.modules.get("datasets.config")
    if config is not None:  # `datasets` reads the variable once, at import: move an imported one's paths too
        patch.setattr(config, "HF_DATASETS_CACHE", datasets_cache)
        patch.setattr(config, "DOWNLOADED_DATASETS_PATH", datasets_cache / config.DOWNLOADED_DATASETS_DIR)
        patch.setattr(
            config, "EXTRACTED_DATASETS_PATH", datasets_cache / config.DOWNLOADED_DATASETS_DIR / config.EXTRACTED_DATASETS_DIR
        )
    return directory


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own caches (wldetect's and `datasets`') and no test can reach the Hugging Face hub."""
    cache = use_cache(monkeypatch, tmp_path_factory.mktemp("wldetect-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    return cache


def tiny_vocabulary() -> list[str]:
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    for code in TINY_LANGUAGES:
        for word in TINY_WORDS[code]:
            if word not in words:
                words.append(word)
    return words


def write_tokenizer_json(path: Path, vocabulary: list[str], pad_to: int | None = 16) -> Path:
    """A word-level tokenizer.json with a BERT-like post-processor and (optionally) stored fixed padding."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocabulary)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    if pad_to:
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=pad_to)
        tokenizer.enable_truncation(max_length=pad_to)
    tokenizer.save(str(path))
    return path


def write_hub_model(
    directory: Path,
    rows: int,
    hidden: int,
    *,
    dtype: str = "float32",
    sharded: bool = False,
    tensor_name: str = "model.embed_tokens.weight",
    vocabulary: list[str] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Write a hub-layout model directory; return the float32 reference of its embedding matrix."""
    import torch
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(rows, hidden, generator=generator).to(getattr(torch, dtype))
    other = {"model.norm.weight": torch.ones(hidden), "lm_head.weight": torch.randn(7, hidden, generator=generator)}
    if sharded:
        save_file({"model.norm.weight": other["model.norm.weight"]}, str(directory / "model-00001-of-00003.safetensors"))
        save_file({tensor_name: embeddings.contiguous()}, str(directory / "model-00002-of-00003.safetensors"))
        # The third shard is not a safetensors file at all: opening it would fail, so a test passes only
        # if the loader reads the index and touches nothing but the shard that holds the embeddings.
        (directory / "model-00003-of-00003.safetensors").write_bytes(b"not a shard")
        weight_map = {
            "model.norm.weight": "model-00001-of-00003.safetensors",
            tensor_name: "model-00002-of-00003.safetensors",
            "lm_head.weight": "model-00003-of-00003.safetensors",
        }
        (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    else:
        save_file({tensor_name: embeddings.contiguous(), **other}, str(directory / "model.safetensors"))
    write_tokenizer_json(directory / "tokenizer.json", vocabulary or tiny_vocabulary())
    return embeddings.to(torch.float32).numpy()


@pytest.fixture
def tiny_model_dir(tmp_path) -> Path:
    """A single-file hub-layout model: tokenizer of len(tiny_vocabulary()) tokens, 5 more embedding rows."""
    directory = tmp_path / "tiny-model"
    write_hub_model(directory, rows=len(tiny_vocabulary()) + TINY_EXTRA_ROWS, hidden=8)
    return directory


def tiny_sentences(code: str, n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng([seed, TINY_LANGUAGES.index(code)])
    words = TINY_WORDS[code]
    return [" ".join(rng.choice(words, size=int(rng.integers(3, 9)))) for _ in range(n)]


def write_tiny_project(root: Path, model_dir: Path, examples_per_language: int = 40) -> Path:
    """params/models + params/training + a jsonl corpus for the tiny model; returns the training config path."""
    (root / "params" / "models").mkdir(parents=True, exist_ok=True)
    (root / "params" / "training").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    model_config = {
        "model": {"name": str(model_dir), "type": "tiny", "hidden_dim": 8, "embedding_layer_name": "model.embed_tokens"},
        "languages": {code: i for i, code in enumerate(TINY_LANGUAGES)},
        "inference": {"max_sequence_length": 32, "pooling": "logsumexp"},
    }
    (root / "params" / "models" / "tiny.yaml").write_text(yaml.safe_dump(model_config))
    with open(root / "data" / "train.jsonl", "w", encoding="utf-8") as handle:
        for code in TINY_LANGUAGES:
            for text in tiny_sentences(code, examples_per_language):
                handle.write(json.dumps({"text": text, "language": code}) + "\n")
    training_config = {
        "model_config_path": "params/models/tiny.yaml",
        "dataset": {"name": "data/train.jsonl", "shuffle_seed": 1},
        "training": {"batch_size": 16, "learning_rate": 0.05, "epochs": 2, "checkpoint_interval": 5, "seed": 3},
        "output": {"artifacts_dir": "artifacts/tiny"},
    }
    path = root / "params" / "training" / "tiny.yaml"
    path.write_text(yaml.safe_dump(training_config))
    return path


@pytest.fixture
def tiny_training_config(tmp_path, tiny_model_dir) -> Path:
    """Path of a training parameter file for the tiny model and a 3-language jsonl corpus."""
    return write_tiny_project(tmp_path / "project", tiny_model_dir)


@contextlib.contextmanager
def module_tiny_project(root: Path):
    """A tiny model and project under `root` with its own cache, offline, for module-scoped fixtures
    (function-scoped monkeypatch cannot serve them). Yields (training config path, embeddings, patch)."""
    with pytest.MonkeyPatch.context() as patch:
        use_cache(patch, root / "cache")
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        embeddings = write_hub_model(root / "tiny-model", rows=len(tiny_vocabulary()) + TINY_EXTRA_ROWS, hidden=8)
        yield write_tiny_project(root, root / "tiny-model"), embeddings, patch


def counted_token_ids(config: Path) -> Path:
    """Step 1's token ids of `config`, which training consumes and never makes: counted on the first call,
    reused from the cache after that (as `wldetect train` and notebook 03 run step 1 before step 3)."""
    from wldetect.steps.counting import count_tokens

    return count_tokens(config, verbose=False).token_ids_path


REPO = Path(__file__).resolve().parent.parent
EMBEDDED_DEFAULT_MODEL = REPO / "params" / "models" / "gemma3-270m-demo.yaml"


def evaluate_on_text_directory(root: Path, config_path: Path) -> Path:
    """Point the tiny project's evaluation at a directory of 12 held-out sentences per language (written
    here), so notebook runs evaluate offline; returns the directory."""
    import yaml

    evalset = root / "evalset"
    evalset.mkdir()
    for code in TINY_LANGUAGES:
        (evalset / f"{code}.txt").write_text("\n".join(tiny_sentences(code, 12, seed=9)) + "\n", encoding="utf-8")
    data = yaml.safe_load(config_path.read_text())
    data["evaluation"] = {"dataset": str(evalset)}
    config_path.write_text(yaml.safe_dump(data))
    return evalset


@pytest.fixture(scope="session")
def embedded_default_cache(tmp_path_factory) -> Path:
    """A cache holding the embedded default ready to use: Gemma 3 270M assembled from its package, its Q8_0
    embeddings dequantised and its tokenizer converted (30-60 s, paid once per test session)."""
    from wldetect.config import load_model_config
    from wldetect.sources.models import load_model

    cache = tmp_path_factory.mktemp("embedded-default-cache")
    with pytest.MonkeyPatch.context() as patch:
        use_cache(patch, cache)
        patch.setenv("HF_HUB_OFFLINE", "1")
        load_model(load_model_config(EMBEDDED_DEFAULT_MODEL))
    return cache


@pytest.fixture
def embedded_default(embedded_default_cache, monkeypatch) -> Path:
    """This test's cache is the session's embedded-default cache (the test must not change what is in it);
    its `datasets` cache stays the test's own (isolated_cache)."""
    monkeypatch.setenv("WLDETECT_CACHE_DIR", str(embedded_default_cache))
    return embedded_default_cache
