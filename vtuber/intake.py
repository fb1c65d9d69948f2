"""Chat intake: what happens to a chat message after the door cleaned it.

Banned words (skip or star out), then plugins' `on_chat`, then chat commands
("!anything" is never answered by the LLM), then triage (the director).

The session hands in the parts intake uses, so this module never imports the pipeline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from vtuber.clock import Clock
from vtuber.director import Director
from vtuber.events import Announcement, ChatMessage, TurnDropped
from vtuber.memory import ViewerMemory
from vtuber.plugins import PluginHost
from vtuber.safety import ChatFilter


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
        text, reason = self.chat_filter().apply(msg.text)
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
