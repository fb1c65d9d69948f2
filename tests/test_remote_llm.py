"""The LLM on an OpenAI-compatible server (real servers on 127.0.0.1): llama.cpp's Python
server with the bundled GGUF, and a replaying server for streams a small model will not
write (thinking, malformed, slow). The local bundled model is the fallback."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest
from rich.console import Console

from conftest import words
from servers import DONE, ReplayServer, delta, free_port, llama_server, sse, wait_models  # noqa: F401
from vtuber.audio import read_wav_16k_mono
from vtuber.config import load_config
from vtuber.errors import UserError
from vtuber.events import ChatMessage
from vtuber.mind.remote import FallbackBackend, RemoteBackend, RemoteError, api_key
from vtuber.models import resolve
from vtuber.outputs.console import ConsoleOutput
from vtuber.outputs.recorder import Recorder
from vtuber.pipeline import Engine
from vtuber.rehearsal import RehearsalInputs, run_rehearsal
from vtuber.services import make_llm

KEY = "test-key-13"
MSGS = [
    {"role": "system", "content": "You are Miko, a cheerful fox who co-hosts a game stream."},
    {"role": "user", "content": "alice: hi Miko, how are you today?"},
]


@pytest.fixture(scope="module")
def llama(engine, tmp_path_factory):
    port = free_port()
    srv = llama_server(engine.paths.llm, port, tmp_path_factory.mktemp("llama") / "server.log", api_key=KEY).start()
    url = f"http://127.0.0.1:{port}/v1"
    wait_models(url, KEY)
    srv.url = url
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _local_cancel_restored(engine):
    """FallbackBackend shares its cancel flag with the local model: give the session engine its own back."""
    flag = engine.llm.cancel
    yield
    engine.llm.cancel = flag
    flag.clear()


def server_cfg(url: str, **llm_server):
    base = {"first_token_s": 4.0, "retry_after_s": 30.0, "connect_timeout_s": 1.0}
    return load_config(overrides={"models": {"llm": url}, "llm_server": {**base, **llm_server}, "hearing": {"barge_in": False}})


def fallback(engine, url: str, key: str | None = KEY, local=True, **llm_server) -> tuple[object, FallbackBackend]:
    cfg = server_cfg(url, **llm_server)
    backend = FallbackBackend(RemoteBackend(url, cfg, key), engine.llm if local else None, cfg.llm_server.retry_after_s)
    return cfg, backend


def remote_engine(engine, cfg, backend) -> Engine:
    return Engine(cfg, engine.persona, engine.paths, backend, engine.asr, engine.tts, engine.vad, engine.canary)


def chat_inputs(*lines: str, gap: float = 4.0) -> RehearsalInputs:
    users = ["alice", "bob", "carol", "dave"]
    chat = [ChatMessage(user=users[i % 4], text=t, t=0.5 + i * gap, source="test", id=f"m{i}") for i, t in enumerate(lines)]
    return RehearsalInputs(chat=chat)


def run_stream(backend, msgs=MSGS, max_tokens=24) -> str:
    return backend.call(lambda: "".join(backend.stream(msgs, max_tokens)))


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("vtuber")]


# --- the llama.cpp server ---------------------------------------------------------------


def test_rehearsal_through_the_server_streams_clause_by_clause(engine, llama, tmp_path):
    cfg, backend = fallback(engine, llama.url, first_token_s=20.0)
    eng = remote_engine(engine, cfg, backend)
    backend.warm([MSGS[0]])
    inputs = chat_inputs("hi Miko! how are you today?", "what game is Sam playing?", "do you like tea or coffee?")
    session, written = run_rehearsal(eng, inputs, tmp_path / "out", fast=True)
    records = session.recorder.finished()
    assert [r.kind for r in records] == ["chat"] * 3
    for r in records:
        assert words(r.reply_text), r.reply_text
        assert r.t_first_clause is not None and r.t_first_audio is not None
    # Clause by clause: the first clause of a reply was sent before the reply was whole.
    multi = [r for r in records if len(r.clauses) >= 2]
    assert multi, [r.clauses for r in records]
    assert all(r.t_first_clause < r.t_done for r in multi)
    # Every generation went to the server (a reply whose first clause the mind redid asks twice).
    redone = sum(r.attempts - 1 for r in records)
    assert backend.counts["remote"] == 3 + redone and backend.counts["local"] == 0 and backend.counts["fallbacks"] == 0, backend.counts
    timings = json.loads(written["timings.json"].read_text(encoding="utf-8"))
    assert timings["models"]["llm"]["turns_remote"] == 3 + redone and timings["models"]["llm"]["fallbacks"] == 0
    assert session.errors == []


def test_cancelled_turn_ends_the_llama_stream_at_once(engine, llama):
    cfg, backend = fallback(engine, llama.url, first_token_s=20.0)
    got, finished = [], threading.Event()

    def consume():
        for piece in backend.stream(MSGS, 400):
            got.append(piece)
        finished.set()

    backend.cancel.clear()
    backend.executor.submit(consume)
    end = time.monotonic() + 20
    while not got and time.monotonic() < end:
        time.sleep(0.01)
    assert got, "no token from the server"
    t0 = time.monotonic()
    backend.cancel.set()
    assert finished.wait(2.0), "the stream did not stop within 2 s of the cancel"
    assert time.monotonic() - t0 < 2.0
    assert backend.remote._conn is None  # the connection is closed, not left to finish
    assert len(got) < 400
    backend.cancel.clear()
    assert words(run_stream(backend))  # the next turn streams normally


def test_api_key_from_the_environment_and_the_token_file(llama, monkeypatch):
    from vtuber.tokens import TokenStore

    cfg = server_cfg(llama.url, fallback=False)
    monkeypatch.delenv("VTUBER_LLM_SERVER", raising=False)
    assert api_key(cfg) is None
    TokenStore().set("llm_server", KEY)
    assert api_key(cfg) == KEY
    backend = make_llm(cfg, resolve(cfg))  # no fallback: no local model loaded
    backend.remote.check()
    monkeypatch.setenv("VTUBER_LLM_SERVER", "wrong")  # the environment wins over the file
    with pytest.raises(RemoteError, match="refused the API key"):
        make_llm(cfg, resolve(cfg)).remote.check()
    backend.close()


def test_config_with_a_server_url_loads_and_keeps_the_key_out(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[models]\nllm = "http://127.0.0.1:9/v1"\n[llm_server]\nmodel = "qwen3"\n', encoding="utf-8")
    cfg = load_config(good)
    assert cfg.llm_server.model == "qwen3"
    assert resolve(cfg).llm_url == "http://127.0.0.1:9/v1"
    leaked = tmp_path / "leak.toml"
    leaked.write_text('[llm_server]\napi_key = "sk-123"\n', encoding="utf-8")
    with pytest.raises(UserError, match="looks like a secret"):
        load_config(leaked)
    for bad, msg in (("http://", "with a host"), ("ftp://host/v1", "http:// or https://"), ("http://h:99999/v1", "not a valid URL")):
        with pytest.raises(UserError, match=msg):
            resolve(load_config(overrides={"models": {"llm": bad}}))
    with pytest.raises(UserError, match="tcp://host:port"):
        resolve(load_config(overrides={"models": {"asr": "http://host:10300"}}))


# --- fallback ---------------------------------------------------------------------------


def test_server_stopped_mid_session_falls_back_then_comes_back(engine, tmp_path, caplog):
    port = free_port()
    srv = llama_server(engine.paths.llm, port, tmp_path / "server.log").start()
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_models(url)
        cfg, backend = fallback(engine, url, key=None, first_token_s=3.0, retry_after_s=5.0)
        backend.warm([MSGS[0]])
        assert words(run_stream(backend)) and backend.turns[-1]["backend"] == "remote"
        srv.stop()
        caplog.clear()
        t0 = time.monotonic()
        text = run_stream(backend)
        assert words(text)  # the local model answered this turn
        rec = backend.turns[-1]
        assert rec["backend"] == "local" and rec["fallback_s"] < cfg.llm_server.first_token_s
        assert backend.counts["fallbacks"] == 1
        lines = warnings_of(caplog)
        assert len(lines) == 1 and "not reachable" in lines[0] and "falls back to the local model" in lines[0], lines
        assert time.monotonic() - t0 < 30
        # Within retry_after_s the server is not asked (no wait, no new line).
        caplog.clear()
        run_stream(backend)
        assert backend.turns[-1]["backend"] == "local" and warnings_of(caplog) == []
        srv.start()
        wait_models(url)
        time.sleep(max(backend.down_until - time.monotonic(), 0.0))  # the server is asked again after retry_after_s
        caplog.clear()
        assert words(run_stream(backend))
        assert backend.turns[-1]["backend"] == "remote" and backend.counts["remote"] == 2
        assert any("is answering again" in line for line in warnings_of(caplog))  # the return is seen and said
    finally:
        srv.stop()


@pytest.mark.parametrize("server", ["silent", "pings_only"])
def test_first_token_later_than_the_deadline_falls_back(engine, caplog, server):
    """A server that accepts and never answers, or sends its headers and keep-alive lines
    but no token: the turn goes local at the deadline."""
    with socket.socket() as hung, ReplayServer() as srv:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        srv.script = [(0.3, b": ping\n\n") for _ in range(20)] + [delta("too late"), DONE]
        url = f"http://127.0.0.1:{hung.getsockname()[1]}/v1" if server == "silent" else srv.url
        cfg, backend = fallback(engine, url, key=None, first_token_s=0.8)
        t0 = time.monotonic()
        text = run_stream(backend)
        took = time.monotonic() - t0
    assert words(text) and "too late" not in text
    rec = backend.turns[-1]
    assert rec["backend"] == "local"
    assert 0.7 <= rec["fallback_s"] <= 0.8 + 1.0, rec
    assert took < 0.8 + 10
    lines = warnings_of(caplog)
    assert len(lines) == 1 and "no first token within 0.8 s" in lines[0], lines


def test_a_server_that_accepts_and_never_answers_holds_the_start_a_few_seconds_at_most(engine, caplog):
    """Warm-up with a local fallback: the session goes live on the local model, not after 30 s."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}/v1"
        cfg, backend = fallback(engine, url, key=None)
        engine.llm.warm([MSGS[0]])  # the local model's part of the warm-up, done already (cached)
        t0 = time.monotonic()
        backend.warm([MSGS[0]])
        took = time.monotonic() - t0
    # The check (GET /models) gets no answer within connect_timeout_s: live on the local model.
    assert took < cfg.llm_server.connect_timeout_s + 2.0, took
    assert not backend.usable()  # asked again after retry_after_s
    lines = warnings_of(caplog)
    assert len(lines) == 1 and "starting on the local model" in lines[0], lines


# --- user mistakes: one line each, the session goes on ------------------------------------


@pytest.mark.parametrize(
    "case, expect",
    [
        ("wrong_url", "not reachable (connection refused)"),
        ("bad_key", "refused the API key (HTTP 401)"),
        ("unknown_model", "has no model 'no-such-model'"),
    ],
)
def test_user_mistakes_are_one_line_and_the_local_model_answers(engine, llama, caplog, case, expect):
    url, key, extra = llama.url, KEY, {}
    if case == "wrong_url":
        url = f"http://127.0.0.1:{free_port()}/v1"
    elif case == "bad_key":
        key = "not-the-key"
    else:
        extra = {"model": "no-such-model"}
    cfg, backend = fallback(engine, url, key=key, **extra)
    backend.warm([MSGS[0]])
    lines = warnings_of(caplog)
    assert len(lines) == 1 and expect in lines[0] and "starting on the local model" in lines[0], lines
    assert "\n" not in lines[0]
    assert words(run_stream(backend)) and backend.turns[-1]["backend"] == "local"


def test_without_fallback_a_mistake_is_a_user_error(engine, llama):
    cfg, backend = fallback(engine, llama.url, key="nope", local=False)
    with pytest.raises(UserError, match="refused the API key"):
        backend.warm([MSGS[0]])
    backend.close()


def test_malformed_stream_and_http_errors_go_local_and_the_session_goes_on(engine, tmp_path, caplog):
    with ReplayServer() as srv:
        srv.script = [delta("Hello"), b"data: {this is not json\n\n", DONE]
        cfg, backend = fallback(engine, srv.url, key=None, retry_after_s=0.0)
        text = run_stream(backend)
        # "Hello" was already said when the stream broke: the reply ends there, one line.
        assert text == "Hello"
        lines = warnings_of(caplog)
        assert len(lines) == 1 and "malformed stream" in lines[0] and "the reply ends here" in lines[0], lines
        caplog.clear()
        srv.script = [b"data: {this is not json\n\n", DONE]
        eng = remote_engine(engine, cfg, backend)
        session, _ = run_rehearsal(eng, chat_inputs("hi Miko! how are you today?"), tmp_path / "out", fast=True)
        (r,) = session.recorder.finished()
        assert words(r.reply_text) and session.errors == []
        assert backend.turns[-1]["backend"] == "local"
        lines = warnings_of(caplog)
        assert len(lines) == 1 and "malformed stream" in lines[0] and "falls back" in lines[0], lines
        caplog.clear()
        srv.status = 500
        assert words(run_stream(backend))
        lines = warnings_of(caplog)
        assert len(lines) == 1 and "HTTP 500: replayed error" in lines[0], lines


# --- the replaying server: gate, thinking, cancel ---------------------------------------------


def test_the_gate_still_applies_to_server_replies(engine, tmp_path):
    banned = tmp_path / "banned.txt"
    banned.write_text("potato\n", encoding="utf-8")
    with ReplayServer() as srv:
        srv.script = [delta("I really"), delta(" love potato"), delta(" chips, honestly."), delta(" Hello chat,"), delta(" welcome in!"), DONE]
        cfg, backend = fallback(engine, srv.url, key=None)
        cfg.safety.banned_words_file = str(banned)
        session, _ = run_rehearsal(remote_engine(engine, cfg, backend), chat_inputs("what do you like?"), tmp_path / "out", fast=True)
    (r,) = session.recorder.finished()
    assert "potato" not in r.reply_text.lower()
    assert cfg.safety.safe_line.casefold() in r.reply_text.casefold()  # (after an opener: "Ooh, let's keep...")
    assert any("potato" in clause.lower() for _, clause, _ in session.all_blocked())
    assert backend.turns[-1]["backend"] == "remote"


THINKING = [
    delta("<th"), delta("ink>\nThe user greets me. Secret plan:"), (0.3, delta(" BANANA-PLAN, say it l")),
    delta("ater.</thi"), delta("nk>\n\n"), delta("Hello chat,"), delta(" so nice to see you all here!"), DONE,
]
REASONING_FIELD = [
    delta(reasoning="Thinking about the BANANA-FIELD question"), (0.3, delta(reasoning=" quietly.")),
    delta(content="Tea, always tea,"), delta(content=" with a biscuit on the side."), DONE,
]


def test_thinking_is_never_spoken_shown_or_written(engine, tmp_path):
    with ReplayServer() as srv:
        cfg, backend = fallback(engine, srv.url, key=None)
        eng = remote_engine(engine, cfg, backend)
        # One stream with <think> tags split across pieces, one with a separate reasoning field.
        scripts = iter([THINKING, REASONING_FIELD])
        original = backend.remote.events

        def events(messages, max_tokens, filt, first_token_s=None):
            srv.script = next(scripts)
            return original(messages, max_tokens, filt, first_token_s)

        backend.remote.events = events
        console = Console(record=True, width=200, force_terminal=False)
        recorder = Recorder()
        out = tmp_path / "out"
        session, written = run_rehearsal(
            eng, chat_inputs("hi Miko!", "tea or coffee?"), out, fast=True,
            outputs=[ConsoleOutput(recorder, engine.persona.name, console)], recorder=recorder,
        )
    records = session.recorder.finished()
    assert len(records) == 2
    shown = console.export_text()
    files = "".join(p.read_text(encoding="utf-8") for p in (out / "transcript.md", out / "timings.json"))
    replies = " ".join(r.reply_text for r in records)
    clauses = " ".join(c.get("text", "") for r in records for c in r.clauses)
    assert "hello chat" in replies.casefold() and "tea, always tea" in replies.casefold()  # (after her openers)
    assert "hello chat" in shown.casefold()
    for where in (replies, clauses, shown, files):
        assert "banana" not in where.lower() and "<think" not in where and "secret plan" not in where.lower()
    # Nothing of it heard either: Whisper on the replies' audio.
    heard = engine.asr.transcribe(read_wav_16k_mono(out / "replies.wav"))  # the report's audio, as written
    assert "hello" in heard.lower() and "banana" not in heard.lower(), heard
    # Thinking time is measured apart (the scripts think for at least 0.3 s each).
    thinking = [t["thinking_s"] for t in backend.turns[-2:]]
    assert all(t >= 0.25 for t in thinking), thinking
    assert backend.report()["thinking_s_total"] >= 0.5


def test_no_think_asks_the_server_not_to_think(engine):
    with ReplayServer() as srv:
        srv.script = [delta("<think>\n\n</think>\n\nHi!"), DONE]
        cfg, backend = fallback(engine, srv.url, key=None)
        backend.no_think = True
        assert run_stream(backend) == "Hi!"
        body = srv.requests[-1]
        assert body["chat_template_kwargs"] == {"enable_thinking": False}
        assert body["messages"][0]["content"].endswith("/no_think") and body["stream"] is True
        backend.no_think = False
        run_stream(backend)
        assert "chat_template_kwargs" not in srv.requests[-1] and "/no_think" not in srv.requests[-1]["messages"][0]["content"]


def test_a_cancelled_turn_closes_its_http_stream(engine):
    with ReplayServer() as srv:
        srv.script = [delta("Hello there,"), *[(0.2, delta(" and more")) for _ in range(50)], DONE]
        cfg, backend = fallback(engine, srv.url, key=None)
        got, finished = [], threading.Event()

        def consume():
            for piece in backend.stream(MSGS, 400):
                got.append(piece)
            finished.set()

        backend.cancel.clear()
        backend.executor.submit(consume)
        end = time.monotonic() + 10
        while not got and time.monotonic() < end:
            time.sleep(0.01)
        assert got == ["Hello there,"]
        t0 = time.monotonic()
        backend.cancel.set()
        assert finished.wait(1.0)
        end = time.monotonic() + 3
        while not srv.disconnects and time.monotonic() < end:
            time.sleep(0.02)
        assert srv.disconnects, "the server never saw the client go away"
        assert srv.disconnects[0] - t0 < 3.0
        assert len(got) < 5
    backend.cancel.clear()


def test_bench_names_each_part_and_reports_the_same_fields_for_a_server(engine, llama):
    from vtuber import bench

    cfg, backend = fallback(engine, llama.url, first_token_s=20.0)
    eng = remote_engine(engine, cfg, backend)
    eng.warm()
    result = bench.run_bench(eng, turns=1, load_s=0)
    assert result["answered"] == {"chat": 1, "speech": 1}
    for kind in ("chat", "speech"):
        assert result["streaming"][kind]["input_to_first_audio"]["p50"] > 0
        assert result["naive"][kind]["p50"] > 0
    llm = result["parts"]["llm"]
    assert llm["llm"] == f"server {llama.url}" and llm["fallbacks"] == 0 and llm["turns_remote"] >= 2
    assert result["parts"]["asr"]["asr"] == str(engine.paths.asr)
    lines = bench.parts_lines(result)
    assert lines[0].startswith(f"llm: server {llama.url}") and "by the local fallback" in lines[0]


def test_thinking_gets_its_own_token_room_and_a_reply_all_thinking_goes_local(engine, caplog):
    with ReplayServer() as srv:
        srv.script = [delta(reasoning="hmm, BANANA " * 20), DONE]  # the cap was reached while thinking
        cfg, backend = fallback(engine, srv.url, key=None)
        cfg.llm.think_tokens = 512
        text = run_stream(backend, max_tokens=24)
        assert srv.requests[-1]["max_tokens"] == 24 + 512
        assert words(text) and "banana" not in text.lower() and backend.turns[-1]["backend"] == "local"
        lines = warnings_of(caplog)
        assert len(lines) == 1 and "whole token cap thinking" in lines[0], lines
        assert backend.usable()  # the server works: it is asked again next turn
