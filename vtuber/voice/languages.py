"""A voice per language, and the check before speech: no text is ever read by a voice
of another language.

`VoiceByLanguage` has the same face as one voice (`synthesize`, `sample_rate`, `warm`),
so the voice stage does not change: each clause is spoken by the voice of the language
its script says (Hangul: Korean, kana: Japanese, Latin: her Latin-script language), and
a clause no loaded voice can read (Korean with only an English voice, kana mixed into a
Korean clause) is not spoken at all: counted in `refused` and logged.

Voices come from Piper voice files (their .onnx.json names the language), a Wyoming TTS
server (the config's models.voice), or espeak-ng as the labelled fallback for a language
that has neither (`vtuber.voice.espeak`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from vtuber.audio import resample
from vtuber.errors import UserError
from vtuber.language import SCRIPT_OF, name_of, text_language, voice_can_read
from vtuber.voice.tts import speakable

log = logging.getLogger("vtuber.voice")


def piper_language(voice_config: Path) -> str:
    """The language of a Piper voice, from its .onnx.json ("en_US" -> "en"; "" if unknown)."""
    try:
        data = json.loads(Path(voice_config).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    lang = data.get("language") if isinstance(data, dict) else None
    code = ""
    if isinstance(lang, dict):
        code = str(lang.get("family") or lang.get("code") or "")
    if not code and isinstance(data, dict) and isinstance(data.get("espeak"), dict):
        code = str(data["espeak"].get("voice") or "")
    return code.replace("-", "_").split("_")[0].lower()


class VoiceByLanguage:
    """Speaks each clause with the voice of its language; refuses what no voice can read.

    `voices`: language code -> a voice (anything with `synthesize(text)` and `sample_rate`);
    `main`: the language of her own voice, whose rate the whole stream uses. Latin-script
    text goes to `latin` (her own language when it is written in Latin letters, else English).
    """

    def __init__(self, voices: dict[str, object], main: str, labels: dict[str, str] | None = None):
        if main not in voices:
            raise ValueError(f"no voice for the main language {main!r}")
        self.voices = dict(voices)
        self.main = main
        self.labels = dict(labels or {})
        self.sample_rate = int(self.voices[main].sample_rate)
        latin = [lang for lang in self.voices if SCRIPT_OF.get(lang, "latin") == "latin"]
        self.latin = main if main in latin else (latin[0] if latin else main)
        self.refused: list[tuple[str, str]] = []  # (clause, why) for each clause not spoken

    def __getattr__(self, name: str):
        # Anything else (a Piper voice's `syn_config`, a Wyoming voice's `service`) is the
        # main voice's: code written for one voice keeps working.
        if name.startswith("__") or "voices" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.voices[self.main], name)

    def language_of(self, text: str) -> str:
        """The language a clause would be spoken in."""
        return text_language(text, fallback=self.latin)

    def why_not(self, text: str) -> str | None:
        """Why no voice can read `text` aloud, or None when one can."""
        text = speakable(text)
        lang = self.language_of(text)
        if lang not in self.voices:
            return f"no voice for {lang}"
        if not voice_can_read(lang, text):
            return f"mixed scripts for the {lang} voice"
        return None

    def can_speak(self, text: str) -> bool:
        """Whether some loaded voice can read `text` (the mind drops a clause that none can)."""
        return self.why_not(text) is None

    def synthesize(self, text: str) -> np.ndarray:
        """Blocking: the clause in its language's voice, at `sample_rate`; empty when no
        voice can read it (never a voice of another language)."""
        text = speakable(text)
        if not text:
            return np.zeros(0, dtype=np.int16)
        why = self.why_not(text)
        if why is not None:
            if len(self.refused) < 1000:
                self.refused.append((text, why))
            log.warning("a clause was not spoken: %s", why)
            return np.zeros(0, dtype=np.int16)
        tts = self.voices[self.language_of(text)]
        return resample(tts.synthesize(text), int(tts.sample_rate), self.sample_rate)

    def warm(self) -> None:
        for tts in self.voices.values():
            tts.warm()

    def report(self) -> dict:
        """The main voice's own report (a server's counts), which voice speaks each language,
        and the clauses refused."""
        main = getattr(self.voices[self.main], "report", None)
        return {
            **(main() if callable(main) else {"voice": self.labels.get(self.main, type(self.voices[self.main]).__name__)}),
            "voices": {lang: self.labels.get(lang, type(tts).__name__) for lang, tts in self.voices.items()},
            "refused": len(self.refused),
        }


def language_voices(
    cfg,
    main_tts,
    main_config: Path,
    own_language: str,
    speaks: Iterable[str],
    step: Callable[[str], None] = lambda s: None,
) -> VoiceByLanguage:
    """A voice for `own_language` and each language in `speaks`, the main voice first.

    The main voice (the config's, the persona's, or the bundled English Piper voice, maybe
    behind a Wyoming TTS server) speaks the language its .onnx.json names; `voice.voices`
    adds Piper voices for other languages; a language she answers in that still has no
    voice gets espeak-ng, labelled as the fallback it is (`voice.fallback = "off"` makes
    that an error instead)."""
    from vtuber.voice.tts import PiperTTS

    main_lang = piper_language(main_config) or "en"
    service = getattr(main_tts, "service", None)
    voices: dict[str, object] = {main_lang: main_tts}
    labels = {main_lang: f"Wyoming TTS {service.url}" if service is not None else f"Piper {Path(main_config).name.removesuffix('.onnx.json')}"}
    for i, value in enumerate(cfg.voice.voices):
        onnx = Path(value).expanduser()
        json_path = onnx.with_name(onnx.name + ".json")
        if not onnx.is_file() or not json_path.is_file():
            raise UserError(f"voice.voices[{i}]: {onnx} (with its .onnx.json beside it) not found")
        lang = piper_language(json_path)
        if not lang:
            raise UserError(f"voice.voices[{i}]: {json_path} names no language")
        if lang in voices:
            continue
        step(f"loading Piper voice {onnx.name} ({name_of(lang)})")
        voices[lang] = PiperTTS(onnx, json_path, threads=cfg.threads.tts, length_scale=cfg.voice.length_scale)
        labels[lang] = f"Piper {onnx.stem}"
    for lang in dict.fromkeys([own_language, *speaks]):
        if lang in voices:
            continue
        if cfg.voice.fallback != "espeak":
            raise UserError(
                f"no voice for {name_of(lang)} ('{lang}'): add a Piper voice for it to voice.voices "
                "(or set voice.fallback = \"espeak\")"
            )
        from vtuber.voice.espeak import EspeakTTS

        step(f"no Piper voice for {name_of(lang)}: espeak-ng as the fallback voice")
        voices[lang] = EspeakTTS(lang, sample_rate=int(main_tts.sample_rate))
        labels[lang] = EspeakTTS.label
    return VoiceByLanguage(voices, own_language, labels)
