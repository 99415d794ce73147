"""Token counting throughput against its ceiling: bare `encode_batch_fast` on the same texts, batches and threads.

Counting (step 1) = fetch texts from Arrow + `encode_texts` (Rust tokenisation + ids to NumPy) + per-language
`np.add.at`. Its natural ceiling is tokenisation alone, so this prints tokens/s of both (median of --repeats
runs, interleaved so machine noise hits both alike) and their ratio; the goal is >= 0.8.

    .venv/bin/python benchmarks/bench_counting.py [--training-config params/training/demo.yaml]
        [--batch-size 512] [--num-workers 0 1 2] [--repeats 5]

Model and dataset loading are not timed (they are cached and the same for any counting method).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--training-config", type=Path, default=REPO / "params" / "training" / "demo.yaml")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--num-workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from wldetect.config import load_training_config
    from wldetect.sources.data import prepare_training_dataset
    from wldetect.sources.models import load_model
    from wldetect.steps.counting import count_dataset
    from wldetect.tokenization import configure

    config = load_training_config(args.training_config)
    model = load_model(config.model)
    data = prepare_training_dataset(config.dataset, config.model.language_codes, verbose=False)
    tokenizer = configure(model.tokenizer, config.model.inference.max_sequence_length)
    texts = data.texts(0, len(data))
    batches = [texts[i : i + args.batch_size] for i in range(0, len(texts), args.batch_size)]
    n_tokens = sum(len(e.ids) for b in batches for e in tokenizer.encode_batch(b, add_special_tokens=False))

    def bare() -> None:
        for batch in batches:
            tokenizer.encode_batch(batch, add_special_tokens=False)

    def bare_fast() -> None:
        for batch in batches:
            tokenizer.encode_batch_fast(batch, add_special_tokens=False)

    def counting(workers: int):
        def run() -> None:
            counter = count_dataset(data, tokenizer, model.vocab_size, args.batch_size, workers, progress=False)
            assert int(counter.counts.sum()) == n_tokens
        return run

    # encode_texts calls encode_batch_fast, so that is the ceiling; encode_batch (with offsets) for reference.
    methods = {"bare encode_batch_fast (ceiling)": bare_fast, "bare encode_batch (reference)": bare}
    for workers in args.num_workers:
        methods[f"counting, num_workers={workers}"] = counting(workers)

    timings: dict[str, list[float]] = {name: [] for name in methods}
    for method in methods.values():  # warm-up: page cache, rayon pool, allocator
        method()
    for _ in range(args.repeats):
        for name, method in methods.items():
            start = time.perf_counter()
            method()
            timings[name].append(time.perf_counter() - start)

    threads = os.environ.get("RAYON_NUM_THREADS") or f"rayon default ({os.cpu_count()} cores)"
    print(f"{args.training_config.name}: {len(texts):,} texts, {n_tokens:,} tokens, batch_size={args.batch_size}, "
          f"tokenizer threads: {threads}, {platform.processor() or platform.machine()}")
    ceiling = n_tokens / statistics.median(timings["bare encode_batch_fast (ceiling)"])
    print(f"{'method':<52} {'median s':>9} {'tokens/s':>12} {'vs bare':>8}")
    for name, runs in timings.items():
        rate = n_tokens / statistics.median(runs)
        print(f"{name:<52} {statistics.median(runs):>9.3f} {rate:>12,.0f} {rate / ceiling:>8.2f}")


if __name__ == "__main__":
    main()
