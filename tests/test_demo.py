"""The embedded default: a deterministic wordfreq corpus and a parallel development set of real sentences."""


import numpy as np

from wldetect.sources.demo import DEMO_LANGUAGES, DEVSET_DIR, demo_corpus, devset_languages, generate_sentences
from wldetect.sources.evalsets import PUD_DIR

NOT_IN_WORDFREQ = {"glg_Latn", "tha_Thai", "cmn_Hant"}  # no Galician or Thai list; its Chinese is Simplified


def test_demo_covers_every_wordfreq_language_and_the_shipped_pud_sentences():
    import wordfreq

    assert set(DEMO_LANGUAGES.values()) == set(wordfreq.available_languages("best")) - {"sh"}
    pud = {p.stem for p in PUD_DIR.glob("*.txt")}
    assert len(pud) == 20 and pud - NOT_IN_WORDFREQ <= set(DEMO_LANGUAGES)


def test_generation_is_deterministic_and_realistic():
    first = generate_sentences("fra_Latn", 500, seed=3)
    assert first == generate_sentences("fra_Latn", 500, seed=3)
    assert first != generate_sentences("fra_Latn", 500, seed=4)
    words = np.array([len(s.split()) for s in first])
    assert 10 <= np.median(words) <= 18 and words.min() >= 3 and words.max() <= 60
    assert sum("de" in s.lower().split() for s in first) > 100  # frequent words are frequent
    chinese = generate_sentences("cmn_Hans", 5, seed=0)
    assert all(" " not in s and s.endswith("。") for s in chinese)


def test_corpus_is_a_cached_dataset(isolated_cache):
    corpus = demo_corpus(50, seed=1, languages=["eng_Latn", "rus_Cyrl"])
    assert corpus.num_rows == 100 and corpus.column_names == ["text", "language"]
    assert (isolated_cache / "demo_corpus").is_dir()
    again = demo_corpus(50, seed=1, languages=["rus_Cyrl", "eng_Latn"])
    assert again["text"] == corpus["text"]


def test_devset_is_parallel_real_sentences_for_every_demo_language():
    assert set(devset_languages()) == set(DEMO_LANGUAGES)
    lengths = {code: len((DEVSET_DIR / f"{code}.txt").read_text(encoding="utf-8").splitlines()) for code in DEMO_LANGUAGES}
    assert set(lengths.values()) == {30}


def test_words_written_with_combining_vowel_signs_are_words():
    from wldetect.sources.demo import is_word

    assert all(is_word(w) for w in ["के", "हैं", "கள்", "ভাষার", "schön", "straße"])
    assert not any(is_word(w) for w in ["00", "don't", "a1", "", "\u0947"])  # digits, punctuation, a lone mark
    hindi = " ".join(generate_sentences("hin_Deva", 200, seed=0))
    assert "के" in hindi.split() and "है" in hindi.split()  # the most frequent Hindi words carry vowel signs
