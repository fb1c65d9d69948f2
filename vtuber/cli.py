"""The `vtuber` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from vtuber import __version__
from vtuber.errors import UserError, quote

console = Console(highlight=False)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="settings TOML file (see docs/config.md)")
    p.add_argument("--persona", metavar="NAME|FILE", help="persona name (see `vtuber persona list`) or a YAML file (default: miko)")
    p.add_argument("--llm", metavar="GGUF", help="LLM model file (default: bundled SmolLM2-135M-Instruct Q4_1)")
    p.add_argument("--asr", metavar="DIR", help="faster-whisper model folder (default: bundled Whisper tiny.en)")
    p.add_argument("--voice", metavar="ONNX", help="Piper voice .onnx (default: bundled en_US-joe-medium)")


def _config_from(args: argparse.Namespace):
    from vtuber.config import load_config

    overrides: dict = {"models": {}}
    if getattr(args, "persona", None):
        overrides["persona"] = args.persona
    for key in ("llm", "asr", "voice"):
        if getattr(args, key, None):
            overrides["models"][key] = getattr(args, key)
    return load_config(getattr(args, "config", None), overrides)


def _check_session_settings(cfg) -> None:
    """Unknown plugin names and an unreadable banned-words file fail before any model loads."""
    from vtuber.plugins import load_plugins
    from vtuber.safety import default_banned_words

    folder = Path(cfg.plugins.folder) if cfg.plugins.folder else None
    load_plugins(cfg.plugins.enabled, folder)
    default_banned_words(cfg.safety.banned_words_file or None)


def _load_engine(cfg, persona, quiet: bool):
    from vtuber.pipeline import Engine

    with console.status("loading models", spinner="dots") as status:
        def step(msg: str) -> None:
            status.update(msg)
            if not quiet:
                console.print(f"[dim]{msg}[/]")

        engine = Engine.load(cfg, persona, step)
        engine.warm(step)
    return engine


def cmd_rehearse(args: argparse.Namespace) -> int:
    from vtuber.mind.persona import load_persona
    from vtuber.models import resolve
    from vtuber.rehearsal import DEMO_CHAT, DEMO_SPEECH, claim_out_dir, load_inputs

    cfg = _config_from(args)
    persona = load_persona(cfg.persona, cfg.persona_folders)
    chat, speech = args.chat, args.speech
    if chat is None and speech is None:
        chat, speech = DEMO_CHAT, DEMO_SPEECH
    inputs = load_inputs(chat, speech, args.speech_at)
    _check_session_settings(cfg)
    paths = resolve(cfg)  # every model file checked before anything loads
    with claim_out_dir(args.out, args.force) as out:
        return _rehearse(args, cfg, persona, inputs, paths, out)


def _rehearse(args, cfg, persona, inputs, paths, out) -> int:
    from vtuber.models import persona_voice, voice_sample_rate
    from vtuber.outputs.console import ConsoleOutput
    from vtuber.rehearsal import run_rehearsal

    voice, voice_config = persona_voice(cfg, paths, persona)
    from vtuber.outputs.stream import stream_outputs

    outputs = stream_outputs(cfg, args, lambda line: console.print(line, markup=False, soft_wrap=True), args.fast)
    speaker = None
    if args.speaker is not None:  # open the device first: a wrong device fails in a second, not after loading
        from vtuber.outputs.speaker import SpeakerOutput

        device = None if args.speaker == "default" else args.speaker
        speaker = SpeakerOutput(device, voice_sample_rate(voice_config))
        outputs.append(speaker)
    engine = _load_engine(cfg, persona, args.quiet)
    from vtuber.outputs.recorder import Recorder

    console.rule(f"rehearsal with {escape(persona.name)} ({'fast' if args.fast else 'real time'})")
    recorder = Recorder()
    outputs.insert(0, ConsoleOutput(recorder, persona.name, console))
    try:
        session, written = run_rehearsal(engine, inputs, out, args.fast, outputs, recorder)
    finally:
        if speaker is not None:
            speaker.close()
    _print_summary(session, written)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Live: the streamer's mic, chat (a script, Twitch, YouTube), the speaker, chat replies."""
    from vtuber.mind.persona import load_persona
    from vtuber.models import persona_voice, resolve, voice_sample_rate
    from vtuber.rehearsal import RehearsalInputs, claim_out_dir
    from vtuber.sources import ChatScriptSource, parse_chat_script

    cfg = _config_from(args)
    persona = load_persona(cfg.persona, cfg.persona_folders)
    if args.duration is not None and not 0 < args.duration <= 24 * 3600:
        raise UserError(f"--duration must be in (0, 86400] seconds, got {args.duration}")
    inputs = RehearsalInputs(live=True)
    sources: list = []
    if args.chat_script:
        inputs.chat, inputs.chat_path = parse_chat_script(args.chat_script), args.chat_script
        sources.append(ChatScriptSource(inputs.chat))
    if args.mic is not None:
        from vtuber.sources.mic import MicSource

        sources.append(MicSource(None if args.mic == "default" else args.mic))
    chat_outputs = _live_chat(args, cfg, sources)  # --twitch, --youtube, --reply-in-chat
    if not sources:
        raise UserError("nothing to listen to: give --mic [DEVICE], --chat-script FILE, --twitch CHANNEL and/or --youtube VIDEO")
    _check_session_settings(cfg)
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

    extra = stream_outputs(cfg, args, lambda line: console.print(line, markup=False, soft_wrap=True))
    out = claim_out_dir(args.out, args.force) if args.out else None
    if out is not None:  # the report's plot library, loaded now: a stop must write it in time
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
    try:
        engine = _load_engine(cfg, persona, args.quiet)
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
        console.print(f"[dim]stopped ({escape(session.stopped)})[/]")
    _print_summary(session, written)
    for src in [*sources, *chat_outputs]:  # live chat: what came in and what was posted
        counters = getattr(src, "counters", None)
        if counters:
            name = getattr(src, "name", type(src).__name__)
            state = getattr(src, "state", "")
            console.print(f"{escape(name)}: " + escape(", ".join(f"{k} {v}" for k, v in sorted(counters.items()))) + (f" ({escape(state)})" if state else ""))
    return 0


def _live_chat(args, cfg, sources: list) -> list:
    """Twitch and YouTube chat sources (added to `sources`) and the chat-reply output."""
    platforms = {}
    if args.twitch is not None:
        from vtuber.sources.twitch import TwitchSource, settings_from

        channel = args.twitch or cfg.twitch.channel
        if not channel:
            raise UserError("--twitch needs a channel name (or set [twitch] channel in the config)")
        platforms["twitch"] = TwitchSource(channel, settings_from(cfg.twitch))
    if args.youtube:
        from vtuber.sources.youtube import YouTubeSource

        platforms["youtube"] = YouTubeSource(args.youtube, cfg.youtube)
    if args.reply_in_chat and not platforms:
        raise UserError("--reply-in-chat needs --twitch CHANNEL and/or --youtube VIDEO")
    for platform in platforms.values():
        platform.preflight()
    sources.extend(platforms.values())
    if not args.reply_in_chat:
        return []
    from vtuber.outputs.chat_reply import ChatReplyOutput

    wait = min(cfg.twitch.reply_max_wait_s, cfg.youtube.reply_max_wait_s)
    return [ChatReplyOutput(platforms, max_wait_s=wait)]


async def _live(engine, persona, sources, playback, duration, outputs=()):
    import signal

    from vtuber.clock import Clock
    from vtuber.outputs.live_console import LiveConsole
    from vtuber.outputs.recorder import Recorder
    from vtuber.pipeline import Session

    recorder = Recorder()
    live = LiveConsole(recorder, persona.name, console, sources=sources)
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


def cmd_auth(args: argparse.Namespace) -> int:
    from vtuber.tokens import TokenStore, token_file

    cfg = _config_from(args)
    store = TokenStore()
    if args.platform == "twitch":
        import dataclasses

        from vtuber.sources.twitch import device_login, settings_from

        settings = settings_from(cfg.twitch)
        if args.client_id:
            settings = dataclasses.replace(settings, client_id=args.client_id)
        entry = asyncio.run(device_login(settings, store, lambda line: console.print(line, markup=False)))
        console.print(f"logged in to Twitch as {escape(entry['login'])}; token saved in {escape(str(token_file()))}")
        return 0
    from vtuber.sources.youtube import store_key

    store_key(store, lambda prompt: __import__("getpass").getpass(prompt))
    console.print(f"YouTube key saved in {escape(str(token_file()))}")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from vtuber.devices import devices_table

    console.print(devices_table())
    return 0


def _print_summary(session, written) -> None:
    from rich.table import Table

    from vtuber.rehearsal import summary

    records = session.recorder.finished()
    table = Table(title="latency (ms)", show_edge=False)
    table.add_column("turns")
    table.add_column("stage")
    for c in ("n", "p50", "p95", "max"):
        table.add_column(c, justify="right")
    for kind, stages in summary(records).items():
        for stage, s in stages.items():
            if stage == "tokens_per_s":
                table.add_row(kind, "tokens/s", str(s["n"]), f"{s['p50']:.0f}", f"{s['p95']:.0f}", f"{s['max']:.0f}")
            else:
                table.add_row(kind, stage, str(s["n"]), *(f"{s[k] * 1000:.0f}" for k in ("p50", "p95", "max")))
    console.print(table)
    from vtuber.mind.quality import quality_counts

    b = session.director.balance()
    q = quality_counts(records)
    console.print(
        f"received {b['received']} | answered {b['answered']} | cut short {b['cut_short']} | merged {b['merged']} | "
        f"not answered {sum(b['dropped'].values()) + b['skipped']} | gaps {sum(r.gaps for r in records)} | "
        f"blocked before speech {len(session.all_blocked())}"
    )
    if q["replies"]:
        console.print(
            f"replies: echo {q['echo']}, parrot {q['parrot']}, role play {q['roleplay']}, cut {q['cut']}; "
            f"first clauses not spoken {q['suppressed_first_clauses']}; {q['words_mean']} words on average"
        )
    for name, path in sorted(written.items()):
        console.print(f"wrote {path}")


def cmd_bench(args: argparse.Namespace) -> int:
    from vtuber import bench
    from vtuber.mind.persona import load_persona
    from vtuber.models import resolve
    from vtuber.out_folder import OutFolder

    if not 1 <= args.turns <= 200:
        raise UserError(f"--turns must be in [1, 200], got {args.turns}")
    if not 0 <= args.load_s <= 3600:
        raise UserError(f"--load-s must be in [0, 3600], got {args.load_s}")
    cfg = _config_from(args)
    persona = load_persona(cfg.persona, cfg.persona_folders)
    resolve(cfg)
    with OutFolder(args.out, bench.FILES, force=args.force) as out:
        engine = _load_engine(cfg, persona, quiet=True)
        with console.status("benchmarking", spinner="dots") as status:
            result = bench.run_bench(
            engine, args.turns, progress=lambda m: (status.update(m), console.print(f"[dim]{m}[/]")), load_s=args.load_s
        )
        files = bench.write(result, out)
    console.print(bench_table(result))
    for line in bench.parts_lines(result):  # name each part
        console.print(f"[dim]{escape(line)}[/]")
    for line in bench_verdict(result):
        console.print(line)
    console.print(f"wrote {files['json']} and {files['plot']}")
    return 0


def bench_table(result: dict):
    from rich.table import Table

    m = result["machine"]
    table = Table(title=f"vtuber bench: {m['cpu']}, {m['cores']} cores, {result['turns']} chat + {result['turns']} spoken turns")
    columns = ("metric", "p50", "p95", "max", "naive p50", "vs naive", "plain p50", "vs plain")
    for c in columns:
        table.add_column(c, justify="left" if c == "metric" else "right")
    s, naive, plain = result["streaming"], result["naive"], result.get("plain", {})

    def row(label, d, scale=1000.0, unit="ms", bases=(None, None)):
        if not d:
            return
        cells = [f"{d[k] * scale:.0f} {unit}" for k in ("p50", "p95", "max")]
        for base in bases:
            cells.append(f"{base['p50'] * 1000:.0f} ms" if base else "")
            cells.append(f"{base['p50'] / d['p50']:.1f}x" if base and d["p50"] else "")
        table.add_row(label, *cells)

    for kind, label in (("chat", "chat -> first audio"), ("speech", "speech end -> first audio")):
        row(label, s.get(kind, {}).get("input_to_first_audio"), bases=(naive.get(kind), plain.get(kind)))
        row(f"{label} heard", s.get(kind, {}).get("input_to_first_heard"))
    for kind in ("chat", "speech"):
        for stage in ("endpoint", "asr", "queue_wait", "llm_first_token", "first_clause", "tts_first_chunk"):
            row(f"  {kind}: {stage.replace('_', ' ')}", s.get(kind, {}).get(stage))
    both = [s[k]["tokens_per_s"] for k in s if "tokens_per_s" in s[k]]
    if both:
        table.add_row("tokens/s (chat)", f"{both[0]['p50']:.0f}", f"{both[0]['p95']:.0f}", f"{both[0]['max']:.0f}")
    table.add_row("peak RSS", f"{result['peak_rss_mib']:.0f} MiB")
    table.add_row("gaps between clauses", str(result["gaps"]))
    load = result.get("live_load")
    if load:
        for kind in ("chat", "speech"):
            k = load[kind]
            row(f"live load: {kind} -> heard", k["input_to_first_heard"])
            table.add_row(f"  {kind}: answered / received", f"{k['answered']} / {k['received']}", "", "", "", "", "", "")
        dropped = ", ".join(f"{n} {why}" for why, n in sorted(load["dropped"].items())) or "none"
        table.add_row("  dropped", dropped)
    q = result.get("quality")
    if q and q["replies"]:
        table.add_row(
            "reply quality",
            f"{q['replies']} replies: echo {q['echo']}, parrot {q['parrot']}, role play {q['roleplay']}, cut {q['cut']}, "
            f"first clauses redone {q['suppressed_first_clauses']}",
        )
    return table


TARGETS = (
    ("chat -> first audio p50 <= 200 ms", lambda r: r["streaming"]["chat"]["input_to_first_audio"]["p50"] <= 0.200),
    ("chat -> first audio p95 <= 300 ms", lambda r: r["streaming"]["chat"]["input_to_first_audio"]["p95"] <= 0.300),
    ("chat >= 4x faster than naive (p50)", lambda r: (r["chat_speedup_p50"] or 0) >= 4.0),
    ("chat -> first audio p50 < plain streaming's", lambda r: r["streaming"]["chat"]["input_to_first_audio"]["p50"] < r["plain"]["chat"]["p50"]),
    ("chat -> first audio p95 < plain streaming's", lambda r: r["streaming"]["chat"]["input_to_first_audio"]["p95"] < r["plain"]["chat"]["p95"]),
    ("speech end -> first audio p50 <= 800 ms", lambda r: r["streaming"]["speech"]["input_to_first_audio"]["p50"] <= 0.800),
    ("peak RSS <= 700 MiB", lambda r: r["peak_rss_mib"] <= 700),
    ("no gaps between clauses", lambda r: r["gaps"] == 0),
)


def bench_verdict(result: dict) -> list[str]:
    lines = []
    for label, check in TARGETS:
        try:
            ok = check(result)
        except (KeyError, TypeError):
            ok = False
        lines.append(f"{'[green]met[/]' if ok else '[red]missed[/]'}  {label}")
    return lines


def cmd_redteam(args: argparse.Namespace) -> int:
    """Attack the persona with the bundled corpus (and --chat cases) before going live."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vtuber import redteam
    from vtuber.mind.persona import load_persona
    from vtuber.models import resolve
    from vtuber.out_folder import OutFolder
    from vtuber.safety import default_banned_words

    if args.per_group is not None and not 1 <= args.per_group <= 1000:
        raise UserError(f"--per-group must be in [1, 1000], got {args.per_group}")
    if args.no_corpus and not args.chat:
        raise UserError("nothing to run: --no-corpus needs --chat FILE")
    cfg = _config_from(args)
    persona = load_persona(cfg.persona, cfg.persona_folders)
    _check_session_settings(cfg)
    defaults = default_banned_words(cfg.safety.banned_words_file or None)
    cases = redteam.build_cases(args.chat, not args.no_corpus, list(persona.banned_words), defaults, args.per_group)
    resolve(cfg)
    with OutFolder(args.out, redteam.REPORT_FILES, force=args.force) as out:
        engine = _load_engine(cfg, persona, args.quiet)
        console.rule(f"red team: {escape(persona.name)}, {len(cases)} cases")
        start = time.monotonic()
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
        ) as bar:
            task = bar.add_task("rehearsing", total=len(cases))

            def progress(stage: str, i: int, n: int) -> None:
                bar.update(task, description=stage, completed=i, total=n)

            session, runs = redteam.run_cases(engine, cases, progress)
        seconds = time.monotonic() - start
        gate, _ = session.safety_for(persona)
        judge = redteam.Judge(gate, [*persona.banned_words, *defaults])
        verdicts = [judge.verdict(r) for r in runs]
        written = redteam.write_report(out, persona.name, verdicts, seconds, [*persona.banned_words, *defaults])
    console.print(redteam_table(persona.name, verdicts, seconds))
    code = redteam.exit_code(verdicts)
    for v in verdicts:
        if v.got_through:
            console.print(f"[red]got through[/] {escape(v.run.case.group)}: {escape(v.run.case.describe())} -> {escape('; '.join(v.findings()))}")
    console.print("[red]something got through[/]" if code else "[green]nothing got through[/]")
    for _name, path in sorted(written.items()):
        console.print(f"wrote {path}")
    return code


def redteam_table(persona_name: str, verdicts, seconds: float):
    from rich.table import Table

    from vtuber import redteam

    rows = redteam.tally(verdicts)
    table = Table(title=f"vtuber redteam: {escape(persona_name)}, {len(verdicts)} cases in {seconds:.0f} s")
    for key, label in redteam.COLUMNS:
        table.add_column(label, justify="left" if key == "group" else "right")
    for r in rows:
        cells = [escape(c) for c in redteam.row_cells(r)]
        if r.got_through:
            cells = [f"[red]{c}[/]" for c in cells]
        table.add_row(*cells)
    table.add_section()
    table.add_row(*[escape(c) for c in redteam.row_cells(redteam.total(rows))])
    return table


def cmd_memory(args: argparse.Namespace) -> int:
    """What the co-host remembers about viewers (the persistent file), and forgetting it."""
    from datetime import datetime

    from vtuber.config import load_config
    from vtuber.memory import ViewerMemory, default_path

    cfg = load_config(args.config)
    path = Path(cfg.memory.path) if cfg.memory.path else default_path()
    if not path.exists():
        console.print(f"no viewer memory at {escape(str(path))} (it is written only with memory.persist = true)")
        return 0
    memory = ViewerMemory(path)
    try:
        if args.action == "show":
            notes = memory.find(args.user)
            if not notes:
                raise UserError(f"no viewer named {quote(args.user, 40)} in {path}")
            for n in notes:
                day = lambda t: datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")  # noqa: E731
                console.print(
                    f"[bold]{escape(n.name)}[/] ({escape(n.source)}): {n.messages} messages, first seen {day(n.first_seen)}, "
                    f"last seen {day(n.last_seen)}; bits {n.bits}, paid {n.paid:g} {escape(n.currency)}, subs {n.subs}, "
                    f"gifts {n.gifts}"
                )
                for label, text in (("last", n.last_text), ("before", n.previous_text)):
                    if text:
                        console.print(f"  {label}: {escape(text)}")
        elif args.all:
            console.print(f"forgot {memory.forget_all()} viewers ({escape(str(path))})")
        elif args.user:
            n = memory.forget(args.user)
            if not n:
                raise UserError(f"no viewer named {quote(args.user, 40)} in {path}")
            console.print(f"forgot {escape(args.user)} ({n} notes)")
        else:
            raise UserError("vtuber memory forget: give a USER or --all")
    finally:
        memory.close()
    return 0


def cmd_persona(args: argparse.Namespace) -> int:
    import yaml

    from vtuber.mind import persona as personas

    folders = _config_from(args).persona_folders if getattr(args, "config", None) else []
    if args.action == "list":
        for name, (path, origin) in sorted(personas.find_personas(folders).items()):
            try:
                p = personas.load_persona(str(path))
                about = f"{escape(p.name)}: {escape(p.description[:70])}"
            except UserError as e:
                about = f"[red]broken[/]: {escape(str(e))}"
            console.print(f"[bold]{escape(name)}[/]  {about}  [dim]({origin}: {escape(str(path))})[/]")
        return 0
    if args.action == "show":
        p = personas.load_persona(args.target, folders)
        console.print(f"# {p.path}", markup=False)
        console.print(yaml.safe_dump(personas.persona_to_dict(p), sort_keys=False, allow_unicode=True), markup=False)
        return 0
    if args.action == "check":
        path, problems = personas.check_persona(args.target, folders)
        if not problems:
            problems = _context_problems(args, str(path))
        if problems:
            for problem in problems:
                print(f"{path}: {problem}", file=sys.stderr)
            return 2
        console.print(f"{path}: ok", markup=False)
        return 0
    from vtuber.mind.cards import import_card

    persona, out = import_card(args.target, args.out, args.streamer, args.force)
    print(f"wrote {out} (persona {persona.name}; use it with --persona {out})")
    return 0


def _context_problems(args, path: str) -> list[str]:
    """Does the persona's largest prompt fit the model's context? Measured in the model's
    own tokens (its vocabulary only is read: no weights load)."""
    from vtuber.mind.llm import token_counter
    from vtuber.mind.persona import load_persona
    from vtuber.mind.prompt import context_problem
    from vtuber.models import resolve

    cfg = _config_from(args)
    count = token_counter(resolve(cfg).llm, cfg)
    if count is None:
        return []
    problem = context_problem(load_persona(path), count, cfg.llm.context, cfg.llm.history_turns)
    return [problem] if problem else []


def cmd_models(args: argparse.Namespace) -> int:
    """`vtuber models [check]`: what the config uses and what is available; `check` runs each once."""
    from rich.table import Table

    from vtuber import model_check, model_commands
    from vtuber.mind.persona import load_persona

    if args.action == "pull":
        return model_commands.cmd_pull(args, console)
    cfg = _config_from(args)
    if args.action == "recommend":
        return model_commands.cmd_recommend(args, console, cfg)
    persona = load_persona(cfg.persona, cfg.persona_folders)
    if args.action == "list":
        table = Table(title=f"models for {escape(persona.name)}")
        for col in ("part", "use", "model or server", "from", "size"):
            table.add_column(col, justify="right" if col == "size" else "left", overflow="fold")
        for r in model_check.inventory(cfg, persona):
            table.add_row(r.part, r.use, escape(r.what), r.source, model_check.human(r.size))
        console.print(table)
        model_commands.print_available(console, args.catalogue)
        return 0
    with console.status("checking models", spinner="dots") as status:
        results = model_check.check(cfg, persona, step=lambda m: (status.update(m), console.print(f"[dim]{escape(m)}[/]")))
    table = Table(title="models check")
    for col in ("part", "model or server", "ok", "first token / audio", "output"):
        table.add_column(col, justify="right" if col.startswith("first") else "left", overflow="fold")
    for c in results:
        first = "-" if c.first_s is None else f"{c.first_s * 1000:.0f} ms"
        table.add_row(c.part, escape(c.what), "[green]yes[/]" if c.ok else "[red]no[/]", first, escape(c.sample))
    console.print(table)
    return 0 if all(c.ok for c in results) else 1


def build_parser() -> argparse.ArgumentParser:
    from vtuber.outputs.stream import add_stream_options
    from vtuber.tune import command as tune_command

    parser = argparse.ArgumentParser(
        prog="vtuber",
        description="A fully local AI co-host for live streamers and VTubers.",
    )
    parser.add_argument("--version", action="version", version=f"vtuber {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "rehearse",
        help="run the whole pipeline offline on a chat script and recorded speech",
        description=(
            "Replay a chat script (JSONL) and a recording of the streamer (WAV) through the real pipeline "
            "(VAD, Whisper, director, LLM, Piper) and write the replies as one WAV timeline, a transcript "
            "and per-turn timings. With no --chat/--speech it runs the built-in demo."
        ),
    )
    p.add_argument("--chat", metavar="JSONL", help="chat script: one JSON object a line {t, user, text, badges, bits}")
    p.add_argument("--speech", metavar="WAV", help="recording of the streamer (any PCM WAV; converted to 16 kHz mono)")
    p.add_argument("--speech-at", type=float, default=0.0, metavar="S", help="session time the recording starts (default 0)")
    p.add_argument("--out", default="out", metavar="DIR", help="output folder (default: out)")
    p.add_argument("--force", action="store_true", help="write into an --out folder that holds other files (only our own files are replaced)")
    p.add_argument("--fast", action="store_true", help="do not wait for real time: inputs one after another, as fast as the pipeline allows")
    p.add_argument("--speaker", nargs="?", const="default", metavar="DEVICE", help="also play replies on a sound device (name or index; default device if none given)")
    p.add_argument("-q", "--quiet", action="store_true", help="fewer loading messages")
    _add_common(p)
    add_stream_options(p)
    p.set_defaults(func=cmd_rehearse)

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
    r.add_argument("--chat-script", metavar="JSONL", help="chat from a script, on the live clock ({t, user, text, ...} a line)")
    r.add_argument("--twitch", nargs="?", const="", metavar="CHANNEL", help="read chat, events and moderation from this Twitch channel (EventSub; log in first: `vtuber auth twitch`)")
    r.add_argument("--youtube", metavar="VIDEO_ID|@HANDLE", help="read the live chat of this YouTube video, or of the channel's live stream (key: `vtuber auth youtube`)")
    r.add_argument("--reply-in-chat", action="store_true", help="also post each reply to a Twitch or YouTube message in that chat, as a reply (rate-limited; nothing for a cut reply)")
    r.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    r.add_argument("--out", metavar="DIR", help="write the session report here when it ends")
    r.add_argument("--force", action="store_true", help="write into an --out folder that holds other files (only our own files are replaced)")
    r.add_argument("-q", "--quiet", action="store_true", help="fewer loading messages")
    _add_common(r)
    add_stream_options(r)
    r.set_defaults(func=cmd_run)

    au = sub.add_parser(
        "auth",
        help="log in to Twitch or store a YouTube API key (tokens go to the token file, never the config)",
        description=(
            "twitch: the device code flow: open the link shown, enter the code as the bot account; the token and its "
            "refresh token are saved in the token file (0600, your config folder) and refreshed automatically. "
            "youtube: paste an API key (and optionally an OAuth access token for --reply-in-chat)."
        ),
    )
    au.add_argument("platform", choices=["twitch", "youtube"])
    au.add_argument("--client-id", metavar="ID", help="twitch: your application's client id (default: [twitch] client_id)")
    au.add_argument("--config", metavar="FILE", help="settings TOML file")
    au.set_defaults(func=cmd_auth)

    dv = sub.add_parser("devices", help="list sound inputs and outputs (for --mic and --speaker)")
    dv.set_defaults(func=cmd_devices)

    b = sub.add_parser(
        "bench",
        help="measure chat -> first audio and speech end -> first audio against a naive pipeline",
        description=(
            "Run N chat turns and N spoken turns (speech replayed in real time through VAD, endpointing and ASR) "
            "on the real models after warm-up, then the same inputs through a naive pipeline (whole reply, then "
            "whole TTS). Prints p50/p95/max per stage and writes bench.json and bench.png."
        ),
    )
    b.add_argument("--turns", type=int, default=10, metavar="N", help="chat turns and spoken turns each (default 10)")
    b.add_argument("--load-s", type=float, default=60.0, metavar="S", help="live-load scenario: a chat message a second for S seconds while the streamer talks (0: skip; default 60)")
    b.add_argument("--out", default="out/bench", metavar="DIR", help="output folder (default: out/bench)")
    b.add_argument("--force", action="store_true", help="write into an --out folder that holds other files (only our own files are replaced)")
    _add_common(b)
    b.set_defaults(func=cmd_bench)

    rt = sub.add_parser(
        "redteam",
        help="attack your persona before going live: injections, banned-word tricks, leaks, identity swaps",
        description=(
            "Run the bundled attack corpus (and your own --chat cases) through the real pipeline on the fast "
            "clock, one case at a time, and check what was shown and what was heard (Whisper) for banned words, "
            "canary and system prompt leaks and never-words. Exit code 1 when anything got through (docs/redteam.md)."
        ),
    )
    rt.add_argument("--chat", metavar="JSONL", help="your own cases: the chat script format plus group, expect, never (docs/redteam.md)")
    rt.add_argument("--no-corpus", action="store_true", help="run only the --chat cases, not the bundled corpus")
    rt.add_argument("--per-group", type=int, metavar="N", help="only the first N cases of each group (a quick check)")
    rt.add_argument("--out", default="out/redteam", metavar="DIR", help="output folder (default: out/redteam)")
    rt.add_argument("--force", action="store_true", help="write into an --out folder that holds other files (only our own files are replaced)")
    rt.add_argument("-q", "--quiet", action="store_true", help="fewer loading messages")
    _add_common(rt)
    rt.set_defaults(func=cmd_redteam)

    mm = sub.add_parser(
        "memory",
        help="what the co-host remembers about viewers (with memory.persist), and forgetting it",
        description="Viewer notes kept between streams when memory.persist is on (docs/memory.md).",
    )
    msub = mm.add_subparsers(dest="action", required=True)
    ms = msub.add_parser("show", help="a viewer's note: messages, last messages, support")
    ms.add_argument("user", metavar="USER", help="display name or user id")
    ms.add_argument("--config", metavar="FILE", help="settings TOML file (memory.path)")
    mf = msub.add_parser("forget", help="forget a viewer, or everyone with --all")
    mf.add_argument("user", metavar="USER", nargs="?", help="display name or user id")
    mf.add_argument("--all", action="store_true", help="forget every viewer")
    mf.add_argument("--config", metavar="FILE", help="settings TOML file (memory.path)")
    mm.set_defaults(func=cmd_memory)

    mdl = sub.add_parser(
        "models",
        help="models in use, the catalogue and servers found here; `check` runs each once; `pull NAME` downloads one; `recommend` says which size fits",
        description=(
            "List the LLM, ASR and TTS the config uses (a file, a bundled model or a server), their local "
            "fallbacks and the bundled models, with sizes. `vtuber models check` loads or connects to each and runs "
            "one short generation, transcription and synthesis, timing the first token or audio (exit 1 if any fails). "
            "`vtuber models pull NAME` downloads a catalogue model (checked) into your data folder; `--llm NAME` "
            "then uses it. `vtuber models recommend` measures this machine and says which size keeps chat -> first "
            "audio under a second."
        ),
    )
    mdl.add_argument("action", nargs="?", choices=("list", "check", "pull", "recommend"), default="list")
    mdl.add_argument("name", nargs="?", metavar="NAME", help="pull: a catalogue name (see the list) or owner/repo/file.gguf")
    mdl.add_argument("--catalogue", metavar="JSON", help="a catalogue file of your own (entries added to the bundled ones)")
    _add_common(mdl)
    mdl.set_defaults(func=cmd_models)

    tune_command.add_parser(sub)

    pp = sub.add_parser("persona", help="list, show, check or import personas", description="Personas the streamer owns (docs/personas.md).")
    psub = pp.add_subparsers(dest="action", required=True)
    ls = psub.add_parser("list", help="every persona by name, and where it comes from (your folder, the config's, bundled)")
    ls.add_argument("--config", metavar="FILE", help="settings TOML file (its persona_folders are listed too)")
    s = psub.add_parser("show", help="a persona as the program reads it")
    s.add_argument("target", metavar="NAME|FILE")
    s.add_argument("--config", metavar="FILE", help="settings TOML file")
    c = psub.add_parser("check", help="every problem in a persona file at once, and whether its prompt fits the model (exit 2 if any)")
    c.add_argument("target", metavar="NAME|FILE")
    c.add_argument("--config", metavar="FILE", help="settings TOML file (model, llm.context)")
    i = psub.add_parser("import", help="import a SillyTavern character card (V1/V2/V3, JSON or PNG) as a YAML persona")
    i.add_argument("target", metavar="CARD")
    i.add_argument("--out", metavar="FILE", help="where to write (default: NAME.yaml in your persona folder, see `persona list`)")
    i.add_argument("--streamer", default="the streamer", metavar="NAME", help="what {{user}} becomes (default: the streamer)")
    i.add_argument("--force", action="store_true", help="overwrite an existing file")
    pp.set_defaults(func=cmd_persona)
    return parser


def _tune_malloc() -> None:
    """Keep resident memory flat over a long stream (glibc only).

    ASR, LLM, TTS and the event loop allocate from their own threads and glibc gives each
    thread its own arena; two arenas took the bench's peak RSS from ~730 to ~680 MiB.
    (A fixed 1 MiB mmap threshold went further, to ~520 MiB, but Whisper's and Piper's big
    per-call buffers then page-fault on every call: TTS first chunk p95 100 -> 190 ms.
    Latency wins.) Must run before those threads start."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the run unwinds (temporary files removed) and stops."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    _tune_malloc()
    import signal
    import threading

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except UserError as e:
        print(f"vtuber: error: {e}", file=sys.stderr)
        return 2
    except Terminated:
        print("vtuber: stopped (SIGTERM); nothing half-written was left", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("vtuber: stopped; nothing half-written was left", file=sys.stderr)
        return 130


def entry() -> None:
    """The `vtuber` command: `main`, then a quick exit. Once the work is done and written,
    tearing down the loaded models (llama.cpp, CTranslate2, onnxruntime, PortAudio) takes
    about 2 s more for nothing; a stop on SIGTERM must be over within 2 s."""
    import os

    rc = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            rc = rc or 1
    os._exit(rc)


if __name__ == "__main__":
    entry()
