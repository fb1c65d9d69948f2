"""An example plugin: the way to write your own (see docs/plugins.md).

Enable it in your settings file:

    [plugins]
    enabled = ["commands", "thanks", "hello"]
"""

from vtuber.plugins import Permission, Plugin


class Hello(Plugin):
    name = "hello"

    def setup(self, ctx):
        # A chat command: `!hello` from anyone makes the co-host greet them.
        @ctx.command("hello", Permission.EVERYONE, help="!hello: get a greeting")
        def hello(msg, args):
            return f"Hello, {msg.user}! Welcome to the stream."

        # Lurkers can be shy: count them (state lives on the plugin object).
        self.lurkers = 0

        @ctx.command("lurk", help="!lurk: say you are lurking")
        def lurk(msg, args):
            self.lurkers += 1
            return f"Enjoy the lurk, {msg.user}!"

    def on_chat(self, msg):
        # Drop messages that are only a link: nothing to answer there.
        text = msg.text.strip().lower()
        if text.startswith(("http://", "https://")) and " " not in text:
            return None
        return msg
