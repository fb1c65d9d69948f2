"""Wiring: the loaded models (`Engine`) and one run of the pipeline over some sources (`Session`).

    sources -> hearing -> director -> mind -> voice -> outputs

`Session.emit` is the one place events are routed: every event goes to every
output (observers), and data events also go to the stage that consumes them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from vtuber.clock import Clock
from vtuber.config import Config
from vtuber.director import Director
from vtuber.events import AudioFrame, ChatMessage, ReplyClause, ReplyFinished, Utterance
from vtuber.hearing import Endpointer, Hearing, SileroVAD, WhisperASR
from vtuber.mind import Mind
from vtuber.mind.llm import LLMBackend, make_backend
from vtuber.mind.persona import Persona
from vtuber.mind.prompt import system_prompt
from vtuber.models import ModelPaths, resolve
from vtuber.outputs.recorder import Recorder
from vtuber.safety import OutputGate
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

    @classmethod
    def load(cls, cfg: Config, persona: Persona, step: Callable[[str], None] = lambda s: None) -> Engine:
        paths = resolve(cfg)
        step(f"loading LLM {paths.llm.name}")
        llm = make_backend(paths.llm, cfg)
        step(f"loading Whisper {paths.asr.parent.name}/{paths.asr.name}")
        asr = WhisperASR(
            paths.asr,
            threads=cfg.threads.asr,
            language=cfg.hearing.language,
            beam_size=cfg.hearing.beam_size,
            prompt=persona.asr_prompt,
            names=(persona.name, persona.streamer_name),
        )
        step(f"loading Piper voice {paths.voice.name}")
        tts = PiperTTS(
            paths.voice,
            paths.voice_config,
            threads=cfg.threads.tts,
            length_scale=cfg.voice.length_scale,
            speaker_id=cfg.voice.speaker_id,
        )
        vad = SileroVAD()
        return cls(cfg, persona, paths, llm, asr, tts, vad)

    def warm(self, step: Callable[[str], None] = lambda s: None) -> None:
        """Run each model once so the first real turn pays no first-call costs."""
        step("warming the LLM (persona prefix into the KV cache)")
        self.llm.warm(system_prompt(self.persona))
        step("warming Whisper")
        self.asr.warm()
        step("warming Piper")
        self.tts.warm()

    def close(self) -> None:
        self.llm.close()


class Session:
    """One run of the pipeline over some sources, with some outputs."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        outputs: Iterable[Callable[[object], None]] = (),
        recorder: Recorder | None = None,
    ):
        cfg = engine.cfg
        self.engine = engine
        self.clock = clock
        self.recorder = recorder or Recorder()
        self.observers: list[Callable[[object], None]] = [self.recorder, *outputs]
        self.director = Director(cfg.director, clock, self.emit)
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
        self.voice = VoiceStage(engine.tts, clock, self.emit)
        self.gate = OutputGate(engine.persona.banned_words)
        self.mind = Mind(
            engine.llm, engine.persona, cfg.llm.history_turns, cfg.voice, self.gate, clock, self.emit, self._to_voice
        )
        self.errors: list[str] = []

    def _observe(self, ev: object) -> None:
        for observe in self.observers:
            observe(ev)

    def emit(self, ev: object) -> None:
        self._observe(ev)
        if isinstance(ev, AudioFrame):
            self.hearing.feed(ev)
        elif isinstance(ev, (ChatMessage, Utterance)):
            self.director.submit(ev)
        elif isinstance(ev, ReplyFinished):
            self.director.done()

    async def _to_voice(self, ev: object) -> None:
        """The mind's data path: clauses are shown as they form, then queued for speech.
        `ReplyFinished` is observed when the voice passes it on, after the reply's last audio."""
        if isinstance(ev, ReplyClause):
            self._observe(ev)
        await self.voice.put(ev)

    async def _answer_turns(self) -> None:
        while (turn := await self.director.next_turn()) is not None:
            try:
                await self.mind.answer(turn)
            except Exception as e:  # one failed reply must not end the stream
                log.exception("reply to turn %s failed", turn.id)
                self.errors.append(f"turn {turn.id}: {e}")
                self.director.done()

    async def run(self, sources: Iterable) -> Recorder:
        self.clock.start()
        voice_task = asyncio.create_task(self.voice.run(), name="voice")
        mind_task = asyncio.create_task(self._answer_turns(), name="mind")
        try:
            await asyncio.gather(*(s.run(self.clock, self.emit) for s in sources))
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
        return self.recorder
