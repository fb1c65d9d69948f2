"""What Whisper invents on silence and noise, and how it is told from real speech.

Whisper was trained on subtitled video, so on silence, breath, a click or a hum it
often writes what those videos say at their quiet ends: "you", "Thank you.",
"Thanks for watching!", "Subtitles by the Amara.org community", "[Music]". The
co-host must never answer these. But a streamer does say "thank you", so the text
alone is not enough: it is judged together with Whisper's own evidence (its
`no_speech_prob` and `avg_logprob`, see `vtuber.hearing.asr.Transcript`) and with how
long the VAD heard voice.

`judge(transcript, voiced_s)` drops a transcript, first rule that applies:

1. empty: nothing but punctuation and spaces.
2. annotation: nothing but a non-speech annotation ("[Music]", "(upbeat music)",
   "[BLANK_AUDIO]", "*sigh*", "♪"): no one says these, whatever the evidence.
3. no speech, whatever the text:
   - `no_speech_prob >= NO_SPEECH_ALWAYS` (0.8; clear speech gives < 0.1), or
   - `no_speech_prob > WHISPER_NO_SPEECH` (0.6) and `avg_logprob <= WHISPER_LOGPROB`
     (-1.0): Whisper's own silence rule (its `no_speech_threshold`), which the ASR turns
     off inside faster-whisper so that the drop is seen here and logged.
4. listed, with evidence: every phrase of the text (split at , ! ? ; : … and a
   sentence's full stop) is one of
   `KNOWN` (normalised: lower case, no punctuation; a phrase said several times
   over, "you you you", counts), or starts with one of `KNOWN_PREFIXES` ("subtitles
   by ..."), AND at least one of:
   - `no_speech_prob >= LISTED_NO_SPEECH` (0.3),
   - `avg_logprob < WHISPER_LOGPROB` (-1.0),
   - the VAD heard less than `MIN_VOICED_PER_WORD` (150 ms) of voice per word
     (people need ~200-400 ms a word; a click or a breath that tripped the VAD
     does not carry three words).

Everything else is heard, so a clear "Thank you so much, chat!" (not listed) or a
clear "Thank you." (listed, but no evidence against it) reaches the director. A
missing number (None: an ASR that gives only text, or no VAD timing) is no evidence.

Measured with the bundled Whisper tiny.en (int8, CPU): clear Piper speech gives
no_speech_prob 0.01-0.07 and avg_logprob -0.1 to -0.8 (one-word "You." -0.67); silence
and low noise give "You" (or "You can see the camera.") at no_speech_prob 0.8-0.93 and
avg_logprob -1.6 to -2.4; puffs of breath give "You" at no_speech_prob 0.52-0.81, so
Whisper's own rule alone lets about a third of them through and rule 4 drops them.
The Silero VAD in front rejects all of these (tests/test_hallucination.py): the filter
is the second line, for what trips the VAD.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vtuber.hearing.asr import LOG_PROB_THRESHOLD, NO_SPEECH_THRESHOLD, Transcript, is_silent_by_whisper
from vtuber.text import words as text_words

NO_SPEECH_ALWAYS = 0.8
WHISPER_NO_SPEECH = NO_SPEECH_THRESHOLD  # 0.6
WHISPER_LOGPROB = LOG_PROB_THRESHOLD  # -1.0
LISTED_NO_SPEECH = 0.3
MIN_VOICED_PER_WORD = 0.15  # seconds

# Whisper's well-known inventions, normalised (see `normalise`). Short on purpose: a
# listed phrase is still heard when the evidence says it was really said.
KNOWN = frozenset(
    {
        "you",
        "thank you",
        "thank you very much",
        "thank you so much",
        "thanks",
        "thanks for watching",
        "thank you for watching",
        "thank you so much for watching",
        "thanks for watching and see you next time",
        "please subscribe",
        "please like and subscribe",
        "like and subscribe",
        "don't forget to like and subscribe",
        "see you next time",
        "see you in the next video",
        "i'll see you in the next video",
        "bye",
        "bye bye",
    }
)
KNOWN_PREFIXES = (
    "subtitles by",
    "subtitled by",
    "captions by",
    "captioning by",
    "transcribed by",
    "transcription by",
    "translated by",
    "amara org",
)

# "[Music]", "(upbeat music)", "*sigh*", "♪ ♪": Whisper's notes on sounds, not words.
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|[♪♫♬♩]")
_PHRASE_SPLIT = re.compile(r"[,!?;:…]+|\.+(?!\w)")  # "Amara.org" is one phrase


@dataclass(frozen=True)
class Verdict:
    drop: bool
    rule: str = ""  # "empty", "annotation", "no_speech", "listed" ("" when heard)
    reason: str = ""  # one line for the log


HEARD = Verdict(False)


def normalise(text: str) -> list[str]:
    """The text's phrases, each lower case with single spaces and no punctuation."""
    low = text.lower().replace("’", "'").replace("`", "'")
    phrases = []
    for part in _PHRASE_SPLIT.split(low):
        words = text_words(part, apostrophes=True)
        if words:
            phrases.append(" ".join(words))
    return phrases


def _listed_phrase(phrase: str) -> bool:
    if phrase in KNOWN or phrase.startswith(KNOWN_PREFIXES):
        return True
    words = phrase.split()
    for known in KNOWN:  # the same phrase said over and over: "you you you"
        k = known.split()
        if len(words) > len(k) and len(words) % len(k) == 0 and words == k * (len(words) // len(k)):
            return True
    return False


def is_listed(text: str) -> bool:
    """Is every phrase of `text` a known Whisper invention?"""
    phrases = normalise(text)
    return bool(phrases) and all(_listed_phrase(p) for p in phrases)


def judge(t: Transcript, voiced_s: float | None = None) -> Verdict:
    """Drop this transcript, or hear it? `voiced_s`: seconds the VAD heard voice in it."""
    text = t.text.strip()
    phrases = normalise(text)
    if not phrases:
        if _ANNOTATION.search(text):
            return Verdict(True, "annotation", "a non-speech annotation, not words")
        return Verdict(True, "empty", "no words")
    if not normalise(_ANNOTATION.sub(" ", text)):
        return Verdict(True, "annotation", "a non-speech annotation, not words")
    ns, lp = t.no_speech_prob, t.avg_logprob
    if ns is not None and ns >= NO_SPEECH_ALWAYS:
        return Verdict(True, "no_speech", f"no_speech_prob {ns:.2f} >= {NO_SPEECH_ALWAYS}")
    if is_silent_by_whisper(ns, lp):
        return Verdict(
            True,
            "no_speech",
            f"no_speech_prob {ns:.2f} > {WHISPER_NO_SPEECH} and avg_logprob {lp:.2f} <= {WHISPER_LOGPROB}",
        )
    if not is_listed(text):
        return HEARD
    evidence = []
    if ns is not None and ns >= LISTED_NO_SPEECH:
        evidence.append(f"no_speech_prob {ns:.2f} >= {LISTED_NO_SPEECH}")
    if lp is not None and lp < WHISPER_LOGPROB:
        evidence.append(f"avg_logprob {lp:.2f} < {WHISPER_LOGPROB}")
    n_words = sum(len(p.split()) for p in phrases)
    if voiced_s is not None and voiced_s < MIN_VOICED_PER_WORD * n_words:
        evidence.append(f"{voiced_s * 1000:.0f} ms voiced for {n_words} word{'s' * (n_words > 1)}")
    if evidence:
        return Verdict(True, "listed", "a known Whisper hallucination; " + ", ".join(evidence))
    return HEARD
