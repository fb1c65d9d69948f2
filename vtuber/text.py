"""Words in text: the one word tokenizer, and the folding helpers built on it.

A word is a run of letters (any script: Latin, Hangul, kana, CJK ideographs, ...)
and, unless `digits=False`, digits. The underscore is never part of a word. Callers
differ in a few honest ways, and each is a parameter here rather than a second
tokenizer:

* `apostrophes`: keep apostrophes as word characters ("don't" one word, as hearing,
  quality and lip sync read speech) or let them split words (the safety gate, which
  reads "don't" as "don" "t" in its prompt-leak windows);
* `digits`: whether "2024" is a word (lip sync counts only spoken letters);
* `lower`: lower case first.

Scripts written without spaces (Chinese, Japanese) come out as one word per run of
characters between spaces or punctuation: this module does not segment them.
"""

from __future__ import annotations

import re

# Letters and digits of any script, never "_" (`\w` would let it in).
_ALNUM = r"[^\W_]"
_LETTER = r"[^\W\d_]"
_APOSTROPHE = "'’`"
_PATTERNS: dict[tuple[bool, bool], re.Pattern[str]] = {
    (True, True): re.compile(f"(?:{_ALNUM}|[{_APOSTROPHE}])+"),
    (True, False): re.compile(f"(?:{_LETTER}|[{_APOSTROPHE}])+"),
    (False, True): re.compile(f"{_ALNUM}+"),
    (False, False): re.compile(f"{_LETTER}+"),
}
_NOT_WORD = re.compile(r"[\W_]+")
_CURLY = str.maketrans({"’": "'", "`": "'"})


def words(text: str, *, apostrophes: bool = False, digits: bool = True, lower: bool = False) -> list[str]:
    """The words of `text`, in order.

    `apostrophes=True` keeps apostrophes as word characters (curly ’ and ` read as
    '): "Don’t go" -> ["Don't", "go"]; otherwise they split words: ["Don", "t", "go"].
    `digits=False` leaves numbers out ("top 10" -> ["top"]). `lower` puts it in lower case first.
    """
    if lower:
        text = text.lower()
    found = _PATTERNS[(apostrophes, digits)].findall(text)
    if apostrophes:
        found = [w.translate(_CURLY) for w in found]
        found = [w for w in found if w.strip("'")]
    return found


def count_words(text: str) -> int:
    """How many words `text` has (letters and digits, apostrophes split)."""
    return len(_PATTERNS[(False, True)].findall(text))


def compact(text: str) -> str:
    """`text` with everything but letters and digits removed: "CANARY-ab 12" -> "CANARYab12"."""
    return _NOT_WORD.sub("", text)


def fold(text: str) -> str:
    """Text as compared for duplicates: lower case, letters and digits, single spaces."""
    return " ".join(words(text, lower=True))
