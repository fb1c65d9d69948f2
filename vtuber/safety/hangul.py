"""Banned words written in Hangul, however they are spelled: the Korean half of `BannedWords`
(`vtuber.safety.banned`).

Text and entries are both read as a stream of jamo letters (ㅅ ㅣ ㅂ ㅏ ㄹ for 시발), so
every way of writing the same letters is one reading:

* composed syllables and their NFC/NFKC/NFD forms (decomposed conjoining jamo, "시발"
  typed as U+1109 U+1175 ...), compatibility jamo typed one by one ("ㅅㅣㅂㅏㄹ"),
  halfwidth jamo, and any mix ("시바ㄹ"); compound finals and vowels count as their
  parts (ㄳ = ㄱㅅ, ㅘ = ㅗㅏ), so "앉" and "안ㅈ" are the same letters;
* invisible characters inside the word (zero-width joiners, Hangul fillers) and up to
  three spacing or punctuation characters between two letters: "시 발", "시.발", "시_발";
* the word standing alone, or with a particle attached: 은/는/이/가/을/를/도/의/에/만/
  와/과/랑/이랑/한테/에게/야/아/요/다/이다/이야, a plural 들 before it, the contracted
  는/를 written into the last syllable ("바본", "바볼"), laughter or tears after it
  ("바보ㅋㅋ", "바보야ㅠㅠ"), and the nouns that only make it worse: 놈, 년, 새끼, 같-
  ("시발놈아", "바보같이").

Not caught (by design): the entry inside a longer word that is not one of those forms: "시발점"
(starting point) and "시발역" are NOT "시발" (the Korean Scunthorpe problem); spellings
with other letters ("씨발", "ㅅㅂ" initials only): list those as entries of their own.
The entry must start a word (after a space, punctuation, a non-Hangul character or the
start), so "역시 발표" is not "시발" either.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Compound letters read as their parts (finals typed as two letters are the same word).
_SPLIT = {
    "ㄳ": "ㄱㅅ", "ㄵ": "ㄴㅈ", "ㄶ": "ㄴㅎ", "ㄺ": "ㄹㄱ", "ㄻ": "ㄹㅁ", "ㄼ": "ㄹㅂ", "ㄽ": "ㄹㅅ",
    "ㄾ": "ㄹㅌ", "ㄿ": "ㄹㅍ", "ㅀ": "ㄹㅎ", "ㅄ": "ㅂㅅ",
    "ㅘ": "ㅗㅏ", "ㅙ": "ㅗㅐ", "ㅚ": "ㅗㅣ", "ㅝ": "ㅜㅓ", "ㅞ": "ㅜㅔ", "ㅟ": "ㅜㅣ", "ㅢ": "ㅡㅣ",
}  # fmt: skip
_FILLERS = {"\u115f", "\u1160", "\u3164", "\uffa0"}
MAX_SEP = 3  # spacing or punctuation characters allowed between two letters of an entry

_PARTICLES = (
    "은 는 이 가 을 를 도 의 에 만 와 과 랑 이랑 한테 에게 야 아 요 다 이다 이야 이에요 예요 "
    "이랑은 한테는 에게는 도요 만요 이요 ㄴ ㄹ"
).split()


@lru_cache(maxsize=4096)
def letters_of(ch: str) -> str:
    """The jamo letters of one character as compatibility jamo ('' for a non-Hangul
    character): 발 -> ㅂㅏㄹ, U+1107 -> ㅂ, ㅄ -> ㅂㅅ."""
    if ch in _FILLERS:
        return ""
    o = ord(ch)
    if 0xFFA1 <= o <= 0xFFDC:  # halfwidth jamo
        ch = unicodedata.normalize("NFKC", ch)
        o = ord(ch)
    if 0xAC00 <= o <= 0xD7A3:
        return "".join(letters_of(c) for c in unicodedata.normalize("NFD", ch))
    if 0x3131 <= o <= 0x318E:
        return _SPLIT.get(ch, ch)
    if 0x1100 <= o <= 0x11FF or 0xA960 <= o <= 0xA97F or 0xD7B0 <= o <= 0xD7FF:
        name = unicodedata.name(ch, "")
        for part in ("CHOSEONG ", "JUNGSEONG ", "JONGSEONG "):
            if part in name:
                try:
                    compat = unicodedata.lookup(name.replace(part, "LETTER "))
                except KeyError:
                    return ""
                return _SPLIT.get(compat, compat)
    return ""


def has_hangul(text: str) -> bool:
    return any(letters_of(c) for c in text)


_PARTICLE_LETTERS = sorted({"".join(letters_of(c) for c in p) for p in _PARTICLES}, key=len, reverse=True)
# Nouns and "like" that only make an insult worse when written onto it: 시발놈, 바보같이.
_INSULT_TAILS = sorted({"".join(letters_of(c) for c in p) for p in "놈 년 새끼 같".split()}, key=len, reverse=True)
_REST = re.compile(
    "(?:" + "|".join(_INSULT_TAILS) + ")?(?:ㄷㅡㄹ)?(?:" + "|".join(re.escape(p) for p in _PARTICLE_LETTERS) + ")?[ㅋㅎㅠㅜ]*"
)


def _is_separator(ch: str) -> bool:
    """Spacing, punctuation and invisible characters: what may sit inside a spelled-out word."""
    if ch in _FILLERS or unicodedata.category(ch) in ("Cf", "Mn", "Me"):
        return True
    return not ch.isalnum()


class HangulWords:
    """The Hangul entries of a banned list (see the module docstring): `hits(text)` gives
    (start, end, entry) spans in the original text, leftmost first, not overlapping."""

    def __init__(self, entries):
        self.entries: dict[str, str] = {}  # entry letters -> the entry as listed
        for entry in entries:
            key = "".join(letters_of(c) for c in entry)
            # Only entries written wholly in Hangul (spaces and punctuation aside)
            if key and all(letters_of(c) or _is_separator(c) for c in entry):
                self.entries.setdefault(key, entry.strip())
        self._by_first: dict[str, list[str]] = {}
        for key in sorted(self.entries, key=len, reverse=True):
            self._by_first.setdefault(key[0], []).append(key)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def _stream(self, text: str) -> list[tuple[str, int, bool]]:
        """(letter, index in text, starts a word) for every Hangul letter; a separator run
        is (" " * n, index, False); any other character ("x", index, False) breaks words."""
        out: list[tuple[str, int, bool]] = []
        word_start = True
        for i, ch in enumerate(text):
            letters = letters_of(ch)
            if letters:
                for k, letter in enumerate(letters):
                    out.append((letter, i, word_start and k == 0))
                word_start = False
            elif ch in _FILLERS or unicodedata.category(ch) == "Cf":
                continue  # invisible inside a word: not even a separator
            elif _is_separator(ch):
                out.append((" ", i, False))
                word_start = True
            else:
                out.append(("x", i, False))
                word_start = True
        return out

    def hits(self, text: str) -> list[tuple[int, int, str]]:
        if not self.entries or not has_hangul(text):
            return []
        stream = self._stream(text)
        found: list[tuple[int, int, str]] = []
        pos = 0
        while pos < len(stream):
            letter, start, starts_word = stream[pos]
            if not starts_word or letter not in self._by_first:
                pos += 1
                continue
            hit = None
            for key in self._by_first[letter]:
                end = self._match(stream, pos, key)
                if end is not None:
                    hit = (start, stream[end - 1][1] + 1, self.entries[key])
                    pos = end
                    break
            if hit is None:
                pos += 1
            else:
                found.append(hit)
        return found

    def inside(self, name: str) -> str | None:
        """The entry whose letters appear anywhere in a user name, or None. Names are read
        strictly ("시발맨" is not a word of its own, but as a name it says the entry): a
        blocked name only costs a neutral name instead."""
        if not self.entries or not has_hangul(name):
            return None
        letters = "".join(letters_of(c) for c in name)
        for key, entry in self.entries.items():
            if key in letters:
                return entry
        return None

    def _match(self, stream, pos: int, key: str) -> int | None:
        """The stream position after `key` (read from `pos`, separators allowed between its
        letters) and a particle ending its word; None when it does not match there."""
        k, i, seps = 0, pos, 0
        while k < len(key):
            if i >= len(stream):
                return None
            letter = stream[i][0]
            if letter == " ":
                seps += 1
                if k == 0 or seps > MAX_SEP:
                    return None
                i += 1
                continue
            if letter != key[k]:
                return None
            seps = 0
            k += 1
            i += 1
        # What is left of the word must be a particle (or nothing), then the word ends.
        rest_end = i
        while rest_end < len(stream) and stream[rest_end][0] not in (" ", "x"):
            rest_end += 1
        rest = "".join(s[0] for s in stream[i:rest_end])
        if rest and not _REST.fullmatch(rest):
            return None
        return rest_end
