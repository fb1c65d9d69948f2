"""Real servers on 127.0.0.1 for the remote-model tests, started and stopped by the tests.

- `LlamaServer`: `python -m llama_cpp.server` (llama-cpp-python's server) on the bundled GGUF.
- `ReplayServer`: a small OpenAI-compatible chat-completions server (aiohttp) that
  replays a given stream of server-sent events: thinking streams, malformed streams,
  slow streams, and it records requests and client disconnects.
- `WyomingServer`: `wyoming-faster-whisper` or `wyoming-piper` on the bundled models, offline.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start in {timeout} s: {log.read_text(errors='replace')[-2000:]}")


class Proc:
    """A server subprocess; `stop()` ends it (and only it)."""

    def __init__(self, args: list[str], port: int, log: Path, ready: float = 120.0, env: dict | None = None):
        self.args, self.port, self.log, self.ready, self.env = args, port, log, ready, env
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Proc":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")
        # cwd: a folder of our own, so nothing there shadows the server's imports
        self.proc = subprocess.Popen(
            self.args, stdout=out, stderr=subprocess.STDOUT, cwd=self.log.parent, env={**os.environ, **(self.env or {})}
        )
        out.close()
        _wait_port(self.port, self.proc, self.ready, self.log)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


def llama_server(gguf: Path, port: int, log: Path, api_key: str = "", alias: str = "smollm2") -> Proc:
    args = [PY, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias, "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", "1024", "--n_threads", "1", "--n_threads_batch", "1", "--verbose", "False"]
    if api_key:
        args += ["--api_key", api_key]
    return Proc(args, port, log)


def wait_models(url: str, key: str = "", timeout: float = 60.0) -> None:
    """Until the LLM server answers GET /models (it listens before the model is loaded)."""
    end = time.monotonic() + timeout
    while True:
        req = urllib.request.Request(url + "/models", headers={"Authorization": f"Bearer {key}"} if key else {})
        try:
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def wyoming_whisper(model_dir: Path, port: int, log: Path) -> Proc:
    return Proc(
        [PY, "-m", "wyoming_faster_whisper", "--model", str(model_dir), "--data-dir", str(log.parent / "whisper-data"),
         "--local-files-only", "--language", "en", "--compute-type", "int8", "--beam-size", "1", "--cpu-threads", "1",
         "--uri", f"tcp://127.0.0.1:{port}"],
        port, log,
    )


def wyoming_piper(voice_onnx: Path, port: int, log: Path) -> Proc:
    return Proc(
        [PY, "-m", "wyoming_piper", "--voice", voice_onnx.stem, "--data-dir", str(voice_onnx.parent),
         "--local-files-only", "--uri", f"tcp://127.0.0.1:{port}"],
        port, log,
    )


def sse(obj) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"


def delta(content: str | None = None, reasoning: str | None = None, field: str = "reasoning_content") -> bytes:
    d = {}
    if content is not None:
        d["content"] = content
    if reasoning is not None:
        d[field] = reasoning
    return sse({"id": "x", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d, "finish_reason": None}]})


DONE = b"data: [DONE]\n\n"


class ReplayServer:
    """An OpenAI-compatible server on 127.0.0.1 that streams `self.script`: a list of
    raw byte blocks (or (seconds, bytes) to wait first). Records request bodies and
    whether the client went away mid-stream."""

    def __init__(self, models: tuple[str, ...] = ("replay",)):
        self.models = models
        self.script: list = []
        self.status = 200
        self.requests: list[dict] = []
        self.disconnects: list[float] = []  # monotonic times a client left mid-stream
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "ReplayServer":
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        from aiohttp import web

        async def models(request):
            return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]})

        async def chat(request):
            self.requests.append(await request.json())
            if self.status != 200:
                return web.json_response({"error": {"message": "replayed error", "code": self.status}}, status=self.status)
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            try:
                for item in self.script:
                    if isinstance(item, tuple):
                        await asyncio.sleep(item[0])
                        item = item[1]
                    await resp.write(item)
                await resp.write_eof()
            except (ConnectionResetError, asyncio.CancelledError, RuntimeError):
                self.disconnects.append(time.monotonic())
                raise
            return resp

        async def start():
            app = web.Application()
            app.router.add_get("/v1/models", models)
            app.router.add_post("/v1/chat/completions", chat)
            self._runner = web.AppRunner(app, handler_cancellation=True)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
            self._started.set()

        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(start())
        self._loop.run_forever()
