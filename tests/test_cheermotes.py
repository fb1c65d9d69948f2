"""A paid message's cheermotes ("cheer100") are taken out before the co-host reads it."""

from __future__ import annotations

import asyncio

import pytest

from vtuber.intake import strip_cheermotes
from vtuber.sources import ChatScriptSource


@pytest.mark.parametrize(
    "text, bits, kept",
    [
        ("cheer100 go Sam go, you can beat this boss!", 100, "go Sam go, you can beat this boss!"),
        ("Cheer50 Kappa50 hi", 100, "hi"),  # several, any case
        ("so good 4Head100", 100, "so good"),  # a prefix that starts with a digit
        ("myemote25 hello", 25, "hello"),  # a channel's own: its amount is the message's bits
        ("beat level3 pls cheer10", 10, "beat level3 pls"),  # a word with a number stays
        ("gg2 nice", 0, "gg2 nice"),  # no bits: nothing is a cheermote
        ("level3 cheer5", 100, "level3"),  # amounts do not add up: only the known prefix goes
        ("cheer100", 100, "cheer100"),  # nothing but the cheer: kept (it is still thanked)
    ],
)
def test_cheermotes_come_out_of_the_text(text, bits, kept):
    assert strip_cheermotes(text, bits) == kept


def test_the_model_reads_a_cheer_without_its_cheermote():
    from stream_helpers import chat, scripted_session

    session = scripted_session(["Thank you, carol!"])
    msg = chat(0.1, "cheer100 go Sam go, you can beat this boss!", user="carol", bits=100)
    rec = asyncio.run(session.run([ChatScriptSource([msg])]))
    prompt = session.engine.llm.seen[0][-1]["content"]
    assert "go Sam go, you can beat this boss!" in prompt
    assert "cheer100" not in prompt.lower()
    assert [r.input_text for r in rec.records.values()] == ["go Sam go, you can beat this boss!"]
