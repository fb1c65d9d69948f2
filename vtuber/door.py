"""The one door for untrusted text: chat and user names from any source.

Chat text and user names come from strangers. Whatever the source (a chat script,
Twitch, YouTube), `admit` cleans them at the session's door before anything else sees
them (triage, plugins, the prompt, the console, reports, later a web page):

- terminal escape sequences (CSI, OSC: window titles, clipboard writes, hyperlinks;
  DCS, APC, ...) are removed whole, not just their ESC byte;
- C0 and C1 control characters (U+009B is a one-character CSI) become spaces;
- bidirectional overrides and isolates (which reorder what a reader sees) are removed;
- line and paragraph separators become spaces, runs of spaces collapse;
- length is capped: `MAX_TEXT` characters of text, `MAX_NAME` of a name;
- in a user name, invisible characters (zero-width spaces and joiners, word joiners,
  soft hyphens, byte-order marks, tag characters, variation selectors, Hangul fillers)
  are removed: `u101` and `u101` plus a zero-width space are one viewer for memory,
  caps and the console, not two.

What remains is plain text; each output still escapes it for its own medium (rich
markup, Markdown, HTML).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata

from vtuber.events import ChatMessage, StreamEvent

MAX_TEXT = 500  # Twitch's own limit for a chat message
MAX_NAME = 64
# Look at no more than this much raw input: a 5 MB "message" costs nothing to drop.
_RAW_LIMIT = 8 * MAX_TEXT

# ESC-introduced sequences (7-bit) and their C1 single-character forms (8-bit).
_ESCAPES = re.compile(
    r"""
    (?: \x1b\[ | \x9b ) [\x30-\x3f]* [\x20-\x2f]* [\x40-\x7e]?          # CSI ... final
  | (?: \x1b[\]PX^_] | [\x9d\x90\x98\x9e\x9f] ) .*? (?: \x07 | \x1b\\ | \x9c | $ )  # OSC/DCS/SOS/PM/APC ... ST
  | \x1b [\x20-\x2f]* [\x30-\x7e]?                                         # other ESC sequences
    """,
    re.VERBOSE | re.DOTALL,
)
_BIDI = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"))


# Characters that draw nothing (besides the format characters, category Cf): the
# combining grapheme joiner, variation selectors, and the Hangul fillers that render blank.
_INVISIBLE_EXTRA = frozenset(
    [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0]
    + list(range(0xFE00, 0xFE10))
    + list(range(0xE0100, 0xE01F0))
)


def _visible(ch: str) -> bool:
    return unicodedata.category(ch) != "Cf" and ord(ch) not in _INVISIBLE_EXTRA


def _control_to_space(ch: str) -> str:
    return " " if unicodedata.category(ch) == "Cc" or ch in "\u2028\u2029\x85" else ch


def clean_text(raw: str, limit: int = MAX_TEXT) -> str:
    """Untrusted text as plain, single-line, length-capped text."""
    s = raw[:_RAW_LIMIT] if len(raw) > _RAW_LIMIT else raw
    s = unicodedata.normalize("NFC", s)
    s = _ESCAPES.sub("", s)
    s = s.translate(_BIDI)
    s = "".join(_control_to_space(c) for c in s)
    s = " ".join(s.split())
    return s[:limit].rstrip()


def clean_name(raw: str) -> str:
    """A user name: cleaned like text, invisible characters removed, capped at `MAX_NAME`;
    empty becomes "viewer"."""
    s = raw[:_RAW_LIMIT] if len(raw) > _RAW_LIMIT else raw
    s = "".join(c for c in unicodedata.normalize("NFC", s) if _visible(c))
    return clean_text(s, MAX_NAME) or "viewer"


def admit(ev: object) -> object | None:
    """The event with its untrusted fields cleaned; None when nothing is left to answer."""
    if isinstance(ev, ChatMessage):
        text = clean_text(ev.text)
        if not text:
            return None
        user = clean_name(ev.user)
        if (text, user) != (ev.text, ev.user):
            ev = dataclasses.replace(ev, text=text, user=user)
        return ev
    if isinstance(ev, StreamEvent):
        text, user = clean_text(ev.text), clean_name(ev.user)
        if (text, user) != (ev.text, ev.user):
            ev = dataclasses.replace(ev, text=text, user=user)
        return ev
    return ev
