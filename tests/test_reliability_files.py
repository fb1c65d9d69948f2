"""What a long or unlucky stream does to files: the report's reply audio streamed with flat
memory (a four-hour session), `kill -9` during viewer-memory writes and during a report,
and a full disk (a file-size limit on the process) while memory and reports are written."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import tracemalloc
import wave

import numpy as np
import pytest

from vtuber.events import AudioChunk, ClausePlaying, PlaybackFinished, ReplyStarted, Turn
from vtuber.out_folder import MANIFEST, STAGE_PREFIX, OutFolder
from vtuber.outputs.recorder import Recorder
from vtuber.outputs.track import WavTrack, bytes_per_hour

RATE = 22050


def play(rec: Recorder, turn_id: int, start: float, clauses: list[np.ndarray], cut_at: float | None = None) -> None:
    """The events one reply makes, as playback reports them."""
    rec(ReplyStarted(Turn(turn_id, "chat", "ann", "hi", start, start, start), start))
    t = start
    for i, x in enumerate(clauses):
        rec(AudioChunk(turn_id, i, x, RATE, t))
        rec(ClausePlaying(turn_id, i, f"clause {i}", t, len(x) / RATE))
        t += len(x) / RATE
    if cut_at is None:
        rec(PlaybackFinished(turn_id, t, "heard"))
    else:
        rec(PlaybackFinished(turn_id, cut_at, "heard", cut_short=True, reason="barge_in"))


def tone(seconds: float, level: int = 8000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-level, level, int(seconds * RATE), dtype=np.int16)


# --- L8: the reply audio of a long session --------------------------------------------


def test_the_track_places_mixes_and_cuts_like_one_big_array(tmp_path):
    rec = Recorder(tmp_path / "track.wav")
    a, b, c = tone(0.5, seed=1), tone(0.4, seed=2), tone(0.3, seed=3)
    play(rec, 1, 1.0, [a, b])
    play(rec, 2, 1.2, [c])  # overlaps the first reply: mixed, as a sum would
    play(rec, 3, 3.0, [a, b], cut_at=3.25)  # cut short: only what was heard
    got = rec.timeline(min_duration=5.0)
    want = np.zeros(int(5.0 * RATE) + 1, dtype=np.int32)
    i = round(1.0 * RATE)
    want[i : i + len(a)] += a
    want[i + len(a) : i + len(a) + len(b)] += b
    j = round(1.2 * RATE)
    want[j : j + len(c)] += c
    k = round(3.0 * RATE)
    want[k : k + int(0.25 * RATE)] += a[: int(0.25 * RATE)]
    assert np.array_equal(got, np.clip(want, -32768, 32767).astype(np.int16))


def test_a_four_hour_sessions_audio_is_written_as_it_goes_with_flat_memory(tmp_path):
    """Four hours of replies (a 20 s reply every minute, in 2 s clauses): memory stays flat
    while the session runs and while the report's WAV is finished; the size is known up front."""
    hours = 4.0
    rec = Recorder(tmp_path / f"{STAGE_PREFIX}track.wav")
    clause = tone(2.0)
    tracemalloc.start()
    try:
        peaks = []
        for n in range(int(hours * 60)):
            play(rec, n + 1, n * 60.0 + 5.0, [clause] * 10)
            if n % 60 == 59:
                peaks.append(tracemalloc.get_traced_memory()[1])
                tracemalloc.reset_peak()
        dest = tmp_path / "replies.wav"
        rec.save_audio(dest, min_duration=hours * 3600)
        peaks.append(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()
    assert max(peaks) < 8 * 2**20, [p // 2**20 for p in peaks]  # MiB: one reply's audio, not the session's
    assert max(peaks) < 2 * peaks[0] + 2**20  # the fourth hour costs what the first did
    size = dest.stat().st_size
    assert abs(size - bytes_per_hour(RATE) * hours) < RATE * 4  # as stated up front: about 635 MB
    assert not (tmp_path / f"{STAGE_PREFIX}track.wav").exists()  # moved into place, not copied
    with wave.open(str(dest)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        assert w.getnframes() == int(hours * 3600 * RATE) + 1
        w.setpos(int((3 * 3600 + 5.0) * RATE))  # the reply of the 181st minute, where it played
        assert np.array_equal(np.frombuffer(w.readframes(len(clause)), dtype="<i2"), clause)


def test_the_report_size_is_stated_before_a_live_run_starts(tmp_path):
    from vtuber.rehearsal import report_size_note

    (line, warn), *rest = report_size_note(tmp_path, RATE, 3600.0)
    assert "replies.wav is written as the session goes" in line and "159 MB per hour" in line and not warn
    import shutil

    free_hours = shutil.disk_usage(tmp_path).free / bytes_per_hour(RATE)
    assert bool(rest) == (free_hours < 1.0)
    (_, warn), *_ = report_size_note(tmp_path, RATE, 3600.0 * (free_hours + 1))[1:]
    assert warn  # a session longer than the disk holds is warned about up front


# --- L6: kill -9 -------------------------------------------------------------------------


def _python(code: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.timeout(120)
def test_kill_9_during_viewer_memory_writes_keeps_every_committed_note(tmp_path):
    db = tmp_path / "memory.sqlite3"
    proc = _python(
        f"""
        import sys
        from vtuber.events import ChatMessage
        from vtuber.memory import ViewerMemory
        memory = ViewerMemory({str(db)!r})
        n = 0
        while True:
            memory.seen(ChatMessage(text="message " + str(n) + " " + "x" * 150, user="viewer" + str(n), t=0.0))
            n += 1
            print(n, flush=True)  # committed: seen() returned
        """
    )
    committed = 0
    deadline = time.monotonic() + 60
    while committed < 300 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        committed = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert committed >= 300, proc.stderr.read()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = con.execute("SELECT COUNT(*) FROM viewers").fetchone()[0]
    assert rows >= committed  # every note committed before the kill (and maybe the one after)
    assert con.execute("SELECT messages FROM viewers WHERE name = 'viewer0'").fetchone()[0] == 1


@pytest.mark.timeout(120)
def test_kill_9_during_a_report_leaves_the_old_report_whole(tmp_path):
    out = tmp_path / "o"
    with OutFolder(out, ["transcript.md", "replies.wav"]) as folder:
        folder.publish(lambda stage: [(stage / "transcript.md").write_text("old report\n"), (stage / "replies.wav").write_bytes(b"old" * 1000)])
    proc = _python(
        f"""
        import time
        from vtuber.out_folder import OutFolder
        with OutFolder({str(out)!r}, ["transcript.md", "replies.wav"]) as folder:
            scratch = folder.scratch("replies.wav")
            def write(stage):
                (stage / "transcript.md").write_text("new report\\n")
                with open(stage / "replies.wav", "wb") as f:
                    for _ in range(100000):
                        f.write(b"new" * 10000)
                        print("writing", flush=True)
                        time.sleep(0.001)
            with open(scratch, "wb") as f:
                f.write(b"growing")
            folder.publish(write)
        """
    )
    for _ in range(20):  # well inside the write
        assert proc.stdout.readline(), proc.stderr.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert (out / "transcript.md").read_text() == "old report\n"  # the old report, never half of the new
    assert (out / "replies.wav").read_bytes() == b"old" * 1000
    # The next run finds the folder as ours (the kill's leftovers are not the user's) and clears them.
    with OutFolder(out, ["transcript.md", "replies.wav"]) as folder:
        folder.publish(lambda stage: (stage / "transcript.md").write_text("next\n"))
    assert sorted(os.listdir(out)) == [MANIFEST, "replies.wav", "transcript.md"]


# --- L7: a full disk ---------------------------------------------------------------------

@pytest.mark.timeout(180)
def test_a_full_disk_fails_memory_and_report_in_one_line_and_the_stream_goes_on(tmp_path):
    """A file-size limit on the process (as a full disk: writes fail with EFBIG): the viewer
    memory cannot grow, the reply audio cannot be written whole. The session answers every
    message; the report keeps what fit and says, in one line, what did not."""
    out, db = tmp_path / "o", tmp_path / "memory.sqlite3"
    code = textwrap.dedent(
        f"""
        import asyncio, json, logging, os, resource, signal, sys, types
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from stream_helpers import chat, scripted_session
        from vtuber.errors import UserError
        from vtuber.events import ChatMessage
        from vtuber.memory import ViewerMemory
        from vtuber.out_folder import OutFolder
        from vtuber.outputs.recorder import Recorder
        from vtuber.rehearsal import REPORT_FILES, RehearsalInputs, write_report
        from vtuber.sources import ChatScriptSource

        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        memory = ViewerMemory({str(db)!r})
        for i in range(300):  # the regulars of earlier streams
            memory.seen(ChatMessage(text="an old message " * 8, user="regular" + str(i), t=0.0))
        folder = OutFolder({str(out)!r}, REPORT_FILES).claim()
        # From here on no file may grow past the memory file's size: it is full.
        limit = os.path.getsize({str(db)!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        session = scripted_session(["Hello there."], per_word=0.25)
        session.engine.paths = types.SimpleNamespace(llm="scripted", asr="none", voice="tone")
        session.recorder = Recorder(folder.scratch("replies.wav"))
        session.observers[0] = session.recorder
        session.memory = memory
        session.mind.memory = memory
        session.intake.memory = memory
        topics = "cats dogs pizza rain chess music tea space trains books snow games".split()
        msgs = [chat(0.2 + 0.7 * i, "do you like " + w + "? " + w * 12, user="newcomer_with_a_long_name_" + str(i)) for i, w in enumerate(topics)]
        asyncio.run(session.run([ChatScriptSource(msgs)]))
        print("answered", len(session.recorder.finished()), "limit", limit, flush=True)
        try:
            write_report(session, RehearsalInputs(chat=msgs, live=True), folder, fast=False)
        except UserError as e:
            print("vtuber: error:", e, file=sys.stderr)
            sys.exit(2)
        finally:
            folder.release()
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=170)
    err = [ln for ln in r.stderr.strip().splitlines() if ln]
    assert r.returncode == 2, r.stderr
    assert "answered" in r.stdout, r.stderr
    assert int(r.stdout.split()[1]) >= 6  # the stream went on through the failed writes
    memory_lines = [ln for ln in err if "viewer memory" in ln]
    assert len(memory_lines) == 1 and "could not be saved" in memory_lines[0], err  # said once
    audio_lines = [ln for ln in err if "reply audio could not be written" in ln]
    assert len(audio_lines) == 1, err
    final = err[-1]
    assert final.startswith("vtuber: error:") and "replies.wav" in final and "kept" in final, err
    assert "transcript.md" in final.split("kept", 1)[1], err
    assert not any("Traceback" in ln for ln in err), r.stderr
    # What could be written is kept, whole.
    assert (out / "transcript.md").read_text().startswith("# Live session")
    timings = json.loads((out / "timings.json").read_text())
    assert any("viewer memory" in e for e in timings["errors"])
    assert any("reply audio" in e for e in timings["errors"])
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert 300 <= con.execute("SELECT COUNT(*) FROM viewers").fetchone()[0] < 312
    assert not [f for f in os.listdir(out) if f.startswith(STAGE_PREFIX)]


def test_track_write_failure_keeps_what_was_written(tmp_path, monkeypatch):
    track = WavTrack(tmp_path / "t.wav", RATE)
    track.place(0.0, tone(0.5))
    real_open = track._open

    class Full:
        def __init__(self, f):
            self.f = f

        def __getattr__(self, name):
            return getattr(self.f, name)

        def write(self, b):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(track, "_open", lambda: Full(real_open()))
    track.place(1.0, tone(0.5))
    assert "No space left on device" in track.failed
    monkeypatch.setattr(track, "_open", real_open)
    track.place(2.0, tone(0.5))  # no more writes after a failure
    track.save(tmp_path / "out.wav")
    with wave.open(str(tmp_path / "out.wav")) as w:
        assert w.getnframes() == int(0.5 * RATE)
