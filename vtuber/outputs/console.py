"""Console output: each turn live, as it happens (who asked, the reply as it streams, latencies)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from vtuber.events import (
    ChatMessage,
    PlaybackFinished,
    ReplyClause,
    ReplyFinished,
    ReplyStarted,
    StreamEvent,
    TurnDropped,
    Utterance,
)
from vtuber.outputs.recorder import Recorder


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.0f}"


class ConsoleOutput:
    def __init__(self, recorder: Recorder, persona_name: str, console: Console | None = None):
        self.recorder = recorder
        self.name = persona_name
        self.console = console or Console(highlight=False)

    def __call__(self, ev: object) -> None:
        c = self.console
        if isinstance(ev, ChatMessage):
            extra = f" [yellow]({ev.bits} bits)[/]" if ev.bits else ""
            c.print(f"[dim]{ev.t:7.2f}s[/] [cyan]chat[/] [bold]{escape(ev.user)}[/]: {escape(ev.text)}{extra}")
        elif isinstance(ev, Utterance):
            c.print(
                f"[dim]{ev.t:7.2f}s[/] [magenta]heard[/] streamer: \"{escape(ev.text)}\" "
                f"[dim](endpoint {_ms(ev.endpoint_s)} ms, asr {_ms(ev.asr_s)} ms)[/]"
            )
        elif isinstance(ev, StreamEvent):
            amount = f" ({ev.amount})" if ev.amount else ""
            c.print(f"[dim]{ev.t:7.2f}s[/] [yellow]{escape(ev.kind)}[/] from [bold]{escape(ev.user)}[/]{amount}")
        elif isinstance(ev, TurnDropped):
            c.print(f"[dim]{ev.t:7.2f}s dropped ({ev.reason}) {escape(ev.user)}: {escape(ev.text[:60])}[/]")
        elif isinstance(ev, ReplyStarted):
            who = {"speech": "streamer", "line": f"({ev.turn.user or 'a plugin'})"}.get(ev.turn.kind, ev.turn.user)
            c.print(f"[dim]{ev.t:7.2f}s[/] [green]{escape(self.name)}[/] answers {escape(who)}:")
        elif isinstance(ev, ReplyClause):
            c.print(f"          [green]>[/] {escape(ev.text)}")
        elif isinstance(ev, ReplyFinished):
            r = self.recorder.records.get(ev.turn_id)
            if r is None:
                return
            s = r.stages()
            head = {"speech": "speech end", "line": "line"}.get(r.kind, "chat")
            parts = [f"[bold]{head} -> first audio {_ms(s['input_to_first_audio'])} ms[/]"]
            if r.kind == "speech":
                parts.append(f"endpoint {_ms(s['endpoint'])}, asr {_ms(s['asr'])}")
            parts.append(
                f"queue {_ms(s['queue_wait'])}, 1st token {_ms(s['llm_first_token'])}, "
                f"1st clause {_ms(s['first_clause'])}, tts {_ms(s['tts_first_chunk'])} ms"
            )
            tps = s["tokens_per_s"]
            parts.append(f"{r.tokens} tok" + (f" @ {tps:.0f}/s" if tps else ""))
            if r.gaps:
                parts.append(f"[red]{r.gaps} gap(s) {r.gap_s * 1000:.0f} ms[/]")
            c.print("          [dim]" + " | ".join(parts) + "[/]")
        elif isinstance(ev, PlaybackFinished):
            r = self.recorder.records.get(ev.turn_id)
            if r is None:
                return
            heard = r.stages()["input_to_first_heard"]
            if ev.cut_short:
                c.print(
                    f"[dim]{ev.t:7.2f}s[/] [red]cut short ({escape(ev.reason)})[/] "
                    f"after \"{escape(ev.heard_text[-60:]) or '(nothing heard)'}\""
                )
            elif heard is not None:
                c.print(f"          [dim]heard {_ms(heard)} ms after the input, finished at {ev.t:.2f}s[/]")
