"""Word forms of banned entries, and the English lexicon the word checks read.

A single-word entry of `FORMS_MIN_LETTERS` or more letters also bans its English
forms: an ending from the tables below written right onto it ("darned", "potatoes",
"d4rn3d"), and any word whose lemma (lemminflect) is the entry. `BannedWords` builds
its patterns and its word pass from these tables; `word_forms` lists the forms they
give for one entry, for `vtuber redteam` and the docs, so all three agree.
"""

from __future__ import annotations

import re
from functools import lru_cache

from vtuber.safety.fold import _LEET_SYMBOLS, _LEET_TO_LETTER, _SEP_RUN, _collapse_runs, _word_letters, normalise


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




def _entry_words(entry: str) -> list[str]:
    """An entry's words as the matcher splits them (normalised, separators dropped)."""
    return [w for w in _SEP_RUN.split(normalise(entry).strip()) if w]


def word_forms(entry: str) -> list[str]:
    """The word forms the output gate blocks as `entry`, beyond the entry itself.

    Built from the same tables and lexicon `BannedWords` matches with: the entry's
    last word with each ending written onto it (after a final y, -ies/-ied/-ier/-iers
    first: "bloodied"; after a final e, -s/-d/-r/-rs: "hated"; else -s, -es, -ed,
    -ing, -ings, -er, -ers: "hecking"), then, for a single word, the English
    inflections whose lemma is the entry (lemminflect: "hating"). Letters as
    written, lower case, leetspeak read ("h3ck" gives "hecking").

    Empty for an entry that takes no forms: under 4 letters ("tea"), letterless
    ("1488"), or with an apostrophe ("don't").
    """
    parsed = _entry_letters(entry)
    if not isinstance(parsed, tuple) or not _takes_forms(*parsed):
        return []
    words = [_plain_letters(w.rstrip("!|")) for w in _entry_words(entry)]
    words = [w for w in words if w]
    head, last = words[:-1], words[-1]
    final = parsed[0][-1]
    stems = [(last.rstrip(final), s) for s in _Y_SUFFIXES] if final == "y" else []
    stems += [(last, s) for s in _suffixes(final)]
    forms = [" ".join([*head, stem + suffix]) for stem, suffix in stems]
    if not head:
        key = "".join(parsed[0])
        for form in _inflections(last):
            lemmas = _lemmas(form) | _lemmas(_collapse_runs(form))
            if len(_word_letters(form)) >= FORMS_MIN_LETTERS and key in {_collapse_runs(x) for x in lemmas}:
                forms.append(form)
    return list(dict.fromkeys(f for f in forms if f != " ".join(words)))


def _inflections(word: str) -> list[str]:
    """lemminflect's inflections of `word` (lower case, letters only), in a stable order."""
    from lemminflect import getAllInflections

    found = (f.lower() for forms in getAllInflections(word).values() for f in forms)
    return sorted({f for f in found if f.isalpha()})
