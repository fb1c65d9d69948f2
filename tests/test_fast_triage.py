"""Fast mode keeps live triage: a long, busy script finishes, and says what it dropped and why.

(Before, fast mode held every input until the previous answer was done: a 100,000-line
script was answered one message a second, nothing dropped, and never finished.)
"""

from __future__ import annotations

import hashlib
import json

import pytest

from vtuber.config import load_config
from vtuber.pipeline import Engine
from vtuber.rehearsal import load_inputs, run_rehearsal


@pytest.mark.timeout(300)
def test_a_long_busy_script_in_fast_mode_drops_like_live_and_accounts_for_every_message(engine, tmp_path):
    n = 3000
    # distinct texts (near-duplicates would be merged, not queued)
    rows = [{"t": round(i * 0.004, 3), "user": f"v{i % 97}", "text": f"{hashlib.md5(str(i).encode()).hexdigest()[:12]} hello?"} for i in range(n)]
    rows.append({"t": 600.0, "user": "late", "text": "anyone still here?"})  # after a long quiet gap
    chat = tmp_path / "chat.jsonl"
    chat.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = load_config(overrides={"director": {"max_age_s": 3.0, "queue_size": 8}})
    eng = Engine(cfg, engine.persona, engine.paths, engine.llm, engine.asr, engine.tts, engine.vad, engine.canary)
    session, written = run_rehearsal(eng, load_inputs(chat, None), tmp_path / "out", fast=True)

    c = session.director.counters
    answered = [r for r in session.recorder.finished() if r.kind == "chat"]
    dropped = session.recorder.dropped
    reasons = {d.reason for d in dropped}
    # Every message is accounted for: answered or dropped with a reason.
    assert len(answered) + len(dropped) == n + 1, (len(answered), len(dropped))
    assert c["received_chat"] == n + 1
    # The burst came in while the co-host was busy: the queue overflowed and old messages went stale.
    assert "queue_full" in reasons and "stale" in reasons
    assert len(answered) < 50
    # The idle gap was skipped, and the late message was answered on the session clock.
    late = [r for r in answered if r.user == "late"]
    assert late and late[0].t_input >= 600.0
    report = json.loads((tmp_path / "out" / "timings.json").read_text())
    assert sum(v for k, v in report["counters"].items() if k.startswith("dropped_")) == len(dropped)
    assert report["balance"]["adds_up"]
    assert "Not answered" in (tmp_path / "out" / "transcript.md").read_text()
