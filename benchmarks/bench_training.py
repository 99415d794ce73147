"""Training throughput (examples/s) against a plain reference of the same shapes, on the same machine.

The reference is what a straightforward implementation does (the seed's model): gather
`E[ids] * w[ids]` for the whole padded batch (B, L, H), project every position to (B, L, C), mask the
padding, pool, cross-entropy, backward, AdamW step. Ours gathers and projects real tokens only, applies the
token weight after the projection, and uses a cheaper dropout. Both run on identical batches, interleaved
over --repeats rounds (medians reported), with torch's default thread count.

Two settings:
- `demo`: the embedded default's real batches (step 1's token ids of the demo corpus); also the full
  `train()` loop (reading the ids, batching, logging, checkpoints) for its end-to-end examples/s;
- `gemma`: a Gemma3-sized synthetic model (262,208 x 5,376 float32 = 5.6 GB, held once; 148 languages),
  Zipf-distributed token ids with sentence-like lengths; also times building and quantising the lookup table.

    .venv/bin/python benchmarks/bench_training.py [--settings demo gemma] [--batch-size 256] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's package, whatever the environment has installed

import numpy as np
import torch
from torch import nn


class ReferenceModel(nn.Module):
    """The plain formulation: everything on the padded (B, L, H) tensor, no dropout."""

    def __init__(self, embeddings: torch.Tensor, n_languages: int):
        super().__init__()
        self.register_buffer("embeddings", embeddings, persistent=False)
        self.token_weights = nn.Parameter(torch.ones(embeddings.shape[0], 1))
        self.projection = nn.Linear(embeddings.shape[1], n_languages)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.projection(self.embeddings[ids] * self.token_weights[ids])
        return torch.logsumexp(logits.masked_fill(~mask[..., None], float("-inf")), dim=1)


DEVICE = torch.device("cpu")


def time_steps(model: nn.Module, batches: list):
    model.to(DEVICE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def run() -> float:
        start = time.perf_counter()
        for ids, mask, labels in batches:
            ids, mask, labels = ids.to(DEVICE), mask.to(DEVICE), labels.to(DEVICE)  # as the training loop does
            loss = nn.functional.cross_entropy(model(ids, mask), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return run


def compare(methods: dict, n_examples: int, repeats: int) -> dict[str, float]:
    for method in methods.values():  # warm-up: allocator, page cache, OpenMP pool
        method()
    timings: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, method in methods.items():
            timings[name].append(method())
    return {name: n_examples / statistics.median(times) for name, times in timings.items()}


def report(title: str, rates: dict[str, float], reference: str) -> None:
    print(f"\n{title}")
    print(f"  {'method':<46} {'examples/s':>11} {'vs reference':>13}")
    for name, rate in rates.items():
        print(f"  {name:<46} {rate:>11,.0f} {rate / rates[reference]:>13.2f}")


def torch_batches(batches: list) -> list:
    return [(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(labels)) for ids, mask, labels in batches]


def demo_setting(args) -> None:
    from wldetect.config import load_training_config
    from wldetect.sources.models import load_model
    from wldetect.steps.counting import count_tokens
    from wldetect.steps.model import LanguageDetectionModel
    from wldetect.steps.training import epoch_batches, train

    config = load_training_config(args.config, {"training.batch_size": args.batch_size})
    loaded = load_model(config.model)
    counted = count_tokens(config, verbose=False, model=loaded)  # step 1's token ids (cached), which training reads
    corpus = counted.corpus()
    batches = []
    for ids, mask, rows in epoch_batches(corpus, 0, 0, args.batch_size):
        batches.append((ids, mask, np.asarray(corpus.labels[rows])))
        if len(batches) == args.steps:
            break
    tokens = sum(int(m.sum()) for _, m, _ in batches)
    padded = sum(m.size for _, m, _ in batches)
    embeddings = torch.from_numpy(np.array(loaded.embeddings))
    n_languages = config.model.n_languages
    dropout = config.training.projection.dropout
    tb = torch_batches(batches)
    methods = {
        "reference (padded gather+matmul, no dropout)": time_steps(ReferenceModel(embeddings, n_languages), tb),
        f"wldetect model, dropout {dropout}": time_steps(
            LanguageDetectionModel(embeddings, n_languages, dropout=dropout), tb
        ),
        "wldetect model, dropout 0": time_steps(LanguageDetectionModel(embeddings, n_languages, dropout=0.0), tb),
    }
    rates = compare(methods, len(batches) * args.batch_size, args.repeats)

    with tempfile.TemporaryDirectory() as tmp:  # the whole loop: reading step 1's ids, batching, logging, checkpoints
        config.training.device = DEVICE.type
        result = train(config, output_dir=Path(tmp), token_ids=counted.token_ids_path, verbose=False, stop_after_steps=args.loop_steps)
        loop_rates = [h["examples_per_s"] for h in result.history[1:]]  # the first entry includes warm-up
    rates[f"full train() loop ({args.loop_steps} steps, median)"] = float(np.median(loop_rates))
    report(
        f"demo: {config.model.model_specs[0].name} {tuple(embeddings.shape)}, {n_languages} languages, batch {args.batch_size}, {len(batches)} "
        f"real batches ({tokens / len(batches) / args.batch_size:.1f} tokens/example, padding {1 - tokens / padded:.0%} of "
        f"the padded tensor)",
        rates,
        "reference (padded gather+matmul, no dropout)",
    )


def gemma_setting(args) -> None:
    from wldetect.lookup import compute_lookup_table, quantize
    from wldetect.steps.model import LanguageDetectionModel

    vocab_size, hidden, n_languages = 262_208, 5_376, 148
    start = time.perf_counter()
    embeddings = torch.empty(vocab_size, hidden, device=DEVICE).uniform_(-0.05, 0.05)  # one 5.6 GB copy, in place
    print(
        f"\ngemma: synthetic embeddings {tuple(embeddings.shape)} float32, {embeddings.nbytes / 1e9:.1f} GB "
        f"(filled in {time.perf_counter() - start:.0f} s)"
    )
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(args.gemma_steps):
        lengths = np.clip(rng.lognormal(np.log(30), 0.5, args.batch_size), 3, 200).astype(np.int64)
        mask = np.arange(lengths.max())[None, :] < lengths[:, None]
        ids = np.zeros(mask.shape, dtype=np.int64)
        ids[mask] = np.minimum(rng.zipf(1.2, int(lengths.sum())), vocab_size) - 1
        batches.append((ids, mask, rng.integers(0, n_languages, args.batch_size)))
    tb = torch_batches(batches)
    methods = {
        "reference (padded gather+matmul, no dropout)": time_steps(ReferenceModel(embeddings, n_languages), tb),
        "wldetect model, dropout 0.2": time_steps(LanguageDetectionModel(embeddings, n_languages, dropout=0.2), tb),
        "wldetect model, dropout 0": time_steps(LanguageDetectionModel(embeddings, n_languages, dropout=0.0), tb),
    }
    rates = compare(methods, len(batches) * args.batch_size, max(1, args.repeats // 2))
    report(f"gemma: {n_languages} languages, batch {args.batch_size}, {len(batches)} synthetic batches", rates,
           "reference (padded gather+matmul, no dropout)")  # fmt: skip

    model = LanguageDetectionModel(embeddings, n_languages, dropout=0.0)
    start = time.perf_counter()
    if DEVICE.type != "cpu":
        return  # the lookup table is built on the CPU from the cached embeddings; timed in CPU runs
    table = compute_lookup_table(
        embeddings.numpy(), model.token_weights.detach().numpy(), model.projection.weight.detach().numpy(),
        model.projection.bias.detach().numpy(),
    )  # fmt: skip
    built = time.perf_counter() - start
    start = time.perf_counter()
    quantized = quantize(table, "e3m4")
    print(f"  lookup table {table.shape}: built in {built:.1f} s (row blocks, no second copy of E), E3M4 quantised "
          f"in {time.perf_counter() - start:.1f} s ({quantized.stored.nbytes / 1e6:.1f} MB)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=["demo", "gemma"], choices=["demo", "gemma"])
    parser.add_argument("--config", type=Path, default=REPO / "params" / "training" / "demo.yaml")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="demo batches per timed round")
    parser.add_argument("--loop-steps", type=int, default=60, help="steps of the full train() loop")
    parser.add_argument("--gemma-steps", type=int, default=4, help="gemma batches per timed round")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the model steps run")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}, device {DEVICE}"
        + (f" ({torch.cuda.get_device_name(DEVICE)})" if DEVICE.type == "cuda" else "")
    )
    if "demo" in args.settings:
        demo_setting(args)
    if "gemma" in args.settings:
        gemma_setting(args)


if __name__ == "__main__":
    main()
