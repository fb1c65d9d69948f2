"""Which language she answers a turn in, or whether she only says her line.

A viewer's line is answered in the viewer's language when she answers in it (the
persona's `language` and `languages`) and the model writes it (`llm.languages` in the
config, or the persona's `model.languages`; the bundled 135M model writes English only).
Otherwise she says her own line in her own language ("I only speak English here,
welcome anyway!"): never a garbled reply in a language the model does not know, never
words in one language read by the voice of another.

The streamer's speech is heard in the persona's language (Whisper's language is fixed
from it), so a speech turn is answered in it.
"""

from __future__ import annotations

from dataclasses import dataclass

from vtuber.errors import UserError
from vtuber.events import Turn
from vtuber.language import ONLY_LINES, ChatLanguage, name_of
from vtuber.mind.persona import Persona


@dataclass(frozen=True)
class LanguagePlan:
    """How to answer one turn: in `reply` (a language code), or with her fixed `line`."""

    reply: str
    heard: str = ""  # the language the turn was written in ("" when nothing told)
    line: str = ""  # when set: say this instead of asking the model


def answers_in(persona: Persona) -> tuple[str, ...]:
    """The languages she answers in: her own first, then the persona's `languages`."""
    return tuple(dict.fromkeys([persona.language, *persona.languages]))


def model_languages(cfg, persona: Persona) -> tuple[str, ...]:
    """The languages the model writes well: the config's llm.languages; else the persona's
    model.languages when the persona's own model is the one used (its model.llm, not
    another models.llm in the config); else English (the bundled model)."""
    declared = list(getattr(cfg.llm, "languages", []) or [])
    if not declared and persona.model.llm and cfg.models.llm in ("", persona.model.llm):
        declared = list(persona.model.languages)
    return tuple(dict.fromkeys(declared or ["en"]))


def check_languages(persona: Persona, languages: tuple[str, ...]) -> None:
    """A persona whose own language the model does not write is a one-line error: every
    reply would be garbled."""
    if persona.language not in languages:
        where = persona.path or persona.name
        raise UserError(
            f"{where}: language '{persona.language}' ({name_of(persona.language)}) is not one the model writes "
            f"({', '.join(languages)}): use a multilingual model and list its languages in llm.languages "
            "(config) or model.languages (persona)"
        )


def only_line(persona: Persona) -> str:
    """Her line for a viewer whose language she does not answer in, in her own language."""
    return persona.language_line or ONLY_LINES.get(persona.language) or ONLY_LINES["en"]


class LanguagePolicy:
    """Plans each turn's language (see the module docstring). `detect` is per chat message."""

    def __init__(self, persona: Persona, model: tuple[str, ...], detector: ChatLanguage | None | bool = None):
        self.persona = persona
        self.model = tuple(model)
        self.answers = tuple(lang for lang in answers_in(persona) if lang in self.model) or (persona.language,)
        # detector=False: only the plan's languages are wanted (no detector is built)
        if detector is None:
            detector = ChatLanguage(tuple(dict.fromkeys([*answers_in(persona), "en"])))
        self.detector = detector or None
        self.lines_said = 0  # turns answered with her line (counted for the report)

    def plan(self, turn: Turn) -> LanguagePlan:
        """The language to answer `turn` in, or her line."""
        own = self.persona.language
        if turn.kind != "chat":
            return LanguagePlan(own)
        heard = self.detector.detect(turn.text).language if self.detector else own
        if not heard:  # emoji, numbers: nothing to tell, answer in her own language
            return LanguagePlan(own)
        if heard in self.answers:
            return LanguagePlan(heard, heard)
        self.lines_said += 1
        return LanguagePlan(own, heard, only_line(self.persona))
