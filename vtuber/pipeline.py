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
from vtuber.director import Director, join_names
from vtuber.door import admit
from vtuber.errors import UserError
from vtuber.controls import SessionControls
from vtuber.events import (
    RETRACTED,
    Announcement,
    AudioChunk,
    AudioFrame,
    ChatMessage,
    ClausePlaying,
    Interrupt,
    Moderation,
    ReplyClause,
    SpeechStarted,
    StreamEvent,
    TurnDropped,
    Utterance,
    UtteranceRetracted,
)
from vtuber.hearing import Endpointer, Hearing, SileroVAD, WhisperASR
from vtuber.hearing.echo import EchoGuard
from vtuber.intake import ChatIntake
from vtuber.memory import ViewerMemory
from vtuber.memory import default_path as default_memory_path
from vtuber.mind import Mind
from vtuber.mind.llm import LLMBackend, make_backend
from vtuber.mind.persona import Persona
from vtuber.mind.prompt import PromptBuilder, context_problem, system_prompt
from vtuber.language import name_of, safe_line_for
from vtuber.mind.languages import LanguagePolicy, check_languages, model_languages
from vtuber.models import ModelPaths, asr_for, persona_voice, resolve
from vtuber.outputs.hub import OutputHub
from vtuber.outputs.playback import Playback, SimulatedPlayback
from vtuber.outputs.recorder import Recorder
from vtuber.plugins import Plugin, PluginHost, load_plugins
from vtuber.safety import BannedWords, ChatFilter, OutputGate, default_banned_words, make_canary
from vtuber.turns import TurnRunner
from vtuber.voice import PiperTTS, VoiceStage
from vtuber.voice.languages import VoiceByLanguage, language_voices

log = logging.getLogger("vtuber")

NEUTRAL_NAME = "a new friend"  # said and shown instead of a user name the gate would block


@dataclass
class Engine:
    """The three models plus the VAD, loaded once and shared by every session."""

    cfg: Config
    persona: Persona
    paths: ModelPaths
    llm: LLMBackend
    asr: WhisperASR
    tts: VoiceByLanguage  # a voice per language she speaks (vtuber.voice.languages)
    vad: SileroVAD
    # The prompt's canary: one per engine so the cached persona prefix survives sessions.
    canary: str = field(default_factory=lambda: make_canary())

    @classmethod
    def load(cls, cfg: Config, persona: Persona, step: Callable[[str], None] = lambda s: None) -> Engine:
        from vtuber.models import with_persona_model  # a persona may name its own model

        cfg = with_persona_model(cfg, persona)
        paths = resolve(cfg)
        step(f"loading LLM {paths.llm.name}" + (f" (fallback for {paths.llm_url})" if paths.llm_url else ""))
        check_languages(persona, model_languages(cfg, persona))
        llm = make_backend(paths.llm, cfg)
        check_context(persona, llm, cfg)
        hears = cfg.hearing.language or persona.language  # fixed: detection on short speech guesses wrong
        paths = dataclasses.replace(paths, asr=asr_for(cfg, paths, hears, step))
        step(f"loading Whisper {paths.asr.parent.name}/{paths.asr.name} ({name_of(hears)})")
        asr = WhisperASR(
            paths.asr,
            threads=cfg.threads.asr,
            language=hears,
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
        # Wyoming servers named in the config; the local models are their fallback
        from vtuber.wyoming_client import with_speech_servers

        asr, tts = with_speech_servers(paths, cfg, asr, tts)
        speaks = LanguagePolicy(persona, model_languages(cfg, persona), detector=False).answers
        tts = language_voices(cfg, tts, voice_config, persona.language, speaks, step)
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


def open_memory(cfg: Config) -> ViewerMemory:
    """The viewer notes: in memory for this session, or the SQLite file when `memory.persist`."""
    m = cfg.memory
    return ViewerMemory((m.path or default_memory_path()) if m.persist else None)


def check_context(persona: Persona, llm: LLMBackend, cfg: Config) -> None:
    """A persona whose prompt cannot fit the model's context is a one-line error, not a crash mid-stream."""
    problem = context_problem(persona, llm.count_tokens, cfg.llm.context, cfg.llm.history_turns)
    if problem:
        raise UserError(f"persona {persona.name} ({persona.path or 'built in'}): {problem}")


class Session:
    """One run of the pipeline over some sources, with some outputs: the wiring.

    - routing: `emit` is the one place events go: every event to the recorder, the
      playback and the outputs (observers), data events also to the stage that consumes
      them; untrusted chat passes the door (`vtuber.door`) first;
    - chat intake (`vtuber.intake`): banned words, plugins, commands, then triage;
    - the turn loop and cancellation (`vtuber.turns`);
    - what plugins may do (`vtuber.controls`): say, ask, mute, skip, switch persona;
    - barge-in and echo (`vtuber.hearing.echo`): the streamer talking stops the co-host.
    """

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        outputs: Iterable[object] = (),
        recorder: Recorder | None = None,
        plugins: list[Plugin] | None = None,
        playback: Callable[[Clock, Callable[[object], None]], Playback] | None = None,
    ):
        cfg = engine.cfg
        self.engine = engine
        self.cfg = cfg
        self.clock = clock
        self.recorder = recorder or Recorder()
        self.outputs = OutputHub(outputs)
        self.playback: Playback = (playback or SimulatedPlayback)(clock, self.emit)
        self.observers: list[Callable[[object], None]] = [self.recorder, self.playback.feed, self.outputs]
        self.director = Director(
            cfg.director, clock, self.emit, engine.persona.name, engine.persona.triage, list(engine.persona.idle_topics)
        )
        self.director.speaker_busy_until = self.playback.busy_until
        self.director.merge_lines = self._merge_thanks
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
            onset_ms=h.barge_in_ms,
            early_answer=h.early_answer,
        )
        self.director.streamer_talking = lambda: self.hearing.streamer_talking
        self.errors: list[str] = []  # what went wrong in a turn, for the report (the stream went on)
        self.voice = VoiceStage(engine.tts, clock, self.emit, errors=self.errors)
        self.default_banned = default_banned_words(cfg.safety.banned_words_file or None)
        self.persona = engine.persona
        self.gate, self.chat_filter = self.safety_for(self.persona)
        self.controls = SessionControls(self)
        self.memory = open_memory(cfg)
        self.plugins = PluginHost(
            load_plugins(cfg.plugins.enabled, Path(cfg.plugins.folder) if cfg.plugins.folder else None)
            if plugins is None
            else plugins,
            self.controls,
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
            context=cfg.llm.context,
            memory=self.memory,
            languages=LanguagePolicy(self.persona, model_languages(cfg, self.persona)),
            can_speak=getattr(engine.tts, "can_speak", None),
        )
        self.mind.threads_first, self.mind.threads_after = cfg.threads.llm_first_clause, cfg.threads.llm
        self.intake = ChatIntake(self)
        self.turns = TurnRunner(
            self.director,
            self.mind,
            self.voice,
            self.playback,
            clock,
            self._observe,
            pick=self.plugins.pick,
            before_turn=self.controls.apply_pending,
            muted=lambda: self.controls.muted,
            errors=self.errors,
        )
        self.echo = EchoGuard(h.echo_guard, h.echo_loss_db)
        self.barge_in = h.barge_in
        self.blocked: list[tuple[int, str, str]] = []  # every gate's blocks, across persona switches
        self.names_replaced = 0  # user names the gate would block, replaced by NEUTRAL_NAME
        self._feeding: asyncio.Future | None = None
        self.stopped = ""  # why the session was stopped early ("" when its sources ran out)
        self._stop_event = asyncio.Event()
        for output in self.outputs.outputs:  # outputs that act on the session (a dock, chat replies)
            attach = getattr(output, "attach", None)
            if callable(attach):
                attach(self)

    def safety_for(self, persona: Persona) -> tuple[OutputGate, ChatFilter]:
        s = self.cfg.safety
        banned = BannedWords(  # one matcher for both doors
            [*persona.banned_words, *persona.banned_phrases, *self.default_banned], allow=persona.allow_words
        )
        gate = OutputGate(
            banned,
            safe_line=safe_line_for(s.safe_line, persona.language),
            canary=self.engine.canary,
            system_prompt=system_prompt(persona, self.engine.canary),
            leak_words=s.leak_words,
            leak_exempt=persona.example_lines,  # quoting her own example lines is not a leak
            guarded_texts=(
                persona.description,
                persona.personality,
                persona.scenario,
                persona.speaking_style,
                persona.system_prompt,
                persona.post_history_instructions,
            ),
            persona_name=persona.name,
        )
        gate.reason("Hello there, friends.")  # loads the word-form data now, not on the first reply's clause
        return gate, ChatFilter(banned, mode=s.chat_mode)

    def all_blocked(self) -> list[tuple[int, str, str]]:
        return [*self.blocked, *self.gate.blocked]

    @property
    def muted(self) -> bool:
        return self.controls.muted

    # --- routing ---------------------------------------------------------------------

    def _observe(self, ev: object) -> None:
        for observe in self.observers:
            observe(ev)

    def emit(self, ev: object) -> None:
        if isinstance(ev, (ChatMessage, StreamEvent)):  # untrusted: through the door first
            ev = admit(ev)
            if ev is None:
                return
            ev = self._safe_name(ev)
        if isinstance(ev, AudioFrame):
            self.echo.mic(ev)
            self.hearing.feed(ev)
            return  # frames are many and only hearing needs them
        if isinstance(ev, Utterance) and self.echo.is_echo(ev):
            self._observe(TurnDropped("speech", "streamer", ev.text, "echo of the co-host", self.clock.now()))
            return
        self._observe(ev)
        if isinstance(ev, ChatMessage):
            self.intake.chat(ev)
        elif isinstance(ev, (Utterance, Announcement)):
            self.director.submit(ev)
        elif isinstance(ev, StreamEvent):
            self.memory.support(ev)
            for line, origin in self.plugins.event(ev):
                self.emit(Announcement(line, self.clock.now(), ev.user, origin, event=ev))
        elif isinstance(ev, SpeechStarted):
            if self.barge_in and self.turns.is_talking() and not self.echo.is_echo_onset(ev):
                self.emit(Interrupt(ev.t, "barge_in"))
        elif isinstance(ev, Interrupt):
            self.turns.cancel(ev.reason)
        elif isinstance(ev, Moderation):  # moderation wins: never answer what a moderator took back
            reason = f"moderated: {ev.action}"
            self.director.moderate(ev)
            self.memory.moderated(ev)
            self.turns.cancel_if(lambda turn: ev.matches(turn.source), reason)
        elif isinstance(ev, UtteranceRetracted):  # answered early, but the streamer went on
            self.director.retract(ev.utterance, RETRACTED) or self.turns.cancel_turn_for(ev.utterance, RETRACTED)
        elif isinstance(ev, (AudioChunk, ClausePlaying)):
            self.echo.playing(ev)

    def _merge_thanks(self, lines: list[Announcement]) -> Announcement | None:
        """Thank-yous for several events of one kind, waiting together: one line from the
        same plugin for all of them ("Thanks for the subs, Ann, Bo and 3 others!")."""
        events = [a.event for a in lines if a.event is not None]
        users = join_names([e.user for e in events])
        batch = dataclasses.replace(events[0], user=users, amount=sum(e.amount for e in events))
        origin = lines[0].origin
        for line, by in self.plugins.event(batch):
            if by == origin:
                return Announcement(line, self.clock.now(), users, origin, event=batch)
        return None

    def _safe_name(self, ev: ChatMessage | StreamEvent) -> ChatMessage | StreamEvent:
        """A user name is said, shown and put in the prompt: one the gate would block
        ("MrPotatoHead" where "potato" is banned) becomes a neutral one, counted."""
        name = self.gate.safe_name(ev.user, NEUTRAL_NAME)
        if name == ev.user:
            return ev
        self.names_replaced += 1
        log.info("a user name was replaced by %r: %s", NEUTRAL_NAME, self.gate.name_reason(ev.user))
        return dataclasses.replace(ev, user=name)

    async def _to_voice(self, ev: object) -> None:
        """The mind's data path: clauses are shown as they form, then queued for speech.
        `ReplyFinished` is observed when the voice passes it on, after the reply's last audio."""
        if isinstance(ev, ReplyClause):
            self._observe(ev)
        await self.voice.put(ev)

    # --- run --------------------------------------------------------------------------

    async def run(self, sources: Iterable) -> Recorder:
        self.controls.bind(asyncio.get_running_loop())
        self.clock.start()
        self.outputs.start()
        self.playback.start()
        voice_task = asyncio.create_task(self.voice.run(), name="voice")
        turns_task = asyncio.create_task(self.turns.run(), name="turns")
        feeding = self._feeding = asyncio.gather(*(s.run(self.clock, self.emit) for s in sources))

        def stage_died(task: asyncio.Task) -> None:
            # The turn and voice stages catch their own errors; if one still dies, stop
            # feeding a pipeline that can no longer answer instead of going on silently.
            if not task.cancelled() and task.exception() is not None and not feeding.done():
                feeding.cancel()

        for task in (turns_task, voice_task):
            task.add_done_callback(stage_died)
        stopping = False
        try:
            try:
                await feeding
            except asyncio.CancelledError:
                for task in (turns_task, voice_task):
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        raise task.exception() from None
                if not self.stopped:
                    raise
            if self.stopped:  # stop(): silence now, hand out nothing more, end cleanly
                self.director.close()
                self.director.clear("shutdown")
                self.turns.cancel(self.stopped)
                await turns_task
                await self.voice.stop()
                await voice_task
            else:
                await self.hearing.drain()
                self.director.close()
                await turns_task
                await self.voice.stop()
                await voice_task
                await self._playback_drained()
        except BaseException:
            stopping = True
            raise
        finally:
            if stopping:  # Ctrl-C, SIGTERM, a dead stage: stop talking at once
                self.turns.cancel("shutdown")
            for t in (turns_task, voice_task):
                if not t.done():
                    t.cancel()
            self.hearing.close()
            self.voice.close()
            self.mind.close()
            self.plugins.close()
            self.memory.close()
            # Stopped early: what still plays fades out; otherwise it was heard to the end.
            await asyncio.shield(asyncio.to_thread(self.playback.close, not (stopping or self.stopped)))
            await asyncio.shield(self.outputs.close())
        return self.recorder

    def stop(self, reason: str = "shutdown") -> None:
        """End the session now (Ctrl-C, SIGTERM, a time limit): sources stop, the reply
        being spoken is cut (fading out), queued inputs are dropped; `run` returns normally."""
        if not self.stopped:
            self.stopped = reason
            self._stop_event.set()
            if self._feeding is not None and not self._feeding.done():
                self._feeding.cancel()
            else:  # the sources are done already: stop what is still being answered or said
                self.director.close()
                self.director.clear(reason)
                self.turns.cancel(reason)

    async def _playback_drained(self) -> None:
        """Wait (on the session clock) until the last reply has been heard to the end."""
        while not self.playback.idle() and not self.stopped:
            done = asyncio.Event()
            timer = self.clock.call_at(self.playback.busy_until(), done.set)
            stop = asyncio.ensure_future(self._stop_event.wait())
            try:
                await asyncio.wait([asyncio.ensure_future(done.wait()), stop], return_when=asyncio.FIRST_COMPLETED)
            finally:
                timer.cancel()
                stop.cancel()
            await asyncio.sleep(0)
