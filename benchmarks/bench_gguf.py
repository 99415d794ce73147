"""GGUF extraction: time and peak memory, against bare dequantisation of the same tensor.

For the embedded default (Gemma 3 270M, Q8_0 token embeddings, 262,144 x 640) and for synthetic files the
size of Gemma3-27B's embedding matrix (262,208 x 5,376, Q8_0 and Q4_K; written here with random but valid
blocks), each measurement runs in a fresh process with an empty wldetect cache and reports:
- extraction: `sources.models.extract_embeddings` (read, dequantise and write the float32 cache);
- the ceiling: bare `gguf.quants.dequantize` of the same rows in the same blocks, nothing written;
- peak resident memory of that process (VmHWM) next to the size of the float32 matrix.
The embedded default also reports assembling the file from its package and converting its tokenizer.

    .venv/bin/python benchmarks/bench_gguf.py                 # all three (about 10 GB of temporary disk)
    .venv/bin/python benchmarks/bench_gguf.py --skip-synthetic
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "params" / "models" / "gemma3-270m-demo.yaml"


# ------------------------------------------------------------------------------------------ in the child


def _peak_rss_mb() -> float:
    """This process's resident high-water mark (VmHWM): unlike ru_maxrss it starts afresh at exec, so the
    parent's size (it wrote the synthetic file) does not leak into the child's figure."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _child_extract(spec_json: str) -> dict:
    """Extract one spec's embeddings into an empty cache; time the bare dequantisation of the same rows too."""
    import numpy as np

    from wldetect.config import ModelSpec
    from wldetect.sources import embeddings, gguf
    from wldetect.sources.models import extract_embeddings

    spec = ModelSpec.model_validate_json(spec_json)
    started = time.perf_counter()
    path = gguf.locate_gguf_file(spec)  # assembles the embedded default's file on first use
    locate_seconds = time.perf_counter() - started
    rss_before = _peak_rss_mb()
    started = time.perf_counter()
    matrix, source = extract_embeddings(spec)
    extract_seconds = time.perf_counter() - started
    peak_extract = _peak_rss_mb()
    # the ceiling: the same blocks dequantised from a memory map of the file, nothing written
    import gguf as gguf_library

    tensor = gguf.embedding_tensor(gguf.read_header(path), gguf.embedding_tensor_name(spec))
    block_size, type_size = gguf_library.GGML_QUANT_SIZES[tensor.qtype]
    row_bytes = tensor.shape[0] // block_size * type_size
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=tensor.offset, shape=(tensor.shape[1], row_bytes))
    step = embeddings.rows_per_block(matrix.shape[1])
    started = time.perf_counter()
    checksum = 0.0
    for start in range(0, matrix.shape[0], step):
        checksum += float(gguf_library.quants.dequantize(raw[start : start + step], tensor.qtype)[0, 0])
    bare_seconds = time.perf_counter() - started
    return {
        "file": str(path),
        "file_mb": path.stat().st_size / 2**20,
        "source_dtype": source.source_dtype,
        "shape": list(matrix.shape),
        "float32_mb": matrix.nbytes / 2**20,
        "locate_seconds": locate_seconds,
        "extract_seconds": extract_seconds,
        "bare_dequantize_seconds": bare_seconds,
        "rss_before_mb": rss_before,
        "peak_rss_extract_mb": peak_extract,
        "checksum": checksum + float(np.asarray(matrix[0, 0])),
    }


def _child_tokenizer(spec_json: str) -> dict:
    from wldetect.config import ModelSpec
    from wldetect.sources import gguf

    spec = ModelSpec.model_validate_json(spec_json)
    gguf.locate_gguf_file(spec)
    started = time.perf_counter()
    path = gguf.tokenizer_file(spec)
    return {"tokenizer_seconds": time.perf_counter() - started, "tokenizer_mb": path.stat().st_size / 2**20}


# ----------------------------------------------------------------------------------------- the parent


def run_child(function: str, spec, cache: Path) -> dict:
    env = dict(os.environ, WLDETECT_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    output = subprocess.run(
        [sys.executable, __file__, "--child", function, spec.model_dump_json()],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(output.strip().splitlines()[-1])


def write_synthetic(path: Path, rows: int, width: int, type_name: str, seed: int = 0) -> Path:
    """A GGUF file with one `token_embd.weight` of random but valid blocks (finite f16 scales)."""
    import gguf
    import numpy as np

    qtype = gguf.GGMLQuantizationType[type_name]
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    row_bytes = width // block_size * type_size
    scale_bytes = {"Q8_0": 2, "Q4_K": 4, "Q5_K": 4, "Q6_K": 0}[type_name]  # leading f16 scale fields of a block
    raw_path = path.with_suffix(".raw")
    data = np.lib.format.open_memmap(raw_path, mode="w+", dtype=np.uint8, shape=(rows, row_bytes))
    rng = np.random.default_rng(seed)
    for start in range(0, rows, 8192):
        stop = min(start + 8192, rows)
        blocks = rng.integers(0, 256, size=(stop - start, width // block_size, type_size), dtype=np.uint8)
        if scale_bytes:
            scales = rng.uniform(1e-4, 1e-2, size=(stop - start, width // block_size, scale_bytes // 2)).astype(np.float16)
            blocks[:, :, :scale_bytes] = scales.view(np.uint8).reshape(stop - start, width // block_size, scale_bytes)
        data[start:stop] = blocks.reshape(stop - start, row_bytes)
    data.flush()
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_tensor("token_embd.weight", data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    del data
    raw_path.unlink()
    return path


def report(label: str, result: dict) -> None:
    ratio = result["bare_dequantize_seconds"] / result["extract_seconds"]
    rows, width = result["shape"]
    print(
        f"{label}: {result['source_dtype']} {rows:,} x {width:,} ({result['file_mb']:,.0f} MB file -> "
        f"{result['float32_mb']:,.0f} MB float32)\n"
        f"  extraction {result['extract_seconds']:.1f} s ({rows * width / result['extract_seconds'] / 1e6:,.0f} M values/s); "
        f"bare dequantize of the same blocks {result['bare_dequantize_seconds']:.1f} s: ratio {ratio:.2f}\n"
        f"  peak RSS {result['peak_rss_extract_mb']:,.0f} MB (before extraction {result['rss_before_mb']:,.0f} MB) = "
        f"{result['peak_rss_extract_mb'] / result['float32_mb']:.1%} of the float32 matrix"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-default", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--rows", type=int, default=262_208)
    parser.add_argument("--width", type=int, default=5_376)
    parser.add_argument("--types", default="Q8_0,Q4_K")
    parser.add_argument("--work-dir", type=Path, default=None, help="where temporary files go (default: a temp dir)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        function, spec_json = args.child
        print(json.dumps({"extract": _child_extract, "tokenizer": _child_tokenizer}[function](spec_json)))
        return

    sys.path.insert(0, str(REPO))
    from wldetect.config import ModelSpec, load_model_config

    with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
        work = Path(work)
        if not args.skip_default:
            spec = load_model_config(DEFAULT_MODEL).model_specs[0]
            result = run_child("extract", spec, work / "cache-default")
            print(f"Embedded default: assembling {Path(result['file']).name} from its package took {result['locate_seconds']:.1f} s")
            report("Embedded default", result)
            tokenizer = run_child("tokenizer", spec, work / "cache-default")
            print(f"  tokenizer converted by transformers in {tokenizer['tokenizer_seconds']:.1f} s ({tokenizer['tokenizer_mb']:.0f} MB tokenizer.json)")
        if not args.skip_synthetic:
            for type_name in args.types.split(","):
                file = write_synthetic(work / f"synthetic-{type_name}.gguf", args.rows, args.width, type_name)
                spec = ModelSpec(name=str(file), type="gemma3", hidden_dim=args.width)
                result = run_child("extract", spec, work / f"cache-{type_name}")
                report(f"Synthetic {type_name}", result)
                file.unlink()
                for cached in (work / f"cache-{type_name}").rglob("*.npy"):
                    cached.unlink()


if __name__ == "__main__":
    main()
