"""Hearing: VAD and endpointing on the streamer's audio, then ASR on each utterance.

Endpointing is speculative twice over:
- ASR starts at a very short pause (`speculative_ms`) on the utterance so far. If the
  pause lasts until the endpoint (`hangover_ms`), that transcript is used, so most of
  the ASR time is hidden inside the hangover; if the streamer goes on, it is dropped.
- If the transcript ends a sentence (. ! ?) and has a few words, the utterance is
  done at once: with `early_answer`, already at the short pause, as soon as the
  speculative transcript is ready (no waiting out the hangover); if the streamer then
  goes on, `UtteranceRetracted` takes it back (its turn is dropped or cancelled
  silently) and the whole utterance comes at the real endpoint. If the transcript is
  not a sentence ("Okay chat," or just "Miko."), the streamer is probably
  mid-sentence: the transcript is held for up to `continuation_ms` more; if speech
  resumes, both parts are heard again as one utterance, otherwise it goes out as is.
- With a turn detector (`vtuber.hearing.turn.SmartTurn`), whether the streamer is done
  is judged by meaning (words and intonation of their last seconds), not by the
  transcript's punctuation. It is asked once, at the short pause, beside the speculative
  ASR: over (`turn_done`) -> the turn goes out at once; not over -> it waits through the
  pause, up to `turn_wait_ms` of silence, and is heard whole if they go on. (Asked again
  after the whole 448 ms pause, the model calls most mid-sentence pauses over: a long
  silence is what it learned an ended turn sounds like.) When it is unsure (a probability
  between `turn_unsure` and `turn_done`), the transcript's punctuation is the second
  opinion: a whole sentence ends the turn, anything else waits.
- A short fragment costs Whisper the most: under `slow_under_s` (1.5 s) the ASR needs its
  whole 30 s window (about 700 ms and 80-95 MiB for a second of audio, against ~200 ms and
  ~10 MiB for a longer line), which is most often "Miko," before the streamer goes on (the
  detector hears a lone name as a finished turn). With a turn detector, such a fragment is
  transcribed at the endpoint, not at the short pause, and after the detector's verdict, not
  beside it (their working memory never adds up); when the streamer goes on it is never
  transcribed at all (counted as "short_asr_spared"), so the whole line's transcription never
  queues behind it. A short line that is a whole turn ("Be right back.") goes out at the
  endpoint, ~320 ms later than at the short pause.
- Push-to-talk (`push_to_talk`): only audio while the button is held is heard, and
  letting go ends the turn at once (`talk(pressed)`, from the dock or a hotkey).
- `SpeechStarted` comes after `onset_ms` of voice (barge-in acts on it), sooner than
  an utterance is accepted; `streamer_talking` tells the director to wait for them.

What Whisper invents on silence and noise ("Thank you.", "you", "[Music]") is dropped
when the utterance goes out, judged by `vtuber.hearing.hallucination` on the text,
Whisper's own evidence and how long the VAD heard voice in it: each drop is logged
once (INFO, logger "vtuber.hearing") and counted in `Hearing.counters`
("hallucination", or "empty" for a transcript with no words), never emitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from vtuber.clock import Clock
from vtuber.events import AudioFrame, SpeechStarted, TurnDropped, Utterance, UtteranceRetracted
from vtuber.hearing.asr import Transcript, WhisperASR
from vtuber.hearing.hallucination import judge
from vtuber.hearing.vad import FRAME, RATE, Endpointer, Segment, SileroVAD
from vtuber.ports import SpeechToText

__all__ = ["Hearing", "WhisperASR", "Transcript", "SileroVAD", "Endpointer"]

log = logging.getLogger("vtuber.hearing")

# Frames whose VAD verdict is kept, to tell how much of an utterance was voiced
# (131 s: longer than any utterance, joined continuations included).
_VAD_HISTORY = 4096
ONSET_GRACE_S = 1.0  # after a speech onset, the streamer counts as talking this long
_SENTENCE_END = (".", "!", "?", "…")
_MIN_WORDS = 3  # a turn that ends early has at least this many words


class AsrFailed(Exception):
    """The speech recognizer crashed or gave nothing within its deadline on one utterance."""


@dataclass
class _Held:
    """A transcript waiting to see whether the streamer goes on talking."""

    segment: Segment
    transcript: Transcript
    t_asr_done: float
    deadline: float


@dataclass
class _Speculation:
    segment: Segment
    task: asyncio.Task
    verdict: asyncio.Task | None = None  # the turn detector's: how sure that the turn is over
    gate: asyncio.Event | None = None  # set at the endpoint: a short fragment held back is needed now
    sent: Utterance | None = None  # sent early: a complete sentence at a short pause
    decided: bool = False  # judged early (sent, or dropped as a hallucination): not again


class Hearing:
    """Consumes `AudioFrame`s, emits `SpeechStarted` and `Utterance` events.

    VAD runs inline (about 0.1 ms a frame); ASR runs in its own worker thread so the
    event loop never blocks and frames keep flowing while an utterance is transcribed.
    Every ASR run holds the clock's work count, so the fast clock stays faithful.
    """

    def __init__(
        self,
        vad: SileroVAD,
        endpointer: Endpointer,
        asr: SpeechToText,
        clock: Clock,
        emit: Callable[[object], None],
        continuation_ms: int = 700,
        speculative_ms: int = 128,
        onset_ms: int = 96,
        early_answer: bool = True,
        turn=None,
        turn_wait_ms: int = 1500,
        push_to_talk: bool = False,
        turn_done: float = 0.5,
        turn_unsure: float = 0.5,
    ):
        self.vad = vad
        self.endpointer = endpointer
        self.asr = asr
        self.clock = clock
        self.emit = emit
        self.continuation = continuation_ms / 1000
        self.speculative_frames = round(speculative_ms / 32) if speculative_ms > 0 else 0
        # `SpeechStarted` (what barge-in acts on) comes after this much voice, sooner than
        # an utterance is accepted (min_speech_ms): stopping the co-host fast matters more.
        self.onset_frames = min(max(1, round(onset_ms / 32)), endpointer.min_speech)
        self._last_onset = float("-inf")
        # Answer at the short pause when the speculative transcript is a whole sentence
        # (the turn is cancelled silently if the streamer goes on), not at the endpoint.
        self.early_answer = early_answer
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")
        # The turn detector (SmartTurn, or anything with `probability(audio)` that the turn is
        # over) runs on its own worker beside ASR, so its verdict is ready with the transcript.
        self.turn = turn
        self.turn_done = turn_done
        self.turn_unsure = min(turn_unsure, turn_done)
        self.turn_wait = turn_wait_ms / 1000
        self._turn_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turn") if turn else None
        # Audio shorter than this costs the ASR the most (see the module's note); 0: no such cost.
        self.slow_under = int(float(getattr(asr, "slow_under_s", 0.0)) * RATE)
        self.push_to_talk = push_to_talk
        self._talk_pressed = False
        self._release = False  # the button was let go: the next frame ends the utterance
        self._tasks: set[asyncio.Task] = set()
        self._gated: set[asyncio.Task] = set()  # short fragments' transcriptions waiting for the endpoint
        self._parked: asyncio.Future | None = None  # `settle` is told when one starts waiting
        self._held: _Held | None = None
        self._prefix: Segment | None = None  # held audio the next segment continues
        self._spec: _Speculation | None = None
        # (frame start, voiced seconds) of recent frames, for the hallucination filter.
        self._voiced: deque[tuple[float, float]] = deque(maxlen=_VAD_HISTORY)
        # "hallucination", "empty", "asr_failed": transcripts dropped; "turn_complete" / "turn_incomplete":
        # the detector's verdicts; "turn_waited": utterances held because it heard more to come;
        # "short_asr_spared": short fragments never transcribed (the streamer went on)
        self.counters: Counter[str] = Counter()
        # An utterance's transcript later than this (plus half its length) is given up on.
        self.asr_deadline_s = 6.0

    @property
    def streamer_talking(self) -> bool:
        """The streamer is speaking, or what they said is still being transcribed or held
        for a continuation: their utterance is on its way (the director waits for it)."""
        ep = self.endpointer
        recent_onset = self.clock.now() - self._last_onset < ONSET_GRACE_S  # a pause inside a start
        return ep.in_speech or ep.onset_pending or recent_onset or self._held is not None or bool(self._tasks)

    def talk(self, pressed: bool) -> None:
        """Push-to-talk: the button went down (the streamer is talking until it comes up,
        pauses included) or up (their turn ends now, no waiting out a silence)."""
        if not pressed and self._talk_pressed:
            self._release = True
        self._talk_pressed = pressed

    def feed(self, frame: AudioFrame) -> None:
        samples = frame.samples
        held = self.push_to_talk and self._talk_pressed
        if self.push_to_talk and not held and not self._release:
            samples = np.zeros_like(samples)  # the button is up: the room is not heard
        prob = self.vad(samples)
        ep = self.endpointer
        now = frame.t + frame.duration
        if self._release:
            self._release = False
            started, segment = False, ep.close(now) if ep.in_speech else None
            if segment is not None:
                self._drop_spec()
                if self._prefix is not None:
                    segment = _join(self._prefix, segment)
                    self._prefix = None
                self._conclude(segment, self._asr(segment), finished=True)
            return
        # While the button is held the streamer is talking, pauses included (the VAD's own
        # verdict still counts what was voiced, for the hallucination filter).
        started, segment = ep.feed(samples, frame.t, 1.0 if held else prob)
        self._voiced.append((frame.t, frame.duration if prob >= ep.off else 0.0))
        if ep.voiced_run == self.onset_frames or (started and self.onset_frames >= ep.min_speech):
            self._last_onset = self.clock.now()
            self.emit(SpeechStarted(t=self._last_onset))
        if started:
            if self._held is not None:  # the streamer went on: hear both parts as one
                self._prefix, self._held = self._held.segment, None
        if ep.in_speech:
            silent = ep.silent_frames
            if silent == 0:
                if self._spec is not None and self._spec.sent is not None:  # they went on
                    self.emit(UtteranceRetracted(self._spec.sent, self.clock.now()))
                self._drop_spec()  # still talking: any speculative transcript is stale
            elif silent == self.speculative_frames and self._spec is None:
                seg = ep.snapshot(now)
                if self._prefix is not None:
                    seg = _join(self._prefix, seg)
                gate = asyncio.Event()
                task, verdict = self._hear(seg, gate)
                spec = self._spec = _Speculation(seg, task, verdict, gate)
                if self.early_answer:
                    for task in (spec.task, spec.verdict):
                        if task is not None:
                            task.add_done_callback(lambda task, spec=spec: self._early(spec))
        if segment is not None:
            if self._prefix is not None:
                segment = _join(self._prefix, segment)
                self._prefix = None
            spec = self._spec
            same = spec is not None and spec.segment.t_end == segment.t_end and spec.segment.t_start == segment.t_start
            if same:
                self._spec = None
                spec.gate.set()  # the endpoint: a fragment held back is needed now
            else:
                self._drop_spec()
            if same and spec.decided:
                pass  # already answered (or dropped) at the short pause
            elif same:
                # Nothing was said since the speculation started: its transcript (and the
                # detector's verdict) are this one's.
                segment = Segment(spec.segment.audio, segment.t_start, segment.t_end, segment.t_endpoint)
                self._conclude(segment, spec.task, spec.verdict)
            else:
                self._conclude(segment, *self._hear(segment))
        held = self._held
        if held is not None and not ep.in_speech and not ep.onset_pending and now >= held.deadline:
            self._held = None
            self._send(held.segment, held.transcript, held.t_asr_done, t_endpoint=held.deadline)

    def _held_due(self, held: _Held) -> None:
        """The continuation deadline passed on the clock: send the held transcript even when no
        frame comes to say so (a recording that ended, a mic that went quiet mid-stream)."""
        ep = self.endpointer
        if self._held is held and not ep.in_speech and not ep.onset_pending:
            self._held = None
            self._send(held.segment, held.transcript, held.t_asr_done, t_endpoint=held.deadline)

    def _early(self, spec: _Speculation) -> None:
        """The speculative transcript is ready: if the streamer is still silent and it is a
        whole sentence, send it now instead of at the endpoint."""
        tasks = [t for t in (spec.task, spec.verdict) if t is not None]
        if spec is not self._spec or spec.decided or not all(t.done() for t in tasks):
            return
        if any(t.cancelled() or t.exception() is not None for t in tasks):
            return
        transcript = spec.task.result()
        if not self.endpointer.in_speech or self.endpointer.silent_frames == 0:
            return
        if not self._finished(transcript.text, spec.verdict.result() if spec.verdict is not None else None):
            return
        spec.decided = True
        spec.sent = self._send(spec.segment, transcript, self.clock.now(), t_endpoint=self.clock.now())

    def _track(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # A speculative transcript nobody awaits any more may have failed: that is not news.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    def _drop_spec(self) -> None:
        """The speculation is stale (the streamer went on, or the input ended): a short
        fragment's transcription still held back is not needed, ever."""
        spec, self._spec = self._spec, None
        if spec is not None and spec.gate is not None and not spec.gate.is_set() and not spec.task.done():
            spec.task.cancel()

    def _hear(self, seg: Segment, gate: asyncio.Event | None = None) -> tuple[asyncio.Task, asyncio.Task | None]:
        """Transcription and the detector's verdict for a segment. Beside each other, except
        for a short segment (see the module's note): its transcription waits for the verdict
        and, with a `gate` (at the short pause), for the endpoint."""
        verdict = self._judge(seg) if self.turn else None
        if verdict is None or len(seg.audio) >= self.slow_under:
            return self._asr(seg), verdict
        return self._asr(seg, after=verdict, gate=gate), verdict

    def _asr(self, seg: Segment, after: asyncio.Task | None = None, gate: asyncio.Event | None = None) -> asyncio.Task:
        self.clock.begin_work()
        return self._track(self._run_asr(seg, after, gate))

    async def _run_asr(self, seg: Segment, after: asyncio.Task | None = None, gate: asyncio.Event | None = None) -> Transcript:
        """The segment's transcript, within a deadline: an ASR that hangs or crashes drops
        this utterance (with a reason) and never holds the director or the next one.
        `after`: the detector's verdict to wait for first; `gate`: then the endpoint
        (a stale speculation is cancelled while it waits)."""
        try:
            if after is not None:
                with contextlib.suppress(Exception):  # no verdict: transcribe all the same
                    await asyncio.shield(after)  # a dropped speculation leaves the verdict be
                if gate is not None and not gate.is_set():
                    self.clock.end_work()  # waiting on the streamer, not working: the fast clock may go on
                    me = asyncio.current_task()
                    self._gated.add(me)
                    if self._parked is not None and not self._parked.done():
                        self._parked.set_result(None)  # `settle` need not wait for this one
                    try:
                        await gate.wait()
                    except asyncio.CancelledError:
                        self.counters["short_asr_spared"] += 1
                        raise
                    finally:
                        self._gated.discard(me)
                        self.clock.begin_work()
            loop = asyncio.get_running_loop()
            hear = getattr(self.asr, "hear", None)
            if hear is not None:
                call = loop.run_in_executor(self._executor, hear, seg.audio)
            else:
                # An ASR that gives only text (a test's wrapper): judged on the text and the VAD.
                call = loop.run_in_executor(self._executor, self.asr.transcribe, seg.audio)
            deadline = self.asr_deadline_s + len(seg.audio) / RATE * 0.5
            done, _ = await asyncio.wait({call}, timeout=deadline)
            if not done:
                # The ASR thread is stuck: leave it and hear the next utterance on a fresh one.
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")
                raise AsrFailed(f"speech recognition gave no transcript in {deadline:.1f} s")
            try:
                result = call.result()
            except Exception as e:  # noqa: BLE001 - one utterance lost, never the hearing
                raise AsrFailed(f"speech recognition failed ({type(e).__name__}: {e})") from e
            if hear is not None:
                return result
            return Transcript(result, duration_s=len(seg.audio) / RATE)
        finally:
            self.clock.end_work()

    def _finished(self, text: str, p_over: float | None) -> bool:
        """Is the turn over? By the detector's probability when there is one, with the
        punctuation as a second opinion when it is unsure; else by the punctuation alone.
        Never on a word or two ("Miko." is the streamer calling the co-host, and the
        detector hears a lone name as a whole turn), nor on words Whisper heard trail off
        (the detector hears "The best part about this game is..." as over, at 0.83)."""
        if p_over is None:
            return _complete(text)
        if len(text.split()) < _MIN_WORDS or _trails_off(text):
            return False  # Whisper heard the voice trail off ("And the best part is..."): more is coming
        if p_over >= self.turn_done:
            return True
        return p_over >= self.turn_unsure and _complete(text)

    def _judge(self, seg: Segment) -> asyncio.Task:
        """The turn detector's verdict on the utterance so far, in its own worker."""
        self.clock.begin_work()
        return self._track(self._run_judge(seg))

    async def _run_judge(self, seg: Segment) -> float:
        try:
            loop = asyncio.get_running_loop()
            p = float(await loop.run_in_executor(self._turn_executor, self.turn.probability, seg.audio))
            self.counters["turn_complete" if p >= self.turn_done else "turn_unsure" if p >= self.turn_unsure else "turn_incomplete"] += 1
            return p
        finally:
            self.clock.end_work()

    def _conclude(self, seg: Segment, asr: asyncio.Task, verdict: asyncio.Task | None = None, finished: bool = False) -> None:
        self.clock.begin_work()
        self._track(self._decide(seg, asr, verdict, finished))

    async def _decide(self, seg: Segment, asr: asyncio.Task, verdict: asyncio.Task | None, finished: bool) -> None:
        """Once the endpoint's transcript is ready: send it, or hold it for a continuation
        (an unfinished sentence; with the turn detector, a turn it hears more coming in)."""
        try:
            try:
                transcript = await asr
            except AsrFailed as e:
                self.counters["asr_failed"] += 1
                log.warning("hearing: the streamer's words at %.1f-%.1f s were not heard: %s", seg.t_start, seg.t_end, e)
                self.emit(TurnDropped("speech", "streamer", "", f"not heard: {e}", self.clock.now()))
                return
            if not finished:
                finished = self._finished(transcript.text, await verdict if verdict is not None else None)
            t_done = self.clock.now()
            if self._prefix is not None or self.endpointer.in_speech:
                # Speech resumed while we were transcribing: this text is superseded
                # by the joined utterance.
                if self._prefix is None:
                    self._prefix = seg
                    self._drop_spec()  # it was taken without this prefix
                return
            if finished:
                self._send(seg, transcript, t_done, t_endpoint=seg.t_endpoint)
            else:
                wait = self.turn_wait if verdict is not None else self.continuation
                if verdict is not None:
                    self.counters["turn_waited"] += 1
                held = self._held = _Held(seg, transcript, t_done, deadline=max(seg.t_end + wait, seg.t_endpoint))
                self.clock.call_at(held.deadline, lambda: self._held_due(held))
        finally:
            self.clock.end_work()

    def _voiced_s(self, seg: Segment) -> float:
        """Seconds the VAD heard voice between the segment's onset and its last voiced frame."""
        half = FRAME / RATE / 2  # frame starts are float sums: match them to half a frame
        return sum(v for t, v in self._voiced if seg.t_start - half <= t < seg.t_end - half)

    def _send(self, seg: Segment, transcript: Transcript, t_asr_done: float, t_endpoint: float) -> Utterance | None:
        text = transcript.text
        verdict = judge(transcript, self._voiced_s(seg))
        if verdict.drop:
            kind = "empty" if verdict.rule == "empty" else "hallucination"
            self.counters[kind] += 1
            log.log(
                logging.DEBUG if kind == "empty" else logging.INFO,
                "hearing: dropped %r at %.1f-%.1f s (%s: %s)",
                text,
                seg.t_start,
                seg.t_end,
                verdict.rule,
                verdict.reason,
            )
            return None
        t_asr_done = max(t_asr_done, t_endpoint)
        utt = Utterance(
            text=text,
            t_start=seg.t_start,
            t_end=seg.t_end,
            t_endpoint=t_endpoint,
            t_asr_done=t_asr_done,
            t=self.clock.now(),
        )
        self.emit(utt)
        return utt

    def input_lost(self) -> None:
        """The mic is gone (unplugged, moved away): an utterance being spoken can never reach
        its endpoint, so it is dropped (counted) and the director stops waiting for it; one
        held for a continuation is sent now."""
        ep = self.endpointer
        if ep.in_speech or ep.onset_pending:
            self.counters["mic_lost"] += 1
        ep.reset()
        self.vad.reset()
        self._drop_spec()
        self._prefix = None
        self._last_onset = float("-inf")
        if self._held is not None:
            held, self._held = self._held, None
            self._send(held.segment, held.transcript, held.t_asr_done, t_endpoint=max(held.deadline, held.t_asr_done))

    async def settle(self) -> None:
        """Every model call started so far is done (a short fragment held back for the
        endpoint is not a call: see the module's note)."""
        while busy := self._tasks - self._gated:
            self._parked = asyncio.get_running_loop().create_future()
            await asyncio.wait([*busy, self._parked], return_when=asyncio.FIRST_COMPLETED)
            self._parked = None
        await asyncio.sleep(0)

    async def drain(self) -> None:
        """End of input: finish transcriptions and send whatever is still held."""
        self._drop_spec()  # no endpoint will come for it
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._held is not None:
            held, self._held = self._held, None
            self._send(held.segment, held.transcript, held.t_asr_done, t_endpoint=max(held.deadline, held.t_asr_done))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._turn_executor is not None:
            self._turn_executor.shutdown(wait=False, cancel_futures=True)


def _complete(text: str) -> bool:
    """Does this transcript sound finished? It ends a sentence and is more than a
    word or two ("Miko." is the streamer calling the co-host, not a whole request)."""
    t = text.rstrip()
    return t.endswith(_SENTENCE_END) and not _trails_off(t) and len(t.split()) >= _MIN_WORDS


def _trails_off(text: str) -> bool:
    """Whisper's mark for speech that trails off, mid-sentence ("So the next boss is...")."""
    return text.rstrip().endswith(("...", "…"))


def _join(a: Segment, b: Segment) -> Segment:
    gap = np.zeros(max(0, int((b.t_start - a.t_end) * RATE)), dtype=np.float32)
    gap = gap[: RATE // 2]  # keep the pause short: Whisper only needs to hear a break
    return Segment(
        audio=np.concatenate([a.audio, gap, b.audio]),
        t_start=a.t_start,
        t_end=b.t_end,
        t_endpoint=b.t_endpoint,
    )
