"""`vtuber soak` in short: the real models under chat and speech load with faults injected
into each service; the summary's checks and files (a long run is `vtuber soak --minutes 30`)."""

from __future__ import annotations

import json

import pytest

from vtuber import soak


@pytest.mark.timeout(600)
def test_a_short_soak_injects_faults_into_every_service_and_reports(engine, tmp_path):
    result = soak.run_soak(
        engine, 1.0, rate=1.0, speech_every_s=10.0, fault_every_s=(5.0, 8.0), sample_every_s=5.0, hang_s=6.0, seed=3
    )
    services = {f.service for f in result.faults}
    assert len(result.faults) >= 4 and len(services) >= 2, result.faults
    hit = [f for f in result.faults if f.hit_t is not None]
    assert hit, result.faults
    assert result.received >= 40 and result.answered >= 1
    assert len(result.samples) >= 10
    lines = soak.summary_lines(result)
    assert lines[0].startswith("soak: 1 min") and any(line.startswith(("ok", "FAIL")) for line in lines)
    assert set(result.checks) >= {"threads flat", "file descriptors flat", "every fault that hit was recovered from"}
    # The session never hung on a fault: it ended by itself after the load.
    assert result.checks["the session ended by itself after the load"], result.stuck
    files = soak.write(result, tmp_path / "soak")
    data = json.loads(files["soak.json"].read_text())
    assert data["faults"] and data["samples"] and data["checks"] == result.checks
    assert files["soak.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_soak_refuses_bad_numbers_in_one_line(capsys):
    from vtuber.cli import main

    assert main(["soak", "--minutes", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--minutes" in err[0]
