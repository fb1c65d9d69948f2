"""Streaming voice activity detection and endpointing.

`SileroVAD` runs the Silero model that ships inside faster-whisper one 32 ms frame
at a time, carrying its recurrent state, so speech onset and end are known within
a frame of being heard. `Endpointer` turns frame probabilities into utterances:
speech starts after `min_speech_ms` of voiced frames and ends after `hangover_ms`
of silence (with hysteresis: a lower threshold keeps speech going).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

FRAME = 512  # samples at 16 kHz (32 ms), the window Silero v5/v6 expects
CONTEXT = 64
RATE = 16000


def silero_model_path() -> str:
    import faster_whisper

    return os.path.join(os.path.dirname(faster_whisper.__file__), "assets", "silero_vad_v6.onnx")


class SileroVAD:
    """Frame-by-frame Silero VAD (one thread, no spinning: it is tiny and must not steal cores)."""

    def __init__(self, path: str | None = None):
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(
            path or silero_model_path(), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        """Speech probability of one 512-sample frame."""
        x = np.concatenate([self._context, frame.astype(np.float32, copy=False)])[None, :]
        out, self._h, self._c = self.session.run(None, {"input": x, "h": self._h, "c": self._c})
        self._context = frame[-CONTEXT:].astype(np.float32, copy=True)
        return float(out.reshape(-1)[0])


@dataclass(frozen=True)
class Segment:
    """One endpointed utterance: its audio and times (session seconds)."""

    audio: np.ndarray
    t_start: float
    t_end: float
    t_endpoint: float


class Endpointer:
    """Feed (frame, t, probability); get a `Segment` when an utterance ends."""

    def __init__(
        self,
        threshold: float = 0.5,
        hangover_ms: int = 448,
        min_speech_ms: int = 200,
        max_utterance_s: float = 15.0,
        pre_roll_ms: int = 192,
    ):
        self.on = threshold
        self.off = max(threshold - 0.15, 0.05)
        self.hangover = max(1, round(hangover_ms / 32))
        self.min_speech = max(1, round(min_speech_ms / 32))
        self.max_frames = int(max_utterance_s * RATE / FRAME)
        self.pre_roll = max(0, round(pre_roll_ms / 32))
        self.reset()

    def reset(self) -> None:
        self.in_speech = False
        self._frames: list[np.ndarray] = []
        self._pre: list[tuple[np.ndarray, float]] = []
        self._silent = 0
        self._voiced = 0
        self._t_start = 0.0
        self._t_last_voiced = 0.0

    @property
    def silent_frames(self) -> int:
        """Frames of silence since the last voiced one (0 while the streamer talks)."""
        return self._silent if self.in_speech else 0

    @property
    def voiced_run(self) -> int:
        """Consecutive voiced frames counted toward a speech start (0 once in speech)."""
        return 0 if self.in_speech else self._voiced

    @property
    def onset_pending(self) -> bool:
        """Voiced frames are being counted toward a speech start."""
        return not self.in_speech and self._voiced > 0

    def snapshot(self, t_now: float) -> Segment:
        """The utterance so far, as if it ended now (for speculative ASR at a short pause)."""
        return Segment(np.concatenate(self._frames), self._t_start, self._t_last_voiced, t_now)

    def close(self, t_now: float) -> Segment | None:
        """End the utterance now (push-to-talk released), whatever the VAD says."""
        if not self.in_speech or not self._frames:
            self.reset()
            return None
        seg = Segment(np.concatenate(self._frames), self._t_start, self._t_last_voiced, t_now)
        self.reset()
        return seg

    def feed(self, frame: np.ndarray, t: float, prob: float) -> tuple[bool, Segment | None]:
        """Returns (speech_started_now, finished_segment_or_None)."""
        dur = len(frame) / RATE
        if not self.in_speech:
            self._pre.append((frame, t))
            self._pre = self._pre[-(self.pre_roll + self.min_speech) :]
            self._voiced = self._voiced + 1 if prob >= self.on else 0
            if self._voiced >= self.min_speech:
                self.in_speech = True
                self._frames = [f for f, _ in self._pre]
                self._t_start = self._pre[-self._voiced][1]
                self._t_last_voiced = t + dur
                self._silent = 0
                self._pre = []
                return True, None
            return False, None
        self._frames.append(frame)
        if prob >= self.off:
            self._silent = 0
            self._t_last_voiced = t + dur
        else:
            self._silent += 1
        if self._silent >= self.hangover or len(self._frames) >= self.max_frames:
            audio = np.concatenate(self._frames)
            seg = Segment(audio=audio, t_start=self._t_start, t_end=self._t_last_voiced, t_endpoint=t + dur)
            self.reset()
            return False, seg
        return False, None
