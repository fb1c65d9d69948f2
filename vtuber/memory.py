"""What the co-host remembers about viewers: a note per viewer, in SQLite.

For each viewer (by platform and user id, else by name): the display name, how many
messages they sent, when they were first and last seen, their last two messages, and
the support they gave (bits, money, subs, gifts). The mind puts a short note about the
viewer it answers into the prompt ("ann is a regular: 12 messages; last time: ..."), so
the persona greets regulars by name and can recall what they said.

By default the notes live in memory for one session. With `memory.persist = true` they
are kept between streams in `memory.sqlite3` in the user's data folder (platformdirs:
`~/.local/share/vtuber/` on Linux), or `memory.path`. `vtuber memory show USER`,
`vtuber memory forget USER` and `vtuber memory forget --all` read and clear that file.
A viewer a moderator bans is forgotten; a deleted message is taken out of the notes.

Every change is one SQLite transaction: a process killed mid-write leaves the file
intact with every note committed before. A write that fails on stream (a full disk, a
file-size limit, a file gone read-only) is said once in one line and counted (`failed`,
`failed_writes`); the stream goes on, and writing resumes when it can.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from vtuber.errors import UserError
from vtuber.events import ChatMessage, Moderation, StreamEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS viewers (
    key TEXT PRIMARY KEY,          -- source:user_id, or source:name in lower case
    source TEXT NOT NULL,
    user_id TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL,
    messages INTEGER NOT NULL DEFAULT 0,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    previous_seen REAL NOT NULL DEFAULT 0,
    last_text TEXT NOT NULL DEFAULT '',
    last_id TEXT NOT NULL DEFAULT '',
    previous_text TEXT NOT NULL DEFAULT '',
    previous_id TEXT NOT NULL DEFAULT '',
    bits INTEGER NOT NULL DEFAULT 0,
    paid REAL NOT NULL DEFAULT 0,
    currency TEXT NOT NULL DEFAULT '',
    subs INTEGER NOT NULL DEFAULT 0,
    gifts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS viewers_name ON viewers (name COLLATE NOCASE);
"""
MAX_TEXT = 160  # characters of a message kept in a note
# A viewer back after this long is reminded of what they said last; one chatting along is not
# (the quote costs the bundled model about 70 ms of prefill before the first audio).
RECALL_AFTER_S = 120.0
log = logging.getLogger("vtuber")
SUPPORT_KINDS = {"sub": "subs", "resub": "subs", "gift": "gifts", "bits": "bits"}


def default_path() -> Path:
    return platformdirs.user_data_path("vtuber", appauthor=False) / "memory.sqlite3"


@dataclass(frozen=True)
class ViewerNote:
    name: str
    source: str
    messages: int
    first_seen: float
    last_seen: float
    last_text: str
    previous_text: str
    bits: int
    paid: float
    currency: str
    subs: int
    gifts: int
    previous_seen: float = 0.0


def _key(source: str, user_id: str, name: str) -> str:
    return f"{source}:{user_id}" if user_id else f"{source}:name:{name.lower()}"


class ViewerMemory:
    """Notes per viewer in SQLite (`path` None: in memory, for this session only)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else None
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path) if self.path else ":memory:", check_same_thread=False)
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise UserError(f"{self.path}: not a viewer memory file ({e}); move it away or run `vtuber memory forget --all`") from None
        except OSError as e:
            raise UserError(f"{self.path}: cannot open the viewer memory ({e.strerror})") from None
        self.failed = ""  # the last write error, in one line ("" while all is well)
        self.failed_writes = 0

    def close(self) -> None:
        self.db.close()

    def _write(self, *statements: tuple[str, tuple]) -> None:
        """Run the statements as one transaction; a failure is said once, never raised."""
        try:
            with self.db:
                for sql, params in statements:
                    self.db.execute(sql, params)
        except (sqlite3.Error, OSError) as e:
            self.failed_writes += 1
            if not self.failed:
                self.failed = f"viewer memory {self.path or '(in memory)'}: a note could not be saved ({e}); the stream goes on"
                log.warning("%s", self.failed)

    # --- what happens on stream ----------------------------------------------------------

    def seen(self, msg: ChatMessage, now: float | None = None) -> None:
        """A chat message arrived: count it; it becomes the viewer's last message."""
        now = time.time() if now is None else now
        key = _key(msg.source, msg.user_id, msg.user)
        text = " ".join(msg.text.split())[:MAX_TEXT]
        self._write(
            (
                "INSERT INTO viewers (key, source, user_id, name, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(key) DO NOTHING",
                (key, msg.source, msg.user_id, msg.user, now, now),
            ),
            (
                "UPDATE viewers SET name = ?, messages = messages + 1, previous_seen = last_seen, last_seen = ?, previous_text = last_text, "
                "previous_id = last_id, last_text = ?, last_id = ?, bits = bits + ?, paid = paid + ?, "
                "currency = CASE WHEN ? != '' THEN ? ELSE currency END WHERE key = ?",
                (msg.user, now, text, msg.id, max(msg.bits, 0), max(msg.amount, 0.0), msg.currency, msg.currency, key),
            ),
        )

    def support(self, ev: StreamEvent) -> None:
        """A sub, resub, gift or cheer: remembered as support."""
        column = SUPPORT_KINDS.get(ev.kind)
        if column is None:
            return
        now = time.time()
        key = _key(ev.source, ev.user_id, ev.user)
        amount = max(ev.amount, 1) if column != "bits" else max(ev.amount, 0)
        self._write(
            (
                "INSERT INTO viewers (key, source, user_id, name, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(key) DO NOTHING",
                (key, ev.source, ev.user_id, ev.user, now, now),
            ),
            (f"UPDATE viewers SET {column} = {column} + ? WHERE key = ?", (amount, key)),
        )

    def moderated(self, action: Moderation) -> None:
        """A ban forgets the viewer; a deleted message leaves the notes; a cleared chat leaves every note's messages."""
        if action.action == "ban":
            self._write(self._forget_statement(action.source, action.user_id, action.user))
        elif action.action == "delete" and action.message_id:
            self._write(
                ("UPDATE viewers SET last_text = '', last_id = '' WHERE last_id = ?", (action.message_id,)),
                ("UPDATE viewers SET previous_text = '', previous_id = '' WHERE previous_id = ?", (action.message_id,)),
            )
        elif action.action == "clear_user":
            self._write(
                (
                    "UPDATE viewers SET last_text = '', last_id = '', previous_text = '', previous_id = '' WHERE key = ?",
                    (_key(action.source, action.user_id, action.user),),
                )
            )
        elif action.action == "clear":
            self._write(("UPDATE viewers SET last_text = '', last_id = '', previous_text = '', previous_id = ''", ()))

    @staticmethod
    def _forget_statement(source: str, user_id: str, name: str) -> tuple[str, tuple]:
        return (
            "DELETE FROM viewers WHERE (source = ? OR ? = '') AND ((? != '' AND user_id = ?) OR (name = ? COLLATE NOCASE))",
            (source, source, user_id, user_id, name),
        )

    def _forget_where(self, source: str, user_id: str, name: str) -> int:
        return self.db.execute(*self._forget_statement(source, user_id, name)).rowcount

    # --- reading -------------------------------------------------------------------------

    def note(self, msg: ChatMessage) -> ViewerNote | None:
        row = self.db.execute(
            "SELECT name, source, messages, first_seen, last_seen, last_text, previous_text, bits, paid, currency, subs, gifts, previous_seen "
            "FROM viewers WHERE key = ?",
            (_key(msg.source, msg.user_id, msg.user),),
        ).fetchone()
        return ViewerNote(*row) if row else None

    def find(self, name: str) -> list[ViewerNote]:
        rows = self.db.execute(
            "SELECT name, source, messages, first_seen, last_seen, last_text, previous_text, bits, paid, currency, subs, gifts, previous_seen "
            "FROM viewers WHERE name = ? COLLATE NOCASE OR user_id = ? ORDER BY last_seen DESC",
            (name, name),
        ).fetchall()
        return [ViewerNote(*r) for r in rows]

    def forget(self, name: str) -> int:
        with self.db:
            return self._forget_where("", name, name)

    def forget_all(self) -> int:
        with self.db:
            return self.db.execute("DELETE FROM viewers").rowcount

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM viewers").fetchone()[0]


def prompt_note(note: ViewerNote | None, name: str) -> str:
    """What the prompt says about the viewer being answered ("" for someone new). It quotes
    chat, so it goes in a user-part note, never the system part. `messages` counts the
    message being answered, so a regular has two or more."""
    if note is None or (note.messages < 2 and not (note.bits or note.paid or note.subs or note.gifts)):
        return ""
    parts = [f"{name} is a regular ({note.messages} messages)" if note.messages >= 2 else f"{name} supports the stream"]
    if note.previous_text and note.last_seen - note.previous_seen >= RECALL_AFTER_S:
        parts.append(f'last time {name} said "{note.previous_text}"')
    support = []
    if note.bits:
        support.append(f"{note.bits} bits")
    if note.paid:
        support.append(f"{note.paid:g} {note.currency}".strip())
    if note.subs:
        support.append("a sub" if note.subs == 1 else f"{note.subs} subs")
    if note.gifts:
        support.append(f"{note.gifts} gifted subs")
    if support:
        parts.append(f"{name} gave " + ", ".join(support))
    return "; ".join(parts) + "."
