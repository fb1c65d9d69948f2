"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


class UserError(Exception):
    """A mistake in the user's input (file, flag, config value): shown as one line, exit code 2."""


MAX_TEXT_FILE = 16 * 1024 * 1024  # a chat script, persona or config larger than this is a mistake


def open_regular(path: Path, what: str, not_found: str | None = None, max_bytes: int = MAX_TEXT_FILE):
    """Open a user's file for reading in binary, refusing up front what would block or never
    end (a FIFO, a device such as /dev/zero, a folder) and anything over `max_bytes`.

    Opened non-blocking and checked on the open descriptor, so a path swapped for a
    pipe between a check and the open cannot hang the program."""
    import os
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UserError(not_found or f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: {what} is a folder, not a file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read {what} ({e.strerror or e})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise UserError(f"{path}: {what} is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{path}: {what} is not a regular file (a pipe or a device cannot be read)")
        if st.st_size > max_bytes:
            raise UserError(f"{path}: {what} is too large ({st.st_size} bytes; at most {max_bytes})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Path, what: str, not_found: str | None = None, max_bytes: int = MAX_TEXT_FILE) -> bytes:
    """A user's regular file, whole, at most `max_bytes`; one clear `UserError` otherwise."""
    with open_regular(path, what, not_found, max_bytes) as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise UserError(f"{path}: cannot read {what} ({e.strerror or e})") from None
    if len(data) > max_bytes:  # it grew while we read it
        raise UserError(f"{path}: {what} is too large (more than {max_bytes} bytes)")
    return data


def read_text(path: Path, what: str, not_found: str | None = None, max_bytes: int = MAX_TEXT_FILE) -> str:
    """A user's UTF-8 text file, or one clear `UserError` naming it and what it was meant to be."""
    data = read_bytes(path, what, not_found, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: {what} is not UTF-8 text") from None


MAX_JSON_LINE = 64 * 1024  # one JSONL line; a longer one is a mistake, not a chat message


def json_lines(text: str, where: str, max_line: int = MAX_JSON_LINE) -> Iterator[tuple[int, str, dict]]:
    """The JSON objects of JSONL `text`, each as (line number, `where:LINE` for its own error lines, object).

    Blank lines and `#` comments are skipped. A line over `max_line` characters, one that is
    not JSON or not a JSON object, is one `UserError` naming `where` and the line number."""
    for number, line in enumerate(text.splitlines(), start=1):
        at = f"{where}:{number}"
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if len(s) > max_line:
            raise UserError(f"{at}: line too long ({len(s)} characters; at most {max_line})")
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as e:
            raise UserError(f"{at}: not JSON ({e.msg})") from None
        except RecursionError:
            raise UserError(f"{at}: JSON nested too deeply") from None
        if not isinstance(obj, dict):
            raise UserError(f"{at}: expected a JSON object")
        yield number, at, obj


def quote(value: object, limit: int = 80) -> str:
    """A user's value for an error line: repr-like, at most `limit` characters of it.

    A longer value is cut with an ellipsis and its full length, so a 5 MB value is not
    repeated in the message: quote("a" * 5000000) == "'aaaa…' (5000000 characters)".
    Strings and bytes keep their quotes and escapes (a newline shows as \\n, so the
    error stays one line); anything else is shown by its repr, cut the same way.
    """
    limit = max(0, limit)
    if isinstance(value, (str, bytes, bytearray)):
        text = bytes(value) if isinstance(value, bytearray) else value
        show = str.__repr__ if isinstance(text, str) else bytes.__repr__
        if len(text) <= limit:
            return show(text)
        r = show(text[:limit])
        unit = "characters" if isinstance(text, str) else "bytes"
        return f"{r[:-1]}…{r[-1]} ({len(text)} {unit})"
    r = repr(value)
    if len(r) <= limit:
        return r
    return f"{r[:limit]}… ({len(r)} characters)"
