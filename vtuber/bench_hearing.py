"""`vtuber bench --hearing`: what the multilingual Whisper costs, against the bundled tiny.en.

The same utterances go through each model the way live hearing runs them (one endpointed
utterance at a time, the short encoder window, the model's thread budget): English
speech made by the bundled Piper voice, Korean speech made by espeak-ng (robotic, so the
Korean error rate is a floor to compare models on, not what a person's voice gets).
Reported per model and language: transcription time per utterance (p50, p95, max), the
real-time factor, the load time, and the error rate (words for English, characters for
Korean).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np

from vtuber.audio import HEARING_RATE, resample

EN_LINES = [
    "Okay chat, one more try and then a break.",
    "That jump was so close, what should I do?",
    "Alright, let's check the map for a second.",
    "I think we need a better sword for this.",
    "Time for a tea break, what are you drinking?",
]
KO_LINES = [
    "안녕하세요 여러분",
    "오늘 게임 정말 재미있어요",
    "하나야 노래 불러줘",
    "잠깐 쉬었다가 다시 할게요",
    "이 보스 너무 어렵다",
]


def edit_distance(a: list[str] | str, b: list[str] | str) -> int:
    """Levenshtein distance between two sequences (characters or words)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def error_rate(reference: str, heard: str, language: str) -> float:
    """Word error rate for English, character error rate (spaces and punctuation out) otherwise."""
    if language == "en":
        ref, hyp = re.findall(r"[a-z0-9']+", reference.lower()), re.findall(r"[a-z0-9']+", heard.lower())
    else:
        ref, hyp = re.sub(r"[\W_]+", "", reference), re.sub(r"[\W_]+", "", heard)
    return edit_distance(ref, hyp) / max(len(ref), 1)


def korean_speech(text: str) -> np.ndarray:
    """espeak-ng's Korean voice saying `text`, as 16 kHz float32."""
    from vtuber.voice.espeak import EspeakTTS

    voice = EspeakTTS("ko")
    pcm = voice.synthesize(text)
    return resample(pcm.astype(np.float32) / 32768.0, voice.sample_rate, HEARING_RATE)


def _dist(values: list[float]) -> dict:
    v = sorted(values)
    return {"p50": v[len(v) // 2], "p95": v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))], "max": v[-1]}


def run_hearing(threads: int = 2, rounds: int = 2, progress=lambda msg: None) -> dict:
    """Time each model on the same utterances; `rounds` passes over them (the first one warms)."""
    from vtuber.hearing import WhisperASR
    from vtuber.models import bundled_asr, bundled_voice, multilingual_asr
    from vtuber.voice.tts import PiperTTS

    progress("making the speech (Piper for English, espeak-ng for Korean)")
    piper = PiperTTS(bundled_voice(), bundled_voice().with_name(bundled_voice().name + ".json"), threads=threads)
    speech = {
        "en": [resample(piper.synthesize(t).astype(np.float32) / 32768.0, piper.sample_rate, HEARING_RATE) for t in EN_LINES],
        "ko": [korean_speech(t) for t in KO_LINES],
    }
    texts = {"en": EN_LINES, "ko": KO_LINES}
    runs = [("whisper tiny.en", bundled_asr(), "en"), ("whisper base", multilingual_asr(progress), "en"), ("whisper base", multilingual_asr(progress), "ko")]
    results = []
    for name, folder, lang in runs:
        progress(f"{name}, {lang}: loading")
        t0 = time.perf_counter()
        asr = WhisperASR(folder, threads=threads, language=lang)
        load_s = time.perf_counter() - t0
        asr.warm()
        times, errors, heard = [], [], []
        twice = 0
        for r in range(rounds):
            for ref, audio in zip(texts[lang], speech[lang]):
                progress(f"{name}, {lang}: round {r + 1}/{rounds}")
                t0 = time.perf_counter()
                before = asr.redecoded
                text = asr.hear(audio).text
                elapsed = time.perf_counter() - t0
                if r == rounds - 1:
                    twice += asr.redecoded - before
                    times.append(elapsed)
                    errors.append(error_rate(ref, text, lang))
                    heard.append(text)
        audio_s = sum(len(a) for a in speech[lang]) / HEARING_RATE
        results.append(
            {
                "model": name,
                "language": lang,
                "load_s": round(load_s, 2),
                "asr_s": {k: round(v, 3) for k, v in _dist(times).items()},
                "rtf": round(sum(times) / audio_s, 3),
                "error_rate": round(sum(errors) / len(errors), 3),
                "error_kind": "WER" if lang == "en" else "CER",
                "utterance_s": round(audio_s / len(speech[lang]), 2),
                "decoded_twice": twice,  # a short-window transcript in doubt, decoded again on the full window
                "utterances": len(speech[lang]),
                "heard": heard,
            }
        )
        del asr
    return {"threads": threads, "results": results}


def table_lines(result: dict) -> list[str]:
    """The result as markdown table lines (for the console and the README)."""
    lines = [
        "| model | speech | transcription p50 / p95 | real-time factor | decoded twice | load | error rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["results"]:
        lines.append(
            f"| {r['model']} | {'English (Piper)' if r['language'] == 'en' else 'Korean (espeak-ng)'}, "
            f"{r['utterance_s']:.1f} s each | {r['asr_s']['p50']:.2f} / {r['asr_s']['p95']:.2f} s | {r['rtf']:.2f} "
            f"| {r['decoded_twice']} of {r['utterances']} | {r['load_s']:.1f} s | {r['error_kind']} {r['error_rate']:.0%} |"
        )
    return lines


FILES = ("hearing.json",)


def write(result: dict, out) -> Path:
    """hearing.json, published whole (see `vtuber.out_folder`)."""
    from vtuber.out_folder import OutFolder

    folder = out if isinstance(out, OutFolder) else OutFolder(out, FILES).claim()
    try:
        written = folder.publish(lambda stage: (stage / "hearing.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8"))
    finally:
        if folder is not out:
            folder.release()
    return written["hearing.json"]
