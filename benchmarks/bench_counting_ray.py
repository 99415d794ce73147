"""Token counting on Ray Data against the single-process count, on the demo corpus split into Parquet shards.

The demo corpus is written as --shards Parquet files and read back as a sharded local dataset (the same
selection code as `count-tokens` on a directory of shards). Then, on the same selected examples:
- `count_dataset` (single process, --num-workers tokeniser threads), the default executor;
- `ray_count_dataset` (the `--executor ray` path) with blocks of each --block-examples size, on a local Ray
  instance of --num-cpus CPUs (one actor per CPU).
Each prints the median seconds of --repeats runs, tokens/s and its ratio to the single-process count; the
Ray times are then fitted as `fixed + per_block * blocks`, which gives the cost of one Ray task (a block).
Ray's start-up (`ray.init`, not part of a count on a running cluster) is printed separately. Every Ray
count is checked equal to the single-process count. On a 2-core machine the ratio shows the overhead,
not a speed-up: both paths already use both cores.

    .venv/bin/python benchmarks/bench_counting_ray.py [--shards 8] [--block-examples 82000 16384 4096 1024]
        [--num-cpus 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--training-config", type=Path, default=REPO / "params" / "training" / "demo.yaml")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--block-examples", type=int, nargs="+", default=[82_000, 16_384, 4_096, 1_024])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--address", default=None, help="an existing Ray cluster instead of a local instance")
    args = parser.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq

    from wldetect.config import load_training_config
    from wldetect.sources.data import prepare_training_dataset
    from wldetect.sources.models import load_model
    from wldetect.steps.counting import count_dataset, ray_count_dataset
    from wldetect.tokenization import configure
    from wldetect.workflow.executors import init_ray

    os.chdir(REPO)
    config = load_training_config(args.training_config)
    model = load_model(config.model)
    tokenizer = configure(model.tokenizer, config.model.inference.max_sequence_length)
    demo = prepare_training_dataset(config.dataset, config.model.language_codes, verbose=False)
    with tempfile.TemporaryDirectory(prefix="wldetect-shards-") as tmp:
        table = demo.dataset.with_format("arrow")[:]  # the demo examples, in training order
        rows = len(table)
        for shard in range(args.shards):
            part = table.slice(shard * rows // args.shards, (shard + 1) * rows // args.shards - shard * rows // args.shards)
            pq.write_table(pa.table({"text": part["text"], "language": part["language"]}), Path(tmp) / f"train-{shard:05d}.parquet")
        sharded = config.dataset.model_copy(update={"name": tmp, "split": "train"})
        data = prepare_training_dataset(sharded, config.model.language_codes, verbose=False)

        reference = count_dataset(data, tokenizer, model.vocab_size, args.batch_size, args.num_workers, progress=False)
        n_tokens = int(reference.counts.sum())
        started = time.perf_counter()
        ray = init_ray(args.address, num_cpus=None if args.address else args.num_cpus)
        startup = time.perf_counter() - started
        cpus = int(ray.cluster_resources().get("CPU", 0))

        def single() -> None:
            count_dataset(data, tokenizer, model.vocab_size, args.batch_size, args.num_workers, progress=False)

        def on_ray(block: int):
            def run() -> None:
                counter = ray_count_dataset(data, tokenizer, model.vocab_size, args.batch_size, block_examples=block, progress=False)
                assert np.array_equal(counter._table, reference._table), "Ray count differs from the single-process count"
            return run

        methods = {f"single process, num_workers={args.num_workers}": (single, 0)}
        for block in args.block_examples:
            blocks = -(-len(data) // block)
            methods[f"ray, {blocks} block(s) of <= {block:,} examples"] = (on_ray(block), blocks)
        timings: dict[str, list[float]] = {name: [] for name in methods}
        for method, _ in methods.values():  # warm-up: page cache, Ray workers' imports
            method()
        for _ in range(args.repeats):
            for name, (method, _) in methods.items():
                start = time.perf_counter()
                method()
                timings[name].append(time.perf_counter() - start)

    print(f"{args.training_config.name} as {args.shards} Parquet shards: {len(data):,} examples, {n_tokens:,} tokens; "
          f"Ray: {cpus} CPU(s), started in {startup:.1f} s; {os.cpu_count()} cores, {platform.processor() or platform.machine()}")
    base = statistics.median(timings[next(iter(methods))])
    print(f"{'method':<48} {'median s':>9} {'tokens/s':>12} {'vs single':>10}")
    for name, runs in timings.items():
        print(f"{name:<48} {statistics.median(runs):>9.3f} {n_tokens / statistics.median(runs):>12,.0f} {base / statistics.median(runs):>10.2f}")
    ray_points = [(blocks, statistics.median(timings[name])) for name, (_, blocks) in methods.items() if blocks]
    if len(ray_points) >= 2:
        per_block, fixed = np.polyfit([b for b, _ in ray_points], [t for _, t in ray_points], 1)
        print(f"Ray fit: {fixed:.2f} s per count (actor pool start, shipping the data, collecting) + {per_block * 1000:.1f} ms per block (task)")


if __name__ == "__main__":
    main()
