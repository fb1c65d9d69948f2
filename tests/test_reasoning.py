"""Reasoning models' thinking never leaves the backend; model choices without code (unit tests)."""

from __future__ import annotations

import pytest

from vtuber.config import load_config
from vtuber.errors import UserError
from vtuber.mind.persona import persona_from_dict, persona_to_dict
from vtuber.mind.reasoning import ThinkFilter, no_think, strip_thinking
from vtuber.model_check import inventory


def run(pieces, starts_thinking=False):
    filt = ThinkFilter(starts_thinking)
    return "".join(strip_thinking(pieces, filt=filt)), filt


@pytest.mark.parametrize(
    "pieces",
    [
        ["<think>plan BANANA</think>Hello chat!"],
        ["<th", "ink>", "plan BAN", "ANA</th", "ink>", "\n\nHello chat!"],
        list("<think>plan BANANA</think>\nHello chat!"),  # one character a piece
        ["<think>\n\n</think>\n\n", "Hello chat!"],  # an empty thinking part (Qwen3 with /no_think)
    ],
)
def test_thinking_is_taken_out_however_the_pieces_fall(pieces):
    text, filt = run(pieces)
    assert text == "Hello chat!"
    assert filt.stray_close == 0


def test_a_template_that_opens_the_thinking_itself():
    text, filt = run(["The user says hi. BANANA", " plan.</think>", "\n\nHi there!"], starts_thinking=True)
    assert text == "Hi there!" and filt.thought_chars > 10
    # The same setting on a reply with no thinking at all: the held text is the answer.
    text, filt = run(["Just an answer,", " no thinking."], starts_thinking=True)
    assert text == "Just an answer, no thinking." and filt.thinking_s == 0.0


def test_text_that_only_looks_like_a_tag_is_kept():
    assert run(["a < b, and <thin", "g> stays"])[0] == "a < b, and <thing> stays"
    assert run(["ends with <th"])[0] == "ends with <th"


def test_a_close_without_an_open_is_counted_and_dropped():
    text, filt = run(["oops</think>answer"])
    assert text == "oopsanswer" and filt.stray_close == 1


def test_cut_off_while_thinking_says_nothing():
    text, filt = run(["<think>still thinking about BANANA"])
    assert text == "" and filt.thought_chars == len("still thinking about BANANA")


def test_thinking_time_is_measured_apart():
    t = [0.0]
    filt = ThinkFilter(clock=lambda: t[0])
    filt.feed("<think>hmm")
    t[0] = 1.5
    filt.feed(" done</think>Hi")
    t[0] = 9.0
    assert filt.thinking_s == 1.5
    filt2 = ThinkFilter(clock=lambda: t[0])
    filt2.reasoning("a separate reasoning field")
    assert filt2.thought_chars > 0 and filt2.feed("Hi") == "Hi"


def test_no_think_asks_once_in_the_system_prompt():
    msgs = [{"role": "system", "content": "You are Miko."}, {"role": "user", "content": "hi"}]
    out = no_think(msgs)
    assert out[0]["content"] == "You are Miko. /no_think" and msgs[0]["content"] == "You are Miko."
    assert no_think(out) == out


def test_persona_names_its_own_model_and_thinking(tmp_path):
    base = {"name": "Rin", "description": "a fox", "speaking_style": "short", "greeting": "hi"}
    p = persona_from_dict({**base, "model": {"llm": "http://127.0.0.1:8080/v1", "think": False}}, "rin.yaml")
    assert p.model.llm == "http://127.0.0.1:8080/v1" and p.model.think is False
    assert persona_to_dict(p)["model"] == {"llm": "http://127.0.0.1:8080/v1", "think": False}
    with pytest.raises(UserError, match="'model' takes llm"):
        persona_from_dict({**base, "model": {"gpu": 1}}, "rin.yaml")
    from vtuber.models import with_persona_model

    cfg = with_persona_model(load_config(), p)
    assert cfg.models.llm == "http://127.0.0.1:8080/v1" and cfg.llm.think is False
    assert load_config().llm.think is True  # the config itself is untouched
    set_in_config = load_config(overrides={"models": {"llm": "http://10.0.0.1:1/v1"}})
    assert with_persona_model(set_in_config, p).models.llm == "http://10.0.0.1:1/v1"  # the config wins
    missing = persona_from_dict({**base, "model": {"llm": str(tmp_path / "nope.gguf")}}, "rin.yaml")
    with pytest.raises(UserError, match="nope.gguf does not exist"):
        with_persona_model(load_config(), missing)


def test_models_list_names_servers_fallbacks_and_bundled_models():
    base = {"name": "Rin", "description": "a fox", "speaking_style": "short", "greeting": "hi"}
    persona = persona_from_dict(base, "rin.yaml")
    rows = inventory(load_config(), persona)
    assert [(r.part, r.use, r.source) for r in rows] == [("LLM", "in use", "bundled"), ("ASR", "in use", "bundled"), ("TTS", "in use", "bundled")]
    assert all(r.size and r.size > 1_000_000 for r in rows)
    cfg = load_config(overrides={"models": {"llm": "http://127.0.0.1:8080/v1", "voice": "tcp://127.0.0.1:10200"}, "llm_server": {"model": "qwen3"}})
    rows = inventory(cfg, persona)
    got = [(r.part, r.use, r.source) for r in rows]
    assert got == [
        ("LLM", "in use", "server"), ("LLM", "fallback", "bundled"),
        ("ASR", "in use", "bundled"),
        ("TTS", "in use", "server"), ("TTS", "fallback", "bundled"),
    ]
    assert rows[0].what == "http://127.0.0.1:8080/v1 (model qwen3)" and rows[0].size is None


def test_server_settings_are_checked():
    for key, value, msg in (
        ("first_token_s", 0.0, "first_token_s must be in"),
        ("retries", 99, "retries must be in"),
        ("connect_timeout_s", -1.0, "connect_timeout_s must be in"),
    ):
        with pytest.raises(UserError, match=msg):
            load_config(overrides={"llm_server": {key: value}})
    with pytest.raises(UserError, match="unknown key"):
        load_config(overrides={"llm_server": {"url": "x"}})
