"""NumPy-only detection: throughput against its ceiling and py3langid, and accuracy next to py3langid.

Everything runs single-threaded (the tokenizer's rayon pool and BLAS are pinned to one thread before any
import), on the same texts, interleaved over --repeats runs (medians reported):

- `bare tokenisation`: `tokenizer.encode_batch_fast` of the texts with the detector's tokenizer settings
  (what `tokenization.encode_texts` calls), the ceiling of detection (goal: detection >= 0.9 of it);
- `WLDetect.predict`: batch tokenisation + row gather + pooling + softmax + result tuples;
- `encode_batch` (with character offsets), for reference;
- `py3langid.classify`, one text at a time (its API), over all its 97 languages.

Accuracy is over the sentences whose language the model knows; languages it lacks are listed and left out
of both systems' scores. py3langid's ISO 639-1 answers are mapped to the model's codes.

    .venv/bin/python benchmarks/bench_detect.py --model-path artifacts/demo \
        [--texts /work/shared/data/pud-dev] [--table e3m4] [--repeats 5]

`--texts` is a directory of `<code>.txt` files, one sentence per line, read in place.
"""

from __future__ import annotations

import os

for _name in ("RAYON_NUM_THREADS", "RAYON_RS_NUM_CPUS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # single-threaded, set before numpy/tokenizers start their pools

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's package, whatever the environment has installed
DEFAULT_TEXTS = Path("/work/shared/data/pud-dev")

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


def read_texts(directory: Path) -> tuple[list[str], list[str]]:
    texts, gold = [], []
    for path in sorted(directory.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(line)
                gold.append(path.stem)
    if not texts:
        sys.exit(f"{directory}: no <code>.txt files with text")
    return texts, gold


def median_rates(methods: dict, n_texts: int, repeats: int) -> dict[str, float]:
    timings: dict[str, list[float]] = {name: [] for name in methods}
    for method in methods.values():  # warm-up: allocator, caches, lazy model loads
        method()
    for _ in range(repeats):
        for name, method in methods.items():  # interleaved: machine noise hits every method alike
            start = time.perf_counter()
            method()
            timings[name].append(time.perf_counter() - start)
    return {name: n_texts / statistics.median(times) for name, times in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", type=Path, default=REPO / "artifacts" / "demo")
    parser.add_argument("--texts", type=Path, default=DEFAULT_TEXTS if DEFAULT_TEXTS.is_dir() else None)
    parser.add_argument("--table", default="e3m4", choices=["e3m4", "e4m3fn", "fp32"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-py3langid", action="store_true")
    args = parser.parse_args()

    from wldetect import WLDetect
    from wldetect.sources.demo import DEVSET_DIR

    texts_dir = args.texts or DEVSET_DIR
    texts, gold = read_texts(texts_dir)
    detector = WLDetect.load(args.model_path, table=args.table)
    tokenizer = detector.tokenizer
    n_tokens = sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False))

    methods = {
        "bare tokenisation (encode_batch_fast)": lambda: tokenizer.encode_batch_fast(texts, add_special_tokens=False),
        "WLDetect.predict": lambda: detector.predict(texts),
        "encode_batch with offsets (reference)": lambda: tokenizer.encode_batch(texts, add_special_tokens=False),
    }
    langid_model = None
    if not args.skip_py3langid:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        langid_model = LanguageIdentifier.from_model_file(MODEL_FILE)
        methods["py3langid.classify (per text)"] = lambda: [langid_model.classify(t) for t in texts]
    rates = median_rates(methods, len(texts), args.repeats)

    print(
        f"{texts_dir}: {len(texts):,} texts, {n_tokens:,} tokens; model {args.model_path} ({args.table}, "
        f"{detector.pooling}, {len(detector.languages)} languages); single thread; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    ceiling = rates["bare tokenisation (encode_batch_fast)"]
    print(f"{'method':<40} {'texts/s':>10} {'vs bare tokenisation':>21}")
    for name, rate in rates.items():
        print(f"{name:<40} {rate:>10,.0f} {rate / ceiling:>21.3f}")
    if langid_model is not None:
        print(f"WLDetect / py3langid speed: {rates['WLDetect.predict'] / rates['py3langid.classify (per text)']:.1f}x")

    known = set(detector.languages)
    excluded = sorted({g for g in gold if g not in known})
    scored = [i for i, g in enumerate(gold) if g in known]
    predictions = detector.predict([texts[i] for i in scored])
    ours = sum(p is not None and p[0] == gold[i] for i, p in zip(scored, predictions)) / len(scored)
    print(f"\nAccuracy on {len(scored):,} sentences in {len(known & set(gold))} languages the model knows")
    print(f"  excluded (not in the model): {', '.join(excluded) or 'none'}")
    print(f"  WLDetect ({args.table}):            {ours:.2%}")
    if langid_model is not None:
        answers = [ISO1_TO_CODE.get(langid_model.classify(texts[i])[0]) for i in scored]
        theirs = sum(a == gold[i] for i, a in zip(scored, answers)) / len(scored)
        print(f"  py3langid (all 97 languages):     {theirs:.2%}")
        iso1 = sorted({k for k, v in ISO1_TO_CODE.items() if v in known} & set(langid_model.nb_classes))
        langid_model.set_languages(iso1)
        answers = [ISO1_TO_CODE.get(langid_model.classify(texts[i])[0]) for i in scored]
        constrained = sum(a == gold[i] for i, a in zip(scored, answers)) / len(scored)
        print(f"  py3langid (the model's {len(iso1)} languages): {constrained:.2%}")
        per_language = {}
        for i, p, a in zip(scored, predictions, answers):
            ok = per_language.setdefault(gold[i], [0, 0, 0])
            ok[0] += 1
            ok[1] += p is not None and p[0] == gold[i]
            ok[2] += a == gold[i]
        print(f"  {'language':<10} {'n':>5} {'WLDetect':>9} {'py3langid*':>10}   (* constrained)")
        for code, (n, a, b) in sorted(per_language.items()):
            print(f"  {code:<10} {n:>5} {a / n:>9.1%} {b / n:>10.1%}")


if __name__ == "__main__":
    main()
