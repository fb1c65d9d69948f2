"""Reply quality checks read words in every script (a Korean persona's replies too)."""

from __future__ import annotations

from vtuber.mind.quality import is_echo, reply_flags, words


def test_words_are_lower_case_with_apostrophes_kept():
    assert words("Don't STOP, it's 5 o'clock!") == ["don't", "stop", "it's", "5", "o'clock"]


def test_a_korean_reply_is_not_empty():
    assert words("안녕하세요! 오늘도 같이 놀아요.") == ["안녕하세요", "오늘도", "같이", "놀아요"]
    assert "empty" not in reply_flags("안녕하세요! 오늘도 같이 놀아요.", "안녕 미코", [], "미코")


def test_a_korean_reply_that_repeats_the_message_is_an_echo():
    message = "오늘 저녁에 같이 게임 하자 재미있을 거야"
    assert is_echo(message + "!", message)
    assert not is_echo("좋아요, 무슨 게임이 좋을까요?", message)
