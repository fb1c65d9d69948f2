"""The live-load scenario of `vtuber bench`: a busy chat (a message a second) while the
streamer talks, with distinct texts of five kinds, and what the audience hears of it.

Kinds: viewers' questions, greetings, emote spam, paid messages (bits) and mentions of the
persona, in a fixed cycle, every text its own (a repeated text would be merged and flatter
the numbers). Reported per kind: sent, answered (share), heard latency (message sent ->
first audio heard) p50/p95, and why the rest were not answered (passed over, merged,
stale, ...); a table that reads in 80 columns, and a plot of heard latency over the run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from vtuber.audio import HEARING_RATE, resample
from vtuber.clock import FastClock
from vtuber.events import ChatMessage
from vtuber.pipeline import Engine, Session
from vtuber.sources import ChatScriptSource, WavReplaySource

QUESTIONS = [
    "what game is this?", "how long have you been streaming today?", "is this your first playthrough?",
    "what's the best boss so far?", "do you like the soundtrack?", "which character do you main?",
    "how many deaths so far?", "what difficulty is this on?", "will you stream tomorrow?", "any tips for the water level?",
    "what's your favourite snack while streaming?", "is the sequel any good?", "how did you find this game?",
    "what keyboard do you use?", "are you going for 100 percent?", "what time is it for you?",
    "have you tried the speedrun route?", "who drew your emotes?", "what should I play next?",
    "is co-op worth it?", "do you read the lore?", "what was the hardest part?", "how do you stay so calm?",
    "can we see the map?",
]  # fmt: skip
GREETINGS = [
    "hi everyone!", "hello from Brazil", "good evening chat", "hey hey", "just got here, hi!", "morning all",
    "hiii", "yo what's up", "greetings from Finland", "evening folks", "back from work, hi", "hello hello",
]  # fmt: skip
EMOTES = [
    "LUL LUL LUL", "PogChamp", "KEKW", "<3 <3 <3", "OMEGALUL", "Kappa", "monkaS", "catJAM catJAM",
    "PepeHands", "Sadge", "EZ Clap", "5Head",
]  # fmt: skip
MENTIONS = [
    "Miko do you like this game?", "Miko what's your favourite tea?", "hey Miko, say hi to my cat",
    "Miko who is winning?", "Miko tell us a joke", "Miko are you sleepy?",
]  # fmt: skip
PAID = ["keep it up!", "for the snack fund", "you got this!"]
# One message a second; a paid message every 20 s, a mention every 10 s.
CYCLE = ["question", "greeting", "emote", "question", "mention", "emote", "question", "greeting", "question", "emote"]
KINDS = ("question", "greeting", "emote", "mention", "paid")
EVERY_S = 1.0
SPEECH_EVERY_S = 15.0


def load_chat(seconds: float) -> list[ChatMessage]:
    """The scenario's chat: one message a second, each kind in turn, texts not repeated."""
    pools = {"question": QUESTIONS, "greeting": GREETINGS, "emote": EMOTES, "mention": MENTIONS}
    used = {k: 0 for k in KINDS}
    out = []
    for i in range(int(seconds / EVERY_S)):
        kind = "paid" if i % 20 == 8 else CYCLE[i % len(CYCLE)]
        n = used[kind]
        used[kind] += 1
        if kind == "paid":
            text, bits = f"cheer100 {PAID[n % len(PAID)]}", 100
        else:
            pool = pools[kind]
            text, bits = pool[n % len(pool)] + ("" if n < len(pool) else f" {n // len(pool) + 1}"), 0
        out.append(ChatMessage(f"{kind}{i}", text, 0.5 + i * EVERY_S, bits=bits, source="bench", id=f"{kind}-{i}"))
    return out


def kind_of(user: str) -> str:
    return next((k for k in KINDS if user.startswith(k)), "other")


async def run_load(engine: Engine, seconds: float, speech_lines: list[str]) -> Session:
    """The scenario on the real pipeline (fast clock: live timing while anything is in flight)."""
    track = np.zeros(int((seconds + 2) * HEARING_RATE), np.float32)
    for k, t in enumerate(np.arange(3.0, seconds - 3.0, SPEECH_EVERY_S)):
        pcm = engine.tts.synthesize(speech_lines[k % len(speech_lines)])
        clip = resample(pcm.astype(np.float32) / 32768, engine.tts.sample_rate, HEARING_RATE) * 0.8
        i = int(t * HEARING_RATE)
        track[i : i + len(clip)] = clip[: len(track) - i]
    session = Session(engine, FastClock())
    await session.run([ChatScriptSource(load_chat(seconds)), WavReplaySource(track)])
    return session


def load_result(session: Session, seconds: float) -> dict:
    """Per kind: sent, answered, heard p50/p95 and the reasons for the rest; speech too."""
    records = session.recorder.finished()
    chat = load_chat(seconds)
    out: dict = {"seconds": seconds, "chat_every_s": EVERY_S, "counters": session.balance(), "kinds": {}}
    reasons: dict[str, dict[str, int]] = {k: {} for k in KINDS}
    dropped: dict[str, int] = {}
    for d in session.recorder.dropped:
        if d.kind == "chat":
            why = d.reason.split(":")[0]
            dropped[why] = dropped.get(why, 0) + 1
            k = reasons.setdefault(kind_of(d.user), {})
            k[why] = k.get(why, 0) + 1
    out["dropped"] = dropped
    points = []
    for kind in KINDS:
        rs = [r for r in records if r.kind == "chat" and kind_of(r.user) == kind]
        heard = [v for r in rs if (v := r.stages()["input_to_first_heard"]) is not None]
        points += [(r.t_input, v, kind) for r in rs if (v := r.stages()["input_to_first_heard"]) is not None]
        sent = sum(1 for m in chat if kind_of(m.user) == kind)
        out["kinds"][kind] = {
            "sent": sent,
            "answered": len(rs),
            "share": len(rs) / sent if sent else 0.0,
            "heard": _dist(heard),
            "not_answered": reasons.get(kind, {}),
        }
    answered = [r for r in records if r.kind == "chat"]
    out["chat"] = {
        "received": sum(1 for _ in chat),
        "answered": len(answered),
        "input_to_first_heard": _dist([v for r in answered if (v := r.stages()["input_to_first_heard"]) is not None]),
    }
    urgent = [r for r in answered if kind_of(r.user) in ("paid", "mention")]
    out["urgent"] = {"input_to_first_heard": _dist([v for r in urgent if (v := r.stages()["input_to_first_heard"]) is not None])}
    speech = [r for r in records if r.kind == "speech"]
    out["speech"] = {
        "received": session.counters.get("received_speech", 0),
        "answered": len(speech),
        "input_to_first_heard": _dist([v for r in speech if (v := r.stages()["input_to_first_heard"]) is not None]),
    }
    out["points"] = sorted(points)
    return out


def load_lines(load: dict) -> list[str]:
    """The live-load table, plain text, at most 80 columns."""
    lines = [
        f"live load: a chat message every {load['chat_every_s']:.0f} s for {load['seconds']:.0f} s",
        f"{'kind':<9}{'sent':>5}{'answered':>10}{'heard p50':>10}{'p95':>7}  not answered (why)",
    ]
    for kind, k in load["kinds"].items():
        h = k["heard"]
        p50 = f"{h['p50']:.1f} s" if h else "-"
        p95 = f"{h['p95']:.1f} s" if h else "-"
        why = ", ".join(f"{n} {r}" for r, n in sorted(k["not_answered"].items(), key=lambda x: -x[1])) or "-"
        row = f"{kind:<9}{k['sent']:>5}{k['answered']:>5} {k['share']:>3.0%}{p50:>10}{p95:>7}  {why}"
        lines.append(row if len(row) <= 80 else row[:77] + "...")
    for label, key in (("all chat", "chat"), ("paid+mention", "urgent"), ("speech", "speech")):
        h = load[key]["input_to_first_heard"]
        if h:
            lines.append(f"{label:<14} heard p50 {h['p50']:.1f} s, p95 {h['p95']:.1f} s, max {h['max']:.1f} s (n={h['n']})")
    c = load["counters"]
    lines.append(
        f"merged {c.get('merged', 0)}, batched {c.get('batched', 0)}, replies wrapped up early {c.get('wrapped_up', 0)}"
    )
    return lines


def plot_load(load: dict, path: Path) -> None:
    """Heard latency of each answered message over the scenario, by kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    markers = {"question": "o", "greeting": "s", "emote": "x", "mention": "^", "paid": "*"}
    for kind in KINDS:
        pts = [(t, v) for t, v, k in load["points"] if k == kind]
        if pts:
            ax.scatter([t for t, _ in pts], [v for _, v in pts], label=kind, marker=markers[kind], s=40)
    ax.axhline(3.0, color="grey", lw=0.8, ls="--")
    ax.axhline(5.0, color="red", lw=0.8, ls=":")
    ax.set_xlabel("message sent at (s)")
    ax.set_ylabel("sent -> first audio heard (s)")
    ax.set_title(f"live load: a message every {load['chat_every_s']:.0f} s", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _dist(values: list[float]) -> dict:
    if not values:
        return {}
    a = np.asarray(values)
    return {"n": len(values), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "max": float(a.max())}
