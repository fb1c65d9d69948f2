"""Lip sync in VTube Studio: its Public API drives the model's mouth from the reply audio.

A session output. It connects to VTube Studio's WebSocket API (ws://127.0.0.1:8001 by
default; "Allow Plugin API access" must be on in VTube Studio), asks for a plugin token
once (VTube Studio shows the user a popup to allow it; the token then lives in the token
file, never in the config: `vtube_studio`, or VTUBER_VTUBE_STUDIO), authenticates, and
while a reply is *heard* sends `InjectParameterDataRequest` for the mouth parameter
(`MouthOpen` by default) at `rate_hz`:

- each clause's audio (`AudioChunk`) becomes an envelope, RMS per 20 ms;
- when the clause is heard (`ClausePlaying`) the envelope is played out on the session
  clock, scaled by `gain`, smoothed (fast open, slower close), clamped to [0, 1];
- after the reply (`PlaybackFinished`) and at once on a cancel the mouth goes to 0.

Optionally a reply's mood (happy, surprised, sad, angry: from the words of its first
heard clause that shows one) triggers a VTube Studio hotkey (`[vtube_studio.moods]`,
mood = hotkey name or ID), once per reply, as that clause is heard.

It never blocks the pipeline: `handle` only stores and flags; sending happens in its own
task. When VTube Studio is not there or restarts, it says so once and reconnects with
backoff (1 s doubling to 30 s) in the background. If the user denies the plugin, it
stops asking for the rest of the run.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import numpy as np

from vtuber.errors import UserError
from vtuber.events import AudioChunk, ClausePlaying, PlaybackFinished, TurnCancelled
from vtuber.resilience import Backoff
from vtuber.text import words as text_words
from vtuber.tokens import TokenStore

log = logging.getLogger("vtuber.vtube_studio")

API = "VTubeStudioPublicAPI"
PLUGIN_NAME = "vtuber co-host"
PLUGIN_DEVELOPER = "vtuber project"
TOKEN_NAME = "vtube_studio"
FRAME_S = 0.02  # envelope resolution: RMS per 20 ms


# A reply's mood, from its first heard clause that shows one (a small word list: the
# bundled model writes no mood tags). Each mood can trigger a VTube Studio hotkey.
MOOD_WORDS = {
    "happy": {"haha", "hehe", "yay", "love", "lol", "great", "awesome", "amazing", "glad", "fun", "cute", "wonderful", "yes"},
    "surprised": {"wow", "whoa", "woah", "omg", "really", "seriously", "what", "huh"},
    "sad": {"sorry", "sad", "unfortunately", "aww", "miss", "sadly"},
    "angry": {"hmph", "ugh", "annoying", "rude", "grr"},
}


def mood_of(text: str) -> str | None:
    """The mood a clause shows most ("Wow, really?" -> surprised), or None."""
    words = text_words(text, apostrophes=True, digits=False, lower=True)
    counts = {mood: sum(w in lexicon for w in words) for mood, lexicon in MOOD_WORDS.items()}
    best = max(counts, key=counts.get)
    return best if counts[best] else None


class AuthFailed(Exception):
    """VTube Studio refused the plugin (the user denied it, or revoked the token)."""


class Denied(AuthFailed):
    """The user clicked "Deny": asking again every few seconds would only pester them."""


def envelope(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS per 20 ms of int16 audio, in [0, 1] of full scale."""
    x = samples.astype(np.float32) / 32768.0
    n = max(int(sample_rate * FRAME_S), 1)
    frames = len(x) // n
    if frames == 0:
        return np.sqrt(np.mean(x**2, keepdims=True)) if len(x) else np.zeros(0, np.float32)
    head = x[: frames * n].reshape(frames, n)
    rms = np.sqrt(np.mean(head**2, axis=1))
    if len(x) > frames * n:
        rms = np.append(rms, np.sqrt(np.mean(x[frames * n :] ** 2)))
    return rms.astype(np.float32)


def check_url(url: str, what: str = "vtube_studio.url") -> str:
    if not url.startswith(("ws://", "wss://")):
        raise UserError(f"{what} must be a ws:// address (like ws://127.0.0.1:8001), got {url!r}")
    return url


class VTubeStudio:
    """The VTube Studio lip-sync output (see the module docstring)."""

    name = "vtube_studio"

    def __init__(
        self,
        url: str = "ws://127.0.0.1:8001",
        parameter: str = "MouthOpen",
        rate_hz: float = 40.0,
        gain: float = 5.0,
        tokens: TokenStore | None = None,
        backoff_max_s: float = 30.0,
        backoff_start_s: float = 1.0,
        token_wait_s: float = 120.0,
        moods: dict | None = None,
    ):
        self.url = check_url(url)
        if not 10.0 <= rate_hz <= 60.0:
            raise UserError(f"vtube_studio.rate_hz must be in [10, 60], got {rate_hz}")
        if not 0.1 <= gain <= 100.0:
            raise UserError(f"vtube_studio.gain must be in [0.1, 100], got {gain}")
        if not parameter.strip():
            raise UserError("vtube_studio.parameter must not be empty")
        moods = dict(moods or {})
        for mood, hotkey in moods.items():
            if mood not in MOOD_WORDS:
                raise UserError(f"vtube_studio.moods.{mood}: unknown mood (known: {', '.join(MOOD_WORDS)})")
            if not isinstance(hotkey, str) or not hotkey.strip():
                raise UserError(f"vtube_studio.moods.{mood} must be a VTube Studio hotkey name or ID")
        self.moods = moods
        self.hotkeys_sent: list[str] = []
        self._hotkeys: list[str] = []
        self._mood_turns: set[int] = set()
        self.parameter = parameter
        self.rate_hz = rate_hz
        self.gain = gain
        self.tokens = tokens or TokenStore()
        self.backoff_max_s = backoff_max_s
        self.backoff_start_s = backoff_start_s
        self.token_wait_s = token_wait_s
        self.now = time.monotonic  # the session clock once attached
        self.connected = False
        self.denied = False
        self.connects = 0
        self.sent = 0
        self.errors: list[str] = []
        self._ids = itertools.count(1)
        self._ws = None
        self._envelopes: dict[tuple[int, int], np.ndarray] = {}
        self._playing: tuple[int, float, np.ndarray] | None = None  # turn, heard at, envelope
        self._value = 0.0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def attach(self, session) -> None:
        self.now = session.clock.now

    def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._tasks = [loop.create_task(self._connection(), name="vts-connect"), loop.create_task(self._drive(), name="vts-mouth")]

    async def aclose(self) -> None:
        await self._set_mouth(0.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # --- events (never wait) -----------------------------------------------------------------

    def handle(self, ev: object) -> None:
        if isinstance(ev, AudioChunk):
            if len(ev.samples):
                self._envelopes[(ev.turn_id, ev.clause_index)] = envelope(ev.samples, ev.sample_rate)
                if len(self._envelopes) > 64:
                    self._envelopes.pop(next(iter(self._envelopes)))
        elif isinstance(ev, ClausePlaying):
            if self.moods and ev.turn_id not in self._mood_turns:
                mood = mood_of(ev.text)
                if mood is not None:  # one expression a reply, from the first clause that shows a mood
                    self._mood_turns.add(ev.turn_id)
                    if len(self._mood_turns) > 64:
                        self._mood_turns = set(sorted(self._mood_turns)[-32:])
                    if mood in self.moods:
                        self._hotkeys.append(self.moods[mood])
                        self._wake.set()
            env = self._envelopes.pop((ev.turn_id, ev.clause_index), None)
            if env is not None:
                self._playing = (ev.turn_id, ev.t, env)
                self._wake.set()
        elif isinstance(ev, (PlaybackFinished, TurnCancelled)):
            if self._playing is not None and self._playing[0] == ev.turn_id:
                self._playing = None
                self._wake.set()  # the mouth closes now
            for key in [k for k in self._envelopes if k[0] == ev.turn_id]:
                del self._envelopes[key]

    # --- the mouth -----------------------------------------------------------------------------

    def _target(self) -> float | None:
        """The mouth opening the audio heard now asks for (None: nothing is playing)."""
        playing = self._playing
        if playing is None:
            return None
        _turn, t0, env = playing
        i = int((self.now() - t0) / FRAME_S)
        if i < 0:
            return 0.0
        if i >= len(env):
            return 0.0
        return float(min(1.0, env[i] * self.gain))

    async def _drive(self) -> None:
        period = 1.0 / self.rate_hz
        while True:
            while self._hotkeys:
                await self._trigger(self._hotkeys.pop(0))
            target = self._target()
            if target is None:
                if self._value != 0.0:
                    await self._set_mouth(0.0)
                self._wake.clear()
                if self._playing is None:
                    await self._wake.wait()
                continue
            # Open fast, close a little slower: a mouth that flaps at 50 Hz looks wrong.
            k = 0.7 if target > self._value else 0.35
            value = self._value + (target - self._value) * k
            await self._set_mouth(round(value, 3))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), period)
            except asyncio.TimeoutError:
                pass

    async def _trigger(self, hotkey: str) -> None:
        ws = self._ws
        if ws is None or not self.connected:
            return
        try:
            await asyncio.wait_for(ws.send_json(self._request("HotkeyTriggerRequest", {"hotkeyID": hotkey})), 1.0)
            self.hotkeys_sent.append(hotkey)
        except (asyncio.TimeoutError, ConnectionError, RuntimeError) as e:
            log.debug("VTube Studio hotkey failed: %s", e)

    async def _set_mouth(self, value: float) -> None:
        self._value = value
        ws = self._ws
        if ws is None or not self.connected:
            return
        data = {"faceFound": False, "mode": "set", "parameterValues": [{"id": self.parameter, "value": value}]}
        try:
            await asyncio.wait_for(ws.send_json(self._request("InjectParameterDataRequest", data)), 1.0)
            self.sent += 1
        except (asyncio.TimeoutError, ConnectionError, RuntimeError) as e:
            log.debug("VTube Studio send failed: %s", e)

    # --- the connection -------------------------------------------------------------------------

    def _request(self, message_type: str, data: dict | None = None) -> dict:
        return {"apiName": API, "apiVersion": "1.0", "requestID": f"vtuber-{next(self._ids)}", "messageType": message_type, "data": data or {}}

    async def _call(self, ws, message_type: str, data: dict, timeout: float) -> dict:
        req = self._request(message_type, data)
        await ws.send_json(req)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise asyncio.TimeoutError()
            msg = await ws.receive(timeout=left)
            if msg.type.name != "TEXT":
                raise ConnectionError(f"connection closed during {message_type}")
            reply = msg.json()
            if reply.get("requestID") == req["requestID"]:
                return reply

    async def _authenticate(self, ws) -> None:
        who = {"pluginName": PLUGIN_NAME, "pluginDeveloper": PLUGIN_DEVELOPER}
        for attempt in range(2):
            token = self.tokens.get(TOKEN_NAME)
            if not token:
                log.warning("VTube Studio: allow the plugin %r in the VTube Studio window (asked once)", PLUGIN_NAME)
                reply = await self._call(ws, "AuthenticationTokenRequest", who, self.token_wait_s)
                if reply.get("messageType") == "APIError":
                    raise Denied(reply.get("data", {}).get("message", "the plugin was not allowed"))
                token = reply.get("data", {}).get("authenticationToken", "")
                if not token:
                    raise AuthFailed("no token in VTube Studio's answer")
                self.tokens.set(TOKEN_NAME, token)
            reply = await self._call(ws, "AuthenticationRequest", {**who, "authenticationToken": token}, 10.0)
            if reply.get("data", {}).get("authenticated"):
                return
            self.tokens.forget(TOKEN_NAME)  # revoked in VTube Studio: ask again, once
        raise AuthFailed("VTube Studio did not accept the plugin's token")

    async def _connection(self) -> None:
        import aiohttp

        backoff = Backoff(self.backoff_start_s, self.backoff_max_s)
        told = False
        while True:
            try:
                async with aiohttp.ClientSession() as http, http.ws_connect(self.url, heartbeat=10.0, max_msg_size=1 << 20) as ws:
                    await self._authenticate(ws)
                    self._ws, self.connected = ws, True
                    self.connects += 1
                    told = False
                    backoff.reset()
                    log.warning("VTube Studio connected at %s: lip sync on", self.url)
                    async for msg in ws:  # answers to the injections (errors are noted)
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            reply = msg.json()
                            if reply.get("messageType") == "APIError":
                                self.errors.append(str(reply.get("data", {}).get("message", ""))[:200])
                                self.errors = self.errors[-20:]
                        elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                            break
            except asyncio.CancelledError:
                raise
            except Denied as e:
                log.warning("VTube Studio: the plugin was not allowed (%s); lip sync is off until the next run", e)
                self.denied = True
                return
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ConnectionError, AuthFailed, ValueError) as e:
                if not told:
                    log.warning("VTube Studio not reachable at %s (%s); retrying in the background", self.url, e or type(e).__name__)
                    told = True
            finally:
                self._ws, self.connected = None, False
            await asyncio.sleep(backoff.next())
