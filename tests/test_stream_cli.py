"""`vtuber run` / `vtuber rehearse` with the on-stream outputs: each mistake (a reserved or
busy port, --fast, a bad URL or config value) is one line and exit code 2, before any
model loads (the models guard in conftest fails a test that loads one)."""

from __future__ import annotations

import socket

import pytest

from vtuber.cli import build_parser, main
from vtuber.config import load_config
from vtuber.outputs.overlay import OverlayServer
from vtuber.outputs.stream import stream_outputs
from vtuber.outputs.vtube_studio import VTubeStudio


@pytest.fixture
def chat_script(tmp_path):
    p = tmp_path / "chat.jsonl"
    p.write_text('{"t": 0.5, "user": "alice", "text": "hi"}\n', encoding="utf-8")
    return str(p)


def run(capsys, *argv):
    rc = main(list(argv))
    return rc, capsys.readouterr().err.strip().splitlines()


def test_mistakes_are_one_line_and_exit_2_before_models_load(chat_script, tmp_path, capsys):
    taken = socket.create_server(("127.0.0.1", 0))
    busy = str(taken.getsockname()[1])
    bad_cfg = tmp_path / "c.toml"
    bad_cfg.write_text("[overlay]\nprot = 9000\n", encoding="utf-8")
    secret_cfg = tmp_path / "s.toml"
    secret_cfg.write_text('[obs]\npassword = "hunter2"\n', encoding="utf-8")
    try:
        cases = [
            (["run", "--chat-script", chat_script, "--overlay", "4455"], "4455"),
            (["run", "--chat-script", chat_script, "--overlay", busy], "in use"),
            (["rehearse", "--chat", chat_script, "--fast", "--overlay", "--out", str(tmp_path / "o")], "drop --fast"),
            (["run", "--chat-script", chat_script, "--vtube-studio", "localhost:8001"], "ws://"),
            (["run", "--chat-script", chat_script, "--config", str(bad_cfg)], "overlay.prot"),
            (["run", "--chat-script", chat_script, "--config", str(secret_cfg)], "obs.password"),
        ]
        for argv, needle in cases:
            rc, err = run(capsys, *argv)
            assert rc == 2 and len(err) == 1 and needle in err[0], (argv, err)
    finally:
        taken.close()


def test_flags_and_config_build_the_outputs_and_print_where_to_add_them():
    args = build_parser().parse_args(["run", "--overlay", "0", "--overlay-audio", "--vtube-studio", "ws://127.0.0.1:9001"])
    assert args.overlay == 0 and args.overlay_audio and args.vtube_studio == "ws://127.0.0.1:9001"
    cfg = load_config(overrides={"overlay": {"port": 0}})
    lines = []
    outputs = stream_outputs(cfg, args, lines.append)
    try:
        overlay, vts = outputs
        assert isinstance(overlay, OverlayServer) and overlay.audio and overlay.port > 0
        assert isinstance(vts, VTubeStudio) and vts.url == "ws://127.0.0.1:9001"
        assert lines[0].startswith(f"overlay: http://127.0.0.1:{overlay.port}/?audio=1")
        assert any(overlay.dock_token in line for line in lines) and any("/settings" in line for line in lines)
    finally:
        overlay.sock.close()
    # Nothing asked for, nothing built.
    assert stream_outputs(load_config(), build_parser().parse_args(["run"]), lines.append) == []
