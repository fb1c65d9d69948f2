"""Her voices, one per language she speaks (see `vtuber.voice.languages`).

The main voice (the config's, the persona's, or the bundled English Piper voice, maybe
behind a Wyoming TTS server) speaks the language its .onnx.json names; `voice.voices`
adds Piper voices for other languages; a language she answers in that still has no
voice gets espeak-ng, labelled as the fallback it is (`voice.fallback = "off"` makes
that an error instead).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from vtuber.config import Config
from vtuber.errors import UserError
from vtuber.language import name_of
from vtuber.voice.languages import VoiceByLanguage, piper_language


def language_voices(
    cfg: Config,
    main_tts,
    main_config: Path,
    own_language: str,
    speaks: Iterable[str],
    step: Callable[[str], None] = lambda s: None,
) -> VoiceByLanguage:
    """A voice for `own_language` and each language in `speaks`, the main voice first."""
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
