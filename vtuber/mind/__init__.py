"""Mind: persona prompt + short history + streaming LLM + clause splitter + output gate."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from vtuber.clock import Clock
from vtuber.config import VoiceConfig
from vtuber.events import FirstToken, ReplyClause, ReplyFinished, ReplyStarted, Turn
from vtuber.mind.llm import LLMBackend
from vtuber.mind.persona import Persona
from vtuber.mind.prompt import PromptBuilder
from vtuber.mind.quality import reply_flags
from vtuber.mind.splitter import ClauseSplitter, split_stream
from vtuber.safety import OutputGate
from vtuber.voice.tts import speakable

_DONE = object()
CANCEL_WAIT_S = 2.0  # a cancelled turn waits this long at most for the LLM thread to stop


_SPEAKER_TAG = re.compile(r"^\s*[\w .'-]{1,32}(?:\([^)]{0,20}\))?\s*:(?:\s+|$)")


def _strip_speaker_tag(text: str, name: str) -> str:
    # Small models like to open with "Miko:" or "alice:", or call themselves
    # by name ("Miko, I'm so glad..."), or both; never say that aloud.
    vocative = re.compile(rf"^\s*{re.escape(name)}\s*[,!.]\s*", re.I)
    while True:
        stripped = vocative.sub("", _SPEAKER_TAG.sub("", text, count=1), count=1)
        if stripped == text:
            return text
        text = stripped


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > 0 else limit].rstrip(" ,;:") + "."


class Mind:
    """Answers one turn at a time: streams the LLM in a worker thread, emits clauses as they form."""

    def __init__(
        self,
        backend: LLMBackend,
        persona: Persona,
        history_turns: int,
        voice_cfg: VoiceConfig,
        gate: OutputGate,
        clock: Clock,
        emit: Callable[[object], None],
        send: Callable[[object], Awaitable[None]],
        canary: str = "",
        clause_hook: Callable[[str, Turn], Awaitable[str | None]] | None = None,
        llm_may_run: threading.Event | None = None,
    ):
        self.backend = backend
        self.history_turns = history_turns
        self.canary = canary
        self.voice_cfg = voice_cfg
        self.clock = clock
        self.emit = emit  # notifications (console, trace)
        self.send = send  # data for the voice stage, with backpressure
        self.clause_hook = clause_hook  # plugins' on_clause, run before the gate
        if llm_may_run is None:
            llm_may_run = threading.Event()
            llm_may_run.set()
        self.llm_may_run = llm_may_run  # cleared by the voice stage while it makes first audio
        # The LLM runs on its backend's own thread where it has one (see mind.llm), else on ours.
        self._own_executor = getattr(backend, "executor", None) is None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm") if self._own_executor else backend.executor
        self.threads_first, self.threads_after = 1, 1  # decoding threads for the first clause, then after
        self.recent: deque[str] = deque(maxlen=8)  # the last replies said (parrot checks)
        self.set_persona(persona, gate)

    def set_persona(self, persona: Persona, gate: OutputGate) -> None:
        """Switch persona between turns (the next turn builds its prompt from the new one)."""
        self.persona = persona
        self.gate = gate
        self.prompts = PromptBuilder(persona, self.history_turns, self.canary)

    def warm(self) -> None:
        self.backend.warm(self.prompts.prefix())

    async def warm_async(self) -> None:
        """Prefill the persona prefix in the LLM's own thread (after a persona switch)."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self.warm)

    def close(self) -> None:
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def remember_cut(self, turn: Turn, heard: str) -> None:
        """A reply cut short: the history keeps what the audience actually heard of it."""
        if heard.strip():
            self.prompts.remember(turn, heard.strip() + " …")

    async def answer(self, turn: Turn) -> None:
        if turn.kind == "line":
            await self._say_line(turn)
            return
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()
        messages = self.prompts.messages(turn)
        max_tokens = self.persona.max_tokens
        stats = {"tokens": 0, "t0": 0.0, "t1": 0.0}
        raw: list[str] = []  # what the model wrote, for the quality checks

        def produce() -> None:
            stats["t0"] = time.perf_counter()
            threads = None
            try:
                if self.backend.cancel.is_set():  # cancelled before the LLM even started
                    return
                if self.threads_first != self.threads_after:
                    threads = getattr(self.backend, "set_threads", None)
                if threads is not None:
                    threads(self.threads_first)  # the first clause has the CPU to itself
                for piece in self.backend.stream(messages, max_tokens):
                    # While Piper makes the first clause's audio, the LLM waits: the
                    # first sample is what the audience hears, and the LLM has slack.
                    if threads is not None and not self.llm_may_run.is_set():
                        threads(self.threads_after)  # from now on Piper needs a core too
                        threads = None
                    self.llm_may_run.wait(timeout=1.0)
                    stats["tokens"] += 1
                    raw.append(piece)
                    loop.call_soon_threadsafe(pieces.put_nowait, piece)
            except Exception as e:  # surface backend failures in the loop, not a dead thread
                loop.call_soon_threadsafe(pieces.put_nowait, e)
            finally:
                if threads is not None:
                    threads(self.threads_after)
                stats["t1"] = time.perf_counter()
                loop.call_soon_threadsafe(pieces.put_nowait, _DONE)

        self.backend.cancel.clear()  # this turn's own cancel scope (the last turn's worker has ended)
        worker = loop.run_in_executor(self._executor, produce)  # the LLM starts before we print
        try:
            self.emit(ReplyStarted(turn=turn, t=self.clock.now()))
            self.gate.new_reply()
            splitter = ClauseSplitter(
                first_clause_words=self.voice_cfg.first_clause_words,
                first_clause_max_words=self.voice_cfg.first_clause_max_words,
                max_chars=self.voice_cfg.max_clause_chars,
            )
            spoken: list[str] = []
            used = 0
            index = 0
            first = True
            truncated = False

            async def say(clause: str) -> bool:
                """Gate, cap and send one clause; False once the reply is full."""
                nonlocal used, index, truncated
                if index == 0:
                    clause = _strip_speaker_tag(clause, self.persona.name)
                clause = clause.strip()
                if not clause:
                    if index == 0:
                        splitter.restart()  # "Miko:" was no clause: the next one starts the audio
                    return True
                room = self.persona.max_chars - used
                if room < 12 and spoken:
                    truncated = True
                    return False
                if len(clause) > room:
                    clause, truncated = _cap(clause, room), True
                safe = await self._gated(clause, turn)
                if safe is None:
                    if index == 0:
                        splitter.restart()
                    return True
                spoken.append(safe)
                used += len(safe) + 1
                await self.send(ReplyClause(turn_id=turn.id, index=index, text=safe, t=self.clock.now()))
                index += 1
                return not truncated

            full = False
            while True:
                item = await pieces.get()
                if item is _DONE:
                    break
                if isinstance(item, Exception):
                    raise item
                if full:
                    continue
                if first:
                    self.emit(FirstToken(turn_id=turn.id, t=self.clock.now()))
                    first = False
                # A reply is one paragraph: small models go on to play the other
                # roles after a newline, so the first newline after some text ends it.
                # ("Miko,\n..." is a salutation, not a finished reply: a newline after
                # fewer than four words is just a space.)
                text, newline, rest = item.partition("\n")
                if newline and len(" ".join([*spoken, splitter.pending, text]).split()) < 4:
                    text, newline = text + " " + rest, ""
                for clause in splitter.feed(text):
                    if not await say(clause):
                        full = True
                        break
                if newline:
                    for clause in splitter.flush():
                        await say(clause)
                    full = True
                if full:
                    self.backend.cancel.set()
            if not full:
                for clause in splitter.flush():
                    if not await say(clause):
                        break
            await worker
        except asyncio.CancelledError:
            # Cancelled (barge-in, !skip, mute, shutdown): the LLM stops at its next token,
            # or before its first; wait for its thread so the next turn starts clean.
            self.backend.cancel.set()
            self.llm_may_run.set()
            try:
                await asyncio.wait_for(asyncio.shield(worker), CANCEL_WAIT_S)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                pass
            if worker.done():
                self.backend.cancel.clear()  # the flag is set only while a cancel is under way
            raise
        self.backend.cancel.clear()  # (set above to stop a reply that was full)
        if not spoken:
            fallback = self.gate.check(speakable(self.persona.greeting), turn)  # fixed text: no plugin hook
            spoken.append(fallback)
            await self.send(ReplyClause(turn_id=turn.id, index=0, text=fallback, t=self.clock.now()))
        text = " ".join(spoken)
        truncated = truncated or stats["tokens"] >= max_tokens
        others = (self.persona.streamer_name, turn.user if turn.kind == "chat" else "")
        flags = reply_flags(text, turn.text, list(self.recent), self.persona.name, "".join(raw), truncated, others)
        self.recent.append(text)
        self.prompts.remember(turn, text)
        await self.send(
            ReplyFinished(
                turn_id=turn.id,
                text=text,
                t=self.clock.now(),
                n_tokens=stats["tokens"],
                llm_s=max(stats["t1"] - stats["t0"], 0.0),
                truncated=truncated,
                flags=flags,
            )
        )

    async def _gated(self, clause: str, turn: Turn) -> str | None:
        """Plugins first, then the moderation gate, which always has the last word and
        checks exactly what Piper will say (stage directions and markup removed)."""
        if self.clause_hook is not None:
            hooked = await self.clause_hook(clause, turn)
            if hooked is None or not hooked.strip():
                return None
            clause = hooked
        clause = speakable(clause)
        if not clause:
            return None
        return self.gate.check(clause, turn)

    async def _say_line(self, turn: Turn) -> None:
        """A fixed line (thank-you, command answer): no LLM, same clause path and gate."""
        self.emit(ReplyStarted(turn=turn, t=self.clock.now()))
        self.gate.new_reply()
        clauses = split_stream([turn.text], max_chars=self.voice_cfg.max_clause_chars)
        spoken = []
        for clause in clauses:
            safe = await self._gated(clause, turn)
            if safe is None:
                continue
            if not spoken:
                self.emit(FirstToken(turn_id=turn.id, t=self.clock.now()))
            await self.send(ReplyClause(turn_id=turn.id, index=len(spoken), text=safe, t=self.clock.now()))
            spoken.append(safe)
        await self.send(ReplyFinished(turn_id=turn.id, text=" ".join(spoken), t=self.clock.now()))
