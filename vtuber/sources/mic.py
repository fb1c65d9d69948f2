"""The streamer's microphone, live: a PortAudio input stream (sounddevice) turned into `AudioFrame`s.

Audio is normalised once, in the audio callback: channels are averaged to mono and the
stream is opened at 16 kHz wherever the device (or the sound server behind it) accepts
that rate, so PulseAudio, PipeWire, CoreAudio or ALSA's plug layer do the rate
conversion with their own resamplers. Only a device that refuses 16 kHz (a raw ALSA
`hw:` device, some Windows host APIs) is opened at its default rate and resampled
here, by `StreamResampler` (a polyphase windowed-sinc filter that carries its state
across blocks; the FFT `vtuber.audio.resample` is for whole files and would click at
every block edge).

The callback copies each block, converts it, cuts it into 512-sample frames (32 ms,
the Silero VAD window) and puts them in a bounded buffer; the event loop is woken with
`loop.call_soon_threadsafe` (at most one wake-up pending, so the loop's own queue stays
bounded too). When the loop falls behind by more than `max_buffer_s`, the OLDEST frames
are dropped and counted in `dropped_frames`: after a stall, hearing resumes with what
the streamer is saying now. Input overflows that PortAudio reports (audio it lost
before the callback ran) are counted in `overflows`.

Frame times: a frame's `t` is the session time (`clock.now()`) of its first sample,
estimated in the callback as the block's arrival time minus the duration of the audio
that arrived after that sample (and minus the resampler's delay, if any). That
estimate is late by however long the callback was delayed, so the source keeps the
*lower envelope*: `t = offset + samples_so_far / 16000`, where `offset` is the
smallest (arrival - samples) seen, raised again only when a whole second of arrivals
agrees it was too early (audio went missing, or the device's clock runs slower than
ours). The input latency of the device and sound server before PortAudio hands us the
block (`input_latency_s`, as PortAudio reports it) is not subtracted: `t` is when
the sample reached this process, which is what the rest of the pipeline can act on.
Frame times only ever increase.

A lost device (unplugged, its stream killed, or moved by PulseAudio to another source)
never ends the session and never goes on silently from somewhere else: the stream is
closed, `DeviceState("mic", "lost", ...)` says so (console, dock, report), and every
`retry_s` the source looks for its own device again (with PulseAudio: the same source
by name, never whichever one is left, above all not the monitor of her own output);
when it is back, recording resumes by itself and `DeviceState("mic", "back", ...)` says so.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from math import gcd

import numpy as np

from vtuber.audio import HEARING_RATE
from vtuber.clock import Clock
from vtuber.devices import PulseWatch, import_sounddevice, one_line, pulse_default, pulse_devices, pulse_sources, stream_devices
from vtuber.errors import UserError, quote
from vtuber.events import AudioFrame, DeviceState

FRAME = 512  # 32 ms at 16 kHz: the Silero VAD window
_LEVEL_FRAMES = 8  # level_db is the RMS of the last 256 ms
_SILENCE_DB = -120.0  # level_db of digital silence (and before any audio)
_REANCHOR_S = 1.0  # how long arrivals must agree before the time offset moves later
_TICK_S = 0.5  # how often the event loop checks the stream is alive when no audio comes

log = logging.getLogger("vtuber.mic")
_env_lock = threading.Lock()  # PULSE_SOURCE is process-wide: one stream opens at a time


class StreamResampler:
    """Rational-ratio resampling of a stream in blocks of any size, with state carried across blocks.

    A polyphase FIR (Kaiser-windowed sinc, about 80 dB stop band, pass band to 92% of the
    lower Nyquist frequency): `resampler(block)` returns the output samples that block
    completes. Cutting the input differently gives the same output. `delay_s` is the
    filter's delay: output sample k is input time k / dst_rate - delay_s.
    """

    def __init__(self, src_rate: int, dst_rate: int, zero_crossings: int = 16, rolloff: float = 0.92):
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError("sample rates must be positive")
        g = gcd(int(src_rate), int(dst_rate))
        self.up, self.down = int(dst_rate) // g, int(src_rate) // g
        self.src_rate, self.dst_rate = int(src_rate), int(dst_rate)
        taps = max(2, math.ceil(2 * zero_crossings * max(1.0, self.down / self.up)))  # input samples per output
        n = taps * self.up
        cutoff = rolloff * 0.5 / max(self.up, self.down)  # cycles per sample of the upsampled signal
        m = np.arange(n) - (n - 1) / 2
        h = 2 * cutoff * np.sinc(2 * cutoff * m) * np.kaiser(n, 8.6)
        h *= self.up / h.sum()  # unit gain at DC for every phase
        # phase p, tap j -> h[p + j * up]: output k uses inputs i0, i0 - 1, ... with i0 = k * down // up.
        self._bank = h.reshape(taps, self.up).T.astype(np.float32).copy()
        self.taps = taps
        self.delay_s = (n - 1) / 2 / (self.up * self.src_rate)
        self._hist = np.zeros(taps - 1, dtype=np.float32)
        self._base = -(taps - 1)  # input index of _hist[0]; the stream starts after taps - 1 zeros
        self._k = 0  # next output index

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.up == self.down:
            return np.asarray(x, dtype=np.float32)
        hist = np.concatenate([self._hist, np.asarray(x, dtype=np.float32)])
        last = self._base + len(hist) - 1  # index of the newest input sample
        k_end = ((last + 1) * self.up - 1) // self.down + 1  # outputs whose newest input is here
        if k_end <= self._k:
            self._hist = hist
            return np.zeros(0, dtype=np.float32)
        k = np.arange(self._k, k_end, dtype=np.int64)
        pos = k * self.down
        i0, phase = pos // self.up, pos % self.up
        idx = (i0 - self._base)[:, None] - np.arange(self.taps)[None, :]
        y = np.einsum("ij,ij->i", self._bank[phase], hist[idx])
        self._k = k_end
        keep_from = (k_end * self.down) // self.up - (self.taps - 1)  # the oldest input the next output needs
        cut = max(0, keep_from - self._base)
        self._hist = hist[cut:]
        self._base += cut
        return y.astype(np.float32, copy=False)


class FrameHandoff:
    """The audio thread's side of the microphone: blocks in, timed 16 kHz frames out, bounded.

    `push(block, overflow)` runs in PortAudio's callback thread: it copies and converts
    the block (`block` is frames x channels at `in_rate`), cuts 512-sample frames, times
    them (see the module notes), appends them to a buffer of at most `max_frames` frames
    (dropping the oldest, counted in `dropped_frames`) and calls `wake()` when the buffer
    was empty of news. `take()` runs on the event loop: every buffered
    `(samples, t, arrival)` in order, and re-arms the wake-up.
    """

    def __init__(
        self, in_rate: int, channels: int, max_frames: int, now: Callable[[], float], wake: Callable[[], None]
    ):
        self.in_rate = int(in_rate)
        self.channels = int(channels)
        self.max_frames = max(1, int(max_frames))
        self._now = now
        self._wake = wake
        self._resampler = StreamResampler(self.in_rate, HEARING_RATE) if self.in_rate != HEARING_RATE else None
        self._delay_s = self._resampler.delay_s if self._resampler else 0.0
        self._lock = threading.Lock()
        self._frames: deque[tuple[np.ndarray, float, float]] = deque()
        self._wake_pending = False
        self._carry = np.zeros(0, dtype=np.float32)
        self._samples = 0  # 16 kHz samples converted so far (the next one's index)
        self._emitted = 0  # index of the first sample of the next frame
        self._offset: float | None = None  # session time of sample 0, lower envelope
        self._window_min = math.inf
        self._window_start = 0.0
        self._last_t = -math.inf
        self.dropped_frames = 0
        self.overflows = 0
        self.blocks = 0
        self.last_arrival: float | None = None

    def push(self, block: np.ndarray, overflow: bool = False) -> None:
        arrival = self._now()
        x = np.asarray(block, dtype=np.float32)
        if x.ndim == 2:
            # Averaging copies; a single column is copied explicitly: PortAudio reuses its buffer.
            x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0].copy()
        else:
            x = x.copy()
        if self._resampler is not None:
            x = self._resampler(x)
        self._samples += len(x)
        est = arrival - self._samples / HEARING_RATE - self._delay_s
        if self._offset is None or overflow:
            # Start, or PortAudio lost audio: what arrived is the best estimate there is.
            self._offset, self._window_min, self._window_start = est, est, arrival
        else:
            self._offset = min(self._offset, est)
            self._window_min = min(self._window_min, est)
            if arrival - self._window_start >= _REANCHOR_S:
                # Every arrival of the last second was later than the envelope: move it.
                self._offset = self._window_min
                self._window_min, self._window_start = math.inf, arrival
        carry = np.concatenate([self._carry, x]) if len(self._carry) else x
        n_whole = len(carry) // FRAME * FRAME
        out = []
        for i in range(0, n_whole, FRAME):
            t = self._offset + self._emitted / HEARING_RATE
            t = max(t, self._last_t + 1e-6)  # the envelope may step back by a little: t never does
            self._last_t = t
            out.append((carry[i : i + FRAME], t, arrival))
            self._emitted += FRAME
        self._carry = carry[n_whole:].copy() if n_whole < len(carry) else np.zeros(0, dtype=np.float32)
        wake = False
        with self._lock:
            self.blocks += 1
            self.last_arrival = arrival
            if overflow:
                self.overflows += 1
            for item in out:
                if len(self._frames) >= self.max_frames:
                    self._frames.popleft()
                    self.dropped_frames += 1
                self._frames.append(item)
            if self._frames and not self._wake_pending:
                self._wake_pending = wake = True
        if wake:
            self._wake()

    def take(self) -> list[tuple[np.ndarray, float, float]]:
        with self._lock:
            items = list(self._frames)
            self._frames.clear()
            self._wake_pending = False
        return items

    @property
    def buffered_frames(self) -> int:
        return len(self._frames)


class MicSource:
    """The streamer's microphone as a source: 32 ms `AudioFrame`s of 16 kHz mono, live.

    `device` is a PortAudio device (a name, part of one, or an index; None for the
    default input) or a PulseAudio source name (see `vtuber.devices.pulse_sources`),
    recorded through PortAudio's `pulse` device. The device is checked and opened
    here, so a wrong one is a one-line `UserError` before the session starts; `run`
    starts the stream and emits frames until cancelled, then closes it.

    For a live console: `state` ("opened", "starting" until the first audio,
    "listening", "stalled" when no audio came for `stall_s`, "lost: why" while the device
    is gone, "closed"), `level_db`
    (RMS of the last 256 ms, dBFS), `dropped_frames`, `overflows`, and `handoff_ms`
    (callback to event loop, recent average and worst).
    """

    def __init__(
        self,
        device: str | int | None = None,
        *,
        max_buffer_s: float = 2.0,
        latency: str | float = "low",
        stall_s: float = 3.0,
        retry_s: float = 1.0,
    ):
        sd = import_sounddevice("--mic")
        self._sd = sd
        if isinstance(device, str) and device.strip().isdigit():
            device = int(device.strip())
        self.requested = device
        self.label = quote(device) if device is not None else "(default input)"
        self.stall_s = float(stall_s)
        self.max_buffer_s = float(max_buffer_s)
        pulse_source = None
        try:
            info = sd.query_devices(device, "input")
        except (ValueError, sd.PortAudioError) as e:
            pulse_source = self._pulse_source(device)
            if pulse_source is None:
                raise UserError(f"--mic {self.label}: {one_line(e)} (`vtuber devices` lists them)") from None
            info = sd.query_devices("pulse", "input")
        self.device_index = int(info["index"])
        self.device_name = pulse_source or str(info["name"])
        self.pulse_source = pulse_source
        self.sample_rate, self.channels = self._settings(info)
        self._clock: Clock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._handoff = FrameHandoff(
            self.sample_rate,
            self.channels,
            max_frames=max(1, round(self.max_buffer_s * HEARING_RATE / FRAME)),
            now=self._now,
            wake=self._wake,
        )
        self._levels: deque[float] = deque(maxlen=_LEVEL_FRAMES)
        self._handoffs: deque[float] = deque(maxlen=64)
        self.handoff_max_ms = 0.0
        self.frames_emitted = 0
        self._running = False
        self._closed = False
        self.retry_s = float(retry_s)
        self._latency = latency
        self._lost = ""  # why the device is lost ("" while recording)
        self._emit: Callable[[object], None] | None = None
        self._next_retry = 0.0
        self.device_errors: list[str] = []
        # The PulseAudio source this mic must record from, and nothing else (None: no PulseAudio).
        self._watch = PulseWatch.get() if (pulse_source or self.device_name in ("pulse", "default")) else None
        self.pulse_target = None
        if self._watch is not None:
            self.pulse_target = pulse_source or os.environ.get("PULSE_SOURCE") or pulse_default("source")
            if self.pulse_target and self.pulse_target != pulse_source:
                self.label = f"{self.label} (source {self.pulse_target})"
        self._seen_changes = self._watch.changes if self._watch is not None else 0
        self._ours_before: set[int] = set()
        self.stream = self._open()
        self.input_latency_s = float(self.stream.latency)

    def _open(self):
        """A new input stream on the device (PULSE_SOURCE names the source while it opens)."""
        sd = self._sd
        # Blocks of 32 ms at the stream's rate: one callback per VAD frame keeps the GIL
        # traffic low (PortAudio's "low" latency alone means ~470 callbacks a second on ALSA).
        block = max(1, round(FRAME * self.sample_rate / HEARING_RATE))
        source = self.pulse_target if self._watch is not None else None
        try:
            with _env_lock:
                old = os.environ.get("PULSE_SOURCE")
                if source is not None:
                    # The ALSA pulse plugin connects when the stream opens, to the source this names.
                    os.environ["PULSE_SOURCE"] = source
                try:
                    if self._watch is not None:
                        self._ours_before = {i for i, _ in stream_devices("source-outputs")}
                    stream = sd.InputStream(
                        device=self.device_index,
                        channels=self.channels,
                        samplerate=self.sample_rate,
                        dtype="float32",
                        blocksize=block,
                        latency=self._latency,
                        callback=self._callback,
                    )
                finally:
                    if source is not None:
                        if old is None:
                            os.environ.pop("PULSE_SOURCE", None)
                        else:
                            os.environ["PULSE_SOURCE"] = old
        except (ValueError, sd.PortAudioError) as e:
            raise UserError(f"--mic {self.label}: cannot open it: {one_line(e)}") from None
        return stream

    # --- opening -------------------------------------------------------------------------

    def _pulse_source(self, device: str | int | None) -> str | None:
        """`device` if it names a PulseAudio source and PortAudio has the `pulse` device to reach it."""
        if not isinstance(device, str) or not device:
            return None
        try:
            self._sd.query_devices("pulse", "input")
        except (ValueError, self._sd.PortAudioError):
            return None
        return device if device in pulse_sources() else None

    def _settings(self, info: dict) -> tuple[int, int]:
        """(rate, channels) to open: 16 kHz mono if the device takes it, else its default rate, more channels."""
        sd = self._sd
        default_rate = int(round(info["default_samplerate"])) or HEARING_RATE
        max_ch = max(1, int(info["max_input_channels"]))
        rates = [HEARING_RATE] + ([default_rate] if default_rate != HEARING_RATE else [])
        channel_choices = [c for c in dict.fromkeys((1, min(2, max_ch), max_ch)) if c <= max_ch]
        first_error = None
        for channels in channel_choices:
            for rate in rates:
                try:
                    sd.check_input_settings(
                        device=int(info["index"]), channels=channels, dtype="float32", samplerate=rate
                    )
                    return rate, channels
                except (ValueError, sd.PortAudioError) as e:
                    first_error = first_error or e
        raise UserError(f"--mic {self.label}: cannot record from it: {one_line(first_error)}")

    # --- the audio thread ----------------------------------------------------------------

    def _now(self) -> float:
        return self._clock.now() if self._clock is not None else time.perf_counter()

    def _callback(self, indata, frames, _time, status) -> None:
        if self._closed:
            return
        self._handoff.push(indata, overflow=bool(status.input_overflow))

    def _wake(self) -> None:
        loop, ready = self._loop, self._ready
        if loop is None or ready is None:
            return
        try:
            loop.call_soon_threadsafe(ready.set)
        except RuntimeError:  # the loop closed while the stream was still running
            pass

    # --- the event loop ------------------------------------------------------------------

    async def run(self, clock: Clock, emit: Callable[[object], None]) -> None:
        """Emit `AudioFrame`s (512 samples, 16 kHz, `t` = session time of the first sample)
        until cancelled; the stream is closed on the way out."""
        if self._closed:
            raise RuntimeError("this MicSource was closed")
        try:
            if getattr(clock, "fast", False):
                raise UserError("--mic is live audio: it runs on the real-time clock, not --fast")
            self._clock = clock
            self._emit = emit
            self._loop = asyncio.get_running_loop()
            self._ready = asyncio.Event()
            try:
                self.stream.start()
            except self._sd.PortAudioError as e:
                raise UserError(f"--mic {self.label}: cannot start recording: {one_line(e)}") from None
            self._running = True
            # A plain wait on the event, woken by the callback or by a periodic tick that checks
            # the stream is still alive. (asyncio.wait_for around it would be simpler, but on
            # Python 3.11 it can swallow a cancel that lands as the event is set, and the source
            # would never stop.)
            self._tick = self._loop.call_later(_TICK_S, self._on_tick)
            while True:
                await self._ready.wait()
                self._ready.clear()
                if self._lost:
                    await self._try_reopen()
                    continue
                if self._watch is not None and self._watch.changes != self._seen_changes:
                    # A device changed: look where the recording is before passing on any audio.
                    self._seen_changes = self._watch.changes
                    moved = await self._moved()
                    if moved:
                        self._lose(moved)
                        continue
                items = self._handoff.take()
                if not items and not self.stream.active:
                    self._lose("recording stopped (was the device unplugged?)")
                    continue
                for samples, t, arrival in items:
                    self._note(samples, arrival)
                    emit(AudioFrame(samples=samples, t=t, sample_rate=HEARING_RATE))
        finally:
            self._running = False
            if self._tick is not None:
                self._tick.cancel()
            self.close()

    # --- a lost device ---------------------------------------------------------------------

    async def _moved(self) -> str:
        """Why our stream is not on the mic's own source any more ("" while it is)."""
        streams = await asyncio.to_thread(stream_devices, "source-outputs")
        log.debug("mic %s: recording streams %s (before opening: %s)", self.label, streams, sorted(self._ours_before))
        ours = [(i, name) for i, name in streams if i not in self._ours_before]
        elsewhere = [name for _, name in ours if name != self.pulse_target]
        if elsewhere:
            return f"source {self.pulse_target} is gone (the sound server moved the recording to {elsewhere[0]})"
        return ""

    def _lose(self, why: str) -> None:
        """Stop recording from a device that is gone (or was swapped); look for it again later."""
        self._lost = why
        self._next_retry = time.monotonic() + self.retry_s
        self._stop_stream()
        self._handoff.take()
        self._levels.clear()
        line = f"{self.label}: {why}; waiting for it to come back"
        self.device_errors.append(f"mic lost: {line}")
        if self._emit is not None and self._clock is not None:
            self._emit(DeviceState("mic", "lost", line, self._clock.now()))

    def _stop_stream(self) -> None:
        for step in (self.stream.abort, self.stream.close):
            try:
                step()
            except Exception:  # noqa: BLE001 - the device is gone; the stream may be half dead
                pass

    async def _try_reopen(self) -> None:
        if time.monotonic() < self._next_retry:
            return
        self._next_retry = time.monotonic() + self.retry_s
        if self.pulse_target is not None:
            present = await asyncio.to_thread(pulse_devices, "sources")
            if self.pulse_target not in present.values():
                return  # not back yet: never record from another source instead
        try:
            stream = await asyncio.to_thread(self._open)
            stream.start()
        except Exception as e:  # noqa: BLE001 - looking for the device again must never end the source
            log_line = f"--mic {self.label}: still not available ({one_line(e)})"
            if self.device_errors[-1:] != [log_line]:
                self.device_errors.append(log_line)
            return
        self.stream = stream
        self._handoff = FrameHandoff(
            self.sample_rate, self.channels, self._handoff.max_frames, now=self._now, wake=self._wake
        )
        if self._watch is not None:
            self._seen_changes = self._watch.changes
        self._lost = ""
        line = f"{self.label}: recording again"
        self.device_errors.append(f"mic back: {line}")
        if self._emit is not None and self._clock is not None:
            self._emit(DeviceState("mic", "back", line, self._clock.now()))

    def _on_tick(self) -> None:
        if self._ready is not None and self._loop is not None and not self._closed:
            self._ready.set()
            self._tick = self._loop.call_later(_TICK_S, self._on_tick)

    def _note(self, samples: np.ndarray, arrival: float) -> None:
        lag_ms = (self._now() - arrival) * 1000
        self._handoffs.append(lag_ms)
        self.handoff_max_ms = max(self.handoff_max_ms, lag_ms)
        self._levels.append(float(np.mean(np.square(samples, dtype=np.float64))))
        self.frames_emitted += 1

    def close(self) -> None:
        """Stop and close the stream (idempotent). Queued audio is discarded."""
        if self._closed:
            return
        self._closed = True
        self._stop_stream()

    # --- for a live console --------------------------------------------------------------

    @property
    def state(self) -> str:
        if self._closed:
            return "closed"
        if not self._running:
            return "opened"
        if self._lost:
            return f"lost: {self._lost}"
        last = self._handoff.last_arrival
        if last is None:
            return "starting"
        return "stalled" if self._now() - last > self.stall_s else "listening"

    @property
    def level_db(self) -> float:
        """RMS of the last 256 ms in dBFS (-120 for silence or before any audio)."""
        if not self._levels:
            return _SILENCE_DB
        ms = sum(self._levels) / len(self._levels)
        return max(_SILENCE_DB, 10 * math.log10(ms)) if ms > 0 else _SILENCE_DB

    @property
    def dropped_frames(self) -> int:
        """32 ms frames dropped (oldest first) because the event loop fell `max_buffer_s` behind."""
        return self._handoff.dropped_frames

    @property
    def overflows(self) -> int:
        """Callbacks in which PortAudio reported an input overflow (audio lost before we saw it)."""
        return self._handoff.overflows

    @property
    def handoff_ms(self) -> tuple[float, float]:
        """(recent mean, worst) milliseconds from a frame's callback to its emit on the event loop."""
        if not self._handoffs:
            return (0.0, self.handoff_max_ms)
        return (sum(self._handoffs) / len(self._handoffs), self.handoff_max_ms)

    def stats(self) -> dict:
        """Everything a console line shows, in one snapshot."""
        mean, worst = self.handoff_ms
        return {
            "device": self.device_name,
            "state": self.state,
            "level_db": round(self.level_db, 1),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "frames": self.frames_emitted,
            "dropped_frames": self.dropped_frames,
            "overflows": self.overflows,
            "buffered_frames": self._handoff.buffered_frames,
            "handoff_ms": round(mean, 2),
            "handoff_max_ms": round(worst, 2),
        }
