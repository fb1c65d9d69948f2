"""Replay a chat script: JSONL, one timed message a line.

    {"t": 2.0, "user": "alice", "text": "hi Miko!", "badges": ["subscriber"], "bits": 100}

`text` is required; `t` (seconds from start) defaults to the previous line's time,
`user` to "viewer". Blank lines and lines starting with `#` are skipped.

A line with `event` is a channel event instead of a message:

    {"t": 9.0, "event": "raid", "user": "bigstreamer", "amount": 40}

(`event`: follow, sub, resub, gift, bits, raid; `amount`: viewers, bits or gifted subs.)
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path

from vtuber.clock import Clock
from vtuber.errors import UserError, quote, read_text
from vtuber.events import ChatMessage, StreamEvent
from vtuber.sources.platforms import ChatPlatform, register

MAX_TEXT = 500  # Twitch's own limit; longer lines are cut at the door
MAX_LINE = 64 * 1024  # one JSON line; a longer one is a mistake, not a chat message
MAX_T = 24 * 3600.0  # a script longer than a day is a mistake (epoch timestamps, say)
EVENT_KINDS = ("follow", "sub", "resub", "gift", "bits", "raid")


def parse_chat_script(path: str | Path) -> list[ChatMessage | StreamEvent]:
    p = Path(path)
    lines = read_text(p, "chat script").splitlines()
    messages: list[ChatMessage] = []
    last_t = 0.0
    for number, line in enumerate(lines, start=1):
        where = f"{p}:{number}"
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if len(stripped) > MAX_LINE:
            raise UserError(f"{where}: line too long ({len(stripped)} characters; at most {MAX_LINE})")
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise UserError(f"{where}: not JSON ({e.msg})") from None
        except RecursionError:
            raise UserError(f"{where}: JSON nested too deeply") from None
        if not isinstance(obj, dict):
            raise UserError(f"{where}: expected a JSON object")
        if "event" in obj:
            messages.append(_event(obj, where, last_t))
            last_t = messages[-1].t
            continue
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{where}: missing 'text' (a non-empty string)")
        t = _time(obj, where, last_t)
        user = obj.get("user", "viewer")
        if not isinstance(user, str) or not user.strip():
            raise UserError(f"{where}: 'user' must be a non-empty string")
        badges = obj.get("badges", [])
        if not isinstance(badges, list) or not all(isinstance(b, str) for b in badges):
            raise UserError(f"{where}: 'badges' must be a list of strings")
        bits = obj.get("bits", 0)
        if isinstance(bits, bool) or not isinstance(bits, int) or bits < 0:
            raise UserError(f"{where}: 'bits' must be a whole number >= 0")
        last_t = float(t)
        messages.append(
            ChatMessage(
                user=user.strip()[:64],
                text=text.strip()[:MAX_TEXT],
                t=float(t),
                badges=tuple(badges),
                bits=bits,
                source="script",
                id=f"script-{number}",
            )
        )
    if not messages:
        raise UserError(f"{p}: the chat script has no messages or events (every line is blank or a comment)")
    messages.sort(key=lambda m: m.t)
    return messages


def _time(obj: dict, where: str, last_t: float) -> float:
    t = obj.get("t", last_t)
    ok = isinstance(t, (int, float)) and not isinstance(t, bool)
    # Compare before converting: a 400-digit integer does not fit a float.
    if not ok or (isinstance(t, float) and not math.isfinite(t)) or not 0 <= t <= MAX_T:
        raise UserError(f"{where}: 't' must be a number of seconds in [0, {MAX_T:g}], got {quote(t)}")
    return float(t)


def _event(obj: dict, where: str, last_t: float) -> StreamEvent:
    kind = obj.get("event")
    if kind not in EVENT_KINDS:
        raise UserError(f"{where}: 'event' must be one of {', '.join(EVENT_KINDS)}, got {quote(kind)}")
    t = _time(obj, where, last_t)
    user = obj.get("user")
    if not isinstance(user, str) or not user.strip():
        raise UserError(f"{where}: an event needs 'user' (a non-empty string)")
    amount = obj.get("amount", 0)
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise UserError(f"{where}: 'amount' must be a whole number >= 0")
    return StreamEvent(kind=kind, user=user.strip()[:64], t=float(t), amount=amount, text=str(obj.get("text", ""))[:MAX_TEXT])


class ChatScriptSource:
    """Emits each scripted message at its time (the message carries its real arrival time)."""

    name = "chat script"

    def __init__(self, messages: list[ChatMessage | StreamEvent], path: str = ""):
        self.messages = messages
        self.path = path  # the file it came from, for the report ("" when built in code)

    @classmethod
    def from_file(cls, path: str | Path) -> ChatScriptSource:
        """Read and check the whole script now: a bad line is the user's one-line mistake."""
        return cls(parse_chat_script(path), str(path))

    async def run(self, clock: Clock, emit: Callable[[object], None]) -> None:
        clock.add_source()
        try:
            for m in self.messages:
                await clock.sleep_until(m.t)
                emit(dataclasses.replace(m, t=clock.now()))
        finally:
            clock.source_done()


register(
    ChatPlatform(
        name="chat_script",
        flag="--chat-script",
        metavar="JSONL",
        hint="--chat-script FILE",
        help="chat from a script, on the live clock ({t, user, text, ...} a line)",
        open=lambda target, cfg: ChatScriptSource.from_file(target),
        order=10,
    )
)
