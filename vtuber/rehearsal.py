"""Offline rehearsal: a chat script and a recording of the streamer through the real pipeline.

Writes to the output folder only once the whole run succeeded (files are staged
in it and moved into place at the end, see `vtuber.out_folder`), so a failed run
never leaves half a report:
- `replies.wav`: every reply on one timeline aligned with the input times
- `transcript.md`: who said what, and what the co-host answered
- `timings.json`: per-turn stage latencies and session counters
- `timeline.png`: when each input arrived and when each reply played
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vtuber.audio import read_wav_16k_mono
from vtuber.clock import Clock, FastClock
from vtuber.errors import UserError
from vtuber.models import parts_report
from vtuber.events import ChatMessage
from vtuber.out_folder import OutFolder
from vtuber.mind.quality import quality_counts
from vtuber.outputs.recorder import Recorder, TurnRecord
from vtuber.paths import bundled
from vtuber.pipeline import Engine, Session
from vtuber.sources import ChatScriptSource, WavReplaySource, parse_chat_script

DEMO_CHAT = bundled("audio") / "demo_chat.jsonl"
DEMO_SPEECH = bundled("audio") / "demo_speech.wav"
REPORT_FILES = ("replies.wav", "transcript.md", "timings.json", "timeline.png")
MAX_SESSION_S = 24 * 3600.0


@dataclass
class RehearsalInputs:
    chat: list[ChatMessage] = field(default_factory=list)
    speech: np.ndarray | None = None
    speech_at: float = 0.0
    chat_path: str = ""
    speech_path: str = ""
    live: bool = False  # a `vtuber run` session, not a rehearsal

    @property
    def duration(self) -> float:
        end = max([m.t for m in self.chat], default=0.0)
        if self.speech is not None:
            end = max(end, self.speech_at + len(self.speech) / 16000)
        return end


def claim_out_dir(out: str | Path, force: bool = False) -> OutFolder:
    """The output folder, checked, created and locked before any work (see `OutFolder`)."""
    return OutFolder(out, REPORT_FILES, force=force).claim()


def load_inputs(chat: str | Path | None, speech: str | Path | None, speech_at: float = 0.0) -> RehearsalInputs:
    """Parse and validate every input before any model loads or any file is written."""
    if chat is None and speech is None:
        raise UserError("nothing to rehearse: give --chat FILE and/or --speech FILE")
    inputs = RehearsalInputs(speech_at=speech_at)
    if chat is not None:
        inputs.chat = parse_chat_script(chat)
        inputs.chat_path = str(chat)
    if speech is not None:
        inputs.speech = read_wav_16k_mono(speech)
        inputs.speech_path = str(speech)
    if not math.isfinite(speech_at) or not 0 <= speech_at <= MAX_SESSION_S:
        raise UserError(f"--speech-at must be a number of seconds in [0, {MAX_SESSION_S}], got {speech_at}")
    return inputs


def sources_for(inputs: RehearsalInputs) -> list:
    sources: list = []
    if inputs.chat:
        sources.append(ChatScriptSource(inputs.chat))
    if inputs.speech is not None:
        sources.append(WavReplaySource(inputs.speech, start=inputs.speech_at))
    return sources


async def rehearse(engine: Engine, inputs: RehearsalInputs, fast: bool, outputs=(), recorder: Recorder | None = None) -> Session:
    clock = FastClock() if fast else Clock()
    session = Session(engine, clock, outputs, recorder)
    await session.run(sources_for(inputs))
    return session


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.asarray(values), q))


def summary(records: list[TurnRecord]) -> dict:
    """p50 / p95 / max of each stage over the turns."""
    out: dict[str, dict] = {}
    keys = records[0].stages().keys() if records else []
    for kind in ("chat", "speech"):
        rs = [r for r in records if r.kind == kind]
        for k in keys:
            vals = [v for r in rs if (v := r.stages()[k]) is not None]
            if vals:
                out.setdefault(kind, {})[k] = {
                    "n": len(vals),
                    "p50": _pct(vals, 50),
                    "p95": _pct(vals, 95),
                    "max": max(vals),
                    "mean": statistics.fmean(vals),
                }
    return out


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md(text: str) -> str:
    """Text from chat (or a model) as inert Markdown: one line, no markup, no HTML."""
    text = " ".join(text.split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def transcript_md(session: Session, inputs: RehearsalInputs, fast: bool) -> str:
    persona = session.engine.persona
    rec = session.recorder
    lines = [
        f"# {'Live session' if inputs.live else 'Rehearsal'} with {persona.name}",
        "",
        f"- chat script: `{inputs.chat_path or '-'}` ({len(inputs.chat)} messages)",
        f"- streamer speech: `{inputs.speech_path or '-'}`",
        f"- clock: {'fast (quiet time skipped)' if fast else 'real time'}",
        "",
        "| time | from | said | reply | first audio ready | heard |",
        "|---:|---|---|---|---:|---:|",
    ]
    for r in rec.finished():
        who = "streamer (heard)" if r.kind == "speech" else r.user
        st = r.stages()
        ms = lambda x: "-" if x is None else f"{x * 1000:.0f} ms"  # noqa: E731
        reply = md(r.reply_text)
        if r.cut_short:
            reply = f"{md(r.heard_text) or '(nothing heard)'} … *(cut short: {md(r.cancel_reason)})*"
        lines.append(
            f"| {r.t_input:.2f}s | {md(who)} | {md(r.input_text)} | {reply} | "
            f"{ms(st['input_to_first_audio'])} | {ms(st['input_to_first_heard'])} |"
        )
    if rec.dropped:
        lines += ["", "## Not answered", ""]
        lines += [f"- {d.t:.2f}s {md(d.user)}: {md(d.text)} ({md(d.reason)})" for d in rec.dropped]
    if session.all_blocked():
        lines += ["", "## Blocked before speech", ""]
        lines += [f"- turn {tid}: {md(reason)}" for tid, _clause, reason in session.all_blocked()]
    q = quality_counts(rec.finished())
    if q["replies"]:
        lines += [
            "",
            "## Reply quality",
            "",
            f"{q['replies']} replies; echo {q['echo']}, parrot {q['parrot']}, role play {q['roleplay']}, "
            f"boilerplate {q['boilerplate']}, empty {q['empty']}, cut {q['cut']}; first clauses not spoken: "
            f"{q['suppressed_first_clauses']}; {q['words_mean']} words ({q['speech_s_mean']} s of speech) "
            f"on average, at most {q['words_max']} words ({q['speech_s_max']} s).",
        ]
    if session_device_errors(session):
        lines += ["", "## Sound devices", ""]
        lines += [f"- {md(line)}" for line in session_device_errors(session)]
    if session.names_replaced:
        lines += ["", f"User names replaced by a neutral one (the gate would block them): {session.names_replaced}"]
    return "\n".join(lines) + "\n"


def plot_timeline(records: list[TurnRecord], path: Path, title: str) -> None:
    """Inputs (dots) and replies (bars: waiting, then playing) on the session time axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.45 * max(len(records), 1)))
    for i, r in enumerate(records):
        y = len(records) - i
        color = "tab:purple" if r.kind == "speech" else "tab:blue"
        if r.t_speech_start is not None:
            ax.barh(y, r.t_input - r.t_speech_start, left=r.t_speech_start, color="tab:purple", alpha=0.25, height=0.5)
        ax.plot([r.t_input], [y], "o", color=color)
        if r.t_first_audio is not None:
            ax.barh(y, r.t_first_audio - r.t_input, left=r.t_input, color="tab:orange", height=0.5)
        if r.t_first_heard is not None and r.t_first_audio is not None and r.t_first_heard > r.t_first_audio:
            ax.barh(y, r.t_first_heard - r.t_first_audio, left=r.t_first_audio, color="tab:red", alpha=0.35, height=0.5)
        if r.play_start is not None and r.play_end is not None:
            ax.barh(y, r.play_end - r.play_start, left=r.play_start, color="tab:gray" if r.cut_short else "tab:green", height=0.5)
            ready = "-" if r.t_first_audio is None else f"{(r.t_first_audio - r.t_input) * 1000:.0f}"
            heard = "-" if r.t_first_heard is None else f"{(r.t_first_heard - r.t_input) * 1000:.0f}"
            cut = " (cut short)" if r.cut_short else ""
            ax.text(r.play_end + 0.1, y, f"ready {ready} / heard {heard} ms{cut}", va="center", fontsize=7)
    ax.set_yticks(range(len(records), 0, -1))
    ax.set_yticklabels([("streamer" if r.kind == "speech" else r.user)[:14] for r in records], fontsize=8, family=chart_fonts())
    ax.set_xlabel("session time (s)")
    ax.set_title(title, fontsize=10, loc="right", pad=16, family=chart_fonts())  # above the legend; her name may be Hangul
    from matplotlib.patches import Patch

    ax.legend(
        handles=[
            Patch(color="tab:purple", alpha=0.25, label="streamer speaking"),
            Patch(color="tab:orange", label="input -> first audio ready"),
            Patch(color="tab:red", alpha=0.35, label="waiting for the speaker"),
            Patch(color="tab:green", label="reply playing"),
            Patch(color="tab:gray", label="cut short"),
        ],
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncol=5,
        frameon=False,
        fontsize=7,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chart_fonts() -> list[str]:
    """Matplotlib's default face, then installed Hangul/CJK faces for names in those scripts."""
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *(f for f in ("Noto Sans CJK KR", "Noto Sans CJK JP", "Noto Sans CJK SC") if f in have)]


def write_report(session: Session, inputs: RehearsalInputs, out: OutFolder | Path, fast: bool) -> dict[str, Path]:
    """Every report file at once: staged, then moved in (the folder never holds half a file).

    A file that cannot be written (a full disk, a file-size limit) is left out, the others
    are kept, and then one `UserError` names what was lost and what was kept."""
    folder = out if isinstance(out, OutFolder) else claim_out_dir(out)
    rec: Recorder = session.recorder
    records = rec.finished()
    failed: list[str] = []

    def timings() -> str:
        report = session.report()  # counters, balance, hearing, cancelled, output drops, blocked, names, errors
        report["errors"] = [*report["errors"], *rec.errors, *([session.memory.failed] if session.memory.failed else [])]
        return json.dumps(
            {
                "persona": session.engine.persona.name,
                "clock": "fast" if fast else "real_time",
                "turns": [r.to_json() for r in records],
                "summary": summary(records),
                **report,
                "devices": session_device_errors(session),
                "dropped": [d.__dict__ for d in rec.dropped],
                "quality": quality_counts(records),
                "models": parts_report(session.engine),  # which model or server did each part
                "sample_rate": rec.sample_rate,
            },
            indent=2,
        )

    def write(stage: Path) -> None:
        parts = (
            ("transcript.md", lambda p: p.write_text(transcript_md(session, inputs, fast), encoding="utf-8")),
            ("timings.json", lambda p: p.write_text(timings(), encoding="utf-8")),
            ("replies.wav", lambda p: rec.save_audio(p, min_duration=inputs.duration)),
            ("timeline.png", lambda p: plot_timeline(records, p, f"rehearsal with {session.engine.persona.name}")),
        )
        for name, make in parts:  # the small, precious files first
            try:
                make(stage / name)
            except OSError as e:
                failed.append(f"{name} ({e.strerror or e})")
                (stage / name).unlink(missing_ok=True)
        if rec.track.why:  # the audio stopped being written during the session: what was written is kept
            failed.append(f"all of replies.wav ({rec.track.why}; the first {rec.track.frames / rec.sample_rate:.0f} s kept)")

    try:
        written = folder.publish(write)
    finally:
        rec.track.close()
        if folder is not out:
            folder.release()
    if failed:
        kept = ", ".join(written) or "nothing"
        raise UserError(f"{folder.path}: could not write {', '.join(failed)}; kept {kept}")
    return written


def report_size_note(folder: Path, rate: int, duration: float | None) -> list[tuple[str, bool]]:
    """What a live run says up front about its report: the reply audio grows with the
    session (written as it goes); a warning when the disk cannot hold the session asked
    for (four hours when no --duration). (line, is_warning) pairs."""
    import shutil

    from vtuber.outputs.track import bytes_per_hour

    per_hour = bytes_per_hour(rate)
    free = shutil.disk_usage(folder).free
    lines = [
        (
            f"report: {folder}/replies.wav is written as the session goes, about {per_hour / 1e6:.0f} MB per hour "
            f"({rate} Hz 16-bit mono); {free / 1e9:.1f} GB free there",
            False,
        )
    ]
    if free < per_hour * (duration or 4 * 3600) / 3600:
        lines.append(
            (f"the disk there holds about {free / per_hour:.1f} hours of reply audio; the rest of the report is kept if it fills", True)
        )
    return lines


def session_device_errors(session: Session) -> list[str]:
    """Sound device errors seen during the session (unplugged, lost, back), oldest first."""
    return list(getattr(session, "device_errors", []))


def run_rehearsal(
    engine: Engine, inputs: RehearsalInputs, out: OutFolder | Path, fast: bool, outputs=(), recorder: Recorder | None = None
) -> tuple[Session, dict]:
    session = asyncio.run(rehearse(engine, inputs, fast, outputs, recorder))
    return session, write_report(session, inputs, out, fast)
