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

* the entry inside a longer word, unless it is a form or a compound (below):
  "check", "heckler", "heckin", "checkmate" are NOT "heck" (whole-word rule, against
  the Scunthorpe problem). A digit right before or after counts as part of the word:
  "heck2" is not caught, so "h3ll0" (hello) is not "hell". Scripts written without
  spaces (Japanese, Chinese) therefore only match where the entry stands apart.
* word forms and compounds of entries under 4 letters ("tea" does not ban "teas"),
  of phrases, and of letterless entries; compounds spelled out with spaces
  ("m r p o t a t o h e a d"); compounds whose other part is no known piece
  ("potatozzz"); forms that change the stem beyond a final y or e, unless
  lemminflect lists the entry as the word's lemma.
* sound-alikes that are English words ("done", "dawn" for "darn"), more than
  len(entry)//3 edits away ("Darren" for "darn"), or 3+ letters longer or shorter.

Word forms, compounds, sound-alikes (single-word entries of 4+ letters):

* forms: an English ending written right onto the entry, with the same leet,
  look-alike and repeat reading: -s, -es, -ed, -ing, -ings, -er, -ers (after a final e:
  -d, -r, -rs; a final y: -ies, -ied, -ier), and the possessive: "potatoes",
  "potato's", "darned", "d4rn3d", "darning", "darner", "hecks"; and any word whose
  lemma (lemminflect) is the entry;
* compounds: hyphenated ("potato-head", already a word of its own), and run together
  ("mrpotatohead", "potatolover"): the word is not an English word itself and what
  surrounds the entry splits wholly into known pieces (English words of 3+ letters,
  or name parts such as "mr", "xx", "lil");
* sound-alikes: a word that is not English, with the entry's metaphone key, within
  2 letters of its length and at most len(entry)//3 (min 1) edits away: "dahrn".
* `allow` words are never blocked: a match whose letters, or whose whole word, is
  an allowed word passes ("Darnell", "darned" if listed).
* `find_in_name` splits user names first (`split_name`: CamelCase, underscores, digit
  runs): "MrPotatoHead", "xX_d4rn_Xx", "potatolover99", "DarnItAll".
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

Hangul entries are also read as jamo letters, with Korean spacing and particle forms
(decomposed and compatibility jamo, "시 발", "시발아", "바본"): see `vtuber.safety_hangul`.

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
from vtuber.safety_hangul import HangulWords, has_hangul

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
    forms = _takes_forms(letters, apostrophe_before)
    for i, c in enumerate(letters):
        cls = _letter_class(c, leet)
        if i:
            pattern += sep + "['’]?" if apostrophe_before[i] else sep
        if i < len(letters) - 1:
            pattern += f"{cls}++(?:{_SEP}{{1,{_MAX_SEP}}}+{cls}++){{0,{_MAX_REPEATS}}}+"
        else:
            # The last letter may backtrack: its repeats may have taken the start of the
            # next word ("tea and": " a") or a trailing symbol ("tea@"), to give back.
            last = f"{cls}+(?:{_SEP}{{1,{_MAX_SEP}}}+{cls}+){{0,{_MAX_REPEATS}}}"
            if forms:
                # Word forms: an ending written right after the entry ("darned", "potatoes",
                # "d4rn3d"); a separated ending needs no rule, the entry alone is a word then.
                last += "(?:" + "|".join(_suffix_pattern(x, leet) for x in _suffixes(c)) + ")?"
                if c == "y":  # "ies", "ied", "ier" replace a final y
                    last = f"(?:{last}|" + "|".join(_suffix_pattern(x, leet) for x in _Y_SUFFIXES) + ")"
            pattern += last
    return _letter_class(letters[0], leet), pattern + _AFTER


# English endings a single-word entry of 4+ letters also bans (on collapsed letters, so
# "stopped" is "stop" + "ed"); a possessive needs none: "'" already ends a word.
_SUFFIXES = ("s", "es", "ed", "ing", "ings", "er", "ers")
_E_SUFFIXES = ("s", "d", "r", "rs")  # after a final e: "hated", "hater"
_Y_SUFFIXES = ("ies", "ied", "ier", "iers")
FORMS_MIN_LETTERS = 4


def _takes_forms(letters: list[str], apostrophe_before: list[bool]) -> bool:
    """Word forms for single words of 4+ letters only: "teas" stays clear of "tea"."""
    return len(letters) >= FORMS_MIN_LETTERS and not any(apostrophe_before) and all(c.isalpha() for c in letters)


def _suffixes(last: str) -> tuple[str, ...]:
    return tuple(x for x in (_E_SUFFIXES if last == "e" else _SUFFIXES) if x[0] != last)


def _suffix_pattern(suffix: str, leet: dict[str, str]) -> str:
    parts = [_letter_class(c, leet) for c in suffix]
    return "".join(p + "++" for p in parts[:-1]) + parts[-1] + "+"


# --- the word pass: lemmas, compounds, sound-alikes ---------------------------------------

_WORD = re.compile(r"[^\W_][\w'’" + re.escape(_LEET_SYMBOLS) + r"]*")

# Name parts and short words that may stand beside an entry in a run-together word
# (English words of 3+ letters are pieces anyway).
_NAME_PARTS = frozenset(
    "mr ms mrs dr sir lil big the its im ur my xx xo xd uwu owo og yt tv pro ttv kid boy "
    "girl man guy lady king queen lord fan fanboy fangirl lover hater head face".split()
)
# Function words lemminflect does not list (they are English, so never sound-alikes).
_FUNCTION_WORDS = frozenset(
    "the a an and or but of to for with from into onto than then that this these those "
    "there their they them his her hers him she he we you your yours our ours its it's "
    "gonna wanna gotta kinda sorta dunno yeah nope okay".split()
)


@lru_cache(maxsize=16384)
def _lemmas(word: str) -> frozenset[str]:
    from lemminflect import getAllLemmas

    return frozenset(lemma for forms in getAllLemmas(word).values() for lemma in forms)


def _known_word(word: str) -> bool:
    """Whether `word` (letters, lower case) is an English word: lemminflect's lexicon."""
    return len(word) > 1 and (word in _FUNCTION_WORDS or bool(_lemmas(word)))


@lru_cache(maxsize=4096)
def _pieces(rest: str) -> bool:
    """Whether `rest` is empty or splits wholly into known pieces ("head", "lover", "mr")."""
    if not rest:
        return True
    for i in range(len(rest), 1, -1):
        piece = rest[:i]
        if (piece in _NAME_PARTS or (len(piece) >= 3 and _known_word(piece))) and _pieces(rest[i:]):
            return True
    return False


def _strip_suffix(rest: str) -> str:
    """A compound's tail without a form ending in front: "potatoeslover" -> "lover"."""
    for x in ("ings", "ing", "ers", "er", "es", "ed", "s"):
        if rest.startswith(x) and _pieces(rest[len(x) :]) and rest[len(x) :]:
            return rest[len(x) :]
    return rest


@lru_cache(maxsize=16384)
def _metaphone(word: str) -> str:
    import jellyfish

    return jellyfish.metaphone(word) if word else ""


def _edits(a: str, b: str) -> int:
    import jellyfish

    return jellyfish.levenshtein_distance(a, b)


def _plain_letters(word: str) -> str:
    """A word's letters with leet read, runs NOT collapsed (for the lexicon: "stopped")."""
    return "".join(c if c.isalpha() else _LEET_TO_LETTER.get(c, "") for c in word)


_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def split_name(name: str) -> str:
    """A user name split into the words people read in it: "MrPotatoHead" -> "Mr Potato
    Head", "xX_d4rn_Xx" -> "x X d4rn X x", "potatolover99" -> "potatolover 99".
    Digits between letters stay (leet: "d4rn"); runs of 2+ digits at a piece's ends split."""
    out = []
    for piece in re.split(r"[\W_]+", unicodedata.normalize("NFKC", name)):
        piece = re.sub(r"^(\d{2,})(?=\D)|(?<=\D)(\d{2,})$", r" \1\2 ", piece)
        out.append(_CAMEL.sub(" ", piece))
    return " ".join(" ".join(out).split())


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

    def __init__(self, words: Iterable[str] = (), allow: Iterable[str] = ()):
        if isinstance(words, str):
            words = [words]
        if isinstance(allow, str):
            allow = [allow]
        # Words never blocked, as their letters ("Darnell", "darned"): a match whose
        # letters, or the word around it, are one of these is let through.
        self.allow: frozenset[str] = frozenset(
            _word_letters(w) for a in allow for w in _SEP_RUN.split(normalise(a)) if _word_letters(w)
        )
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

        # The word pass (lemmas, run-together compounds, sound-alikes) for single-word
        # entries of 4+ letters, keyed by their collapsed letters.
        self._word_entries: dict[str, str] = {}
        for w in self.words:
            parsed = _entry_letters(w)
            if isinstance(parsed, tuple) and _takes_forms(*parsed) and len(_SEP_RUN.split(normalise(w).strip())) == 1:
                self._word_entries.setdefault("".join(parsed[0]), w)
        self._inside = (
            re.compile("|".join(re.escape(k) for k in sorted(self._word_entries, key=len, reverse=True)))
            if self._word_entries
            else None
        )
        self._sounds: dict[str, list[str]] = {}
        for k in self._word_entries:
            self._sounds.setdefault(_metaphone(k), []).append(k)
        self._word_cache: dict[str, str | None] = {}
        self._hangul = HangulWords(self.words)  # Hangul entries: jamo, spacing and particle forms

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
        if not self.allow and not self._word_entries and not (self._hangul and has_hangul(text)):
            first = self._search(_normalise_mapped(text, invisible=" ")[0])
            return self._entry(first) if first else None
        found = self.hits(text)
        return found[0].entry if found else None

    def hits(self, text: str) -> list[Hit]:
        """Every non-overlapping banned entry in `text`, with spans in the ORIGINAL text.

        A span covers the source characters the match came from, plus any dropped
        characters (combining marks, zero-width characters) right after it.
        """
        if not self._regexes or not text:
            return []
        matches, where = self._matches(text)
        norm = _normalise_mapped(text, invisible=" ")[0] if (self.allow or self._word_entries) else ""
        spans: list[tuple[int, int, str]] = []
        for m in matches:
            if self.allow and self._allowed(norm, m.start(), m.end()):
                continue
            spans.append((m.start(), m.end(), self._entry(m)))
        if self._word_entries:
            taken = [(a, b) for a, b, _ in spans]
            for a, b, entry in self._word_pass(norm):
                if not any(a < y and x < b for x, y in taken):
                    spans.append((a, b, entry))
            spans.sort()
        out = []
        for a, b, entry in spans:
            start = where[a]
            end = where[b - 1] + 1
            while end < len(text) and _fold_char(text[end], "") == "":
                end += 1
            out.append(Hit(entry, start, end))
        if self._hangul:  # Hangul read as jamo letters (vtuber.safety_hangul), on the original text
            for a, b, entry in self._hangul.hits(text):
                if self.allow and _word_letters(normalise(text[a:b])) in self.allow:
                    continue
                if not any(a < h.end and h.start < b for h in out):
                    out.append(Hit(entry, a, b))
            out.sort(key=lambda h: h.start)
        return out

    def _allowed(self, norm: str, a: int, b: int) -> bool:
        """Whether the match norm[a:b] is an allowed word: its own letters, or the
        whole word around it ("Darnell" when "darn" matched inside it)."""
        if _word_letters(norm[a:b].replace("'", "").replace("’", "")) in self.allow:
            return True
        while a > 0 and (norm[a - 1].isalnum() or norm[a - 1] in "'’"):
            a -= 1
        while b < len(norm) and (norm[b].isalnum() or norm[b] in "'’"):
            b += 1
        return _word_letters(norm[a:b]) in self.allow

    def _word_pass(self, norm: str):
        """(start, end, entry) for each word of `norm` that is a form, a run-together
        compound or a sound-alike of an entry (see `_word_entry`)."""
        for m in _WORD.finditer(norm):
            word = m.group(0)
            if len(word) < FORMS_MIN_LETTERS or len(word) > 40:
                continue
            letters = _word_letters(word.rstrip("!|"))
            if len(letters) < FORMS_MIN_LETTERS or letters in self.allow:
                continue
            if letters in self._word_cache:
                entry = self._word_cache[letters]
            else:
                entry = self._word_entry(letters, _plain_letters(word.rstrip("!|")))
                if len(self._word_cache) > 4096:
                    self._word_cache.clear()
                self._word_cache[letters] = entry
            if entry is not None:
                yield m.start(), m.end(), entry

    def _word_entry(self, letters: str, plain: str) -> str | None:
        """The entry one word stands for, beyond the regex's own reading:

        * a lemma equal to the entry (an irregular or unlisted form: lemminflect);
        * a run-together compound: the word contains the entry, is not an English word
          itself, and what is left on either side splits into known pieces (English
          words of 3+ letters, or name parts like "mr", "xx", "lil"): "mrpotatohead",
          "potatolover" (but "scunthorpe": "s" and "horpe" are no pieces);
        * a sound-alike: same metaphone key as the entry, not an English word, length
          within 2 letters and at most len(entry)//3 (min 1) edits away: "dahrn".
        """
        known = _known_word(plain) or _known_word(letters)
        for lemma in _lemmas(plain) | _lemmas(letters):
            entry = self._word_entries.get(_collapse_runs(lemma))
            if entry is not None:
                return entry
        if known or self._inside is None:
            return None
        for m in self._inside.finditer(letters):
            before, after = letters[: m.start()], letters[m.end() :]
            if (before or after) and _pieces(before) and _pieces(_strip_suffix(after)):
                return self._word_entries[m.group(0)]
        for key in self._sounds.get(_metaphone(plain), ()):
            if abs(len(plain) - len(key)) <= 2 and _edits(plain, key) <= max(1, len(key) // 3):
                return self._word_entries[key]
        return None

    def find_in_name(self, name: str) -> str | None:
        """The banned entry a user name contains, read the way people read names:
        CamelCase, underscores, dots and digit runs split it ("MrPotatoHead",
        "xX_d4rn_Xx", "potatolover99", "DarnItAll"), leet inside a piece is read as
        letters, and a run-together name is read as a compound. None if clean."""
        if not name or not name.strip():
            return None
        return self.find(split_name(name)) or self.find(name) or self._hangul.inside(name)


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


# Role names a reply must never speak as, at the start of a clause ("User: ...").
_ROLES = frozenset("user assistant system human ai bot chat viewer streamer narrator moderator mod".split())
_CLAIM = re.compile(
    r"(?<![\w'’])(?:(?i:i\s*['’]?\s*m|i\s+am|my\s+name\s*['’]?\s*s|my\s+name\s+is|call\s+me)"
    r"|(?i:as\s+the)(?:\s+[a-z]+){1,2})\s+([A-Z][a-z]+)(?![\w'’])(?!\s*['’]s\b)"
)
_TAG = re.compile(r"^\W*([A-Za-z][\w]*)\s*:(?:\s|$)")


def _is_name_like(word: str) -> bool:
    """A capitalised word that could be a name: not an adjective or adverb ("Sorry",
    "Back", "Here", "Going") and not a function word."""
    low = word.lower()
    if low in _FUNCTION_WORDS:
        return False
    from lemminflect import getAllLemmas

    tags = getAllLemmas(low)
    return not ({"ADJ", "ADV"} & set(tags)) and not low.endswith("ing")


class OutputGate:
    """Decides what may be said: `check(clause, turn)` returns the clause, or the safe line.

    Blocks a clause that has
    * a banned word (see `BannedWords`, forms, compounds and sound-alikes included):
      reason "banned word 'X'" (X as listed);
    * the canary token, also cased, spaced or punctuated differently, its random part
      alone, or a garbled copy (the prefix followed by hex with a digit in it, like
      "CANARY-be9bc78b3f"): reason "canary leak". Pieces count too: any run of 4 or
      more characters of the random part, read with spacing and punctuation removed
      ("b5af5", "b 5 a f"), if the run mixes digits and letters, or is all digits and
      6+ long, or follows the prefix ("CANARY-cafe"). A run of letters alone
      ("cafe", "bead", "dead") or a short number is an ordinary word and passes;
    * `leak_words` or more consecutive words of the system prompt (normalised), or
      `guarded_words` or more consecutive words of a `guarded_texts` text (the
      persona's description and instructions): reason "system prompt leak". Word runs
      that also appear in `leak_exempt` texts (lines the persona is meant to say, such
      as its example lines) are not leaks;
    * an identity break, when `persona_name` is given: the clause names the persona as
      someone else ("I'm Max", "I am Max", "my name is Max", "call me Bob", "as the
      pirate Bob": a capitalised word that is not part of the persona's name nor an
      adjective or adverb, so "I'm Sorry", "I'm so glad", "I'm a fox" pass), or starts
      speaking for another role ("User:", "Assistant:", "Sam:": a role word, or a
      capitalised word that is no English word). Reason "identity: ...", counted in
      `identity_breaks`.

    The check also looks across clause breaks: the last `context_chars` characters
    of what was let through before are read together with the new clause, so a word
    spelled out over several clauses ("H, E," then "C, K.") or a prompt sentence cut
    into short clauses is caught at the clause that completes it. Only evidence that
    reaches into the new clause counts; a blocked clause clears that character
    context. The prompt-leak check has its own memory: the last words of the reply,
    blocked clauses included, so a quote that was blocked and then goes on is blocked
    again. `new_reply()` clears that memory (call it when a reply starts).

    Every block is recorded in `blocked` as (turn id, clause, reason) and logged as
    one warning. `reason(clause)` gives the verdict without recording anything.
    `name_reason(name)` / `safe_name(name)` apply the banned-word, canary and prompt
    checks to a user name.
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
        guarded_texts: Iterable[str] = (),
        guarded_words: int = 5,
        persona_name: str = "",
        allow: Iterable[str] = (),
    ):
        self.banned = (
            banned_words if isinstance(banned_words, BannedWords) else BannedWords(banned_words, allow=allow)
        )
        self.banned_words = self.banned.words
        self.safe_line = safe_line
        self.canary = canary
        self.leak_words = max(1, int(leak_words))
        self.guarded_words = max(1, int(guarded_words))
        self.context_chars = max(0, int(context_chars))
        self.persona_name = persona_name
        self._own_names = {w.lower() for w in re.findall(r"[^\W\d_]+", persona_name)}
        self.blocked: list[tuple[int, str, str]] = []  # (turn id, clause, reason)
        self.identity_breaks = 0
        self._said = ""  # the tail of what was let through, for checks across clauses
        self._reply_words: list[str] = []  # the reply's last words, blocked clauses included

        self._canary_keys: list[str] = []
        self._canary_garbled: re.Pattern[str] | None = None
        self._canary_pieces: re.Pattern[str] | None = None
        if canary.strip():
            self._canary_keys.append(_compact(canary))
            m = re.fullmatch(r"(.*?[^\W\d_].*?)[\W_]*([0-9a-fA-F]{8,})", canary.strip())
            if m:
                self._canary_keys.append(_compact(m.group(2)))
                prefix = _compact(m.group(1))
                self._canary_garbled = re.compile(re.escape(prefix) + r"([0-9a-f]{6,})")
                secret = _compact(m.group(2))
                pieces = set()
                for i in range(len(secret) - 3):
                    w4 = secret[i : i + 4]
                    pieces.add(re.escape(prefix + w4))
                    if any(c.isdigit() for c in w4) and any(c.isalpha() for c in w4):
                        pieces.add(re.escape(w4))
                    w6 = secret[i : i + 6]
                    if len(w6) == 6 and w6.isdigit():
                        pieces.add(re.escape(w6))
                self._canary_pieces = re.compile("(?=(" + "|".join(sorted(pieces, key=len, reverse=True)) + "))")

        n = self.leak_words
        prompt = _words(system_prompt)
        self._ngrams = {tuple(prompt[i : i + n]) for i in range(len(prompt) - n + 1)}
        g = self.guarded_words
        self._guarded: set[tuple[str, ...]] = set()
        for text in guarded_texts:
            w = _words(text)
            self._guarded.update(tuple(w[i : i + g]) for i in range(len(w) - g + 1))
        for text in leak_exempt:
            w = _words(text)
            self._ngrams.difference_update(tuple(w[i : i + n]) for i in range(len(w) - n + 1))
            self._guarded.difference_update(tuple(w[i : i + g]) for i in range(len(w) - g + 1))

    def reason(self, clause: str, context: str = "") -> str | None:
        """Why `clause` may not be said after `context` (text already said), or None."""
        return self._reason(clause, context, _words(context))

    def _reason(self, clause: str, context: str, words_before: list[str]) -> str | None:
        if context:
            joined = context + " " + clause
            cut = len(context) + 1
            hit = next((h for h in self.banned.hits(joined) if h.end > cut), None)
            word = hit.entry if hit else None
        else:
            word = self.banned.find(clause)
        if word is not None:
            return f"banned word '{word}'"
        if self._canary_leak(_compact(context), _compact(clause)):
            return "canary leak"
        if self._prompt_leak(words_before, _words(clause)):
            return "system prompt leak"
        return self._identity(clause)

    def _canary_leak(self, before: str, clause: str) -> bool:
        if not self._canary_keys:
            return False
        compact = before + clause
        if any(k in compact and k not in before for k in self._canary_keys):
            return True
        if self._canary_garbled is not None:
            for m in self._canary_garbled.finditer(compact):
                if m.end() > len(before) and any(c.isdigit() for c in m.group(1)):
                    return True
        if self._canary_pieces is not None:
            for m in self._canary_pieces.finditer(compact):
                if m.start() + len(m.group(1)) > len(before):
                    return True
        return False

    def _prompt_leak(self, before: list[str], words: list[str]) -> bool:
        w = before + words
        for n, grams in ((self.leak_words, self._ngrams), (self.guarded_words, self._guarded)):
            if not grams:
                continue
            first = max(0, len(before) - n + 1)  # windows that reach into the clause
            if any(tuple(w[i : i + n]) in grams for i in range(first, len(w) - n + 1)):
                return True
        return False

    def _identity(self, clause: str) -> str | None:
        if not self.persona_name:
            return None
        text = unicodedata.normalize("NFKC", clause)
        tag = _TAG.match(text)
        if tag:
            who = tag.group(1)
            if who.lower() in _ROLES or (
                who[0].isupper() and who.lower() not in self._own_names and not _known_word(who.lower())
            ):
                return f"identity: speaks as '{who}'"
        for m in _CLAIM.finditer(text):
            name = m.group(1)
            if name.lower() not in self._own_names and _is_name_like(name):
                return f"identity: claims to be '{name}'"
        return None

    def name_reason(self, name: str) -> str | None:
        """Why a user name may not be said or shown, or None: a banned entry in it (read
        as `BannedWords.find_in_name` reads names), the canary or a piece of it, or a run
        of system-prompt words."""
        if not name or not name.strip():
            return None
        word = self.banned.find_in_name(name)
        if word is not None:
            return f"banned word '{word}'"
        if self._canary_leak("", _compact(name)):
            return "canary leak"
        if self._prompt_leak([], _words(split_name(name))):
            return "system prompt leak"
        return None

    def safe_name(self, name: str, neutral: str = "a new friend") -> str:
        """`name` if it may be said, else `neutral`."""
        return name if self.name_reason(name) is None else neutral

    def new_reply(self) -> None:
        """A reply starts: forget the last reply's words (the prompt-leak memory)."""
        self._reply_words = []

    def check(self, clause: str, turn: Turn | None = None) -> str:
        """The clause if it may be said, else the safe line."""
        reason = self._reason(clause, self._said, self._reply_words)
        keep = max(self.leak_words, self.guarded_words) * 2
        self._reply_words = (self._reply_words + _words(clause))[-keep:]
        if reason is None:
            self._remember(clause)
            return clause
        self._said = ""
        if reason.startswith("identity"):
            self.identity_breaks += 1
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
