"""What may be said on stream, and what chat may put in front of the co-host.

One module per job:

* `fold`: text as the matchers read it (look-alike letters, invisible characters, leetspeak);
* `banned`: banned words and phrases, however they are spelled (`BannedWords`), with
  `forms`: the word forms an entry also bans (`word_forms`) and the lexicon behind them;
* `names`: user names read the way people read them (`split_name`);
* `leaks`: the session canary and the system prompt (`make_canary`, `CanaryCheck`, `PromptCheck`);
* `identity`: the persona speaking as someone else (`IdentityCheck`);
* `gate`: the output gate every clause passes before it is spoken (`OutputGate`);
* `chat_filter`: incoming chat (`ChatFilter`).
"""

from __future__ import annotations

from vtuber.safety.banned import BannedWords, Hit, default_banned_words
from vtuber.safety.chat_filter import MASK, REMOVED, ChatFilter
from vtuber.safety.fold import fold_for_matching, normalise
from vtuber.safety.forms import FORMS_MIN_LETTERS, word_forms
from vtuber.safety.gate import SAFE_LINE, OutputGate
from vtuber.safety.identity import IdentityCheck
from vtuber.safety.leaks import CanaryCheck, PromptCheck, make_canary
from vtuber.safety.names import split_name

__all__ = [
    "FORMS_MIN_LETTERS",
    "MASK",
    "REMOVED",
    "SAFE_LINE",
    "BannedWords",
    "CanaryCheck",
    "ChatFilter",
    "Hit",
    "IdentityCheck",
    "OutputGate",
    "PromptCheck",
    "default_banned_words",
    "fold_for_matching",
    "make_canary",
    "normalise",
    "split_name",
    "word_forms",
]
