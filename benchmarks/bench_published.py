"""The published WordLlamaDetect format, measured: this detector against the published loader's algorithm on
the published model, and what a sparse exp table costs a model trained here.

1. Speed (published model, `published_model_dir()`, with a Gemma3 tokenizer): `WLDetect.predict` against the
   published loader's algorithm restated from the wheel's `wldetect/api.py` (`encode` / `encode_batch`
   without special tokens, `table[ids].sum(0)`, `log(max(., 1e-12))`, softmax, argmax per text), on the same
   sentences, thread CPU time, one thread each (TOKENIZERS_PARALLELISM=false, `num_threads=1`), interleaved
   blocks, medians over --repeats passes; the BPE cache is emptied before every block (new texts). Single
   texts and one batch of all. Also the load, each in a fresh process (medians of 3).
2. Sparsity (--model-path, a model trained here with logsumexp pooling): the model exported dense and
   sparse at a few thresholds T (`wldetect export`), each loaded here: exp-table file size, load time (fresh
   process), accuracy on the sentences of --texts whose language the model has, and agreement of the
   predicted language with the dense export; next to the model's own E3M4 and fp32 tables.

    .venv/bin/python benchmarks/bench_published.py [--model-path DIR] [--tokenizer FILE] [--texts wldetect/data/pud]
        [--thresholds auto | 10,100,...] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread each: the published loader's batch too
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from safetensors import safe_open  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

from wldetect.detect import WLDetect  # noqa: E402
from wldetect.published import published_model_dir  # noqa: E402

BLOCK = 50


class PublishedLoader:
    """wldetect 0.1.2's `WLDetect` (api.py), restated: the same NumPy calls in the same order."""

    def __init__(self, model_dir: Path, tokenizer_path: Path):
        with safe_open(str(model_dir / "lookup_table_exp.safetensors"), framework="numpy") as f:
            if f.get_tensor("dtype")[0] == 32:
                self.lookup_table = f.get_tensor("lookup_table").astype(np.float32)
            else:
                data = f.get_tensor("data").astype(np.float32)
                row, col = f.get_tensor("row").astype(np.int32), f.get_tensor("col").astype(np.int32)
                self.lookup_table = np.zeros(tuple(f.get_tensor("shape")), dtype=np.float32)
                self.lookup_table[row, col] = data
        config = yaml.safe_load((model_dir / "model_config.yaml").read_text())
        self.index_to_language = {i: code for code, i in config["languages"].items()}
        self.max_length = config["inference"]["max_sequence_length"]
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))

    def _detect_from_tokens(self, token_ids):
        if len(token_ids) == 0:
            return None
        summed = np.sum(self.lookup_table[token_ids], axis=0)
        pooled = np.log(np.maximum(summed, 1e-12))
        x = pooled - np.max(pooled, axis=-1, keepdims=True)
        e = np.exp(x)
        probs = e / np.sum(e, axis=-1, keepdims=True)
        top = int(np.argmax(probs))
        return self.index_to_language[top], float(probs[top])

    def predict(self, text):
        self.tokenizer.enable_truncation(max_length=self.max_length)
        if isinstance(text, str):
            return self._detect_from_tokens(np.array(self.tokenizer.encode(text, add_special_tokens=False).ids))
        encodings = self.tokenizer.encode_batch(text, add_special_tokens=False)
        return [self._detect_from_tokens(np.array(e.ids, dtype=np.int64)) for e in encodings]


def read_texts(directory: Path) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for path in sorted(directory.glob("*.txt")):
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        texts += lines
        labels += [path.stem] * len(lines)
    return texts, labels


def clear_cache(tokenizer: Tokenizer) -> None:
    tokenizer.model._clear_cache()


def speed(model_dir: Path, tokenizer_path: Path, texts: list[str], repeats: int) -> None:
    ours = WLDetect.load(model_dir, tokenizer=tokenizer_path, num_threads=1)
    theirs = PublishedLoader(model_dir, tokenizer_path)
    assert ours.predict(texts[:500]) == theirs.predict(texts[:500])
    sample = texts[:: max(1, len(texts) // 2000)]
    single = {"wldetect": [], "published": []}
    batch = {"wldetect": [], "published": []}
    for _ in range(repeats + 1):
        totals = {"wldetect": 0.0, "published": 0.0}
        for start in range(0, len(sample), BLOCK):
            block = sample[start : start + BLOCK]
            for name, detector in (("wldetect", ours), ("published", theirs)):
                clear_cache(detector.tokenizer)
                began = time.thread_time()
                for text in block:
                    detector.predict(text)
                totals[name] += time.thread_time() - began
        for name, detector in (("wldetect", ours), ("published", theirs)):
            single[name].append(totals[name] / len(sample))
            clear_cache(detector.tokenizer)
            began = time.thread_time()
            detector.predict(texts)
            batch[name].append((time.thread_time() - began) / len(texts))
    for label, figures in (("single text", single), (f"batch of {len(texts):,}", batch)):
        mine, published = (statistics.median(figures[name][1:]) for name in ("wldetect", "published"))
        print(
            f"  {label:<18} wldetect {mine * 1e6:7.1f} us/text   published loader {published * 1e6:7.1f} us/text   "
            f"published / wldetect time {published / mine:.2f}"
        )
    loads = {}
    for name, setup, code in (
        (
            "wldetect",
            "from wldetect.detect import WLDetect",
            f"WLDetect.load({str(model_dir)!r}, tokenizer={str(tokenizer_path)!r})",
        ),
        (
            "published",
            "from benchmarks.bench_published import PublishedLoader; from pathlib import Path",
            f"PublishedLoader(Path({str(model_dir)!r}), Path({str(tokenizer_path)!r}))",
        ),
    ):
        loads[name] = statistics.median(load_seconds(setup, code) for _ in range(3))
    print(
        f"  load (CPU s, fresh process, imports left out): wldetect {loads['wldetect']:.2f} s, published loader {loads['published']:.2f} s"
    )


def load_seconds(setup: str, code: str) -> float:
    """CPU time of `code` in a fresh process after `setup` (the imports and interpreter start left out): CPU
    time, not wall time, so that a machine shared with other work does not inflate it."""
    script = f"import time, sys; sys.path.insert(0, {str(REPO)!r}); {setup}; t = time.process_time(); {code}; print(time.process_time() - t)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO)
    return float(done.stdout.strip().splitlines()[-1])


def sparsity(model_path: Path, texts: list[str], labels: list[str], thresholds: str) -> None:
    from wldetect.artifacts import export_wordllamadetect
    from wldetect.lookup import FILE_NAMES

    fp32 = WLDetect.load(model_path, table="fp32")
    known = set(fp32.languages)
    keep = [i for i, label in enumerate(labels) if label in known]
    texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    exp_values = np.exp(fp32.table)
    if thresholds == "auto":  # keep about 10%, 3%, 1% and 0.3% of the entries
        chosen = [float(np.quantile(exp_values, 1 - share)) for share in (0.10, 0.03, 0.01, 0.003)]
    else:
        chosen = [float(t) for t in thresholds.split(",")]
    print(f"\n{model_path}: {len(fp32.languages)} languages, vocab {fp32.table.shape[0]:,}; {len(texts):,} sentences")

    def accuracy(predictions):
        return np.mean([p is not None and p[0] == label for p, label in zip(predictions, labels)])

    reference = fp32.predict(texts)
    print(
        f"  {'table':<26} {'MB':>7} {'entries kept':>14} {'load cpu s':>10} {'accuracy':>9} {'agree fp32':>11} {'agree dense':>12}"
    )

    def row(label, directory, table, size, kept, dense_predictions=None):
        detector = WLDetect.load(directory, table=table)
        predictions = detector.predict(texts)
        seconds = statistics.median(
            load_seconds("from wldetect.detect import WLDetect", f"WLDetect.load({str(directory)!r}, table={table!r})")
            for _ in range(3)
        )
        agree = np.mean([(p and p[0]) == (r and r[0]) for p, r in zip(predictions, reference)])
        dense = (
            ""
            if dense_predictions is None
            else f"{np.mean([(p and p[0]) == (d and d[0]) for p, d in zip(predictions, dense_predictions)]):.4f}"
        )
        print(
            f"  {label:<26} {size / 1024**2:7.1f} {kept:>14} {seconds:10.2f} {accuracy(predictions):9.4f} {agree:11.4f} {dense:>12}"
        )
        return predictions

    for table in ("fp32", "e3m4"):
        row(f"this project {table}", model_path, table, (model_path / FILE_NAMES[table]).stat().st_size, "all")
    with tempfile.TemporaryDirectory() as scratch:
        dense_dir = Path(scratch) / "dense"
        result = export_wordllamadetect(model_path, dense_dir, tokenizer_repo="unused/for-the-benchmark")
        dense_predictions = row("exported dense exp", dense_dir, "e3m4", result["size_bytes"], "all")
        for threshold in chosen:
            directory = Path(scratch) / f"sparse-{threshold:g}"
            result = export_wordllamadetect(
                model_path, directory, sparse_threshold=threshold, tokenizer_repo="unused/x"
            )
            kept = f"{result['stored_entries'] / result['entries']:.2%}"
            row(f"exported sparse T={threshold:.3g}", directory, "e3m4", result["size_bytes"], kept, dense_predictions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", type=Path, help="a model trained here with logsumexp pooling (part 2)")
    parser.add_argument("--tokenizer", type=Path, help="Gemma3 tokenizer.json (default: the embedded default's)")
    parser.add_argument("--texts", type=Path, default=REPO / "wldetect" / "data" / "pud")
    parser.add_argument("--thresholds", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    texts, labels = read_texts(args.texts)
    if not args.skip_speed:
        tokenizer = args.tokenizer
        if tokenizer is None:
            from wldetect.config import load_model_config
            from wldetect.sources.models import load_tokenizer_file

            spec = load_model_config(REPO / "params" / "models" / "gemma3-270m-demo.yaml").model_specs[0]
            tokenizer = load_tokenizer_file(spec)[1]
        model_dir = published_model_dir()
        print(f"Published model {model_dir} with {tokenizer}, {len(texts):,} sentences, one thread each:")
        speed(model_dir, tokenizer, texts, args.repeats)
    if args.model_path is not None:
        sparsity(args.model_path, texts, labels, args.thresholds)


if __name__ == "__main__":
    main()
