"""Personas, cards and plugins in a real rehearsal on the real models (integration)."""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest

from conftest import words
from test_cards import b64, png, v2
from vtuber.cli import main
from vtuber.config import load_config
from vtuber.mind.persona import load_persona
from vtuber.paths import bundled
from vtuber.pipeline import Engine
from vtuber.rehearsal import load_inputs, run_rehearsal


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_card_imported_from_png_drives_a_rehearsal(tmp_path, capsys):
    card = v2(
        name="Luna",
        character_book={
            "entries": [{"keys": ["lighthouse"], "content": "Luna grew up in the old lighthouse.", "enabled": True}]
        },
        mes_example="<START>\n{{user}}: Sing for us!\n{{char}}: La la la, a song for {{user}}!",
    )
    (tmp_path / "luna.png").write_bytes(png(("chara", b64(card))))
    persona_file = tmp_path / "luna.yaml"
    assert main(["persona", "import", str(tmp_path / "luna.png"), "--out", str(persona_file), "--streamer", "Sam"]) == 0
    assert main(["persona", "check", str(persona_file)]) == 0
    persona = load_persona(str(persona_file))
    assert persona.name == "Luna"
    assert persona.example_exchanges[0].reply == "La la la, a song for Sam!"
    chat = jsonl(
        tmp_path / "chat.jsonl",
        [
            {"t": 0.5, "user": "alice", "text": "hi Luna, where did you grow up? the lighthouse?"},
            {"t": 3.0, "user": "bob", "text": "can you sing something?"},
        ],
    )
    out = tmp_path / "out"
    capsys.readouterr()
    rc = main(["rehearse", "--persona", str(persona_file), "--chat", str(chat), "--fast", "--out", str(out), "-q"])
    assert rc == 0, capsys.readouterr().err
    data = json.loads((out / "timings.json").read_text())
    assert data["persona"] == "Luna"
    assert [t["user"] for t in data["turns"]] == ["alice", "bob"]
    assert all(words(t["reply_text"]) for t in data["turns"])  # whatever the model says, every turn has a reply
    assert (out / "transcript.md").read_text().startswith("# Rehearsal with Luna")


@pytest.fixture(scope="module")
def plugin_session(engine, tmp_path_factory):
    d = tmp_path_factory.mktemp("plugins")
    shutil.copy(bundled("plugins") / "hello.py", d / "hello.py")  # the example plugin, from this folder
    (d / "slowpoke.py").write_text(
        textwrap.dedent(
            """
            import time
            from vtuber.plugins import Plugin

            class Slowpoke(Plugin):
                name = "slowpoke"
                def on_chat(self, msg):
                    time.sleep(5)   # hangs: must be cut off and disabled
                    return msg
            """
        )
    )
    personas = d / "personas"  # !persona takes names from the persona folders only
    personas.mkdir()
    shutil.copy(bundled("personas") / "miko.yaml", personas / "miko.yaml")
    nova = personas / "nova.yaml"
    nova.write_text(
        "name: Nova\ndescription: A calm space-themed co-host.\nspeaking_style: Soft and dry.\n"
        "greeting: Hello, travellers.\nbanned_words: [heck]\n",
        encoding="utf-8",
    )
    mod = ["moderator/1"]
    chat = jsonl(
        d / "chat.jsonl",
        [
            {"t": 0.5, "user": "alice", "text": "hi Miko!"},
            {"t": 1.0, "event": "raid", "user": "bigstreamer", "amount": 40},
            {"t": 1.5, "user": "bob", "text": "!hello"},
            {"t": 2.0, "user": "troll", "text": "!persona nova"},
            {"t": 2.5, "user": "troll", "text": "!mute"},
            {"t": 3.0, "user": "carol", "text": "what game is this?"},
            {"t": 3.2, "user": "mod", "text": f"!persona {nova}", "badges": mod},  # a path: refused
            {"t": 3.5, "user": "mod", "text": "!persona nova", "badges": mod},
            {"t": 4.0, "user": "dave", "text": "who are you?"},
            # Fast mode keeps live triage (a mute holds for what is picked while it is on), so the
            # mute comes long after everything before it was answered, and lasts until erin's
            # message has been picked. Idle time is skipped: the gaps cost no wall time.
            {"t": 200.0, "user": "mod", "text": "!mute", "badges": mod},
            {"t": 200.5, "user": "erin", "text": "are you there?"},
            {"t": 400.0, "user": "mod", "text": "!unmute", "badges": mod},
            {"t": 400.5, "user": "frank", "text": "!ask what is your favourite planet?"},
        ],
    )
    cfg = load_config(
        overrides={
            "plugins": {"enabled": ["slowpoke", "commands", "thanks", "hello"], "folder": str(d), "timeout_s": 0.2},
            "persona_folders": [str(personas)],
            # Fast mode keeps live triage: with a slow CPU nothing may go stale before it is answered.
            "director": {"queue_size": 64, "max_age_s": 3600.0, "busy_max_age_s": 0.0},
        }
    )
    eng = Engine(cfg, engine.persona, engine.paths, engine.llm, engine.asr, engine.tts, engine.vad, engine.canary)
    session, _ = run_rehearsal(eng, load_inputs(chat, None), d / "out", fast=True)
    yield session
    engine.asr.prompt, engine.asr.names = engine.persona.asr_prompt, [engine.persona.name, engine.persona.streamer_name]


def _turns(session):
    return [(r.kind, r.user, r.input_text, r.reply_text) for r in session.recorder.finished()]


def test_hanging_plugin_is_disabled_and_the_stream_goes_on(plugin_session):
    assert "slowpoke" in plugin_session.plugins.disabled
    answered = {u for k, u, _, _ in _turns(plugin_session) if k == "chat"}
    assert {"alice", "carol", "dave", "frank"} <= answered


def test_raid_is_thanked_and_commands_answer(plugin_session):
    lines = [reply for k, _, _, reply in _turns(plugin_session) if k == "line"]
    assert "Welcome, raiders! Thank you for the raid, bigstreamer!" in lines
    assert "Hello, bob! Welcome to the stream." in lines
    assert "Nova here now!" in lines and "I'm back!" in lines
    assert any(line.startswith("I don't know a persona called /") for line in lines)  # paths are refused
    # "!ask" queues the question itself as chat.
    assert ("chat", "frank", "what is your favourite planet?") in [t[:3] for t in _turns(plugin_session)]


def test_viewers_cannot_switch_persona_or_mute(plugin_session):
    turns = _turns(plugin_session)
    assert not any("!persona" in text or "!mute" in text for _, _, text, _ in turns)  # commands never reach the LLM
    carol = next(t for t in turns if t[1] == "carol")
    assert carol[3]  # answered: the troll's !mute did nothing


def test_moderator_switches_persona_and_mutes(plugin_session):
    assert plugin_session.persona.name == "Nova"
    dropped = [(d.user, d.reason) for d in plugin_session.recorder.dropped]
    assert ("erin", "muted") in dropped
    assert "erin" not in {t[1] for t in _turns(plugin_session)}


def test_the_personas_own_voice_settings_are_used(tmp_path, engine):
    from vtuber.models import bundled_voice

    p = tmp_path / "slow.yaml"
    p.write_text(
        "name: Slow\ndescription: d\nspeaking_style: s\ngreeting: Hi.\n"
        f"voice: {{model: {bundled_voice()}, length_scale: 1.6}}\n",
        encoding="utf-8",
    )
    slow = Engine.load(load_config(), load_persona(str(p)))
    assert slow.tts.syn_config.length_scale == 1.6
    text = "Hello there, welcome to the stream."
    # A slower voice: the same sentence takes clearly longer to say.
    assert len(slow.tts.synthesize(text)) > 1.3 * len(engine.tts.synthesize(text))
    slow.close()


def test_a_persona_voice_that_does_not_exist_is_one_line(tmp_path, capsys):
    p = tmp_path / "novoice.yaml"
    p.write_text(
        "name: Mute\ndescription: d\nspeaking_style: s\ngreeting: Hi.\nvoice: {model: nowhere.onnx}\n", encoding="utf-8"
    )
    chat = jsonl(tmp_path / "c.jsonl", [{"t": 0.1, "text": "hi"}])
    rc = main(["rehearse", "--persona", str(p), "--chat", str(chat), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "voice.model" in err[0] and "not found" in err[0]
    assert not (tmp_path / "o").exists()
