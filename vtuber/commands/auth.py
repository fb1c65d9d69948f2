"""`vtuber auth PLATFORM`: log in to a chat platform; tokens go to the token file."""

from __future__ import annotations

import argparse

from vtuber.commands import common
from vtuber.sources.platforms import platform, platforms

def cmd_auth(args: argparse.Namespace) -> int:
    """Log in to the platform named (its `login` in the chat platform registry)."""
    from vtuber.tokens import TokenStore

    cfg = common.config_from(args)
    done = platform(args.platform).login(cfg, TokenStore(), args, lambda line: common.console.print(line, markup=False))
    common.console.print(done, markup=False)
    return 0


def add(sub) -> None:
    """Its parser, under `vtuber`."""
    au = sub.add_parser(
        "auth",
        help="log in to Twitch or store a YouTube API key (tokens go to the token file, never the config)",
        description=(
            "twitch: the device code flow: open the link shown, enter the code as the bot account; the token and its "
            "refresh token are saved in the token file (0600, your config folder) and refreshed automatically. "
            "youtube: paste an API key (and optionally an OAuth access token for --reply-in-chat)."
        ),
    )
    au.add_argument("platform", choices=[p.name for p in platforms() if p.login])
    au.add_argument("--client-id", metavar="ID", help="twitch: your application's client id (default: [twitch] client_id)")
    au.add_argument("--config", metavar="FILE", help="settings TOML file")
    au.set_defaults(func=cmd_auth)
