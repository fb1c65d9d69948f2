"""The ctransformers backend, end to end, on a tiny GPT-2 written by the test itself.

`ggml_gpt2.write_tiny_gpt2` writes a random two-layer GPT-2 in the legacy GGML format;
ctransformers loads it and really generates from it. Its end-of-text token can never be
sampled, so every generation runs for exactly `max_tokens` tokens.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ggml_gpt2 import EOS, write_tiny_gpt2  # noqa: E402

from vtuber.config import load_config  # noqa: E402
from vtuber.errors import UserError  # noqa: E402
from vtuber.mind.llm import CTransformersBackend  # noqa: E402
from vtuber.models import bundled_llm, resolve  # noqa: E402
from vtuber.services import make_llm  # noqa: E402

MESSAGES = [
    {"role": "system", "content": "You are Miko, a cheerful co-host of the stream."},
    {"role": "user", "content": "hello chat, do you like the game?"},
]


def ct_config(path: Path, model_type: str = "gpt2"):
    return load_config(
        overrides={"models": {"llm_backend": "ctransformers", "llm": str(path), "llm_model_type": model_type}}
    )


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, list[str]]:
    path = tmp_path / "tiny-gpt2.ggml.bin"
    vocab = write_tiny_gpt2(path, n_ctx=256, n_embd=32, n_head=4, n_layer=2, seed=0)
    return path, vocab


def test_tiny_model_file_is_small_legacy_ggml(tiny):
    path, vocab = tiny
    data = path.read_bytes()
    assert data[:4] == b"lmgg"  # 0x67676d6c little-endian
    assert len(data) < 300_000
    assert vocab[-1] == EOS and len(set(vocab)) == len(vocab)


def test_ctransformers_backend_generates_from_tiny_gpt2(tiny):
    path, vocab = tiny
    cfg = ct_config(path)
    backend = make_llm(cfg, resolve(cfg))
    assert isinstance(backend, CTransformersBackend)
    assert backend.name == "ctransformers"
    # The file's own hyper-parameters are what ctransformers loaded.
    assert backend.llm.context_length == 256
    assert backend.llm.vocab_size == len(vocab)

    backend.warm([{"role": "system", "content": "You are Miko."}])
    pieces = list(backend.stream(MESSAGES, max_tokens=8))
    assert 1 <= len(pieces) <= 8
    assert any(p.strip() for p in pieces)
    assert all(isinstance(p, str) and p for p in pieces)
    # No end-of-text is possible, so all 8 tokens come out, each one vocabulary entry.
    assert len(pieces) == 8
    assert all(p in vocab and p != EOS for p in pieces)

    # A fixed seed and a fresh context each call: the same prompt gives the same text.
    assert list(backend.stream(MESSAGES, max_tokens=8)) == pieces
    backend.close()


def test_ctransformers_backend_stops_when_cancelled(tiny):
    path, _ = tiny
    cfg = ct_config(path)
    backend = make_llm(cfg, resolve(cfg))
    got = []
    for piece in backend.stream(MESSAGES, max_tokens=8):
        got.append(piece)
        backend.cancel.set()
    assert len(got) == 1
    # The next turn (the mind clears the flag when a turn starts) generates normally.
    backend.cancel.clear()
    assert len(list(backend.stream(MESSAGES, max_tokens=3))) == 3


def test_ctransformers_backend_rejects_bundled_gguf():
    gguf = bundled_llm()
    assert gguf.read_bytes()[:4] == b"GGUF"
    cfg = ct_config(gguf)
    with pytest.raises(UserError) as info:
        make_llm(cfg, resolve(cfg))
    message = str(info.value)
    assert "GGUF" in message
    assert "llama_cpp" in message


def test_ctransformers_backend_garbage_file_is_user_error(tmp_path: Path):
    garbage = tmp_path / "not-a-model.bin"
    garbage.write_bytes(b"this is not a model, just some text\n" * 10)
    cfg = ct_config(garbage)
    # Refused before ctransformers sees it: after a model has been loaded and freed in
    # this process, a failed ctransformers load aborts it ("double free or corruption").
    with pytest.raises(UserError, match="not a legacy GGML model file"):
        make_llm(cfg, resolve(cfg))
