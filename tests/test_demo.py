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


def test_fragments_are_the_stated_share_of_first_words_and_deterministic(monkeypatch):
    from wldetect.sources import demo

    sentences = generate_sentences("deu_Latn", 1000, seed=5)
    examples = demo.generate_examples("deu_Latn", 1000, seed=5, fragment_share=0.3)
    assert examples == demo.generate_examples("deu_Latn", 1000, seed=5, fragment_share=0.3)
    cut = [e for e, s in zip(examples, sentences) if e != s]
    assert len(cut) == 300  # exactly round(n * share), each the first 1..5 words of its sentence, no end mark
    for example, sentence in zip(examples, sentences):
        if example != sentence:
            assert 1 <= len(example.split()) <= 5 and sentence.startswith(example) and not example.endswith(".")
    lengths = demo.fragment_lengths("deu_Latn", 1000, seed=5, share=0.3)
    assert set(np.unique(lengths[lengths > 0])) == {1, 2, 3, 4, 5}
    assert demo.generate_examples("deu_Latn", 1000, seed=5, fragment_share=0.0) == sentences


def test_corpus_keeps_its_languages_and_the_configured_share(isolated_cache, monkeypatch):
    from wldetect.sources import demo

    before = demo.corpus_version()
    monkeypatch.setattr(demo, "FRAGMENT_SHARE", 0.5)
    assert demo.corpus_version() != before  # another share is another corpus for every cache key
    monkeypatch.setattr(demo, "_CORPUS_VERSION", demo.corpus_version())
    corpus = demo_corpus(40, seed=2, languages=["eng_Latn", "kor_Hang"])
    assert sorted(set(corpus["language"])) == ["eng_Latn", "kor_Hang"]
    fragments = [t for t in corpus["text"] if not t.endswith(".")]
    assert len(fragments) == 40  # half of each language's 40 examples


def test_dressing_adds_capitals_numbers_commas_and_quotes_at_their_shares(monkeypatch):
    from wldetect.sources import demo

    plain = generate_sentences("eng_Latn", 2000, seed=1)
    for name, share in [("CAPITALISED_SHARE", 0.1), ("NUMBER_SHARE", 0.02), ("COMMA_SHARE", 0.05), ("QUOTE_SHARE", 0.1)]:
        monkeypatch.setattr(demo, name, share)
    dressed = generate_sentences("eng_Latn", 2000, seed=1)
    assert dressed == generate_sentences("eng_Latn", 2000, seed=1)
    assert [len(s.split()) for s in dressed] == [len(s.split()) for s in plain]  # same words, dressed
    words = [w.strip(",.\"'\u201c\u201d\u201e\u00ab\u00bb") for s in dressed for w in s.split()[1:]]
    assert 0.08 < np.mean([w[:1].isupper() for w in words]) < 0.12
    assert 0.01 < np.mean([w.isdigit() for w in words]) < 0.03
    assert 0.03 < np.mean([w.endswith(",") for s in dressed for w in s.split()[:-1]]) < 0.07
    assert 0.07 < np.mean([s[0] in "\"'\u201c\u201e\u00ab" for s in dressed]) < 0.13
    assert set(DEMO_LANGUAGES) == set(demo.DEMO_LANGUAGES) and len(DEMO_LANGUAGES) == 41
