"""The output gate: what may be said on stream, checked for every clause BEFORE it is spoken.

The gate sees each clause after the LLM and before TTS, the overlay or chat. A
clause with a banned word (`vtuber.safety.banned`), the session canary or a run of
system-prompt words (`vtuber.safety.leaks`), or an identity break
(`vtuber.safety.identity`) is replaced by a safe line and the event is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from vtuber.events import Turn
from vtuber.safety.banned import BannedWords
from vtuber.safety.identity import IdentityCheck
from vtuber.safety.leaks import CanaryCheck, PromptCheck, said_compact, said_words
from vtuber.safety.names import split_name

log = logging.getLogger("vtuber.safety")

SAFE_LINE = "Let's keep it friendly, chat!"


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
        self.identity = IdentityCheck(persona_name)
        self.blocked: list[tuple[int, str, str]] = []  # (turn id, clause, reason)
        self.identity_breaks = 0
        self._said = ""  # the tail of what was let through, for checks across clauses
        self._reply_words: list[str] = []  # the reply's last words, blocked clauses included
        self.canary_check = CanaryCheck(canary)
        self.prompt_check = PromptCheck(system_prompt, self.leak_words, guarded_texts, self.guarded_words, leak_exempt)

    def reason(self, clause: str, context: str = "") -> str | None:
        """Why `clause` may not be said after `context` (text already said), or None."""
        return self._reason(clause, context, said_words(context))

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
        if self.canary_check.leaks(said_compact(context), said_compact(clause)):
            return "canary leak"
        if self.prompt_check.leaks(words_before, said_words(clause)):
            return "system prompt leak"
        return self.identity.reason(clause)

    def name_reason(self, name: str) -> str | None:
        """Why a user name may not be said or shown, or None: a banned entry in it (read
        as `BannedWords.find_in_name` reads names), the canary or a piece of it, or a run
        of system-prompt words."""
        if not name or not name.strip():
            return None
        word = self.banned.find_in_name(name)
        if word is not None:
            return f"banned word '{word}'"
        if self.canary_check.leaks("", said_compact(name)):
            return "canary leak"
        if self.prompt_check.leaks([], said_words(split_name(name))):
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
        self._reply_words = (self._reply_words + said_words(clause))[-keep:]
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
