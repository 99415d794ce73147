"""The float32 embedding cache every model source writes into, whatever format the weights come in.

An embedding matrix is converted once (bf16/fp16 safetensors, quantised GGUF, ...) into a float32 `.npy`
under the cache directory and memory-mapped from then on, so later loads are instant and several worker
processes share one copy in the page cache. The conversion goes block of rows by block of rows through
plain file writes: resident memory is one block, never the whole float32 matrix (a Gemma3-27B matrix is
262,208 x 5,376, 5.6 GB in float32), and not even the pages of a memory-mapped output.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wldetect.config import ModelSpec, cache_dir

BLOCK_BYTES = 32 * 2**20  # float32 bytes converted at a time


@dataclass
class EmbeddingSource:
    """Where one embedding matrix came from and where its float32 cache lives."""

    spec: ModelSpec
    cache_path: Path
    shape: tuple[int, int]
    source_dtype: str  # F32, BF16, Q8_0, ...: what the weights were stored as
    from_cache: bool
    files_opened: list[Path] = field(default_factory=list)  # the model files read (none for a cache hit)


def cache_path_for(name: str, key: object) -> Path:
    """`<cache>/embeddings/<readable name>-<digest of key>.npy`: one file per (source identity, tensor)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name.split(":")[-1])[-60:]
    return cache_dir() / "embeddings" / f"{slug}-{digest}.npy"


def rows_per_block(width: int) -> int:
    return max(1, BLOCK_BYTES // (4 * max(1, width)))


def write_float32_rows(path: Path, shape: tuple[int, int], read_rows: Callable[[int, int], np.ndarray]) -> None:
    """Write a float32 `.npy` of `shape` whose rows [start, stop) are `read_rows(start, stop)`.

    The file appears under its final name only when complete (written to a temporary sibling, then renamed),
    so an interrupted conversion is never mistaken for a cache.
    """
    rows, width = int(shape[0]), int(shape[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            np.lib.format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False, "shape": (rows, width)})
            step = rows_per_block(width)
            for start in range(0, rows, step):
                stop = min(start + step, rows)
                block = np.ascontiguousarray(read_rows(start, stop), dtype="<f4")
                if block.shape != (stop - start, width):
                    raise ValueError(f"rows {start}:{stop} came back with shape {block.shape}")
                out.write(memoryview(block).cast("B"))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_cached(path: Path) -> np.ndarray:
    return np.load(path, mmap_mode="r")
