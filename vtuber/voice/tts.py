"""Text to speech with Piper (onnxruntime on the CPU)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from vtuber.errors import UserError

# Markdown, emoji and stage directions read badly aloud.
_UNSPEAKABLE = re.compile(r"[*_`#~<>\[\]{}|^]|[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F]")
_ACTION = re.compile(r"\*[^*]{1,60}\*|\([a-z][a-z ]{0,24}\)|\[[a-z][a-z ]{0,24}\]")  # *waves*, (laughs), [sighs]


# Piper makes a clause's audio in one pass and holds about 35 MiB for each second of it at
# the peak (a 25-word clause: +270 MiB): longer clauses are spoken in pieces of at most
# this many words, split before a joining word where there is one.
MAX_PIECE_WORDS = 10
_JOINERS = {"and", "but", "or", "so", "because", "which", "that", "when", "while", "with", "then", "if", "to"}


def pieces(text: str, most: int = MAX_PIECE_WORDS) -> list[str]:
    """The text in pieces of at most `most` words, each a natural place to breathe."""
    words = text.split()
    out: list[str] = []
    while len(words) > most:
        cut = most
        for i in range(most, most // 2, -1):  # the last joining word in the second half starts the next piece
            if words[i].lower().strip(",;:") in _JOINERS:
                cut = i
                break
        out.append(" ".join(words[:cut]))
        words = words[cut:]
    if words:
        out.append(" ".join(words))
    return out


def speakable(text: str) -> str:
    """The text as it should be spoken: no markdown, emoji or stage directions (*waves*, (laughs))."""
    text = _ACTION.sub(" ", text)
    text = _UNSPEAKABLE.sub(" ", text)
    return " ".join(text.split())


class PiperTTS:
    """A Piper voice with an explicit thread budget and spinning off (the cores are shared)."""

    def __init__(self, model: Path, config: Path, threads: int = 1, length_scale: float = 1.0, speaker_id: int = -1):
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig, SynthesisConfig

        try:
            cfg_dict = json.loads(Path(config).read_text(encoding="utf-8"))
            piper_config = PiperConfig.from_dict(cfg_dict)
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"{config}: not a valid Piper voice config ({e})") from None
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.log_severity_level = 3
        # No arena: a long clause would otherwise grow it by ~80 MiB for good. No memory pattern
        # and no pre-packed weights either: each clause's shapes differ, so the pattern is planned
        # anew and held beside the packed copy. With both off Piper's peak for a 10-word clause
        # went from ~215 to ~148 MiB over the process, at the same speed (measured).
        opts.enable_cpu_mem_arena = False
        opts.enable_mem_pattern = False
        opts.add_session_config_entry("session.disable_prepacking", "1")
        try:
            session = onnxruntime.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise UserError(f"{model}: onnxruntime could not load this Piper voice ({str(e).splitlines()[0]})") from None
        self.voice = PiperVoice(session=session, config=piper_config)
        self.sample_rate = int(piper_config.sample_rate)
        self.syn_config = SynthesisConfig(
            length_scale=length_scale,
            speaker_id=speaker_id if speaker_id >= 0 else None,
        )

    def synthesize(self, text: str) -> np.ndarray:
        """Blocking: int16 mono samples at `sample_rate` for `text` (empty array for no speech)."""
        text = speakable(text)
        if not text:
            return np.zeros(0, dtype=np.int16)
        parts = [
            chunk.audio_int16_array for piece in pieces(text) for chunk in self.voice.synthesize(piece, self.syn_config)
        ]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def warm(self) -> None:
        self.synthesize("Hello there.")
