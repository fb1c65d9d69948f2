"""The --out folder: proven writable up front, never someone else's, one run at a time,
published all at once, and nothing left behind by a failure, Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from vtuber.errors import UserError
from vtuber.out_folder import STAGE_PREFIX, OutFolder

OURS = ("a.txt", "b.txt")


def one_line(fn) -> str:
    with pytest.raises(UserError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def files(p):
    return sorted(f.name for f in p.iterdir())


def test_a_new_folder_is_created_proven_and_removed_again_if_nothing_was_published(tmp_path):
    out = tmp_path / "new" / "report"
    with OutFolder(out, OURS):
        assert out.is_dir() and files(out) == []  # the probe file is gone
    assert not out.exists()


def test_publish_moves_every_file_in_and_leaves_no_stage(tmp_path):
    out = tmp_path / "o"
    with OutFolder(out, OURS) as folder:
        written = folder.publish(lambda stage: [(stage / n).write_text(n) for n in OURS])
    assert files(out) == list(OURS) and set(written) == set(OURS)
    assert (out / "a.txt").read_text() == "a.txt"
    assert oct((out / "a.txt").stat().st_mode & 0o777) == oct(0o644)


def test_our_own_files_are_replaced(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "a.txt").write_text("old")
    with OutFolder(out, OURS) as folder:
        folder.publish(lambda stage: (stage / "a.txt").write_text("new"))
    assert (out / "a.txt").read_text() == "new"


def test_a_folder_with_the_users_own_files_is_refused_unless_forced(tmp_path):
    (tmp_path / "transcript.md").write_text("my notes")
    (tmp_path / "a.txt").write_text("old")
    msg = one_line(lambda: OutFolder(tmp_path, OURS).claim())
    assert "transcript.md" in msg and "--force" in msg
    with OutFolder(tmp_path, OURS, force=True) as folder:
        folder.publish(lambda stage: (stage / "a.txt").write_text("new"))
    assert (tmp_path / "transcript.md").read_text() == "my notes"  # only our files were touched
    assert (tmp_path / "a.txt").read_text() == "new"


def test_a_second_run_on_the_same_folder_is_told_it_is_in_use(tmp_path):
    with OutFolder(tmp_path / "o", OURS):
        msg = one_line(lambda: OutFolder(tmp_path / "o", OURS).claim())
        assert "in use" in msg
    with OutFolder(tmp_path / "o", OURS):  # free again once the first run is over
        pass


def test_a_second_process_is_told_too(tmp_path):
    out = tmp_path / "o"
    with OutFolder(out, OURS):
        code = f"from vtuber.out_folder import OutFolder; OutFolder({str(out)!r}, ['a.txt']).claim()"
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "in use by another vtuber run" in r.stderr


@pytest.mark.parametrize("where", ["/proc/vtuber-out", "/proc/self/vtuber-out"])
def test_a_folder_that_cannot_be_written_is_found_up_front(where):
    msg = one_line(lambda: OutFolder(where, OURS).claim())
    assert where in msg and "cannot write there" in msg


def test_a_failure_while_writing_leaves_nothing(tmp_path):
    out = tmp_path / "o"

    def boom(stage):
        (stage / "a.txt").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        with OutFolder(out, OURS) as folder:
            folder.publish(boom)
    assert not out.exists()


@pytest.mark.timeout(120)
def test_sigterm_while_the_report_is_written_stops_like_ctrl_c_and_cleans_up(tmp_path):
    """Through the real command's signal handling: one line, exit 143, no stage folder."""
    out = tmp_path / "o"
    script = textwrap.dedent(
        f"""
        import os, signal, sys, time
        from vtuber import cli
        from vtuber.commands import rehearse
        from vtuber.out_folder import OutFolder

        def fake_rehearse(args):
            with OutFolder({str(out)!r}, ["a.txt", "b.txt"]) as folder:
                def write(stage):
                    (stage / "a.txt").write_text("x")
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(30)
                    (stage / "b.txt").write_text("y")
                folder.publish(write)
            return 0

        rehearse.cmd_rehearse = fake_rehearse
        sys.exit(cli.main(["rehearse"]))
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=100)
    assert r.returncode == 143, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "stopped (SIGTERM)" in lines[0]
    assert not out.exists() or not [f for f in os.listdir(out) if f.startswith(STAGE_PREFIX) or f.endswith(".txt")]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]
