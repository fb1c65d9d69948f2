"""Reply audio to a sound device through sounddevice (PortAudio), imported lazily.

- `Speaker`: the device. A callback-driven output stream fed from a queue of clauses;
  it reports, from the audio callback, when each clause starts playing, when a reply's
  last sample went out, and when it ran dry inside a reply. `drop(turn_id)` removes a
  turn's audio with a 5 ms fade (no click) within one audio block.
- `SpeakerPlayback`: live playback (`vtuber run`): the speaker is what the audience
  hears, so its callbacks are the playback events (see `vtuber.outputs.playback`).
- `SpeakerOutput`: in a rehearsal, also play the replies on a device (the timeline
  and its events stay simulated); a cancelled turn is silenced too.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from vtuber.clock import Clock
from vtuber.errors import UserError
from vtuber.events import AudioChunk, PlaybackFinished, ReplyFinished, TurnCancelled
from vtuber.outputs.playback import Playback, _Reply

FADE_S = 0.005
_END = None  # marker item: the reply's last audio is before it


def _sounddevice():
    try:
        import sounddevice
    except ImportError:
        raise UserError("--speaker needs sounddevice: pip install 'vtuber[speaker]'") from None
    except OSError as e:  # PortAudio library missing
        raise UserError(f"--speaker needs the PortAudio library (Debian: apt install libportaudio2): {e}") from None
    return sounddevice


class _Item:
    __slots__ = ("turn_id", "index", "samples", "pos")

    def __init__(self, turn_id: int, index: int, samples: np.ndarray | None):
        self.turn_id, self.index, self.samples, self.pos = turn_id, index, samples, 0


class Speaker:
    """A sound device playing queued clauses; counts underruns.

    `on_clause(turn_id, index, delay_s, duration_s)`, `on_end(turn_id, delay_s)` and
    `on_dry(turn_id)` are called from the audio thread; `delay_s` is how far in the
    future the sample reaches the ear (position in this block plus the device latency)."""

    def __init__(
        self,
        device: str | int | None,
        sample_rate: int,
        block: int = 1024,
        on_clause: Callable[[int, int, float, float], None] | None = None,
        on_end: Callable[[int, float], None] | None = None,
        on_dry: Callable[[int], None] | None = None,
    ):
        sd = _sounddevice()
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        try:
            sd.check_output_settings(device=device, channels=1, dtype="int16", samplerate=sample_rate)
        except (ValueError, sd.PortAudioError) as e:
            raise UserError(f"--speaker {device if device is not None else '(default)'}: {e}") from None
        self.rate = sample_rate
        self._buf: deque[_Item] = deque()
        self._lock = threading.Lock()
        self._pending = 0
        self.underruns = 0
        self._in_reply: int | None = None  # turn whose audio is playing (until its end marker)
        self._dry = False
        self._fade: np.ndarray | None = None
        self.on_clause, self.on_end, self.on_dry = on_clause, on_end, on_dry
        # Low latency: a cut (barge-in, !skip) is heard within one block plus this buffer.
        self.stream = sd.OutputStream(
            device=device, channels=1, dtype="int16", samplerate=sample_rate, blocksize=block,
            latency="low", callback=self._callback,
        )
        self.stream.start()

    def _callback(self, outdata, frames, _time, status) -> None:
        if status.output_underflow:
            self.underruns += 1
        out = outdata[:, 0]
        filled = 0
        latency = float(self.stream.latency or 0.0)
        with self._lock:
            if self._fade is not None:
                n = min(frames, len(self._fade))
                out[:n] = self._fade[:n]
                filled = n
                self._fade = None
            while filled < frames and self._buf:
                item = self._buf[0]
                delay = filled / self.rate + latency
                if item.samples is None:  # the reply's end marker
                    self._buf.popleft()
                    self._in_reply = None
                    if self.on_end:
                        self.on_end(item.turn_id, delay)
                    continue
                if item.pos == 0:
                    self._in_reply, self._dry = item.turn_id, False
                    if self.on_clause:
                        self.on_clause(item.turn_id, item.index, delay, len(item.samples) / self.rate)
                n = min(frames - filled, len(item.samples) - item.pos)
                out[filled : filled + n] = item.samples[item.pos : item.pos + n]
                item.pos += n
                filled += n
                self._pending -= n
                if item.pos >= len(item.samples):
                    self._buf.popleft()
            if filled < frames and self._in_reply is not None and not self._dry:
                self._dry = True  # inside a reply and nothing to play: audible silence
                if self.on_dry:
                    self.on_dry(self._in_reply)
        out[filled:] = 0

    def queue(self, turn_id: int, index: int, samples: np.ndarray) -> None:
        with self._lock:
            self._buf.append(_Item(turn_id, index, samples))
            self._pending += len(samples)

    def end_of_reply(self, turn_id: int) -> None:
        with self._lock:
            self._buf.append(_Item(turn_id, -1, _END))

    def drop(self, turn_id: int) -> None:
        """Remove the turn's audio; what is playing fades out over 5 ms."""
        with self._lock:
            head = self._buf[0] if self._buf else None
            if head is not None and head.turn_id == turn_id and head.samples is not None and head.pos > 0:
                rest = head.samples[head.pos : head.pos + int(self.rate * FADE_S)].astype(np.float32)
                self._fade = (rest * np.linspace(1.0, 0.0, len(rest), dtype=np.float32)).astype(np.int16)
            kept = deque(i for i in self._buf if i.turn_id != turn_id)
            self._pending = sum(len(i.samples) - i.pos for i in kept if i.samples is not None)
            self._buf = kept
            if self._in_reply == turn_id:
                self._in_reply = None

    def trim(self, turn_id: int) -> float | None:
        """Keep only the clause of the turn now playing, then its end marker: seconds
        until that clause is over (None when none of the turn's audio is playing)."""
        with self._lock:
            head = self._buf[0] if self._buf else None
            if head is None or head.turn_id != turn_id or head.samples is None or head.pos == 0:
                return None
            rest = deque(i for i in list(self._buf)[1:] if i.turn_id != turn_id)
            self._buf = deque([head, _Item(turn_id, -1, _END), *rest])
            self._pending = sum(len(i.samples) - i.pos for i in self._buf if i.samples is not None)
            return (len(head.samples) - head.pos) / self.rate + float(self.stream.latency or 0.0)

    @property
    def pending_s(self) -> float:
        return max(self._pending, 0) / self.rate

    @property
    def latency_s(self) -> float:
        return float(self.stream.latency or 0.0)

    def close(self, drain: bool = True) -> None:
        """Stop the stream; by default first let queued audio finish playing."""
        if drain:
            deadline = time.monotonic() + self.pending_s + 2.0
            while self._pending > 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(min(0.3, self.latency_s + 0.1))  # the device's own buffer
        else:
            with self._lock:
                self._buf.clear()
                self._pending = 0
            time.sleep(min(0.1, self.latency_s))
        self.stream.stop()
        self.stream.close()


class SpeakerPlayback(Playback):
    """Live playback: the events are the device's (thread-safe hand-off to the loop)."""

    def __init__(self, clock: Clock, emit: Callable[[object], None], device, sample_rate: int, block: int = 256):
        super().__init__(clock, emit)
        self._loop = None
        self.speaker = Speaker(
            device, sample_rate, block, on_clause=self._on_clause, on_end=self._on_end, on_dry=self._on_dry
        )

    def start(self) -> None:
        import asyncio

        self._loop = asyncio.get_running_loop()

    def _post(self, fn, *args) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_clause(self, turn_id: int, index: int, delay: float, duration: float) -> None:
        t = self.clock.now() + delay
        self._post(self._clause_started, turn_id, index, t, duration)

    def _on_end(self, turn_id: int, delay: float) -> None:
        self._post(self._reply_ended, turn_id, self.clock.now() + delay)

    def _on_dry(self, turn_id: int) -> None:
        self._post(self._underrun, turn_id, self.clock.now(), 0.0)

    def _queue_audio(self, ev: AudioChunk) -> None:
        self.speaker.queue(ev.turn_id, ev.clause_index, ev.samples)

    def _all_queued(self, r: _Reply) -> None:
        self.speaker.end_of_reply(r.turn_id)

    def _drop_audio(self, turn_id: int) -> None:
        self.speaker.drop(turn_id)

    def _trim_audio(self, turn_id: int) -> float | None:
        left = self.speaker.trim(turn_id)
        return None if left is None else self.clock.now() + left

    def busy_until(self) -> float:
        pending = self.speaker.pending_s
        return self.clock.now() + pending + (self.speaker.latency_s if pending > 0 else 0.0)

    def close(self, drain: bool = True) -> None:
        self.speaker.close(drain)


class SpeakerOutput:
    """Rehearsal: also play the replies on a device, as they become ready."""

    def __init__(self, device: str | int | None, sample_rate: int, block: int = 1024):
        self.speaker = Speaker(device, sample_rate, block)

    def __call__(self, ev: object) -> None:
        if isinstance(ev, AudioChunk) and len(ev.samples):
            self.speaker.queue(ev.turn_id, ev.clause_index, ev.samples)
        elif isinstance(ev, ReplyFinished):
            self.speaker.end_of_reply(ev.turn_id)
        elif isinstance(ev, TurnCancelled) or (isinstance(ev, PlaybackFinished) and ev.cut_short):
            self.speaker.drop(ev.turn_id)

    def close(self, drain: bool = True) -> None:
        self.speaker.close(drain)
