"""Echo: the co-host's own voice coming back through the streamer's mic.

With speakers (not headphones) the mic hears the co-host. That must neither stop her
(barge-in) nor be transcribed as the streamer. The playback reference is known, so:

- at speech onset while she plays, the last 300 ms of mic audio is compared with what
  was played (normalised cross-correlation over 0-500 ms of delay): a strong match is
  her own voice, not the streamer's (a loopback cable or a loud speaker); and the mic
  must be louder than the played audio minus `echo_loss_db` (what the room takes off)
  to count as the streamer speaking over her;
- a transcript whose words are mostly the words she was saying at the time is echo.

`echo_guard = "off"` for headphone users (nothing comes back, nothing is checked).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from vtuber.audio import HEARING_RATE, resample
from vtuber.events import AudioChunk, AudioFrame, ClausePlaying, SpeechStarted, Utterance
from vtuber.text import words as text_words

WINDOW_S = 0.3  # mic audio compared at onset
MAX_DELAY_S = 0.5  # device and room delay between playing and hearing it back
KEEP_S = 6.0  # reference and mic audio kept
CORRELATION = 0.5  # normalised correlation above which the onset is the co-host herself
WORD_OVERLAP = 0.6  # share of a transcript's words that she was saying: echo


def _rms_db(x: np.ndarray) -> float:
    if not len(x):
        return -120.0
    r = float(np.sqrt(np.mean(np.square(x.astype(np.float64)))))
    return 20 * np.log10(max(r, 1e-6))


def _words(text: str) -> list[str]:
    return text_words(text, apostrophes=True, lower=True)


class EchoGuard:
    def __init__(self, mode: str = "gate", echo_loss_db: float = 6.0):
        self.enabled = mode != "off"
        self.echo_loss_db = echo_loss_db
        self._mic: deque[AudioFrame] = deque()
        self._chunks: dict[tuple[int, int], AudioChunk] = {}  # (turn, clause) -> its audio, until it plays
        self._played: deque[tuple[float, float, AudioChunk | None, str]] = deque()  # (start, end, audio, text)
        self.onsets_ignored = 0
        self.transcripts_dropped = 0

    # --- fed by the session ------------------------------------------------------------

    def mic(self, frame: AudioFrame) -> None:
        if not self.enabled:
            return
        self._mic.append(frame)
        while self._mic and self._mic[0].t < frame.t - KEEP_S:
            self._mic.popleft()

    def playing(self, ev: AudioChunk | ClausePlaying) -> None:
        if not self.enabled:
            return
        # Audio is kept as made and resampled only when an onset needs comparing (rarely):
        # nothing on the loop's hot path while she speaks.
        if isinstance(ev, AudioChunk) and len(ev.samples):
            self._chunks[(ev.turn_id, ev.clause_index)] = ev
            if len(self._chunks) > 64:
                self._chunks.pop(next(iter(self._chunks)))
        elif isinstance(ev, ClausePlaying):
            chunk = self._chunks.pop((ev.turn_id, ev.clause_index), None)
            self._played.append((ev.t, ev.t + ev.duration, chunk, ev.text))
            while self._played and self._played[0][1] < ev.t - KEEP_S:
                self._played.popleft()

    # --- decisions ---------------------------------------------------------------------

    def _playing_between(self, t0: float, t1: float) -> list[tuple[float, float, np.ndarray, str]]:
        return [p for p in self._played if p[0] < t1 and p[1] > t0]

    def is_echo_onset(self, ev: SpeechStarted) -> bool:
        """Is this speech onset the co-host's own voice (so no barge-in)?"""
        if not self.enabled:
            return False
        t = ev.t
        recent = self._playing_between(t - MAX_DELAY_S - WINDOW_S, t + WINDOW_S)
        if not recent:
            return False
        mic = self._mic_audio(t - WINDOW_S, t + 0.1)
        ref = self._reference(t - WINDOW_S - MAX_DELAY_S, t + 0.1)
        if len(mic) < HEARING_RATE * 0.1 or not len(ref):
            self.onsets_ignored += 1
            return True  # she is playing and there is too little to tell: do not cut her off
        echo = self._correlation(mic, ref) >= CORRELATION or _rms_db(mic) < _rms_db(ref) - self.echo_loss_db
        if echo:
            self.onsets_ignored += 1
        return echo

    def is_echo(self, utt: Utterance) -> bool:
        """Is this transcript mostly what the co-host was saying while it was spoken?"""
        if not self.enabled:
            return False
        words = _words(utt.text)
        if not words:
            return False
        said = set()
        for _, _, _, text in self._playing_between(utt.t_start - MAX_DELAY_S, utt.t_end + MAX_DELAY_S):
            said.update(_words(text))
        if not said:
            return False
        echo = sum(w in said for w in words) / len(words) >= WORD_OVERLAP
        if echo:
            self.transcripts_dropped += 1
        return echo

    # --- helpers -----------------------------------------------------------------------

    def _mic_audio(self, t0: float, t1: float) -> np.ndarray:
        parts = [f.samples for f in self._mic if f.t + f.duration > t0 and f.t < t1]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def _reference(self, t0: float, t1: float) -> np.ndarray:
        """What was played between t0 and t1, on one 16 kHz track (silence between clauses)."""
        n = int((t1 - t0) * HEARING_RATE)
        track = np.zeros(max(n, 0), np.float32)
        for start, _end, chunk, _text in self._playing_between(t0, t1):
            if chunk is None:
                continue
            audio = resample(chunk.samples.astype(np.float32) / 32768.0, chunk.sample_rate, HEARING_RATE)
            i = int((start - t0) * HEARING_RATE)
            a, b = max(i, 0), min(i + len(audio), n)
            if b > a:
                track[a:b] = audio[a - i : b - i]
        return track

    @staticmethod
    def _correlation(mic: np.ndarray, ref: np.ndarray) -> float:
        """Peak normalised cross-correlation of `mic` against every delay into `ref`."""
        m = mic - mic.mean()
        if len(ref) < len(m) or not np.any(m):
            return 0.0
        n = 1 << int(np.ceil(np.log2(len(ref) + len(m))))
        corr = np.fft.irfft(np.fft.rfft(ref, n) * np.conj(np.fft.rfft(m, n)), n)[: len(ref) - len(m) + 1]
        energy = np.convolve(ref.astype(np.float64) ** 2, np.ones(len(m)), "valid")
        denom = np.sqrt(np.maximum(energy, 1e-12) * float(np.dot(m, m)))
        return float(np.max(np.abs(corr) / denom)) if len(denom) else 0.0
