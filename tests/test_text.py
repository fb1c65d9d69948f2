"""The one word tokenizer (vtuber.text) and its folding helpers."""

from __future__ import annotations

import pytest

from vtuber.text import compact, count_words, fold, words


@pytest.mark.parametrize(
    "text, want",
    [
        ("Hello, world!", ["Hello", "world"]),
        ("café naïve Ærø", ["café", "naïve", "Ærø"]),  # Unicode letters, not just a-z
        ("top 10 of 2024", ["top", "10", "of", "2024"]),
        ("snake_case words", ["snake", "case", "words"]),  # "_" is never part of a word
        ("안녕하세요 여러분, 반가워요!", ["안녕하세요", "여러분", "반가워요"]),  # Hangul
        ("你好 世界", ["你好", "世界"]),  # CJK ideographs
        ("こんにちは、ミコです。", ["こんにちは", "ミコです"]),  # kana, split at CJK punctuation
        ("Привет мир", ["Привет", "мир"]),
        ("don't", ["don", "t"]),  # apostrophes split words by default
        ("", []),
        ("... !!! ---", []),
    ],
)
def test_words(text, want):
    assert words(text) == want


@pytest.mark.parametrize(
    "text, want",
    [
        ("Don't stop", ["Don't", "stop"]),
        ("don’t `quote`", ["don't", "'quote'"]),  # curly apostrophe and backtick read as '
        ("rock 'n' roll", ["rock", "'n'", "roll"]),
        ("it's 5 o'clock", ["it's", "5", "o'clock"]),
        ("' '' '", []),  # apostrophes alone are no words
        ("난 괜찮아'요", ["난", "괜찮아'요"]),
    ],
)
def test_words_with_apostrophes(text, want):
    assert words(text, apostrophes=True) == want


def test_words_without_digits_and_lower_case():
    assert words("WOW 100 Times", digits=False, lower=True) == ["wow", "times"]
    assert words("R2D2 says HI", digits=False) == ["R", "D", "says", "HI"]
    assert words("Ünïcode ÀB", lower=True) == ["ünïcode", "àb"]


def test_count_compact_fold():
    assert count_words("Hi there, friend.") == 3
    assert count_words("안녕 친구") == 2
    assert count_words("?!") == 0
    assert compact("CANARY-ab 12_x") == "CANARYab12x"
    assert compact("한 국-어") == "한국어"
    assert fold("  Hello,   WORLD!! 42 ") == "hello world 42"
    assert fold("같은   말!") == "같은 말"
