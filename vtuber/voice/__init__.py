"""Voice: text to speech per clause (Piper), synthesized while the LLM writes the next clause."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from vtuber.clock import Clock
from vtuber.events import AudioChunk, ReplyClause, ReplyFinished
from vtuber.ports import TextToSpeech
from vtuber.voice.tts import PiperTTS, speakable

__all__ = ["PiperTTS", "VoiceStage", "speakable"]

log = logging.getLogger("vtuber.voice")


class VoiceStage:
    """Consumes `ReplyClause`/`ReplyFinished` in order; emits `AudioChunk`s, then the `ReplyFinished`.

    Its input queue is bounded (backpressure on the mind: every clause of a reply is
    spoken), except for a cancelled turn: `flush(turn_id)` drops its queued clauses,
    and audio still being made for it is thrown away. `finished(turn_id)` resolves when
    the turn's last audio is out (or it was flushed).
    """

    def __init__(
        self,
        tts: TextToSpeech,
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
        self._cancelled: set[int] = set()
        self._finished: dict[int, asyncio.Future] = {}

    async def put(self, event: ReplyClause | ReplyFinished) -> None:
        if event.turn_id in self._cancelled:
            return
        await self.queue.put(event)

    def finished(self, turn_id: int) -> asyncio.Future:
        """Resolves once the turn's `ReplyFinished` has passed (its audio is all out) or it was flushed."""
        fut = self._finished.get(turn_id)
        if fut is None:
            fut = self._finished[turn_id] = asyncio.get_running_loop().create_future()
        return fut

    def _resolve(self, turn_id: int) -> None:
        fut = self._finished.pop(turn_id, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def flush(self, turn_id: int) -> int:
        """Drop the turn's queued clauses and any audio still being made for it; returns how many were dropped."""
        self._cancelled.add(turn_id)
        if len(self._cancelled) > 256:
            self._cancelled = set(sorted(self._cancelled)[-128:])
        kept, dropped = [], 0
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if item is not None and item.turn_id == turn_id:
                dropped += 1
            else:
                kept.append(item)
        for item in kept:
            self.queue.put_nowait(item)
        self._resolve(turn_id)
        return dropped

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            event = await self.queue.get()
            if event is None:
                return
            if event.turn_id in self._cancelled:
                continue
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
                if event.turn_id in self._cancelled:  # cancelled while Piper spoke it: never heard
                    continue
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
                self._resolve(event.turn_id)

    async def stop(self) -> None:
        await self.queue.put(None)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
