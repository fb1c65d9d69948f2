"""`vtuber run`: live, with the streamer's mic, chat platforms, the speaker and chat replies."""

from __future__ import annotations

import argparse
import asyncio

from rich.markup import escape

from vtuber.commands import common
from vtuber.errors import UserError
from vtuber.sources.platforms import either, platform, platforms


def cmd_run(args: argparse.Namespace) -> int:
    """Live: the streamer's mic, chat (a script, Twitch, YouTube), the speaker, chat replies."""
    from vtuber.mind.persona import load_persona
    from vtuber.models import persona_voice, resolve, voice_sample_rate
    from vtuber.rehearsal import RehearsalInputs, claim_out_dir

    cfg = common.config_from(args)
    persona = load_persona(cfg.persona, cfg.persona_folders)
    if args.duration is not None and not 0 < args.duration <= 24 * 3600:
        raise UserError(f"--duration must be in (0, 86400] seconds, got {args.duration}")
    inputs = RehearsalInputs(live=True)
    chat = _open_platforms(args, cfg)  # every --PLATFORM given, in the registry's order
    for src in chat.values():  # a chat script is in the report as in a rehearsal
        if getattr(src, "path", "") and hasattr(src, "messages"):
            inputs.chat, inputs.chat_path = src.messages, src.path
    sources: list = list(chat.values())
    if args.mic is not None:
        from vtuber.sources.mic import MicSource

        sources.append(MicSource(None if args.mic == "default" else args.mic))
    chat_outputs = _chat_replies(args, cfg, chat)  # --reply-in-chat
    if not sources:
        flags = ["--mic [DEVICE]", *(p.hint for p in platforms())]
        raise UserError(f"nothing to listen to: give {either(flags)}")
    common.check_session_settings(cfg)
    paths = resolve(cfg)
    _voice, voice_config = persona_voice(cfg, paths, persona)
    rate = voice_sample_rate(voice_config)
    playback = None
    if args.speaker is not None:
        from vtuber.outputs.speaker import Speaker, SpeakerPlayback

        device = None if args.speaker == "default" else args.speaker
        Speaker(device, rate).close(drain=False)  # a wrong device fails now, not after loading
        playback = lambda clock, emit: SpeakerPlayback(clock, emit, device, rate)  # noqa: E731
    from vtuber.outputs.stream import stream_outputs

    extra = stream_outputs(cfg, args, lambda line: common.console.print(line, markup=False, soft_wrap=True))
    out = claim_out_dir(args.out, args.force) if args.out else None
    if out is not None:  # the report's plot library, loaded now: a stop must write it in time
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
    try:
        engine = common.load_engine(cfg, persona, args.quiet)
        session = asyncio.run(_live(engine, persona, sources, playback, args.duration, [*chat_outputs, *extra]))
        written = {}
        if out is not None:
            from vtuber.rehearsal import write_report

            inputs.speech_path = "(live mic)" if args.mic is not None else ""
            written = write_report(session, inputs, out, fast=False)
    finally:
        if out is not None:
            out.release()
    if session.stopped:
        common.console.print(f"[dim]stopped ({escape(session.stopped)})[/]")
    common.print_summary(session, written)
    for src in [*sources, *chat_outputs]:  # live chat: what came in and what was posted
        counters = getattr(src, "counters", None)
        if counters:
            name = getattr(src, "name", type(src).__name__)
            state = getattr(src, "state", "")
            common.console.print(f"{escape(name)}: " + escape(", ".join(f"{k} {v}" for k, v in sorted(counters.items()))) + (f" ({escape(state)})" if state else ""))
    return 0


def _open_platforms(args, cfg) -> dict:
    """A source for every chat platform named on the command line, by platform name."""
    opened = {}
    for p in platforms():
        target = getattr(args, _dest(p), None)
        if target is None or (target == "" and not p.optional_value):
            continue
        opened[p.name] = p.open(target, cfg)
    return opened


def _chat_replies(args, cfg, chat: dict) -> list:
    """Every opened platform checked before any model loads; the chat-reply output with --reply-in-chat."""
    repliers = {name: src for name, src in chat.items() if platform(name).can_reply}
    if args.reply_in_chat and not repliers:
        raise UserError(f"--reply-in-chat needs {either([p.hint for p in platforms() if p.can_reply])}")
    for src in chat.values():
        preflight = getattr(src, "preflight", None)
        if callable(preflight):
            preflight()
    if not args.reply_in_chat:
        return []
    from vtuber.outputs.chat_reply import ChatReplyOutput

    wait = min(p.reply_max_wait_s(cfg) for p in platforms() if p.can_reply and p.reply_max_wait_s)
    return [ChatReplyOutput(repliers, max_wait_s=wait)]


def _dest(p) -> str:
    return p.flag.lstrip("-").replace("-", "_")


async def _live(engine, persona, sources, playback, duration, outputs=()):
    import signal

    from vtuber.clock import Clock
    from vtuber.outputs.live_console import LiveConsole
    from vtuber.outputs.recorder import Recorder
    from vtuber.pipeline import Session

    recorder = Recorder()
    live = LiveConsole(recorder, persona.name, common.console, sources=sources)
    session = Session(engine, Clock(), [live, *outputs], recorder, playback=playback)
    live.session = session
    loop = asyncio.get_running_loop()
    handled = []
    for sig, why in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")):
        try:
            previous = signal.getsignal(sig)
            loop.add_signal_handler(sig, session.stop, why)
            handled.append((sig, previous))
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            pass
    if duration is not None:
        loop.call_later(duration, session.stop, f"--duration {duration:g} s")
    try:
        await session.run(sources)
    finally:
        for sig, previous in handled:
            loop.remove_signal_handler(sig)
            signal.signal(sig, previous)  # the report is written under the command's own handling
    return session


def add(sub) -> None:
    """Its parser, under `vtuber`."""
    from vtuber.outputs.stream import add_stream_options

    r = sub.add_parser(
        "run",
        help="go live: the streamer's mic and a chat source in, replies to the speaker",
        description=(
            "Run the co-host live: hear the streamer's mic (VAD, Whisper), take chat (Twitch, YouTube or a chat script), "
            "answer in persona and speak on a sound device. The streamer talking over the co-host stops her "
            "(barge-in). Ctrl-C or SIGTERM stops within 2 s; with --out the session report is written."
        ),
    )
    r.add_argument("--mic", nargs="?", const="default", metavar="DEVICE", help="the streamer's microphone (name, index or PulseAudio source; default input if none given)")
    r.add_argument("--speaker", nargs="?", const="default", metavar="DEVICE", help="where the co-host speaks (name or index; default output if none given)")
    for p in platforms():  # one flag per chat platform (vtuber/sources/platforms.py)
        value = {"nargs": "?", "const": ""} if p.optional_value else {}
        r.add_argument(p.flag, metavar=p.metavar, help=p.help, **value)
    r.add_argument("--reply-in-chat", action="store_true", help="also post each reply to a Twitch or YouTube message in that chat, as a reply (rate-limited; nothing for a cut reply)")
    r.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    r.add_argument("--out", metavar="DIR", help="write the session report here when it ends")
    r.add_argument("--force", action="store_true", help="write into an --out folder that holds other files (only our own files are replaced)")
    r.add_argument("-q", "--quiet", action="store_true", help="fewer loading messages")
    common.add_common(r)
    add_stream_options(r)
    r.set_defaults(func=cmd_run)
