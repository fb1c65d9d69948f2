"""`vtuber bench` runs on the real models, reports every field, and streaming beats naive."""

from __future__ import annotations

import json

import pytest

from vtuber import bench
from vtuber.cli import TARGETS, bench_table, bench_verdict

STAGES = ("input_to_first_audio", "queue_wait", "llm_first_token", "first_clause", "tts_first_chunk", "tokens_per_s")


@pytest.fixture(scope="module")
def result(engine):
    return bench.run_bench(engine, turns=2)


def test_bench_answers_every_turn_of_both_kinds(result):
    assert result["answered"] == {"chat": 2, "speech": 2}
    assert len(result["heard"]) == 2


def test_bench_reports_every_stage(result):
    s = result["streaming"]
    for stage in STAGES:
        assert s["chat"][stage]["n"] == 2
        for k in ("p50", "p95", "max"):
            assert s["chat"][stage][k] >= 0
    for stage in STAGES + ("endpoint", "asr"):
        assert s["speech"][stage]["n"] == 2
    assert result["peak_rss_mib"] > 100  # three models loaded
    assert result["gaps"] >= 0 and "gap_s" in result
    assert result["machine"]["cores"] >= 1


def test_streaming_beats_the_naive_pipeline(result):
    for kind in ("chat", "speech"):
        streaming = result["streaming"][kind]["input_to_first_audio"]["p50"]
        naive = result["naive"][kind]["p50"]
        assert streaming < naive, (kind, streaming, naive)
    assert result["chat_speedup_p50"] > 1.0


def test_bench_writes_json_plot_and_a_table(result, tmp_path):
    files = bench.write(result, tmp_path)
    data = json.loads(files["json"].read_text())
    assert data["turns"] == 2 and "naive" in data and "streaming" in data
    assert files["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(bench_table(result))
    text = console.export_text()
    for row in ("chat -> first audio", "speech end -> first audio", "llm first token", "tts first chunk", "peak RSS", "tokens/s"):
        assert row in text
    assert len(bench_verdict(result)) == len(TARGETS)
