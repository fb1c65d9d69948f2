"""What plugins (and chat commands, and the dock) may do to a running session.

Calls come from plugin threads, so each one is handed to the event loop rather than
run there. A persona switch lands between turns, never mid-reply.

The controls know the session only through `Steerable`, the few things they need, so
this module never imports the pipeline (the session passes itself in).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from vtuber.clock import Clock
from vtuber.errors import UserError, quote
from vtuber.events import Announcement, ChatMessage, Interrupt
from vtuber.mind.persona import Persona, list_personas, load_persona
from vtuber.plugins import Controls

log = logging.getLogger("vtuber")


class Steerable(Protocol):
    """What the controls need of a session (`vtuber.pipeline.Session` is one)."""

    clock: Clock
    persona: Persona

    @property
    def persona_folders(self) -> list: ...

    def emit(self, ev: object) -> None: ...

    def submit(self, msg: ChatMessage) -> None: ...

    def promote(self, message_id: str) -> object: ...

    def check_persona(self, persona: Persona) -> None: ...

    def switch_persona(self, persona: Persona) -> None: ...


class SessionControls(Controls):
    """The real `Controls`: say, ask, mute, skip, answer next, switch persona, on one session."""

    def __init__(self, session: Steerable):
        self.session = session
        self.muted = False
        self._pending_persona: Persona | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def _soon(self, fn: Callable, *args) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(fn, *args)

    def say(self, text: str, origin: str = "") -> None:
        s = self.session
        self._soon(lambda: s.emit(Announcement(text, s.clock.now(), "", origin)))

    def ask(self, msg: ChatMessage) -> None:
        self._soon(self.session.submit, msg)

    def set_muted(self, muted: bool) -> None:
        def apply() -> None:
            self.muted = muted
            if muted:  # muting stops her mid-sentence too
                self.session.emit(Interrupt(self.session.clock.now(), "mute"))

        self._soon(apply)

    def answer_next(self, message_id: str) -> None:
        """Answer this queued chat message next (the dock's "answer this one next")."""
        self._soon(self.session.promote, message_id)

    def skip(self) -> None:
        s = self.session
        self._soon(lambda: s.emit(Interrupt(s.clock.now(), "skip")))

    @property
    def persona_name(self) -> str:
        return self.session.persona.name

    def set_persona(self, name: str) -> str:
        """Only personas by name (never a path): chat commands must not open arbitrary files."""
        s = self.session
        folders = s.persona_folders
        if name not in list_personas(folders):
            raise UserError(f"no persona named {quote(name, 40)} (available: {', '.join(list_personas(folders))})")
        persona = load_persona(name, folders)
        s.check_persona(persona)
        self._soon(setattr, self, "_pending_persona", persona)
        return persona.name

    def apply_pending(self) -> None:
        """Called by the turn loop between turns."""
        if self._pending_persona is not None:
            persona, self._pending_persona = self._pending_persona, None
            self.session.switch_persona(persona)
