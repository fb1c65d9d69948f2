"""Mind: persona prompt + short history + streaming LLM + clause splitter + output gate."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from concurrent.futures import ThreadPoolExecutor

from vtuber.clock import Clock
from vtuber.config import VoiceConfig
from vtuber.events import ChatMessage, FirstToken, ReplyClause, ReplyFinished, ReplyStarted, Turn
from vtuber.ports import LanguageModel
from vtuber.mind.persona import Persona
from vtuber.mind.prompt import PromptBuilder
from vtuber.memory import ViewerMemory, prompt_note
from vtuber.mind.quality import clause_problem, echoes, reply_flags
from vtuber.mind.splitter import ClauseSplitter, split_stream
from vtuber.safety.gate import OutputGate
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


WORDS_PER_SECOND = 3.0  # Piper at length_scale 1 (measured: 21.5 words in 6.4 s on the bundled voice)
SENTENCE_ENDS = (".", "!", "?", "…", '."', '!"', '?"')
# Said instead of a reply whose first clause only echoed, parroted or played another role.
FALLBACK_LINES = ("Ooh, good one!", "Hmm, let me think about that one.", "Ha, I love that.", "Oh, tell me more!")


@dataclass
class _Reply:
    """One reply as it is built, across a retry."""

    turn: Turn
    persona: Persona
    earlier: list[str]  # the last replies, for the parrot check
    spoken: list[str] = field(default_factory=list)
    index: int = 0
    used: int = 0
    truncated: bool = False
    tokens: int = 0
    llm_s: float = 0.0
    attempts: int = 0
    suppressed: str = ""  # why the first attempt's first clause was not spoken
    rejected: str = ""  # why the last attempt's first clause was not spoken
    first_token_sent: bool = False
    echoes_dropped: int = 0  # later clauses that only read the message back
    raws: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.others = (self.persona.streamer_name, self.turn.user if self.turn.kind == "chat" else "")

    def new_attempt(self) -> list[str]:
        self.attempts += 1
        self.rejected = ""
        self.raws.append([])
        return self.raws[-1]

    def raw_text(self) -> str:
        """What the model wrote in the attempt that was spoken."""
        return "".join(self.raws[-1]) if self.raws and not self.rejected else ""


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > 0 else limit].rstrip(" ,;:") + "."


class Mind:
    """Answers one turn at a time: streams the LLM in a worker thread, emits clauses as they form."""

    def __init__(
        self,
        backend: LanguageModel,
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
        context: int = 0,
        memory: ViewerMemory | None = None,
    ):
        self.backend = backend
        self.history_turns = history_turns
        self.context = context  # the model's context in tokens: history is kept only as far as it fits
        self.memory = memory  # notes about viewers (regulars are greeted by name)
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
        self._fallbacks = 0
        self.set_persona(persona, gate)

    def set_persona(self, persona: Persona, gate: OutputGate) -> None:
        """Switch persona between turns (the next turn builds its prompt from the new one)."""
        self.persona = persona
        self.gate = gate
        history = list(getattr(self, "prompts", None).history) if getattr(self, "prompts", None) else []
        count = getattr(self.backend, "count_tokens", None)
        self.prompts = PromptBuilder(persona, self.history_turns, self.canary, count, self.context)
        self.prompts.history.extend(history)  # a persona switch keeps what was said

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
        note = ""
        if self.memory is not None and isinstance(turn.source, ChatMessage):
            note = prompt_note(self.memory.note(turn.source), turn.user)
        messages = self.prompts.messages(turn, note)
        self.emit(ReplyStarted(turn=turn, t=self.clock.now()))
        self.gate.new_reply()
        # Parroting: what she said lately, and what the prompt quotes (past messages, the note).
        quoted = [ex.user.split(": ", 1)[-1] for ex in self.prompts.history] + ([note] if note else [])
        reply = _Reply(turn, self.persona, [*self.recent, *quoted])
        await self._generate(reply, messages)
        if reply.suppressed and not reply.spoken:
            # The first clause echoed the message, parroted an earlier reply, or spoke as
            # someone else: not said. One more try with a nudge, then a short fixed line.
            await self._generate(reply, self.prompts.nudged(messages, reply.suppressed))
            if not reply.spoken:
                await self._send_fixed(reply, self._fallback_line())
        if not reply.spoken:
            await self._send_fixed(reply, speakable(self.persona.greeting))
        text = " ".join(reply.spoken)
        truncated = reply.truncated or reply.tokens >= self.persona.max_tokens
        flags = reply_flags(text, turn.text, reply.earlier, self.persona.name, reply.raw_text(), truncated, reply.others)
        self.recent.append(text)
        self.prompts.remember(turn, text)
        await self.send(
            ReplyFinished(
                turn_id=turn.id,
                text=text,
                t=self.clock.now(),
                n_tokens=reply.tokens,
                llm_s=reply.llm_s,
                truncated=truncated,
                flags=flags,
                suppressed=reply.suppressed,
                attempts=reply.attempts,
            )
        )

    def _fallback_line(self) -> str:
        lines = self.persona.fallback_lines or FALLBACK_LINES
        self._fallbacks += 1
        return speakable(lines[self._fallbacks % len(lines)])

    async def _send_fixed(self, reply: _Reply, line: str) -> None:
        """A fixed line instead of the model's words (still gated; no plugin hook)."""
        safe = self.gate.check(line, reply.turn)
        reply.spoken.append(safe)
        await self.send(ReplyClause(turn_id=reply.turn.id, index=reply.index, text=safe, t=self.clock.now()))
        reply.index += 1

    async def _generate(self, reply: _Reply, messages: list[dict]) -> None:
        """Stream the LLM once: clauses are gated and sent as they form. Stops early when
        the reply is long enough, full, or its first clause must not be spoken (`reply.suppressed`)."""
        turn = reply.turn
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()
        max_tokens = self.persona.max_tokens
        stats = {"tokens": 0, "t0": 0.0, "t1": 0.0}
        raw = reply.new_attempt()

        def produce() -> None:
            stats["t0"] = time.perf_counter()
            threads = None
            try:
                if self.backend.cancel.is_set():  # cancelled before the LLM even started
                    return
                if self.threads_first != self.threads_after and not reply.spoken:
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

        self.backend.cancel.clear()  # this attempt's own cancel scope (the last worker has ended)
        worker = loop.run_in_executor(self._executor, produce)
        try:
            splitter = ClauseSplitter(
                first_clause_words=self.voice_cfg.first_clause_words,
                first_clause_max_words=self.voice_cfg.first_clause_max_words,
                max_chars=self.voice_cfg.max_clause_chars,
            )
            first = not reply.first_token_sent
            words_target = self.persona.reply_seconds * WORDS_PER_SECOND

            async def say(clause: str) -> bool:
                """Check, gate, cap and send one clause; False once the reply is over."""
                if reply.index == 0:
                    problem = clause_problem(clause, turn.text, reply.earlier, self.persona.name, reply.others)
                    if problem == "echo":  # the message read back: skip it, the next clause starts the reply
                        reply.suppressed = reply.suppressed or problem
                        splitter.restart()
                        return True
                    if problem:  # not spoken: answer() tries once more, then says a fixed line
                        reply.suppressed = reply.suppressed or problem
                        reply.rejected = problem
                        return False
                    clause = _strip_speaker_tag(clause, self.persona.name)
                elif echoes(clause, turn.text):  # the message read back mid-reply: not said
                    reply.echoes_dropped += 1
                    return True
                clause = clause.strip()
                if not clause:
                    if reply.index == 0:
                        splitter.restart()  # "Miko:" was no clause: the next one starts the audio
                    return True
                room = self.persona.max_chars - reply.used
                if room < 12 and reply.spoken:
                    reply.truncated = True
                    return False
                if len(clause) > room:
                    clause, reply.truncated = _cap(clause, room), True
                safe = await self._gated(clause, turn)
                if safe is None:
                    if reply.index == 0:
                        splitter.restart()
                    return True
                reply.spoken.append(safe)
                reply.used += len(safe) + 1
                await self.send(ReplyClause(turn_id=turn.id, index=reply.index, text=safe, t=self.clock.now()))
                reply.index += 1
                if reply.truncated:
                    return False
                # Long enough: end at this sentence's end (one or two short sentences).
                said = len(" ".join(reply.spoken).split())
                return not (said >= words_target and safe.rstrip().endswith(SENTENCE_ENDS))

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
                    reply.first_token_sent, first = True, False
                # A reply is one paragraph: small models go on to play the other
                # roles after a newline, so the first newline after some text ends it.
                # ("Miko,\n..." is a salutation, not a finished reply: a newline after
                # fewer than four words is just a space.)
                text, newline, rest = item.partition("\n")
                if newline and len(" ".join([*reply.spoken, splitter.pending, text]).split()) < 4:
                    text, newline = text + " " + rest, ""
                for clause in splitter.feed(text):
                    if not await say(clause):
                        full = True
                        break
                if newline and not full:
                    for clause in splitter.flush():
                        if not await say(clause):
                            break
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
        finally:
            reply.tokens += stats["tokens"]
            reply.llm_s += max(stats["t1"] - stats["t0"], 0.0)
        self.backend.cancel.clear()  # (set above to stop a reply that was over)

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
