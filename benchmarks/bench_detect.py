"""NumPy-only detection against its ceilings: single texts, batches on one and on all cores, loading, memory.

For a trained artifacts directory (--model-path) and for a synthetic Gemma3-27B-sized table (262,208 tokens x
148 languages, E3M4, logsumexp pooling) written here with the project's own writers next to the model's
`tokenizer.json`, each figure is a ratio to a ceiling measured in the same run, on the same texts:

- single text: `predict(text)` per text vs bare `tokenizer.encode(text).ids` per text (goal >= 0.8);
- batch, 1 thread: `predict(texts)` with `num_threads=1` vs bare `encode_batch_fast(texts)`, both with the
  tokenizer's own parallelism off (`TOKENIZERS_PARALLELISM=false`);
- batch, all threads: `predict(texts)` with the defaults (every core, tokenizer parallelism on) vs the 1-thread
  run (goal >= 1.7 on 2 cores);
- load: `WLDetect.load` in a fresh process, vs the bare reading of its files (`Tokenizer.from_file` plus the
  table's bytes); memory: the load's peak resident-set growth vs one float32 copy of the table.

One-thread figures are CPU time of the measuring thread (`time.thread_time`), so other processes on a shared
machine do not count; all-thread figures are wall time. Methods are interleaved in small blocks over
--repeats passes and medians are reported. Then accuracy on --texts (languages the model lacks are left out
and listed), with the count of texts answered None (no language evidence), and py3langid for reference.

    .venv/bin/python benchmarks/bench_detect.py --model-path artifacts/demo \
        [--texts wldetect/data/pud] [--table e3m4] [--repeats 5] [--skip-synthetic] [--skip-py3langid]

`--texts` is a directory of `<code>.txt` files, one sentence per line, read in place.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's package, whatever the environment has installed
DEFAULT_TEXTS = REPO / "wldetect" / "data" / "pud"  # the PUD sentences shipped with the package
GEMMA3_27B_ROWS, GEMMA3_27B_LANGUAGES = 262_208, 148
BLOCK = 50  # texts per interleaved block of the single-text loops

# py3langid (ISO 639-1) -> FLORES-style codes of the demo languages; also used for its answers on others.
ISO1_TO_CODE = {
    "en": "eng_Latn", "fr": "fra_Latn", "de": "deu_Latn", "es": "spa_Latn", "it": "ita_Latn", "pt": "por_Latn",
    "nl": "nld_Latn", "sv": "swe_Latn", "da": "dan_Latn", "nb": "nob_Latn", "no": "nob_Latn", "fi": "fin_Latn",
    "is": "isl_Latn", "pl": "pol_Latn", "cs": "ces_Latn", "sk": "slk_Latn", "sl": "slv_Latn", "ro": "ron_Latn",
    "hu": "hun_Latn", "lt": "lit_Latn", "lv": "lvs_Latn", "tr": "tur_Latn", "id": "ind_Latn", "ms": "zsm_Latn",
    "vi": "vie_Latn", "tl": "tgl_Latn", "ca": "cat_Latn", "ru": "rus_Cyrl", "uk": "ukr_Cyrl", "bg": "bul_Cyrl",
    "mk": "mkd_Cyrl", "el": "ell_Grek", "he": "heb_Hebr", "ar": "arb_Arab", "fa": "pes_Arab", "ur": "urd_Arab",
    "hi": "hin_Deva", "bn": "ben_Beng", "ta": "tam_Taml", "zh": "cmn_Hans", "ja": "jpn_Jpan", "ko": "kor_Hang",
    "gl": "glg_Latn", "th": "tha_Thai",
}  # fmt: skip

# Run in a fresh process: load time and peak RSS growth of WLDetect.load, and of reading its files bare.
LOAD_PROBE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from tokenizers import Tokenizer
from wldetect.detect import WLDetect
from wldetect.lookup import FILE_NAMES

def peak_rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

path, table = Path(sys.argv[2]), sys.argv[3]
before = peak_rss()  # first: the bare reading below would raise the high-water mark
start = time.perf_counter()
detector = WLDetect.load(path, table=table)
seconds = time.perf_counter() - start
peak_delta = peak_rss() - before
start = time.perf_counter()
Tokenizer.from_file(str(path / "tokenizer.json"))
(path / FILE_NAMES[table]).read_bytes()
bare = time.perf_counter() - start
print(json.dumps({"load_s": seconds, "bare_read_s": bare, "peak_rss_delta": peak_delta,
                  "float32_table_bytes": detector.pooler.rows[:, :-1].nbytes}))
"""


def read_texts(directory: Path) -> tuple[list[str], list[str]]:
    texts, gold = [], []
    for path in sorted(directory.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").split("\n"):
            if line.strip():
                texts.append(line.rstrip("\r"))
                gold.append(path.stem)
    if not texts:
        sys.exit(f"{directory}: no <code>.txt files with text")
    return texts, gold


def tokenizer_parallelism(enabled: bool) -> None:
    """The tokenizer reads this variable at every batch call (the benchmark itself is single-threaded)."""
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if enabled else "false"


def median_times(methods: dict, repeats: int, clock) -> dict[str, float]:
    """Median seconds per method over `repeats` interleaved passes (first pass: warm-up, not counted)."""
    timings: dict[str, list[float]] = {name: [] for name in methods}
    for repeat in range(repeats + 1):
        order = list(methods.items()) if repeat % 2 else list(reversed(methods.items()))
        for name, (setup, method) in order:
            setup()
            start = clock()
            method()
            if repeat:
                timings[name].append(clock() - start)
    return {name: statistics.median(times) for name, times in timings.items()}


def single_text_times(detector, texts: list[str], repeats: int) -> tuple[float, float]:
    """Thread CPU seconds of bare `encode(...).ids` and of `predict(text)` over `texts`, alternating blocks of
    BLOCK texts so that both see the same machine state; medians over the passes."""
    encode, predict = detector.tokenizer.encode, detector.predict
    encode_times, predict_times = [], []
    for repeat in range(repeats + 1):
        encode_total = predict_total = 0.0
        for start in range(0, len(texts), BLOCK):
            block = texts[start : start + BLOCK]
            for which in ((0, 1) if (start // BLOCK + repeat) % 2 else (1, 0)):
                begin = time.thread_time()
                if which == 0:
                    for text in block:
                        encode(text, add_special_tokens=False).ids
                    encode_total += time.thread_time() - begin
                else:
                    for text in block:
                        predict(text)
                    predict_total += time.thread_time() - begin
        if repeat:
            encode_times.append(encode_total)
            predict_times.append(predict_total)
    return statistics.median(encode_times), statistics.median(predict_times)


def measure_speed(label: str, path: Path, table: str, texts: list[str], repeats: int) -> None:
    from wldetect import WLDetect

    tokenizer_parallelism(False)
    one_thread = WLDetect.load(path, table=table, num_threads=1)
    all_threads = WLDetect.load(path, table=table)
    single_texts = texts[:3000]
    encode_s, predict_s = single_text_times(one_thread, single_texts, repeats)
    bare = one_thread.tokenizer.encode_batch_fast
    cpu = median_times(
        {
            "bare": (lambda: tokenizer_parallelism(False), lambda: bare(texts, add_special_tokens=False)),
            "predict": (lambda: tokenizer_parallelism(False), lambda: one_thread.predict(texts)),
        },
        repeats,
        time.thread_time,
    )
    wall = median_times(
        {
            "1 thread": (lambda: tokenizer_parallelism(False), lambda: one_thread.predict(texts)),
            "all": (lambda: tokenizer_parallelism(True), lambda: all_threads.predict(texts)),
        },
        repeats,
        time.perf_counter,
    )
    tokenizer_parallelism(False)
    load = json.loads(
        subprocess.run(
            [sys.executable, "-c", LOAD_PROBE, str(REPO), str(path), table],
            check=True, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "true"},
        ).stdout
    )  # fmt: skip

    rows = [
        ("single text: predict(text)", len(single_texts) / predict_s, "bare encode(text)", encode_s / predict_s, 0.8),
        ("batch, 1 thread: predict(list)", len(texts) / cpu["predict"], "bare encode_batch_fast",
         cpu["bare"] / cpu["predict"], 0.9),
        (f"batch, {all_threads.num_threads} threads: predict(list)", len(texts) / wall["all"], "1 thread (wall)",
         wall["1 thread"] / wall["all"], 1.7),
    ]  # fmt: skip
    print(f"\n{label}: {path} ({table}, {one_thread.pooling} pooling, {len(one_thread.languages)} languages, "
          f"{one_thread.pooler.rows.shape[0]:,} table rows)")  # fmt: skip
    print(f"  {'':<36} {'texts/s':>10}  {'ratio':>6}  {'to':<24} goal")
    for name, rate, ceiling, ratio, goal in rows:
        print(f"  {name:<36} {rate:>10,.0f}  {ratio:>6.2f}  {ceiling:<24} >= {goal}")
    print(f"  single text: bare encode {len(single_texts) / encode_s:,.0f} texts/s; fixed cost of predict over "
          f"encode {(predict_s - encode_s) / len(single_texts) * 1e6:.1f} us per call (thread CPU time)")
    print(f"  load: {load['load_s']:.3f} s ({load['load_s'] / load['bare_read_s']:.2f}x reading its files bare, "
          f"{load['bare_read_s']:.3f} s); peak RSS +{load['peak_rss_delta'] / 2**20:,.0f} MiB = "
          f"{load['peak_rss_delta'] / load['float32_table_bytes']:.2f}x one float32 copy of the table "
          f"({load['float32_table_bytes'] / 2**20:,.0f} MiB)")  # fmt: skip


def write_synthetic_model(directory: Path, tokenizer_json: Path) -> Path:
    """A Gemma3-27B-sized artifacts directory: random E3M4 table, real tokenizer, logsumexp pooling."""
    import numpy as np
    import yaml

    from wldetect.lookup import FILE_NAMES, quantize, save_lookup_table

    languages = [f"x{i:03d}_Synt" for i in range(GEMMA3_27B_LANGUAGES)]
    rng = np.random.default_rng(0)
    table = rng.standard_normal((GEMMA3_27B_ROWS, GEMMA3_27B_LANGUAGES), dtype=np.float32) * 3
    save_lookup_table(quantize(table, "e3m4"), directory / FILE_NAMES["e3m4"], languages)
    config = {
        "languages": {code: i for i, code in enumerate(languages)},
        "inference": {"max_sequence_length": 512, "pooling": "logsumexp"},
    }
    (directory / "model_config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (directory / "tokenizer.json").write_bytes(tokenizer_json.read_bytes())
    return directory


def report_accuracy(path: Path, table: str, texts: list[str], gold: list[str], skip_py3langid: bool) -> None:
    from wldetect import WLDetect

    detector = WLDetect.load(path, table=table)
    predictions = detector.predict(texts)
    known = set(detector.languages)
    excluded = sorted({g for g in gold if g not in known})
    scored = [i for i, g in enumerate(gold) if g in known]
    ours = sum(predictions[i] is not None and predictions[i][0] == gold[i] for i in scored) / len(scored)
    unanswered = {code: 0 for code in sorted(set(gold))}
    for prediction, code in zip(predictions, gold):
        unanswered[code] += prediction is None
    print(f"\nAccuracy on {len(scored):,} sentences in {len(known & set(gold))} languages the model knows")
    print(f"  excluded (not in the model): {', '.join(excluded) or 'none'}")
    print(f"  WLDetect ({table}):            {ours:.2%}")
    print(
        f"  answered None (no language evidence): {sum(unanswered.values())} of {len(texts):,} texts"
        + "".join(f"; {code} {n}" for code, n in unanswered.items() if n)
    )
    if skip_py3langid:
        return
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    langid_model = LanguageIdentifier.from_model_file(MODEL_FILE)
    answers = [ISO1_TO_CODE.get(langid_model.classify(texts[i])[0]) for i in scored]
    print(f"  py3langid (all 97 languages):     {sum(a == gold[i] for i, a in zip(scored, answers)) / len(scored):.2%}")
    iso1 = sorted({k for k, v in ISO1_TO_CODE.items() if v in known} & set(langid_model.nb_classes))
    langid_model.set_languages(iso1)
    answers = [ISO1_TO_CODE.get(langid_model.classify(texts[i])[0]) for i in scored]
    constrained = sum(a == gold[i] for i, a in zip(scored, answers)) / len(scored)
    print(f"  py3langid (the model's {len(iso1)} languages): {constrained:.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", type=Path, default=REPO / "artifacts" / "demo")
    parser.add_argument("--texts", type=Path, default=DEFAULT_TEXTS if DEFAULT_TEXTS.is_dir() else None)
    parser.add_argument("--table", default="e3m4", choices=["e3m4", "e4m3fn", "fp32"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-synthetic", action="store_true", help="only the --model-path model")
    parser.add_argument("--skip-py3langid", action="store_true")
    args = parser.parse_args()

    from wldetect.sources.demo import DEVSET_DIR

    texts_dir = args.texts or DEVSET_DIR
    texts, gold = read_texts(texts_dir)
    load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{texts_dir}: {len(texts):,} texts; {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"(load average {load_average:.1f} at start), Python {platform.python_version()}"
    )
    measure_speed("Trained model", args.model_path, args.table, texts, args.repeats)
    if not args.skip_synthetic:
        with tempfile.TemporaryDirectory(prefix="wldetect-bench-") as tmp:
            synthetic = write_synthetic_model(Path(tmp), args.model_path / "tokenizer.json")
            measure_speed("Synthetic Gemma3-27B-sized table", synthetic, "e3m4", texts, args.repeats)
    report_accuracy(args.model_path, args.table, texts, gold, args.skip_py3langid)


if __name__ == "__main__":
    main()
