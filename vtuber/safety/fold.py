"""Normalising text for matching: look-alike letters, invisible characters, leetspeak.

Every check in the safety package reads text through `normalise` (and, where it needs
positions in the original text, `_normalise_mapped`). See `vtuber.safety.banned` for
what this reading catches.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Applied BEFORE casefolding, for capitals that look unlike their own lowercase
# (Greek capital Eta looks like H, its lowercase like n).
_UPPER_LOOKALIKES = {
    # Greek
    "Α": "a", "Β": "b", "Ε": "e", "Ζ": "z", "Η": "h", "Ι": "i", "Κ": "k", "Μ": "m",
    "Ν": "n", "Ο": "o", "Ρ": "p", "Τ": "t", "Υ": "y", "Χ": "x", "Ϲ": "c", "Ϳ": "j",
    # Cyrillic
    "А": "a", "В": "b", "Е": "e", "Ѕ": "s", "І": "i", "Ј": "j", "К": "k", "М": "m",
    "Н": "h", "О": "o", "Р": "p", "С": "c", "Т": "t", "У": "y", "Х": "x", "Ү": "y",
    "Һ": "h", "Ԁ": "d", "Ԛ": "q", "Ԝ": "w", "Ӏ": "l", "Ѵ": "v", "Ь": "b",
}  # fmt: skip

# Applied after casefolding and diacritic removal.
_LOWER_LOOKALIKES = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ѕ": "s", "і": "i", "ј": "j", "к": "k", "м": "m",
    "н": "h", "о": "o", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ү": "y",
    "һ": "h", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ѵ": "v", "ь": "b", "п": "n",
    "г": "r", "ш": "w",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u",
    "ν": "v", "ο": "o", "π": "n", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w",
    "ϲ": "c", "ϳ": "j",
    # Armenian
    "օ": "o", "ս": "u", "հ": "h", "ո": "n",
    # Latin variants that NFKD does not take apart
    "ı": "i", "ȷ": "j", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŧ": "t", "ƀ": "b",
    "ɨ": "i", "ɑ": "a", "ɡ": "g", "ɩ": "i", "ɛ": "e", "ʋ": "u", "æ": "ae", "œ": "oe",
    "ð": "d", "þ": "p",
    # small capitals
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ʜ": "h",
    "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p",
    "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
}  # fmt: skip

# Regional indicator symbols (the letters flags are made of): U+1F1E6.. = a..z.
_REGIONAL_A = 0x1F1E6

# Blank-looking characters that are not category Cf.
_INVISIBLE = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"}

# Leetspeak: letter -> the symbols that may stand for it (in normalised text). Two
# readings, because "1", "|" and "6" each stand for two letters; within one reading
# no symbol stands for two letters, so every letter class is disjoint from the others
# and the patterns never need to backtrack. A text is matched under both readings.
_LEET_READINGS = (
    {"a": "4@", "b": "8", "e": "3€", "g": "96", "h": "#", "i": "1!", "l": "|", "o": "0",
     "s": "5$", "t": "7+", "z": "2"},
    {"a": "4@", "b": "86", "e": "3€", "g": "9", "h": "#", "i": "!|", "l": "1", "o": "0",
     "s": "5$", "t": "7+", "z": "2"},
)  # fmt: skip
# Symbol -> the letter it most often stands for (for folding entries / fold_for_matching).
_LEET_TO_LETTER = {
    "0": "o", "1": "i", "2": "z", "3": "e", "4": "a", "5": "s", "6": "g", "7": "t",
    "8": "b", "9": "g", "@": "a", "$": "s", "!": "i", "|": "l", "#": "h", "+": "t",
    "€": "e",
}  # fmt: skip
_LEET_SYMBOLS = "".join(sorted({c for c in _LEET_TO_LETTER if not c.isdigit()}))


def _is_generic_mark(c: str) -> bool:
    """Combining marks used as decoration (accents, strokes, Zalgo), not script-intrinsic ones."""
    if unicodedata.category(c) not in ("Mn", "Me"):
        return False
    o = ord(c)
    return (
        0x0300 <= o <= 0x036F  # combining diacritical marks (incl. U+034F grapheme joiner)
        or 0x0483 <= o <= 0x0489  # Cyrillic combining marks
        or 0x1AB0 <= o <= 0x1AFF
        or 0x1DC0 <= o <= 0x1DFF
        or 0x20D0 <= o <= 0x20FF  # combining marks for symbols (enclosing circles, ...)
        or 0xFE00 <= o <= 0xFE0F  # variation selectors
        or 0xFE20 <= o <= 0xFE2F
        or 0xE0100 <= o <= 0xE01EF
    )


@lru_cache(maxsize=8192)
def _fold_char(ch: str, invisible: str) -> str:
    """One source character -> its normalised form ('' for a dropped one)."""
    if unicodedata.category(ch) == "Cf" or ch in _INVISIBLE:
        return invisible
    # Look-alikes first: NFKC would turn some into other letters (lunate sigma -> sigma).
    if ch in _UPPER_LOOKALIKES:
        return _UPPER_LOOKALIKES[ch]
    if ch in _LOWER_LOOKALIKES:
        return _LOWER_LOOKALIKES[ch]
    o = ord(ch)
    if _REGIONAL_A <= o < _REGIONAL_A + 26:
        return chr(ord("a") + o - _REGIONAL_A)
    out = []
    for c in unicodedata.normalize("NFKC", ch):
        if c in _UPPER_LOOKALIKES:
            out.append(_UPPER_LOOKALIKES[c])
            continue
        if unicodedata.category(c) == "Cf":
            continue
        parts = [
            p for p in unicodedata.normalize("NFKD", c.casefold()) if not _is_generic_mark(p)
        ]
        for p in unicodedata.normalize("NFC", "".join(parts)):
            out.append(_LOWER_LOOKALIKES.get(p, p))
    return "".join(out)


def _normalise_mapped(text: str, invisible: str = "") -> tuple[str, list[int]]:
    """`normalise` plus, for each output character, the index of its source character."""
    chars: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        folded = ch if ch.isascii() and not ch.isupper() else _fold_char(ch, invisible)
        if folded == " " and chars and chars[-1] == " " and not ch.isspace():
            continue  # a flood of invisible characters is one separator
        for c in folded:
            chars.append(c)
            where.append(i)
    return "".join(chars), where


def normalise(text: str) -> str:
    """Text as the matchers see it: NFKC; casefold; format characters (category Cf:
    zero-width space/joiners, word joiner, BOM, soft hyphen) removed; decorative
    combining marks removed after NFKD ("é" -> "e", Zalgo cleaned); look-alike
    Cyrillic/Greek/Armenian/small-capital letters folded to Latin.

    Digits and symbols are left alone (leetspeak is only read when matching words:
    see `fold_for_matching` and `BannedWords`).
    """
    return _normalise_mapped(text)[0]


# A separator inside a split word: anything but letters, digits, apostrophes and leet symbols
# (disjoint from every letter class, so it can be matched possessively).
_SEP = r"(?:_|[^\w'’" + re.escape(_LEET_SYMBOLS) + r"])"
_SEP_RUN = re.compile(_SEP + "+")
_SEP_RUN_SPLIT = re.compile("(" + _SEP + "+)")
# A sentence or clause break: punctuation then whitespace, or CJK punctuation
# ("!" is a leet symbol, never a separator, so it is not needed here).
_BREAK = re.compile(r"[,;:.?…]\s|[。、？！，；：]")


def fold_for_matching(text: str, *, join_spaced: bool = False) -> str:
    """A letters-only stream of `text` for matching: normalised, leetspeak read as
    letters, runs of one letter collapsed, words separated by single spaces.

    Leet digits/symbols are read as letters only inside a word that has letters
    ("h3ck" -> "heck", "$hit" -> "shit", but "2024" and "!!!" vanish, and a
    trailing "!" stays punctuation: "heck!" -> "heck"). "1" reads as "i", "|" as
    "l". "heeeck" -> "heck". Apostrophes are dropped inside words ("don't" -> "dont").
    With `join_spaced`, runs of single letters separated by spacing or punctuation
    are joined into one word: "h e c k" / "h.e.c.k" -> "heck".

    `BannedWords` does not match on this stream (it matches the normalised text
    with per-letter classes, which keeps "1" ambiguous between i and l and keeps
    positions for sanitising); it is the same reading, for logs, tests and tools.
    """
    words: list[str] = []
    singles: list[str] = []
    for raw in _SEP_RUN.split(normalise(text)):
        letters = _word_letters(raw.rstrip("!|"))
        if join_spaced and not letters and len(raw) == 1 and raw in _LEET_TO_LETTER and singles:
            letters = _LEET_TO_LETTER[raw]  # a leet stand-in inside a spaced run: "h . 3 . c . k"
        if not letters:
            continue
        if join_spaced and len(letters) == 1:
            singles.append(letters)
            continue
        if singles:
            words.append(_collapse_runs("".join(singles)))
            singles = []
        words.append(letters)
    if singles:
        words.append(_collapse_runs("".join(singles)))
    return " ".join(words)


def _word_letters(word: str) -> str:
    """A normalised word's letters, leet read as letters, runs collapsed ('' if no letters)."""
    if not any(c.isalpha() for c in word):
        return ""
    return _collapse_runs("".join(c if c.isalpha() else _LEET_TO_LETTER.get(c, "") for c in word))


def _collapse_runs(s: str) -> str:
    return re.sub(r"(.)\1+", r"\1", s)

