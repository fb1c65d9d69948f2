"""An OpenAI-compatible chat-completions server as the LLM, with the local model as fallback.

`models.llm = "http://host:port/v1"` (llama.cpp's server, `python -m llama_cpp.server`,
vLLM, Ollama, LM Studio, any compatible endpoint) and the `[llm_server]` settings:

- `RemoteBackend` streams `POST {url}/chat/completions` with `stream: true` (server-sent
  events) on the standard library's HTTP client, on the backend's own thread. The API
  key comes from the token file or `VTUBER_<NAME>` (`llm_server.key_name`), never the
  config. Connect timeout, a deadline for the first token, a read timeout between
  tokens, retries with backoff (within the first-token deadline). `cancel.set()` shuts
  the socket down at once, so a cancelled turn closes its HTTP stream and the server
  sees the disconnect.
- Reasoning: `<think>...</think>` in the text and the `reasoning_content` / `reasoning`
  fields of the stream are thinking, never passed on (`vtuber.mind.reasoning`).
- `FallbackBackend`: a turn goes to the server first; when the server is down, answers
  with an error, breaks its stream, or its first token is later than
  `llm_server.first_token_s`, the turn is answered by the local model instead (one log
  line, counted in `report()`). The server is not asked again for
  `llm_server.retry_after_s`, then it is tried again (`vtuber.resilience.CircuitBreaker`). A server that
  fails after some of the answer was streamed ends the reply there (what was said
  cannot be taken back).
- `count_tokens`: the local model's tokenizer when there is a fallback model (the
  server's model has another tokenizer, but prompt sizes are close), else an
  over-estimate of one token per three characters.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from vtuber.config import Config
from vtuber.errors import UserError
from vtuber.mind.llm import OwnThread
from vtuber.mind.reasoning import ThinkFilter, no_think
from vtuber.resilience import CircuitBreaker

log = logging.getLogger("vtuber.llm")

TURN_LOG = 500  # per-turn records kept for the report and the bench
# Warming (at start, before any turn) waits this long at least for the first token: a
# server may load its model on the first request, and the persona prefix is prefilled.
WARM_FIRST_TOKEN_S = 30.0


class RemoteError(Exception):
    """The server could not give this turn an answer (the message is one line)."""


class CancelEvent(threading.Event):
    """The backend's cancel flag: setting it also runs `on_set` (shuts the open HTTP stream down)."""

    def __init__(self) -> None:
        super().__init__()
        self.on_set: list = []

    def set(self) -> None:
        super().set()
        for hook in list(self.on_set):
            try:
                hook()
            except Exception:  # a hook must never break a cancel
                log.debug("cancel hook failed", exc_info=True)


def is_http_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def check_url(url: str, key: str = "models.llm") -> tuple[str, str, int, str]:
    """(scheme, host, port, base path) of an LLM server URL; a `UserError` naming it if malformed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UserError(f"{key}: {url!r} is not a valid URL ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"{key}: {url!r} is not an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise UserError(f"{key}: {url!r}: give the base URL only (such as http://host:8080/v1)")
    port = port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")


def api_key(cfg: Config) -> str | None:
    from vtuber.tokens import TokenStore

    name = cfg.llm_server.key_name
    if not name:
        return None
    value = TokenStore().get(name)
    if value is not None and not isinstance(value, str):
        raise UserError(f"token {name!r}: expected a string API key in the token file")
    return value or None


class RemoteBackend:
    """Chat completions from an OpenAI-compatible server (see the module's note)."""

    name = "remote"

    def __init__(self, url: str, cfg: Config, key: str | None = None, cancel: CancelEvent | None = None):
        self.url = url
        self.scheme, self.host, self.port, self.base = check_url(url)
        self.cfg = cfg
        self.s = cfg.llm_server
        self.key = key
        self.cancel = cancel or CancelEvent()
        self.cancel.on_set.append(self._abort)
        self._conn: http.client.HTTPConnection | None = None
        self._conn_lock = threading.Lock()
        self.no_think = not cfg.llm.think
        self.last_filter: ThinkFilter | None = None
        self.warned_stray = False

    # --- HTTP -------------------------------------------------------------------------

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=ssl.create_default_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _abort(self) -> None:
        with self._conn_lock:
            conn = self._conn
        sock = getattr(conn, "sock", None) if conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _headers(self) -> dict:
        h = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.key:
            h["Authorization"] = f"Bearer {self.key}"
        return h

    def _where(self) -> str:
        return f"LLM server {self.url}"

    def _http_error(self, status: int, body: bytes) -> RemoteError:
        detail = ""
        try:
            data = json.loads(body.decode("utf-8", "replace"))
            err = data.get("error", data) if isinstance(data, dict) else data
            detail = err.get("message", "") if isinstance(err, dict) else str(err)
        except ValueError:
            detail = body[:200].decode("utf-8", "replace")
        detail = " ".join(str(detail).split())[:160]
        if status in (401, 403):
            return RemoteError(
                f"{self._where()} refused the API key (HTTP {status}); set it with the token "
                f"'{self.s.key_name}' (token file or VTUBER_{self.s.key_name.upper()})"
            )
        if status == 404:
            return RemoteError(f"{self._where()}: HTTP 404 ({detail or 'not found'}); check the URL (it usually ends in /v1) and llm_server.model {self.s.model!r}")
        return RemoteError(f"{self._where()}: HTTP {status}{': ' + detail if detail else ''}")

    def models(self) -> list[str]:
        """The model names the server offers (GET /models), to check `llm_server.model`."""
        conn = self._connection(self.s.connect_timeout_s)
        try:
            conn.request("GET", self.base + "/models", headers=self._headers())
            resp = conn.getresponse()
            body = resp.read(1 << 20)
            if resp.status != 200:
                raise self._http_error(resp.status, body)
        except (OSError, http.client.HTTPException) as e:
            raise RemoteError(f"{self._where()} is not reachable ({_why(e)})") from None
        finally:
            conn.close()
        try:
            data = json.loads(body)
            return [str(m.get("id")) for m in data.get("data", []) if isinstance(m, dict)]
        except (ValueError, AttributeError):
            raise RemoteError(f"{self._where()}: GET /models did not answer a model list") from None

    def check(self) -> None:
        """URL, API key and model name, in one request: a `RemoteError` with one line if wrong."""
        names = self.models()
        if self.s.model and names and self.s.model not in names:
            raise RemoteError(f"{self._where()} has no model {self.s.model!r} (it has: {', '.join(names[:8])}); set llm_server.model")

    def body(self, messages: list[dict], max_tokens: int) -> dict:
        msgs = no_think(messages) if self.no_think else messages
        body = {
            "messages": msgs,
            "stream": True,
            "max_tokens": max_tokens + (0 if self.no_think else self.cfg.llm.think_tokens),  # thinking counts too
            "temperature": self.cfg.llm.temperature,
            "top_p": self.cfg.llm.top_p,
            "seed": self.cfg.llm.seed,
        }
        if self.s.model:
            body["model"] = self.s.model
        if self.no_think:
            body["chat_template_kwargs"] = {"enable_thinking": False}
        return body

    def _open(self, messages: list[dict], max_tokens: int, deadline: float, first_token_s: float) -> http.client.HTTPResponse:
        """One try: connect, send, wait for the response headers (by `deadline`)."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise RemoteError(f"{self._where()}: no first token within {first_token_s:g} s")
        conn = self._connection(min(self.s.connect_timeout_s, left))
        with self._conn_lock:
            self._conn = conn
        try:
            conn.connect()
            if self.cancel.is_set():
                raise RemoteError("cancelled")
            conn.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            conn.request("POST", self.base + "/chat/completions", body=json.dumps(self.body(messages, max_tokens)), headers=self._headers())
            resp = conn.getresponse()
        except (socket.timeout, TimeoutError):
            conn.close()
            if time.monotonic() >= deadline - 0.01:
                raise RemoteError(f"{self._where()}: no first token within {first_token_s:g} s") from None
            raise RemoteError(f"{self._where()} did not connect within {self.s.connect_timeout_s:g} s") from None
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise _Retryable(f"{self._where()} is not reachable ({_why(e)})") from None
        if resp.status != 200:
            body = resp.read(1 << 16)
            conn.close()
            err = self._http_error(resp.status, body)
            if resp.status in (429, 502, 503, 504):
                raise _Retryable(str(err))
            raise err
        return resp

    def events(self, messages: list[dict], max_tokens: int, filt: ThinkFilter, first_token_s: float | None = None) -> Iterator[str]:
        """Answer text from the server (thinking fed to `filt`, never yielded). Raises
        `RemoteError` when it fails; ends quietly when cancelled."""
        started = time.monotonic()
        first_token_s = first_token_s or self.s.first_token_s
        deadline = started + first_token_s
        delay = 0.1  # then 0.2, 0.4, ... (a refused connection costs 0.3 s with 2 retries)
        for attempt in range(self.s.retries + 1):
            try:
                resp = self._open(messages, max_tokens, deadline, first_token_s)
                break
            except _Retryable as e:
                if self.cancel.is_set():
                    return
                if attempt == self.s.retries or time.monotonic() + delay >= deadline:
                    raise RemoteError(str(e)) from None
                time.sleep(delay)
                delay *= 2
            except RemoteError:
                if self.cancel.is_set():
                    return
                raise
        conn = self._conn
        first = True
        try:
            while True:
                if self.cancel.is_set():
                    return
                if first and conn is not None and conn.sock is not None:
                    # Headers may come at once (vLLM, Ollama) and keep-alive lines after
                    # them: the first token still has to come by the deadline.
                    conn.sock.settimeout(max(deadline - time.monotonic(), 0.01))
                try:
                    line = resp.readline(1 << 20)
                except (socket.timeout, TimeoutError):
                    if first:
                        raise RemoteError(f"{self._where()}: no first token within {first_token_s:g} s") from None
                    raise RemoteError(f"{self._where()}: the stream stalled for {self.s.read_timeout_s:g} s") from None
                except (OSError, http.client.HTTPException, ValueError) as e:
                    if self.cancel.is_set():
                        return
                    raise RemoteError(f"{self._where()}: the stream broke ({_why(e)})") from None
                if not line:
                    if self.cancel.is_set():
                        return
                    raise RemoteError(f"{self._where()}: the stream ended without [DONE]")
                line = line.strip()
                if not line or line.startswith(b":") or not line.startswith(b"data:"):
                    continue  # blank separators, keep-alive comments, event names and ids
                data = line[5:].strip()
                if data == b"[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise RemoteError(f"{self._where()}: malformed stream (not JSON: {data[:60]!r})") from None
                if not isinstance(chunk, dict):
                    raise RemoteError(f"{self._where()}: malformed stream (a chunk is not an object)")
                if "error" in chunk:
                    err = chunk["error"]
                    msg = err.get("message", err) if isinstance(err, dict) else err
                    raise RemoteError(f"{self._where()}: error in the stream ({' '.join(str(msg).split())[:160]})")
                choices = chunk.get("choices")
                if not isinstance(choices, list):
                    raise RemoteError(f"{self._where()}: malformed stream (no choices in a chunk)")
                if not choices:
                    continue  # a usage-only chunk
                delta = choices[0].get("delta") if isinstance(choices[0], dict) else None
                if not isinstance(delta, dict):
                    raise RemoteError(f"{self._where()}: malformed stream (no delta in a chunk)")
                thought = delta.get("reasoning_content") or delta.get("reasoning")
                piece = delta.get("content")
                if first and (thought or piece):
                    first = False
                    if conn is not None and conn.sock is not None:
                        conn.sock.settimeout(self.s.read_timeout_s)
                if isinstance(thought, str):
                    filt.reasoning(thought)
                if isinstance(piece, str) and piece:
                    yield piece
        finally:
            with self._conn_lock:
                self._conn = None
            if conn is not None:
                conn.close()  # a cancelled or broken stream: the server sees the disconnect

    def stream(self, messages: list[dict], max_tokens: int, first_token_s: float | None = None) -> Iterator[str]:
        """Answer text only; `RemoteError` on failure (no fallback here: see `FallbackBackend`)."""
        filt = self.last_filter = ThinkFilter(self.cfg.llm.starts_thinking)
        for piece in self.events(messages, max_tokens, filt, first_token_s):
            text = filt.feed(piece)
            if text:
                yield text
        text = filt.end()
        if text:
            yield text
        if filt.stray_close and not self.warned_stray:
            self.warned_stray = True
            log.warning("%s: the model closed a thinking part it never opened; set llm.starts_thinking = true", self._where())

    def count_tokens(self, text: str) -> int:
        return len(text) // 3 + 1

    def warm(self, prefix: list[dict]) -> None:
        self.cancel.clear()
        for _ in self.stream([*prefix, {"role": "user", "content": "hi"}], 1, max(self.s.first_token_s, WARM_FIRST_TOKEN_S)):
            pass

    def close(self) -> None:
        self._abort()


class _Retryable(RemoteError):
    """Connection refused or reset, or the server busy: worth another try."""


def _why(e: BaseException) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.gaierror):
        return "unknown host"
    text = str(e) or type(e).__name__
    return " ".join(text.split())[:120]


class FallbackBackend:
    """The server first, the local model when the server cannot answer (see the module's note)."""

    name = "remote"

    def __init__(self, remote: RemoteBackend, local=None, retry_after_s: float = 30.0):
        self.remote = remote
        self.local = local
        self.retry_after_s = retry_after_s
        self.cancel = remote.cancel
        if local is not None:
            local.cancel = self.cancel  # one flag for both: the mind sets and clears this one
        if getattr(local, "executor", None) is not None:
            self.executor = local.executor  # the local model computes on its own thread (see mind.llm)
            self.call = local.call
            self._own = None
        else:
            self._own = OwnThread()
            self.executor = self._own.executor
            self.call = self._own.call
        self.breaker = CircuitBreaker(retry_after_s)
        self.counts = self.breaker.counts  # remote, local, fallbacks
        self.turns: list[dict] = []  # per stream: backend, first_token_s, thinking_s, fallback reason

    @property
    def no_think(self) -> bool:
        return self.remote.no_think

    @no_think.setter
    def no_think(self, value: bool) -> None:
        self.remote.no_think = value

    @property
    def down_until(self) -> float:
        """Monotonic time before which the server is not asked."""
        return self.breaker.down_until

    @property
    def last_error(self) -> str:
        return self.breaker.last_error

    def usable(self) -> bool:
        return self.breaker.usable()

    def _failed(self, why: str) -> None:
        self.breaker.failed(why)

    def stream(self, messages: list[dict], max_tokens: int) -> Iterator[str]:
        t0 = time.perf_counter()
        rec: dict = {"backend": "remote", "first_token_s": None, "thinking_s": 0.0, "fallback": ""}
        self.turns.append(rec)
        del self.turns[:-TURN_LOG]
        answered = False
        if self.usable():
            try:
                for piece in self.remote.stream(messages, max_tokens):
                    if not answered:
                        rec["first_token_s"] = time.perf_counter() - t0
                    answered = True
                    yield piece
                if self.remote.last_filter is not None:
                    rec["thinking_s"] = self.remote.last_filter.thinking_s
                if answered or self.cancel.is_set():
                    self.breaker.succeeded()
                    return
                filt = self.remote.last_filter
                if filt is not None and filt.thought_chars and self.local is not None:
                    # The server works; the model thought through the whole token cap.
                    log.warning(
                        "%s: the model spent the whole token cap thinking; this turn is answered by the local "
                        "model (raise llm.think_tokens, or set llm.think = false)", self.remote._where(),
                    )
                    rec["fallback"] = "thinking took the whole token cap"
                    rec["backend"] = "local"
                    self.counts["local"] += 1
                    yield from self.local.stream(messages, max_tokens)
                    return
                raise RemoteError(f"{self.remote._where()}: an empty answer")
            except RemoteError as e:
                if self.remote.last_filter is not None:
                    rec["thinking_s"] = self.remote.last_filter.thinking_s
                if self.cancel.is_set():
                    return
                if answered:  # said cannot be unsaid: the reply ends here
                    log.warning("%s; the reply ends here", e)
                    self.breaker.last_error = str(e)
                    self.counts["remote"] += 1
                    rec["fallback"] = str(e)
                    return
                self._failed(str(e))
                rec["fallback"] = str(e)
                if self.local is None:
                    log.warning("%s; no local model to fall back to (llm_server.fallback = false)", e)
                    raise
                log.warning(
                    "%s; this turn falls back to the local model after %.2f s (the server is tried again in %g s)",
                    e, time.perf_counter() - t0, self.retry_after_s,
                )
        elif self.local is None:
            raise RemoteError(f"{self.remote._where()} is down ({self.last_error}); no local model to fall back to")
        rec["backend"] = "local"
        rec["fallback_s"] = time.perf_counter() - t0
        self.counts["local"] += 1
        for piece in self.local.stream(messages, max_tokens):
            if rec["first_token_s"] is None:
                rec["first_token_s"] = time.perf_counter() - t0
            yield piece

    def count_tokens(self, text: str) -> int:
        if self.local is not None:
            return self.local.count_tokens(text)
        return self.remote.count_tokens(text)

    def warm(self, prefix: list[dict]) -> None:
        """The local model's prefix into its cache; the server checked (URL, key, model)
        and sent the prefix once. A server that fails here is one log line: the
        session starts on the local model and tries the server again later."""
        if self.local is not None:
            self.local.warm(prefix)
        self.cancel.clear()
        try:
            self.remote.check()
            self.remote.warm(prefix)
        except RemoteError as e:
            if self.local is None:
                raise UserError(str(e)) from None
            self._failed(str(e))
            log.warning("%s; starting on the local model (the server is tried again in %g s)", e, self.retry_after_s)

    def set_threads(self, n: int) -> None:
        fn = getattr(self.local, "set_threads", None)
        if fn is not None:
            fn(n)

    @property
    def thinking(self) -> list[float]:
        """Seconds of thinking per reply that thought (the server's or the local model's)."""
        local = getattr(self.local, "thinking", [])
        return [t["thinking_s"] for t in self.turns if t["thinking_s"]] + list(local)

    def report(self) -> dict:
        """For the session report and the bench: which model answered, how often the server failed."""
        thinking = self.thinking
        return {
            "llm": f"server {self.remote.url}" + (f" ({self.remote.s.model})" if self.remote.s.model else ""),
            "fallback": getattr(self.local, "name", None),
            "turns_remote": self.counts["remote"],
            "turns_local": self.counts["local"],
            "fallbacks": self.counts["fallbacks"],
            "last_error": self.last_error,
            "thinking_s_total": round(sum(thinking), 3),
        }

    def close(self) -> None:
        self.remote.close()
        if self.local is not None:
            self.local.close()
        if self._own is not None:
            self._own.close_thread()
