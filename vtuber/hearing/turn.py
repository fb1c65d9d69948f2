"""End of turn by meaning: has the streamer finished what they were saying?

Silence alone cannot tell "Okay chat, so the next boss is..." (a breath, more to come)
from "What do you think, Miko?" (done, answer now). `SmartTurn` runs Smart Turn v3.2, an
8.7 MB ONNX model (BSD-2) that ships inside the `pipecat-ai` wheel (installed with
`pip install --no-deps`, like the other model packages): it hears the last 8 seconds of
the streamer's voice (words and intonation) and gives the probability that the turn is
complete. Hearing asks it at the first short pause: complete -> the utterance goes out at
once; incomplete -> the endpoint waits through the pause (up to `hearing.turn_wait_ms`).

The model takes Whisper-style log-mel features of an 8 s window (80 mel bands, 25 ms
windows every 10 ms, waveform normalised first, the audio right-aligned in the window);
they are computed here with numpy.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

RATE = 16000
WINDOW_S = 8  # the model hears this much: the end of the utterance, padded at the front
_N_FFT = 400  # 25 ms
_HOP = 160  # 10 ms
_N_MELS = 80
MODEL_RELATIVE = "audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
INSTALL_HINT = "pip install --no-deps 'pipecat-ai>=1.14' (make install does it)"


def smart_turn_model_path() -> Path | None:
    """The Smart Turn v3.2 ONNX file inside the installed pipecat-ai wheel (never imported), or None."""
    spec = importlib.util.find_spec("pipecat")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_RELATIVE
    return path if path.is_file() else None


def _slaney_mel(hz: np.ndarray) -> np.ndarray:
    # Linear below 1 kHz (200/3 Hz a mel), logarithmic above: the scale Whisper's bands use.
    hz = np.asarray(hz, dtype=np.float64)
    step = 27.0 / np.log(6.4)
    return np.where(hz < 1000.0, hz * 3.0 / 200.0, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) * step)


def _slaney_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    step = np.log(6.4) / 27.0
    return np.where(mel < 15.0, mel * 200.0 / 3.0, 1000.0 * np.exp((mel - 15.0) * step))


def mel_filterbank(n_mels: int = _N_MELS, n_fft: int = _N_FFT, rate: int = RATE) -> np.ndarray:
    """Triangular filters, each scaled to unit area (shape: n_mels x n_fft//2+1)."""
    edges = _slaney_hz(np.linspace(_slaney_mel(0.0), _slaney_mel(rate / 2), n_mels + 2))
    bins = np.linspace(0.0, rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lo) / (mid - lo)
    falling = (hi - bins[None, :]) / (hi - mid)
    tri = np.clip(np.minimum(rising, falling), 0.0, None)
    return tri * (2.0 / (hi - lo))


_FILTERS = mel_filterbank()
_HANN = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_N_FFT) / _N_FFT)  # periodic


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Features of the last WINDOW_S seconds of 16 kHz audio: float32, (80, 800)."""
    n = WINDOW_S * RATE
    x = np.asarray(audio, dtype=np.float32).reshape(-1)[-n:]
    x = np.concatenate([np.zeros(n - len(x), np.float32), x])  # right-aligned: the end is what matters
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    half = _N_FFT // 2
    padded = np.pad(x.astype(np.float64), (half, half), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP][:-1]  # 800 frames
    power = np.abs(np.fft.rfft(frames * _HANN, axis=1)) ** 2
    mel = np.log10(np.maximum(power @ _FILTERS.T, 1e-10)).T
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).astype(np.float32)


class SmartTurn:
    """Smart Turn v3.2 on onnxruntime: `probability(audio)` that the streamer's turn is over.

    One explicit intra-op thread by default and spinning off: it runs between the
    streamer's words, on cores the LLM and Piper share (about 30-60 ms a call on one core).
    """

    def __init__(self, path: str | Path | None = None, threads: int = 1, threshold: float = 0.5):
        import onnxruntime

        model = Path(path) if path else smart_turn_model_path()
        if model is None or not model.is_file():
            from vtuber.errors import UserError

            raise UserError(f"Smart Turn model not found ({path or 'pipecat-ai'}): {INSTALL_HINT}")
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        # No arena: its peak would stay resident between calls (see the memory notes in the README);
        # no memory pattern or pre-packed weights either (like Piper's: 71 -> 63 MiB peak, measured).
        opts.enable_cpu_mem_arena = False
        opts.enable_mem_pattern = False
        opts.add_session_config_entry("session.disable_prepacking", "1")
        opts.log_severity_level = 3
        self.path = model
        self.threshold = threshold
        self.session = onnxruntime.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name

    def probability(self, audio: np.ndarray) -> float:
        """How sure the model is that the turn is complete (0..1), from 16 kHz float audio."""
        out = self.session.run(None, {self._input: log_mel(audio)[None]})[0]
        return float(np.asarray(out).reshape(-1)[0])

    def complete(self, audio: np.ndarray) -> bool:
        return self.probability(audio) >= self.threshold

    def warm(self) -> None:
        self.probability(np.zeros(RATE, np.float32))


def load_turn_detector(mode: str, threads: int = 1) -> SmartTurn | None:
    """The turn detector `hearing.turn_detector` asks for: "smart_turn" (an error when the
    model is not installed), "auto" (Smart Turn when installed, else None), "text" (None:
    the transcript's punctuation decides)."""
    if mode == "text":
        return None
    if smart_turn_model_path() is None:
        if mode == "smart_turn":
            from vtuber.errors import UserError

            raise UserError(f"hearing.turn_detector = smart_turn, but the model is not installed: {INSTALL_HINT}")
        import logging

        logging.getLogger("vtuber.hearing").info("Smart Turn not installed: end of turn by punctuation (%s)", INSTALL_HINT)
        return None
    return SmartTurn(threads=threads)
