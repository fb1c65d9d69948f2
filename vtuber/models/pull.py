"""`vtuber models pull NAME`: download a catalogue model through huggingface_hub, checked.

Only this command downloads; nothing does at run time. What it guarantees:
- The hub is asked for each file's size and checksum first (its metadata): a disk without
  room for the whole model is refused before a byte is written.
- huggingface_hub downloads (its progress bar; a connection cut mid-file is resumed from
  where it stopped with a Range request, a few times, before it gives up).
- Every file is hashed after the download: against the catalogue's SHA-256 when it has one,
  else against the hub's own (the LFS object id for model files, the git blob id for small
  ones). A mismatch deletes the file and says so; nothing half-checked is left usable.
- A model counts as pulled only when every file passed: the `.complete` marker is written
  last, and `--llm NAME` / `models.llm = "NAME"` only find a model that has it.
- A user's mistake or the network's (unknown name, no network, disk full, a bad checksum)
  is one line (`UserError`), never a traceback.

`HF_ENDPOINT` points the hub client elsewhere (a mirror; the tests' local server).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from vtuber.models.catalogue import Entry, entry_dir, find, load_catalogue
from vtuber.errors import UserError

SHA256 = re.compile(r"^[0-9a-f]{64}$")
GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")
# Room kept free beyond the model itself (the hub client's metadata, the OS).
SPARE_BYTES = 64 * 1024 * 1024
METADATA_TIMEOUT_S = 10.0


def endpoint() -> str:
    """The hub to download from: HF_ENDPOINT, read when pulling (not at import)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def resolve_spec(spec: str, catalogue: tuple[Entry, ...]) -> Entry:
    """A catalogue name, or `owner/repo/path/to/file.gguf` (a GGUF, or a Piper `.onnx` with its
    `.onnx.json`) straight from the hub, checked against the hub's own checksum."""
    entry = find(spec, catalogue)
    if entry is not None:
        return entry
    parts = spec.strip().split("/")
    if len(parts) >= 3 and all(parts):
        repo, path = "/".join(parts[:2]), "/".join(parts[2:])
        name = re.sub(r"[^a-z0-9._-]+", "-", Path(path).stem.lower()).strip("-") or "model"
        if path.endswith(".gguf"):
            return Entry(name, "llm", repo, (path,), 0, "see the repository", (), f"{repo}: {path}")
        if path.endswith(".onnx"):
            return Entry(name, "voice", repo, (path, path + ".json"), 0, "see the repository", (), f"{repo}: {path}")
    names = ", ".join(e.name for e in catalogue)
    raise UserError(f"unknown model {spec!r}: pull one of {names}, or owner/repo/file.gguf")


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.sha256() if algo == "sha256" else hashlib.sha1()
    if algo == "git-sha1":  # git's blob id: the small files' ETag on the hub
        h.update(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _network_error(e: BaseException) -> UserError:
    return UserError(f"cannot reach the model hub at {endpoint()} (no network? {type(e).__name__}); nothing was downloaded")


def _hub_errors():
    """The exception types of the hub client, imported when pulling."""
    import importlib

    from huggingface_hub import errors

    try:  # huggingface_hub 2 speaks through httpx2, 1.x through httpx
        httpx = importlib.import_module("httpx2")
    except ImportError:
        httpx = importlib.import_module("httpx")
    network = (httpx.ConnectError, httpx.TimeoutException, httpx.NetworkError, errors.OfflineModeIsEnabled,
               errors.LocalEntryNotFoundError)
    missing = (errors.RepositoryNotFoundError, errors.EntryNotFoundError, errors.RevisionNotFoundError)
    return network, missing, errors.HfHubHTTPError


def _metadata(entry: Entry, filename: str):
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    network, missing, http = _hub_errors()
    url = hf_hub_url(entry.repo, filename, revision=entry.revision, endpoint=endpoint())
    try:
        return get_hf_file_metadata(url, timeout=METADATA_TIMEOUT_S)
    except missing:
        raise UserError(f"{entry.name}: {entry.repo}/{filename} is not on the hub (moved or renamed?)") from None
    except network as e:
        raise _network_error(e) from None
    except http as e:
        status = getattr(getattr(e, "response", None), "status_code", "?")
        raise UserError(f"{entry.name}: the hub answered HTTP {status} for {entry.repo}/{filename}") from None


def expected_digest(entry: Entry, filename: str, etag: str | None) -> tuple[str, str]:
    """(algorithm, hex digest) the downloaded file must have: the catalogue's SHA-256, else
    the hub's ETag (an LFS file's SHA-256, or a small file's git blob id)."""
    own = entry.sha256.get(filename, "").lower()
    if own:
        return "sha256", own
    tag = (etag or "").lower()
    if SHA256.match(tag):
        return "sha256", tag
    if GIT_SHA1.match(tag):
        return "git-sha1", tag
    raise UserError(f"{entry.name}: the hub gave no checksum for {filename}; refusing an unchecked download")


def _forget(folder: Path, filename: str) -> None:
    """Delete a refused file and the hub client's note about it (so the next pull fetches it again)."""
    (folder / filename).unlink(missing_ok=True)
    for note in (folder / ".cache" / "huggingface" / "download").glob(f"{filename}.*"):
        note.unlink(missing_ok=True)


def pull(spec: str, catalogue_file: str | None = None, say=print) -> Path:
    """Download a model (catalogue name or owner/repo/file), check every file, and return the
    path `--llm` / `models.asr` / `models.voice` take. Already pulled: returns at once."""
    catalogue = load_catalogue(catalogue_file)
    entry = resolve_spec(spec, catalogue)
    folder = entry_dir(entry)
    marker = folder / ".complete"
    if marker.is_file():
        done = json.loads(marker.read_text(encoding="utf-8"))
        if done.get("repo") == entry.repo and done.get("files") == list(entry.files):
            say(f"{entry.name} is already pulled: {folder}")
            return _result(entry, folder)
    try:
        import huggingface_hub  # noqa: F401  (a dependency of faster-whisper: always there)
    except ImportError:
        raise UserError("pulling models needs huggingface_hub: pip install 'huggingface_hub>=1.0'") from None

    metas = {f: _metadata(entry, f) for f in entry.files}
    sizes = {f: (m.size or 0) for f, m in metas.items()}
    total = sum(sizes.values()) or entry.size
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{folder}: cannot create the models folder ({e.strerror or e})") from None
    have = sum((folder / f).stat().st_size for f in entry.files if (folder / f).is_file())
    free = shutil.disk_usage(folder).free
    if total - have + SPARE_BYTES > free:
        raise UserError(
            f"not enough disk space for {entry.name}: it needs {human_bytes(total)}, "
            f"{human_bytes(free)} is free in {folder}; nothing was downloaded"
        )
    say(f"pulling {entry.name} ({human_bytes(total)}, {entry.licence}) from {entry.repo}")
    digests = {}
    for filename in entry.files:
        algo, want = expected_digest(entry, filename, metas[filename].etag)
        path = _download(entry, filename, folder)
        got = file_digest(path, algo)
        if got != want:
            _forget(folder, filename)
            raise UserError(
                f"{entry.name}: {filename} failed its checksum ({algo} {got[:12]}..., expected {want[:12]}...); "
                "the file was deleted: run the pull again"
            )
        digests[filename] = got
    if entry.kind == "llm":
        with open(folder / entry.main_file, "rb") as f:
            if f.read(4) != b"GGUF":
                _forget(folder, entry.main_file)
                raise UserError(f"{entry.name}: {entry.main_file} is not a GGUF file; it was deleted")
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps({"repo": entry.repo, "revision": entry.revision, "files": list(entry.files),
                               "digests": digests, "kind": entry.kind}, indent=1), encoding="utf-8")
    tmp.replace(marker)
    say(f"pulled {entry.name}: {folder}")
    return _result(entry, folder)


def _result(entry: Entry, folder: Path) -> Path:
    return folder if entry.kind == "asr" else folder / entry.main_file


def _download(entry: Entry, filename: str, folder: Path) -> Path:
    from huggingface_hub import hf_hub_download

    network, missing, http = _hub_errors()
    try:
        return Path(hf_hub_download(entry.repo, filename, revision=entry.revision, local_dir=folder,
                                    endpoint=endpoint(), etag_timeout=METADATA_TIMEOUT_S))
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            _forget(folder, filename)
            raise UserError(f"disk full while pulling {entry.name} into {folder} ({e.strerror}); "
                            "the partial file was deleted") from None
        if isinstance(e, missing):
            raise UserError(f"{entry.name}: {entry.repo}/{filename} is not on the hub") from None
        if isinstance(e, network):
            raise _network_error(e) from None
        if "Consistency check failed" in str(e):
            _forget(folder, filename)
            raise UserError(f"{entry.name}: the download of {filename} was cut short and could not be resumed; "
                            "run the pull again") from None
        if isinstance(e, http):
            status = getattr(getattr(e, "response", None), "status_code", "?")
            raise UserError(f"{entry.name}: the hub answered HTTP {status} for {filename}") from None
        raise UserError(f"{entry.name}: cannot write {folder / filename} ({e.strerror or e})") from None
    except network as e:
        raise _network_error(e) from None


def installed(catalogue_file: str | None = None) -> list[tuple[Entry, Path]]:
    """Every catalogue model pulled into the data folder, with its path."""
    from vtuber.models.catalogue import pulled

    out = []
    for e in load_catalogue(catalogue_file):
        path = pulled(e)
        if path is not None:
            out.append((e, path))
    return out

