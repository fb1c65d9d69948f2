"""Build audio/demo_speech.wav (the demo streamer) from audio/demo_speech.txt with the bundled Piper voice."""

from pathlib import Path

import numpy as np

from vtuber.audio import HEARING_RATE, resample, write_wav
from vtuber.models import bundled_voice
from vtuber.voice import PiperTTS

HERE = Path(__file__).resolve().parent


def main() -> None:
    voice = bundled_voice()
    # A slightly slower voice than the co-host's, so the two are easy to tell apart.
    tts = PiperTTS(voice, voice.with_name(voice.name + ".json"), threads=2, length_scale=1.1)
    lines = []
    for raw in (HERE / "demo_speech.txt").read_text().splitlines():
        if raw.strip() and not raw.startswith("#"):
            start, text = raw.split("\t", 1)
            lines.append((float(start), text))
    clips = [(start, resample(tts.synthesize(text).astype(np.float32) / 32768, tts.sample_rate, HEARING_RATE)) for start, text in lines]
    end = max(start + len(c) / HEARING_RATE for start, c in clips) + 1.0
    track = np.zeros(int(end * HEARING_RATE), dtype=np.float32)
    for start, c in clips:
        i = int(start * HEARING_RATE)
        track[i : i + len(c)] += c * 0.8
    write_wav(HERE / "demo_speech.wav", track, HEARING_RATE)
    print(f"wrote {HERE / 'demo_speech.wav'} ({end:.1f} s)")


if __name__ == "__main__":
    main()
