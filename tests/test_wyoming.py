"""ASR and TTS on Wyoming servers (real `wyoming-faster-whisper` and `wyoming-piper` on
127.0.0.1 with the bundled models, offline); the local models as fallback."""

from __future__ import annotations

import logging
import socket
import threading

import numpy as np
import pytest

from conftest import words
from servers import free_port, wyoming_piper, wyoming_whisper
from vtuber.config import load_config
from vtuber.errors import UserError
from vtuber.hearing.wyoming_asr import WyomingASR
from vtuber.models import resolve
from vtuber.pipeline import Engine
from vtuber.rehearsal import DEMO_SPEECH, load_inputs, run_rehearsal
from vtuber.voice.wyoming_tts import WyomingTTS
from vtuber.services import make_asr, make_tts


@pytest.fixture(scope="module")
def servers(engine, tmp_path_factory):
    d = tmp_path_factory.mktemp("wyoming")
    asr_port, tts_port = free_port(), free_port()
    whisper = wyoming_whisper(engine.paths.asr, asr_port, d / "whisper.log").start()
    piper = wyoming_piper(engine.paths.voice, tts_port, d / "piper.log").start()
    yield f"tcp://127.0.0.1:{asr_port}", f"tcp://127.0.0.1:{tts_port}"
    whisper.stop()
    piper.stop()


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("vtuber")]


def wyoming_engine(engine, asr_url: str, tts_url: str, **speech) -> Engine:
    cfg = load_config(overrides={"models": {"asr": asr_url, "voice": tts_url}, "speech_servers": speech, "hearing": {"barge_in": False}})
    paths = resolve(cfg)
    assert (paths.asr_url, paths.voice_url) == (asr_url, tts_url)
    # The registry makes the Wyoming providers, the session's loaded models as their fallback.
    asr = make_asr(cfg, paths, engine.persona, local=engine.asr)
    tts = make_tts(cfg, paths, engine.persona, local=engine.tts)
    return Engine(cfg, engine.persona, paths, engine.llm, asr, tts, engine.vad, engine.canary)


def test_rehearsal_through_wyoming_hears_the_demo_speech_and_speaks(engine, servers, tmp_path, caplog):
    eng = wyoming_engine(engine, *servers)
    eng.asr.warm()
    eng.tts.warm()
    assert warnings_of(caplog) == []
    session, written = run_rehearsal(eng, load_inputs(None, DEMO_SPEECH), tmp_path / "out", fast=True)
    records = session.recorder.finished()
    heard = " ".join(r.input_text for r in records if r.kind == "speech")
    assert {"boss", "chat", "try"} <= set(words(heard)), heard
    assert all(words(r.reply_text) and r.audio_s > 0.3 for r in records), [(r.reply_text, r.audio_s) for r in records]
    asr, tts = eng.asr.report(), eng.tts.report()
    assert asr["remote"] >= 2 and asr["local"] == 0 and asr["fallbacks"] == 0, asr
    assert tts["remote"] >= len(records) and tts["local"] == 0, tts
    assert session.errors == [] and warnings_of(caplog) == []
    assert '"server": "tcp://127.0.0.1:' in written["timings.json"].read_text(encoding="utf-8")


def test_wyoming_voice_is_the_same_voice_at_the_same_rate(engine, servers):
    tts = WyomingTTS(servers[1], engine.tts)
    remote = tts.synthesize("Hello there, chat.")
    local = engine.tts.synthesize("Hello there, chat.")
    assert tts.sample_rate == engine.tts.sample_rate and tts.report()["remote"] == 1
    assert remote.dtype == np.int16 and abs(len(remote) - len(local)) < 0.25 * len(local)
    assert np.abs(remote).max() > 1000


def test_killing_the_servers_falls_back_to_the_local_models(engine, speak16k, tmp_path, caplog):
    d = tmp_path
    asr_port, tts_port = free_port(), free_port()
    whisper = wyoming_whisper(engine.paths.asr, asr_port, d / "whisper.log").start()
    piper = wyoming_piper(engine.paths.voice, tts_port, d / "piper.log").start()
    try:
        asr = WyomingASR(f"tcp://127.0.0.1:{asr_port}", engine.asr, retry_after_s=30.0)
        tts = WyomingTTS(f"tcp://127.0.0.1:{tts_port}", engine.tts, retry_after_s=30.0)
        clip = speak16k("Miko, what do you think about this boss?")
        assert "boss" in words(asr.transcribe(clip)) and len(tts.synthesize("Hi chat.")) > 0
        assert asr.report()["remote"] == 1 and tts.report()["remote"] == 1
        whisper.stop()
        piper.stop()
        caplog.clear()
        assert "boss" in words(asr.transcribe(clip))  # Whisper on this machine heard it
        assert len(tts.synthesize("Hi chat.")) > 0  # and Piper here spoke it
        assert asr.report()["local"] == 1 and tts.report()["local"] == 1
        lines = warnings_of(caplog)
        assert len(lines) == 2, lines
        assert "Wyoming ASR server" in lines[0] and "connection refused" in lines[0] and "local Whisper" in lines[0]
        assert "Wyoming TTS server" in lines[1] and "local Piper voice" in lines[1]
        caplog.clear()
        asr.transcribe(clip)  # the breaker is open: local at once, no more lines
        assert warnings_of(caplog) == [] and asr.report()["local"] == 2
    finally:
        whisper.stop()
        piper.stop()


class ClosingServer:
    """A Wyoming peer that reads the request's first event, then closes the connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(256)

    def close(self):
        self.sock.close()


def test_a_server_closing_mid_reply_is_one_line_and_the_local_model_answers(engine, speak16k, caplog):
    srv = ClosingServer()
    try:
        asr = WyomingASR(srv.url, engine.asr)
        tts = WyomingTTS(srv.url, engine.tts)
        assert "boss" in words(asr.transcribe(speak16k("What do you think about this boss?")))
        assert len(tts.synthesize("Hello chat.")) > 0
    finally:
        srv.close()
    lines = warnings_of(caplog)
    assert len(lines) == 2 and all("closed the connection mid-reply" in ln for ln in lines), lines
    assert asr.report()["fallbacks"] == 1 and tts.report()["fallbacks"] == 1


def test_bad_wyoming_urls_are_user_errors():
    for value, msg in (("tcp://host", "tcp://host:port"), ("tcp://:10300", "tcp://host:port"), ("ws://h:1", "tcp://host:port")):
        with pytest.raises(UserError, match=msg):
            resolve(load_config(overrides={"models": {"voice": value}}))


def test_models_check_runs_each_part_once_and_says_what_failed(engine, servers, capsys, monkeypatch):
    from rich.console import Console
    from servers import DONE, ReplayServer, delta

    from vtuber.cli import main
    from vtuber.commands import common

    monkeypatch.setattr(common, "console", Console(width=400, highlight=False))  # one table row a line

    with ReplayServer(models=("replay",)) as srv:
        srv.script = [delta("Hi alice,"), delta(" doing great!"), DONE]
        args = ["models", "check", "--llm", srv.url, "--asr", servers[0], "--voice", servers[1]]
        assert main(args) == 0
        out = capsys.readouterr().out
        for part in ("LLM (server)", "LLM (fallback)", "ASR (server)", "ASR (fallback)", "TTS (server)", "TTS (fallback)"):
            assert part in out, out
        assert "Hi alice, doing great!" in out and "boss" in out.lower() and " no " not in out
        dead = f"http://127.0.0.1:{free_port()}/v1"
        assert main(["models", "check", "--llm", dead]) == 1
        out = capsys.readouterr().out
        assert "connection refused" in out and "LLM (fallback)" in out

