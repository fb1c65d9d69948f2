"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A mistake in the user's input (file, flag, config value): shown as one line, exit code 2."""


def read_text(path: Path, what: str, not_found: str | None = None) -> str:
    """A user's UTF-8 text file, or one clear `UserError` naming it and what it was meant to be."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(not_found or f"{path}: {what} not found") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: {what} is not UTF-8 text") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read {what} ({e.strerror or e})") from None
