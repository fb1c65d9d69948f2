"""The live console for `vtuber run`: a status panel that stays at the bottom of the
terminal (rich `Live`), with the turn log scrolling above it.

The panel shows the sources and their state (mic level, dropped audio), what the
co-host is doing (listening, thinking, speaking) and the reply being spoken, the
queue, the counters and the last latencies (ready and heard).
"""

from __future__ import annotations

from collections import deque

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from vtuber.events import (
    ClausePlaying,
    PlaybackFinished,
    ReplyStarted,
    TurnCancelled,
    TurnDropped,
)
from vtuber.outputs.console import ConsoleOutput
from vtuber.outputs.recorder import Recorder


class LiveConsole:
    name = "console"

    def __init__(self, recorder: Recorder, persona_name: str, console: Console, session=None, sources=()):
        self.log = ConsoleOutput(recorder, persona_name, console)
        self.recorder = recorder
        self.console = console
        self.session = session
        self.sources = list(sources)
        self.persona_name = persona_name
        self.state = "listening"
        self.saying = ""
        self.latencies: deque[tuple[str, float | None, float | None]] = deque(maxlen=5)
        self.cancelled = 0
        self.dropped = 0
        self._live: Live | None = None

    def start(self) -> None:
        self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=True, get_renderable=self._render)
        self._live.start()

    def handle(self, ev: object) -> None:
        self.log(ev)
        if isinstance(ev, ReplyStarted):
            self.state = "thinking"
        elif isinstance(ev, ClausePlaying):
            self.state, self.saying = "speaking", ev.text
        elif isinstance(ev, PlaybackFinished):
            self.state, self.saying = "listening", ""
            r = self.recorder.records.get(ev.turn_id)
            if r is not None:
                st = r.stages()
                self.latencies.append((r.kind, st["input_to_first_audio"], st["input_to_first_heard"]))
        elif isinstance(ev, TurnCancelled):
            self.cancelled += 1
        elif isinstance(ev, TurnDropped):
            self.dropped += 1

    def _render(self):
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        for src in self.sources:
            name = type(src).__name__.replace("Source", "").lower()
            state = getattr(src, "state", "running")
            level = getattr(src, "level_db", None)
            extra = f"  level {level:5.1f} dBFS" if isinstance(level, float) else ""
            dropped = getattr(src, "dropped_frames", 0)
            extra += f"  [red]{dropped} frames dropped[/]" if dropped else ""
            counters = getattr(src, "counters", None)  # live chat sources: messages, events, moderation, ...
            if counters:
                extra += "  " + escape(", ".join(f"{k} {v}" for k, v in sorted(counters.items()) if v))
            grid.add_row(escape(name), f"{escape(str(state))}{extra}")
        saying = f": \"{escape(self.saying[-70:])}\"" if self.saying else ""
        grid.add_row(escape(self.persona_name), f"{self.state}{saying}")
        if self.session is not None:
            b = self.session.balance()
            dropped = sum(b["dropped"].values())
            top = ", ".join(f"{escape(k)} {v}" for k, v in sorted(b["dropped"].items(), key=lambda kv: -kv[1])[:3])
            grid.add_row(
                "queue",
                f"{b['waiting']} waiting | received {b['received']} | answered {b['answered']} | "
                f"merged {b['merged']} | dropped {dropped}{f' ({top})' if top else ''} | cut short {b['cut_short']}"
                + (" | [yellow]muted[/]" if self.session.muted else ""),
            )
        if self.latencies:
            ms = lambda x: "-" if x is None else f"{x * 1000:.0f}"  # noqa: E731
            grid.add_row("last (ms)", "  ".join(f"{k} {ms(a)}/{ms(h)}" for k, a, h in self.latencies) + "  (ready/heard)")
        return Panel(Group(grid), title="vtuber run (Ctrl-C to stop)", border_style="dim")

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
