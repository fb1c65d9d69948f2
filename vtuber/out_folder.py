"""The folder a run writes its report to (`--out`): claimed up front, written all at once.

Before any model loads, `OutFolder.claim`:
- creates the folder if needed and proves it is writable by creating and removing a
  file in it (an access check cannot tell that /proc or a read-only mount refuses);
- refuses a folder holding files that are not this command's own (the user's notes,
  another program's output) unless `force` is given: only our own files are replaced.
  A file is ours only if the manifest (`.vtuber-files.json`, written with every report)
  says we wrote it and it has not changed since (same size and modification time): the
  user's own `transcript.md` has one of the report's names but is still theirs;
- locks it, so a second run with the same `--out` says the folder is in use instead of
  both runs printing "wrote" and one losing its files.

`OutFolder.publish` stages every file in a hidden folder inside the output folder and
moves each into place with an atomic rename: a reader never sees half a file. The
staging folder is removed whatever happens (an error, Ctrl-C, SIGTERM), and a folder
the claim created is removed again when nothing was published.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from vtuber.errors import UserError

STAGE_PREFIX = ".vtuber-stage-"
MANIFEST = ".vtuber-files.json"  # what this project wrote here: name -> size and modification time

log = logging.getLogger("vtuber")


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def read_manifest(folder: Path) -> dict[str, list[int]]:
    """The files this project wrote in `folder` ({} when there is no readable manifest)."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, list)} if isinstance(data, dict) else {}


class OutFolder:
    def __init__(self, path: str | Path, ours: Iterable[str], force: bool = False, flag: str = "--out"):
        self.path = Path(path)
        self.ours = frozenset(ours)
        self.force = force
        self.flag = flag
        self._fd: int | None = None
        self._created = False
        self._scratch: list[Path] = []

    def claim(self) -> OutFolder:
        p, flag = self.path, self.flag
        if p.exists() and not p.is_dir():
            raise UserError(f"{flag} {p}: exists and is not a folder")
        try:
            if not p.exists():
                p.mkdir(parents=True)
                self._created = True
            probe = tempfile.NamedTemporaryFile(dir=p, prefix=STAGE_PREFIX, delete=True)
            probe.close()
        except OSError as e:
            self._undo_create()
            raise UserError(f"{flag} {p}: cannot write there ({e.strerror or e})") from None
        try:
            self._fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            raise UserError(f"{flag} {p}: in use by another vtuber run (choose another folder)") from None
        except OSError as e:
            self.release()
            raise UserError(f"{flag} {p}: cannot lock it ({e.strerror or e})") from None
        self._clear_leftovers()
        manifest = read_manifest(p)

        def ours(f: Path) -> bool:
            if f.name not in self.ours:
                return False
            try:
                return manifest.get(f.name) == _stamp(f)  # written by us and untouched since
            except OSError:
                return False

        foreign = sorted(
            f.name for f in p.iterdir() if f.name != MANIFEST and not f.name.startswith(STAGE_PREFIX) and not ours(f)
        )
        if foreign and not self.force:
            self.release()
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise UserError(
                f"{flag} {p}: holds files that are not this command's ({shown}); "
                "choose an empty or new folder, or add --force to replace only our own files there"
            )
        return self

    def _clear_leftovers(self) -> None:
        """Stage folders and scratch files a killed run left behind (we hold the lock: no
        other run is using them)."""
        for f in self.path.iterdir():
            if f.name.startswith(STAGE_PREFIX):
                if f.is_dir() and not f.is_symlink():
                    shutil.rmtree(f, ignore_errors=True)
                else:
                    try:
                        f.unlink()
                    except OSError:
                        pass

    def scratch(self, name: str) -> Path:
        """A hidden file in the folder for a report file written as the run goes (the
        reply audio of a long session): `write` moves it into the stage; it is removed
        on release if it never was."""
        path = self.path / f"{STAGE_PREFIX}{os.getpid()}-{name}"
        self._scratch.append(path)
        return path

    def publish(self, write: Callable[[Path], None]) -> dict[str, Path]:
        """`write(stage)` writes every file into `stage`; then each moves into place and
        the manifest records it as ours."""
        if self._fd is None:
            self.claim()
        stage = Path(tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=self.path))
        try:
            write(stage)
            written = {}
            for f in sorted(stage.iterdir()):
                os.chmod(f, 0o644)  # ordinary report files, not private temporaries
                os.replace(f, self.path / f.name)
                written[f.name] = self.path / f.name
            self._created = False  # it holds a report now: keep it
            self._record(written)
            return written
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def _record(self, written: dict[str, Path]) -> None:
        """Add what was just written to the manifest (written whole, then renamed)."""
        manifest = read_manifest(self.path)
        for name, path in written.items():
            try:
                manifest[name] = _stamp(path)
            except OSError:
                manifest.pop(name, None)
        tmp = self.path / f"{STAGE_PREFIX}manifest"
        try:
            tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path / MANIFEST)
        except OSError as e:  # the report is there; a later run will only ask for --force
            log.warning("%s: could not record the files written (%s)", self.path / MANIFEST, e.strerror or e)
            try:
                tmp.unlink()
            except OSError:
                pass

    def _undo_create(self) -> None:
        if self._created:
            try:
                self.path.rmdir()  # only if still empty
            except OSError:
                pass
            self._created = False

    def release(self) -> None:
        """Unlock; a folder this claim created and never published to is removed."""
        for path in self._scratch:
            try:
                path.unlink()
            except OSError:
                pass  # moved into the report already, or never made
        self._scratch.clear()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._undo_create()

    def __enter__(self) -> OutFolder:
        return self if self._fd is not None else self.claim()

    def __exit__(self, *exc) -> None:
        self.release()
