"""The director: which input gets answered next, what is merged, and what is dropped.

One bounded queue. Order: the streamer's speech first, then fixed lines (thank-yous,
command answers; several thank-yous for the same kind of event waiting together become
one line), then chat:

1. a message the streamer asked for from the dock (`promote`);
2. paid messages (bits, Super Chats, Super Stickers), the largest first: amounts are put
   on one scale by `paid_rates` (US dollars; bits are a cent);
3. the rest by triage score (mentioning the persona, subscriber/moderator/VIP, a
   question, a first message: weights from the persona's `triage`), the newest first
   among equals (in a busy chat the oldest would be stale by the time it is heard).

What a busy chat cannot do, each named and counted:
- `merged`: a near-duplicate of a waiting message (or of one answered in the last
  `merge_window_s`) is not answered again; the first one's turn names the others who asked.
- `replaced`: a viewer's newer message replaces their older one still waiting
  (`per_user_queued` unpaid messages each).
- `user_cap`: a viewer answered `per_user_answers` times in `per_user_window_s` waits out
  the window (paid messages and mentions of the persona are exempt).
- `queue_full`: the queue holds `queue_size` inputs (payments alone may go on queueing
  up to `PAID_QUEUE_FACTOR` times that: each is owed an answer); a new input evicts the lowest chat
  message (never a paid one for free chat; speech is never evicted by chat).
- `stale`: chat older than `max_age_s` (paid: `paid_max_age_s`) when a turn is picked.
- `passed over`: in a busy chat, ordinary chat older than `busy_max_age_s` when a fresher
  message waits (the audience hears answers within seconds, not to lines long scrolled by).
- `moderated: ...`: a moderator deleted it, or timed out or banned its author.
- `batched`: thank-yous for the same kind of event waiting together, said as one line.
Counters add up: received = answered + cut_short + merged + batched + commands + dropped
(by reason) + waiting (`balance()`).

Urgent input (a paid message, a mention of the persona) arriving while a long reply
plays calls `wrap_up(reason)` (set by the session): the reply ends after the clause being
heard, so the payment is heard within seconds, not after the whole reply. The same rule is
asked again while it waits (every `URGENT_LOOK_S`): a reply that started after it (her
answer to the streamer, who talked over the mention) is wrapped up too.

Pacing: while the streamer is talking nothing else is picked (their utterance is
answered next). While the speaker is still playing earlier replies, the next input is picked
only when the playing audio is nearly over (`pick_ahead_s` before its end, about the
time a reply takes to its first audio), so the best *fresh* message is answered and
stale ones drop on the session clock. Chat also waits `min_gap_s` after the last reply
and at most `max_replies_per_min` a minute. Idle talk (opt-in, `idle_after_s`): after that
many quiet seconds the persona talks about one of its `idle_topics`.

Clock accounting: the director holds one unit of work while it has something it can
do now (a queue and a free speaker) and each picked turn holds one until `done()`;
waiting holds nothing, so the fast clock may jump over playing audio.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from vtuber.clock import Clock
from vtuber.config import DirectorConfig
from vtuber.events import (
    MODERATOR_BADGES,
    SUBSCRIBER_BADGES,
    Announcement,
    ChatMessage,
    Moderation,
    Turn,
    TurnDropped,
    Utterance,
    badge_names,
)
from vtuber.text import fold

# While urgent chat waits behind a busy speaker, the director looks this often whether a
# reply that started since must be wrapped up for it (`_wrap_for_urgent`).
URGENT_LOOK_S = 0.25
PAID_QUEUE_FACTOR = 4  # payments may queue up to this many times director.queue_size
log = logging.getLogger("vtuber.director")

DEFAULT_WEIGHTS = {
    "paid": 3.0,
    "mention": 2.0,
    "subscriber": 1.0,
    "moderator": 1.0,
    "vip": 1.0,
    "question": 0.5,
    "first_time": 1.0,
}


def normal_text(text: str) -> str:
    """Text as compared for duplicates: lower case, letters and digits, single spaces."""
    return fold(text)


def join_names(names: list[str], most: int = 2) -> str:
    """"Ann", "Ann and Bo", "Ann, Bo and 3 others"."""
    names = list(dict.fromkeys(n for n in names if n))
    if len(names) <= most + 1:
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1] if names else ""
    rest = len(names) - most
    return f"{', '.join(names[:most])} and {rest} others"


@dataclass
class _Waiting:
    """A queued chat message, with the others who sent the same thing."""

    msg: ChatMessage
    queued: float
    key: str  # normal_text
    askers: list[str] = field(default_factory=list)


class Director:
    def __init__(
        self,
        cfg: DirectorConfig,
        clock: Clock,
        emit: Callable[[object], None],
        persona_name: str = "",
        weights: dict[str, float] | None = None,
        idle_topics: list[str] | None = None,
    ):
        self.cfg = cfg
        self.set_triage(persona_name, weights or {}, idle_topics or [])
        self.clock = clock
        self.emit = emit
        self._speech: deque[tuple[Utterance, float]] = deque()
        self._lines: deque[tuple[Announcement, float]] = deque()
        self._chat: list[_Waiting] = []
        self._ids = itertools.count(1)
        self._ready = asyncio.Event()
        self._closed = False
        self.counters: Counter[str] = Counter()
        self._holding = False
        self._waiting_for_speaker = False
        self.speaker_busy_until: Callable[[], float] | None = None  # session time the speaker is free
        self.streamer_talking: Callable[[], bool] = lambda: False  # their utterance is on its way
        # Several thank-you lines of one kind waiting together -> one line (set by the session).
        self.merge_lines: Callable[[list[Announcement]], Announcement | None] | None = None
        # A paid message or a mention is waiting: end the reply playing at its clause (set by the session).
        self.wrap_up: Callable[[str], bool] | None = None
        self.pick_ahead_s = cfg.pick_ahead_s
        self._promoted = ""  # a chat message id the streamer wants answered next
        self._answered_keys: deque[tuple[float, str, str]] = deque()  # (picked at, text key, user) for merging
        self._user_answers: dict[str, deque[float]] = {}  # user -> when their messages were picked
        self._chat_picks: deque[float] = deque()  # when chat turns were picked (rate limit)
        self._last_activity = 0.0
        self._idle_next = 0
        self._warned_currency: set[str] = set()

    def set_triage(self, persona_name: str, weights: dict[str, float], idle_topics: list[str] | None = None) -> None:
        self.persona_name = persona_name.lower()
        self.weights = {**DEFAULT_WEIGHTS, **weights}
        if idle_topics is not None:
            self.idle_topics = list(idle_topics)

    # --- ranking -------------------------------------------------------------------------

    def paid_value(self, msg: ChatMessage) -> float:
        """What the message paid, in US dollars (0 for free chat)."""
        rates = self.cfg.paid_rates
        value = msg.bits * rates.get("bits", 0.01) if msg.bits > 0 else 0.0
        if msg.amount > 0:
            cur = (msg.currency or "USD").upper()
            rate = rates.get(cur)
            if rate is None:
                if cur not in self._warned_currency:
                    self._warned_currency.add(cur)
                    log.warning("no rate for currency %s in director.paid_rates: ranked as the smallest payment", cur[:8])
                rate = 0.0
            value += msg.amount * rate
            value = max(value, 0.01)  # paid is paid, even in an unknown currency
        return value

    def mentions(self, msg: ChatMessage) -> bool:
        return bool(self.persona_name) and self.persona_name in msg.text.lower()

    def urgent(self, msg: ChatMessage) -> bool:
        """Paid or mentioning the persona: heard within seconds, never passed over for fresher chat."""
        return self.paid_value(msg) > 0 or self.mentions(msg)

    def score(self, msg: ChatMessage) -> float:
        """How much a chat message deserves an answer (1 = an ordinary message)."""
        w, badges = self.weights, badge_names(msg.badges)
        text = msg.text.lower()
        paid = self.paid_value(msg)
        s = 1.0
        s += w["paid"] + math.log10(1.0 + paid) if paid > 0 else 0.0
        s += w["mention"] if self.mentions(msg) else 0.0
        s += w["subscriber"] if badges & SUBSCRIBER_BADGES else 0.0
        s += w["moderator"] if badges & (MODERATOR_BADGES | {"broadcaster"}) else 0.0
        s += w["vip"] if "vip" in badges else 0.0
        s += w["question"] if "?" in text else 0.0
        s += w["first_time"] if badges & {"first-msg", "first_msg", "first_time"} else 0.0
        return s

    def _rank(self, w: _Waiting) -> tuple:
        """Higher is answered first: promoted, then paid by amount (unless the persona weighs
        payment at 0), then score, then the newest (the oldest would go stale first in a busy
        chat; the lowest-ranked, the oldest among equals, is what a full queue evicts)."""
        paid = self.paid_value(w.msg) if self.weights["paid"] > 0 else 0.0
        # (equal payments: the oldest first, they live long and each is owed an answer)
        return (w.msg.id == self._promoted != "", paid > 0, paid, self.score(w.msg), -w.msg.t if paid > 0 else w.msg.t)

    # --- intake --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._speech) + len(self._lines) + len(self._chat)

    @staticmethod
    def _user_key(msg: ChatMessage) -> str:
        return f"{msg.source}:{msg.user_id or msg.user.lower()}"

    def submit(self, event: ChatMessage | Utterance | Announcement) -> None:
        """Called synchronously by the stage that produced the input."""
        now = self.clock.now()
        kind = {Utterance: "speech", Announcement: "line"}.get(type(event), "chat")
        self.counters[f"received_{kind}"] += 1
        self._last_activity = now
        if isinstance(event, ChatMessage) and self._merge_or_replace(event, now):
            return
        paid_waiting = sum(1 for w in self._chat if self.paid_value(w.msg) > 0)
        if (
            kind == "chat"
            and len(self) >= self.cfg.queue_size
            and self.paid_value(event) > 0
            and paid_waiting == len(self._chat)
            and paid_waiting < PAID_QUEUE_FACTOR * self.cfg.queue_size
        ):
            # A full queue of payments: each is owed an answer, so a new one waits too
            # (up to PAID_QUEUE_FACTOR x queue_size) rather than evicting or being dropped.
            self._chat.append(self._wait(event, now))
            self._update_hold()
            self._ready.set()
            return
        if len(self) >= self.cfg.queue_size:
            lowest = min(self._chat, key=self._rank) if self._chat else None
            if kind == "chat" and lowest is not None and self._rank(self._wait(event, now)) < self._rank(lowest):
                self._drop(event, "queue_full")  # everything waiting matters more than this one
                return
            if lowest is not None:
                self._chat.remove(lowest)
                self._drop(lowest.msg, "queue_full")
            else:
                self._drop(event, "queue_full")
                return
        if kind == "chat":
            self._chat.append(self._wait(event, now))
        else:
            (self._speech if kind == "speech" else self._lines).append((event, now))
        self._update_hold()
        self._ready.set()
        if kind == "chat" and self.urgent(event):
            self._wrap_for_urgent(event)

    def _wrap_for_urgent(self, arrived: ChatMessage | None = None) -> bool:
        """Urgent chat waits and the speaker is busy for more than `wrap_up_after_s`: the
        reply playing ends after the clause being heard (`wrap_up`). Asked when urgent chat
        arrives and again while it waits: a reply that starts after it (her answer to the
        streamer, who talked over it) is wrapped up too. The reason named is the arriving
        message's kind, else "paid" when any payment waits. True if a reply was shortened."""
        if self.wrap_up is None or self.cfg.wrap_up_after_s <= 0:
            return False
        urgent = [w.msg for w in self._chat if self.urgent(w.msg)]
        if not urgent:
            return False
        now = self.clock.now()
        busy = self.speaker_busy_until() if self.speaker_busy_until is not None else now
        if busy - now <= self.cfg.wrap_up_after_s:
            return False
        paid = self.paid_value(arrived) > 0 if arrived is not None else any(self.paid_value(m) > 0 for m in urgent)
        if self.wrap_up("paid" if paid else "mention"):
            self.counters["wrapped_up"] += 1
            return True
        return False

    def _wait(self, msg: ChatMessage, now: float) -> _Waiting:
        return _Waiting(msg, now, normal_text(msg.text))

    def _similar(self, a: str, b: str) -> bool:
        if a == b:
            return bool(a)
        if not a or not b or min(len(a), len(b)) < 0.6 * max(len(a), len(b)):
            return False
        return SequenceMatcher(None, a, b, autojunk=False).ratio() >= self.cfg.merge_similarity

    def _merge_or_replace(self, msg: ChatMessage, now: float) -> bool:
        """Merge a near-duplicate, or let a viewer's newer message replace their waiting one.
        True when `msg` was taken care of (merged)."""
        if self.paid_value(msg) > 0:
            return False  # every payment gets its own answer
        key = normal_text(msg.text)
        for w in self._chat:
            if self.paid_value(w.msg) == 0 and self._similar(key, w.key) and self._user_key(w.msg) != self._user_key(msg):
                w.askers.append(msg.user)
                self._merged(msg, f"merged: same as {w.msg.user}'s")
                return True
        while self._answered_keys and now - self._answered_keys[0][0] > self.cfg.merge_window_s:
            self._answered_keys.popleft()
        for _, answered, user in self._answered_keys:
            if self._similar(key, answered):
                self._merged(msg, f"merged: {user}'s was just answered")
                return True
        mine = [w for w in self._chat if self._user_key(w.msg) == self._user_key(msg) and self.paid_value(w.msg) == 0]
        while len(mine) >= self.cfg.per_user_queued:
            old = mine.pop(0)
            self._chat.remove(old)
            self._drop(old.msg, "replaced")
        return False

    def _merged(self, msg: ChatMessage, reason: str) -> None:
        self.counters["merged"] += 1
        self.emit(TurnDropped("chat", msg.user, msg.text, reason, self.clock.now()))

    def refuse(self, msg: ChatMessage, reason: str) -> None:
        """Chat the intake stopped before the queue (a banned word, a plugin): received and dropped."""
        self.counters["received_chat"] += 1
        self.counters[f"dropped_{reason}"] += 1

    def command(self, msg: ChatMessage) -> None:
        """A chat command (handled by a plugin, never answered by the LLM)."""
        self.counters["received_chat"] += 1
        self.counters["commands"] += 1

    # --- the clock and the speaker -------------------------------------------------------

    def _update_hold(self) -> None:
        """Hold the clock while there is a queue and nothing to wait for."""
        want = len(self) > 0 and not self._waiting_for_speaker
        if want and not self._holding:
            self.clock.begin_work()
        elif not want and self._holding:
            self.clock.end_work()
        self._holding = want

    def poke(self) -> None:
        """Look again now (the speaker was silenced: a cancelled reply)."""
        self._waiting_for_speaker = False
        self._update_hold()
        self._ready.set()

    def _wait_until(self) -> float | None:
        """When the next input may be picked, if not now: the speaker nearly free and,
        before chat, `min_gap_s` of quiet after the last reply and the rate limit."""
        now = self.clock.now()
        busy = self.speaker_busy_until() if self.speaker_busy_until is not None else now
        t = busy - self.pick_ahead_s
        if not self._speech and not self._lines:  # chat (or idle talk) is next
            if self.cfg.min_gap_s > 0:
                t = max(t, busy + self.cfg.min_gap_s - self.pick_ahead_s)
            while self._chat_picks and now - self._chat_picks[0] >= 60.0:
                self._chat_picks.popleft()
            limit = self.cfg.max_replies_per_min
            if limit and len(self._chat_picks) >= limit:
                t = max(t, self._chat_picks[0] + 60.0)
        return t if t > now + 1e-9 else None

    def _drop(self, event: ChatMessage | Utterance | Announcement, reason: str) -> None:
        kind = {Utterance: "speech", Announcement: "line"}.get(type(event), "chat")
        user = getattr(event, "user", "") or "streamer"
        self.counters[f"dropped_{reason}"] += 1
        self.emit(TurnDropped(kind=kind, user=user, text=event.text, reason=reason, t=self.clock.now()))

    # --- picking -------------------------------------------------------------------------

    def _over_cap(self, msg: ChatMessage, now: float) -> bool:
        cap, window = self.cfg.per_user_answers, self.cfg.per_user_window_s
        if not cap or not window or self.paid_value(msg) > 0 or self.mentions(msg):
            return False
        times = self._user_answers.get(self._user_key(msg))
        if not times:
            return False
        while times and now - times[0] > window:
            times.popleft()
        return len(times) >= cap

    def _pop(self) -> Turn | None:
        while self._speech or self._lines or self._chat:
            now = self.clock.now()
            if self._speech:
                utt, queued = self._speech.popleft()
                return Turn(next(self._ids), "speech", "streamer", utt.text, utt.t_end, queued, now, utt)
            if self._lines:
                line, queued = self._lines.popleft()
                line = self._batched(line)
                return Turn(next(self._ids), "line", line.user or line.origin, line.text, line.t, queued, now, None)
            for w in list(self._chat):
                limit = self.cfg.max_age_s
                if self.paid_value(w.msg) > 0:
                    limit = max(limit, self.cfg.paid_max_age_s)
                if now - w.msg.t > limit:
                    self._chat.remove(w)
                    self._drop(w.msg, "stale")
            busy_age = self.cfg.busy_max_age_s
            if busy_age > 0 and len(self._chat) > 1:
                newest = max(w.msg.t for w in self._chat)
                for w in list(self._chat):
                    if now - w.msg.t > busy_age and w.msg.t < newest and not self.urgent(w.msg) and not (self._promoted and w.msg.id == self._promoted):
                        self._chat.remove(w)
                        self._drop(w.msg, "passed over")
            while self._chat:
                best = max(self._chat, key=self._rank)
                self._chat.remove(best)
                if best.msg.id == self._promoted or not self._over_cap(best.msg, now):
                    break
                self._drop(best.msg, "user_cap")
            else:
                continue
            msg = best.msg
            if msg.id == self._promoted:
                self._promoted = ""
            self._answered_keys.append((now, best.key, msg.user))
            self._user_answers.setdefault(self._user_key(msg), deque()).append(now)
            self._chat_picks.append(now)
            return Turn(next(self._ids), "chat", msg.user, msg.text, msg.t, best.queued, now, msg, tuple(best.askers))
        return None

    def _batched(self, line: Announcement) -> Announcement:
        """This thank-you and every waiting one for the same kind of event, as one line."""
        if line.event is None or self.merge_lines is None:
            return line
        same = [
            (a, q)
            for a, q in self._lines
            if a.event is not None and a.event.kind == line.event.kind and a.origin == line.origin
        ]
        if not same:
            return line
        merged = self.merge_lines([line, *(a for a, _ in same)])
        if merged is None:
            return line
        for item in same:
            self._lines.remove(item)
            self.counters["batched"] += 1
        return merged

    def _idle_turn(self) -> Turn | None:
        now = self.clock.now()
        if not self.idle_topics or self.cfg.idle_after_s <= 0 or now - self._last_activity < self.cfg.idle_after_s:
            return None
        topic = self.idle_topics[self._idle_next % len(self.idle_topics)]
        self._idle_next += 1
        self._last_activity = now
        self.counters["idle"] += 1
        return Turn(next(self._ids), "idle", "", topic, now, now, now, None)

    async def next_turn(self) -> Turn | None:
        """Wait for the next turn; None once closed and empty. The caller calls `done()` once it is answered."""
        while True:
            if len(self) and not self._speech and self.streamer_talking():
                # The streamer is talking: what they say is answered next, not a chat
                # message picked over their voice. Look again shortly, holding no work.
                t = self.clock.now() + 0.1
            else:
                t = self._wait_until() if len(self) else None
                if t is not None and self._wrap_for_urgent():
                    continue  # the reply playing ends at its clause: look again
                if t is not None and any(self.urgent(w.msg) for w in self._chat):
                    t = min(t, self.clock.now() + URGENT_LOOK_S)  # a reply may start meanwhile
            if t is not None:
                # The speaker is busy (or chat is paced): wait, holding no work.
                self._waiting_for_speaker = True
                self._update_hold()
                self._ready.clear()
                timer = self.clock.call_at(t, self.poke)
                try:
                    await self._ready.wait()
                finally:
                    timer.cancel()
                continue
            turn = self._pop()
            if turn is None and not self._closed and not self.streamer_talking():
                if self._wait_until() is None:
                    turn = self._idle_turn()
            if turn is not None:
                self.counters["picked"] += 1
                self.clock.begin_work()  # held by the turn until done()
                self._update_hold()
                return turn
            self._update_hold()
            if self._closed:
                return None
            self._ready.clear()
            idle_timer = None
            if self.idle_topics and self.cfg.idle_after_s > 0:
                idle_timer = self.clock.call_at(self._last_activity + self.cfg.idle_after_s, self._ready.set)
            try:
                await self._ready.wait()
            finally:
                if idle_timer is not None:
                    idle_timer.cancel()

    def done(self, answered: bool = True, outcome: str = "") -> None:
        """The current turn is over: answered (its last audio is out), cut short, or dropped (`outcome`: why)."""
        self.counters[outcome or ("answered" if answered else "skipped")] += 1
        self._last_activity = self.clock.now()
        self.clock.end_work()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    # --- taking back -----------------------------------------------------------------------

    def retract(self, event: Utterance, reason: str) -> bool:
        """Take back a queued utterance (the streamer went on); True if it was queued."""
        for item in list(self._speech):
            if item[0] is event:
                self._speech.remove(item)
                self._drop(event, reason)
                self._update_hold()
                return True
        return False

    def moderate(self, action: Moderation) -> int:
        """Drop every queued chat message the moderator's action takes back; how many."""
        hit = [w for w in self._chat if action.matches(w.msg)]
        for w in hit:
            self._chat.remove(w)
            self._drop(w.msg, f"moderated: {action.action}")
        if hit:
            self._update_hold()
        return len(hit)

    def promote(self, message_id: str) -> bool:
        """Answer this queued chat message next (the streamer asked, from the dock)."""
        if any(w.msg.id == message_id for w in self._chat):
            self._promoted = message_id
            self._ready.set()
            return True
        return False

    def queued(self) -> list[dict]:
        """What waits, best first, with each chat message's score (for the dock and the console)."""
        now = self.clock.now()
        rows = [{"kind": "speech", "user": "streamer", "text": u.text, "id": "", "score": None, "age_s": now - q} for u, q in self._speech]
        rows += [{"kind": "line", "user": a.user, "text": a.text, "id": "", "score": None, "age_s": now - q} for a, q in self._lines]
        rows += [
            {
                "kind": "chat",
                "user": w.msg.user,
                "text": w.msg.text,
                "id": w.msg.id,
                "score": round(self.score(w.msg), 2),
                "paid": round(self.paid_value(w.msg), 2),
                "askers": list(w.askers),
                "age_s": now - w.msg.t,
            }
            for w in sorted(self._chat, key=self._rank, reverse=True)
        ]
        return rows

    def clear(self, reason: str) -> None:
        """Drop everything queued (the session is stopping), each with the reason."""
        for queue in (self._speech, self._lines):
            while queue:
                event, _ = queue.popleft()
                self._drop(event, reason)
        while self._chat:
            self._drop(self._chat.pop(0).msg, reason)
        self._update_hold()

    def balance(self) -> dict:
        """The counters, summed: received = answered + cut_short + merged + batched + commands
        + dropped + waiting (`wrapped_up`: answered replies ended early at a clause for urgent input)."""
        c = self.counters
        received = sum(v for k, v in c.items() if k.startswith("received_"))
        dropped = {k[len("dropped_"):]: v for k, v in c.items() if k.startswith("dropped_") and v}
        parts = {k: c.get(k, 0) for k in ("answered", "cut_short", "merged", "batched", "commands", "skipped")}
        waiting = len(self)
        accounted = sum(parts.values()) + sum(dropped.values()) + waiting
        return {
            "received": received, **parts, "dropped": dropped, "waiting": waiting,
            "wrapped_up": c.get("wrapped_up", 0), "adds_up": accounted == received,
        }
