"""Shared by the stream-output tests (overlay, dock, VTube Studio, OBS): a real Session on
the real clock with a scripted LLM and a tone "voice", so each case happens every time,
and headless Chromium (Debian's `chromium`, driven by Playwright) where a page is tested."""

from __future__ import annotations

import shutil
import threading
import time
import types

import numpy as np

from vtuber.clock import Clock
from vtuber.config import load_config
from vtuber.events import ChatMessage
from vtuber.mind.persona import load_persona
from vtuber.pipeline import Engine, Session

from conftest import require_system
from scripted_llm import ScriptedLLM

RATE = 22050


class ToneTTS:
    """`per_word` seconds of a voiced tone per word (loud and quiet halves, like speech)."""

    sample_rate = RATE

    def __init__(self, per_word=0.25):
        self.per_word = per_word

    def synthesize(self, text):
        n = int(self.per_word * RATE) * max(len(text.split()), 1)
        t = np.arange(n) / RATE
        envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3.0 * t)
        return (np.sin(2 * np.pi * 180 * t) * envelope * 12000).astype(np.int16)

    def warm(self):
        pass


class NoVAD:
    def reset(self):
        pass


def scripted_session(replies, outputs=(), per_word=0.25, max_chars=2000, openers=False):
    import dataclasses

    # Openers off unless asked for: these sessions check the outputs against the scripted words.
    cfg = load_config(
        overrides={"director": {"max_age_s": 600.0, "busy_max_age_s": 0.0}, "plugins": {"enabled": []}, "voice": {"openers": openers}}
    )
    # Several sentences a reply: these sessions test the outputs, not how long a reply is.
    persona = dataclasses.replace(load_persona("miko"), max_chars=max_chars, max_tokens=512, sentences=10)
    no_asr = types.SimpleNamespace(prompt="", names=[])  # chat only: nothing is transcribed (a persona switch sets these)
    engine = Engine(cfg, persona, None, ScriptedLLM(replies), no_asr, ToneTTS(per_word), NoVAD(), "CANARY-0000000000")
    return Session(engine, Clock(), outputs, plugins=[])


def chat(t, text, user="amy", **kw):
    return ChatMessage(user=user, text=text, t=t, **kw)


def wall_ms() -> float:
    return time.time() * 1000.0


CHROMIUM_HINT = "apt install chromium (and pip install playwright) turns the browser tests on"


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    require_system("Chromium (no chromium on PATH)", path is not None, CHROMIUM_HINT)
    try:
        import playwright  # noqa: F401
    except ImportError:
        require_system("Playwright's Python package (not installed)", False, CHROMIUM_HINT)
    return path


async def launch_chromium():
    """(playwright, browser): headless Debian Chromium, audio allowed without a click (as OBS does)."""
    from playwright.async_api import async_playwright

    path = chromium_path()
    pw = await async_playwright().start()
    browser = await pw.chromium.launch(
        executable_path=path,
        args=["--autoplay-policy=no-user-gesture-required", "--disable-gpu", "--no-first-run"],
    )
    return pw, browser
