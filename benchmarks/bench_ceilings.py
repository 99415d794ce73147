"""Why two of detection's goals stop where they do: what bounds `WLDetect.load` and the single-text path.

Three measurements on a trained model's `tokenizer.json` (default: the newest completed 03_train run's), each
a ratio within this process:

- GIL: a NumPy thread counts small iterations while the main thread runs `Tokenizer.from_file`, then for
  the same time after it. Few iterations during the load mean the tokenizer holds the GIL throughout, so no
  Python thread of the detector can work alongside it.
- compact JSON: `Tokenizer.from_str` of the file as written (indented) vs of the same tokenizer written as
  compact JSON (`json.dumps(..., separators=(",", ":"))`), alternately, medians.
- interleaving: thread CPU per text of a loop of bare `encode_batch_fast([text])` calls, of the same loop
  with one `np.empty` of the gathered rows' shape after each call, with the detector's `pool_one` after
  each call, of `predict(text)`, and of `pool_one` alone on the same texts' ids computed beforehand (alternating blocks; the texts repeat, so the tokenizer's word cache is hit as in the
  "repeated texts" figures of bench_detect.py).

    .venv/bin/python benchmarks/bench_ceilings.py [--model-path runs/<id>/artifacts] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402
from bench_detect import newest_trained_model, read_texts  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

from wldetect import WLDetect  # noqa: E402


def gil_during_load(tokenizer_json: Path) -> tuple[int, int, float]:
    """NumPy iterations of another thread during `Tokenizer.from_file`, during as long a time after, and the
    load's seconds."""
    block = np.ones((1024, 149), dtype=np.float32)
    count, stop = [0], threading.Event()

    def spin():
        while not stop.is_set():
            np.multiply(block, 1.0, out=block)
            count[0] += 1

    thread = threading.Thread(target=spin)
    thread.start()
    time.sleep(0.2)
    before = count[0]
    start = time.perf_counter()
    Tokenizer.from_file(str(tokenizer_json))
    seconds = time.perf_counter() - start
    during = count[0] - before
    time.sleep(seconds)
    after = count[0] - before - during
    stop.set()
    thread.join()
    return during, after, seconds


def compact_load(tokenizer_json: Path, repeats: int) -> tuple[float, float, int, int]:
    """Median seconds of `from_str` of the file as written and of its compact form, and both sizes."""
    written = tokenizer_json.read_text(encoding="utf-8")
    compact = json.dumps(json.loads(written), ensure_ascii=False, separators=(",", ":"))
    if Tokenizer.from_str(compact).to_str() != Tokenizer.from_str(written).to_str():
        sys.exit("the compact form is not the same tokenizer")
    times: dict[str, list[float]] = {"written": [], "compact": []}
    for _ in range(repeats):
        for name, text in (("written", written), ("compact", compact)):
            start = time.perf_counter()
            Tokenizer.from_str(text)
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["written"]), statistics.median(times["compact"]), len(written), len(compact)


def interleaving(model_path: Path, texts: list[str], repeats: int) -> dict[str, float]:
    """Median thread-CPU microseconds per text of the three loops (see the module docstring)."""
    detector = WLDetect.load(model_path, num_threads=1)
    encode, pool_one, width = detector.tokenizer.encode_batch_fast, detector.pooler.pool_one, detector.pooler.rows.shape[1]

    def bare(block):
        for text in block:
            _ = encode([text], False, False)[0].ids

    def with_empty(block):
        for text in block:
            ids = encode([text], False, False)[0].ids
            np.empty((len(ids), width), dtype=np.float32)

    def with_pool_one(block):
        for text in block:
            ids = encode([text], False, False)[0].ids
            if ids:
                pool_one(ids)

    ids_of = {text: encode([text], False, False)[0].ids for text in texts}

    def pool_one_alone(block):
        for text in block:
            if ids_of[text]:
                pool_one(ids_of[text])

    def predict(block):
        for text in block:
            detector.predict(text)

    loops = {
        "bare encode_batch_fast([text])": bare,
        "predict(text)": predict,
        "+ np.empty": with_empty,
        "+ pool_one": with_pool_one,
        "pool_one alone (ids precomputed)": pool_one_alone,
    }
    for loop in loops.values():  # warm-up: fills the word cache
        loop(texts)
    samples: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(repeats):
        for start in range(0, len(texts), 50):
            block = texts[start : start + 50]
            for name, loop in loops.items():
                begin = time.thread_time()
                loop(block)
                samples[name].append((time.thread_time() - begin) / len(block))
    return {name: statistics.median(values) * 1e6 for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", type=Path, default=None, help="default: the newest completed 03_train run's")
    parser.add_argument("--texts", type=Path, default=REPO / "wldetect" / "data" / "pud")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model_path = args.model_path or newest_trained_model()
    tokenizer_json = model_path / "tokenizer.json"
    print(f"{model_path}")

    during, after, seconds = gil_during_load(tokenizer_json)
    print(f"GIL: Tokenizer.from_file took {seconds:.2f} s; another thread's NumPy iterations during it: {during:,}, "
          f"in the same time after it: {after:,}")  # fmt: skip

    written_s, compact_s, written_size, compact_size = compact_load(tokenizer_json, args.repeats)
    print(f"compact JSON: from_str of the file as written ({written_size / 1e6:.0f} MB) {written_s:.2f} s, of the "
          f"same tokenizer as compact JSON ({compact_size / 1e6:.0f} MB) {compact_s:.2f} s: "
          f"{compact_s / written_s:.2f}x")  # fmt: skip

    texts = read_texts(args.texts)[0][::5][:2000]
    per_text = interleaving(model_path, texts, args.repeats)
    bare = per_text["bare encode_batch_fast([text])"]
    print(f"interleaving, {len(texts):,} repeated texts, thread CPU per text:")
    for name, micros in per_text.items():
        print(f"  {name:32s} {micros:6.1f} us  ({micros - bare:+.1f} us)")


if __name__ == "__main__":
    main()
