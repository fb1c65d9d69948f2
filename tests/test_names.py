"""User names are said, shown and put in the prompt: an unsafe one becomes a neutral name."""

from __future__ import annotations

import asyncio
import dataclasses

from scripted_llm import ScriptedLLM
from test_cancel import FakeTTS, NoVAD
from vtuber.clock import FastClock
from vtuber.config import load_config
from vtuber.events import Announcement, ChatMessage, ReplyClause, StreamEvent, Turn
from vtuber.mind.persona import load_persona
from vtuber.pipeline import NEUTRAL_NAME, Engine, Session
from vtuber.sources import ChatScriptSource


def run(inputs):
    cfg = load_config(overrides={"director": {"max_age_s": 600.0, "busy_max_age_s": 0.0}, "plugins": {"enabled": ["thanks"]}})
    persona = dataclasses.replace(load_persona("miko"), banned_words=["potato", "darn"])
    # Says hello to whoever the last prompt message is from (the author is quoted first).
    llm = ScriptedLLM(lambda messages: [f"Hello there, {messages[-1]['content'].split(':', 1)[0]}! Nice to see you."])
    engine = Engine(cfg, persona, None, llm, None, FakeTTS(), NoVAD(), "CANARY-0000000000")
    session = Session(engine, FastClock())
    seen = []
    session.observers.append(seen.append)
    asyncio.run(asyncio.wait_for(session.run([ChatScriptSource(inputs)]), 60))
    said = [e.text for e in seen if isinstance(e, ReplyClause)]
    shown = [e for e in seen if isinstance(e, (ChatMessage, StreamEvent, Announcement, Turn))]
    return session, llm, said, shown


def test_unsafe_names_in_events_are_thanked_with_the_neutral_name():
    events = [
        StreamEvent("raid", "MrPotatoHead", 1.0, amount=40),
        StreamEvent("follow", "DarnItAll", 2.0),
        StreamEvent("sub", "xX_d4rn_Xx", 3.0),
        StreamEvent("gift", "potatolover99", 4.0, amount=5),
        StreamEvent("follow", "Annie", 5.0),
    ]
    session, _llm, said, shown = run(events)
    text = " ".join(said)
    assert text.count(NEUTRAL_NAME) == 4, said
    assert "Annie" in text  # a safe name is still thanked by name
    for name in ("MrPotatoHead", "DarnItAll", "xX_d4rn_Xx", "potatolover99"):
        assert name not in text
        assert all(name not in getattr(e, "user", "") for e in shown)  # nor shown anywhere
    assert session.names_replaced == 4
    assert not session.all_blocked()  # nothing reached the gate to be blocked


def test_an_unsafe_chat_name_never_reaches_the_prompt():
    chat = [
        ChatMessage(user="MrPotatoHead", text="hi Miko, how are you?", t=1.0),
        ChatMessage(user="bea", text="hello Miko!", t=5.0),
    ]
    session, llm, said, _shown = run(chat)
    prompts = [m[-1]["content"] for m in llm.seen]
    assert prompts[0].startswith(NEUTRAL_NAME + ":") and "Potato" not in prompts[0]
    assert prompts[1].startswith("bea:")
    assert any("bea" in s for s in said)
    assert session.names_replaced == 1
