"""Shared fixtures: the real bundled models, loaded once per test session."""

from __future__ import annotations

import re

import numpy as np
import pytest

from vtuber.audio import HEARING_RATE, resample
from vtuber.config import load_config
from vtuber.mind.persona import load_persona


@pytest.fixture(scope="session")
def engine():
    from vtuber.pipeline import Engine

    eng = Engine.load(load_config(), load_persona("miko"))
    eng.warm()
    yield eng
    eng.close()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))


@pytest.fixture(scope="session")
def speak16k(engine):
    """Text -> 16 kHz float32 speech with the bundled Piper voice (for feeding the hearing stage)."""

    def speak(text: str) -> np.ndarray:
        pcm = engine.tts.synthesize(text)
        return resample(pcm.astype(np.float32) / 32768.0, engine.tts.sample_rate, HEARING_RATE)

    return speak
