"""Chat intake: what happens to a chat message after the door cleaned it.

Cheermotes out of a paid message's text ("cheer100 go Sam go" -> "go Sam go": the
bits are in `bits`, and read back as words they are noise), banned words (skip or
star out), then plugins' `on_chat`, then chat commands ("!anything" is never answered
by the LLM), then triage (the director).

The session hands in the parts intake uses, so this module never imports the pipeline.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from vtuber.clock import Clock
from vtuber.director import Director
from vtuber.events import Announcement, ChatMessage, TurnDropped
from vtuber.memory import ViewerMemory
from vtuber.plugins import PluginHost
from vtuber.safety import ChatFilter


# Twitch's global cheermote prefixes (a prefix and the bits it carries: "Cheer100", "Kappa50").
CHEERMOTES = frozenset(
    "cheer doodlecheer biblethump cheerwhal corgo scoops uni showlove party seemsgood pride kappa "
    "frankerz heyguys dansgame elegiggle trihard kreygasm 4head swiftrage notlikethis failfish "
    "vohiyo pjsalt mrdestructoid bday ripcheer shamrock bitboss streamlabs muxy holidaycheer goal anon charity".split()
)
_CHEER_TOKEN = re.compile(r"(?<!\S)([A-Za-z0-9]*?[A-Za-z])(\d+)(?!\S)")


def strip_cheermotes(text: str, bits: int) -> str:
    """`text` without its cheermotes: a known prefix with an amount, or any word-and-amount
    when those amounts add up to the message's bits (a channel's own cheermotes). Text that
    is nothing but cheermotes is kept as it is (the cheer itself is still thanked)."""
    if bits <= 0:
        return text
    tokens = list(_CHEER_TOKEN.finditer(text))
    known = [m for m in tokens if m.group(1).lower() in CHEERMOTES]
    cheers = tokens if sum(int(m.group(2)) for m in tokens) == bits else known
    if not cheers:
        return text
    kept = text
    for m in reversed(cheers):
        kept = kept[: m.start()] + kept[m.end() :]
    kept = " ".join(kept.split())
    return kept if any(c.isalnum() for c in kept) else text


class ChatIntake:
    """One chat message from the door to triage (or to a drop, counted and observed)."""

    def __init__(
        self,
        director: Director,
        plugins: PluginHost,
        memory: ViewerMemory,
        clock: Clock,
        observe: Callable[[object], None],
        emit: Callable[[object], None],
        chat_filter: Callable[[], ChatFilter],
    ):
        self.director = director
        self.plugins = plugins
        self.memory = memory
        self.clock = clock
        self.observe = observe
        self.emit = emit
        self.chat_filter = chat_filter  # a getter: a persona switch brings her own filter

    def _drop(self, msg: ChatMessage, reason: str) -> None:
        self.director.refuse(msg, reason)  # received and dropped: the counters still add up
        self.observe(TurnDropped("chat", msg.user, msg.text, reason, self.clock.now()))

    def chat(self, msg: ChatMessage) -> None:
        text, reason = self.chat_filter().apply(strip_cheermotes(msg.text, msg.bits))
        if text is None:
            self._drop(msg, reason or "banned word")
            return
        if text != msg.text:
            msg = dataclasses.replace(msg, text=text)
        kept, by = self.plugins.chat(msg)
        if kept is None:
            self._drop(msg, f"plugin {by}")
            return
        if kept.text.lstrip().startswith("!"):
            self.director.command(kept)
            _, reply = self.plugins.command(kept)
            if reply:
                self.emit(Announcement(reply, self.clock.now(), kept.user, "command"))
            return
        self.memory.seen(kept)
        self.director.submit(kept)
