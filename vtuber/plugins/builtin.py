"""Built-in plugins, written on the same API a third-party plugin uses."""

from __future__ import annotations

import dataclasses

from vtuber.errors import UserError
from vtuber.events import ChatMessage, StreamEvent
from vtuber.plugins import Permission, Plugin, PluginContext


class ChatCommands(Plugin):
    """!ask QUESTION (everyone), !persona NAME, !skip and !mute / !unmute (moderators)."""

    name = "commands"

    def setup(self, ctx: PluginContext) -> None:
        controls = ctx.controls

        @ctx.command("ask", help="!ask QUESTION: put a question to the co-host")
        def ask(msg: ChatMessage, args: str) -> str | None:
            if args:
                controls.ask(dataclasses.replace(msg, text=args))
            return None

        @ctx.command("persona", Permission.MODERATOR, help="!persona NAME: switch the co-host's persona")
        def persona(msg: ChatMessage, args: str) -> str | None:
            if not args:
                return f"I'm {controls.persona_name} right now."
            try:
                name = controls.set_persona(args.split()[0])
            except UserError:
                return f"I don't know a persona called {args.split()[0]}."
            return f"{name} here now!"

        @ctx.command("mute", Permission.MODERATOR, help="!mute: the co-host stops answering")
        def mute(msg: ChatMessage, args: str) -> str | None:
            controls.set_muted(True)
            return None

        @ctx.command("skip", Permission.MODERATOR, help="!skip: the co-host stops the reply she is saying")
        def skip(msg: ChatMessage, args: str) -> str | None:
            controls.skip()
            return None

        @ctx.command("unmute", Permission.MODERATOR, help="!unmute: the co-host answers again")
        def unmute(msg: ChatMessage, args: str) -> str | None:
            controls.set_muted(False)
            return "I'm back!"


class ThankYou(Plugin):
    """A short thank-you line for follows, subs, gifted subs, bits and raids (and channel-point
    redemptions, Super Chats, Super Stickers, new members and member milestones)."""

    name = "thanks"
    LINES = {
        "follow": "Thanks for the follow, {user}!",
        "sub": "Thank you for subscribing, {user}!",
        "resub": "Welcome back, {user}, thanks for the resub!",
        "gift": "{user} just gifted {amount} subs, thank you so much!",
        "bits": "Thanks for the {amount} bits, {user}!",
        "raid": "Welcome, raiders! Thank you for the raid, {user}!",
        # live chat platforms (vtuber/sources/twitch.py, youtube.py)
        "redeem": "Thanks for redeeming {text}, {user}!",
        "superchat": "Thank you for the Super Chat, {user}!",
        "supersticker": "Thanks for the Super Sticker, {user}!",
        "member": "Welcome to the membership, {user}!",
        "milestone": "Happy {amount} months of membership, {user}!",
    }

    def on_event(self, event: StreamEvent) -> str | None:
        template = self.LINES.get(event.kind)
        if template is None:
            return None
        return template.format(user=event.user, amount=event.amount, text=event.text[:60])


BUILTINS: list[type[Plugin]] = [ChatCommands, ThankYou]
