"""Outputs: observers of the event stream (console, recorder/WAV timeline, speaker; later overlay, chat, VTube Studio).

An output is any callable taking one event; it must return quickly (hand slow work to its own thread).
"""

from vtuber.outputs.console import ConsoleOutput
from vtuber.outputs.recorder import Recorder, TurnRecord

__all__ = ["ConsoleOutput", "Recorder", "TurnRecord"]
