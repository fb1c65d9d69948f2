"""Plugins: small Python classes that hook into the pipeline (docs/plugins.md).

A plugin subclasses `Plugin` and overrides any of:

- `on_chat(msg)`: every chat message before triage; return it, a changed copy, or None to drop it.
- `on_pick(turn)`: the turn the director picked; return it, a changed copy, or None to skip it.
- `on_clause(text, turn)`: each reply clause before it is spoken or shown; return text or None.
- `on_event(event)`: follows, subs, bits, raids; return a line to say, or None.
- `setup(ctx)`: register chat commands with `ctx.command(name, permission)`.

Plugins are found in Python entry points (group `vtuber.plugins`) and in .py files in
the top-level `plugins/` folder, and run only when enabled by name in the config
(`[plugins] enabled = [...]`). Every hook runs with a time limit: a plugin that raises
or hangs is disabled with one logged line and the stream goes on. The moderation gate
is not a plugin: it runs after every `on_clause` hook, so no plugin can undo it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable
import queue
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from enum import IntEnum
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from vtuber.errors import UserError
from vtuber.events import MODERATOR_BADGES, SUBSCRIBER_BADGES, ChatMessage, StreamEvent, Turn, badge_names

log = logging.getLogger("vtuber.plugins")

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins"
ENTRY_POINT_GROUP = "vtuber.plugins"


class Permission(IntEnum):
    """Who may run a command; each level includes the ones above it."""

    EVERYONE = 0
    SUBSCRIBER = 1
    VIP = 2
    MODERATOR = 3
    BROADCASTER = 4


def permission_of(msg: ChatMessage) -> Permission:
    """The highest level the message's badges grant."""
    badges = badge_names(msg.badges)
    if "broadcaster" in badges:
        return Permission.BROADCASTER
    if badges & MODERATOR_BADGES:
        return Permission.MODERATOR
    if "vip" in badges:
        return Permission.VIP
    if badges & SUBSCRIBER_BADGES:
        return Permission.SUBSCRIBER
    return Permission.EVERYONE


@dataclass(frozen=True)
class Command:
    name: str
    handler: Callable[[ChatMessage, str], str | None]
    permission: Permission = Permission.EVERYONE
    help: str = ""
    plugin: str = ""


class Controls:
    """What plugins may do to the session. The session provides the real one."""

    def say(self, text: str, origin: str = "") -> None:
        """Speak a fixed line (still passes the moderation gate)."""

    def ask(self, msg: ChatMessage) -> None:
        """Queue a chat message to be answered by the co-host."""

    def set_persona(self, name: str) -> str:
        """Switch persona; returns the new persona's name. Raises UserError if unknown."""
        raise UserError("no session")

    def set_muted(self, muted: bool) -> None:
        """While muted the co-host answers nothing."""

    @property
    def persona_name(self) -> str:
        return ""


class PluginContext:
    """Handed to `Plugin.setup`: register commands, reach the session's controls."""

    def __init__(self, plugin: str, controls: Controls, commands: dict[str, Command], settings: dict[str, Any]):
        self.plugin = plugin
        self.controls = controls
        self._commands = commands
        self.settings = settings  # this plugin's table from the config ([plugins.settings.NAME])

    def command(self, name: str, permission: Permission = Permission.EVERYONE, help: str = ""):
        """Decorator: `@ctx.command("hello")` on `def hello(msg, args) -> str | None`."""
        key = name.lower().lstrip("!")

        def register(fn: Callable[[ChatMessage, str], str | None]):
            if key in self._commands:
                raise UserError(f"plugin {self.plugin}: command !{key} is already taken by {self._commands[key].plugin}")
            self._commands[key] = Command(key, fn, Permission(permission), help, self.plugin)
            return fn

        return register

    def say(self, text: str) -> None:
        self.controls.say(text, origin=self.plugin)


class Plugin:
    """Base class: override the hooks you need (see the module docstring)."""

    name: str = ""

    def setup(self, ctx: PluginContext) -> None:
        pass

    def on_chat(self, msg: ChatMessage) -> ChatMessage | None:
        return msg

    def on_pick(self, turn: Turn) -> Turn | None:
        return turn

    def on_clause(self, text: str, turn: Turn) -> str | None:
        return text

    def on_event(self, event: StreamEvent) -> str | None:
        return None


def _overrides(plugin: Plugin, hook: str) -> bool:
    return getattr(type(plugin), hook) is not getattr(Plugin, hook)


class _Disabled(Exception):
    pass


class _PluginExit(Exception):
    """A BaseException that is not an Exception (SystemExit, GeneratorExit, ...) raised by
    plugin code in a plugin's thread, carried back as an ordinary exception: the caller
    disables the plugin instead of ending the program. The program's own Ctrl-C is raised
    in the main thread while it waits, never in a plugin's thread, so it is not caught."""

    def __init__(self, original: BaseException):
        super().__init__(str(original))
        self.original = original


def _from_plugin(e: BaseException) -> Exception:
    return e if isinstance(e, Exception) else _PluginExit(e)


def _describe(e: BaseException) -> str:
    e = e.original if isinstance(e, _PluginExit) else e
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class _Worker:
    """One daemon thread per plugin: a plugin that hangs forever cannot keep the
    program from exiting (a ThreadPoolExecutor's threads are joined at exit)."""

    def __init__(self, name: str):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._run, name=f"plugin-{name}", daemon=True).start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as e:  # handed to the caller, who disables the plugin
                    future.set_exception(_from_plugin(e))

    def submit(self, fn: Callable, *args) -> Future:
        future: Future = Future()
        self._jobs.put((future, fn, args))
        return future

    def shutdown(self) -> None:
        self._jobs.put(None)


class PluginHost:
    """Runs the enabled plugins' hooks, each in the plugin's own thread with a time limit."""

    def __init__(self, plugins: list[Plugin], controls: Controls, timeout_s: float = 0.25, settings: dict | None = None):
        self.plugins = plugins
        self.controls = controls
        self.timeout_s = timeout_s
        self.commands: dict[str, Command] = {}
        self.disabled: dict[str, str] = {}  # name -> why
        self._workers = {p.name: _Worker(p.name) for p in plugins}
        settings = settings or {}
        for p in plugins:
            ctx = PluginContext(p.name, controls, self.commands, dict(settings.get(p.name, {})))
            try:
                self._call(p, p.setup, ctx, setup=True)
            except _Disabled:
                continue

    def _disable(self, plugin: Plugin, why: str) -> _Disabled:
        self.disabled[plugin.name] = why
        log.error("plugin %s disabled: %s", plugin.name, why)
        return _Disabled()

    def _call(self, plugin: Plugin, fn: Callable, *args, setup: bool = False):
        """Run a hook from synchronous code (chat in, events, commands), time-limited."""
        if plugin.name in self.disabled:
            raise _Disabled
        future = self._workers[plugin.name].submit(fn, *args)
        try:
            return future.result(timeout=self.timeout_s)
        except FutureTimeout:
            raise self._disable(plugin, f"hung for more than {self.timeout_s:g} s in {fn.__name__}") from None
        except UserError:
            if setup:  # a configuration mistake (e.g. a command name taken twice): stop at start
                raise
            raise self._disable(plugin, f"failed in {fn.__name__}") from None
        except Exception as e:  # a plugin's bug must not end the stream
            raise self._disable(plugin, f"raised {_describe(e)} in {fn.__name__}") from None

    async def _acall(self, plugin: Plugin, fn: Callable, *args):
        """Run a hook from the pipeline's async path without blocking the event loop."""
        if plugin.name in self.disabled:
            raise _Disabled
        future = self._workers[plugin.name].submit(fn, *args)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except asyncio.TimeoutError:
            raise self._disable(plugin, f"hung for more than {self.timeout_s:g} s in {fn.__name__}") from None
        except Exception as e:  # a plugin's bug must not end the stream
            raise self._disable(plugin, f"raised {_describe(e)} in {fn.__name__}") from None

    def _active(self, hook: str):
        return [p for p in self.plugins if p.name not in self.disabled and _overrides(p, hook)]

    def chat(self, msg: ChatMessage) -> tuple[ChatMessage | None, str]:
        """Run on_chat hooks in order; (None, plugin) when one drops the message."""
        for p in self._active("on_chat"):
            try:
                out = self._call(p, p.on_chat, msg)
            except _Disabled:
                continue
            if out is None:
                return None, p.name
            if isinstance(out, ChatMessage):
                msg = out
        return msg, ""

    async def pick(self, turn: Turn) -> tuple[Turn | None, str]:
        for p in self._active("on_pick"):
            try:
                out = await self._acall(p, p.on_pick, turn)
            except _Disabled:
                continue
            if out is None:
                return None, p.name
            if isinstance(out, Turn):
                turn = out
        return turn, ""

    async def clause(self, text: str, turn: Turn) -> str | None:
        for p in self._active("on_clause"):
            try:
                out = await self._acall(p, p.on_clause, text, turn)
            except _Disabled:
                continue
            if out is None:
                return None
            if isinstance(out, str):
                text = out
        return text

    def event(self, event: StreamEvent) -> list[tuple[str, str]]:
        """(line, plugin) for every plugin that has something to say about the event."""
        lines = []
        for p in self._active("on_event"):
            try:
                out = self._call(p, p.on_event, event)
            except _Disabled:
                continue
            if isinstance(out, str) and out.strip():
                lines.append((out.strip(), p.name))
        return lines

    def command(self, msg: ChatMessage) -> tuple[bool, str | None]:
        """(was it a command, its reply). Unknown or unpermitted commands are swallowed:
        "!anything" is never answered by the LLM."""
        word, _, args = msg.text.strip()[1:].partition(" ")
        cmd = self.commands.get(word.lower())
        if cmd is None:
            return True, None
        if permission_of(msg) < cmd.permission:
            log.warning("!%s from %s refused: needs %s", cmd.name, msg.user, cmd.permission.name.lower())
            return True, None
        plugin = next((p for p in self.plugins if p.name == cmd.plugin), None)
        if plugin is None:
            return True, None
        try:
            reply = self._call(plugin, cmd.handler, msg, args.strip())
        except _Disabled:
            return True, None
        return True, reply if isinstance(reply, str) and reply.strip() else None

    def close(self) -> None:
        for worker in self._workers.values():
            worker.shutdown()


# --- discovery -------------------------------------------------------------------------


def _instantiate(obj: Any, name: str, where: str) -> Plugin:
    if inspect.isclass(obj) and issubclass(obj, Plugin):
        obj = obj()
    elif callable(obj) and not isinstance(obj, Plugin):
        obj = obj()
    if not isinstance(obj, Plugin):
        raise UserError(f"{where}: plugin '{name}' is not a vtuber.plugins.Plugin")
    if not obj.name:
        obj.name = name
    return obj


def _from_file(path: Path) -> list[tuple[str, Callable[[], Plugin]]]:
    """Plugin classes defined in a .py file (or its module-level `PLUGIN`)."""
    mod_name = f"vtuber_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        return []
    module = importlib.util.module_from_spec(spec)
    try:
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    except Exception as e:
        log.error("plugin file %s failed to load: %s: %s", path, type(e).__name__, e)
        sys.modules.pop(mod_name, None)
        return []
    if hasattr(module, "PLUGIN"):
        obj = module.PLUGIN
        name = getattr(obj, "name", "") or path.stem
        return [(name, lambda obj=obj, name=name: _instantiate(obj, name, str(path)))]
    found = []
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if issubclass(cls, Plugin) and cls is not Plugin and cls.__module__ == mod_name:
            name = cls.name or path.stem
            found.append((name, lambda cls=cls, name=name: _instantiate(cls, name, str(path))))
    return found


def available_plugins(folder: Path | None = None) -> dict[str, Callable[[], Plugin]]:
    """Every plugin that can be enabled: built-ins, entry points, then files in plugins/."""
    from vtuber.plugins import builtin

    found: dict[str, Callable[[], Plugin]] = {}
    for cls in builtin.BUILTINS:
        found[cls.name] = cls
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, lambda ep=ep: _instantiate(ep.load(), ep.name, f"entry point {ep.value}"))
    folder = PLUGIN_DIR if folder is None else folder
    if folder.is_dir():
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_"):
                continue
            for name, factory in _from_file(path):
                found.setdefault(name, factory)
    return found


def load_plugins(enabled: list[str], folder: Path | None = None) -> list[Plugin]:
    """Instantiate the enabled plugins, in the order given. An unknown name is a UserError."""
    found = available_plugins(folder)
    plugins = []
    for name in enabled:
        if name not in found:
            raise UserError(f"plugins.enabled: no plugin named '{name}' (available: {', '.join(sorted(found))})")
        try:
            plugin = found[name]()
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"plugin '{name}' failed to start ({type(e).__name__}: {e})") from None
        plugin.name = name
        plugins.append(plugin)
    return plugins


__all__ = [
    "Command",
    "Controls",
    "Permission",
    "Plugin",
    "PluginContext",
    "PluginHost",
    "available_plugins",
    "load_plugins",
    "permission_of",
]
