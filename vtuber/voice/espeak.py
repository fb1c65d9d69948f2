"""A fallback voice: espeak-ng (Debian `espeak-ng`) for a language no Piper voice is installed for.

Clearly a fallback: espeak-ng is a formant synthesizer, robotic but intelligible, with
voices for about a hundred languages (Korean and Japanese included), and it is small
and fast. It is used only for a language the co-host speaks that has no Piper voice
and no Wyoming TTS server, and every report names it as `espeak-ng (fallback)`.

One `espeak-ng --stdout` process a clause: a clause is a few words, the process starts
in a few milliseconds, and nothing stays loaded. Its audio is resampled to the rate of
the voice stage (the main voice's), so the recorder and the speaker see one stream.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np

from vtuber.audio import resample
from vtuber.errors import UserError

ESPEAK_TIMEOUT_S = 10.0  # a clause is a few words; a stuck process must not stall the voice stage
ESPEAK_RATE = 22050  # espeak-ng's output rate
LABEL = "espeak-ng (fallback)"


def espeak_binary() -> str | None:
    """The espeak-ng program on PATH (or plain espeak), or None."""
    return shutil.which("espeak-ng") or shutil.which("espeak")


def wav_pcm(data: bytes) -> tuple[np.ndarray, int]:
    """The int16 samples and rate of a WAV that espeak-ng wrote to a pipe (its header's
    sizes are placeholders there, so the data chunk runs to the end of the stream)."""
    at = data.find(b"data", 12)
    if not data.startswith(b"RIFF") or data[12:16] != b"fmt " or at < 0:
        raise RuntimeError("espeak-ng wrote no WAV")
    rate = int.from_bytes(data[24:28], "little") or ESPEAK_RATE
    pcm = data[at + 8 :]
    return np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").copy(), rate


class EspeakTTS:
    """Speaks one language with espeak-ng; the same face as `PiperTTS` (`synthesize`,
    `sample_rate`, `warm`)."""

    label = LABEL

    def __init__(self, language: str, sample_rate: int = ESPEAK_RATE, words_per_minute: int = 150):
        binary = espeak_binary()
        if binary is None:
            raise UserError(
                f"no voice for language '{language}': install a Piper voice for it (voice.models), "
                "or espeak-ng (Debian: apt-get install espeak-ng) for a robotic fallback"
            )
        self.binary = binary
        self.language = language
        self.sample_rate = int(sample_rate)
        self.words_per_minute = int(words_per_minute)
        probe = subprocess.run([binary, "--voices=" + language], capture_output=True, text=True, timeout=ESPEAK_TIMEOUT_S)
        if len(probe.stdout.strip().splitlines()) < 2:
            raise UserError(f"espeak-ng has no voice for language '{language}' (espeak-ng --voices lists them)")

    def synthesize(self, text: str) -> np.ndarray:
        """Blocking: int16 mono samples at `sample_rate` (empty for no text)."""
        text = " ".join(text.split())
        if not text:
            return np.zeros(0, dtype=np.int16)
        # The text goes in on stdin, never as an argument: a clause starting with "-" is not an option.
        done = subprocess.run(
            [self.binary, "-v", self.language, "-s", str(self.words_per_minute), "--stdout"],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=ESPEAK_TIMEOUT_S,
        )
        if done.returncode != 0:
            raise RuntimeError(f"espeak-ng failed ({done.stderr.decode(errors='replace').strip()[:200]})")
        samples, rate = wav_pcm(done.stdout)
        return resample(samples, rate, self.sample_rate)

    def warm(self) -> None:
        self.synthesize("1")
