"""Unit tests for the clause splitter: what TTS gets to speak, and when."""

from __future__ import annotations

import re

import pytest

from vtuber.mind.splitter import ClauseSplitter, split_stream

# Most tests here check punctuation rules, so the first clause's phrase cut and eager end
# are off (they have their own tests at the end of the file).
CLASSIC = {"first_clause_words": 4, "first_clause_max_words": 0, "eager_first_end": False}


def split(pieces, **kw):
    return split_stream(pieces, **{**CLASSIC, **kw})



def tokens(text: str) -> list[str]:
    """LLM-like pieces: each word with the whitespace that follows it."""
    pieces = re.findall(r"\S+\s*|\s+", text)
    assert "".join(pieces) == text
    return pieces


def words_of(clauses: list[str]) -> list[str]:
    return " ".join(clauses).split()


REPLIES = [
    "Oh wow, that was a great jump. I think it costs 3.5 dollars today. Mr. Smith said hi!",
    "Hello there my good friend, welcome in! Grab a cushion; we are just getting started today.",
    "See e.g. the docs for more. Done!",
    "Tea break? Never a bad idea. I'll keep the seat warm, I promise, for sure.",
    'He said "wow." Then he left the room, and everyone laughed a lot.',
]


@pytest.mark.parametrize("text", REPLIES)
def test_token_by_token_matches_whole_text(text):
    whole = list(split([text]))
    assert list(split(tokens(text))) == whole
    # Even one character at a time: a clause never depends on where pieces were cut.
    assert list(split(list(text))) == whole


@pytest.mark.parametrize("text", REPLIES)
def test_joined_clauses_keep_every_word_in_order(text):
    clauses = list(split(tokens(text)))
    assert words_of(clauses) == text.split()
    assert all(c == c.strip() and c for c in clauses)


def test_first_clause_cut_early_at_comma_after_first_clause_words():
    sp = ClauseSplitter(first_clause_words=4, min_clause_words=6, first_clause_max_words=0)
    out = []
    for piece in tokens("Hey there my friend, this is a very long sentence that keeps going"):
        out += sp.feed(piece)
    # The comma after four words releases the first clause without waiting for a full stop.
    assert out == ["Hey there my friend,"]
    assert sp.pending.startswith("this is")


def test_first_clause_not_cut_at_comma_before_first_clause_words():
    clauses = list(split(tokens("Oh wow, that was a great jump. Yes.")))
    assert clauses == ["Oh wow, that was a great jump.", "Yes."]


def test_first_clause_words_is_configurable():
    clauses = list(split(tokens("Oh wow, that was a great jump. Yes."), first_clause_words=2))
    assert clauses == ["Oh wow,", "that was a great jump.", "Yes."]


def test_later_clauses_end_at_sentence_punctuation():
    clauses = list(split(tokens("Hi. Really? Yes! Okay then.")))
    assert clauses == ["Hi.", "Really?", "Yes!", "Okay then."]


def test_later_soft_breaks_only_after_min_clause_words():
    text = "First one here. a, b, c, d, e, f, g, h. Short one; yes. One two three four five six; seven."
    clauses = list(split(tokens(text), first_clause_words=4, min_clause_words=6))
    assert clauses == [
        "First one here.",
        "a, b, c, d, e, f,",  # the comma after the sixth word, not before
        "g, h.",
        "Short one; yes.",  # a semicolon after two words does not cut
        "One two three four five six;",
        "seven.",
    ]


@pytest.mark.parametrize("mark", [",", ";", ":", "—", "–"])
def test_every_soft_break_mark_cuts_a_long_later_clause(mark):
    text = f"Start. one two three four five six{mark} seven eight."
    assert list(split(tokens(text))) == ["Start.", f"one two three four five six{mark}", "seven eight."]


def test_decimals_do_not_split():
    text = "It costs 3.5 dollars and weighs 12.75 kilos. Next one."
    for pieces in ([text], tokens(text), list(text)):
        assert list(split(pieces)) == ["It costs 3.5 dollars and weighs 12.75 kilos.", "Next one."]


def test_sentence_ending_in_a_decimal_still_ends():
    assert list(split(tokens("It is 3.5. Next one."))) == ["It is 3.5.", "Next one."]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Mr. Smith said hi. Bye now.", ["Mr. Smith said hi.", "Bye now."]),
        ("Mrs. Jones and Dr. Who came. Bye now.", ["Mrs. Jones and Dr. Who came.", "Bye now."]),
        ("Bring snacks, e.g. tea and cake. Bye now.", ["Bring snacks, e.g. tea and cake.", "Bye now."]),
        ("Pick one, i.e. the red one. Bye now.", ["Pick one, i.e. the red one.", "Bye now."]),
        ("MR. BIG is here. Bye now.", ["MR. BIG is here.", "Bye now."]),
    ],
)
def test_abbreviations_do_not_split(text, expected):
    assert list(split(tokens(text))) == expected
    assert list(split([text])) == expected


def test_question_and_exclamation_with_closing_quote():
    clauses = list(split(tokens('She asked "why?" Then she laughed.')))
    assert clauses == ['She asked "why?"', "Then she laughed."]


def test_overlong_clause_without_punctuation_cut_at_a_space_before_max_chars():
    text = " ".join(f"word{i}" for i in range(60))  # ~400 chars, no punctuation
    clauses = list(split(tokens(text), max_chars=60))
    assert len(clauses) > 5
    assert all(len(c) <= 60 for c in clauses)
    # Cut at spaces only: no word is broken.
    assert words_of(clauses) == text.split()


def test_overlong_word_without_spaces_is_cut_at_max_chars():
    clauses = list(split(["x" * 200], max_chars=60))
    assert clauses == ["x" * 60, "x" * 60, "x" * 60, "x" * 20]


def test_overlong_run_then_full_stop_respects_max_chars_in_one_piece():
    # Whole text in one piece (or a long piece from a backend) must obey max_chars too,
    # the same as token-by-token feeding does.
    text = "Okay. " + " ".join(f"word{i}" for i in range(60)) + ". The end."
    streamed = list(split(tokens(text), max_chars=60))
    whole = list(split([text], max_chars=60))
    assert all(len(c) <= 60 for c in streamed)
    assert all(len(c) <= 60 for c in whole), [len(c) for c in whole]
    assert whole == streamed


def test_flush_returns_the_remainder():
    sp = ClauseSplitter(**CLASSIC)
    assert sp.feed("Hello there. And then") == ["Hello there."]
    assert sp.pending == "And then"
    assert sp.flush() == ["And then"]
    assert sp.pending == ""
    assert sp.flush() == []


def test_flush_of_unterminated_sentence_end():
    # "now." at the very end of the stream: no following space, so only flush releases it.
    sp = ClauseSplitter(**CLASSIC)
    assert sp.feed("See you now.") == []
    assert sp.flush() == ["See you now."]


@pytest.mark.parametrize("pieces", [[], [""], ["   "], ["", " ", "\n"]])
def test_empty_input_yields_nothing(pieces):
    assert list(split(pieces)) == []
    sp = ClauseSplitter(**CLASSIC)
    for p in pieces:
        assert sp.feed(p) == []
    assert sp.flush() == []


def test_no_empty_or_whitespace_clauses_from_punctuation_runs():
    clauses = list(split(tokens("Wow!!! Really?! Okay... fine.")))
    assert all(c.strip() for c in clauses)
    assert words_of(clauses) == "Wow!!! Really?! Okay... fine.".split()


def test_number_after_sentence_end_splits_the_same_streamed_or_whole():
    # "3. 4" is a sentence ending in a number followed by a new sentence, not a decimal.
    text = "I scored 3. 4 more to go."
    whole = list(split([text]))
    assert whole == list(split(tokens(text)))
    assert whole == ["I scored 3.", "4 more to go."]


def test_sentence_ending_in_no_is_a_sentence_end():
    # "No." is only an abbreviation before a number ("No. 5"); "Oh no." ends a sentence.
    assert list(split(tokens("Oh no. That is sad."))) == ["Oh no.", "That is sad."]


def test_first_clause_ends_at_a_phrase_boundary():
    text = "I am so happy to have you here with us today, friend."
    clauses = list(split_stream(tokens(text)))
    assert clauses == ["I am so happy", "to have you here with us today,", "friend."]
    assert list(split_stream([text])) == list(split_stream(list(text)))


def test_first_clause_is_cut_after_max_words_without_punctuation():
    clauses = list(split_stream(tokens("Sam is playing a really fun game called Hollow Knight tonight.")))
    assert clauses[0] == "Sam is playing a really fun game"
    assert " ".join(clauses).split() == "Sam is playing a really fun game called Hollow Knight tonight.".split()


def test_phrase_cut_applies_to_the_first_clause_only():
    clauses = list(split_stream(tokens("Oh, hi. I am so happy to have you here with us today and forever.")))
    assert clauses == ["Oh, hi.", "I am so happy to have you here with us today and forever."]


def test_a_growing_last_word_is_not_cut():
    sp = ClauseSplitter()
    assert sp.feed("one two three four five six sev") == []
    assert sp.feed("en eight ") == ["one two three four five six seven"]


# --- the first clause ends at its punctuation without waiting for the next token ---

EAGER = {"first_clause_words": 2, "first_clause_max_words": 0}


@pytest.mark.parametrize(
    "text, first",
    [
        ("Hi!", "Hi!"),
        ("Oh no.", "Oh no."),
        ("Really?", "Really?"),
        ("Sam, hi,", "Sam, hi,"),
        ("Miko:", None),  # one word: a soft break needs first_clause_words
        ("It costs 3.", None),  # maybe 3.5
        ("We have 1,", None),  # maybe 1,000
        ("Ask Mr.", None),
        ("Made in the U.S.", None),
    ],
)
def test_the_first_clause_ends_at_its_last_character(text, first):
    sp = ClauseSplitter(**EAGER)
    assert sp.feed(text) == ([first] if first else [])


def test_only_the_first_clause_is_eager():
    sp = ClauseSplitter(**EAGER)
    assert sp.feed("Hi!") == ["Hi!"]
    assert sp.feed(" This is a longer second sentence.") == []  # waits for the space, as before
    assert sp.feed(" And") == ["This is a longer second sentence."]


def test_what_an_eager_cut_leaves_behind_is_not_spoken():
    sp = ClauseSplitter(**EAGER)
    assert sp.feed("What?") == ["What?"]
    assert sp.feed("!") == []
    assert sp.feed(" No way.") == []
    assert sp.flush() == ["No way."]
    sp = ClauseSplitter(**EAGER)
    assert sp.feed('He said "wow.') == ['He said "wow.']
    assert sp.feed('" Then he left. ') == ["Then he left."]


def test_restart_makes_the_next_clause_the_first_again():
    sp = ClauseSplitter(first_clause_words=2, min_clause_words=6, first_clause_max_words=0)
    assert sp.feed("Miko, alice:") == ["Miko, alice:"]
    assert sp.feed(" oh hey,") == []  # a later clause needs 6 words before a comma
    sp.restart()  # the mind dropped "Miko, alice:" as a speaker tag
    assert sp.feed(" there") == ["oh hey,"]
