"""Reply audio to a sound device through sounddevice (PortAudio), imported lazily.

- `Speaker`: the device. A callback-driven output stream fed from a queue of clauses;
  it reports, from the audio callback, when each clause starts playing, when a reply's
  last sample went out, and when it ran dry inside a reply. `drop(turn_id)` removes a
  turn's audio with a 5 ms fade (no click) within one audio block.
- `SpeakerPlayback`: live playback (`vtuber run`): the speaker is what the audience
  hears, so its callbacks are the playback events (see `vtuber.outputs.playback`).
- `SpeakerOutput`: in a rehearsal, also play the replies on a device (the timeline
  and its events stay simulated); a cancelled turn is silenced too.

A device that goes away never freezes the co-host. A watchdog thread sees the stream
die (no callback for `stall_s`, or PortAudio stopped it) or, with PulseAudio, the sound
server move it to another sink; then a software clock takes the device's place: the
queued audio is consumed at the real pace and every playback event still fires, so
captions, the dock and the turns go on (captions only) while nothing is heard. Every
`retry_s` the speaker looks for its own device again (the same sink by name) and
resumes there. `on_state(state, detail)` reports "lost" and "back".
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from vtuber.clock import Clock
from vtuber.devices import PulseWatch, one_line, pulse_default, pulse_devices, stream_devices
from vtuber.errors import UserError
from vtuber.events import AudioChunk, DeviceState, PlaybackFinished, ReplyFinished, TurnCancelled
from vtuber.outputs.playback import Playback, _Reply

FADE_S = 0.005
_END = None  # marker item: the reply's last audio is before it
_WATCH_S = 0.2  # how often the watchdog looks at the stream

log = logging.getLogger("vtuber")


class _NoStatus:
    output_underflow = False


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
        on_state: Callable[[str, str], None] | None = None,
        stall_s: float = 3.0,
        retry_s: float = 1.0,
    ):
        sd = _sounddevice()
        self._sd = sd
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        try:
            sd.check_output_settings(device=device, channels=1, dtype="int16", samplerate=sample_rate)
        except (ValueError, sd.PortAudioError) as e:
            raise UserError(f"--speaker {device if device is not None else '(default)'}: {e}") from None
        self.device = device
        self.label = str(device) if device is not None else "(default)"
        self.rate = sample_rate
        self.block = block
        self._buf: deque[_Item] = deque()
        self._lock = threading.Lock()
        self._pending = 0
        self.underruns = 0
        self._in_reply: int | None = None  # turn whose audio is playing (until its end marker)
        self._dry = False
        self._fade: np.ndarray | None = None
        self.on_clause, self.on_end, self.on_dry, self.on_state = on_clause, on_end, on_dry, on_state
        self.stall_s, self.retry_s = stall_s, retry_s
        self.lost = ""  # why the device is lost ("" while playing to it)
        self.device_errors: list[str] = []
        self._latency = 0.0
        self._last_callback = time.monotonic()
        self._closing = threading.Event()
        # PulseAudio: the sink she must play to, and nothing else (None: no PulseAudio).
        name = device if isinstance(device, str) else None
        self._watch = PulseWatch.get() if name in (None, "pulse", "default") else None
        self.pulse_target = (os.environ.get("PULSE_SINK") or pulse_default("sink")) if self._watch is not None else None
        if self.pulse_target:
            self.label = f"{self.label} (sink {self.pulse_target})"
        self._seen_changes = self._watch.changes if self._watch is not None else 0
        self._ours_before: set[int] = set()
        self.stream = self._open()
        self.stream.start()
        self._watchdog = threading.Thread(target=self._watch_stream, name="speaker-watch", daemon=True)
        self._watchdog.start()

    def _open(self):
        if self._watch is not None:
            self._ours_before = {i for i, _ in stream_devices("sink-inputs")}
        # Low latency: a cut (barge-in, !skip) is heard within one block plus this buffer.
        stream = self._sd.OutputStream(
            device=self.device, channels=1, dtype="int16", samplerate=self.rate, blocksize=self.block,
            latency="low", callback=self._callback,
        )
        self._latency = float(stream.latency or 0.0)
        # A sink just (re)loaded can take seconds to wake: the first callback gets longer.
        self._last_callback = time.monotonic() + 2 * self.stall_s
        return stream

    # --- the watchdog: a lost device is replaced by a clock, then looked for again -----------

    def _watch_stream(self) -> None:
        while not self._closing.wait(_WATCH_S):
            try:
                if self.lost:
                    self._try_reopen()
                else:
                    why = self._dead()
                    if why:
                        self._lose(why)
            except Exception as e:  # noqa: BLE001 - the watchdog must outlive any device error
                log.debug("speaker watchdog: %s", e)

    def _dead(self) -> str:
        if not self.stream.active:
            return "the playback stream stopped"
        if time.monotonic() - self._last_callback > self.stall_s:
            return f"no audio callback for {self.stall_s:g} s (the playback stream died)"
        if self._watch is not None and self._watch.changes != self._seen_changes:
            self._seen_changes = self._watch.changes
            ours = [n for i, n in stream_devices("sink-inputs") if i not in self._ours_before]
            elsewhere = [n for n in ours if n != self.pulse_target]
            if elsewhere:
                return f"sink {self.pulse_target} is gone (the sound server moved her voice to {elsewhere[0]})"
        return ""

    def _lose(self, why: str) -> None:
        self.lost = why
        for step in (self.stream.abort, self.stream.close):
            try:
                step()
            except Exception:  # noqa: BLE001 - a dead stream may refuse to stop
                pass
        self._latency = 0.0
        self.device_errors.append(f"speaker lost: {self.label}: {why}")
        log.warning("speaker %s lost: %s; captions only until it is back", self.label, why)
        if self.on_state:
            self.on_state("lost", f"{self.label}: {why}; captions only until it is back")
        self._pump = threading.Thread(target=self._pump_clock, name="speaker-clock", daemon=True)
        self._pump.start()
        self._next_retry = time.monotonic() + self.retry_s

    def _pump_clock(self) -> None:
        """The device's place while it is gone: the callback, on time, into nothing."""
        out = np.zeros((self.block, 1), dtype=np.int16)
        period = self.block / self.rate
        due = time.monotonic()
        while self.lost and not self._closing.is_set():
            self._callback(out, self.block, None, _NoStatus)
            due += period
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                due = time.monotonic()  # late (a stalled machine): carry on from now

    def _try_reopen(self) -> None:
        if time.monotonic() < self._next_retry:
            return
        self._next_retry = time.monotonic() + self.retry_s
        if self.pulse_target is not None and self.pulse_target not in pulse_devices("sinks").values():
            return  # not back yet: never play to another sink instead
        try:
            stream = self._open()
        except (ValueError, self._sd.PortAudioError) as e:
            line = f"speaker {self.label}: still not available ({one_line(e)})"
            if self.device_errors[-1:] != [line]:
                self.device_errors.append(line)
            return
        with self._lock:  # the clock stops; the device takes over from the next block
            self.lost = ""
        self._pump.join(1.0)
        self.stream = stream
        stream.start()
        if self._watch is not None:
            self._seen_changes = self._watch.changes
        self.device_errors.append(f"speaker back: {self.label}")
        log.warning("speaker %s is back", self.label)
        if self.on_state:
            self.on_state("back", f"{self.label}: playing again")

    def _callback(self, outdata, frames, _time, status) -> None:
        self._last_callback = time.monotonic()
        if status.output_underflow:
            self.underruns += 1
        out = outdata[:, 0]
        filled = 0
        latency = self._latency
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
        return self._latency

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
        self._closing.set()
        if self.lost:
            return  # the stream is closed already; the clock stops with `_closing`
        for step in (self.stream.stop, self.stream.close):
            try:
                step()
            except Exception:  # noqa: BLE001 - the device went away as we closed
                pass


class SpeakerPlayback(Playback):
    """Live playback: the events are the device's (thread-safe hand-off to the loop)."""

    def __init__(self, clock: Clock, emit: Callable[[object], None], device, sample_rate: int, block: int = 256):
        super().__init__(clock, emit)
        self._loop = None
        self.speaker = Speaker(
            device, sample_rate, block, on_clause=self._on_clause, on_end=self._on_end, on_dry=self._on_dry,
            on_state=self._on_state,
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

    def _on_state(self, state: str, detail: str) -> None:
        self._post(self.emit, DeviceState("speaker", state, detail, self.clock.now()))

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
