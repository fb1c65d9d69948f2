"""Mind: persona prompt + short history + streaming LLM + clause splitter + output gate."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from concurrent.futures import ThreadPoolExecutor

from vtuber.clock import Clock
from vtuber.config import VoiceConfig
from vtuber.events import ChatMessage, FirstToken, ReplyClause, ReplyFinished, ReplyStarted, ServiceState, Turn
from vtuber.mind.facts import Fact, FactBook, StreamFacts, contradicts, fact_words, persona_facts
from vtuber.mind.languages import LanguagePolicy
from vtuber.mind.openers import Openers, after_opener, strip_reaction
from vtuber.ports import LanguageModel
from vtuber.mind.persona import Persona
from vtuber.mind.prompt import PromptBuilder, clean_name
from vtuber.memory import ViewerMemory, prompt_note
from vtuber.mind.quality import clause_problem, echoes, reply_flags, third_person
from vtuber.mind.splitter import ClauseSplitter, split_stream
from vtuber.safety.gate import OutputGate
from vtuber.voice.tts import speakable

log = logging.getLogger("vtuber.mind")

_DONE = object()
CANCEL_WAIT_S = 2.0  # a cancelled turn waits this long at most for the LLM thread to stop


class _Stalled(Exception):
    """The LLM gave no token for too long, or the reply ran past its deadline."""


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
    failed: str = ""  # the model stalled, crashed or ran past the deadline (the watchdog ended the reply)
    first_token_sent: bool = False
    echoes_dropped: int = 0  # later clauses that only read the message back
    contradicted: Fact | None = None  # the fact the last rejected first clause negated
    ended: str = ""  # why the reply ended before the model did (blocked, contradiction, third_person)
    opener: str = ""  # said the moment the reply started, while the model wrote (vtuber.mind.openers)
    sentences: int = 0  # whole sentences said (of 4+ words)
    sentence_words: int = 0  # words said since the last sentence end
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
        facts: FactBook | None = None,
        stream: StreamFacts | None = None,
        languages: LanguagePolicy | None = None,
        can_speak: Callable[[str], bool] | None = None,
        openers: bool = False,
    ):
        self.backend = backend
        self.history_turns = history_turns
        self.context = context  # the model's context in tokens: history is kept only as far as it fits
        self.memory = memory  # notes about viewers (regulars are greeted by name)
        self.languages = languages  # which language each turn is answered in (or her line)
        self.can_speak = can_speak  # whether a voice can read a clause (none: any clause)
        self.use_openers = openers  # a reaction said at once (its audio made ahead by the voice)
        self.unspeakable = 0  # clauses dropped because no voice of hers could read them
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
        self._heard: dict[int, str] = {}  # turn id -> what was heard of a reply ended early
        self._fallbacks = 0
        # The watchdog on the LLM (see `LLMConfig`): deadlines, failures in a row, fallback.
        self.first_token_s, self.stall_s, self.turn_deadline_s = 8.0, 4.0, 8.0
        self.failures_to_fallback, self.retry_after_s = 3, 30.0
        self.failures = 0  # failed turns in a row
        self.degraded = ""  # why she answers with short lines now ("" while the LLM is trusted)
        self._retry_at = 0.0
        self._stuck: asyncio.Future | None = None  # a worker that missed its deadline and has not ended yet
        self.errors: list[str] = []  # each failed turn, for the report
        self.facts = facts  # chooses the facts that fit a message (her own and the stream's)
        self.stream = stream
        self.last_facts: list[tuple[Fact, float]] = []  # what the last turn was given (bench, trace)
        self.fixed_answers = 0  # questions answered with a fact's fixed answer, as written
        if stream is not None:
            stream.listeners.append(lambda _facts: self._refresh_facts())
        self.set_persona(persona, gate)

    def watch(
        self, first_token_s: float, stall_s: float, turn_deadline_s: float, failures_to_fallback: int, retry_after_s: float
    ) -> None:
        """The LLM's deadlines and fallback policy (`LLMConfig`)."""
        self.first_token_s, self.stall_s, self.turn_deadline_s = first_token_s, stall_s, turn_deadline_s
        self.failures_to_fallback, self.retry_after_s = failures_to_fallback, retry_after_s

    def set_persona(self, persona: Persona, gate: OutputGate) -> None:
        """Switch persona between turns (the next turn builds its prompt from the new one)."""
        self.persona = persona
        self.gate = gate
        if getattr(self, "languages", None) is not None and self.languages.persona is not persona:
            self.languages = LanguagePolicy(persona, self.languages.model)
        history = list(getattr(self, "prompts", None).history) if getattr(self, "prompts", None) else []
        count = getattr(self.backend, "count_tokens", None)
        self.prompts = PromptBuilder(persona, self.history_turns, self.canary, count, self.context)
        self.prompts.history.extend(history)  # a persona switch keeps what was said
        shape = getattr(self.backend, "set_shape", None)
        if shape is not None:  # role tags and her name as a sentence's subject, banned at sampling
            shape(persona.name)
        self.own_facts = persona_facts(persona.facts)
        self.openers = Openers.for_persona(persona.openers, persona.language) if self.use_openers else Openers({})
        self._refresh_facts()

    def _refresh_facts(self) -> None:
        if self.stream is not None:
            self.stream.streamer = self.persona.streamer_name
        if self.facts is not None:
            self.facts.name = self.persona.name
            self.facts.replace([*self.own_facts, *(self.stream.facts() if self.stream is not None else [])])

    def opener_lines(self) -> list[str]:
        """Every opener she may say now (their audio is made ahead)."""
        return self.openers.all()

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

    def remember_heard(self, turn: Turn, heard: str) -> None:
        """A reply ended early at a clause (urgent input was waiting): the history keeps what
        was heard, now or when the reply is done being written."""
        heard = heard.strip() + " …" if heard.strip() else ""
        self._heard[turn.id] = heard
        if len(self._heard) > 16:
            self._heard.pop(next(iter(self._heard)))
        self.prompts.revise_last(turn, heard)

    async def answer(self, turn: Turn) -> None:
        if turn.kind == "line":
            await self._say_line(turn)
            return
        plan = self.languages.plan(turn) if self.languages is not None else None
        if plan is not None and plan.line:  # a language she does not answer in: her own line
            await self._say_line(turn, plan.line, language=plan.heard)
            return
        note = ""
        if self.memory is not None and isinstance(turn.source, ChatMessage):
            note = prompt_note(self.memory.note(turn.source), turn.user)
        reply_language = plan.reply if plan is not None and plan.reply != self.persona.language else ""
        self.emit(ReplyStarted(turn=turn, t=self.clock.now()))
        self.gate.new_reply()
        # Parroting: what she said lately, and what the prompt quotes (past messages, the note).
        quoted = [ex.user.split(": ", 1)[-1] for ex in self.prompts.history] + ([note] if note else [])
        reply = _Reply(turn, self.persona, [*self.recent, *quoted])
        degraded = bool(self.degraded) and time.monotonic() < self._retry_at
        if not degraded and not reply_language:
            await self._open(reply)  # first of all: she is heard while the facts are chosen
        picked: list[tuple[Fact, float]] = []
        fixed = ""
        if self.facts is not None and turn.kind in ("chat", "speech"):
            # Off the event loop: an embedding takes 12-20 ms, and up to 100 ms on a busy machine.
            picked, fixed = await asyncio.get_running_loop().run_in_executor(None, self._choose_facts, turn.text)
        self.last_facts = picked
        if hasattr(self.backend, "favour"):  # the reply leans toward the facts' own words
            self.backend.favour = [w for f, _ in picked for w in fact_words(f)]
        if hasattr(self.backend, "addressee"):  # whom she answers: their name said to them, not of them
            self.backend.addressee = clean_name(self.persona.streamer_name if turn.kind == "speech" else turn.user)
        messages = self.prompts.messages(turn, note, [f.text for f, _ in picked], language=reply_language)
        if fixed:  # a command, a link, the schedule: said as the streamer wrote it
            self.fixed_answers += 1
            self.emit(FirstToken(turn_id=turn.id, t=self.clock.now()))
            await self._send_fixed(reply, speakable(fixed))
        elif degraded:
            reply.failed = self.degraded  # the model is not trusted now: a short line (below)
        else:
            await self._generate_watched(reply, messages)
        if reply.failed:
            if not reply.spoken:
                await self._send_fixed(reply, self._fallback_line(reply.turn))
        elif reply.suppressed and not reply.spoken:
            # The first clause echoed the message, parroted an earlier reply, spoke as
            # someone else or of herself by name, or negated one of her facts: not said.
            # One more try with a nudge, then a short fixed line (the fact itself, if one
            # was negated).
            fact = reply.contradicted.text if reply.contradicted else ""
            await self._generate_watched(reply, self.prompts.nudged(messages, reply.rejected or reply.suppressed, fact))
            if not reply.spoken:
                known = picked[0][0] if picked and picked[0][1] >= self.facts.fixed else None
                if reply.contradicted is not None:
                    await self._send_fixed(reply, speakable(reply.contradicted.text))
                elif known is not None:
                    # Twice not sayable, but the question is one her facts answer well: the
                    # fact as the streamer wrote it answers it; a stock line would not.
                    await self._send_fixed(reply, speakable(known.text))
                else:
                    await self._send_fixed(reply, self._fallback_line(reply.turn))
        if not reply.spoken:
            await self._send_fixed(reply, speakable(self.persona.greeting))
        text = " ".join([reply.opener, *reply.spoken] if reply.opener else reply.spoken)
        truncated = reply.truncated or reply.tokens >= self.persona.max_tokens
        flags = reply_flags(text, turn.text, reply.earlier, self.persona.name, reply.raw_text(), truncated, reply.others)
        if reply.failed:  # the watchdog ended it, or the model is on its fallback: not the model's reply
            flags = (*flags, "model_failed")
        # The parrot checks and the history hold her answer, not the opener (the model never
        # wrote it, and seeing its replies open with "Hmm," it would start its own that way).
        answer = " ".join(reply.spoken)
        self.recent.append(answer)
        self.prompts.remember(turn, self._heard.pop(turn.id, answer))
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

    def prefill_next(self) -> None:
        """While her reply plays, prefill what the next prompt begins with (the prefix, the
        history with this exchange in it, the fact note's head): the next turn evaluates only
        its own message and facts. Each prompt token costs about as much as a written one on a
        2-core CPU. Called once the reply's audio is all made (the turn runner), so it never
        takes a core from the voice."""
        if not getattr(self.backend, "keeps_cache", False) or self.degraded:
            return
        ahead = self.prompts.ahead(facts=self.facts is not None and bool(self.facts.facts))

        def prefill() -> None:
            try:
                self.backend.warm(ahead)
            except Exception as e:  # noqa: BLE001 - a missed prefill costs the next turn time, nothing more
                log.debug("prefill of the next prompt failed: %s", e)

        loop = asyncio.get_running_loop()
        try:
            job = self._executor.submit(prefill)
        except RuntimeError:  # shutting down
            return
        self.clock.begin_work()  # work, as a turn is: the fast clock skips no time over it

        def done(_job) -> None:
            try:
                loop.call_soon_threadsafe(self.clock.end_work)
            except RuntimeError:  # the loop has ended (a one-shot run): nothing waits on the clock
                pass

        job.add_done_callback(done)

    async def _generate_watched(self, reply: _Reply, messages: list[dict]) -> None:
        """`_generate` under the watchdog: a stall, a crash or a blown deadline ends the reply
        (what was said stays said), is counted, and three in a row put her on short lines."""
        try:
            if self._stuck is not None and not self._stuck.done():
                try:  # the last worker missed its deadline: give it a moment more to end
                    await asyncio.wait_for(asyncio.shield(self._stuck), CANCEL_WAIT_S)
                except (asyncio.TimeoutError, Exception):
                    pass
                if not self._stuck.done():
                    raise _Stalled("the language model is still stuck on an earlier reply")
            self._stuck = None
            await self._generate(reply, messages)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a model that fails must never end the turn loop
            why = str(e) if isinstance(e, _Stalled) else f"the language model failed ({type(e).__name__}: {e})"
            reply.failed = why
            self.failures += 1
            self.errors.append(f"turn {reply.turn.id}: {why}")
            log.warning("reply to turn %s ended by the watchdog: %s (%d in a row)", reply.turn.id, why, self.failures)
            if self.failures >= self.failures_to_fallback:
                self._retry_at = time.monotonic() + self.retry_after_s
                if not self.degraded:
                    self.degraded = why
                    self.emit(ServiceState(
                        "llm", "failing",
                        f"{self.failures} replies in a row failed ({why}); answering with short lines, "
                        f"trying the model again every {self.retry_after_s:g} s",
                        self.clock.now(),
                    ))
            return
        self.failures = 0
        if self.degraded:
            self.degraded = ""
            self.emit(ServiceState("llm", "back", "the language model is answering again", self.clock.now()))

    def _fallback_line(self, turn: Turn | None = None) -> str:
        """A short line of hers when the model's words cannot be said; to someone who paid
        with their message, a thank-you by name (a stock line would answer their cheer with nothing)."""
        msg = turn.source if turn is not None else None
        if isinstance(msg, ChatMessage) and msg.paid and msg.user.strip():
            self._fallbacks += 1
            what = "the bits" if msg.bits > 0 else "the support"
            return speakable(f"Thank you so much for {what}, {clean_name(msg.user)}!")
        lines = self.persona.fallback_lines or FALLBACK_LINES
        self._fallbacks += 1
        return speakable(lines[self._fallbacks % len(lines)])

    def _choose_facts(self, text: str) -> tuple[list[tuple[Fact, float]], str]:
        """The facts that fit the message, and a fixed answer to say as written ("" for none)."""
        picked = self.facts.pick(text)
        return picked, self.facts.fixed_answer(text, picked)

    async def _open(self, reply: _Reply) -> None:
        """Say the opener that fits the message, at once (its audio is made ahead), while the
        model writes the reply. The model is not told: handed the opener as the start of its
        reply, the bundled model answered worse (facts right 37 -> 31 of 43 on `vtuber
        quality`); its own first reaction is taken off instead ("Oh, I love tea" -> "I love tea")."""
        opener = self.openers.pick(reply.turn.text)
        if not opener or (self.can_speak is not None and not self.can_speak(opener)):
            return
        safe = self.gate.check(opener, reply.turn)
        if safe != opener:  # (a persona's own opener the gate stops: none, rather than a safe line)
            self.gate.new_reply()
            return
        reply.opener = opener
        await self.send(ReplyClause(turn_id=reply.turn.id, index=reply.index, text=opener, t=self.clock.now(), opener=True))
        reply.index += 1

    async def _send_fixed(self, reply: _Reply, line: str) -> None:
        """A fixed line instead of the model's words (still gated; no plugin hook); after an
        opener, without a reaction of its own at its start."""
        if reply.opener:
            line = after_opener(line)
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
            name = self.persona.name

            async def say(clause: str) -> bool:
                """Check, gate, cap and send one clause; False once the reply is over."""
                if not reply.spoken:
                    problem = clause_problem(clause, turn.text, reply.earlier, name, reply.others)
                    if problem == "echo":  # the message read back: skip it, the next clause starts the reply
                        reply.suppressed = reply.suppressed or problem
                        splitter.restart()
                        return True
                    clause = _strip_speaker_tag(clause, name)
                    if reply.opener:  # her opener was the reaction: not a second one
                        clause = after_opener(clause) if strip_reaction(clause).strip() else ""
                    fact = None
                    if not problem:
                        fact = contradicts(clause, self.own_facts, name)
                        problem = "contradiction" if fact else ("third_person" if third_person(clause, name) else "")
                    if problem:  # not spoken: answer() tries once more, then says a fixed line
                        reply.suppressed = reply.suppressed or problem
                        reply.rejected = problem
                        reply.contradicted = fact
                        return False
                elif echoes(clause, turn.text):  # the message read back mid-reply: not said
                    reply.echoes_dropped += 1
                    return True
                else:
                    # Mid-reply, a negated fact or herself by name ends the reply where it stands.
                    before = reply.spoken[-1] if reply.spoken else ""
                    if contradicts(f"{before} {clause}", self.own_facts, name) and not contradicts(before, self.own_facts, name):
                        reply.ended = "contradiction"
                        return False
                    if third_person(clause, name):
                        reply.ended = "third_person"
                        return False
                clause = clause.strip()
                if not clause:
                    if not reply.spoken:
                        splitter.restart()  # "Miko:" was no clause: the next one starts the audio
                    return True
                room = self.persona.max_chars - reply.used
                if room < 12 and reply.spoken:
                    reply.truncated = True
                    return False
                if len(clause) > room:
                    clause, reply.truncated = _cap(clause, room), True
                blocks = len(self.gate.blocked)
                safe = await self._gated(clause, turn)
                if safe is None:
                    if not reply.spoken:
                        splitter.restart()
                    return True
                if reply.opener and not reply.spoken:
                    safe = after_opener(safe)  # the gate's safe line too: "Hmm, let's keep it friendly"
                if len(self.gate.blocked) > blocks:
                    # The gate stopped this clause: the reply ends where it stands. The safe
                    # line is said only when nothing was said yet (then it is the whole reply).
                    reply.ended = "blocked"
                    if reply.spoken:
                        return False
                reply.spoken.append(safe)
                reply.used += len(safe) + 1
                await self.send(ReplyClause(turn_id=turn.id, index=reply.index, text=safe, t=self.clock.now()))
                reply.index += 1
                if reply.truncated or reply.ended:
                    return False
                # One breath: end at the end of the persona's last sentence (a sentence counts
                # from 4 words: "Oh!" is a reaction, not the answer), or past `reply_seconds`.
                reply.sentence_words += len(safe.split())
                if not safe.rstrip().endswith(SENTENCE_ENDS):
                    return True
                if reply.sentence_words >= 4:
                    reply.sentences += 1
                    reply.sentence_words = 0
                said = len(" ".join(reply.spoken).split())
                return not (reply.sentences >= self.persona.sentences or said >= words_target)

            full = False
            deadline = None  # set at the first token: writing time, not prefill
            while True:
                item = await self._next_piece(pieces, deadline)
                if deadline is None:
                    deadline = time.monotonic() + self.turn_deadline_s
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
        except _Stalled:
            # The model hangs or crawls: stop it at its next token; its thread may stay
            # stuck, and the next turn waits for it only briefly (`_generate_watched`).
            self.backend.cancel.set()
            self.llm_may_run.set()
            self._stuck = worker
            raise
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

    async def _next_piece(self, pieces: asyncio.Queue, deadline: float | None) -> object:
        """The next token (or the end), or `_Stalled` when none comes in time (`first_token_s`
        for the first, `stall_s` after) or the reply runs past its deadline. (asyncio.wait,
        not wait_for: a turn's own cancel must never be swallowed as it races a token.)"""
        if not pieces.empty():
            item = pieces.get_nowait()
        else:
            if deadline is None:
                wait, stall = self.first_token_s, self.first_token_s
            else:
                wait, stall = min(self.stall_s, deadline - time.monotonic()), self.stall_s
            getter = asyncio.ensure_future(pieces.get())
            try:
                done, _ = await asyncio.wait({getter}, timeout=max(wait, 0.0))
            finally:
                if not getter.done():
                    getter.cancel()
            if not done:
                if deadline is not None and time.monotonic() >= deadline:
                    raise _Stalled(f"the reply was still being written {self.turn_deadline_s:g} s after its first token")
                raise _Stalled(f"the language model gave no token for {stall:g} s")
            item = getter.result()
        if item is not _DONE and deadline is not None and time.monotonic() > deadline:
            raise _Stalled(f"the reply was still being written {self.turn_deadline_s:g} s after its first token")
        return item

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
        if self.can_speak is not None and not self.can_speak(clause):
            # Words no voice of hers can read (Hangul with only an English voice, kana in
            # a Korean clause): neither shown nor spoken, never read by the wrong voice.
            self.unspeakable += 1
            return None
        return self.gate.check(clause, turn)

    async def _say_line(self, turn: Turn, line: str = "", language: str = "") -> None:
        """A fixed line (thank-you, command answer, her line for a language she does not
        answer in): no LLM, same clause path and gate."""
        self.emit(ReplyStarted(turn=turn, t=self.clock.now()))
        self.gate.new_reply()
        clauses = split_stream([line or turn.text], max_chars=self.voice_cfg.max_clause_chars)
        spoken = []
        for clause in clauses:
            blocks = len(self.gate.blocked)
            safe = await self._gated(clause, turn)
            if safe is None:
                continue
            blocked = len(self.gate.blocked) > blocks
            if blocked and spoken:
                break  # ends where it stands: the safe line is never spliced in
            if not spoken:
                self.emit(FirstToken(turn_id=turn.id, t=self.clock.now()))
            await self.send(ReplyClause(turn_id=turn.id, index=len(spoken), text=safe, t=self.clock.now()))
            spoken.append(safe)
            if blocked:
                break
        if language:
            log.info("a %s message was answered with her line", language)
        await self.send(ReplyFinished(turn_id=turn.id, text=" ".join(spoken), t=self.clock.now()))
