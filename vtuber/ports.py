"""The three service ports: speech to text, the language model, text to speech.

The pipeline talks to these protocols, never to a backend class. Every backend is one
provider behind its port (faster-whisper and Wyoming ASR behind `SpeechToText`;
llama.cpp, ctransformers and OpenAI-compatible servers behind `LanguageModel`; Piper
and Wyoming TTS behind `TextToSpeech`), made by name or URI in `vtuber.services`.

All calls are blocking: the stages run them on their own worker threads with explicit
thread counts, never on the event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Transcript:
    """One utterance as the recogniser heard it, with the evidence to judge it by.

    The numbers are None when the recogniser gave no evidence (a server that returns
    text only, or Whisper with no segment at all: too short, or nothing decoded). Over
    several segments (audio past one 30 s window) `no_speech_prob` and `avg_logprob` are
    averaged, weighted by duration and by token count.
    """

    text: str
    no_speech_prob: float | None = None  # probability that the window holds no speech
    avg_logprob: float | None = None  # mean log probability of the decoded tokens (0 = certain)
    compression_ratio: float | None = None  # highest over segments; high = repetitive text
    duration_s: float = 0.0  # audio length


@runtime_checkable
class SpeechToText(Protocol):
    """Hears one endpointed utterance (16 kHz mono float32) at a time.

    `prompt` and `names` bias recognition toward the persona's and the streamer's names;
    the hearing stage and a persona switch set them. A recogniser may also say, as
    `slow_under_s`, under how many seconds of audio it is at its slowest and largest
    (Whisper's whole 30 s window): the hearing stage spares it such fragments where it can."""

    prompt: str
    names: list[str]

    def hear(self, audio: np.ndarray) -> Transcript:
        """The text with whatever evidence the recogniser gives (see `Transcript`)."""

    def transcribe(self, audio: np.ndarray) -> str:
        """The text alone, windows the recogniser calls silent left out."""

    def warm(self) -> None:
        """Run once so the first utterance pays no first-call costs."""


@runtime_checkable
class LanguageModel(Protocol):
    """A chat model that streams its answer piece by piece (blocking generator).

    `cancel` stops a generation: checked before the first piece and between pieces. The
    mind clears it when a turn starts (never `stream` itself: an early cancel must win)."""

    name: str
    cancel: threading.Event

    def warm(self, prefix: list[dict]) -> None:
        """Prefill the persona prefix (system prompt + examples) so the first turn is fast."""

    def stream(self, messages: list[dict], max_tokens: int) -> Iterator[str]:
        """Blocking generator of answer text (thinking taken out); stops early on `cancel`."""

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in this model (to keep prompts inside the context)."""

    def close(self) -> None:
        """Free the model (and its thread)."""


@runtime_checkable
class TextToSpeech(Protocol):
    """Speaks one clause at a time: int16 mono samples at `sample_rate`."""

    sample_rate: int

    def synthesize(self, text: str) -> np.ndarray:
        """Blocking: the clause's samples (an empty array when there is nothing to say)."""

    def warm(self) -> None:
        """Run once so the first clause pays no first-call costs."""
