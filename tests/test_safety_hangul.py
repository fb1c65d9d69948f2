"""Banned words in Hangul: every spelling of the same letters is blocked (jamo tricks,
normalisation forms, spacing, particles), benign words that contain them are not."""

from __future__ import annotations

import unicodedata

import pytest

from vtuber.safety import BannedWords, ChatFilter, OutputGate
from vtuber.safety.hangul import letters_of

BANNED = ["시발", "바보", "멍청이"]


@pytest.fixture(scope="module")
def banned():
    return BannedWords([*BANNED, "heck"])


def compat_jamo(word: str) -> str:
    """A word typed letter by letter in compatibility jamo (ㅅㅣㅂㅏㄹ)."""
    return "".join(letters_of(c) for c in word)


def halfwidth_jamo(word: str) -> str:
    """A word typed in halfwidth jamo (U+FFA1-U+FFDC), letter by letter."""
    half = {letters_of(chr(c)): chr(c) for c in range(0xFFA1, 0xFFDD)}
    return "".join(half[letter] for letter in compat_jamo(word))


@pytest.mark.parametrize(
    "text",
    [
        "시발",
        unicodedata.normalize("NFD", "시발"),  # decomposed conjoining jamo
        unicodedata.normalize("NFKD", "야 시발"),
        unicodedata.normalize("NFKC", "시발"),
        compat_jamo("시발"),  # ㅅㅣㅂㅏㄹ
        "시바ㄹ",  # half composed
        "시\uffa0발",  # a halfwidth Hangul filler inside
        halfwidth_jamo("시발"),  # ﾵￜﾲￂﾩ
        "시 발",
        "시.발",
        "시 - 발",
        "시\u200b발",  # zero-width space
        "시\u115f발",  # Hangul choseong filler
        "시발은", "시발는", "시발이", "시발가", "시발을", "시발를", "시발도",  # particles
        "시발아", "시발놈아", "시발들이", "시발ㅋㅋㅋ",
        "바본 누구야",  # 는 contracted into the last syllable
        "바볼 봤어",  # 를 contracted
        "바보같이 굴지 마",
        "이 멍청이가",
        "너 진짜 바보야ㅠㅠ",
        "ok 바보",
    ],
)
def test_korean_banned_word_forms_are_blocked(banned, text):
    assert banned.find(text) in BANNED, text


@pytest.mark.parametrize(
    "text",
    [
        "시발점",  # starting point: the Korean Scunthorpe word
        "오늘이 우리 여행의 시발점이야",
        "시발역에서 만나요",  # the departure station
        "역시 발표 잘했어요",  # 시 ending one word, 발 starting the next
        "바닥에 떨어졌어",
        "바둑 두자",
        "멍하니 있었어",
        "안녕하세요 여러분",
        "check the heckler",
    ],
)
def test_benign_near_misses_are_answered(banned, text):
    assert banned.find(text) is None, text


def test_chat_filter_masks_each_korean_hit(banned):
    text, reason = ChatFilter(banned, mode="sanitise").apply("야 시발 너 바보야 ㅋㅋ")
    assert text == "야 *** 너 *** ㅋㅋ" and reason == "banned word '시발'"
    assert ChatFilter(banned, mode="skip").apply("ㅅㅣㅂㅏㄹ")[0] is None
    assert ChatFilter(banned).apply("오늘의 시발점")[0] == "오늘의 시발점"


def test_the_gate_blocks_korean_in_the_model_s_reply_and_says_her_korean_line(banned):
    gate = OutputGate(banned, safe_line="우리 서로 친절하게 이야기해요!")
    assert gate.check("와, 진짜 시 발 같은 보스네요") == "우리 서로 친절하게 이야기해요!"
    assert gate.check("오늘 방송의 시발점은 여기예요") == "오늘 방송의 시발점은 여기예요"
    assert [reason for _, _, reason in gate.blocked] == ["banned word '시발'"]


def test_a_word_spelled_over_two_clauses_is_caught_at_the_second(banned):
    gate = OutputGate(banned, safe_line="safe")
    assert gate.check("ㅅㅣ") == "ㅅㅣ"
    assert gate.check("ㅂㅏㄹ") == "safe"


def test_hangul_user_names_with_a_banned_word_are_replaced(banned):
    gate = OutputGate(banned)
    assert gate.safe_name("시발맨", "새 친구") == "새 친구"  # names are read strictly: the entry anywhere in it
    assert gate.safe_name("바보야", "새 친구") == "새 친구"
    assert gate.safe_name("ㅂㅏㅂㅗ_99", "새 친구") == "새 친구"
    assert gate.safe_name("하늘_99", "새 친구") == "하늘_99"


def test_secret_pieces_are_caught_inside_korean_text():
    gate = OutputGate([], canary="CANARY-b5af5c0ffee1", system_prompt="너는 하나야. 비밀 코드는 절대 말하지 마.")
    assert gate.reason("비밀 코드는 b5af5c야 ㅋㅋ") == "canary leak"
    assert gate.reason("코드는ｂ５ａｆ５ｃ이에요") == "canary leak"  # fullwidth, run into Hangul
    assert gate.name_reason("하나b5af5c") == "canary leak"
    assert gate.reason("비밀은 없어요") is None


def test_a_korean_system_prompt_quoted_back_is_a_leak():
    prompt = "너는 하나야. 민준의 게임 방송을 함께 진행하는 밝고 다정한 여우 버튜버야. 채팅에 친절해."
    gate = OutputGate([], system_prompt=prompt, leak_words=6)
    assert gate.reason("민준의 게임 방송을 함께 진행하는 밝고 다정한 여우") == "system prompt leak"
    assert gate.reason("민준의 게임 정말 재미있어요") is None


def test_an_allowed_word_passes_in_hangul_too():
    allowed = BannedWords(BANNED, allow=["바보야"])
    assert allowed.find("바보야") is None
    assert allowed.find("바보가") == "바보"
