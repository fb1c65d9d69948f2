"""Speech recognition with faster-whisper (CTranslate2, int8 on the CPU)."""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

from vtuber.errors import UserError


def _sounds(word: str) -> str:
    """A crude sound-alike key: lower case, c/ck/q -> k, ee/ea -> i, doubled letters once."""
    w = word.lower()
    for a, b in (("ck", "k"), ("c", "k"), ("q", "k"), ("ee", "i"), ("ea", "i"), ("ph", "f"), ("y", "i")):
        w = w.replace(a, b)
    return re.sub(r"(.)\1+", r"\1", w)


def correct_names(text: str, names: list[str], threshold: float = 0.74) -> str:
    """Replace words that sound like one of `names` (Whisper tiny hears "Miko" as Mico, Meeko, Nico...)."""
    keys = [(n, _sounds(n)) for n in names if len(n) >= 3 and " " not in n]
    if not keys:
        return text

    def fix(m: re.Match) -> str:
        word = m.group(0)
        w = _sounds(word)
        best, score = None, threshold
        for name, key in keys:
            if word.lower() == name.lower():
                return name
            r = SequenceMatcher(None, w, key).ratio()
            if r >= score and abs(len(w) - len(key)) <= 1:
                best, score = name, r
        return best or word

    return re.sub(r"[A-Za-z]+", fix, text)


class WhisperASR:
    """Transcribes one endpointed utterance at a time (blocking; the hearing stage runs it in a thread).

    `prompt` and `names` bias decoding toward names the recogniser would otherwise
    miss (the persona's name first); then a sound-alike correction of the transcript
    fixes the names tiny models still miss.
    """

    def __init__(
        self,
        model_dir: Path,
        threads: int = 2,
        language: str = "en",
        beam_size: int = 1,
        prompt: str = "",
        names: tuple[str, ...] = (),
    ):
        from faster_whisper import WhisperModel

        try:
            self.model = WhisperModel(
                str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1
            )
        except (RuntimeError, ValueError, OSError) as e:
            raise UserError(f"{model_dir}: faster-whisper could not load this model ({e})") from None
        self.language = language
        self.beam_size = beam_size
        self.prompt = prompt.strip()
        self.names = list(names)  # corrected by sound (only proper names: common words would be mangled)

    def transcribe(self, audio: np.ndarray) -> str:
        if len(audio) < 1600:  # under 0.1 s: nothing to hear
            return ""
        segments, _info = self.model.transcribe(
            audio.astype(np.float32, copy=False),
            language=self.language,
            beam_size=self.beam_size,
            best_of=1,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            initial_prompt=self.prompt or None,
            hotwords=" ".join(self.names) or None,
            suppress_blank=True,
        )
        text = " ".join(s.text.strip() for s in segments).strip()
        return correct_names(text, self.names)

    def warm(self) -> None:
        t = np.linspace(0, 1, 16000, dtype=np.float32)
        self.transcribe(0.1 * np.sin(2 * np.pi * 220 * t).astype(np.float32))
