"""Session's public face (what apps, outputs and controls use) and its routing table,
on a real Session with a scripted LLM and a tone voice."""

from __future__ import annotations

import asyncio

from stream_helpers import chat, scripted_session

from vtuber.controls import SessionControls
from vtuber.events import AudioFrame, FirstToken, Interrupt
from vtuber.mind.persona import load_persona


def test_wait_until_quiet_returns_once_the_reply_is_heard_to_the_end():
    session = scripted_session(["Hello there, nice to see you."], per_word=0.05)
    seen = {}

    class AskThenWait:
        async def run(self, clock, emit):
            emit(chat(clock.now(), "hi miko, how are you?"))
            seen["quiet_at_once"] = session.is_quiet()
            await session.wait_until_quiet()
            seen["finished"] = len(session.recorder.finished())
            seen["quiet"] = session.is_quiet()

    asyncio.run(session.run([AskThenWait()]))
    assert seen == {"quiet_at_once": False, "finished": 1, "quiet": True}
    report = session.report()
    assert report["balance"]["answered"] == 1 and report["counters"]["received_chat"] == 1


def test_routing_table_observes_replies_and_keeps_audio_frames_to_hearing():
    import numpy as np

    session = scripted_session(["unused"])
    seen: list[object] = []
    session.add_observer(seen.append)
    frames: list[object] = []
    session.hearing.feed = frames.append  # the stage that consumes frames
    frame = AudioFrame(np.zeros(160, np.float32), 0.0)
    first = FirstToken(turn_id=1, t=0.0)
    session.emit(frame)
    session.emit(first)
    assert frames == [frame] and seen == [first]  # frames only to hearing; a reply event only observed
    session.emit(Interrupt(0.0, "skip"))
    assert isinstance(seen[-1], Interrupt)


class FakeSession:
    """Only what `SessionControls` may use (the `Steerable` protocol): no pipeline."""

    def __init__(self, persona):
        self.persona = persona
        self.clock = type("C", (), {"now": staticmethod(lambda: 1.0)})()
        self.persona_folders: list = []
        self.calls: list[tuple] = []

    def emit(self, ev):
        self.calls.append(("emit", type(ev).__name__))

    def submit(self, msg):
        self.calls.append(("submit", msg.text))

    def promote(self, message_id):
        self.calls.append(("promote", message_id))

    def check_persona(self, persona):
        self.calls.append(("check", persona.name))

    def switch_persona(self, persona):
        self.calls.append(("switch", persona.name))
        self.persona = persona


def test_controls_work_through_the_small_protocol(tmp_path):
    from vtuber.paths import bundled

    text = (bundled("personas") / "miko.yaml").read_text(encoding="utf-8")
    (tmp_path / "kenji.yaml").write_text(text.replace("name: Miko", "name: Kenji", 1), encoding="utf-8")

    async def go():
        fake = FakeSession(load_persona("miko"))
        fake.persona_folders = [tmp_path]
        controls = SessionControls(fake)
        controls.bind(asyncio.get_running_loop())
        controls.skip()
        controls.answer_next("m1")
        controls.ask(chat(0.0, "what's up?"))
        name = controls.set_persona("kenji")
        await asyncio.sleep(0)
        controls.apply_pending()
        return fake, controls, name

    fake, controls, name = asyncio.run(go())
    assert fake.calls == [
        ("check", name),
        ("emit", "Interrupt"),
        ("promote", "m1"),
        ("submit", "what's up?"),
        ("switch", name),
    ]
    assert controls.persona_name == name != "miko"
