"""A model as the workflow sees it: frozen float32 embeddings plus the tokenizer that indexes them.

`load_model` reads each model spec through its source (`sources.hub` for safetensors repositories and
hub-layout directories, `sources.gguf` for GGUF files), checks that concatenated models agree, and returns
one `LoadedModel`. After this point nothing depends on where a model came from: every step sees a float32
matrix (memory-mapped from the cache) and a `tokenizers.Tokenizer` read from a `tokenizer.json` file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from wldetect.config import ModelConfig, ModelSpec
from wldetect.errors import WLDetectError
from wldetect.sources import gguf, hub
from wldetect.sources.embeddings import EmbeddingSource, cache_path_for, load_cached, write_float32_rows


def extract_embeddings(spec: ModelSpec) -> tuple[np.ndarray, EmbeddingSource]:
    """One spec's float32 (V, H) embedding matrix, memory-mapped from the cache."""
    matrix, source = gguf.extract_embeddings(spec) if spec.is_gguf else hub.extract_embeddings(spec)
    if matrix.shape[1] != spec.hidden_dim:
        raise WLDetectError(
            f"model {spec.name}: hidden_dim is {spec.hidden_dim} in the config but the embeddings are {matrix.shape[1]} wide"
        )
    return matrix, source


def load_tokenizer_file(spec: ModelSpec) -> tuple[Tokenizer, Path]:
    """The spec's tokenizer and the `tokenizer.json` it was read from (for GGUF: the cached conversion)."""
    path = gguf.tokenizer_file(spec) if spec.is_gguf else hub.tokenizer_path(spec)
    try:
        return Tokenizer.from_file(str(path)), path
    except Exception as err:
        raise WLDetectError(f"{path}: not a readable tokenizer.json ({err})") from None


def without_padding(tokenizer: Tokenizer) -> Tokenizer:
    """Strip the padding and truncation a tokenizer.json may store (MiniLM's pads to 128): counting and
    training must see each text's real tokens only."""
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer




@dataclass
class LoadedModel:
    """Everything the steps need from the model side: frozen embeddings and the matching tokenizer."""

    config: ModelConfig
    embeddings: np.ndarray  # float32 (vocab_size, hidden_dim), memory-mapped
    tokenizer: Tokenizer  # padding and truncation off
    tokenizer_path: Path
    sources: list[EmbeddingSource]

    @property
    def vocab_size(self) -> int:
        """Rows of the embedding matrix: the one vocab size every array in this project uses."""
        return int(self.embeddings.shape[0])

    @property
    def tokenizer_vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size(with_added_tokens=True))

    def summary(self) -> str:
        names = " + ".join(s.spec.name for s in self.sources)
        cached = "from cache" if all(s.from_cache for s in self.sources) else "extracted now"
        return (
            f"Embeddings: {names} -> shape ({self.vocab_size:,} x {self.embeddings.shape[1]:,}) float32, "
            f"{self.embeddings.nbytes / 1e6:,.1f} MB ({cached}; source dtype {'/'.join(s.source_dtype for s in self.sources)})\n"
            f"Using vocab_size={self.vocab_size} from embeddings (tokenizer reports {self.tokenizer_vocab_size})"
        )


def load_model(config: ModelConfig) -> LoadedModel:
    """Load (and for several models, validate and concatenate) the frozen embeddings and the tokenizer."""
    specs = config.model_specs
    types = {spec.type for spec in specs}
    if len(types) > 1:
        raise WLDetectError(f"models to concatenate must share 'type', got {', '.join(sorted(types))}")
    tokenizer, tokenizer_path = load_tokenizer_file(specs[0])
    for spec in specs[1:]:
        other, _ = load_tokenizer_file(spec)
        _check_same_tokenizer(specs[0], tokenizer, spec, other)
    matrices, sources = zip(*(extract_embeddings(spec) for spec in specs))
    rows = {m.shape[0] for m in matrices}
    if len(rows) > 1:
        detail = ", ".join(f"{s.spec.name}: {m.shape[0]}" for m, s in zip(matrices, sources))
        raise WLDetectError(f"models to concatenate must have the same number of embedding rows ({detail})")
    embeddings = matrices[0] if len(matrices) == 1 else _concatenated(list(matrices), list(sources))
    if embeddings.shape[1] != config.hidden_dim:
        raise WLDetectError(f"hidden_dim {config.hidden_dim} does not match the embeddings' width {embeddings.shape[1]}")
    loaded = LoadedModel(config, embeddings, without_padding(tokenizer), tokenizer_path, list(sources))
    if loaded.tokenizer_vocab_size > loaded.vocab_size:
        raise WLDetectError(
            f"tokenizer has {loaded.tokenizer_vocab_size} tokens but the embeddings only {loaded.vocab_size} rows"
        )
    return loaded


def _check_same_tokenizer(spec_a: ModelSpec, tok_a: Tokenizer, spec_b: ModelSpec, tok_b: Tokenizer) -> None:
    vocab_a, vocab_b = tok_a.get_vocab(with_added_tokens=True), tok_b.get_vocab(with_added_tokens=True)
    if vocab_a != vocab_b:
        differing = len(set(vocab_a.items()) ^ set(vocab_b.items()))
        raise WLDetectError(
            f"models {spec_a.name} and {spec_b.name} have different tokenizers "
            f"({len(vocab_a)} vs {len(vocab_b)} tokens, {differing} token/id pairs differ)"
        )


def _concatenated(matrices: list[np.ndarray], sources: list[EmbeddingSource]) -> np.ndarray:
    """Concatenate along the hidden axis into one cached matrix, block of rows by block of rows."""
    # each part's file identity: a part re-extracted in place (a moved hub revision) makes a new concatenation
    parts = [[str(s.cache_path), s.cache_path.stat().st_size, s.cache_path.stat().st_mtime_ns] for s in sources]
    path = cache_path_for("concat", parts)
    if not path.is_file():
        shape = (matrices[0].shape[0], sum(m.shape[1] for m in matrices))
        write_float32_rows(path, shape, lambda start, stop: np.concatenate([m[start:stop] for m in matrices], axis=1))
    return load_cached(path)
