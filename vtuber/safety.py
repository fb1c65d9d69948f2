"""What may be said on stream: the output gate every clause passes BEFORE it is spoken.

The gate sees each clause after the LLM and before TTS, the overlay or chat. A
clause with a banned word, the session canary or a run of system-prompt words is
replaced by a safe line and the event is logged. Incoming chat goes through a
`ChatFilter` built on the same matcher.

Banned-word matching (`BannedWords`)
------------------------------------
Text and banned entries are both put through `normalise` (NFKC, casefold,
format characters out, diacritics out, look-alike letters folded to Latin), and
each entry becomes one pattern in which every letter also accepts its leetspeak
stand-ins, may be repeated, and may be separated from the next letter by
spacing/punctuation. The whole entry must stand as a word of its own: it must not
be preceded or followed by a letter or digit. Patterns are possessive and bounded,
so matching stays linear in the length of the text whatever chat sends.

Caught, for the entry "heck" (and likewise for phrases such as "shut up"):

* case: "HECK", "HeCk"; width and styled letters via NFKC: "ｈｅｃｋ", "𝐡𝐞𝐜𝐤", "ⓗⓔⓒⓚ";
  superscripts "ʰᵉᶜᵏ"; small capitals "ʜᴇᴄᴋ"; regional-indicator letters.
* look-alike letters from Cyrillic ("һеск"), Greek ("ΗΕϹΚ", "hεcκ"), Armenian and
  Latin variants (ı, ł, ø, ɡ, ...).
* invisible characters inside the word: zero-width space/joiners, word joiner,
  BOM, soft hyphen (any category Cf), Hangul fillers, braille blank.
* diacritics and Zalgo: "hé́ck", "h̶e̶c̶k̶" (generic combining marks are dropped;
  script-intrinsic marks such as kana voicing marks are kept).
* leetspeak inside the word: 0=o 1=i/l 3=e 4=a 5=s 6=g/b 7=t 8=b 9=g 2=z @=a $=s
  !=i |=l/i #=h +=t €=e ("h3ck", "#3ck", "he11" for "hell", "k1ll" for "kill").
* repeated letters: "heeeeck", "hhheck" (runs are collapsed in the entry too, so
  "bloody" also catches "blooooody" and "blody").
* letters separated by spacing or punctuation, single letters or fragments:
  "h e c k", "h.e.c.k", "h-e-c-k", "h_e_c_k", "h * e * c * k", "he ck", "hé ck",
  and phrases with the space removed or moved: "shutup", "shut  up", "s h u t u p".
  Spelled-out letters may even be split by clause punctuation ("H, E, C, K.").
* surrounded by punctuation or spacing: "(heck!)", "#heck", "@heck", "heck!!!".

Not caught (by design, or a known limit):

* the entry inside a longer word: "check", "heckler", "hecks", "heckin" are NOT
  "heck" (whole-word rule, against the Scunthorpe problem). Add inflections you
  want banned ("damned", "damnit") as their own entries. A digit right before or
  after counts as part of the word: "heck2" is not caught, so "h3ll0" (hello) is
  not "hell". Scripts written without spaces (Japanese, Chinese) therefore only
  match where the entry stands apart.
* one word that uses "1" (or "|", "6") for two different letters: "h1ll" and
  "hi11" are "hill", "h111" is not.
* more than 12 separator characters between two letters, or one letter repeated
  with separators more than 24 times (a flood of invisible characters counts as
  one separator).
* words run across a sentence or clause break (, ; : . ? or … then a space):
  "the door is shut. Up next" and "shut, up" are not "shut up", "he, ck" is not
  "heck" (but single spelled-out letters may cross breaks, see above).
* letters masked out or swapped: "h*ck", "hekc", "hek"; letters spelled as words
  ("aitch ee see kay"); apostrophes inside the word ("h'e'c'k"), since apostrophes
  belong to words ("he'll" must not read as "hell").
* look-alikes outside the tables in this module (e.g. Cherokee, mathematical operators),
  capital "I" posing as "l" ("heIl"), and leet digraphs like "|-|" for h.
* homophones, translations, euphemisms and meaning: this is a word list, not a
  classifier.

Known false positives (rare): whole words or fragments that, written next to
each other with only spacing between them, spell an entry ("he ll" for "hell",
"a ss" for "ass"), and single letters spelling an entry ("c h e c k" contains
"h e c k"). Someone who spaces out letters is treated as evading the filter.

`OutputGate` also reads each clause together with the end of what was said just
before it, so a word spelled over several clauses is caught (see its docstring).
"""

from __future__ import annotations

import logging
import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from vtuber.errors import UserError
from vtuber.events import Turn

log = logging.getLogger("vtuber.safety")

SAFE_LINE = "Let's keep it friendly, chat!"
REMOVED = "[message removed]"
MASK = "***"

# --- look-alike tables --------------------------------------------------------------

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


# --- banned words ---------------------------------------------------------------------

_BEFORE = r"(?<![^\W_])"  # not preceded by a letter or digit
_AFTER = r"(?![^\W_])"  # not followed by a letter or digit
_MAX_SEP = 12  # separator characters allowed between two letters
_MAX_REPEATS = 24  # separated repeats of one letter ("h e e e e c k")


def _letter_class(c: str, leet: dict[str, str]) -> str:
    alts = c + leet.get(c, "")
    return "[" + "".join(re.escape(a) for a in alts) + "]" if len(alts) > 1 else re.escape(c)


def _entry_letters(entry: str) -> tuple[list[str], list[bool]] | str | None:
    """An entry's letters (leet read as letters, runs collapsed) and, for each, whether
    the entry has an apostrophe before it ("don't"); the literal text for a letterless
    entry ("1488"); None for an entry with nothing to match on ("--")."""
    norm = normalise(entry).strip()
    if not any(c.isalnum() for c in norm):
        return None
    if not any(c.isalpha() for c in norm):
        return norm
    letters: list[str] = []
    apostrophe_before: list[bool] = []
    pending_apostrophe = False
    for word in _SEP_RUN.split(norm):
        for part in re.split(r"(['’])", word.rstrip("!|")):
            if part in ("'", "’"):
                pending_apostrophe = bool(letters)
                continue
            for c in _word_letters(part) if part else "":
                if letters and letters[-1] == c:
                    continue
                letters.append(c)
                apostrophe_before.append(pending_apostrophe)
                pending_apostrophe = False
    return letters, apostrophe_before


def _entry_pattern(entry: str, leet: dict[str, str]) -> tuple[str, str] | None:
    """The regex for one banned entry under one leet reading, as (the class of its
    first character, the pattern after the opening word-boundary check), or None
    for an empty entry.

    Every letter is `C++(?:S{1,12}+C++){0,24}+` (the letter or its stand-ins, repeated,
    possibly with separators between the repeats), letters are joined by `S{0,12}+`,
    and the whole must not touch a letter or digit on either side. Letter classes
    and the separator class S are pairwise disjoint, so giving characters back could
    never help a later letter match and the quantifiers can be possessive; only the
    last letter may backtrack, before the closing word-boundary check. Matching
    stays fast (about linear in the text) whatever chat sends.
    """
    parsed = _entry_letters(entry)
    if parsed is None:
        return None
    if isinstance(parsed, str):
        return re.escape(parsed[0]), re.escape(parsed) + _AFTER
    letters, apostrophe_before = parsed
    sep = f"{_SEP}{{0,{_MAX_SEP}}}+"
    pattern = ""
    for i, c in enumerate(letters):
        cls = _letter_class(c, leet)
        if i:
            pattern += sep + "['’]?" if apostrophe_before[i] else sep
        if i < len(letters) - 1:
            pattern += f"{cls}++(?:{_SEP}{{1,{_MAX_SEP}}}+{cls}++){{0,{_MAX_REPEATS}}}+"
        else:
            # The last letter may backtrack: its repeats may have taken the start of the
            # next word ("tea and": " a") or a trailing symbol ("tea@"), to give back.
            pattern += f"{cls}+(?:{_SEP}{{1,{_MAX_SEP}}}+{cls}+){{0,{_MAX_REPEATS}}}"
    return _letter_class(letters[0], leet), pattern + _AFTER


@dataclass(frozen=True)
class Hit:
    """One banned entry found in a text: the entry as listed, and its span in the text."""

    entry: str
    start: int
    end: int


class BannedWords:
    """Finds banned words and phrases however chat or the model spells them.

    `find(text)` gives the first entry found (as listed), `hits(text)` every
    occurrence with its span in the original text. See the module docstring for
    exactly what is and is not caught.

    Building one compiles a regex per leet reading: instant for a short list, about
    0.7 s for a few hundred entries (then cached by `re`, so a second matcher with the
    same list is cheap). A check then costs well under a millisecond per clause.
    """

    def __init__(self, words: Iterable[str] = ()):
        if isinstance(words, str):
            words = [words]
        keyed: dict[tuple, str] = {}  # patterns (one per leet reading) -> first entry with them
        for w in words:
            w = w.strip()
            key = tuple(_entry_pattern(w, leet) for leet in _LEET_READINGS)
            if key[0] is not None and key not in keyed:
                keyed[key] = w
        self.words: tuple[str, ...] = tuple(keyed.values())
        self._regexes: list[re.Pattern[str]] = []
        for r in range(len(_LEET_READINGS)):
            # One regex per reading: the word-boundary check once, then the entries
            # grouped by their first character, so that at most positions one cheap
            # test fails instead of every entry being tried.
            groups: dict[str, list[str]] = {}
            for i, key in enumerate(keyed):
                first, body = key[r]
                groups.setdefault(first, []).append(f"(?P<b{i}>{body})")
            if not groups:
                continue
            pattern = _BEFORE + "(?:" + "|".join(f"(?={f})(?:{'|'.join(b)})" for f, b in groups.items()) + ")"
            if all(pattern != rx.pattern for rx in self._regexes):
                self._regexes.append(re.compile(pattern))

    def __bool__(self) -> bool:
        return bool(self.words)

    def __len__(self) -> int:
        return len(self.words)

    def __repr__(self) -> str:
        return f"BannedWords({list(self.words)!r})"

    def _matches(self, text: str) -> tuple[list[re.Match[str]], list[int]]:
        """Non-overlapping matches in the matching form of `text`, leftmost first, and the
        index map from that form back to `text`."""
        if not self._regexes or not text:
            return [], []
        # Invisible characters become separators for matching, so "the\u200bheck" is
        # "the heck" and "he\u200bck" is "he ck" (caught either way).
        norm, where = _normalise_mapped(text, invisible=" ")
        found = sorted(
            (m for rx in self._regexes for m in rx.finditer(norm) if self._readable(m)),
            key=lambda m: (m.start(), -m.end()),
        )
        out: list[re.Match[str]] = []
        for m in found:
            if not out or m.start() >= out[-1].end():
                out.append(m)
        return out, where

    @staticmethod
    def _readable(m: re.Match[str]) -> bool:
        """False for a match that runs words across a sentence break ("shut. Up next"):
        a break (, ; : . ? or … then whitespace) may only sit between single letters,
        as in spelling ("H, E, C, K")."""
        parts = _SEP_RUN_SPLIT.split(m.group(0))
        for i in range(1, len(parts) - 1, 2):
            if _BREAK.search(parts[i]) and (len(parts[i - 1]) > 1 or len(parts[i + 1]) > 1):
                return False
        return True

    def _search(self, norm: str) -> re.Match[str] | None:
        first = None
        for rx in self._regexes:
            m = next((m for m in rx.finditer(norm) if self._readable(m)), None)
            if m and (first is None or m.start() < first.start()):
                first = m
        return first

    def _entry(self, m: re.Match[str]) -> str:
        return self.words[int(m.lastgroup[1:])]  # type: ignore[index]

    def find(self, text: str) -> str | None:
        """The first banned entry (as listed) found in `text`, or None."""
        if not self._regexes or not text:
            return None
        first = self._search(_normalise_mapped(text, invisible=" ")[0])
        return self._entry(first) if first else None

    def hits(self, text: str) -> list[Hit]:
        """Every non-overlapping banned entry in `text`, with spans in the ORIGINAL text.

        A span covers the source characters the match came from, plus any dropped
        characters (combining marks, zero-width characters) right after it.
        """
        matches, where = self._matches(text)
        out = []
        for m in matches:
            start = where[m.start()]
            end = where[m.end() - 1] + 1
            while end < len(text) and _fold_char(text[end], "") == "":
                end += 1
            out.append(Hit(self._entry(m), start, end))
        return out


def default_banned_words(path: str | Path | None = None) -> list[str]:
    """The default banned list: one entry a line, `#` starts a comment, blank lines skipped.

    `path` overrides the bundled `vtuber/data/banned_words.txt`.
    """
    if path is None:
        res = resources.files("vtuber").joinpath("data/banned_words.txt")
        text = res.read_text(encoding="utf-8")
    else:
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: cannot read the banned words file ({getattr(e, 'strerror', None) or e})") from None
    words = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = re.split(r"\s+#", line, maxsplit=1)[0].strip()  # trailing "  # comment"
        if line:
            words.append(line)
    return words


# --- the output gate ------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", normalise(text))


def _compact(text: str) -> str:
    return re.sub(r"[\W_]+", "", normalise(text))


def make_canary() -> str:
    """A fresh random token to plant in the system prompt: "CANARY-" + 12 hex characters."""
    return "CANARY-" + secrets.token_hex(6)


class OutputGate:
    """Decides what may be said: `check(clause, turn)` returns the clause, or the safe line.

    Blocks a clause that has
    * a banned word (see `BannedWords`): reason "banned word 'X'" (X as listed);
    * the canary token, also cased, spaced or punctuated differently, its random part
      alone, or a garbled copy (the prefix followed by hex with a digit in it, like
      "CANARY-be9bc78b3f"): reason "canary leak";
    * `leak_words` or more consecutive words of the system prompt (normalised):
      reason "system prompt leak". Word runs that also appear in `leak_exempt` texts
      (lines the persona is meant to say, such as its example lines) are not leaks.

    The check also looks across clause breaks: the last `context_chars` characters
    of what was let through before are read together with the new clause, so a word
    spelled out over several clauses ("H, E," then "C, K.") or a prompt sentence cut
    into short clauses is caught at the clause that completes it. Only evidence that
    reaches into the new clause counts; a blocked clause clears that context.

    Every block is recorded in `blocked` as (turn id, clause, reason) and logged as
    one warning. `reason(clause)` gives the verdict without recording anything.
    """

    def __init__(
        self,
        banned_words: Iterable[str] | BannedWords = (),
        safe_line: str = SAFE_LINE,
        canary: str = "",
        system_prompt: str = "",
        leak_words: int = 8,
        leak_exempt: Iterable[str] = (),
        context_chars: int = 80,
    ):
        self.banned = banned_words if isinstance(banned_words, BannedWords) else BannedWords(banned_words)
        self.banned_words = self.banned.words
        self.safe_line = safe_line
        self.canary = canary
        self.leak_words = max(1, int(leak_words))
        self.context_chars = max(0, int(context_chars))
        self.blocked: list[tuple[int, str, str]] = []  # (turn id, clause, reason)
        self._said = ""  # the tail of what was let through, for checks across clauses

        self._canary_keys: list[str] = []
        self._canary_garbled: re.Pattern[str] | None = None
        if canary.strip():
            self._canary_keys.append(_compact(canary))
            m = re.fullmatch(r"(.*?[^\W\d_].*?)[\W_]*([0-9a-fA-F]{8,})", canary.strip())
            if m:
                self._canary_keys.append(_compact(m.group(2)))
                self._canary_garbled = re.compile(re.escape(_compact(m.group(1))) + r"([0-9a-f]{6,})")

        n = self.leak_words
        prompt = _words(system_prompt)
        self._ngrams = {tuple(prompt[i : i + n]) for i in range(len(prompt) - n + 1)}
        for text in leak_exempt:
            w = _words(text)
            self._ngrams.difference_update(tuple(w[i : i + n]) for i in range(len(w) - n + 1))

    def reason(self, clause: str, context: str = "") -> str | None:
        """Why `clause` may not be said after `context` (text already said), or None."""
        if context:
            joined = context + " " + clause
            cut = len(context) + 1
            hit = next((h for h in self.banned.hits(joined) if h.end > cut), None)
            word = hit.entry if hit else None
        else:
            word = self.banned.find(clause)
        if word is not None:
            return f"banned word '{word}'"

        if self._canary_keys:
            before = _compact(context)
            compact = before + _compact(clause)
            if any(k in compact and k not in before for k in self._canary_keys):
                return "canary leak"
            if self._canary_garbled is not None:
                for m in self._canary_garbled.finditer(compact):
                    if m.end() > len(before) and any(c.isdigit() for c in m.group(1)):
                        return "canary leak"

        if self._ngrams:
            before_words = _words(context)
            w = before_words + _words(clause)
            n = self.leak_words
            first = max(0, len(before_words) - n + 1)  # windows that reach into the clause
            if any(tuple(w[i : i + n]) in self._ngrams for i in range(first, len(w) - n + 1)):
                return "system prompt leak"
        return None

    def check(self, clause: str, turn: Turn | None = None) -> str:
        """The clause if it may be said, else the safe line."""
        reason = self.reason(clause, self._said)
        if reason is None:
            self._remember(clause)
            return clause
        self._said = ""
        self.blocked.append((turn.id if turn else 0, clause, reason))
        log.warning("blocked a clause before speech (%s)", reason)
        return self.safe_line

    def _remember(self, clause: str) -> None:
        if not self.context_chars or not clause.strip():
            return
        said = f"{self._said} {clause}".strip()
        if len(said) > self.context_chars:
            said = said[-self.context_chars :]
            space = said.find(" ")
            said = said[space + 1 :] if space >= 0 else ""  # never start mid-word ("...check" -> "heck")
        self._said = said


# --- incoming chat --------------------------------------------------------------------


class ChatFilter:
    """Screens incoming chat before the co-host reads it.

    mode "skip": a message with a banned word is dropped.
    mode "sanitise": each banned occurrence is replaced by "***"; if that still
    leaves a banned word readable (e.g. "heheckck" -> "he***ck"), the whole
    message becomes "[message removed]".
    """

    MODES = ("skip", "sanitise")

    def __init__(self, banned: BannedWords | Iterable[str], mode: str = "skip"):
        if mode not in self.MODES:
            raise ValueError(f"chat filter mode must be one of {self.MODES}, not {mode!r}")
        self.banned = banned if isinstance(banned, BannedWords) else BannedWords(banned)
        self.mode = mode

    def apply(self, text: str) -> tuple[str | None, str | None]:
        """(text to use, or None to skip it; reason, or None if the text was clean)."""
        hits = self.banned.hits(text)
        if not hits:
            return text, None
        reason = f"banned word '{hits[0].entry}'"
        if self.mode == "skip":
            return None, reason
        out, last = [], 0
        for h in hits:
            out.append(text[last : h.start])
            out.append(MASK)
            last = h.end
        out.append(text[last:])
        cleaned = "".join(out)
        if self.banned.find(cleaned) is not None:
            return REMOVED, reason
        return cleaned, reason
