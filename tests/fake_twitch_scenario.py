"""Run the fake Twitch with a busy stream's traffic, for a by-hand `vtuber run` against it.

    export XDG_CONFIG_HOME=$(mktemp -d)            # a throwaway token file
    python tests/fake_twitch_scenario.py --minutes 10 --config /tmp/fake.toml --summary /tmp/sent.json &
    vtuber run --twitch streamer --reply-in-chat --config /tmp/fake.toml --duration 620 --out /tmp/run

It writes a config pointing `vtuber run` at the fake and a token into the token file,
waits for the subscriptions, then sends chat (a message every ~2 s from 15 viewers),
deletes (every 7th message, half a second later), a ban every 2 minutes, an event every
30 s (sub, resub, gift, raid, follow), socket drops at minutes 3 and 7 (with a redelivered
message after each) and a session_reconnect at minute 5; at the end it writes what it
sent and what was posted back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fake_twitch as ft  # noqa: E402
from vtuber.tokens import TokenStore  # noqa: E402

LINES = [
    "hi Miko!", "what game is this?", "lol", "how are you today?", "that was close", "gg",
    "what's your favourite food?", "first time here, hello!", "can you sing?", "nice play",
    "where are you from?", "do you like cats?", "pog", "what's the plan for tonight?",
]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--config", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--seed", type=int, default=9)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    fake = await ft.FakeTwitch(keepalive_s=5.0).start()
    Path(a.config).write_text(
        f'[twitch]\nclient_id = "{ft.CLIENT_ID}"\napi_base = "{fake.api_base}"\nid_base = "{fake.id_base}"\n'
        f'eventsub_url = "{fake.eventsub_url}"\n',
        encoding="utf-8",
    )
    access, refresh = fake.issue_token()
    TokenStore().set("twitch", {"access_token": access, "refresh_token": refresh})
    print(f"fake Twitch on port {fake.port}; waiting for vtuber run", flush=True)
    await fake.wait_subscribed(timeout=600)
    sent = {"messages": 0, "redelivered": 0, "deletes": 0, "bans": 0, "events": 0, "drops": 0, "session_reconnects": 0}
    banned: set[str] = set()
    start = time.monotonic()
    end = start + a.minutes * 60
    i = 0
    next_event, next_ban = start + 30, start + 120
    drops = [start + 180, start + 420]
    reconnect_at = start + 300
    recent: list[tuple[str, str]] = []
    while time.monotonic() < end:
        now = time.monotonic()
        user = f"viewer{rng.randrange(15)}"
        if user not in banned:
            i += 1
            mid = f"msg-{i}"
            await fake.notify("channel.chat.message", ft.chat_message(rng.choice(LINES), user=user, user_id=user, message_id=mid,
                                                                      badges=[("subscriber", "3", "3")] if rng.random() < 0.3 else []))
            sent["messages"] += 1
            recent.append((mid, user))
            if i % 7 == 0:
                await asyncio.sleep(0.5)
                await fake.notify("channel.chat.message_delete", ft.message_delete(mid, user, user))
                sent["deletes"] += 1
        if now >= next_event:
            kind = rng.choice(["sub", "resub", "gift", "raid", "follow"])
            who = f"fan{rng.randrange(100)}"
            if kind == "follow":
                await fake.notify("channel.follow", ft.follow(who, who))
            else:
                ev = {"sub": ft.sub, "resub": ft.resub, "gift": ft.community_gift, "raid": ft.raid}[kind](who)
                await fake.notify("channel.chat.notification", ev)
            sent["events"] += 1
            next_event += 30
        if now >= next_ban and recent:
            _, victim = recent[-1]
            banned.add(victim)
            await fake.notify("channel.ban", ft.ban(victim, victim))
            sent["bans"] += 1
            next_ban += 120
        if drops and now >= drops[0]:
            drops.pop(0)
            await fake.drop()
            sent["drops"] += 1
            await fake.wait_subscribed(timeout=120)
            mid, user = recent[-1]  # Twitch redelivers the last message: it must not count twice
            await fake.notify("channel.chat.message", ft.chat_message("again?", user=user, user_id=user, message_id=mid))
            sent["redelivered"] += 1
        if reconnect_at and now >= reconnect_at:
            reconnect_at = 0
            await fake.session_reconnect()
            sent["session_reconnects"] += 1
        await asyncio.sleep(rng.uniform(1.0, 3.0))
    sent["posted_replies"] = len(fake.sent)
    sent["distinct_replied_messages"] = len({s.get("reply_parent_message_id") for s in fake.sent})
    sent["ws_connects"] = fake.ws_connects
    Path(a.summary).write_text(json.dumps(sent, indent=1), encoding="utf-8")
    print(json.dumps(sent), flush=True)
    await asyncio.sleep(30)  # let vtuber run end first
    await fake.stop()


if __name__ == "__main__":
    asyncio.run(main())
