"""The plugin API: hooks, commands and permissions, discovery, and misbehaving plugins (unit)."""

from __future__ import annotations

import logging
import sys
import textwrap
import time

import pytest

from vtuber.errors import UserError
from vtuber.events import ChatMessage, StreamEvent, Turn
from vtuber import paths
from vtuber.plugins import (
    Controls,
    Permission,
    Plugin,
    PluginHost,
    available_plugins,
    load_plugins,
    permission_of,
    plugin_folders,
)
from vtuber.plugins.builtin import ChatCommands, ThankYou


@pytest.fixture(autouse=True)
def user_config(tmp_path, monkeypatch):
    """No test reads or writes the real user config folder (platformdirs honours XDG_CONFIG_HOME)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config"


class FakeControls(Controls):
    def __init__(self):
        self.said, self.asked, self.muted, self.persona = [], [], None, "Miko"

    def say(self, text, origin=""):
        self.said.append((text, origin))

    def ask(self, msg):
        self.asked.append(msg)

    def set_persona(self, name):
        if name != "nova":
            raise UserError(f"{name}: persona not found")
        self.persona = "Nova"
        return "Nova"

    def set_muted(self, muted):
        self.muted = muted

    @property
    def persona_name(self):
        return self.persona


def msg(text, user="alice", badges=()):
    return ChatMessage(user=user, text=text, t=0.0, badges=tuple(badges))


def host(*plugins, timeout=0.2):
    controls = FakeControls()
    for i, p in enumerate(plugins):
        p.name = p.name or f"p{i}"
    return PluginHost(list(plugins), controls, timeout_s=timeout), controls


def test_permission_from_badges():
    assert permission_of(msg("x")) == Permission.EVERYONE
    assert permission_of(msg("x", badges=["subscriber/12"])) == Permission.SUBSCRIBER
    assert permission_of(msg("x", badges=["vip"])) == Permission.VIP
    assert permission_of(msg("x", badges=["moderator/1", "subscriber/3"])) == Permission.MODERATOR
    assert permission_of(msg("x", badges=["broadcaster/1"])) == Permission.BROADCASTER


def test_chat_hooks_transform_then_drop_in_order():
    class Upper(Plugin):
        name = "upper"

        def on_chat(self, m):
            return ChatMessage(**{**m.__dict__, "text": m.text.upper()})

    class NoLinks(Plugin):
        name = "nolinks"

        def on_chat(self, m):
            return None if "HTTP" in m.text else m

    h, _ = host(Upper(), NoLinks())
    kept, by = h.chat(msg("hello there"))
    assert kept.text == "HELLO THERE" and by == ""
    dropped, by = h.chat(msg("see http://x"))
    assert dropped is None and by == "nolinks"


async def test_clause_and_pick_hooks():
    class Polite(Plugin):
        name = "polite"

        def on_clause(self, text, turn):
            return None if "skip" in text else text.replace("dude", "friend")

        def on_pick(self, turn):
            return None if turn.user == "spammer" else turn

    h, _ = host(Polite())
    t = Turn(1, "chat", "bob", "hi", 0, 0, 0)
    assert await h.clause("hey dude!", t) == "hey friend!"
    assert await h.clause("please skip this", t) is None
    assert (await h.pick(t))[0] is t
    assert await h.pick(Turn(2, "chat", "spammer", "buy", 0, 0, 0)) == (None, "polite")


def test_commands_respect_permissions():
    h, controls = host(ChatCommands())
    assert h.command(msg("!persona nova")) == (True, None)  # a viewer cannot switch persona
    assert controls.persona == "Miko"
    assert h.command(msg("!mute")) == (True, None)
    assert controls.muted is None
    handled, reply = h.command(msg("!persona nova", user="mod", badges=["moderator/1"]))
    assert handled and reply == "Nova here now!" and controls.persona == "Nova"
    assert h.command(msg("!persona nosuch", badges=["moderator/1"]))[1] == "I don't know a persona called nosuch."
    h.command(msg("!mute", badges=["broadcaster/1"]))
    assert controls.muted is True
    h.command(msg("!ask what is the best snack?"))
    assert [m.text for m in controls.asked] == ["what is the best snack?"]
    assert h.command(msg("!nosuchcommand and text")) == (True, None)  # swallowed, never answered


def test_thank_you_lines():
    h, _ = host(ThankYou())
    assert h.event(StreamEvent("raid", "bigstreamer", 0.0, amount=40)) == [
        ("Welcome, raiders! Thank you for the raid, bigstreamer!", "thanks")
    ]
    assert h.event(StreamEvent("bits", "carol", 0.0, amount=100)) == [("Thanks for the 100 bits, carol!", "thanks")]
    assert h.event(StreamEvent("unknown", "x", 0.0)) == []


def test_a_plugin_that_raises_is_disabled_and_the_rest_go_on(caplog):
    class Broken(Plugin):
        name = "broken"

        def on_chat(self, m):
            raise RuntimeError("boom")

    class Tag(Plugin):
        name = "tag"

        def on_chat(self, m):
            return ChatMessage(**{**m.__dict__, "text": m.text + " [ok]"})

    h, _ = host(Broken(), Tag())
    kept, _ = h.chat(msg("hi"))
    assert kept.text == "hi [ok]"
    assert "broken" in h.disabled and "RuntimeError: boom" in h.disabled["broken"]
    assert any("plugin broken disabled" in r.getMessage() for r in caplog.records)
    assert h.chat(msg("again"))[0].text == "again [ok]"  # not called again


async def test_a_plugin_that_hangs_is_timed_out_and_disabled():
    class Hangs(Plugin):
        name = "hangs"

        def on_clause(self, text, turn):
            time.sleep(3)
            return "never"

    h, _ = host(Hangs(), timeout=0.1)
    t0 = time.monotonic()
    out = await h.clause("hello there", Turn(1, "chat", "a", "x", 0, 0, 0))
    assert out == "hello there"  # the clause goes on unchanged
    assert time.monotonic() - t0 < 1.0
    assert "hung" in h.disabled["hangs"]


def test_a_plugin_that_fails_in_setup_is_disabled():
    class BadSetup(Plugin):
        name = "badsetup"

        def setup(self, ctx):
            raise ValueError("no config")

    h, _ = host(BadSetup())
    assert "badsetup" in h.disabled


def test_command_names_belong_to_one_plugin():
    class A(Plugin):
        name = "a"

        def setup(self, ctx):
            ctx.command("ping")(lambda m, a: "pong")

    class B(Plugin):
        name = "b"

        def setup(self, ctx):
            ctx.command("ping")(lambda m, a: "pang")

    with pytest.raises(UserError, match="already taken"):
        host(A(), B())


def test_discovery_from_the_plugins_folder(tmp_path):
    (tmp_path / "shout.py").write_text(
        textwrap.dedent(
            """
            from vtuber.plugins import Plugin

            class Shout(Plugin):
                name = "shout"
                def on_clause(self, text, turn):
                    return text.upper()
            """
        )
    )
    (tmp_path / "broken.py").write_text("raise ImportError('missing dependency')\n")
    found = available_plugins(tmp_path)
    assert {"commands", "thanks", "shout", "broken", "hello"} <= set(found)  # names only: file stems
    [shout] = load_plugins(["shout"], tmp_path)
    assert shout.name == "shout" and shout.on_clause("hi", None) == "HI"


def test_a_plugin_hook_raising_a_user_error_is_disabled_not_fatal():
    class Strict(Plugin):
        name = "strict"

        def on_chat(self, m):
            raise UserError("bad persona name")

    h, _ = host(Strict())
    assert h.chat(msg("hi"))[0].text == "hi"
    assert "strict" in h.disabled


async def test_a_hanging_hook_does_not_block_the_event_loop():
    import asyncio

    class Hangs(Plugin):
        name = "hangs"

        def on_clause(self, text, turn):
            time.sleep(1)
            return text

    h, _ = host(Hangs(), timeout=0.3)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await h.clause("hello", Turn(1, "chat", "a", "x", 0, 0, 0))
    task.cancel()
    assert ticks >= 10  # the loop kept running while the plugin hung


def test_the_example_plugin_in_the_repo_works():
    [hello] = load_plugins(["hello"])
    h, _ = host(hello)
    assert h.command(msg("!hello", user="dave")) == (True, "Hello, dave! Welcome to the stream.")
    assert h.chat(msg("https://spam.example"))[0] is None


def test_discovery_from_entry_points(tmp_path, monkeypatch):
    pkg = tmp_path / "wave_plugin.py"
    pkg.write_text("from vtuber.plugins import Plugin\nclass Wave(Plugin):\n    def on_event(self, e):\n        return f'*waves at {e.user}*'\n")
    dist = tmp_path / "wave_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: wave-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[vtuber.plugins]\nwave = wave_plugin:Wave\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("wave_plugin", None)
    assert "wave" in available_plugins()
    assert "wave_plugin" not in sys.modules  # listed by its declared name, not imported
    [wave] = load_plugins(["wave"])
    assert wave.name == "wave"
    assert wave.on_event(StreamEvent("follow", "erin", 0.0)) == "*waves at erin*"
    sys.modules.pop("wave_plugin", None)


def test_unknown_plugin_name_is_a_clear_error():
    with pytest.raises(UserError, match="no plugin named 'nope'"):
        load_plugins(["nope"])


# --- hostile plugins at the door (issue 7) -----------------------------------------------


def _plugin_file(folder, stem, body):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.py"
    path.write_text(textwrap.dedent(body))
    return path


GOOD = """
    from vtuber.plugins import Plugin

    class Good(Plugin):
        def on_event(self, e):
            return "good"
"""


def _disabled_lines(caplog, name):
    return [r for r in caplog.records if r.getMessage().startswith(f"plugin {name} disabled")]


@pytest.mark.parametrize(
    "exit_call, kind",
    [
        ("sys.exit(0)", "SystemExit: 0"),
        ("sys.exit('bye')", "SystemExit: bye"),
        ("raise GeneratorExit", "GeneratorExit"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
    ],
)
def test_a_hook_that_exits_disables_the_plugin_and_the_session_goes_on(exit_call, kind, caplog):
    """sys.exit in a hook used to come back out of future.result() in the caller and end
    the program with nothing written. Plugin threads never get the program's own Ctrl-C."""
    caplog.set_level(logging.ERROR, logger="vtuber.plugins")
    # A plain function that raises, as plugin code would. (Not exec(): CPython remembers a
    # KeyboardInterrupt that escapes exec() and makes the whole test run exit with 130.)
    def exits():
        if exit_call == "sys.exit(0)":
            sys.exit(0)
        if exit_call == "sys.exit('bye')":
            sys.exit("bye")
        if exit_call == "raise GeneratorExit":
            raise GeneratorExit
        raise KeyboardInterrupt

    class Quits(Plugin):
        def setup(self, ctx):
            ctx.command("quit")(self.quit)

        def quit(self, m, args):
            exits()

        def on_chat(self, m):
            exits()

        def on_event(self, e):
            exits()

    class QuitsAsync(Plugin):
        def on_pick(self, turn):
            exits()

        def on_clause(self, text, turn):
            exits()

    class QuitsInSetup(Plugin):
        def setup(self, ctx):
            exits()

    import asyncio

    t = Turn(1, "chat", "a", "x", 0, 0, 0)
    for hook in ("chat", "event", "command"):
        h, _ = host(Quits(), ThankYou())
        if hook == "chat":
            assert h.chat(msg("hi"))[0].text == "hi"
        elif hook == "event":
            assert h.event(StreamEvent("follow", "bo", 0.0)) == [("Thanks for the follow, bo!", "thanks")]
        else:
            assert h.command(msg("!quit")) == (True, None)
        assert "p0" in h.disabled, hook
        h.close()
    h, _ = host(QuitsAsync())
    assert asyncio.run(h.pick(t)) == (t, "")
    assert "p0" in h.disabled
    h, _ = host(QuitsAsync())
    assert asyncio.run(h.clause("hello", t)) == "hello"
    assert "p0" in h.disabled
    h, _ = host(QuitsInSetup(), ThankYou())
    assert "p0" in h.disabled and "thanks" not in h.disabled
    assert len(_disabled_lines(caplog, "p0")) == 6  # one line per disabled plugin
    assert all(f"raised {kind}" in r.getMessage() for r in _disabled_lines(caplog, "p0"))


def test_a_plugin_that_exits_at_import_is_disabled_and_the_rest_load(tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="vtuber.plugins")
    _plugin_file(tmp_path, "quitter", "import sys\nsys.exit(0)\n")
    _plugin_file(tmp_path, "good", GOOD)
    loaded = load_plugins(["quitter", "good", "thanks"], tmp_path)
    assert [p.name for p in loaded] == ["good", "thanks"]
    [line] = _disabled_lines(caplog, "quitter")
    assert "SystemExit" in line.getMessage() and "quitter.py" in line.getMessage()


def test_a_constructor_that_exits_is_disabled_not_fatal(tmp_path, caplog):
    _plugin_file(
        tmp_path,
        "grumpy",
        """
        import sys
        from vtuber.plugins import Plugin

        class Grumpy(Plugin):
            def __init__(self):
                sys.exit("no")
        """,
    )
    assert load_plugins(["grumpy", "thanks"], tmp_path)[0].name == "thanks"
    [line] = _disabled_lines(caplog, "grumpy")
    assert "failed to start (SystemExit: no" in line.getMessage()


def test_listing_plugins_imports_no_file(tmp_path):
    """Discovery used to exec every .py in the folder, enabled or not: one that blocks at
    import hung start-up. Now listing reads file names only, and only enabled files are imported."""
    marker = tmp_path / "imported"
    for stem in ("blocks", "marks"):
        _plugin_file(
            tmp_path / "plugins",
            stem,
            f"""
            import time
            open({str(marker)!r}, "a").write("{stem}\\n")
            time.sleep(30 if "{stem}" == "blocks" else 0)
            """,
        )
    _plugin_file(tmp_path / "plugins", "good", GOOD)
    t0 = time.monotonic()
    assert {"blocks", "marks", "good", "hello", "commands"} <= set(available_plugins(tmp_path / "plugins"))
    [good] = load_plugins(["good"], tmp_path / "plugins")
    assert good.on_event(None) == "good"
    with pytest.raises(UserError, match=r"no plugin named 'nope' \(available: .*blocks.*good.*marks"):
        load_plugins(["nope"], tmp_path / "plugins")
    assert time.monotonic() - t0 < 2.0
    assert not marker.exists()  # neither file was imported


def test_a_plugin_that_blocks_at_import_is_timed_out_and_disabled(tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="vtuber.plugins")
    _plugin_file(tmp_path, "slow", "import time\ntime.sleep(5)\n")
    _plugin_file(tmp_path, "good", GOOD)
    t0 = time.monotonic()
    loaded = load_plugins(["slow", "good"], tmp_path, import_timeout_s=0.2)
    assert [p.name for p in loaded] == ["good"]
    assert load_plugins(["slow"], tmp_path, import_timeout_s=0.2) == []  # not waited for twice
    assert time.monotonic() - t0 < 1.5
    [line] = _disabled_lines(caplog, "slow")
    assert "took more than 0.2 s to import" in line.getMessage() and "slow.py" in line.getMessage()


def test_the_import_limit_is_larger_than_the_hook_limit():
    from vtuber.config import PluginsConfig
    from vtuber.plugins import IMPORT_TIMEOUT_S

    assert IMPORT_TIMEOUT_S >= 5 * PluginsConfig().timeout_s


def test_an_enabled_plugin_is_imported_once_and_a_failure_logged_once(tmp_path, caplog):
    """The CLI's start-up check and the session both load the plugins: one import, one line."""
    caplog.set_level(logging.DEBUG, logger="vtuber.plugins")
    count = tmp_path / "count"
    _plugin_file(
        tmp_path / "p",
        "counted",
        f"""
        open({str(count)!r}, "a").write("x")
        from vtuber.plugins import Plugin

        class Counted(Plugin):
            pass
        """,
    )
    _plugin_file(tmp_path / "p", "broken", "raise ImportError('missing dependency')\n")
    for _ in range(2):
        loaded = load_plugins(["counted", "broken"], tmp_path / "p")
        assert [p.name for p in loaded] == ["counted"]
    assert count.read_text() == "x"
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING and "broken" in r.getMessage()]
    assert len(errors) == 1
    assert "ImportError: missing dependency" in errors[0].getMessage()


def test_a_file_plugin_is_named_by_its_stem(tmp_path):
    _plugin_file(
        tmp_path,
        "loud",
        """
        from vtuber.plugins import Plugin

        class Shouty(Plugin):
            name = "shouty"
            def on_clause(self, text, turn):
                return text.upper()
        """,
    )
    _plugin_file(
        tmp_path,
        "two",
        """
        from vtuber.plugins import Plugin

        class Base(Plugin):
            pass

        class Two(Base):
            name = "two"
        """,
    )
    _plugin_file(
        tmp_path,
        "both",
        """
        from vtuber.plugins import Plugin

        class A(Plugin):
            pass

        class B(Plugin):
            pass
        """,
    )
    _plugin_file(
        tmp_path,
        "obj",
        """
        from vtuber.plugins import Plugin

        class O(Plugin):
            pass

        class Other(Plugin):
            pass

        PLUGIN = O()
        """,
    )
    _plugin_file(tmp_path, "empty", "X = 1\n")
    _plugin_file(tmp_path, "notone", "PLUGIN = 42\n")
    [loud] = load_plugins(["loud"], tmp_path)
    assert loud.name == "loud" and loud.on_clause("hi", None) == "HI"
    with pytest.raises(UserError, match="no plugin named 'shouty'"):
        load_plugins(["shouty"], tmp_path)
    [two] = load_plugins(["two"], tmp_path)
    assert type(two).__name__ == "Two"
    [obj] = load_plugins(["obj"], tmp_path)
    assert type(obj).__name__ == "O"
    with pytest.raises(UserError, match=r"both.py: several Plugin classes \(A, B\)"):
        load_plugins(["both"], tmp_path)
    with pytest.raises(UserError, match="empty.py: no vtuber.plugins.Plugin subclass"):
        load_plugins(["empty"], tmp_path)
    with pytest.raises(UserError, match="plugin 'notone' is not a vtuber.plugins.Plugin"):
        load_plugins(["notone"], tmp_path)


def test_plugin_folders_in_order_user_then_config_then_bundled(tmp_path, user_config):
    user = paths.user_plugins()
    assert user == user_config / "vtuber" / "plugins"
    config_folder = tmp_path / "from_config"
    assert plugin_folders(config_folder) == [user, config_folder, paths.bundled("plugins")]
    assert plugin_folders() == [user, paths.bundled("plugins")]

    def says(word):
        return f"""
        from vtuber.plugins import Plugin

        class P(Plugin):
            def on_event(self, e):
                return {word!r}
        """

    _plugin_file(config_folder, "hello", says("config hello"))
    _plugin_file(config_folder, "extra", says("config extra"))
    _plugin_file(user, "extra", says("user extra"))
    _plugin_file(user, "thanks", says("not the built-in"))
    found = available_plugins(config_folder)
    assert {"hello", "extra", "thanks", "commands"} <= set(found)
    hello, extra, thanks = load_plugins(["hello", "extra", "thanks"], config_folder)
    assert hello.on_event(None) == "config hello"  # the config folder before the bundled one
    assert extra.on_event(None) == "user extra"  # the user's folder before the config folder
    assert isinstance(thanks, ThankYou)  # built-ins first


def test_the_bundled_folder_holds_the_example_and_no_source_path_is_used():
    import vtuber.plugins as mod

    assert (paths.bundled("plugins") / "hello.py").is_file()
    assert not hasattr(mod, "PLUGIN_DIR")
