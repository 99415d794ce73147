"""Step 1 and training at corpus scale: throughput, memory per row and disk per row, projected to the seed.

The seed trains on OpenLID-v2: 121,798,076 examples. This generates OpenLID-shaped parquet files (columns
`text`, `language`; the 41 demo languages; pseudo-sentences sampled from `wordfreq` lists by
`wldetect.sources.demo`, deterministically, cached under ~/.cache/wldetect/bench_scale/), and for each size
runs, in a fresh subprocess so peak memory is that size's alone:

- step 1 cold (`count_tokens` with `use_cache=False`: read, filter, shuffle, tokenise, count, write the ids),
- then `--steps` training steps on the ids it wrote (the embedded default's model, CPU).

The subprocess samples /proc/self/status every 20 ms: RssAnon (anonymous: heaps, NumPy and Arrow buffers,
what a corpus that grows must not grow) and RssFile (file-backed: the memory-mapped Arrow data and token ids,
pages the kernel can drop). Memory per row is the slope between two sizes (the fixed part, model and
tokenizer and the 86 MB count table, cancels out). The ceiling, measured in the same run: bare
`encode_batch_fast` on one core over a sample of the same texts; step 1's per-core rate is shown against it.

    .venv/bin/python benchmarks/bench_scale.py                 # 1M and 4M rows (~5 min on 2 cores)
    .venv/bin/python benchmarks/bench_scale.py --large         # and 16M
    .venv/bin/python benchmarks/bench_scale.py --rows 100000 400000 --steps 20   # a quick check
    .venv/bin/python benchmarks/bench_scale.py --selection     # the selection alone (filter, shuffle, cap)

The projection assumes what the measurements support: per-core throughput is flat in the corpus size; one
process (`--executor local`) scales with tokeniser threads until its main thread (Arrow reads, counting,
writing ids: measured separately) is the limit; Ray Data actors each do all of it, so they scale per core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED_ROWS = 121_798_076
GENERATOR_VERSION = 1
ROW_GROUP = 100_000


# ------------------------------------------------------------------------------------------ the corpus


def corpus_path(rows: int) -> Path:
    from wldetect.config import cache_dir

    return cache_dir() / "bench_scale" / f"openlid_like_v{GENERATOR_VERSION}_{rows}.parquet"


def generate(rows: int) -> Path:
    """`rows` OpenLID-shaped rows, grouped by language as OpenLID's files are; cached. Deterministic: language
    i gets rows // 41 (+1 for the first rows % 41) sentences of `demo.generate_sentences(code, n, seed=1000 + k)`
    in pieces of ROW_GROUP."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from wldetect.sources import demo

    path = corpus_path(rows)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    codes = sorted(demo.DEMO_LANGUAGES)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    started = time.perf_counter()
    schema = pa.schema([("text", pa.string()), ("language", pa.string())])
    with pq.ParquetWriter(tmp, schema, compression="snappy") as writer:
        for i, code in enumerate(codes):
            n = rows // len(codes) + (1 if i < rows % len(codes) else 0)
            for k, first in enumerate(range(0, n, ROW_GROUP)):
                texts = demo.generate_sentences(code, min(ROW_GROUP, n - first), seed=1000 + k)
                writer.write_table(pa.table({"text": texts, "language": [code] * len(texts)}, schema=schema))
    os.replace(tmp, path)
    print(f"  generated {path} ({rows:,} rows, {path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - started:.0f} s")
    return path


# --------------------------------------------------------------------------------------- measurement


class MemorySampler:
    """Peak RssAnon and RssFile of this process, from /proc/self/status every `interval` seconds."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak = {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> dict[str, int]:
        values = {}
        with open("/proc/self/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("RssAnon", "RssFile"):
                    values[key] = int(rest.split()[0]) * 1024
        return values

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, value in self.now().items():
                self.peak[key] = max(self.peak[key], value)
            self._stop.wait(self.interval)

    def reset(self) -> None:
        self.peak = dict(self.now())

    def __enter__(self):
        self.reset()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        for key, value in self.now().items():
            self.peak[key] = max(self.peak[key], value)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def config_for(parquet: Path):
    from wldetect.config import load_training_config

    config = load_training_config(REPO / "params" / "training" / "demo.yaml")
    config.dataset.name = str(parquet)
    config.training.save_checkpoints = False
    config.training.device = "cpu"
    return config


def child(parquet: Path, rows: int, steps: int, workdir: Path) -> dict:
    """One size, in this (fresh) process: step 1 cold, then `steps` training steps. Printed as one JSON line."""
    from wldetect.sources.models import load_model
    from wldetect.steps.counting import count_tokens
    from wldetect.steps.training import TrainState, fit, prepare

    config = config_for(parquet)
    model = load_model(config.model)
    with MemorySampler() as sampler:
        base = MemorySampler.now()  # model loaded (memory-mapped embeddings), tokenizer built
        started = time.perf_counter()
        counted = count_tokens(config, output=workdir / "token_counts.npy", use_cache=False, verbose=False, model=model)
        step1_s = time.perf_counter() - started
        step1_peak = dict(sampler.peak)
        sampler.reset()
        inputs = prepare(config, token_ids=counted.token_ids_path, verbose=False)
        state = TrainState.create(inputs)
        started = time.perf_counter()
        fit(state, inputs, end_step=steps)
        train_s = time.perf_counter() - started
        train_peak = dict(sampler.peak)
    return {
        "rows": rows,
        "examples": counted.n_examples,
        "tokens": counted.total_tokens,
        "step1_s": step1_s,
        "base": base,
        "step1_peak": step1_peak,
        "train_peak": train_peak,
        "train_s": train_s,
        "train_steps": steps,
        "batch_size": config.training.batch_size,
        "ids_bytes": dir_bytes(counted.token_ids_path),
        "parquet_bytes": parquet.stat().st_size,
    }


def ceiling(parquet: Path, sample: int = 50_000) -> dict:
    """In a process whose tokenizer runs on one thread (RAYON_NUM_THREADS=1), on the first `sample` examples
    of the corpus as step 1 selects them: bare `encode_batch_fast` (the ceiling), and the part of step 1 that
    its main thread does alone (texts fetched through the selection's indices mapping, counting, writing
    ids), with the ids already computed: what limits one process however many tokeniser threads it has."""
    import numpy as np

    from wldetect.sources.data import prepare_training_dataset
    from wldetect.sources.models import load_model
    from wldetect.steps.count_files import TokenIdsWriter
    from wldetect.steps.counting import TokenCounter
    from wldetect.tokenization import configure, encode_texts

    config = config_for(parquet)
    model = load_model(config.model)
    tokenizer = configure(model.tokenizer, config.model.inference.max_sequence_length)
    data = prepare_training_dataset(config.dataset, config.model.language_codes, verbose=False)
    texts_only = data.dataset.select_columns(["text"])
    sample = min(sample, len(data))
    batches = [texts_only[i : min(i + 512, sample)]["text"] for i in range(0, sample, 512)]
    started = time.perf_counter()
    encoded = [encode_texts(tokenizer, batch) for batch in batches]
    bare_s = time.perf_counter() - started
    counter = TokenCounter(model.vocab_size, len(config.model.language_codes))
    with tempfile.TemporaryDirectory() as tmp:
        writer = TokenIdsWriter(Path(tmp))
        started = time.perf_counter()
        for i, batch in enumerate(encoded):
            texts_only[i * 512 : min((i + 1) * 512, sample)]["text"]  # noqa: B018 (the fetch is what is timed)
            counter.add(batch.ids, batch.lengths, np.asarray(data.labels[i * 512 : min((i + 1) * 512, sample)], dtype=np.int64))
            writer.add(batch.ids, batch.lengths)
        writer.close()
        serial_s = time.perf_counter() - started
    return {"sample": sample, "bare_ex_s_per_core": sample / bare_s, "serial_ex_s": sample / serial_s}


def selection(parquet: Path, rows: int, traced: bool) -> dict:
    """Step 1's selection alone (`prepare_training_dataset`: filter, shuffle, cap), as `--selection` prints:
    peak RssAnon above the process before it, or (`traced`, another process: tracing costs memory per
    allocation) NumPy's and Python's own peak by tracemalloc, which does not see Arrow's allocations."""
    import tracemalloc

    from wldetect.sources.data import load_raw_dataset, prepare_training_dataset

    config = config_for(parquet)
    load_raw_dataset(config.dataset)  # imports and the Arrow file opened once, outside the measurement
    if traced:
        tracemalloc.start()
    with MemorySampler() as sampler:
        base = MemorySampler.now()
        started = time.perf_counter()
        data = prepare_training_dataset(config.dataset, config.model.language_codes, verbose=False)
        seconds = time.perf_counter() - started
    traced_peak = tracemalloc.get_traced_memory()[1]
    return {"rows": rows, "examples": len(data), "s": seconds, "anon_peak": sampler.peak["RssAnon"] - base["RssAnon"], "traced_peak": traced_peak}


def run_child(kind: str, parquet: Path, rows: int, steps: int, env: dict | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as workdir:
        command = [sys.executable, __file__, "--child", kind, str(parquet), str(rows), str(steps), workdir]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False)
        if done.returncode != 0:
            sys.exit(f"{kind} run on {rows:,} rows failed:\n{done.stdout}\n{done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------- report


def mb(value: float) -> str:
    return f"{value / 1e6:,.0f} MB"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, parquet, rows, steps, workdir = sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), Path(sys.argv[6])
        result = {"scale": lambda: child(parquet, rows, steps, workdir), "ceiling": lambda: ceiling(parquet),
                  "selection": lambda: selection(parquet, rows, False), "traced": lambda: selection(parquet, rows, True)}[kind]()
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000], help="corpus sizes (rows)")
    parser.add_argument("--large", action="store_true", help="add 16M rows")
    parser.add_argument("--steps", type=int, default=50, help="training steps after step 1 (batch size of demo.yaml)")
    parser.add_argument("--selection", action="store_true", help="only the selection (prepare_training_dataset): seconds, not minutes")
    args = parser.parse_args()
    sizes = sorted(set(args.rows + ([16_000_000] if args.large else [])))

    cores = os.cpu_count() or 1
    print(f"bench_scale: sizes {', '.join(f'{n:,}' for n in sizes)}; {cores} cores, {platform.processor() or platform.machine()}; "
          f"the embedded default's Gemma3 tokenizer (max_sequence_length of params/models/gemma3-270m-demo.yaml)")
    paths = {rows: generate(rows) for rows in sizes}
    for path in paths.values():  # `datasets` converts parquet to Arrow once, before any measurement
        subprocess.run([sys.executable, "-c", f"from datasets import load_dataset; load_dataset('parquet', data_files={str(path)!r}, split='train')"],
                       check=True, capture_output=True)  # fmt: skip
    if args.selection:
        picked = [dict(run_child("selection", paths[rows], rows, 0), traced_peak=run_child("traced", paths[rows], rows, 0)["traced_peak"]) for rows in sizes]
        print(f"{'rows':>11} {'selection s':>11} {'peak RssAnon':>12} {'per row':>8} {'tracemalloc peak':>16} {'per row':>8}")
        for r in picked:
            print(f"{r['rows']:>11,} {r['s']:>11.2f} {mb(r['anon_peak']):>12} {r['anon_peak'] / r['rows']:>8.1f} "
                  f"{mb(r['traced_peak']):>16} {r['traced_peak'] / r['rows']:>8.1f}")
        if len(picked) > 1:
            slope = (picked[-1]["anon_peak"] - picked[0]["anon_peak"]) / (picked[-1]["rows"] - picked[0]["rows"])
            print(f"slope: {slope:.1f} B/row of peak anonymous memory (above the process before the selection)")
        return
    ceil = run_child("ceiling", paths[sizes[0]], sizes[0], 0, env={"RAYON_NUM_THREADS": "1"})
    results = [run_child("scale", paths[rows], rows, args.steps) for rows in sizes]

    print(f"\nceiling: bare encode_batch_fast on 1 core {ceil['bare_ex_s_per_core']:,.0f} ex/s; step 1's main-thread part "
          f"(Arrow reads, counting, writing ids) {ceil['serial_ex_s']:,.0f} ex/s ({ceil['sample']:,} texts)")
    header = (f"{'rows':>11} {'step 1 s':>9} {'ex/s':>8} {'/core vs bare':>13} {'anon peak':>10} {'file peak':>10} "
              f"{'anon B/row':>10} {'file B/row':>10} {'ids B/row':>9} {'train anon':>10} {'train ex/s':>10}")
    print(header)
    for r in results:
        ex_s = r["examples"] / r["step1_s"]
        anon = r["step1_peak"]["RssAnon"] - r["base"]["RssAnon"]
        file = r["step1_peak"]["RssFile"] - r["base"]["RssFile"]
        train_ex_s = r["train_steps"] * r["batch_size"] / r["train_s"] if r["train_s"] else 0.0
        print(f"{r['rows']:>11,} {r['step1_s']:>9.1f} {ex_s:>8,.0f} {ex_s / cores / ceil['bare_ex_s_per_core']:>13.2f} "
              f"{mb(r['step1_peak']['RssAnon']):>10} {mb(r['step1_peak']['RssFile']):>10} {anon / r['rows']:>10.1f} "
              f"{file / r['rows']:>10.1f} {r['ids_bytes'] / r['examples']:>9.1f} {mb(r['train_peak']['RssAnon']):>10} {train_ex_s:>10,.0f}")
    print("(anon/file peak: the process's peak RssAnon/RssFile in step 1; B/row: above the process after loading the model, "
          "divided by rows; ids: the token-ids files on disk)")
    base = results[0]["base"]
    print(f"the process after loading the model and tokenizer, before step 1: {mb(base['RssAnon'])} anonymous, {mb(base['RssFile'])} file-backed")

    first, last = results[0], results[-1]
    slope_anon = slope_file = None
    if last["rows"] > first["rows"]:
        span = last["rows"] - first["rows"]
        slope_anon = (last["step1_peak"]["RssAnon"] - first["step1_peak"]["RssAnon"]) / span
        slope_file = (last["step1_peak"]["RssFile"] - first["step1_peak"]["RssFile"]) / span
        fixed = last["step1_peak"]["RssAnon"] - slope_anon * last["rows"]
        print(f"\nslope {first['rows']:,} -> {last['rows']:,} rows: {slope_anon:.1f} B/row anonymous, {slope_file:.1f} B/row "
              f"file-backed; fixed anonymous part {mb(fixed)}")

    ex_s = last["examples"] / last["step1_s"]
    per_core = ex_s / cores
    ids_per_row = last["ids_bytes"] / last["examples"]
    print(f"\nprojection for the seed's {SEED_ROWS:,} rows (OpenLID-v2; real sentences are longer than these, scale by tokens):")
    print(f"  this machine ({cores} cores): step 1 {SEED_ROWS / ex_s / 3600:.1f} h at {ex_s:,.0f} ex/s; token ids {SEED_ROWS * ids_per_row / 1e9:.1f} GB on disk")
    if slope_anon is not None:
        anon_seed = last["step1_peak"]["RssAnon"] + slope_anon * (SEED_ROWS - last["rows"])
        print(f"  step 1 peak anonymous memory {anon_seed / 1e9:.1f} GB (linear in rows from the slope above); "
              f"file-backed (reclaimable page cache) up to {(last['step1_peak']['RssFile'] + slope_file * (SEED_ROWS - last['rows'])) / 1e9:.1f} GB")
    print(f"  per core: {per_core:,.0f} ex/s of step 1 ({per_core / ceil['bare_ex_s_per_core']:.2f} of bare tokenisation on one core)")
    print(f"  {'cores':>6} {'local (one process)':>22} {'Ray Data (actors)':>20}")
    for n in (cores, 4, 8, 16, 32, 64):
        local = min(n * per_core, ceil["serial_ex_s"])
        print(f"  {n:>6} {SEED_ROWS / local / 3600:>20.1f} h {SEED_ROWS / (n * per_core) / 3600:>18.1f} h")
    print(f"  (local is capped by its main thread at {ceil['serial_ex_s']:,.0f} ex/s: {SEED_ROWS / ceil['serial_ex_s'] / 3600:.1f} h whatever the cores)")


if __name__ == "__main__":
    main()
