"""Voice: text to speech per clause (Piper), synthesized while the LLM writes the next clause."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from vtuber.clock import Clock
from vtuber.events import AudioChunk, ReplyClause, ReplyFinished, ServiceState
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

    A TTS that raises, returns silence or hangs never holds the reply: that clause
    becomes silence as long as reading it takes (`placeholder`), so playback still shows
    it (captions, the dock) at once, and the next clause is in order. A hung TTS is
    given `deadline_s` (more for a long clause); while its thread stays stuck, clauses
    go straight to captions, and speech resumes with the first clause after it returns.
    Each clause is spoken at most once.
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
        self._trimmed: set[int] = set()  # turns whose later clauses are not spoken (the reply ends early)
        self._finished: dict[int, asyncio.Future] = {}
        # A clause's audio later than this (or half its spoken length) is given up on: it is
        # shown as captions. Piper takes ~40 ms for a clause; a busy machine can take ten times that.
        self.deadline_s = 3.0
        self._stuck: Future | None = None  # a TTS call that missed its deadline and has not ended
        self.failing = ""  # why clauses are captions only now ("" while she speaks)
        self.ready: dict[str, Future] = {}  # lines whose audio is made ahead (openers): text -> samples
        self._voiced_turn = -1  # the last turn a clause was synthesized for (its first gets priority)

    def render_ahead(self, lines: list[str]) -> None:
        """Make these lines' audio now, in the background, so that saying one later costs
        nothing (a reply's opener plays the moment the reply starts). Lines no longer asked
        for are forgotten (a persona switch)."""
        keep = {speakable(line) for line in lines if speakable(line)}
        self.ready = {text: fut for text, fut in self.ready.items() if text in keep}
        for text in keep - set(self.ready):
            self.ready[text] = self._executor.submit(self.tts.synthesize, text)

    async def _made_ahead(self, text: str) -> np.ndarray | None:
        """The line's audio made ahead (waited for when it is still being made: it is ahead of
        anything else on the voice's thread), or None."""
        fut = self.ready.get(text)
        if fut is None:
            return None
        try:
            if not fut.done():  # (when it is made, not even a turn of the loop is spent)
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), self.deadline_s)
            samples = fut.result()
        except Exception:  # noqa: BLE001 - a TTS that failed or hangs (TimeoutError): made the usual way
            self.ready.pop(text, None)
            return None
        return samples.copy() if samples is not None and len(samples) and np.any(samples) else None

    async def put(self, event: ReplyClause | ReplyFinished) -> None:
        if event.turn_id in self._cancelled or (isinstance(event, ReplyClause) and event.turn_id in self._trimmed):
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

    def trim(self, turn_id: int) -> None:
        """The turn's reply ends with what is already made: its later clauses are skipped,
        its `ReplyFinished` still passes (the reply is answered, only shorter)."""
        self._trimmed.add(turn_id)
        if len(self._trimmed) > 256:
            self._trimmed = set(sorted(self._trimmed)[-128:])

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            event = await self.queue.get()
            if event is None:
                return
            if event.turn_id in self._cancelled:
                continue
            if isinstance(event, ReplyClause) and event.turn_id in self._trimmed:
                continue
            if isinstance(event, ReplyClause):
                samples = await self._made_ahead(event.text)
                if samples is None:
                    # The first clause synthesized for a turn: the LLM pauses, both cores for it.
                    first = event.turn_id != self._voiced_turn
                    self._voiced_turn = event.turn_id
                    if first:
                        self.first_audio_priority.clear()
                    try:
                        samples = await self._speak(event)
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

    def placeholder(self, text: str) -> np.ndarray:
        """Silence as long as the clause takes to read (about 2.7 words a second): what
        playback plays, and captions show, when TTS cannot speak it."""
        seconds = max(0.6, len(text.split()) / 2.7)
        return np.zeros(int(seconds * self.tts.sample_rate), dtype=np.int16)

    async def _speak(self, event: ReplyClause) -> np.ndarray:
        """The clause's audio, or its placeholder when TTS fails, returns silence or hangs."""
        if self._stuck is not None:
            if not self._stuck.done():
                return self.placeholder(event.text)  # still stuck: captions only, no waiting
            self._stuck = None
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self._executor, self.tts.synthesize, event.text)
        deadline = max(self.deadline_s, 0.5 * len(event.text.split()) / 2.7)
        done, _ = await asyncio.wait({call}, timeout=deadline)
        why = ""
        samples = None
        if not done:
            # The TTS thread is stuck: leave it, and use a fresh one once it has returned.
            self._stuck = call
            self._executor.shutdown(wait=False, cancel_futures=False)
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")
            why = f"no audio in {deadline:.1f} s"
        else:
            try:
                samples = call.result()
            except Exception as e:  # noqa: BLE001 - one unspeakable clause must not silence the co-host
                why = f"{type(e).__name__}: {e}"
            else:
                if samples is None or not len(samples) or not np.any(samples):
                    why, samples = "it returned silence", None
        if samples is not None:
            if self.failing:
                self.failing = ""
                self.emit(ServiceState("tts", "back", "speech is back", self.clock.now()))
            return samples
        log.error("TTS failed on clause %r: %s", event.text[:60], why)
        self.errors.append(f"turn {event.turn_id}: TTS failed ({why}); the clause was shown as captions")
        if not self.failing:
            self.failing = why
            self.emit(ServiceState("tts", "failing", f"speech failed ({why}); captions only until it is back", self.clock.now()))
        return self.placeholder(event.text)

    async def stop(self) -> None:
        await self.queue.put(None)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
