"""`vtuber models recommend` and the servers `vtuber models` finds on this machine."""

from __future__ import annotations

import pytest

from vtuber.models.catalogue import CATALOGUE, find
from vtuber.models.recommend import BUDGET_S, Machine, estimate, recommend


def test_the_largest_model_that_keeps_the_budget_and_fits_in_memory_is_recommended():
    fast = Machine(decode_tps=400.0, prefill_tps=4000.0, free_ram_mb=64000, cores=16)
    rows, best = recommend(fast)
    assert [r.entry.size for r in rows] == sorted(r.entry.size for r in rows)
    assert all(a.first_audio_s <= b.first_audio_s for a, b in zip(rows, rows[1:]))  # bigger is never faster
    assert best is not None and best.fits and best.first_audio_s < BUDGET_S
    assert not [r for r in rows if r.fits and r.entry.size > best.entry.size]
    # The same speed with little memory: the pick falls to what fits.
    small_ram = Machine(400.0, 4000.0, free_ram_mb=1500, cores=16)
    _, pick = recommend(small_ram)
    assert pick is not None and pick.entry.ram_mb + 700 <= 1500 and pick.entry.size < best.entry.size
    # A slow machine keeps the bundled model.
    assert recommend(Machine(5.0, 20.0, 64000, 2))[1] is None


def test_an_estimate_scales_with_the_file_size():
    m = Machine(decode_tps=120.0, prefill_tps=900.0, free_ram_mb=8000, cores=2, bundled_bytes=100_000_000)
    small, big = estimate(m, find("qwen2.5-0.5b")), estimate(m, find("qwen3-4b"))
    assert small.decode_tps == pytest.approx(120.0 * 100e6 / small.entry.size)
    assert big.first_audio_s > small.first_audio_s and big.decode_tps < small.decode_tps
    assert {e.kind for e in CATALOGUE} == {"llm", "asr", "voice"}
    assert any("ko" in e.languages for e in CATALOGUE if e.kind == "llm")  # the Korean persona has a brain to pull


def test_llm_servers_already_running_here_are_found(tmp_path):
    from servers import ReplayServer

    from vtuber.models.discover import discover, probe

    with ReplayServer(models=("llama-3.2-1b", "qwen")) as server:
        found = discover((("LM Studio", server.port), ("nothing", server.port + 1 if server.port < 65535 else 1)))
    assert len(found) == 1 and found[0].url == server.url and found[0].models == ("llama-3.2-1b", "qwen")
    assert found[0].kind == "LM Studio"
    assert probe(server.port) is None  # gone once it stops


@pytest.mark.models
def test_recommend_measures_this_machine(capsys):
    from vtuber.cli import main

    assert main(["models", "recommend"]) == 0
    out = capsys.readouterr().out
    assert "this machine:" in out and "tokens/s" in out and "recommended:" in out
