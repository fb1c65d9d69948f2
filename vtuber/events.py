"""Every message that flows between stages, as small frozen dataclasses.

Data flows one way: sources -> hearing -> director -> mind -> voice -> outputs.
Times (`t`, `t_*`) are seconds on the session clock (see `vtuber.clock`), so a
rehearsal in fast mode and a live session produce comparable timings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

TurnKind = Literal["chat", "speech", "line", "idle"]  # line: a fixed text to say; idle: talk on a quiet stream


@dataclass(frozen=True)
class ChatMessage:
    """One chat message from any chat source (script, Twitch, YouTube)."""

    user: str
    text: str
    t: float
    badges: tuple[str, ...] = ()
    bits: int = 0
    source: str = "script"
    id: str = ""  # the platform's message id (moderation and chat replies refer to it)
    user_id: str = ""  # the platform's stable user id (a display name can change)
    amount: float = 0.0  # money paid with it (a Super Chat or Sticker), in `currency`
    currency: str = ""  # ISO code of `amount` ("USD"); bits are counted in `bits`

    @property
    def paid(self) -> bool:
        """Bits or money came with it (what it is worth: `Director.paid_value`)."""
        return self.bits > 0 or self.amount > 0


SUBSCRIBER_BADGES = frozenset({"subscriber", "founder", "member"})
MODERATOR_BADGES = frozenset({"moderator", "mod"})


def badge_names(badges: tuple[str, ...]) -> frozenset[str]:
    """Badge names without versions ("subscriber/12" -> "subscriber"), lower case."""
    return frozenset(b.lower().split("/")[0] for b in badges)


@dataclass(frozen=True)
class StreamEvent:
    """Something happened on the channel: follow, sub, gift, bits, raid."""

    kind: str
    user: str
    t: float
    amount: int = 0
    text: str = ""
    source: str = "script"
    id: str = ""  # the platform's event or message id
    user_id: str = ""


ModerationAction = Literal["delete", "clear_user", "clear", "ban"]


@dataclass(frozen=True)
class Moderation:
    """A moderator acted on chat (from the platform, trusted): a message deleted, a user's
    messages cleared (a timeout) or banned, or the whole chat cleared. Moderation wins:
    matching queued messages are dropped and a reply being made to one is cancelled."""

    action: ModerationAction
    t: float
    message_id: str = ""  # delete
    user: str = ""  # clear_user / ban: the display name or login
    user_id: str = ""  # clear_user / ban: the platform's user id (preferred when known)
    source: str = ""  # the platform ("twitch", "youtube"); "" matches every source
    reason: str = ""

    def matches(self, msg: object) -> bool:
        """Does this action take back the chat message `msg`?"""
        if not isinstance(msg, ChatMessage) or (self.source and msg.source != self.source):
            return False
        if self.action == "clear":
            return True
        if self.action == "delete":
            return bool(self.message_id) and msg.id == self.message_id
        if self.user_id and msg.user_id:
            return msg.user_id == self.user_id
        return bool(self.user) and msg.user.lower() == self.user.lower()


@dataclass(frozen=True)
class Announcement:
    """A fixed line to say (a thank-you, a command's answer): no LLM, still gated."""

    text: str
    t: float
    user: str = ""
    origin: str = ""  # the plugin that asked for it
    event: StreamEvent | None = None  # the channel event it answers (thank-yous are batched by kind)


@dataclass(frozen=True, eq=False)
class AudioFrame:
    """A slice of microphone (or replayed) audio, 16 kHz mono float32 in [-1, 1]."""

    samples: np.ndarray
    t: float  # session time of the first sample
    sample_rate: int = 16000

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class SpeechStarted:
    """The VAD heard the streamer start talking."""

    t: float


@dataclass(frozen=True)
class Utterance:
    """What the streamer said, as heard: one endpointed stretch of speech, transcribed."""

    text: str
    t_start: float  # speech onset
    t_end: float  # last voiced sample
    t_endpoint: float  # when the endpointer decided the speaker stopped
    t_asr_done: float  # when the transcript was ready
    t: float = 0.0  # arrival at the director (== t_asr_done)

    @property
    def endpoint_s(self) -> float:
        return self.t_endpoint - self.t_end

    @property
    def asr_s(self) -> float:
        return self.t_asr_done - self.t_endpoint


RETRACTED = "the streamer went on"  # why a turn for a taken-back utterance ends


@dataclass(frozen=True)
class UtteranceRetracted:
    """An utterance sent early (a complete sentence at a short pause) turned out not to be
    the end: the streamer went on. Its turn is dropped or cancelled silently; the whole
    utterance comes again at the real endpoint."""

    utterance: Utterance
    t: float


@dataclass(frozen=True)
class Turn:
    """An input the director picked to answer."""

    id: int
    kind: TurnKind
    user: str
    text: str
    t_input: float  # message arrival, or end of the streamer's speech
    t_queued: float  # arrival at the director
    t_picked: float  # when the mind started on it
    source: ChatMessage | Utterance | None = None
    askers: tuple[str, ...] = ()  # others who sent the same message (merged into this turn)


@dataclass(frozen=True)
class TurnDropped:
    """An input the director will not answer, and why (queue_full, stale, ...)."""

    kind: TurnKind
    user: str
    text: str
    reason: str
    t: float


@dataclass(frozen=True)
class ReplyStarted:
    turn: Turn
    t: float


@dataclass(frozen=True)
class FirstToken:
    turn_id: int
    t: float


@dataclass(frozen=True)
class ReplyClause:
    """A speakable piece of the reply (a clause or sentence), in order."""

    turn_id: int
    index: int
    text: str
    t: float
    opener: bool = False  # a reaction said at once while the model writes the rest (vtuber.mind.openers)


@dataclass(frozen=True, eq=False)
class AudioChunk:
    """Synthesized reply audio for one clause (int16 mono at `sample_rate`)."""

    turn_id: int
    clause_index: int
    samples: np.ndarray
    sample_rate: int
    t: float  # when this audio became ready to play

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class ReplyFinished:
    turn_id: int
    text: str
    t: float
    n_tokens: int = 0
    llm_s: float = 0.0
    truncated: bool = False
    flags: tuple[str, ...] = ()  # quality flags (vtuber.mind.quality): echo, parrot, roleplay, ...
    suppressed: str = ""  # a first clause not spoken, and why (then skipped, regenerated or replaced)
    attempts: int = 1  # generations the reply took (2 when its first clause was redone)


@dataclass(frozen=True)
class Interrupt:
    """Flows back: stop the current reply (the streamer started speaking, a moderator's
    !skip, mute, shutdown). The turn runner cancels the turn in flight."""

    t: float
    reason: str = "streamer_speech"


# --- playback: what the audience actually hears (from the speaker, or simulated) -------


@dataclass(frozen=True)
class PlaybackStarted:
    """A reply's first audio started playing."""

    turn_id: int
    t: float


@dataclass(frozen=True)
class ClausePlaying:
    """A clause of a reply started playing (captions and lip sync hang on this)."""

    turn_id: int
    clause_index: int
    text: str
    t: float
    duration: float


@dataclass(frozen=True)
class PlaybackFinished:
    """A reply's audio is over: played to the end, or cut short (cancelled), with what was heard."""

    turn_id: int
    t: float
    heard_text: str = ""
    cut_short: bool = False
    reason: str = ""


@dataclass(frozen=True)
class Underrun:
    """The speaker ran dry inside a reply (the next clause was not ready in time)."""

    turn_id: int
    t: float
    gap_s: float = 0.0


@dataclass(frozen=True)
class TurnCancelled:
    """The turn in flight was cancelled: its LLM stopped, its unspoken clauses dropped."""

    turn_id: int
    reason: str
    t: float


@dataclass(frozen=True)
class DeviceState:
    """A sound device was lost (unplugged, moved by the sound server, its stream died) or is back.

    `device` is "mic" or "speaker"; `state` is "lost" or "back"; `detail` says which device
    and why, in one line. While the speaker is lost the replies go on as captions only."""

    device: str
    state: str
    detail: str
    t: float


@dataclass(frozen=True)
class ServiceState:
    """A model service (`service`: "llm", "tts", "asr") is failing and on its fallback
    ("failing"), or answering again ("back"); `detail` says what happened, in one line."""

    service: str
    state: str
    detail: str
    t: float
