"""NumPy-only detection against its ceilings: single texts, batches on one and on all cores, loading, memory.

For a trained artifacts directory (--model-path) and for a synthetic Gemma3-27B-sized table (262,208 tokens x
148 languages, E3M4, logsumexp pooling) written here with the project's own writers next to the model's
`tokenizer.json`, each figure is a ratio to a ceiling measured in the same process, on the same texts, with
the methods interleaved in small blocks over --repeats passes (medians; the first pass is a warm-up):

- single text: `predict(text)` per text vs bare `tokenizer.encode(text, add_special_tokens=False).ids` of the
  detector's own tokenizer object (the same truncation settings), thread CPU time (goal >= 0.8). Also shown:
  bare `encode_batch_fast([text])`, the call `predict` makes.
- batch, 1 thread: `predict(texts)` with `num_threads=1` vs bare `encode_batch_fast(texts)` with the
  tokenizer's own thread pool off, thread CPU time.
- batch, all threads: `predict(texts)` with the default `num_threads` (every core) vs `num_threads=1`, wall
  time (goal >= 1.7 on 2 cores). Also: how many cores `num_threads=1` used (process CPU / wall time) while
  the tokenizer's pool is on by default, and bare `encode_batch_fast` on that pool, for reference.
- load: `WLDetect.load` in a fresh process vs bare `Tokenizer.from_file` of its `tokenizer.json` in another,
  alternately (medians); then the stages of a load, each timed in a fresh process.
- memory: peak resident-set growth (VmHWM) of the load minus that of the bare `Tokenizer.from_file`, in
  float32 copies of the table (goal: at most one; the memory-mapped table file's pages count too).

New texts and repeated texts. Gemma's tokenizer pre-tokenises nothing (its normalizer turns spaces into
"▁", so its pre-tokenizer's split on " " never fires): a whole sentence under 256 bytes is one BPE "word",
and the BPE model caches the ids of up to 10,000 words. A benchmark that passes over the same texts again
measures cache hits (~40% cheaper), not tokenisation. "New texts" empty that cache before every timed block
(`tokenizer.model._clear_cache()`, outside the timing), so that every text is tokenised as a text the
process has not seen; "repeated texts" let the cache take the texts on the warm-up pass, so that the later
passes hit it, as when the same texts come again. Both are printed.

Each configuration runs in a fresh subprocess (so environment variables and first-use settings take
effect; the default environment leaves TOKENIZERS_PARALLELISM and RAYON_NUM_THREADS unset). The machine
may be shared: timings are noisy, which is why every figure is a ratio within one process and a median.
Then accuracy on --texts (languages the model lacks are left out and listed), with the count of texts
answered None (no language evidence), and py3langid for reference.

    .venv/bin/python benchmarks/bench_detect.py [--model-path runs/<id>/artifacts] \
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
SINGLE_TEXTS = 2000  # per sample of the single-text loops, taken evenly over all languages
ENVIRONMENT = ("TOKENIZERS_PARALLELISM", "RAYON_NUM_THREADS")

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
        for line in path.read_text(encoding="utf-8").split("\n"):
            if line.strip():
                texts.append(line.rstrip("\r"))
                gold.append(path.stem)
    if not texts:
        sys.exit(f"{directory}: no <code>.txt files with text")
    return texts, gold


# ------------------------------------------------------------------------------ probes (fresh processes)


def rss(field: str = "VmHWM") -> int:
    """Peak (VmHWM) or current (VmRSS) resident set size of this process, bytes."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def clear_word_cache(tokenizer) -> None:
    """Empty the tokenizer model's word cache (BPE models have one; `_clear_cache` is the bindings' own)."""
    clear = getattr(tokenizer.model, "_clear_cache", None)
    if clear is not None:
        clear()


def probe_single(path: Path, table: str, texts: list[str], repeats: int) -> dict:
    """Thread CPU seconds per text of bare `encode(...).ids`, bare `encode_batch_fast([text])` and
    `predict(text)`, in blocks of BLOCK texts whose method order rotates, for repeated then new texts."""
    from wldetect import WLDetect

    detector = WLDetect.load(path, table=table, num_threads=1)
    tokenizer = detector.tokenizer

    def encode(block):
        for text in block:
            _ = tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch_fast(block):
        for text in block:
            _ = tokenizer.encode_batch_fast([text], add_special_tokens=False)[0].ids

    def predict(block):
        for text in block:
            detector.predict(text)

    methods = {"encode": encode, "encode_batch_fast": encode_batch_fast, "predict": predict}
    orders = [list(methods)[i:] + list(methods)[:i] for i in range(len(methods))]
    orders += [order[::-1] for order in orders]
    step = max(1, len(texts) // (2 * SINGLE_TEXTS))
    samples = {"repeated": texts[::step][::2][:SINGLE_TEXTS], "new": texts[::step][1::2][:SINGLE_TEXTS]}
    result = {}
    for case in ("repeated", "new"):
        sample = samples[case]
        totals = {name: [] for name in methods}
        for repeat in range(repeats + 1):
            spent = dict.fromkeys(methods, 0.0)
            for i, start in enumerate(range(0, len(sample), BLOCK)):
                block = sample[start : start + BLOCK]
                for name in orders[(i + repeat) % len(orders)]:
                    if case == "new":
                        clear_word_cache(tokenizer)
                    begin = time.thread_time()
                    methods[name](block)
                    spent[name] += time.thread_time() - begin
            if repeat:
                for name in methods:
                    totals[name].append(spent[name] / len(sample))
        result[case] = {name: statistics.median(times) for name, times in totals.items()}
    return result


def probe_batch(path: Path, table: str, texts: list[str], repeats: int, case: str) -> dict:
    """`predict(texts)` with num_threads=1 and with the default, and bare `encode_batch_fast(texts)` with
    the tokenizer's pool off and on: wall, thread CPU and process CPU seconds, interleaved passes."""
    from wldetect import WLDetect
    from wldetect.tokenization import tokenizer_parallelism_off

    one, every = WLDetect.load(path, table=table, num_threads=1), WLDetect.load(path, table=table)

    def bare_serial():
        with tokenizer_parallelism_off():
            one.tokenizer.encode_batch_fast(texts, add_special_tokens=False)

    methods = {
        "1 thread": lambda: one.predict(texts),
        "all threads": lambda: every.predict(texts),
        "bare, pool off": bare_serial,
        "bare, pool on": lambda: one.tokenizer.encode_batch_fast(texts, add_special_tokens=False),
    }
    clocks = {"wall": time.perf_counter, "thread": time.thread_time, "process": time.process_time}
    totals = {name: {clock: [] for clock in clocks} for name in methods}
    for repeat in range(repeats + 1):
        for name in list(methods)[:: 1 if repeat % 2 else -1]:
            if case == "new":
                clear_word_cache(one.tokenizer)
                clear_word_cache(every.tokenizer)
            begin = {clock: read() for clock, read in clocks.items()}
            methods[name]()
            if repeat:
                for clock, read in clocks.items():
                    totals[name][clock].append(read() - begin[clock])
    return {
        "num_threads": every.num_threads,
        "environment": {name: os.environ.get(name) for name in ENVIRONMENT},
        **{name: {clock: statistics.median(v) for clock, v in times.items()} for name, times in totals.items()},
    }


def probe_load(path: Path, table: str, what: str) -> dict:
    """Seconds and peak RSS growth of `WLDetect.load`, or of bare `Tokenizer.from_file`, or the stages of a
    load (the calls `WLDetect.load` makes, one after the other)."""
    import yaml
    from tokenizers import Tokenizer

    from wldetect.detect import WLDetect, _inference_settings, available_cores, evidence_tokens
    from wldetect.lookup import FILE_NAMES, load_lookup_table
    from wldetect.pooling import TablePooler

    before, resident = rss(), rss("VmRSS")
    start = time.perf_counter()
    if what == "load":
        detector = WLDetect.load(path, table=table)
        seconds = time.perf_counter() - start
        return {"s": seconds, "peak": rss() - before, "resident": rss("VmRSS") - resident,
                "float32": detector.pooler.rows[:-1, :-1].nbytes}  # fmt: skip
    if what == "bare":
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        seconds = time.perf_counter() - start
        return {"s": seconds, "peak": rss() - before, "resident": rss("VmRSS") - resident, "kept": bool(tokenizer)}
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    stages = {"Tokenizer.from_file": time.perf_counter() - start}
    start = time.perf_counter()
    lookup = load_lookup_table(path / FILE_NAMES[table])
    evidence = evidence_tokens(tokenizer, lookup.shape[0])
    stages["evidence_tokens"] = time.perf_counter() - start
    start = time.perf_counter()
    config = yaml.safe_load((path / "model_config.yaml").read_text(encoding="utf-8"))
    TablePooler(lookup, _inference_settings(config, path)[0], evidence, available_cores())
    stages["table (TablePooler)"] = time.perf_counter() - start
    return stages


def run_probe(env: dict | None, *args: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT} | (env or {})
    command = [sys.executable, __file__, "--probe", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    if result.returncode:
        sys.exit(f"probe {' '.join(args)} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ report


def measure(label: str, path: Path, table: str, texts_dir: Path, repeats: int) -> None:
    n = len(read_texts(texts_dir)[0])
    common = [str(path), table, str(texts_dir), str(repeats)]
    info = run_probe(None, "info", str(path), table)
    single = run_probe(None, "single", *common)
    batch = {case: run_probe(None, "batch", *common, case) for case in ("new", "repeated")}
    off = run_probe({"TOKENIZERS_PARALLELISM": "false", "RAYON_NUM_THREADS": "1"}, "batch", *common, "new")
    loads = {"load": [], "bare": []}
    for _ in range(max(3, repeats)):
        for what in loads:
            loads[what].append(run_probe(None, "load", str(path), table, what))
    stages = run_probe(None, "load", str(path), table, "stages")

    print(f"\n{label}: {path} ({table}, {info['pooling']} pooling, {info['languages']} languages, "
          f"{info['rows']:,} table rows)")  # fmt: skip
    print(f"  {'':<46} {'texts/s':>8}  {'ratio':>5}  {'to (same process, same texts)':<38} goal")
    rows = []
    for case in ("new", "repeated"):
        one = single[case]
        rows.append((f"single text, {case} texts: predict(text)", 1 / one["predict"],
                     one["encode"] / one["predict"], "bare encode(text).ids", ">= 0.8"))  # fmt: skip
    for case in ("new", "repeated"):
        b = batch[case]
        rows.append((f"batch, {case} texts, 1 thread: predict(list)", n / b["1 thread"]["thread"],
                     b["bare, pool off"]["thread"] / b["1 thread"]["thread"], "bare encode_batch_fast, pool off", ""))
        rows.append((f"batch, {case} texts, {b['num_threads']} threads: predict(list)", n / b["all threads"]["wall"],
                     b["1 thread"]["wall"] / b["all threads"]["wall"], "predict(list), num_threads=1 (wall)",
                     ">= 1.7"))  # fmt: skip
    for name, rate, ratio, ceiling, goal in rows:
        print(f"  {name:<46} {rate:>8,.0f}  {ratio:>5.2f}  {ceiling:<38} {goal}")
    for case in ("new", "repeated"):
        us = {name: seconds * 1e6 for name, seconds in single[case].items()}
        print(f"  single text, {case} texts, us per text (thread CPU): bare encode {us['encode']:.1f}, bare "
              f"encode_batch_fast([text]) {us['encode_batch_fast']:.1f}, predict {us['predict']:.1f} = "
              f"encode_batch_fast([text]) + {us['predict'] - us['encode_batch_fast']:.1f}")  # fmt: skip
    b = batch["new"]

    def cores(run: dict) -> float:
        return run["process"] / run["wall"]

    print(f"  cores used (process CPU / wall), new texts: num_threads=1 {cores(b['1 thread']):.2f} with the "
          f"environment unset (the tokenizer's pool on by default) and {cores(off['1 thread']):.2f} with "
          f"TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 ({n / off['1 thread']['wall']:,.0f} vs "
          f"{n / b['1 thread']['wall']:,.0f} texts/s); {b['num_threads']} threads {cores(b['all threads']):.2f}; "
          f"bare encode_batch_fast on the pool {cores(b['bare, pool on']):.2f}")  # fmt: skip
    print(f"  all cores, new texts: predict(list) = {b['bare, pool on']['wall'] / b['all threads']['wall']:.2f}x "
          f"bare encode_batch_fast on the tokenizer's own pool ({n / b['bare, pool on']['wall']:,.0f} texts/s)")
    load_s, bare_s = (statistics.median(r["s"] for r in loads[what]) for what in ("load", "bare"))
    print(f"  load: {load_s:.3f} s = {load_s / bare_s:.2f}x bare Tokenizer.from_file ({bare_s:.3f} s); medians of "
          f"{len(loads['load'])} fresh processes each. Beyond the tokenizer (the detector's own part, goal: well "
          f"under a second): {load_s - bare_s:.3f} s. Stages: "
          + ", ".join(f"{name} {seconds:.3f} s" for name, seconds in stages.items()))  # fmt: skip
    peak, resident = ({what: statistics.median(r[kind] for r in loads[what]) for what in loads}
                      for kind in ("peak", "resident"))  # fmt: skip
    float32, mib = loads["load"][0]["float32"], 2**20
    beyond = resident["load"] - resident["bare"]
    print(f"  memory: peak RSS +{peak['load'] / mib:,.0f} MiB (bare Tokenizer.from_file +{peak['bare'] / mib:,.0f} "
          f"MiB), resident after it +{resident['load'] / mib:,.0f} MiB (bare +{resident['bare'] / mib:,.0f} MiB); "
          f"beyond the tokenizer's: peak {(peak['load'] - peak['bare']) / float32:.2f}x, resident "
          f"{beyond / float32:.2f}x one float32 copy of the table ({float32 / mib:,.0f} MiB). What the detector "
          f"holds: the one float32 array (1.00x) and the memory-mapped table file's pages "
          f"({info['file_bytes'] / float32:.2f}x); the rest is allocator slack, or heap the tokenizer freed and the "
          "load reused (negative)")  # fmt: skip


def probe_info(path: Path, table: str) -> dict:
    import yaml

    from wldetect.detect import _inference_settings
    from wldetect.lookup import FILE_NAMES, load_lookup_table

    config = yaml.safe_load((path / "model_config.yaml").read_text(encoding="utf-8"))
    lookup = load_lookup_table(path / FILE_NAMES[table])
    return {
        "pooling": _inference_settings(config, path)[0],
        "languages": lookup.shape[1],
        "rows": lookup.shape[0],
        "file_bytes": lookup.stored.nbytes,
    }


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


def probe(args: list[str]) -> None:
    kind, path, table = args[0], Path(args[1]), args[2]
    if kind in ("single", "batch"):
        texts = read_texts(Path(args[3]))[0]
        repeats = int(args[4])
        result = (
            probe_single(path, table, texts, repeats)
            if kind == "single"
            else probe_batch(path, table, texts, repeats, args[5])
        )
    elif kind == "load":
        result = probe_load(path, table, args[3])
    else:
        result = probe_info(path, table)
    print(json.dumps(result))


def newest_trained_model() -> Path:
    """The artifacts of the newest completed 03_train run under runs/ (`make demo` writes five), or exit."""
    from wldetect.errors import WLDetectError
    from wldetect.workflow.runs import latest_runs

    try:
        return latest_runs("03_train")[0].artifacts_dir
    except WLDetectError as err:
        sys.exit(f"no --model-path given and no trained model to default to ({err}); run `make demo` first")


def main() -> None:
    if sys.argv[1:2] == ["--probe"]:
        probe(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model-path", type=Path, default=None, help="artifacts directory (default: the newest completed 03_train run's)"
    )
    parser.add_argument("--texts", type=Path, default=DEFAULT_TEXTS if DEFAULT_TEXTS.is_dir() else None)
    parser.add_argument("--table", default="e3m4", choices=["e3m4", "e4m3fn", "fp32"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-synthetic", action="store_true", help="only the --model-path model")
    parser.add_argument("--skip-py3langid", action="store_true")
    args = parser.parse_args()
    if args.model_path is None:
        args.model_path = newest_trained_model()

    from wldetect.sources.demo import DEVSET_DIR

    texts_dir = args.texts or DEVSET_DIR
    texts, gold = read_texts(texts_dir)
    load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{texts_dir}: {len(texts):,} texts; {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"(load average {load_average:.1f} at start: the machine may be shared), Python {platform.python_version()}"
    )
    measure("Trained model", args.model_path.resolve(), args.table, texts_dir, args.repeats)
    if not args.skip_synthetic:
        with tempfile.TemporaryDirectory(prefix="wldetect-bench-") as tmp:
            synthetic = write_synthetic_model(Path(tmp), args.model_path / "tokenizer.json")
            measure("Synthetic Gemma3-27B-sized table", synthetic, "e3m4", texts_dir, args.repeats)
    report_accuracy(args.model_path, args.table, texts, gold, args.skip_py3langid)
    print(f"(load average {os.getloadavg()[0]:.1f} at the end)" if hasattr(os, "getloadavg") else "")


if __name__ == "__main__":
    main()
