"""Voice: text to speech per clause (Piper), synthesized while the LLM writes the next clause."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from vtuber.clock import Clock
from vtuber.events import AudioChunk, ReplyClause, ReplyFinished
from vtuber.voice.tts import PiperTTS, speakable

__all__ = ["PiperTTS", "VoiceStage", "speakable"]

log = logging.getLogger("vtuber.voice")


class VoiceStage:
    """Consumes `ReplyClause`/`ReplyFinished` in order; emits `AudioChunk`s, then the `ReplyFinished`.

    Its input queue is bounded (backpressure on the mind, nothing dropped: every
    clause of a reply that was started is spoken).
    """

    def __init__(
        self,
        tts: PiperTTS,
        clock: Clock,
        emit: Callable[[object], None],
        queue_size: int = 32,
        errors: list[str] | None = None,
    ):
        self.tts = tts
        self.clock = clock
        self.emit = emit
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")
        self.errors = errors if errors is not None else []
        # Set while the LLM may decode; cleared while the first clause of a reply is
        # synthesized (the mind waits on it between tokens).
        self.first_audio_priority = threading.Event()
        self.first_audio_priority.set()

    async def put(self, event: ReplyClause | ReplyFinished) -> None:
        await self.queue.put(event)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            event = await self.queue.get()
            if event is None:
                return
            if isinstance(event, ReplyClause):
                first = event.index == 0
                if first:
                    self.first_audio_priority.clear()  # the LLM pauses: both cores for the first audio
                try:
                    samples = await loop.run_in_executor(self._executor, self.tts.synthesize, event.text)
                except Exception as e:  # one unspeakable clause must not silence the co-host
                    log.error("TTS failed on clause %r: %s: %s", event.text[:60], type(e).__name__, e)
                    self.errors.append(f"turn {event.turn_id}: TTS failed ({type(e).__name__}: {e})")
                    continue
                finally:
                    if first:
                        self.first_audio_priority.set()
                self.emit(
                    AudioChunk(
                        turn_id=event.turn_id,
                        clause_index=event.index,
                        samples=samples,
                        sample_rate=self.tts.sample_rate,
                        t=self.clock.now(),
                    )
                )
            else:
                self.emit(event)

    async def stop(self) -> None:
        await self.queue.put(None)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
