"""Split a token stream into speakable clauses as early as sounds natural.

TTS starts on the first clause while the LLM writes the next, so the first clause
is cut early (at a comma once it has a few words, at its punctuation without waiting
for the space after it); later clauses end at sentence
punctuation, or at a comma/semicolon/colon/dash once they are long enough, or at
the last space before `max_chars`. The first clause may also end at a phrase
boundary ("...so happy | to have you here") or after a few words. Decimals ("3.5"), common abbreviations
("Mr.", "e.g.") and ellipses inside a sentence do not end a clause.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

SENTENCE_END = ".!?…"
SOFT_BREAK = ",;:—–"
ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "jr", "sr", "prof", "approx",
}
_WORD = re.compile(r"\S+")
_LEFTOVER = SENTENCE_END + "\"')]" + " \n\t"
# Words a spoken phrase naturally breaks before: the first clause may end there.
PHRASE_STARTS = {
    "and", "but", "so", "because", "which", "that", "when", "while", "if", "or", "though",
    "to", "for", "with", "about", "in", "on", "at", "of", "from",
}


def _words(s: str) -> int:
    return len(_WORD.findall(s))


class ClauseSplitter:
    """Feed text pieces with `feed()`, collect finished clauses; `flush()` at the end."""

    def __init__(
        self,
        first_clause_words: int = 2,
        min_clause_words: int = 6,
        max_chars: int = 140,
        first_clause_max_words: int = 7,
        eager_first_end: bool = True,
    ):
        self.first_clause_words = first_clause_words
        self.first_clause_max_words = first_clause_max_words
        self.eager_first_end = eager_first_end  # see _first_clause_end_now
        self.min_clause_words = min_clause_words
        self.max_chars = max_chars
        self._buf = ""
        self._emitted = 0
        self._leftover = False

    def _end_run(self, i: int) -> int:
        """Index past the run of closing punctuation/quotes that starts at i."""
        s = self._buf
        j = i + 1
        while j < len(s) and s[j] in SENTENCE_END + "\"')]":
            j += 1
        return j

    def _is_sentence_end(self, i: int) -> bool:
        s = self._buf
        if s[i] not in SENTENCE_END:
            return False
        # End only before whitespace (decimals like 3.5 have none), so wait to see it.
        j = self._end_run(i)
        if j >= len(s) or not s[j].isspace():
            return False
        if s[i] == ".":
            m = re.search(r"([A-Za-z.]+)\.$", s[: i + 1])
            if m and m.group(1).lower().rstrip(".") in ABBREVIATIONS:
                return False
        run = s[i:j]
        if "..." in run or "…" in run:
            # "I was like... wow": an ellipsis ends the sentence only before a capital.
            nxt = s[j:].lstrip()
            if not nxt:
                return False
            return not nxt[0].islower()
        return True

    def _first_clause_end_now(self, soft_min: int) -> bool:
        """The first clause may end at punctuation that is the last thing written, without
        waiting a token for the space after it: "Hi!", "Oh no." and "Sam, hi," are done.
        Only after a word of letters (not "3." of "3.5", nor "1," of "1,000"), not after
        an abbreviation or an initial ("Mr.", "U.S."). What follows such a cut and cannot
        start a clause (the rest of "?!" or "...", a closing quote) is dropped: it is not
        spoken. Saves one token of waiting (9-13 ms here) on most first clauses."""
        s = self._buf
        if len(s) < 2 or not s[-2].isalpha():
            return False
        ch = s[-1]
        if ch in "!?":
            return True
        if ch == ".":
            m = re.search(r"(?:^|[^\w.'])([A-Za-z']{2,})\.$", s)
            return bool(m) and m.group(1).lower() not in ABBREVIATIONS
        return ch in SOFT_BREAK and _words(s) >= soft_min

    def _cut(self) -> int | None:
        """Index just past the end of the next clause in the buffer, or None."""
        s = self._buf
        soft_min = self.first_clause_words if self._emitted == 0 else self.min_clause_words

        phrase = self._first_phrase_cut() if self._emitted == 0 and self.first_clause_max_words > 0 else None
        limit = min(len(s), self.max_chars, phrase if phrase is not None else len(s))
        i = 0
        while i < limit:
            ch = s[i]
            if ch in SENTENCE_END:
                if self._is_sentence_end(i):
                    return self._end_run(i)
                i = self._end_run(i)  # skip the rest of "..." / "?!"
                continue
            if ch in SOFT_BREAK and i + 1 < len(s) and s[i + 1].isspace() and _words(s[: i + 1]) >= soft_min:
                return i + 1
            i += 1
        if phrase is not None:
            return phrase
        if self._emitted == 0 and self.eager_first_end and len(s) <= self.max_chars and self._first_clause_end_now(soft_min):
            return len(s)
        if len(s) > self.max_chars:
            space = s.rfind(" ", 0, self.max_chars)
            return space if space > 0 else self.max_chars
        return None

    def _first_phrase_cut(self) -> int | None:
        """The first clause starts the audio, so it may also end at a phrase boundary:
        before "and", "to", "because"... once it has 4 words, or at any word once it has
        `first_clause_max_words` (only complete words: the last one may still be growing).
        `first_clause_max_words = 0` turns this off."""
        s = self._buf
        spans = [m.span() for m in _WORD.finditer(s)]
        if s and not s[-1].isspace():
            spans = spans[:-1]  # the last word may still be growing
        for k, (a, _b) in enumerate(spans):
            if k >= 4 and s[a:_b].lower().strip(",.!?") in PHRASE_STARTS:
                return spans[k - 1][1]
            if k >= self.first_clause_max_words:
                return spans[k - 1][1]
        return None

    def feed(self, piece: str) -> list[str]:
        self._buf += piece
        if self._leftover:  # after the first clause: what cannot start a clause is dropped
            self._buf = self._buf.lstrip(_LEFTOVER)
            self._leftover = not self._buf
        out = []
        while True:
            cut = self._cut()
            if cut is None:
                break
            clause, self._buf = self._buf[:cut].strip(), self._buf[cut:].lstrip()
            if self.eager_first_end and self._emitted == 0:
                self._leftover = True
            if clause:
                out.append(clause)
                self._emitted += 1
        return out

    def restart(self) -> None:
        """The clause just handed out was not spoken (a speaker tag, say): the next one is
        the reply's first again, with the first clause's early cuts."""
        self._emitted = 0

    @property
    def pending(self) -> str:
        return self._buf

    def flush(self) -> list[str]:
        rest, self._buf = self._buf.strip(), ""
        if rest:
            self._emitted += 1
            return [rest]
        return []


def split_stream(pieces: Iterable[str], **kwargs) -> Iterator[str]:
    """Convenience: clauses of a whole stream of text pieces."""
    sp = ClauseSplitter(**kwargs)
    for piece in pieces:
        yield from sp.feed(piece)
    yield from sp.flush()
