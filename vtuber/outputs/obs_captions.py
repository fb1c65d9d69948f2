"""Captions into an OBS Text source over obs-websocket v5 (OBS 28+: Tools -> WebSocket Server Settings).

For streamers who prefer a Text source to the browser-source overlay. A session output:
as each clause is *heard* (`ClausePlaying`) the source's text becomes the reply so far
(its last `max_chars` characters), and `clear_after_s` after the reply it is emptied.
The client is simpleobsws (asyncio: it never blocks the loop; the `obs` extra); the
password, if OBS asks for one, comes from the token file (`obs_websocket`, or
VTUBER_OBS_WEBSOCKET), never from the config.

Sending is coalesced: one task sends the newest text only, so a slow OBS never queues
stale captions, and `handle` never waits. OBS not running, or restarting: said once,
retried in the background every `retry_s` (2 s: a refused local connection costs
nothing, and captions are back within about that long after OBS returns). A wrong or
missing password is a different thing: OBS closes with 4009 "authentication failed",
which is said as such, naming where the password came from, and retried slowly
(`backoff_max_s`) since only the streamer can fix it. OBS going away mid-stream is
said as "OBS closed", not in the client library's words.
"""

from __future__ import annotations

import asyncio
import logging
import os

from vtuber.errors import UserError
from vtuber.events import ClausePlaying, PlaybackFinished, PlaybackStarted, TurnCancelled
from vtuber.outputs.vtube_studio import check_url
from vtuber.resilience import Backoff
from vtuber.tokens import TokenStore, env_name

log = logging.getLogger("vtuber.obs")

TOKEN_NAME = "obs_websocket"
AUTH_FAILED = 4009  # obs-websocket's close code for a wrong or missing password


class ObsAuthFailed(ConnectionError):
    """OBS closed the connection with 4009: the password is wrong or missing."""


class ObsClosed(ConnectionError):
    """OBS closed the connection (it quit, or its WebSocket server was turned off)."""


def require_client():
    try:
        import simpleobsws
    except ImportError:
        raise UserError("OBS captions need the obs extra: pip install 'vtuber[obs]' (simpleobsws)") from None
    return simpleobsws


def tail(text: str, max_chars: int) -> str:
    """The last `max_chars` characters, cut at a word boundary."""
    if len(text) <= max_chars:
        return text
    cut = text[-max_chars:]
    space = cut.find(" ")
    return cut[space + 1 :] if 0 <= space < len(cut) - 1 else cut


class ObsCaptions:
    name = "obs_captions"

    def __init__(
        self,
        source: str,
        url: str = "ws://127.0.0.1:4455",
        clear_after_s: float = 3.0,
        max_chars: int = 160,
        tokens: TokenStore | None = None,
        backoff_start_s: float = 1.0,
        backoff_max_s: float = 30.0,
        retry_s: float = 2.0,
    ):
        if not source.strip():
            raise UserError("obs.source must name a Text source in OBS")
        if not 0 <= clear_after_s <= 600:
            raise UserError(f"obs.clear_after_s must be in [0, 600], got {clear_after_s}")
        if not 20 <= max_chars <= 2000:
            raise UserError(f"obs.max_chars must be in [20, 2000], got {max_chars}")
        self.sdk = require_client()
        self.source = source
        self.url = check_url(url, "obs.url")
        self.clear_after_s = clear_after_s
        self.max_chars = max_chars
        self.tokens = tokens or TokenStore()
        self.backoff_start_s = backoff_start_s
        self.backoff_max_s = backoff_max_s
        self.retry_s = retry_s
        self.connected = False
        self.state = "connecting"  # connected, not reachable, authentication failed, closed
        self.sent: list[str] = []  # what OBS accepted, newest last (a short history)
        self._turn: int | None = None
        self._text = ""
        self._want: str | None = None
        self._wake = asyncio.Event()
        self._clear: asyncio.TimerHandle | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = self._loop.create_task(self._run(), name="obs-captions")

    async def aclose(self) -> None:
        if self._clear is not None:
            self._clear.cancel()
        if self._text or (self.sent and self.sent[-1]):
            self._show("")
            for _ in range(50):  # a moment to clear the source before going
                if (self.sent and self.sent[-1] == "") or not self.connected:
                    break
                await asyncio.sleep(0.02)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # --- events (never wait) ---------------------------------------------------------------

    def _show(self, text: str) -> None:
        self._text = text
        self._want = text
        self._wake.set()

    def handle(self, ev: object) -> None:
        if isinstance(ev, PlaybackStarted):
            if self._clear is not None:
                self._clear.cancel()
            self._turn, self._text = ev.turn_id, ""
        elif isinstance(ev, ClausePlaying) and ev.turn_id == self._turn:
            self._show(tail(f"{self._text} {ev.text}".strip(), self.max_chars))
        elif isinstance(ev, (PlaybackFinished, TurnCancelled)) and ev.turn_id == self._turn:
            self._turn = None
            if self._clear is not None:
                self._clear.cancel()
            self._clear = asyncio.get_running_loop().call_later(self.clear_after_s, self._show, "")

    # --- the connection --------------------------------------------------------------------

    def password_origin(self) -> str:
        """Where the obs-websocket password comes from, for the message that says it was refused."""
        env = env_name(TOKEN_NAME)
        if os.environ.get(env):
            return f"the environment variable {env}"
        if self.tokens.get(TOKEN_NAME):
            return f"{TOKEN_NAME} in the token file {self.tokens.path}"
        return f"no password set (put OBS's in the token file {self.tokens.path} as {TOKEN_NAME}, or in {env})"

    async def _run(self) -> None:
        sdk = self.sdk
        backoff, told = Backoff(self.backoff_start_s, self.backoff_max_s), ""
        while True:
            ws = sdk.WebSocketClient(url=self.url, password=self.tokens.get(TOKEN_NAME) or "",
                                     identification_parameters=sdk.IdentificationParameters(eventSubscriptions=0))
            was_connected = False
            try:
                await asyncio.wait_for(ws.connect(), 5.0)
                await self._identified(ws)
                self.connected, was_connected, told = True, True, ""
                backoff.reset()
                self.state = "connected"
                log.info("OBS connected at %s: captions go to the Text source %r", self.url, self.source)
                while True:
                    if self._want is None:
                        # Wait for a caption, looking at the connection now and then: OBS
                        # quitting while she is quiet is noticed then, not at the next reply.
                        self._wake.clear()
                        waiter = asyncio.ensure_future(self._wake.wait())
                        try:
                            await asyncio.wait([waiter], timeout=self.retry_s)
                        finally:
                            waiter.cancel()
                    if not ws.ws_open:
                        raise ObsClosed()
                    text, self._want = self._want, None
                    if text is None:
                        continue
                    req = sdk.Request("SetInputSettings", {"inputName": self.source, "inputSettings": {"text": text}, "overlay": True})
                    result = await ws.call(req, timeout=5)
                    if result.ok():
                        self.sent.append(text)
                        self.sent = self.sent[-50:]
                    elif told != "refused":
                        log.warning("OBS refused the caption: %s (is there a Text source named %r?)", result.requestStatus.comment, self.source)
                        told = "refused"
            except asyncio.CancelledError:
                await asyncio.shield(self._disconnect(ws))
                raise
            except Exception as e:  # noqa: BLE001 - OBS gone, restarting, or refusing: retry, never crash
                if isinstance(e, ObsAuthFailed) or _close_code(ws) == AUTH_FAILED:
                    kind = "authentication failed"
                    line = (f"OBS at {self.url}: authentication failed (4009): the obs-websocket password is wrong "
                            f"or missing; it came from {self.password_origin()}; retrying in the background")
                elif was_connected or isinstance(e, ObsClosed):
                    kind, line = "closed", f"OBS closed (at {self.url}); captions resume when it is back"
                else:
                    kind = "not reachable"
                    line = f"OBS not reachable at {self.url} ({_why(e)}); retrying every {self.retry_s:g} s in the background"
                self.state = kind
                if told != kind:
                    log.warning("%s", line)
                    told = kind
            self.connected = False
            await self._disconnect(ws)
            if self.state == "authentication failed":  # only the streamer can fix it: ask slowly
                await asyncio.sleep(backoff.next())
            else:  # OBS is simply not there (yet): a refused local connection is cheap, look again soon
                await asyncio.sleep(min(self.retry_s, self.backoff_max_s))

    @staticmethod
    async def _identified(ws, timeout: float = 5.0) -> None:
        """Identified, or why not: OBS closes the socket at once on a wrong password (4009)."""
        for _ in range(int(timeout / 0.05)):
            if ws.is_identified():
                return
            if not ws.ws_open:
                if _close_code(ws) == AUTH_FAILED:
                    raise ObsAuthFailed()
                raise ObsClosed()
            await asyncio.sleep(0.05)
        raise ConnectionError("OBS did not identify us in time")

    @staticmethod
    async def _disconnect(ws) -> None:
        try:
            await asyncio.wait_for(ws.disconnect(), 2.0)
        except Exception:  # noqa: BLE001 - it is gone either way
            pass


def _close_code(ws) -> int | None:
    """The close code OBS sent, where the client still holds its socket."""
    sock = getattr(ws, "ws", None)
    return getattr(sock, "close_code", None) if sock is not None else None


def _why(e: BaseException) -> str:
    """A short reason for a failed connection, in our words rather than the library's."""
    if isinstance(e, ConnectionRefusedError):
        return "connection refused: is OBS running, with Tools -> WebSocket Server Settings -> Enable turned on?"
    if isinstance(e, asyncio.TimeoutError):
        return "no answer in 5 s"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e).splitlines()[0] if str(e) else type(e).__name__
