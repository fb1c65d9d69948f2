"""Speech recognition with faster-whisper (CTranslate2, int8 on the CPU).

`WhisperASR.hear` returns a `Transcript`: the text and the decoder's own evidence on
whether it heard speech at all (`no_speech_prob`, `avg_logprob`, `compression_ratio`),
which `vtuber.hearing.hallucination` uses to drop what Whisper invents on silence and
noise. `transcribe` returns the text alone, as faster-whisper's defaults give it (a
window Whisper's own rule calls silent gives no text).

Of faster-whisper's own guards against hallucination:
- `no_speech_threshold` is turned off (None): with it, faster-whisper silently skips a
  window it judges silent, so nothing is left to log. The same rule (no_speech_prob
  > 0.6 and avg_logprob <= -1.0: `is_silent_by_whisper`) is applied by `transcribe`,
  and applied and logged by the hallucination filter.
- `log_prob_threshold` and `compression_ratio_threshold` only choose when to retry at a
  higher temperature; decoding is greedy at temperature 0 with no fallback (a retry
  would double the time of exactly the utterances that are already slow).
- `hallucination_silence_threshold` works only with `word_timestamps=True`, an extra
  alignment pass on every utterance: not used.
- `vad_filter` stays off: the hearing stage runs its own Silero VAD and endpointing.
- `condition_on_previous_text=False`: each utterance is decoded on its own.

A short window. Whisper's encoder is built for 30 s windows and faster-whisper pads
every utterance to one, but most of the time goes into encoding that padding: on the
2-core machine a 2.5 s line took 347 ms to transcribe, 294 ms of it in the encoder.
The encoder runs on a window just longer than the utterance instead (at least
`SHORT_WINDOW_S`): 137 ms for the same line, the same words on the bench's lines. On
silence, noise or a lone word a short window can make Whisper loop ("Okay? Okay?
Okay? ...") or guess: the output is capped in tokens, and a transcript with doubtful
evidence (a loop, a low log probability, a likely no-speech window, the cap reached)
is decoded again on the full 30 s window, so it is judged exactly as before.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

from vtuber import heap
from vtuber.errors import UserError
from vtuber.ports import Transcript

RATE = 16000
FRAMES_PER_S = 100  # Whisper's mel frames a second
FULL_WINDOW_FRAMES = 3000  # the 30 s window the model was trained on
SHORT_WINDOW_S = 10.0  # the shortest encoder window (seconds of audio)
# Shorter lines ("Thank you.", "Hi chat.") go straight to the full window: on them a
# short window often repeats or guesses, and a second decode would cost more than it saves.
SHORT_WINDOW_MIN_AUDIO_S = 1.5
WINDOW_MARGIN_S = 1.0  # window past the end of the utterance
# A short-window transcript is decoded again on the full window when it looks like this
# (faster-whisper's own fallback thresholds; no-speech a little stricter).
DOUBT_COMPRESSION = 2.4
DOUBT_LOGPROB = -1.0
DOUBT_NO_SPEECH = 0.5
# faster-whisper's defaults for its own silence rule: a window is silent when Whisper
# gives it a no-speech probability over NO_SPEECH_THRESHOLD and its decoded text an
# average log probability no higher than LOG_PROB_THRESHOLD.
NO_SPEECH_THRESHOLD = 0.6
LOG_PROB_THRESHOLD = -1.0


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


def is_silent_by_whisper(no_speech_prob: float | None, avg_logprob: float | None) -> bool:
    """Whisper's own silence rule (its `no_speech_threshold` with `log_prob_threshold`)."""
    if no_speech_prob is None or avg_logprob is None:
        return False
    return no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob <= LOG_PROB_THRESHOLD


def window_frames(n_samples: int) -> int:
    """Encoder window (mel frames) for an utterance: its length plus a margin, at least
    SHORT_WINDOW_S, at most the full 30 s (longer audio is decoded window by window);
    the full window for a line under SHORT_WINDOW_MIN_AUDIO_S."""
    if n_samples < SHORT_WINDOW_MIN_AUDIO_S * RATE:
        return FULL_WINDOW_FRAMES
    seconds = max(SHORT_WINDOW_S, n_samples / RATE + WINDOW_MARGIN_S)
    return min(FULL_WINDOW_FRAMES, int(seconds * FRAMES_PER_S))


def max_new_tokens(n_samples: int) -> int:
    """Tokens an utterance can take: generous for fast speech (about 3 a word, 5 words a
    second), far below what a decoding loop runs to (Whisper's limit is 448)."""
    return int(24 + 16 * n_samples / RATE)


def _repeats(text: str) -> bool:
    """A sentence said twice in a row ("Thank you. Thank you."): what a short window
    makes Whisper write after a short line, and rare in what people say."""
    sentences = [" ".join(re.findall(r"(?:[^\W_]|')+", p.lower())) for p in re.split(r"(?<=[.!?])\s+", text)]
    return any(a and a == b for a, b in zip(sentences, sentences[1:]))


def doubtful(segs: list, cap: int, by_logprob: bool = True) -> bool:
    """Evidence that a short window misled the decoder (see the module's note). `by_logprob`
    False: a low log-probability alone is no evidence (outside English: see `WhisperASR`)."""
    return _repeats(" ".join(s.text.strip() for s in segs)) or any(
        s.compression_ratio > DOUBT_COMPRESSION
        or (by_logprob and s.avg_logprob < DOUBT_LOGPROB)
        or s.no_speech_prob > DOUBT_NO_SPEECH
        or len(s.tokens) >= cap
        for s in segs
    )


def _windowed_model_class():
    from faster_whisper import WhisperModel

    class WindowedWhisper(WhisperModel):
        """faster-whisper whose encoder sees the first `frames` mel frames of each 30 s window."""

        frames = FULL_WINDOW_FRAMES

        def encode(self, features):
            return super().encode(features[..., : self.frames])

    return WindowedWhisper


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
        try:
            self.model = _windowed_model_class()(
                str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1
            )
        except (RuntimeError, ValueError, OSError) as e:
            raise UserError(f"{model_dir}: faster-whisper could not load this model ({e})") from None
        self.language = language
        self.beam_size = beam_size
        self.prompt = prompt.strip()
        self.names = list(names)  # corrected by sound (only proper names: common words would be mangled)
        self.redecoded = 0  # short-window transcripts decoded again on the full window
        # Under this the whole 30 s window is encoded (~700 ms, +80-95 MiB a call on 2 cores):
        # the hearing stage transcribes such fragments only when needed (vtuber.hearing).
        self.slow_under_s = SHORT_WINDOW_MIN_AUDIO_S

    def transcribe(self, audio: np.ndarray) -> str:
        """The text alone, windows Whisper calls silent left out (faster-whisper's default)."""
        segs = self._decode(audio)
        kept = [s for s in segs if not is_silent_by_whisper(s.no_speech_prob, s.avg_logprob)]
        return self._text(kept)

    def hear(self, audio: np.ndarray) -> Transcript:
        """Transcribe one utterance; the text with Whisper's evidence (see `Transcript`).

        Nothing is left out here: what Whisper wrote on a silent window is judged (and
        logged) by the caller."""
        duration = len(audio) / RATE
        segs = self._decode(audio)
        text = self._text(segs)
        if not segs:
            return Transcript(text, duration_s=duration)
        secs = [max(s.end - s.start, 1e-3) for s in segs]
        toks = [len(s.tokens) + 1 for s in segs]  # faster-whisper averages over tokens + 1
        return Transcript(
            text=text,
            no_speech_prob=sum(s.no_speech_prob * w for s, w in zip(segs, secs)) / sum(secs),
            avg_logprob=sum(s.avg_logprob * w for s, w in zip(segs, toks)) / sum(toks),
            compression_ratio=max(s.compression_ratio for s in segs),
            duration_s=duration,
        )

    def _text(self, segs: list) -> str:
        return correct_names(" ".join(s.text.strip() for s in segs).strip(), self.names)

    def _decode(self, audio: np.ndarray) -> list:
        """faster-whisper's segments (its text and evidence), none skipped: on a short
        encoder window, or on the full one when the short one leaves doubt."""
        if len(audio) < RATE // 10:  # under 0.1 s: nothing to hear
            return []
        frames = window_frames(len(audio))
        if frames < FULL_WINDOW_FRAMES:
            cap = max_new_tokens(len(audio))
            segs = self._run(audio, frames, cap)
            # Outside English a low log-probability is common and the full window did no
            # better (Korean: the same or worse error rate at 3-8x the time), so alone it
            # is no reason to decode again.
            if not doubtful(segs, cap, by_logprob=self.language in ("en", "")):
                return segs
            self.redecoded += 1
        # English keeps Whisper's own limit; other languages loop more on the full window
        # (measured on Korean: "요. 요. ..." for 20 s), so they keep a cap there too.
        return self._run(audio, FULL_WINDOW_FRAMES, None if self.language in ("en", "") else 2 * max_new_tokens(len(audio)))

    def _run(self, audio: np.ndarray, frames: int, cap: int | None) -> list:
        if frames >= FULL_WINDOW_FRAMES:
            # The whole window's attention takes 75-95 MiB for the call: give back what the
            # other models freed first (6-10 ms), so it starts from what is really in use.
            heap.trim()
        self.model.frames = frames
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
            no_speech_threshold=None,  # no silent skipping: see the module's docstring
            max_new_tokens=cap,
        )
        return list(segments)

    def warm(self) -> None:
        t = np.linspace(0, 1, 16000, dtype=np.float32)
        self.transcribe(0.1 * np.sin(2 * np.pi * 220 * t).astype(np.float32))
