"""Languages: which writing system a text is in, which language a chat line is in,
and the few words the co-host needs in each language she may meet.

Script first: a line with Hangul is Korean, one with kana is Japanese, whatever a
statistical detector thinks of two syllables ("ㅋㅋㅋ", "草"). Only Latin-script lines,
where the script says nothing, go to a detector: `lingua-language-detector` (the
`languages` extra; it ships its models in the wheel, nothing is downloaded), restricted
to the languages the session knows about. Without it a Latin line counts as English.
The numbers behind this choice: `scripts/measure_language_detect.py` and the README.
"""

from __future__ import annotations

import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass

# ISO 639-1 codes the project knows by name; a persona may name any of these.
NAMES = {
    "en": "English",
    "ko": "Korean",
    "ja": "Japanese",
    "zh": "Chinese",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "pt": "Portuguese",
    "it": "Italian",
    "ru": "Russian",
}

# The writing system each language is spoken from (what the check before speech compares).
SCRIPT_OF = {"ko": "hangul", "ja": "kana", "zh": "han", "ru": "cyrillic"}  # anything else: latin

# Her line when a viewer writes in a language she does not answer in: said in her own
# language, so the voice that speaks it is always the right one.
ONLY_LINES = {
    "en": "I only speak English here, welcome anyway!",
    "ko": "여기서는 한국어로만 이야기해요, 그래도 환영해요!",
    "ja": "ここでは日本語だけで話しています、でも大歓迎です！",
}
# What the gate says instead of a blocked clause, per language (the config's line wins
# when the streamer changed it).
SAFE_LINES = {
    "en": "Let's keep it friendly, chat!",
    "ko": "우리 서로 친절하게 이야기해요!",
    "ja": "みんな仲良くいこうね！",
}


def safe_line_for(configured: str, language: str) -> str:
    """The gate's line for a blocked clause: the configured one, or (left at the English
    default) the built-in one in her language."""
    if configured.strip() == SAFE_LINES["en"] and language in SAFE_LINES:
        return SAFE_LINES[language]
    return configured


def name_of(code: str) -> str:
    """The language's English name ("ko" -> "Korean"), or the code itself."""
    return NAMES.get(code, code)


def script_of_char(ch: str) -> str:
    """The writing system of one character: hangul, kana, han, latin, cyrillic, other
    ("" for anything that is not a letter: digits, spaces, punctuation, emoji)."""
    o = ord(ch)
    if 0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
        return "hangul"
    if 0xA960 <= o <= 0xA97F or 0xD7B0 <= o <= 0xD7FF or 0xFFA0 <= o <= 0xFFDC:
        return "hangul"
    if 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF or 0xFF66 <= o <= 0xFF9F:
        return "kana"
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x2FA1F:
        return "han"
    if not ch.isalpha():
        return ""
    if ch.isascii():
        return "latin"
    name = unicodedata.name(ch, "")
    if name.startswith(("LATIN", "FULLWIDTH LATIN")):
        return "latin"
    if name.startswith("CYRILLIC"):
        return "cyrillic"
    return "other"


def scripts(text: str) -> Counter:
    """How many letters of each writing system `text` has (see `script_of_char`)."""
    out: Counter = Counter()
    for ch in text:
        s = script_of_char(ch)
        if s:
            out[s] += 1
    return out


def script_language(text: str, known: tuple[str, ...] = ()) -> str:
    """The language the script alone tells, or "" when it does not (Latin, no letters).

    Hangul: ko. Kana: ja. Han alone: ja when Japanese is one of the `known` languages
    and Chinese is not ("草"), else zh. Cyrillic: ru.
    """
    count = scripts(text)
    if count["hangul"]:
        return "ko"
    if count["kana"]:
        return "ja"
    if count["han"]:
        return "ja" if "ja" in known and "zh" not in known else "zh"
    if count["cyrillic"] > count["latin"]:
        return "ru"
    return ""


def voice_can_read(voice_language: str, text: str) -> bool:
    """Whether a voice for `voice_language` can read `text` aloud: every letter of the
    text is in the voice's own writing system, except Latin letters inside text that is
    mostly the voice's script ("오늘 GG"): those a Korean or Japanese voice spells out.

    The check before speech: Korean read by an English voice (or kana by a Korean one)
    is garbled sound, never said.
    """
    count = scripts(text)
    letters = sum(count.values())
    if not letters:
        return True
    own = SCRIPT_OF.get(voice_language, "latin")
    if own == "latin":
        return count["latin"] == letters
    if own == "kana":  # Japanese is written in kana and kanji together
        mine = count["kana"] + count["han"]
    else:
        mine = count[own]
    return mine > 0 and mine + count["latin"] == letters and mine >= count["latin"]


def text_language(text: str, fallback: str = "en") -> str:
    """The language a reply text must be spoken in, from its script alone: ko, ja, zh, ru,
    or `fallback` for Latin-script text (the voice for her Latin-script language)."""
    return script_language(text, known=("ja",)) or fallback


@dataclass(frozen=True)
class Detected:
    """A chat line's language: an ISO code ("" when nothing could tell), and how it was told."""

    language: str
    by: str  # "script", "lingua", "default" or "none"


# Below this confidence (lingua's, 0..1) a Latin line is taken as her home Latin language:
# chat slang ("lol", "gg", "pog") reads as Italian to a detector at 0.3-0.8.
MIN_CONFIDENCE = 0.5


class ChatLanguage:
    """Detects the language of one chat line: script first, then lingua for Latin script.

    `known`: the languages she may meet (hers, the ones she answers in). A Latin-script
    line is her home Latin language (the first Latin one in `known`, else English) unless
    lingua, restricted to the Latin-script languages in `known`, is sure (`MIN_CONFIDENCE`)
    that a line of two or more words is another one of them. With one Latin-script language
    known (English and Korean, say) no detector is loaded at all: the script decides.
    Lingua's models for two to six languages take 70-200 MiB, so they are loaded only for
    a persona that answers in several Latin-script languages. `detect` is thread-safe.
    """

    def __init__(self, known: tuple[str, ...] = ("en",), use_library: bool = True):
        self.known = tuple(dict.fromkeys(known or ("en",)))
        latin = [k for k in self.known if SCRIPT_OF.get(k, "latin") == "latin"]
        self.home = latin[0] if latin else "en"
        self._latin = list(dict.fromkeys([self.home, *latin]))
        self._detector = None
        self._lock = threading.Lock()
        self._codes: dict = {}
        if use_library and len(self._latin) > 1:
            self._detector = self._lingua(self._latin)

    def _lingua(self, codes: list[str]):
        try:
            from lingua import IsoCode639_1, Language, LanguageDetectorBuilder
        except ImportError:  # the `languages` extra is not installed: Latin lines are her home language
            return None
        langs = []
        for code in codes:
            try:
                langs.append(Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())))
            except (AttributeError, ValueError):
                continue
        if len(langs) < 2:
            return None
        self._codes = {lang: lang.iso_code_639_1.name.lower() for lang in langs}
        return LanguageDetectorBuilder.from_languages(*langs).with_preloaded_language_models().build()

    @property
    def library(self) -> str:
        """The detector behind Latin-script lines ("" when none is installed)."""
        return "lingua" if self._detector is not None else ""

    def detect(self, text: str) -> Detected:
        """The language of `text` (one chat line)."""
        by_script = script_language(text, self.known)
        if by_script:
            return Detected(by_script, "script")
        if not scripts(text)["latin"]:
            return Detected("", "none")  # emoji, numbers, "!!!": no language to answer in
        words = [w for w in text.split() if any(script_of_char(c) == "latin" for c in w)]
        if self._detector is None or len(words) < 2:
            return Detected(self.home, "default")
        with self._lock:
            best = self._detector.compute_language_confidence_values(text)
        if not best or best[0].value < MIN_CONFIDENCE:
            return Detected(self.home, "default")
        return Detected(self._codes.get(best[0].language, self.home), "lingua")
