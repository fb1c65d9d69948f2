"""Plugins: small Python classes that hook into the pipeline (docs/plugins.md).

A plugin subclasses `Plugin` and overrides any of:

- `on_chat(msg)`: every chat message before triage; return it, a changed copy, or None to drop it.
- `on_pick(turn)`: the turn the director picked; return it, a changed copy, or None to skip it.
- `on_clause(text, turn)`: each reply clause before it is spoken or shown; return text or None.
- `on_event(event)`: follows, subs, bits, raids; return a line to say, or None.
- `setup(ctx)`: register chat commands with `ctx.command(name, permission)`.

Plugins are found, in this order, among the built-ins, Python entry points (group
`vtuber.plugins`), .py files in the user's plugin folder (`vtuber.paths.user_plugins()`),
in the folder named in the config (`plugins.folder`), and in the bundled folder
(`vtuber.paths.bundled("plugins")`). A file plugin's name is its file stem. Listing names
imports nothing; only the enabled plugins are imported, each once per process, each with
a time limit (`IMPORT_TIMEOUT_S`).

Every hook runs with a time limit: a plugin that raises (even `SystemExit`) or hangs, in a
hook, at import or in its constructor, is disabled with one logged line and the stream goes
on. The moderation gate is not a plugin: it runs after every `on_clause` hook, so no plugin
can undo it.
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

from vtuber import paths
from vtuber.errors import UserError
from vtuber.events import MODERATOR_BADGES, SUBSCRIBER_BADGES, ChatMessage, StreamEvent, Turn, badge_names

log = logging.getLogger("vtuber.plugins")

ENTRY_POINT_GROUP = "vtuber.plugins"
IMPORT_TIMEOUT_S = 5.0  # importing (and constructing) one plugin; hooks have plugins.timeout_s


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
        """While muted the co-host answers nothing (muting also stops the reply being spoken)."""

    def skip(self) -> None:
        """Stop the reply being spoken now (the next input is picked)."""

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

    async def _chain(self, hook: str, value, kind: type, *context) -> tuple[object | None, str]:
        """Run `hook` of each plugin in order on `value` (and `context`): a `kind` result
        replaces it, None drops it. (value, "") or (None, the plugin that dropped it)."""
        for p in self._active(hook):
            try:
                out = await self._acall(p, getattr(p, hook), value, *context)
            except _Disabled:
                continue
            if out is None:
                return None, p.name
            if isinstance(out, kind):
                value = out
        return value, ""

    async def pick(self, turn: Turn) -> tuple[Turn | None, str]:
        return await self._chain("on_pick", turn, Turn)

    async def clause(self, text: str, turn: Turn) -> str | None:
        return (await self._chain("on_clause", text, str, turn))[0]

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
#
# Listing what exists never runs plugin code: built-in classes, entry point names and file
# stems. Only an enabled plugin is imported, once per process (the CLI's start-up check and
# the session both call load_plugins), in a daemon thread with a time limit.


@dataclass(frozen=True)
class _Source:
    name: str
    where: str  # for messages: "built-in", "entry point pkg:Cls", a file path
    load: Callable[[], Any]  # runs the plugin's import; returns what _pick reads
    pick: Callable[[Any], Any] = lambda obj: obj  # the class, factory or instance to start


_lock = threading.RLock()
_imported: dict[str, Any] = {}  # where -> what load() returned
_failed: dict[str, str] = {}  # where -> why (logged once, when it happened)


def _run_limited(fn: Callable[[], Any], timeout_s: float, thread_name: str) -> Any:
    """fn() in a daemon thread; FutureTimeout after timeout_s (the thread is left behind,
    and cannot keep the program from exiting). What fn raises comes back as an Exception."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as e:  # SystemExit at import must not end the program
            future.set_exception(_from_plugin(e))

    threading.Thread(target=run, name=thread_name, daemon=True).start()
    return future.result(timeout=timeout_s)


def _exec_file(path: Path, mod_name: str) -> Any:
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if sys.modules.get(mod_name) is module:
            del sys.modules[mod_name]
        raise
    return module


def _pick_from_module(module: Any, path: Path) -> Any:
    """The module-level `PLUGIN`, else its one Plugin subclass (or the one named as the file)."""
    if hasattr(module, "PLUGIN"):
        return module.PLUGIN
    classes = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, Plugin) and cls is not Plugin and cls.__module__ == module.__name__
    ]
    if len(classes) == 1:
        return classes[0]
    named = [cls for cls in classes if cls.name == path.stem]
    if len(named) == 1:
        return named[0]
    if not classes:
        raise UserError(f"{path}: no vtuber.plugins.Plugin subclass (or module-level PLUGIN) in the file")
    names = ", ".join(cls.__name__ for cls in classes)
    raise UserError(
        f"{path}: several Plugin classes ({names}); set name = \"{path.stem}\" on the one to run, or PLUGIN = TheClass"
    )


def _file_source(path: Path) -> _Source:
    mod_name = f"vtuber_plugin_{path.stem}"
    return _Source(
        path.stem,
        str(path),
        lambda: _exec_file(path, mod_name),
        lambda module: _pick_from_module(module, path),
    )


def _construct(obj: Any) -> Any:
    if inspect.isclass(obj) or (callable(obj) and not isinstance(obj, Plugin)):
        return obj()
    return obj


def plugin_folders(folder: Path | None = None) -> list[Path]:
    """Where .py plugins are looked for, in order: the user's folder, `folder` (from the
    config), the bundled folder. The first file with a given stem wins."""
    found: list[Path] = []
    for f in (paths.user_plugins(), Path(folder) if folder is not None else None, paths.bundled("plugins")):
        if f is not None and f not in found:
            found.append(f)
    return found


def _sources(folder: Path | None) -> dict[str, _Source]:
    """Every plugin that can be enabled, by name, without importing any of them."""
    from vtuber.plugins import builtin

    found: dict[str, _Source] = {}
    for cls in builtin.BUILTINS:
        found[cls.name] = _Source(cls.name, f"built-in {cls.__name__}", lambda cls=cls: cls)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, _Source(ep.name, f"entry point {ep.value}", ep.load))
    for f in plugin_folders(folder):
        if not f.is_dir():
            continue
        for path in sorted(f.glob("*.py")):
            if path.name.startswith(("_", ".")) or not path.is_file():
                continue
            found.setdefault(path.stem, _file_source(path))
    return found


def _give_up(src: _Source, why: str) -> None:
    _failed[src.where] = why
    log.error("plugin %s disabled: %s", src.name, why)
    return None


def _start(src: _Source, import_timeout_s: float) -> Plugin | None:
    """Import (once) and construct one plugin, each step time-limited. None when plugin code
    failed or hung (logged once, the first time); UserError when what it holds is not a plugin."""
    with _lock:
        if src.where in _failed:
            log.debug("plugin %s stays disabled: %s", src.name, _failed[src.where])
            return None
        if src.where not in _imported:
            try:
                _imported[src.where] = _run_limited(src.load, import_timeout_s, f"plugin-import-{src.name}")
            except FutureTimeout:
                return _give_up(src, f"took more than {import_timeout_s:g} s to import {src.where}")
            except Exception as e:
                return _give_up(src, f"failed to import {src.where} ({_describe(e)})")
        obj = src.pick(_imported[src.where])
        try:
            plugin = _run_limited(lambda: _construct(obj), import_timeout_s, f"plugin-start-{src.name}")
        except FutureTimeout:
            return _give_up(src, f"took more than {import_timeout_s:g} s to start ({src.where})")
        except Exception as e:
            return _give_up(src, f"failed to start ({_describe(e)}, {src.where})")
    if not isinstance(plugin, Plugin):
        raise UserError(f"{src.where}: plugin '{src.name}' is not a vtuber.plugins.Plugin")
    return plugin


def available_plugins(folder: Path | None = None) -> dict[str, Callable[[], Plugin | None]]:
    """Every plugin that can be enabled, by name: built-ins, entry points, then .py files in
    `plugin_folders(folder)`. Nothing is imported until a factory is called; a factory
    returns None when the plugin failed to import or start (logged once)."""
    return {
        name: (lambda src=src: _start(src, IMPORT_TIMEOUT_S))
        for name, src in _sources(folder).items()
    }


def load_plugins(
    enabled: list[str], folder: Path | None = None, *, import_timeout_s: float = IMPORT_TIMEOUT_S
) -> list[Plugin]:
    """Import and instantiate the enabled plugins, in the order given, and nothing else.

    An unknown name, or a file that holds no plugin, is a UserError. A plugin whose code
    raises (SystemExit included) or takes more than import_timeout_s to import or construct
    is left out with one logged line, and the rest go on."""
    sources = _sources(folder)
    plugins = []
    for name in enabled:
        src = sources.get(name)
        if src is None:
            folders = ", ".join(str(f) for f in plugin_folders(folder))
            available = ", ".join(sorted(sources))
            raise UserError(
                f"plugins.enabled: no plugin named '{name}' (available: {available}; folders searched: {folders})"
            )
        plugin = _start(src, import_timeout_s)
        if plugin is None:
            continue
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
    "plugin_folders",
]
