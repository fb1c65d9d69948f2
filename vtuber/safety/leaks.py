"""Secrets: the session canary and the system prompt, which a reply must never repeat.

`make_canary` gives the random token planted in the system prompt; `CanaryCheck`
finds it (or a piece of it) in what is said, and `PromptCheck` finds runs of the
system prompt's words. The output gate reads every clause with both.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

from vtuber.safety.fold import normalise
from vtuber.text import compact, words


def said_words(text: str) -> list[str]:
    """The words of `text` as the leak checks compare them: normalised, apostrophes split."""
    return words(normalise(text))


def said_compact(text: str) -> str:
    """`text` normalised with everything but letters and digits removed."""
    return compact(normalise(text))


def make_canary() -> str:
    """A fresh random token to plant in the system prompt: "CANARY-" + 12 hex characters."""
    return "CANARY-" + secrets.token_hex(6)


class CanaryCheck:
    """Finds the canary in what is said: whole, its random part alone, a garbled copy
    (the prefix followed by hex with a digit in it), or a piece of 4+ characters of the
    random part (see `OutputGate` for which pieces count). Texts are compared as
    `said_compact` gives them, so spacing, case and punctuation do not hide it."""

    def __init__(self, canary: str):
        self._keys: list[str] = []
        self._garbled: re.Pattern[str] | None = None
        self._pieces: re.Pattern[str] | None = None
        if not canary.strip():
            return
        self._keys.append(said_compact(canary))
        m = re.fullmatch(r"(.*?[^\W\d_].*?)[\W_]*([0-9a-fA-F]{8,})", canary.strip())
        if not m:
            return
        self._keys.append(said_compact(m.group(2)))
        prefix = said_compact(m.group(1))
        self._garbled = re.compile(re.escape(prefix) + r"([0-9a-f]{6,})")
        secret = said_compact(m.group(2))
        pieces = set()
        for i in range(len(secret) - 3):
            w4 = secret[i : i + 4]
            pieces.add(re.escape(prefix + w4))
            if any(c.isdigit() for c in w4) and any(c.isalpha() for c in w4):
                pieces.add(re.escape(w4))
            w6 = secret[i : i + 6]
            if len(w6) == 6 and w6.isdigit():
                pieces.add(re.escape(w6))
        self._pieces = re.compile("(?=(" + "|".join(sorted(pieces, key=len, reverse=True)) + "))")

    def leaks(self, before: str, clause: str) -> bool:
        """Whether `clause` (compact), read after `before` (compact), completes a leak."""
        if not self._keys:
            return False
        joined = before + clause
        if any(k in joined and k not in before for k in self._keys):
            return True
        if self._garbled is not None:
            for m in self._garbled.finditer(joined):
                if m.end() > len(before) and any(c.isdigit() for c in m.group(1)):
                    return True
        if self._pieces is not None:
            for m in self._pieces.finditer(joined):
                if m.start() + len(m.group(1)) > len(before):
                    return True
        return False


class PromptCheck:
    """Finds runs of the system prompt in what is said: `leak_words` consecutive words
    of `system_prompt`, or `guarded_words` of a `guarded_texts` text; runs that also
    appear in `leak_exempt` texts (lines the persona is meant to say) are allowed."""

    def __init__(
        self,
        system_prompt: str = "",
        leak_words: int = 8,
        guarded_texts: Iterable[str] = (),
        guarded_words: int = 5,
        leak_exempt: Iterable[str] = (),
    ):
        self.leak_words = n = max(1, int(leak_words))
        self.guarded_words = g = max(1, int(guarded_words))
        prompt = said_words(system_prompt)
        self._ngrams = {tuple(prompt[i : i + n]) for i in range(len(prompt) - n + 1)}
        self._guarded: set[tuple[str, ...]] = set()
        for text in guarded_texts:
            w = said_words(text)
            self._guarded.update(tuple(w[i : i + g]) for i in range(len(w) - g + 1))
        for text in leak_exempt:
            w = said_words(text)
            self._ngrams.difference_update(tuple(w[i : i + n]) for i in range(len(w) - n + 1))
            self._guarded.difference_update(tuple(w[i : i + g]) for i in range(len(w) - g + 1))

    def leaks(self, before: list[str], words: list[str]) -> bool:
        """Whether `words` (the clause's), read after `before`, complete a run."""
        w = before + words
        for n, grams in ((self.leak_words, self._ngrams), (self.guarded_words, self._guarded)):
            if not grams:
                continue
            first = max(0, len(before) - n + 1)  # windows that reach into the clause
            if any(tuple(w[i : i + n]) in grams for i in range(first, len(w) - n + 1)):
                return True
        return False
