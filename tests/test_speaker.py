"""Reply audio to a real sound device: a PulseAudio null sink, recorded from its monitor (integration)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import pulse_null_sink, words
from vtuber.events import AudioChunk


@pytest.fixture(scope="module")
def null_sink():
    """A fresh null sink; the default device plays into it and records from its monitor."""
    with pulse_null_sink("vtuber") as name:
        old = {k: os.environ.get(k) for k in ("PULSE_SINK", "PULSE_SOURCE")}
        os.environ["PULSE_SINK"], os.environ["PULSE_SOURCE"] = name, f"{name}.monitor"
        yield name
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Capture:
    """Records 16 kHz mono from the default (PULSE_SOURCE) input through sounddevice."""

    def __init__(self):
        import sounddevice as sd

        self.blocks = []
        self.stream = sd.InputStream(device="pulse", samplerate=16000, channels=1, dtype="float32", callback=self._cb)

    def _cb(self, indata, frames, t, status):
        self.blocks.append(indata[:, 0].copy())

    def __enter__(self):
        self.stream.start()
        return self

    def __exit__(self, *exc):
        self.stream.stop()
        self.stream.close()

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)


def test_speaker_plays_reply_audio_that_whisper_hears(null_sink, engine):
    from vtuber.outputs.speaker import SpeakerOutput

    text = "Hello chat, welcome back to the stream."
    pcm = engine.tts.synthesize(text)
    with Capture() as cap:
        speaker = SpeakerOutput("pulse", engine.tts.sample_rate)
        # Two clauses, as the voice stage delivers them.
        half = len(pcm) // 2
        speaker(AudioChunk(1, 0, pcm[:half], engine.tts.sample_rate, 0.0))
        speaker(AudioChunk(1, 1, pcm[half:], engine.tts.sample_rate, 0.1))
        speaker.close(drain=True)
    recorded = cap.audio
    assert np.abs(recorded).max() > 0.05, "nothing reached the null sink's monitor"
    assert words(engine.asr.transcribe(recorded)) == words(text)


def test_rehearse_with_speaker_plays_the_replies(null_sink, engine, tmp_path, capsys):
    from vtuber.cli import main

    chat = tmp_path / "chat.jsonl"
    chat.write_text('{"t": 0.2, "user": "alice", "text": "hi Miko, do you like cats?"}\n', encoding="utf-8")
    with Capture() as cap:
        rc = main(["rehearse", "--chat", str(chat), "--fast", "--speaker", "pulse", "--out", str(tmp_path / "out"), "-q"])
    assert rc == 0, capsys.readouterr().err
    import json

    reply = json.loads((tmp_path / "out" / "timings.json").read_text())["turns"][0]["reply_text"]
    heard = set(words(engine.asr.transcribe(cap.audio)))
    said = [w for w in words(reply) if len(w) > 1] or words(reply)
    assert said, reply  # a reply is never empty (the greeting stands in for an empty generation)
    assert sum(w in heard for w in said) / len(said) >= 0.6, (reply, heard)
