"""`vtuber models pull`: the real huggingface_hub client against a local server that answers
like the hub (HF_ENDPOINT), serving a small GGUF written with the `gguf` package."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fake_hub import FakeHub, tiny_gguf
from vtuber.models.catalogue import by_name, models_dir
from vtuber.cli import main
from vtuber.errors import UserError

pytest.importorskip("gguf", reason="the test model is written with the gguf package (pip install 'vtuber[dev]')")

REPO = "someone/tiny-GGUF"
FILE = "tiny-q8_0.gguf"
SPEC = f"{REPO}/{FILE}"


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    d = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(d))
    return d


@pytest.fixture
def gguf_bytes(tmp_path):
    return tiny_gguf(tmp_path / "src.gguf")


@pytest.fixture
def hub(monkeypatch, data_home):
    with FakeHub() as h:
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        yield h


def pulled_file() -> Path:
    return models_dir() / "tiny-q8_0" / FILE


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("vtuber: error:")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


def test_pull_downloads_checks_and_the_name_then_works_as_llm(hub, gguf_bytes, capsys):
    hub.add(REPO, FILE, gguf_bytes)
    assert main(["models", "pull", SPEC]) == 0
    path = pulled_file()
    assert path.read_bytes() == gguf_bytes
    marker = json.loads((path.parent / ".complete").read_text())
    assert marker["digests"][FILE] == hashlib.sha256(gguf_bytes).hexdigest()
    assert "--llm tiny-q8_0" in capsys.readouterr().out
    # The name stands for the file wherever a model path is taken; the wrong kind is one line.
    assert by_name("tiny-q8_0", "llm", "models.llm") == path
    with pytest.raises(UserError, match="models.voice: tiny-q8_0 is a language model, not a voice"):
        by_name("tiny-q8_0", "voice", "models.voice")
    # A second pull asks the hub nothing more.
    n = len(hub.requests)
    assert main(["models", "pull", SPEC]) == 0
    assert len(hub.requests) == n


def test_a_cut_connection_is_resumed_where_it_stopped(hub, tmp_path):
    from huggingface_hub import constants

    # The client writes in chunks of DOWNLOAD_CHUNK_SIZE: the file spans a few, and the
    # connection drops after more than one chunk arrived.
    chunk = constants.DOWNLOAD_CHUNK_SIZE
    data = tiny_gguf(tmp_path / "big.gguf", big_bytes=int(2.5 * chunk))
    hub.add(REPO, FILE, data, cut_after=chunk + chunk // 2)
    assert main(["models", "pull", SPEC]) == 0
    gets = [r for r in hub.requests if r[0] == "GET"]
    assert len(gets) == 2 and gets[0][2] == "", gets
    start = int(gets[1][2].removeprefix("bytes=").rstrip("-"))  # the second request asks only for the rest
    assert chunk <= start <= chunk + chunk // 2, gets
    assert pulled_file().read_bytes() == data


def test_a_bad_checksum_is_refused_and_the_file_deleted(hub, gguf_bytes, capsys):
    hub.add(REPO, FILE, gguf_bytes, corrupt=True)  # the body differs from the announced SHA-256
    assert main(["models", "pull", SPEC]) == 2
    line = one_error_line(capsys)
    assert "failed its checksum" in line and "deleted" in line, line
    folder = pulled_file().parent
    assert not pulled_file().exists() and not (folder / ".complete").exists()
    assert by_name("tiny-q8_0", "llm", "models.llm") is None  # not usable by name either


def test_the_catalogue_checksum_wins_over_the_hub(hub, gguf_bytes, tmp_path, capsys):
    # The hub serves the file it announces, but it is not the file the catalogue pinned.
    hub.add(REPO, FILE, gguf_bytes)
    own = tmp_path / "catalogue.json"
    own.write_text(json.dumps([{"name": "pinned", "kind": "llm", "repo": REPO, "files": [FILE],
                                "sha256": {FILE: "ab" * 32}}]))
    assert main(["models", "pull", "pinned", "--catalogue", str(own)]) == 2
    assert "failed its checksum" in one_error_line(capsys)
    assert not (models_dir() / "pinned" / FILE).exists()


def test_a_model_bigger_than_the_free_disk_is_refused_before_downloading(hub, gguf_bytes, capsys):
    hub.add(REPO, FILE, gguf_bytes, claimed_size=10**18)  # an exabyte: no disk has room
    assert main(["models", "pull", SPEC]) == 2
    line = one_error_line(capsys)
    assert "not enough disk space" in line and "nothing was downloaded" in line, line
    assert not [r for r in hub.requests if r[0] == "GET"]


def test_disk_full_mid_download_is_one_line_and_leaves_nothing(hub, gguf_bytes, data_home):
    # The write limit of the process stands in for a full disk: the kernel refuses the write
    # (EFBIG) exactly where a full disk would (ENOSPC), after part of the file was written.
    hub.add(REPO, FILE, gguf_bytes)
    limit = len(gguf_bytes) // 2

    def limit_writes() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "HF_ENDPOINT": hub.url, "XDG_DATA_HOME": str(data_home), "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run([sys.executable, "-m", "vtuber", "models", "pull", SPEC], env=env, capture_output=True,
                       text=True, timeout=120, preexec_fn=limit_writes)
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("vtuber: error:")]
    assert len(errors) == 1 and "disk full" in errors[0] and "Traceback" not in r.stderr, r.stderr
    folder = data_home / "vtuber" / "models" / "tiny-q8_0"
    leftovers = [p for p in folder.rglob("*") if p.is_file() and p.stat().st_size > 0] if folder.exists() else []
    assert not [p for p in leftovers if p.suffix in (".gguf", ".incomplete")], leftovers


def test_no_network_is_one_line(monkeypatch, data_home, capsys):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert main(["models", "pull", SPEC]) == 2
    line = one_error_line(capsys)
    assert "cannot reach the model hub" in line and "nothing was downloaded" in line, line


def test_unknown_names_and_missing_files_are_one_line(hub, capsys):
    assert main(["models", "pull", "no-such-model"]) == 2
    assert "unknown model 'no-such-model'" in one_error_line(capsys)
    assert main(["models", "pull", f"{REPO}/missing.gguf"]) == 2
    assert "not on the hub" in one_error_line(capsys)
    # A catalogue name not pulled yet, given as a model: the line says how to get it.
    with pytest.raises(UserError, match="not pulled yet: run `vtuber models pull qwen2.5-0.5b`"):
        by_name("qwen2.5-0.5b", "llm", "models.llm")
    assert by_name("/some/file.gguf", "llm", "models.llm") is None


@pytest.mark.models
def test_a_catalogue_model_pulled_from_the_hub_answers_by_name(hub):
    """The whole way: a catalogue name, the real client, the checksum the hub announces, then
    `--llm NAME` loading it in llama.cpp and generating (the bundled GGUF stands in for the
    catalogue's file; its SHA-256 is the hub's, as for every entry without a pinned one)."""
    from vtuber.config import load_config
    from vtuber.models import bundled_llm, resolve
    from vtuber.services import make_llm
    from vtuber.models.catalogue import find

    entry = find("smollm2-135m")
    assert not entry.sha256  # checked against the hub's own checksum
    hub.add(entry.repo, entry.main_file, bundled_llm().read_bytes())
    assert main(["models", "pull", "smollm2-135m"]) == 0
    cfg = load_config(None, {"models": {"llm": "smollm2-135m"}})
    paths = resolve(cfg)
    assert paths.llm == models_dir() / "smollm2-135m" / entry.main_file
    llm = make_llm(cfg, paths)
    try:
        pieces = list(llm.stream([{"role": "user", "content": "Say hi."}], max_tokens=4))
    finally:
        llm.close()
    assert pieces and all(isinstance(p, str) for p in pieces)
