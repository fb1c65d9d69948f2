"""The turn loop, and the one way to stop a reply.

Each turn the director picks runs as its own task: plugins' `on_pick`, then the mind
(LLM -> clauses -> gate -> voice), then waiting until the voice has made its last
audio. `cancel(reason)` is the one cancellation mechanism, used by barge-in, a
moderator's !skip, mute and shutdown:

1. the LLM stops (its cancel flag, checked before the first token and between tokens);
2. the turn's task is cancelled: clauses not yet sent are dropped;
3. the voice queue drops the turn's clauses, audio still being made is thrown away;
4. playback drops the turn's audio (and any earlier reply still playing) within one
   audio block, and says what was heard (`PlaybackFinished(cut_short=True)`);
5. the history keeps what was heard, the report marks the turn as cut short
   (`TurnCancelled`), and the director is released (the turn's `done()` always runs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from vtuber import heap
from vtuber.clock import Clock
from vtuber.director import Director
from vtuber.events import ChatMessage, Turn, TurnCancelled, TurnDropped
from vtuber.mind import Mind
from vtuber.outputs.playback import Playback
from vtuber.voice import VoiceStage

log = logging.getLogger("vtuber.turns")


@dataclass
class _InFlight:
    turn: Turn
    task: asyncio.Task
    cancel_reason: str = ""
    started: bool = False  # the mind has it (a reply record exists from here on)


class TurnRunner:
    def __init__(
        self,
        director: Director,
        mind: Mind,
        voice: VoiceStage,
        playback: Playback,
        clock: Clock,
        observe: Callable[[object], None],
        pick: Callable,  # async (turn) -> (turn | None, who dropped it)
        before_turn: Callable[[], None] = lambda: None,
        muted: Callable[[], bool] = lambda: False,
        errors: list[str] | None = None,
    ):
        self.director = director
        self.mind = mind
        self.voice = voice
        self.playback = playback
        self.clock = clock
        self.observe = observe
        self.pick = pick
        self.before_turn = before_turn
        self.muted = muted
        self.errors = errors if errors is not None else []
        self.current: _InFlight | None = None
        self._recent: dict[int, Turn] = {}  # turns whose audio may still be playing, by id
        self.cancelled = 0

    async def run(self) -> None:
        while (turn := await self.director.next_turn()) is not None:
            self.before_turn()
            playing = set(self.playback.playing())
            self._recent = {i: t for i, t in self._recent.items() if i in playing}
            self._recent[turn.id] = turn
            task = asyncio.create_task(self._answer(turn), name=f"turn-{turn.id}")
            self.current = _InFlight(turn, task)
            try:
                await asyncio.wait([task])  # a cancelled turn ends this wait, not the loop
            finally:
                self.current = None

    async def _answer(self, turn: Turn) -> None:
        answered = False
        outcome = ""  # why it was not answered, for the director's counters
        try:
            picked, by = (turn, "") if turn.kind == "line" else await self.pick(turn)
            if picked is None or self.muted():
                reason = "muted" if picked is not None else f"plugin {by}"
                outcome = f"dropped_{reason}"
                self.observe(TurnDropped(turn.kind, turn.user, turn.text, reason, self.clock.now()))
                return
            if self.current is not None and self.current.turn is turn:
                self.current.started = True
            await self.mind.answer(picked)
            await self.voice.finished(turn.id)
            answered = True
            self.mind.prefill_next()  # her audio is made; it plays while the next prompt's start is prefilled
            heap.trim_soon()  # and what the models freed for this reply goes back to the system
        except asyncio.CancelledError:
            pass  # cancel() did the rest; the turn ends here
        except Exception as e:  # one failed reply must not end the stream
            log.exception("reply to turn %s failed", turn.id)
            self.errors.append(f"turn {turn.id}: {e}")
            if self.current is not None and self.current.turn is turn and not self.current.started:
                self.observe(TurnDropped(turn.kind, turn.user, turn.text, f"error: {e}"[:80], self.clock.now()))
            self.voice.flush(turn.id)
            self.playback.flush(turn.id, "error")
            outcome = "dropped_error"
        finally:
            cur = self.current if self.current is not None and self.current.turn is turn else None
            if not answered and not outcome and cur is not None and cur.cancel_reason:
                outcome = "cut_short" if cur.started else f"dropped_{cur.cancel_reason}"
            self.director.done(answered=answered, outcome=outcome)

    def cancel_turn_for(self, source: object, reason: str) -> bool:
        """Cancel the turn answering `source` (an utterance taken back), if it is in flight."""
        return self.cancel_if(lambda turn: turn.source is source, reason)

    def cancel_if(self, match: Callable[[Turn], bool], reason: str) -> bool:
        """Cancel the turn in flight, and silence a reply still playing, if `match(turn)`
        (a moderator deleted the message it answers)."""
        cur = self.current
        stopped = cur is not None and match(cur.turn) and self.cancel(reason, current_only=True)
        for turn_id in self.playback.playing():
            turn = self._recent.get(turn_id)
            if turn is not None and (cur is None or turn is not cur.turn) and match(turn):
                heard = self.playback.flush(turn_id, reason)
                self._cut(turn, heard, reason)
                stopped = True
        if stopped:
            self.director.poke()
        return bool(stopped)

    def cancel(self, reason: str, current_only: bool = False) -> bool:
        """Stop talking now: the turn being made and (unless `current_only`) any reply
        still playing. True if there was something to stop."""
        stopped = False
        cur = self.current
        if cur is not None and not cur.task.done() and not cur.cancel_reason:
            cur.cancel_reason = reason
            self.mind.backend.cancel.set()
            self.mind.llm_may_run.set()
            cur.task.cancel()
            self.voice.flush(cur.turn.id)
            heard = self.playback.flush(cur.turn.id, reason)
            if cur.started:
                self._cut(cur.turn, heard, reason)
            else:  # cancelled before the mind took it: not answered, and said so
                t = cur.turn
                self.observe(TurnDropped(t.kind, t.user, t.text, reason, self.clock.now()))
            stopped = True
        for turn_id in [] if current_only else self.playback.playing():
            self.playback.flush(turn_id, reason)
            self.observe(TurnCancelled(turn_id, reason, self.clock.now()))
            stopped = True
        if stopped:
            self.cancelled += 1
            self.director.poke()  # the speaker is free: pick now
        return stopped

    def wrap_up(self, why: str) -> bool:
        """Urgent input waits (`why`: paid, mention): every reply playing ends after the clause
        being heard, its later clauses are never made or played, and the director looks
        again at once. True if a reply was shortened."""
        reason = f"wrapped up: {why} waiting"
        shortened = False
        for turn_id in self.playback.playing():
            playing = self._recent.get(turn_id)
            if playing is not None and isinstance(playing.source, ChatMessage) and self.director.paid_value(playing.source) > 0:
                continue  # a paid message's own answer is heard whole
            if self.playback.trim(turn_id, reason) is not None:
                self.voice.trim(turn_id)  # its later clauses: never synthesized
                turn = self._recent.get(turn_id)
                if turn is not None:
                    self.mind.remember_heard(turn, self.playback.heard_text(turn_id))
                shortened = True
        if shortened:
            self.director.poke()
        return shortened

    def _cut(self, turn: Turn, heard: str, reason: str) -> None:
        self.mind.remember_cut(turn, heard)
        self.observe(TurnCancelled(turn.id, reason, self.clock.now()))

    def is_talking(self) -> bool:
        """A reply is being made or is playing."""
        return self.current is not None or bool(self.playback.playing())
