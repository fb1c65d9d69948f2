"""Chat platforms: one protocol, one registry. The next platform is one new file.

A chat platform is where viewers' messages come from: a chat script, Twitch, YouTube.
`vtuber run` offers one flag per registered platform (`--chat-script FILE`,
`--twitch [CHANNEL]`, `--youtube VIDEO`), opens the platforms the user named, checks
them before any model loads (`preflight`), runs them as sources, and posts replies
back with `--reply-in-chat` to those that can (`send_reply`). Nothing else in the
program names a platform.

Adding one (Kick, a Discord stage): write `vtuber/sources/kick.py` with a source class
(`ChatSource` below) and, at module level,

    register(ChatPlatform(
        name="kick", flag="--kick", metavar="CHANNEL", hint="--kick CHANNEL",
        help="read chat from this Kick channel",
        open=lambda target, cfg: KickSource(target),
    ))

Every module in `vtuber/sources/` is imported when the registry is first read, so the
file is all it takes (keep its top-level imports light: import client libraries inside
the methods that use them). A platform from another package registers through the
`vtuber.platforms` entry point group instead, naming its module. docs/platforms.md
has the whole story.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from vtuber.clock import Clock

log = logging.getLogger("vtuber")

ENTRY_POINT_GROUP = "vtuber.platforms"


@runtime_checkable
class ChatSource(Protocol):
    """What a platform's source is: a named source that emits `ChatMessage`s (and
    `StreamEvent`s, `Moderation`s) on the session clock until it ends or is cancelled.

    Optional, looked up with getattr: `preflight()` (raise `UserError` for a missing token
    before any model loads), `send_reply(text, reply_to_id) -> str` ("" when posted, else
    why not) and `reply_limit() -> int` (replies per 30 s) for `--reply-in-chat`,
    `counters` and `state` for the console and the end-of-run summary."""

    name: str

    def run(self, clock: Clock, emit: Callable[[object], None]) -> Awaitable[None]: ...


@dataclass(frozen=True)
class ChatPlatform:
    """One registered chat platform, as the command line and the config know it."""

    name: str  # also the `source` of its ChatMessages, the key replies are routed by
    flag: str  # the `vtuber run` option, e.g. "--twitch"
    metavar: str
    hint: str  # how error lines name the flag with its value, e.g. "--twitch CHANNEL"
    help: str
    open: Callable[[str, Any], ChatSource]  # (the flag's value, the Config) -> a source
    optional_value: bool = False  # the flag may be given without a value (taken from the config)
    can_reply: bool = False  # its source has send_reply / reply_limit
    reply_max_wait_s: Callable[[Any], float] | None = None  # the config's longest wait for a reply slot
    login: Callable[[Any, Any, Any, Callable[[str], None]], str] | None = None  # `vtuber auth NAME`: (cfg, store, args, say) -> done line
    order: int = 100  # where its flag is listed (the built-in ones first)


_PLATFORMS: dict[str, ChatPlatform] = {}
_loaded = False


def register(platform: ChatPlatform) -> ChatPlatform:
    """Add a platform (called at import time by the module that defines it)."""
    if platform.name in _PLATFORMS and _PLATFORMS[platform.name] != platform:
        raise ValueError(f"chat platform {platform.name!r} is registered twice")
    _PLATFORMS[platform.name] = platform
    return platform


def unregister(name: str) -> None:
    """Remove a platform (tests that register a toy one)."""
    _PLATFORMS.pop(name, None)


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    # Every module beside this one, by file name (not through the package, which imports this module).
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name != "platforms":
            importlib.import_module(f"{__package__}.{info.name}")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as e:  # noqa: BLE001 - a broken add-on must not stop the program
            log.warning("chat platform %s (%s) failed to load: %s", ep.name, ep.value, e)


def platforms() -> list[ChatPlatform]:
    """Every registered platform, in the order their flags are listed."""
    _load()
    return sorted(_PLATFORMS.values(), key=lambda p: (p.order, p.name))


def platform(name: str) -> ChatPlatform:
    """The platform registered under `name` (KeyError when there is none)."""
    _load()
    return _PLATFORMS[name]


def either(hints: list[str]) -> str:
    """"a, b and/or c": how error lines list the flags to choose from."""
    return hints[0] if len(hints) == 1 else ", ".join(hints[:-1]) + " and/or " + hints[-1]
