"""Languages without models: scripts, chat language detection, the reply policy, the check
before speech, and the persona and config fields that name languages."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from vtuber.config import load_config
from vtuber.errors import UserError
from vtuber.events import ChatMessage, Turn, Utterance
from vtuber.language import ONLY_LINES, ChatLanguage, safe_line_for, script_language, text_language, voice_can_read
from vtuber.mind.languages import LanguagePolicy, check_languages, model_languages, only_line
from vtuber.mind.persona import load_persona, persona_from_dict
from vtuber.voice.languages import VoiceByLanguage, piper_language

TSV = Path(__file__).resolve().parent.parent / "vtuber/data/chat_languages.tsv"


def chat_turn(text: str, i: int = 1) -> Turn:
    msg = ChatMessage(user="amy", text=text, t=0.0)
    return Turn(id=i, kind="chat", user="amy", text=text, t_input=0.0, t_queued=0.0, t_picked=0.0, source=msg)


def labelled() -> list[tuple[str, str]]:
    rows = []
    for raw in TSV.read_text(encoding="utf-8").splitlines():
        if raw.strip() and not raw.startswith("#"):
            lang, text = raw.split("\t", 1)
            rows.append((lang, text))
    return rows


# --- scripts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, lang",
    [("안녕하세요", "ko"), ("ㅋㅋㅋ", "ko"), ("오 GG", "ko"), ("こんにちは", "ja"), ("草", "zh"), ("hello", ""), ("123 !!", "")],
)
def test_the_script_tells_korean_and_japanese(text, lang):
    assert script_language(text) == lang


def test_han_alone_is_japanese_when_japanese_is_known_and_chinese_is_not():
    assert script_language("草", known=("ja", "en")) == "ja"
    assert script_language("草", known=("ja", "zh")) == "zh"


@pytest.mark.parametrize(
    "voice, text, ok",
    [
        ("en", "Hello there, friend!", True),
        ("en", "안녕하세요", False),  # Korean read by an English voice: never
        ("en", "Hi 안녕", False),
        ("en", "こんにちは", False),
        ("ko", "안녕하세요 여러분", True),
        ("ko", "오늘 GG 했어요", True),  # a Latin word inside Korean: the Korean voice spells it
        ("ko", "Hello there", False),
        ("ko", "안녕 こんにちは", False),  # kana read by a Korean voice: never
        ("ja", "こんにちは、元気？", True),
        ("ja", "안녕", False),
        ("en", "123!", True),
    ],
)
def test_a_voice_reads_only_its_own_script(voice, text, ok):
    assert voice_can_read(voice, text) is ok


def test_text_language_follows_the_script():
    assert text_language("안녕") == "ko"
    assert text_language("hello", fallback="es") == "es"


# --- chat language ------------------------------------------------------------------------


def test_chat_lines_in_english_korean_and_japanese_are_told_apart():
    """The measured set (scripts/measure_language_detect.py): script first tells Korean and
    Japanese whatever the line's length; a Latin line is her home language."""
    detect = ChatLanguage(("ko", "en", "ja"))
    rows = labelled()
    right = {lang: 0 for lang in ("en", "ko", "ja")}
    for lang, text in rows:
        right[lang] += detect.detect(text).language == lang
    total = {lang: sum(1 for g, _ in rows if g == lang) for lang in right}
    assert right["ko"] == total["ko"]  # every Korean line, "ㅋㅋㅋㅋ" and "헐" included
    assert right["en"] == total["en"]
    assert right["ja"] >= total["ja"] - 1  # "ｗｗｗ" (fullwidth Latin laughter) reads as English


def test_no_detector_is_loaded_for_one_latin_language():
    detect = ChatLanguage(("ko", "en"))
    assert detect.library == ""
    assert detect.detect("lol").language == "en"
    assert detect.detect("🎉🎉").language == ""


def test_lingua_tells_two_latin_languages_apart_when_sure():
    pytest.importorskip("lingua", reason="the languages extra (lingua-language-detector) is not installed")
    detect = ChatLanguage(("en", "es"))
    assert detect.library == "lingua"
    assert detect.detect("me encanta este juego").language == "es"
    assert detect.detect("why is the music so loud").language == "en"
    assert detect.detect("gg").language == "en"  # one word of slang: her home language, not a guess


# --- the reply policy ---------------------------------------------------------------------


def test_english_only_defaults_answer_korean_with_her_english_line():
    persona = load_persona("miko")
    policy = LanguagePolicy(persona, model_languages(load_config(), persona))
    plan = policy.plan(chat_turn("안녕하세요! 오늘 무슨 게임 해요?"))
    assert plan.line == ONLY_LINES["en"] and plan.heard == "ko" and plan.reply == "en"
    assert policy.plan(chat_turn("what game is this?")).line == ""
    assert policy.lines_said == 1


def test_a_korean_persona_answers_korean_and_english_and_says_her_line_to_japanese():
    persona = load_persona("hana")
    policy = LanguagePolicy(persona, model_languages(load_config(), persona))
    assert policy.answers == ("ko", "en")
    assert policy.plan(chat_turn("오늘 무슨 게임 해요?")).reply == "ko"
    assert policy.plan(chat_turn("what game is this?")).reply == "en"
    plan = policy.plan(chat_turn("今日は何のゲーム？"))
    assert plan.line == persona.language_line and plan.heard == "ja"
    speech = Turn(id=9, kind="speech", user="민준", text="hello", t_input=1.0, t_queued=1.0, t_picked=1.0, source=Utterance("hello", 0.0, 1.0, 1.0, 1.0))
    assert policy.plan(speech).reply == "ko"  # the streamer is heard in her language


def test_a_language_the_model_does_not_write_gets_her_line():
    persona = dataclasses.replace(load_persona("hana"), model=dataclasses.replace(load_persona("hana").model, languages=("ko",)))
    policy = LanguagePolicy(persona, model_languages(load_config(), persona))
    assert policy.plan(chat_turn("what game is this?")).line == persona.language_line


def test_the_config_names_the_models_languages():
    persona = load_persona("hana")
    assert model_languages(load_config(), persona) == ("ko", "en")  # the persona's own model
    assert model_languages(load_config(overrides={"models": {"llm": "/x.gguf"}}), persona) == ("en",)
    assert model_languages(load_config(overrides={"llm": {"languages": ["ko"]}}), persona) == ("ko",)
    assert model_languages(load_config(), load_persona("miko")) == ("en",)


def test_a_persona_whose_language_the_model_does_not_write_is_one_line():
    persona = load_persona("hana")
    with pytest.raises(UserError) as e:
        check_languages(persona, ("en",))
    assert "hana.yaml" in str(e.value) and "llm.languages" in str(e.value) and "\n" not in str(e.value)


def test_her_line_is_in_her_own_language():
    assert only_line(load_persona("miko")) == "I only speak English here, welcome anyway!"
    korean = dataclasses.replace(load_persona("hana"), language_line="")
    assert voice_can_read("ko", only_line(korean))
    assert safe_line_for("Let's keep it friendly, chat!", "ko") != "Let's keep it friendly, chat!"
    assert voice_can_read("ko", safe_line_for("Let's keep it friendly, chat!", "ko"))
    assert safe_line_for("Be nice!", "ko") == "Be nice!"  # the streamer's own line wins


# --- persona and config fields ------------------------------------------------------------

BASE = {"name": "X", "description": "d", "speaking_style": "s", "greeting": "hi"}


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"language": "korean"}, "'language' must be a two-letter language code"),
        ({"languages": "ko"}, "'languages' must be a list of two-letter language codes"),
        ({"languages": ["ko", "english"]}, "'languages' must be a list"),
        ({"model": {"languages": [1]}}, "'model.languages' must be a list"),
    ],
)
def test_language_mistakes_in_a_persona_are_named(extra, message):
    with pytest.raises(UserError) as e:
        persona_from_dict({**BASE, **extra}, "p.yaml")
    assert message in str(e.value) and str(e.value).startswith("p.yaml: ")


def test_persona_languages_parse():
    p = persona_from_dict({**BASE, "language": "KO", "languages": ["en", "ja", "en"], "language_line": "어서 와요!"}, "p.yaml")
    assert (p.language, p.languages, p.language_line) == ("ko", ("en", "ja"), "어서 와요!")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"llm": {"languages": ["korean"]}}, "llm.languages"),
        ({"hearing": {"language": "kor"}}, "hearing.language"),
        ({"voice": {"fallback": "festival"}}, "voice.fallback"),
    ],
)
def test_language_mistakes_in_the_config_are_named(overrides, message):
    with pytest.raises(UserError) as e:
        load_config(overrides=overrides)
    assert message in str(e.value)


# --- a voice per language: the check before speech ------------------------------------------


class RecordingVoice:
    """Records what it was asked to say (a unit-test stand-in for a voice)."""

    def __init__(self, rate: int):
        self.sample_rate = rate
        self.said: list[str] = []

    def synthesize(self, text):
        self.said.append(text)
        return np.full(self.sample_rate // 10, 1000, dtype=np.int16)

    def warm(self):
        pass


def test_each_clause_goes_to_the_voice_of_its_script_and_nothing_to_a_wrong_one():
    en, ko = RecordingVoice(22050), RecordingVoice(16000)
    voices = VoiceByLanguage({"en": en, "ko": ko}, main="ko")
    assert voices.sample_rate == 16000
    assert len(voices.synthesize("안녕하세요 여러분!")) == 1600
    assert len(voices.synthesize("Hello there!")) == 1600  # resampled from 22050 to the stream's rate
    assert len(voices.synthesize("こんにちは")) == 0  # no Japanese voice: not spoken at all
    assert len(voices.synthesize("안녕 こんにちは")) == 0
    assert en.said == ["Hello there!"] and ko.said == ["안녕하세요 여러분!"]
    assert [why for _, why in voices.refused] == ["no voice for ja", "mixed scripts for the ko voice"]
    assert voices.report() == {"voice": "RecordingVoice", "voices": {"en": "RecordingVoice", "ko": "RecordingVoice"}, "refused": 2}


def test_english_only_voices_never_read_hangul():
    en = RecordingVoice(22050)
    voices = VoiceByLanguage({"en": en}, main="en")
    assert not voices.can_speak("안녕하세요") and voices.can_speak("Hello!")
    assert len(voices.synthesize("안녕하세요")) == 0 and en.said == []


def test_a_piper_voice_config_names_its_language(tmp_path):
    cfg = tmp_path / "ko.onnx.json"
    cfg.write_text('{"language": {"code": "ko_KR", "family": "ko"}, "audio": {"sample_rate": 22050}}')
    assert piper_language(cfg) == "ko"
    cfg.write_text('{"espeak": {"voice": "en-us"}}')
    assert piper_language(cfg) == "en"
    cfg.write_text("not json")
    assert piper_language(cfg) == ""


# --- hearing in other languages -------------------------------------------------------------


def test_korean_speech_is_heard_and_whispers_korean_inventions_are_dropped():
    from vtuber.hearing.asr import Transcript
    from vtuber.hearing.hallucination import judge

    clear = Transcript("안녕하세요 여러분, 오늘 게임 재미있어요.", no_speech_prob=0.05, avg_logprob=-0.4, duration_s=2.0)
    assert not judge(clear, voiced_s=1.8).drop  # Hangul is words, not "no words"
    invented = Transcript("시청해주셔서 감사합니다.", no_speech_prob=0.5, avg_logprob=-0.9, duration_s=1.0)
    assert judge(invented, voiced_s=0.2).rule == "listed"
    said = Transcript("감사합니다!", no_speech_prob=0.02, avg_logprob=-0.3, duration_s=0.8)
    assert not judge(said, voiced_s=0.7).drop  # really said: heard
    assert judge(Transcript("MBC 뉴스 이덕영입니다.", no_speech_prob=0.4, avg_logprob=-0.5, duration_s=1.0), voiced_s=0.3).drop


def test_a_korean_reply_has_words_and_a_korean_echo_is_caught():
    from vtuber.mind.quality import clause_problem, reply_flags

    assert reply_flags("와, 안녕하세요! 오늘은 레트로 게임을 해요.", "오늘 뭐 해요?", [], "하나") == ()
    message = "오늘 무슨 게임 해요 하나야"
    assert clause_problem("오늘 무슨 게임 해요 하나야", message, [], "하나") == "echo"


def test_error_rates_for_the_hearing_bench():
    from vtuber.bench_hearing import edit_distance, error_rate

    assert edit_distance("abc", "abd") == 1 and edit_distance([], ["x"]) == 1
    assert error_rate("Okay chat, one more try.", "okay chat one more try", "en") == 0.0
    assert error_rate("안녕하세요 여러분", "안녕하세요, 여러분!", "ko") == 0.0  # spaces and punctuation aside
    assert error_rate("하나야", "하나", "ko") == 1 / 3
