"""The token file: 0600, atomic, the environment first; secrets in a config file are refused."""

from __future__ import annotations

import stat

import pytest

from vtuber.config import load_config
from vtuber.errors import UserError
from vtuber.tokens import TokenStore


def test_tokens_are_kept_private_and_env_wins(tmp_path, monkeypatch):
    store = TokenStore(tmp_path / "sub" / "tokens.json")
    assert store.get("twitch") is None
    store.set("twitch", {"access": "a1", "refresh": "r1"})
    store.set("youtube_api_key", "k1")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.get("twitch") == {"access": "a1", "refresh": "r1"}
    monkeypatch.setenv("VTUBER_YOUTUBE_API_KEY", "from-env")
    assert store.get("youtube_api_key") == "from-env"
    assert store.forget("twitch") and not store.forget("twitch")
    assert [p.name for p in store.path.parent.iterdir()] == ["tokens.json"]  # no temporary file left


def test_a_broken_token_file_is_one_line(tmp_path):
    path = tmp_path / "tokens.json"
    path.write_text("{oops")
    with pytest.raises(UserError, match="tokens.json: not valid JSON"):
        TokenStore(path).get("twitch")


def test_a_secret_in_the_config_is_refused(tmp_path):
    cfg = tmp_path / "vtuber.toml"
    cfg.write_text('[plugins.settings.twitch]\naccess_token = "oauth:abc"\n')
    with pytest.raises(UserError, match="'plugins.settings.twitch.access_token' looks like a secret"):
        load_config(cfg)
