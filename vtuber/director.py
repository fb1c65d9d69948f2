"""The director: which input gets answered next, and what is dropped.

One bounded queue; the streamer's speech first, then fixed lines (thank-yous,
command answers), then the chat message with the highest triage score (paid,
mentioning the persona, from a subscriber/moderator/VIP, a question, a first
message: weights from the persona's `triage`), the oldest first among equals.
Drop policy, named and counted:
- `queue_full`: the queue holds `queue_size` inputs; a new input evicts the
  lowest-scored, oldest chat message (speech is never evicted by chat; a full queue
  of speech drops the new input).
- `stale`: a chat message older than `max_age_s` when a turn is picked is skipped.

Pacing: while the streamer is talking nothing else is picked (their utterance is
answered next). While the speaker is still playing earlier replies, the next input is picked
only when the playing audio is nearly over (`pick_ahead_s` before its end, about the
time a reply takes to its first audio), so the best *fresh* message is answered and
stale ones drop on the session clock. `speaker_busy_until` tells it (playback does).

Clock accounting: the director holds one unit of work while it has something it can
do now (a queue and a free speaker) and each picked turn holds one until `done()`;
waiting for the speaker holds nothing, so the fast clock may jump over playing audio.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, deque
from collections.abc import Callable

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


DEFAULT_WEIGHTS = {
    "paid": 3.0,
    "mention": 2.0,
    "subscriber": 1.0,
    "moderator": 1.0,
    "vip": 1.0,
    "question": 0.5,
    "first_time": 1.0,
}


class Director:
    def __init__(
        self,
        cfg: DirectorConfig,
        clock: Clock,
        emit: Callable[[object], None],
        persona_name: str = "",
        weights: dict[str, float] | None = None,
    ):
        self.cfg = cfg
        self.set_triage(persona_name, weights or {})
        self.clock = clock
        self.emit = emit
        self._speech: deque[tuple[Utterance, float]] = deque()
        self._lines: deque[tuple[Announcement, float]] = deque()
        self._chat: deque[tuple[ChatMessage, float]] = deque()
        self._ids = itertools.count(1)
        self._ready = asyncio.Event()
        self._closed = False
        self.counters: Counter[str] = Counter()
        self._holding = False
        self._waiting_for_speaker = False
        self.speaker_busy_until: Callable[[], float] | None = None  # session time the speaker is free
        self.streamer_talking: Callable[[], bool] = lambda: False  # their utterance is on its way
        self.pick_ahead_s = cfg.pick_ahead_s
        self._promoted = ""  # a chat message id the streamer wants answered next

    def set_triage(self, persona_name: str, weights: dict[str, float]) -> None:
        self.persona_name = persona_name.lower()
        self.weights = {**DEFAULT_WEIGHTS, **weights}

    def score(self, msg: ChatMessage) -> float:
        """How much a chat message deserves an answer (1 = an ordinary message)."""
        w, badges = self.weights, badge_names(msg.badges)
        text = msg.text.lower()
        s = 1.0
        s += w["paid"] if msg.bits > 0 else 0.0
        s += w["mention"] if self.persona_name and self.persona_name in text else 0.0
        s += w["subscriber"] if badges & SUBSCRIBER_BADGES else 0.0
        s += w["moderator"] if badges & (MODERATOR_BADGES | {"broadcaster"}) else 0.0
        s += w["vip"] if "vip" in badges else 0.0
        s += w["question"] if "?" in text else 0.0
        s += w["first_time"] if badges & {"first-msg", "first_msg", "first_time"} else 0.0
        return s

    def __len__(self) -> int:
        return len(self._speech) + len(self._lines) + len(self._chat)

    def submit(self, event: ChatMessage | Utterance | Announcement) -> None:
        """Called synchronously by the stage that produced the input."""
        now = self.clock.now()
        kind = {Utterance: "speech", Announcement: "line"}.get(type(event), "chat")
        self.counters[f"received_{kind}"] += 1
        if len(self) >= self.cfg.queue_size:
            lowest = (
                min(range(len(self._chat)), key=lambda i: (self.score(self._chat[i][0]), self._chat[i][0].t))
                if self._chat
                else None
            )
            if kind == "chat" and lowest is not None and self.score(event) < self.score(self._chat[lowest][0]):
                self._drop(event, "queue_full")  # everything waiting matters more than this one
                return
            if lowest is not None:
                old, _ = self._chat[lowest]
                del self._chat[lowest]
                self._drop(old, "queue_full")
            else:
                self._drop(event, "queue_full")
                return
        {"speech": self._speech, "line": self._lines, "chat": self._chat}[kind].append((event, now))
        self._update_hold()
        self._ready.set()

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

    def _speaker_wait_until(self) -> float | None:
        if self.speaker_busy_until is None:
            return None
        t = self.speaker_busy_until() - self.pick_ahead_s
        return t if t > self.clock.now() else None

    def _drop(self, event: ChatMessage | Utterance | Announcement, reason: str) -> None:
        kind = {Utterance: "speech", Announcement: "line"}.get(type(event), "chat")
        user = getattr(event, "user", "") or "streamer"
        self.counters[f"dropped_{reason}"] += 1
        self.emit(TurnDropped(kind=kind, user=user, text=event.text, reason=reason, t=self.clock.now()))

    def _pop(self) -> Turn | None:
        while self._speech or self._lines or self._chat:
            now = self.clock.now()
            if self._speech:
                utt, queued = self._speech.popleft()
                return Turn(next(self._ids), "speech", "streamer", utt.text, utt.t_end, queued, now, utt)
            if self._lines:
                line, queued = self._lines.popleft()
                return Turn(next(self._ids), "line", line.user or line.origin, line.text, line.t, queued, now, None)
            for stale in [e for e in self._chat if now - e[0].t > self.cfg.max_age_s]:
                self._chat.remove(stale)
                self._drop(stale[0], "stale")
            if not self._chat:
                continue
            best = max(
                range(len(self._chat)),
                key=lambda i: (self._chat[i][0].id == self._promoted != "", self.score(self._chat[i][0]), -self._chat[i][0].t),
            )
            msg, queued = self._chat[best]
            del self._chat[best]
            return Turn(next(self._ids), "chat", msg.user, msg.text, msg.t, queued, now, msg)
        return None

    async def next_turn(self) -> Turn | None:
        """Wait for the next turn; None once closed and empty. The caller calls `done()` once it is answered."""
        while True:
            if len(self) and not self._speech and self.streamer_talking():
                # The streamer is talking: what they say is answered next, not a chat
                # message picked over their voice. Look again shortly, holding no work.
                t = self.clock.now() + 0.1
            else:
                t = self._speaker_wait_until() if len(self) else None
            if t is not None:
                # The speaker is busy: wait until it is nearly free, holding no work.
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
            if turn is not None:
                self.counters["picked"] += 1
                self.clock.begin_work()  # held by the turn until done()
                self._update_hold()
                return turn
            self._update_hold()
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()

    def done(self, answered: bool = True) -> None:
        """The current turn is over: answered (its last audio is out), or skipped."""
        self.counters["answered" if answered else "skipped"] += 1
        self.clock.end_work()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

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
        hit = [item for item in self._chat if action.matches(item[0])]
        for item in hit:
            self._chat.remove(item)
            self._drop(item[0], f"moderated: {action.action}")
        if hit:
            self._update_hold()
        return len(hit)

    def promote(self, message_id: str) -> bool:
        """Answer this queued chat message next (the streamer asked, from the dock)."""
        for item in self._chat:
            if item[0].id == message_id:
                self._promoted = message_id
                self._ready.set()
                return True
        return False

    def queued(self) -> list[dict]:
        """What waits, best first, with each chat message's score (for the dock and the console)."""
        now = self.clock.now()
        rows = [{"kind": "speech", "user": "streamer", "text": u.text, "id": "", "score": None, "age_s": now - q} for u, q in self._speech]
        rows += [{"kind": "line", "user": a.user, "text": a.text, "id": "", "score": None, "age_s": now - q} for a, q in self._lines]
        chat = sorted(self._chat, key=lambda e: (e[0].id != self._promoted, -self.score(e[0]), e[0].t))
        rows += [{"kind": "chat", "user": m.user, "text": m.text, "id": m.id, "score": self.score(m), "age_s": now - m.t} for m, _ in chat]
        return rows

    def clear(self, reason: str) -> None:
        """Drop everything queued (the session is stopping), each with the reason."""
        for queue in (self._speech, self._lines, self._chat):
            while queue:
                event, _ = queue.popleft()
                self._drop(event, reason)
        self._update_hold()
