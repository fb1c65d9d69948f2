"""A local server on 127.0.0.1 that answers file requests the way the model hub does, for
the real huggingface_hub client (HF_ENDPOINT pointed at it).

It serves `HEAD` and `GET /{owner}/{repo}/resolve/{revision}/{path}` with the headers the
client reads (X-Repo-Commit, ETag: an LFS file's SHA-256 or a small file's git blob id,
Content-Length) and honours `Range: bytes=N-` with 206 Partial Content, as the hub does.
What can go wrong on a real network is switched on per file:
- `cut_after`: the first GET sends only that many bytes of the body, then closes the
  connection (a dropped connection mid-download);
- `corrupt`: the body differs from what the ETag announces (a bad checksum);
- `claimed_size`: HEAD announces this size instead of the real one (a model bigger than the disk).
Every request is recorded (method, path, Range) so a test can see what the client did.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HubFile:
    data: bytes
    lfs: bool = True  # ETag is the SHA-256 (LFS) or the git blob id (small text files)
    cut_after: int | None = None
    corrupt: bool = False
    claimed_size: int | None = None
    gets: int = 0

    @property
    def etag(self) -> str:
        if self.lfs:
            return hashlib.sha256(self.data).hexdigest()
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()

    def body(self) -> bytes:
        if self.corrupt:
            return bytes([self.data[0] ^ 0xFF]) + self.data[1:]
        return self.data


class FakeHub:
    """`with FakeHub() as hub: hub.add("owner/repo", "file.gguf", data)`; `hub.url` is HF_ENDPOINT."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], HubFile] = {}
        self.requests: list[tuple[str, str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet: the test reads `requests`
                pass

            def _file(self) -> HubFile | None:
                parts = self.path.split("?")[0].lstrip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return None
                return hub.files.get(("/".join(parts[:2]), "/".join(parts[4:])))

            def _not_found(self) -> None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("X-Error-Message", "Entry not found")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self) -> None:
                hub.requests.append(("HEAD", self.path, self.headers.get("Range", "")))
                f = self._file()
                if f is None:
                    return self._not_found()
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{f.etag}"')
                self.send_header("Content-Length", str(f.claimed_size or len(f.data)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()

            def do_GET(self) -> None:
                rng = self.headers.get("Range", "")
                hub.requests.append(("GET", self.path, rng))
                f = self._file()
                if f is None:
                    return self._not_found()
                f.gets += 1
                body = f.body()
                start = int(rng.split("=")[1].split("-")[0]) if rng.startswith("bytes=") else 0
                part = body[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(part)))
                self.send_header("ETag", f'"{f.etag}"')
                self.end_headers()
                if f.cut_after is not None and f.gets == 1:
                    self.wfile.write(part[: f.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(part)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, repo: str, path: str, data: bytes, **kw) -> HubFile:
        f = self.files[(repo, path)] = HubFile(data, **kw)
        return f

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def tiny_gguf(path, seed: int = 0, big_bytes: int = 256 * 1024) -> bytes:
    """A small valid GGUF (llama architecture metadata and a few tensors), written with the
    `gguf` package; about `big_bytes` long. Returns its bytes."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny test model")
    w.add_context_length(64)
    w.add_embedding_length(16)
    w.add_block_count(1)
    w.add_head_count(2)
    for name, shape in (("token_embd.weight", (32, 16)), ("blk.0.attn_q.weight", (16, 16)),
                        ("output_norm.weight", (16,))):
        w.add_tensor(name, rng.standard_normal(shape).astype(np.float32))
    # Enough tensor bytes that a download spans several reads (the cut lands mid-body).
    w.add_tensor("blk.0.ffn_up.weight", rng.standard_normal((max(1, big_bytes // 4096), 1024)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(path, "rb") as f:
        return f.read()
