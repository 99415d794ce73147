"""What a token id is, in words: its token string, its decoded text and the Unicode script it is written in.

Two steps need this: counting shows the most frequent tokens (`counting.top_tokens`) and the mask analysis
shows which tokens, in which scripts, a mask removes (`masking.script_breakdown`). It lives here, apart from
both, so that neither step imports the other for it. The vocabulary is described per embedding row: ids the
tokenizer cannot produce (Gemma3 has more embedding rows than tokens) are named as such, never decoded to "".
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Style words that precede the script in some names ("FULLWIDTH LATIN CAPITAL LETTER A" is LATIN), and first
# words that are not scripts, renamed to what a reader expects.
_STYLE_PREFIXES = {"FULLWIDTH", "HALFWIDTH", "MATHEMATICAL", "SUPERSCRIPT", "SUBSCRIPT", "CIRCLED", "PARENTHESIZED",
                   "SQUARED", "NEGATIVE"}  # fmt: skip
_RENAMES = {
    "KATAKANA-HIRAGANA": "KATAKANA",  # the long-vowel mark ー
    "FEMININE": "LATIN",  # ª
    "MASCULINE": "LATIN",  # º
    "MICRO": "GREEK",  # µ
    "SCRIPT": "LETTERLIKE",  # ℓ
    "DOUBLE-STRUCK": "LETTERLIKE",  # ℝ
    "BLACK-LETTER": "LETTERLIKE",  # ℭ
}
BEYOND_TOKENIZER = "(beyond tokenizer)"
SPECIAL = "(special)"


def char_script(char: str) -> str | None:
    """The script of a letter or mark: the first word of its Unicode name (LATIN, CYRILLIC, CJK, HANGUL ...).

    Non-letters return None. Width and style prefixes are skipped ("FULLWIDTH LATIN ..." is LATIN); IPA
    modifier letters (ʰ, ʼ) are MODIFIER.
    """
    if not unicodedata.category(char).startswith(("L", "M")):
        return None
    words = unicodedata.name(char, "").split()
    while len(words) > 1 and words[0] in _STYLE_PREFIXES:
        words = words[1:]
    return _RENAMES.get(words[0], words[0]) if words else "UNKNOWN"


def text_script(text: str) -> str:
    """The most frequent script among a token's letters; tokens without letters are DIGIT, PUNCTUATION,
    SYMBOL or SPACE, and U+FFFD (a byte-level fragment of a multi-byte character) is BYTE FRAGMENT."""
    scripts = Counter(s for s in map(char_script, text) if s is not None)
    if scripts:
        return scripts.most_common(1)[0][0]
    if "\ufffd" in text:
        return "BYTE FRAGMENT"
    categories = {unicodedata.category(c)[0] for c in text}
    for category, name in (("N", "DIGIT"), ("P", "PUNCTUATION"), ("S", "SYMBOL"), ("Z", "SPACE")):
        if category in categories:
            return name
    return "EMPTY" if not text.strip() else "OTHER"


@dataclass
class TokenTexts:
    """Readable text and script of every embedding row (decoded once, in one Rust batch)."""

    tokens: list[str]  # tokenizer.id_to_token, or BEYOND_TOKENIZER
    texts: list[str]  # tokenizer.decode([id]), or BEYOND_TOKENIZER
    scripts: np.ndarray  # object (V,)
    tokenizer_size: int = 0


def describe_tokens(tokenizer, ids: Sequence[int]) -> tuple[list[str], list[str], list[str]]:
    """(token, decoded text, script) of each id; ids beyond the tokenizer's vocabulary are reported as such
    (Gemma3 has 262,208 embedding rows for 262,145 tokens) rather than decoded to an empty string."""
    size = int(tokenizer.get_vocab_size(with_added_tokens=True))
    special = set()
    decoder_map = getattr(tokenizer, "get_added_tokens_decoder", None)
    if decoder_map is not None:
        special = {i for i, token in decoder_map().items() if getattr(token, "special", False)}
    ids = [int(i) for i in ids]
    inside = [i for i in ids if i < size]
    decoded = dict(zip(inside, tokenizer.decode_batch([[i] for i in inside], skip_special_tokens=False)))
    tokens, texts, scripts = [], [], []
    for i in ids:
        if i >= size:
            tokens.append(BEYOND_TOKENIZER)
            texts.append(BEYOND_TOKENIZER)
            scripts.append(BEYOND_TOKENIZER)
            continue
        token = tokenizer.id_to_token(i) or ""
        tokens.append(token)
        texts.append(decoded[i])
        scripts.append(SPECIAL if i in special else text_script(decoded[i] or token))
    return tokens, texts, scripts


def token_texts(tokenizer, vocab_size: int) -> TokenTexts:
    """Token, decoded text and script of every embedding row (decoded in one Rust batch)."""
    tokens, texts, scripts = describe_tokens(tokenizer, range(vocab_size))
    size = min(int(tokenizer.get_vocab_size(with_added_tokens=True)), vocab_size)
    return TokenTexts(tokens, texts, np.asarray(scripts, dtype=object), size)
