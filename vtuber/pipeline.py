"""Wiring: the loaded models (`Engine`) and one run of the pipeline over some sources (`Session`).

    sources -> hearing -> director -> mind -> voice -> outputs

`Session.emit` is the one place events are routed: every event goes to every
output (observers), and data events also go to the stage that consumes them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vtuber.clock import Clock
from vtuber.config import Config
from vtuber.director import Director
from vtuber.door import admit
from vtuber.errors import UserError, quote
from vtuber.events import (
    Announcement,
    AudioFrame,
    ChatMessage,
    ReplyClause,
    ReplyFinished,
    StreamEvent,
    TurnDropped,
    Utterance,
)
from vtuber.hearing import Endpointer, Hearing, SileroVAD, WhisperASR
from vtuber.mind import Mind
from vtuber.mind.llm import LLMBackend, make_backend
from vtuber.mind.persona import Persona, list_personas, load_persona
from vtuber.mind.prompt import PromptBuilder, context_problem, system_prompt
from vtuber.models import ModelPaths, persona_voice, resolve
from vtuber.outputs.recorder import Recorder
from vtuber.plugins import Controls, Plugin, PluginHost, load_plugins
from vtuber.safety import BannedWords, ChatFilter, OutputGate, default_banned_words, make_canary
from vtuber.voice import PiperTTS, VoiceStage

log = logging.getLogger("vtuber")


@dataclass
class Engine:
    """The three models plus the VAD, loaded once and shared by every session."""

    cfg: Config
    persona: Persona
    paths: ModelPaths
    llm: LLMBackend
    asr: WhisperASR
    tts: PiperTTS
    vad: SileroVAD
    # The prompt's canary: one per engine so the cached persona prefix survives sessions.
    canary: str = field(default_factory=lambda: make_canary())

    @classmethod
    def load(cls, cfg: Config, persona: Persona, step: Callable[[str], None] = lambda s: None) -> Engine:
        paths = resolve(cfg)
        step(f"loading LLM {paths.llm.name}")
        llm = make_backend(paths.llm, cfg)
        check_context(persona, llm, cfg)
        step(f"loading Whisper {paths.asr.parent.name}/{paths.asr.name}")
        asr = WhisperASR(
            paths.asr,
            threads=cfg.threads.asr,
            language=cfg.hearing.language,
            beam_size=cfg.hearing.beam_size,
            prompt=persona.asr_prompt,
            names=(persona.name, persona.streamer_name),
        )
        voice, voice_config = persona_voice(cfg, paths, persona)
        step(f"loading Piper voice {voice.name}")
        tts = PiperTTS(
            voice,
            voice_config,
            threads=cfg.threads.tts,
            length_scale=persona.voice.length_scale or cfg.voice.length_scale,
            speaker_id=persona.voice.speaker_id if persona.voice.speaker_id >= 0 else cfg.voice.speaker_id,
        )
        vad = SileroVAD()
        return cls(cfg, persona, paths, llm, asr, tts, vad)

    def warm(self, step: Callable[[str], None] = lambda s: None) -> None:
        """Run each model once so the first real turn pays no first-call costs."""
        step("warming the LLM (persona prefix into the KV cache)")
        self.llm.warm(PromptBuilder(self.persona, canary=self.canary).prefix())
        step("warming Whisper")
        self.asr.warm()
        step("warming Piper")
        self.tts.warm()

    def close(self) -> None:
        self.llm.close()


def check_context(persona: Persona, llm: LLMBackend, cfg: Config) -> None:
    """A persona whose prompt cannot fit the model's context is a one-line error, not a crash mid-stream."""
    problem = context_problem(persona, llm.count_tokens, cfg.llm.context, cfg.llm.history_turns)
    if problem:
        raise UserError(f"persona {persona.name} ({persona.path or 'built in'}): {problem}")


class Session(Controls):
    """One run of the pipeline over some sources, with some outputs.

    It is also what plugins may control (`Controls`): say a line, queue a question,
    switch persona, mute. Those calls come from plugin threads, so each one is
    handed to the event loop rather than run there.
    """

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        outputs: Iterable[Callable[[object], None]] = (),
        recorder: Recorder | None = None,
        plugins: list[Plugin] | None = None,
    ):
        cfg = engine.cfg
        self.engine = engine
        self.cfg = cfg
        self.clock = clock
        self.recorder = recorder or Recorder()
        self.observers: list[Callable[[object], None]] = [self.recorder, *outputs]
        self.director = Director(cfg.director, clock, self.emit, engine.persona.name, engine.persona.triage)
        h = cfg.hearing
        engine.vad.reset()
        self.hearing = Hearing(
            engine.vad,
            Endpointer(h.vad_threshold, h.hangover_ms, h.min_speech_ms, h.max_utterance_s),
            engine.asr,
            clock,
            self.emit,
            continuation_ms=h.continuation_ms,
            speculative_ms=h.speculative_ms,
        )
        self.errors: list[str] = []  # what went wrong in a turn, for the report (the stream went on)
        self.voice = VoiceStage(engine.tts, clock, self.emit, errors=self.errors)
        self.default_banned = default_banned_words(cfg.safety.banned_words_file or None)
        self.persona = engine.persona
        self.gate, self.chat_filter = self._safety_for(self.persona)
        self.plugins = PluginHost(
            load_plugins(cfg.plugins.enabled, Path(cfg.plugins.folder) if cfg.plugins.folder else None)
            if plugins is None
            else plugins,
            self,
            timeout_s=cfg.plugins.timeout_s,
            settings=cfg.plugins.settings,
        )
        self.mind = Mind(
            engine.llm,
            self.persona,
            cfg.llm.history_turns,
            cfg.voice,
            self.gate,
            clock,
            self.emit,
            self._to_voice,
            canary=engine.canary,
            clause_hook=self.plugins.clause,
            llm_may_run=self.voice.first_audio_priority,
        )
        self.muted = False
        self._pending_persona: Persona | None = None
        self.blocked: list[tuple[int, str, str]] = []  # every gate's blocks, across persona switches
        self._loop: asyncio.AbstractEventLoop | None = None

    def _safety_for(self, persona: Persona) -> tuple[OutputGate, ChatFilter]:
        s = self.cfg.safety
        banned = BannedWords([*persona.banned_words, *self.default_banned])  # one matcher for both doors
        gate = OutputGate(
            banned,
            safe_line=s.safe_line,
            canary=self.engine.canary,
            system_prompt=system_prompt(persona, self.engine.canary),
            leak_words=s.leak_words,
            leak_exempt=persona.example_lines,  # quoting her own example lines is not a leak
        )
        return gate, ChatFilter(banned, mode=s.chat_mode)

    # --- routing ---------------------------------------------------------------------

    def _observe(self, ev: object) -> None:
        for observe in self.observers:
            observe(ev)

    def emit(self, ev: object) -> None:
        if isinstance(ev, (ChatMessage, StreamEvent)):  # untrusted: through the door first
            ev = admit(ev)
            if ev is None:
                return
        self._observe(ev)
        if isinstance(ev, AudioFrame):
            self.hearing.feed(ev)
        elif isinstance(ev, ChatMessage):
            self._chat_in(ev)
        elif isinstance(ev, (Utterance, Announcement)):
            self.director.submit(ev)
        elif isinstance(ev, StreamEvent):
            for line, origin in self.plugins.event(ev):
                self.emit(Announcement(line, self.clock.now(), ev.user, origin))
        elif isinstance(ev, ReplyFinished):
            self.director.done()

    def _drop(self, msg: ChatMessage, reason: str) -> None:
        self._observe(TurnDropped("chat", msg.user, msg.text, reason, self.clock.now()))

    def _chat_in(self, msg: ChatMessage) -> None:
        """Untrusted chat at the door: banned words, then plugins, then commands, then triage."""
        text, reason = self.chat_filter.apply(msg.text)
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
            _, reply = self.plugins.command(kept)
            if reply:
                self.emit(Announcement(reply, self.clock.now(), kept.user, "command"))
            return
        self.director.submit(kept)

    async def _to_voice(self, ev: object) -> None:
        """The mind's data path: clauses are shown as they form, then queued for speech.
        `ReplyFinished` is observed when the voice passes it on, after the reply's last audio."""
        if isinstance(ev, ReplyClause):
            self._observe(ev)
        await self.voice.put(ev)

    async def _answer_turns(self) -> None:
        while (turn := await self.director.next_turn()) is not None:
            if self._pending_persona is not None:  # a switch lands between turns, never mid-reply
                self._switch_persona(self._pending_persona)
                self._pending_persona = None
            try:
                picked, by = (turn, "") if turn.kind == "line" else await self.plugins.pick(turn)
                if picked is None or self.muted:
                    reason = "muted" if picked is not None else f"plugin {by}"
                    self._observe(TurnDropped(turn.kind, turn.user, turn.text, reason, self.clock.now()))
                    self.director.done(answered=False)
                    continue
                await self.mind.answer(picked)
            except Exception as e:  # one failed reply must not end the stream
                log.exception("reply to turn %s failed", turn.id)
                self.errors.append(f"turn {turn.id}: {e}")
                self.director.done(answered=False)

    # --- controls for plugins (called from plugin threads) ---------------------------

    def _soon(self, fn: Callable, *args) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(fn, *args)

    def say(self, text: str, origin: str = "") -> None:
        self._soon(lambda: self.emit(Announcement(text, self.clock.now(), "", origin)))

    def ask(self, msg: ChatMessage) -> None:
        self._soon(self.director.submit, msg)

    def set_muted(self, muted: bool) -> None:
        self._soon(setattr, self, "muted", muted)

    @property
    def persona_name(self) -> str:
        return self.persona.name

    def set_persona(self, name: str) -> str:
        """Only personas by name (never a path): chat commands must not open arbitrary files."""
        folders = self.cfg.persona_folders
        if name not in list_personas(folders):
            raise UserError(f"no persona named {quote(name, 40)} (available: {', '.join(list_personas(folders))})")
        persona = load_persona(name, folders)
        check_context(persona, self.engine.llm, self.cfg)
        self._soon(setattr, self, "_pending_persona", persona)
        return persona.name

    def _switch_persona(self, persona: Persona) -> None:
        self.blocked.extend(self.gate.blocked)
        self.persona = persona
        self.gate, self.chat_filter = self._safety_for(persona)
        self.mind.set_persona(persona, self.gate)
        self.director.set_triage(persona.name, persona.triage)
        self.engine.asr.prompt = persona.asr_prompt
        self.engine.asr.names = [persona.name, persona.streamer_name]
        asyncio.get_running_loop().create_task(self.mind.warm_async())
        log.warning("persona switched to %s", persona.name)

    def all_blocked(self) -> list[tuple[int, str, str]]:
        return [*self.blocked, *self.gate.blocked]

    # --- run --------------------------------------------------------------------------

    async def run(self, sources: Iterable) -> Recorder:
        self._loop = asyncio.get_running_loop()
        self.clock.start()
        voice_task = asyncio.create_task(self.voice.run(), name="voice")
        mind_task = asyncio.create_task(self._answer_turns(), name="mind")
        feeding = asyncio.gather(*(s.run(self.clock, self.emit) for s in sources))

        def stage_died(task: asyncio.Task) -> None:
            # The mind and voice stages catch their own errors; if one still dies, stop
            # feeding a pipeline that can no longer answer instead of going on silently.
            if not task.cancelled() and task.exception() is not None and not feeding.done():
                feeding.cancel()

        for task in (mind_task, voice_task):
            task.add_done_callback(stage_died)
        try:
            try:
                await feeding
            except asyncio.CancelledError:
                for task in (mind_task, voice_task):
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        raise task.exception() from None
                raise
            await self.hearing.drain()
            self.director.close()
            await mind_task
            await self.voice.stop()
            await voice_task
        finally:
            for t in (mind_task, voice_task):
                if not t.done():
                    t.cancel()
            self.hearing.close()
            self.voice.close()
            self.mind.close()
            self.plugins.close()
        return self.recorder
