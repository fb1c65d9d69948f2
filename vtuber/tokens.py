"""Secrets (platform tokens, API keys) live in one file the user owns, never in the config.

`tokens.json` in the user's config folder (`~/.config/vtuber/tokens.json` on Linux),
mode 0600, one JSON object of named entries (each any JSON value: a key string, or a
table with access and refresh tokens). An environment variable wins over the file
(`VTUBER_<NAME>` upper-cased, for CI and containers). Writes are atomic (a temporary
file renamed over the old one), so a crash never leaves half a token file.

Config files are checked by `refuse_in_config`: a key that looks like a secret is a
one-line error naming the key, so a token never lands in a file people share.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from vtuber.errors import UserError
from vtuber.paths import user_dir

SECRET_KEYS = re.compile(r"(^|_)(token|access_token|refresh_token|api_key|apikey|secret|password|client_secret)$", re.I)


def token_file() -> Path:
    return user_dir() / "tokens.json"


def env_name(name: str) -> str:
    return "VTUBER_" + re.sub(r"[^A-Za-z0-9]+", "_", name).upper()


class TokenStore:
    """Named secrets in a 0600 JSON file (see the module docstring)."""

    def __init__(self, path: Path | None = None):
        self.path = path or token_file()

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise UserError(f"{self.path}: cannot read the token file ({e.strerror})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{self.path}: not valid JSON ({e.msg} at line {e.lineno}); fix or delete it and log in again") from None
        if not isinstance(data, dict):
            raise UserError(f"{self.path}: expected a JSON object of named tokens")
        return data

    def get(self, name: str, default: Any = None) -> Any:
        """The secret named `name`: the environment variable first, then the file."""
        env = os.environ.get(env_name(name))
        if env:
            return env
        return self._read().get(name, default)

    def set(self, name: str, value: Any) -> None:
        data = self._read()
        data[name] = value
        self._write(data)

    def forget(self, name: str) -> bool:
        data = self._read()
        if name not in data:
            return False
        del data[name]
        self._write(data)
        return True

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def refuse_in_config(data: dict, source: str, prefix: str = "") -> None:
    """A secret in a config file is refused with one line naming its key."""
    for key, value in data.items():
        if isinstance(value, dict):
            refuse_in_config(value, source, f"{prefix}{key}.")
        elif SECRET_KEYS.search(str(key)) and value not in ("", None):
            raise UserError(
                f"{source}: '{prefix}{key}' looks like a secret: keep tokens out of the config "
                f"(use `vtuber auth`, the token file {token_file()}, or {env_name(str(key))})"
            )
