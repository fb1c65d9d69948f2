"""Inputs: chat platforms (a script, Twitch, YouTube: see `platforms`) and the streamer's audio (WAV replay, mic).

A source is an object with `async run(clock, emit)`: it asks the clock to wake it at
each input's time and calls `emit(event)` synchronously, so the receiving stage
registers the work before the fast clock can move on.
"""

from vtuber.sources.chat_script import ChatScriptSource, parse_chat_script
from vtuber.sources.mic import MicSource
from vtuber.sources.wav_replay import WavReplaySource

__all__ = ["ChatScriptSource", "MicSource", "WavReplaySource", "parse_chat_script"]
