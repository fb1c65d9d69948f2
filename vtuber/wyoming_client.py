"""The Wyoming protocol client (Home Assistant's voice protocol), below the Wyoming ASR and TTS providers.

Wyoming is JSON lines with binary payloads over TCP (the `wyoming` package reads and
writes the events). `models.asr = "tcp://host:10300"` sends each utterance to a
Wyoming ASR server (`wyoming-faster-whisper`, ...), `models.voice = "tcp://host:10200"`
each clause to a Wyoming TTS server (`wyoming-piper`, ...). One request is one short
blocking exchange on its own connection, run on the stage's worker thread (never the
event loop), with a connect timeout and a reply timeout (`[speech_servers]`).

When the server is down, refuses, or closes mid-reply, that request is answered by the
local model (one log line, counted), and the server is not asked again for
`speech_servers.retry_after_s` (`vtuber.resilience.CircuitBreaker`), then tried again.
The providers are `vtuber.hearing.wyoming_asr` and `vtuber.voice.wyoming_tts`, made by
`vtuber.services` for a `tcp://` URI.
"""

from __future__ import annotations

import logging
import socket
import time
from urllib.parse import urlsplit

from vtuber.errors import UserError
from vtuber.resilience import CircuitBreaker

log = logging.getLogger("vtuber.wyoming")


class ServiceError(Exception):
    """The server gave no usable reply (one line)."""


def parse_tcp(url: str, key: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UserError(f"{key}: {url!r} is not a valid tcp://host:port ({e})") from None
    if parts.scheme != "tcp" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise UserError(f"{key}: {url!r}: a Wyoming server is given as tcp://host:port")
    return parts.hostname, port


def _wyoming():
    try:
        import wyoming.event as event
    except ImportError:
        raise UserError("Wyoming servers need the wyoming package: pip install 'vtuber[wyoming]'") from None
    return event


class WyomingService:
    """One Wyoming server: `exchange` sends events and reads the reply; the breaker and counters."""

    def __init__(self, url: str, key: str, what: str, connect_timeout_s: float, timeout_s: float, retry_after_s: float):
        self.url = url
        self.host, self.port = parse_tcp(url, key)
        self.what = what  # "ASR" or "TTS", for the log lines
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.event = _wyoming()
        self.breaker = CircuitBreaker(retry_after_s)
        self.counts = self.breaker.counts  # remote, local, fallbacks

    @property
    def last_error(self) -> str:
        return self.breaker.last_error

    def usable(self) -> bool:
        return self.breaker.usable()

    def failed(self, why: str) -> None:
        self.breaker.failed(why)

    def where(self) -> str:
        return f"Wyoming {self.what} server {self.url}"

    def exchange(self, events: list, until, collect=None):
        """Send `events`, then read until `until(event)` is true; `collect(event)` sees every
        event before. Returns the last event. ServiceError on any failure."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
        except ConnectionRefusedError:
            raise ServiceError(f"{self.where()} is not reachable (connection refused)") from None
        except socket.gaierror:
            raise ServiceError(f"{self.where()} is not reachable (unknown host)") from None
        except (TimeoutError, socket.timeout):
            raise ServiceError(f"{self.where()} did not connect within {self.connect_timeout_s:g} s") from None
        except OSError as e:
            raise ServiceError(f"{self.where()} is not reachable ({e.strerror or e})") from None
        deadline = time.monotonic() + self.timeout_s
        try:
            sock.settimeout(self.timeout_s)
            f = sock.makefile("rwb")
            for ev in events:
                self.event.write_event(ev.event() if hasattr(ev, "event") else ev, f)
            f.flush()
            while True:
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                ev = self.event.read_event(f)
                if ev is None:
                    raise ServiceError(f"{self.where()} closed the connection mid-reply")
                if ev.type == "error":
                    text = " ".join(str(ev.data.get("text", ev.data)).split())[:160]
                    raise ServiceError(f"{self.where()} answered with an error ({text})")
                if collect is not None:
                    collect(ev)
                if until(ev):
                    return ev
        except (TimeoutError, socket.timeout):
            raise ServiceError(f"{self.where()} gave no reply within {self.timeout_s:g} s") from None
        except (BrokenPipeError, ConnectionResetError):
            raise ServiceError(f"{self.where()} closed the connection mid-reply") from None
        except OSError as e:
            raise ServiceError(f"{self.where()}: the connection broke ({e.strerror or e})") from None
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def describe(self) -> dict:
        """The server's `info` (what it offers); ServiceError if it does not answer."""
        from wyoming.info import Describe

        ev = self.exchange([Describe()], until=lambda e: e.type == "info")
        return ev.data

    def report(self, local: str) -> dict:
        return {
            "server": self.url,
            "fallback": local,
            "remote": self.counts["remote"],
            "local": self.counts["local"],
            "fallbacks": self.counts["fallbacks"],
            "last_error": self.last_error,
        }

    def fall_back(self, e: Exception, local_name: str) -> None:
        self.failed(str(e))
        log.warning("%s; falling back to the local %s (the server is tried again in %g s)", e, local_name, self.retry_after_s)
