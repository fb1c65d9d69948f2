"""Chat intake: what happens to a chat message after the door cleaned it.

Banned words (skip or star out), then plugins' `on_chat`, then chat commands
("!anything" is never answered by the LLM), then triage (the director).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from vtuber.events import Announcement, ChatMessage, TurnDropped

if TYPE_CHECKING:
    from vtuber.pipeline import Session


class ChatIntake:
    def __init__(self, session: Session):
        self.session = session

    def _drop(self, msg: ChatMessage, reason: str) -> None:
        s = self.session
        s.director.refuse(msg, reason)  # received and dropped: the counters still add up
        s._observe(TurnDropped("chat", msg.user, msg.text, reason, s.clock.now()))

    def chat(self, msg: ChatMessage) -> None:
        s = self.session
        text, reason = s.chat_filter.apply(msg.text)
        if text is None:
            self._drop(msg, reason or "banned word")
            return
        if text != msg.text:
            msg = dataclasses.replace(msg, text=text)
        kept, by = s.plugins.chat(msg)
        if kept is None:
            self._drop(msg, f"plugin {by}")
            return
        if kept.text.lstrip().startswith("!"):
            s.director.command(kept)
            _, reply = s.plugins.command(kept)
            if reply:
                s.emit(Announcement(reply, s.clock.now(), kept.user, "command"))
            return
        s.memory.seen(kept)
        s.director.submit(kept)
