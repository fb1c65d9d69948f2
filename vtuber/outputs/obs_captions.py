"""Captions into an OBS Text source over obs-websocket v5 (OBS 28+: Tools -> WebSocket Server Settings).

For streamers who prefer a Text source to the browser-source overlay. A session output:
as each clause is *heard* (`ClausePlaying`) the source's text becomes the reply so far
(its last `max_chars` characters), and `clear_after_s` after the reply it is emptied.
The client is simpleobsws (asyncio: it never blocks the loop; the `obs` extra); the
password, if OBS asks for one, comes from the token file (`obs_websocket`, or
VTUBER_OBS_WEBSOCKET), never from the config.

Sending is coalesced: one task sends the newest text only, so a slow OBS never queues
stale captions, and `handle` never waits. OBS not running, or restarting: said once,
retried with backoff in the background.
"""

from __future__ import annotations

import asyncio
import logging

from vtuber.errors import UserError
from vtuber.events import ClausePlaying, PlaybackFinished, PlaybackStarted, TurnCancelled
from vtuber.outputs.vtube_studio import check_url
from vtuber.resilience import Backoff
from vtuber.tokens import TokenStore

log = logging.getLogger("vtuber.obs")

TOKEN_NAME = "obs_websocket"


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
        self.connected = False
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

    async def _run(self) -> None:
        sdk = self.sdk
        backoff, told = Backoff(self.backoff_start_s, self.backoff_max_s), False
        while True:
            ws = sdk.WebSocketClient(url=self.url, password=self.tokens.get(TOKEN_NAME) or "",
                                     identification_parameters=sdk.IdentificationParameters(eventSubscriptions=0))
            try:
                await asyncio.wait_for(ws.connect(), 5.0)
                await self._identified(ws)
                self.connected, told = True, False
                backoff.reset()
                log.warning("OBS connected at %s: captions go to the Text source %r", self.url, self.source)
                while True:
                    if self._want is None:
                        self._wake.clear()
                        await self._wake.wait()
                    text, self._want = self._want, None
                    if text is None:
                        continue
                    req = sdk.Request("SetInputSettings", {"inputName": self.source, "inputSettings": {"text": text}, "overlay": True})
                    result = await ws.call(req, timeout=5)
                    if result.ok():
                        self.sent.append(text)
                        self.sent = self.sent[-50:]
                    elif not told:
                        log.warning("OBS refused the caption: %s (is there a Text source named %r?)", result.requestStatus.comment, self.source)
                        told = True
            except asyncio.CancelledError:
                await asyncio.shield(self._disconnect(ws))
                raise
            except Exception as e:  # noqa: BLE001 - OBS gone, restarting, or refusing: retry, never crash
                if not told:
                    log.warning("OBS not reachable at %s (%s); retrying in the background", self.url, e or type(e).__name__)
                    told = True
            self.connected = False
            await self._disconnect(ws)
            await asyncio.sleep(backoff.next())

    @staticmethod
    async def _identified(ws, timeout: float = 5.0) -> None:
        """Identified, or why not: OBS closes the socket at once on a wrong password."""
        for _ in range(int(timeout / 0.05)):
            if ws.is_identified():
                return
            if not ws.ws_open:
                raise ConnectionError("OBS closed the connection (is the obs-websocket password in the token file right?)")
            await asyncio.sleep(0.05)
        raise ConnectionError("OBS did not identify us in time")

    @staticmethod
    async def _disconnect(ws) -> None:
        try:
            await asyncio.wait_for(ws.disconnect(), 2.0)
        except Exception:  # noqa: BLE001 - it is gone either way
            pass
