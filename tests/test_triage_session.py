"""Triage through a whole session (scripted model and voice, the fast clock): thank-yous
batched by the real thanks plugin, idle talk on a quiet stream, and counters that add up."""

from __future__ import annotations

import asyncio
import dataclasses

from scripted_llm import ScriptedLLM
from test_cancel import FakeTTS, NoVAD

from vtuber.clock import FastClock
from vtuber.config import load_config
from vtuber.events import ChatMessage, StreamEvent
from vtuber.mind.persona import load_persona
from vtuber.pipeline import Engine, Session
from vtuber.plugins.builtin import ThankYou
from vtuber.sources import ChatScriptSource

LONG = "Well, that is a lovely thing to say, and I could talk about tea and games and cozy nights for a long while."


def session(llm, overrides=None, persona=None):
    cfg = load_config(overrides={"plugins": {"enabled": []}, **(overrides or {})})
    persona = persona or load_persona("miko")
    engine = Engine(cfg, persona, None, llm, None, FakeTTS(), NoVAD(), "CANARY-0000000000")
    return Session(engine, FastClock(), plugins=[ThankYou()])


async def test_subs_that_arrive_while_she_talks_are_thanked_in_one_line():
    llm = ScriptedLLM([LONG] * 4, delay=0.01)
    s = session(llm)
    script = [ChatMessage("amy", "tell me about tea?", 0.1)]
    script += [StreamEvent("sub", name, 0.5 + i / 10) for i, name in enumerate(["Ann", "Bo", "Cy", "Di", "Ed"])]
    script += [StreamEvent("raid", "bigfriend", 1.2, amount=30)]
    await asyncio.wait_for(s.run([ChatScriptSource(script)]), 60)
    lines = [r.reply_text for r in s.recorder.finished() if r.kind == "line"]
    subs = [line for line in lines if "subscribing" in line]
    # Every sub is thanked once; those that waited together share one line.
    assert any(" and " in line for line in subs) and len(subs) < 5
    named = " ".join(subs)
    others = sum(int(w) for w in named.replace("others", "").split() if w.isdigit())
    assert sum(name in named for name in ["Ann", "Bo", "Cy", "Di", "Ed"]) + others == 5
    assert lines[-1] == "Welcome, raiders! Thank you for the raid, bigfriend!"  # another kind: its own line
    assert s.director.counters["merged"] == 5 - len(subs)
    assert s.director.balance()["adds_up"]


async def test_idle_talk_on_a_quiet_stream_uses_the_persona_topics():
    llm = ScriptedLLM(["Oh, did you know foxes love tea?"] * 3)
    persona = dataclasses.replace(load_persona("miko"), idle_topics=("tea", "retro games"))
    s = session(llm, {"director": {"idle_after_s": 20.0}}, persona)
    script = [ChatMessage("amy", "hi!", 1.0), ChatMessage("bo", "still here?", 70.0)]
    await asyncio.wait_for(s.run([ChatScriptSource(script)]), 60)
    idle = [r for r in s.recorder.finished() if r.kind == "idle"]
    # quiet from about 1 s to 70 s: idle talk every 20 quiet seconds, the topics in turn
    assert [r.input_text for r in idle] == ["tea", "retro games", "tea"]
    assert 21.0 <= idle[0].t_input and all(b.t_input - a.t_input >= 20.0 for a, b in zip(idle, idle[1:]))
    assert idle[-1].t_input < 70.0
    prompts = [m[-1]["content"] for m in llm.seen]
    assert "(Chat is quiet. Say one short thing to chat about tea.)" in prompts
