"""`vtuber models` and `vtuber models check`: which models and servers a config uses, and whether they work.

`inventory` lists every part (LLM, ASR, TTS) the config uses (a file, a bundled package
or a server) and what else is available (the bundled models, the local fallbacks), with
sizes. `check` loads or connects to each one the config uses and runs one short
generation, transcription and synthesis, timing the first token or the first audio.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vtuber.config import Config
from vtuber.errors import UserError

CHECK_LINE = "Miko, what do you think about this boss?"
CHECK_PROMPT = [
    {"role": "system", "content": "You are Miko, a cheerful co-host on a game stream. Answer in one short sentence."},
    {"role": "user", "content": "alice: hi Miko, how are you today?"},
]


@dataclass
class Row:
    part: str  # LLM, ASR, TTS
    use: str  # in use | fallback | available
    what: str  # a file, a folder or a server URL
    source: str  # config, persona, bundled, server
    size: int | None = None  # bytes on disk (None: a server)


def _size(p: Path) -> int | None:
    try:
        if p.is_dir():
            return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        return p.stat().st_size
    except OSError:
        return None


def human(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def inventory(cfg: Config, persona) -> list[Row]:
    from vtuber.models import bundled_asr, bundled_llm, bundled_voice, persona_voice, resolve, with_persona_model

    own_llm = bool(persona.model.llm and not cfg.models.llm)
    cfg = with_persona_model(cfg, persona)
    paths = resolve(cfg)
    rows: list[Row] = []
    llm_source = "persona" if own_llm else "config"
    if paths.llm_url:
        name = f" (model {cfg.llm_server.model})" if cfg.llm_server.model else ""
        rows.append(Row("LLM", "in use", paths.llm_url + name, "server"))
        if cfg.llm_server.fallback:
            rows.append(Row("LLM", "fallback", str(paths.llm), "config" if cfg.llm_server.fallback_model else "bundled", _size(paths.llm)))
    else:
        rows.append(Row("LLM", "in use", str(paths.llm), llm_source if cfg.models.llm else "bundled", _size(paths.llm)))
    if paths.asr_url:
        rows.append(Row("ASR", "in use", paths.asr_url, "server"))
        rows.append(Row("ASR", "fallback", str(paths.asr), "bundled", _size(paths.asr)))
    else:
        rows.append(Row("ASR", "in use", str(paths.asr), "config" if cfg.models.asr else "bundled", _size(paths.asr)))
    voice, _ = persona_voice(cfg, paths, persona)
    voice_source = "persona" if persona.voice.model and voice != paths.voice else ("config" if cfg.models.voice and not paths.voice_url else "bundled")
    if paths.voice_url:
        rows.append(Row("TTS", "in use", paths.voice_url, "server"))
        rows.append(Row("TTS", "fallback", str(voice), voice_source, _size(voice)))
    else:
        rows.append(Row("TTS", "in use", str(voice), voice_source, _size(voice)))
    listed = {r.what for r in rows}
    for part, find in (("LLM", bundled_llm), ("ASR", bundled_asr), ("TTS", bundled_voice)):
        try:
            p = find()
        except UserError:
            continue
        if str(p) not in listed:
            rows.append(Row(part, "available", str(p), "bundled", _size(p)))
    return rows


@dataclass
class Check:
    part: str
    what: str
    ok: bool
    first_s: float | None  # time to the first token (LLM) or the first audio (TTS), or the transcript (ASR)
    sample: str  # what it said or heard, or the one-line error


def _time(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _llm_check(backend, what: str, part: str) -> Check:
    def first():
        t0 = time.perf_counter()
        first_s, pieces = None, []
        backend.cancel.clear()
        for piece in backend.stream(CHECK_PROMPT, 24):
            if first_s is None:
                first_s = time.perf_counter() - t0
            pieces.append(piece)
        return first_s, "".join(pieces)

    first_s, text = backend.call(first) if hasattr(backend, "call") else first()
    return Check(part, what, bool(text.strip()), first_s, " ".join(text.split())[:60] or "(no text)")


def check(cfg: Config, persona, step=lambda s: None) -> list[Check]:
    """Load or connect to every part the config uses and run each once (see the module's note)."""
    from vtuber.audio import HEARING_RATE, resample
    from vtuber.hearing.wyoming_asr import WyomingASR
    from vtuber.mind.remote import FallbackBackend, RemoteError
    from vtuber.pipeline import Engine
    from vtuber.voice.wyoming_tts import WyomingTTS
    from vtuber.wyoming_client import ServiceError

    engine = Engine.load(cfg, persona, step)
    results: list[Check] = []
    try:
        llm = engine.llm
        if isinstance(llm, FallbackBackend):
            step(f"LLM server {llm.remote.url}")
            try:
                llm.remote.check()
                results.append(_llm_check(llm.remote, llm.remote.url, "LLM (server)"))
            except RemoteError as e:
                results.append(Check("LLM (server)", llm.remote.url, False, None, str(e)))
            if llm.local is not None:
                step("local LLM (fallback)")
                results.append(_llm_check(llm.local, str(engine.paths.llm), "LLM (fallback)"))
        else:
            step("local LLM")
            results.append(_llm_check(llm, str(engine.paths.llm), "LLM"))

        tts = engine.tts.voices.get("en", engine.tts.voices[engine.tts.main]) if hasattr(engine.tts, "voices") else engine.tts  # the check line is English
        local_tts = tts.local if isinstance(tts, WyomingTTS) else tts
        ttss = [("TTS (server)", tts.service.url, tts._remote), ("TTS (fallback)", "Piper (local)", local_tts.synthesize)] if isinstance(tts, WyomingTTS) else [("TTS", "Piper (local)", local_tts.synthesize)]
        for part, what, fn in ttss:
            step(part)
            try:
                audio, took = _time(lambda: fn("Hello chat, nice to see you."))
                results.append(Check(part, what, len(audio) > 0, took, f"{len(audio) / local_tts.sample_rate:.1f} s of audio"))
            except ServiceError as e:
                results.append(Check(part, what, False, None, str(e)))

        pcm = local_tts.synthesize(CHECK_LINE)
        clip = resample(pcm.astype(np.float32) / 32768, local_tts.sample_rate, HEARING_RATE)
        asrs = [("ASR (server)", engine.asr.service.url, engine.asr._remote), ("ASR (fallback)", "Whisper (local)", engine.asr.local.transcribe)] if isinstance(engine.asr, WyomingASR) else [("ASR", "Whisper (local)", engine.asr.transcribe)]
        for part, what, fn in asrs:
            step(part)
            try:
                text, took = _time(lambda: fn(clip))
                results.append(Check(part, what, bool(text.strip()), took, text.strip()[:60] or "(nothing heard)"))
            except ServiceError as e:
                results.append(Check(part, what, False, None, str(e)))
    finally:
        engine.close()
    return results
