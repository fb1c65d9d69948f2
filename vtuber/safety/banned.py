"""Banned words: finds them however chat or the model spells them.

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
* word forms and compounds of entries under 4 letters ("tea" does not ban "teas")
  and of letterless entries; compounds and lemma forms of phrases (a phrase only takes
  the endings below on its last word: "shut ups"); compounds spelled out with spaces
  ("m r p o t a t o h e a d"); compounds whose other part is no known piece
  ("potatozzz"); forms that change the stem beyond a final y or e, unless
  lemminflect lists the entry as the word's lemma.
* sound-alikes that are English words ("done", "dawn" for "darn"), more than
  len(entry)//3 edits away ("Darren" for "darn"), or 3+ letters longer or shorter.

Word forms, compounds, sound-alikes (single-word entries of 4+ letters; `word_forms`
in `vtuber.safety.forms` lists the forms one entry bans):

* forms: an English ending written right onto the entry, with the same leet,
  look-alike and repeat reading: -s, -es, -ed, -ing, -ings, -er, -ers (after a final e:
  -s, -d, -r, -rs; a final y: also -ies, -ied, -ier, -iers): "potatoes", "darned",
  "d4rn3d", "darning", "darner", "hecks" (a phrase of 4+ letters takes these on its
  last word); and any word whose lemma (lemminflect) is the entry. The possessive
  needs no rule: "potato's" is the entry standing as a word;
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

`OutputGate` also reads each clause together with the end of what was said just
before it, so a word spelled over several clauses is caught (see its docstring).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from vtuber.errors import UserError
from vtuber.safety.fold import (
    _BREAK,
    _LEET_READINGS,
    _SEP,
    _SEP_RUN,
    _SEP_RUN_SPLIT,
    _collapse_runs,
    _fold_char,
    _normalise_mapped,
    _word_letters,
    normalise,
)
from vtuber.safety.forms import (
    _WORD,
    _Y_SUFFIXES,
    FORMS_MIN_LETTERS,
    _edits,
    _entry_letters,
    _known_word,
    _lemmas,
    _metaphone,
    _pieces,
    _plain_letters,
    _strip_suffix,
    _suffixes,
    _takes_forms,
)
from vtuber.safety.names import split_name

_BEFORE = r"(?<![^\W_])"  # not preceded by a letter or digit
_AFTER = r"(?![^\W_])"  # not followed by a letter or digit
_MAX_SEP = 12  # separator characters allowed between two letters
_MAX_REPEATS = 24  # separated repeats of one letter ("h e e e e c k")


def _letter_class(c: str, leet: dict[str, str]) -> str:
    alts = c + leet.get(c, "")
    return "[" + "".join(re.escape(a) for a in alts) + "]" if len(alts) > 1 else re.escape(c)


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


def _suffix_pattern(suffix: str, leet: dict[str, str]) -> str:
    parts = [_letter_class(c, leet) for c in suffix]
    return "".join(p + "++" for p in parts[:-1]) + parts[-1] + "+"


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
        if not self.allow and not self._word_entries:
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
        return self.find(split_name(name)) or self.find(name)


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

