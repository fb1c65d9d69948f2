"""Found, not configured: OpenAI-compatible LLM servers already running on this machine.

`vtuber models` asks each usual loopback port once (`GET /v1/models`, a short timeout, all
ports at the same time) and lists what answered with the models it serves. Only 127.0.0.1 is
asked: nothing leaves the machine. A found server is used like any other: `--llm URL` or
`models.llm = "URL"` in the config.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# (what usually listens there, port). Several programs share 8000 and 5000.
KNOWN_PORTS: tuple[tuple[str, int], ...] = (
    ("Ollama", 11434),
    ("llama.cpp server", 8080),
    ("LM Studio", 1234),
    ("llama-cpp-python / vLLM", 8000),
    ("KoboldCpp", 5001),
    ("text-generation-webui", 5000),
)
TIMEOUT_S = 0.4
MAX_BODY = 1 << 20  # a model list larger than this is not a model list


@dataclass(frozen=True)
class FoundServer:
    """A server that answered `/v1/models` on a loopback port."""

    kind: str  # what usually listens on that port
    url: str  # what `--llm` takes: http://127.0.0.1:PORT/v1
    models: tuple[str, ...]


def probe(port: int, kind: str = "", timeout: float = TIMEOUT_S) -> FoundServer | None:
    """The server on 127.0.0.1:`port` if it answers like an OpenAI-compatible one, else None."""
    url = f"http://127.0.0.1:{port}/v1"
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=timeout) as r:  # noqa: S310 (loopback only)
            body = json.loads(r.read(MAX_BODY + 1)[:MAX_BODY])
    except (OSError, ValueError, urllib.error.URLError):
        return None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return None
    ids = tuple(str(m.get("id")) for m in data if isinstance(m, dict) and m.get("id"))[:20]
    return FoundServer(kind or f"port {port}", url, ids)


def discover(ports: tuple[tuple[str, int], ...] = KNOWN_PORTS, timeout: float = TIMEOUT_S) -> list[FoundServer]:
    """Every OpenAI-compatible server answering on the given loopback ports (asked in parallel:
    the whole look takes about one timeout)."""
    with ThreadPoolExecutor(max_workers=max(1, len(ports)), thread_name_prefix="discover") as pool:
        found = pool.map(lambda kp: probe(kp[1], kp[0], timeout), ports)
        return [f for f in found if f is not None]
